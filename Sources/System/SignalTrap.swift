internal import CSystem
import Glibc
import Synchronization

/// Traps signals (SIGINT and SIGTERM by default) instead of dying on them: the one way the package handles them.
///
/// A C handler writes each signal's number to a pipe; one thread of the system layer's own reads it and counts,
/// wakes the tasks awaiting a count and calls the trap's callback. So nothing runs in the signal handler but a
/// write, nothing depends on Dispatch's global queue or Swift's cooperative pool, and the signals reach the
/// process even where a parent left them blocked in the spawning thread (that thread unblocks them).
///
/// Several traps may be active at once, each counting from its creation; `release()` (or the trap's end)
/// restores a signal's default action once no trap holds it.
public final class SignalTrap: Sendable {
    /// The signals this trap counts.
    public let signals: [Int32]
    private let callback: (@Sendable (_ signal: Int32, _ count: Int) -> Void)?
    private struct State {
        var count = 0
        var released = false
        var nextWaiter = 0
        var waiters: [Int: (count: Int, continuation: CheckedContinuation<Void, Never>)] = [:]
    }
    private let state = Mutex(State())

    /// Traps `signals`. `onSignal`, if given, runs for each one on the trap's thread, with the signal and the
    /// number received so far (1 for the first): keep it short, it delays the signals that follow.
    public init(
        _ signals: [Int32] = [Glibc.SIGINT, Glibc.SIGTERM],
        onSignal: (@Sendable (_ signal: Int32, _ count: Int) -> Void)? = nil
    ) throws(SystemError) {
        self.signals = signals
        self.callback = onSignal
        try SignalHub.shared.add(self)
    }

    deinit {
        SignalHub.shared.remove(ObjectIdentifier(self), signals: signals)
    }

    /// How many of the signals arrived since the trap was made.
    public var count: Int { state.withLock { $0.count } }

    /// Returns once `count` has reached `target` (at once if it has), or the trap is released, or the task is
    /// cancelled.
    public func wait(untilCount target: Int = 1) async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state in
                    if state.count >= target || state.released || Task.isCancelled { return true }
                    state.waiters[id] = (target, continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    /// Stops trapping: a signal no other trap holds gets its default action back, and waiting tasks return.
    public func release() {
        let waiters = state.withLock { state in
            state.released = true
            defer { state.waiters = [:] }
            return state.waiters.values.map(\.continuation)
        }
        waiters.forEach { $0.resume() }
        SignalHub.shared.remove(ObjectIdentifier(self), signals: signals)
    }

    /// Ignores `signal` for the whole process: SIGPIPE, so that a write to a closed socket or pipe fails with EPIPE
    /// instead of ending it. Children still start with the default action.
    public static func ignore(_ signal: Int32) {
        _ = nas_signal_ignore(signal)
    }

    /// Counts one signal; called on the hub's thread.
    fileprivate func deliver(_ number: Int32) {
        let (count, ready) = state.withLock { state -> (Int, [CheckedContinuation<Void, Never>]) in
            guard !state.released else { return (state.count, []) }
            state.count += 1
            let ready = state.waiters.filter { $0.value.count <= state.count }
            for id in ready.keys { state.waiters[id] = nil }
            return (state.count, ready.values.map(\.continuation))
        }
        ready.forEach { $0.resume() }
        callback?(number, count)
    }
}

/// The process's one signal pipe, its reading thread and the traps it serves.
private final class SignalHub: Sendable {
    static let shared = SignalHub()

    private let readFD: Int32
    private let writeFD: Int32
    private struct Entry {
        weak var trap: SignalTrap?
        let signals: [Int32]
    }
    private let traps = Mutex<[ObjectIdentifier: Entry]>([:])

    private init() {
        var descriptors: [Int32] = [-1, -1]
        // Without its pipe the process cannot trap signals at all, and every caller would have to check for that.
        precondition(nas_pipe_cloexec(&descriptors) == 0, "\(SystemError("create the signal pipe"))")
        readFD = descriptors[0]
        writeFD = descriptors[1]
        // The handler must never block: a full pipe drops the byte.
        _ = nas_set_nonblocking(writeFD)
        let readFD = readFD
        startThread { [self] in
            // This thread takes any trapped signal, whatever mask the other threads inherited.
            _ = nas_signal_unblock_all()
            var byte: UInt8 = 0
            while true {
                let count = read(readFD, &byte, 1)
                if count < 0 && errno == EINTR { continue }
                guard count == 1 else { return }
                dispatch(Int32(byte))
            }
        }
    }

    func add(_ trap: SignalTrap) throws(SystemError) {
        try traps.withLock { traps throws(SystemError) in
            traps[ObjectIdentifier(trap)] = Entry(trap: trap, signals: trap.signals)
            for number in trap.signals where nas_signal_trap(number, writeFD) != 0 {
                let error = SystemError("trap signal \(number)")
                traps[ObjectIdentifier(trap)] = nil
                // Signals no other trap holds get their default action back.
                let held = Set(traps.values.flatMap(\.signals))
                for number in trap.signals where !held.contains(number) { _ = nas_signal_default(number) }
                throw error
            }
        }
    }

    func remove(_ id: ObjectIdentifier, signals: [Int32]) {
        traps.withLock { traps in
            guard traps.removeValue(forKey: id) != nil else { return }
            let held = Set(traps.values.flatMap(\.signals))
            for number in signals where !held.contains(number) { _ = nas_signal_default(number) }
        }
    }

    private func dispatch(_ number: Int32) {
        let receivers = traps.withLock { traps in
            traps.values.filter { $0.signals.contains(number) }.compactMap(\.trap)
        }
        receivers.forEach { $0.deliver(number) }
    }
}
