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

    /// A user's trainer that "trains" `num_epochs` epochs of 0.4 s each, noting each epoch it finishes in
    /// `epochs_trained` (the epochs spent), and reports its accuracy after each one through the helper's
    /// `report_intermediate_result`: trial k's curve is 0.9 - 0.05 k + 0.01 epoch, so every later trial is behind
    /// every earlier one at every epoch.
    static func curveTrainer(in root: URL) throws -> String {
        let script = root.appendingPathComponent("curve_trainer.py")
        try """
            import os, sys, time
            from nas_helper import metrics_reporter
            flags = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
            epochs = int(flags["num_epochs"])
            trial = int(os.environ["CLOUD_ML_TRIAL_ID"])
            for epoch in range(1, epochs + 1):
                time.sleep(0.4)
                with open(os.path.join(flags["job-dir"], "epochs_trained"), "a") as spent:
                    spent.write("%d\\n" % epoch)
                accuracy = 0.9 - 0.05 * trial + 0.01 * epoch
                if epoch < epochs:
                    metrics_reporter.report_intermediate_result(accuracy, step=epoch)
                else:
                    metrics_reporter.NasMetricsReporter().report_metrics(None, accuracy, global_step=epoch)
            """.write(to: script, atomically: true, encoding: .utf8)
        return "\(try TestSupport.python) \(script.path)"
    }

    /// `nas search` of the curve trainer over the numpy example's space, one trial at a time, 4 epochs.
    static func curveSearch(_ root: URL, _ name: String, trials: Int, _ extra: [String]) async throws
        -> TestSupport.Output
    {
        try await TestSupport.nas(
            [
                "search", "--root-output-dir", root.path, "--job-name", name, "--trainer-command",
                try curveTrainer(in: root), "--search-space",
                TestSupport.packageRoot.appendingPathComponent("examples/numpy/space.json").path, "--num-epochs", "4",
                "--trainer-flags", "num_epochs=4", "--max-trials", String(trials), "--max-parallel-trials", "1",
                "--algorithm", "grid", "--max-failed-trials", "1",
            ] + extra, environment: helperEnvironment)
    }

    /// The epochs a trial's trainer finished (its `epochs_trained` lines).
    static func epochsTrained(_ store: JobStore, _ trial: Int) throws -> Int {
        let path = store.trialDirectory(trial) + "/epochs_trained"
        guard FileManager.default.fileExists(atPath: path) else { return 0 }
        return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count
    }

    /// Each rule over a user's trainer: the trials behind are stopped at their rung with their partial accuracy,
    /// recorded as pruned (not failed, though --max-failed-trials is 1), and fewer epochs are spent than the
    /// 6 x 4 a search without pruning trains. Hyperband (eta 2: brackets with first rungs 1, 2 and 4) deals
    /// trials 1 and 4 to its first bracket, 2 and 5 to the second, 3 and 6 to the one that trains fully.
    @Test(arguments: [
        ("median", [TrialState.succeeded, .pruned, .pruned, .pruned, .pruned, .pruned]),
        ("asha", [.succeeded, .pruned, .pruned, .pruned, .pruned, .pruned]),
        ("hyperband", [.succeeded, .succeeded, .succeeded, .pruned, .pruned, .succeeded]),
    ])
    func eachRuleStopsAUsersTrainerBehindAtItsRung(rule: String, states: [TrialState]) async throws {
        let root = try TestSupport.temporaryDirectory("nas-prune-\(rule)")
        let result = try await Self.curveSearch(
            root, rule, trials: 6,
            ["--pruner", rule, "--pruner-reduction-factor", "2", "--pruner-startup-trials", "1"])
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        let jobDirectory = root.appendingPathComponent(rule).path
        let store = try JobStore.open(directory: jobDirectory)
        let trials = try store.trials()
        #expect(trials.map(\.state) == states, "\(trials.map { ($0.state, $0.error ?? "") })")
        let curves = try store.curves()
        let rule = PruningRule(try #require(store.config.pruner))
        var spent = 0
        for trial in trials {
            let epochs = try Self.epochsTrained(store, trial.id)
            spent += epochs
            let curve = try #require(curves[trial.id], "trial \(trial.id) has no curve")
            if trial.state == .succeeded {
                #expect(curve.map(\.step) == [1, 2, 3, 4] && epochs == 4)
                continue
            }
            // Stopped at a rung of its bracket (the median's first judged step is 1) with the accuracy it had.
            let step = try #require(trial.metrics[JobStore.prunedAtStepMetric])
            let rungs = store.config.pruner?.kind == .median ? [1.0] : rule.rungs(of: trial.id)
            #expect(step == rungs.first, "trial \(trial.id) pruned at \(step), rungs \(rungs)")
            let expected = 0.9 - 0.05 * Double(trial.id) + 0.01 * step
            #expect(abs((trial.metrics["top_1_accuracy"] ?? 0) - expected) < 1e-9)
            #expect(trial.reward == nil && trial.error == nil)
            #expect(curve.last?.step == step)
            // It never trained its last epoch: SIGTERM ended it.
            #expect(epochs < 4, "trial \(trial.id) trained \(epochs) epochs")
        }
        #expect(spent < trials.count * 4, "\(spent) epochs spent")
        #expect(Set(trials.filter { $0.state == .pruned }.map(\.id)) == (try replayedPrunes(store)))
        // `nas trials list --json` shows each trial's curve as the store keeps it, a pruned one's up to its stop.
        let list = try await TestSupport.nas(["trials", "list", jobDirectory, "--json"])
        struct Listed: Decodable {
            struct Point: Decodable, Equatable { var step: Double, value: Double }
            var trial_id: Int
            var curve: [Point]?
        }
        let listed = try JSONDecoder().decode([Listed].self, from: Data(list.stdout.utf8))
        #expect(Set(listed.map(\.trial_id)) == Set(trials.map(\.id)))
        for item in listed {
            let curve = try #require(item.curve, "trial \(item.trial_id) has no curve in \(list.stdout)")
            #expect(curve == curves[item.trial_id]?.map { Listed.Point(step: $0.step, value: $0.value) })
        }
        let pruned = states.filter { $0 == .pruned }.count
        #expect(result.stdout.contains("\(6 - pruned) succeeded, 0 failed, \(pruned) pruned"), "\(result.stdout)")
    }

    /// A resumed job keeps its decisions: the pruned trials are not trained again, and the rule comes back with
    /// the rung records of the first run, so a new trial behind them is stopped (alone at rung 1, it would go on).
    @Test func aResumeKeepsThePruningDecisionsAndRungRecords() async throws {
        let root = try TestSupport.temporaryDirectory("nas-prune-resume")
        let first = try await Self.curveSearch(root, "resumed", trials: 3, ["--pruner", "asha"])
        try #require(first.status == 0, "\(first.stdout)\(first.stderr)")
        let directory = root.appendingPathComponent("resumed").path
        let before = try JobStore.open(directory: directory)
        #expect(try before.trials().map(\.state) == [.succeeded, .pruned, .pruned])
        let epochsBefore = try (1...3).map { try Self.epochsTrained(before, $0) }

        let resumed = try await TestSupport.nas(
            ["search", "--resume", directory, "--max-trials", "4"], environment: Self.helperEnvironment)
        try #require(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
        let store = try JobStore.open(directory: directory)
        let trials = try store.trials()
        #expect(trials.map(\.state) == [.succeeded, .pruned, .pruned, .pruned])
        #expect(try (1...3).map { try Self.epochsTrained(store, $0) } == epochsBefore, "no trial ran again")
        #expect(trials[3].metrics[JobStore.prunedAtStepMetric] == 1)
        #expect(try Self.epochsTrained(store, 4) < 4)
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

    /// With the Slurm launcher a pruned trial's job is cancelled (`scancel`): Slurm shows it CANCELLED, and its
    /// trainer never reached its last epoch. Needs this machine's single-node cluster (`scripts/slurm-up.sh`).
    @Test(.enabled("needs a running Slurm (sudo bash scripts/slurm-up.sh)") { await Self.slurmIsUp() })
    func aPrunedSlurmTrialsJobIsCancelled() async throws {
        let root = try TestSupport.temporaryDirectory("nas-prune-slurm")
        let result = try await Self.curveSearch(
            root, "slurm", trials: 3, ["--pruner", "asha", "--launcher", "slurm", "--slurm-poll-interval", "0.2"])
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        let store = try JobStore.open(directory: root.appendingPathComponent("slurm").path)
        let trials = try store.trials()
        #expect(trials.map(\.state) == [.succeeded, .pruned, .pruned])
        for trial in trials {
            let id = try #require(trial.handle.flatMap(Int.init), "trial \(trial.id) ran as a Slurm job")
            let state = try await TestSupport.run(
                "/usr/bin/squeue", ["--noheader", "--states=all", "--jobs=\(id)", "--format=%T"]
            ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(state == (trial.state == .pruned ? "CANCELLED" : "COMPLETED"), "trial \(trial.id)")
            if trial.state == .pruned { #expect(try Self.epochsTrained(store, trial.id) < 4) }
        }
    }

    /// Whether this machine's Slurm answers and has its node up.
    static func slurmIsUp() async -> Bool {
        guard let sinfo = try? await TestSupport.run("/usr/bin/sinfo", ["--noheader", "--format=%T"]) else { return false }
        let state = sinfo.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return sinfo.status == 0 && ["idle", "mixed", "allocated", "completing"].contains { state.hasPrefix($0) }
    }

    /// The MobileNet-style family reports after each epoch like the CNN (one epoch loop trains both): a trial of a
    /// search over `mobilenet_v2_mini` stores one curve point per epoch, the last its final accuracy.
    @Test func aMobileNetTrialStoresOnePointPerEpoch() async throws {
        let root = try TestSupport.temporaryDirectory("nas-prune-mobilenet")
        let result = try await TestSupport.nas(
            [
                "search", "--root-output-dir", root.path, "--job-name", "mobilenet", "--search-space",
                "mobilenet_v2_mini", "--num-epochs", "3", "--max-trials", "2", "--max-parallel-trials", "1",
                "--algorithm", "random", "--seed", "1", "--pruner", "asha", "--pruner-reduction-factor", "2",
                "--train-limit", "300", "--test-limit", "100", "--latency-repeats", "3", "--threads", "1",
            ])
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        let store = try JobStore.open(directory: root.appendingPathComponent("mobilenet").path)
        let trials = try store.trials()
        let curves = try store.curves()
        // Alone at its rungs, the first trial trains fully.
        let first = try #require(trials.first)
        #expect(first.state == .succeeded)
        let curve = try #require(curves[first.id])
        #expect(curve.map(\.step) == [1, 2, 3])
        #expect(abs(curve.last!.value - (first.metrics["top_1_accuracy"] ?? -1)) < 1e-9)
        #expect(curve.allSatisfy { (0...1).contains($0.value) })
        let second = try #require(trials.last)
        let stopped = second.metrics[JobStore.prunedAtStepMetric]
        #expect(curves[second.id]?.map(\.step) == (stopped.map { Array(stride(from: 1, through: $0, by: 1)) } ?? [1, 2, 3]))
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

    @Test(arguments: ["nan", "-1", "inf"]) func aBadGracePeriodIsRefusedBeforeAnyWork(seconds: String) async throws {
        let root = try TestSupport.temporaryDirectory("nas-prune-grace")
        let result = try await TestSupport.nas(
            ["search", "--root-output-dir", root.path, "--job-name", "grace", "--pruner", "asha",
             "--pruner-grace-seconds=\(seconds)"] + Self.quick)
        #expect(result.status == 64)
        #expect(result.stderr.contains("--pruner-grace-seconds must be 0 to 1e9 seconds"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("grace").path))
    }
}
