import Constraints
import Foundation
import Trainer

/// The built-in trainer as a trial's trainer: builds the trial's model (the tutorial's CNN or the MobileNet-style
/// family, by the shape of the trial's value), trains and evaluates it on an IDX data
/// set, and exports it as ONNX to the trial's `saved_model/model.onnx`.
///
/// Training runs on a thread of its own, so the cooperative pool stays free for the measurement that follows
/// and for anything else the process runs.
public struct BuiltInTrainer: TrialTrainer {
    /// The training recipe.
    public var config: TrainingConfig
    /// The IDX data set's folder.
    public var dataDirectory: String
    /// Receives training progress (every `config.progressInterval` batches).
    public var progress: (@Sendable (TrainingProgress) -> Void)?
    /// Whether the test accuracy after each epoch is reported as an intermediate result (for the job's pruner):
    /// one hypertune line per epoch with its `global_step`, in the trial's `hypertune/output.metrics`, as a
    /// trainer command reports them. Costs one evaluation per epoch.
    public var reportsEachEpoch: Bool

    /// A trainer with a recipe and data.
    public init(
        config: TrainingConfig, dataDirectory: String, reportsEachEpoch: Bool = false,
        progress: (@Sendable (TrainingProgress) -> Void)? = nil
    ) {
        self.config = config
        self.dataDirectory = dataDirectory
        self.reportsEachEpoch = reportsEachEpoch
        self.progress = progress
    }

    public func train(_ trial: TrialContext) async throws -> TrainedTrial {
        let trialModel = try trial.parameters.model()
        let (config, dataDirectory, progress) = (config, dataDirectory, progress)
        let reporter = reportsEachEpoch ? IntermediateReporter(trial: trial) : nil
        try reporter?.clear()
        let (model, result) = try await onOwnThread {
            let data = try IDXDataset.load(
                directory: dataDirectory, trainLimit: config.trainLimit, testLimit: config.testLimit)
            let test = config.testLimit.map { data.test.prefix($0) } ?? data.test
            let summary: Summary
            let model: [UInt8]
            switch trialModel {
            case .cnn(let architecture):
                let result = try Trainer.train(
                    architecture: architecture, data: data, config: config, progress: { progress?($0) },
                    epochEnded: reporter?.epochHook {
                        try Trainer.evaluate(architecture: architecture, weights: $0, data: test, threads: config.threads)
                    })
                model = try OnnxExport.serialized(architecture: architecture, weights: result.weights, batch: 1)
                summary = Summary(
                    testAccuracy: result.testAccuracy, elapsedSeconds: result.elapsedSeconds,
                    imagesPerSecond: result.imagesPerSecond, finalLoss: result.epochLosses.last)
            case .mobileNet(let architecture):
                let result = try Trainer.train(
                    mobileNet: architecture, data: data, config: config, progress: { progress?($0) },
                    epochEnded: reporter?.epochHook {
                        try Trainer.evaluate(mobileNet: architecture, weights: $0, data: test, threads: config.threads)
                    })
                model = try OnnxExport.serialized(mobileNet: architecture, weights: result.weights, batch: 1)
                summary = Summary(
                    testAccuracy: result.testAccuracy, elapsedSeconds: result.elapsedSeconds,
                    imagesPerSecond: result.imagesPerSecond, finalLoss: result.epochLosses.last)
            }
            if let accuracy = summary.testAccuracy { try reporter?.report(step: config.epochs, accuracy: accuracy) }
            return (model, summary)
        }
        let path = trial.modelPath
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(model).write(to: URL(fileURLWithPath: path), options: .atomic)
        return TrainedTrial(
            model: model, modelPath: path,
            metrics: [
                MetricName.accuracy.rawValue: result.testAccuracy ?? .nan,
                MetricName.trainSeconds.rawValue: result.elapsedSeconds,
                MetricName.imagesPerSecond.rawValue: result.imagesPerSecond,
                MetricName.finalLoss.rawValue: result.finalLoss ?? .nan,
            ])
    }
}

/// What the metrics of a trained trial are read from, whichever the model family.
private struct Summary: Sendable {
    var testAccuracy: Double?
    var elapsedSeconds: Double
    var imagesPerSecond: Double
    var finalLoss: Double?
}

/// Runs `work` on a new thread and returns its result, leaving the caller's (cooperative) thread free.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// Writes a trial's intermediate results as hypertune lines (`{"global_step": "2", "top_1_accuracy": "0.81"}`), the
/// file rewritten whole and renamed into place so that the job loop, which reads it while the trial runs, never
/// sees half a line.
final class IntermediateReporter: @unchecked Sendable {
    private let path: String
    private let trialID: Int
    private var lines: [String] = []

    init(trial: TrialContext) {
        path = CommandTrainer.hypertunePath(trial.directory)
        trialID = trial.trialID ?? 0
    }

    /// Removes an earlier run's reports.
    func clear() throws {
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    }

    /// A training's end-of-epoch hook: reports the accuracy `evaluate` gives the weights so far.
    func epochHook<Weights>(_ evaluate: @escaping (Weights) throws -> Double) -> (Int, Weights) throws -> Void {
        { epoch, weights in try self.report(step: epoch, accuracy: evaluate(weights)) }
    }

    func report(step: Int, accuracy: Double) throws {
        let line = JSON.object([
            ("global_step", .string(String(step))), (MetricName.accuracy.rawValue, .string(String(accuracy))),
            ("timestamp", .number(Date().timeIntervalSince1970)), ("trial", .string(String(trialID))),
        ]).text
        lines.append(line)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
