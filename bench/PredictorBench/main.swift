// The latency predictor's accuracy on this CPU (native engine) over generated MobileNet-style ONNX models: the
// kernel-level model (fitted on the engine's per-kernel times) and the linear whole-model one (the same
// measurements without kernel times), against a FLOPs-only linear baseline in the same run; the measurement noise
// floor (two measurements of the same model within ±10% of each other) under three ways of measuring: the
// engine's wall-clock p50 (`OnnxEngine.measure`, what a search records), the p50 of each run's CPU time on the
// measuring thread (`CLOCK_THREAD_CPUTIME_ID`: time the thread was preempted is not counted), and the lowest of ten
// blocks' wall-clock medians (a block the machine was quiet in); and the fit time for thousands of measurements.
// Driven by bench/predictor/run.sh; run on demand, never in tests.
import Engine
import Foundation
import Predictor

/// One way of measuring a model: its figure, then the same figure measured again later in the run.
struct Timing: Codable {
    var first: Double
    var again: Double
}

struct Measured: Codable {
    var file: String
    var flops: Double
    /// The engine's wall-clock p50 (`OnnxEngine.measure`).
    var latencyMilliseconds: Double
    /// A second measurement of the same model, later in the run: the noise floor.
    var again: Double
    var kernelLatencies: [Double]
    var features: ModelFeatures
    /// The p50 of the runs' thread CPU times, and the lowest of ten blocks' wall-clock medians.
    var threadCPU: Timing
    var quietestBlock: Timing

    func sample(_ latency: Double) -> LatencySample {
        LatencySample(features: features, latencyMilliseconds: latency, kernelLatencies: kernelLatencies)
    }
    func wholeModelSample(_ latency: Double) -> LatencySample {
        LatencySample(features: features, latencyMilliseconds: latency)
    }
}

/// The ways of measuring compared, by name.
let ways: [(name: String, figure: (Measured) -> Timing)] = [
    ("wall p50", { Timing(first: $0.latencyMilliseconds, again: $0.again) }),
    ("thread-CPU p50", \.threadCPU),
    ("quietest block", \.quietestBlock),
]

/// Seconds of the clock `id`.
func seconds(_ id: clockid_t) -> Double {
    var time = timespec()
    clock_gettime(id, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// `repeats` runs after `warmup`, each timed on the wall clock and on this thread's CPU clock (the engine runs
/// single-threaded on the caller's thread): the p50 of the CPU times and the lowest of ten blocks' wall medians.
func robustTimings(_ engine: OnnxEngine, warmup: Int, repeats: Int) throws -> (threadCPU: Double, quietestBlock: Double) {
    let input = [Float](repeating: 0.5, count: engine.inputs[0].count)
    for _ in 0..<warmup { _ = try engine.run(input) }
    var (wall, cpu) = ([Double](), [Double]())
    for _ in 0..<repeats {
        let (w0, c0) = (seconds(CLOCK_MONOTONIC), seconds(CLOCK_THREAD_CPUTIME_ID))
        _ = try engine.run(input)
        let (c1, w1) = (seconds(CLOCK_THREAD_CPUTIME_ID), seconds(CLOCK_MONOTONIC))
        wall.append((w1 - w0) * 1000)
        cpu.append((c1 - c0) * 1000)
    }
    let block = max(repeats / 10, 1)
    let blocks = stride(from: 0, to: wall.count, by: block).map { median(Array(wall[$0..<min($0 + block, wall.count)])) }
    return (median(cpu), blocks.min()!)
}

func argument(_ name: String, _ fallback: String) -> String {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return fallback }
    return arguments[index + 1]
}

let models = argument("--models", "bench/predictor/models")
let cache = argument("--cache", models + "/measurements-kernels.json")
let warmup = Int(argument("--warmup", "10"))!
let repeats = Int(argument("--repeats", "50"))!
let seeds = Int(argument("--seeds", "5"))!

// 1. Measure every model (or read the cache of an earlier run's measurements).
var measured: [Measured] = []
if let data = FileManager.default.contents(atPath: cache) {
    measured = try JSONDecoder().decode([Measured].self, from: data)
    print("read \(measured.count) measurements from \(cache)")
} else {
    let files = try FileManager.default.contentsOfDirectory(atPath: models).filter { $0.hasSuffix(".onnx") }.sorted()
    let options = MeasurementOptions(warmup: warmup, repeats: repeats)
    for (index, file) in files.enumerated() {
        let bytes = Array(FileManager.default.contents(atPath: models + "/" + file)!)
        let features = try ModelFeatures(onnx: bytes)
        let engine = try OnnxEngine(bytes: bytes)
        let report = try engine.measure(options)
        let robust = try robustTimings(engine, warmup: warmup, repeats: repeats)
        let kernels = try engine.profile(MeasurementOptions(warmup: 0, repeats: min(repeats, 50)))
        let times = Dictionary(uniqueKeysWithValues: kernels.map { ($0.node.output, $0.p50Ms) })
        guard let aligned = LatencySample(features: features, latencyMilliseconds: report.p50Ms, kernelTimes: times)
            .kernelLatencies
        else { fatalError("\(file): the features' kernels do not pair with the engine's profile") }
        measured.append(
            Measured(
                file: file, flops: features.totalFlops, latencyMilliseconds: report.p50Ms, again: 0,
                kernelLatencies: aligned, features: features, threadCPU: Timing(first: robust.threadCPU, again: 0),
                quietestBlock: Timing(first: robust.quietestBlock, again: 0)))
        if index % 25 == 0 { print("measured \(index + 1)/\(files.count): \(file) \(report.p50Ms) ms") }
    }
    // The second measurement of every model, after all the first ones: what the machine's noise alone moves.
    for index in measured.indices {
        let bytes = Array(FileManager.default.contents(atPath: models + "/" + measured[index].file)!)
        let engine = try OnnxEngine(bytes: bytes)
        measured[index].again = try engine.measure(options).p50Ms
        let robust = try robustTimings(engine, warmup: warmup, repeats: repeats)
        measured[index].threadCPU.again = robust.threadCPU
        measured[index].quietestBlock.again = robust.quietestBlock
    }
    try JSONEncoder().encode(measured).write(to: URL(fileURLWithPath: cache))
}

/// latency = a + b * FLOPs, least squares on relative error.
func flopsBaseline(_ train: [(flops: Double, latency: Double)]) -> (Double) -> Double {
    var (s00, s01, s11, r0, r1) = (0.0, 0.0, 0.0, 0.0, 0.0)
    for m in train {
        let (x0, x1) = (1 / m.latency, m.flops / 1e6 / m.latency)
        s00 += x0 * x0; s01 += x0 * x1; s11 += x1 * x1; r0 += x0; r1 += x1
    }
    let det = s00 * s11 - s01 * s01
    let a = (r0 * s11 - r1 * s01) / det
    let b = (r1 * s00 - r0 * s01) / det
    return { max(a + b * $0 / 1e6, 1e-6) }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

struct Generator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// 2. Accuracy after n measurements, on held-out architectures, medians over seeded splits; under each way of
// measuring, the noise floor first.
let pool = measured.count * 3 / 4
var sizes = [10, 50, 200, 1000].filter { $0 <= pool }
if !sizes.contains(pool) { sizes.append(pool) }
for (way, figure) in ways {
    let timings = measured.map(figure)
    let latencies = timings.map(\.first).sorted()
    let floor = PredictorEvaluation(predicted: timings.map(\.first), measured: timings.map(\.again))
    print(String(
        format: "\n%@: noise floor: a second measurement of the same model within ±10%% of the first for %.1f%% of the models (±5%%: %.1f%%)",
        way, floor.within10 * 100, floor.within5 * 100))
    print("\(measured.count) models, latency from \(String(format: "%.3f", latencies.first!)) to \(String(format: "%.3f", latencies.last!)) ms (median \(String(format: "%.3f", median(latencies))))")
    print("held out: \(measured.count - pool) models per split, \(seeds) splits; medians over the splits")
    print("train  model           within10  within5  RMSPE   Spearman  Kendall")
    for n in sizes {
        var ours: [PredictorEvaluation] = []
        var linear: [PredictorEvaluation] = []
        var baseline: [PredictorEvaluation] = []
        for seed in 0..<seeds {
            var generator = Generator(state: UInt64(seed) &* 7919 &+ 1)
            let shuffled = Array(zip(measured, timings.map(\.first))).shuffled(using: &generator)
            let test = Array(shuffled[pool...])
            let train = Array(shuffled[..<n])
            let truth = test.map(\.1)
            let predictor = try LatencyPredictor.fit(train.map { $0.0.sample($0.1) })
            ours.append(PredictorEvaluation(predicted: test.map { predictor.predict($0.0.features).milliseconds }, measured: truth))
            let whole = try LatencyPredictor.fit(train.map { $0.0.wholeModelSample($0.1) })
            linear.append(PredictorEvaluation(predicted: test.map { whole.predict($0.0.features).milliseconds }, measured: truth))
            let flops = flopsBaseline(train.map { ($0.0.flops, $0.1) })
            baseline.append(PredictorEvaluation(predicted: test.map { flops($0.0.flops) }, measured: truth))
        }
        for (name, results) in [("kernel-level", ours), ("linear whole", linear), ("FLOPs linear", baseline)] {
            print(String(
                format: "%5d  %-14@  %7.1f%%  %6.1f%%  %5.1f%%  %8.3f  %7.3f", n, name as NSString,
                median(results.map(\.within10)) * 100, median(results.map(\.within5)) * 100, median(results.map(\.rmspe)) * 100,
                median(results.compactMap(\.spearman)), median(results.compactMap(\.kendall))))
        }
    }
}

// 3. Fit time for thousands of measurements: the measured models repeated (with 2% noise) up to 3000.
var generator = Generator(state: 42)
let many = (0..<3000).map { index -> LatencySample in
    let m = measured[index % measured.count]
    let noise = { Double.random(in: 0.98...1.02, using: &generator) }
    return LatencySample(
        features: m.features, latencyMilliseconds: m.latencyMilliseconds * noise(),
        kernelLatencies: m.kernelLatencies.map { $0 * noise() })
}
var (times, cpuTimes) = ([Double](), [Double]())
for _ in 0..<5 {
    let (start, cpuStart) = (seconds(CLOCK_MONOTONIC), seconds(CLOCK_THREAD_CPUTIME_ID))
    _ = try LatencyPredictor.fit(many)
    cpuTimes.append(seconds(CLOCK_THREAD_CPUTIME_ID) - cpuStart)
    times.append(seconds(CLOCK_MONOTONIC) - start)
}
print(String(
    format: "\nfit on 3000 measurements with kernel times (both models, 5-fold bands included): median %.1f ms wall, %.1f ms thread CPU over 5 runs",
    median(times) * 1000, median(cpuTimes) * 1000))
