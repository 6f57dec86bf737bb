import Foundation
import Search
import TestSupport
import Testing

/// `nas search --trainer-command` and `nas train` end to end with a real Python trainer (numpy + onnx, the test
/// venv's) that trains on a slice of Fashion-MNIST and exports a real ONNX model, searched over a space that is
/// not the built-in CNN's.
@Suite struct TrainerCommandSearchTests {
    static var example: URL { TestSupport.packageRoot.appendingPathComponent("examples/numpy") }
    static var environment: [String: String] {
        ["PYTHONPATH": TestSupport.packageRoot.appendingPathComponent("python").path]
    }

    func trainer() throws -> String {
        "\(try TestSupport.python) \(Self.example.appendingPathComponent("train.py").path)"
    }

    func job(_ root: URL, _ kind: String, _ name: String, _ extra: [String]) async throws -> TestSupport.Output {
        try await TestSupport.nas(
            [kind, "--root-output-dir", root.path, "--job-name", name, "--latency-repeats", "5"] + extra,
            environment: Self.environment)
    }

    @Test func searchesAndRetrainsWithALatencyConstraint() async throws {
        let root = try TestSupport.temporaryDirectory("nas-byot")
        let search = try await job(
            root, "search", "mlp",
            [
                "--trainer-command", try trainer(), "--search-space",
                Self.example.appendingPathComponent("space.json").path,
                "--trainer-flags", "num_epochs=1", "train_limit=1500", "test_limit=300", "ask_latency=true",
                "--max-trials", "3", "--max-parallel-trials", "2", "--algorithm", "random", "--seed", "5",
                "--constraint", "latency_ms<=0.05:soft",
            ])
        try #require(search.status == 0, "\(search.stdout)\(search.stderr)")
        #expect(search.stdout.contains("Search job mlp: 3 succeeded, 0 failed"))
        let store = try JobStore.open(directory: root.appendingPathComponent("mlp").path)
        #expect(store.config.trainerCommand?.flags.contains("ask_latency=true") == true)
        let trials = try store.trials()
        #expect(trials.count == 3 && trials.allSatisfy { $0.state == .succeeded })
        for trial in trials {
            // Values the built-in trainer would not understand, trained by the command.
            #expect(trial.parameters.contains("hidden_units") && trial.parameters.contains("activation"))
            let accuracy = try #require(trial.metrics["top_1_accuracy"])
            #expect(accuracy > 0.2 && accuracy <= 1)
            // FLOPs counted from the exported ONNX, latency measured by the job's worker after the trainer exited,
            // and the latency the trainer asked for itself through the helper while it ran.
            #expect((trial.metrics["flops"] ?? 0) > 20_000)
            #expect((trial.metrics["latency_ms"] ?? 0) > 0)
            #expect((trial.metrics["trainer_latency_ms"] ?? 0) > 0)
            #expect(trial.reward == trial.metrics["nas_reward"])
            let model = store.trialDirectory(trial.id) + "/saved_model/model.onnx"
            #expect(FileManager.default.fileExists(atPath: model))
        }

        // Stage 2 with the search's trainer command, its own flags, and the trainer's own reward honoured.
        let train = try await job(
            root, "train",
            "stage2",
            [
                "--search-job", store.directory, "--trials", "3,1", "--trainer-flags", "num_epochs=2",
                "train_limit=1500", "test_limit=300", "--nas-target-reward-metric", "nas_reward",
            ])
        try #require(train.status == 0, "\(train.stdout)\(train.stderr)")
        let retrained = try JobStore.open(directory: root.appendingPathComponent("stage2").path).trials()
        #expect(retrained.map(\.searchTrialID) == [3, 1])
        #expect(retrained.map(\.decisions) == [trials[2].decisions, trials[0].decisions])
        for trial in retrained {
            #expect(trial.state == .succeeded && (trial.metrics["latency_ms"] ?? 0) > 0)
            // The example's own reward caps hidden units at 32; nas's, from accuracy and latency, is beside it.
            let computed = try #require(trial.metrics["computed_reward"])
            #expect(trial.reward == trial.metrics["nas_reward"] && computed.isFinite)
        }
        let list = try await TestSupport.nas(["trials", "list", root.appendingPathComponent("stage2").path])
        #expect(list.stdout.split(separator: "\n").first?.contains("computed_reward  nas_reward") == true)
    }

    @Test func failedTrialsSayWhyAndTheSearchGoesOn() async throws {
        let root = try TestSupport.temporaryDirectory("nas-byot")
        // Grid order: relu, relu, sigmoid, sigmoid; the trainer refuses sigmoid.
        let search = try await job(
            root, "search", "mixed",
            [
                "--trainer-command", try trainer(), "--search-space",
                Self.example.appendingPathComponent("space.json").path,
                "--trainer-flags", "num_epochs=1", "train_limit=500", "test_limit=100", "fail_activation=sigmoid",
                "--max-trials", "4", "--max-parallel-trials", "2", "--algorithm", "grid", "--max-failed-trials", "3",
            ])
        try #require(search.status == 0, "\(search.stdout)\(search.stderr)")
        #expect(search.stdout.contains("Search job mixed: 2 succeeded, 2 failed"))
        let list = try await TestSupport.nas(["trials", "list", root.appendingPathComponent("mixed").path])
        #expect(
            list.stdout.contains(
                "trial 3: the trainer command exited with status 2; its last lines: architecture {'hidden_units': 16, 'activation': 'sigmoid'"
            ))
        #expect(list.stdout.contains("ValueError: sigmoid is not supported here"))
        let report = try String(contentsOfFile: root.path + "/mixed/report.html", encoding: .utf8)
        #expect(
            report.contains("<h2>Failed trials</h2>") && report.contains("ValueError: sigmoid is not supported here"))

        // A trainer that always fails uses up --max-failed-trials, and the search stops.
        let broken = try await job(
            root, "search", "broken",
            [
                "--trainer-command", "echo cannot import torch; false", "--max-trials", "6", "--max-parallel-trials",
                "1",
                "--max-failed-trials", "2", "--search-space", Self.example.appendingPathComponent("space.json").path,
            ])
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("0 succeeded, 2 failed; stopped: 2 trials failed (--max-failed-trials 2)"))
        let trials = try JobStore.open(directory: root.appendingPathComponent("broken").path).trials()
        #expect(trials.first?.error == "the trainer command exited with status 1; its last lines: cannot import torch")

        // The built-in trainer refuses a space it cannot build, before any job exists.
        let builtIn = try await job(
            root, "search", "builtin", ["--search-space", Self.example.appendingPathComponent("space.json").path])
        #expect(builtIn.status != 0 && builtIn.stderr.contains("train this space with your own --trainer-command"))
        #expect(!FileManager.default.fileExists(atPath: root.path + "/builtin"))
    }

    /// Starts a search whose trainer command sleeps until the test ends it (a sleep that ended by itself while a test
    /// waited on a loaded machine failed the test once); returns the search and the sleeper's pid once it runs.
    func searchWithASleepingTrainer(_ root: URL, _ name: String, _ extra: [String] = []) async throws
        -> (TestProcess, pid_t)
    {
        let search = try TestSupport.startNas(
            [
                "search", "--root-output-dir", root.path, "--job-name", name, "--max-trials", "1",
                "--trainer-command", "sleep 100000 & echo $! > $NAS_TRIAL_DIR/sleep.pid; wait; true",
            ] + extra)
        let pidFile = root.path + "/\(name)/1/sleep.pid"
        func sleeper() -> pid_t? {
            (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap {
                pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        try await TestSupport.eventually("the trainer command to start", seconds: 60) { sleeper() != nil }
        let pid = try #require(sleeper())
        #expect(kill(pid, 0) == 0)
        return (search, pid)
    }

    func isGone(_ pid: pid_t) async -> Bool {
        (try? await TestSupport.eventually("process \(pid) to end", seconds: 15) { kill(pid, 0) != 0 }) != nil
    }

    @Test func aKilledSearchTakesItsTrainerCommandsWithIt() async throws {
        let root = try TestSupport.temporaryDirectory("nas-byot")
        let (search, sleeper) = try await searchWithASleepingTrainer(root, "killed")
        await search.killAndWait()
        #expect(await isGone(sleeper), "the trainer command outlived the search")
    }

    @Test func ctrlCCancelsTheTrainerCommand() async throws {
        let root = try TestSupport.temporaryDirectory("nas-byot")
        let (search, sleeper) = try await searchWithASleepingTrainer(root, "interrupted", ["--on-interrupt", "cancel"])
        search.signal(SIGINT)
        #expect(await search.wait() == 130)
        #expect(await isGone(sleeper), "the trainer command outlived the cancel")
        let trials = try JobStore.open(directory: root.appendingPathComponent("interrupted").path).trials()
        #expect(trials.map(\.state) == [.cancelled])
    }
}
