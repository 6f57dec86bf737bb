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

    /// The trial runner's exit status when the trial's loss became NaN (`job_status.json` says
    /// `failed_with_nan_error`, as in vertex-ai-nas).
    public static let nanStatus: Int32 = 3
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

/// Where trials run: a child process of this one today, a cluster scheduler's job next.
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
}
