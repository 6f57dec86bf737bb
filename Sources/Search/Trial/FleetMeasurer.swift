import Fleet
import FleetWire
import Foundation
import HTTP2
import Synchronization

/// How a trial's model reaches a device to be measured.
public enum Transport: String, CaseIterable, Sendable {
    /// Pushed to a worker of the device type through the coordinator (HTTP/2).
    case push
    /// Written into the job directory for a file-mode worker, as vertex-ai-nas does.
    case files
    /// Push when the coordinator has a worker of the type (within the push wait), files otherwise.
    case auto
}

/// Measures a model in this process with a runner (the native engine): this machine's device type.
public struct InProcessMeasurer: DeviceMeasurer {
    /// The runner that times the model.
    public var runner: any ModelRunner

    /// A measurer over `runner`.
    public init(runner: any ModelRunner) { self.runner = runner }

    public func measure(_ model: TrialModel, on deviceType: String) async throws -> [String: Double] {
        try await runner.measure(modelAt: model.path)
    }

    public func measureDetailed(_ model: TrialModel, on deviceType: String) async throws -> DeviceMeasurement {
        DeviceMeasurement(
            deviceType: deviceType, metrics: try await measure(model, on: deviceType),
            attributes: DeviceMeasurement.machineAttributes(), runtime: runner is CommandRunner ? "command" : "native")
    }
}

/// The coordinator's worker list as last fetched, shared by a trial's measurements: a push needs the answering
/// worker's attributes and `auto` needs to know a worker of the type is live, and one list serves both until it
/// is stale. It is fetched again when a worker it does not know answers, when no live worker of a type is in it,
/// and after a failed push (`invalidate`), so that workers coming and going are still seen.
public final class WorkerList: Sendable {
    private let fetch: @Sendable () async throws -> [FleetWorkerStatus]
    private let cached = Mutex<[FleetWorkerStatus]?>(nil)

    /// A list fetched with `fetch` (the coordinator's `ListWorkers`) when first needed.
    public init(fetch: @escaping @Sendable () async throws -> [FleetWorkerStatus]) { self.fetch = fetch }

    /// The list: the cached one unless `refresh`, else fetched (and cached).
    public func workers(refresh: Bool = false) async throws -> [FleetWorkerStatus] {
        if !refresh, let list = cached.withLock({ $0 }) { return list }
        let list = try await fetch()
        cached.withLock { $0 = list }
        return list
    }

    /// Forgets the list: the next `workers()` fetches it.
    public func invalidate() { cached.withLock { $0 = nil } }

    /// The attributes of worker `id`: from the cached list, fetched again when the worker is not in it.
    func attributes(of id: String) async throws -> [String: String] {
        if let worker = try await workers().first(where: { $0.workerID == id }) { return worker.attributes }
        return try await workers(refresh: true).first { $0.workerID == id }?.attributes ?? [:]
    }
}

/// Measures a model through a coordinator's workers (pushed over HTTP/2).
public struct PushMeasurer: DeviceMeasurer {
    /// The coordinator's client.
    public var client: FleetClient
    /// Receives a line per measurement (which worker, how many attempts).
    public var log: @Sendable (String) -> Void
    /// The coordinator's workers, for the answering worker's attributes.
    public var workers: WorkerList

    /// A measurer through `client`; `workers` is the list to share with other measurements (a new one by default).
    public init(client: FleetClient, workers: WorkerList? = nil, log: @escaping @Sendable (String) -> Void) {
        self.client = client
        self.log = log
        self.workers = workers ?? WorkerList(fetch: { [client] in try await client.workers() })
    }

    public func measure(_ model: TrialModel, on deviceType: String) async throws -> [String: Double] {
        try await measureDetailed(model, on: deviceType).metrics
    }

    public func measureDetailed(_ model: TrialModel, on deviceType: String) async throws -> DeviceMeasurement {
        let evaluation: FleetEvaluation
        do {
            evaluation = try await client.evaluateDetailed(model: model.bytes, deviceType: deviceType)
        } catch {
            workers.invalidate()  // the fleet changed, or the coordinator did
            throw error
        }
        log("measured on '\(deviceType)' by worker \(evaluation.workerID) (attempts: \(evaluation.attempts))")
        // The worker's attributes, for the measurement store; a coordinator that cannot list them now loses
        // only the attributes, not the measurement.
        let attributes = (try? await workers.attributes(of: evaluation.workerID)) ?? [:]
        return DeviceMeasurement(
            deviceType: deviceType, metrics: evaluation.metrics, workerID: evaluation.workerID, attributes: attributes,
            runtime: attributes[DeviceMeasurement.runtimeAttribute] ?? "unknown")
    }
}

/// Measures a model through the file exchange: writes it where file-mode workers of the type look, and waits for
/// their `model_latency.json`, in vertex-ai-nas's layout.
public struct ExchangeMeasurer: DeviceMeasurer {
    /// The job's folder or bucket (the exchange's root).
    public var jobRoot: String
    /// True when the job measures several device types: each then has its own folder `devices/TYPE`, since the
    /// seed's layout has one `model_latency.json` per trial.
    public var perDeviceFolders: Bool
    /// How often to look for the metrics, and for how long.
    public var exchange: TrainerExchange.Configuration
    /// Receives a line telling how to start a worker.
    public var log: @Sendable (String) -> Void

    /// A measurer over the exchange rooted at `jobRoot`.
    public init(
        jobRoot: String, perDeviceFolders: Bool, exchange: TrainerExchange.Configuration,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.jobRoot = jobRoot
        self.perDeviceFolders = perDeviceFolders
        self.exchange = exchange
        self.log = log
    }

    public func measure(_ model: TrialModel, on deviceType: String) async throws -> [String: Double] {
        let root =
            perDeviceFolders ? (jobRoot.hasSuffix("/") ? jobRoot : jobRoot + "/") + "devices/\(deviceType)" : jobRoot
        guard let trialID = model.trialID else { throw TrialPipelineError.unnamedTrial }
        let storage = try StorageLocation.parse(root).open()
        log("waiting for a file-mode worker of '\(deviceType)': nas worker --job-dir \(root) --device-type \(deviceType)")
        return try await TrainerExchange(storage: storage, configuration: exchange)
            .measure(trial: trialID, model: model.bytes).metrics
    }
}

/// The measurer a trial uses for `transport`: in this process for this machine's device type when there is no
/// coordinator, else through the fleet, falling back to the file exchange where the fleet cannot serve.
public struct TransportMeasurer: DeviceMeasurer {
    /// The coordinator and its token, when the job has a fleet.
    public var coordinator: (url: String, token: String)?
    /// How models reach devices.
    public var transport: Transport
    /// How long `auto` waits for a worker of the type to register before it uses files.
    public var pushWait: Duration
    /// This machine's device type and the runner that measures it in this process.
    public var local: (deviceType: String, runner: any ModelRunner)?
    /// The file exchange.
    public var files: ExchangeMeasurer
    /// Receives a line for each fallback.
    public var log: @Sendable (String) -> Void
    /// The coordinator's client and worker list, made once and shared by every measurement through this measurer.
    private let fleet: (client: FleetClient, workers: WorkerList)?

    /// A measurer choosing per device type.
    /// `tls` checks an `https://` coordinator's certificate and holds the client certificate it may require.
    public init(
        coordinator: (url: String, token: String)?, tls: TLSContext? = nil, transport: Transport, pushWait: Duration,
        local: (deviceType: String, runner: any ModelRunner)?, files: ExchangeMeasurer,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.coordinator = coordinator
        self.transport = transport
        self.pushWait = pushWait
        self.local = local
        self.files = files
        self.log = log
        fleet = coordinator.map { coordinator in
            let client = FleetClient(coordinator: coordinator.url, token: coordinator.token, tls: tls)
            return (client, WorkerList(fetch: { try await client.workers() }))
        }
    }

    public func measure(_ model: TrialModel, on deviceType: String) async throws -> [String: Double] {
        try await measureDetailed(model, on: deviceType).metrics
    }

    public func measureDetailed(_ model: TrialModel, on deviceType: String) async throws -> DeviceMeasurement {
        switch (transport, fleet) {
        case (.push, nil):
            throw TrialPipelineError("--transport push needs --coordinator URL")
        case (.auto, nil) where deviceType == local?.deviceType:
            return try await InProcessMeasurer(runner: local!.runner).measureDetailed(model, on: deviceType)
        case (.files, _), (.auto, nil):
            return try await files.measureDetailed(model, on: deviceType)
        case (.push, let fleet?):
            return try await PushMeasurer(client: fleet.client, workers: fleet.workers, log: log)
                .measureDetailed(model, on: deviceType)
        case (.auto, let fleet?):
            if try await hasWorker(fleet.workers, deviceType) {
                return try await PushMeasurer(client: fleet.client, workers: fleet.workers, log: log)
                    .measureDetailed(model, on: deviceType)
            }
            log("no worker of device type '\(deviceType)' at \(coordinator?.url ?? "") after \(pushWait); using the file exchange")
            return try await files.measureDetailed(model, on: deviceType)
        }
    }

    /// True once a worker of the type is registered; false after `pushWait` or when the coordinator cannot be
    /// reached.
    /// The cached list answers when it has such a worker; otherwise it is fetched again at each poll.
    private func hasWorker(_ workers: WorkerList, _ deviceType: String) async throws -> Bool {
        let deadline = ContinuousClock.now + pushWait
        var refresh = false
        while true {
            do {
                let list = try await workers.workers(refresh: refresh)
                if list.contains(where: { $0.deviceType == deviceType && $0.state == "live" }) { return true }
                refresh = true
            } catch let error as FleetError where !error.isRetryable {
                throw TrialPipelineError("the coordinator refused the trainer: \(error)")
            } catch {
                log("coordinator unreachable (\(error)); using the file exchange")
                return false
            }
            guard ContinuousClock.now < deadline else { return false }
            await fleetSleep(for: .milliseconds(200))
            try Task.checkCancellation()
        }
    }
}
