import Foundation
internal import CNghttp2
internal import CSystem

/// One HTTP/2 connection on the loop, accepted or dialled: its non-blocking socket, its nghttp2 session and the
/// bytes it has yet to send. `ServerSession` answers requests on it, `ClientSession` sends calls; this class only
/// moves bytes between the socket and nghttp2.
class Session: EventLoopSource, EventLoopFlushable {
    let loop: EventLoop
    let fd: Int32
    /// How bytes cross the socket: as they are (h2c) or through TLS.
    private let transport: Transport
    /// Made by the subclass, whose instance is the session's user data.
    var session: OpaquePointer?
    private var token: UInt64 = 0
    /// What the session has gathered to send and not yet sent.
    private var output: SessionOutput
    private var waitingForWritable = false
    /// True while the connection is not yet open (a non-blocking connect or a TLS handshake is under way): frames
    /// wait in the session.
    private(set) var connecting = false
    /// True while the non-blocking connect of a dialled connection is under way.
    private var dialling = false
    /// True while TLS waits for the socket to be writable to go on reading.
    private var readWaitsForWritable = false
    /// True while TLS waits for the peer's bytes to go on writing (EPOLLOUT would only spin meanwhile).
    private var writeWaitsForReadable = false
    var queuedForFlush = false
    private(set) var closed = false
    /// Whether any byte came from the peer (through TLS: any decrypted byte).
    private(set) var receivedAny = false
    /// Whether the TLS handshake was refused (certificate, CA, ALPN): a call again on a new connection cannot help.
    private(set) var handshakeRefused = false

    /// A session on `fd`; with `tls`, every byte goes through that TLS connection, after its handshake.
    init(loop: EventLoop, fd: Int32, tls: TLSConnection?) {
        self.loop = loop
        self.fd = fd
        transport = tls.map { .tls($0) } ?? .plain
        // Through TLS every byte is copied into one buffer for SSL_write; h2c sends bodies from where they are.
        output = SessionOutput(copiesPayloads: tls != nil)
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
        nghttp2_session_callbacks_set_send_data_callback(callbacks, sendDataFrame)
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

    /// Starts watching the socket; `connecting` while a non-blocking connect is under way. A TLS session
    /// handshakes first (at once when the socket is connected).
    func start(connecting: Bool) {
        dialling = connecting
        self.connecting = true
        waitingForWritable = connecting
        let events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | (connecting ? EPOLLOUT.rawValue : 0)
        token = loop.watch(fd, events: events, source: self)
        if !connecting { ready(0) }
    }

    // MARK: Hooks of the subclasses

    /// The non-blocking connect ended well.
    func didConnect() {}
    /// After each batch of reads, outside nghttp2's callbacks: results gathered in callbacks are delivered here.
    func afterRead() {}
    /// The connection is gone (`reason`): the socket is closed.
    func didClose(_ reason: String) {}
    /// The body being sent on stream `id` (a request's or a response's), whose DATA frames are being sent.
    func outgoingBody(_ id: Int32) -> OutgoingBody? { nil }

    // MARK: The loop's side

    func ready(_ events: UInt32) {
        guard !closed else { return }
        if dialling {
            if let error = Sockets.connectError(fd) {
                close(error)
                return
            }
            if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                close("the connection failed")
                return
            }
            guard events & EPOLLOUT.rawValue != 0 else { return }
            dialling = false
        }
        var readable = events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
            || (readWaitsForWritable && events & EPOLLOUT.rawValue != 0)
        if connecting {
            switch transport.handshake() {
            case .done:
                connecting = false
                // What came with the handshake's last flight may already wait in TLS's buffers.
                readable = true
                if waitingForWritable { watchWritable(false) }
                didConnect()
            case .wouldBlock(let writable):
                if writable != waitingForWritable { watchWritable(writable) }
                return
            case .ended:
                close("the peer closed the connection")
                return
            case .failed(let reason):
                close(reason)
                return
            case .refused(let reason):
                handshakeRefused = true
                close(reason)
                return
            }
        }
        var lost: String?
        if readable {
            // A few reads per wake-up, so one busy connection does not starve the others.
            for _ in 0..<4 {
                let (more, end) = readAndProcess()
                if let end {
                    lost = end
                    break
                }
                if !more { break }
            }
            afterRead()
            // Bytes TLS read ahead are not the socket's any more: come back for them next turn.
            if lost == nil && transport.hasBufferedInput {
                loop.enqueue { [weak self] in self?.ready(EPOLLIN.rawValue) }
            }
        }
        if let lost {
            close(lost)
            return
        }
        loop.flushLater(self)
    }

    /// Reads once and feeds nghttp2, whose callbacks run meanwhile: whether there may be more to read, or why the
    /// connection ended.
    private func readAndProcess() -> (more: Bool, end: String?) {
        let buffer = loop.readBuffer
        readWaitsForWritable = false
        let count: Int
        switch transport.receive(fd, into: buffer) {
        case .done(let read):
            count = read
            receivedAny = true
        case .wouldBlock(let writable):
            readWaitsForWritable = writable
            return (false, nil)
        case .ended: return (false, "the peer closed the connection")
        case .failed(let reason), .refused(let reason): return (false, reason)
        }
        let consumed = nghttp2_session_mem_recv(session, buffer.baseAddress, count)
        // A negative result is a protocol error (HTTP/1.1, bytes that are no HTTP/2): this connection ends.
        if consumed < 0 { return (false, "HTTP/2 protocol error: " + String(cString: nghttp2_strerror(Int32(consumed)))) }
        return (count == buffer.count, nil)
    }

    /// Writes what nghttp2 has to send; closes the connection when both sides are done or the peer is gone.
    func flush() {
        guard !closed, !connecting else { return }
        while true {
            // Gather every frame nghttp2 has (up to 256 KiB) and send them in one call, not one call per frame.
            // DATA frames are appended by `appendDataFrame`, during nghttp2_session_mem_send.
            if output.isDrained {
                output.reset()
                while output.count < Self.outputBatch {
                    var data: UnsafePointer<UInt8>?
                    let length = nghttp2_session_mem_send(session, &data)
                    if length < 0 {
                        close("HTTP/2 error: " + String(cString: nghttp2_strerror(Int32(length))))
                        return
                    }
                    if length == 0 { break }
                    output.append(UnsafeBufferPointer(start: data, count: length))
                }
                if output.count == 0 { break }
            }
            let status = output.send(contiguous: { transport.send(fd, $0) }, fd: fd)
            writeWaitsForReadable = status == .wouldBlock(writable: false)
            guard case .done(let written) = status else {
                if case .failed(let reason) = status {
                    close(reason)
                    return
                }
                // Blocked, or the peer left (the next read tells). TLS waiting for the peer's bytes is woken by
                // them: the socket is always watched for reading.
                break
            }
            output.advance(written)
            if !output.isDrained { break }
        }
        let blocked = !output.isDrained
        let writable = (blocked && !writeWaitsForReadable) || readWaitsForWritable
        if writable != waitingForWritable { watchWritable(writable) }
        if !blocked && nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 {
            close("the session ended")
        }
    }

    /// What one send gathers at most.
    private static let outputBatch = 256 << 10

    /// Appends a DATA frame nghttp2 prepared (its 9-byte header, then its payload straight from the body, so nghttp2
    /// copies none of the body, and h2c does not either: the payload is sent from the body's own storage);
    /// `NGHTTP2_ERR_WOULDBLOCK` once the output holds a batch: nghttp2 offers the same frame again after it went out.
    fileprivate func appendDataFrame(_ frame: UnsafeMutablePointer<nghttp2_frame>, header: UnsafePointer<UInt8>,
                                     length: Int) -> Int32 {
        guard output.count < Self.outputBatch else { return NGHTTP2_ERR_WOULDBLOCK.rawValue }
        guard let body = outgoingBody(frame.pointee.hd.stream_id) else {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
        }
        output.append(UnsafeBufferPointer(start: header, count: 9))
        let padding = Int(frame.pointee.data.padlen)
        if padding > 0 { output.append(UInt8(padding - 1)) }
        guard let payload = body.take(length) else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
        output.append(body, payload)
        if padding > 1 { output.append(repeatElement(0, count: padding - 1)) }
        return 0
    }

    private func watchWritable(_ writable: Bool) {
        waitingForWritable = writable
        loop.change(fd, token: token, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue | (writable ? EPOLLOUT.rawValue : 0))
    }

    /// Ends the session politely: a GOAWAY (no new streams), then the socket closes.
    func goAway(_ reason: String) {
        guard !closed else { return }
        nghttp2_session_terminate_session(session, 0)
        flush()
        close(reason)
    }

    /// Closes the connection if it is still being opened (a handshake that stalls).
    func closeUnlessOpen(_ reason: String) {
        if connecting { close(reason) }
    }

    /// Closes the socket once and tells the subclass.
    func close(_ reason: String) {
        guard !closed else { return }
        closed = true
        loop.unwatch(fd, token: token)
        if !connecting { transport.shutdown() }
        Glibc.close(fd)
        didClose(reason)
    }
}

/// A body handed to nghttp2 frame by frame without a copy: its read callback (`readOutgoingBody`) only sizes each
/// DATA frame (`NGHTTP2_DATA_FLAG_NO_COPY`), and the session appends the frame's bytes to its output from here.
final class OutgoingBody {
    let bytes: [UInt8]
    /// Bytes in DATA frames nghttp2 prepared.
    private var framed = 0
    /// Bytes appended to the output.
    private var sent = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The next DATA frame's length, up to `length`, with the end-of-data flag once every byte is in a frame.
    fileprivate func frame(length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        let count = min(length, bytes.count - framed)
        framed += count
        flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue
        if framed == bytes.count { flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue }
        return count
    }

    /// The bytes of the payload of the frame prepared next (`length` bytes); nil if there are not that many.
    fileprivate func take(_ length: Int) -> Range<Int>? {
        guard length <= framed - sent else { return nil }
        defer { sent += length }
        return sent..<sent + length
    }
}

/// A session's output between two sends: frame bytes in one buffer, and the payloads of DATA frames as ranges of
/// their bodies, in order. Over h2c the payloads are not copied: one `sendmsg` takes the frame bytes and the bodies'
/// storage as its pieces (a 190 KB model crossed the loop's memory once more per hop before). Through TLS they are
/// copied into the buffer, which goes to `SSL_write` whole.
struct SessionOutput {
    private let copiesPayloads: Bool
    private var frames: [UInt8] = []
    /// The output in order: ranges of `frames`, or of a body's bytes (the body is held until they are sent).
    private var pieces: [(body: OutgoingBody?, range: Range<Int>)] = []
    /// Where the next piece of `frames` starts.
    private var framesStart = 0
    /// Payloads shorter than this are copied all the same: a small copy costs less than one more piece to send.
    static let copiedBelow = 4096
    /// The pieces of one `sendmsg`, kept for their capacity.
    private var vectors: [iovec] = []
    /// The piece being sent and how much of it went.
    private var piece = 0
    private var sentOfPiece = 0
    /// Bytes gathered since the last reset.
    private(set) var count = 0

    init(copiesPayloads: Bool) {
        self.copiesPayloads = copiesPayloads
    }

    /// Whether every gathered byte was sent.
    var isDrained: Bool { piece == pieces.count && framesStart == frames.count }

    /// Forgets what was sent, keeping the buffers' capacity.
    mutating func reset() {
        frames.removeAll(keepingCapacity: true)
        pieces.removeAll(keepingCapacity: true)
        (framesStart, piece, sentOfPiece, count) = (0, 0, 0, 0)
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        frames.append(contentsOf: bytes)
        count += bytes.count
    }

    mutating func append(_ byte: UInt8) {
        frames.append(byte)
        count += 1
    }

    mutating func append(_ bytes: Repeated<UInt8>) {
        frames.append(contentsOf: bytes)
        count += bytes.count
    }

    /// A DATA frame's payload: `range` of `body`'s bytes.
    mutating func append(_ body: OutgoingBody, _ range: Range<Int>) {
        guard !range.isEmpty else { return }
        if copiesPayloads || range.count < Self.copiedBelow {
            body.bytes.withUnsafeBufferPointer { append(UnsafeBufferPointer(rebasing: $0[range])) }
            return
        }
        closeFrames()
        pieces.append((body, range))
        count += range.count
    }

    private mutating func closeFrames() {
        if framesStart < frames.count { pieces.append((nil, framesStart..<frames.count)) }
        framesStart = frames.count
    }

    /// Sends what is left: `contiguous` with one buffer when only frame bytes are left (always, through TLS), else
    /// one `sendmsg` of every piece (h2c); the transport's status.
    mutating func send(contiguous: (UnsafeRawBufferPointer) -> TransportStatus, fd: Int32) -> TransportStatus {
        closeFrames()
        if piece == pieces.count - 1, pieces[piece].body == nil {
            let (range, offset) = (pieces[piece].range, sentOfPiece)
            return frames.withUnsafeBytes {
                contiguous(UnsafeRawBufferPointer(rebasing: $0[range.lowerBound + offset..<range.upperBound]))
            }
        }
        var vectors: [iovec] = []
        swap(&vectors, &self.vectors)
        defer { swap(&vectors, &self.vectors) }
        vectors.removeAll(keepingCapacity: true)
        let (pieces, first, skip) = (self.pieces, piece, sentOfPiece)
        return frames.withUnsafeBytes { frames in
            for index in first..<pieces.count {
                let (body, range) = pieces[index]
                let start = range.lowerBound + (index == first ? skip : 0)
                // An array held unchanged by its body keeps its storage where it is for as long as the body lives.
                let base = body.map { body in body.bytes.withUnsafeBytes { $0.baseAddress! } } ?? frames.baseAddress!
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: base + start),
                                     iov_len: range.upperBound - start))
            }
            return vectors.withUnsafeMutableBufferPointer { Transport.sendPieces(fd, $0) }
        }
    }

    /// `written` more bytes went out.
    mutating func advance(_ written: Int) {
        var left = written
        while left > 0, piece < pieces.count {
            let remaining = pieces[piece].range.count - sentOfPiece
            if left < remaining {
                sentOfPiece += left
                return
            }
            left -= remaining
            pieces[piece].body = nil
            piece += 1
            sentOfPiece = 0
        }
    }
}

/// The read callback of every body a session sends (requests and responses): sizes the next DATA frame of the
/// stream's `OutgoingBody`.
func readOutgoingBody(
    _ session: OpaquePointer?, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ length: Int,
    _ flags: UnsafeMutablePointer<UInt32>?, _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ user: UnsafeMutableRawPointer?
) -> Int {
    guard let user, let flags, let body = Unmanaged<Session>.fromOpaque(user).takeUnretainedValue().outgoingBody(streamID)
    else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
    return body.frame(length: length, flags: flags)
}

private func sendDataFrame(
    _ session: OpaquePointer?, _ frame: UnsafeMutablePointer<nghttp2_frame>?, _ header: UnsafePointer<UInt8>?,
    _ length: Int, _ source: UnsafeMutablePointer<nghttp2_data_source>?, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    guard let user, let frame, let header else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
    return Unmanaged<Session>.fromOpaque(user).takeUnretainedValue().appendDataFrame(frame, header: header, length: length)
}

/// Header fields laid out for nghttp2: names and values in one buffer, `nghttp2_nv`s pointing into it, valid during
/// `withFields` (nghttp2 copies them when a frame is submitted). A session keeps one and refills it for each call or
/// response: the buffers keep their capacity, and numbers are written as digits, so no string is made per field.
struct HeaderFields {
    private var bytes: [UInt8] = []
    private var spans: [(name: Range<Int>, value: Range<Int>)] = []
    private var fields: [nghttp2_nv] = []

    /// Starts a new block.
    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        spans.removeAll(keepingCapacity: true)
    }

    mutating func add(_ name: StaticString, _ value: String) {
        let start = bytes.count
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        let middle = bytes.count
        bytes.append(contentsOf: value.utf8)
        spans.append((start..<middle, middle..<bytes.count))
    }

    /// A field whose value is `number` in decimal.
    mutating func add(_ name: StaticString, number: Int) {
        let start = bytes.count
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        let middle = bytes.count
        var value = max(0, number)
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(value % 10))
            value /= 10
        } while value > 0
        bytes[middle...].reverse()
        spans.append((start..<middle, middle..<bytes.count))
    }

    /// Runs `body` with the fields laid out for nghttp2.
    mutating func withFields<R>(_ body: (UnsafeMutablePointer<nghttp2_nv>, Int) -> R) -> R {
        bytes.append(0)  // never empty, so the buffer has an address
        return bytes.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            fields.removeAll(keepingCapacity: true)
            for span in spans {
                fields.append(nghttp2_nv(name: base + span.name.lowerBound, value: base + span.value.lowerBound,
                                         namelen: span.name.count, valuelen: span.value.count,
                                         flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
            }
            return fields.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        }
    }
}

/// A header field's name or value as a string.
func string(_ pointer: UnsafePointer<UInt8>?, _ length: Int) -> String {
    guard let pointer else { return "" }
    return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
}

/// Whether a received frame ends its stream (HEADERS or DATA with END_STREAM).
func endsStream(_ frame: UnsafePointer<nghttp2_frame>) -> Bool {
    let type = frame.pointee.hd.type
    return (type == UInt8(NGHTTP2_HEADERS.rawValue) || type == UInt8(NGHTTP2_DATA.rawValue))
        && frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
}
