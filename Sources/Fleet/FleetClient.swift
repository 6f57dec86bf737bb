import HTTP2
import FleetWire

/// Calls of the fleet's protocol over one HTTP/2 client: encodes the request, decodes the response or the error.
struct FleetCaller: Sendable {
    let http: HTTP2Client

    func call<Request: ProtobufCMessageConvertible, Response: ProtobufCMessageConvertible>(
        _ url: String, _ request: Request, as: Response.Type, timeout: Duration
    ) async throws(FleetError) -> Response {
        try decodeAnswer(url, try await http.call(url: url, body: request.encoded(), timeout: timeout)).get()
    }
}

/// A call's answer as the message it should hold: the response on 200, else the error the body carries.
func decodeAnswer<Response: ProtobufCMessageConvertible>(_ url: String, _ answer: HTTP2Response)
    -> Result<Response, FleetError>
{
    guard answer.status == 200 else {
        if let wire = try? ErrorMessage(decoding: answer.body), wire.code != .unspecified {
            return .failure(FleetError(wire: wire))
        }
        return .failure(FleetError(.httpStatus, "POST \(url): HTTP \(answer.status) without an error message"))
    }
    return Result { () throws(FleetError) in try Response(decoding: answer.body) }
}

/// One measured evaluation: the metrics, which worker measured them and how many dispatches it took.
public struct FleetEvaluation: Sendable, Equatable {
    /// Metrics by name (`MetricKey`).
    public var metrics: [String: Double]
    /// The worker that measured the model.
    public var workerID: String
    /// Dispatches it took; more than 1 when a worker was lost or timed out.
    public var attempts: Int
}

/// A worker as the coordinator sees it.
public struct FleetWorkerStatus: Sendable, Equatable, Codable {
    /// The id the coordinator gave it (kept across coordinator restarts).
    public var workerID: String
    /// Its routing key, e.g. `cpu-x86`.
    public var deviceType: String
    /// Free-form attributes it registered with.
    public var attributes: [String: String]
    /// `live`, or `lost` when a push to it failed and no heartbeat came since.
    public var state: String
    /// Concurrent evaluations it accepts.
    public var capacity: Int
    /// Evaluations it is running now.
    public var inFlight: Int
    /// Evaluations it measured.
    public var done: Int
    /// Evaluations that failed on it.
    public var failed: Int
    /// Milliseconds since its last heartbeat.
    public var lastHeartbeatMillisecondsAgo: Int
    /// Where the coordinator pushes models to it.
    public var address: String
}

/// The client of a coordinator: what the trainer and the search call to measure a model on a device type. Its
/// calls go out on the process's HTTP/2 event loop, on one connection to the coordinator opened by the first call.
public final class FleetClient: Sendable {
    /// How an evaluation is tried again when the coordinator went away (a restart) or was busy: the connection was
    /// refused or lost, or the answer was 503 `UNAVAILABLE`. Errors about the model or the workers are not retried
    /// here: the coordinator already retried those on other workers.
    public struct Retries: Sendable, Equatable {
        /// Calls at most, the first included (default 8).
        public var attempts = 8
        /// The wait before the second call (default 100 ms), doubled before each next one.
        public var firstBackoff: Duration = .milliseconds(100)
        /// The longest wait between two calls (default 2 s): the defaults ride out a restart of about 7 s.
        public var maxBackoff: Duration = .seconds(2)

        /// The defaults.
        public init() {}
    }

    private let base: String
    let caller: FleetCaller
    /// How evaluations are retried over a coordinator restart.
    public let retries: Retries

    /// A client of the coordinator at `coordinator` (`https://host:port` over TLS, `http://host:port` as h2c) using
    /// the fleet's shared `token`; `tls` checks an `https://` coordinator's certificate (the system's trust store
    /// when nil) and holds the client certificate it may require. Its calls go out on `loop` (the process's shared
    /// one by default).
    public init(
        coordinator: String, token: String, tls: TLSContext? = nil, loop: EventLoop = .shared,
        retries: Retries = Retries()
    ) {
        var base = coordinator
        while base.hasSuffix("/") { base.removeLast() }
        if !base.contains("://") { base = "http://" + base }
        self.base = base
        self.retries = retries
        caller = FleetCaller(http: HTTP2Client(configuration: .init(token: token, tls: tls), loop: loop))
    }

    deinit {
        caller.http.shutdown()
    }

    /// The event loop its calls go out on, as a task executor for callers that want no thread hop per call: inside
    /// `withTaskExecutorPreference(client.loop) { ... }` (or a `Task(executorPreference: client.loop)`) a call is
    /// submitted on the loop directly and the caller resumes on the loop as soon as the answer is read, about half
    /// a round trip less than from Swift's cooperative pool. The caller then runs on the loop thread: only for code
    /// that does little between its calls (a benchmark, a poll), never for heavy work after the await, which would
    /// hold up every socket and timer of the loop (the coordinator's, when it is embedded in the same process).
    public var loop: EventLoop { caller.http.loop }

    /// How long a call waits for the coordinator by default.
    static let callTimeout: Duration = .seconds(30)

    /// Measures an ONNX model on a worker of `deviceType`; fails when no worker measured it before `deadline`.
    public func evaluate(model: [UInt8], deviceType: String, deadline: Duration = .seconds(300)) async throws
        -> [String: Double]
    {
        try await evaluateDetailed(model: model, deviceType: deviceType, deadline: deadline).metrics
    }

    /// Like `evaluate`, and also tells which worker measured the model and in how many attempts. An evaluation the
    /// coordinator could not answer (it restarted meanwhile, or was busy) is asked again within the deadline, as
    /// `retries` says.
    public func evaluateDetailed(model: [UInt8], deviceType: String, deadline: Duration = .seconds(300)) async throws
        -> FleetEvaluation
    {
        let hash = SHA256.hash(model)
        let end = ContinuousClock.now + deadline
        var backoff = retries.firstBackoff
        var calls = 1
        while true {
            let left = max(1, milliseconds(ContinuousClock.now.duration(to: end)))
            let request = EvaluateRequest(deviceType: deviceType, model: model, sha256: hash,
                                          deadlineMilliseconds: UInt32(clamping: left))
            do throws(FleetError) {
                // The transport waits a little longer than the coordinator, so the coordinator's answer wins.
                let response = try await caller.call(base + FleetPath.evaluate, request, as: EvaluateResponse.self,
                                                     timeout: .milliseconds(left) + .seconds(5))
                return FleetEvaluation(metrics: response.metrics, workerID: response.workerID,
                                       attempts: Int(response.attempts))
            } catch {
                let coordinatorAway = error.code == .transport || error.code == .unavailable
                guard coordinatorAway, calls < retries.attempts, ContinuousClock.now + backoff < end,
                    !Task.isCancelled
                else {
                    throw calls == 1 ? error : FleetError(error.code, "\(error.message) (after \(calls) calls)")
                }
                // On the fleet's timers, not the global executor's: a busy process must still call again in time.
                await FleetExecutor.shared.sleep(milliseconds: milliseconds(backoff))
                backoff = min(backoff * 2, retries.maxBackoff)
                calls += 1
            }
        }
    }

    /// The workers the coordinator knows.
    public func workers() async throws -> [FleetWorkerStatus] {
        let response = try await caller.call(base + FleetPath.listWorkers, ListWorkersRequest(),
                                             as: ListWorkersResponse.self, timeout: Self.callTimeout)
        return response.workers.map {
            FleetWorkerStatus(workerID: $0.workerID, deviceType: $0.deviceType, attributes: $0.attributes,
                              state: $0.state, capacity: Int($0.capacity), inFlight: Int($0.inFlight),
                              done: Int($0.done), failed: Int($0.failed),
                              lastHeartbeatMillisecondsAgo: Int($0.lastHeartbeatMillisecondsAgo), address: $0.address)
        }
    }

    func register(_ request: RegisterRequest, timeout: Duration = .seconds(10)) async throws(FleetError) -> RegisterResponse {
        try await caller.call(base + FleetPath.register, request, as: RegisterResponse.self, timeout: timeout)
    }

    func heartbeat(_ identity: WorkerIdentity, timeout: Duration = .seconds(10)) async throws(FleetError)
        -> HeartbeatResponse
    {
        try await caller.call(base + FleetPath.heartbeat,
                              HeartbeatRequest(workerID: identity.id, workerSecret: identity.secret),
                              as: HeartbeatResponse.self, timeout: timeout)
    }

    func deregister(_ identity: WorkerIdentity, timeout: Duration = .seconds(5)) async throws(FleetError) {
        _ = try await caller.call(base + FleetPath.deregister,
                                  DeregisterRequest(workerID: identity.id, workerSecret: identity.secret),
                                  as: DeregisterResponse.self, timeout: timeout)
    }
}

/// A worker's id and the secret that proves it, as its registration returned them.
struct WorkerIdentity: Sendable, Equatable {
    var id: String
    var secret: [UInt8]
}
