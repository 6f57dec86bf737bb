import Foundation
import Search
import TestSupport
import Testing

/// `nas search` and `nas train` end to end, with real trainer processes on small slices of the data.
@Suite struct SearchCommandTests {
    static let quick = [
        "--num-epochs", "1", "--train-limit", "600", "--test-limit", "200", "--latency-repeats", "5",
        "--threads", "1",
    ]

    func search(_ root: URL, _ name: String, _ extra: [String]) async throws -> TestSupport.Output {
        try await TestSupport.nas(
            ["search", "--root-output-dir", root.path, "--job-name", name, "--algorithm", "random", "--seed", "3"]
                + Self.quick + extra)
    }

    /// Starts `nas` without waiting, its output kept in a temporary file.
    func start(_ arguments: [String]) throws -> TestProcess {
        try TestSupport.startNas(arguments)
    }

    func waitFor(_ what: String, timeout: Double = 120, _ condition: () throws -> Bool) async throws {
        try await TestSupport.eventually(what, seconds: timeout, condition)
    }

    @Test func runsALatencyConstrainedSearchEndToEnd() async throws {
        let root = try TestSupport.temporaryDirectory("nas-search")
        let result = try await search(
            root, "small", ["--max-trials", "3", "--max-parallel-trials", "2", "--constraint", "latency_ms<=0.05:soft"])
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("Search job small: 3 succeeded, 0 failed"))
        #expect(result.stdout.contains("Best trials (* = Pareto-optimal):"))
        #expect(result.stdout.contains("report: \(root.path)/small/report.html"))
        #expect(result.stderr.contains("trial 1 started") && result.stderr.contains("succeeded: accuracy"))

        let store = try JobStore.open(directory: root.appendingPathComponent("small").path)
        let trials = try store.trials()
        #expect(trials.count == 3 && trials.allSatisfy { $0.state == .succeeded })
        #expect(Set(trials.map(\.decisions)).count == 3)
        for trial in trials {
            #expect(trial.metrics["latency_ms"] != nil && trial.metrics["top_1_accuracy"] != nil)
            #expect(trial.reward == trial.metrics["nas_reward"])
            let model = store.trialDirectory(trial.id) + "/saved_model/model.onnx"
            #expect(FileManager.default.fileExists(atPath: model))
        }
        #expect(FileManager.default.fileExists(atPath: store.directory + "/report.html"))

        // The same directory cannot hold a second job.
        let again = try await search(root, "small", ["--max-trials", "1"])
        #expect(again.status != 0 && again.stderr.contains("already holds job 'small'"))

        // Stage 2: trial 1 retrains search trial 3, trial 2 retrains search trial 1.
        let train = try await TestSupport.nas(
            ["train", "--search-job", store.directory, "--trials", "3,1", "--root-output-dir", root.path, "--job-name",
             "stage2"] + Self.quick)
        try #require(train.status == 0, "\(train.stdout)\(train.stderr)")
        let retrained = try JobStore.open(directory: root.appendingPathComponent("stage2").path).trials()
        #expect(retrained.map(\.searchTrialID) == [3, 1])
        #expect(retrained.map { $0.metrics["nas_trial_id"] } == [3, 1])
        #expect(retrained.map(\.decisions) == [trials[2].decisions, trials[0].decisions])
        #expect(retrained.allSatisfy { $0.metrics["latency_ms"] != nil })
        let wrongKind = try await TestSupport.nas(["search", "--resume", root.appendingPathComponent("stage2").path])
        #expect(wrongKind.status != 0 && wrongKind.stderr.contains("holds a train job; continue it with 'nas train --resume'"))
        let unknown = try await TestSupport.nas(
            ["train", "--search-job", store.directory, "--trials", "1,8", "--root-output-dir", root.path])
        #expect(unknown.status != 0 && unknown.stderr.contains("has no trial 8"))
    }

    /// A device type no push worker serves: trials fall back to the file exchange, and a file-mode worker
    /// watching the job folder measures them, then stops by itself when the search ends.
    @Test func fallsBackToTheFileExchangeForUnreachableDevices() async throws {
        let root = try TestSupport.temporaryDirectory("nas-search")
        let job = root.appendingPathComponent("phone")
        let search = try start(
            ["search", "--root-output-dir", root.path, "--job-name", "phone", "--max-trials", "2",
             "--max-parallel-trials", "2", "--target-device-type", "phone", "--constraint", "latency_ms<=2:soft",
             "--push-wait", "1", "--poll-interval", "0.1", "--latency-timeout", "600"] + Self.quick)
        try await waitFor("the job folder") { FileManager.default.fileExists(atPath: job.path + "/job_status.json") }
        let worker = try start([
            "worker", "--job-dir", job.path, "--device-type", "phone", "--poll-interval", "0.1",
            "--runner-command", "echo '{\"latency_ms\": 1.5, \"memory_bytes\": 4096}' # {model}",
        ])
        #expect(await search.wait() == 0, "\(search.output)")
        try await waitFor("the file worker to stop", timeout: 30) { !worker.isRunning }
        #expect(await worker.wait() == 0, "\(worker.output)")
        let trials = try JobStore.open(directory: job.path).trials()
        #expect(trials.count == 2)
        for trial in trials {
            #expect(trial.state == .succeeded)
            #expect(trial.metrics["latency_ms"] == 1.5 && trial.metrics["memory_bytes"] == 4096)
            let latency = try String(contentsOfFile: job.path + "/\(trial.id)/saved_model/model_latency.json", encoding: .utf8)
            #expect(latency.contains("\"latency_in_milliseconds\":1.5") || latency.contains("\"latency_in_milliseconds\": 1.5"))
        }
    }

    /// Two device types in one job: this machine's through the embedded native worker, a phone through the file
    /// exchange in its own folder; one latency constraint each, one column each in the results.
    @Test func constrainsLatencyOnTwoDeviceTypesAtOnce() async throws {
        let machine = try await TestSupport.run("/usr/bin/uname", ["-m"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let local = machine == "x86_64" ? "cpu-x86" : machine == "aarch64" ? "cpu-arm64" : "cpu-\(machine)"
        let root = try TestSupport.temporaryDirectory("nas-search")
        let job = root.appendingPathComponent("two")
        let search = try start(
            ["search", "--root-output-dir", root.path, "--job-name", "two", "--max-trials", "2", "--max-parallel-trials",
             "2", "--target-device-type", local, "--target-device-type", "phone", "--constraint",
             "latency_ms.\(local)<=1:soft", "--constraint", "latency_ms.phone<=2:soft", "--push-wait", "1",
             "--poll-interval", "0.1", "--latency-timeout", "120"] + Self.quick)
        let exchange = job.appendingPathComponent("devices/phone")
        try await waitFor("the phone's exchange folder") {
            FileManager.default.fileExists(atPath: exchange.path + "/job_status.json")
        }
        let worker = try start([
            "worker", "--job-dir", exchange.path, "--device-type", "phone", "--poll-interval", "0.1",
            "--runner-command", "echo '{\"latency_ms\": 1.5}' # {model}",
        ])
        #expect(await search.wait() == 0, "\(search.output)")
        try await waitFor("the phone worker to stop", timeout: 30) { !worker.isRunning }
        let trials = try JobStore.open(directory: job.path).trials()
        #expect(trials.count == 2)
        for trial in trials {
            #expect(trial.state == .succeeded)
            #expect(trial.metrics["latency_ms.phone"] == 1.5)
            #expect((trial.metrics["latency_ms.\(local)"] ?? 0) > 0)
            #expect(trial.metrics["latency_ms"] == nil)
        }
        let list = try await TestSupport.nas(["trials", "list", job.path])
        #expect(list.stdout.contains("latency_ms.\(local)") && list.stdout.contains("latency_ms.phone"))
    }

    @Test func jsonEventsForScripts() async throws {
        let root = try TestSupport.temporaryDirectory("nas-search")
        let result = try await search(root, "json", ["--max-trials", "1", "--json"])
        try #require(result.status == 0, "\(result.stderr)")
        let events = try result.stdout.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        #expect(events.map { $0["event"] as? String } == ["job_started", "trial_started", "trial_succeeded", "job_finished"])
        // Objects, not JSON texts inside strings: the architecture and the metrics read as they are.
        let started = try #require(events.first { $0["event"] as? String == "trial_started" })
        #expect((started["nas_params"] as? [String: Any])?["decisions"] != nil, "\(started)")
        let succeeded = try #require(events.first { $0["event"] as? String == "trial_succeeded" })
        #expect((succeeded["metrics"] as? [String: Any])?["nas_reward"] != nil)
        #expect(result.stderr.contains("Search job json: 1 succeeded"))
    }

    @Test func resumesAfterSIGKILLWithoutRerunningFinishedTrials() async throws {
        let root = try TestSupport.temporaryDirectory("nas-search")
        let job = root.appendingPathComponent("killed")
        let arguments = ["search", "--root-output-dir", root.path, "--job-name", "killed", "--algorithm", "grid",
                         "--max-trials", "3", "--max-parallel-trials", "1"] + Self.quick
        let process = try start(arguments)
        let path = job.path
        let killed = await process.signal(SIGKILL) {
            guard FileManager.default.fileExists(atPath: path + "/" + JobStore.fileName) else { return false }
            let trials = (try? JobStore.open(directory: path).trials()) ?? []
            return trials.count == 2 && trials[1].state == .running
        }
        try #require(killed, "trial 2 never started: \(process.output)")
        await process.wait()
        let before = try JobStore.open(directory: job.path).trials()
        #expect(before.first?.state == .succeeded)
        #expect(before.last?.state == .running)

        let resumed = try await TestSupport.nas(["search", "--resume", job.path])
        try #require(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
        #expect(resumed.stderr.contains("1 interrupted trial(s) will run again"))
        let after = try JobStore.open(directory: job.path).trials()
        #expect(after.count == 3 && after.allSatisfy { $0.state == .succeeded })
        #expect(after[0].metrics == before[0].metrics)
        let firstLog = try String(contentsOfFile: job.path + "/1/trainer.log", encoding: .utf8)
        #expect(firstLog.components(separatedBy: "nas trainer: model").count - 1 == 1, "trial 1 ran again")
    }

    @Test(arguments: [("wait", TrialState.succeeded), ("cancel", TrialState.cancelled)])
    func ctrlCStopsGracefully(policy: String, expected: TrialState) async throws {
        let root = try TestSupport.temporaryDirectory("nas-search")
        let job = root.appendingPathComponent("interrupted")
        let process = try start(
            ["search", "--root-output-dir", root.path, "--job-name", "interrupted", "--max-trials", "4",
             "--max-parallel-trials", "1", "--on-interrupt", policy] + Self.quick)
        let log = job.path + "/1/trainer.log"
        let interrupted = await process.signal(SIGINT) { FileManager.default.fileExists(atPath: log) }
        try #require(interrupted, "trial 1 never started: \(process.output)")
        #expect(await process.wait() == 130, "\(process.output)")
        let trials = try JobStore.open(directory: job.path).trials()
        #expect(trials.count == 1 && trials[0].state == expected, "\(trials.map { ($0.state, $0.error ?? "") })")
        // The trial's status file agrees with the store; the job says it may resume, so file-mode workers wait.
        let trialStatus = try String(contentsOfFile: job.path + "/1/job_status.json", encoding: .utf8)
        #expect(trialStatus.contains("\"\(expected.rawValue)\""), "\(trialStatus)")
        let jobStatus = try String(contentsOfFile: job.path + "/job_status.json", encoding: .utf8)
        #expect(jobStatus.contains("PAUSED"), "\(jobStatus)")
    }

    @Test func resumeKeepsTheJobsFlagsExtendsItAndRefusesOtherChanges() async throws {
        let root = try TestSupport.temporaryDirectory("nas-search")
        let first = try await search(root, "extend", ["--max-trials", "1", "--transport", "files", "--push-wait", "3"])
        try #require(first.status == 0, "\(first.stdout)\(first.stderr)")
        let job = root.appendingPathComponent("extend").path

        let refused = try await TestSupport.nas(["search", "--resume", job, "--num-epochs", "3", "--algorithm", "grid"])
        #expect(refused.status == 64, "\(refused.stderr)")
        #expect(refused.stderr.contains("--algorithm, --num-epochs cannot change when a job resumes"), "\(refused.stderr)")
        #expect(!refused.stderr.contains("Usage:"))

        // A finished job extended, as continuing an Optuna study: one more trial, the first one kept.
        let extended = try await TestSupport.nas(["search", "--resume", job, "--max-trials", "2"])
        try #require(extended.status == 0, "\(extended.stdout)\(extended.stderr)")
        #expect(extended.stdout.contains("2 succeeded, 0 failed"), "\(extended.stdout)")
        let store = try JobStore.open(directory: job)
        #expect(store.config.maxTrials == 2)
        #expect(store.config.fleet?.transport == "files" && store.config.fleet?.pushWaitSeconds == 3)
        #expect(try store.trials().map(\.state) == [.succeeded, .succeeded])
        let fewer = try await TestSupport.nas(["search", "--resume", job, "--max-trials", "1"])
        #expect(fewer.status == 64 && fewer.stderr.contains("fewer than the 2 trials"), "\(fewer.stderr)")
    }

    @Test func stopsAtMaxFailedTrials() async throws {
        let root = try TestSupport.temporaryDirectory("nas-search")
        let result = try await search(
            root, "failing", ["--max-trials", "5", "--max-parallel-trials", "1", "--max-failed-trials", "2",
                              "--learning-rate", "1e12"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("stopped: 2 trials failed (--max-failed-trials 2)"))
        let trials = try JobStore.open(directory: root.appendingPathComponent("failing").path).trials()
        #expect(trials.count == 2 && trials.allSatisfy { $0.state == .failed && $0.error == "failed_with_nan_error" })
    }

    @Test func refusesBadInputBeforeAnyTraining() async throws {
        let root = try TestSupport.temporaryDirectory("nas-search")
        let cases: [([String], String)] = [
            (["--search-space", "no_such_space"], "no_such_space"),
            (["--algorithm", "annealing"], "unknown algorithm 'annealing'"),
            (["--constraint", "power_w<=5"], "which no trial of this job produces"),
            (["--constraint", "latency_ms<=0"], "target"),
            (["--push-wait=-1"], "--push-wait must be 0 or more seconds"),
        ]
        for (extra, message) in cases {
            let result = try await search(root, "bad", extra)
            #expect(result.status != 0, "\(extra) was accepted")
            #expect(result.stderr.contains(message), "\(extra): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("bad").path))
        let notAJob = try await TestSupport.nas(["search", "--resume", root.path])
        #expect(notAJob.status != 0 && notAJob.stderr.contains("is not a nas job directory"))
    }

    /// A job's name is one folder under the root: `--job-name ../../x` once wrote outside it, and an empty name
    /// made the root itself the job.
    @Test(arguments: [
        ("../../nas-escaped", "separator '/'"), ("", "is empty"), (".", "names the root"), ("..", "names the root"),
        ("a/b", "separator '/'"), ("a\\b", "separator '\\'"), ("tab\there", "control character U+9"),
        ("line\nbreak", "control character U+A"), (String(repeating: "n", count: 256), "256 bytes long"),
    ])
    func refusesJobNamesThatLeaveTheRoot(_ name: String, _ reason: String) async throws {
        let parent = try TestSupport.temporaryDirectory("nas-job-names")
        let root = parent.appendingPathComponent("a/b/root")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let result = try await search(root, name, ["--max-trials", "1"])
        #expect(result.status == 64, "\(name.debugDescription): \(result.stderr)")
        #expect(result.stderr.contains("--job-name") && result.stderr.contains(reason), "\(result.stderr)")
        #expect(result.stderr.contains("Usage:"), "\(result.stderr)")
        // Nothing was created, inside the root or around it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path) == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path) == ["a"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path + "/a") == ["b"])
    }
}
