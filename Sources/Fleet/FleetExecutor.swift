import Foundation
internal import System

/// Threads of the fleet's own for its async work: the server's async handlers, the coordinator's deadline and
/// lease checks, the worker's heartbeat loop and the file worker's lease renewals.
///
/// Swift's global executor has one thread per core (two on CI). Code that occupies them for seconds (a synchronous
/// training step, a `waitUntilExit`, a test of another suite) would otherwise hold back every answer and
/// heartbeat of the fleet in that process: the peer's timeout fires, or the lease lapses, while the machine is
/// merely busy. Tasks started with this executor as their preference run here, and so do their continuations;
/// `sleep` wakes on these threads too, not through the global executor's timers.
final class FleetExecutor: TaskExecutor, @unchecked Sendable {
    /// The one instance: a few threads that live as long as the process.
    static let shared = FleetExecutor(threads: 2)

    /// One thread for work off an answer's path (a worker's cache writes, the coordinator's hash checks beside a
    /// push), under Linux's `SCHED_BATCH`: it gets its share of the CPU but never preempts a thread when it wakes.
    /// A normal thread woken from the event loop was put on the loop's core and ran first: traced on a busy
    /// 2-core machine, a worker's cache write held the evaluation's answer back by 400-550 us, and the
    /// coordinator's hash check beside a push held the push back by about 300 us.
    static let background = FleetExecutor(threads: 1, name: "nas-fleet-background", batch: true)

    private struct Timer {
        let due: ContinuousClock.Instant
        let fire: @Sendable () -> Void
    }

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var jobsStart = 0
    private var timers: [Timer] = []
    private let clock = ContinuousClock()
    private var threadIDs: [pthread_t] = []

    private init(threads: Int, name: String = "nas-fleet", batch: Bool = false) {
        for index in 0..<threads {
            let thread = Thread { [self] in
                if batch {
                    // SCHED_BATCH (3) needs no privilege; a kernel without it leaves the thread as it is.
                    var parameters = sched_param(sched_priority: 0)
                    _ = sched_setscheduler(0, 3, &parameters)
                }
                condition.withLock { threadIDs.append(pthread_self()) }
                runLoop()
            }
            thread.name = threads == 1 ? name : "\(name)-\(index)"
            thread.start()
        }
    }

    /// Whether the calling thread is one of the fleet's (synchronous: for tests and preconditions).
    var isCurrentThread: Bool {
        let me = pthread_self()
        return condition.withLock { threadIDs.contains { pthread_equal($0, me) != 0 } }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Runs `fire` on a fleet thread once `milliseconds` have passed.
    func after(milliseconds: Int, _ fire: @escaping @Sendable () -> Void) {
        let timer = Timer(due: clock.now + .milliseconds(max(0, milliseconds)), fire: fire)
        condition.lock()
        let index = timers.firstIndex { $0.due > timer.due } ?? timers.count
        timers.insert(timer, at: index)
        condition.signal()
        condition.unlock()
    }

    /// Suspends the calling task for `milliseconds`, or until it is cancelled; resumes on a fleet thread.
    func sleep(milliseconds: Int) async {
        let once = ResumeOnce()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                once.arm(continuation)
                after(milliseconds: milliseconds) { once.resume() }
            }
        } onCancel: {
            once.resume()
        }
    }

    private func runLoop() {
        let executor = asUnownedTaskExecutor()
        while true {
            condition.lock()
            var due: (@Sendable () -> Void)?
            var job: UnownedJob?
            while true {
                if let first = timers.first, first.due <= clock.now {
                    due = timers.removeFirst().fire
                    break
                }
                if jobsStart < jobs.count {
                    job = jobs[jobsStart]
                    jobsStart += 1
                    if jobsStart == jobs.count {
                        jobs.removeAll(keepingCapacity: true)
                        jobsStart = 0
                    }
                    break
                }
                if let first = timers.first {
                    let left = clock.now.duration(to: first.due)
                    let seconds = Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18
                    _ = condition.wait(until: Date(timeIntervalSinceNow: max(0, seconds)))
                } else {
                    condition.wait()
                }
            }
            condition.unlock()
            due?()
            job?.runSynchronously(on: executor)
        }
    }
}

/// Resumes a continuation once, whichever comes first: the timer, or cancellation (which may come before the
/// continuation exists).
private final class ResumeOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    private var done = false

    func arm(_ continuation: CheckedContinuation<Void, Never>) {
        let resumeNow = lock.withLock {
            if done { return true }
            self.continuation = continuation
            return false
        }
        if resumeNow { continuation.resume() }
    }

    func resume() {
        let continuation: CheckedContinuation<Void, Never>? = lock.withLock {
            done = true
            let continuation = self.continuation
            self.continuation = nil
            return continuation
        }
        continuation?.resume()
    }
}

/// Sleeps `duration` on the fleet's own timer threads, or until the task is cancelled: code outside the module that
/// polls the fleet (a trial waiting for a worker of its type to register) wakes on time however long Swift's
/// cooperative pool is held by blocking work.
public func fleetSleep(for duration: Duration) async {
    await FleetExecutor.shared.sleep(milliseconds: Int((duration.inSeconds * 1000).rounded(.up)))
}
