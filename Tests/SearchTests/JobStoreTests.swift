import Foundation
import Search
import TestSupport
import Testing

func sampleConfig(name: String = "job") -> JobConfig {
    JobConfig(
        kind: "search", name: name, searchSpace: "mnist_list_of_dictionary", algorithm: "random", seed: 1,
        maxTrials: 4, maxParallelTrials: 2, maxFailedTrials: 2, constraints: ["latency_ms<=3:soft"],
        targetDeviceTypes: ["cpu-x86"], trainerArguments: ["--num-epochs", "1"])
}

@Suite struct JobStoreTests {
    @Test func recordsTrialsAcrossReopening() throws {
        let directory = try TestSupport.temporaryDirectory("nas-job").path
        let store = try JobStore.create(directory: directory, config: sampleConfig())
        let first = try store.addTrial(parameters: #"{"a":1}"#, decisions: [0, 1])
        let second = try store.addTrial(parameters: #"{"a":2}"#, decisions: [1, 0])
        #expect((first, second) == (1, 2))
        try store.markRunning(first)
        try store.markSucceeded(first, metrics: ["top_1_accuracy": 0.88, "latency_ms": 1.5], reward: 0.9)
        try store.markRunning(second)

        let reopened = try JobStore.open(directory: directory)
        #expect(reopened.config == sampleConfig())
        var trials = try reopened.trials()
        #expect(trials.map(\.state) == [.succeeded, .running])
        #expect(trials[0].metrics == ["top_1_accuracy": 0.88, "latency_ms": 1.5] && trials[0].reward == 0.9)
        #expect(trials[0].decisions == [0, 1] && trials[0].parameters == #"{"a":1}"#)
        // A search killed with trial 2 running: on resume it runs again, trial 1 is kept.
        #expect(try reopened.requeueInterrupted() == 1)
        trials = try reopened.trials()
        #expect(trials.map(\.state) == [.succeeded, .pending])
        try reopened.markFailed(2, reason: "trainer exited with status 3")
        #expect(try reopened.trials()[1].error == "trainer exited with status 3")
        #expect(reopened.trialDirectory(2) == directory + "/2")
    }

    @Test func refusesADirectoryHoldingAnotherJob() throws {
        let directory = try TestSupport.temporaryDirectory("nas-job").path
        _ = try JobStore.create(directory: directory, config: sampleConfig(name: "first"))
        do {
            _ = try JobStore.create(directory: directory, config: sampleConfig(name: "second"))
            Issue.record("a second job was created over the first")
        } catch {
            #expect("\(error)".contains("already holds job 'first'"))
        }
    }

    @Test func refusesFoldersThatAreNotJobs() throws {
        let directory = try TestSupport.temporaryDirectory("nas-job")
        #expect(throws: JobStoreError.self) { try JobStore.open(directory: directory.path) }
        try Data("this is not sqlite".utf8).write(to: directory.appendingPathComponent(JobStore.fileName))
        do {
            _ = try JobStore.open(directory: directory.path)
            Issue.record("a corrupt database was opened")
        } catch {
            #expect("\(error)".contains(JobStore.fileName))
        }
    }

    @Test func unknownTrialIsAnError() throws {
        let store = try JobStore.create(directory: try TestSupport.temporaryDirectory().path, config: sampleConfig())
        #expect(throws: JobStoreError.self) { try store.markRunning(9) }
    }

    @Test func aResumedJobsConfigurationChangesAndJobsOfEarlierVersionsStillOpen() throws {
        let directory = try TestSupport.temporaryDirectory("nas-job").path
        let store = try JobStore.create(directory: directory, config: sampleConfig())
        #expect(store.config.fleet == nil)
        var config = store.config
        config.maxTrials = 9
        config.fleet = JobFleetRecord(
            coordinator: nil, tokenFile: nil, host: "127.0.0.1", port: 0, transport: "files", pushWaitSeconds: 2)
        try store.update(config: config)
        #expect(try JobStore.open(directory: directory).config == config)

        // A configuration written before `fleet` existed decodes with none.
        let old = #"{"kind":"search","name":"j","searchSpace":"s","algorithm":"random","seed":1,"maxTrials":2,"maxParallelTrials":1,"maxFailedTrials":1,"constraints":[],"targetDeviceTypes":[],"trainerArguments":[],"searchTrials":[]}"#
        let decoded = try JSONDecoder().decode(JobConfig.self, from: Data(old.utf8))
        #expect(decoded.fleet == nil && decoded.maxTrials == 2)
    }

    @Test func opensAJobWrittenBeforeTrialsHadHandles() async throws {
        // Schema 1, as jobs were written before launchers stored their handles.
        let directory = try TestSupport.temporaryDirectory("nas-job").path
        let config = String(decoding: try JSONEncoder().encode(sampleConfig()), as: UTF8.self)
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1] + "/nas_job.sqlite")
            db.execute("CREATE TABLE job (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, state TEXT NOT NULL, parameters TEXT NOT NULL, decisions TEXT NOT NULL, metrics TEXT NOT NULL DEFAULT '{}', reward REAL, error TEXT, search_trial_id INTEGER, started_at REAL, ended_at REAL)")
            db.execute("INSERT INTO job VALUES ('config', ?), ('schema', '1')", (sys.argv[2],))
            db.execute("INSERT INTO trials (state, parameters, decisions) VALUES ('running', '{}', '0,1')")
            db.commit()
            """
        let made = try await TestSupport.run("/usr/bin/python3", ["-c", script, directory, config])
        try #require(made.status == 0, "\(made.stderr)")

        let store = try JobStore.open(directory: directory)
        #expect(store.config.launcher == nil && store.config.slurm == nil)
        #expect(try store.trials().map(\.handle) == [nil])
        try store.setHandle(1, "4242")
        try store.markLost(1, reason: "lost", rerun: true)
        let trial = try JobStore.open(directory: directory).trials()[0]
        #expect(trial.state == .pending && trial.lostRuns == 1 && trial.handle == nil)
    }

    @Test func keepsTheRunsAResumedSearchReattachedTo() throws {
        let directory = try TestSupport.temporaryDirectory("nas-job").path
        var config = sampleConfig()
        config.launcher = "slurm"
        config.slurm = SlurmOptions(partition: "gpu", extraOptions: ["--qos=low"])
        let store = try JobStore.create(directory: directory, config: config)
        for _ in 0..<3 {
            let id = try store.addTrial(parameters: "{}", decisions: [0])
            try store.markRunning(id)
            try store.setHandle(id, "10\(id)")
        }
        #expect(try store.requeueInterrupted(keeping: [2]) == 2)
        let reopened = try JobStore.open(directory: directory)
        #expect(reopened.config == config)
        #expect(try reopened.trials().map(\.state) == [.pending, .running, .pending])
        #expect(try reopened.trials().map(\.handle) == [nil, "102", nil])
    }
}
