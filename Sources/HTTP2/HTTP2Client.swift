import Foundation
import Synchronization

/// An HTTP/2 client on the process's event loop: POSTs a body to `https://host:port/path` (HTTP/2 over TLS, ALPN
/// `h2`, the server's certificate checked against `Configuration.tls` and the host) or `http://host:port/path`
/// (h2c, prior knowledge) and returns the answer. One connection per peer, opened by the first call and shared by every call after it,
/// calls multiplexed as streams, a new connection when one drops; the rules are `PeerConnection`'s, this class
/// carries out its actions. Callers on the loop (the coordinator's pushes) get their completion on the loop,
/// without a task or a thread hop; async callers are resumed from it.
public final class HTTP2Client: Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// Sent as `authorization: Bearer <token>` on every call; none when empty.
        public var token: String
        /// Largest answer accepted (64 MiB and some by default); a larger one fails the call.
        public var maxResponseBytes = (64 << 20) + 4096
        /// The content type of every request.
        public var contentType = "application/x-protobuf"
        /// How `https://` peers are checked and what this client presents to them (`TLSContext(client:)`); nil
        /// checks them against the system's trust store and presents no certificate.
        public var tls: TLSContext?
        /// A connection not open by then (TCP connected and, for `https://`, handshaken) is given up, its calls
        /// failed and the next call dials again (default 10 s): a peer that accepts and never answers must not
        /// hold every later call of the peer until its deadline.
        public var connectTimeout: Duration = .seconds(10)

        /// Settings with the bearer `token`, and TLS settings for `https://` peers.
        public init(token: String, tls: TLSContext? = nil) {
            self.token = token
            self.tls = tls
        }
    }

    /// What a completion gets.
    public typealias Completion = @Sendable (Result<HTTP2Response, HTTP2Error>) -> Void

    /// The settings it was made with.
    public let configuration: Configuration
    private let core: ClientCore

    /// The event loop its connections live on. A caller that prefers it as its task executor
    /// (`withTaskExecutorPreference(client.loop) { ... }`) starts each call on the loop at once and is resumed in
    /// the turn that read the answer: no thread hop either way. Only for callers that do little after each await:
    /// whatever they run holds up every socket of the loop.
    public var loop: EventLoop { core.loop }

    /// A client with `configuration` on `loop`.
    public init(configuration: Configuration, loop: EventLoop = .shared) {
        self.configuration = configuration
        core = ClientCore(configuration: configuration, loop: loop)
    }

    /// A client sending the bearer `token`.
    public convenience init(token: String) {
        self.init(configuration: Configuration(token: token))
    }

    deinit {
        core.shutdown()
    }

    /// POSTs `body` to `url` (`https://host:port/path` or `http://host:port/path`); fails after `timeout`.
    public func post(url: String, body: [UInt8], timeout: Duration) async throws(HTTP2Error) -> HTTP2Response {
        let result = await withCheckedContinuation { continuation in
            post(url: url, body: body, timeout: timeout) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// POSTs `body` to `url`; `completion` runs on the loop once the call ended, within `timeout` (on the caller's
    /// thread when the address is malformed).
    public func post(url: String, body: [UInt8], timeout: Duration, completion: @escaping Completion) {
        core.post(url: url, body: body, timeout: timeout, completion: completion)
    }

    /// Fails every open call and closes the connections; later calls fail at once. Waits for the loop.
    public func shutdown() {
        core.shutdown()
    }

    /// `http(s)://host:port/path` as its origin (scheme and authority), authority, host (without the brackets of
    /// an IPv6 literal), port and path, and whether it is TLS.
    static func parse(_ url: String) -> Target? {
        let secure = url.hasPrefix("https://")
        guard secure || url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst(secure ? "https://".count : "http://".count)
        let authority = rest.prefix { $0 != "/" }
        guard let colon = authority.lastIndex(of: ":") else { return nil }
        var host = authority[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let port = authority[authority.index(after: colon)...]
        guard !host.isEmpty, !port.isEmpty, port.allSatisfy(\.isNumber) else { return nil }
        let path = rest.dropFirst(authority.count)
        return Target(origin: (secure ? "https://" : "http://") + authority, authority: String(authority),
                      host: String(host), port: String(port), path: path.isEmpty ? "/" : String(path), secure: secure)
    }

    /// Where a call goes.
    struct Target: Equatable {
        /// Scheme and authority: one connection per origin.
        let origin: String
        let authority: String
        let host: String
        let port: String
        let path: String
        /// HTTP/2 over TLS (`https://`).
        let secure: Bool
    }
}

/// The client's side on the loop: its peers and their calls. Apart from the public class so that the client's
/// `deinit` can shut it down on the loop without reviving the client.
final class ClientCore: @unchecked Sendable {
    typealias Completion = HTTP2Client.Completion
    typealias Configuration = HTTP2Client.Configuration

    /// One call until its answer is delivered.
    private final class Call {
        let id: UInt64
        let url: String
        let path: String
        let body: [UInt8]
        let completion: Completion

        init(id: UInt64, url: String, path: String, body: [UInt8], completion: @escaping Completion) {
            self.id = id
            self.url = url
            self.path = path
            self.body = body
            self.completion = completion
        }
    }

    /// One peer: the rules' state, the open session and the calls not yet ended.
    private final class Peer {
        var state: PeerConnection
        let target: HTTP2Client.Target
        var session: ClientSession?
        var calls: [UInt64: Call] = [:]
        /// The deadline the loop's timer is set for, and the timer.
        var timer: (deadline: ContinuousClock.Instant, id: UInt64)?

        init(_ target: HTTP2Client.Target) {
            state = PeerConnection(authority: target.origin)
            self.target = target
        }
    }

    let configuration: Configuration
    let loop: EventLoop
    // Touched by the loop thread only.
    private var peers: [String: Peer] = [:]
    private var nextCall: UInt64 = 1
    private var stopped = false
    /// The context of `https://` peers: the configured one, else one on the system's trust store made at the
    /// first such call.
    private var tls: Result<TLSContext, HTTP2Error>?

    init(configuration: Configuration, loop: EventLoop) {
        self.configuration = configuration
        self.loop = loop
        tls = configuration.tls.map { .success($0) }
    }

    /// POSTs `body` to `url`; `completion` runs on the loop once the call ended, within `timeout` (on the caller's
    /// thread when the address is malformed or the client was shut down).
    func post(url: String, body: [UInt8], timeout: Duration, completion: @escaping Completion) {
        guard let target = target(of: url) else {
            completion(.failure(HTTP2Error(
                .invalidAddress, "cannot call '\(url)': the address must be https://host:port/path or http://host:port/path")))
            return
        }
        let deadline = loop.now + timeout
        // On the loop (the coordinator's pushes) the call starts at once, without a job for the loop.
        if loop.inLoop {
            start(url: url, target: target, body: body, deadline: deadline, completion: completion)
            return
        }
        loop.enqueue { [self] in
            start(url: url, target: target, body: body, deadline: deadline, completion: completion)
        }
    }

    /// The URLs called lately, parsed: a client calls the same few again and again, and parsing one took about 5%
    /// of the fleet's CPU time per evaluation (FleetBench evaluations, perf).
    private let targets = Mutex<[String: HTTP2Client.Target]>([:])

    private func target(of url: String) -> HTTP2Client.Target? {
        if let known = targets.withLock({ $0[url] }) { return known }
        guard let parsed = HTTP2Client.parse(url) else { return nil }
        targets.withLock { known in
            if known.count >= 64 { known.removeAll() }  // a client of many peers keeps only the latest
            known[url] = parsed
        }
        return parsed
    }

    /// Fails every open call and closes the connections; later calls fail at once. Waits for the loop.
    func shutdown() {
        loop.sync { [self] in
            guard !stopped else { return }
            stopped = true
            for peer in peers.values {
                perform(peer.state.shutDown("the HTTP/2 client was shut down"), on: peer)
                peer.session?.close("the client shut down")
                peer.session = nil
            }
            peers.removeAll()
        }
    }

    // MARK: On the loop

    private func start(url: String, target: HTTP2Client.Target, body: [UInt8], deadline: ContinuousClock.Instant,
                       completion: @escaping Completion) {
        guard !stopped else {
            completion(.failure(HTTP2Error(.transport, "POST \(url): the HTTP/2 client was shut down")))
            return
        }
        let peer: Peer
        if let known = peers[target.origin] {
            peer = known
        } else {
            peer = Peer(target)
            peers[target.origin] = peer
        }
        let call = Call(id: nextCall, url: url, path: target.path, body: body, completion: completion)
        nextCall += 1
        peer.calls[call.id] = call
        if let action = peer.state.call(call.id, deadline: deadline, now: loop.now) { perform([action], on: peer) }
        armTimer(peer)
    }

    private func perform(_ actions: [PeerConnection.Action], on peer: Peer) {
        for action in actions {
            switch action {
            case .connect:
                connect(peer)
            case .submit(let id):
                guard let call = peer.calls[id], let session = peer.session else { continue }
                if let error = session.submit(call: id, path: call.path, body: call.body,
                                              token: configuration.token, contentType: configuration.contentType,
                                              maxResponseBytes: configuration.maxResponseBytes) {
                    peer.state.ended(id)
                    finish(peer, id, .failure(error))
                }
            case .cancel(let id):
                peer.session?.cancel(call: id)
            case .fail(let id, let error):
                finish(peer, id, .failure(error))
            }
        }
    }

    private func finish(_ peer: Peer, _ id: UInt64, _ result: Result<HTTP2Response, HTTP2Error>) {
        guard let call = peer.calls.removeValue(forKey: id) else { return }
        call.completion(result.mapError { HTTP2Error($0.kind, "POST \(call.url): \($0.message)") })
    }

    /// Dials the peer. An IP literal is connected at once; a name is resolved on a thread of its own and dialled
    /// back on the loop: a slow or unreachable DNS server must not hold up every socket of the process.
    private func connect(_ peer: Peer) {
        if let numeric = Sockets.resolve(host: peer.target.host, port: peer.target.port, numericOnly: true) {
            dial(peer, numeric)
            return
        }
        let (host, port) = (peer.target.host, peer.target.port)
        nonisolated(unsafe) let peer = peer
        Thread.detachNewThread { [self] in
            let resolved = Sockets.resolve(host: host, port: port, numericOnly: false)
                ?? .failure(HTTP2Error(.transport, "cannot resolve \(host)"))
            loop.enqueue { [self] in
                // The client may have been shut down, or the peer forgotten, meanwhile.
                guard !stopped, peers[peer.state.authority] === peer, peer.state.phase == .connecting else { return }
                dial(peer, resolved)
            }
        }
    }

    private func dial(_ peer: Peer, _ address: Result<Sockets.Address, HTTP2Error>) {
        switch address.flatMap({ Sockets.connect(to: $0) }) {
        case .failure(let error):
            perform(peer.state.connectFailed(error.message), on: peer)
        case .success(let (fd, inProgress)):
            var connection: TLSConnection?
            if peer.target.secure {
                let made = tlsContext().flatMap { context in
                    TLSConnection(context: context, fd: fd, host: peer.target.host).map { .success($0) }
                        ?? .failure(HTTP2Error(.transport, "TLS: cannot set up a connection: \(TLSContext.drainErrors())"))
                }
                switch made {
                case .success(let made): connection = made
                case .failure(let error):
                    close(fd)
                    perform(peer.state.connectFailed(error.message), on: peer)
                    return
                }
            }
            guard let session = ClientSession(fd: fd, target: peer.target, tls: connection, client: self) else {
                close(fd)
                perform(peer.state.connectFailed("nghttp2 cannot make a session"), on: peer)
                return
            }
            peer.session = session
            // Open at once for h2c on a socket already connected; else once connected and, for TLS, handshaken.
            session.start(connecting: inProgress)
            if session.connecting {
                let reason = peer.target.secure ? "no TCP connection and TLS handshake in time" : "no TCP connection in time"
                loop.schedule(at: loop.now + configuration.connectTimeout) { [weak session] in
                    session?.closeUnlessOpen(reason)
                }
            }
        }
    }

    private func tlsContext() -> Result<TLSContext, HTTP2Error> {
        if let tls { return tls }
        let made = Result { () throws(HTTP2Error) in try TLSContext(client: TLSConfiguration()) }
        tls = made
        return made
    }

    /// The peer's answers are delivered in the order their streams ended; late ones (timed out) are dropped.
    private func peer(of session: ClientSession) -> Peer? {
        guard let peer = peers[session.origin], peer.session === session else { return nil }
        return peer
    }

    func connected(_ session: ClientSession) {
        guard let peer = peer(of: session) else { return }
        perform(peer.state.connected(), on: peer)
    }

    func delivered(_ results: [(call: UInt64, result: Result<HTTP2Response, HTTP2Error>)], on session: ClientSession) {
        guard let peer = peer(of: session) else { return }
        for (id, result) in results where peer.state.isOpen(id) {
            peer.state.ended(id)
            finish(peer, id, result)
        }
    }

    func lost(_ session: ClientSession, reason: String) {
        guard let peer = peer(of: session) else { return }
        peer.session = nil
        // An h2c connection that ends before a single byte came back is what a TLS server does with cleartext.
        let reason = !peer.target.secure && !session.receivedAny
            ? reason + " before any HTTP/2 answer (if the server serves TLS, call it with https://)" : reason
        let actions = session.connecting
            ? peer.state.connectFailed(reason, kind: session.handshakeRefused ? .invalidConfiguration : .transport)
            : peer.state.connectionLost(reason)
        perform(actions, on: peer)
    }

    /// Sets the peer's timer for its earliest deadline, unless one is set for no later.
    private func armTimer(_ peer: Peer) {
        guard let earliest = peer.state.earliestDeadline else { return }
        if let timer = peer.timer {
            if timer.deadline <= earliest { return }
            loop.cancelTimer(timer.id)
        }
        let id = loop.schedule(at: earliest) { [weak self, weak peer] in
            guard let self, let peer else { return }
            peer.timer = nil
            perform(peer.state.expire(now: loop.now), on: peer)
            armTimer(peer)
        }
        peer.timer = (earliest, id)
    }
}
