import Foundation
internal import CCurl
internal import CNghttp2
internal import CSystem

/// An HTTP/2 client on libcurl's multi interface: prior-knowledge h2c, one connection per host reused by every
/// call, calls multiplexed as streams on it. One thread runs the loop: libcurl's socket interface
/// (`curl_multi_socket_action`) driven by epoll, so libcurl only looks at the sockets that are ready instead of
/// polling every transfer; calls from any task are queued to the loop and woken with an eventfd.
///
/// libcurl 7.88 (Debian 12) fails every call that reuses a prior-knowledge connection ("Error in the HTTP2
/// framing layer", curl issue 10634, fixed in 8.0). So one call per host opens the connection with prior
/// knowledge while the others wait, and then they all ask for plain HTTP/2, which reuses the open connection
/// and multiplexes on it. A call that finds the connection gone fails at once and is sent once more the same
/// way: the server closes an HTTP/1.1 upgrade attempt before it reads a request, so nothing runs twice.
final class HTTP2Client: @unchecked Sendable {
    private let token: String
    private let multi: UnsafeMutableRawPointer
    private let lock = NSLock()
    private var pending: [CurlTransfer] = []
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private let epollFD: Int32
    private let wakeFD: Int32
    // Touched by the loop thread only.
    /// Sockets libcurl asked to watch, with the events it wants.
    fileprivate var watched: [Int32: UInt32] = [:]
    /// When libcurl wants `curl_multi_socket_action(CURL_SOCKET_TIMEOUT)`; nil for never.
    fileprivate var timerDeadline: ContinuousClock.Instant?
    private let clock = ContinuousClock()
    private var transfers: [ObjectIdentifier: CurlTransfer] = [:]
    private var hosts: [String: HostState] = [:]
    /// Easy handles of finished calls, reset and reused: creating one per call costs more than the call.
    private var idleHandles: [UnsafeMutableRawPointer] = []

    /// Whether a connection to one host is known open, being opened, and who waits for it.
    private struct HostState {
        var connected = false
        var opening = false
        var waiting: [CurlTransfer] = []
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    /// A client that sends `authorization: Bearer <token>` on every call.
    init(token: String) {
        _ = Self.globalInit
        self.token = token
        multi = curl_multi_init()!
        _ = nas_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        _ = nas_curl_multi_setopt_long(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000)
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, EPOLLIN.rawValue, UInt64(UInt32.max) + 1)
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = nas_curl_multi_setopt_socket_callback(multi, watchSocket)
        _ = nas_curl_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, me)
        _ = nas_curl_multi_setopt_timer_callback(multi, curlTimerChanged)
        _ = nas_curl_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, me)
        let thread = Thread { [self] in runLoop() }
        thread.name = "nas-http2-client"
        thread.start()
    }

    deinit {
        curl_multi_cleanup(multi)
        close(epollFD)
        close(wakeFD)
    }

    private func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wakeFD, $0.baseAddress, 8) }
    }

    /// libcurl's socket callback: watch `socket` for what libcurl wants, or stop watching it.
    fileprivate func watch(_ socket: Int32, what: Int32) {
        if what == CURL_POLL_REMOVE {
            if watched.removeValue(forKey: socket) != nil { _ = nas_epoll_ctl(epollFD, EPOLL_CTL_DEL, socket, 0, 0) }
            return
        }
        var events: UInt32 = 0
        if what & CURL_POLL_IN != 0 { events |= EPOLLIN.rawValue }
        if what & CURL_POLL_OUT != 0 { events |= EPOLLOUT.rawValue }
        let operation = watched[socket] == nil ? EPOLL_CTL_ADD : EPOLL_CTL_MOD
        watched[socket] = events
        _ = nas_epoll_ctl(epollFD, operation, socket, events, UInt64(UInt32(bitPattern: socket)))
    }

    /// libcurl's timer callback.
    fileprivate func setTimer(milliseconds: Int) {
        timerDeadline = milliseconds < 0 ? nil : clock.now + .milliseconds(milliseconds)
    }

    /// Ends the loop; calls still in flight fail. Must be called before the client is released.
    func shutdown() {
        let first: Bool = lock.withLock {
            if stopping { return false }
            stopping = true
            return true
        }
        guard first else { return }
        wake()
        finished.wait()
    }

    /// POSTs one encoded message to `url`; the call fails after `timeout` seconds.
    func post(url: String, body: [UInt8], timeout: Double) async throws(FleetError) -> HTTP2Response {
        let result: Result<HTTP2Response, FleetError> = await withCheckedContinuation { continuation in
            post(url: url, body: body, timeout: timeout) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// POSTs one encoded message; `completion` runs on the client's loop thread when the call ends. For callers
    /// that are themselves event-driven (the coordinator's pushes): no task per call.
    func post(url: String, body: [UInt8], timeout: Double,
              completion: @escaping @Sendable (Result<HTTP2Response, FleetError>) -> Void) {
        let transfer = CurlTransfer(url: url, token: token, body: body, timeout: timeout, onFinish: completion)
        let (accepted, first): (Bool, Bool) = lock.withLock {
            if stopping { return (false, false) }
            pending.append(transfer)
            return (true, pending.count == 1)
        }
        if accepted {
            // One wakeup per batch: the loop takes every queued call when it wakes.
            if first { wake() }
        } else {
            transfer.finish(.failure(.transport("the fleet client was shut down")))
        }
    }

    /// Starts a call now, as the opener of its host's connection or on the open one, or parks it until the
    /// opener is done.
    private func schedule(_ transfer: CurlTransfer) {
        var state = hosts[transfer.host, default: HostState()]
        defer { hosts[transfer.host] = state }
        if state.connected {
            start(transfer, priorKnowledge: false)
        } else if !state.opening {
            state.opening = true
            transfer.isOpener = true
            start(transfer, priorKnowledge: true)
        } else {
            state.waiting.append(transfer)
        }
    }

    private func start(_ transfer: CurlTransfer, priorKnowledge: Bool) {
        if transfer.easy == nil { transfer.attach(idleHandles.popLast() ?? curl_easy_init()!) }
        let version = priorKnowledge ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_2_0
        _ = nas_curl_easy_setopt_long(transfer.easy, CURLOPT_HTTP_VERSION, Int(version))
        transfers[ObjectIdentifier(transfer)] = transfer
        curl_multi_add_handle(multi, transfer.easy)
    }

    private func recycle(_ transfer: CurlTransfer) {
        guard let handle = transfer.detach() else { return }
        if idleHandles.count < 512 { idleHandles.append(handle) } else { curl_easy_cleanup(handle) }
    }

    private func finished(_ transfer: CurlTransfer, code: CURLcode) {
        var state = hosts[transfer.host, default: HostState()]
        let failedOnTransport = code != CURLE_OK && code != CURLE_OPERATION_TIMEDOUT && !transfer.answered(despite: code)
        if transfer.isOpener {
            transfer.isOpener = false
            state.opening = false
            state.connected = code == CURLE_OK
            let waiting = state.waiting
            state.waiting = []
            hosts[transfer.host] = state
            for next in waiting { schedule(next) }
        } else if failedOnTransport {
            state.connected = false
            hosts[transfer.host] = state
            if !transfer.resent {
                transfer.resent = true
                transfer.response = []
                schedule(transfer)
                return
            }
        }
        transfer.complete(code: code)
        recycle(transfer)
    }

    private func runLoop() {
        var running: Int32 = 0
        var events = [UInt32](repeating: 0, count: 64)
        var tokens = [UInt64](repeating: 0, count: 64)
        while true {
            let (batch, stop) = lock.withLock {
                let batch = pending
                pending.removeAll()
                return (batch, stopping)
            }
            if stop {
                for transfer in batch { transfer.finish(.failure(.transport("the fleet client was shut down"))) }
                break
            }
            for transfer in batch { schedule(transfer) }
            var wait: Int32 = 1000
            if let deadline = timerDeadline {
                let left = deadline - clock.now
                wait = left <= .zero ? 0 : Int32(min(1000, left.components.seconds * 1000
                    + left.components.attoseconds / 1_000_000_000_000_000 + 1))
            }
            let count = nas_epoll_wait(epollFD, &events, &tokens, 64, wait)
            for index in 0..<max(0, Int(count)) {
                if tokens[index] > UInt64(UInt32.max) {
                    var value: UInt64 = 0
                    _ = withUnsafeMutableBytes(of: &value) { read(wakeFD, $0.baseAddress, 8) }
                    continue
                }
                var mask: Int32 = 0
                if events[index] & EPOLLIN.rawValue != 0 { mask |= CURL_CSELECT_IN }
                if events[index] & EPOLLOUT.rawValue != 0 { mask |= CURL_CSELECT_OUT }
                if events[index] & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { mask |= CURL_CSELECT_ERR }
                curl_multi_socket_action(multi, Int32(bitPattern: UInt32(truncatingIfNeeded: tokens[index])), mask,
                                         &running)
            }
            if let deadline = timerDeadline, deadline <= clock.now {
                timerDeadline = nil
                curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running)
            }
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                var owner: UnsafeMutableRawPointer?
                _ = nas_curl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &owner)
                curl_multi_remove_handle(multi, easy)
                guard let owner else { continue }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(owner).takeUnretainedValue()
                transfers[ObjectIdentifier(transfer)] = nil
                finished(transfer, code: code)
            }
        }
        for transfer in transfers.values {
            curl_multi_remove_handle(multi, transfer.easy)
            transfer.finish(.failure(.transport("the fleet client was shut down")))
        }
        transfers.removeAll()
        for state in hosts.values {
            for transfer in state.waiting { transfer.finish(.failure(.transport("the fleet client was shut down"))) }
        }
        hosts.removeAll()
        for handle in idleHandles { curl_easy_cleanup(handle) }
        idleHandles.removeAll()
        finished.signal()
    }
}

private func watchSocket(_ easy: UnsafeMutableRawPointer?, _ socket: Int32, _ what: Int32,
                         _ user: UnsafeMutableRawPointer?, _ socketData: UnsafeMutableRawPointer?) -> Int32 {
    guard let user else { return 0 }
    Unmanaged<HTTP2Client>.fromOpaque(user).takeUnretainedValue().watch(socket, what: what)
    return 0
}

private func curlTimerChanged(_ multi: UnsafeMutableRawPointer?, _ milliseconds: Int, _ user: UnsafeMutableRawPointer?)
    -> Int32 {
    guard let user else { return 0 }
    Unmanaged<HTTP2Client>.fromOpaque(user).takeUnretainedValue().setTimer(milliseconds: milliseconds)
    return 0
}

/// One call: owns its easy handle, header list, request body copy and response bytes.
private final class CurlTransfer {
    /// Attached by the loop from its pool of easy handles when the call starts.
    private(set) var easy: UnsafeMutableRawPointer!
    private let token: String
    private let timeout: Double
    private let bodyCount: Int
    private var headers: UnsafeMutablePointer<curl_slist>?
    private let body: UnsafeMutableRawBufferPointer
    var response: [UInt8] = []
    /// `host:port`, the key of the connection this call uses.
    let host: String
    var isOpener = false
    var resent = false
    private var onFinish: ((Result<HTTP2Response, FleetError>) -> Void)?
    let url: String

    init(url: String, token: String, body: [UInt8], timeout: Double,
         onFinish: @escaping (Result<HTTP2Response, FleetError>) -> Void) {
        self.url = url
        self.onFinish = onFinish
        let rest = url.split(separator: "://", maxSplits: 1).last ?? Substring(url)
        host = String(rest.prefix { $0 != "/" })
        self.token = token
        self.timeout = timeout
        bodyCount = body.count
        self.body = UnsafeMutableRawBufferPointer.allocate(byteCount: max(body.count, 1), alignment: 1)
        body.withUnsafeBytes { self.body.copyMemory(from: $0) }
    }

    /// Takes an easy handle (new or reset) and sets this call's options on it.
    func attach(_ handle: UnsafeMutableRawPointer) {
        easy = handle
        headers = curl_slist_append(headers, "content-type: application/x-protobuf")
        if !token.isEmpty { headers = curl_slist_append(headers, "authorization: Bearer \(token)") }
        headers = curl_slist_append(headers, "expect:")
        let me = Unmanaged.passUnretained(self).toOpaque()
        // Fleet traffic never goes through an http_proxy of the environment (and curl skips its lookup).
        _ = nas_curl_easy_setopt_string(easy, CURLOPT_PROXY, "")
        _ = nas_curl_easy_setopt_string(easy, CURLOPT_URL, url)
        _ = nas_curl_easy_setopt_long(easy, CURLOPT_PIPEWAIT, 1)
        _ = nas_curl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = nas_curl_easy_setopt_long(easy, CURLOPT_POST, 1)
        _ = nas_curl_easy_setopt_pointer(easy, CURLOPT_POSTFIELDS, self.body.baseAddress)
        _ = nas_curl_easy_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bodyCount))
        _ = nas_curl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headers)
        _ = nas_curl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, max(1, Int(timeout * 1000)))
        _ = nas_curl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(min(timeout, 10) * 1000)))
        _ = nas_curl_easy_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION, collectBody)
        _ = nas_curl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me)
        _ = nas_curl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, me)
        if verboseCurl { _ = nas_curl_easy_setopt_long(easy, CURLOPT_VERBOSE, 1) }
    }

    /// Gives the easy handle back, reset, for the next call.
    func detach() -> UnsafeMutableRawPointer? {
        guard let handle = easy else { return nil }
        easy = nil
        curl_easy_reset(handle)
        return handle
    }

    deinit {
        if let easy { curl_easy_cleanup(easy) }
        curl_slist_free_all(headers)
        body.deallocate()
    }

    /// True when the call failed only after its answer arrived whole: a server may refuse a call (413) before
    /// the whole body is sent and reset the stream after its answer, which libcurl reports as a send error.
    func answered(despite code: CURLcode) -> Bool {
        guard code == CURLE_SEND_ERROR || code == CURLE_HTTP2_STREAM, !response.isEmpty else { return false }
        return status >= 400
    }

    var status: Int {
        var status = 0
        _ = nas_curl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return status
    }

    func complete(code: CURLcode) {
        if answered(despite: code) {
            finish(.success(HTTP2Response(status: status, body: response)))
            return
        }
        guard code == CURLE_OK else {
            finish(.failure(curlError(code, url: url)))
            return
        }
        let status = status
        finish(.success(HTTP2Response(status: status, body: response)))
    }

    func finish(_ result: Result<HTTP2Response, FleetError>) {
        let callback = onFinish
        onFinish = nil
        callback?(result)
    }
}

/// `NAS_CURL_VERBOSE=1` prints libcurl's trace of every call to stderr, to debug a peer.
private let verboseCurl = ProcessInfo.processInfo.environment["NAS_CURL_VERBOSE"] == "1"

private func collectBody(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int,
                         _ user: UnsafeMutableRawPointer?) -> Int {
    guard let data, let user else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(user).takeUnretainedValue()
    let total = size * count
    data.withMemoryRebound(to: UInt8.self, capacity: total) {
        transfer.response.append(contentsOf: UnsafeBufferPointer(start: $0, count: total))
    }
    return total
}

/// The one place a CURLcode becomes a Swift error: timeouts are told apart, as they are retried differently.
private func curlError(_ code: CURLcode, url: String) -> FleetError {
    let text = String(cString: curl_easy_strerror(code))
    if code == CURLE_OPERATION_TIMEDOUT {
        return .timedOut("POST \(url): \(text)")
    }
    return .transport("POST \(url): \(text) (curl error \(code.rawValue))")
}
