import Foundation

/// Runs a blocking storage call (a libcurl round trip with its retries, a file-system call) on a thread of its
/// own, so that it never holds one of the few threads of Swift concurrency's cooperative pool: the lease
/// renewals beside a measurement, and whatever else the process runs (the push fleet), keep their threads.
@discardableResult
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
