import ONNX
import System

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
    /// The p50's distribution-free 95% confidence interval, milliseconds (`MedianInterval`); nil when the report
    /// was not made from samples.
    public var p50Interval: MedianInterval?
    /// Back-to-back runs each timed sample averages (TVM's `number`); nil when the report was not measured here.
    public var runsPerSample: Int?
    /// Timed samples during which the measuring thread was descheduled (`PreemptionRule`), out of `count`; with
    /// `MeasurementOptions.preempted` `.threadTime` their thread CPU time stands for their wall time. Nil when the
    /// report was not measured here.
    public var preemptedCount: Int?
    /// With `MeasurementOptions.reference`: the median time of one run of the reference workload timed beside the
    /// samples, milliseconds; nil without the reference.
    public var referenceMs: Double?
    /// With `MeasurementOptions.reference`: the median over the samples of each one's latency over the time of the
    /// reference blocks beside it, what repeats on a shared machine (`ReferenceWorkload`); nil without it.
    public var referenceRatio: Double?

    /// Creates a report.
    public init(
        meanMs: Double, p50Ms: Double, p90Ms: Double, p99Ms: Double, stddevMs: Double, count: Int, peakMemoryBytes: Int,
        p50Interval: MedianInterval? = nil, runsPerSample: Int? = nil, preemptedCount: Int? = nil
    ) {
        self.meanMs = meanMs
        self.p50Ms = p50Ms
        self.p90Ms = p90Ms
        self.p99Ms = p99Ms
        self.stddevMs = stddevMs
        self.count = count
        self.peakMemoryBytes = peakMemoryBytes
        self.p50Interval = p50Interval
        self.runsPerSample = runsPerSample
        self.preemptedCount = preemptedCount
    }

    /// Summarises latencies (milliseconds, in the order they were timed); percentiles interpolate linearly between
    /// ranks, as numpy's default. The p50's interval is `MedianInterval(timed:)`'s.
    public init(samples: [Double], peakMemoryBytes: Int, runsPerSample: Int? = nil, preemptedCount: Int? = nil) {
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
            stddevMs: variance.squareRoot(), count: count, peakMemoryBytes: peakMemoryBytes,
            p50Interval: MedianInterval(timed: samples, sorted: sorted), runsPerSample: runsPerSample,
            preemptedCount: preemptedCount)
    }

    /// The half-width of the p50's interval as a share of the p50 (the larger side): 0.01 is ±1%; nil without an
    /// interval.
    public var p50RelativeHalfWidth: Double? {
        p50Interval.map { $0.relativeHalfWidth(around: p50Ms) }
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
        case p50Interval = "latency_p50_interval"
        case runsPerSample = "latency_runs_per_sample"
        case preemptedCount = "latency_preempted_runs"
        case referenceMs = "latency_reference_ms"
        case referenceRatio = "latency_reference_ratio"
    }
}

/// A distribution-free confidence interval of a median from order statistics (Conover, *Practical Nonparametric
/// Statistics*, 3.2): with n samples sorted, the number below the true median is Binomial(n, 1/2), so
/// `[x(j), x(n+1-j)]` covers it with probability `1 - 2 P(B <= j-1)`; `j` is the largest rank that keeps this at
/// least `confidence`. It assumes independent samples, not normal ones: latency is skewed and heavy-tailed.
public struct MedianInterval: Hashable, Sendable, Codable {
    /// Lower bound, milliseconds.
    public var low: Double
    /// Upper bound, milliseconds.
    public var high: Double
    /// The coverage the ranks give, at least the one asked for when there are 6 samples or more (with fewer, the
    /// interval is the whole range and its coverage, `1 - 2^(1-n)`, is less than 95%).
    public var confidence: Double

    enum CodingKeys: String, CodingKey {
        case low = "low_ms"
        case high = "high_ms"
        case confidence
    }

    /// An interval from its bounds.
    public init(low: Double, high: Double, confidence: Double) {
        self.low = low
        self.high = high
        self.confidence = confidence
    }

    /// The interval of the median of `sorted` (ascending); nil when it is empty.
    public init?(sorted: [Double], confidence wanted: Double = 0.95) {
        let n = sorted.count
        guard n > 0 else { return nil }
        let (j, coverage) = Self.lowerRank(count: n, confidence: wanted)
        self.init(low: sorted[j - 1], high: sorted[n - j], confidence: coverage)
    }

    /// Consecutive blocks `MedianInterval(timed:sorted:)` splits a measurement into.
    public static let blocks = 10

    /// The interval of the median of samples timed one after the other (`sorted` is them in ascending order):
    /// the order-statistics interval of all of them, widened to cover that of the medians of `blocks` consecutive
    /// blocks (batch means, as simulation output analysis treats correlated samples). The first alone assumes
    /// independent samples and is too narrow when the machine's load drifts during the run: every sample of a
    /// busy second is slow together. The blocks' medians see that drift; on a steady machine they agree and the
    /// interval is the first. Blocks are used from 6 samples each (60 in all).
    public init?(timed samples: [Double], sorted: [Double], confidence: Double = 0.95) {
        guard var interval = MedianInterval(sorted: sorted, confidence: confidence) else { return nil }
        let size = samples.count / Self.blocks
        if size >= 6 {
            let medians = (0..<Self.blocks).map { block -> Double in
                let part = samples[(block * size)..<(block == Self.blocks - 1 ? samples.count : (block + 1) * size)].sorted()
                let middle = part.count / 2
                return part.count % 2 == 1 ? part[middle] : (part[middle - 1] + part[middle]) / 2
            }
            if let drift = MedianInterval(sorted: medians.sorted(), confidence: confidence) {
                interval.low = min(interval.low, drift.low)
                interval.high = max(interval.high, drift.high)
                interval.confidence = min(interval.confidence, drift.confidence)
            }
        }
        self = interval
    }

    /// The largest rank j (from 1, at most (n+1)/2) with `1 - 2 P(B <= j-1) >= confidence`, B ~ Binomial(n, 1/2),
    /// or 1 when even the whole range falls short; and that j's coverage. Terms are computed in log space (2^-n
    /// underflows past n = 1074) and summed from 20 standard deviations below n/2 only: what lies further down is
    /// below 1e-80, and a measurement of millions of samples checks its interval in a few thousand steps.
    static func lowerRank(count n: Int, confidence: Double) -> (rank: Int, coverage: Double) {
        let tail = (1 - confidence) / 2
        let logTotal = Double(n) * log(2.0)
        // Glibc's lgamma is overloaded (with the sign too); the annotation picks the plain one.
        func logGamma(_ x: Double) -> Double { lgamma(x) }
        let logFactorialN = logGamma(Double(n) + 1)
        func term(_ i: Int) -> Double {
            exp(logFactorialN - logGamma(Double(i) + 1) - logGamma(Double(n - i) + 1) - logTotal)
        }
        let start = max(0, n / 2 - Int(10 * Double(n).squareRoot()))
        var (rank, coverage) = (1, 1 - 2 * term(0))
        var cumulative = 0.0  // P(B <= i)
        for i in start..<max(1, (n + 1) / 2) {
            cumulative += term(i)
            guard cumulative <= tail else { break }
            // P(B <= i) within the tail: x(i+1) may bound the interval below.
            (rank, coverage) = (i + 1, 1 - 2 * cumulative)
        }
        return (min(rank, (n + 1) / 2), coverage)
    }

    /// How far the interval reaches from `center`, as a share of it (the larger side).
    public func relativeHalfWidth(around center: Double) -> Double {
        guard center > 0 else { return .infinity }
        return max(center - low, high - center) / center
    }

    /// True when `value` is inside the interval, bounds included.
    public func contains(_ value: Double) -> Bool { low <= value && value <= high }
}

/// Which timed samples the measuring thread spent partly off its CPU, and what such a sample's latency is.
///
/// A sample is timed by the wall clock and by the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`, which counts only
/// the time the thread ran; the engine runs on the calling thread alone). When the wall time exceeds the CPU time by
/// more than `margin` of it (and `floor`), the scheduler ran something else in between (another process on a busy
/// machine, a hypervisor's steal): the wall time is that wait plus the model's. Such a sample then counts its CPU
/// time, which still includes what the interruption cost the model (caches and TLB refilled afterwards): what is
/// removed is the time the model was not running, nothing the model did. Each report says how many samples were so.
public struct PreemptionRule: Hashable, Sendable {
    /// The share of the CPU time the wall time may exceed it by without the sample counting as preempted.
    /// Default 0.02: an interrupt's few microseconds on a 0.05 ms model, far below a time slice (milliseconds).
    public var margin: Double
    /// The least excess that counts: below it the two clocks' reading order and resolution decide. Default 2 µs.
    public var floor: Duration

    /// A rule; the defaults are the harness's.
    public init(margin: Double = 0.02, floor: Duration = .microseconds(2)) {
        self.margin = margin
        self.floor = floor
    }

    /// Whether a sample of `wall` seconds, `cpu` of them on the thread's CPU clock, was descheduled.
    public func preempted(wall: Double, cpu: Double) -> Bool {
        wall - cpu > max(margin * cpu, floor.inSeconds)
    }
}

/// What a measurement does with a sample during which its thread was descheduled (`PreemptionRule`).
public enum PreemptedSamples: String, Hashable, Sendable, CaseIterable {
    /// The sample counts its thread CPU time: the time the model ran, without the wait. The default.
    case threadTime = "thread-time"
    /// The sample counts its wall time, wait included (what the harness did before; for comparison).
    case wallTime = "wall-time"
    /// The sample is dropped and another timed in its place: its CPU time still holds what the interruption cost
    /// the model (private caches refilled after the other process ran), which moves with the machine's load. After
    /// ten times `repeats` attempts the measurement stops dropping and counts the descheduled samples' thread CPU
    /// time, so a model longer than the scheduler's time slices is still measured, in bounded time.
    case discard
}

/// How many runs a measurement makes.
///
/// Without a `precision` it times `repeats` samples and for `minimumTime`. With one it goes on, as
/// onnxruntime_perf_test's duration mode and TVM's `time_evaluator` do, until the 95% interval of the p50 lies
/// within ±`precision` of it or `maximumTime` is spent: a busy machine gets more samples, not a noisier figure.
public struct MeasurementOptions: Hashable, Sendable {
    /// Untimed runs first, to warm caches, page in the arena and let the CPU clock settle. Default 20.
    public var warmup: Int
    /// At least this many timed samples. Default 200.
    public var repeats: Int
    /// Keep timing until at least this much time has passed, even past `repeats`. Default zero.
    public var minimumTime: Duration
    /// Keep timing past `repeats` and `minimumTime` until the p50's 95% interval is within ± this share of it
    /// (0.01: ±1%), checked every eighth more samples. Default nil: no such check.
    public var precision: Double?
    /// With a `precision`, stop once this much time has been spent timing even if the interval is wider (the
    /// report carries it, so the reader sees how wide). `repeats` and `minimumTime` are always honoured. Default 10 s.
    public var maximumTime: Duration
    /// Each sample times back-to-back runs lasting at least this long together and records their mean, so that
    /// a sample of a tiny model is not one timer tick plus an interrupt (TVM's `min_repeat_ms`). How many runs
    /// that takes is found once, after the warm-up, on the thread's CPU clock. Default zero: one run per sample.
    public var minimumSampleTime: Duration
    /// What a descheduled sample counts (`PreemptedSamples`); default `.threadTime`.
    public var preempted: PreemptedSamples
    /// Which samples were descheduled.
    public var preemption: PreemptionRule
    /// Whether the measuring thread is pinned to the CPU it starts on for the measurement
    /// (`ThreadAffinity.pinnedToCurrentCPU`), so that a busy machine's scheduler does not move it to the other
    /// core halfway, onto cold private caches. Its CPU set is given back afterwards.
    public var pinned: Bool
    /// Whether a fixed reference workload (`ReferenceWorkload`) is timed before each sample, under the same
    /// preemption rule (a pair one of whose halves is dropped is dropped), for the report's `referenceMs` and
    /// `referenceRatio`.
    public var reference: Bool

    /// Creates options; the defaults suit the tutorial CNNs (about 0.05 ms each).
    public init(
        warmup: Int = 20, repeats: Int = 200, minimumTime: Duration = .zero, precision: Double? = nil,
        maximumTime: Duration = .seconds(10), minimumSampleTime: Duration = .zero,
        preempted: PreemptedSamples = .threadTime, preemption: PreemptionRule = PreemptionRule(), pinned: Bool = false,
        reference: Bool = false
    ) {
        self.warmup = warmup
        self.repeats = repeats
        self.minimumTime = minimumTime
        self.precision = precision
        self.maximumTime = maximumTime
        self.minimumSampleTime = minimumSampleTime
        self.preempted = preempted
        self.preemption = preemption
        self.pinned = pinned
        self.reference = reference
    }

    /// What a timed piece of work counts, in seconds, under `preemption` and `preempted`: its wall time, or when
    /// the thread was descheduled during it its thread CPU time (`.threadTime`, and `.discard` once `mayDrop` is
    /// false) or its wall time (`.wallTime`); nil when it is to be dropped (`.discard` while `mayDrop`).
    /// `descheduled` tells whether it was. The one rule of `measure`, `measureAgainstReference` and `profile`.
    func counted(wall: Double, cpu: Double, mayDrop: Bool) -> (seconds: Double?, descheduled: Bool) {
        guard preemption.preempted(wall: wall, cpu: cpu) else { return (wall, false) }
        switch preempted {
        case .wallTime: return (wall, true)
        case .threadTime: return (cpu, true)
        case .discard: return (mayDrop ? nil : cpu, true)
        }
    }

    /// With `.discard`, how many samples are attempted before the descheduled ones count their thread CPU time:
    /// ten times `repeats`.
    var discardLimit: Int {
        let attempts = repeats.multipliedReportingOverflow(by: 10)
        return attempts.overflow ? Int.max : attempts.partialValue
    }

    /// Runs `body` pinned to one CPU when `pinned` says so.
    func pinning<T>(_ body: () throws -> T) rethrows -> T {
        guard pinned else { return try body() }
        return try ThreadAffinity.pinnedToCurrentCPU { _ in try body() }
    }

    /// What is wrong with these options, or nil.
    public var problem: String? {
        if warmup < 0 { return "the warm-up must be 0 runs or more; got \(warmup)" }
        if repeats < 1 { return "at least 1 timed sample is needed; got \(repeats)" }
        if minimumTime < .zero { return "the minimum time must be 0 or more; got \(minimumTime)" }
        if minimumSampleTime < .zero || minimumSampleTime > .seconds(1) {
            return "the minimum time per sample must be between 0 and 1 s; got \(minimumSampleTime)"
        }
        if let precision, !(precision > 0 && precision < 1) {
            return "the precision is a share of the p50 between 0 and 1 (0.01 for ±1%); got \(precision)"
        }
        let (margin, floor) = (preemption.margin, preemption.floor)
        if !(margin >= 0 && margin.isFinite && floor >= .zero) {
            return "the preemption margin must be finite and the floor 0 or more; got margin \(margin), floor \(floor)"
        }
        if precision != nil, maximumTime < minimumTime {
            return "the maximum time (\(maximumTime)) must be at least the minimum time (\(minimumTime))"
        }
        return nil
    }
}

extension OnnxEngine {
    /// Times batch-1 inferences of the first input with a fixed pseudo-random image.
    public func measure(_ options: MeasurementOptions = MeasurementOptions()) throws -> LatencyReport {
        if let problem = options.problem { throw OnnxError.invalidInput("cannot measure: \(problem)") }
        guard let first = inputs.first, let result = outputs.first else {
            throw OnnxError.invalidInput("the model has no run-time input or no output to measure")
        }
        if options.reference { return measureAgainstReference(options, input: first, output: result) }
        let input = Self.benchmarkInput(count: first.count)
        var output = [Float](repeating: 0, count: result.count)
        var samples: [Double] = []
        samples.reserveCapacity(options.repeats)
        var runsPerSample = 1
        var preempted = 0
        // With `.discard`, the descheduled samples at their thread CPU time, in case too few others come.
        var dropped: [Double] = []
        let discardUntil = options.discardLimit
        options.pinning {
            input.withUnsafeBufferPointer { inputBuffer in
                output.withUnsafeMutableBufferPointer { outputBuffer in
                    for _ in 0..<options.warmup { run(input: inputBuffer, output: outputBuffer) }
                    let sampleSeconds = options.minimumSampleTime.inSeconds
                    if sampleSeconds > 0 {
                        // Doubled until a batch lasts long enough, as TVM grows `number`; found once, so that every
                        // sample averages the same count. Lasting is on the thread's CPU clock: on a busy machine the
                        // wall clock would count waits and settle on too few runs.
                        while runsPerSample < 1 << 20 {
                            let before = Self.threadCPUTime()
                            for _ in 0..<runsPerSample { run(input: inputBuffer, output: outputBuffer) }
                            if Self.threadCPUTime() - before >= sampleSeconds { break }
                            runsPerSample *= 2
                        }
                    }
                    let (minimumSeconds, maximumSeconds) = (options.minimumTime.inSeconds, options.maximumTime.inSeconds)
                    var nextCheck = options.repeats
                    let start = Self.now()
                    while true {
                        // The CPU clock is read outside the wall clock's window: its system call does not add to the
                        // wall time, and an undisturbed sample's CPU time is a little longer than its wall time.
                        let cpuBefore = Self.threadCPUTime()
                        let before = Self.now()
                        for _ in 0..<runsPerSample { run(input: inputBuffer, output: outputBuffer) }
                        let after = Self.now()
                        let cpu = Self.threadCPUTime() - cpuBefore
                        let (counted, descheduled) = options.counted(
                            wall: after - before, cpu: cpu, mayDrop: samples.count + dropped.count < discardUntil)
                        if descheduled { preempted += 1 }
                        guard let seconds = counted else {
                            dropped.append(cpu * 1000 / Double(runsPerSample))
                            continue
                        }
                        samples.append(seconds * 1000 / Double(runsPerSample))
                        if samples.count < options.repeats, samples.count + dropped.count >= discardUntil {
                            // Too few undisturbed samples in ten times the attempts: the dropped ones count their
                            // thread CPU time, as with `.threadTime`.
                            samples += dropped
                            dropped = []
                        }
                        guard samples.count >= options.repeats, after - start >= minimumSeconds else { continue }
                        guard let precision = options.precision, after - start < maximumSeconds else { break }
                        guard samples.count >= nextCheck else { continue }
                        let report = LatencyReport(samples: samples, peakMemoryBytes: 0)
                        // Six samples at least: below that the whole range covers the median less than 95% of the time.
                        if let interval = report.p50Interval, interval.confidence >= 0.95,
                            interval.relativeHalfWidth(around: report.p50Ms) <= precision
                        {
                            break
                        }
                        nextCheck = samples.count + max(16, samples.count / 8)
                    }
                }
            }
        }
        return LatencyReport(
            samples: samples, peakMemoryBytes: peakMemoryBytes, runsPerSample: runsPerSample, preemptedCount: preempted)
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
    static func now() -> Double { seconds(of: CLOCK_MONOTONIC) }

    /// Seconds the calling thread has run on a CPU.
    static func threadCPUTime() -> Double { seconds(of: CLOCK_THREAD_CPUTIME_ID) }

    private static func seconds(of clock: clockid_t) -> Double {
        var time = timespec()
        clock_gettime(clock, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

/// Loads an ONNX model into the native engine and measures batch-1 latency and peak working memory: what a
/// fleet worker's native runner reports.
public func measure(model: [UInt8], warmup: Int, repeats: Int, minimumTime: Duration = .zero) throws -> LatencyReport {
    try measure(model: model, MeasurementOptions(warmup: warmup, repeats: repeats, minimumTime: minimumTime))
}

/// Loads an ONNX model into the native engine and measures it with `options`.
public func measure(model: [UInt8], _ options: MeasurementOptions) throws -> LatencyReport {
    try OnnxEngine(bytes: model).measure(options)
}

extension OnnxEngine {
    /// `measure` with `options.reference`: samples of the model alternate with blocks of the reference workload
    /// as long as one sample (as many runs as make it so, found once after the warm-up), each sample's ratio is its
    /// time over the mean of the blocks on either side, and a pair one of whose parts was descheduled follows
    /// `options.preempted` (`.discard`: left out, until ten times `repeats` attempts). The samples' own figures are
    /// reported as `measure` does, with `referenceMs` (one reference run) and `referenceRatio` (the median ratio).
    /// `precision` and `minimumSampleTime` are not applied: the ratio's spread is not the samples', and each
    /// sample is one run, its neighbouring blocks as long.
    func measureAgainstReference(_ options: MeasurementOptions, input first: Tensor, output result: Tensor)
        -> LatencyReport
    {
        let reference = ReferenceWorkload()
        let input = Self.benchmarkInput(count: first.count)
        var output = [Float](repeating: 0, count: result.count)
        var (samples, ratios, references) = ([Double](), [Double](), [Double]())
        var (preempted, attempted) = (0, 0)
        let discardUntil = options.discardLimit
        options.pinning {
            input.withUnsafeBufferPointer { inputBuffer in
                output.withUnsafeMutableBufferPointer { outputBuffer in
                    func model() { self.run(input: inputBuffer, output: outputBuffer) }
                    for _ in 0..<options.warmup {
                        model()
                        reference.run()
                    }
                    let cpu = Self.threadCPUTime()
                    for _ in 0..<3 { model() }
                    let modelTime = Self.threadCPUTime() - cpu
                    for _ in 0..<3 { reference.run() }
                    let referenceTime = Self.threadCPUTime() - cpu - modelTime
                    let blockRuns = max(1, min(1 << 16, Int((modelTime / max(referenceTime, 1e-9)).rounded())))
                    // One timed piece of work: milliseconds, or nil when it was descheduled and is to be dropped.
                    func timed(_ runs: Int, _ body: () -> Void) -> Double? {
                        let cpuBefore = Self.threadCPUTime()
                        let before = Self.now()
                        for _ in 0..<runs { body() }
                        let after = Self.now()
                        let (counted, descheduled) = options.counted(
                            wall: after - before, cpu: Self.threadCPUTime() - cpuBefore,
                            mayDrop: attempted < discardUntil)
                        if descheduled { preempted += 1 }
                        return counted.map { $0 * 1000 / Double(runs) }
                    }
                    var before = timed(blockRuns, reference.run)
                    let start = Self.now()
                    while ratios.count < options.repeats || Self.now() - start < options.minimumTime.inSeconds {
                        let sample = timed(1, model)
                        let after = timed(blockRuns, reference.run)
                        attempted += 1
                        if let sample { samples.append(sample) }
                        if let sample, let low = before, let high = after {
                            ratios.append(sample / ((low + high) / 2))
                        }
                        if let after { references.append(after) }
                        before = after
                    }
                }
            }
        }
        var report = LatencyReport(
            samples: samples, peakMemoryBytes: peakMemoryBytes, runsPerSample: 1, preemptedCount: preempted)
        report.referenceMs = LatencyReport(samples: references, peakMemoryBytes: 0).p50Ms
        report.referenceRatio = LatencyReport(samples: ratios, peakMemoryBytes: 0).p50Ms
        return report
    }
}
