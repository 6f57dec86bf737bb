import Foundation
import Search
import TestSupport
import Testing
import Trainer

/// A clock that moves only when the loop sleeps, and lets the test act at each turn.
final class ManualClock: JobClock {
    private(set) var elapsed: Duration = .zero
    var onSleep: (Duration) -> Void = { _ in }

    func now() -> Duration { elapsed }

    func sleep(for duration: Duration) {
        elapsed += duration
        onSleep(elapsed)
    }
}

/// A launcher whose trials end when the test says, leaving the files a trial runner would leave.
final class FakeLauncher: TrialLauncher {
    /// How a trial ends: its exit and the metrics it writes (nil: no metrics.json).
    struct Script {
        var turns: Int = 1
        var exit: TrialExit = .exited(0)
        var metrics: [String: Double]? = ["top_1_accuracy": 0.8, "nas_reward": 0.8]
        var log = ""
    }

    var script: (Int) -> Script = { _ in Script() }
    var failLaunch: (Int) -> Bool = { _ in false }
    /// The handles of runs an earlier search left that this launcher still follows, and their trials' folders.
    var reattachable: Set<String> = []
    var trialDirectory: (Int) -> String = { _ in "" }
    /// How a cancelled run ends.
    var cancelledExit: TrialExit = .signaled(SIGTERM)
    /// Notes the next turn reports.
    var pendingNotes: [TrialNote] = []
    private(set) var launched: [TrialRun] = []
    private(set) var reattached: [LaunchedTrial] = []
    private(set) var cancelled: [Int] = []
    private(set) var maxRunning = 0
    private(set) var polls = 0
    private var running: [LaunchedTrial: (script: Script, turnsLeft: Int, directory: String)] = [:]

    func launch(_ run: TrialRun) throws -> LaunchedTrial {
        if failLaunch(run.trialID) { throw TestSupportError("cannot start trial \(run.trialID)") }
        launched.append(run)
        let trial = LaunchedTrial(trialID: run.trialID, handle: "fake-\(run.trialID)")
        let script = script(run.trialID)
        running[trial] = (script, script.turns, run.directory)
        maxRunning = max(maxRunning, running.count)
        return trial
    }

    func poll(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial: TrialExit] {
        polls += 1
        var endings: [LaunchedTrial: TrialExit] = [:]
        for trial in trials {
            guard var entry = running[trial] else { continue }
            entry.turnsLeft -= 1
            running[trial] = entry
            guard entry.turnsLeft <= 0 else { continue }
            running[trial] = nil
            let directory = URL(fileURLWithPath: entry.directory)
            if let metrics = entry.script.metrics, entry.script.exit == .exited(0) {
                let data = try JSONEncoder().encode(metrics)
                try data.write(to: directory.appendingPathComponent(TrialFiles.metrics))
            }
            try Data(entry.script.log.utf8).write(to: directory.appendingPathComponent(TrialFiles.log))
            endings[trial] = entry.script.exit
        }
        return endings
    }

    func reattach(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial] {
        let followed = trials.filter { reattachable.contains($0.handle) }
        for trial in followed { running[trial] = (script(trial.trialID), 1, trialDirectory(trial.trialID)) }
        reattached += followed
        return followed
    }

    func notes() -> [TrialNote] {
        defer { pendingNotes = [] }
        return pendingNotes
    }

    func cancel(_ trials: [LaunchedTrial]) {
        for trial in trials {
            cancelled.append(trial.trialID)
            if var entry = running[trial] {
                // A cancelled trial runner ends at the next poll, killed by SIGTERM.
                entry.turnsLeft = 1
                entry.script.exit = cancelledExit
                running[trial] = entry
            }
        }
    }
}

/// Collects what a job loop reports.
final class RecordingObserver: JobObserver {
    private(set) var events: [JobEvent] = []
    private(set) var progresses: [JobProgress] = []
    private(set) var summaries: [String] = []

    func event(_ event: JobEvent) { events.append(event) }
    func progress(_ progress: JobProgress) { progresses.append(progress) }
    func summary(_ text: String) { summaries.append(text) }

    var texts: [String] { events.map(\.text) }
}

/// The job loop with a fake launcher and a manual clock: no process is spawned.
@Suite struct JobLoopTests {
    let space = SearchSpace.mnistListOfDictionary

    func makeStore(maxTrials: Int = 4, parallel: Int = 2, maxFailed: Int = 2) throws -> JobStore {
        var config = sampleConfig()
        config.maxTrials = maxTrials
        config.maxParallelTrials = parallel
        config.maxFailedTrials = maxFailed
        let directory = try TestSupport.temporaryDirectory("nas-loop").path
        return try JobStore.create(directory: directory, config: config)
    }

    /// Proposes grid order: trial n gets the n-th architecture.
    func gridProposer() -> JobLoop.Proposer {
        let space = space
        return { proposed, _ in
            let all = try space.allChoices()
            guard proposed.count < all.count else { return nil }
            return try space.parameters(of: all[proposed.count])
        }
    }

    func loop(
        _ store: JobStore, _ launcher: FakeLauncher, _ observer: RecordingObserver, _ clock: ManualClock,
        policy: InterruptPolicy = .wait, interrupts: @escaping () -> Int = { 0 }
    ) -> JobLoop {
        JobLoop(
            store: store, configuration: JobLoop.Configuration(onInterrupt: policy), launcher: launcher,
            observer: observer, clock: clock, interrupts: interrupts, propose: gridProposer()
        ) { trial, directory in
            TrialRun(
                trialID: trial.id, directory: directory, command: ["nas", "trainer", "--trial-id", String(trial.id)],
                environment: [:], logPath: directory + "/" + TrialFiles.log)
        }
    }

    @Test func runsEveryTrialWithinTheParallelBudgetAndRecordsMetrics() throws {
        let store = try makeStore(maxTrials: 5, parallel: 2)
        let launcher = FakeLauncher()
        launcher.script = { id in FakeLauncher.Script(turns: id, metrics: ["top_1_accuracy": 0.5, "nas_reward": Double(id) / 10]) }
        let observer = RecordingObserver()
        let outcome = try loop(store, launcher, observer, ManualClock()).run()

        #expect(outcome == JobOutcome(stop: nil, exhausted: false))
        let trials = try store.trials()
        #expect(trials.count == 5 && trials.allSatisfy { $0.state == .succeeded })
        #expect(trials.map(\.reward) == [0.1, 0.2, 0.3, 0.4, 0.5])
        #expect(launcher.maxRunning == 2)
        #expect(launcher.launched.map(\.trialID) == [1, 2, 3, 4, 5])
        // Grid order: no architecture twice, and each trial's parameters are in its folder for the runner.
        #expect(Set(trials.map(\.decisions)).count == 5)
        #expect(FileManager.default.fileExists(atPath: store.trialDirectory(3) + "/" + TrialParameters.fileName))
        #expect(observer.texts.filter { $0.hasPrefix("trial") && $0.contains("succeeded") }.count == 5)
        #expect(observer.progresses.allSatisfy { $0.total == 5 && $0.running <= 2 })
        #expect(observer.progresses.compactMap(\.best?.trial) == observer.progresses.compactMap(\.best?.trial).sorted())
    }

    @Test func oneBatchedPollPerTurnWhateverTheNumberOfRunningTrials() throws {
        let store = try makeStore(maxTrials: 8, parallel: 8)
        let launcher = FakeLauncher()
        launcher.script = { _ in FakeLauncher.Script(turns: 3) }
        let clock = ManualClock()
        _ = try loop(store, launcher, RecordingObserver(), clock).run()
        // 8 trials launched in the first turn, all ending at the third poll: three polls, not 24.
        #expect(launcher.polls == 3)
        #expect(clock.now() == .milliseconds(300))
    }

    @Test func theFailureBudgetStopsLaunchingAndSaysWhy() throws {
        let store = try makeStore(maxTrials: 6, parallel: 1, maxFailed: 2)
        let launcher = FakeLauncher()
        launcher.script = { id in
            id == 2 || id == 3
                ? FakeLauncher.Script(exit: .exited(1), metrics: nil, log: "line 1\nTraceback\nValueError: bad")
                : FakeLauncher.Script()
        }
        let observer = RecordingObserver()
        let outcome = try loop(store, launcher, observer, ManualClock()).run()

        #expect(outcome.stop == .failures(count: 2, limit: 2))
        let trials = try store.trials()
        #expect(trials.map(\.state) == [.succeeded, .failed, .failed])
        #expect(trials[1].error == "trainer exited with status 1: line 1 | Traceback | ValueError: bad")
        #expect(observer.texts.contains("stopping: 2 trials failed (--max-failed-trials 2)"))
    }

    @Test func endingsAreReadAsTheTrialRunnerReportsThem() throws {
        let store = try makeStore(maxTrials: 4, parallel: 4, maxFailed: 10)
        let launcher = FakeLauncher()
        launcher.script = { id in
            switch id {
            case 1: FakeLauncher.Script(exit: .exited(TrialExit.nanStatus), metrics: nil)
            case 2: FakeLauncher.Script(exit: .signaled(SIGKILL), metrics: nil)
            case 3: FakeLauncher.Script(exit: .exited(0), metrics: ["top_1_accuracy": 0.9])  // no nas_reward
            default: FakeLauncher.Script(exit: .exited(0), metrics: ["top_1_accuracy": 0.9, "nas_reward": 0.7])
            }
        }
        _ = try loop(store, launcher, RecordingObserver(), ManualClock()).run()
        let trials = try store.trials()
        #expect(trials.map(\.state) == [.failed, .failed, .failed, .succeeded])
        #expect(trials[0].error == "failed_with_nan_error")
        #expect(trials[1].error == "trainer killed by signal \(SIGKILL) (Killed)")
        #expect(trials[2].error == "the trainer exited 0 but wrote no readable metrics.json")
        #expect(trials[3].metrics["nas_reward"] == 0.7 && trials[3].reward == 0.7)
    }

    @Test func anInterruptWaitsForRunningTrialsThenASecondCancelsThem() throws {
        let store = try makeStore(maxTrials: 6, parallel: 2)
        let launcher = FakeLauncher()
        launcher.script = { _ in FakeLauncher.Script(turns: 1000) }
        let clock = ManualClock()
        var signals = 0
        clock.onSleep = { elapsed in
            if elapsed == .milliseconds(300) { signals = 1 }
            if elapsed == .milliseconds(600) { signals = 2 }
        }
        let observer = RecordingObserver()
        let outcome = try loop(store, launcher, observer, clock, policy: .wait) { signals }.run()

        #expect(outcome.stop == .interrupted)
        #expect(launcher.launched.count == 2)  // nothing launched after the interrupt
        #expect(launcher.cancelled.sorted() == [1, 2])
        #expect(try store.trials().map(\.state) == [.cancelled, .cancelled])
        #expect(observer.texts.contains("interrupted: waiting for 2 running trial(s); Ctrl-C again cancels them"))
        // Cancelled only at the second interrupt.
        #expect(clock.now() >= .milliseconds(600))
    }

    @Test func cancelPolicyStopsRunningTrialsAtTheFirstInterrupt() throws {
        let store = try makeStore(maxTrials: 6, parallel: 2)
        let launcher = FakeLauncher()
        launcher.script = { _ in FakeLauncher.Script(turns: 1000) }
        let clock = ManualClock()
        var signals = 0
        clock.onSleep = { elapsed in if elapsed == .milliseconds(200) { signals = 1 } }
        let observer = RecordingObserver()
        let outcome = try loop(store, launcher, observer, clock, policy: .cancel) { signals }.run()
        #expect(outcome.stop == .interrupted)
        #expect(launcher.cancelled.sorted() == [1, 2])
        #expect(observer.texts.contains("interrupted: cancelling 2 running trial(s)"))
        #expect(clock.now() < .milliseconds(1000))
    }

    @Test func aResumedJobRunsItsUnfinishedTrialsFirstAndKeepsFinishedOnes() throws {
        // What a search SIGKILLed during trial 2 leaves: trial 1 succeeded, trial 2 recorded as running.
        let store = try makeStore(maxTrials: 4, parallel: 1)
        let all = try space.allChoices()
        for choice in all.prefix(2) {
            let parameters = try space.parameters(of: choice)
            let id = try store.addTrial(parameters: parameters.jsonText, decisions: choice.decisions)
            _ = try parameters.write(toTrialDirectory: store.trialDirectory(id))
            try store.markRunning(id)
        }
        try store.markSucceeded(1, metrics: ["top_1_accuracy": 0.7, "nas_reward": 0.7], reward: 0.7)

        let reopened = try JobStore.open(directory: store.directory)
        let launcher = FakeLauncher()
        let observer = RecordingObserver()
        let outcome = try loop(reopened, launcher, observer, ManualClock()).run()
        #expect(outcome.stop == nil)
        #expect(launcher.launched.map(\.trialID) == [2, 3, 4])
        let trials = try reopened.trials()
        #expect(trials.map(\.state) == [.succeeded, .succeeded, .succeeded, .succeeded])
        #expect(trials[0].reward == 0.7 && trials[1].decisions == all[1].decisions)
        #expect(trials[2].decisions == all[2].decisions)
        #expect(observer.texts.first == "resuming: 1 interrupted trial(s) will run again")
    }

    @Test func aTrialThatCannotBeLaunchedIsRecordedAsFailedAndTheErrorSurfaces() throws {
        let store = try makeStore(maxTrials: 3, parallel: 1)
        let launcher = FakeLauncher()
        launcher.failLaunch = { $0 == 2 }
        #expect(throws: TestSupportError.self) { try loop(store, launcher, RecordingObserver(), ManualClock()).run() }
        let trials = try store.trials()
        #expect(trials.map(\.state) == [.succeeded, .failed])
        #expect(trials[1].error == "cannot start trial 2")
    }

    @Test func anExhaustedSpaceEndsTheJobWithoutAStop() throws {
        let store = try makeStore(maxTrials: 100, parallel: 3)
        let launcher = FakeLauncher()
        let outcome = try loop(store, launcher, RecordingObserver(), ManualClock()).run()
        #expect(outcome == JobOutcome(stop: nil, exhausted: true))
        #expect(try store.trials().count == space.size)
    }
}

/// What the loop does for launchers whose runs outlive the search (Slurm): re-attach, lost runs, notes.
extension JobLoopTests {
    /// A job whose first trial succeeded and whose next `running` trials a killed search left running.
    func killedJob(running handles: [String?]) throws -> JobStore {
        let store = try makeStore(maxTrials: 1 + handles.count + 1, parallel: 3)
        let all = try space.allChoices()
        for choice in all.prefix(1 + handles.count) {
            let parameters = try space.parameters(of: choice)
            let id = try store.addTrial(parameters: parameters.jsonText, decisions: choice.decisions)
            _ = try parameters.write(toTrialDirectory: store.trialDirectory(id))
            try store.markRunning(id)
        }
        try store.markSucceeded(1, metrics: ["top_1_accuracy": 0.7, "nas_reward": 0.7], reward: 0.7)
        for (offset, handle) in handles.enumerated() {
            if let handle { try store.setHandle(2 + offset, handle) }
        }
        return try JobStore.open(directory: store.directory)
    }

    @Test func eachLaunchedTrialsHandleIsStored() throws {
        let store = try makeStore(maxTrials: 3, parallel: 2)
        _ = try loop(store, FakeLauncher(), RecordingObserver(), ManualClock()).run()
        #expect(try store.trials().map(\.handle) == ["fake-1", "fake-2", "fake-3"])
    }

    @Test func aResumedJobReattachesToTheRunsItsLauncherStillFollows() throws {
        // Trial 2's run is still on the cluster; trial 3's is gone; trial 4's search died before storing a handle.
        let store = try killedJob(running: ["fake-2", "fake-3", nil])
        let launcher = FakeLauncher()
        launcher.reattachable = ["fake-2"]
        launcher.trialDirectory = { store.trialDirectory($0) }
        let observer = RecordingObserver()
        let outcome = try loop(store, launcher, observer, ManualClock()).run()

        #expect(outcome.stop == nil)
        #expect(launcher.reattached.map(\.trialID) == [2])
        #expect(launcher.launched.map(\.trialID) == [3, 4, 5])  // trial 2 is not submitted again
        #expect(try store.trials().allSatisfy { $0.state == .succeeded })
        #expect(observer.texts.prefix(2) == [
            "resuming: re-attached to the runs of trial(s) 2", "resuming: 2 interrupted trial(s) will run again",
        ])
    }

    @Test func aLauncherThatReattachesToNoneRunsEveryInterruptedTrialAgain() throws {
        let store = try killedJob(running: ["fake-2"])
        let launcher = FakeLauncher()
        let observer = RecordingObserver()
        _ = try loop(store, launcher, observer, ManualClock()).run()
        #expect(launcher.launched.map(\.trialID) == [2, 3])
        #expect(!observer.texts.contains { $0.contains("re-attached") })
    }

    @Test func aRunLostToTheClusterRunsAgainAndIsNotTheTrainersFailure() throws {
        let store = try makeStore(maxTrials: 3, parallel: 1, maxFailed: 1)
        let launcher = FakeLauncher()
        launcher.script = { [unowned launcher] id in
            // Trial 2's first two runs are lost (a preempted job, a failed node); its third succeeds.
            let runs = launcher.launched.filter { $0.trialID == id }.count
            return id == 2 && runs <= 2 ? FakeLauncher.Script(exit: .lost("Slurm job 7 NODE_FAIL"), metrics: nil) : FakeLauncher.Script()
        }
        let observer = RecordingObserver()
        let outcome = try loop(store, launcher, observer, ManualClock()).run()

        #expect(outcome.stop == nil)
        #expect(launcher.launched.map(\.trialID) == [1, 2, 2, 2, 3])
        let trials = try store.trials()
        #expect(trials.map(\.state) == [.succeeded, .succeeded, .succeeded])
        #expect(trials[1].lostRuns == 2 && trials[1].error == nil)
        #expect(observer.texts.contains(
            "trial 2 lost to the cluster (Slurm job 7 NODE_FAIL); running it again (2 of 3)"))
    }

    @Test func aTrialLostMoreOftenThanItMayRunAgainFailsWithoutStoppingTheJob() throws {
        let store = try makeStore(maxTrials: 3, parallel: 1, maxFailed: 1)
        let launcher = FakeLauncher()
        launcher.script = { id in
            id == 1 ? FakeLauncher.Script(exit: .lost("Slurm job 9 PREEMPTED"), metrics: nil) : FakeLauncher.Script()
        }
        let observer = RecordingObserver()
        let outcome = try JobLoop(
            store: store, configuration: JobLoop.Configuration(maxLostRuns: 2), launcher: launcher,
            observer: observer, clock: ManualClock(), interrupts: { 0 }, propose: gridProposer()
        ) { trial, directory in
            TrialRun(trialID: trial.id, directory: directory, command: ["nas"], environment: [:], logPath: directory + "/log")
        }.run()

        // --max-failed-trials 1 would have stopped the job at a trainer's failure.
        #expect(outcome.stop == nil)
        #expect(launcher.launched.map(\.trialID) == [1, 1, 1, 2, 3])
        let trials = try store.trials()
        #expect(trials.map(\.state) == [.failed, .succeeded, .succeeded])
        #expect(trials[0].lostRuns == 3)
        #expect(trials[0].error
            == "lost to the cluster 3 times, last: Slurm job 9 PREEMPTED; not counted against --max-failed-trials")
    }

    @Test func aLaunchersOwnFailuresAreRecordedWithTheirReasonAndCount() throws {
        let store = try makeStore(maxTrials: 4, parallel: 1, maxFailed: 2)
        let launcher = FakeLauncher()
        launcher.script = { _ in FakeLauncher.Script(exit: .failed("Slurm job 3 reached its time limit (TIMEOUT)"), metrics: nil) }
        let outcome = try loop(store, launcher, RecordingObserver(), ManualClock()).run()
        #expect(outcome.stop == .failures(count: 2, limit: 2))
        #expect(try store.trials().map(\.error) == Array(repeating: "Slurm job 3 reached its time limit (TIMEOUT)", count: 2))
    }

    @Test func aLostRunOfACancelledJobIsCancelledNotRunAgain() throws {
        let store = try makeStore(maxTrials: 2, parallel: 1)
        let launcher = FakeLauncher()
        launcher.script = { _ in FakeLauncher.Script(turns: 1000) }
        // A cancelled Slurm job whose node failed as it stopped.
        launcher.cancelledExit = .lost("Slurm job 1 NODE_FAIL")
        let clock = ManualClock()
        var signals = 0
        clock.onSleep = { elapsed in if elapsed == .milliseconds(200) { signals = 1 } }
        let outcome = try loop(store, launcher, RecordingObserver(), clock, policy: .cancel) { signals }.run()
        #expect(outcome.stop == .interrupted)
        #expect(launcher.launched.count == 1 && launcher.cancelled == [1])
        #expect(try store.trials().map(\.state) == [.cancelled])
    }

    @Test func launcherNotesBecomeEvents() throws {
        let store = try makeStore(maxTrials: 1, parallel: 1)
        let launcher = FakeLauncher()
        launcher.pendingNotes = [
            TrialNote(trialID: 1, text: "Slurm job 5 PENDING (Resources)"), TrialNote(trialID: nil, text: "squeue failed"),
        ]
        let observer = RecordingObserver()
        _ = try loop(store, launcher, observer, ManualClock()).run()
        #expect(observer.texts.contains("trial 1: Slurm job 5 PENDING (Resources)"))
        #expect(observer.texts.contains("launcher: squeue failed"))
        #expect(observer.events.contains(.trialNote(trial: nil, text: "squeue failed")))
    }
}
