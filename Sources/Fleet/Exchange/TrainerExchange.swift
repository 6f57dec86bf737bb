import Constraints
import Foundation
internal import System

/// The trainer's side of the file exchange: publish a trial's model, wait for a worker's metrics.
///
/// The counterpart of vertex-ai-nas `cloud_nas_utils.wait_and_retrieve_latency`, but it polls every
/// ``Configuration/pollInterval`` (1 s by default, not the seed's 30 s) and fails clearly after
/// ``Configuration/timeout`` (600 s, as in the seed).
public struct TrainerExchange: Sendable {
    /// Polling and timeout.
    public struct Configuration: Sendable {
        /// The time between two looks for `model_latency.json`; default 1 s.
        public var pollInterval: Duration
        /// How long to wait in all before failing; default 600 s, as in the seed.
        public var timeout: Duration

        /// Builds a configuration (defaults: 1 s poll, 600 s timeout).
        public init(pollInterval: Duration = .seconds(1), timeout: Duration = .seconds(600)) {
            self.pollInterval = pollInterval
            self.timeout = timeout
        }
    }

    /// The job directory.
    public let storage: any ObjectStorage
    /// Polling and timeout.
    public let configuration: Configuration

    /// Builds the trainer side for a job directory.
    public init(storage: any ObjectStorage, configuration: Configuration = Configuration()) {
        self.storage = storage
        self.configuration = configuration
    }

    /// The exchange of the job holding a trial's own directory (`<job_dir>/<trial_id>`, a folder or a gs:// URL),
    /// as vertex-ai-nas hands each trial its output folder; returns the exchange and the trial id.
    public static func forTrialDirectory(
        _ path: String, configuration: Configuration = Configuration(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (exchange: TrainerExchange, trial: Int) {
        var path = path
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        guard let slash = path.lastIndex(of: "/"), path.index(after: slash) < path.endIndex else {
            throw StorageError.invalidLocation(path, "a trial directory ends with /<trial_id>")
        }
        let folder = String(path[path.index(after: slash)...])
        let jobDirectory = String(path[..<slash])
        if jobDirectory == "gs:/" { throw StorageError.invalidLocation(path, "the bucket name is missing") }
        let trial = try JobLayout.trialID(folder: folder, location: jobDirectory.isEmpty ? "/" : jobDirectory)
        let storage = try StorageLocation.parse(jobDirectory.isEmpty ? "/" : jobDirectory).open(
            environment: environment)
        return (TrainerExchange(storage: storage, configuration: configuration), trial)
    }

    /// Writes `saved_model/model.onnx` of `trial`, first removing the metrics, claim and error report of an
    /// earlier attempt of the same trial so that the wait cannot return stale numbers.
    public func submit(trial: Int, model: [UInt8]) throws {
        try storage.delete(JobLayout.metricsKey(trial: trial))
        try storage.delete(JobLayout.claimKey(trial: trial))
        try storage.delete(JobLayout.errorKey(trial: trial))
        try storage.write(JobLayout.modelKey(trial: trial), data: model)
    }

    /// Waits for `model_latency.json` of `trial` and returns it; a malformed file, the workers giving the trial
    /// up (`model_latency_error.json`), a permanent storage error or the timeout are errors. Transient storage
    /// errors (an outage) are ridden out until the timeout. The wait runs and sleeps on the fleet's own threads:
    /// a process whose cooperative pool is held by blocking work (training, a test beside it) still polls on time.
    public func waitForMetrics(trial: Int) async throws -> LatencyMetrics {
        try await withTaskExecutorPreference(FleetExecutor.shared) { try await pollMetrics(trial: trial) }
    }

    private func pollMetrics(trial: Int) async throws -> LatencyMetrics {
        let key = JobLayout.metricsKey(trial: trial)
        let deadline = Date().addingTimeInterval(configuration.timeout.inSeconds)
        var lastError: String?
        while true {
            do {
                let storage = self.storage
                if let object = try await offPool({ try storage.read(key) }) {
                    return try LatencyMetrics.decode(object.data, path: "\(storage.location)/\(key)")
                }
                if let failure = try await offPool({ try storage.read(JobLayout.errorKey(trial: trial)) }) {
                    throw ExchangeError.measurementFailed(
                        trial: trial, path: "\(storage.location)/\(JobLayout.errorKey(trial: trial))",
                        Self.reason(failure.data))
                }
                lastError = nil
            } catch let error as StorageError where error.isTransient {
                lastError = error.description
            }
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 {
                throw ExchangeError.metricsTimeout(
                    trial: trial, seconds: configuration.timeout.inSeconds, location: storage.location,
                    lastError: lastError)
            }
            await FleetExecutor.shared.sleep(milliseconds: Int(min(configuration.pollInterval.inSeconds, remaining) * 1000))
            try Task.checkCancellation()
        }
    }

    private static func reason(_ data: [UInt8]) -> String {
        if case .string(let text)? = (try? JSON.parse(data))?["error"] { return text }
        return String(decoding: data.prefix(500), as: UTF8.self)
    }

    /// Submits the model of `trial` and waits for its metrics.
    public func measure(trial: Int, model: [UInt8]) async throws -> LatencyMetrics {
        try submit(trial: trial, model: model)
        return try await waitForMetrics(trial: trial)
    }
}
