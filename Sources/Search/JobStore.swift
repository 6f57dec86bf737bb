import Foundation

/// Why a job directory could not be used. Each says what was wrong and what to do.
public struct JobStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case notAJob, anotherJob, database, unknownTrial, badState, badName
    }

    private let code: Code
    /// The readable explanation.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    static func notAJob(_ directory: String) -> JobStoreError {
        JobStoreError(
            .notAJob,
            "'\(directory)' is not a nas job directory (it has no \(JobStore.fileName)); give the folder a search or train job wrote"
        )
    }

    static func anotherJob(_ directory: String, _ name: String) -> JobStoreError {
        JobStoreError(
            .anotherJob,
            "'\(directory)' already holds job '\(name)'; choose another --job-name or --root-output-dir, or continue it with --resume \(directory)"
        )
    }

    static func badName(_ name: String, _ reason: String) -> JobStoreError {
        JobStoreError(
            .badName,
            "the job name \(name.debugDescription) \(reason); a job's name is its folder under the root, so it must be "
                + "one plain path component, such as search-1 or mobilenet_v2.try3")
    }

    static func database(_ path: String, _ message: String) -> JobStoreError {
        JobStoreError(.database, "job database \(path): \(message)")
    }

    static func unknownTrial(_ id: Int) -> JobStoreError {
        JobStoreError(.unknownTrial, "trial \(id) does not exist in this job")
    }

    /// The trials a user named that the job does not have.
    public static func unknownTrials(_ ids: [Int], directory: String, known: [Int]) -> JobStoreError {
        let list = ids.map(String.init).joined(separator: ", ")
        let have = known.isEmpty ? "none" : "\(known.first!)...\(known.last!) (\(known.count) trials)"
        return JobStoreError(.unknownTrial, "job '\(directory)' has no trial \(list); its trials are \(have)")
    }
}

/// The state of one trial, as the job store records it.
public enum TrialState: String, Codable, Sendable, CaseIterable {
    /// Proposed, not started.
    case pending
    /// A trainer process is working on it.
    case running
    /// Finished with metrics and a reward.
    case succeeded
    /// Finished with an error (non-zero exit, NaN loss, killed...).
    case failed
    /// Stopped by the user before finishing.
    case cancelled
    /// Stopped early by the job's pruner (`--pruner`): its curve fell behind; its metrics hold the partial
    /// accuracy. Not a failure.
    case pruned
    /// Not trained: its untrained model missed a hard device target (`--latency-first`); its metrics hold the
    /// measured latency. Not a failure.
    case infeasible
    /// Not trained: the latency predictor said it cannot meet a hard latency target (`--predictor screen`).
    case screened
}

extension TrialState {
    /// True for the states a trial ends in (succeeded, failed, pruned, infeasible, screened); not for cancelled, which a
    /// resume runs again.
    public var isFinished: Bool { [.succeeded, .failed, .pruned, .infeasible, .screened].contains(self) }
}

/// What a job was started with: enough to resume it and to retrain its trials.
public struct JobConfig: Codable, Hashable, Sendable {
    /// `search` or `train` (stage 2, retrain-with-latency).
    public var kind: String
    /// The job's name.
    public var name: String
    /// The search space's name or file (search jobs).
    public var searchSpace: String
    /// `random`, `grid` or `evolution`.
    public var algorithm: String
    /// The seed of the search and of every trial's training.
    public var seed: Int
    /// How many trials to run.
    public var maxTrials: Int
    /// How many trainer processes at once.
    public var maxParallelTrials: Int
    /// Failed trials after which the job stops.
    public var maxFailedTrials: Int
    /// Constraint specs of the reward.
    public var constraints: [String]
    /// Device types whose latency the reward constrains.
    public var targetDeviceTypes: [String]
    /// Flags passed through to every `nas trainer`.
    public var trainerArguments: [String]
    /// For a train job: the search job it retrains.
    public var searchJobDirectory: String?
    /// For a train job: the search trials, in the order of this job's trials.
    public var searchTrials: [Int]
    /// Where the job's outputs are published besides the local folder (`gs://bucket/prefix/NAME`), or nil.
    public var outputLocation: String?
    /// How the job's trials reach their devices; nil in jobs started by earlier versions (the defaults then).
    public var fleet: JobFleetRecord?
    /// The user's own trainer, when the job runs one instead of the built-in trainer; absent from jobs written
    /// before trainer commands existed, which read as nil.
    public var trainerCommand: TrainerCommandSpec?
    /// Where trials run: `local` (nil in jobs written before there was a choice) or `slurm`.
    public var launcher: String?
    /// The Slurm resources and options of every trial's batch job, with `launcher` `slurm`.
    public var slurm: SlurmOptions?
    /// The early-stopping rule (`--pruner`); nil when every trial trains fully (and in jobs written before).
    public var pruner: PrunerConfiguration?
    /// The latency predictor's settings (`--predictor` and its thresholds), so that `--resume` keeps them; nil in
    /// jobs written before they were stored (the run's flags apply then).
    public var predictor: PredictorSettings?

    /// Creates a job configuration.
    public init(
        kind: String, name: String, searchSpace: String, algorithm: String, seed: Int, maxTrials: Int,
        maxParallelTrials: Int, maxFailedTrials: Int, constraints: [String], targetDeviceTypes: [String],
        trainerArguments: [String], searchJobDirectory: String? = nil, searchTrials: [Int] = [],
        outputLocation: String? = nil, fleet: JobFleetRecord? = nil, trainerCommand: TrainerCommandSpec? = nil
    ) {
        self.kind = kind
        self.name = name
        self.searchSpace = searchSpace
        self.algorithm = algorithm
        self.seed = seed
        self.maxTrials = maxTrials
        self.maxParallelTrials = maxParallelTrials
        self.maxFailedTrials = maxFailedTrials
        self.constraints = constraints
        self.targetDeviceTypes = targetDeviceTypes
        self.trainerArguments = trainerArguments
        self.searchJobDirectory = searchJobDirectory
        self.searchTrials = searchTrials
        self.outputLocation = outputLocation
        self.fleet = fleet
        self.trainerCommand = trainerCommand
    }
}

/// A job's fleet settings as stored, so that `--resume` keeps them (the token itself is never stored).
public struct JobFleetRecord: Codable, Hashable, Sendable {
    /// An external coordinator's URL; nil when the job embeds one.
    public var coordinator: String?
    /// The file holding an external coordinator's token, when one was given.
    public var tokenFile: String?
    /// Where an embedded coordinator listens.
    public var host: String
    /// The embedded coordinator's port; 0 picks a free one.
    public var port: Int
    /// `push`, `files` or `auto`.
    public var transport: String
    /// Seconds a trial waits for a worker of its type before `auto` uses files.
    public var pushWaitSeconds: Double
    /// The client TLS files of an external `https://` coordinator (absent in jobs made before TLS: none).
    public var tlsCA: String?
    /// The client certificate presented to that coordinator.
    public var tlsClientCert: String?
    /// The private key of `tlsClientCert`.
    public var tlsClientKey: String?

    /// A record.
    public init(
        coordinator: String?, tokenFile: String?, host: String, port: Int, transport: String, pushWaitSeconds: Double
    ) {
        self.coordinator = coordinator
        self.tokenFile = tokenFile
        self.host = host
        self.port = port
        self.transport = transport
        self.pushWaitSeconds = pushWaitSeconds
    }
}

/// One trial as recorded.
public struct TrialRecord: Hashable, Sendable {
    /// The trial id, from 1, as in vertex-ai-nas.
    public var id: Int
    /// Where the trial is.
    public var state: TrialState
    /// The architecture choice (`nas_params_str.json`'s content).
    public var parameters: String
    /// The choice as decision indices, for the search algorithms.
    public var decisions: [Int]
    /// Metrics the trainer reported (`top_1_accuracy`, `flops_million`, latencies...).
    public var metrics: [String: Double]
    /// The reward, once succeeded.
    public var reward: Double?
    /// Why it failed.
    public var error: String?
    /// For a train job's trial: the search trial it retrains.
    public var searchTrialID: Int?
    /// Seconds since 1970 when it started.
    public var startedAt: Double?
    /// Seconds since 1970 when it ended.
    public var endedAt: Double?
    /// The launcher's handle of its current run (a process id, a Slurm job id), once launched.
    public var handle: String?
    /// How many times its run was lost to the cluster (a preempted job, a failed node) and run again.
    public var lostRuns: Int

    /// Creates a record.
    public init(
        id: Int, state: TrialState, parameters: String, decisions: [Int], metrics: [String: Double],
        reward: Double? = nil, error: String? = nil, searchTrialID: Int? = nil, startedAt: Double? = nil,
        endedAt: Double? = nil, handle: String? = nil, lostRuns: Int = 0
    ) {
        self.id = id
        self.state = state
        self.parameters = parameters
        self.decisions = decisions
        self.metrics = metrics
        self.reward = reward
        self.error = error
        self.searchTrialID = searchTrialID
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.handle = handle
        self.lostRuns = lostRuns
    }
}

/// A job's state in SQLite inside its directory: one writer (the search process), WAL, each change committed.
public final class JobStore {
    /// The longest job name, in UTF-8 bytes: a file name's limit on Linux (NAME_MAX).
    public static let maxNameBytes = 255

    /// Checks that `name` can name a job's folder under the root output directory (a local folder or a bucket
    /// prefix) and nothing else: one path component, neither empty, `.` nor `..`, without `/`, `\\` or control
    /// characters, at most ``maxNameBytes`` bytes. Otherwise `--job-name ../../etc` would write outside the root and
    /// an empty name would make the root itself the job.
    public static func validateName(_ name: String) throws(JobStoreError) {
        if name.isEmpty { throw .badName(name, "is empty") }
        if name == "." || name == ".." { throw .badName(name, "names the root or its parent, not a folder in it") }
        if let separator = name.first(where: { $0 == "/" || $0 == "\\" }) {
            throw .badName(name, "holds the separator '\(separator)'")
        }
        if let control = name.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            throw .badName(name, "holds the control character U+\(String(control.value, radix: 16, uppercase: true))")
        }
        if name.utf8.count > maxNameBytes {
            throw .badName(name, "is \(name.utf8.count) bytes long, more than the \(maxNameBytes) a folder name may be")
        }
    }

    /// The database's file name inside the job directory.
    public static let fileName = "nas_job.sqlite"

    /// The job directory.
    public let directory: String
    /// What the job was started with (and what `--resume` changed since).
    public private(set) var config: JobConfig
    let database: Database

    private init(directory: String, config: JobConfig, database: Database) {
        self.directory = directory
        self.config = config
        self.database = database
    }

    /// Creates a new job in `directory` (created if needed); refuses a directory that holds another job.
    public static func create(directory: String, config: JobConfig) throws -> JobStore {
        let path = (directory as NSString).appendingPathComponent(fileName)
        if FileManager.default.fileExists(atPath: path) {
            let existing = try open(directory: directory)
            throw JobStoreError.anotherJob(directory, existing.config.name)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Built under a temporary name and renamed into place, so that no reader ever sees a job without its tables.
        let building = path + ".creating"
        try? FileManager.default.removeItem(atPath: building)
        try createSchema(path: building, config: config)
        guard rename(building, path) == 0 else {
            throw JobStoreError.database(path, "cannot move the new database into place: \(String(cString: strerror(errno)))")
        }
        return JobStore(directory: directory, config: config, database: try Database(path: path, create: false))
    }

    private static func createSchema(path: String, config: JobConfig) throws {
        let database = try Database(path: path, create: true)
        let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        try database.transaction {
            try database.execute("CREATE TABLE job (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            try database.execute(
                """
                CREATE TABLE trials (
                    id INTEGER PRIMARY KEY, state TEXT NOT NULL, parameters TEXT NOT NULL, decisions TEXT NOT NULL,
                    metrics TEXT NOT NULL DEFAULT '{}', reward REAL, error TEXT, search_trial_id INTEGER,
                    started_at REAL, ended_at REAL, launcher_handle TEXT, lost_runs INTEGER NOT NULL DEFAULT 0)
                """)
            try database.execute(curvesSchema)
            try database.execute("INSERT INTO job VALUES ('config', ?), ('schema', '3')", [.text(json)])
        }
    }

    /// Opens an existing job; a directory without one is a clear error. An older job's schema is brought up to
    /// date, except with `readOnly` (`nas trials list`, `nas report`), which changes nothing and so reads a job on
    /// a read-only folder.
    public static func open(directory: String, readOnly: Bool = false) throws -> JobStore {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: path) else { throw JobStoreError.notAJob(directory) }
        let database = try Database(path: path, create: false, readOnly: readOnly)
        let rows: [[SQLValue]]
        do {
            rows = try database.query("SELECT value FROM job WHERE key = 'config'")
        } catch {
            throw JobStoreError.database(path, "not a nas job database (\(error)); was it written by another tool?")
        }
        guard let json = rows.first?.first?.string,
            let config = try? JSONDecoder().decode(JobConfig.self, from: Data(json.utf8))
        else { throw JobStoreError.database(path, "the job's configuration is missing or unreadable") }
        if !readOnly {
            try addLauncherColumns(database)
            try addCurvesTable(database)
        }
        return JobStore(directory: directory, config: config, database: database)
    }

    /// Replaces the job's configuration: a resumed job extended (`--max-trials`) or moved to another fleet.
    public func update(config: JobConfig) throws {
        let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        try database.execute("UPDATE job SET value = ? WHERE key = 'config'", [.text(json)])
        self.config = config
    }

    /// Schema 1 (before launchers had handles) lacks the launcher's columns: they are added, so that an old job
    /// resumes; its trials have no handle and were never lost.
    private static func addLauncherColumns(_ database: Database) throws {
        let columns = Set(try database.query("PRAGMA table_info(trials)").compactMap { $0[1].string })
        guard !columns.contains("launcher_handle") else { return }
        try database.transaction {
            try database.execute("ALTER TABLE trials ADD COLUMN launcher_handle TEXT")
            try database.execute("ALTER TABLE trials ADD COLUMN lost_runs INTEGER NOT NULL DEFAULT 0")
            try database.execute("UPDATE job SET value = '2' WHERE key = 'schema'")
        }
    }

    /// The folder of one trial, as in vertex-ai-nas: `<job_dir>/<trial_id>`.
    public func trialDirectory(_ id: Int) -> String {
        (directory as NSString).appendingPathComponent(String(id))
    }

    /// Records a new pending trial and returns its id (1, 2, ...).
    @discardableResult
    public func addTrial(parameters: String, decisions: [Int], searchTrialID: Int? = nil) throws -> Int {
        try database.execute(
            "INSERT INTO trials (state, parameters, decisions, search_trial_id) VALUES ('pending', ?, ?, ?)",
            [
                .text(parameters), .text(decisions.map(String.init).joined(separator: ",")),
                searchTrialID.map { .integer(Int64($0)) } ?? .null,
            ])
        return database.lastInsertedID
    }

    /// Marks a trial running, without a handle until its launch returns one; a curve of an earlier run of it is
    /// dropped, since the run starts over.
    public func markRunning(_ id: Int) throws {
        try database.execute("DELETE FROM curves WHERE trial_id = ?", [.integer(Int64(id))])
        try update(
            id, "state = 'running', started_at = ?, error = NULL, launcher_handle = NULL",
            [.real(Date().timeIntervalSince1970)])
    }

    /// Records the launcher's handle of a trial's run, so that a resumed search can re-attach to it.
    public func setHandle(_ id: Int, _ handle: String) throws {
        try update(id, "launcher_handle = ?", [.text(handle)])
    }

    /// Records that a trial's run was lost to the cluster: back to pending to run again, or, when `rerun` is
    /// false, failed with `reason`.
    public func markLost(_ id: Int, reason: String, rerun: Bool) throws {
        if rerun {
            try update(
                id, "state = 'pending', lost_runs = lost_runs + 1, launcher_handle = NULL, started_at = NULL, error = ?",
                [.text(reason)])
        } else {
            try update(
                id, "state = 'failed', lost_runs = lost_runs + 1, error = ?, ended_at = ?",
                [.text(reason), .real(Date().timeIntervalSince1970)])
        }
    }

    /// Records a finished trial's metrics and reward.
    public func markSucceeded(_ id: Int, metrics: [String: Double], reward: Double) throws {
        let json = String(decoding: try JSONEncoder().encode(metrics), as: UTF8.self)
        try update(
            id, "state = 'succeeded', metrics = ?, reward = ?, ended_at = ?",
            [.text(json), .real(reward), .real(Date().timeIntervalSince1970)])
    }

    /// Records a failed (or cancelled) trial with its reason.
    public func markFailed(_ id: Int, reason: String, state: TrialState = .failed) throws {
        try update(
            id, "state = ?, error = ?, ended_at = ?",
            [.text(state.rawValue), .text(reason), .real(Date().timeIntervalSince1970)])
    }

    /// Puts trials left running by a killed search, or cancelled by the user, back to pending, except the running
    /// ones in `keeping` (re-attached to their runs); returns how many.
    @discardableResult
    public func requeueInterrupted(keeping: Set<Int> = []) throws -> Int {
        try database.transaction {
            let ids = try database.query("SELECT id, state FROM trials WHERE state IN ('running', 'cancelled')")
                .filter { row in !(row[1].string == "running" && keeping.contains(row[0].int ?? 0)) }
                .compactMap { $0[0].int }
            for id in ids {
                try database.execute(
                    "UPDATE trials SET state = 'pending', started_at = NULL, ended_at = NULL, error = NULL, launcher_handle = NULL WHERE id = ?",
                    [.integer(Int64(id))])
            }
            return ids.count
        }
    }

    /// Every trial, by id.
    public func trials() throws -> [TrialRecord] {
        try database.query(
            "SELECT id, state, parameters, decisions, metrics, reward, error, search_trial_id, started_at, ended_at, launcher_handle, lost_runs FROM trials ORDER BY id"
        ).map { row in
            let metricsJSON = row[4].string ?? "{}"
            let metrics = (try? JSONDecoder().decode([String: Double].self, from: Data(metricsJSON.utf8))) ?? [:]
            return TrialRecord(
                id: row[0].int ?? 0, state: TrialState(rawValue: row[1].string ?? "") ?? .failed,
                parameters: row[2].string ?? "",
                decisions: (row[3].string ?? "").split(separator: ",").compactMap { Int($0) }, metrics: metrics,
                reward: row[5].double, error: row[6].string, searchTrialID: row[7].int, startedAt: row[8].double,
                endedAt: row[9].double, handle: row[10].string, lostRuns: row[11].int ?? 0)
        }
    }

    func update(_ id: Int, _ assignments: String, _ values: [SQLValue]) throws {
        let exists = try database.query("SELECT 1 FROM trials WHERE id = ?", [.integer(Int64(id))])
        guard !exists.isEmpty else { throw JobStoreError.unknownTrial(id) }
        try database.execute("UPDATE trials SET \(assignments) WHERE id = ?", values + [.integer(Int64(id))])
    }
}
