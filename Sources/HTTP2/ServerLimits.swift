/// What peers can hold of a server: connections, time and request-body memory. The defaults suit a fleet of
/// hundreds of workers and callers on one coordinator; each limit answers a way one peer, or many, could otherwise
/// hold the server's descriptors or memory for as long as they like.
public struct ServerLimits: Sendable, Equatable {
    /// Open connections at most (default 512); one more is closed as soon as it is accepted.
    public var maxConnections = 512
    /// From accept until the client's preface and first frame (its SETTINGS) arrived (default 10 s).
    public var handshakeTimeout: Duration = .seconds(10)
    /// From a request's first HEADERS frame until its header block is whole (default 10 s): a peer trickling its
    /// headers a byte at a time is cut off.
    public var headerTimeout: Duration = .seconds(10)
    /// From a request's first HEADERS frame until the client ended it (default 300 s): a body trickled in forever
    /// is cut off too.
    public var requestTimeout: Duration = .seconds(300)
    /// How long a connection may stay with no request arriving and none waiting for its answer (default 120 s);
    /// then it is closed with GOAWAY. Frames outside requests (PING, SETTINGS) do not keep it open.
    public var idleTimeout: Duration = .seconds(120)
    /// Request bodies held at once over all connections (default 256 MiB), from their first byte until their
    /// answer went out; a request that would go over is refused with 503 at once and its body dropped.
    public var maxBufferedBodyBytes = 256 << 20
    /// The first pause of accepting after the process ran out of descriptors (default 100 ms), doubling up to 1 s
    /// while it lasts, instead of a loop spinning on a listener that stays readable.
    public var acceptBackoff: Duration = .milliseconds(100)

    /// The defaults.
    public init() {}
}

/// A server connection's deadlines as a value: what arrived when, and whether the connection is overdue. Time is
/// an input, so the rules are tested without sockets or sleeps; the server asks `overdue(now:)` on a timer of its
/// event loop.
public struct ConnectionDeadlines: Sendable {
    public typealias Instant = ContinuousClock.Instant

    private let limits: ServerLimits
    private let opened: Instant
    private var handshaken = false
    /// The last request event (headers, body, end, answer).
    private var lastActivity: Instant
    /// Requests not yet whole: when their headers began, and whether the header block is whole.
    private var arriving: [Int32: (began: Instant, headersDone: Bool)] = [:]
    /// Requests whole and not yet answered (the handler has them), or being answered.
    private var waiting: Set<Int32> = []

    /// A connection accepted at `now`.
    public init(limits: ServerLimits, now: Instant) {
        self.limits = limits
        opened = now
        lastActivity = now
    }

    /// A whole frame arrived: the first one ends the handshake.
    public mutating func frameReceived() {
        handshaken = true
    }

    /// A request's HEADERS frame began.
    public mutating func requestBegan(_ id: Int32, now: Instant) {
        arriving[id] = (now, false)
        lastActivity = now
    }

    /// The request's header block is whole.
    public mutating func headersEnded(_ id: Int32, now: Instant) {
        arriving[id]?.headersDone = true
        lastActivity = now
    }

    /// Some of a request's body arrived.
    public mutating func bodyArrived(now: Instant) {
        lastActivity = now
    }

    /// The client ended the request (END_STREAM): it waits for its answer.
    public mutating func requestEnded(_ id: Int32, now: Instant) {
        guard arriving.removeValue(forKey: id) != nil else { return }
        waiting.insert(id)
        lastActivity = now
    }

    /// The stream closed: its answer went out, or it was reset.
    public mutating func streamClosed(_ id: Int32, now: Instant) {
        arriving[id] = nil
        waiting.remove(id)
        lastActivity = now
    }

    /// Why the connection should be closed now, or nil.
    public func overdue(now: Instant) -> Overdue? {
        if !handshaken && now - opened >= limits.handshakeTimeout {
            return .handshake("no HTTP/2 preface and SETTINGS within \(limits.handshakeTimeout) of connecting")
        }
        for request in arriving.values {
            if !request.headersDone && now - request.began >= limits.headerTimeout {
                return .slow("a request's headers took longer than \(limits.headerTimeout)")
            }
            if now - request.began >= limits.requestTimeout {
                return .slow("a request took longer than \(limits.requestTimeout) to arrive")
            }
        }
        if arriving.isEmpty && waiting.isEmpty && now - lastActivity >= limits.idleTimeout {
            return .idle("no request for \(limits.idleTimeout)")
        }
        return nil
    }

    /// Why a connection is closed.
    public enum Overdue: Sendable, Equatable {
        /// The client did not complete the handshake.
        case handshake(String)
        /// A request arrives too slowly.
        case slow(String)
        /// Nothing happened for the idle timeout: closed politely, with GOAWAY.
        case idle(String)
    }
}
