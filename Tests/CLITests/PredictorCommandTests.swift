import Engine
import Foundation
import Predictor
import Search
import TestSupport
import Testing
import Trainer

/// `nas predictor` and `nas search --predictor screen` end to end, over a measurement store holding native-engine
/// measurements (with kernel times) of a space whose architectures fall in two groups far apart: 2 or 32 filters in
/// the first layer make their FLOPs differ by over 10x, so what the assertions depend on holds whatever the load;
/// every model runs in well under a millisecond, short enough that a loaded machine rarely preempts a run.
@Suite struct PredictorCommandTests {
    /// Two conv layers, kernel 3 or 5, 2 or 32 filters then 2: 8 architectures.
    static let spaceText = """
        [{"kernel_size": {"one_of": [3, 5]}, "filters": {"one_of": [2, 32]}},
         {"kernel_size": {"one_of": [3, 5]}, "filters": 2}]
        """

    /// A measurement store with every architecture of the space measured by the native engine here, with the
    /// engine's per-kernel times: two records per architecture, each the quicker of two measurements taken in
    /// separate rounds over the space, so that a burst of load on a shared machine does not make one architecture
    /// look three times slower than it is. Returns the store's path, the space's file and each architecture's
    /// latency.
    static func measuredStore(_ folder: URL) throws -> (store: String, space: String, latencies: [Double]) {
        let path = folder.appendingPathComponent("measurements.sqlite").path
        let spacePath = folder.appendingPathComponent("space.json").path
        try Data(spaceText.utf8).write(to: URL(fileURLWithPath: spacePath))
        let store = try MeasurementStore(path: path)
        let space = try SearchSpace.load(spacePath)
        let grid = SearchAlgorithm(kind: .grid, space: space, seed: 0)
        var models: [[UInt8]] = []
        var proposed: [SearchChoice] = []
        while let choice = try grid.propose(trial: proposed.count, proposed: proposed, finished: []) {
            proposed.append(choice)
            models.append(try LatencyScreen.untrainedModel(try space.parameters(of: choice)))
        }
        let engines = try models.map { try OnnxEngine(bytes: $0) }
        // rounds[r][m]: round r's latency and kernel times of model m.
        var rounds: [[(Double, [KernelTiming])]] = []
        for _ in 0..<4 {
            rounds.append(
                try engines.map { engine in
                    let report = try engine.measure(MeasurementOptions(warmup: 3, repeats: 15))
                    return (report.p50Ms, try engine.profile(MeasurementOptions(warmup: 0, repeats: 5)))
                })
        }
        var latencies: [Double] = []
        for (index, bytes) in models.enumerated() {
            for record in 0..<2 {
                let (latency, kernels) = [rounds[record][index], rounds[record + 2][index]].min { $0.0 < $1.0 }!
                if record == 0 { latencies.append(latency) }
                try store.add(
                    MeasurementRecord(
                        deviceType: DeviceType.local, workerID: nil, attributes: [:], runtime: "native",
                        modelSHA256: "space-\(index)-\(record)", features: try ModelFeatures(onnx: bytes),
                        metrics: ["latency_ms": latency, "memory_bytes": Double(engines[index].peakMemoryBytes)],
                        job: "prefill", trialID: index,
                        kernelTimes: Dictionary(uniqueKeysWithValues: kernels.map { ($0.node.output, $0.p50Ms) })))
            }
        }
        return (path, spacePath, latencies)
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func fitEvalPredictAndAScreenedSearch() async throws {
        let root = try TestSupport.temporaryDirectory("nas-predictor")
        let (store, spacePath, latencies) = try Self.measuredStore(root)
        let type = DeviceType.local
        let common = ["--device-type", type, "--measurement-store", store, "--json"]

        let fit = try await TestSupport.nas(["predictor", "fit"] + common)
        try #require(fit.status == 0, "\(fit.stdout)\(fit.stderr)")
        let fitted = try json(fit.stdout)
        #expect(fitted["measurements"] as? Int == 16)
        #expect((fitted["kernel_kinds"] as? [String])?.contains("conv") == true)
        #expect(fitted["kernel_timed_measurements"] as? Int == 16)

        let eval = try await TestSupport.nas(["predictor", "eval", "--test-fraction", "0.25"] + common)
        try #require(eval.status == 0, "\(eval.stdout)\(eval.stderr)")
        let evaluated = try json(eval.stdout)
        #expect(evaluated["test_measurements"] as? Int == 4 && evaluated["train_measurements"] as? Int == 12)
        for key in ["within_10_percent", "within_5_percent", "rmspe", "spearman", "kendall"] {
            #expect(evaluated[key] is Double, "\(key) in \(eval.stdout)")
        }

        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 4)])
        let model = root.appendingPathComponent("model.onnx")
        try Data(
            try OnnxExport.serialized(
                architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 2), batch: 1)
        ).write(to: model)
        let predict = try await TestSupport.nas(["predictor", "predict", model.path] + common)
        try #require(predict.status == 0, "\(predict.stdout)\(predict.stderr)")
        let predicted = try json(predict.stdout)
        let value = try #require(predicted["latency_ms"] as? Double)
        #expect(value > 0 && (predicted["lower_ms"] as? Double ?? .infinity) <= value)
        #expect(predicted["relative_band"] is Double)

        // No measurements of a device type: a clear error, exit 2.
        let none = try await TestSupport.nas(["predictor", "fit", "--device-type", "phone", "--measurement-store", store])
        #expect(none.status == 2 && none.stderr.contains("0 measurements of device type 'phone'"))
        let noModel = try await TestSupport.nas(["predictor", "predict", "/nonexistent.onnx"] + common)
        #expect(noModel.status == 2)

        // A hard target in the widest gap between the architectures' latencies (the space makes it wide): the
        // slow side cannot meet it whatever the noise, and is screened.
        let sorted = latencies.sorted()
        let ratios: [Double] = (1..<sorted.count).map { sorted[$0] / sorted[$0 - 1] }
        let gap = 1 + ratios.indices.max { ratios[$0] < ratios[$1] }!
        try #require(ratios[gap - 1] > 3, "latencies \(sorted)")
        let target = (sorted[gap] * sorted[gap - 1]).squareRoot()
        let search = try await TestSupport.nas(
            ["search", "--root-output-dir", root.path, "--job-name", "screened", "--search-space", spacePath,
             "--algorithm", "random", "--seed", "5", "--max-trials", "3", "--max-parallel-trials", "1",
             "--constraint", "latency_ms<=\(target)", "--predictor", "screen", "--measurement-store", store,
             // Trust is not what this test is about (LatencyScreenTests): on a busy machine one of three trained
             // trials measured outside its band would stop screening, and the slow side is still too slow.
             "--predictor-min-accuracy", "0"]
                + SearchCommandTests.quick)
        try #require(search.status == 0, "\(search.stdout)\(search.stderr)")
        let job = try JobStore.open(directory: root.appendingPathComponent("screened").path)
        let trials = try job.trials()
        let screened = trials.filter { $0.state == .screened }
        let trained = trials.filter { $0.state == .succeeded }
        #expect(trained.count == 3)
        #expect(!screened.isEmpty, "target \(target) latencies \(sorted) trained \(trained.map(\.metrics))")
        #expect(screened.allSatisfy { ($0.metrics["predicted_latency_ms"] ?? 0) > target })
        #expect(trained.allSatisfy { $0.metrics["predicted_latency_ms"] != nil && $0.metrics["latency_ms"] != nil })
        #expect(search.stderr.contains("screened, not trained"))
        // Every trained trial's measurement is kept, in the job and in the store, with its kernel times.
        #expect(try job.measurements().count == 3)
        #expect(try MeasurementStore(path: store).records(deviceType: type).count == 19)
        // The embedded worker's native runner sent each kernel's time with its figures.
        #expect(try job.measurements().allSatisfy { $0.runtime != "" && $0.sample?.kernelLatencies != nil })
        #expect(job.config.predictor == PredictorSettings(mode: .screen, minimumAccuracy: 0))

        // Resumed without the predictor's flags, the job keeps them: its new trials are predicted and screened.
        let resumed = try await TestSupport.nas(
            ["search", "--resume", job.directory, "--max-trials", "4", "--measurement-store", store])
        try #require(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
        let after = try JobStore.open(directory: job.directory)
        #expect(after.config.predictor == PredictorSettings(mode: .screen, minimumAccuracy: 0))
        let resumedTrained = try after.trials().filter { $0.state == .succeeded }
        #expect(resumedTrained.count == 4)  // the space's four quick architectures: the slow ones are screened
        #expect(resumedTrained.allSatisfy { $0.metrics["predicted_latency_ms"] != nil })
        // A flag given with --resume changes the stored setting.
        let changed = try await TestSupport.nas(
            ["search", "--resume", job.directory, "--max-trials", "4", "--predictor", "predict",
             "--measurement-store", store])
        try #require(changed.status == 0, "\(changed.stdout)\(changed.stderr)")
        #expect(try JobStore.open(directory: job.directory).config.predictor == PredictorSettings(mode: .predict, minimumAccuracy: 0))

        let list = try await TestSupport.nas(["trials", "list", job.directory])
        #expect(list.status == 0 && list.stdout.contains("screened") && list.stdout.contains("predicted_latency_ms"))
        let report = try String(contentsOfFile: job.directory + "/report.html", encoding: .utf8)
        #expect(report.contains("Latency predictor") && report.contains("Screening saved \(screened.count) training"))
        #expect(report.contains("Predicted against measured latency_ms"))
        #expect(report.contains("with a finite band measured inside it"))
    }
}
