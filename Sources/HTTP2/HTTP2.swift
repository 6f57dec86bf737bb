// The HTTP/2 transport of the fleet (module `HTTP2`).
//
// It owns one event loop thread per process (`EventLoop`: epoll and an eventfd, not Swift's cooperative pool and
// not Dispatch) on which every socket of the fleet lives: the servers' listening sockets and accepted connections
// and the clients' dialled ones, each an nghttp2 session, over TLS with ALPN `h2` (`TLSContext`, OpenSSL driven
// non-blocking by the same loop through `Transport`) or as h2c with prior knowledge. The protocol rules are value
// types that take events and return actions, tested without sockets: `ServerStream` (one request: headers, body
// cap, answer only after END_STREAM except an early 413), `ClientStream` (one call's answer, a 4xx followed by a
// reset still counts), `PeerConnection` (open once and share, calls pending while connecting, failure fan-out,
// deadlines), `ConnectionDeadlines` (a server connection's handshake, header, request and idle timeouts, checked
// on a timer of the loop; `ServerLimits` also caps connections and the request bodies a server holds). The
// nghttp2 callbacks in `ServerSession` and `ClientSession` only translate events into those inputs and carry out
// what they return. Routing and token checks live in `RequestGate`; messages, errors and their
// encoding are the wire's business (module `FleetWire`), not this module's.

/// One request a server received whole.
public struct HTTP2Request: Sendable, Equatable {
    /// The `:path`, e.g. `/nas.fleet.Coordinator/Register`.
    public let path: String
    /// The request body.
    public let body: [UInt8]

    /// A request for `path` with `body`.
    public init(path: String, body: [UInt8]) {
        self.path = path
        self.body = body
    }
}

/// One response: a status and a body.
public struct HTTP2Response: Sendable, Equatable {
    /// The HTTP status.
    public var status: Int
    /// The body, sent with the configured content type.
    public var body: [UInt8]

    /// A response with `status` and `body`.
    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }
}

/// Why the transport could not deliver a call's answer.
public struct HTTP2Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kinds of failure a caller tells apart.
    public enum Kind: Sendable, Equatable {
        /// The connection could not be opened, or it or the stream ended without an answer.
        case transport
        /// No answer came before the call's deadline.
        case timedOut
        /// The address is not `https://host:port/path` or `http://host:port/path`.
        case invalidAddress
        /// A setting cannot be used: a TLS certificate, key or CA file that cannot be read or does not fit, or a
        /// TLS handshake the peer and this side could not agree on (its certificate not signed by the CA, no ALPN
        /// h2, a client certificate required): calling again does not help.
        case invalidConfiguration
    }

    /// What kind of failure.
    public let kind: Kind
    /// What failed, in words a user can act on.
    public let message: String

    /// A failure of `kind`, explained by `message`.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// Why a server refused a request before its handler saw it.
public enum HTTP2Rejection: Sendable, Equatable {
    /// No `authorization: Bearer <token>` with the server's token.
    case unauthenticated
    /// No route at this path.
    case notFound(path: String)
    /// Not a POST.
    case methodNotAllowed(method: String, path: String)
    /// The body is over the limit.
    case tooLarge(limit: Int)
    /// The server holds as many request bodies as it may (`ServerLimits.maxBufferedBodyBytes`): retry later.
    case overloaded
}
