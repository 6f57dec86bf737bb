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

func argument(_ name: String, _ fallback: String) -> String {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return fallback }
    return arguments[index + 1]
}

/// One way of measuring a model: the engine's harness with these settings for the whole model and its kernels.
struct Way {
    var name: String
    var preempted: PreemptedSamples
    var pinned: Bool
    /// The figure is the model's time over a reference workload's timed beside each sample.
    var reference = false
    /// Measured on the first this many models only (the baseline, to keep the run short).
    var models = Int.max
}

/// The ways compared: what a search recorded before (a descheduled sample counts its thread CPU time, the thread
/// free to move between cores), descheduled samples dropped, and dropped with the thread pinned to one CPU.
let baselineModels = Int(argument("--baseline-models", "400"))!
let ways = [
    Way(name: "thread-time", preempted: .threadTime, pinned: false, models: baselineModels),
    Way(name: "reference ratio", preempted: .discard, pinned: true, reference: true),
]
/// The noise floor is measured on every this many models.
let floorEvery = Int(argument("--floor-every", "3"))!

/// A model measured one way: the whole model's p50, the same measured again after every model's first
/// measurement (the noise floor), and its kernels' times (aligned with the features' kernels).
struct Timing: Codable {
    var first: Double
    var again: Double?
    var kernels: [Double]
    /// The reference workload's median time in that measurement, for a way with the reference.
    var reference: Double?
}

struct Measured: Codable {
    var file: String
    var flops: Double
    var features: ModelFeatures
    /// One per way, in `ways`' order; nil for a way not measured on this model.
    var timings: [Timing?]
    /// The 1-minute load average when the model was first measured, and again.
    var load: Double
    var loadAgain: Double?

    func sample(_ way: Int) -> LatencySample {
        LatencySample(features: features, latencyMilliseconds: timings[way]!.first, kernelLatencies: timings[way]!.kernels)
    }
    func wholeModelSample(_ way: Int) -> LatencySample {
        LatencySample(features: features, latencyMilliseconds: timings[way]!.first)
    }
}

/// Seconds of the clock `id`.
func seconds(_ id: clockid_t) -> Double {
    var time = timespec()
    clock_gettime(id, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

func loadAverage() -> Double {
    var loads = [Double](repeating: 0, count: 3)
    return getloadavg(&loads, 3) > 0 ? loads[0] : .nan
}

let models = argument("--models", "bench/predictor/models")
let cache = argument("--cache", models + "/measurements-ways.json")
let warmup = Int(argument("--warmup", "10"))!
let repeats = Int(argument("--repeats", "50"))!
let seeds = Int(argument("--seeds", "5"))!
let limit = Int(argument("--limit", "100000"))!

// 1. Measure every model every way (or read the cache of an earlier run's measurements; an unfinished one,
// `CACHE.partial`, is carried on from where it stopped).
func options(_ way: Way) -> MeasurementOptions {
    MeasurementOptions(
        warmup: warmup, repeats: repeats, preempted: way.preempted, pinned: way.pinned, reference: way.reference)
}
/// The figure a way records.
func figure(_ report: LatencyReport) -> Double { report.referenceRatio ?? report.p50Ms }
func kernelOptions(_ way: Way) -> MeasurementOptions {
    MeasurementOptions(
        warmup: 0, repeats: min(repeats, 50), preempted: way.preempted, pinned: way.pinned, reference: way.reference)
}
var measured: [Measured] = []
if let data = FileManager.default.contents(atPath: CommandLine.arguments.contains("--partial") ? cache + ".partial" : cache) {
    measured = try JSONDecoder().decode([Measured].self, from: data)
    print("read \(measured.count) measurements from \(cache)")
} else {
    let partial = cache + ".partial"
    if let data = FileManager.default.contents(atPath: partial) {
        measured = try JSONDecoder().decode([Measured].self, from: data)
        print("carrying on from \(measured.count) models in \(partial)")
    }
    let files = Array(
        try FileManager.default.contentsOfDirectory(atPath: models).filter { $0.hasSuffix(".onnx") }.sorted().prefix(limit))
    func save() throws { try JSONEncoder().encode(measured).write(to: URL(fileURLWithPath: partial)) }
    /// The second measurement of model `index` (every `floorEvery`-th), for the noise floor.
    func measureAgain(_ index: Int) throws {
        guard index % floorEvery == 0, measured[index].loadAgain == nil else { return }
        let bytes = Array(FileManager.default.contents(atPath: models + "/" + measured[index].file)!)
        let engine = try OnnxEngine(bytes: bytes)
        measured[index].loadAgain = loadAverage()
        for (number, way) in ways.enumerated() where measured[index].timings[number] != nil {
            measured[index].timings[number]!.again = figure(try engine.measure(options(way)))
        }
    }
    for (index, file) in files.enumerated() where index >= measured.count {
        let bytes = Array(FileManager.default.contents(atPath: models + "/" + file)!)
        let features = try ModelFeatures(onnx: bytes)
        let engine = try OnnxEngine(bytes: bytes)
        var timings: [Timing?] = []
        let load = loadAverage()
        for way in ways {
            guard index < way.models else {
                timings.append(nil)
                continue
            }
            let report = try engine.measure(options(way))
            let latency = figure(report)
            let kernels = try engine.profile(kernelOptions(way))
            let times = Dictionary(uniqueKeysWithValues: kernels.map { ($0.node.output, $0.p50Ms) })
            guard let aligned = LatencySample(features: features, latencyMilliseconds: latency, kernelTimes: times)
                .kernelLatencies
            else { fatalError("\(file): the features' kernels do not pair with the engine's profile") }
            timings.append(Timing(first: latency, again: nil, kernels: aligned, reference: report.referenceMs))
        }
        measured.append(Measured(file: file, flops: features.totalFlops, features: features, timings: timings, load: load))
        // Measured again 60 models later (a minute or more), so that an interrupted run has its noise floor too.
        if index >= 60 { try measureAgain(index - 60) }
        if index % 25 == 0 {
            print("measured \(index + 1)/\(files.count): \(file) \(timings.map { $0?.first ?? .nan }), load \(load)")
            fflush(nil)
            try save()
        }
    }
    // The second measurements not made yet: the last models', and those of a run begun before they were interleaved.
    for index in measured.indices { try measureAgain(index) }
    try JSONEncoder().encode(measured).write(to: URL(fileURLWithPath: cache))
    try? FileManager.default.removeItem(atPath: partial)
}
let allMeasured = measured
let loads = measured.map(\.load) + measured.compactMap(\.loadAgain)
print(String(format: "load average (1 min) while measuring: %.1f to %.1f, median %.1f", loads.min()!, loads.max()!, median(loads)))

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
for (number, way) in ways.enumerated() {
    let measured = allMeasured.filter { $0.timings[number] != nil }
    let pool = measured.count * 3 / 4
    var sizes = [10, 50, 200, 1000].filter { $0 <= pool }
    if !sizes.contains(pool) { sizes.append(pool) }
    let latencies = measured.map { $0.timings[number]!.first }.sorted()
    let twice = measured.compactMap { $0.timings[number] }.filter { $0.again != nil }
    let floor = PredictorEvaluation(predicted: twice.map(\.first), measured: twice.map { $0.again! })
    let floorLoads = measured.compactMap(\.loadAgain)
    print(String(
        format: "\n%@: noise floor: a second measurement of the same model within ±10%% of the first for %.1f%% of the models (±5%%: %.1f%%)",
        way.name, floor.within10 * 100, floor.within5 * 100))
    print(String(
        format: "  (%d models measured twice, load average %.1f-%.1f then %.1f-%.1f)", twice.count,
        measured.filter { $0.loadAgain != nil }.map(\.load).min() ?? .nan, measured.filter { $0.loadAgain != nil }.map(\.load).max() ?? .nan,
        floorLoads.min() ?? .nan, floorLoads.max() ?? .nan))
    print("\(measured.count) models, latency from \(String(format: "%.3f", latencies.first!)) to \(String(format: "%.3f", latencies.last!)) ms (median \(String(format: "%.3f", median(latencies))))")
    print("held out: \(measured.count - pool) models per split, \(seeds) splits; medians over the splits")
    print("train  model           within10  within5  RMSPE   Spearman  Kendall")
    for n in sizes {
        var ours: [PredictorEvaluation] = []
        var rescaled: [PredictorEvaluation] = []
        var linear: [PredictorEvaluation] = []
        var baseline: [PredictorEvaluation] = []
        for seed in 0..<seeds {
            var generator = Generator(state: UInt64(seed) &* 7919 &+ 1)
            let shuffled = measured.shuffled(using: &generator)
            let test = Array(shuffled[pool...])
            let train = Array(shuffled[..<n])
            let truth = test.map { $0.timings[number]!.first }
            let predictor = try LatencyPredictor.fit(train.map { $0.sample(number) })
            ours.append(PredictorEvaluation(predicted: test.map { predictor.predict($0.features).milliseconds }, measured: truth))
            let scaled = try LatencyPredictor.fit(
                train.map { $0.sample(number) }, configuration: LatencyPredictor.Configuration(rescaleKernels: true))
            rescaled.append(PredictorEvaluation(predicted: test.map { scaled.predict($0.features).milliseconds }, measured: truth))
            let whole = try LatencyPredictor.fit(train.map { $0.wholeModelSample(number) })
            linear.append(PredictorEvaluation(predicted: test.map { whole.predict($0.features).milliseconds }, measured: truth))
            let flops = flopsBaseline(train.map { ($0.flops, $0.timings[number]!.first) })
            baseline.append(PredictorEvaluation(predicted: test.map { flops($0.flops) }, measured: truth))
        }
        for (name, results) in [
            ("kernel-level", ours), ("kernel rescaled", rescaled), ("linear whole", linear), ("FLOPs linear", baseline),
        ] {
            print(String(
                format: "%5d  %-15@  %7.1f%%  %6.1f%%  %5.1f%%  %8.3f  %7.3f", n, name as NSString,
                median(results.map(\.within10)) * 100, median(results.map(\.within5)) * 100, median(results.map(\.rmspe)) * 100,
                median(results.compactMap(\.spearman)), median(results.compactMap(\.kendall))))
        }
    }
}

// 3. Fit time for thousands of measurements: the measured models repeated (with 2% noise) up to 3000.
var generator = Generator(state: 42)
let baseline = allMeasured.filter { $0.timings[0] != nil }
let many = (0..<3000).map { index -> LatencySample in
    let m = baseline[index % baseline.count]
    let noise = { Double.random(in: 0.98...1.02, using: &generator) }
    return LatencySample(
        features: m.features, latencyMilliseconds: m.timings[0]!.first * noise(),
        kernelLatencies: m.timings[0]!.kernels.map { $0 * noise() })
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
