import Foundation

/// The time a job loop reads and waits on: the system's monotonic clock, or a test's manual one.
public protocol JobClock: AnyObject {
    /// Time since an arbitrary origin that never goes back.
    func now() -> Duration
    /// Blocks the calling thread (the job loop's own, never the cooperative pool's) for `duration`.
    func sleep(for duration: Duration)
}

/// The monotonic clock of the system; `sleep` is `nanosleep`, so the loop's thread, not a pool's, waits.
public final class SystemJobClock: JobClock {
    private let origin = ContinuousClock.now

    /// The system's clock.
    public init() {}

    public func now() -> Duration { ContinuousClock.now - origin }

    public func sleep(for duration: Duration) {
        let (seconds, attoseconds) = duration.components
        guard seconds > 0 || attoseconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
