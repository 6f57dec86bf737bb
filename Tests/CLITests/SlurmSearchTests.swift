import Foundation
import Search
import TestSupport
import Testing

/// `nas search --launcher slurm` against this machine's single-node Slurm cluster (`scripts/slurm-up.sh`, which
/// `scripts/bootstrap.sh` runs): trials as batch jobs, Ctrl-C, a resume after SIGKILL, a requeue, a job that
/// vanished. Without a running cluster every test fails, saying how to start one.
///
/// Trials that must stay running for a while measure a `phone` through the file exchange: they wait, idle, for
/// a file-mode worker that the test starts when it is done with them.
@Suite(.serialized) struct SlurmSearchTests {
    static let quick = [
        "--num-epochs", "1", "--train-limit", "300", "--test-limit", "100", "--latency-repeats", "5", "--threads", "1",
        "--launcher", "slurm", "--slurm-poll-interval", "0.2",
    ]
    /// Flags of trials that wait for a phone's file-mode worker before they end.
    static let waitForPhone = [
        "--target-device-type", "phone", "--constraint", "latency_ms<=2:soft", "--transport", "files",
        "--poll-interval", "0.1", "--latency-timeout", "300",
    ]

    init() async throws {
        let sinfo = try? await TestSupport.run("/usr/bin/sinfo", ["--noheader", "--format=%T"])
        let state = sinfo?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        try #require(
            sinfo?.status == 0 && ["idle", "mixed", "allocated", "completing"].contains { state.hasPrefix($0) },
            "Slurm is not running here (sinfo: '\(state)' \(sinfo?.stderr ?? "not installed")): start this machine's single-node cluster with `sudo bash scripts/slurm-up.sh` (scripts/bootstrap.sh installs and starts it)"
        )
    }

    func search(_ root: URL, _ name: String, _ extra: [String], environment: [String: String]? = nil) async throws
        -> TestSupport.Output
    {
        try await TestSupport.nas(
            ["search", "--root-output-dir", root.path, "--job-name", name, "--algorithm", "grid"] + Self.quick + extra,
            environment: environment)
    }

    /// Starts `nas` in the background, its output in `log`.
    func start(_ arguments: [String], log: URL) throws -> TestProcess {
        try TestSupport.startNas(arguments, outputPath: log.path)
    }

    /// A file-mode worker measuring `phone` trials of the job in `job`; it stops when the job ends.
    func phoneWorker(_ job: URL) throws -> TestProcess {
        try TestSupport.startNas([
            "worker", "--job-dir", job.path, "--device-type", "phone", "--poll-interval", "0.1",
            "--runner-command", "echo '{\"latency_ms\": 1.5}' # {model}",
        ])
    }

    func waitFor(_ what: String, timeout: Double = 120, _ condition: () async throws -> Bool) async throws {
        try await TestSupport.eventually(what, seconds: timeout, condition)
    }

    /// The state squeue gives Slurm job `id` (`RUNNING`, `CANCELLED`...), empty once it is gone.
    func slurmState(_ id: String) async throws -> String {
        try await TestSupport.run("/usr/bin/squeue", ["--noheader", "--states=all", "--jobs=\(id)", "--format=%T"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The job's trials once `count` of them have a Slurm job that runs.
    func running(_ job: URL, count: Int) async throws -> [TrialRecord] {
        var trials: [TrialRecord] = []
        try await waitFor("\(count) trial(s) running as Slurm jobs") {
            guard FileManager.default.fileExists(atPath: job.path + "/" + JobStore.fileName) else { return false }
            trials = (try? JobStore.open(directory: job.path).trials()) ?? []
            let handles = trials.compactMap(\.handle)
            guard handles.count == count else { return false }
            for handle in handles where try await slurmState(handle) != "RUNNING" { return false }
            return true
        }
        return trials
    }

    /// The lines of a trial's log where its batch script started: one per run (none before Slurm made the log).
    func runs(_ job: URL, _ trial: Int) throws -> [String] {
        let path = job.path + "/\(trial)/trainer.log"
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        return try String(contentsOfFile: path, encoding: .utf8)
            .split(separator: "\n").filter { $0.hasPrefix("nas: trial \(trial), Slurm job") }.map(String.init)
    }

    @Test func runsASearchAndItsRetrainingAsSlurmJobs() async throws {
        let root = try TestSupport.temporaryDirectory("nas-slurm")
        let result = try await search(
            root, "small",
            ["--max-trials", "3", "--max-parallel-trials", "2", "--slurm-time", "10", "--slurm-cpus-per-task", "1",
             "--slurm-option=--comment=nas-test"])
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("Search job small: 3 succeeded, 0 failed"))
        #expect(result.stderr.contains("RUNNING on "))

        let job = root.appendingPathComponent("small")
        let store = try JobStore.open(directory: job.path)
        let host = try await hostname()
        #expect(store.config.launcher == "slurm" && store.config.slurm?.time == "10")
        for trial in try store.trials() {
            let id = try #require(trial.handle)
            #expect(Int(id) != nil, "a Slurm job id: \(id)")
            #expect(try runs(job, trial.id) == ["nas: trial \(trial.id), Slurm job \(id), run 1, on \(host)"])
            let status = try String(contentsOfFile: job.path + "/\(trial.id)/slurm_exit_status", encoding: .utf8)
            #expect(status == "0 \(id)\n")
            // The name, the time limit and the pass-through option reached Slurm.
            let seen = try await TestSupport.run(
                "/usr/bin/squeue", ["--noheader", "--states=all", "--jobs=\(id)", "--format=%j|%l|%k|%T"])
            #expect(seen.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "nas.small.\(trial.id)|10:00|nas-test|COMPLETED")
        }

        let train = try await TestSupport.nas(
            ["train", "--search-job", job.path, "--trials", "2", "--root-output-dir", root.path, "--job-name", "stage2"]
                + Self.quick)
        try #require(train.status == 0, "\(train.stdout)\(train.stderr)")
        let retrained = try JobStore.open(directory: root.appendingPathComponent("stage2").path)
        #expect(retrained.config.launcher == "slurm")
        #expect(try retrained.trials().map(\.state) == [.succeeded])
        #expect(try retrained.trials().first?.handle.flatMap(Int.init) != nil)
    }

    @Test func theTrainersExitStatusComesThroughTheBatchScript() async throws {
        let root = try TestSupport.temporaryDirectory("nas-slurm")
        let result = try await search(
            root, "nan", ["--max-trials", "3", "--max-parallel-trials", "1", "--max-failed-trials", "1", "--learning-rate", "1e12"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("stopped: 1 trials failed (--max-failed-trials 1)"))
        let trials = try JobStore.open(directory: root.appendingPathComponent("nan").path).trials()
        #expect(trials.count == 1 && trials[0].error == "failed_with_nan_error")
        #expect(try await slurmState(try #require(trials[0].handle)) == "FAILED")
    }

    @Test(arguments: [("cancel", TrialState.cancelled, "CANCELLED"), ("wait", TrialState.succeeded, "COMPLETED")])
    func ctrlCCancelsOrWaitsForTheSlurmJobs(policy: String, expected: TrialState, slurm: String) async throws {
        let root = try TestSupport.temporaryDirectory("nas-slurm")
        let job = root.appendingPathComponent("interrupted")
        let log = root.appendingPathComponent("search.log")
        let search = try start(
            ["search", "--root-output-dir", root.path, "--job-name", "interrupted", "--max-trials", "4",
             "--max-parallel-trials", "2", "--on-interrupt", policy] + Self.quick + Self.waitForPhone,
            log: log)
        let trials = try await running(job, count: 2)
        search.signal(SIGINT)
        if policy == "wait" {
            try await waitFor("the search to wait") {
                try String(contentsOfFile: log.path, encoding: .utf8).contains("interrupted: waiting for 2 running trial(s)")
            }
            // The trials are still running: measured now, they finish.
            let worker = try phoneWorker(job)
            defer { worker.signal(SIGTERM) }
            await search.wait()
        } else {
            await search.wait()
        }
        #expect(await search.wait() == 130, "\(search.output)")
        let after = try JobStore.open(directory: job.path).trials()
        #expect(after.map(\.state) == [expected, expected], "\(after.map { ($0.state, $0.error ?? "") })")
        for trial in trials { #expect(try await slurmState(trial.handle!) == slurm) }
    }

    @Test func aResumeAfterSIGKILLReattachesToTheRunningJobs() async throws {
        let root = try TestSupport.temporaryDirectory("nas-slurm")
        let job = root.appendingPathComponent("killed")
        let arguments =
            ["search", "--root-output-dir", root.path, "--job-name", "killed", "--algorithm", "grid", "--max-trials",
             "2", "--max-parallel-trials", "2"] + Self.quick + Self.waitForPhone
        let first = try start(arguments, log: root.appendingPathComponent("first.log"))
        let before = try await running(job, count: 2)
        first.signal(SIGKILL)
        await first.wait()
        // The search is gone; its trials' jobs are not.
        for trial in before { #expect(try await slurmState(trial.handle!) == "RUNNING") }

        let log = root.appendingPathComponent("resumed.log")
        let resumed = try start(["search", "--resume", job.path], log: log)
        try await waitFor("the resumed search to re-attach") {
            try String(contentsOfFile: log.path, encoding: .utf8).contains("re-attached to the runs of trial(s) 1, 2")
        }
        let worker = try phoneWorker(job)
        await resumed.wait()
        await worker.wait()
        let text = try String(contentsOfFile: log.path, encoding: .utf8)
        #expect(await resumed.wait() == 0, "\(text)")
        #expect(!text.contains("will run again"))
        let after = try JobStore.open(directory: job.path).trials()
        #expect(after.map(\.state) == [.succeeded, .succeeded])
        #expect(after.map(\.handle) == before.map(\.handle))
        // Each trial ran once, in its first job: nothing was submitted again.
        for trial in after { #expect(try runs(job, trial.id).count == 1) }
        // Of this job: an earlier run of this test left jobs of the same names, in another folder.
        let named = try await TestSupport.run(
            "/usr/bin/squeue", ["--noheader", "--states=all", "--name=nas.killed.1,nas.killed.2", "--format=%i|%Z"])
        let ours = named.stdout.split(separator: "\n").filter { $0.hasSuffix("|" + job.path + "/1") || $0.hasSuffix("|" + job.path + "/2") }
        #expect(Set(ours.map { String($0.prefix { $0 != "|" }) }) == Set(before.compactMap(\.handle)))
    }

    @Test func aRequeuedTrialRunsAgainInItsJob() async throws {
        let root = try TestSupport.temporaryDirectory("nas-slurm")
        let job = root.appendingPathComponent("requeued")
        let log = root.appendingPathComponent("search.log")
        let search = try start(
            ["search", "--root-output-dir", root.path, "--job-name", "requeued", "--max-trials", "1",
             "--max-parallel-trials", "1"] + Self.quick + Self.waitForPhone,
            log: log)
        let id = try #require(try await running(job, count: 1).first?.handle)
        // Requeued once its batch script runs (squeue says RUNNING a moment before) and the search saw it run.
        try await waitFor("the first run") { try runs(job, 1).count == 1 }
        try await waitFor("the search to see the job run") {
            try String(contentsOfFile: log.path, encoding: .utf8).contains("Slurm job \(id) RUNNING")
        }
        let requeue = try await TestSupport.run("/usr/bin/scontrol", ["requeue", id])
        try #require(requeue.status == 0, "\(requeue.stderr)")
        // AuthInfo=cred_expire=10 in slurm-up.sh: the requeued job starts again some 10-30 s later.
        try await waitFor("the second run", timeout: 180) { try runs(job, 1).count == 2 }
        let worker = try phoneWorker(job)
        await search.wait()
        await worker.wait()
        let text = try String(contentsOfFile: log.path, encoding: .utf8)
        #expect(await search.wait() == 0, "\(text)")
        #expect(text.contains("Slurm job \(id) PENDING (BeginTime): requeued by Slurm"))
        let trial = try #require(try JobStore.open(directory: job.path).trials().first)
        #expect(trial.state == .succeeded && trial.handle == id && trial.lostRuns == 0)
        #expect(try runs(job, 1).map { $0.contains("Slurm job \(id), run ") } == [true, true])
        #expect(try runs(job, 1).last?.contains("run 2") == true)
    }

    @Test func aJobThatVanishedFromTheQueueRunsAgain() async throws {
        let root = try TestSupport.temporaryDirectory("nas-slurm")
        let job = root.appendingPathComponent("vanished")
        let first = try start(
            ["search", "--root-output-dir", root.path, "--job-name", "vanished", "--max-trials", "1",
             "--max-parallel-trials", "1"] + Self.quick + Self.waitForPhone,
            log: root.appendingPathComponent("first.log"))
        let id = try #require(try await running(job, count: 1).first?.handle)
        first.signal(SIGKILL)
        await first.wait()
        // As if the controller had lost the job: its id names no job, and the run is gone.
        try await TestSupport.run("/usr/bin/scancel", [id])
        try await waitFor("the job to end") { try await slurmState(id) == "CANCELLED" }
        try JobStore.open(directory: job.path).setHandle(1, "987654321")

        let log = root.appendingPathComponent("resumed.log")
        let resumed = try start(["search", "--resume", job.path], log: log)
        let worker = try phoneWorker(job)
        await resumed.wait()
        await worker.wait()
        let text = try String(contentsOfFile: log.path, encoding: .utf8)
        #expect(await resumed.wait() == 0, "\(text)")
        #expect(text.contains(
            "trial 1 lost to the cluster (Slurm job 987654321 disappeared from the queue without a final state"))
        let trial = try #require(try JobStore.open(directory: job.path).trials().first)
        #expect(trial.state == .succeeded && trial.lostRuns == 1)
        #expect(trial.handle != id && trial.handle != "987654321")
    }

    @Test func badSlurmInputIsRefusedBeforeTheJobExists() async throws {
        let root = try TestSupport.temporaryDirectory("nas-slurm")
        let partition = try await search(root, "bad", ["--slurm-partition", "no-such-partition"])
        #expect(partition.status != 0)
        #expect(partition.stderr.contains("Slurm refused a trial's job (options: --partition=no-such-partition)"))
        #expect(partition.stderr.contains("invalid partition specified: no-such-partition"), "\(partition.stderr)")
        let gres = try await search(root, "bad", ["--slurm-gres", "gpu:64"])
        #expect(gres.status != 0 && gres.stderr.contains("Slurm refused"), "\(gres.stderr)")
        let missing = try await search(root, "bad", [], environment: ["PATH": "/nonexistent"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("sbatch is not on PATH"), "\(missing.stderr)")
        let local = try await TestSupport.nas(["search", "--root-output-dir", root.path, "--slurm-time", "5"])
        #expect(local.status != 0 && local.stderr.contains("the --slurm-* flags need --launcher slurm"))
        let option = try await search(root, "bad", ["--slurm-option", "account=lab"])
        #expect(option.status != 0 && option.stderr.contains("is not an sbatch option"), "\(option.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("bad").path))
    }

    @Test func aDeviceWorkerStartedAsASlurmJobMeasuresTheSearchsTrials() async throws {
        let root = try TestSupport.temporaryDirectory("nas-slurm")
        let log = root.appendingPathComponent("search.log")
        let search = try start(
            ["search", "--root-output-dir", root.path, "--job-name", "fleet", "--max-trials", "1",
             "--max-parallel-trials", "1", "--target-device-type", "slurm-node", "--constraint", "latency_ms<=2:soft",
             "--transport", "push", "--push-wait", "120"] + Self.quick,
            log: log)
        // "fleet: coordinator URL (token in FILE)", as a user reads it.
        var fleet: (url: String, token: String)?
        try await waitFor("the search's coordinator") {
            let text = try String(contentsOfFile: log.path, encoding: .utf8)
            guard let line = text.split(separator: "\n").first(where: { $0.contains("fleet: coordinator ") }) else {
                return false
            }
            let words = line.split(separator: " ").map(String.init)
            guard let at = words.firstIndex(of: "coordinator"), let file = words.firstIndex(of: "in") else { return false }
            fleet = (words[at + 1], words[file + 1].trimmingCharacters(in: CharacterSet(charactersIn: "),")))
            return true
        }
        let submitted = try await TestSupport.run(
            "/usr/bin/sbatch",
            // A time limit, so that a worker this test fails to cancel does not hold a CPU for good.
            ["--parsable", "--time=5", "--export=ALL,NAS=\(try TestSupport.nasBinary())", "--output=\(root.path)/worker.log",
             TestSupport.packageRoot.appendingPathComponent("scripts/nas-worker.sbatch").path, fleet!.url, fleet!.token,
             "slurm-node", "--runner", "constant", "--constant-metric", "latency_ms=1.25"])
        try #require(submitted.status == 0, "\(submitted.stderr)")
        let worker = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let status = await search.wait()
        _ = try? await TestSupport.run("/usr/bin/scancel", [worker])
        let text = try String(contentsOfFile: log.path, encoding: .utf8)
        #expect(status == 0, "\(text)")
        let trial = try #require(try JobStore.open(directory: root.appendingPathComponent("fleet").path).trials().first)
        #expect(trial.state == .succeeded && trial.metrics["latency_ms"] == 1.25, "\(trial.metrics)")
    }

    func hostname() async throws -> String {
        try await TestSupport.run("/bin/hostname", []).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

