import Foundation
internal import CNghttp2
internal import CSystem

/// One HTTP/2 connection of a server's loop, accepted or opened: its non-blocking socket, its nghttp2 session and
/// the bytes it has yet to send. `HTTP2ServerConnection` answers requests on it, `HTTP2ClientConnection` sends them.
class HTTP2Connection {
    enum ReadResult { case more, again, closed }
    enum FlushResult { case done, blocked, closed }

    let id: UInt64
    let fd: Int32
    /// Made by the subclass, whose instance is the session's user data.
    var session: OpaquePointer?
    private var pendingOutput: [UInt8] = []
    private var pendingOffset = 0
    var waitingForWritable = false
    /// True while a non-blocking connect is under way (opened connections only): frames wait in the session.
    var connecting = false
    /// True while the connection is in its loop's list to flush.
    var isDirty = false
    private(set) var closed = false

    init(id: UInt64, fd: Int32) {
        self.id = id
        self.fd = fd
    }

    deinit {
        nghttp2_session_del(session)
    }

    /// Makes the session, with this connection as its user data: `install` sets the callbacks, `setting` is
    /// announced along with a 1 MiB stream window. Every connection's receive window is 16 MiB, so that many
    /// models travel at once without waiting on WINDOW_UPDATEs. False when nghttp2 cannot allocate.
    func makeSession(client: Bool, setting: (id: nghttp2_settings_id, value: UInt32),
                     _ install: (OpaquePointer?) -> Void) -> Bool {
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0 else { return false }
        defer { nghttp2_session_callbacks_del(callbacks) }
        install(callbacks)
        let user = Unmanaged.passUnretained(self).toOpaque()
        let made = client
            ? nghttp2_session_client_new(&session, callbacks, user)
            : nghttp2_session_server_new(&session, callbacks, user)
        guard made == 0 else { return false }
        // A client's session sends the connection preface itself, before these settings.
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(setting.id.rawValue), value: setting.value),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: 1 << 20),
        ]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, 16 << 20)
        return true
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    /// Reads once into `buffer` and feeds nghttp2, whose callbacks run meanwhile.
    func readAndProcess(into buffer: inout [UInt8]) -> ReadResult {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count == 0 { return .closed }
        if count < 0 {
            let error = nas_errno()
            return error == EAGAIN || error == EWOULDBLOCK || error == EINTR ? .again : .closed
        }
        let consumed = buffer.withUnsafeBufferPointer { nghttp2_session_mem_recv(session, $0.baseAddress, count) }
        // A negative result is a protocol error (HTTP/1.1, bytes that are no HTTP/2): this connection ends.
        if consumed < 0 { return .closed }
        return count == buffer.count ? .more : .again
    }

    /// Writes what nghttp2 has to send; `.closed` when both sides are done or the peer is gone.
    func flush() -> FlushResult {
        while true {
            // Gather every frame nghttp2 has (up to 256 KiB) and send them in one call, not one call per frame.
            if pendingOffset == pendingOutput.count {
                pendingOutput.removeAll(keepingCapacity: true)
                pendingOffset = 0
                while pendingOutput.count < 256 << 10 {
                    var data: UnsafePointer<UInt8>?
                    let length = nghttp2_session_mem_send(session, &data)
                    if length < 0 { return .closed }
                    if length == 0 { break }
                    pendingOutput.append(contentsOf: UnsafeBufferPointer(start: data, count: length))
                }
                if pendingOutput.isEmpty { break }
            }
            let written = pendingOutput.withUnsafeBytes {
                send(fd, $0.baseAddress! + pendingOffset, $0.count - pendingOffset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                let error = nas_errno()
                if error == EAGAIN || error == EWOULDBLOCK { return .blocked }
                if error == EINTR { continue }
                return .closed
            }
            pendingOffset += written
            if pendingOffset < pendingOutput.count { return .blocked }
        }
        if nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 { return .closed }
        return .done
    }

    /// Called by the loop after each read, outside nghttp2's callbacks.
    func afterRead() {}

    /// Called by the loop once the connection is gone, before it is released.
    func ended() {}
}

/// Header fields laid out for nghttp2: names and values in one buffer, `nghttp2_nv`s pointing into it, valid
/// during `body` (nghttp2 copies them when a frame is submitted).
func withHeaderFields<R>(_ fields: [(String, String)], _ body: (UnsafeMutablePointer<nghttp2_nv>, Int) -> R) -> R {
    var bytes: [UInt8] = []
    var spans: [(Int, Int, Int, Int)] = []
    for (name, value) in fields {
        let nameStart = bytes.count
        bytes.append(contentsOf: name.utf8)
        let valueStart = bytes.count
        bytes.append(contentsOf: value.utf8)
        spans.append((nameStart, valueStart - nameStart, valueStart, bytes.count - valueStart))
    }
    bytes.append(0)
    return bytes.withUnsafeMutableBufferPointer { buffer in
        var fields = spans.map { span in
            nghttp2_nv(name: buffer.baseAddress! + span.0, value: buffer.baseAddress! + span.2, namelen: span.1,
                       valuelen: span.3, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
        }
        return fields.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
    }
}

/// What a body's read callback gives nghttp2: the next bytes of `body` from `offset` (advanced), up to `length`,
/// with the end-of-data flag once all of it went.
func copyBodyChunk(
    _ body: [UInt8], offset: inout Int, into buffer: UnsafeMutablePointer<UInt8>, length: Int,
    flags: UnsafeMutablePointer<UInt32>
) -> Int {
    let count = min(length, body.count - offset)
    if count > 0 {
        let start = offset
        body.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress! + start, count: count) }
    }
    offset += count
    if offset == body.count { flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue }
    return count
}
