/// One request stream on a server, as a value: it takes the stream's events (header fields, the end of the
/// headers, body chunks, END_STREAM) and returns what the session must do. The rules it keeps:
///
/// - a request is answered only once the client ended it (END_STREAM): answering earlier makes nghttp2 reset a
///   stream the client is still sending on, and clients such as libcurl then report a send failure instead of
///   the answer;
/// - except a body over the limit (declared by `content-length` or found while it arrives), which is answered
///   with 413 at once, since waiting for its end would take it all in;
/// - so is a body the server has no room for (its bodies in total are capped), with 503;
/// - a refused request's body is dropped as it arrives, never buffered.
public struct ServerStream: Sendable {
    /// What the session does after an event.
    public enum Action: Sendable, Equatable {
        /// Nothing yet.
        case none
        /// Answer now with the refusal.
        case reject(HTTP2Rejection)
        /// The request is whole: hand it to the handler.
        case dispatch(HTTP2Request)
    }

    public enum State: Sendable, Equatable {
        /// Header fields arrive.
        case headers
        /// The request was accepted; its body arrives.
        case body
        /// Refused: its body is dropped; answered once the client ends it (or already, when `answered`).
        case refused(HTTP2Rejection, answered: Bool)
        /// Handed to the handler (or answered): nothing more to do.
        case done
    }

    /// Where the stream is.
    public private(set) var state = State.headers
    private var method = ""
    private var path = ""
    private var authorization: String?
    private var contentLength: Int?
    private var body: [UInt8] = []
    private let maxBodyBytes: Int

    /// A new request stream whose body may hold up to `maxBodyBytes`.
    public init(maxBodyBytes: Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    /// Whether a header field's name is one `header` keeps (`:method`, `:path`, `authorization`,
    /// `content-length`), checked on the bytes before any string is made.
    public static func keeps(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        switch name.count {
        case 5: name[0] == UInt8(ascii: ":") && name[1] == UInt8(ascii: "p")
        case 7: name[0] == UInt8(ascii: ":") && name[1] == UInt8(ascii: "m")
        case 13: name[0] == UInt8(ascii: "a")
        case 14: name[0] == UInt8(ascii: "c") && name[8] == UInt8(ascii: "l")
        default: false
        }
    }

    /// One header field; the ones a request needs are kept.
    public mutating func header(name: String, value: String) {
        guard state == .headers else { return }
        switch name {
        case ":method": method = value
        case ":path": path = value
        case "authorization": authorization = value
        case "content-length": contentLength = Int(value)
        default: break
        }
    }

    /// The headers ended: the gate decides whether the request may go on.
    public mutating func headersEnded(gate: RequestGate) -> Action {
        guard state == .headers else { return .none }
        if let refusal = gate.check(method: method, path: path, authorization: authorization) {
            state = .refused(refusal, answered: false)
            return .none
        }
        if let contentLength, contentLength > maxBodyBytes {
            state = .refused(.tooLarge(limit: maxBodyBytes), answered: true)
            return .reject(.tooLarge(limit: maxBodyBytes))
        }
        state = .body
        return .none
    }

    /// The most a body's declared length reserves before its bytes arrive.
    static let reservedBodyBytes = 4 << 20

    /// A chunk of the body; `room` is what the server may still hold of bodies, over all its streams.
    public mutating func data(_ chunk: UnsafeBufferPointer<UInt8>, room: Int = .max) -> Action {
        guard state == .body else { return .none }
        let refusal: HTTP2Rejection
        if body.count + chunk.count > maxBodyBytes {
            refusal = .tooLarge(limit: maxBodyBytes)
        } else if chunk.count > room {
            refusal = .overloaded
        } else {
            // Room for the declared length at the first chunk, so a large body is not copied as it grows; a length
            // declared and never sent holds at most `reservedBodyBytes` of address space (the limits count bytes
            // as they arrive).
            if body.isEmpty, let contentLength, contentLength > 0 {
                body.reserveCapacity(min(contentLength, Self.reservedBodyBytes))
            }
            body.append(contentsOf: chunk)
            return .none
        }
        body = []
        state = .refused(refusal, answered: true)
        return .reject(refusal)
    }

    /// A chunk of the body, from an array (tests).
    public mutating func data(_ chunk: [UInt8], room: Int = .max) -> Action {
        chunk.withUnsafeBufferPointer { data($0, room: room) }
    }

    /// The client ended the request (END_STREAM).
    public mutating func ended() -> Action {
        switch state {
        case .headers, .done:
            return .none
        case .refused(let refusal, let answered):
            state = .done
            return answered ? .none : .reject(refusal)
        case .body:
            state = .done
            let request = HTTP2Request(path: path, body: body)
            body = []
            return .dispatch(request)
        }
    }
}
