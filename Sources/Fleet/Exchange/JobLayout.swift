import Foundation

/// The vertex-ai-nas layout of a job directory, shared by trainers and file workers.
///
///     <job_dir>/job_status.json                               {"state": "RUNNING" | "SUCCEEDED" | ...}
///     <job_dir>/<trial_id>/nas_params_str.json                the trial's architecture
///     <job_dir>/<trial_id>/saved_model/model.onnx             written by the trainer
///     <job_dir>/<trial_id>/saved_model/latency_worker_id.json the claim of a worker, with its lease
///     <job_dir>/<trial_id>/saved_model/model_latency.json     the metrics, written by the worker
///     <job_dir>/<trial_id>/saved_model/model_latency_error.json why the workers gave the trial up (ours)
public enum JobLayout {
    /// The job's status marker at the job root; workers stop once it names an ended state.
    public static let statusKey = "job_status.json"
    /// Where the trainer writes a trial's model.
    public static func modelKey(trial: Int) -> String { "\(trial)/saved_model/model.onnx" }
    /// Where a worker claims a trial.
    public static func claimKey(trial: Int) -> String { "\(trial)/saved_model/latency_worker_id.json" }
    /// Where a worker writes a trial's metrics.
    public static func metricsKey(trial: Int) -> String { "\(trial)/saved_model/model_latency.json" }
    /// Where a worker explains why it gave a trial up after repeated failed measurements.
    public static func errorKey(trial: Int) -> String { "\(trial)/saved_model/model_latency_error.json" }
    /// Where a trial's architecture lives.
    public static func paramsKey(trial: Int) -> String { "\(trial)/nas_params_str.json" }

    /// The trial id a folder name stands for: a non-negative decimal integer, as vertex-ai-nas names trials.
    public static func trialID(folder: String, location: String) throws -> Int {
        guard !folder.isEmpty, folder.count <= 18, folder.allSatisfy({ $0.isASCII && $0.isNumber }),
            let id = Int(folder), String(id) == folder  // "007" would map to the paths of trial 7
        else {
            throw ExchangeError.invalidTrialFolder(folder, location: location)
        }
        return id
    }
}

/// The state of a job as its status marker tells it.
public enum JobState: String, Sendable, CaseIterable {
    /// Trials are still being trained; workers keep polling.
    case running = "RUNNING"
    /// The job finished.
    case succeeded = "SUCCEEDED"
    /// The job failed.
    case failed = "FAILED"
    /// The job was cancelled.
    case cancelled = "CANCELLED"
    /// The job was interrupted and may be resumed (`--resume`): workers keep polling.
    case paused = "PAUSED"

    /// Whether workers should stop.
    public var hasEnded: Bool { self != .running && self != .paused }

    /// Reads a state name; Vertex AI's `JOB_STATE_*` names and lower case are accepted, and any state that is
    /// not a running, pending or queued one counts as ended.
    public init(name: String) {
        var name = name.uppercased()
        if name.hasPrefix("JOB_STATE_") { name.removeFirst("JOB_STATE_".count) }
        switch name {
        case "RUNNING", "PENDING", "QUEUED", "UNSPECIFIED", "": self = .running
        case "SUCCEEDED", "ENDED", "DONE", "COMPLETED": self = .succeeded
        case "CANCELLED", "CANCELED", "CANCELLING": self = .cancelled
        case "PAUSED", "PAUSING": self = .paused
        default: self = .failed
        }
    }

    /// Reads `job_status.json` of `storage`: `.running` when there is none.
    public static func read(from storage: any ObjectStorage) throws -> JobState {
        guard let object = try storage.read(JobLayout.statusKey) else { return .running }
        guard let json = try? JSONSerialization.jsonObject(with: Data(object.data)) as? [String: Any],
            let state = json["state"] as? String
        else {
            throw ExchangeError.invalidMetrics(
                "\(storage.location)/\(JobLayout.statusKey)", "a job status needs a string member \"state\"")
        }
        return JobState(name: state)
    }

    /// Writes `job_status.json` of `storage`.
    public func write(to storage: any ObjectStorage) throws {
        let text = "{\"state\": \"\(rawValue)\", \"updated_at\": \(Date().timeIntervalSince1970)}\n"
        try storage.write(JobLayout.statusKey, data: Array(text.utf8))
    }
}
