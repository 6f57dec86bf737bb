import Foundation
internal import CNghttp2

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
