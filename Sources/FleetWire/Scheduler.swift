/// The coordinator's bookkeeping as a plain value: workers and their leases, one queue of evaluations per device
/// type, dispatch, deadlines and retries. Every event takes the current time (milliseconds on a monotonic
/// clock, injected) and returns the actions the I/O layer must carry out, so it tests without sockets or sleeps.
package struct Scheduler: Sendable {
    /// Limits of the scheduling.
    package struct Configuration: Sendable {
        /// A worker is dropped when no heartbeat arrived for this long.
        package var leaseMilliseconds: UInt64 = 3000
        /// How often workers are asked to send heartbeats.
        package var heartbeatMilliseconds: UInt64 = 1000
        /// Dispatches of one evaluation before a retryable failure becomes final.
        package var maxAttempts = 3

        package init(leaseMilliseconds: UInt64 = 3000, heartbeatMilliseconds: UInt64 = 1000, maxAttempts: Int = 3) {
            self.leaseMilliseconds = leaseMilliseconds
            self.heartbeatMilliseconds = heartbeatMilliseconds
            self.maxAttempts = maxAttempts
        }
    }

    package enum WorkerState: String, Sendable {
        /// Heartbeats arrive and pushes succeed.
        case live
        /// A push failed on the transport: no new work until a heartbeat shows the worker is back.
        case lost
    }

    package struct Worker: Sendable {
        package var id: String
        package var deviceType: String
        package var attributes: [String: String]
        package var capacity: Int
        package var address: String
        package var state = WorkerState.live
        package var inFlight: Set<UInt64> = []
        package var done: UInt64 = 0
        package var failed: UInt64 = 0
        package var lastHeartbeat: UInt64
        /// The order of first registration: ties of load go to the worker registered first.
        package var sequence: Int
        /// Hashes of the models this worker has measured, so it is not sent them again.
        package var cached: Set<[UInt8]> = []
    }

    package struct Evaluation: Sendable {
        package var id: UInt64
        package var deviceType: String
        package var sha256: [UInt8]
        package var deadline: UInt64
        package var attempts = 0
        package var tried: Set<String> = []
        package var worker: String?
        /// Why it went back to the queue last (a worker lost), for the caller if no worker takes it again.
        package var lastError: FleetError?
    }

    package enum Action: Equatable, Sendable {
        /// Push the evaluation to the worker at `address`; `sendModel` is false when the worker has it cached.
        case dispatch(evaluation: UInt64, worker: String, address: String, sendModel: Bool)
        /// Answer the caller with the metrics.
        case succeed(evaluation: UInt64, metrics: [String: Double], worker: String, attempts: Int)
        /// Answer the caller with the error.
        case fail(evaluation: UInt64, error: FleetError)
    }

    package let configuration: Configuration
    package private(set) var workers: [String: Worker] = [:]
    package private(set) var evaluations: [UInt64: Evaluation] = [:]
    /// Evaluations waiting for a worker, oldest first, by device type.
    package private(set) var queues: [String: [UInt64]] = [:]
    private var registrations = 0

    package init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    // MARK: Workers

    /// A registered worker's identity and what its registration set off.
    package struct Registration: Sendable {
        /// Derived from `secret`: `w-` and 16 hex digits.
        package var id: String
        /// What the worker sends with its id on every later call, to prove it is the worker that registered.
        package var secret: [UInt8]
        package var actions: [Action]
    }

    /// The length of a worker's secret.
    package static let secretBytes = 16

    /// The id a secret proves: `w-` and the first 8 bytes of its SHA-256 in hex. Deriving the id instead of
    /// numbering workers keeps ids from colliding across coordinator restarts (a restarted coordinator cannot hand a
    /// new worker the id a paused one still holds) and lets a restarted coordinator, which remembers nothing,
    /// check a worker coming back: naming an id takes its secret, which only that worker knows (the id alone is
    /// shown to every token holder by ListWorkers).
    package static func workerID(provenBy secret: [UInt8]) -> String {
        "w-" + SHA256.hex(Array(SHA256.hash(secret).prefix(8)))
    }

    /// Registers a worker. A new one (no id, no secret) gets a random secret and the id derived from it; one that
    /// comes back (after a coordinator restart or a lapsed lease) names its id with the secret that proves it.
    package mutating func register(_ request: RegisterRequest, now: UInt64) throws(FleetError) -> Registration {
        guard !request.deviceType.isEmpty else { throw .badRequest("register: device_type is empty") }
        guard request.capacity >= 1 else { throw .badRequest("register: capacity must be at least 1") }
        guard request.address.hasPrefix("http://") || request.address.hasPrefix("https://") else {
            throw .badRequest("register: address '\(request.address)' must be https://host:port or http://host:port")
        }
        var secret = request.workerSecret
        if request.workerID.isEmpty && secret.isEmpty {
            var generator = SystemRandomNumberGenerator()
            secret = (0..<Self.secretBytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        } else {
            try Self.checkIdentity(request.workerID, secret: secret, call: "register")
        }
        let id = Self.workerID(provenBy: secret)
        if var existing = workers[id] {
            existing.deviceType = request.deviceType
            existing.attributes = request.attributes
            existing.capacity = Int(request.capacity)
            existing.address = request.address
            existing.state = .live
            existing.lastHeartbeat = now
            workers[id] = existing
        } else {
            registrations += 1
            workers[id] = Worker(id: id, deviceType: request.deviceType, attributes: request.attributes,
                                 capacity: Int(request.capacity), address: request.address, lastHeartbeat: now,
                                 sequence: registrations)
        }
        return Registration(id: id, secret: secret, actions: dispatchQueued(now: now))
    }

    /// Refuses a call naming worker `id` without the secret that proves it.
    private static func checkIdentity(_ id: String, secret: [UInt8], call: String) throws(FleetError) {
        guard !id.isEmpty else { throw .badRequest("\(call): worker_id is empty") }
        guard secret.count == secretBytes else {
            throw .badRequest("\(call): worker \(id) needs the \(secretBytes)-byte worker_secret its registration "
                + "returned (got \(secret.count) bytes); a new worker registers without worker_id")
        }
        guard workerID(provenBy: secret) == id else { throw .notThisWorker(id) }
    }

    /// Renews the lease of the worker the request names and proves; `unknownWorker` when the coordinator does not
    /// know it (dropped, or the coordinator restarted): the worker then registers again.
    package mutating func heartbeat(_ request: HeartbeatRequest, now: UInt64) throws(FleetError) -> [Action] {
        try Self.checkIdentity(request.workerID, secret: request.workerSecret, call: "heartbeat")
        guard var worker = workers[request.workerID] else { throw .unknownWorker(request.workerID) }
        worker.lastHeartbeat = now
        let wasLost = worker.state == .lost
        worker.state = .live
        workers[request.workerID] = worker
        return wasLost ? dispatchQueued(now: now) : []
    }

    /// Removes the worker the request names and proves, which is going away; its evaluations go back to the queue.
    package mutating func deregister(_ request: DeregisterRequest, now: UInt64) throws(FleetError) -> [Action] {
        try Self.checkIdentity(request.workerID, secret: request.workerSecret, call: "deregister")
        let id = request.workerID
        guard let worker = workers.removeValue(forKey: id) else { throw .unknownWorker(id) }
        var actions: [Action] = []
        for evaluation in worker.inFlight {
            actions += retry(evaluation, error: .workerLost(id, "it deregistered"), countAttempt: false, now: now)
        }
        return actions + dispatchQueued(now: now)
    }

    /// The device types some worker serves, sorted.
    package var registeredDeviceTypes: [String] {
        Set(workers.values.map(\.deviceType)).sorted()
    }

    /// What `nas workers` shows.
    package func listing(now: UInt64) -> [WorkerInfo] {
        workers.values.sorted { ($0.deviceType, $0.id) < ($1.deviceType, $1.id) }.map { worker in
            WorkerInfo(workerID: worker.id, deviceType: worker.deviceType, attributes: worker.attributes,
                       state: worker.state.rawValue, capacity: UInt32(worker.capacity),
                       inFlight: UInt32(worker.inFlight.count), done: worker.done, failed: worker.failed,
                       lastHeartbeatMillisecondsAgo: now &- worker.lastHeartbeat, address: worker.address)
        }
    }

    // MARK: Evaluations

    /// Queues an evaluation; it waits for a worker of its type until `deadline`.
    package mutating func submit(id: UInt64, deviceType: String, sha256: [UInt8], deadline: UInt64, now: UInt64) -> [Action] {
        evaluations[id] = Evaluation(id: id, deviceType: deviceType, sha256: sha256, deadline: deadline)
        queues[deviceType, default: []].append(id)
        return dispatchQueued(now: now)
    }

    /// A worker answered a push (or the push failed).
    package mutating func finished(_ id: UInt64, worker workerID: String, result: Result<[String: Double], FleetError>,
                           now: UInt64) -> [Action] {
        var worker = workers[workerID]
        worker?.inFlight.remove(id)
        guard let evaluation = evaluations[id], evaluation.worker == workerID else {
            // A late answer for an evaluation that already ended or moved on: only the load changes.
            if let worker { workers[workerID] = worker }
            return dispatchQueued(now: now)
        }
        switch result {
        case .success(let metrics):
            worker?.done += 1
            worker?.cached.insert(evaluation.sha256)
            evaluations[id] = nil
            if let worker { workers[workerID] = worker }
            return [.succeed(evaluation: id, metrics: metrics, worker: workerID, attempts: evaluation.attempts)]
                + dispatchQueued(now: now)
        case .failure(let error):
            worker?.failed += 1
            if error.code == .workerLost || error.code == .transport { worker?.state = .lost }
            if error.code == .modelNotCached { worker?.cached.remove(evaluation.sha256) }
            if let worker { workers[workerID] = worker }
            if error.isRetryable {
                return retry(id, error: error, countAttempt: error.code != .modelNotCached, now: now)
                    + dispatchQueued(now: now)
            }
            evaluations[id] = nil
            return [.fail(evaluation: id, error: error)] + dispatchQueued(now: now)
        }
    }

    /// Drops workers whose lease lapsed and fails evaluations whose deadline passed.
    package mutating func tick(now: UInt64) -> [Action] {
        var actions: [Action] = []
        for worker in workers.values where now > worker.lastHeartbeat + configuration.leaseMilliseconds {
            workers[worker.id] = nil
            for evaluation in worker.inFlight {
                actions += retry(evaluation, error: .workerLost(worker.id, "its lease lapsed"), countAttempt: true,
                                 now: now)
            }
        }
        for evaluation in evaluations.values where now >= evaluation.deadline {
            actions.append(.fail(evaluation: evaluation.id, error: deadlineError(evaluation)))
            evaluations[evaluation.id] = nil
            queues[evaluation.deviceType]?.removeAll { $0 == evaluation.id }
        }
        return actions + dispatchQueued(now: now)
    }

    // MARK: Inside

    private func deadlineError(_ evaluation: Evaluation) -> FleetError {
        let serving = workers.values.contains { $0.deviceType == evaluation.deviceType }
        if !serving && evaluation.worker == nil {
            // The only worker of the type was lost with it: that is what the caller must hear, not "no worker".
            if let lost = evaluation.lastError {
                return FleetError(lost.code, "\(lost.message); no other worker of device type "
                    + "'\(evaluation.deviceType)' took the evaluation before its deadline")
            }
            return .noWorker(deviceType: evaluation.deviceType, registered: registeredDeviceTypes)
        }
        let tries = evaluation.attempts == 1 ? "1 attempt" : "\(evaluation.attempts) attempts"
        return .timedOut("the evaluation on device type '\(evaluation.deviceType)' passed its deadline after \(tries)")
    }

    /// Puts an evaluation back in front of its queue, or fails it when it used up its attempts.
    private mutating func retry(_ id: UInt64, error: FleetError, countAttempt: Bool, now: UInt64) -> [Action] {
        guard var evaluation = evaluations[id] else { return [] }
        if !countAttempt { evaluation.attempts -= 1 }
        evaluation.worker = nil
        evaluation.lastError = error
        if evaluation.attempts >= configuration.maxAttempts {
            evaluations[id] = nil
            return [.fail(evaluation: id, error: FleetError(error.code,
                "\(error.message) (gave up after \(evaluation.attempts) attempts)"))]
        }
        evaluations[id] = evaluation
        queues[evaluation.deviceType, default: []].insert(id, at: 0)
        return []
    }

    /// Whether an evaluation of `deviceType` submitted now would be pushed at once, with its model's bytes (the
    /// worker it would go to does not have `sha256` cached): none of that type waits and a worker has room.
    package func pushesModelAtOnce(deviceType: String, sha256: [UInt8]) -> Bool {
        guard queues[deviceType]?.isEmpty ?? true, let chosen = choice(deviceType: deviceType, tried: []) else {
            return false
        }
        return !chosen.cached.contains(sha256)
    }

    /// The least-loaded live worker of `deviceType` that has room, preferring those not in `tried`; ties go to the
    /// one that registered first.
    private func choice(deviceType: String, tried: Set<String>) -> Worker? {
        let candidates = workers.values.filter {
            $0.deviceType == deviceType && $0.state == .live && $0.inFlight.count < $0.capacity
        }
        let fresh = candidates.filter { !tried.contains($0.id) }
        return (fresh.isEmpty ? candidates : fresh).min { a, b in
            let loadA = Double(a.inFlight.count) / Double(a.capacity)
            let loadB = Double(b.inFlight.count) / Double(b.capacity)
            return (loadA, a.inFlight.count, a.sequence) < (loadB, b.inFlight.count, b.sequence)
        }
    }

    /// Hands queued evaluations to the least-loaded live workers of their type that have room.
    private mutating func dispatchQueued(now: UInt64) -> [Action] {
        guard !queues.isEmpty else { return [] }  // the common case: nothing waits (no sort, no array)
        var actions: [Action] = []
        for deviceType in queues.keys.sorted() {
            var queue = queues[deviceType] ?? []
            var kept: [UInt64] = []
            while !queue.isEmpty {
                let id = queue.removeFirst()
                guard var evaluation = evaluations[id] else { continue }
                // Another worker than those that already failed it, when there is one.
                guard let chosen = choice(deviceType: deviceType, tried: evaluation.tried) else {
                    kept.append(id)
                    kept.append(contentsOf: queue)
                    break
                }
                evaluation.attempts += 1
                evaluation.tried.insert(chosen.id)
                evaluation.worker = chosen.id
                evaluations[id] = evaluation
                workers[chosen.id]?.inFlight.insert(id)
                actions.append(.dispatch(evaluation: id, worker: chosen.id, address: chosen.address,
                                         sendModel: !chosen.cached.contains(evaluation.sha256)))
            }
            queues[deviceType] = kept.isEmpty ? nil : kept
        }
        return actions
    }
}
