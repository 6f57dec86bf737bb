import ArgumentParser
import Constraints
import Engine
import Fleet
import Foundation
import HTTP2
import NativeRunner
import Plugins
import Search
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
        abstract:
            "Train one trial (the built-in CNN, or --trainer-command), count FLOPs, measure the model, compute the reward.",
        discussion: """
            With --trainer-command, the command trains the trial in the seed's contract and its metrics and model \
            are read back; everything after training is the same as for the built-in trainer.
            Exit status: 0 when the trial succeeded, 3 when its loss became NaN (job_status.json says \
            failed_with_nan_error), 4 when --latency-first found its untrained model over a hard device target \
            (job_status.json says infeasible; not trained), 1 for any other failure (job_status.json says failed, \
            with the reason).
            """
    )

    @Option(
        name: [.customLong("nas-params-str"), .customLong("nas_params_str")],
        help: ArgumentHelp("The trial's architecture: nas_params_str JSON, or a file holding it.", valueName: "JSON|FILE"))
    var nasParams: String?

    @Option(
        name: [.customLong("job-dir"), .customLong("job_dir")],
        help: ArgumentHelp("The trial's output folder.", valueName: "DIR"))
    var jobDirectory: String

    @Option(
        name: .customLong("output-dir"),
        help: ArgumentHelp(
            "A job folder or bucket to publish the trial's files to, as <output-dir>/<trial-id>/...; also where the file exchange happens.",
            valueName: "DIR|gs://BUCKET/PREFIX"))
    var outputDirectory: String?

    @OptionGroup var constraints: ConstraintOptions
    @OptionGroup var devices: DeviceTypeOptions

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
    /// How an `https://` --coordinator is checked, and the client certificate it may require.
    @OptionGroup var tls: TLSClientOptions

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

    @Flag(
        name: .customLong("report-each-epoch"),
        help: "Built-in trainer: report the test accuracy after each epoch (hypertune lines with global_step), for a job's --pruner.")
    var reportEachEpoch = false

    @Flag(
        name: .customLong("latency-first"),
        help: "With a hard device constraint: measure the untrained model first and do not train it if it misses the target (exit 4, job_status.json infeasible). A --trainer-command is run once with NAS_EXPORT_ONLY=1 to export it.")
    var latencyFirst = false

    @OptionGroup var training: TrainerOptions
    @OptionGroup var command: TrainerCommandOptions
    @OptionGroup var plugins: PluginOptions

    func validate() throws {
        try training.check()
        _ = try command.spec()
        guard pushWait >= 0, pushWait.isFinite else { throw ValidationError("--push-wait must be 0 or more seconds") }
        if (nasParams == nil) == (retrainSearchJob == nil) {
            throw ValidationError("give either --nas-params-str (a search trial) or --retrain-search-job-dir (stage 2)")
        }
        if (retrainSearchJob == nil) != (retrainSearchTrials == nil) {
            throw ValidationError("--retrain-search-job-dir and --retrain-search-job-trials go together")
        }
    }

    func run() async throws {
        ParentWatch.startIfRequested()
        let pipeline: TrialPipeline
        let trial: TrialContext
        do {
            pipeline = try self.pipeline()
            trial = try trialContext()
        } catch {
            // The trial's status says why it never started, for the search and for file-mode workers.
            let status = TrialStatusFile(directory: jobDirectory)
            try? status.write("failed", reason: "\(error)")
            if let outputDirectory, let id = try? resolvedTrialID(), let data = FileManager.default.contents(atPath: status.path) {
                _ = try? StorageLocation.parse(outputDirectory).open().write("\(id)/\(TrialFiles.status)", data: Array(data))
            }
            throw error
        }
        do {
            let metrics = try await pipeline.run(trial)
            print(TrialPipeline.jsonLine(metrics))
            if !quiet {
                printError("nas trainer: model \(trial.modelPath), metrics \(jobDirectory)/\(TrialFiles.metrics)")
            }
        } catch let error as TrainingError {
            printError("Error: \(error)")
            throw ExitCode(ExitStatus.of(error))
        } catch let infeasible as TrialInfeasible {
            print(TrialPipeline.jsonLine(infeasible.metrics))
            if !quiet { printError("nas trainer: \(infeasible)") }
            throw ExitCode(ExitStatus.infeasible)
        }
    }

    /// The trial's pipeline: the built-in trainer, the job's reward, its device types and how they are reached.
    private func pipeline() throws -> TrialPipeline {
        let registry = try plugins.registry()
        let reward = Reward(constraints: try constraints.specs.map { try registry.constraint(parsing: $0).announcingPluginCalls() })
        let log: @Sendable (String) -> Void = { line in if !quiet { printError("nas trainer: \(line)") } }
        let exchange = ExchangeMeasurer(
            jobRoot: outputDirectory ?? (jobDirectory as NSString).deletingLastPathComponent,
            perDeviceFolders: false,
            exchange: TrainerExchange.Configuration(
                pollInterval: .seconds(training.pollInterval), timeout: .seconds(training.latencyTimeout)),
            log: log)
        let devices = devices.measured(reward.constraints, local: DeviceType.local)
        let fleet = try coordinator.map { (url: $0, token: try token.token()) }
        let trainer = try self.trainer(devices: devices, fleet: fleet, log: log)
        var files = exchange
        files.perDeviceFolders = devices.count > 1
        let measurer = TransportMeasurer(
            coordinator: fleet, tls: try tls.context(), transport: transport,
            pushWait: .seconds(pushWait),
            local: (DeviceType.local, NativeRunner(options: MeasurementOptions(warmup: 20, repeats: training.latencyRepeats))),
            files: files, log: log)
        let modelMetrics = registry.kinds.compactMap { kind -> ModelMetric? in
            guard let plugin = kind.plugin, plugin.canMeasure else { return nil }
            return ModelMetric(name: kind.metric) { model in
                PluginCallNotice.announce(plugin, "measure on the trial's model (\(model.count) bytes)")
                return try plugin.measure(model: model)
            }
        }
        var pipeline = TrialPipeline(
            trainer: trainer, measurer: measurer, deviceTypes: devices, reward: reward, modelMetrics: modelMetrics,
            output: try outputDirectory.map { try StorageLocation.parse($0).open() })
        pipeline.latencyFirst = latencyFirst
        // Refuse a constraint on a metric nothing will produce before spending minutes on training.
        try pipeline.check()
        return pipeline
    }

    /// The trial's trainer: the user's command when one is given, else the built-in CNN trainer.
    private func trainer(
        devices: [String], fleet: (url: String, token: String)?, log: @escaping @Sendable (String) -> Void
    ) throws -> any TrialTrainer {
        if let spec = try command.spec() {
            // What a trainer asking for latency itself needs: where the coordinator is, its token, which devices,
            // and where the file exchange is when there is no coordinator.
            var environment = ["NAS_TARGET_DEVICE_TYPES": devices.joined(separator: ",")]
            if let fleet {
                environment["NAS_COORDINATOR_URL"] = fleet.url
                environment["NAS_FLEET_TOKEN"] = fleet.token
                for (name, file) in [
                    ("NAS_TLS_CA", tls.tlsCA), ("NAS_TLS_CLIENT_CERT", tls.tlsClientCert),
                    ("NAS_TLS_CLIENT_KEY", tls.tlsClientKey),
                ] {
                    if let file { environment[name] = file }
                }
            }
            let exchange = outputDirectory ?? (jobDirectory as NSString).deletingLastPathComponent
            if !exchange.hasPrefix("gs:") { environment["NAS_EXCHANGE_DIR"] = exchange }
            let retrain = try retrainSearchJob.map { ($0, try Self.parseTrialList(retrainSearchTrials ?? "")) }
            return CommandTrainer(spec: spec, environment: environment, retrain: retrain, log: log)
        }
        let config = TrainingConfig(
            epochs: training.epochs, batchSize: training.batchSize, learningRate: training.learningRate, seed: seed,
            threads: training.threads, trainLimit: training.trainLimit, testLimit: training.testLimit,
            progressInterval: 200)
        try config.validate()
        let (quiet, epochs) = (quiet, training.epochs)
        return BuiltInTrainer(config: config, dataDirectory: training.dataDirectory, reportsEachEpoch: reportEachEpoch) {
            progress in
            guard !quiet else { return }
            printError(
                String(
                    format: "epoch %d/%d batch %d/%d loss %.4f accuracy %.4f %.0f images/s", progress.epoch, epochs,
                    progress.batch, progress.batchesPerEpoch, progress.loss, progress.accuracy,
                    progress.imagesPerSecond))
        }
    }

    /// The trial this process runs.
    private func trialContext() throws -> TrialContext {
        let (parameters, searchTrial) = try trialParameters()
        return TrialContext(
            trialID: try? resolvedTrialID(), directory: jobDirectory, parameters: parameters, searchTrialID: searchTrial)
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
        throw CLIError("cannot tell which trial this is: pass --trial-id (or set CLOUD_ML_TRIAL_ID)", status: ExitStatus.usage)
    }

    /// Reads `1,9` as [1, 9]; anything else is a clear error.
    static func parseTrialList(_ text: String) throws -> [Int] {
        let ids = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let parsed = ids.compactMap { Int($0) }.filter { $0 >= 1 }
        guard !ids.isEmpty, parsed.count == ids.count else {
            throw CLIError(
                "trial list '\(text)' must be trial ids (integers >= 1) separated by commas, e.g. 1,9", status: ExitStatus.usage)
        }
        return parsed
    }
}

/// A line on standard error (the trial's log) before each call into a plugin, so that a plugin that crashes the
/// trial's process is named in the trial's failure: the job reads the log's last line when a runner is killed.
enum PluginCallNotice {
    static func announce(_ plugin: ConstraintPlugin, _ call: String) {
        printError(TrialExit.callNotice + "plugin '\(plugin.name)' (\(plugin.path)): \(call)")
    }
}

/// A plugin's scorer that announces each call.
private struct AnnouncedScorer: ConstraintScorer {
    let plugin: ConstraintPlugin
    let scorer: any ConstraintScorer

    func factor(measured: Double, target: Double, exponents: Exponents, weight: Double) throws -> Double {
        PluginCallNotice.announce(plugin, "score measured \(measured), target \(target)")
        return try scorer.factor(measured: measured, target: target, exponents: exponents, weight: weight)
    }
}

extension Constraint {
    /// The constraint with its plugin scorer (if any) announcing each call.
    fileprivate func announcingPluginCalls() -> Constraint {
        guard let scorer, let plugin = (scorer as? PluginScorer)?.plugin else { return self }
        var constraint = self
        constraint.scorer = AnnouncedScorer(plugin: plugin, scorer: scorer)
        return constraint
    }
}
