import Foundation
internal import CNghttp2

/// A connection a client dialled to one peer: nghttp2's client side, calls multiplexed as streams. Its callbacks
/// only feed each stream's `ClientStream`; the results are handed to the client once nghttp2 has returned.
final class ClientSession: Session {
    /// One call's stream.
    private struct Stream {
        let call: UInt64
        let body: OutgoingBody
        var answer: ClientStream
    }

    let authority: String
    /// Scheme and authority: the client's key for its peer.
    let origin: String
    private let scheme: String
    private unowned let client: ClientCore
    private var streams: [Int32: Stream] = [:]
    /// Calls whose stream ended in this batch of reads, with their results.
    private var results: [(call: UInt64, result: Result<HTTP2Response, HTTP2Error>)] = []
    /// The header block of the call being submitted, and the `authorization` value of the last token.
    private var headers = HeaderFields()
    private var bearer: (token: String, value: String)?

    init?(fd: Int32, target: HTTP2Client.Target, tls: TLSConnection?, client: ClientCore) {
        authority = target.authority
        origin = target.origin
        scheme = target.secure ? "https" : "http"
        self.client = client
        super.init(loop: client.loop, fd: fd, tls: tls)
        let made = makeSession(client: true, setting: (NGHTTP2_SETTINGS_ENABLE_PUSH, 0)) { callbacks in
            nghttp2_session_callbacks_set_on_header_callback(callbacks, onResponseHeader)
            nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onResponseFrame)
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onResponseData)
            nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onCallClose)
        }
        guard made else { return nil }
    }

    /// Submits a call as a new stream, sent at the end of the loop's turn; the error when nghttp2 refuses it.
    func submit(call: UInt64, path: String, body: [UInt8], token: String, contentType: String,
                maxResponseBytes: Int) -> HTTP2Error? {
        headers.reset()
        headers.add(":method", "POST")
        headers.add(":scheme", scheme)
        headers.add(":authority", authority)
        headers.add(":path", path)
        headers.add("content-type", contentType)
        headers.add("content-length", number: body.count)
        if !token.isEmpty { headers.add("authorization", authorization(token)) }
        let stream = headers.withFields { nva, count in
            nas_nghttp2_submit_request(session, nva, count, body.isEmpty ? nil : readOutgoingBody)
        }
        guard stream > 0 else { return HTTP2Error(.transport, String(cString: nghttp2_strerror(stream))) }
        streams[stream] = Stream(call: call, body: OutgoingBody(body),
                                 answer: ClientStream(maxResponseBytes: maxResponseBytes))
        loop.flushLater(self)
        return nil
    }

    /// `Bearer <token>`, made once per token rather than per call.
    private func authorization(_ token: String) -> String {
        if let bearer, bearer.token == token { return bearer.value }
        let value = "Bearer " + token
        bearer = (token, value)
        return value
    }

    /// Resets the call's stream (it timed out); its end is not reported.
    func cancel(call: UInt64) {
        guard let (stream, _) = streams.first(where: { $0.value.call == call }) else { return }
        streams[stream] = nil
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, NGHTTP2_CANCEL.rawValue)
        loop.flushLater(self)
    }

    override func didConnect() {
        client.connected(self)
    }

    override func afterRead() {
        guard !results.isEmpty else { return }
        let batch = results
        results.removeAll(keepingCapacity: true)
        client.delivered(batch, on: self)
    }

    override func didClose(_ reason: String) {
        afterRead()
        streams.removeAll()
        client.lost(self, reason: reason)
    }

    fileprivate func header(_ id: Int32, name: String, value: String) {
        streams[id]?.answer.header(name: name, value: value)
    }

    fileprivate func data(_ id: Int32, _ chunk: UnsafeBufferPointer<UInt8>) {
        guard case .cancel(let error)? = streams[id]?.answer.data(chunk), let stream = streams.removeValue(forKey: id)
        else { return }
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, NGHTTP2_CANCEL.rawValue)
        results.append((stream.call, .failure(error)))
    }

    fileprivate func ended(_ id: Int32) {
        streams[id]?.answer.responseEnded()
    }

    fileprivate func closed(_ id: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        let reason = String(cString: nghttp2_http2_strerror(errorCode))
        results.append((stream.call, stream.answer.closed(reason: reason)))
    }

    override func outgoingBody(_ id: Int32) -> OutgoingBody? { streams[id]?.body }
}

// MARK: nghttp2 callbacks

private func owner(_ user: UnsafeMutableRawPointer?) -> ClientSession {
    Unmanaged<ClientSession>.fromOpaque(user!).takeUnretainedValue()
}

private func onResponseHeader(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ name: UnsafePointer<UInt8>?, _ nameLength: Int,
    _ value: UnsafePointer<UInt8>?, _ valueLength: Int, _ flags: UInt8, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, nameLength == 7 else { return 0 }
    owner(user).header(frame.pointee.hd.stream_id, name: string(name, nameLength), value: string(value, valueLength))
    return 0
}

private func onResponseFrame(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, endsStream(frame) else { return 0 }
    owner(user).ended(frame.pointee.hd.stream_id)
    return 0
}

private func onResponseData(
    _ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32, _ data: UnsafePointer<UInt8>?, _ length: Int,
    _ user: UnsafeMutableRawPointer?
) -> Int32 {
    owner(user).data(streamID, UnsafeBufferPointer(start: data, count: length))
    return 0
}

private func onCallClose(
    _ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    owner(user).closed(streamID, errorCode: errorCode)
    return 0
}
