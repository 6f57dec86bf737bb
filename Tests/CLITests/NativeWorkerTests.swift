import Foundation
import TestSupport
import Testing
import Trainer

/// `nas coordinator`, a `nas worker` with the default native runner, and `nas evaluate` of a real model.
@Suite struct NativeWorkerTests {
    /// Starts `nas` with arguments and returns once a line of its standard output contains `marker`.
    func start(_ arguments: [String], until marker: String, environment: [String: String]) async throws
        -> (TestProcess, String)
    {
        let process = try TestSupport.startNas(arguments, environment: environment, separateErrors: true)
        let line = try await process.waitForLine(containing: marker, seconds: 30)
        return (process, line)
    }

    @Test func aNativeWorkerMeasuresARealModel() async throws {
        let environment = ["NAS_FLEET_TOKEN": "native-test-token"]
        let (coordinator, banner) = try await start(
            ["coordinator", "--listen", "127.0.0.1:0"], until: "listening on", environment: environment)
        defer { coordinator.signal(SIGTERM) }
        let url = try #require(banner.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        let (worker, _) = try await start(
            ["worker", "--coordinator", url, "--device-type", "cpu-test", "--repeats", "20"], until: "listening on port",
            environment: environment)
        defer { worker.signal(SIGTERM) }

        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6)])
        let model = try OnnxExport.serialized(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 1), batch: 1)
        let path = try TestSupport.temporaryDirectory().appendingPathComponent("model.onnx")
        try Data(model).write(to: path)
        let result = try await TestSupport.nas(
            ["evaluate", path.path, "--coordinator", url, "--device-type", "cpu-test", "--json"], environment: environment)
        try #require(result.status == 0, "\(result.stderr)")
        let answer = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        let metrics = try #require(answer["metrics"] as? [String: Double])
        #expect((metrics["latency_ms"] ?? 0) > 0)
        #expect((metrics["memory_bytes"] ?? 0) > 10_000)
        #expect(metrics["latency_runs"] == 20)

        let garbage = TestSupport.packageRoot.appendingPathComponent("README.md").path
        let refused = try await TestSupport.nas(
            ["evaluate", garbage, "--coordinator", url, "--device-type", "cpu-test"], environment: environment)
        #expect(refused.status != 0 && refused.stderr.contains("bad model"), "\(refused.stderr)")
    }
}
