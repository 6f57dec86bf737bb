/// One trial's run as a launcher starts it: a command line in the trial's folder.
///
/// The command is the trial runner (`nas trainer ...`), which trains, exports, counts, measures and scores the
/// trial and leaves `metrics.json` in `directory`; the launcher decides only where and how it runs.
public struct TrialRun: Sendable, Equatable {
    /// The trial's id.
    public var trialID: Int
    /// The trial's folder (`<job_dir>/<trial_id>`), where the run leaves its files.
    public var directory: String
    /// The executable and its arguments.
    public var command: [String]
    /// Variables set on top of the launcher's own environment.
    public var environment: [String: String]
    /// Where the run's standard output and error go.
    public var logPath: String

    /// Describes a run.
    public init(trialID: Int, directory: String, command: [String], environment: [String: String], logPath: String) {
        self.trialID = trialID
        self.directory = directory
        self.command = command
        self.environment = environment
        self.logPath = logPath
    }
}

/// How a trial's run ended, as its launcher saw it.
public enum TrialExit: Sendable, Equatable {
    /// The trial runner exited with this status.
    case exited(Int32)
    /// The trial runner was killed by this signal.
    case signaled(Int32)
    /// The launcher ended the run for a reason of its own, which says why (a scheduler's time or memory limit, a
    /// job cancelled outside the search); counted as a failure like a non-zero exit.
    case failed(String)
    /// The run was lost to the cluster (a preempted job, a failed node, a job gone without a final state): not
    /// the trainer's failure, so the job loop runs the trial again (a bounded number of times).
    case lost(String)

    /// The trial runner's exit status when the trial's loss became NaN (`job_status.json` says
    /// `failed_with_nan_error`, as in vertex-ai-nas).
    public static let nanStatus: Int32 = 3
    /// The trial runner's exit status when the trial was not trained because its untrained model missed a hard
    /// device target (`--latency-first`; `job_status.json` says `infeasible`, `metrics.json` has the measurement).
    public static let infeasibleStatus: Int32 = 4
    /// How a trial runner's log line begins when it is about to call code that may crash it (a constraint plugin);
    /// when a signal kills the runner, the last such line says what it was doing.
    public static let callNotice = "nas trainer: calling "
}

/// A launched trial, as its launcher knows it.
public struct LaunchedTrial: Sendable, Hashable {
    /// The trial's id.
    public var trialID: Int
    /// The launcher's own handle for the run: a process id for local processes, a job id on a cluster.
    public var handle: String

    /// A launched trial.
    public init(trialID: Int, handle: String) {
        self.trialID = trialID
        self.handle = handle
    }
}

/// Something worth showing about a running trial: its scheduler's state and why (`PENDING (Resources)`).
public struct TrialNote: Sendable, Equatable {
    /// The trial's id; nil for a note about the launcher itself (a failed query).
    public var trialID: Int?
    /// The line to show.
    public var text: String

    /// A note about a trial, or about the launcher.
    public init(trialID: Int?, text: String) {
        self.trialID = trialID
        self.text = text
    }
}

/// Where trials run: child processes of this one (`LocalLauncher`) or a cluster scheduler's jobs (`SlurmLauncher`).
///
/// The job loop asks for the endings of all its running trials in one call per turn, so that a launcher whose
/// queries are costly (a scheduler's status command) makes one per turn, however many trials run.
public protocol TrialLauncher: AnyObject {
    /// Starts a trial's run; throws when it cannot be started at all.
    func launch(_ run: TrialRun) throws -> LaunchedTrial
    /// The endings of those of `trials` that have ended; never blocks on a trial that still runs.
    func poll(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial: TrialExit]
    /// Asks runs to stop (SIGTERM to a local process group); their endings come through `poll` as usual.
    func cancel(_ trials: [LaunchedTrial])
    /// Insists that runs asked to stop stop now, once their grace period is over (a pruned trial's trainer that
    /// ignores SIGTERM); by default a second `cancel`, which a trial runner takes as "kill now" (SIGKILL to its
    /// trainer command's group) and which Slurm's `scancel` escalates by itself after its KillWait.
    func kill(_ trials: [LaunchedTrial])
    /// Takes over trials that an earlier search left running, with the handles it stored (an empty handle when it
    /// died before it could store one), and returns those this launcher follows again, handles filled in; the job
    /// loop runs the others again. A launcher whose runs die with their search re-attaches to none.
    func reattach(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial]
    /// What changed since the last call that is worth showing (a queued job's state and its reason).
    func notes() -> [TrialNote]
}

extension TrialLauncher {
    /// A second `cancel`.
    public func kill(_ trials: [LaunchedTrial]) { cancel(trials) }
    /// Re-attaches to none: the runs ended with the search that launched them.
    public func reattach(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial] { [] }
    /// Nothing to show.
    public func notes() -> [TrialNote] { [] }
}
