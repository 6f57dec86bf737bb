import Foundation
import System

/// Why Slurm could not run a job's trials. Each says what was wrong and what to do.
public struct SlurmError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case notInstalled, refused, queryFailed, timedOut
    }

    private let code: Code
    /// The readable explanation.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    static func notInstalled(_ tool: String) -> SlurmError {
        SlurmError(
            .notInstalled,
            "\(tool) is not on PATH: run the search where Slurm's commands are (a cluster's login node), install them (Debian: apt-get install slurm-client), or use --launcher local"
        )
    }

    static func refused(_ what: String, _ output: String, options: [String]) -> SlurmError {
        let said = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let options = options.isEmpty ? "" : " (options: \(options.joined(separator: " ")))"
        return SlurmError(
            .refused,
            "Slurm refused \(what)\(options): \(said.joined(separator: "; ")); check --slurm-partition (sinfo -s lists the partitions), --slurm-time, --slurm-mem, --slurm-gres and --slurm-option"
        )
    }

    static func timedOut(_ tool: String, after timeout: Duration) -> SlurmError {
        SlurmError(.timedOut, "\(tool) gave no answer in \(timeout): is slurmctld up (scontrol ping)?")
    }

    static func queryFailed(_ tool: String, _ output: String, times: Int) -> SlurmError {
        SlurmError(
            .queryFailed,
            "\(tool) failed \(times) times in a row (\(output.trimmingCharacters(in: .whitespacesAndNewlines))): is slurmctld up (scontrol ping)? The trials' Slurm jobs keep running; continue the job with --resume once Slurm answers"
        )
    }
}

/// Runs trials as Slurm batch jobs: `sbatch --parsable` of a batch script written in the trial's folder, which
/// runs the trial's command and writes its exit status to `slurm_exit_status` there, so that how the trial ended
/// never depends on Slurm's accounting.
///
/// A poll is one `squeue` for all the trials' jobs, at most every `SlurmOptions.pollInterval` (however often the
/// job loop turns), plus one `sacct` for jobs squeue no longer lists when the cluster keeps accounting; without
/// it such a job's exit status file decides, and a job with neither is lost. `scancel` cancels. The Slurm jobs
/// outlive the search, so that a resumed search re-attaches to them (by their stored ids, or, for a trial whose
/// id the search died before storing, by the job's name and folder). Slurm's commands run through `Subprocess`,
/// blocking the job loop's own thread, never Swift's cooperative pool.
public final class SlurmLauncher: TrialLauncher {
    /// The batch script in each trial's folder.
    public static let batchScript = "slurm_batch.sh"
    /// Where the batch script writes the trial runner's exit status and the Slurm job's id.
    public static let exitStatusFile = "slurm_exit_status"

    /// What the launcher knows of a job it follows.
    private struct Tracked {
        var trialID: Int
        var directory: String
        /// The last state and reason shown.
        var shown: String?
        /// Whether it was seen running: pending again after that, Slurm requeued it.
        var ran = false
        /// When the job was first seen ended without an exit status file (a shared filesystem may show it late).
        var endedWithoutStatus: ContinuousClock.Instant?
    }

    private let options: SlurmOptions
    private let jobName: String
    private let jobDirectory: String
    private let tools: [String: String]
    private var tracked: [String: Tracked] = [:]
    private var lastQuery: ContinuousClock.Instant?
    private var failedQueries = 0
    private var accounting: Bool?
    private var pendingNotes: [TrialNote] = []

    /// How long a job ended as COMPLETED or FAILED may lack its exit status file before the trial fails.
    public var statusGrace: Duration = .seconds(30)
    /// Queries of the queue that may fail in a row (slurmctld restarting) before `poll` throws.
    public var maxFailedQueries = 10
    /// The longest a Slurm command may take.
    public var commandTimeout: Duration = .seconds(60)

    /// A launcher of the trials of job `jobName` in `jobDirectory` (an absolute path on storage the nodes share),
    /// with `options`; throws when Slurm's commands are not on PATH.
    public init(options: SlurmOptions, jobName: String, jobDirectory: String) throws {
        self.options = options
        self.jobName = jobName
        self.jobDirectory = jobDirectory
        var tools: [String: String] = [:]
        for tool in ["sbatch", "squeue", "scancel", "scontrol"] {
            guard let path = Self.locate(tool) else { throw SlurmError.notInstalled(tool) }
            tools[tool] = path
        }
        tools["sacct"] = Self.locate("sacct")
        self.tools = tools
    }

    /// Asks Slurm whether it would run a trial with these options (`sbatch --test-only`): a partition that does
    /// not exist, a time limit past the partition's, resources no node has are refused before the job starts.
    public func check() throws {
        let result = try run("sbatch", ["--test-only"] + options.sbatchOptions + ["--wrap", "true"])
        guard result.termination == .exited(0) else {
            throw SlurmError.refused("a trial's job", result.errorText + result.outputText, options: options.sbatchOptions)
        }
    }

    /// The Slurm job name of a trial: `nas.JOB.TRIAL`.
    public func slurmJobName(_ trialID: Int) -> String { "nas.\(jobName).\(trialID)" }

    public func launch(_ run: TrialRun) throws -> LaunchedTrial {
        let directory = Self.absolute(run.directory)
        let script = (directory as NSString).appendingPathComponent(Self.batchScript)
        let status = (directory as NSString).appendingPathComponent(Self.exitStatusFile)
        // An earlier run's status (a lost trial's) is not this run's.
        try? FileManager.default.removeItem(atPath: status)
        let arguments =
            [
                "--parsable", "--job-name=\(slurmJobName(run.trialID))", "--chdir=\(directory)",
                "--output=\(Self.absolute(run.logPath))", "--open-mode=append",
            ] + options.sbatchOptions + [script]
        try Self.batchScript(for: run, directory: directory, sbatch: arguments).write(
            toFile: script, atomically: true, encoding: .utf8)
        // Readable by its owner only: it holds the fleet's token.
        chmod(script, 0o700)
        let result = try self.run("sbatch", arguments)
        let output = result.outputText.trimmingCharacters(in: .whitespacesAndNewlines)
        // --parsable prints `ID` or `ID;CLUSTER`.
        let id = output.split(separator: ";").first.map(String.init) ?? ""
        guard result.termination == .exited(0), !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw SlurmError.refused(
                "trial \(run.trialID)'s job", result.errorText + output, options: options.sbatchOptions)
        }
        tracked[id] = Tracked(trialID: run.trialID, directory: directory)
        return LaunchedTrial(trialID: run.trialID, handle: id)
    }

    public func poll(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial: TrialExit] {
        let now = ContinuousClock.now
        if let lastQuery, now - lastQuery < .seconds(options.pollInterval) { return [:] }
        let trials = trials.filter { !$0.handle.isEmpty }
        guard !trials.isEmpty else { return [:] }
        lastQuery = now
        let ids = trials.map(\.handle)
        let queue: [String: SlurmQueueEntry]
        var failure: String
        do {
            let result = try run(
                "squeue",
                ["--noheader", "--states=all", "--jobs=\(ids.joined(separator: ","))", "--format=\(SlurmQueueEntry.format)"])
            failure = result.errorText.trimmingCharacters(in: .whitespacesAndNewlines)
            if result.termination == .exited(0) {
                queue = SlurmQueueEntry.parse(result.outputText)
                failure = ""
            } else if failure.contains("Invalid job id") {
                // Every one of the jobs has left the queue.
                queue = [:]
                failure = ""
            } else {
                queue = [:]
                if failure.isEmpty { failure = "\(result.termination)" }
            }
        } catch {
            queue = [:]
            failure = "\(error)"
        }
        guard failure.isEmpty else {
            // A controller that restarts, or is busy, answers again soon: the jobs run on meanwhile.
            failedQueries += 1
            guard failedQueries < maxFailedQueries else {
                throw SlurmError.queryFailed("squeue", failure, times: failedQueries)
            }
            pendingNotes.append(TrialNote(trialID: nil, text: "squeue failed (\(failure)); asking again"))
            return [:]
        }
        failedQueries = 0

        var endings: [LaunchedTrial: TrialExit] = [:]
        var gone: [LaunchedTrial] = []
        for trial in trials {
            let directory = self.directory(trial)
            guard let entry = queue[trial.handle] else {
                if let status = exitStatus(trial.handle, directory) {
                    endings[trial] = SlurmJobState.exit(status: status)
                } else {
                    gone.append(trial)
                }
                continue
            }
            switch SlurmJobState(state: entry.state, reason: entry.reason, job: entry.job) {
            case .active:
                show(entry, of: trial)
            case .scriptEnded:
                if let status = exitStatus(trial.handle, directory) {
                    endings[trial] = SlurmJobState.exit(status: status)
                } else if let first = tracked[trial.handle]?.endedWithoutStatus {
                    if now - first >= statusGrace {
                        endings[trial] = .failed(
                            "Slurm job \(entry.job) \(entry.state) but its batch script wrote no \(Self.exitStatusFile) in \(directory) (is the job folder on storage the nodes share?): \(JobLoop.logTail(directory))"
                        )
                    }
                } else {
                    tracked[trial.handle]?.endedWithoutStatus = now
                }
            case .failed(let reason):
                endings[trial] = .failed(reason)
            case .lost(let reason):
                endings[trial] = .lost(reason)
            }
        }
        if !gone.isEmpty {
            let final = try accountedStates(gone.map(\.handle))
            for trial in gone {
                if let state = final[trial.handle] {
                    switch SlurmJobState(state: state, reason: "", job: trial.handle) {
                    case .active, .scriptEnded:
                        // Accounting says it ran to its end, yet its exit status file is not there.
                        endings[trial] = .failed(
                            "Slurm job \(trial.handle) \(state) but its batch script wrote no \(Self.exitStatusFile) in \(directory(trial)) (is the job folder on storage the nodes share?)"
                        )
                    case .failed(let reason): endings[trial] = .failed(reason)
                    case .lost(let reason): endings[trial] = .lost(reason)
                    }
                } else {
                    endings[trial] = .lost(
                        "Slurm job \(trial.handle) disappeared from the queue without a final state (purged by the controller, or its state lost)"
                    )
                }
            }
        }
        for trial in endings.keys { tracked[trial.handle] = nil }
        return endings
    }

    public func cancel(_ trials: [LaunchedTrial]) {
        let ids = trials.map(\.handle).filter { !$0.isEmpty }
        guard !ids.isEmpty else { return }
        // What scancel says goes to the notes: the jobs' endings come through poll either way.
        do {
            let result = try run("scancel", ids)
            if result.termination != .exited(0) {
                pendingNotes.append(TrialNote(trialID: nil, text: "scancel: \(result.errorText)"))
            }
        } catch {
            pendingNotes.append(TrialNote(trialID: nil, text: "scancel: \(error)"))
        }
        // The next poll looks at once.
        lastQuery = nil
    }

    public func reattach(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial] {
        var attached: [LaunchedTrial] = []
        var unknown: [LaunchedTrial] = []
        for trial in trials {
            if trial.handle.isEmpty {
                unknown.append(trial)
            } else {
                tracked[trial.handle] = Tracked(trialID: trial.trialID, directory: directory(trial))
                attached.append(trial)
            }
        }
        if !unknown.isEmpty {
            // A search killed between sbatch and storing the job's id: the job is found by its name and folder.
            let names = unknown.map { slurmJobName($0.trialID) }
            let result = try run("squeue", ["--noheader", "--states=all", "--name=\(names.joined(separator: ","))",
                "--format=%i|%j|%Z"])
            var found: [Int: Int] = [:]
            for line in result.outputText.split(separator: "\n") {
                let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                guard fields.count == 3, let id = Int(fields[0]),
                    let trial = unknown.first(where: {
                        slurmJobName($0.trialID) == fields[1] && Self.absolute(directory($0)) == fields[2]
                    })
                else { continue }
                found[trial.trialID] = max(found[trial.trialID] ?? 0, id)
            }
            for trial in unknown {
                guard let id = found[trial.trialID] else { continue }
                let handle = String(id)
                tracked[handle] = Tracked(trialID: trial.trialID, directory: directory(trial))
                attached.append(LaunchedTrial(trialID: trial.trialID, handle: handle))
            }
        }
        lastQuery = nil
        return attached
    }

    public func notes() -> [TrialNote] {
        defer { pendingNotes = [] }
        return pendingNotes
    }

    // MARK: - Helpers

    /// Adds a note when a job's state or reason changed since the last one shown.
    private func show(_ entry: SlurmQueueEntry, of trial: LaunchedTrial) {
        let note = entry.note
        guard var job = tracked[trial.handle], job.shown != note else { return }
        let requeued = job.ran && entry.state == "PENDING"
        if requeued { job.ran = false }
        if entry.state == "RUNNING" { job.ran = true }
        job.shown = note
        tracked[trial.handle] = job
        pendingNotes.append(TrialNote(trialID: trial.trialID, text: requeued ? note + ": requeued by Slurm" : note))
    }

    private func directory(_ trial: LaunchedTrial) -> String {
        tracked[trial.handle]?.directory ?? (jobDirectory as NSString).appendingPathComponent(String(trial.trialID))
    }

    /// The trial runner's exit status the batch script of job `job` wrote, if it did.
    private func exitStatus(_ job: String, _ directory: String) -> Int32? {
        let path = (directory as NSString).appendingPathComponent(Self.exitStatusFile)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: \.isWhitespace)
        // An earlier job's status (the trial lost and submitted again) is not this one's.
        guard fields.count == 2, fields[1] == job, let status = Int32(fields[0]) else { return nil }
        return status
    }

    /// The final states `sacct` has for `jobs` when the cluster keeps accounting; empty when it does not.
    private func accountedStates(_ jobs: [String]) throws -> [String: String] {
        if accounting == nil {
            let config = try run("scontrol", ["show", "config"]).outputText
            let line = config.split(separator: "\n").first { $0.hasPrefix("AccountingStorageType") } ?? ""
            accounting = tools["sacct"] != nil && !line.contains("accounting_storage/none")
        }
        guard accounting == true else { return [:] }
        let result = try run(
            "sacct", ["--noheader", "--parsable2", "--allocations", "--jobs=\(jobs.joined(separator: ","))",
                "--format=JobIDRaw,State"])
        guard result.termination == .exited(0) else { return [:] }
        var states: [String: String] = [:]
        for line in result.outputText.split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            if fields.count == 2 { states[fields[0]] = fields[1] }
        }
        return states
    }

    /// Runs one of Slurm's commands to its end on this thread (the job loop's), output collected.
    private func run(_ tool: String, _ arguments: [String]) throws -> Subprocess.Collected {
        guard let path = tools[tool] else { throw SlurmError.notInstalled(tool) }
        let process = try Subprocess(
            executable: path, arguments: arguments, standardOutput: .pipe, standardError: .pipe)
        let result = process.blockingCollect(timeout: commandTimeout)
        if result.timedOut { throw SlurmError.timedOut(tool, after: commandTimeout) }
        return result
    }

    /// The batch script of a trial's run: its environment, the command, its exit status to the status file.
    static func batchScript(for run: TrialRun, directory: String, sbatch: [String]) -> String {
        let status = (directory as NSString).appendingPathComponent(exitStatusFile)
        var lines = [
            "#!/bin/bash",
            "# Trial \(run.trialID)'s run as a Slurm batch job, submitted by the search as",
            "#   sbatch \(sbatch.map(shellQuoted).joined(separator: " "))",
            "# The trial runner's exit status goes to \(exitStatusFile), which the search reads.",
            "# The search watches its trials itself: its pid means nothing on this node.",
            "unset \(ParentWatch.variable)",
        ]
        for (name, value) in run.environment.sorted(by: { $0.key < $1.key }) {
            lines.append("export \(name)=\(shellQuoted(value))")
        }
        lines += [
            // A requeued job runs this script from its start: an earlier run's status is not this run's.
            "rm -f \(shellQuoted(status))",
            "echo \"nas: trial \(run.trialID), Slurm job $SLURM_JOB_ID, run $((${SLURM_RESTART_COUNT:-0} + 1)), on $(hostname)\"",
            // The search's folder, where relative paths of the command start.
            "cd \(shellQuoted(FileManager.default.currentDirectoryPath)) 2>/dev/null || cd \(shellQuoted(directory))",
            run.command.map(shellQuoted).joined(separator: " "),
            "status=$?",
            // Written whole under another name first: the search never reads half a status.
            "printf '%s %s\\n' \"$status\" \"$SLURM_JOB_ID\" > \(shellQuoted(status + ".tmp")) && mv -f \(shellQuoted(status + ".tmp")) \(shellQuoted(status))",
            "exit $status",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// `text` as one word for bash.
    static func shellQuoted(_ text: String) -> String {
        if !text.isEmpty, text.allSatisfy({ $0.isLetter || $0.isNumber || "/._-=:,+@%".contains($0) }) {
            return text
        }
        return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return (full as NSString).standardizingPath
    }

    /// The path of `tool` in PATH, if it is there.
    static func locate(_ tool: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = (String(directory) as NSString).appendingPathComponent(tool)
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
