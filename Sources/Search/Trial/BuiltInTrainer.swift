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

    /// A trainer with a recipe and data.
    public init(config: TrainingConfig, dataDirectory: String, progress: (@Sendable (TrainingProgress) -> Void)? = nil) {
        self.config = config
        self.dataDirectory = dataDirectory
        self.progress = progress
    }

    public func train(_ trial: TrialContext) async throws -> TrainedTrial {
        let trialModel = try trial.parameters.model()
        let (config, dataDirectory, progress) = (config, dataDirectory, progress)
        let (model, result) = try await onOwnThread {
            let data = try IDXDataset.load(
                directory: dataDirectory, trainLimit: config.trainLimit, testLimit: config.testLimit)
            switch trialModel {
            case .cnn(let architecture):
                let result = try Trainer.train(architecture: architecture, data: data, config: config) {
                    progress?($0)
                }
                return (
                    try OnnxExport.serialized(architecture: architecture, weights: result.weights, batch: 1),
                    Summary(
                        testAccuracy: result.testAccuracy, elapsedSeconds: result.elapsedSeconds,
                        imagesPerSecond: result.imagesPerSecond, finalLoss: result.epochLosses.last)
                )
            case .mobileNet(let architecture):
                let result = try Trainer.train(mobileNet: architecture, data: data, config: config) {
                    progress?($0)
                }
                return (
                    try OnnxExport.serialized(mobileNet: architecture, weights: result.weights, batch: 1),
                    Summary(
                        testAccuracy: result.testAccuracy, elapsedSeconds: result.elapsedSeconds,
                        imagesPerSecond: result.imagesPerSecond, finalLoss: result.epochLosses.last)
                )
            }
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
