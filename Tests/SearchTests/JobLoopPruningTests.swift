import Foundation
import Search
import TestSupport
import Testing
import Trainer

/// A launcher whose trials each report one epoch per poll (a hypertune line with its `global_step`, as the
/// built-in trainer and the Python helper write them) and end after `epochs` polls; a cancel (SIGTERM) ends a run
/// at the next poll unless it ignores SIGTERM, a kill always does.
final class CurveLauncher: TrialLauncher {
    var epochs = 9
    /// Trial id -> its accuracy at epoch `e` is `accuracy(id, e)`.
    var accuracy: (Int, Int) -> Double = { id, epoch in 0.1 * Double(id) + 0.01 * Double(epoch) }
    var ignoresSIGTERM = false
    private(set) var cancelled: [Int] = []
    private(set) var killed: [Int] = []
    /// The threads `kill` was called on.
    private(set) var killThreads: [pthread_t] = []
    private(set) var launched: [Int] = []
    private var running: [LaunchedTrial: (directory: String, epoch: Int, ending: TrialExit?)] = [:]

    func launch(_ run: TrialRun) throws -> LaunchedTrial {
        let trial = LaunchedTrial(trialID: run.trialID, handle: "curve-\(run.trialID)")
        running[trial] = (run.directory, 0, nil)
        launched.append(run.trialID)
        return trial
    }

    func poll(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial: TrialExit] {
        var endings: [LaunchedTrial: TrialExit] = [:]
        for trial in trials {
            guard var entry = running[trial] else { continue }
            if let ending = entry.ending {
                running[trial] = nil
                endings[trial] = ending
                continue
            }
            entry.epoch += 1
            let value = accuracy(trial.trialID, entry.epoch)
            let path = CommandTrainer.hypertunePath(entry.directory)
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let lines = (1...entry.epoch).map { epoch in
                "{\"global_step\": \"\(epoch)\", \"top_1_accuracy\": \"\(accuracy(trial.trialID, epoch))\"}"
            }
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
            if entry.epoch >= epochs {
                let metrics = ["top_1_accuracy": value, "nas_reward": value]
                try JSONEncoder().encode(metrics).write(
                    to: URL(fileURLWithPath: entry.directory).appendingPathComponent(TrialFiles.metrics))
                running[trial] = nil
                endings[trial] = .exited(0)
            } else {
                running[trial] = entry
            }
        }
        return endings
    }

    func cancel(_ trials: [LaunchedTrial]) {
        for trial in trials {
            cancelled.append(trial.trialID)
            if !ignoresSIGTERM { running[trial]?.ending = .signaled(SIGTERM) }
        }
    }

    func kill(_ trials: [LaunchedTrial]) {
        killThreads.append(pthread_self())
        for trial in trials {
            killed.append(trial.trialID)
            running[trial]?.ending = .signaled(SIGKILL)
        }
    }
}

/// The job loop with a pruner: curves recorded, trials stopped at rung boundaries and recorded as pruned.
@Suite struct JobLoopPruningTests {
    func makeStore(maxTrials: Int, parallel: Int, pruner: PrunerConfiguration) throws -> JobStore {
        var config = sampleConfig()
        config.maxTrials = maxTrials
        config.maxParallelTrials = parallel
        config.maxFailedTrials = 1
        config.pruner = pruner
        return try JobStore.create(directory: try TestSupport.temporaryDirectory("nas-prune").path, config: config)
    }

    func loop(_ store: JobStore, _ launcher: CurveLauncher, _ observer: RecordingObserver, _ clock: any JobClock) -> JobLoop {
        let space = SearchSpace.mnistListOfDictionary
        return JobLoop(
            store: store, launcher: launcher, observer: observer, clock: clock, interrupts: { 0 },
            propose: { proposed, _ in try space.parameters(of: try space.allChoices()[proposed.count]) }
        ) { trial, directory in
            TrialRun(trialID: trial.id, directory: directory, command: ["nas"], environment: [:], logPath: directory + "/log")
        }
    }

    static let asha = PrunerConfiguration(kind: .asha, minResource: 1, reductionFactor: 3, maxResource: 9, grace: .seconds(1))

    @Test func ashaStopsTrialsThatFallBehindAndRecordsThemAsPrunedNotFailed() throws {
        let store = try makeStore(maxTrials: 4, parallel: 4, pruner: Self.asha)
        let launcher = CurveLauncher()
        let bases = [1: 0.5, 2: 0.4, 3: 0.6, 4: 0.3]
        launcher.accuracy = { id, epoch in bases[id]! + 0.01 * Double(epoch) }
        let observer = RecordingObserver()
        let outcome = try loop(store, launcher, observer, ManualClock()).run()

        // Two pruned trials with --max-failed-trials 1: not failures, the job was not stopped.
        #expect(outcome.stop == nil)
        let trials = try store.trials()
        #expect(trials.map(\.state) == [.succeeded, .pruned, .succeeded, .pruned])
        // At rung 1 (in trial order): 0.51 goes on, 0.41 is not the best of two, 0.61 is, 0.31 is not the top third.
        #expect(launcher.cancelled == [2, 4])
        #expect(abs(trials[1].metrics["top_1_accuracy"]! - 0.41) < 1e-9)
        #expect(trials[1].metrics[JobStore.prunedAtStepMetric] == 1)
        #expect(trials[1].reward == nil && trials[1].error == nil)
        #expect(observer.events.contains(.trialPruned(trial: 4, step: 1, value: 0.31)))
        // Every curve is kept: the full ones and the stopped ones up to their stop.
        let curves = try store.curves()
        #expect(curves[1]?.map(\.step) == (1...9).map(Double.init))
        #expect(curves[2]?.map(\.step) == [1])
        #expect(try TrialStatusFile(directory: store.trialDirectory(2)).read() == "pruned")
        #expect(launcher.killed.isEmpty)
    }

    @Test func aTrialThatIgnoresSIGTERMIsKilledAfterTheGracePeriod() throws {
        let store = try makeStore(maxTrials: 2, parallel: 2, pruner: Self.asha)
        let launcher = CurveLauncher()
        launcher.ignoresSIGTERM = true
        launcher.epochs = 30
        launcher.accuracy = { id, epoch in 0.5 - 0.1 * Double(id) + 0.01 * Double(epoch) }
        let clock = ManualClock()
        var cancelledAt: Duration?
        var killedAt: Duration?
        clock.onSleep = { now in
            if cancelledAt == nil, !launcher.cancelled.isEmpty { cancelledAt = now }
            if killedAt == nil, !launcher.killed.isEmpty { killedAt = now }
        }
        _ = try loop(store, launcher, RecordingObserver(), clock).run()
        // Trial 2 (0.31 at rung 1) is below trial 1 (0.41): asked to stop, it goes on, and is killed a second
        // (--pruner-grace-seconds) later on the loop's clock.
        #expect(launcher.cancelled == [2])
        #expect(launcher.killed == [2])
        if let cancelledAt, let killedAt { #expect(killedAt - cancelledAt >= .seconds(1)) }
        #expect(try store.trials().map(\.state) == [.succeeded, .pruned])
    }

    /// The grace period is timed by the loop's own clock on the loop's own thread: with the system clock, the
    /// SIGKILL of a trial that ignores SIGTERM comes from the thread that runs the loop, not from a task or a
    /// timer of Swift's cooperative pool.
    @Test func theGracePeriodRunsOnTheLoopsOwnThread() async throws {
        var pruner = Self.asha
        pruner.grace = .milliseconds(200)
        let store = try makeStore(maxTrials: 2, parallel: 2, pruner: pruner)
        let launcher = CurveLauncher()
        launcher.ignoresSIGTERM = true
        // Each turn sleeps 100 ms at least, so the 0.2 s grace ends within 3 turns of the SIGTERM, long before
        // the 20 epochs (turns) the trial would take to end by itself.
        launcher.epochs = 20
        launcher.accuracy = { id, epoch in 0.5 - 0.1 * Double(id) + 0.01 * Double(epoch) }
        // Only the new thread touches the loop until it has returned.
        nonisolated(unsafe) let loop = loop(store, launcher, RecordingObserver(), SystemJobClock())
        let loopThread = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { _ = try loop.run(); return pthread_self() })
            }
        }
        #expect(launcher.cancelled == [2])
        #expect(launcher.killed == [2])
        #expect(launcher.killThreads.count == 1 && launcher.killThreads.allSatisfy { pthread_equal($0, loopThread) != 0 })
        #expect(try store.trials().map(\.state) == [.succeeded, .pruned])
    }

    @Test func decisionsAndRungRecordsSurviveAResume() throws {
        let store = try makeStore(maxTrials: 2, parallel: 2, pruner: Self.asha)
        let bases = [1: 0.5, 2: 0.4, 3: 0.45, 4: 0.7]
        let first = CurveLauncher()
        first.accuracy = { id, epoch in bases[id]! + 0.01 * Double(epoch) }
        _ = try loop(store, first, RecordingObserver(), ManualClock()).run()
        #expect(try store.trials().map(\.state) == [.succeeded, .pruned])

        // The job resumed with more trials: the pruned trial stays pruned and does not run again, and the rung
        // records come back from the stored curves, so trial 3 (0.46 against 0.51 and 0.41 at rung 1) is stopped.
        let resumed = try JobStore.open(directory: store.directory)
        var config = resumed.config
        config.maxTrials = 4
        try resumed.update(config: config)
        let second = CurveLauncher()
        second.accuracy = first.accuracy
        _ = try loop(resumed, second, RecordingObserver(), ManualClock()).run()
        #expect(second.launched == [3, 4])
        #expect(second.cancelled == [3])
        #expect(try resumed.trials().map(\.state) == [.succeeded, .pruned, .pruned, .succeeded])
    }
}
