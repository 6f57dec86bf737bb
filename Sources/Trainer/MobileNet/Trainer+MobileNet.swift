import Dispatch
import Foundation

/// What training a `MobileNetArchitecture` produced.
public struct MobileNetTrainingResult: Sendable {
    /// The trained parameters and running statistics.
    public var weights: MobileNetWeights
    /// Per epoch: the mean training loss.
    public var epochLosses: [Double]
    /// Per epoch: the training accuracy.
    public var epochAccuracies: [Double]
    /// Top-1 accuracy on the test split (nil when trained without one).
    public var testAccuracy: Double?
    /// Seconds spent training (excluding the final evaluation).
    public var elapsedSeconds: Double
    /// Training throughput over all epochs, in images per second.
    public var imagesPerSecond: Double
}

extension Trainer {
    /// Keras's BatchNormalization momentum: `running = 0.99 * running + 0.01 * batch`.
    public static let batchNormMomentum: Float = 0.99

    /// Trains a MobileNet-style model on `data.train` and measures top-1 accuracy on `data.test`.
    ///
    /// The recipe is the CNN's (Glorot-uniform kernels, Adam in Keras's form, sparse categorical cross-entropy,
    /// a reshuffle each epoch) with Keras's batch normalisation: statistics of the whole batch in training (each
    /// batch runs as one, its layers split across `config.threads` threads by channels or matrix columns, so the
    /// statistics are exact), running statistics with momentum 0.99 and epsilon 1e-3 in evaluation. The running
    /// variance is the batch's biased variance, as Keras 3 keeps it. After training, the running statistics are
    /// re-estimated over `config.batchNormCalibration` training images (see there; 0 keeps Keras's).
    ///
    /// - Parameter progress: called on the calling thread every `config.progressInterval` batches and at the end
    ///   of each epoch.
    /// - Parameter epochEnded: called on the calling thread after each epoch but the last with the epoch and the
    ///   weights so far, their statistics re-estimated as after training (intermediate results for early
    ///   stopping); what it throws ends the training. It does not change the training: the weights are the same
    ///   with it or without.
    public static func train(
        mobileNet architecture: MobileNetArchitecture, data: IDXDataset, config: TrainingConfig = TrainingConfig(),
        progress: ((TrainingProgress) -> Void)? = nil, epochEnded: ((Int, MobileNetWeights) throws -> Void)? = nil
    ) throws -> MobileNetTrainingResult {
        var result = try train(
            mobileNet: architecture, training: data.train, config: config, progress: progress,
            epochEnded: epochEnded)
        let test = config.testLimit.map { data.test.prefix($0) } ?? data.test
        result.testAccuracy = try evaluate(
            mobileNet: architecture, weights: result.weights, data: test, threads: config.threads)
        return result
    }

    /// Trains a MobileNet-style model on `training` only (`testAccuracy` is nil).
    public static func train(
        mobileNet architecture: MobileNetArchitecture, training: Dataset, config: TrainingConfig = TrainingConfig(),
        progress: ((TrainingProgress) -> Void)? = nil, epochEnded: ((Int, MobileNetWeights) throws -> Void)? = nil
    ) throws -> MobileNetTrainingResult {
        try config.validate()
        let data = config.trainLimit.map { training.prefix($0) } ?? training
        try check(architecture, data, what: "the training data")
        _ = Kernels.singleThreadedBLAS
        let layout = MobileNetLayout(architecture)
        var (parameters, statistics) = layout.initialParameters(seed: config.seed)
        let network = MobileNetNetwork(
            layout: layout, capacity: min(config.batchSize, data.count), threads: config.threads, training: true)
        let optimizer = Adam(count: layout.count, config: config)
        let labels = data.labels.map(Int.init)
        let keep = Self.batchNormMomentum
        let start = DispatchTime.now()
        let outcome = try EpochLoop(config: config, count: data.count).run(
            progress: progress,
            epochEnded: epochEnded.map { epochEnded in
                { epoch, order in
                    // Evaluated as the final model is: with statistics re-estimated for the weights so far.
                    let weights = MobileNetWeights(
                        parameters: parameters,
                        statistics: calibrated(network, parameters, statistics, data, order, config))
                    try epochEnded(epoch, weights)
                }
            }
        ) { batch in
            let outcome = parameters.withUnsafeBufferPointer { parameters in
                data.images.withUnsafeBufferPointer { images in
                    let batchLabels = batch.map { labels[$0] }
                    network.load(images.baseAddress!, indices: batch)
                    network.forward(parameters.baseAddress!, statistics: nil)
                    return batchLabels.withUnsafeBufferPointer {
                        network.backward(parameters.baseAddress!, labels: $0)
                    }
                }
            }
            optimizer.update(&parameters, sources: [UnsafePointer(network.gradient)], parts: config.threads)
            for index in statistics.indices {
                statistics[index] = keep * statistics[index] + (1 - keep) * network.batchStatistics[index]
            }
            return outcome
        }
        statistics = calibrated(network, parameters, statistics, data, outcome.order, config)
        let elapsed = seconds(since: start)
        return MobileNetTrainingResult(
            weights: MobileNetWeights(parameters: parameters, statistics: statistics),
            epochLosses: outcome.epochLosses, epochAccuracies: outcome.epochAccuracies, testAccuracy: nil, elapsedSeconds: elapsed,
            imagesPerSecond: Double(data.count * config.epochs) / elapsed)
    }

    /// The statistics evaluation uses after training with `parameters`: the running `statistics` re-estimated over
    /// `config.batchNormCalibration` images of the epoch's `order` (the running ones when that is 0).
    private static func calibrated(
        _ network: MobileNetNetwork, _ parameters: [Float], _ statistics: [Float], _ data: Dataset, _ order: [Int],
        _ config: TrainingConfig
    ) -> [Float] {
        let count = min(config.batchNormCalibration ?? 2048, data.count)
        guard count > 0 else { return statistics }
        return calibrate(
            network, parameters: parameters, data: data, order: order, count: count, batchSize: config.batchSize)
    }

    /// The mean of the batch statistics of `count` training images (the epoch's order, in batches of
    /// `batchSize`), with the given parameters: every batch weighs the same, as PyTorch's cumulative average.
    private static func calibrate(
        _ network: MobileNetNetwork, parameters: [Float], data: Dataset, order: [Int], count: Int, batchSize: Int
    ) -> [Float] {
        var sums = [Double](repeating: 0, count: network.layout.statisticsCount)
        var batches = 0
        parameters.withUnsafeBufferPointer { parameters in
            data.images.withUnsafeBufferPointer { images in
                order.withUnsafeBufferPointer { order in
                    for lower in stride(from: 0, to: count, by: batchSize) {
                        let upper = min(lower + batchSize, count)
                        // A last batch much smaller than the others would weigh as much with noisier statistics.
                        guard batches == 0 || upper - lower == batchSize else { break }
                        network.load(images.baseAddress!, indices: UnsafeBufferPointer(rebasing: order[lower..<upper]))
                        network.forward(parameters.baseAddress!, statistics: nil)
                        for index in sums.indices { sums[index] += Double(network.batchStatistics[index]) }
                        batches += 1
                    }
                }
            }
        }
        return sums.map { Float($0 / Double(batches)) }
    }

    /// Top-1 accuracy of `weights` on `data` (batch norm with the running statistics), in [0, 1].
    public static func evaluate(
        mobileNet architecture: MobileNetArchitecture, weights: MobileNetWeights, data: Dataset, threads: Int = 2
    ) throws -> Double {
        try check(architecture, data, what: "the evaluation data")
        let probabilities = try predict(
            mobileNet: architecture, weights: weights, images: data.images, threads: threads)
        let classes = architecture.classes
        var correct = 0
        for index in 0..<data.count {
            var best = 0
            for j in 1..<classes where probabilities[index * classes + j] > probabilities[index * classes + best] {
                best = j
            }
            if best == Int(data.labels[index]) { correct += 1 }
        }
        return Double(correct) / Double(data.count)
    }

    /// Softmax probabilities `[count, classes]` for `count` images given as NCHW floats in [0, 1], with batch
    /// norm's running statistics (the function the exported ONNX model computes).
    public static func predict(
        mobileNet architecture: MobileNetArchitecture, weights: MobileNetWeights, images: [Float], threads: Int = 2
    ) throws -> [Float] {
        let imageSize = architecture.channels * architecture.height * architecture.width
        guard imageSize > 0, images.count % imageSize == 0, !images.isEmpty else {
            throw TrainingError.weightsMismatch(
                "\(images.count) input floats are not a whole, non-zero number of \(architecture.channels)x"
                    + "\(architecture.height)x\(architecture.width) images")
        }
        guard threads >= 1 else { throw TrainingError.invalidConfig("threads is \(threads); it must be 1 or more") }
        try validate(architecture)
        let layout = MobileNetLayout(architecture)
        try layout.check(weights)
        _ = Kernels.singleThreadedBLAS
        let count = images.count / imageSize
        let chunk = min(count, 64)
        let network = MobileNetNetwork(layout: layout, capacity: chunk, threads: threads, training: false)
        let classes = architecture.classes
        var output = [Float](repeating: 0, count: count * classes)
        weights.parameters.withUnsafeBufferPointer { parameters in
            weights.statistics.withUnsafeBufferPointer { statistics in
                images.withUnsafeBufferPointer { images in
                    for first in stride(from: 0, to: count, by: chunk) {
                        let indices = Array(first..<min(first + chunk, count))
                        indices.withUnsafeBufferPointer { network.load(images.baseAddress!, indices: $0) }
                        network.forward(parameters.baseAddress!, statistics: statistics.baseAddress!)
                        for slot in 0..<indices.count * classes {
                            output[first * classes + slot] = network.probabilities[slot]
                        }
                    }
                }
            }
        }
        return output
    }

    /// The initial weights training starts from for `seed`.
    public static func initialWeights(mobileNet architecture: MobileNetArchitecture, seed: UInt64) -> MobileNetWeights
    {
        let (parameters, statistics) = MobileNetLayout(architecture).initialParameters(seed: seed)
        return MobileNetWeights(parameters: parameters, statistics: statistics)
    }

    /// The mean training-mode loss (batch statistics) over `indices` and its gradient, for gradient checks.
    static func lossAndGradient(
        mobileNet architecture: MobileNetArchitecture, parameters: [Float], data: Dataset, indices: [Int],
        threads: Int = 1
    ) -> (loss: Double, gradient: [Float]) {
        _ = Kernels.singleThreadedBLAS
        let layout = MobileNetLayout(architecture)
        let network = MobileNetNetwork(layout: layout, capacity: indices.count, threads: threads, training: true)
        let labels = indices.map { Int(data.labels[$0]) }
        let loss = parameters.withUnsafeBufferPointer { parameters in
            data.images.withUnsafeBufferPointer { images in
                indices.withUnsafeBufferPointer { order in
                    labels.withUnsafeBufferPointer { labels in
                        network.load(images.baseAddress!, indices: order)
                        network.forward(parameters.baseAddress!, statistics: nil)
                        return network.backward(parameters.baseAddress!, labels: labels).loss
                    }
                }
            }
        }
        return (loss / Double(indices.count), Array(UnsafeBufferPointer(start: network.gradient, count: layout.count)))
    }

    /// The mean training-mode loss over `indices` (batch statistics), without the backward pass.
    static func trainingLoss(
        mobileNet architecture: MobileNetArchitecture, parameters: [Float], data: Dataset, indices: [Int]
    ) -> Double {
        let layout = MobileNetLayout(architecture)
        let network = MobileNetNetwork(layout: layout, capacity: indices.count, threads: 1, training: false)
        var loss = 0.0
        parameters.withUnsafeBufferPointer { parameters in
            data.images.withUnsafeBufferPointer { images in
                indices.withUnsafeBufferPointer { network.load(images.baseAddress!, indices: $0) }
                network.forward(parameters.baseAddress!, statistics: nil)
            }
        }
        for (slot, index) in indices.enumerated() {
            loss -= log(Double(network.probabilities[slot * layout.classes + Int(data.labels[index])]))
        }
        return loss / Double(indices.count)
    }

    private static func check(_ architecture: MobileNetArchitecture, _ data: Dataset, what: String) throws {
        guard data.count > 0 else { throw TrainingError.emptyData(what) }
        guard data.height == architecture.height, data.width == architecture.width,
            data.channels == architecture.channels
        else {
            throw TrainingError.shapeMismatch(
                expected: (architecture.channels, architecture.height, architecture.width), height: data.height,
                width: data.width, channels: data.channels)
        }
        try validate(architecture)
        if let index = data.labels.firstIndex(where: { Int($0) >= architecture.classes }) {
            throw TrainingError.labelOutOfRange(Int(data.labels[index]), index: index, classes: architecture.classes)
        }
    }

    /// Refuses sizes the kernels cannot run: every count and size must be at least 1, strides 1 or 2.
    static func validate(_ architecture: MobileNetArchitecture) throws {
        let a = architecture
        guard a.height > 0, a.width > 0, a.channels > 0, a.classes > 1, a.stemFilters > 0, a.stemKernelSize > 0,
            (1...2).contains(a.stemStride)
        else {
            throw TrainingError.weightsMismatch(
                "the input sizes, the stem's filters and kernel must be >= 1, its stride 1 or 2, classes >= 2")
        }
        for (index, stage) in a.stages.enumerated() {
            guard stage.filters > 0, (1...2).contains(stage.stride), !stage.blocks.isEmpty,
                stage.blocks.allSatisfy({ $0.expansion >= 1 && $0.kernelSize >= 1 })
            else {
                throw TrainingError.weightsMismatch(
                    "stage \(index) needs filters >= 1, stride 1 or 2, at least one block, each with expansion and "
                        + "kernel size >= 1")
            }
        }
    }
}
