import Fleet
import Foundation
import Synchronization
import Testing

@testable import Search

/// The worker list a trial's pushes share, over a real coordinator and workers on loopback sockets.
@Suite struct WorkerListTests {
    static let token = "worker-list-test-token"

    /// Starts a worker of `cpu` with `attributes` and waits until it has registered.
    static func worker(_ url: String, _ attributes: [String: String]) async throws -> (FleetWorker, Task<Void, Never>) {
        var configuration = FleetWorker.Configuration(coordinator: url, deviceType: "cpu", token: token)
        configuration.attributes = attributes
        let worker = FleetWorker(configuration: configuration, runner: ConstantRunner())
        try worker.start()
        let run = Task { await worker.run() }
        for _ in 0..<1000 where worker.workerID == nil { try await Task.sleep(for: .milliseconds(10)) }
        try #require(worker.workerID != nil, "the worker did not register")
        return (worker, run)
    }

    @Test func pushesFetchTheListOnceAndAgainForAWorkerItDoesNotKnow() async throws {
        var configuration = Coordinator.Configuration(token: Self.token)
        configuration.lease = .seconds(30)
        let coordinator = Coordinator(configuration: configuration)
        let url = "http://127.0.0.1:\(try coordinator.start())"
        defer { coordinator.stop() }
        let client = FleetClient(coordinator: url, token: Self.token)
        let calls = Mutex(0)
        let list = WorkerList(fetch: {
            calls.withLock { $0 += 1 }
            return try await client.workers()
        })
        let measurer = PushMeasurer(client: client, workers: list, log: { _ in })
        let model = TrialModel(trialID: 1, bytes: Array("a model".utf8), path: "")

        let (first, firstRun) = try await Self.worker(url, ["rack": "a"])
        for _ in 0..<3 {
            let measurement = try await measurer.measureDetailed(model, on: "cpu")
            #expect(measurement.workerID == first.workerID && measurement.attributes["rack"] == "a")
        }
        #expect(calls.withLock { $0 } == 1)

        // The first worker leaves and another comes: its answer names a worker the list lacks, so it is fetched again.
        await first.stop()
        firstRun.cancel()
        let (second, secondRun) = try await Self.worker(url, ["rack": "b"])
        defer { secondRun.cancel() }
        let measurement = try await measurer.measureDetailed(model, on: "cpu")
        #expect(measurement.workerID == second.workerID && measurement.attributes["rack"] == "b")
        #expect(calls.withLock { $0 } == 2)
        // A push that fails forgets the list.
        await second.stop()
        await #expect(throws: (any Error).self) {
            _ = try await PushMeasurer(client: FleetClient(coordinator: "http://127.0.0.1:1", token: Self.token),
                workers: list, log: { _ in }).measureDetailed(model, on: "cpu")
        }
        _ = try await list.workers()
        #expect(calls.withLock { $0 } == 3)
    }
}
