import Foundation
internal import CNghttp2
internal import CSystem

/// One request the server received whole.
struct HTTP2Request: Sendable {
    /// The `:path`, e.g. `/nas.fleet.Coordinator/Register`.
    let path: String
    let body: [UInt8]
}

/// One response to send: a status and an encoded message.
struct HTTP2Response: Sendable {
    var status: Int
    var body: [UInt8]

    /// A failed call: the status of the error's code and the encoded error message.
    static func error(_ error: FleetError) -> HTTP2Response {
        let wire = error.wire
        return HTTP2Response(status: wire.code.httpStatus, body: wire.encoded())
    }
}

/// An HTTP/2 (h2c, prior knowledge) server on libnghttp2 with its own non-blocking epoll loop on one thread.
///
/// The loop reads, feeds nghttp2, and writes; it never waits on a handler. A request whose body arrived whole is
/// first offered to `immediate`, which answers calls that need no waiting (bookkeeping under a lock) right on the
/// loop, with no thread hop; the others go to `handler` in a task on `FleetExecutor`'s threads, and their response
/// comes back to the loop through a queue and an eventfd.
/// Authentication, unknown paths and the body limit are checked as soon as the headers arrive, so a rejected
/// body is never buffered.
///
/// The same loop also sends calls to other servers (`post`): the coordinator pushes models to its workers on
/// nghttp2 client sessions here, so an evaluation crosses no thread from the caller's request to the worker and
/// back, and answers and pushes made on the loop are sent together once per turn of the loop.
final class HTTP2Server: @unchecked Sendable {
    /// Server settings.
    struct Configuration: Sendable {
        /// Address to bind; `127.0.0.1` by default.
        var host = "127.0.0.1"
        /// Port to bind; 0 picks a free one.
        var port = 0
        /// The shared bearer token every call must carry (and `post` sends).
        var token: String
        /// Largest request body accepted; larger ones get 413 without being buffered (64 MiB by default).
        var maxBodyBytes = 64 << 20
        /// The paths that exist; any other gets 404.
        var routes: Set<String>
    }

    typealias Handler = @Sendable (HTTP2Request) async -> HTTP2Response
    /// What the loop-thread handler does with a request.
    enum Disposition {
        /// Answer with this now.
        case now(HTTP2Response)
        /// The handler kept the responder and answers later, from any thread.
        case later
        /// Hand the request to the async handler.
        case async
    }
    /// Sees each request first, on the loop thread: answers it now, keeps the responder for later, or passes it on.
    typealias ImmediateHandler = @Sendable (HTTP2Request, HTTP2Responder) -> Disposition

    let configuration: Configuration
    private let handler: Handler
    private let immediate: ImmediateHandler?
    private let lock = NSLock()
    private var completed: [(connection: UInt64, stream: Int32, response: HTTP2Response)] = []
    private var outgoing: [HTTP2OutboundCall] = []
    private var stopping = false
    private var epollFD: Int32 = -1
    private var listenFD: Int32 = -1
    private var wakeFD: Int32 = -1
    private var thread: Thread?
    /// The loop's thread, set before `start()` returns.
    private var loopThread: pthread_t?
    private let loopStarted = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let clock = ContinuousClock()
    // Touched by the loop thread only.
    private var connections: [UInt64: HTTP2Connection] = [:]
    /// Connections this loop opened, by `host:port`.
    private var outbound: [String: HTTP2ClientConnection] = [:]
    /// Connections with something submitted since their last flush; flushed once per turn of the loop.
    private var dirty: [HTTP2Connection] = []
    /// When the earliest outbound call times out, if one is open.
    private var nextCallDeadline: ContinuousClock.Instant?
    /// Set when the loop closes its connections: calls made from their completions fail at once.
    private var ending = false
    /// One read buffer for every connection: the loop reads one socket at a time.
    private var readBuffer = [UInt8](repeating: 0, count: 65536)
    private var nextConnectionID: UInt64 = 2
    private static let listenToken: UInt64 = 0
    private static let wakeToken: UInt64 = 1

    /// The port bound by `start()`.
    private(set) var port = 0

    init(configuration: Configuration, immediate: ImmediateHandler? = nil, handler: @escaping Handler) {
        self.configuration = configuration
        self.immediate = immediate
        self.handler = handler
    }

    deinit {
        stop()
    }

    /// Binds, listens and starts the loop; returns the bound port.
    @discardableResult
    func start() throws(FleetError) -> Int {
        let fd = try bindListener(host: configuration.host, port: configuration.port)
        listenFD = fd
        port = try boundPort(fd)
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard epollFD >= 0, wakeFD >= 0 else { throw errnoError("epoll/eventfd") }
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_ADD, listenFD, EPOLLIN.rawValue, Self.listenToken)
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, EPOLLIN.rawValue, Self.wakeToken)
        let thread = Thread { [self] in
            loopThread = pthread_self()
            loopStarted.signal()
            runLoop()
        }
        thread.name = "nas-http2-server"
        thread.start()
        loopStarted.wait()
        self.thread = thread
        return port
    }

    /// Stops the loop, closes every connection and the listening socket; returns when the loop is gone. Calls
    /// still in flight fail.
    func stop() {
        let running: Bool = lock.withLock {
            guard !stopping, thread != nil else { return false }
            stopping = true
            return true
        }
        guard running else { return }
        wake()
        finished.wait()
    }

    /// Whether the caller runs on the loop's thread, where it may touch connections directly.
    private var onLoop: Bool {
        guard let loopThread else { return false }
        return pthread_equal(loopThread, pthread_self()) != 0
    }

    /// Called from any thread: sends a response on the loop.
    fileprivate func complete(connection: UInt64, stream: Int32, response: HTTP2Response) {
        if onLoop {
            guard let connection = connections[connection] as? HTTP2ServerConnection else { return }
            connection.submit(stream: stream, response: response)
            markDirty(connection)
            return
        }
        // One eventfd write per batch: the loop takes every queued response when it wakes.
        let first = lock.withLock {
            completed.append((connection, stream, response))
            return completed.count + outgoing.count == 1
        }
        if first { wake() }
    }

    /// POSTs `body` to `url` (`http://host:port/path`) with the server's token, from the loop: one connection per
    /// `host:port`, calls multiplexed on it. `completion` runs on the loop's thread; the call fails after
    /// `timeout` seconds, at once when the server is not running.
    func post(url: String, body: [UInt8], timeout: Double,
              completion: @escaping @Sendable (Result<HTTP2Response, FleetError>) -> Void) {
        let deadline = clock.now + .milliseconds(Int(max(0, timeout) * 1000))
        guard let call = HTTP2OutboundCall(url: url, body: body, deadline: deadline, completion: completion) else {
            completion(.failure(.invalidConfiguration("cannot call '\(url)': the address must be http://host:port")))
            return
        }
        if onLoop {
            start(call)
            return
        }
        let (accepted, first): (Bool, Bool) = lock.withLock {
            if stopping || thread == nil { return (false, false) }
            outgoing.append(call)
            return (true, completed.count + outgoing.count == 1)
        }
        if !accepted {
            completion(.failure(.transport("POST \(url): the server is not running")))
        } else if first {
            wake()
        }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wakeFD, $0.baseAddress, 8) }
    }

    // MARK: The loop

    private func runLoop() {
        var events = [UInt32](repeating: 0, count: 64)
        var tokens = [UInt64](repeating: 0, count: 64)
        while !(lock.withLock { stopping }) {
            var wait: Int32 = -1
            if let deadline = nextCallDeadline {
                let left = clock.now.duration(to: deadline)
                wait = left <= .zero ? 0 : Int32(min(60_000, left.components.seconds * 1000
                    + left.components.attoseconds / 1_000_000_000_000_000 + 1))
            }
            let count = nas_epoll_wait(epollFD, &events, &tokens, 64, wait)
            if count < 0 {
                if nas_errno() == EINTR { continue }
                break
            }
            for index in 0..<Int(count) {
                switch tokens[index] {
                case Self.listenToken: acceptConnections()
                case Self.wakeToken: drainWake()
                case let token: serviceConnection(token, events: events[index])
                }
            }
            if let deadline = nextCallDeadline, deadline <= clock.now { expireCalls() }
            flushDirty()
        }
        ending = true
        let queued = lock.withLock {
            let queued = outgoing
            outgoing.removeAll()
            return queued
        }
        for call in queued where call.end(.failure(.transport("POST \(call.url): the server stopped"))) {
            call.deliver()
        }
        for connection in connections.values { closeConnection(connection) }
        connections.removeAll()
        outbound.removeAll()
        close(listenFD)
        close(wakeFD)
        close(epollFD)
        finished.signal()
    }

    private func acceptConnections() {
        while true {
            let fd = nas_accept_nonblocking(listenFD)
            if fd < 0 { return }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let id = nextConnectionID
            nextConnectionID += 1
            guard let connection = HTTP2ServerConnection(id: id, fd: fd, server: self) else {
                close(fd)
                continue
            }
            connections[id] = connection
            _ = nas_epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, EPOLLIN.rawValue | EPOLLRDHUP.rawValue, id)
            markDirty(connection)
        }
    }

    private func drainWake() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { read(wakeFD, $0.baseAddress, 8) }
        let (answers, calls) = lock.withLock {
            let batch = (completed, outgoing)
            completed.removeAll(keepingCapacity: true)
            outgoing.removeAll(keepingCapacity: true)
            return batch
        }
        for item in answers {
            guard let connection = connections[item.connection] as? HTTP2ServerConnection else { continue }
            connection.submit(stream: item.stream, response: item.response)
            markDirty(connection)
        }
        for call in calls { start(call) }
    }

    private func serviceConnection(_ token: UInt64, events: UInt32) {
        guard let connection = connections[token] else { return }
        if connection.connecting, let client = connection as? HTTP2ClientConnection {
            // The non-blocking connect ended: writable when it succeeded, an error on the socket when it failed.
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(client.fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 || events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                let reason = error != 0 ? String(cString: strerror(error)) : "the connection failed"
                client.failAll("cannot connect to \(client.authority): \(reason)")
                drop(client)
                return
            }
            guard events & EPOLLOUT.rawValue != 0 else { return }
            client.connecting = false
            watch(client, writable: false)
        }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            // A few reads per wake-up, so one busy connection does not starve the others.
            for _ in 0..<4 {
                let result = connection.readAndProcess(into: &readBuffer)
                connection.afterRead()
                switch result {
                case .again: break
                case .more: continue
                case .closed:
                    drop(connection)
                    return
                }
                break
            }
        }
        markDirty(connection)
    }

    /// Sends an outbound call on the connection to its `host:port`, opening one when there is none.
    private func start(_ call: HTTP2OutboundCall) {
        if ending {
            if call.end(.failure(.transport("POST \(call.url): the server stopped"))) { call.deliver() }
            return
        }
        guard let connection = outbound[call.authority] ?? open(for: call) else { return }
        connection.submit(call)
        connection.deliverEnded()
        markDirty(connection)
        if nextCallDeadline.map({ call.deadline < $0 }) ?? true { nextCallDeadline = call.deadline }
    }

    /// A non-blocking connection to the call's `host:port`; nil (and the call failed) when it cannot be opened. The
    /// name is resolved here, on the loop, once per connection: workers advertise IP literals or names the hosts
    /// file knows (`--advertise`), and a slow DNS server would hold up the loop for as long as it takes.
    private func open(for call: HTTP2OutboundCall) -> HTTP2ClientConnection? {
        func fail(_ reason: String) -> HTTP2ClientConnection? {
            if call.end(.failure(.transport("POST \(call.url): \(reason)"))) { call.deliver() }
            return nil
        }
        guard let (host, port) = call.hostAndPort else { return fail("the address has no host:port") }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, port, &hints, &result)
        guard status == 0, let info = result else {
            return fail("cannot resolve \(host): " + String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family,
                        Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return fail("socket: " + String(cString: strerror(nas_errno()))) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let connected = connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0
        if !connected && nas_errno() != EINPROGRESS {
            let reason = String(cString: strerror(nas_errno()))
            close(fd)
            return fail("cannot connect to \(call.authority): \(reason)")
        }
        let id = nextConnectionID
        nextConnectionID += 1
        guard let connection = HTTP2ClientConnection(
            id: id, fd: fd, authority: call.authority, connecting: !connected, token: configuration.token,
            maxResponseBytes: configuration.maxBodyBytes)
        else {
            close(fd)
            return fail("cannot make an HTTP/2 session")
        }
        connections[id] = connection
        outbound[call.authority] = connection
        var events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        if !connected {
            events |= EPOLLOUT.rawValue
            connection.waitingForWritable = true
        }
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, events, id)
        return connection
    }

    /// Fails the outbound calls whose deadline passed.
    private func expireCalls() {
        let now = clock.now
        nextCallDeadline = nil
        for connection in outbound.values {
            if let earliest = connection.expire(now: now), nextCallDeadline.map({ earliest < $0 }) ?? true {
                nextCallDeadline = earliest
            }
            connection.deliverEnded()
            markDirty(connection)
        }
    }

    private func markDirty(_ connection: HTTP2Connection) {
        guard !connection.isDirty else { return }
        connection.isDirty = true
        dirty.append(connection)
    }

    private func flushDirty() {
        while !dirty.isEmpty {
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for connection in batch {
                connection.isDirty = false
                if !connection.closed { flush(connection) }
            }
        }
    }

    /// Writes what nghttp2 has to send; closes the connection when both sides are done or the peer is gone.
    private func flush(_ connection: HTTP2Connection) {
        if connection.connecting, let client = connection as? HTTP2ClientConnection { return }
        switch connection.flush() {
        case .closed:
            drop(connection)
        case .blocked:
            if !connection.waitingForWritable { watch(connection, writable: true) }
        case .done:
            if connection.waitingForWritable { watch(connection, writable: false) }
        }
    }

    private func watch(_ connection: HTTP2Connection, writable: Bool) {
        connection.waitingForWritable = writable
        let events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | (writable ? EPOLLOUT.rawValue : 0)
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_MOD, connection.fd, events, connection.id)
    }

    private func drop(_ connection: HTTP2Connection) {
        connections[connection.id] = nil
        if let client = connection as? HTTP2ClientConnection, outbound[client.authority] === client {
            outbound[client.authority] = nil
        }
        closeConnection(connection)
    }

    private func closeConnection(_ connection: HTTP2Connection) {
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_DEL, connection.fd, 0, 0)
        connection.close()
        connection.ended()
    }

    // MARK: Requests, from the connection's callbacks

    /// Checks a request's headers; returns the error to answer with at once, or nil to read its body.
    fileprivate func check(method: String, path: String, authorization: String?, contentLength: Int?) -> FleetError? {
        guard authorization.map({ tokenMatches($0) }) == true else { return .unauthenticated() }
        guard configuration.routes.contains(path) else { return .notFound(path) }
        guard method == "POST" else { return .badRequest("\(method) \(path): every call is a POST") }
        if let contentLength, contentLength > configuration.maxBodyBytes {
            return .tooLarge(limit: configuration.maxBodyBytes)
        }
        return nil
    }

    /// Compares in time independent of where the first difference is, so the token cannot be guessed by timing.
    private func tokenMatches(_ header: String) -> Bool {
        let expected = Array("Bearer \(configuration.token)".utf8)
        let given = Array(header.utf8)
        var difference = expected.count ^ given.count
        for index in 0..<expected.count {
            difference |= Int(expected[index] ^ (index < given.count ? given[index] : 0))
        }
        return difference == 0
    }

    /// What the loop-thread handler decides for a request (`.async` when there is none).
    fileprivate func answerAtOnce(_ request: HTTP2Request, connection: UInt64, stream: Int32) -> Disposition {
        immediate?(request, HTTP2Responder(server: self, connection: connection, stream: stream)) ?? .async
    }

    fileprivate func dispatch(connection: UInt64, stream: Int32, request: HTTP2Request) {
        let handler = handler
        // On the fleet's threads: a busy global executor must not hold back the answer past the peer's timeout.
        Task(executorPreference: FleetExecutor.shared) { [self] in
            let response = await handler(request)
            complete(connection: connection, stream: stream, response: response)
        }
    }
}

/// Answers one request later, from any thread: the response goes to the server's loop.
struct HTTP2Responder: Sendable {
    fileprivate let server: HTTP2Server
    fileprivate let connection: UInt64
    fileprivate let stream: Int32

    func respond(_ response: HTTP2Response) {
        server.complete(connection: connection, stream: stream, response: response)
    }
}

// MARK: One connection

/// A connection a client opened: requests arrive on it and are answered.
private final class HTTP2ServerConnection: HTTP2Connection {
    /// A request stream in progress.
    final class Stream {
        var method = ""
        var path = ""
        var authorization: String?
        var contentLength: Int?
        var body: [UInt8] = []
        /// The error to answer with once the request ends; its body is dropped as it arrives.
        var rejection: FleetError?
        var rejected: Bool { rejection != nil }
        var dispatched = false
        var response: [UInt8] = []
        var responseOffset = 0
    }

    unowned let server: HTTP2Server
    var streams: [Int32: Stream] = [:]

    init?(id: UInt64, fd: Int32, server: HTTP2Server) {
        self.server = server
        super.init(id: id, fd: fd)
        let made = makeSession(client: false, setting: (NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1024)) { callbacks in
            nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
            nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
            nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameReceived)
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk)
            nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        }
        guard made else { return nil }
    }

    func submit(stream id: Int32, response: HTTP2Response) {
        guard let stream = streams[id] else { return }
        stream.response = response.body
        stream.responseOffset = 0
        let fields = [
            (":status", String(response.status)), ("content-type", "application/x-protobuf"),
            ("content-length", String(response.body.count)),
        ]
        _ = withHeaderFields(fields) { nva, count in
            nas_nghttp2_submit_response(session, id, nva, count, readResponseBody)
        }
    }

    /// Refuses a request: its body is dropped as it arrives (never buffered) and the error is the answer once the
    /// client ends the request. Answering before that would make nghttp2 reset a stream the client is still
    /// sending on, which libcurl reports as a send failure instead of the answer.
    func reject(_ stream: Stream, id: Int32, error: FleetError) {
        guard stream.rejection == nil else { return }
        stream.rejection = error
        stream.body = []
    }

    fileprivate func headersComplete(_ stream: Stream, id: Int32) {
        if let error = server.check(method: stream.method, path: stream.path, authorization: stream.authorization,
                                    contentLength: stream.contentLength) {
            reject(stream, id: id, error: error)
            // A body declared too large is answered at once: waiting for its end would take it all in.
            if error.code == .tooLarge { answerRejection(stream, id: id) }
        }
    }

    private func answerRejection(_ stream: Stream, id: Int32) {
        guard let rejection = stream.rejection, !stream.dispatched else { return }
        stream.dispatched = true
        submit(stream: id, response: .error(rejection))
    }

    fileprivate func requestComplete(_ stream: Stream, id: Int32) {
        if stream.rejection != nil {
            answerRejection(stream, id: id)
            return
        }
        guard !stream.dispatched else { return }
        stream.dispatched = true
        let request = HTTP2Request(path: stream.path, body: stream.body)
        stream.body = []
        switch server.answerAtOnce(request, connection: self.id, stream: id) {
        case .now(let response): submit(stream: id, response: response)
        case .later: break
        case .async: server.dispatch(connection: self.id, stream: id, request: request)
        }
    }

    fileprivate func bodyChunk(_ stream: Stream, id: Int32, _ data: UnsafeBufferPointer<UInt8>) {
        guard !stream.rejected else { return }
        if stream.body.count + data.count > server.configuration.maxBodyBytes {
            reject(stream, id: id, error: .tooLarge(limit: server.configuration.maxBodyBytes))
            answerRejection(stream, id: id)
            return
        }
        stream.body.append(contentsOf: data)
    }
}

// MARK: nghttp2 callbacks

private func connection(_ user: UnsafeMutableRawPointer?) -> HTTP2ServerConnection {
    Unmanaged<HTTP2ServerConnection>.fromOpaque(user!).takeUnretainedValue()
}

private func onBeginHeaders(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
        frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
    else { return 0 }
    connection(user).streams[frame.pointee.hd.stream_id] = HTTP2ServerConnection.Stream()
    return 0
}

private func onHeader(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ name: UnsafePointer<UInt8>?, _ nameLength: Int,
    _ value: UnsafePointer<UInt8>?, _ valueLength: Int, _ flags: UInt8, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, let stream = connection(user).streams[frame.pointee.hd.stream_id], let name, let value else {
        return 0
    }
    let key = String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self)
    let text = String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self)
    switch key {
    case ":method": stream.method = text
    case ":path": stream.path = text
    case "authorization": stream.authorization = text
    case "content-length": stream.contentLength = Int(text)
    default: break
    }
    return 0
}

private func onFrameReceived(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { return 0 }
    let owner = connection(user)
    let id = frame.pointee.hd.stream_id
    guard let stream = owner.streams[id] else { return 0 }
    let type = frame.pointee.hd.type
    let flags = frame.pointee.hd.flags
    if type == UInt8(NGHTTP2_HEADERS.rawValue), flags & UInt8(NGHTTP2_FLAG_END_HEADERS.rawValue) != 0,
        frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
    {
        owner.headersComplete(stream, id: id)
    }
    if type == UInt8(NGHTTP2_HEADERS.rawValue) || type == UInt8(NGHTTP2_DATA.rawValue),
        flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
    {
        owner.requestComplete(stream, id: id)
    }
    return 0
}

private func onDataChunk(
    _ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32, _ data: UnsafePointer<UInt8>?, _ length: Int,
    _ user: UnsafeMutableRawPointer?
) -> Int32 {
    let owner = connection(user)
    guard let stream = owner.streams[streamID] else { return 0 }
    owner.bodyChunk(stream, id: streamID, UnsafeBufferPointer(start: data, count: length))
    return 0
}

private func onStreamClose(
    _ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    connection(user).streams[streamID] = nil
    return 0
}

private func readResponseBody(
    _ session: OpaquePointer?, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ length: Int,
    _ flags: UnsafeMutablePointer<UInt32>?, _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ user: UnsafeMutableRawPointer?
) -> Int {
    guard let stream = connection(user).streams[streamID], let buffer, let flags else {
        return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    }
    return copyBodyChunk(stream.response, offset: &stream.responseOffset, into: buffer, length: length, flags: flags)
}

// MARK: Sockets

/// A listening, non-blocking TCP socket on host:port (IPv4 or IPv6 literal, or `localhost`).
func bindListener(host: String, port: Int) throws(FleetError) -> Int32 {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
    var result: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, String(port), &hints, &result)
    guard status == 0, let info = result else {
        throw FleetError.invalidConfiguration("cannot resolve listen address \(host):\(port): "
            + String(cString: gai_strerror(status)))
    }
    defer { freeaddrinfo(result) }
    let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw errnoError("socket") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
        let error = errnoError("bind \(host):\(port)")
        close(fd)
        throw error
    }
    guard listen(fd, 1024) == 0 else {
        let error = errnoError("listen")
        close(fd)
        throw error
    }
    return fd
}

private func boundPort(_ fd: Int32) throws(FleetError) -> Int {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let status = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard status == 0 else { throw errnoError("getsockname") }
    let family = storage.ss_family
    return withUnsafePointer(to: &storage) { pointer in
        if family == sa_family_t(AF_INET6) {
            return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
        }
        return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
    }
}

/// The one place errno becomes a Swift error.
func errnoError(_ operation: String) -> FleetError {
    let code = nas_errno()
    return FleetError(.transport, "\(operation) failed: \(String(cString: strerror(code))) (errno \(code))")
}
