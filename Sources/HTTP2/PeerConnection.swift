/// A client's connection to one peer (`host:port`), as a value: it takes the calls made to the peer and what
/// happens to the connection, and returns what the client must do. The rules it keeps:
///
/// - the connection is opened once, by the first call, and shared by every call after it (each a stream);
/// - calls made while it is being opened wait, and go out together once it is open;
/// - when it cannot be opened, or drops, every call waiting or in flight on it fails (fan-out) and the next
///   call opens a new one;
/// - each call has a deadline: a call past it fails as timed out, and one already sent has its stream reset.
///
/// Time is an input (`now`), so the rules are tested without sockets or sleeps.
public struct PeerConnection: Sendable {
    public typealias Instant = ContinuousClock.Instant

    /// What the client does after an event.
    public enum Action: Sendable, Equatable {
        /// Open the connection to the peer.
        case connect
        /// Send the call on the open connection.
        case submit(call: UInt64)
        /// Reset the call's stream (it was sent); a `fail` for it follows.
        case cancel(call: UInt64)
        /// The call ended with this error: deliver it.
        case fail(call: UInt64, HTTP2Error)
    }

    public enum Phase: Sendable, Equatable {
        /// No connection: the next call opens one.
        case idle
        /// Being opened: calls wait.
        case connecting
        /// Open: calls go out at once.
        case open
    }

    /// `host:port`, for messages.
    public let authority: String
    /// Where the connection is.
    public private(set) var phase = Phase.idle
    /// Calls waiting for the connection, oldest first.
    private var waiting: [UInt64] = []
    /// Calls sent on the open connection.
    private var sent: Set<UInt64> = []
    /// Every call not yet ended, waiting or sent, with its deadline.
    private var deadlines: [UInt64: Instant] = [:]
    /// No call's deadline is before this; nil when there is no call. It may be earlier than the earliest left
    /// (calls that ended are not searched again), which only makes `expire` run once for nothing.
    public private(set) var earliestDeadline: Instant?

    /// The connection to `authority`, not yet opened.
    public init(authority: String) {
        self.authority = authority
    }

    /// Calls not yet ended.
    public var openCalls: Int { deadlines.count }

    /// A new call with its deadline: at most one action (one array per call would cost an allocation).
    public mutating func call(_ id: UInt64, deadline: Instant, now: Instant) -> Action? {
        guard deadline > now else { return .fail(call: id, HTTP2Error(.timedOut, "no answer in time")) }
        deadlines[id] = deadline
        if earliestDeadline.map({ deadline < $0 }) ?? true { earliestDeadline = deadline }
        switch phase {
        case .idle:
            phase = .connecting
            waiting.append(id)
            return .connect
        case .connecting:
            waiting.append(id)
            return nil
        case .open:
            sent.insert(id)
            return .submit(call: id)
        }
    }

    /// The connection is open: the waiting calls go out.
    public mutating func connected() -> [Action] {
        guard phase == .connecting else { return [] }
        phase = .open
        let ready = waiting
        waiting = []
        sent.formUnion(ready)
        return ready.map { .submit(call: $0) }
    }

    /// The connection could not be opened (`reason`): every waiting call fails, as `kind` says
    /// (`.invalidConfiguration` when the TLS handshake was refused, so that callers do not retry it).
    public mutating func connectFailed(_ reason: String, kind: HTTP2Error.Kind = .transport) -> [Action] {
        guard phase == .connecting else { return [] }
        return failEverything(HTTP2Error(kind, "cannot connect to \(authority): \(reason)"))
    }

    /// The open connection ended (`reason`): every call on it or waiting fails.
    public mutating func connectionLost(_ reason: String) -> [Action] {
        guard phase != .idle else { return [] }
        return failEverything(HTTP2Error(.transport, "the connection to \(authority) was lost: \(reason)"))
    }

    /// The call's answer (or failure) came from its stream: it is no longer open.
    public mutating func ended(_ id: UInt64) {
        guard deadlines.removeValue(forKey: id) != nil else { return }
        sent.remove(id)
        if deadlines.isEmpty { earliestDeadline = nil }
    }

    /// Whether the call is still open (a late answer for a call that timed out is dropped).
    public func isOpen(_ id: UInt64) -> Bool { deadlines[id] != nil }

    /// The calls whose deadline passed fail as timed out; the ones already sent are reset.
    public mutating func expire(now: Instant) -> [Action] {
        guard let earliest = earliestDeadline, earliest <= now else { return [] }
        var actions: [Action] = []
        var next: Instant?
        for (id, deadline) in deadlines {
            if deadline <= now {
                if sent.remove(id) != nil { actions.append(.cancel(call: id)) }
                actions.append(.fail(call: id, HTTP2Error(.timedOut, "no answer in time")))
            } else if next.map({ deadline < $0 }) ?? true {
                next = deadline
            }
        }
        for case .fail(let id, _) in actions {
            deadlines[id] = nil
            waiting.removeAll { $0 == id }
        }
        earliestDeadline = next
        return actions
    }

    /// The client shuts down: every call fails.
    public mutating func shutDown(_ reason: String) -> [Action] {
        failEverything(HTTP2Error(.transport, reason))
    }

    private mutating func failEverything(_ error: HTTP2Error) -> [Action] {
        let failed = waiting + sent.sorted()
        phase = .idle
        waiting = []
        sent = []
        deadlines = [:]
        earliestDeadline = nil
        return failed.map { .fail(call: $0, error) }
    }
}
