import Testing

@testable import Fleet
@testable import FleetWire

@Suite struct SchedulerTests {
    static func register(_ scheduler: inout Scheduler, _ type: String, capacity: UInt32 = 1, now: UInt64 = 0)
        throws -> String
    {
        try identity(&scheduler, type, capacity: capacity, now: now).id
    }

    /// Registers (again, with `as`) and returns the id and the secret.
    static func identity(_ scheduler: inout Scheduler, _ type: String, capacity: UInt32 = 1,
                         as known: Scheduler.Registration? = nil, now: UInt64 = 0) throws -> Scheduler.Registration {
        let request = RegisterRequest(deviceType: type, capacity: capacity, address: "http://127.0.0.1:1/\(type)",
                                      workerID: known?.id ?? "", workerSecret: known?.secret ?? [])
        return try scheduler.register(request, now: now)
    }

    static func heartbeat(_ scheduler: inout Scheduler, _ worker: Scheduler.Registration, now: UInt64)
        throws(FleetError) -> [Scheduler.Action]
    {
        try scheduler.heartbeat(HeartbeatRequest(workerID: worker.id, workerSecret: worker.secret), now: now)
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
        let registration = try copy.register(
            RegisterRequest(deviceType: "gpu", capacity: 1, address: "http://h:1"), now: 10)
        #expect(registration.actions == [.dispatch(evaluation: 1, worker: registration.id, address: "http://h:1",
                                                   sendModel: true)])
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
        let a = try Self.identity(&scheduler, "cpu", now: 0)
        _ = scheduler.submit(id: 1, deviceType: "cpu", sha256: [1], deadline: 10_000, now: 0)
        #expect(try Self.heartbeat(&scheduler, a, now: 90) == [])
        let b = try Self.identity(&scheduler, "cpu", capacity: 1, now: 150)
        #expect(scheduler.tick(now: 150).isEmpty)  // a's lease runs to 190
        #expect(try Self.heartbeat(&scheduler, b, now: 180) == [])
        let actions = scheduler.tick(now: 191)
        #expect(scheduler.workers[a.id] == nil)
        #expect(Self.dispatched(actions).map(\.1) == [b.id])
        // Unknown now: it must register again.
        #expect(throws: FleetError.unknownWorker(a.id)) { try Self.heartbeat(&scheduler, a, now: 200) }
    }

    /// Issue 16.1: a restarted coordinator (a new scheduler) never hands a new worker the id a paused worker still
    /// holds; the paused worker's heartbeat is refused, and it comes back under its id by proving it.
    @Test func idsDoNotCollideAcrossRestartsAndComingBackTakesTheSecret() throws {
        var before = Scheduler()
        let paused = try Self.identity(&before, "gpu")
        var restarted = Scheduler()
        let newcomer = try Self.identity(&restarted, "cpu")
        #expect(newcomer.id != paused.id)
        #expect(paused.secret.count == 16 && paused.id.hasPrefix("w-") && paused.id.count == 18)
        #expect(throws: FleetError.unknownWorker(paused.id)) { try Self.heartbeat(&restarted, paused, now: 1) }
        let back = try Self.identity(&restarted, "gpu", as: paused, now: 2)
        #expect(back.id == paused.id && back.secret == paused.secret)
        #expect(restarted.listing(now: 2).map { "\($0.deviceType) \($0.workerID)" }.sorted()
                == ["cpu \(newcomer.id)", "gpu \(paused.id)"].sorted())
        #expect(try Self.heartbeat(&restarted, paused, now: 3) == [])
    }

    /// Issue 16.1: a token holder who knows an id (ListWorkers shows them all) cannot take over its entry.
    @Test func anIDWithoutItsSecretIsRefused() throws {
        var scheduler = Scheduler()
        let victim = try Self.identity(&scheduler, "gpu")
        let thief = try Self.identity(&scheduler, "gpu")
        let forged = Scheduler.Registration(id: victim.id, secret: thief.secret, actions: [])
        #expect(throws: FleetError.notThisWorker(victim.id)) { try Self.identity(&scheduler, "cpu", as: forged) }
        #expect(throws: FleetError.notThisWorker(victim.id)) { try Self.heartbeat(&scheduler, forged, now: 1) }
        #expect(throws: FleetError.notThisWorker(victim.id)) {
            try scheduler.deregister(DeregisterRequest(workerID: victim.id, workerSecret: thief.secret), now: 1)
        }
        do {
            _ = try scheduler.register(RegisterRequest(deviceType: "cpu", address: "http://h:1", workerID: victim.id),
                                       now: 1)
            Issue.record("an id without a secret was taken")
        } catch {
            #expect(error.code == .badRequest && error.message.contains("16-byte worker_secret"))
        }
        #expect(scheduler.workers[victim.id]?.deviceType == "gpu")
        #expect(try scheduler.deregister(DeregisterRequest(workerID: victim.id, workerSecret: victim.secret), now: 2)
                == [])
        #expect(scheduler.workers[victim.id] == nil)
    }

    /// Issue 16.3: when the only worker of a type is lost mid-evaluation, the caller hears that, not "no worker".
    @Test func theOnlyWorkerLostIsWhatTheCallerHears() throws {
        var scheduler = Scheduler(configuration: .init(leaseMilliseconds: 100))
        let a = try Self.register(&scheduler, "gpu", now: 0)
        #expect(Self.dispatched(scheduler.submit(id: 1, deviceType: "gpu", sha256: [1], deadline: 500, now: 0))
                .map(\.1) == [a])
        #expect(scheduler.tick(now: 101).isEmpty)  // dropped, the evaluation queued again
        #expect(scheduler.workers.isEmpty && scheduler.queues["gpu"] == [1])
        guard case .fail(1, let error) = scheduler.tick(now: 500).first else {
            Issue.record("expected the evaluation to fail at its deadline")
            return
        }
        #expect(error.code == .workerLost)
        #expect(error.message.contains("worker \(a) was lost") && error.message.contains("lease lapsed"))
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

    /// What the coordinator asks before hashing a model beside its push: whether a submit now pushes it at once
    /// with its bytes, which is what the next submit then does.
    @Test func pushesModelAtOnceSaysWhatTheNextSubmitDoes() throws {
        var scheduler = Scheduler()
        #expect(!scheduler.pushesModelAtOnce(deviceType: "cpu", sha256: [9]))  // no worker
        let a = try Self.register(&scheduler, "cpu")
        #expect(scheduler.pushesModelAtOnce(deviceType: "cpu", sha256: [9]))
        #expect(!scheduler.pushesModelAtOnce(deviceType: "gpu", sha256: [9]))
        _ = scheduler.submit(id: 1, deviceType: "cpu", sha256: [9], deadline: 100, now: 0)
        #expect(!scheduler.pushesModelAtOnce(deviceType: "cpu", sha256: [8]))  // the only worker is busy
        _ = scheduler.submit(id: 2, deviceType: "cpu", sha256: [8], deadline: 100, now: 0)
        let freed = scheduler.finished(1, worker: a, result: .success([:]), now: 1)
        #expect(freed.contains(.dispatch(evaluation: 2, worker: a, address: "http://127.0.0.1:1/cpu", sendModel: true)))
        _ = scheduler.finished(2, worker: a, result: .success([:]), now: 2)
        #expect(!scheduler.pushesModelAtOnce(deviceType: "cpu", sha256: [9]))  // cached: a hash-only push
        #expect(scheduler.pushesModelAtOnce(deviceType: "cpu", sha256: [7]))
    }

    @Test func reRegisteringKeepsTheIDAndBadRegistrationsAreRejected() throws {
        var scheduler = Scheduler()
        let first = try Self.identity(&scheduler, "cpu")
        let again = try Self.identity(&scheduler, "cpu", capacity: 2, as: first, now: 3)
        #expect(again.id == first.id)
        #expect(scheduler.listing(now: 5).map(\.lastHeartbeatMillisecondsAgo) == [2])
        #expect(scheduler.workers[first.id]?.capacity == 2)
        #expect(throws: FleetError.self) {
            try scheduler.register(RegisterRequest(deviceType: "", capacity: 1, address: "http://h:1"), now: 0)
        }
        #expect(throws: FleetError.self) {
            try scheduler.register(RegisterRequest(deviceType: "cpu", capacity: 0, address: "http://h:1"), now: 0)
        }
    }
}
