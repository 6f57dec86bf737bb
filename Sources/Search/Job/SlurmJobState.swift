import Foundation

/// What a Slurm job's state (`squeue`'s `%T`, `sacct`'s `State`) means for its trial.
///
/// Pure, so that every state's meaning is tested without a cluster; `SlurmLauncher` reads the states and the
/// trial's exit status file and carries out what this says.
public enum SlurmJobState: Sendable, Equatable {
    /// Queued or running (PENDING, RUNNING, COMPLETING, SUSPENDED, REQUEUED...): not ended.
    case active
    /// The batch script ended (COMPLETED, FAILED): its exit status file says how the trial runner did.
    case scriptEnded
    /// Slurm ended the run for a reason of its own; a failure of the trial (TIMEOUT, OUT_OF_MEMORY, CANCELLED
    /// outside the search, DEADLINE...), with the reason.
    case failed(String)
    /// The cluster lost the run (PREEMPTED, NODE_FAIL, BOOT_FAIL, REVOKED): the trial runs again.
    case lost(String)

    /// The states of a job still queued or running; the others are final.
    static let activeStates: Set<String> = [
        "PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
        "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT", "POWER_UP_NODE",
    ]

    /// The meaning of `state` (its first word: `sacct` writes `CANCELLED by 0`) with `reason` for job `job`.
    public init(state text: String, reason: String, job: String) {
        let state = text.split(separator: " ").first.map(String.init)?.uppercased() ?? ""
        let why = reason.isEmpty || reason == "None" || reason == "(null)" ? "" : ", reason \(reason)"
        switch state {
        case _ where Self.activeStates.contains(state): self = .active
        case "COMPLETED", "FAILED": self = .scriptEnded
        case "TIMEOUT":
            self = .failed("Slurm job \(job) reached its time limit (TIMEOUT\(why)); give trials more with --slurm-time")
        case "OUT_OF_MEMORY":
            self = .failed("Slurm job \(job) ran out of memory (OUT_OF_MEMORY\(why)); give trials more with --slurm-mem")
        case "CANCELLED":
            self = .failed("Slurm job \(job) was cancelled outside the search (CANCELLED\(why))")
        case "DEADLINE":
            self = .failed("Slurm job \(job) passed its deadline (DEADLINE\(why))")
        case "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "REVOKED":
            self = .lost("Slurm job \(job) \(state)\(why)")
        default:
            self = .failed("Slurm job \(job) ended in state \(state.isEmpty ? "(none)" : state)\(why)")
        }
    }

    /// How the trial runner ended, from the exit status the batch script wrote: a status above 128 is a signal's,
    /// as a shell reports it.
    public static func exit(status: Int32) -> TrialExit {
        status > 128 && status < 128 + 65 ? .signaled(status - 128) : .exited(status)
    }
}

/// One line of `squeue -o '%i|%T|%r|%N'`: a job's id, state, reason and nodes.
public struct SlurmQueueEntry: Sendable, Equatable {
    /// The job id.
    public var job: String
    /// Its state (`PENDING`, `RUNNING`, `COMPLETED`...).
    public var state: String
    /// Why it is in that state (`Resources`, `Priority`, `BeginTime`, `None`).
    public var reason: String
    /// The nodes it runs on, if any.
    public var nodes: String

    /// An entry.
    public init(job: String, state: String, reason: String, nodes: String) {
        self.job = job
        self.state = state
        self.reason = reason
        self.nodes = nodes
    }

    /// The format `parse` reads.
    public static let format = "%i|%T|%r|%N"

    /// The entries of `squeue --noheader -o '\(format)'` output, by job id; lines that are not entries are skipped.
    public static func parse(_ output: String) -> [String: SlurmQueueEntry] {
        var entries: [String: SlurmQueueEntry] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard fields.count == 4, !fields[0].isEmpty, fields[0].allSatisfy(\.isNumber) else { continue }
            entries[fields[0]] = SlurmQueueEntry(job: fields[0], state: fields[1], reason: fields[2], nodes: fields[3])
        }
        return entries
    }

    /// A line for the user while the job is queued or runs: `Slurm job 57 PENDING (Resources)`.
    var note: String {
        var text = "Slurm job \(job) \(state)"
        if !reason.isEmpty && reason != "None" { text += " (\(reason))" }
        if state == "RUNNING", !nodes.isEmpty { text += " on \(nodes)" }
        return text
    }
}
