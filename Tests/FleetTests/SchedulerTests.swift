import Testing

@testable import Fleet
@testable import FleetWire

@Suite struct SchedulerTests {
    static func register(_ scheduler: inout Scheduler, _ type: String, capacity: UInt32 = 1, id: String = "",
                         now: UInt64 = 0) throws -> String {
        let request = RegisterRequest(deviceType: type, capacity: capacity, address: "http://127.0.0.1:1/\(type)",
                                      workerID: id)
        return try scheduler.register(request, now: now).id
    }

    static func dispatched(_ actions: [Scheduler.Action]) -> [(UInt64, String)] {
        actions.compactMap {
            if case .dispatch(let evaluation, let worker, _, _) = $0 { return (evaluation, worker) }
            return nil
        }
    }

    @Test func dispatchesToTheLeastLoadedWorkerWithinCapacity() throws {
        var scheduler = Scheduler()
        let a = try Self.register(&scheduler, "cpu", capacity: 2)
        let b = try Self.register(&scheduler, "cpu", capacity: 1)
        var workersUsed: [String] = []
        for id in 1...4 as ClosedRange<UInt64> {
            let actions = scheduler.submit(id: id, deviceType: "cpu", sha256: [1], deadline: 1000, now: 0)
            workersUsed += Self.dispatched(actions).map(\.1)
        }
        // a (0/2) then b (0/1), then a (1/2); the fourth waits: every worker is full.
        #expect(workersUsed == [a, b, a])
        #expect(scheduler.queues["cpu"] == [4])
        // When b finishes, the waiting evaluation goes to b, without the model: b has just measured this hash.
        let after = scheduler.finished(2, worker: b, result: .success(["latency_ms": 1]), now: 5)
        #expect(after.first == .succeed(evaluation: 2, metrics: ["latency_ms": 1], worker: b, attempts: 1))
        #expect(after.last == .dispatch(evaluation: 4, worker: b, address: "http://127.0.0.1:1/cpu", sendModel: false))
    }

    @Test func queuesAreSeparatePerDeviceType() throws {
        var scheduler = Scheduler()
        let cpu = try Self.register(&scheduler, "cpu")
        let gpu = try Self.register(&scheduler, "gpu")
        let first = scheduler.submit(id: 1, deviceType: "gpu", sha256: [1], deadline: 100, now: 0)
        let second = scheduler.submit(id: 2, deviceType: "cpu", sha256: [1], deadline: 100, now: 0)
        #expect(Self.dispatched(first).map(\.1) == [gpu])
        #expect(Self.dispatched(second).map(\.1) == [cpu])
    }

    @Test func aTypeNoWorkerServesWaitsThenFailsNamingTheTypes() throws {
        var scheduler = Scheduler()
        _ = try Self.register(&scheduler, "cpu-x86")
        _ = try Self.register(&scheduler, "arm-a76")
        #expect(scheduler.submit(id: 1, deviceType: "gpu-h100", sha256: [1], deadline: 100, now: 0).isEmpty)
        #expect(scheduler.tick(now: 50).isEmpty)
        let actions = scheduler.tick(now: 100)
        guard case .fail(1, let error) = actions.first else {
            Issue.record("expected a failure, got \(actions)")
            return
        }
        #expect(error.description.contains("'gpu-h100'"))
        #expect(error.description.contains("arm-a76, cpu-x86"))
        #expect(scheduler.evaluations.isEmpty)
    }

    @Test func aWorkerRegisteringInTimeTakesTheWaitingEvaluation() throws {
        var scheduler = Scheduler()
        #expect(scheduler.submit(id: 1, deviceType: "gpu", sha256: [1], deadline: 100, now: 0).isEmpty)
        var copy = scheduler
        let (id, actions) = try copy.register(
            RegisterRequest(deviceType: "gpu", capacity: 1, address: "http://h:1"), now: 10)
        #expect(actions == [.dispatch(evaluation: 1, worker: id, address: "http://h:1", sendModel: true)])
        scheduler = copy
    }

    @Test func retryableFailureGoesToAnotherWorkerAndIsBounded() throws {
        var scheduler = Scheduler(configuration: .init(maxAttempts: 2))
        let a = try Self.register(&scheduler, "cpu")
        let b = try Self.register(&scheduler, "cpu")
        let first = Self.dispatched(scheduler.submit(id: 7, deviceType: "cpu", sha256: [1], deadline: 1000, now: 0))
        #expect(first.map(\.1) == [a])
        let lost = scheduler.finished(7, worker: a, result: .failure(.workerLost(a, "connection reset")), now: 1)
        #expect(Self.dispatched(lost).map(\.1) == [b])
        #expect(scheduler.workers[a]?.state == .lost)
        // The second failure uses up the attempts: the caller gets the error.
        let final = scheduler.finished(7, worker: b, result: .failure(.timedOut("slow")), now: 2)
        guard case .fail(7, let error) = final.first else {
            Issue.record("expected a failure, got \(final)")
            return
        }
        #expect(error.description.contains("gave up after 2 attempts"))
    }

    @Test func finalErrorsAreNotRetried() throws {
        var scheduler = Scheduler()
        let a = try Self.register(&scheduler, "cpu")
        _ = try Self.register(&scheduler, "cpu")
        _ = scheduler.submit(id: 1, deviceType: "cpu", sha256: [1], deadline: 1000, now: 0)
        let actions = scheduler.finished(1, worker: a, result: .failure(FleetError(.modelNotSupported, "op Foo")),
                                         now: 1)
        #expect(actions == [.fail(evaluation: 1, error: FleetError(.modelNotSupported, "op Foo"))])
        #expect(scheduler.workers[a]?.failed == 1)
    }

    @Test func aLapsedLeaseDropsTheWorkerAndRequeuesItsWork() throws {
        var scheduler = Scheduler(configuration: .init(leaseMilliseconds: 100))
        let a = try Self.register(&scheduler, "cpu", now: 0)
        _ = scheduler.submit(id: 1, deviceType: "cpu", sha256: [1], deadline: 10_000, now: 0)
        #expect(scheduler.heartbeat(a, now: 90) == [])
        let b = try Self.register(&scheduler, "cpu", capacity: 1, now: 150)
        #expect(scheduler.tick(now: 150).isEmpty)  // a's lease runs to 190
        #expect(scheduler.heartbeat(b, now: 180) == [])
        let actions = scheduler.tick(now: 191)
        #expect(scheduler.workers[a] == nil)
        #expect(Self.dispatched(actions).map(\.1) == [b])
        #expect(scheduler.heartbeat(a, now: 200) == nil)  // unknown now: it must register again
    }

    @Test func cachedModelsAreNotSentAgain() throws {
        var scheduler = Scheduler()
        let a = try Self.register(&scheduler, "cpu")
        let first = scheduler.submit(id: 1, deviceType: "cpu", sha256: [9], deadline: 100, now: 0)
        #expect(first == [.dispatch(evaluation: 1, worker: a, address: "http://127.0.0.1:1/cpu", sendModel: true)])
        _ = scheduler.finished(1, worker: a, result: .success([:]), now: 1)
        let second = scheduler.submit(id: 2, deviceType: "cpu", sha256: [9], deadline: 100, now: 2)
        #expect(second == [.dispatch(evaluation: 2, worker: a, address: "http://127.0.0.1:1/cpu", sendModel: false)])
    }

    @Test func reRegisteringKeepsTheIDAndBadRegistrationsAreRejected() throws {
        var scheduler = Scheduler()
        let id = try Self.register(&scheduler, "cpu", id: "kept-7")
        #expect(id == "kept-7")
        #expect(scheduler.listing(now: 5).map(\.lastHeartbeatMillisecondsAgo) == [5])
        #expect(throws: FleetError.self) {
            try scheduler.register(RegisterRequest(deviceType: "", capacity: 1, address: "http://h:1"), now: 0)
        }
        #expect(throws: FleetError.self) {
            try scheduler.register(RegisterRequest(deviceType: "cpu", capacity: 0, address: "http://h:1"), now: 0)
        }
    }
}
