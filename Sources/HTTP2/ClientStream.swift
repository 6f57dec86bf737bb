/// One call's answer on a client, as a value: the status, the body as it arrives (up to a cap) and whether the
/// server ended it, then the call's result when the stream closes. The rule it keeps: a server may refuse a call
/// (413) before the whole request body is sent and then reset the stream; an answer that ended, or a 4xx/5xx
/// with its error body, is delivered as the answer rather than as the reset.
public struct ClientStream: Sendable {
    /// What the session does after a body chunk.
    public enum Action: Sendable, Equatable {
        /// Keep reading.
        case none
        /// The answer is over the cap: reset the stream, the call failed with this error.
        case cancel(HTTP2Error)
    }

    private let maxResponseBytes: Int
    private var status = 0
    private var body: [UInt8] = []
    private var ended = false
    private var cancelled = false

    /// The answer to a call, of at most `maxResponseBytes`. Its errors do not name the call: the client does.
    public init(maxResponseBytes: Int) {
        self.maxResponseBytes = maxResponseBytes
    }

    /// A response header field; only `:status` matters.
    public mutating func header(name: String, value: String) {
        if name == ":status" { status = Int(value) ?? 0 }
    }

    /// A chunk of the response body.
    public mutating func data(_ chunk: UnsafeBufferPointer<UInt8>) -> Action {
        guard !cancelled else { return .none }
        if body.count + chunk.count > maxResponseBytes {
            cancelled = true
            body = []
            return .cancel(HTTP2Error(.transport, "the answer is over \(maxResponseBytes) bytes"))
        }
        body.append(contentsOf: chunk)
        return .none
    }

    /// A chunk of the response body, from an array (tests).
    public mutating func data(_ chunk: [UInt8]) -> Action {
        chunk.withUnsafeBufferPointer { data($0) }
    }

    /// The server ended its answer (END_STREAM).
    public mutating func responseEnded() {
        ended = true
    }

    /// The call's result once the stream closed; `reason` names the reset's error code when the answer is lost.
    public func closed(reason: String) -> Result<HTTP2Response, HTTP2Error> {
        if !cancelled, status > 0, ended || status >= 400 && !body.isEmpty {
            return .success(HTTP2Response(status: status, body: body))
        }
        return .failure(HTTP2Error(.transport, "the stream was reset (\(reason))"))
    }
}
