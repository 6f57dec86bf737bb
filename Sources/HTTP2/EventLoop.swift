import Foundation
internal import CNghttp2
internal import CSystem

/// Something the loop watches: a socket, told when it is ready.
protocol EventLoopSource: AnyObject {
    /// Called on the loop with epoll's event bits.
    func ready(_ events: UInt32)
}

/// Something with output to send once the current turn of the loop is over: answers and calls made during one
/// turn go out together, one `send` per connection.
protocol EventLoopFlushable: AnyObject {
    /// True while queued for the end of the turn (kept by the loop).
    var queuedForFlush: Bool { get set }
    func flush()
}

/// The process's one I/O thread: an epoll loop with an eventfd to be woken from other threads. Every socket of
/// the HTTP/2 servers and clients lives here, so a call crosses no thread from the request that caused it to its
/// answer; timers (call deadlines, the coordinator's ticks) fire here too, not on Swift's cooperative pool.
///
/// It is also a `TaskExecutor`, as NIO's event loops are: a task that prefers it
/// (`withTaskExecutorPreference(loop) { ... }`, `Task(executorPreference: loop)`) runs on the loop thread, so its
/// calls of an `HTTP2Client` on this loop start at once, with no wake-up of the loop, and it resumes in the same
/// turn of the loop that read the answer, with no hop back to Swift's cooperative pool. Only code that does little
/// between its awaits may do that: whatever it runs holds up every socket and timer of the loop.
public final class EventLoop: TaskExecutor, @unchecked Sendable {
    /// The process's loop, started on first use.
    public static let shared = EventLoop(name: "nas-http2")

    public typealias Instant = ContinuousClock.Instant

    /// Work for the loop: a closure, or a task's job that prefers this executor.
    private enum Job {
        case closure(() -> Void)
        case task(UnownedJob)
    }

    private let lock = NSLock()
    private var jobs: [Job] = []
    private var epollFD: Int32
    private var wakeFD: Int32
    private var thread: pthread_t?
    private let clock = ContinuousClock()
    // Touched by the loop thread only.
    private var sources: [UInt64: EventLoopSource] = [:]
    private var nextToken: UInt64 = 1
    private var flushQueue: [EventLoopFlushable] = []
    /// Jobs queued on the loop thread itself, run later in the same turn (after the callbacks that queued them).
    private var turnJobs: [Job] = []
    private var timers = TimerQueue()
    private static let wakeToken: UInt64 = 0
    /// One read buffer for every connection of this loop: it reads one socket at a time.
    let readBuffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 65536)

    /// A loop of its own on a new thread named `name`, for a part that stands for a process of its own (a
    /// benchmark's in-process workers); everything else shares `shared`.
    public init(name: String) {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(epollFD >= 0 && wakeFD >= 0, "epoll_create1/eventfd failed: errno \(nas_errno())")
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, EPOLLIN.rawValue, Self.wakeToken)
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            // OpenSSL writes to sockets without MSG_NOSIGNAL: a peer gone mid-write must make that write fail with
            // EPIPE on this thread, not kill the process with SIGPIPE.
            var pipe = sigset_t()
            sigemptyset(&pipe)
            sigaddset(&pipe, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipe, nil)
            self.thread = pthread_self()
            started.signal()
            run()
        }
        thread.name = name
        thread.start()
        started.wait()
    }

    /// The current time on the loop's clock.
    public var now: Instant { clock.now }

    /// Whether the caller runs on the loop's thread.
    public var inLoop: Bool {
        guard let thread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    /// Runs `job` on the loop: at once when called there, else at its next turn.
    public func execute(_ job: @escaping @Sendable () -> Void) {
        if inLoop {
            job()
        } else {
            enqueue(job)
        }
    }

    /// Runs `job` on the loop at its next turn, or, when called there, later in the current turn (after the
    /// current callbacks returned, before the turn's output is flushed).
    func enqueue(_ job: @escaping () -> Void) {
        enqueue(job: .closure(job))
    }

    /// Runs a task's job on the loop thread: a task that prefers this executor, resumed from anywhere. Resumed on
    /// the loop (by an answer the loop just read), it runs in the same turn.
    public func enqueue(_ job: consuming ExecutorJob) {
        enqueue(job: .task(UnownedJob(job)))
    }

    private func enqueue(job: Job) {
        if inLoop {
            turnJobs.append(job)
            return
        }
        // One eventfd write per batch: the loop takes every queued job when it wakes.
        let first = lock.withLock {
            jobs.append(job)
            return jobs.count == 1
        }
        if first {
            var one: UInt64 = 1
            _ = withUnsafeBytes(of: &one) { write(wakeFD, $0.baseAddress, 8) }
        }
    }

    /// Runs `job` on the loop and waits for it; runs it directly when called on the loop.
    public func sync<T>(_ job: @escaping () -> T) -> T {
        if inLoop { return job() }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: T?
        nonisolated(unsafe) let job = job
        enqueue {
            result = job()
            done.signal()
        }
        done.wait()
        return result!
    }

    // MARK: On the loop

    /// Watches `fd` for `events`; returns the token to change or end the watch.
    func watch(_ fd: Int32, events: UInt32, source: EventLoopSource) -> UInt64 {
        let token = nextToken
        nextToken += 1
        sources[token] = source
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, events, token)
        return token
    }

    func change(_ fd: Int32, token: UInt64, events: UInt32) {
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, events, token)
    }

    /// Stops watching; call before closing `fd`.
    func unwatch(_ fd: Int32, token: UInt64) {
        sources[token] = nil
        _ = nas_epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Flushes `item` at the end of this turn.
    func flushLater(_ item: EventLoopFlushable) {
        guard !item.queuedForFlush else { return }
        item.queuedForFlush = true
        flushQueue.append(item)
    }

    /// Runs `fire` on the loop at `deadline` (or at the first turn after it); returns an id to cancel it.
    @discardableResult
    func schedule(at deadline: Instant, _ fire: @escaping () -> Void) -> UInt64 {
        timers.add(deadline, fire)
    }

    func cancelTimer(_ id: UInt64) {
        timers.cancel(id)
    }

    /// Runs `fire` on the loop after `delay`, from any thread.
    public func after(_ delay: Duration, _ fire: @escaping @Sendable () -> Void) {
        let deadline = now + delay
        execute { [self] in schedule(at: deadline, fire) }
    }

    private func run() {
        let executor = asUnownedTaskExecutor()
        var events = [UInt32](repeating: 0, count: 64)
        var tokens = [UInt64](repeating: 0, count: 64)
        while true {
            var wait: Int32 = -1
            if !turnJobs.isEmpty {
                wait = 0
            } else if let next = timers.next {
                let left = clock.now.duration(to: next)
                wait = left <= .zero ? 0 : Int32(min(60_000, left.components.seconds * 1000
                    + left.components.attoseconds / 1_000_000_000_000_000 + 1))
            }
            let count = nas_epoll_wait(epollFD, &events, &tokens, 64, wait)
            if count < 0 && nas_errno() != EINTR { fatalError("epoll_wait failed: errno \(nas_errno())") }
            for index in 0..<max(0, Int(count)) {
                if tokens[index] == Self.wakeToken {
                    runJobs(executor)
                } else {
                    sources[tokens[index]]?.ready(events[index])
                }
            }
            for fire in timers.due(now: clock.now) { fire() }
            runTurnJobs(executor)
            flushQueued()
        }
    }

    private func run(_ job: Job, _ executor: UnownedTaskExecutor) {
        switch job {
        case .closure(let closure): closure()
        case .task(let task): task.runSynchronously(on: executor)
        }
    }

    /// Runs the jobs queued on the loop during this turn, and those they queue, for a few rounds: a task that
    /// yields on the loop again and again must not keep epoll from being asked (what is left runs next turn).
    private func runTurnJobs(_ executor: UnownedTaskExecutor) {
        for _ in 0..<16 where !turnJobs.isEmpty {
            let batch = turnJobs
            turnJobs.removeAll(keepingCapacity: true)
            for job in batch { run(job, executor) }
        }
    }

    private func runJobs(_ executor: UnownedTaskExecutor) {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { read(wakeFD, $0.baseAddress, 8) }
        let batch = lock.withLock {
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            return batch
        }
        for job in batch { run(job, executor) }
    }

    private func flushQueued() {
        while !flushQueue.isEmpty {
            let batch = flushQueue
            flushQueue.removeAll(keepingCapacity: true)
            for item in batch {
                item.queuedForFlush = false
                item.flush()
            }
        }
    }
}

/// The loop's timers, earliest first: a binary heap of (deadline, id), with cancelled ids skipped.
private struct TimerQueue {
    private var heap: [(deadline: ContinuousClock.Instant, id: UInt64)] = []
    private var fires: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 1

    var next: ContinuousClock.Instant? {
        mutating get {
            while let top = heap.first, fires[top.id] == nil { pop() }
            return heap.first?.deadline
        }
    }

    mutating func add(_ deadline: ContinuousClock.Instant, _ fire: @escaping () -> Void) -> UInt64 {
        let id = nextID
        nextID += 1
        fires[id] = fire
        heap.append((deadline, id))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { break }
            heap.swapAt(child, parent)
            child = parent
        }
        return id
    }

    mutating func cancel(_ id: UInt64) {
        fires[id] = nil
    }

    /// Removes and returns the timers due at `now`.
    mutating func due(now: ContinuousClock.Instant) -> [() -> Void] {
        var due: [() -> Void] = []
        while let top = heap.first, top.deadline <= now {
            pop()
            if let fire = fires.removeValue(forKey: top.id) { due.append(fire) }
        }
        return due
    }

    private mutating func pop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
