import Constraints
import Foundation
import Trainer

/// What Ctrl-C (SIGINT or SIGTERM) does to a job's running trials.
public enum InterruptPolicy: String, CaseIterable, Sendable {
    /// Stop launching, let the running trials finish; a second interrupt cancels them.
    case wait
    /// Stop launching and cancel the running trials.
    case cancel
}

/// Why a job stopped before its trials were done.
public enum JobStop: Sendable, Equatable, CustomStringConvertible {
    /// Too many trials failed.
    case failures(count: Int, limit: Int)
    /// The user interrupted the job.
    case interrupted

    public var description: String {
        switch self {
        case .failures(let count, let limit): return "\(count) trials failed (--max-failed-trials \(limit))"
        case .interrupted: return "interrupted"
        }
    }
}

/// How a job loop ended.
public struct JobOutcome: Sendable, Equatable {
    /// Why it stopped early; nil when every trial it could run ran.
    public var stop: JobStop?
    /// True when the proposer had nothing more to propose before the trial budget was spent.
    public var exhausted: Bool

    /// An outcome.
    public init(stop: JobStop?, exhausted: Bool) {
        self.stop = stop
        self.exhausted = exhausted
    }
}

/// The job loop: runs a job's trials through a launcher, at most `maxParallelTrials` at once, recording each
/// change of state in the job store as it happens, until the job is done, too many trials failed, or the user
/// stops it.
///
/// Each turn reaps the trials that ended (one `poll` of the launcher for all of them), records them, applies
/// the failure budget and interrupts, launches pending trials (a resumed job's) and then new proposals while
/// there is room, reports progress and sleeps `pollInterval` on the injected clock. A trial is recorded as
/// running before its launch and its launcher's handle right after, so that a resumed search re-attaches to the
/// runs its launcher still follows (a Slurm job) and runs the others again (`requeueInterrupted`). A run lost to
/// the cluster runs again, at most `maxLostRuns` times, and never counts against `maxFailedTrials`.
/// The loop runs on the caller's thread and blocks it between turns; it never uses Swift's cooperative pool.
public final class JobLoop {
    /// Proposes the next trial's parameters from the architectures proposed so far and the finished trials, in
    /// the order they finished; nil when there is nothing more to propose.
    public typealias Proposer = (_ proposed: [SearchChoice], _ finished: [TrialOutcome]) throws -> TrialParameters?

    /// The settings of a loop.
    public struct Configuration: Sendable {
        /// What an interrupt does to running trials.
        public var onInterrupt: InterruptPolicy
        /// Time between turns of the loop.
        public var pollInterval: Duration
        /// How many times a trial whose run was lost to the cluster runs again before it counts as failed (still
        /// not against `maxFailedTrials`: the trainer did not fail).
        public var maxLostRuns: Int

        /// Settings with a 100 ms turn; a lost trial runs again up to 3 times.
        public init(
            onInterrupt: InterruptPolicy = .wait, pollInterval: Duration = .milliseconds(100), maxLostRuns: Int = 3
        ) {
            self.onInterrupt = onInterrupt
            self.pollInterval = pollInterval
            self.maxLostRuns = maxLostRuns
        }
    }

    private let store: JobStore
    private let propose: Proposer
    private let launcher: any TrialLauncher
    private let command: (TrialRecord, _ directory: String) throws -> TrialRun
    private let observer: any JobObserver
    private let clock: any JobClock
    private let interrupts: () -> Int
    private let configuration: Configuration
    private let succeeded: (Int) -> Void

    private var config: JobConfig { store.config }
    /// Set when the proposer has nothing more to propose.
    private var spaceExhausted = false

    /// A loop over `store`'s job. `command` gives a trial's run (what the launcher starts); `interrupts` counts
    /// the SIGINT/SIGTERM received so far; `succeeded` is told each trial recorded as succeeded (the latency
    /// screen keeps its measurements).
    public init(
        store: JobStore, configuration: Configuration = Configuration(), launcher: any TrialLauncher,
        observer: any JobObserver, clock: any JobClock = SystemJobClock(), interrupts: @escaping () -> Int,
        succeeded: @escaping (Int) -> Void = { _ in },
        propose: @escaping Proposer, command: @escaping (TrialRecord, _ directory: String) throws -> TrialRun
    ) {
        self.succeeded = succeeded
        self.store = store
        self.configuration = configuration
        self.launcher = launcher
        self.observer = observer
        self.clock = clock
        self.interrupts = interrupts
        self.propose = propose
        self.command = command
    }

    /// Runs the job until it is done or stopped; trials left unfinished by an earlier run go first.
    public func run() throws -> JobOutcome {
        var running: [Int: (trial: LaunchedTrial, started: Duration)] = [:]
        let left = try store.trials().filter { $0.state == .running }
        if !left.isEmpty {
            let attached = try launcher.reattach(left.map { LaunchedTrial(trialID: $0.id, handle: $0.handle ?? "") })
            for trial in attached where left.contains(where: { $0.id == trial.trialID }) {
                try store.setHandle(trial.trialID, trial.handle)
                running[trial.trialID] = (trial, clock.now())
            }
            if !running.isEmpty { observer.event(.reattached(trials: running.keys.sorted())) }
        }
        let requeued = try store.requeueInterrupted(keeping: Set(running.keys))
        if requeued > 0 { observer.event(.resumed(requeued: requeued)) }
        // Pruning (--pruner) and the curves of running trials; the rule is rebuilt from the stored curves.
        let stopper = try TrialStopper(store: store, launcher: launcher, observer: observer, clock: clock)
        for id in running.keys { stopper.started(id) }
        var durations: [Duration] = []
        var stop: JobStop?
        var launching = true
        var cancelled = false
        spaceExhausted = false

        while true {
            // Reap the trials that ended and record them.
            if !running.isEmpty {
                let endings = try launcher.poll(running.values.map(\.trial))
                for (trial, exit) in endings.sorted(by: { $0.key.trialID < $1.key.trialID }) {
                    guard let entry = running.removeValue(forKey: trial.trialID) else { continue }
                    durations.append(clock.now() - entry.started)
                    if stopper.ended(trial.trialID) {
                        observer.event(.trialNote(trial: trial.trialID, text: "stopped (\(exit))"))
                        continue
                    }
                    try record(trial.trialID, exit, cancelled: cancelled)
                }
                try stopper.turn(running.values.map(\.trial))
            }
            for note in launcher.notes() { observer.event(.trialNote(trial: note.trialID, text: note.text)) }
            var trials = try store.trials()
            // A trial failed by the cluster (lost more often than it may run again) is not the trainer's failure.
            let failed = trials.filter { $0.state == .failed && $0.lostRuns <= configuration.maxLostRuns }.count
            if stop == nil, failed >= config.maxFailedTrials {
                stop = .failures(count: failed, limit: config.maxFailedTrials)
                observer.event(.stopping(reason: stop!.description))
            }
            let signals = interrupts()
            if signals > 0, stop == nil {
                stop = .interrupted
                observer.event(
                    .interrupted(
                        running: running.count,
                        cancelling: !running.isEmpty && configuration.onInterrupt == .cancel))
            }
            if !cancelled, signals > 1 || (signals > 0 && configuration.onInterrupt == .cancel) {
                cancelled = true
                launcher.cancel(running.values.map(\.trial))
            }
            // Launch while there is room: pending trials first (a resumed job's), then new proposals.
            while stop == nil, launching, running.count < config.maxParallelTrials {
                guard let trial = try nextTrial(&trials) else {
                    launching = false
                    break
                }
                let directory = store.trialDirectory(trial.id)
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                // Recorded as running first: a search killed right after the launch re-runs the trial on resume.
                try store.markRunning(trial.id)
                let launched: LaunchedTrial
                do {
                    launched = try launcher.launch(try command(trial, directory))
                } catch {
                    try store.markFailed(trial.id, reason: "\(error)")
                    throw error
                }
                try store.setHandle(trial.id, launched.handle)
                running[trial.id] = (launched, clock.now())
                stopper.started(trial.id)
                observer.event(
                    .trialStarted(trial: trial.id, parameters: trial.parameters, description: Self.describe(trial.parameters)))
                trials = try store.trials()
            }
            if running.isEmpty, stop != nil || !launching { break }
            var state = progress(trials, running: running.count, durations: durations)
            state.measuring = running.keys.filter { id in
                let directory = store.trialDirectory(id) as NSString
                return FileManager.default.fileExists(atPath: directory.appendingPathComponent(TrialFiles.model))
                    && !FileManager.default.fileExists(atPath: directory.appendingPathComponent(TrialFiles.metrics))
            }.count
            observer.progress(state)
            clock.sleep(for: configuration.pollInterval)
        }
        return JobOutcome(stop: stop, exhausted: spaceExhausted)
    }

    /// The next trial to run: a pending one, or a new proposal while the job has fewer than `maxTrials`.
    private func nextTrial(_ trials: inout [TrialRecord]) throws -> TrialRecord? {
        if let pending = trials.first(where: { $0.state == .pending }) { return pending }
        // Screened candidates were never trained: they do not spend the trial budget.
        guard trials.filter({ $0.state != .screened }).count < config.maxTrials else { return nil }
        let finished = trials.filter { $0.state.isFinished }
            .sorted { ($0.endedAt ?? 0, $0.id) < ($1.endedAt ?? 0, $1.id) }
            .map { TrialOutcome(choice: SearchChoice($0.decisions), reward: $0.reward, metrics: $0.metrics) }
        guard let parameters = try propose(trials.map { SearchChoice($0.decisions) }, finished) else {
            spaceExhausted = true
            return nil
        }
        let id = try store.addTrial(parameters: parameters.jsonText, decisions: parameters.choice.decisions)
        try parameters.write(toTrialDirectory: store.trialDirectory(id))
        trials = try store.trials()
        return trials.first { $0.id == id }
    }

    /// Records how a trial's run ended: its metrics and reward, or why it failed.
    private func record(_ id: Int, _ exit: TrialExit, cancelled: Bool) throws {
        let directory = store.trialDirectory(id)
        if exit == .exited(TrialExit.infeasibleStatus) {
            let path = (directory as NSString).appendingPathComponent(TrialFiles.metrics)
            if let data = FileManager.default.contents(atPath: path),
                let metrics = try? JSONDecoder().decode([String: Double].self, from: data)
            {
                let reason = TrialStatusFile(directory: directory).statedReason() ?? "missed a hard device target"
                try store.markInfeasible(id, metrics: metrics, reason: reason)
                observer.event(.trialInfeasible(trial: id, reason: reason))
                return
            }
        }
        if exit == .exited(0) {
            let path = (directory as NSString).appendingPathComponent(TrialFiles.metrics)
            if let data = FileManager.default.contents(atPath: path),
                let metrics = try? JSONDecoder().decode([String: Double].self, from: data),
                let reward = metrics[MetricName.reward.rawValue]
            {
                try store.markSucceeded(id, metrics: metrics, reward: reward)
                succeeded(id)
                observer.event(.trialSucceeded(trial: id, metrics: metrics))
                return
            }
            try store.markFailed(id, reason: "the trainer exited 0 but wrote no readable \(TrialFiles.metrics)")
        } else if cancelled {
            try store.markFailed(id, reason: "cancelled by the user", state: .cancelled)
            try? TrialStatusFile(directory: directory).write("cancelled", reason: "cancelled by the user")
            observer.event(.trialCancelled(trial: id))
            return
        } else if case .lost(let why) = exit {
            let lost = (try store.trials().first { $0.id == id }?.lostRuns ?? 0) + 1
            let rerun = lost <= configuration.maxLostRuns
            let reason = rerun
                ? "lost to the cluster (\(why)); running it again (\(lost) of \(configuration.maxLostRuns))"
                : "lost to the cluster \(lost) times, last: \(why); not counted against --max-failed-trials"
            try store.markLost(id, reason: reason, rerun: rerun)
            observer.event(rerun ? .trialLost(trial: id, reason: reason) : .trialFailed(trial: id, reason: reason))
            return
        } else {
            let reason: String
            switch exit {
            case .exited(TrialExit.nanStatus): reason = "failed_with_nan_error"
            case .exited(let status):
                // The trial runner's own account (a trainer command's failure with its last lines) says more
                // than the tail of its log.
                reason =
                    TrialStatusFile(directory: directory).reason()
                    ?? "trainer exited with status \(status): \(Self.logTail(directory))"
            case .signaled(let signal):
                reason = "trainer killed by signal \(signal) (\(String(cString: strsignal(signal))))"
                    + (Self.lastCall(directory).map { " while calling \($0)" } ?? "")
            case .failed(let why), .lost(let why): reason = why
            }
            try store.markFailed(id, reason: reason)
        }
        let reason = try store.trials().first { $0.id == id }?.error ?? "failed"
        // A runner killed (or one that exited without saying why) leaves its status running: make it agree.
        let status = TrialStatusFile(directory: directory)
        if (try? status.read()).map({ $0 == "running" }) ?? true { try? status.write("failed", reason: reason) }
        observer.event(.trialFailed(trial: id, reason: reason))
    }

    private func progress(_ trials: [TrialRecord], running: Int, durations: [Duration]) -> JobProgress {
        let done = trials.filter { $0.state.isFinished }.count
        let best = trials.compactMap { t in t.reward.map { (trial: t.id, reward: $0) } }.max { $0.reward < $1.reward }
        let remaining = durations.isEmpty
            ? nil
            : durations.reduce(.zero, +) / durations.count * max(0, config.maxTrials - done)
                / config.maxParallelTrials
        return JobProgress(
            done: done, running: running, failed: trials.filter { $0.state == .failed }.count, total: config.maxTrials,
            best: best, remaining: remaining)
    }

    /// The last lines of a trial's log, for failure reports.
    static func logTail(_ directory: String, lines: Int = 3) -> String {
        let path = (directory as NSString).appendingPathComponent(TrialFiles.log)
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        let text = String(decoding: data.suffix(4096), as: UTF8.self)
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }

    /// What the trial's runner was last about to call (`nas trainer` announces each plugin call in its log), read
    /// from the end of the log, past the backtrace the Swift runtime appends to a crash.
    static func lastCall(_ directory: String) -> String? {
        let path = (directory as NSString).appendingPathComponent(TrialFiles.log)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let text = String(decoding: data.suffix(1 << 16), as: UTF8.self)
        return text.split(separator: "\n").last { $0.hasPrefix(TrialExit.callNotice) }
            .map { String($0.dropFirst(TrialExit.callNotice.count)) }
    }

    /// A trial's architecture in a line: its `value`, integers as integers.
    public static func describe(_ parameters: String) -> String {
        guard let value = try? TrialParameters(jsonText: parameters).value else { return parameters }
        return value.integerText
    }
}

/// The files of a trial's folder, in vertex-ai-nas's layout.
public enum TrialFiles {
    /// The metrics the trial runner leaves: accuracy, FLOPs, device metrics, `nas_reward`.
    public static let metrics = "metrics.json"
    /// The trial runner's standard output and error.
    public static let log = "trainer.log"
    /// The trial's state: `{"status": "running" | "succeeded" | "failed" | "failed_with_nan_error"}`.
    public static let status = "job_status.json"
    /// The trial's exported model.
    public static let model = "saved_model/model.onnx"
    /// The seed's record of a measurement beside the model.
    public static let modelLatency = "saved_model/model_latency.json"
}
