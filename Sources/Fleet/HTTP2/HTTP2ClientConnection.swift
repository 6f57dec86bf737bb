import Foundation
internal import CNghttp2

/// One call a server's loop sends to another server (the coordinator's push of a model to a worker).
final class HTTP2OutboundCall {
    let url: String
    let authority: String
    let path: String
    let body: [UInt8]
    let deadline: ContinuousClock.Instant
    fileprivate let completion: @Sendable (Result<HTTP2Response, FleetError>) -> Void
    fileprivate var bodyOffset = 0
    fileprivate var status = 0
    fileprivate var response: [UInt8] = []
    fileprivate var result: Result<HTTP2Response, FleetError>?

    /// A call to `url`, `http://host:port/path`; nil when the URL is not of that form.
    init?(url: String, body: [UInt8], deadline: ContinuousClock.Instant,
          completion: @escaping @Sendable (Result<HTTP2Response, FleetError>) -> Void) {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        guard !authority.isEmpty else { return nil }
        self.url = url
        self.authority = String(authority)
        let path = rest.dropFirst(authority.count)
        self.path = path.isEmpty ? "/" : String(path)
        self.body = body
        self.deadline = deadline
        self.completion = completion
    }

    /// Host and port of the authority (`host:port` or `[v6]:port`).
    var hostAndPort: (host: String, port: String)? {
        guard let colon = authority.lastIndex(of: ":") else { return nil }
        var host = authority[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let port = authority[authority.index(after: colon)...]
        guard !host.isEmpty, !port.isEmpty else { return nil }
        return (String(host), String(port))
    }

    /// Ends the call once: later results (a reset after a timeout) are ignored. The completion runs later, on the
    /// loop, outside nghttp2's callbacks.
    @discardableResult
    func end(_ result: Result<HTTP2Response, FleetError>) -> Bool {
        guard self.result == nil else { return false }
        self.result = result
        return true
    }

    func deliver() {
        if let result { completion(result) }
    }
}

/// A connection the loop opened to another server: nghttp2's client side, requests multiplexed as streams.
final class HTTP2ClientConnection: HTTP2Connection {
    let authority: String
    private let token: String
    private let maxResponseBytes: Int
    private var calls: [Int32: HTTP2OutboundCall] = [:]
    /// Calls that ended, whose completions the loop runs once nghttp2 has returned.
    private(set) var endedCalls: [HTTP2OutboundCall] = []

    init?(id: UInt64, fd: Int32, authority: String, connecting: Bool, token: String, maxResponseBytes: Int) {
        self.authority = authority
        self.token = token
        self.maxResponseBytes = maxResponseBytes
        super.init(id: id, fd: fd)
        self.connecting = connecting
        let made = makeSession(client: true, setting: (NGHTTP2_SETTINGS_ENABLE_PUSH, 0)) { callbacks in
            nghttp2_session_callbacks_set_on_header_callback(callbacks, onResponseHeader)
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onResponseData)
            nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onCallClose)
        }
        guard made else { return nil }
    }

    /// Submits the call as a new stream; it is sent at the next flush.
    func submit(_ call: HTTP2OutboundCall) {
        let fields = [
            (":method", "POST"), (":scheme", "http"), (":authority", authority), (":path", call.path),
            ("content-type", "application/x-protobuf"), ("authorization", "Bearer \(token)"),
            ("content-length", String(call.body.count)),
        ]
        let stream = withHeaderFields(fields) { nva, count in
            nas_nghttp2_submit_request(session, nva, count, call.body.isEmpty ? nil : readRequestBody)
        }
        guard stream > 0 else {
            call.end(.failure(.transport("POST \(call.url): " + String(cString: nghttp2_strerror(stream)))))
            endedCalls.append(call)
            return
        }
        calls[stream] = call
    }

    /// Ends the calls whose deadline passed, resetting their streams; returns the earliest deadline left.
    func expire(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        var earliest: ContinuousClock.Instant?
        for (stream, call) in calls {
            if call.deadline <= now {
                calls[stream] = nil
                nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream,
                                          NGHTTP2_CANCEL.rawValue)
                if call.end(.failure(.timedOut("POST \(call.url): no answer in time"))) { endedCalls.append(call) }
            } else if earliest.map({ call.deadline < $0 }) ?? true {
                earliest = call.deadline
            }
        }
        return earliest
    }

    /// Runs the completions of the calls that ended.
    func deliverEnded() {
        while !endedCalls.isEmpty {
            let ended = endedCalls
            endedCalls.removeAll()
            for call in ended { call.deliver() }
        }
    }

    /// The connection is gone: every call still open fails on the transport.
    func failAll(_ reason: String) {
        for call in calls.values where call.end(.failure(.transport("POST \(call.url): \(reason)"))) {
            endedCalls.append(call)
        }
        calls.removeAll()
    }

    override func afterRead() {
        deliverEnded()
    }

    override func ended() {
        failAll("the connection to \(authority) was lost")
        deliverEnded()
    }

    fileprivate func call(_ stream: Int32) -> HTTP2OutboundCall? { calls[stream] }

    fileprivate func header(_ stream: Int32, name: String, value: String) {
        if name == ":status", let call = calls[stream] { call.status = Int(value) ?? 0 }
    }

    fileprivate func data(_ stream: Int32, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard let call = calls[stream] else { return }
        if call.response.count + bytes.count > maxResponseBytes {
            calls[stream] = nil
            nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, NGHTTP2_CANCEL.rawValue)
            if call.end(.failure(.transport("POST \(call.url): the answer is over \(maxResponseBytes) bytes"))) {
                endedCalls.append(call)
            }
            return
        }
        call.response.append(contentsOf: bytes)
    }

    fileprivate func closed(_ stream: Int32, errorCode: UInt32) {
        guard let call = calls.removeValue(forKey: stream) else { return }
        let result: Result<HTTP2Response, FleetError>
        // A server may refuse a call (413) before the whole body is sent and reset the stream after its answer:
        // the answer counts.
        if call.status > 0 && (errorCode == NGHTTP2_NO_ERROR.rawValue || call.status >= 400 && !call.response.isEmpty) {
            result = .success(HTTP2Response(status: call.status, body: call.response))
        } else {
            let reason = String(cString: nghttp2_http2_strerror(errorCode))
            result = .failure(.transport("POST \(call.url): the stream was reset (\(reason))"))
        }
        if call.end(result) { endedCalls.append(call) }
    }
}

// MARK: nghttp2 callbacks

private func clientConnection(_ user: UnsafeMutableRawPointer?) -> HTTP2ClientConnection {
    Unmanaged<HTTP2ClientConnection>.fromOpaque(user!).takeUnretainedValue()
}

private func onResponseHeader(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ name: UnsafePointer<UInt8>?, _ nameLength: Int,
    _ value: UnsafePointer<UInt8>?, _ valueLength: Int, _ flags: UInt8, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, let name, let value, nameLength == 7 else { return 0 }
    clientConnection(user).header(
        frame.pointee.hd.stream_id,
        name: String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
        value: String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self))
    return 0
}

private func onResponseData(
    _ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32, _ data: UnsafePointer<UInt8>?, _ length: Int,
    _ user: UnsafeMutableRawPointer?
) -> Int32 {
    clientConnection(user).data(streamID, UnsafeBufferPointer(start: data, count: length))
    return 0
}

private func onCallClose(
    _ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    clientConnection(user).closed(streamID, errorCode: errorCode)
    return 0
}

private func readRequestBody(
    _ session: OpaquePointer?, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ length: Int,
    _ flags: UnsafeMutablePointer<UInt32>?, _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ user: UnsafeMutableRawPointer?
) -> Int {
    guard let call = clientConnection(user).call(streamID), let buffer, let flags else {
        return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    }
    return copyBodyChunk(call.body, offset: &call.bodyOffset, into: buffer, length: length, flags: flags)
}
