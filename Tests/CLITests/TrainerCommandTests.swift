import Foundation
import TestSupport
import Testing

/// `nas trainer` end to end on small slices of Fashion-MNIST.
@Suite struct TrainerCommandTests {
    static let tutorialTrial =
        #"{"decisions":[0,0,0,0],"value":[{"kernel_size":3,"filters":3},{"kernel_size":3,"filters":6}]}"#
    static let small = ["--num-epochs", "1", "--train-limit", "1500", "--test-limit", "300", "--quiet"]

    func metrics(_ directory: String) throws -> [String: Double] {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent("metrics.json"))
        return try JSONDecoder().decode([String: Double].self, from: data)
    }

    func status(_ directory: String) throws -> [String: String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent("job_status.json"))
        return try JSONDecoder().decode([String: String].self, from: data)
    }

    @Test func trainsExportsCountsAndScoresATrial() async throws {
        let trial = try TestSupport.temporaryDirectory("nas-trial").appendingPathComponent("1").path
        let result = try await TestSupport.nas(
            ["trainer", "--nas-params-str", Self.tutorialTrial, "--job-dir", trial, "--target-flops-million", "0.3"]
                + Self.small)
        try #require(result.status == 0, "\(result.stderr)")
        let values = try metrics(trial)
        #expect(values["flops"] == 397_548)
        #expect(values["flops_million"] == 0.397548)
        let accuracy = try #require(values["top_1_accuracy"])
        #expect(accuracy > 0.5 && accuracy <= 1)
        // The seed's hard limit: (0.3 / 0.397548) ^ 1.
        #expect(abs(values["nas_reward"]! - accuracy * 0.3 / 0.397548) < 1e-9)
        #expect(try status(trial)["status"] == "succeeded")
        let model = URL(fileURLWithPath: trial).appendingPathComponent("saved_model/model.onnx").path
        let flops = try await TestSupport.nas(["flops", model])
        #expect(flops.stdout.contains("397548"))
        let params = try String(contentsOfFile: trial + "/nas_params_str.json", encoding: .utf8)
        #expect(params.contains("\"decisions\":[0,0,0,0]"))
    }

    @Test func measuresLatencyInProcessForALatencyTarget() async throws {
        let trial = try TestSupport.temporaryDirectory("nas-trial").appendingPathComponent("1").path
        let result = try await TestSupport.nas(
            ["trainer", "--nas-params-str", Self.tutorialTrial, "--job-dir", trial, "--target-latency-millisec", "1000",
             "--constraint", "memory_bytes<=1k:soft", "--latency-repeats", "20"] + Self.small)
        try #require(result.status == 0, "\(result.stderr)")
        let values = try metrics(trial)
        let latency = try #require(values["latency_ms"])
        let memory = try #require(values["memory_bytes"])
        #expect(latency > 0 && latency < 1000 && memory > 1000)
        // Latency meets its target (factor 1); memory misses its soft one.
        let expected = values["top_1_accuracy"]! * pow(memory / 1000, -0.07)
        #expect(abs(values["nas_reward"]! - expected) < 1e-9)
    }

    @Test func sameSeedSameModel() async throws {
        let root = try TestSupport.temporaryDirectory("nas-trial")
        for name in ["a", "b"] {
            let result = try await TestSupport.nas(
                ["trainer", "--nas-params-str", Self.tutorialTrial, "--job-dir", root.appendingPathComponent(name).path,
                 "--seed", "7"] + Self.small)
            try #require(result.status == 0, "\(result.stderr)")
        }
        let a = try Data(contentsOf: root.appendingPathComponent("a/saved_model/model.onnx"))
        let b = try Data(contentsOf: root.appendingPathComponent("b/saved_model/model.onnx"))
        #expect(a == b)
    }

    @Test func aNaNLossEndsTheTrialWithTheSeedsStatus() async throws {
        let trial = try TestSupport.temporaryDirectory("nas-trial").appendingPathComponent("1").path
        let result = try await TestSupport.nas(
            ["trainer", "--nas-params-str", Self.tutorialTrial, "--job-dir", trial, "--learning-rate", "1e12"]
                + Self.small)
        #expect(result.status == 3)
        #expect(try status(trial)["status"] == "failed_with_nan_error")
        #expect(result.stderr.contains("failed_with_nan_error"))
    }

    @Test func retrainsASearchTrialByPosition() async throws {
        let search = try TestSupport.temporaryDirectory("nas-search")
        for (id, filters) in [(1, 3), (9, 5)] {
            let directory = search.appendingPathComponent(String(id))
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let params = #"{"decisions":[0,\#(filters - 3),0,0],"value":[{"kernel_size":3,"filters":\#(filters)},{"kernel_size":3,"filters":6}]}"#
            try params.write(to: directory.appendingPathComponent("nas_params_str.json"), atomically: true, encoding: .utf8)
        }
        let trial = try TestSupport.temporaryDirectory("nas-train").appendingPathComponent("2").path
        let result = try await TestSupport.nas(
            ["trainer", "--retrain-search-job-dir", search.path, "--retrain-search-job-trials", "1,9", "--job-dir", trial]
                + Self.small)
        try #require(result.status == 0, "\(result.stderr)")
        #expect(try metrics(trial)["nas_trial_id"] == 9)
        #expect(try String(contentsOfFile: trial + "/nas_params_str.json", encoding: .utf8).contains("\"filters\":5"))
        let outOfRange = try await TestSupport.nas(
            ["trainer", "--retrain-search-job-dir", search.path, "--retrain-search-job-trials", "1,9", "--job-dir",
             trial, "--trial-id", "3"] + Self.small)
        #expect(outOfRange.status == 1 && outOfRange.stderr.contains("names 2 trial(s)"))
    }

    @Test func refusesBadInputBeforeTraining() async throws {
        let trial = try TestSupport.temporaryDirectory("nas-trial").appendingPathComponent("1").path
        let unknownMetric = try await TestSupport.nas(
            ["trainer", "--nas-params-str", Self.tutorialTrial, "--job-dir", trial, "--constraint", "power_w<=5"]
                + Self.small)
        #expect(unknownMetric.status == 1 && unknownMetric.stderr.contains("does not produce"))
        let badParams = try await TestSupport.nas(["trainer", "--nas-params-str", "{\"value\": 3}", "--job-dir", trial])
        #expect(badParams.status == 2 && badParams.stderr.contains("decisions"))
        let badData = try await TestSupport.nas(
            ["trainer", "--nas-params-str", Self.tutorialTrial, "--job-dir", trial, "--data-dir", "/nonexistent"])
        #expect(badData.status == 2 && badData.stderr.contains("/nonexistent"))
        let neither = try await TestSupport.nas(["trainer", "--job-dir", trial])
        #expect(neither.status != 0 && neither.stderr.contains("--nas-params-str"))
    }
}
