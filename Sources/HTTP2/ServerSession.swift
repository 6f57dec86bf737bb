import Foundation
internal import CNghttp2

/// A connection a client opened to a server: nghttp2's server side. Its callbacks only feed each stream's
/// `ServerStream` and carry out what it returns: refuse, or hand the whole request to the server's handler.
final class ServerSession: Session, @unchecked Sendable {
    private unowned let server: ServerCore
    private var streams: [Int32: ServerStream] = [:]
    private var responses: [Int32: OutgoingBody] = [:]
    private var deadlines: ConnectionDeadlines
    /// The request-body bytes each stream holds of the server's budget, until the stream closes.
    private var held: [Int32: Int] = [:]
    /// The header block of the response being submitted.
    private var headers = HeaderFields()

    init?(fd: Int32, tls: TLSConnection?, server: ServerCore) {
        self.server = server
        deadlines = ConnectionDeadlines(limits: server.configuration.limits, now: server.loop.now)
        super.init(loop: server.loop, fd: fd, tls: tls)
        let made = makeSession(client: false, setting: (NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1024)) { callbacks in
            nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
            nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
            nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameReceived)
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk)
            nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        }
        guard made else { return nil }
    }

    /// Sends the response on the stream, if it is still open (the client may have reset it meanwhile).
    func respond(stream id: Int32, _ response: HTTP2Response) {
        guard !closed, streams[id] != nil, responses[id] == nil else { return }
        let body = OutgoingBody(response.body)
        responses[id] = body
        headers.reset()
        headers.add(":status", number: response.status)
        headers.add("content-type", server.configuration.contentType)
        headers.add("content-length", number: response.body.count)
        _ = headers.withFields { nva, count in
            // An empty body ends the stream with the headers, not with an empty DATA frame after them.
            nas_nghttp2_submit_response(session, id, nva, count, response.body.isEmpty ? nil : readOutgoingBody)
        }
        loop.flushLater(self)
    }

    override func didClose(_ reason: String) {
        streams.removeAll()
        responses.removeAll()
        server.bodyBytesHeld(-held.values.reduce(0, +))
        held.removeAll()
        server.sessionClosed(self)
    }

    /// Closes the connection when a deadline passed: politely when it was only idle.
    func checkDeadlines(now: ContinuousClock.Instant) {
        guard !closed, let overdue = deadlines.overdue(now: now) else { return }
        switch overdue {
        case .idle(let reason): goAway(reason)
        case .handshake(let reason), .slow(let reason): close(reason)
        }
    }

    fileprivate func frameReceived() {
        deadlines.frameReceived()
    }

    fileprivate func perform(_ action: ServerStream.Action, stream id: Int32) {
        switch action {
        case .none: break
        case .reject(let refusal): respond(stream: id, server.configuration.rejection(refusal))
        case .dispatch(let request): server.handler(request, HTTP2Responder(session: self, stream: id))
        }
    }

    fileprivate func begin(_ id: Int32) {
        streams[id] = ServerStream(maxBodyBytes: server.configuration.maxBodyBytes)
        deadlines.requestBegan(id, now: loop.now)
    }

    fileprivate func header(_ id: Int32, name: String, value: String) {
        streams[id]?.header(name: name, value: value)
    }

    fileprivate func headersEnded(_ id: Int32) {
        guard let action = streams[id]?.headersEnded(gate: server.gate) else { return }
        deadlines.headersEnded(id, now: loop.now)
        perform(action, stream: id)
    }

    /// A body chunk, taken from the server's budget while the stream keeps its body; a refused stream's bytes go
    /// back at once.
    fileprivate func data(_ id: Int32, _ chunk: UnsafeBufferPointer<UInt8>) {
        guard let action = streams[id]?.data(chunk, room: server.bodyRoom) else { return }
        deadlines.bodyArrived(now: loop.now)
        if streams[id]?.state == .body {
            held[id, default: 0] += chunk.count
            server.bodyBytesHeld(chunk.count)
        } else {
            releaseBody(id)
        }
        perform(action, stream: id)
    }

    fileprivate func ended(_ id: Int32) {
        guard let action = streams[id]?.ended() else { return }
        deadlines.requestEnded(id, now: loop.now)
        perform(action, stream: id)
    }

    fileprivate func streamClosed(_ id: Int32) {
        streams[id] = nil
        responses[id] = nil
        releaseBody(id)
        deadlines.streamClosed(id, now: loop.now)
    }

    private func releaseBody(_ id: Int32) {
        if let bytes = held.removeValue(forKey: id) { server.bodyBytesHeld(-bytes) }
    }

    override func outgoingBody(_ id: Int32) -> OutgoingBody? { responses[id] }
}

/// Answers one request, from any thread: the response goes out on the loop.
public struct HTTP2Responder: Sendable {
    fileprivate let session: ServerSession
    fileprivate let stream: Int32

    /// Sends `response`; at once when called on the loop, at its next turn otherwise.
    public func respond(_ response: HTTP2Response) {
        let session = session
        let stream = stream
        if session.loop.inLoop {
            session.respond(stream: stream, response)
        } else {
            session.loop.enqueue { session.respond(stream: stream, response) }
        }
    }
}

// MARK: nghttp2 callbacks

private func owner(_ user: UnsafeMutableRawPointer?) -> ServerSession {
    Unmanaged<ServerSession>.fromOpaque(user!).takeUnretainedValue()
}

private func onBeginHeaders(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
        frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
    else { return 0 }
    owner(user).begin(frame.pointee.hd.stream_id)
    return 0
}

private func onHeader(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ name: UnsafePointer<UInt8>?, _ nameLength: Int,
    _ value: UnsafePointer<UInt8>?, _ valueLength: Int, _ flags: UInt8, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    // Only the fields a request needs become strings: one allocation less per field of every request.
    guard let frame, let name, ServerStream.keeps(UnsafeBufferPointer(start: name, count: nameLength)) else { return 0 }
    owner(user).header(frame.pointee.hd.stream_id, name: string(name, nameLength), value: string(value, valueLength))
    return 0
}

private func onFrameReceived(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let frame else { return 0 }
    let id = frame.pointee.hd.stream_id
    owner(user).frameReceived()
    if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
        frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_HEADERS.rawValue) != 0,
        frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
    {
        owner(user).headersEnded(id)
    }
    if endsStream(frame) { owner(user).ended(id) }
    return 0
}

private func onDataChunk(
    _ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32, _ data: UnsafePointer<UInt8>?, _ length: Int,
    _ user: UnsafeMutableRawPointer?
) -> Int32 {
    owner(user).data(streamID, UnsafeBufferPointer(start: data, count: length))
    return 0
}

private func onStreamClose(
    _ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    owner(user).streamClosed(streamID)
    return 0
}
