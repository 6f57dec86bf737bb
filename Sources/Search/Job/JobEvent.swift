import Constraints
import Foundation

/// Something notable that happened in a job, for the progress display, the JSON event stream and tests.
public enum JobEvent: Sendable, Equatable {
    /// A resumed job put trials that a killed or interrupted search left unfinished back in the queue.
    case resumed(requeued: Int)
    /// A resumed job took over these trials' runs, which its launcher still follows (Slurm jobs).
    case reattached(trials: [Int])
    /// The job started (or resumed) in its folder.
    case started(directory: String, maxTrials: Int, maxParallelTrials: Int, name: String)
    /// A line about the job's fleet (its coordinator's address, how workers join).
    case fleet(String)
    /// The job stops launching trials.
    case stopping(reason: String)
    /// The user interrupted the job; `cancelling` tells whether running trials are being stopped.
    case interrupted(running: Int, cancelling: Bool)
    /// A trial's run was launched.
    case trialStarted(trial: Int, parameters: String, description: String)
    /// A trial finished with its metrics (the reward among them).
    case trialSucceeded(trial: Int, metrics: [String: Double])
    /// A trial failed, with the reason.
    case trialFailed(trial: Int, reason: String)
    /// A trial was stopped by the user.
    case trialCancelled(trial: Int)
    /// A trial's run was lost to the cluster and the trial will run again.
    case trialLost(trial: Int, reason: String)
    /// The pruner stopped a trial: its accuracy `value` at `step` fell behind.
    case trialPruned(trial: Int, step: Double, value: Double)
    /// A trial was not trained: its untrained model missed a hard device target.
    case trialInfeasible(trial: Int, reason: String)
    /// Something the launcher shows about a running trial (its Slurm job's state and why), or about itself.
    case trialNote(trial: Int?, text: String)
    /// The job ended; its report is at `report`.
    case finished(directory: String, report: String)

    /// The event as a log line.
    public var text: String {
        switch self {
        case .resumed(let requeued): return "resuming: \(requeued) interrupted trial(s) will run again"
        case .reattached(let trials):
            return "resuming: re-attached to the runs of trial(s) \(trials.map(String.init).joined(separator: ", "))"
        case .started(let directory, let maxTrials, let parallel, let name):
            return "job \(name) in \(directory): \(maxTrials) trials, \(parallel) at once"
        case .fleet(let line): return line
        case .stopping(let reason): return "stopping: \(reason)"
        case .interrupted(let running, let cancelling):
            return cancelling
                ? "interrupted: cancelling \(running) running trial(s)"
                : "interrupted: waiting for \(running) running trial(s); Ctrl-C again cancels them"
        case .trialStarted(let trial, _, let description): return "trial \(trial) started: \(description)"
        case .trialSucceeded(let trial, let metrics):
            let accuracy = metrics[MetricName.accuracy.rawValue].map { String(format: "%.4f", $0) } ?? "?"
            let reward = metrics[MetricName.reward.rawValue].map { String(format: "%.4f", $0) } ?? "?"
            return "trial \(trial) succeeded: accuracy \(accuracy), reward \(reward)"
        case .trialFailed(let trial, let reason): return "trial \(trial) failed: \(reason)"
        case .trialCancelled(let trial): return "trial \(trial) cancelled"
        case .trialLost(let trial, let reason): return "trial \(trial) \(reason)"
        case .trialPruned(let trial, let step, let value):
            return "trial \(trial) pruned at step \(ResultsTable.format(step)): accuracy \(String(format: "%.4f", value))"
        case .trialInfeasible(let trial, let reason): return "trial \(trial) infeasible, not trained: \(reason)"
        case .trialNote(let trial, let text): return trial.map { "trial \($0): \(text)" } ?? "launcher: \(text)"
        case .finished: return "job finished"
        }
    }

    /// The event as a JSON object's members, `event` first naming its kind.
    public var json: [(key: String, value: JSON)] {
        switch self {
        case .resumed(let requeued): return [("event", .string("resumed")), ("requeued", .number(Double(requeued)))]
        case .reattached(let trials):
            return [("event", .string("reattached")), ("trials", .array(trials.map { .number(Double($0)) }))]
        case .started(let directory, let maxTrials, _, _):
            return [("event", .string("job_started")), ("job_dir", .string(directory)), ("max_trials", .number(Double(maxTrials)))]
        case .fleet(let line): return [("event", .string("fleet")), ("message", .string(line))]
        case .stopping(let reason): return [("event", .string("stopping")), ("reason", .string(reason))]
        case .interrupted(let running, _): return [("event", .string("interrupted")), ("running", .number(Double(running)))]
        case .trialStarted(let trial, let parameters, _):
            // The architecture as a JSON object, not a JSON text inside a string.
            let params = (try? JSON.parse(parameters)) ?? .string(parameters)
            return [("event", .string("trial_started")), ("trial", .number(Double(trial))), ("nas_params", params)]
        case .trialSucceeded(let trial, let metrics):
            let members = metrics.sorted { $0.key < $1.key }.map { (key: $0.key, value: JSON.number($0.value)) }
            return [("event", .string("trial_succeeded")), ("trial", .number(Double(trial))), ("metrics", .object(members))]
        case .trialFailed(let trial, let reason):
            return [("event", .string("trial_failed")), ("trial", .number(Double(trial))), ("reason", .string(reason))]
        case .trialCancelled(let trial): return [("event", .string("trial_cancelled")), ("trial", .number(Double(trial)))]
        case .trialPruned(let trial, let step, let value):
            return [
                ("event", .string("trial_pruned")), ("trial", .number(Double(trial))), ("step", .number(step)),
                ("top_1_accuracy", .number(value)),
            ]
        case .trialInfeasible(let trial, let reason):
            return [("event", .string("trial_infeasible")), ("trial", .number(Double(trial))), ("reason", .string(reason))]
        case .trialLost(let trial, let reason):
            return [("event", .string("trial_lost")), ("trial", .number(Double(trial))), ("reason", .string(reason))]
        case .trialNote(let trial, let text):
            return [
                ("event", .string("trial_note")), ("trial", trial.map { .number(Double($0)) } ?? .null),
                ("message", .string(text)),
            ]
        case .finished(let directory, let report):
            return [("event", .string("job_finished")), ("job_dir", .string(directory)), ("report", .string(report))]
        }
    }

    public static func == (lhs: JobEvent, rhs: JobEvent) -> Bool {
        lhs.text == rhs.text && JSON.object(lhs.json) == .object(rhs.json)
    }
}

/// The state of a running job, for a live status line.
public struct JobProgress: Sendable, Equatable {
    /// Trials that ended (succeeded or failed).
    public var done: Int
    /// Trials running now.
    public var running: Int
    /// Trials that failed.
    public var failed: Int
    /// The job's trial budget.
    public var total: Int
    /// The best reward so far and its trial.
    public var best: (trial: Int, reward: Double)?
    /// Estimated time to the end, from the mean duration of the trials so far.
    public var remaining: Duration?
    /// Running trials whose model is exported and waits to be measured on a device.
    public var measuring: Int = 0

    public static func == (lhs: JobProgress, rhs: JobProgress) -> Bool {
        lhs.done == rhs.done && lhs.running == rhs.running && lhs.failed == rhs.failed && lhs.total == rhs.total
            && lhs.best?.trial == rhs.best?.trial && lhs.best?.reward == rhs.best?.reward
            && lhs.remaining == rhs.remaining && lhs.measuring == rhs.measuring
    }
}

/// Receives a job's events and progress: the terminal display, a JSON stream, or a test's recorder.
public protocol JobObserver: AnyObject {
    /// Something notable happened.
    func event(_ event: JobEvent)
    /// The job's state after a turn of its loop.
    func progress(_ progress: JobProgress)
    /// The closing summary (best trials, where the report is), printed whatever the verbosity.
    func summary(_ text: String)
}
