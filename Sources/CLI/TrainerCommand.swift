import ArgumentParser
import Constraints
import Fleet
import Foundation
import Plugins
import System
import Trainer

/// `nas trainer`: one trial as a process, in the seed trainer's terms.
///
/// It writes into `--job-dir` (the trial's folder): `nas_params_str.json`, `saved_model/model.onnx`,
/// `metrics.json` (`top_1_accuracy`, `flops`, `flops_million`, latency and memory when measured, `nas_reward`,
/// `nas_trial_id` when retraining) and `job_status.json`.
struct TrainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trainer",
        abstract: "Train one trial: build its CNN, train and evaluate it, count FLOPs, export ONNX, compute the reward.",
        discussion: """
            Exit status: 0 when the trial succeeded, 3 when its loss became NaN (job_status.json says \
            failed_with_nan_error), 1 for any other failure (job_status.json says failed, with the reason).
            """
    )

    /// The metrics every trial reports.
    static let trainingMetrics: Set<String> = ["top_1_accuracy", "flops", "flops_million"]

    /// The device types whose latency this trial measures: those given, else this machine when a constraint
    /// reads latency or memory.
    func measuredDeviceTypes(_ reward: Reward) -> [String] {
        if !deviceTypes.isEmpty { return deviceTypes }
        let local = Set(JobPlan.deviceMetricNames([DeviceType.local]))
        return reward.constraints.contains { local.contains($0.metric) } ? [DeviceType.local] : []
    }

    /// Exit status of a trial whose loss became NaN.
    static let nanExitCode: Int32 = 3

    @Option(
        name: .customLong("nas-params-str"),
        help: ArgumentHelp("The trial's architecture: nas_params_str JSON, or a file holding it.", valueName: "JSON|FILE"))
    var nasParams: String?

    @Option(name: .customLong("job-dir"), help: ArgumentHelp("The trial's output folder.", valueName: "DIR"))
    var jobDirectory: String

    @Option(
        name: .customLong("output-dir"),
        help: ArgumentHelp(
            "A job folder or bucket to publish the trial's files to, as <output-dir>/<trial-id>/...; also where the file exchange happens.",
            valueName: "DIR|gs://BUCKET/PREFIX"))
    var outputDirectory: String?

    @Option(name: .customLong("target-flops-million"), help: "Adds the hard constraint flops_million<=X (as the seed).")
    var targetFlopsMillion: Double?

    @Option(
        name: .customLong("target-latency-millisec"),
        help: "Adds the hard constraint latency_ms<=Y (the seed's flag), measured on --target-device-type or this machine.")
    var targetLatency: Double?

    @Option(
        name: .customLong("target-device-type"),
        help: ArgumentHelp(
            "A device type to measure latency and memory on; repeatable. With several, metrics are named latency_ms.TYPE.",
            valueName: "TYPE"))
    var deviceTypes: [String] = []

    @Option(
        help: ArgumentHelp(
            "The fleet's coordinator; without it, this machine's device type is measured in this process.",
            valueName: "URL"))
    var coordinator: String?

    @Option(help: "push (fleet), files (job-directory exchange) or auto (push when a worker of the type is there).")
    var transport: Transport = .auto

    @Option(name: .customLong("push-wait"), help: "Seconds auto waits for a worker of the type before using files.")
    var pushWait = 10.0

    @OptionGroup var token: FleetTokenOptions

    @Option(
        name: .customLong("constraint"),
        help: ArgumentHelp("A reward constraint, as in 'nas reward --help'; repeatable.", valueName: "SPEC"))
    var constraints: [String] = []

    @Option(
        name: .customLong("retrain-search-job-dir"),
        help: ArgumentHelp("Stage 2: the search job whose trial this retrains.", valueName: "DIR"))
    var retrainSearchJob: String?

    @Option(
        name: .customLong("retrain-search-job-trials"),
        help: ArgumentHelp(
            "Stage 2: search trials, comma-separated; this trial (by --trial-id) retrains the one at its position.",
            valueName: "IDS"))
    var retrainSearchTrials: String?

    @Option(
        name: .customLong("trial-id"),
        help: "This trial's id (default: CLOUD_ML_TRIAL_ID, else the --job-dir folder's name when it is a number).")
    var trialID: Int?

    @Option(help: "Seeds the initial weights and the shuffles.")
    var seed: UInt64 = 0

    @Flag(help: "Print no progress lines.")
    var quiet = false

    @OptionGroup var training: TrainerOptions
    @OptionGroup var plugins: PluginOptions

    func validate() throws {
        try training.check()
        guard pushWait >= 0, pushWait.isFinite else { throw ValidationError("--push-wait must be 0 or more seconds") }
        if (nasParams == nil) == (retrainSearchJob == nil) {
            throw ValidationError("give either --nas-params-str (a search trial) or --retrain-search-job-dir (stage 2)")
        }
        if (retrainSearchJob == nil) != (retrainSearchTrials == nil) {
            throw ValidationError("--retrain-search-job-dir and --retrain-search-job-trials go together")
        }
        for (flag, value) in [("--target-flops-million", targetFlopsMillion), ("--target-latency-millisec", targetLatency)] {
            if let value, !(value.isFinite && value > 0) {
                throw ValidationError("\(flag) is \(value); it must be a finite number > 0")
            }
        }
    }

    func run() async throws {
        ParentWatch.startIfRequested()
        let status = TrialStatusFile(directory: jobDirectory)
        do {
            try await runTrial(status)
        } catch let error as TrainingError {
            try? status.write(error.trialStatus, reason: "\(error)")
            try? publish(["job_status.json"])
            printError("nas trainer: \(error)")
            throw ExitCode(error.trialStatus == "failed_with_nan_error" ? Self.nanExitCode : 1)
        } catch let error as ExitCode {
            throw error
        } catch {
            try? status.write("failed", reason: "\(error)")
            try? publish(["job_status.json"])
            throw error
        }
    }

    private func runTrial(_ status: TrialStatusFile) async throws {
        let registry = try plugins.registry()
        var specs = constraints
        if let targetFlopsMillion { specs.append("flops_million<=\(targetFlopsMillion):vertex-hard") }
        if let targetLatency { specs.append("latency_ms<=\(targetLatency):vertex-hard") }
        let reward = Reward(constraints: try specs.map { try registry.constraint(parsing: $0) })
        // Refuse a constraint on a metric nothing will produce before spending minutes on training.
        let devices = measuredDeviceTypes(reward)
        let produced = Self.trainingMetrics.union(JobPlan.deviceMetricNames(devices))
            .union(registry.kinds.filter { $0.plugin?.canMeasure == true }.map(\.metric))
        for constraint in reward.constraints where !produced.contains(constraint.metric) {
            throw CLIError(
                "constraint '\(constraint.name)' reads metric '\(constraint.metric)', which this trial does not produce (it produces: \(produced.sorted().joined(separator: ", "))); load the plugin that measures it with --plugin-dir"
            )
        }
        let config = TrainingConfig(
            epochs: training.epochs, batchSize: training.batchSize, learningRate: training.learningRate, seed: seed, threads: training.threads,
            trainLimit: training.trainLimit, testLimit: training.testLimit, progressInterval: 200)
        try config.validate()

        let (parameters, searchTrial) = try trialParameters()
        let architecture = try parameters.architecture()
        try parameters.write(toTrialDirectory: jobDirectory)
        try status.write("running")

        let data = try IDXDataset.load(directory: training.dataDirectory, trainLimit: training.trainLimit, testLimit: training.testLimit)
        let result = try Trainer.train(architecture: architecture, data: data, config: config) { progress in
            guard !quiet else { return }
            printError(
                String(
                    format: "epoch %d/%d batch %d/%d loss %.4f accuracy %.4f %.0f images/s", progress.epoch, training.epochs,
                    progress.batch, progress.batchesPerEpoch, progress.loss, progress.accuracy,
                    progress.imagesPerSecond))
        }
        let model = try OnnxExport.serialized(architecture: architecture, weights: result.weights, batch: 1)
        let modelPath = try writeModel(model)
        let flops = try OnnxFlops.count(bytes: model).total

        var metrics: [String: Double] = [
            "top_1_accuracy": result.testAccuracy ?? .nan, "flops": Double(flops), "flops_million": Double(flops) / 1e6,
            "train_seconds": result.elapsedSeconds, "images_per_second": result.imagesPerSecond,
            "final_loss": result.epochLosses.last ?? .nan,
        ]
        if let searchTrial { metrics["nas_trial_id"] = Double(searchTrial) }
        if !devices.isEmpty {
            let measurement = DeviceMeasurement(
                coordinator: coordinator, token: coordinator == nil ? nil : try token.token(), transport: transport,
                pushWait: pushWait, jobRoot: outputDirectory ?? (jobDirectory as NSString).deletingLastPathComponent,
                trialID: try resolvedTrialID(), repeats: training.latencyRepeats,
                exchange: TrainerExchange.Configuration(pollInterval: training.pollInterval, timeout: training.latencyTimeout)
            ) { line in if !quiet { printError("nas trainer: \(line)") } }
            metrics.merge(try await measurement.measure(model: model, modelPath: modelPath, deviceTypes: devices)) { $1 }
            if devices.count == 1, let latency = metrics["latency_ms"] {
                // The seed's record of the measurement beside the model, so that a file-mode worker watching a
                // published copy of this folder does not measure it again.
                let record = LatencyMetrics(latencyMilliseconds: latency, memoryBytes: metrics["memory_bytes"] ?? 0)
                try Data(record.encoded()).write(
                    to: URL(fileURLWithPath: (modelPath as NSString).deletingLastPathComponent + "/model_latency.json"),
                    options: .atomic)
            }
        }
        for kind in registry.kinds where kind.plugin?.canMeasure == true && metrics[kind.metric] == nil {
            metrics[kind.metric] = try kind.plugin!.measure(model: model)
        }
        let scored = try reward.evaluate(accuracy: metrics["top_1_accuracy"]!, metrics: metrics)
        metrics["nas_reward"] = scored.reward
        let metricsPath = (jobDirectory as NSString).appendingPathComponent("metrics.json")
        try Data((try jsonLine(metrics) + "\n").utf8).write(to: URL(fileURLWithPath: metricsPath), options: .atomic)
        try status.write("succeeded")
        try publish([
            "nas_params_str.json", "saved_model/model_latency.json", "saved_model/model.onnx", "metrics.json",
            "job_status.json",
        ])
        print(try jsonLine(metrics))
        if !quiet { printError("nas trainer: model \(modelPath), metrics \(metricsPath)") }
    }

    /// The architecture to train, and for stage 2 the search trial it came from.
    private func trialParameters() throws -> (TrialParameters, Int?) {
        if let nasParams {
            let trimmed = nasParams.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("{") || trimmed.hasPrefix("[") {
                return (try TrialParameters(jsonText: trimmed, source: "--nas-params-str"), nil)
            }
            return (try TrialParameters.read(path: nasParams), nil)
        }
        let trials = try Self.parseTrialList(retrainSearchTrials ?? "")
        let id = try resolvedTrialID()
        guard id >= 1, id <= trials.count else {
            throw CLIError(
                "this is trial \(id) of the retrain job, but --retrain-search-job-trials names \(trials.count) trial(s)")
        }
        let searchTrial = trials[id - 1]
        let directory = ((retrainSearchJob ?? "") as NSString).appendingPathComponent(String(searchTrial))
        return (try TrialParameters.read(fromTrialDirectory: directory), searchTrial)
    }

    private func resolvedTrialID() throws -> Int {
        if let trialID { return trialID }
        if let fromEnvironment = ProcessInfo.processInfo.environment["CLOUD_ML_TRIAL_ID"], let id = Int(fromEnvironment) {
            return id
        }
        if let id = Int((jobDirectory as NSString).lastPathComponent) { return id }
        throw CLIError("cannot tell which trial this is: pass --trial-id (or set CLOUD_ML_TRIAL_ID)")
    }

    /// Copies the trial's files to `<output-dir>/<trial-id>/` (in vertex-ai-nas's layout), when publishing.
    private func publish(_ files: [String]) throws {
        guard let outputDirectory else { return }
        let storage = try StorageLocation.parse(outputDirectory).open()
        let trial = try resolvedTrialID()
        for file in files {
            let path = (jobDirectory as NSString).appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            _ = try storage.write("\(trial)/\(file)", data: Array(data))
        }
    }

    /// Reads `1,9` as [1, 9]; anything else is a clear error.
    static func parseTrialList(_ text: String) throws -> [Int] {
        let ids = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let parsed = ids.compactMap { Int($0) }.filter { $0 >= 1 }
        guard !ids.isEmpty, parsed.count == ids.count else {
            throw CLIError("trial list '\(text)' must be trial ids (integers >= 1) separated by commas, e.g. 1,9")
        }
        return parsed
    }

    private func writeModel(_ model: [UInt8]) throws -> String {
        let directory = (jobDirectory as NSString).appendingPathComponent("saved_model")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent("model.onnx")
        try Data(model).write(to: URL(fileURLWithPath: path), options: .atomic)
        return path
    }
}

/// `job_status.json` in a trial folder: `{"status": "running" | "succeeded" | "failed" | "failed_with_nan_error"}`.
struct TrialStatusFile {
    let directory: String

    var path: String { (directory as NSString).appendingPathComponent("job_status.json") }

    func write(_ status: String, reason: String? = nil) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var members: [(key: String, value: JSON)] = [("status", .string(status))]
        if let reason { members.append(("reason", .string(reason))) }
        try Data((JSON.object(members).text + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
