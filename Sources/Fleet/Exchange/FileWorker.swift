import Foundation
internal import System
import Synchronization

/// A stop request shared between a signal handler and a running ``FileWorker``: the worker finishes the model
/// in hand, then returns.
public final class FileWorkerStop: Sendable {
    private let requested = Mutex(false)

    /// A request not yet made.
    public init() {}

    /// Asks the worker to stop after the model in hand.
    public func request() { requested.withLock { $0 = true } }

    /// Whether a stop was asked for.
    public var isRequested: Bool { requested.withLock { $0 } }
}

/// The device side of the file exchange: finds trials whose model exists and whose metrics do not, claims
/// each atomically (``TrialClaims``), measures it with a ``ModelRunner`` while renewing the lease, and writes
/// `model_latency.json` in the seed's format plus the runner's other metrics.
///
/// Bad trials (a folder that is not a trial id, a failing runner, a lost lease) are reported through the log
/// and in ``Pass/problems``; the worker carries on with the other trials.
public final class FileWorker: Sendable {
    /// Worker settings, with the seed's static partition as an option.
    public struct Configuration: Sendable {
        /// The device type this worker measures on (written into claims).
        public var deviceType: String
        /// The seed's `latency_worker_id`: this worker's index in the static partition.
        public var latencyWorkerID: Int
        /// The seed's `num_latency_workers`: with more than 1, the worker only takes trials with
        /// `trial_id % numLatencyWorkers == latencyWorkerID`; with 1 (the default) claims alone share the work.
        public var numLatencyWorkers: Int
        /// The time between two scans when there was nothing to do; default 1 s.
        public var pollInterval: Duration
        /// How long a claim holds without renewal; renewed every third of it while measuring. Default 30 s.
        public var leaseDuration: Duration
        /// The unique id of this worker process, written into claims (host, pid and a random part by default).
        public var workerID: String
        /// Where models are downloaded for the runner.
        public var scratchFolder: String
        /// Failed measurements of one trial (by this worker) before it writes `model_latency_error.json` and
        /// gives the trial up; default 3.
        public var maxAttempts: Int

        /// Builds a configuration (defaults: no partition, 1 s poll, 30 s lease).
        public init(
            deviceType: String, latencyWorkerID: Int = 0, numLatencyWorkers: Int = 1,
            pollInterval: Duration = .seconds(1), leaseDuration: Duration = .seconds(30), workerID: String? = nil,
            scratchFolder: String = NSTemporaryDirectory(),
            maxAttempts: Int = 3
        ) {
            self.maxAttempts = max(1, maxAttempts)
            self.deviceType = deviceType
            self.latencyWorkerID = latencyWorkerID
            self.numLatencyWorkers = numLatencyWorkers
            self.pollInterval = pollInterval
            self.leaseDuration = leaseDuration
            let random = String(UInt32.random(in: 0...UInt32.max), radix: 36)
            self.workerID = workerID ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(random)"
            self.scratchFolder = scratchFolder
        }

        /// Checks the ranges; the error says which setting is wrong.
        public func validate() throws {
            if deviceType.isEmpty {
                throw ExchangeError.invalidConfiguration("the device type is empty; name it, e.g. cpu-x86")
            }
            if numLatencyWorkers < 1 {
                throw ExchangeError.invalidConfiguration(
                    "--num-latency-workers is \(numLatencyWorkers); it must be at least 1")
            }
            if latencyWorkerID < 0 || latencyWorkerID >= numLatencyWorkers {
                throw ExchangeError.invalidConfiguration(
                    "--latency-worker-id is \(latencyWorkerID); it must be in [0, \(numLatencyWorkers - 1)]")
            }
            if pollInterval <= .zero {
                throw ExchangeError.invalidConfiguration("the poll interval must be greater than 0 s")
            }
            if leaseDuration < .milliseconds(300) {
                throw ExchangeError.invalidConfiguration("the lease must be at least 0.3 s")
            }
        }
    }

    /// What one scan did.
    public struct Pass: Sendable {
        /// Trials measured (metrics written) by this worker in this pass.
        public var measured: [Int] = []
        /// Claims taken over from workers whose lease lapsed.
        public var tookOver: [Int] = []
        /// What went wrong, one readable line each; the pass went on after each.
        public var problems: [String] = []
        /// Whether `job_status.json` says the job ended.
        public var jobEnded = false
        /// Why the job directory could not be listed, when it could not.
        public var unreachable: StorageError?
    }

    /// Why a worker gave up on its job directory.
    public struct Unreachable: Error, CustomStringConvertible, Sendable {
        /// What went wrong and what to do.
        public let description: String
    }

    /// Passes in a row that may fail to list the job directory for a transient reason before the worker gives up.
    public static let unreachablePassesAllowed = 8

    /// The job directory.
    public let storage: any ObjectStorage
    /// The measuring backend.
    public let runner: any ModelRunner
    /// Settings.
    public let configuration: Configuration
    private let runnerName: String
    private let claims: TrialClaims
    private let log: @Sendable (String) -> Void
    private let reportedFolders = Mutex<Set<String>>([])
    private let failures = Mutex<[Int: Int]>([:])

    /// Builds a worker; `runnerName` names the runner in errors, `log` receives one line per event.
    public init(
        storage: any ObjectStorage, runner: any ModelRunner, configuration: Configuration,
        runnerName: String = "runner",
        log: @escaping @Sendable (String) -> Void = FileWorker.standardErrorLog,
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) throws {
        try configuration.validate()
        self.storage = storage
        self.runner = runner
        self.configuration = configuration
        self.runnerName = runnerName
        self.log = log
        claims = TrialClaims(
            storage: storage, worker: configuration.workerID, latencyWorkerID: configuration.latencyWorkerID,
            deviceType: configuration.deviceType, leaseDuration: configuration.leaseDuration.inSeconds,
            clock: clock)
    }

    /// Writes a line to standard error.
    public static let standardErrorLog: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data("nas worker: \(line)\n".utf8))
    }

    /// Scans and works until the job ends, `stop` is requested (after finishing the model in hand) or the task is
    /// cancelled; returns the trials this worker measured.
    ///
    /// A job directory that cannot be listed for a lasting reason (no credentials, permission denied, no such
    /// bucket) ends the run at once with `Unreachable`; a transient one (a server overloaded, the network) is
    /// retried with a doubling wait, `unreachablePassesAllowed` times in a row, before the worker gives up the same
    /// way: it never repeats the same error every second forever.
    ///
    /// The whole run (scans, claims, the measurement's hand-off, the waits between scans) happens on the fleet's
    /// own threads (`FleetExecutor`), never on Swift's shared pool: a process whose pool is busy (training,
    /// blocking calls, a loaded test run) must not stall the worker past its lease.
    public func run(until stop: FileWorkerStop = FileWorkerStop()) async throws(Unreachable) -> [Int] {
        try await withTaskExecutorPreference(FleetExecutor.shared) { () async throws(Unreachable) -> [Int] in
            try await runScans(until: stop)
        }
    }

    private func runScans(until stop: FileWorkerStop) async throws(Unreachable) -> [Int] {
        var measured = [Int]()
        var failedPasses = 0
        log("worker \(configuration.workerID) (\(configuration.deviceType)) watching \(storage.location)")
        while !stop.isRequested && !Task.isCancelled {
            let pass = await runOnce(stop: stop)
            measured += pass.measured
            if pass.jobEnded {
                log("job ended (\(JobLayout.statusKey)); measured \(measured.count) trial(s)")
                return measured
            }
            if let error = pass.unreachable {
                failedPasses += 1
                if !error.isTransient || failedPasses > Self.unreachablePassesAllowed {
                    throw Unreachable(
                        description: "giving up on \(storage.location) after \(failedPasses) failed scan(s): \(error)")
                }
            } else {
                failedPasses = 0
            }
            if !pass.measured.isEmpty { continue }  // more models may have arrived while measuring
            let backoff = failedPasses == 0 ? 1.0 : pow(2, Double(failedPasses))
            let wake = Date().addingTimeInterval(configuration.pollInterval.inSeconds * backoff)
            while !stop.isRequested && !Task.isCancelled && wake.timeIntervalSinceNow > 0 {
                await FleetExecutor.shared.sleep(milliseconds: Int(min(0.05, max(0, wake.timeIntervalSinceNow)) * 1000))
            }
        }
        log(Task.isCancelled ? "cancelled; measured \(measured.count) trial(s)"
            : "stopped on request; measured \(measured.count) trial(s)")
        return measured
    }

    /// One scan: every trial with a model and without metrics (in this worker's partition) is tried once, on the
    /// fleet's own threads.
    public func runOnce(stop: FileWorkerStop = FileWorkerStop()) async -> Pass {
        await withTaskExecutorPreference(FleetExecutor.shared) { await scan(stop: stop) }
    }

    private func scan(stop: FileWorkerStop) async -> Pass {
        var pass = Pass()
        func problem(_ text: String) {
            pass.problems.append(text)
            log(text)
        }
        do {
            if try await offPool({ [storage] in try JobState.read(from: storage) }).hasEnded {
                pass.jobEnded = true
                return pass
            }
        } catch {
            problem("cannot read the job status: \(error)")
        }
        let keys: [String]
        do {
            keys = try await offPool { [storage] in try storage.list(prefix: "") }
        } catch {
            problem("cannot list \(storage.location): \(error)")
            pass.unreachable = error as? StorageError
            return pass
        }
        var models = Set<String>()
        var done = Set<String>()
        for key in keys {
            let parts = key.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[1] == "saved_model" else { continue }
            if parts[2] == "model.onnx" { models.insert(String(parts[0])) }
            if parts[2] == "model_latency.json" || parts[2] == "model_latency_error.json" {
                done.insert(String(parts[0]))
            }
        }
        var trials = [Int]()
        for folder in models.subtracting(done) {
            do {
                let trial = try JobLayout.trialID(folder: folder, location: storage.location)
                if trial % configuration.numLatencyWorkers == configuration.latencyWorkerID { trials.append(trial) }
            } catch {
                if reportedFolders.withLock({ $0.insert(folder).inserted }) { problem("\(error)") }
            }
        }
        for trial in trials.sorted() {
            if stop.isRequested { break }
            do {
                if let tookOver = try await work(on: trial) {
                    pass.measured.append(trial)
                    if tookOver { pass.tookOver.append(trial) }
                }
            } catch {
                problem("trial \(trial): \(error)")
            }
        }
        return pass
    }

    /// Claims, measures and publishes one trial; nil when another worker has it, else whether it was taken
    /// over from a lapsed claim.
    private func work(on trial: Int) async throws -> Bool? {
        let (storage, claims) = (self.storage, self.claims)
        guard let lease = try await offPool({ try claims.tryClaim(trial: trial) }) else { return nil }
        // Another worker may have finished between our listing and our claim.
        if try await offPool({ try storage.exists(JobLayout.metricsKey(trial: trial)) }) { return nil }
        guard let model = try await offPool({ try storage.read(JobLayout.modelKey(trial: trial)) }) else { return nil }
        log("trial \(trial): claimed\(lease.tookOver ? " (took over a lapsed claim)" : ""), measuring")
        let folder = configuration.scratchFolder + "/nas-file-worker-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/model.onnx"
        guard FileManager.default.createFile(atPath: path, contents: Data(model.data)) else {
            throw ExchangeError.invalidConfiguration("cannot write the model to \(path); check the space in TMPDIR")
        }
        do {
            try await measureAndPublish(lease, modelAt: path)
        } catch let failure as RunnerFailure {
            try await recordFailure(trial: trial, failure.error)
            throw failure.error
        } catch let error as ExchangeError where error.isRunnerFailure {
            try await recordFailure(trial: trial, error)
            throw error
        }
        failures.withLock { $0[trial] = nil }
        return lease.tookOver
    }

    /// Counts a failed measurement of `trial`; at ``Configuration/maxAttempts`` the trial gets
    /// `model_latency_error.json`, so that workers stop retrying it and its trainer fails at once with the reason.
    private func recordFailure(trial: Int, _ error: any Error) async throws {
        let attempts = failures.withLock { counts -> Int in
            counts[trial, default: 0] += 1
            return counts[trial]!
        }
        guard attempts >= configuration.maxAttempts else { return }
        let report: [String: Any] = [
            "error": "\(error)", "worker": configuration.workerID, "device_type": configuration.deviceType,
            "attempts": attempts,
        ]
        let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        try await offPool { [storage] in try storage.write(JobLayout.errorKey(trial: trial), data: Array(data)) }
        failures.withLock { $0[trial] = nil }
        log("trial \(trial): gave up after \(attempts) failed measurements; wrote \(JobLayout.errorKey(trial: trial))")
    }

    /// Measures and writes the metrics while a companion task renews the lease every third of its duration, until
    /// the metrics are written: a worker whose process is slow to resume after the measurement (a loaded host)
    /// keeps the trial. A lost lease cancels the measurement; the metrics are written only while the last renewal
    /// still holds for at least one more interval, so a trial taken over is never written twice.
    private func measureAndPublish(_ lease: TrialLease, modelAt path: String) async throws {
        let holder = LeaseHolder(lease)
        let (claims, runner, storage) = (self.claims, self.runner, self.storage)
        let (runnerName, log) = (self.runnerName, self.log)
        let interval = configuration.leaseDuration.inSeconds / 3
        let trial = lease.trial
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                let metrics: [String: Double]
                do {
                    metrics = try await runner.measure(modelAt: path)
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    throw RunnerFailure(error: error)
                }
                let result = try LatencyMetrics(runnerMetrics: metrics, runner: runnerName)
                guard claims.clock() + interval < holder.lease.withLock({ $0.expiresAt }) else {
                    throw ExchangeError.leaseLost(trial: trial)
                }
                let encoded = result.encoded()
                try await offPool { try storage.write(JobLayout.metricsKey(trial: trial), data: encoded) }
                log("trial \(trial): latency \(result.latencyMilliseconds) ms, memory \(result.memoryBytes.map { "\(Int($0)) bytes" } ?? "not reported")")
                return true
            }
            // The renewals run and sleep on the fleet's threads: a process whose global executor is busy for
            // longer than a lease (training, blocking calls) must not lose the claim while it measures.
            group.addTask(executorPreference: FleetExecutor.shared) {
                while true {
                    await FleetExecutor.shared.sleep(milliseconds: Int(interval * 1000))
                    try Task.checkCancellation()
                    let current = holder.lease.withLock { $0 }
                    do {
                        guard let renewed = try await offPool({ try claims.renew(current) }) else {
                            throw ExchangeError.leaseLost(trial: trial)
                        }
                        holder.lease.withLock { $0 = renewed }
                    } catch let error as StorageError where error.isTransient {
                        // An outage: keep measuring while the lease still holds, the next renewal may get through.
                        if claims.clock() >= current.expiresAt { throw ExchangeError.leaseLost(trial: trial) }
                    }
                }
            }
            defer { group.cancelAll() }
            while let published = try await group.next() {
                if published { return }
            }
        }
    }
}

/// The lease of a trial in measurement, shared by the renewing task and the worker.
private final class LeaseHolder: Sendable {
    let lease: Mutex<TrialLease>
    init(_ lease: TrialLease) { self.lease = Mutex(lease) }
}

/// An error of the runner itself (as opposed to the lease or the storage), carried out of the task group.
private struct RunnerFailure: Error {
    let error: any Error
}
