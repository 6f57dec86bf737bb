import Engine
import Foundation
import Predictor
import Search
import TestSupport
import Testing
import Trainer

/// `nas predictor` and `nas search --predictor screen` end to end on the tutorial space, over a measurement
/// store holding native-engine measurements of the space's untrained models.
@Suite struct PredictorCommandTests {
    /// A measurement store with every architecture of the tutorial space measured by the native engine here;
    /// returns its path and the measured latencies.
    static func measuredStore(_ folder: URL) throws -> (String, [Double]) {
        let path = folder.appendingPathComponent("measurements.sqlite").path
        let store = try MeasurementStore(path: path)
        let space = try SearchSpace.load("mnist_list_of_dictionary")
        let grid = SearchAlgorithm(kind: .grid, space: space, seed: 0)
        var proposed: [SearchChoice] = []
        var latencies: [Double] = []
        while let choice = try grid.propose(trial: proposed.count, proposed: proposed, finished: []) {
            proposed.append(choice)
            let bytes = try LatencyScreen.untrainedModel(try space.parameters(of: choice))
            let report = try measure(model: bytes, warmup: 5, repeats: 30)
            latencies.append(report.p50Ms)
            try store.add(
                MeasurementRecord(
                    deviceType: DeviceType.local, workerID: nil, attributes: [:], runtime: "native",
                    modelSHA256: "tutorial-\(proposed.count)", features: try ModelFeatures(onnx: bytes),
                    metrics: ["latency_ms": report.p50Ms, "memory_bytes": Double(report.peakMemoryBytes)],
                    job: "prefill", trialID: proposed.count))
        }
        return (path, latencies)
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func fitEvalPredictAndAScreenedSearch() async throws {
        let root = try TestSupport.temporaryDirectory("nas-predictor")
        let (store, latencies) = try Self.measuredStore(root)
        let type = DeviceType.local
        let common = ["--device-type", type, "--measurement-store", store, "--json"]

        let fit = try await TestSupport.nas(["predictor", "fit"] + common)
        try #require(fit.status == 0, "\(fit.stdout)\(fit.stderr)")
        let fitted = try json(fit.stdout)
        #expect(fitted["measurements"] as? Int == 36)
        #expect((fitted["kernel_kinds"] as? [String])?.contains("conv") == true)

        let eval = try await TestSupport.nas(["predictor", "eval", "--test-fraction", "0.25"] + common)
        try #require(eval.status == 0, "\(eval.stdout)\(eval.stderr)")
        let evaluated = try json(eval.stdout)
        #expect(evaluated["test_measurements"] as? Int == 9 && evaluated["train_measurements"] as? Int == 27)
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

        // A search whose hard target only the quicker third of the space meets: the slowest are screened.
        let target = latencies.sorted()[12]
        let search = try await TestSupport.nas(
            ["search", "--root-output-dir", root.path, "--job-name", "screened", "--algorithm", "random", "--seed", "5",
             "--max-trials", "3", "--max-parallel-trials", "2", "--constraint", "latency_ms<=\(target)",
             "--predictor", "screen", "--measurement-store", store]
                + SearchCommandTests.quick)
        try #require(search.status == 0, "\(search.stdout)\(search.stderr)")
        let job = try JobStore.open(directory: root.appendingPathComponent("screened").path)
        let trials = try job.trials()
        let screened = trials.filter { $0.state == .screened }
        let trained = trials.filter { $0.state == .succeeded }
        #expect(trained.count == 3)
        #expect(!screened.isEmpty, "\(search.stderr)")
        #expect(screened.allSatisfy { ($0.metrics["predicted_latency_ms"] ?? 0) > target })
        #expect(trained.allSatisfy { $0.metrics["predicted_latency_ms"] != nil && $0.metrics["latency_ms"] != nil })
        #expect(search.stderr.contains("screened, not trained"))
        // Every trained trial's measurement is kept, in the job and in the store.
        #expect(try job.measurements().count == 3)
        #expect(try MeasurementStore(path: store).records(deviceType: type).count == 39)
        #expect(try job.measurements()[0].runtime != "")

        let list = try await TestSupport.nas(["trials", "list", job.directory])
        #expect(list.status == 0 && list.stdout.contains("screened") && list.stdout.contains("predicted_latency_ms"))
        let report = try String(contentsOfFile: job.directory + "/report.html", encoding: .utf8)
        #expect(report.contains("Latency predictor") && report.contains("Screening saved \(screened.count) training"))
        #expect(report.contains("Predicted against measured latency_ms"))
    }
}
