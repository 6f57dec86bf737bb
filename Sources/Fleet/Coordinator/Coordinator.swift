import Foundation
import HTTP2
import FleetWire

/// The fleet's coordinator: workers register with it, callers ask it to evaluate models, and it pushes each model
/// to a live worker of the asked device type. Embeddable: `start()` serves on a port, `stop()` ends it.
public final class Coordinator: @unchecked Sendable {
    /// Coordinator settings, with the defaults `nas coordinator` uses.
    public struct Configuration: Sendable {
        /// Address to bind (default `127.0.0.1`).
        public var host = "127.0.0.1"
        /// Port to bind; 0 picks a free one (default 0).
        public var port = 0
        /// The fleet's shared bearer token; every call must carry it.
        public var token: String
        /// Largest request body accepted (default 64 MiB): the largest model that can be evaluated.
        public var maxBodyBytes = 64 << 20
        /// A worker is dropped when no heartbeat came for this long (default 3 s).
        public var lease: Duration = .seconds(3)
        /// How often workers send heartbeats (default 1 s).
        public var heartbeat: Duration = .seconds(1)
        /// The deadline of an evaluation whose caller set none (default 300 s).
        public var defaultDeadline: Duration = .seconds(300)
        /// Dispatches of one evaluation before a retryable failure is final (default 3).
        public var maxAttempts = 3
        /// What callers and workers can hold of the server: connections, timeouts, request-body memory. The
        /// bodies of evaluations count until they are answered, so `maxBufferedBodyBytes` also bounds the models
        /// waiting for a worker.
        public var limits = ServerLimits()
        /// Serve HTTP/2 over TLS with this server context (`TLSContext(server:)`); nil (the default) serves h2c.
        public var tls: TLSContext?
        /// How pushes check `https://` workers and the client certificate they present (`TLSContext(client:)`);
        /// nil checks workers against the system's trust store.
        public var pushTLS: TLSContext?

        /// Defaults, with the shared token.
        public init(token: String) {
            self.token = token
        }
    }

    /// The settings it was made with.
    public let configuration: Configuration
    private let lock = NSLock()
    private var scheduler: Scheduler
    private var waiters: [UInt64: @Sendable (Result<EvaluateResponse, FleetError>) -> Void] = [:]
    private var models: [UInt64: [UInt8]] = [:]
    /// Evaluations whose model is being hashed beside its push (`checkedBesidePush`), and the push results and
    /// answers that came before their check ended, held until it did (so a worker that measured damaged bytes is
    /// never thought to have the model cached, and no caller gets their metrics).
    private var checking: Set<UInt64> = []
    private var heldPushes: [UInt64: (worker: String, result: Result<RunResponse, FleetError>)] = [:]
    private var heldAnswers: [UInt64: Result<EvaluateResponse, FleetError>] = [:]
    /// Evaluations whose bytes did not match their hash, found beside their push: the caller has its answer, and
    /// what the worker answers ends the evaluation as a bad model.
    private var refused: Set<UInt64> = []
    private var nextEvaluation: UInt64 = 1
    private var server: HTTP2Server?
    /// Sends the pushes to workers, on the same event loop as the server.
    private var pusher: HTTP2Client?
    private let clock = ContinuousClock()
    private let loop: EventLoop
    private let started: ContinuousClock.Instant

    /// A coordinator with `configuration` whose sockets live on `loop`; call `start()` to serve.
    public init(configuration: Configuration, loop: EventLoop = .shared) {
        self.configuration = configuration
        self.loop = loop
        scheduler = Scheduler(configuration: .init(
            leaseMilliseconds: UInt64(milliseconds(configuration.lease)),
            heartbeatMilliseconds: UInt64(milliseconds(configuration.heartbeat)),
            maxAttempts: configuration.maxAttempts))
        started = clock.now
    }

    deinit {
        stop()
    }

    /// The bound port, once started.
    public var port: Int { lock.withLock { server?.port ?? 0 } }

    /// Binds and serves; returns the bound port.
    @discardableResult
    public func start() throws -> Int {
        guard !configuration.token.isEmpty else {
            throw FleetError.invalidConfiguration("the fleet token is empty: pass --token-file or set NAS_FLEET_TOKEN")
        }
        let routes: Set<String> = [FleetPath.register, FleetPath.heartbeat, FleetPath.deregister, FleetPath.evaluate,
                                   FleetPath.listWorkers]
        var settings = HTTP2Server.Configuration(host: configuration.host, port: configuration.port,
                                                 token: configuration.token, maxBodyBytes: configuration.maxBodyBytes,
                                                 routes: routes, tls: configuration.tls)
        settings.limits = configuration.limits
        let server = HTTP2Server(loop: loop, fleet: settings,
                                 immediate: { [unowned self] request, responder in handleAtOnce(request, responder) }) {
            [unowned self] request in await handle(request)
        }
        let port = try server.startServing()
        let pusher = HTTP2Client(configuration: .init(token: configuration.token, tls: configuration.pushTLS), loop: loop)
        lock.withLock {
            self.server = server
            self.pusher = pusher
        }
        scheduleTick(server)
        return port
    }

    /// Checks deadlines and leases every 20 ms while `server` serves, on the event loop rather than in a task of
    /// the global executor: a process whose cooperative threads are busy for seconds must still answer an
    /// evaluation at its deadline instead of letting the caller's timeout fire.
    private func scheduleTick(_ server: HTTP2Server) {
        loop.after(.milliseconds(20)) { [weak self, weak server] in
            guard let self, let server, self.lock.withLock({ self.server === server }) else { return }
            self.perform(self.lock.withLock { self.scheduler.tick(now: self.now()) })
            self.scheduleTick(server)
        }
    }

    /// Stops serving; evaluations still waiting fail.
    public func stop() {
        let (server, pusher) = lock.withLock {
            let running = (self.server, self.pusher)
            self.server = nil
            self.pusher = nil
            return running
        }
        server?.stop()
        pusher?.shutdown()
        let waiting = lock.withLock {
            let waiting = waiters
            waiters.removeAll()
            models.removeAll()
            checking.removeAll()
            heldPushes.removeAll()
            heldAnswers.removeAll()
            refused.removeAll()
            return waiting
        }
        for waiter in waiting.values {
            waiter(.failure(.unavailable("the coordinator stopped (a restart, or its end)")))
        }
    }

    private func now() -> UInt64 {
        let elapsed = clock.now - started
        return UInt64(elapsed.components.seconds) * 1000 + UInt64(elapsed.components.attoseconds / 1_000_000_000_000_000)
    }

    // MARK: Calls

    /// Every call is bookkeeping under the lock, answered on the server's loop without a task; an evaluation
    /// keeps its responder until a worker answered (the push's completion runs on the same loop).
    private func handleAtOnce(_ request: HTTP2Request, _ responder: HTTP2Responder) -> HTTP2Server.Disposition {
        do throws(FleetError) {
            switch request.path {
            case FleetPath.register: return .now(try register(RegisterRequest(decoding: request.body)))
            case FleetPath.heartbeat: return .now(try heartbeat(HeartbeatRequest(decoding: request.body)))
            case FleetPath.deregister: return .now(try deregister(DeregisterRequest(decoding: request.body)))
            case FleetPath.listWorkers:
                _ = try ListWorkersRequest(decoding: request.body)
                let workers = lock.withLock { scheduler.listing(now: now()) }
                return .now(HTTP2Response(status: 200, body: ListWorkersResponse(workers: workers).encoded()))
            case FleetPath.evaluate:
                try evaluate(EvaluateRequest(decoding: request.body)) { result in
                    switch result {
                    case .success(let response): responder.respond(HTTP2Response(status: 200, body: response.encoded()))
                    case .failure(let error): responder.respond(.error(error))
                    }
                }
                return .later
            default: return .now(.error(.notFound(request.path)))
            }
        } catch {
            return .now(.error(error))
        }
    }

    private func handle(_ request: HTTP2Request) async -> HTTP2Response {
        .error(.notFound(request.path))
    }

    private func register(_ request: RegisterRequest) throws(FleetError) -> HTTP2Response {
        let registered = lock.withLock {
            Result { () throws(FleetError) in try scheduler.register(request, now: now()) }
        }
        let registration = try registered.get()
        perform(registration.actions)
        let response = RegisterResponse(workerID: registration.id,
                                        leaseMilliseconds: UInt32(clamping: milliseconds(configuration.lease)),
                                        heartbeatMilliseconds: UInt32(clamping: milliseconds(configuration.heartbeat)),
                                        workerSecret: registration.secret)
        return HTTP2Response(status: 200, body: response.encoded())
    }

    private func heartbeat(_ request: HeartbeatRequest) throws(FleetError) -> HTTP2Response {
        perform(try lock.withLock {
            Result { () throws(FleetError) in try scheduler.heartbeat(request, now: now()) }
        }.get())
        let response = HeartbeatResponse(leaseMilliseconds: UInt32(clamping: milliseconds(configuration.lease)))
        return HTTP2Response(status: 200, body: response.encoded())
    }

    private func deregister(_ request: DeregisterRequest) throws(FleetError) -> HTTP2Response {
        perform(try lock.withLock {
            Result { () throws(FleetError) in try scheduler.deregister(request, now: now()) }
        }.get())
        return HTTP2Response(status: 200, body: DeregisterResponse().encoded())
    }

    private func evaluate(_ request: EvaluateRequest,
                          answer: @escaping @Sendable (Result<EvaluateResponse, FleetError>) -> Void) throws(FleetError) {
        guard !request.deviceType.isEmpty else { throw FleetError.badRequest("evaluate: device_type is empty") }
        guard !request.model.isEmpty else { throw FleetError.badModel("the model is empty") }
        guard request.sha256.count == 32 else {
            throw FleetError.badRequest("evaluate: sha256 is \(request.sha256.count) bytes; send the model's 32-byte "
                + "SHA-256 digest, which the coordinator checks against the bytes")
        }
        // A large model pushed at once with its bytes is hashed beside the push, on the fleet's background thread,
        // while it travels to a worker that checks them too; any other is checked here first, as a hash-only push
        // (or a queued evaluation) lets no one else see the bytes before a worker measures.
        let besidePush = request.model.count >= Self.checkedBesidePush
            && lock.withLock { scheduler.pushesModelAtOnce(deviceType: request.deviceType, sha256: request.sha256) }
        if !besidePush {
            let hash = SHA256.hash(request.model)
            guard request.sha256 == hash else { throw Self.damaged(hash, request.sha256) }
        }
        let deadline = request.deadlineMilliseconds > 0
            ? Int(request.deadlineMilliseconds) : milliseconds(configuration.defaultDeadline)
        let (id, actions) = lock.withLock {
            let id = nextEvaluation
            nextEvaluation += 1
            waiters[id] = answer
            models[id] = request.model
            if besidePush { checking.insert(id) }
            let now = now()
            return (id, scheduler.submit(id: id, deviceType: request.deviceType, sha256: request.sha256,
                                         deadline: now + UInt64(deadline), now: now))
        }
        perform(actions)
        if besidePush {
            let (model, claimed) = (request.model, request.sha256)
            Task(executorPreference: FleetExecutor.background) { [self] in
                let hash = SHA256.hash(model)
                checked(id, matches: hash == claimed, refusal: Self.damaged(hash, claimed))
            }
        }
    }

    /// The smallest model hashed beside its push (64 KiB); a smaller one takes less time to hash than to hand over.
    static let checkedBesidePush = 64 << 10

    private static func damaged(_ hash: [UInt8], _ claimed: [UInt8]) -> FleetError {
        FleetError.badModel("the model's sha256 is \(SHA256.hex(hash)), the request says \(SHA256.hex(claimed)): the "
            + "bytes were damaged on the way")
    }

    /// The hash check beside a push ended: the caller gets what was held for it, or the refusal; a refused
    /// evaluation still in the scheduler ends as a bad model when its push does.
    private func checked(_ evaluation: UInt64, matches: Bool, refusal: FleetError) {
        let (push, held) = lock.withLock {
            checking.remove(evaluation)
            if !matches && scheduler.evaluations[evaluation] != nil { refused.insert(evaluation) }
            return (heldPushes.removeValue(forKey: evaluation), heldAnswers.removeValue(forKey: evaluation))
        }
        if !matches {
            answer(evaluation, .failure(refusal))
        } else if let held {
            answer(evaluation, held)
        }
        if let push { finishPush(evaluation, worker: push.worker, result: push.result) }
    }

    // MARK: Actions

    private func perform(_ actions: [Scheduler.Action]) {
        for action in actions {
            switch action {
            case .dispatch(let evaluation, let worker, let address, let sendModel):
                push(evaluation, to: worker, address: address, sendModel: sendModel)
            case .succeed(let evaluation, let metrics, let worker, let attempts):
                answer(evaluation, .success(EvaluateResponse(metrics: metrics, workerID: worker,
                                                             attempts: UInt32(attempts))))
            case .fail(let evaluation, let error):
                answer(evaluation, .failure(error))
            }
        }
    }

    private func answer(_ evaluation: UInt64, _ result: Result<EvaluateResponse, FleetError>) {
        let waiter = lock.withLock { () -> (@Sendable (Result<EvaluateResponse, FleetError>) -> Void)? in
            if checking.contains(evaluation) {
                heldAnswers[evaluation] = result
                return nil
            }
            if scheduler.evaluations[evaluation] == nil { refused.remove(evaluation) }
            models[evaluation] = nil
            return waiters.removeValue(forKey: evaluation)
        }
        waiter?(result)
    }

    /// Sends the model (or only its hash) to the worker; a worker that lost its cache gets the bytes again. The
    /// push goes out on the server's own loop (an nghttp2 client session per worker) and its completion runs
    /// there too: an evaluation crosses no thread and starts no task between the caller and the worker.
    private func push(_ evaluation: UInt64, to worker: String, address: String, sendModel: Bool) {
        let (pusher, model, deadline, hash) = lock.withLock { () -> (HTTP2Client?, [UInt8]?, UInt64?, [UInt8]?) in
            let queued = scheduler.evaluations[evaluation]
            return (self.pusher, models[evaluation], queued?.deadline, queued?.sha256)
        }
        guard let deadline, let hash else { return }
        guard let model else {
            // Answered already: its bytes did not match their hash (found beside an earlier push).
            finishPush(evaluation, worker: worker, result: .failure(.hashMismatch))
            return
        }
        guard let pusher else {
            finishPush(evaluation, worker: worker, result: .failure(.transport("the coordinator is stopping")))
            return
        }
        let timeout = Duration.milliseconds(max(50, Int64(deadline) - Int64(now())))
        let url = address + FleetPath.run
        let request = RunRequest(sha256: hash, model: sendModel ? model : [],
                                 timeoutMilliseconds: UInt32(clamping: milliseconds(timeout)))
        let decode = { @Sendable (answer: Result<HTTP2Response, HTTP2Error>) -> Result<RunResponse, FleetError> in
            answer.mapError(FleetError.init).flatMap { decodeAnswer(url, $0) }
        }
        pusher.post(url: url, body: request.encoded(), timeout: timeout) { [self] answer in
            let result = decode(answer)
            if case .failure(let error) = result, error.code == .modelNotCached, !sendModel {
                var again = request
                again.model = model
                pusher.post(url: url, body: again.encoded(), timeout: timeout) { [self] answer in
                    finishPush(evaluation, worker: worker, result: decode(answer))
                }
                return
            }
            finishPush(evaluation, worker: worker, result: result)
        }
    }

    private func finishPush(_ evaluation: UInt64, worker: String, result: Result<RunResponse, FleetError>) {
        let held = lock.withLock { () -> Bool in
            guard checking.contains(evaluation) else { return false }
            heldPushes[evaluation] = (worker, result)
            return true
        }
        if held { return }
        // A worker that cannot be reached, or whose TLS handshake refuses this coordinator (the transport's
        // invalidConfiguration), is lost to this evaluation: it goes to another worker.
        var outcome: Result<[String: Double], FleetError> = result.map(\.metrics).mapError { error in
            error.code == .transport || error.code == .invalidConfiguration ? .workerLost(worker, error.message) : error
        }
        perform(lock.withLock {
            if refused.contains(evaluation) { outcome = .failure(.hashMismatch) }
            return scheduler.finished(evaluation, worker: worker, result: outcome, now: now())
        })
    }
}

/// Whole milliseconds of a duration (the wire's unit), rounded down.
func milliseconds(_ duration: Duration) -> Int {
    Int(duration.components.seconds) * 1000 + Int(duration.components.attoseconds / 1_000_000_000_000_000)
}
