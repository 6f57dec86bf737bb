import Foundation

/// Runs each job on a new thread of its own: a test's long synchronous work (a training, a fuzz loop) under
/// `TestSupport.onOwnThread` holds no thread of Swift's cooperative pool, which has one thread per core. Two such
/// tests on a 2-core machine would otherwise hold the whole pool, and every other test's task (a wait for a
/// process, a poll) would stall behind them for minutes, past its deadlines.
final class OwnThreadExecutor: TaskExecutor {
    static let shared = OwnThreadExecutor()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        Thread.detachNewThread { job.runSynchronously(on: executor) }
    }
}

extension TestSupport {
    /// Runs `body` in the calling task (its test, its `#expect`s) on a thread of its own, not on the pool.
    public static func onOwnThread<T>(_ body: () throws -> T) async throws -> T {
        try await withTaskExecutorPreference(OwnThreadExecutor.shared) { try body() }
    }
}
