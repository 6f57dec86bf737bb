// The package's system layer: the one owner of what talks to the Linux kernel about processes and signals.
//
// - `SystemError`: every failed system call, made from errno with the operation and the path;
// - `Subprocess`: spawning a program (posix_spawn), its descriptors, its process group, waiting for it and
//   signalling it; `ParentWatch`: a child ending itself when the process that spawned it dies;
// - `SignalTrap`: the one way SIGINT/SIGTERM (or any catchable signal) are trapped, counted and awaited.
//
// The C side (Sources/CSystem) also holds the epoll, eventfd and socket shims the HTTP/2 loops call directly.
// Nothing here blocks Swift's cooperative thread pool: what waits does so on a thread of its own.
internal import CSystem
import Glibc

/// Starts `body` on a new detached thread: waits that block in the kernel (waitpid, poll, read) happen there and
/// never on Swift's cooperative pool.
func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(
        &thread, nil,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
    // A process that cannot start one more thread is out of resources, and waiting is impossible without one.
    precondition(status == 0, "pthread_create failed: \(String(cString: strerror(status)))")
    pthread_detach(thread)
}

/// Runs the blocking `body` on a thread of its own and returns its result to the awaiting task.
func onThreadOfItsOwn<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        startThread { continuation.resume(returning: body()) }
    }
}

/// Milliseconds left until `deadline`, rounded up, for poll(2); 0 once it has passed.
func millisecondsUntil(_ deadline: ContinuousClock.Instant) -> Int32 {
    let left = ContinuousClock.now.duration(to: deadline)
    guard left > .zero else { return 0 }
    let (seconds, attoseconds) = left.components
    let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(clamping: milliseconds)
}

extension Duration {
    /// The duration in seconds, for APIs that count time in floating-point seconds (Foundation, file formats).
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
