import Foundation

/// The job loop's side of pruning: follows the running trials' curves, records them, asks the rule, and stops the
/// trials it prunes (SIGTERM, then after the grace period SIGKILL, through the launcher; `scancel` for Slurm).
///
/// The decision is recorded (the trial marked pruned, with its partial accuracy) the moment it is taken, before
/// the run has stopped, so that a search killed meanwhile resumes with it; a resumed job's rule is rebuilt by
/// replaying the stored curves in the order they arrived, which gives back the same rung records.
final class TrialStopper {
    private let store: JobStore
    private let launcher: any TrialLauncher
    private let observer: any JobObserver
    private let clock: any JobClock
    private let watcher: CurveWatcher
    private var rule: PruningRule?
    private let grace: Duration
    /// Trials being stopped: when their grace period ends, and whether they were killed already.
    private var stopping: [Int: (deadline: Duration, killed: Bool)] = [:]

    init(store: JobStore, launcher: any TrialLauncher, observer: any JobObserver, clock: any JobClock) throws {
        self.store = store
        self.launcher = launcher
        self.observer = observer
        self.clock = clock
        watcher = CurveWatcher(trainerCommand: store.config.trainerCommand)
        let configuration = store.config.pruner
        grace = configuration?.grace ?? PrunerConfiguration.defaults.grace
        if let configuration {
            var rule = PruningRule(configuration)
            for point in try store.curvePoints() { _ = rule.report(trial: point.trialID, step: point.step, value: point.value) }
            self.rule = rule
        }
    }

    /// A trial's run was launched (or re-attached): its curve is followed from now.
    func started(_ trialID: Int) {
        watcher.start(trialID, directory: store.trialDirectory(trialID))
    }

    /// True when the trial's run ended because it was pruned: its ending is not a failure.
    func ended(_ trialID: Int) -> Bool {
        // The last results of the run complete its curve.
        if stopping[trialID] == nil { try? record(trialID, judge: false, running: nil) }
        watcher.forget(trialID)
        guard stopping.removeValue(forKey: trialID) != nil else { return false }
        try? TrialStatusFile(directory: store.trialDirectory(trialID)).write("pruned", reason: "stopped early by --pruner")
        return true
    }

    /// One turn: the running trials' new results recorded and judged; the pruned ones asked to stop, and those
    /// past their grace period killed.
    func turn(_ running: [LaunchedTrial]) throws {
        // In trial order, so that the decisions of one turn do not depend on a dictionary's order.
        for trial in running.sorted(by: { $0.trialID < $1.trialID }) where stopping[trial.trialID] == nil {
            try record(trial.trialID, judge: true, running: trial)
        }
        let now = clock.now()
        let overdue = running.filter { trial in stopping[trial.trialID].map { !$0.killed && now >= $0.deadline } ?? false }
        if !overdue.isEmpty {
            launcher.kill(overdue)
            for trial in overdue { stopping[trial.trialID]?.killed = true }
        }
    }

    private func record(_ trialID: Int, judge: Bool, running: LaunchedTrial?) throws {
        let points = watcher.newPoints(trialID, directory: store.trialDirectory(trialID))
        guard !points.isEmpty else { return }
        try store.addCurvePoints(points)
        guard judge, let running else {
            for point in points { _ = rule?.report(trial: point.trialID, step: point.step, value: point.value) }
            return
        }
        for point in points {
            guard case .prune(let step, let value)? = rule?.report(trial: trialID, step: point.step, value: point.value)
            else { continue }
            try store.markPruned(trialID, step: step, value: value)
            stopping[trialID] = (clock.now() + grace, false)
            launcher.cancel([running])
            observer.event(.trialPruned(trial: trialID, step: step, value: value))
            return
        }
    }
}
