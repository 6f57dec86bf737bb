import Constraints
import Foundation
import ONNX
import Search
import TestSupport
import Testing
import Trainer

/// A user's trainer command as a trial's trainer, with real `/bin/sh` commands: the contract it gets, the metrics
/// it reports, and each way it can fail.
@Suite struct CommandTrainerTests {
    static let parameters = TrialParameters(
        choice: SearchChoice([1, 0]), value: try! JSON.parse(#"{"width": 8, "block": "mbconv"}"#))

    func trial(_ directory: URL, id: Int = 4) -> TrialContext {
        TrialContext(trialID: id, directory: directory.path, parameters: Self.parameters)
    }

    /// A small real ONNX model, as a trainer would export it.
    static func model() throws -> [UInt8] {
        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 2)])
        let weights = Trainer.initialWeights(architecture: architecture, seed: 1)
        return try OnnxExport.serialized(architecture: architecture, weights: weights, batch: 1)
    }

    func pipeline(_ spec: TrainerCommandSpec, constraints: [String] = [], environment: [String: String] = [:])
        throws -> TrialPipeline
    {
        let reward = Reward(constraints: try constraints.map { try Constraint(parsing: $0) })
        return TrialPipeline(
            trainer: CommandTrainer(spec: spec, environment: environment, log: { _ in }), measurer: nil,
            deviceTypes: [], reward: reward)
    }

    @Test func getsTheSeedsContractAndReportsThroughTheHypertuneFile() async throws {
        let directory = try TestSupport.temporaryDirectory("command-trainer")
        let model = try Self.model()
        let source = try TestSupport.temporaryDirectory("command-model").appendingPathComponent("model.onnx")
        try Data(model).write(to: source)
        // Records its arguments and environment (the contract's flags follow the command's last word: `true`), leaves a model and reports as NasMetricsReporter does.
        let command = """
            for a in "$@"; do printf '%s\\n' "$a"; done > "$NAS_TRIAL_DIR/args.txt"; env > "$NAS_TRIAL_DIR/env.txt";
            mkdir -p "$AIP_MODEL_DIR" && cp '\(source.path)' "$AIP_MODEL_DIR/model.onnx";
            mkdir -p "$(dirname "$CLOUD_ML_HP_METRIC_FILE")";
            echo '{"trial": "4", "top_1_accuracy": "0.9", "key_0": "params", "value_0": "1234"}' > "$CLOUD_ML_HP_METRIC_FILE";
            true
            """
        let spec = TrainerCommandSpec(command: command, flags: ["num_epochs=2", "target_flops_million=0.8"])
        let metrics = try await pipeline(
            spec, constraints: ["flops_million<=1:vertex-hard"], environment: ["NAS_COORDINATOR_URL": "http://c:1"]
        ).run(trial(directory))

        let arguments = try String(contentsOf: directory.appendingPathComponent("args.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        #expect(
            arguments == [
                "--num_epochs=2", "--target_flops_million=0.8", "--nas_params_str=\(Self.parameters.jsonText)",
                "--job-dir=\(directory.path)",
            ])
        let environment = try String(contentsOf: directory.appendingPathComponent("env.txt"), encoding: .utf8)
        for line in [
            "CLOUD_ML_TRIAL_ID=4", "AIP_MODEL_DIR=\(directory.path)/saved_model",
            "CLOUD_ML_HP_METRIC_TAG=top_1_accuracy",
            "CLOUD_ML_HP_METRIC_FILE=\(directory.path)/hypertune/output.metrics", "NAS_COORDINATOR_URL=http://c:1",
            "NAS_PARENT_PID=\(getpid())",
        ] {
            #expect(environment.contains(line + "\n"), "\(line)")
        }
        #expect(metrics["top_1_accuracy"] == 0.9 && metrics["params"] == 1234)
        // FLOPs are counted from the ONNX the command left, and the reward is nas's.
        let flops = Double(try OnnxFlops.count(bytes: model).total)
        #expect(metrics["flops"] == flops)
        #expect(metrics["nas_reward"] == 0.9 && metrics["computed_reward"] == nil)
        let written = try JSON.parse(Array(try Data(contentsOf: directory.appendingPathComponent("metrics.json"))))
        #expect(written["nas_reward"] == .number(0.9))
    }

    @Test func readsMetricsJSONAndOutputLinesAndHonoursItsOwnReward() async throws {
        let directory = try TestSupport.temporaryDirectory("command-trainer")
        let command = """
            echo 'epoch=1 val_acc=0.5'; echo 'epoch=2 val_acc=0.75 my_reward=0.6';
            echo '{"loss": 0.3, "notes": ["fine"]}' > "$NAS_TRIAL_DIR/metrics.json"; true
            """
        let spec = TrainerCommandSpec(
            command: command, accuracyMetric: "val_acc", rewardMetric: "my_reward", standardOutputMetrics: true)
        let metrics = try await pipeline(spec, constraints: ["loss<=0.6:vertex-soft"]).run(trial(directory))
        #expect(metrics["top_1_accuracy"] == 0.75 && metrics["val_acc"] == 0.75 && metrics["epoch"] == 2)
        #expect(metrics["loss"] == 0.3)
        // The trainer's reward is the trial's; nas's own, 0.75 * (0.6/0.3)^1, is kept beside it.
        #expect(metrics["nas_reward"] == 0.6)
        #expect(abs((metrics["computed_reward"] ?? 0) - 1.5) < 1e-12)
        // No model, and no device to measure: no FLOPs, and the trial still succeeds.
        #expect(metrics["flops"] == nil)
    }

    @Test func failuresSayWhatTheTrainerDid() async throws {
        let cases: [(TrainerCommandSpec, [String], String)] = [
            (
                TrainerCommandSpec(command: "echo starting; echo 'ValueError: bad shape' >&2; exit 3"), [],
                "the trainer command exited with status 3; its last lines: starting | ValueError: bad shape"
            ),
            (
                TrainerCommandSpec(command: "echo 'loss=0.5'"), [],
                "the trainer reported no top_1_accuracy (--accuracy-metric); it reported nothing"
            ),
            (
                TrainerCommandSpec(
                    command: "echo top_1_accuracy=0.5", rewardMetric: "nas_reward", standardOutputMetrics: true),
                [], "the trainer reported no nas_reward (--nas-target-reward-metric)"
            ),
            (
                TrainerCommandSpec(command: "echo '{\"top_1_accuracy\": 0.5' > $NAS_TRIAL_DIR/metrics.json; true"), [],
                "metrics.json: not JSON"
            ),
            (
                TrainerCommandSpec(command: "echo '{\"top_1_accuracy\": 0.5}' > $NAS_TRIAL_DIR/metrics.json; true"),
                ["flops_million<=1:hard"], "constraint 'flops_million"
            ),
            (TrainerCommandSpec(command: "kill -9 $$"), [], "the trainer command killed by signal 9"),
        ]
        for (spec, constraints, message) in cases {
            let directory = try TestSupport.temporaryDirectory("command-trainer")
            do {
                _ = try await pipeline(spec, constraints: constraints).run(trial(directory))
                Issue.record("\(spec.command) succeeded")
            } catch {
                #expect("\(error)".contains(message), "\(error)")
                // The trial's status says why, for the job loop and the report.
                #expect(TrialStatusFile(directory: directory.path).reason()?.contains(message) == true)
            }
        }
    }

    @Test func aModelIsNeededWhereTheJobMeasuresDevices() async throws {
        let directory = try TestSupport.temporaryDirectory("command-trainer")
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("saved_model/variables"), withIntermediateDirectories: true)
        let spec = TrainerCommandSpec(
            command:
                "touch $AIP_MODEL_DIR/saved_model.pb; echo '{\"top_1_accuracy\": 0.5}' > $NAS_TRIAL_DIR/metrics.json; true"
        )
        let pipeline = TrialPipeline(
            trainer: CommandTrainer(spec: spec, log: { _ in }), measurer: UnreachedMeasurer(),
            deviceTypes: ["cpu-x86"], reward: Reward(constraints: [try Constraint(parsing: "latency_ms<=1")]))
        await #expect {
            try await pipeline.run(trial(directory))
        } throws: { error in
            let text = "\(error)"
            return text.contains("the trainer left no model at \(directory.path)/saved_model/model.onnx")
                && text.contains("measures it on cpu-x86") && text.contains("TensorFlow SavedModel")
                && text.contains("tf2onnx")
        }
    }

    @Test func aModelElsewhereIsCopiedIntoTheTrialsLayout() async throws {
        let directory = try TestSupport.temporaryDirectory("command-trainer")
        let model = try Self.model()
        let source = directory.appendingPathComponent("source.onnx")
        try Data(model).write(to: source)
        let spec = TrainerCommandSpec(
            command:
                "mkdir -p $NAS_TRIAL_DIR/out; cp \(source.path) $NAS_TRIAL_DIR/out/net.onnx; echo top_1_accuracy=0.7",
            modelPath: "out/net.onnx", standardOutputMetrics: true)
        let metrics = try await pipeline(spec).run(trial(directory))
        #expect(metrics["flops"] == Double(try OnnxFlops.count(bytes: model).total))
        #expect(FileManager.default.contents(atPath: directory.path + "/saved_model/model.onnx") == Data(model))
    }

    @Test func anAbsoluteModelPathElsewhereIsReadNeverRemoved() async throws {
        let directory = try TestSupport.temporaryDirectory("command-trainer")
        let model = try Self.model()
        let outside = try TestSupport.temporaryDirectory("command-model").appendingPathComponent("shared.onnx")
        try Data(model).write(to: outside)
        let spec = TrainerCommandSpec(
            command: "echo top_1_accuracy=0.6", modelPath: outside.path, standardOutputMetrics: true)
        let metrics = try await pipeline(spec).run(trial(directory))
        #expect(metrics["flops"] == Double(try OnnxFlops.count(bytes: model).total))
        #expect(FileManager.default.fileExists(atPath: outside.path))
    }

    @Test func aCommandOverItsTimeIsStoppedWithEverythingItStarted() async throws {
        let directory = try TestSupport.temporaryDirectory("command-trainer")
        // The command leaves a grandchild behind; the group's end takes it too.
        let spec = TrainerCommandSpec(
            command: "sleep 60 & echo $! > $NAS_TRIAL_DIR/child.pid; echo training; wait; true", maxTrialSeconds: 0.5)
        do {
            _ = try await pipeline(spec).run(trial(directory))
            Issue.record("the command was not stopped")
        } catch {
            #expect("\(error)".contains("ran past --max-trial-seconds 0.5 and was stopped; its last lines: training"))
        }
        let text = try String(contentsOf: directory.appendingPathComponent("child.pid"), encoding: .utf8)
        let child = try #require(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        // Killed and reaped by init once orphaned: allow it a moment to disappear.
        var alive = true
        for _ in 0..<100 where alive {
            alive = kill(child, 0) == 0
            if alive { usleep(20_000) }
        }
        #expect(!alive)
    }

    @Test func staleResultsOfAnEarlierRunAreNotReadBack() async throws {
        let directory = try TestSupport.temporaryDirectory("command-trainer")
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("hypertune"), withIntermediateDirectories: true)
        try Data(#"{"top_1_accuracy": "0.99"}"#.utf8).write(
            to: directory.appendingPathComponent("hypertune/output.metrics"))
        try Data(#"{"top_1_accuracy": 0.99}"#.utf8).write(to: directory.appendingPathComponent("metrics.json"))
        await #expect {
            try await pipeline(TrainerCommandSpec(command: "true")).run(trial(directory))
        } throws: { "\($0)".contains("the trainer reported no top_1_accuracy") }
    }

    @Test func stageTwoPassesTheSeedsRetrainFlagsWhenAsked() {
        let context = TrialContext(
            trialID: 2, directory: "/jobs/train/2", parameters: Self.parameters, searchTrialID: 9)
        var spec = TrainerCommandSpec(command: "python3 train.py", flags: ["num_epochs=10"])
        let retrain = (searchJobDirectory: "/jobs/search", searchTrials: [4, 9])
        let plain = CommandTrainer(spec: spec, retrain: retrain, log: { _ in })
        #expect(
            plain.commandLine(context) == [
                "/bin/sh", "-c", "exec python3 train.py \"$@\"", "sh", "--num_epochs=10",
                "--nas_params_str=\(Self.parameters.jsonText)", "--job-dir=/jobs/train/2",
            ])
        // Shell syntax stays the shell's: no exec.
        var shell = spec
        shell.command = "cd /tmp && python3 train.py"
        #expect(CommandTrainer(spec: shell, log: { _ in }).commandLine(context)[2] == "cd /tmp && python3 train.py \"$@\"")
        shell.command = "OMP_NUM_THREADS=1 python3 train.py"
        #expect(CommandTrainer(spec: shell, log: { _ in }).commandLine(context)[2].hasPrefix("OMP_NUM_THREADS"))
        let environment = plain.commandEnvironment(context)
        #expect(environment["NAS_SEARCH_TRIAL_ID"] == "9" && environment["NAS_RETRAIN_SEARCH_JOB_TRIALS"] == "4,9")
        #expect(environment["NAS_RETRAIN_SEARCH_JOB_DIR"] == "/jobs/search" && environment["CLOUD_ML_TRIAL_ID"] == "2")
        // The runner runs with one OpenBLAS thread; the command gets the user's setting back, or none.
        for user in [nil, "4"] as [String?] {
            let runner = ["PATH": "/bin"].merging(
                CommandTrainer.runnerEnvironment(inherited: user.map { ["OPENBLAS_NUM_THREADS": $0] } ?? [:])) { $1 }
            #expect(runner["OPENBLAS_NUM_THREADS"] == "1")
            let command = plain.commandEnvironment(context, inherited: runner)
            #expect(command["OPENBLAS_NUM_THREADS"] == user && command["PATH"] == "/bin")
            #expect(command[CommandTrainer.userBLASThreadsVariable] == nil && command["CLOUD_ML_TRIAL_ID"] == "2")
        }
        spec.retrainFlags = true
        let withFlags = CommandTrainer(spec: spec, retrain: retrain, log: { _ in }).commandLine(context)
        #expect(
            Array(withFlags.dropFirst(5).prefix(2)) == [
                "--retrain_search_job_dir=/jobs/search", "--retrain_search_job_trials=4,9",
            ])
    }

    @Test func specsRefuseWhatCannotWork() {
        for (spec, message) in [
            (TrainerCommandSpec(command: "  "), "--trainer-command is empty"),
            (TrainerCommandSpec(command: "x", flags: ["epochs"]), "must read name=value"),
            (TrainerCommandSpec(command: "x", flags: ["--lr=1"]), "must read name=value"),
            (TrainerCommandSpec(command: "x", maxTrialSeconds: 0), "--max-trial-seconds is 0.0"),
            (TrainerCommandSpec(command: "x", accuracyMetric: "top 1"), "--accuracy-metric 'top 1'"),
            (TrainerCommandSpec(command: "x", standardOutputPattern: "(a)"), "needs two groups"),
        ] {
            #expect(throws: (any Error).self) { try spec.validate() }
            do { try spec.validate() } catch { #expect("\(error)".contains(message), "\(error)") }
        }
    }

    @Test func jobsWrittenBeforeTrainerCommandsStillOpen() throws {
        // A configuration as the job store wrote it before trainer commands existed.
        let old = #"""
            {"kind": "search", "name": "old", "searchSpace": "mnist_list_of_dictionary", "algorithm": "random",
             "seed": 1, "maxTrials": 2, "maxParallelTrials": 1, "maxFailedTrials": 3, "constraints": [],
             "targetDeviceTypes": [], "trainerArguments": [], "searchTrials": []}
            """#
        let config = try JSONDecoder().decode(JobConfig.self, from: Data(old.utf8))
        #expect(config.trainerCommand == nil && config.name == "old")
        var withCommand = config
        withCommand.trainerCommand = TrainerCommandSpec(command: "python3 train.py", flags: ["a=1"], rewardMetric: "r")
        let decoded = try JSONDecoder().decode(JobConfig.self, from: try JSONEncoder().encode(withCommand))
        #expect(decoded == withCommand)
        #expect(
            decoded.trainerCommand?.arguments == [
                "--trainer-command", "python3 train.py", "--accuracy-metric", "top_1_accuracy", "--model-path",
                "saved_model/model.onnx", "--trainer-flags", "a=1", "--nas-target-reward-metric", "r",
            ])
    }
}

/// A measurer the pipeline must not reach: the trial fails before any measurement.
struct UnreachedMeasurer: DeviceMeasurer {
    func measure(_ model: TrialModel, on deviceType: String) async throws -> [String: Double] {
        Issue.record("measured a trial that has no model")
        return [:]
    }
}
