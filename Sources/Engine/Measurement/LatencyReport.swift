import ONNX

#if canImport(Glibc)
    import Glibc
#endif

/// Latency and memory of repeated batch-1 inferences of one model on this machine.
public struct LatencyReport: Hashable, Sendable, Codable {
    /// Mean latency in milliseconds.
    public var meanMs: Double
    /// Median latency in milliseconds: the figure constraints use.
    public var p50Ms: Double
    /// 90th percentile in milliseconds.
    public var p90Ms: Double
    /// 99th percentile in milliseconds.
    public var p99Ms: Double
    /// Sample standard deviation in milliseconds.
    public var stddevMs: Double
    /// The number of timed runs (warm-up runs excluded).
    public var count: Int
    /// Peak working memory of one inference in bytes: the engine's planned arena.
    public var peakMemoryBytes: Int

    /// Creates a report.
    public init(
        meanMs: Double, p50Ms: Double, p90Ms: Double, p99Ms: Double, stddevMs: Double, count: Int, peakMemoryBytes: Int
    ) {
        self.meanMs = meanMs
        self.p50Ms = p50Ms
        self.p90Ms = p90Ms
        self.p99Ms = p99Ms
        self.stddevMs = stddevMs
        self.count = count
        self.peakMemoryBytes = peakMemoryBytes
    }

    /// Summarises latencies (milliseconds); percentiles interpolate linearly between ranks, as numpy's default.
    public init(samples: [Double], peakMemoryBytes: Int) {
        let sorted = samples.sorted()
        let count = sorted.count
        func percentile(_ p: Double) -> Double {
            guard count > 0 else { return 0 }
            let position = p / 100 * Double(count - 1)
            let lower = Int(position.rounded(.down))
            let upper = min(lower + 1, count - 1)
            return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
        }
        let mean = count > 0 ? sorted.reduce(0, +) / Double(count) : 0
        let variance = count > 1 ? sorted.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(count - 1) : 0
        self.init(
            meanMs: mean, p50Ms: percentile(50), p90Ms: percentile(90), p99Ms: percentile(99),
            stddevMs: variance.squareRoot(), count: count, peakMemoryBytes: peakMemoryBytes)
    }

    /// The names trials, runners and `nas measure --json` share (`MetricName` in Constraints).
    enum CodingKeys: String, CodingKey {
        case meanMs = "latency_mean_ms"
        case p50Ms = "latency_ms"
        case p90Ms = "latency_p90_ms"
        case p99Ms = "latency_p99_ms"
        case stddevMs = "latency_stddev_ms"
        case count = "latency_runs"
        case peakMemoryBytes = "memory_bytes"
    }
}

/// How many runs a measurement makes.
public struct MeasurementOptions: Hashable, Sendable {
    /// Untimed runs first, to warm caches, page in the arena and let the CPU clock settle. Default 20.
    public var warmup: Int
    /// At least this many timed runs. Default 200.
    public var repeats: Int
    /// Keep timing until at least this much time has passed, even past `repeats`. Default zero.
    public var minimumTime: Duration

    /// Creates options; the defaults suit the tutorial CNNs (about 0.05 ms each).
    public init(warmup: Int = 20, repeats: Int = 200, minimumTime: Duration = .zero) {
        self.warmup = warmup
        self.repeats = repeats
        self.minimumTime = minimumTime
    }
}

extension OnnxEngine {
    /// Times batch-1 inferences of the first input with a fixed pseudo-random image.
    public func measure(_ options: MeasurementOptions = MeasurementOptions()) throws -> LatencyReport {
        guard options.warmup >= 0, options.repeats >= 1, options.minimumTime >= .zero else {
            throw OnnxError.invalidInput(
                "measurement needs warmup >= 0, repeats >= 1 and a minimum time >= 0; got warmup \(options.warmup), repeats \(options.repeats), minimum \(options.minimumTime)"
            )
        }
        // In seconds, as `now()` counts: the loop compares plain doubles between runs.
        let (seconds, attoseconds) = options.minimumTime.components
        let minimumSeconds = Double(seconds) + Double(attoseconds) / 1e18
        guard let first = inputs.first, let result = outputs.first else {
            throw OnnxError.invalidInput("the model has no run-time input or no output to measure")
        }
        let input = Self.benchmarkInput(count: first.count)
        var output = [Float](repeating: 0, count: result.count)
        var samples: [Double] = []
        samples.reserveCapacity(options.repeats)
        input.withUnsafeBufferPointer { inputBuffer in
            output.withUnsafeMutableBufferPointer { outputBuffer in
                for _ in 0..<options.warmup { run(input: inputBuffer, output: outputBuffer) }
                let start = Self.now()
                while samples.count < options.repeats || Self.now() - start < minimumSeconds {
                    let before = Self.now()
                    run(input: inputBuffer, output: outputBuffer)
                    samples.append((Self.now() - before) * 1000)
                }
            }
        }
        return LatencyReport(samples: samples, peakMemoryBytes: peakMemoryBytes)
    }

    /// The fixed pseudo-random image measurements feed: the same values in every run and every process.
    static func benchmarkInput(count: Int) -> [Float] {
        var state: UInt32 = 12345
        return (0..<count).map { _ -> Float in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(state >> 8) / Float(1 << 24)
        }
    }

    /// Monotonic seconds.
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

/// Loads an ONNX model into the native engine and measures batch-1 latency and peak working memory: what a
/// fleet worker's native runner reports.
public func measure(model: [UInt8], warmup: Int, repeats: Int, minimumTime: Duration = .zero) throws -> LatencyReport {
    try OnnxEngine(bytes: model).measure(MeasurementOptions(warmup: warmup, repeats: repeats, minimumTime: minimumTime))
}
