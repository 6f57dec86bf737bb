import Constraints
import Fleet
import Foundation
import ONNX
import Trainer

/// The trial a pipeline runs: which one, where its files go, and its architecture.
public struct TrialContext: Sendable {
    /// The trial's id; nil when nothing names it (a lone trial outside a job), which only the file exchange and
    /// publishing need.
    public var trialID: Int?
    /// The trial's folder (`--job-dir`).
    public var directory: String
    /// The trial's architecture.
    public var parameters: TrialParameters
    /// Stage 2: the search trial this one retrains.
    public var searchTrialID: Int?

    /// A trial.
    public init(trialID: Int?, directory: String, parameters: TrialParameters, searchTrialID: Int? = nil) {
        self.trialID = trialID
        self.directory = directory
        self.parameters = parameters
        self.searchTrialID = searchTrialID
    }

    /// Where the trial's model is: `<directory>/saved_model/model.onnx`.
    public var modelPath: String { (directory as NSString).appendingPathComponent(TrialFiles.model) }
}

/// What a trainer leaves: the exported model and the metrics it measured (accuracy at least).
public struct TrainedTrial: Sendable {
    /// The ONNX model's bytes; nil when a trainer command left none (a job that measures devices then fails).
    public var model: [UInt8]?
    /// Where the model file is (or should have been).
    public var modelPath: String
    /// Metrics by name: `top_1_accuracy` and whatever else the trainer reports.
    public var metrics: [String: Double]
    /// The trainer's own reward, when the job honours one (`--nas-target-reward-metric`): the trial's
    /// `nas_reward`, `nas`'s own then being `computed_reward`.
    public var reward: Double?

    /// A trained trial.
    public init(model: [UInt8]?, modelPath: String, metrics: [String: Double], reward: Double? = nil) {
        self.model = model
        self.modelPath = modelPath
        self.metrics = metrics
        self.reward = reward
    }
}

/// Trains one trial's architecture and exports its model: the built-in trainer, or a user's command.
public protocol TrialTrainer: Sendable {
    /// Trains `trial`, leaves its ONNX model at `trial.modelPath`, and returns it with the metrics measured.
    func train(_ trial: TrialContext) async throws -> TrainedTrial
    /// Exports `trial`'s model untrained (for latency first), left at `trial.modelPath` and returned; nil when
    /// this trainer cannot (the default).
    func exportUntrained(_ trial: TrialContext) async throws -> [UInt8]?
    /// True when the trainer may report metrics of its own beyond accuracy, so that a constraint on a metric
    /// `nas` does not measure is checked once the trainer has run rather than refused before; false by default.
    var reportsOwnMetrics: Bool { get }
}

extension TrialTrainer {
    public var reportsOwnMetrics: Bool { false }
    public func exportUntrained(_ trial: TrialContext) async throws -> [UInt8]? { nil }
}

/// A trial's model, as a measurer gets it.
public struct TrialModel: Sendable {
    /// The trial's id (the file exchange names the trial's folder by it), when known.
    public var trialID: Int?
    /// The ONNX model's bytes.
    public var bytes: [UInt8]
    /// Where the model file is.
    public var path: String

    /// A model.
    public init(trialID: Int?, bytes: [UInt8], path: String) {
        self.trialID = trialID
        self.bytes = bytes
        self.path = path
    }
}

/// Measures a model on a device type: pushed to a fleet worker, exchanged as files, or timed in this process.
///
/// Returns the runner's metrics by the runner's names (`latency_ms` for the p50, `mean_ms`, `p90_ms`, `p99_ms`,
/// `memory_bytes`); the pipeline names them for the job (`latency_ms.TYPE` with several device types).
public protocol DeviceMeasurer: Sendable {
    /// The metrics of `model` on a device of `deviceType`.
    func measure(_ model: TrialModel, on deviceType: String) async throws -> [String: Double]
    /// The measurement with the worker, its attributes and runtime, where the measurer knows them.
    func measureDetailed(_ model: TrialModel, on deviceType: String) async throws -> DeviceMeasurement
}

/// A metric computed from the model's bytes in this process: a plugin that measures (model size, power...).
public struct ModelMetric: Sendable {
    /// The metric's name.
    public var name: String
    /// Computes it.
    public var measure: @Sendable ([UInt8]) throws -> Double

    /// A metric.
    public init(name: String, measure: @escaping @Sendable ([UInt8]) throws -> Double) {
        self.name = name
        self.measure = measure
    }
}

/// One trial from architecture to reward: train (and export), count FLOPs, measure on each device type,
/// compute the plugins' metrics, score, and leave `metrics.json` and `job_status.json` in the trial's folder
/// (published to the job's output location too, in vertex-ai-nas's layout).
public struct TrialPipeline: Sendable {
    /// Trains the trial and exports its model.
    public var trainer: any TrialTrainer
    /// Measures the model on `deviceTypes`; nil when the job measures no device.
    public var measurer: (any DeviceMeasurer)?
    /// The device types to measure on.
    public var deviceTypes: [String]
    /// The reward's constraints.
    public var reward: Reward
    /// Metrics computed from the model in this process.
    public var modelMetrics: [ModelMetric]
    /// Where the trial's files are published as `<trial-id>/...` besides its folder, when the job publishes.
    public var output: (any ObjectStorage)?
    /// Latency first: with a hard device constraint, the untrained model is measured before training, and a
    /// trial that misses the target is not trained (`TrialInfeasible`); the measurement is the trial's.
    public var latencyFirst = false

    /// A pipeline.
    public init(
        trainer: any TrialTrainer, measurer: (any DeviceMeasurer)?, deviceTypes: [String], reward: Reward,
        modelMetrics: [ModelMetric] = [], output: (any ObjectStorage)? = nil
    ) {
        self.trainer = trainer
        self.measurer = measurer
        self.deviceTypes = deviceTypes
        self.reward = reward
        self.modelMetrics = modelMetrics
        self.output = output
    }

    /// The metrics every trial reports, whatever its devices.
    public static let trainingMetrics: [MetricName] = [.accuracy, .flops, .flopsMillion]

    /// The metrics a trial of this pipeline produces.
    public var producedMetrics: Set<String> {
        Set((Self.trainingMetrics + MetricName.deviceMetrics(of: deviceTypes)).map(\.rawValue))
            .union(modelMetrics.map(\.name))
    }

    /// Refuses, before any training, a constraint on a metric the trial will not produce.
    public func check() throws {
        let produced = producedMetrics
        for constraint in reward.constraints where !produced.contains(constraint.metric) && !trainer.reportsOwnMetrics {
            throw TrialPipelineError(
                "constraint '\(constraint.name)' reads metric '\(constraint.metric)', which this trial does not produce (it produces: \(produced.sorted().joined(separator: ", "))); load the plugin that measures it with --plugin-dir"
            )
        }
    }

    /// Runs the trial; returns its metrics, `nas_reward` among them. On failure `job_status.json` says why
    /// (`failed_with_nan_error` for a NaN loss) and the error is rethrown.
    public func run(_ trial: TrialContext) async throws -> [String: Double] {
        let status = TrialStatusFile(directory: trial.directory)
        do {
            return try await runSteps(trial, status)
        } catch let infeasible as TrialInfeasible {
            // Its status (infeasible) and measurement are written: a result, not a failure.
            try? publish(trial, [TrialFiles.metrics, TrialFiles.status])
            throw infeasible
        } catch {
            let state = (error as? TrainingError)?.trialStatus ?? "failed"
            try? status.write(state, reason: "\(error)")
            try? publish(trial, [TrialFiles.status])
            throw error
        }
    }

    private func runSteps(_ trial: TrialContext, _ status: TrialStatusFile) async throws -> [String: Double] {
        try check()
        _ = try trial.parameters.write(toTrialDirectory: trial.directory)
        try status.write("running")

        let premeasured = try await measureFirst(trial, status)
        let trained = try await trainer.train(trial)
        var metrics = trained.metrics
        guard metrics[MetricName.accuracy.rawValue] != nil else {
            throw TrialPipelineError("the trainer reported no \(MetricName.accuracy)")
        }
        if let model = trained.model {
            let flops = try OnnxFlops.count(bytes: model).total
            metrics[MetricName.flops.rawValue] = Double(flops)
            metrics[MetricName.flopsMillion.rawValue] = Double(flops) / 1e6
        }
        if let searchTrialID = trial.searchTrialID { metrics[MetricName.searchTrialID.rawValue] = Double(searchTrialID) }

        if let measurer, !deviceTypes.isEmpty {
            guard let bytes = trained.model else {
                throw TrialPipelineError(
                    "the trainer left no model at \(trained.modelPath), and this job measures it on \(deviceTypes.joined(separator: ", ")): export ONNX there (or say where with --model-path)\(CommandTrainer.missingModelHint(trained.modelPath))"
                )
            }
            let model = TrialModel(trialID: trial.trialID, bytes: bytes, path: trained.modelPath)
            // Latency first measured the same graph untrained: its latency is the trained model's.
            let measurements: [DeviceMeasurement]
            if let premeasured {
                metrics.merge(premeasured.metrics) { $1 }
                measurements = premeasured.measurements
            } else {
                let measured = try await measureDevices(model, measurer)
                metrics.merge(measured.metrics) { $1 }
                measurements = measured.measurements
            }
            if deviceTypes.count == 1, let latency = metrics[MetricName.latency.rawValue] {
                // The seed's record of the measurement beside the model, so that a file-mode worker watching a
                // published copy of this folder does not measure it again.
                let record = LatencyMetrics(
                    latencyMilliseconds: latency, memoryBytes: metrics[MetricName.memory.rawValue])
                let path = (trial.directory as NSString).appendingPathComponent(TrialFiles.modelLatency)
                try Data(record.encoded()).write(to: URL(fileURLWithPath: path), options: .atomic)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            try encoder.encode(measurements).write(
                to: URL(fileURLWithPath: (trial.directory as NSString).appendingPathComponent(TrialFiles.measurements)),
                options: .atomic)
        }
        if let model = trained.model {
            for metric in modelMetrics where metrics[metric.name] == nil {
                metrics[metric.name] = try metric.measure(model)
            }
        }
        let accuracy = metrics[MetricName.accuracy.rawValue]!
        let computed = try reward.evaluate(accuracy: accuracy, metrics: metrics).reward
        metrics[MetricName.reward.rawValue] = trained.reward ?? computed
        if trained.reward != nil { metrics[MetricName.computedReward.rawValue] = computed }
        let metricsPath = (trial.directory as NSString).appendingPathComponent(TrialFiles.metrics)
        try Data((Self.jsonLine(metrics) + "\n").utf8).write(to: URL(fileURLWithPath: metricsPath), options: .atomic)
        try status.write("succeeded")
        try publish(trial, [
            TrialParameters.fileName, TrialFiles.modelLatency, TrialFiles.model, TrialFiles.metrics, TrialFiles.status,
        ])
        return metrics
    }

    /// The names runners used for latency statistics before they took the trials' names; still read from runner
    /// commands written for them.
    static let legacyRunnerNames: [MetricName: String] = [
        .latencyMean: "mean_ms", .latencyP90: "p90_ms", .latencyP99: "p99_ms",
    ]

    /// A device's answer, refused when it cannot be a measurement: no latency, a value that is NaN or infinite, a
    /// negative latency or memory. A runner that prints such values failed; it did not measure.
    static func checked(_ answer: [String: Double], deviceType: String) throws -> [String: Double] {
        guard let latency = answer[MetricName.latency.rawValue] else {
            throw TrialPipelineError(
                "the measurement on '\(deviceType)' has no \(MetricName.latency) (it has: \(answer.keys.sorted().joined(separator: ", ")))")
        }
        if let bad = answer.first(where: { !$0.value.isFinite }) {
            throw TrialPipelineError("the measurement on '\(deviceType)' has \(bad.key) = \(bad.value), not a number")
        }
        let memory = answer[MetricName.memory.rawValue] ?? 0
        guard latency >= 0, memory >= 0 else {
            throw TrialPipelineError(
                "the measurement on '\(deviceType)' is negative (\(MetricName.latency) \(latency), \(MetricName.memory) \(memory))")
        }
        return answer
    }

    /// Copies the trial's files to `<output>/<trial-id>/`, when the job publishes its outputs.
    private func publish(_ trial: TrialContext, _ files: [String]) throws {
        guard let output else { return }
        guard let trialID = trial.trialID else { throw TrialPipelineError.unnamedTrial }
        for file in files {
            let path = (trial.directory as NSString).appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            _ = try output.write("\(trialID)/\(file)", data: Array(data))
        }
    }

    /// Metrics as one line of JSON with sorted keys.
    public static func jsonLine(_ metrics: [String: Double]) -> String {
        JSON.object(metrics.sorted { $0.key < $1.key }.map { (key: $0.key, value: JSON.number($0.value)) }).text
    }
}

/// A trial that cannot go on: what is wrong and what to do.
public struct TrialPipelineError: Error, CustomStringConvertible, Sendable {
    /// The explanation.
    public let description: String

    /// An error with its explanation.
    public init(_ description: String) { self.description = description }

    /// A trial without an id where one is needed.
    public static let unnamedTrial = TrialPipelineError(
        "cannot tell which trial this is: pass --trial-id (or set CLOUD_ML_TRIAL_ID)")
}

/// `job_status.json` in a trial folder: `{"status": "running" | "succeeded" | "failed" | "failed_with_nan_error"}`.
public struct TrialStatusFile: Sendable {
    /// The trial's folder.
    public let directory: String

    /// The status file of the trial in `directory`.
    public init(directory: String) { self.directory = directory }

    /// The file's path.
    public var path: String { (directory as NSString).appendingPathComponent(TrialFiles.status) }

    /// The status the file holds; nil when there is no file.
    public func read() throws -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try JSON.parse(Array(data))["status"].flatMap { if case .string(let s) = $0 { s } else { nil } }
    }

    /// The reason a failed trial's status gives, if the file says it failed and why.
    public func reason() -> String? {
        guard let data = FileManager.default.contents(atPath: path), let json = try? JSON.parse(Array(data)),
            case .string(let status)? = json["status"], status.hasPrefix("failed"),
            case .string(let reason)? = json["reason"], !reason.isEmpty
        else { return nil }
        return reason
    }

    /// Writes the status, with a reason for failures.
    public func write(_ status: String, reason: String? = nil) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var members: [(key: String, value: JSON)] = [("status", .string(status))]
        if let reason { members.append(("reason", .string(reason))) }
        try Data((JSON.object(members).text + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
