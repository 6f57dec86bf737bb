import Foundation
import Search
import TestSupport
import Testing
import Trainer

/// The fleet over TLS as users run it: `nas coordinator` requiring client certificates, a `nas worker` whose push
/// endpoint serves TLS too, and `nas evaluate` of a real model, with certificates the `openssl` command made.
@Suite struct TLSFleetTests {
    static let environment = ["NAS_FLEET_TOKEN": "tls-fleet-token"]

    func start(_ arguments: [String], until marker: String) async throws -> (TestProcess, String) {
        let process = try TestSupport.startNas(arguments, environment: Self.environment, separateErrors: true)
        let line = try await process.waitForLine(containing: marker, seconds: 30)
        return (process, line)
    }

    @Test func aCoordinatorAndAWorkerOverTLSMeasureARealModel() async throws {
        let certificates = try await TestCertificates.make()
        let server = ["--tls-cert", certificates.serverCertificate, "--tls-key", certificates.serverKey,
                      "--tls-client-ca", certificates.ca]
        let client = ["--tls-ca", certificates.ca, "--tls-client-cert", certificates.clientCertificate,
                      "--tls-client-key", certificates.clientKey]
        let (coordinator, banner) = try await start(
            ["coordinator", "--listen", "127.0.0.1:0"] + server + client, until: "listening on")
        defer { coordinator.signal(SIGTERM) }
        let url = try #require(banner.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        #expect(url.hasPrefix("https://127.0.0.1:"))
        let (worker, _) = try await start(
            ["worker", "--coordinator", url, "--device-type", "cpu-tls", "--repeats", "5"] + server + client,
            until: "listening on port")
        defer { worker.signal(SIGTERM) }

        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 3)])
        let model = try OnnxExport.serialized(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 2), batch: 1)
        let path = try TestSupport.temporaryDirectory().appendingPathComponent("model.onnx")
        try Data(model).write(to: path)
        let evaluate = ["evaluate", path.path, "--coordinator", url, "--device-type", "cpu-tls", "--deadline", "60"]
        // The worker registers over TLS with an https:// address, and the push to it goes over TLS.
        try await TestSupport.eventually("the worker registered over TLS", seconds: 30) {
            let listing = try await TestSupport.nas(["workers", "--coordinator", url, "--json"] + client,
                                                    environment: Self.environment)
            return listing.status == 0 && listing.stdout.contains("https://127.0.0.1:")
        }
        let result = try await TestSupport.nas(evaluate + ["--json"] + client, environment: Self.environment)
        try #require(result.status == 0, "\(result.stderr)")
        let answer = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        let metrics = try #require(answer["metrics"] as? [String: Double])
        #expect((metrics["latency_ms"] ?? 0) > 0)
        #expect(metrics["latency_runs"] == 5)

        // A search through the same coordinator: its trial runners get the client TLS files and push over TLS (with
        // `--transport push` there is no file fallback: without them the coordinator refuses the trial's push).
        let root = try TestSupport.temporaryDirectory("tls-search").path
        let search = try await TestSupport.nas(
            ["search", "--root-output-dir", root, "--job-name", "tls", "--max-trials", "1", "--coordinator", url,
             "--transport", "push", "--target-device-type", "cpu-tls", "--constraint", "latency_ms<=1000:soft",
             "--num-epochs", "1", "--train-limit", "200", "--test-limit", "100", "--latency-repeats", "5",
             "--threads", "1", "--quiet"] + client,
            environment: Self.environment)
        try #require(search.status == 0, "\(search.stderr)")
        let trials = try JobStore.open(directory: root + "/tls").trials()
        #expect(trials.count == 1 && trials[0].state == .succeeded, "\(trials.map { ($0.state, $0.error ?? "") })")
        #expect((trials.first?.metrics["latency_ms"] ?? 0) > 0)
        // A user's trainer asking the coordinator itself (the Python helper) gets the same files as NAS_TLS_*.
        let example = TrainerCommandSearchTests.example
        let userTrainer = try await TestSupport.nas(
            ["search", "--root-output-dir", root, "--job-name", "tls-user", "--max-trials", "1", "--coordinator", url,
             "--transport", "push", "--target-device-type", "cpu-tls", "--constraint", "latency_ms<=1000:soft",
             "--trainer-command", "\(try TestSupport.python) \(example.appendingPathComponent("train.py").path)",
             "--search-space", example.appendingPathComponent("space.json").path, "--trainer-flags", "num_epochs=1",
             "train_limit=300", "test_limit=100", "ask_latency=true", "--latency-repeats", "5", "--quiet"] + client,
            environment: Self.environment.merging(TrainerCommandSearchTests.environment) { $1 })
        try #require(userTrainer.status == 0, "\(userTrainer.stderr)")
        let userTrial = try #require(try JobStore.open(directory: root + "/tls-user").trials().first)
        #expect(userTrial.state == .succeeded, "\(userTrial.error ?? "")")
        #expect((userTrial.metrics["trainer_latency_ms"] ?? 0) > 0, "\(userTrial.metrics)")
        let untrusted = try await TestSupport.nas(
            ["search", "--root-output-dir", root, "--job-name", "untrusted", "--max-trials", "1", "--coordinator", url,
             "--target-device-type", "cpu-tls", "--tls-ca", certificates.otherCA], environment: Self.environment)
        #expect(untrusted.status != 0 && untrusted.stderr.contains("certificate verify failed"), "\(untrusted.stderr)")

        let wrongCA = try await TestSupport.nas(
            evaluate + ["--tls-ca", certificates.otherCA, "--tls-client-cert", certificates.clientCertificate,
                        "--tls-client-key", certificates.clientKey], environment: Self.environment)
        #expect(wrongCA.status != 0)
        #expect(wrongCA.stderr.contains("certificate verify failed") && wrongCA.stderr.contains("--tls-ca"),
                "\(wrongCA.stderr)")
        let noCertificate = try await TestSupport.nas(evaluate + ["--tls-ca", certificates.ca],
                                                      environment: Self.environment)
        #expect(noCertificate.status != 0)
        #expect(noCertificate.stderr.contains("requires a client certificate"), "\(noCertificate.stderr)")
        let cleartext = try await TestSupport.nas(
            ["evaluate", path.path, "--coordinator", url.replacingOccurrences(of: "https://", with: "http://"),
             "--device-type", "cpu-tls", "--deadline", "10"], environment: Self.environment)
        #expect(cleartext.status != 0)
    }

    @Test func cleartextBeyondLoopbackWarnsAndBadTLSFlagsAreRefused() async throws {
        let (coordinator, _) = try await start(["coordinator", "--listen", "0.0.0.0:0"], until: "listening on http://")
        defer { coordinator.signal(SIGTERM) }
        try await TestSupport.eventually("the warning was printed") {
            coordinator.errors.contains("cleartext HTTP/2 (h2c) on 0.0.0.0") && coordinator.errors.contains("--tls-cert")
        }
        let (loopback, _) = try await start(["coordinator", "--listen", "127.0.0.1:0"], until: "listening on http://")
        defer { loopback.signal(SIGTERM) }
        #expect(!loopback.errors.contains("warning"))

        let half = try await TestSupport.nas(["coordinator", "--tls-cert", "/tmp/x.pem"], environment: Self.environment)
        #expect(half.status != 0 && half.stderr.contains("--tls-cert and --tls-key go together"), "\(half.stderr)")
        let missing = try await TestSupport.nas(
            ["coordinator", "--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"],
            environment: Self.environment)
        #expect(missing.status != 0 && missing.stderr.contains("/nonexistent/c.pem"), "\(missing.stderr)")
    }
}
