/// Why the file exchange could not use a trial, a metrics file, or a runner's answer.
public struct ExchangeError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case invalidTrialFolder
        case invalidMetrics
        case metricsTimeout
        case runnerFailed
        case leaseLost
        case invalidConfiguration
        case measurementFailed
    }

    private let code: Code
    /// The readable explanation.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// Whether the runner failed (as opposed to the lease, the storage or the configuration).
    var isRunnerFailure: Bool { code == .runnerFailed }

    /// The workers gave the trial up: its model failed to measure repeatedly (`model_latency_error.json`).
    public static func measurementFailed(trial: Int, path: String, _ reason: String) -> ExchangeError {
        ExchangeError(
            .measurementFailed,
            "the workers could not measure trial \(trial) (\(path)): \(reason); fix the model or the runner, then "
                + "submit the trial again")
    }

    /// A folder of the job directory holds a model but its name is not a trial id.
    public static func invalidTrialFolder(_ folder: String, location: String) -> ExchangeError {
        ExchangeError(
            .invalidTrialFolder,
            "folder '\(folder)' in \(location) holds a model but its name is not a trial id (a non-negative "
                + "integer, e.g. '12'); move the model to <job_dir>/<trial_id>/saved_model/model.onnx")
    }

    /// A `model_latency.json` that is not JSON, not an object, or lacks a required number.
    public static func invalidMetrics(_ path: String, _ reason: String) -> ExchangeError {
        ExchangeError(
            .invalidMetrics,
            "\(path) is not a valid metrics file: \(reason); it must be a JSON object with numbers "
                + "\"latency_in_milliseconds\" and \"model_memory\" (delete it so that a worker measures again)")
    }

    /// The trainer waited longer than its timeout for the metrics of a trial.
    public static func metricsTimeout(trial: Int, seconds: Double, location: String, lastError: String?)
        -> ExchangeError
    {
        var message =
            "no model_latency.json for trial \(trial) in \(location) after \(seconds) s; is a "
            + "`nas worker --job-dir \(location) ...` running for this job and this trial's partition?"
        if let lastError { message += " (last storage error: \(lastError))" }
        return ExchangeError(.metricsTimeout, message)
    }

    /// The runner failed, timed out, or printed something other than one JSON object of metrics.
    public static func runnerFailed(_ command: String, _ reason: String) -> ExchangeError {
        ExchangeError(.runnerFailed, "runner '\(command)' failed: \(reason)")
    }

    /// Another worker took the trial over because this worker's lease lapsed.
    public static func leaseLost(trial: Int) -> ExchangeError {
        ExchangeError(
            .leaseLost,
            "lost the claim on trial \(trial): the lease lapsed and another worker took it over; the result "
                + "of this worker is discarded (raise --lease-seconds if measuring stalls the worker)")
    }

    /// A worker or trainer setting out of range.
    public static func invalidConfiguration(_ reason: String) -> ExchangeError {
        ExchangeError(.invalidConfiguration, reason)
    }
}
