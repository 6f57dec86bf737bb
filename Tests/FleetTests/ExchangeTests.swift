import Foundation
import Synchronization
import Testing

@testable import Fleet

/// A settable wall clock, so that leases lapse without sleeping.
final class TestClock: Sendable {
    private let now = Mutex(1_000_000.0)
    var read: @Sendable () -> Double { { [self] in now.withLock { $0 } } }
    func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
}

/// Collects a worker's log lines.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    var sink: @Sendable (String) -> Void { { [self] line in lines.withLock { $0.append(line) } } }
    var all: [String] { lines.withLock { $0 } }
}

/// The runner of these tests: `cat` prints the "model", which the tests write as the JSON metrics they expect.
let catRunner = try! CommandRunner(command: "cat {model}", timeout: .seconds(30))

func metricsModel(latency: Double, memory: Double = 1000, extra: String = "") -> [UInt8] {
    Array("{\"latency_ms\": \(latency), \"memory_bytes\": \(memory)\(extra)}".utf8)
}

@Suite("File exchange: metrics, claims, trainer wait, worker passes")
struct ExchangeTests {
    @Test("model_latency.json round-trips with the seed's keys and the runner's other metrics")
    func metricsRoundTrip() throws {
        let metrics = try LatencyMetrics(
            runnerMetrics: ["latency_ms": 3.5, "memory_bytes": 2048, "latency_p90_ms": 4.25], runner: "r")
        let text = String(decoding: metrics.encoded(), as: UTF8.self)
        #expect(text.contains("\"latency_in_milliseconds\":3.5"))
        #expect(text.contains("\"model_memory\":2048"))
        let back = try LatencyMetrics.decode(metrics.encoded(), path: "x")
        #expect(back == metrics)
        #expect(back.metrics == ["latency_ms": 3.5, "memory_bytes": 2048, "latency_p90_ms": 4.25])
        // The seed's own file (memory 0, no extras) reads too.
        let seed = try LatencyMetrics.decode(
            Array(#"{"latency_in_milliseconds": 2.0, "model_memory": 0}"#.utf8), path: "x")
        #expect(seed == LatencyMetrics(latencyMilliseconds: 2, memoryBytes: 0))
        // A runner that reports no memory: the metric is missing, not 0, in the file and in the trial's metrics.
        let noMemory = try LatencyMetrics(runnerMetrics: ["latency_ms": 1.5], runner: "r")
        #expect(noMemory.memoryBytes == nil && noMemory.metrics == ["latency_ms": 1.5])
        #expect(!String(decoding: noMemory.encoded(), as: UTF8.self).contains("model_memory"))
        #expect(try LatencyMetrics.decode(noMemory.encoded(), path: "x") == noMemory)
        // A runner without latency is an error naming what it gave.
        let error = try #require(throws: ExchangeError.self) {
            try LatencyMetrics(runnerMetrics: ["memory_bytes": 1], runner: "my-runner")
        }
        #expect(error.description.contains("my-runner") && error.description.contains("latency_ms"))
    }

    @Test("a model_latency.json that is not JSON or lacks the keys is a typed error saying which")
    func badMetricsFiles() throws {
        let cases: [(String, String)] = [
            ("latency: 3", "not JSON"), ("[1, 2]", "not an object"),
            (#"{"model_memory": 0}"#, "lacks \"latency_in_milliseconds\""),
            (#"{"latency_in_milliseconds": 1, "model_memory": "big"}"#, "\"model_memory\" is not a finite number"),
            (#"{"latency_in_milliseconds": "fast", "model_memory": 0}"#, "not a finite number"),
            (#"{"latency_in_milliseconds": NaN, "model_memory": 0}"#, "not a finite number"),
        ]
        for (text, reason) in cases {
            let error = try #require(throws: ExchangeError.self) {
                try LatencyMetrics.decode(Array(text.utf8), path: "job/3/saved_model/model_latency.json")
            }
            #expect(error.description.contains(reason), "\(text): \(error)")
            #expect(error.description.contains("job/3/saved_model/model_latency.json"))
        }
    }

    @Test("trial folder names: canonical non-negative integers only")
    func trialFolders() throws {
        #expect(try JobLayout.trialID(folder: "12", location: "l") == 12)
        #expect(try JobLayout.trialID(folder: "0", location: "l") == 0)
        for bad in ["abc", "-1", "007", "1.5", "..", "", "12a", "99999999999999999999"] {
            let error = try #require(throws: ExchangeError.self) { try JobLayout.trialID(folder: bad, location: "l") }
            #expect(error.description.contains("not a trial id"))
        }
    }

    @Test(
        "job states: Vertex AI names and ours",
        arguments: [
            ("RUNNING", false), ("JOB_STATE_RUNNING", false), ("pending", false), ("SUCCEEDED", true),
            ("JOB_STATE_FAILED", true), ("JOB_STATE_CANCELLED", true), ("canceled", true), ("PAUSED", false),
            ("JOB_STATE_PAUSED", false),
        ])
    func jobStates(_ name: String, _ ended: Bool) {
        #expect(JobState(name: name).hasEnded == ended)
    }

    @Test(
        "claims: one winner, lapsed claims taken over by exactly one worker, the old holder loses its renewal",
        arguments: StorageBackend.allCases)
    func claims(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let clock = TestClock()
        func claimer(_ name: String) -> TrialClaims {
            TrialClaims(
                storage: fixture.storage, worker: name, latencyWorkerID: 0, deviceType: "cpu", leaseDuration: 10,
                clock: clock.read)
        }
        let a = claimer("a")
        let b = claimer("b")
        let c = claimer("c")
        let leaseA = try #require(try a.tryClaim(trial: 4))
        #expect(leaseA.tookOver == false)
        #expect(try b.tryClaim(trial: 4) == nil)
        // Asking again for a claim one holds returns it with a fresh lease (a retried create whose answer was
        // lost, or a worker trying a trial again after its claim lapsed).
        clock.advance(15)
        let againA = try #require(try a.tryClaim(trial: 4))
        #expect(againA.tookOver == false && againA.expiresAt == clock.read() + 10)
        let renewedA = try #require(try a.renew(againA))
        clock.advance(9)
        #expect(try b.tryClaim(trial: 4) == nil)  // renewed at t0, so it holds until t0 + 10
        clock.advance(2)
        // Lapsed: b and c race for the takeover; exactly one wins.
        async let fromB = b.tryClaim(trial: 4)
        async let fromC = c.tryClaim(trial: 4)
        let winners = [try await fromB, try await fromC].compactMap { $0 }
        #expect(winners.count == 1)
        #expect(winners.first?.tookOver == true)
        // The old holder finds out at its next renewal.
        #expect(try a.renew(renewedA) == nil)
        let stored = try #require(try fixture.storage.read(JobLayout.claimKey(trial: 4)))
        let claim = try #require(TrialClaim.decode(stored.data))
        #expect(["b", "c"].contains(claim.worker))
        // A claim in the seed's format (no lease) counts as lapsed.
        try fixture.storage.write(JobLayout.claimKey(trial: 5), data: Array(#"{"latency_worker_id": 0}"#.utf8))
        #expect(try a.tryClaim(trial: 5)?.tookOver == true)
    }

    @Test(
        "a measurement longer than several leases keeps its claim: renewals stop a takeover",
        arguments: StorageBackend.allCases)
    func renewal(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let folder = StorageTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = folder + "/runs.txt"
        // Three leases long; leases of 4 s so that a loaded machine's scheduling stalls (a second or more on 2
        // busy cores) do not pass for a dead worker.
        let slow = try CommandRunner(command: "echo run >> '\(log)'; sleep 12; cat {model}")
        try fixture.storage.write(JobLayout.modelKey(trial: 1), data: metricsModel(latency: 1))
        func worker(_ name: String) throws -> FileWorker {
            try FileWorker(
                storage: fixture.storage, runner: slow,
                configuration: .init(
                    deviceType: "cpu", pollInterval: .milliseconds(50), leaseDuration: .seconds(4),
                    workerID: name),
                log: { _ in })
        }
        let a = try worker("a")
        let b = try worker("b")
        let stop = FileWorkerStop()
        let first = onFleetThreads { await a.runOnce() }
        #expect(try await eventually { try fixture.storage.exists(JobLayout.claimKey(trial: 1)) })
        let second = onFleetThreads { try await b.run(until: stop) }  // keeps trying while a measures for 3+ leases
        #expect(try await first.value.measured == [1])
        stop.request()
        #expect(try await second.value == [])
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "run\n")
    }

    @Test("a claim taken from a worker while it measures: it kills the measurement and writes nothing",
          arguments: StorageBackend.allCases)
    func aLostLeaseCancelsTheMeasurement(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let folder = StorageTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let pidFile = folder + "/runner.pid"
        // Without the kill the pass would last the whole sleep.
        let slow = try CommandRunner(command: "echo $$ > '\(pidFile)'; sleep 60; cat {model}")
        try fixture.storage.write(JobLayout.modelKey(trial: 1), data: metricsModel(latency: 1))
        let worker = try FileWorker(
            storage: fixture.storage, runner: slow,
            configuration: .init(deviceType: "cpu", pollInterval: .milliseconds(50), leaseDuration: .milliseconds(600),
                workerID: "a"),
            log: { _ in })
        let pass = onFleetThreads { await worker.runOnce() }
        // Another worker's claim replaces ours (a new generation) while the runner sleeps: the next renewal finds the
        // claim is not ours. The usurper acts on the fleet's threads too: a test task on a cooperative pool that
        // other suites hold could wake only after the runner's 60 s, when there is nothing left to take.
        let usurper = Array(#"{"worker": "b", "device_type": "cpu", "lease_expires_at": 9e12}"#.utf8)
        let storage = fixture.storage
        let usurped = onFleetThreads {
            let deadline = ContinuousClock.now + .seconds(60)
            while !FileManager.default.fileExists(atPath: pidFile) {
                guard ContinuousClock.now < deadline else { throw CancellationError() }
                await FleetExecutor.shared.sleep(milliseconds: 20)
            }
            try storage.write(JobLayout.claimKey(trial: 1), data: usurper)
        }
        try await usurped.value
        let result = try await pass.value
        #expect(result.measured.isEmpty)
        #expect(result.problems.contains { $0.contains("trial 1") && $0.contains("lease") })
        #expect(try !fixture.storage.exists(JobLayout.metricsKey(trial: 1)))
        #expect(try fixture.storage.read(JobLayout.claimKey(trial: 1))?.data == usurper)
        let pid = try #require(Int32(String(contentsOfFile: pidFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(kill(pid, 0) != 0, "the runner's process \(pid) outlived the lost claim")
    }

    @Test("the trainer gets the metrics a worker writes", arguments: StorageBackend.allCases)
    func trainerAndWorker(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let trainer = TrainerExchange(
            storage: fixture.storage, configuration: .init(pollInterval: .milliseconds(50), timeout: .seconds(60)))
        try trainer.submit(trial: 3, model: metricsModel(latency: 2.5, memory: 4096, extra: ", \"latency_p99_ms\": 3"))
        let worker = try FileWorker(
            storage: fixture.storage, runner: catRunner,
            configuration: .init(deviceType: "cpu-x86", pollInterval: .milliseconds(50)), log: { _ in })
        let waited = onFleetThreads { try await trainer.waitForMetrics(trial: 3) }
        let pass = await worker.runOnce()
        #expect(pass.measured == [3])
        #expect(pass.problems.isEmpty)
        let metrics = try await waited.value
        #expect(metrics == LatencyMetrics(latencyMilliseconds: 2.5, memoryBytes: 4096, others: ["latency_p99_ms": 3]))
        let claimObject = try #require(try fixture.storage.read(JobLayout.claimKey(trial: 3)))
        let claim = try #require(TrialClaim.decode(claimObject.data))
        #expect(claim.worker == worker.configuration.workerID && claim.deviceType == "cpu-x86")
        // Done trials are not measured again.
        #expect(await worker.runOnce().measured.isEmpty)
        // Submitting the trial again removes the stale metrics first.
        try trainer.submit(trial: 3, model: metricsModel(latency: 7))
        #expect(try fixture.storage.exists(JobLayout.metricsKey(trial: 3)) == false)
        #expect(await worker.runOnce().measured == [3])
        #expect(try await trainer.waitForMetrics(trial: 3).latencyMilliseconds == 7)
    }

    @Test(
        "the trainer's wait fails clearly on timeout and on a malformed metrics file",
        arguments: StorageBackend.allCases)
    func trainerFailures(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let trainer = TrainerExchange(
            storage: fixture.storage,
            configuration: .init(pollInterval: .milliseconds(20), timeout: .milliseconds(100)))
        try trainer.submit(trial: 8, model: [1, 2, 3])
        let timeout = await #expect(throws: ExchangeError.self) { try await trainer.waitForMetrics(trial: 8) }
        #expect(timeout?.description.contains("no model_latency.json for trial 8") == true)
        try fixture.storage.write(JobLayout.metricsKey(trial: 8), data: Array("not json".utf8))
        let malformed = await #expect(throws: ExchangeError.self) { try await trainer.waitForMetrics(trial: 8) }
        #expect(malformed?.description.contains("is not a valid metrics file") == true)
    }

    @Test("bad trials are reported and the worker measures the others", arguments: StorageBackend.allCases)
    func badTrials(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let storage = fixture.storage
        try storage.write(JobLayout.modelKey(trial: 1), data: metricsModel(latency: 1))
        try storage.write("abc/saved_model/model.onnx", data: metricsModel(latency: 9))
        try storage.write("007/saved_model/model.onnx", data: metricsModel(latency: 9))
        try storage.write(JobLayout.modelKey(trial: 2), data: Array("this runner output is not JSON".utf8))
        try storage.write(JobLayout.modelKey(trial: 3), data: Array("{\"memory_bytes\": 5}".utf8))
        try storage.write(JobLayout.modelKey(trial: 4), data: metricsModel(latency: 4))
        let log = LogLines()
        let worker = try FileWorker(
            storage: storage, runner: catRunner, configuration: .init(deviceType: "cpu"), runnerName: "cat",
            log: log.sink)
        let pass = await worker.runOnce()
        #expect(pass.measured == [1, 4])
        let problems = pass.problems.joined(separator: "\n")
        #expect(problems.contains("folder 'abc'") && problems.contains("folder '007'"))
        #expect(problems.contains("trial 2:") && problems.contains("must print one JSON object"))
        #expect(problems.contains("trial 3:") && problems.contains("latency_ms"))
        // A folder name is reported once, not on every scan.
        let again = await worker.runOnce()
        #expect(!again.problems.joined().contains("folder 'abc'"))
    }

    @Test("an object named with '..' in the bucket is reported, never followed, and the rest measured")
    func dotDotObjectNames() async throws {
        let fixture = try await StorageFixture(.gcs)
        let emulator = try #require(fixture.emulator)
        // GCS names may hold '..'; the storage API refuses such keys, so this one is uploaded raw.
        let http = StorageHTTP()
        let name = storagePercentEncode("jobs/job-1/../saved_model/model.onnx")
        let upload = try http.perform(
            "POST", emulator.endpoint + "/upload/storage/v1/b/nas-test/o?uploadType=media&name=\(name)",
            body: metricsModel(latency: 9), what: "raw upload")
        #expect(upload.status == 200)
        try fixture.storage.write(JobLayout.modelKey(trial: 6), data: metricsModel(latency: 6))
        let worker = try FileWorker(
            storage: fixture.storage, runner: catRunner, configuration: .init(deviceType: "cpu"), log: { _ in })
        let pass = await worker.runOnce()
        #expect(pass.measured == [6])
        #expect(pass.problems.count == 1 && pass.problems.first?.contains("folder '..'") == true, "\(pass.problems)")
    }

    @Test("a bucket that cannot be read: the pass reports it and the worker keeps running")
    func unreadableBucket() async throws {
        let emulator = try await FakeGCS()
        defer { emulator.stop() }
        let storage = try GCSStorage(
            bucket: "missing-bucket", prefix: "job", configuration: StorageTestSupport.emulatorConfiguration(emulator))
        let worker = try FileWorker(
            storage: storage, runner: catRunner,
            configuration: .init(deviceType: "cpu", pollInterval: .milliseconds(50)),
            log: { _ in })
        let pass = await worker.runOnce()
        #expect(pass.measured.isEmpty && !pass.jobEnded)
        #expect(pass.problems.contains { $0.contains("bucket 'missing-bucket' does not exist") }, "\(pass.problems)")
        // The bucket appears later: the next pass works.
        try emulator.createBucket("missing-bucket")
        try storage.write(JobLayout.modelKey(trial: 1), data: metricsModel(latency: 1))
        #expect(await worker.runOnce().measured == [1])
    }

    @Test(
        "a model that keeps failing is given up after maxAttempts, and its trainer fails at once with the reason",
        arguments: StorageBackend.allCases)
    func givenUp(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let trainer = TrainerExchange(
            storage: fixture.storage, configuration: .init(pollInterval: .milliseconds(20), timeout: .seconds(60)))
        try trainer.submit(trial: 5, model: Array("unsupported op".utf8))
        let worker = try FileWorker(
            storage: fixture.storage, runner: catRunner, configuration: .init(deviceType: "cpu", maxAttempts: 2),
            log: { _ in })
        #expect(await worker.runOnce().problems.count == 1)
        #expect(try fixture.storage.exists(JobLayout.errorKey(trial: 5)) == false)
        #expect(await worker.runOnce().problems.count == 1)
        #expect(try fixture.storage.exists(JobLayout.errorKey(trial: 5)))
        #expect(await worker.runOnce().problems.isEmpty)  // given up: not retried
        let error = await #expect(throws: ExchangeError.self) { try await trainer.waitForMetrics(trial: 5) }
        #expect(error?.description.contains("could not measure trial 5") == true)
        #expect(error?.description.contains("must print one JSON object") == true)
        // Submitting again clears the report, and a fixed model is measured.
        try trainer.submit(trial: 5, model: metricsModel(latency: 5))
        #expect(await worker.runOnce().measured == [5])
        #expect(try await trainer.waitForMetrics(trial: 5).latencyMilliseconds == 5)
    }

    @Test("static partition: trial_id % num_latency_workers == latency_worker_id", arguments: StorageBackend.allCases)
    func staticPartition(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        for trial in 1...6 {
            try fixture.storage.write(JobLayout.modelKey(trial: trial), data: metricsModel(latency: 1))
        }
        let worker = try FileWorker(
            storage: fixture.storage, runner: catRunner,
            configuration: .init(deviceType: "cpu", latencyWorkerID: 1, numLatencyWorkers: 3), log: { _ in })
        #expect(await worker.runOnce().measured == [1, 4])
        #expect(throws: ExchangeError.self) {
            try FileWorker(
                storage: fixture.storage, runner: catRunner,
                configuration: .init(deviceType: "cpu", latencyWorkerID: 3, numLatencyWorkers: 3))
        }
    }

    @Test("the worker stops when job_status.json says the job ended", arguments: StorageBackend.allCases)
    func stopsWhenJobEnds(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        try fixture.storage.write(JobLayout.modelKey(trial: 1), data: metricsModel(latency: 1))
        let worker = try FileWorker(
            storage: fixture.storage, runner: catRunner,
            configuration: .init(deviceType: "cpu", pollInterval: .milliseconds(50)),
            log: { _ in })
        let measured = onFleetThreads { try await worker.run() }
        let trainer = TrainerExchange(
            storage: fixture.storage, configuration: .init(pollInterval: .milliseconds(50), timeout: .seconds(60)))
        _ = try await trainer.waitForMetrics(trial: 1)
        try JobState.succeeded.write(to: fixture.storage)
        #expect(try await measured.value == [1])
        #expect(try JobState.read(from: fixture.storage) == .succeeded)
    }

    @Test("a stop request ends the loop")
    func stopRequest() async throws {
        let fixture = try await StorageFixture(.local)
        let worker = try FileWorker(
            storage: fixture.storage, runner: catRunner,
            configuration: .init(deviceType: "cpu", pollInterval: .milliseconds(50)),
            log: { _ in })
        let stop = FileWorkerStop()
        let measured = onFleetThreads { try await worker.run(until: stop) }
        try await Task.sleep(nanoseconds: 100_000_000)
        stop.request()
        #expect(try await measured.value == [])
    }

    @Test("cancelling the task of a running worker ends its loop")
    func cancellationEndsTheLoop() async throws {
        let fixture = try await StorageFixture(.local)
        let worker = try FileWorker(
            storage: fixture.storage, runner: catRunner,
            configuration: .init(deviceType: "cpu", pollInterval: .milliseconds(50)),
            log: { _ in })
        let running = Task { try await worker.run() }
        try await Task.sleep(nanoseconds: 100_000_000)
        running.cancel()
        #expect(try await running.value == [])
    }

    @Test("a job directory that cannot be listed for a lasting reason ends the worker with the reason")
    func aWorkerGivesUpOnADirectoryItCannotList() async throws {
        let folder = StorageTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A job folder replaced by a symlink to itself: listing it fails (ELOOP) the same way every time.
        let job = folder + "/job"
        let storage = try LocalStorage(root: job)
        try FileManager.default.removeItem(atPath: job)
        try FileManager.default.createSymbolicLink(atPath: job, withDestinationPath: job)
        let worker = try FileWorker(
            storage: storage, runner: ConstantRunner(),
            configuration: .init(deviceType: "cpu", pollInterval: .milliseconds(20)), log: { _ in })
        let error = try await #require(throws: FileWorker.Unreachable.self) { try await worker.run() }
        #expect(error.description.contains("giving up on") && error.description.contains(job), "\(error)")
    }

    @Test("the command runner: a script may log before its answer, the last JSON line wins")
    func commandRunnerTakesTheLastJSONLine() async throws {
        let folder = StorageTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/it's a model.onnx"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)))
        let runner = try CommandRunner(
            command: "echo log line; echo '{\"latency_ms\": 9}' >&2; test -f {model} && echo '{\"latency_ms\": 1.5}'")
        #expect(try await runner.measure(modelAt: path) == ["latency_ms": 1.5])
    }
}

/// Starts `body` in a task of its own on the fleet's threads, as `nas worker` runs its worker. `async let` would
/// start it on the cooperative pool, which other suites' synchronous work (training, gradient checks) can hold
/// for a minute on a loaded machine: the worker would not even begin before the test's deadline.
func onFleetThreads<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> Task<T, any Error> {
    Task(executorPreference: FleetExecutor.shared) { try await body() }
}
