import Foundation
internal import CSystem

/// An HTTP/2 server on the process's event loop, over TLS (ALPN `h2`) when configured with a `TLSContext`, else
/// h2c with prior knowledge (which warns once when bound beyond loopback): it accepts connections and hands each
/// whole request to its handler, on the loop. The handler answers at once (bookkeeping needs no waiting) or
/// keeps the responder and answers later from any thread. Authentication, unknown paths and the body limit are
/// checked as soon as the headers arrive (`RequestGate`, `ServerStream`), so a refused body is never buffered; what
/// peers can hold (connections, time, body memory in total) is bounded by `ServerLimits`.
public final class HTTP2Server: @unchecked Sendable {
    /// Server settings.
    public struct Configuration: Sendable {
        /// Address to bind; `127.0.0.1` by default.
        public var host = "127.0.0.1"
        /// Port to bind; 0 picks a free one.
        public var port = 0
        /// The shared bearer token every call must carry.
        public var token: String
        /// Largest request body accepted; larger ones get 413 without being buffered (64 MiB by default).
        public var maxBodyBytes = 64 << 20
        /// The paths that exist; any other gets 404.
        public var routes: Set<String>
        /// The content type of every response.
        public var contentType = "application/x-protobuf"
        /// What peers can hold of the server: connections, time, request-body memory.
        public var limits = ServerLimits()
        /// The answer to a refused request (by default its status and an empty body).
        public var rejection: @Sendable (HTTP2Rejection) -> HTTP2Response = { HTTP2Response(status: $0.status, body: []) }
        /// HTTP/2 over TLS with this server context (`TLSContext(server:)`); nil (the default) serves h2c.
        public var tls: TLSContext?

        /// Settings for a server of `routes` guarded by `token`, over TLS when `tls` is set.
        public init(host: String = "127.0.0.1", port: Int = 0, token: String, maxBodyBytes: Int = 64 << 20,
                    routes: Set<String>, tls: TLSContext? = nil) {
            self.host = host
            self.port = port
            self.token = token
            self.maxBodyBytes = maxBodyBytes
            self.routes = routes
            self.tls = tls
        }
    }

    /// Sees each whole request on the loop: answers it through the responder, now or later.
    public typealias Handler = @Sendable (HTTP2Request, HTTP2Responder) -> Void

    /// The settings it was made with.
    public let configuration: Configuration
    private let core: ServerCore
    private let lock = NSLock()
    private var boundPort = 0

    /// A server with `configuration` whose requests go to `handler`; `start()` serves.
    public init(configuration: Configuration, loop: EventLoop = .shared, handler: @escaping Handler) {
        self.configuration = configuration
        core = ServerCore(configuration: configuration, loop: loop, handler: handler)
    }

    deinit {
        core.stop()
    }

    /// The port bound by `start()`.
    public var port: Int { lock.withLock { boundPort } }

    /// Binds, listens and serves on the loop; returns the bound port. Cleartext h2c bound beyond loopback warns
    /// on standard error, once per process: its tokens and models would cross the network in clear.
    @discardableResult
    public func start() throws(HTTP2Error) -> Int {
        let fd = try Sockets.listen(host: configuration.host, port: configuration.port)
        if configuration.tls == nil && !Sockets.isLoopback(fd) { Self.warnCleartext(configuration.host) }
        let port: Int
        do throws(HTTP2Error) {
            port = try Sockets.boundPort(fd)
        } catch {
            close(fd)
            throw error
        }
        lock.withLock { boundPort = port }
        core.serve(fd)
        return port
    }

    private static let warned = NSLock()
    nonisolated(unsafe) private static var hasWarned = false

    private static func warnCleartext(_ host: String) {
        guard warned.withLock({ () -> Bool in
            defer { hasWarned = true }
            return !hasWarned
        }) else { return }
        let text = "warning: serving cleartext HTTP/2 (h2c) on \(host), beyond loopback: tokens and models cross the "
            + "network unencrypted; pass --tls-cert and --tls-key to serve HTTP/2 over TLS\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Stops listening and closes every connection; returns once they are closed. Answers not yet sent are lost.
    public func stop() {
        core.stop()
    }
}

/// The server's side on the loop: its listening socket and sessions. Apart from the public class so that the
/// server's `deinit` can stop it on the loop without reviving the server.
final class ServerCore: @unchecked Sendable {
    let configuration: HTTP2Server.Configuration
    let gate: RequestGate
    let handler: HTTP2Server.Handler
    let loop: EventLoop
    // Touched by the loop thread only.
    private var listener: Listener?
    private var sessions: [ObjectIdentifier: ServerSession] = [:]
    /// Request-body bytes the sessions hold, against `limits.maxBufferedBodyBytes`.
    private var bufferedBodyBytes = 0
    private var sweep: UInt64?

    init(configuration: HTTP2Server.Configuration, loop: EventLoop, handler: @escaping HTTP2Server.Handler) {
        self.configuration = configuration
        self.loop = loop
        self.handler = handler
        gate = RequestGate(token: configuration.token, routes: configuration.routes)
    }

    func serve(_ fd: Int32) {
        loop.sync { [self] in
            let listener = Listener(fd: fd, server: self)
            self.listener = listener
            listener.start()
            scheduleSweep()
        }
    }

    func stop() {
        loop.sync { [self] in
            if let sweep { loop.cancelTimer(sweep) }
            sweep = nil
            listener?.close()
            listener = nil
            for session in Array(sessions.values) { session.close("the server stopped") }
            sessions.removeAll()
        }
    }

    fileprivate func accepted(_ fd: Int32) {
        // One more than the cap is closed at once: the client sees the connection end and may try again.
        guard sessions.count < configuration.limits.maxConnections else {
            close(fd)
            return
        }
        // A TLS handshake counts in `limits.handshakeTimeout`: no HTTP/2 frame arrives before it ends.
        var connection: TLSConnection?
        if let tls = configuration.tls {
            connection = TLSConnection(context: tls, fd: fd, host: nil)
            guard connection != nil else {
                close(fd)
                return
            }
        }
        guard let session = ServerSession(fd: fd, tls: connection, server: self) else {
            close(fd)
            return
        }
        sessions[ObjectIdentifier(session)] = session
        session.start(connecting: false)
    }

    func sessionClosed(_ session: ServerSession) {
        sessions[ObjectIdentifier(session)] = nil
    }

    /// What the sessions may still take of request bodies.
    var bodyRoom: Int { configuration.limits.maxBufferedBodyBytes - bufferedBodyBytes }

    /// A session took (positive) or gave back (negative) request-body bytes.
    func bodyBytesHeld(_ change: Int) {
        bufferedBodyBytes += change
    }

    /// Checks every connection's deadlines a few times per shortest timeout (at most once a second) while the
    /// server serves, on a timer of the loop.
    private func scheduleSweep() {
        let limits = configuration.limits
        let shortest = min(limits.handshakeTimeout, limits.headerTimeout, limits.requestTimeout, limits.idleTimeout)
        let interval = max(.milliseconds(10), min(.seconds(1), shortest / 4))
        sweep = loop.schedule(at: loop.now + interval) { [weak self] in
            guard let self, self.listener != nil else { return }
            let now = self.loop.now
            for session in Array(self.sessions.values) { session.checkDeadlines(now: now) }
            self.scheduleSweep()
        }
    }
}

/// The server's listening socket on the loop. Out of descriptors, it stops watching the socket for a while (which
/// stays readable: a level-triggered loop would spin on it) and tries again, pausing longer while it lasts.
private final class Listener: EventLoopSource {
    let fd: Int32
    unowned let server: ServerCore
    private var token: UInt64 = 0
    private var backoff: Duration
    private var paused: UInt64?
    private var closed = false

    init(fd: Int32, server: ServerCore) {
        self.fd = fd
        self.server = server
        backoff = server.configuration.limits.acceptBackoff
    }

    func start() {
        token = server.loop.watch(fd, events: EPOLLIN.rawValue, source: self)
    }

    func ready(_ events: UInt32) {
        guard paused == nil, !closed else { return }
        while true {
            switch Sockets.accept(fd) {
            case .connection(let client):
                backoff = server.configuration.limits.acceptBackoff
                server.accepted(client)
            case .failed:
                continue
            case .none:
                return
            case .exhausted:
                pause()
                return
            }
        }
    }

    private func pause() {
        server.loop.change(fd, token: token, events: 0)
        paused = server.loop.schedule(at: server.loop.now + backoff) { [weak self] in
            guard let self, !self.closed else { return }
            self.paused = nil
            self.server.loop.change(self.fd, token: self.token, events: EPOLLIN.rawValue)
        }
        backoff = min(backoff * 2, .seconds(1))
    }

    func close() {
        closed = true
        if let paused { server.loop.cancelTimer(paused) }
        server.loop.unwatch(fd, token: token)
        Glibc.close(fd)
    }
}

extension HTTP2Rejection {
    /// The HTTP status that carries the refusal.
    public var status: Int {
        switch self {
        case .unauthenticated: 401
        case .notFound: 404
        case .methodNotAllowed: 405
        case .tooLarge: 413
        case .overloaded: 503
        }
    }
}
