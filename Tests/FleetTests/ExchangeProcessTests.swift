import Foundation
import TestSupport
import Testing

@testable import Fleet

#if canImport(Glibc)
    import Glibc
#endif

/// A `nas worker --job-dir` process, with its output kept in a file for the failure messages.
final class WorkerProcess: Sendable {
    let process: TestProcess

    init(
        jobDir: String, environment extra: [String: String], folder: String, name: String, runner: String,
        extra arguments: [String]
    ) throws {
        var environment: [String: String?] = ["STORAGE_EMULATOR_HOST": nil]
        for (key, value) in extra { environment[key] = value }
        process = try TestSupport.startNas(
            [
                "worker", "--job-dir", jobDir, "--device-type", "cpu-test", "--poll-interval", "0.1",
                "--runner-command", runner, "--worker-id", name,
            ] + arguments, environment: environment, outputPath: folder + "/\(name).log")
    }

    var output: String { process.output }

    /// Waits for the exit (killing the worker after `timeout` seconds); returns the exit status.
    @discardableResult
    func waitForExit(timeout: Double = 60) async -> Int32 {
        let (status, ended) = await process.wait(seconds: timeout)
        if !ended { Issue.record("worker did not exit within \(timeout) s; its output:\n\(output)") }
        return status
    }

    func kill9() async {
        await process.killAndWait()
    }
}

/// Polls `condition` every 20 ms for up to `timeout` seconds.
func eventually(_ timeout: Double = 60, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
    return try condition()
}

@Suite("File exchange with real nas worker --job-dir processes", .serialized)
struct ExchangeProcessTests {
    @Test(
        "two workers racing for the same trials: every trial is measured exactly once",
        arguments: StorageBackend.shared)
    func race(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let folder = StorageTestSupport.temporaryFolder("nas-race")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = folder + "/measured.txt"
        // Each measurement appends the model (which names its trial) to one log, then prints it as metrics.
        // One printf is one write(2) in append mode, so lines of concurrent workers do not interleave.
        let runner = "printf '%s\\n' \"$(cat {model})\" >> '\(log)'; sleep 0.05; cat {model}"
        let trainer = TrainerExchange(
            storage: fixture.storage, configuration: .init(pollInterval: .milliseconds(50), timeout: .seconds(60)))
        let trials = Array(1...10)
        for trial in trials.prefix(5) {
            try trainer.submit(
                trial: trial, model: metricsModel(latency: Double(trial), extra: ", \"trial\": \(trial)"))
        }
        let workers = try ["A", "B"].map { try WorkerProcess(fixture, folder: folder, name: $0, runner: runner) }
        for trial in trials.dropFirst(5) {
            try trainer.submit(
                trial: trial, model: metricsModel(latency: Double(trial), extra: ", \"trial\": \(trial)"))
        }
        for trial in trials {
            let metrics = try await trainer.waitForMetrics(trial: trial)
            #expect(metrics.latencyMilliseconds == Double(trial))
            #expect(metrics.others["trial"] == Double(trial))
        }
        try JobState.succeeded.write(to: fixture.storage)
        for worker in workers {
            let status = await worker.waitForExit()
            #expect(status == 0, "worker output:\n\(worker.output)")
        }
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        var counts = [Int: Int]()
        for line in lines {
            let metrics = try CommandRunner.parseMetrics(Array(line.utf8), command: "log")
            counts[Int(metrics["trial"] ?? -1), default: 0] += 1
        }
        #expect(counts == Dictionary(uniqueKeysWithValues: trials.map { ($0, 1) }), "\(workers.map(\.output))")
    }

    @Test(
        "a worker killed while holding a claim: another takes the trial over after the lease",
        arguments: StorageBackend.shared)
    func killedWorker(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let folder = StorageTestSupport.temporaryFolder("nas-kill")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A's runner hangs while the test's folder exists, so that its orphan ends with the test.
        let stuck = "while [ -d '\(folder)' ]; do sleep 0.05; done; cat {model}"
        let trainer = TrainerExchange(
            storage: fixture.storage, configuration: .init(pollInterval: .milliseconds(50), timeout: .seconds(60)))
        try trainer.submit(trial: 1, model: metricsModel(latency: 11))
        let a = try WorkerProcess(fixture, folder: folder, name: "A", runner: stuck, extra: ["--lease-seconds", "1.5"])
        let claimed = try await eventually { try fixture.storage.exists(JobLayout.claimKey(trial: 1)) }
        #expect(claimed, "worker A never claimed trial 1:\n\(a.output)")
        await a.kill9()
        let held = try #require(try fixture.storage.read(JobLayout.claimKey(trial: 1)))
        #expect(TrialClaim.decode(held.data)?.worker == "A")
        let b = try WorkerProcess(
            fixture, folder: folder, name: "B", runner: "cat {model}", extra: ["--lease-seconds", "1.5"])
        let metrics = try await trainer.waitForMetrics(trial: 1)
        #expect(metrics.latencyMilliseconds == 11)
        let claim = try #require(try fixture.storage.read(JobLayout.claimKey(trial: 1)))
        #expect(TrialClaim.decode(claim.data)?.worker == "B")
        try JobState.succeeded.write(to: fixture.storage)
        #expect(await b.waitForExit() == 0)
        #expect(b.output.contains("took over a lapsed claim"), "\(b.output)")
    }

    @Test(
        "SIGTERM: the worker finishes the model in hand, writes its metrics, then exits 0",
        arguments: StorageBackend.shared)
    func sigterm(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let folder = StorageTestSupport.temporaryFolder("nas-term")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let started = folder + "/started"
        let trainer = TrainerExchange(
            storage: fixture.storage, configuration: .init(pollInterval: .milliseconds(50), timeout: .seconds(60)))
        try trainer.submit(trial: 1, model: metricsModel(latency: 1))
        try trainer.submit(trial: 2, model: metricsModel(latency: 2))
        let worker = try WorkerProcess(
            fixture, folder: folder, name: "W", runner: "touch '\(started)'; sleep 1; cat {model}")
        #expect(await eventually { FileManager.default.fileExists(atPath: started) }, "\(worker.output)")
        worker.process.signal(SIGTERM)
        #expect(await worker.waitForExit() == 0, "\(worker.output)")
        #expect(try await trainer.waitForMetrics(trial: 1).latencyMilliseconds == 1)
        #expect(try fixture.storage.exists(JobLayout.metricsKey(trial: 2)) == false)  // not started after the signal
        #expect(worker.output.contains("stopped on request"), "\(worker.output)")
    }

    @Test(
        "a job folder with link loops and links out of it: the worker measures the real trial, follows no link, and stops on SIGTERM and on the job's end",
        .timeLimit(.minutes(2)))
    func symbolicLinks() async throws {
        let links = try LinkedJobFolder()
        let folder = StorageTestSupport.temporaryFolder("nas-links")
        defer {
            links.remove()
            try? FileManager.default.removeItem(atPath: folder)
        }
        // The fixture's real trial 1 holds a model the command runner can answer with.
        let storage = try LocalStorage(root: links.job)
        try storage.write(JobLayout.modelKey(trial: 1), data: metricsModel(latency: 7))
        let trainer = TrainerExchange(
            storage: storage, configuration: .init(pollInterval: .milliseconds(50), timeout: .seconds(60)))
        let view = StorageFixtureView(jobDir: links.job, environment: [:])
        let first = try WorkerProcess(view, folder: folder, name: "A", runner: "cat {model}")
        #expect(try await trainer.waitForMetrics(trial: 1).latencyMilliseconds == 7, "\(first.output)")
        first.process.signal(SIGTERM)
        #expect(await first.waitForExit() == 0, "\(first.output)")
        #expect(first.output.contains("stopped on request"), "\(first.output)")
        let second = try WorkerProcess(view, folder: folder, name: "B", runner: "cat {model}")
        try JobState.succeeded.write(to: storage)
        #expect(await second.waitForExit() == 0, "\(second.output)")
        // Nothing was written through the links: the outside folder holds only its model, the linked trials nothing.
        #expect(try FileManager.default.contentsOfDirectory(atPath: links.outside + "/saved_model") == ["model.onnx"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: links.job + "/3/saved_model") == ["model.onnx"])
    }

    @Test("bad command lines: a malformed gs:// URL or an out-of-range worker id is refused with the reason")
    func badCommandLines() async throws {
        let folder = StorageTestSupport.temporaryFolder("nas-cli")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cases: [([String], String)] = [
            (["--job-dir", "gs://Bad_Bucket/x"], "bucket name 'Bad_Bucket'"),
            (["--job-dir", "gs:/x/y"], "starts with 'gs://'"),
            (["--job-dir", folder, "--num-latency-workers", "2", "--latency-worker-id", "2"], "[0, 1]"),
        ]
        for (arguments, reason) in cases {
            let result = try await TestSupport.nas(
                ["worker", "--device-type", "cpu", "--runner-command", "cat {model}"] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(reason), "\(arguments): \(result.stderr)")
        }
    }

    @Test("the emulator stopped and restarted mid-job: the job still completes")
    func emulatorRestart() async throws {
        let data = StorageTestSupport.temporaryFolder("nas-gcs-data")
        let folder = StorageTestSupport.temporaryFolder("nas-restart")
        defer {
            try? FileManager.default.removeItem(atPath: data)
            try? FileManager.default.removeItem(atPath: folder)
        }
        var emulator = try await FakeGCS(dataFolder: data)
        defer { emulator.stop() }
        try emulator.createBucket("nas-test")
        let storage = try GCSStorage(
            bucket: "nas-test", prefix: "job", configuration: StorageTestSupport.emulatorConfiguration(emulator))
        let trainer = TrainerExchange(
            storage: storage, configuration: .init(pollInterval: .milliseconds(50), timeout: .seconds(90)))
        // Trial 2's metrics upload falls in the outage (it ends 0.3 s after the claim; the outage lasts 2 s), so
        // the worker's retries, and the trainer's polls, meet the stopped emulator.
        let runner = "if grep -q slow {model}; then sleep 0.3; fi; cat {model}"
        let worker = try WorkerProcess(
            StorageFixtureView(
                jobDir: "gs://nas-test/job", environment: ["STORAGE_EMULATOR_HOST": emulator.hostAndPort]),
            folder: folder, name: "W", runner: runner, extra: ["--lease-seconds", "1.5"])
        try trainer.submit(trial: 1, model: metricsModel(latency: 1))
        #expect(try await trainer.waitForMetrics(trial: 1).latencyMilliseconds == 1)
        try trainer.submit(trial: 2, model: metricsModel(latency: 2, extra: ", \"slow\": 1"))
        let claimed = try await eventually { try storage.exists(JobLayout.claimKey(trial: 2)) }
        #expect(claimed)
        await emulator.stopAndWait()
        try await Task.sleep(nanoseconds: 2_000_000_000)
        emulator = try await FakeGCS(port: emulator.port, dataFolder: data)
        #expect(try await trainer.waitForMetrics(trial: 2).latencyMilliseconds == 2)
        try trainer.submit(trial: 3, model: metricsModel(latency: 3))
        #expect(try await trainer.waitForMetrics(trial: 3).latencyMilliseconds == 3)
        try JobState.succeeded.write(to: storage)
        #expect(await worker.waitForExit() == 0, "\(worker.output)")
    }
}

/// The parts of a ``StorageFixture`` a worker process needs, for stores the test built itself.
struct StorageFixtureView {
    let jobDir: String
    let environment: [String: String]
}

extension WorkerProcess {
    convenience init(_ view: StorageFixtureView, folder: String, name: String, runner: String, extra: [String] = [])
        throws
    {
        try self.init(
            jobDir: view.jobDir, environment: view.environment, folder: folder, name: name, runner: runner, extra: extra
        )
    }

    convenience init(_ fixture: StorageFixture, folder: String, name: String, runner: String, extra: [String] = [])
        throws
    {
        try self.init(
            jobDir: fixture.jobDir, environment: fixture.environment, folder: folder, name: name, runner: runner,
            extra: extra)
    }
}
