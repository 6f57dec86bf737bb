import Foundation
import Synchronization
import HTTP2
import Testing

@testable import Fleet
@testable import FleetWire

/// A coordinator and workers in this process, on real sockets.
final class TestFleet: @unchecked Sendable {
    static let token = "fleet-test-token"
    let coordinator: Coordinator
    var workers: [FleetWorker] = []
    var runs: [Task<Void, Never>] = []
    let client: FleetClient

    // A long lease: a test machine busy with other suites may delay heartbeats; the lease has tests of its own.
    init(lease: Duration = .seconds(30), heartbeat: Duration = .seconds(1), maxBodyBytes: Int = 64 << 20,
         limits: ServerLimits = ServerLimits(), retries: FleetClient.Retries = FleetClient.Retries()) throws {
        var configuration = Coordinator.Configuration(token: Self.token)
        configuration.lease = lease
        configuration.heartbeat = heartbeat
        configuration.maxBodyBytes = maxBodyBytes
        configuration.limits = limits
        coordinator = Coordinator(configuration: configuration)
        let port = try coordinator.start()
        client = FleetClient(coordinator: "http://127.0.0.1:\(port)", token: Self.token, retries: retries)
    }

    var url: String { "http://127.0.0.1:\(coordinator.port)" }

    @discardableResult
    func addWorker(_ type: String, runner: any ModelRunner = ConstantRunner(), capacity: Int = 1,
                   attributes: [String: String] = [:]) async throws -> FleetWorker {
        var configuration = FleetWorker.Configuration(coordinator: url, deviceType: type, token: Self.token)
        configuration.capacity = capacity
        configuration.attributes = attributes
        let worker = FleetWorker(configuration: configuration, runner: runner)
        try worker.start()
        workers.append(worker)
        runs.append(Task { await worker.run() })
        // Registered when the coordinator lists it.
        for _ in 0..<500 {
            if worker.workerID != nil { return worker }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestFailure("worker of \(type) did not register")
    }

    func shutdown() async {
        for worker in workers { await worker.stop() }
        for run in runs { run.cancel() }
        coordinator.stop()
    }
}

@Suite struct CoordinatorTests {
    static let model: [UInt8] = Array("not really onnx, the constant runner does not read it".utf8)

    @Test func evaluatesOnTheRightDeviceTypeAndListsWorkers() async throws {
        let fleet = try TestFleet()
        let cpu = try await fleet.addWorker("cpu-x86", runner: ConstantRunner(metrics: ["latency_ms": 2]),
                                            attributes: ["cores": "2"])
        let arm = try await fleet.addWorker("arm-a76", runner: ConstantRunner(metrics: ["latency_ms": 9]))
        let onCPU = try await fleet.client.evaluateDetailed(model: Self.model, deviceType: "cpu-x86")
        #expect(onCPU.metrics == ["latency_ms": 2])
        #expect(onCPU.workerID == cpu.workerID)
        #expect(onCPU.attempts == 1)
        let onARM = try await fleet.client.evaluate(model: Self.model, deviceType: "arm-a76")
        #expect(onARM == ["latency_ms": 9])
        // Many at once, on one HTTP/2 connection.
        let results = try await withThrowingTaskGroup(of: [String: Double].self) { group in
            for index in 0..<40 {
                group.addTask {
                    try await fleet.client.evaluate(model: Self.model + [UInt8(index)],
                                                    deviceType: index % 2 == 0 ? "cpu-x86" : "arm-a76")
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0 == ["latency_ms": 2] }.count == 20)
        let workers = try await fleet.client.workers()
        #expect(workers.map(\.deviceType) == ["arm-a76", "cpu-x86"])
        #expect(workers.first { $0.deviceType == "cpu-x86" }?.attributes == ["cores": "2"])
        #expect(workers.map(\.done).reduce(0, +) == 42)
        #expect(workers.allSatisfy { $0.state == "live" && $0.inFlight == 0 })
        _ = arm
        await fleet.shutdown()
    }

    @Test func aTypeNoWorkerServesFailsAtItsDeadlineNamingTheTypes() async throws {
        let fleet = try TestFleet()
        try await fleet.addWorker("cpu-x86")
        do {
            _ = try await fleet.client.evaluate(model: Self.model, deviceType: "gpu-h100", deadline: .milliseconds(300))
            Issue.record("evaluation on a type no worker serves succeeded")
        } catch let error as FleetError {
            #expect(error.description.contains("no worker serves device type 'gpu-h100'"))
            #expect(error.description.contains("registered device types: cpu-x86"))
        }
        await fleet.shutdown()
    }

    @Test func finalRunnerErrorsReachTheCallerUnretried() async throws {
        let fleet = try TestFleet()
        let runner = try CommandRunner(command: "echo 'not json' # {model}")
        try await fleet.addWorker("cpu", runner: runner)
        try await fleet.addWorker("cpu", runner: runner)
        do {
            _ = try await fleet.client.evaluateDetailed(model: Self.model, deviceType: "cpu", deadline: .seconds(10))
            Issue.record("a runner printing no JSON gave metrics")
        } catch let error as FleetError {
            #expect(error.description.contains("must print one JSON object"))
        }
        let workers = try await fleet.client.workers()
        #expect(workers.map(\.failed).reduce(0, +) == 1)
        await fleet.shutdown()
    }

    @Test func aWorkerThatLostItsCacheGetsTheModelAgain() async throws {
        let fleet = try TestFleet()
        let reads = try CommandRunner(command: #"test -f {model} && echo '{"latency_ms": 1}'"#)
        let worker = try await fleet.addWorker("cpu", runner: reads)
        _ = try await fleet.client.evaluate(model: Self.model, deviceType: "cpu")
        // Empty the worker's cache behind the coordinator's back.
        let cache = try #require(Mirror(reflecting: worker).children.first { $0.label == "cacheDirectory" }?.value
            as? String)
        for file in try FileManager.default.contentsOfDirectory(atPath: cache) {
            try FileManager.default.removeItem(atPath: cache + "/" + file)
        }
        let again = try await fleet.client.evaluateDetailed(model: Self.model, deviceType: "cpu")
        #expect(again.metrics == ["latency_ms": 1])
        #expect(FileManager.default.fileExists(atPath: cache + "/" + SHA256.hex(SHA256.hash(Self.model)) + ".onnx"))
        await fleet.shutdown()
    }

    @Test func aBytesRunnerGetsThePushedBytesAndTheCacheIsWrittenAfterwards() async throws {
        let fleet = try TestFleet()
        let runner = BytesEchoRunner()
        let worker = try await fleet.addWorker("cpu", runner: runner)
        let model: [UInt8] = [9, 8, 7] + Self.model
        let first = try await fleet.client.evaluateDetailed(model: model, deviceType: "cpu")
        #expect(first.metrics == ["latency_ms": Double(model.count), "first_byte": 9])
        #expect(runner.received == [model])
        let cache = try #require(Mirror(reflecting: worker).children.first { $0.label == "cacheDirectory" }?.value
            as? String)
        let file = cache + "/" + SHA256.hex(SHA256.hash(model)) + ".onnx"
        // Written after the answer, on the fleet's threads: wait for it (bounded).
        for _ in 0..<500 where FileManager.default.contents(atPath: file) == nil {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(FileManager.default.contents(atPath: file).map(Array.init) == model)
        // The coordinator sends only the hash now: the runner gets the same bytes, from the cache.
        let second = try await fleet.client.evaluateDetailed(model: model, deviceType: "cpu")
        #expect(second.metrics == first.metrics)
        // A cache emptied behind the coordinator's back: it sends the bytes again.
        try FileManager.default.removeItem(atPath: file)
        let third = try await fleet.client.evaluateDetailed(model: model, deviceType: "cpu")
        #expect(third.metrics == first.metrics)
        #expect(runner.received == [model, model, model])
        await fleet.shutdown()
    }

    @Test func aBytesRunnerWorkerRefusesPushedBytesThatDoNotMatchTheirHashAndCachesNothing() async throws {
        let fleet = try TestFleet()
        let runner = BytesEchoRunner()
        let worker = try await fleet.addWorker("cpu", runner: runner)
        let pusher = HTTP2Client(token: TestFleet.token)
        defer { pusher.shutdown() }
        let url = "http://127.0.0.1:\(worker.port)" + FleetPath.run
        let claimed = SHA256.hash(Self.model)
        let damaged = RunRequest(sha256: claimed, model: [0] + Self.model, timeoutMilliseconds: 10_000)
        let refused = try await pusher.post(url: url, body: damaged.encoded(), timeout: .seconds(10))
        #expect(refused.status == 422)
        let error = try ErrorMessage(decoding: refused.body)
        #expect(error.code == .badModel && error.message.contains("do not match its sha256"))
        // The runner measured beside the check, and was done before the refusal went out.
        #expect(runner.received == [[0] + Self.model])
        // Nothing was cached under the claimed hash: a hash-only push is told to send the bytes.
        let hashOnly = RunRequest(sha256: claimed, model: [], timeoutMilliseconds: 10_000)
        let missing = try await pusher.post(url: url, body: hashOnly.encoded(), timeout: .seconds(10))
        #expect(try ErrorMessage(decoding: missing.body).code == .modelNotCached)
        // The right bytes are measured and answered.
        let good = RunRequest(sha256: claimed, model: Self.model, timeoutMilliseconds: 10_000)
        let answer = try await pusher.post(url: url, body: good.encoded(), timeout: .seconds(10))
        #expect(answer.status == 200)
        #expect(try RunResponse(decoding: answer.body).metrics["latency_ms"] == Double(Self.model.count))
        await fleet.shutdown()
    }

    /// A large model pushed with its bytes is hashed beside the push: damaged bytes still get the coordinator's 422,
    /// even through a worker of someone's own that measures whatever it is pushed, and that worker is free again
    /// for the next evaluation; a hash-only push is not made for the damaged model's claimed hash.
    @Test func aLargeDamagedModelIsRefusedEvenThroughAWorkerThatChecksNothing() async throws {
        // The worker below never heartbeats: a lease longer than the test takes on a loaded machine (63 s once).
        let fleet = try TestFleet(lease: .seconds(600))
        let pushes = Mutex<[RunRequest]>([])
        let worker = HTTP2Server(configuration: .init(token: TestFleet.token, routes: [FleetPath.run])) { request, responder in
            if let run = try? RunRequest(decoding: request.body) { pushes.withLock { $0.append(run) } }
            responder.respond(HTTP2Response(status: 200, body: RunResponse(metrics: ["latency_ms": 1]).encoded()))
        }
        let port = try worker.start()
        defer { worker.stop() }
        _ = try await fleet.client.register(RegisterRequest(deviceType: "own", capacity: 1,
                                                            address: "http://127.0.0.1:\(port)"))
        let model = [UInt8](repeating: 3, count: Coordinator.checkedBesidePush)
        let claimed = SHA256.hash([9])
        let damaged = EvaluateRequest(deviceType: "own", model: model, sha256: claimed)
        let refused = try await ServerInputTests.rawCall(fleet.coordinator.port, path: FleetPath.evaluate,
                                                         body: damaged.encoded(), token: TestFleet.token)
        #expect(refused.status == 422)
        let error = try ErrorMessage(decoding: refused.body)
        #expect(error.code == .badModel && error.message.contains("damaged on the way"), "\(error.message)")
        // The same bytes again, still damaged: refused again, and if pushed (the worker may still be busy with the
        // first), then with the bytes: the claimed hash was not taken for one the worker has.
        let again = try await ServerInputTests.rawCall(fleet.coordinator.port, path: FleetPath.evaluate,
                                                       body: damaged.encoded(), token: TestFleet.token)
        #expect(again.status == 422)
        #expect(try await fleet.client.evaluate(model: model, deviceType: "own", deadline: .seconds(10))
            == ["latency_ms": 1])
        let sizes = pushes.withLock { $0.map(\.model.count) }
        #expect(sizes.count >= 2 && sizes.allSatisfy { $0 == model.count }, "\(sizes)")
        await fleet.shutdown()
    }
}

/// A bytes runner that reports what it got: the model's size as its latency, its first byte.
final class BytesEchoRunner: ModelBytesRunner, @unchecked Sendable {
    private let lock = NSLock()
    private var models: [[UInt8]] = []

    var received: [[UInt8]] { lock.withLock { models } }

    func measure(model: [UInt8]) async throws -> [String: Double] {
        lock.withLock { models.append(model) }
        return ["latency_ms": Double(model.count), "first_byte": Double(model.first ?? 0)]
    }

    func measure(modelAt path: String) async throws -> [String: Double] {
        throw FleetError(.internal, "a bytes runner is handed bytes, not \(path)")
    }
}
