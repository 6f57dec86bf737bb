import Foundation
import Search
import TestSupport
import Testing

/// `nas search --pruner` and `--latency-first` end to end: real trial processes, the built-in trainer on a small
/// slice of the data, and users' trainers (a tiny Python script, the numpy example) stopped with SIGTERM.
@Suite struct PruningSearchTests {
    static let quick = [
        "--train-limit", "600", "--test-limit", "200", "--latency-repeats", "5", "--threads", "1",
    ]
    static var helperEnvironment: [String: String] {
        ["PYTHONPATH": TestSupport.packageRoot.appendingPathComponent("python").path]
    }

    /// The trials a rule replaying the job's stored curves, in their order, prunes.
    func replayedPrunes(_ store: JobStore) throws -> Set<Int> {
        var rule = PruningRule(try #require(store.config.pruner))
        var pruned: Set<Int> = []
        for point in try store.curvePoints() {
            if case .prune = rule.report(trial: point.trialID, step: point.step, value: point.value) {
                pruned.insert(point.trialID)
            }
        }
        return pruned
    }

    @Test func ashaOverTheBuiltInTrainerStopsTrialsAtRungsAndKeepsEveryCurve() async throws {
        let root = try TestSupport.temporaryDirectory("nas-asha")
        let result = try await TestSupport.nas(
            [
                "search", "--root-output-dir", root.path, "--job-name", "asha", "--num-epochs", "3", "--max-trials",
                "5", "--max-parallel-trials", "2", "--algorithm", "random", "--seed", "1", "--pruner", "asha",
                "--pruner-reduction-factor", "2", "--max-failed-trials", "1",
            ] + Self.quick)
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        let store = try JobStore.open(directory: root.appendingPathComponent("asha").path)
        let trials = try store.trials()
        #expect(trials.count == 5)
        #expect(trials.allSatisfy { $0.state == .succeeded || $0.state == .pruned }, "\(trials.map(\.state))")
        let curves = try store.curves()
        for trial in trials {
            let curve = try #require(curves[trial.id], "trial \(trial.id) has no curve")
            if trial.state == .succeeded {
                // One point per epoch, the last the trial's final accuracy.
                #expect(curve.map(\.step) == [1, 2, 3])
                #expect(abs(curve.last!.value - trial.metrics["top_1_accuracy"]!) < 1e-9)
            } else {
                #expect(trial.metrics[JobStore.prunedAtStepMetric].map { [1, 2].contains($0) } == true)
                #expect(curve.count < 3)
            }
        }
        // The decisions are the rule's over the curves as they arrived.
        #expect(Set(trials.filter { $0.state == .pruned }.map(\.id)) == (try replayedPrunes(store)))
        let pruned = trials.filter { $0.state == .pruned }.count
        #expect(result.stdout.contains("\(pruned) pruned") || pruned == 0)
        let list = try await TestSupport.nas(["trials", "list", store.directory])
        #expect(list.status == 0)
        #expect(list.stdout.contains("pruned") || pruned == 0)
        let report = try String(contentsOfFile: store.directory + "/report.html", encoding: .utf8)
        #expect(report.contains("Learning curves"))
    }

    /// A user's trainer, reporting through the helper's `report_intermediate_result`: trial 1 is good, trial 2
    /// falls behind at rung 1 and is stopped by SIGTERM (its handler notes it), trial 3 falls behind and ignores
    /// SIGTERM, so it is killed after the grace period.
    @Test func aUsersTrainerIsStoppedWithSIGTERMThenSIGKILL() async throws {
        let root = try TestSupport.temporaryDirectory("nas-prune-cmd")
        let script = root.appendingPathComponent("trainer.py")
        try """
            import os, signal, sys, time
            from nas_helper import metrics_reporter
            job_dir = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--job-dir=")][0]
            trial = int(os.environ["CLOUD_ML_TRIAL_ID"])
            def note(name):
                open(os.path.join(job_dir, name), "w").write("1")
            def on_term(signum, frame):
                note("got_sigterm")
                sys.exit(143)
            signal.signal(signal.SIGTERM, on_term if trial != 3 else signal.SIG_IGN)
            base = {1: 0.9, 2: 0.2, 3: 0.1}[trial]
            for epoch in (1, 2):
                metrics_reporter.report_intermediate_result(base + 0.01 * epoch, step=epoch)
                if trial != 1:
                    note("waiting")
                    for _ in range(600):
                        time.sleep(0.1)
            metrics_reporter.NasMetricsReporter().report_metrics(None, base + 0.03, global_step=3)
            """.write(to: script, atomically: true, encoding: .utf8)
        let result = try await TestSupport.nas(
            [
                "search", "--root-output-dir", root.path, "--job-name", "cmd", "--trainer-command",
                "\(try TestSupport.python) \(script.path)", "--search-space",
                TestSupport.packageRoot.appendingPathComponent("examples/numpy/space.json").path, "--num-epochs", "3",
                "--max-trials", "3", "--max-parallel-trials", "1", "--algorithm", "grid", "--pruner", "asha",
                "--pruner-grace-seconds", "1", "--max-failed-trials", "1",
            ], environment: Self.helperEnvironment)
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        let store = try JobStore.open(directory: root.appendingPathComponent("cmd").path)
        let trials = try store.trials()
        #expect(trials.map(\.state) == [.succeeded, .pruned, .pruned])
        #expect(abs((trials[1].metrics["top_1_accuracy"] ?? 0) - 0.21) < 1e-9)
        #expect(FileManager.default.fileExists(atPath: store.trialDirectory(2) + "/got_sigterm"))
        // Trial 3 ignored SIGTERM and was killed: it never got to note it.
        #expect(FileManager.default.fileExists(atPath: store.trialDirectory(3) + "/waiting"))
        #expect(!FileManager.default.fileExists(atPath: store.trialDirectory(3) + "/got_sigterm"))
        #expect(try store.curves()[1]?.map(\.step) == [1, 2, 3])
        #expect(result.stdout.contains("1 succeeded, 0 failed, 2 pruned"))
    }

    @Test func latencyFirstDoesNotTrainAModelOverAHardTarget() async throws {
        let root = try TestSupport.temporaryDirectory("nas-latency-first")
        // No model runs in 0.1 microseconds: every trial is infeasible, measured, and never trained.
        let builtIn = try await TestSupport.nas(
            [
                "search", "--root-output-dir", root.path, "--job-name", "builtin", "--num-epochs", "1",
                "--max-trials", "2", "--latency-first", "--target-latency-millisec", "0.0001",
            ] + Self.quick)
        try #require(builtIn.status == 0, "\(builtIn.stdout)\(builtIn.stderr)")
        #expect(builtIn.stdout.contains("2 infeasible (not trained)"))
        let numpyRoot = TestSupport.packageRoot.appendingPathComponent("examples/numpy")
        let command = try await TestSupport.nas(
            [
                "search", "--root-output-dir", root.path, "--job-name", "command", "--trainer-command",
                "\(try TestSupport.python) \(numpyRoot.appendingPathComponent("train.py").path)", "--search-space",
                numpyRoot.appendingPathComponent("space.json").path, "--trainer-flags", "num_epochs=1",
                "--max-trials", "2", "--latency-first", "--target-latency-millisec", "0.0001", "--latency-repeats", "5",
            ], environment: Self.helperEnvironment)
        try #require(command.status == 0, "\(command.stdout)\(command.stderr)")
        for name in ["builtin", "command"] {
            let store = try JobStore.open(directory: root.appendingPathComponent(name).path)
            for trial in try store.trials() {
                #expect(trial.state == .infeasible)
                #expect((trial.metrics["latency_ms"] ?? 0) > 0.0001)
                #expect(trial.metrics["top_1_accuracy"] == nil && trial.metrics["train_seconds"] == nil)
                #expect(trial.error?.contains("not trained") == true)
                #expect(try TrialStatusFile(directory: store.trialDirectory(trial.id)).read() == "infeasible")
            }
        }
        // A generous target: measured first, then trained, the measurement kept.
        let feasible = try await TestSupport.nas(
            [
                "search", "--root-output-dir", root.path, "--job-name", "feasible", "--num-epochs", "1",
                "--max-trials", "1", "--latency-first", "--target-latency-millisec", "1000",
            ] + Self.quick)
        try #require(feasible.status == 0, "\(feasible.stdout)\(feasible.stderr)")
        let trial = try #require(try JobStore.open(directory: root.appendingPathComponent("feasible").path).trials().first)
        #expect(trial.state == .succeeded && (trial.metrics["latency_ms"] ?? 0) > 0)
        #expect((trial.metrics["top_1_accuracy"] ?? 0) > 0.1)
    }

    @Test func latencyFirstNeedsAHardDeviceConstraint() async throws {
        let root = try TestSupport.temporaryDirectory("nas-latency-first")
        let result = try await TestSupport.nas(
            ["search", "--root-output-dir", root.path, "--job-name", "soft", "--latency-first", "--constraint",
             "latency_ms<=0.05:soft"] + Self.quick)
        #expect(result.status == 2)
        #expect(result.stderr.contains("--latency-first needs a hard device constraint"))
    }
}
