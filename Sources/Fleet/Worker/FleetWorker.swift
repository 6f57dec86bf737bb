import Foundation
import HTTP2
import FleetWire
import Synchronization

/// A device worker: serves `nas.fleet.Worker/Run` for the coordinator, registers with it, keeps its lease with
/// heartbeats, and registers again (same id, with backoff) when the coordinator restarts or forgot it.
public final class FleetWorker: @unchecked Sendable {
    /// Worker settings.
    public struct Configuration: Sendable {
        /// The coordinator's URL, `https://host:port` (TLS) or `http://host:port` (h2c).
        public var coordinator: String
        /// The routing key of this device, e.g. `cpu-x86`.
        public var deviceType: String
        /// The fleet's shared token.
        public var token: String
        /// Free-form attributes shown by `nas workers`.
        public var attributes: [String: String] = [:]
        /// Concurrent evaluations (default 1: measurements disturb each other).
        public var capacity = 1
        /// Address to bind (default `127.0.0.1`).
        public var host = "127.0.0.1"
        /// Port to bind; 0 picks one (default 0).
        public var port = 0
        /// The host the coordinator reaches this worker at (default: `host`, or 127.0.0.1 when that is 0.0.0.0).
        public var advertisedHost: String?
        /// Largest model accepted (default 64 MiB).
        public var maxBodyBytes = 64 << 20
        /// Where models are cached by hash (default: a folder in the temporary directory).
        public var cacheDirectory: String?
        /// Longest wait between registration attempts while the coordinator is away (default 1 s).
        public var maxBackoff: Duration = .seconds(1)
        /// What peers can hold of the server of pushes: connections, timeouts, request-body memory.
        public var limits = ServerLimits()
        /// Serve pushes over TLS with this server context (`TLSContext(server:)`), registering an `https://`
        /// address; nil (the default) serves h2c.
        public var tls: TLSContext?
        /// How an `https://` coordinator's certificate is checked and the client certificate presented to it
        /// (`TLSContext(client:)`); nil checks it against the system's trust store.
        public var coordinatorTLS: TLSContext?

        /// Defaults for the given coordinator, device type and token.
        public init(coordinator: String, deviceType: String, token: String) {
            self.coordinator = coordinator
            self.deviceType = deviceType
            self.token = token
        }
    }

    /// The settings it was made with.
    public let configuration: Configuration
    private let runner: any ModelRunner
    private let client: FleetClient
    private let cacheDirectory: String
    private let lock = NSLock()
    private let loop: EventLoop
    private var server: HTTP2Server?
    /// The id and secret of the current registration; nil while (re-)registering.
    private var registered: WorkerIdentity?
    private var stopped = false
    private let log: @Sendable (String) -> Void

    /// A worker measuring models with `runner`; `log` receives one line per registration event.
    /// Its sockets (the server of pushes, the client of the coordinator) live on `loop`.
    public init(configuration: Configuration, runner: any ModelRunner, loop: EventLoop = .shared,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.loop = loop
        self.configuration = configuration
        self.runner = runner
        self.log = log
        client = FleetClient(coordinator: configuration.coordinator, token: configuration.token,
                             tls: configuration.coordinatorTLS, loop: loop)
        cacheDirectory = configuration.cacheDirectory
            ?? (NSTemporaryDirectory() + "nas-worker-cache-\(getpid())-\(UUID().uuidString.prefix(8))")
    }

    /// The id the coordinator gave this worker, once registered.
    public var workerID: String? { lock.withLock { registered?.id } }

    /// The bound port, once started.
    public var port: Int { lock.withLock { server?.port ?? 0 } }

    /// Starts serving pushes; returns the bound port. Call `run()` next to register and keep the lease.
    @discardableResult
    public func start() throws -> Int {
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        var settings = HTTP2Server.Configuration(host: configuration.host, port: configuration.port,
                                                 token: configuration.token, maxBodyBytes: configuration.maxBodyBytes,
                                                 routes: [FleetPath.run], tls: configuration.tls)
        settings.limits = configuration.limits
        let server = HTTP2Server(loop: loop, fleet: settings,
                                 immediate: { [unowned self] request, responder in handleAtOnce(request, responder) }) {
            [unowned self] request in await handle(request)
        }
        let port = try server.startServing()
        lock.withLock { self.server = server }
        return port
    }

    /// Registers and sends heartbeats until `stop()` or cancellation; never throws: the coordinator may come and go.
    public func run() async {
        // The loop runs on the fleet's threads and sleeps on their timers: a process whose global executor is busy
        // for seconds (training, blocking calls) must still renew the lease in time.
        await withTaskExecutorPreference(FleetExecutor.shared) { await keepRegistered() }
    }

    private func keepRegistered() async {
        let host = configuration.advertisedHost
            ?? (configuration.host == "0.0.0.0" || configuration.host == "::" ? "127.0.0.1" : configuration.host)
        let scheme = configuration.tls == nil ? "http" : "https"
        let address = host.contains(":") ? "\(scheme)://[\(host)]:\(port)" : "\(scheme)://\(host):\(port)"
        var heartbeatMilliseconds = 1000
        var backoff = 50
        while !Task.isCancelled && !(lock.withLock { stopped }) {
            if let identity = lock.withLock({ registered }) {
                await FleetExecutor.shared.sleep(milliseconds: heartbeatMilliseconds)
                if Task.isCancelled || lock.withLock({ stopped }) { break }
                do throws(FleetError) {
                    _ = try await client.heartbeat(identity,
                                                   timeout: .milliseconds(heartbeatMilliseconds) + .seconds(2))
                    continue
                } catch {
                    // Unknown (the coordinator restarted, or the lease lapsed) or unreachable: register again, with
                    // the same id and the secret that proves it.
                    log("heartbeat failed: \(error); registering again")
                    lock.withLock {
                        registered = nil
                        lastIdentity = identity
                    }
                    backoff = 50
                }
            }
            let last = lock.withLock { lastIdentity }
            let request = RegisterRequest(deviceType: configuration.deviceType, attributes: configuration.attributes,
                                          capacity: UInt32(configuration.capacity), address: address,
                                          workerID: last?.id ?? "", workerSecret: last?.secret ?? [])
            do throws(FleetError) {
                let response = try await client.register(request, timeout: .seconds(5))
                heartbeatMilliseconds = max(50, Int(response.heartbeatMilliseconds))
                let identity = WorkerIdentity(id: response.workerID, secret: response.workerSecret)
                lock.withLock {
                    registered = identity
                    lastIdentity = identity
                }
                log("registered as \(response.workerID) (device type \(configuration.deviceType), \(address))")
            } catch {
                // Refusals and TLS failures (a wrong CA, a missing client certificate) do not mend by retrying.
                if error.code == .badRequest || error.code == .unauthenticated || error.code == .invalidConfiguration {
                    log("registration refused: \(error)")
                }
                // Full jitter: many workers coming back after a coordinator restart do not arrive all at once.
                await FleetExecutor.shared.sleep(milliseconds: Int.random(in: backoff / 2...backoff))
                backoff = min(backoff * 2, max(1, milliseconds(configuration.maxBackoff)))
            }
        }
    }

    /// The identity to come back with after a failed heartbeat.
    private var lastIdentity: WorkerIdentity?
    /// The models written to the cache, by hash: a runner that does not read the file is answered from here.
    private var cachedPaths: [[UInt8]: String] = [:]
    /// Models a bytes runner measured whose cache files are still being written, by hash.
    private var pendingWrites: [[UInt8]: [UInt8]] = [:]

    /// Deregisters (best effort) and stops serving.
    public func stop() async {
        let identity = lock.withLock {
            stopped = true
            return registered
        }
        if let identity { try? await client.deregister(identity) }
        let server = lock.withLock {
            let server = self.server
            self.server = nil
            return server
        }
        server?.stop()
    }

    // MARK: Pushes

    /// Runners that need no waiting answer on the server's loop; the others run in a task. A bytes runner's task
    /// runs on the loop too: it starts in this turn, checks the model's hash, hands the bytes to the runner (which
    /// measures on a thread of its own) and resumes on the loop when the runner is done, so the answer goes out with
    /// no hop through the fleet's threads. Whatever would wait on the disk is done on those threads.
    private func handleAtOnce(_ request: HTTP2Request, _ responder: HTTP2Responder) -> HTTP2Server.Disposition {
        if runner is any ModelBytesRunner {
            Task(executorPreference: loop) { [self] in responder.respond(await handle(request)) }
            return .later
        }
        guard let immediate = runner as? any ImmediateModelRunner else { return .async }
        do throws(FleetError) {
            let path = try cachedModel(for: RunRequest(decoding: request.body), readsFile: false)
            let metrics = immediate.measureAtOnce(modelAt: path)
            return .now(HTTP2Response(status: 200, body: RunResponse(metrics: metrics).encoded()))
        } catch {
            return .now(.error(error))
        }
    }

    private func handle(_ request: HTTP2Request) async -> HTTP2Response {
        do throws(FleetError) {
            let run = try RunRequest(decoding: request.body)
            let metrics: [String: Double]
            do {
                if let bytesRunner = runner as? any ModelBytesRunner {
                    // The pushed bytes go to the runner as they are; the cache is written after the answer.
                    metrics = run.model.isEmpty
                        ? try await bytesRunner.measure(model: try await cachedBytes(for: run))
                        : try await measureChecking(run, bytesRunner)
                } else {
                    let path = try cachedModel(for: run, readsFile: true)
                    let runner = runner
                    metrics = try await within(run.timeoutMilliseconds) { try await runner.measure(modelAt: path) }
                }
            } catch let error as FleetError {
                throw error
            } catch {
                throw FleetError(.runnerFailed, "the runner failed: \(error)")
            }
            return HTTP2Response(status: 200, body: RunResponse(metrics: metrics).encoded())
        } catch {
            return .error(error)
        }
    }

    /// Runs a measurement that is cancelled once the push's `timeout_ms` passed, when the coordinator stopped
    /// waiting for it: a command runner's process group is killed then, not at `--runner-timeout`, and the device
    /// is free for the evaluation's next attempt.
    private func within(_ milliseconds: UInt32, _ measure: @escaping @Sendable () async throws -> [String: Double])
        async throws -> [String: Double]
    {
        guard milliseconds > 0 else { return try await measure() }
        let measuring = Task(executorPreference: FleetExecutor.shared) { try await measure() }
        let expired = Expiry()
        let timer = Task(executorPreference: FleetExecutor.shared) {
            await FleetExecutor.shared.sleep(milliseconds: Int(milliseconds))
            if !Task.isCancelled {
                expired.set()
                measuring.cancel()
            }
        }
        defer { timer.cancel() }
        do {
            return try await measuring.value
        } catch where expired.isSet {
            throw FleetError.timedOut("the measurement passed the push's timeout of \(milliseconds) ms and was stopped")
        }
    }

    /// Measures pushed bytes while they are checked against their hash: the runner is handed them first (it
    /// measures on a thread of its own), then the loop hashes them meanwhile, so the check adds nothing to the
    /// turnaround when the machine has a core for each. Bytes that do not match are refused (and not cached) once
    /// the runner is done with them, whatever it measured: the device never measures two models at once.
    private func measureChecking(_ run: RunRequest, _ runner: any ModelBytesRunner) async throws -> [String: Double] {
        guard run.sha256.count == 32 else { throw FleetError.badRequest("run: sha256 must be 32 bytes") }
        let model = run.model
        // A child task on the loop, queued before this task yields: it runs up to its hand-off to the runner's
        // thread before the hash takes the loop.
        async let measured = runner.measure(model: model)
        await Task.yield()
        guard SHA256.hash(model) == run.sha256 else {
            _ = try? await measured
            throw FleetError.hashMismatch
        }
        defer { cacheLater(run.sha256, model) }
        return try await measured
    }

    /// The bytes of a cached model (a hash-only push) for a runner that takes them: those of the cache, or those
    /// still waiting to be written to it.
    private func cachedBytes(for run: RunRequest) async throws(FleetError) -> [UInt8] {
        guard run.sha256.count == 32 else { throw FleetError.badRequest("run: sha256 must be 32 bytes") }
        if let pending = lock.withLock({ pendingWrites[run.sha256] }) { return pending }
        let hex = SHA256.hex(run.sha256)
        let path = cacheDirectory + "/" + hex + ".onnx"
        // Read on the fleet's threads: the caller may be on the loop, which must not wait on the disk.
        let data = await withTaskExecutorPreference(FleetExecutor.shared) { FileManager.default.contents(atPath: path) }
        guard let data else { throw FleetError(.modelNotCached, "model \(hex) is not in this worker's cache") }
        return Array(data)
    }

    /// Writes a measured model to the cache off the answer's path, on the fleet's background thread; hash-only
    /// pushes that come meanwhile get its bytes from memory. A write that fails leaves it uncached: the coordinator
    /// sends the bytes again when a later push finds it missing.
    private func cacheLater(_ hash: [UInt8], _ model: [UInt8]) {
        let first = lock.withLock {
            guard pendingWrites[hash] == nil else { return false }
            pendingWrites[hash] = model
            return true
        }
        guard first else { return }
        // On the background thread, which never preempts the loop that is sending the answer.
        Task(executorPreference: FleetExecutor.background) { [self] in
            _ = try? writeToCache(hash, model)
            lock.withLock { pendingWrites[hash] = nil }
        }
    }

    /// The cached model's path: written from the request's bytes, or found by its hash. A runner that reads the
    /// file gets it checked on disk (the cache may have been cleaned); one that does not trusts the hash set.
    private func cachedModel(for run: RunRequest, readsFile: Bool) throws(FleetError) -> String {
        guard run.sha256.count == 32 else { throw FleetError.badRequest("run: sha256 must be 32 bytes") }
        if run.model.isEmpty, !readsFile, let known = lock.withLock({ cachedPaths[run.sha256] }) { return known }
        let hex = SHA256.hex(run.sha256)
        let path = cacheDirectory + "/" + hex + ".onnx"
        if run.model.isEmpty {
            guard FileManager.default.fileExists(atPath: path) else {
                throw FleetError(.modelNotCached, "model \(hex) is not in this worker's cache")
            }
            return path
        }
        guard SHA256.hash(run.model) == run.sha256 else {
            throw FleetError.hashMismatch
        }
        return try writeToCache(run.sha256, run.model)
    }

    /// Writes `model` (whose hash was checked) to the cache unless it is there; its path.
    @discardableResult
    private func writeToCache(_ hash: [UInt8], _ model: [UInt8]) throws(FleetError) -> String {
        let path = cacheDirectory + "/" + SHA256.hex(hash) + ".onnx"
        if !FileManager.default.fileExists(atPath: path) {
            // Written aside and renamed, so a concurrent run never reads half a model; with plain write(2), as
            // FileManager's atomic write cost 2-30 ms per model on a busy disk, all of it in the turnaround.
            let temporary = path + ".\(UUID().uuidString).part"
            guard writeFile(temporary, model), rename(temporary, path) == 0 else {
                unlink(temporary)
                throw FleetError(.internal, "cannot write the model to the cache at \(path)")
            }
        }
        lock.withLock { cachedPaths[hash] = path }
        return path
    }
}

/// Whether a push's timeout passed, set by its timer.
private final class Expiry: Sendable {
    private let state = Mutex(false)
    func set() { state.withLock { $0 = true } }
    var isSet: Bool { state.withLock { $0 } }
}

/// Writes `bytes` to a new file at `path`; false when it cannot be created or written whole.
private func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return false }
        written += count
    }
    return true
}
