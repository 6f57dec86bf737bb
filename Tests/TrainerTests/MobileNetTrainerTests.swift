import Foundation
import TestSupport
import Testing

@testable import Trainer

/// Small MobileNets on 9x7 images (odd, non-square: TensorFlow's "same" padding puts the extra row after), so
/// that finite differences over every parameter stay quick in a debug build.
enum SmallMobileNets {
    static func block(_ expansion: Int, _ kernel: Int, se: Bool, _ activation: MobileNetActivation)
        -> MobileNetBlock
    {
        MobileNetBlock(expansion: expansion, kernelSize: kernel, squeezeExcite: se, activation: activation)
    }

    /// Stem conv, batch norm, ReLU6, global average pooling, dense.
    static let stemOnly = MobileNetArchitecture(
        stemFilters: 3, stemStride: 2, stemActivation: .relu6, stages: [], height: 9, width: 7, channels: 2,
        classes: 3)
    /// A stride-2 depthwise 5x5 without expansion, hard-swish, no skip (the channels change).
    static let depthwiseStride2 = MobileNetArchitecture(
        stemFilters: 3, stemStride: 1, stemActivation: .hardSwish,
        stages: [MobileNetStage(filters: 4, stride: 2, blocks: [block(1, 5, se: false, .hardSwish)])], height: 9,
        width: 7, channels: 1, classes: 3)
    /// A stride-1 7x7 depthwise kernel as wide as the 9x7 plane (the flat-plane path, where most taps read the
    /// padding), expansion 3, residual add.
    static let wideDepthwise = MobileNetArchitecture(
        stemFilters: 3, stemStride: 1, stemActivation: .relu6,
        stages: [MobileNetStage(filters: 3, stride: 1, blocks: [block(3, 7, se: false, .hardSwish)])], height: 9,
        width: 7, channels: 1, classes: 3)
    /// Expansion 3, squeeze-and-excite, ReLU6, stride 1 with a residual add, then a second block (expansion 6,
    /// kernel 3, SE, hard-swish) with another residual.
    static let expandedWithSE = MobileNetArchitecture(
        stemFilters: 4, stemStride: 2, stemActivation: .hardSwish,
        stages: [
            MobileNetStage(
                filters: 4, stride: 1, blocks: [block(3, 3, se: true, .relu6), block(6, 3, se: true, .hardSwish)])
        ], height: 9, width: 7, channels: 1, classes: 3)
    /// Every kind of layer: two stages, stride 2, a 7x7 kernel, SE on and off, both activations.
    static let mixed = MobileNetArchitecture(
        stemFilters: 4, stemStride: 1, stemActivation: .hardSwish,
        stages: [
            MobileNetStage(filters: 4, stride: 1, blocks: [block(1, 3, se: true, .relu6)]),
            MobileNetStage(
                filters: 5, stride: 2, blocks: [block(3, 7, se: false, .hardSwish), block(3, 5, se: true, .relu6)]),
        ], height: 9, width: 7, channels: 1, classes: 3)

    /// Initial weights moved off the initial point (gammas, betas, biases and statistics are not 1 and 0), so
    /// that every gradient and the folding of running statistics are exercised.
    static func perturbed(_ architecture: MobileNetArchitecture, seed: UInt64) -> MobileNetWeights {
        var weights = Trainer.initialWeights(mobileNet: architecture, seed: seed)
        var generator = SeededGenerator(seed: seed ^ 0xA5A5)
        for index in weights.parameters.indices {
            weights.parameters[index] += (generator.unitFloat() - 0.5) * 0.4
        }
        let layout = MobileNetLayout(architecture)
        for norm in layout.norms {
            for c in 0..<norm.channels {
                weights.statistics[norm.mean + c] = (generator.unitFloat() - 0.5) * 0.5
                weights.statistics[norm.variance + c] = 0.5 + generator.unitFloat()
            }
        }
        return weights
    }
}

@Suite struct MobileNetTrainerTests {
    /// The analytic gradient of the training-mode loss (batch statistics) against central differences of the same
    /// loss, over every parameter. Float differences: steps of 1e-3, a parameter passes within 2e-3 absolute or 3%
    /// relative; a step may cross a ReLU6 or hard-swish kink, so at most 2% of the parameters may miss, and the
    /// whole gradient must match within 2% in norm.
    @Test(arguments: [
        ("stem, batch norm, ReLU6, pooling, dense", SmallMobileNets.stemOnly),
        ("depthwise stride 2, hard-swish", SmallMobileNets.depthwiseStride2),
        ("depthwise 7x7 stride 1 on a 9x7 plane", SmallMobileNets.wideDepthwise),
        ("expansion, squeeze-and-excite, residual", SmallMobileNets.expandedWithSE),
        ("the whole network", SmallMobileNets.mixed),
    ])
    func backwardMatchesFiniteDifferences(_ name: String, _ architecture: MobileNetArchitecture) throws {
        let data = syntheticData(count: 5, channels: architecture.channels, height: 9, width: 7, classes: 3, seed: 3)
        let parameters = SmallMobileNets.perturbed(architecture, seed: 8).parameters
        let indices = Array(0..<5)
        let (loss, gradient) = Trainer.lossAndGradient(
            mobileNet: architecture, parameters: parameters, data: data, indices: indices)
        let reference = Trainer.trainingLoss(
            mobileNet: architecture, parameters: parameters, data: data, indices: indices)
        #expect(abs(loss - reference) < 1e-5, "\(name): the backward pass's loss \(loss), forward's \(reference)")
        var misses = 0
        var errorSquares = 0.0
        var normSquares = 0.0
        let step: Float = 1e-3
        for index in parameters.indices {
            var plus = parameters
            var minus = parameters
            plus[index] += step
            minus[index] -= step
            let numeric =
                (Trainer.trainingLoss(mobileNet: architecture, parameters: plus, data: data, indices: indices)
                    - Trainer.trainingLoss(mobileNet: architecture, parameters: minus, data: data, indices: indices))
                / Double(plus[index] - minus[index])
            let error = abs(Double(gradient[index]) - numeric)
            if error > 2e-3 && error > 0.03 * abs(numeric) { misses += 1 }
            errorSquares += error * error
            normSquares += numeric * numeric
        }
        #expect(normSquares > 0)
        #expect(
            Double(misses) <= 0.02 * Double(parameters.count),
            "\(name): \(misses) of \(parameters.count) parameters off their finite difference")
        #expect(
            (errorSquares / normSquares).squareRoot() < 0.02,
            "\(name): relative gradient error \((errorSquares / normSquares).squareRoot())")
    }

    /// The whole batch's statistics: two threads split channels and matrix columns, not images, so the loss and
    /// gradient of one and two threads agree to rounding.
    @Test func threadsShareTheBatchStatistics() async throws {
        try await TestSupport.onOwnThread {
            let architecture = SmallMobileNets.mixed
            let data = syntheticData(count: 6, channels: 1, height: 9, width: 7, classes: 3, seed: 5)
            let parameters = SmallMobileNets.perturbed(architecture, seed: 2).parameters
            let one = Trainer.lossAndGradient(
                mobileNet: architecture, parameters: parameters, data: data, indices: Array(0..<6), threads: 1)
            let two = Trainer.lossAndGradient(
                mobileNet: architecture, parameters: parameters, data: data, indices: Array(0..<6), threads: 2)
            #expect(abs(one.loss - two.loss) < 1e-6)
            let worst = zip(one.gradient, two.gradient).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-5, "largest difference \(worst)")
        }
    }

    @Test func oneEpochOnASliceBeatsChanceAndRepeats() async throws {
        try await TestSupport.onOwnThread {
            func block(_ e: Int, _ k: Int, se: Bool, _ a: MobileNetActivation) -> MobileNetBlock {
                SmallMobileNets.block(e, k, se: se, a)
            }
            let architecture = MobileNetArchitecture(stages: [
                MobileNetStage(filters: 16, stride: 1, blocks: [block(1, 3, se: false, .relu6)]),
                MobileNetStage(filters: 24, stride: 2, blocks: [block(3, 5, se: true, .hardSwish)]),
                MobileNetStage(filters: 48, stride: 2, blocks: [block(3, 3, se: false, .hardSwish)]),
            ])
            let config = TrainingConfig(epochs: 1, seed: 4, trainLimit: 1200, testLimit: 400, progressInterval: 10)
            var reports: [TrainingProgress] = []
            let result = try Trainer.train(mobileNet: architecture, data: fashionSlice, config: config) {
                reports.append($0)
            }
            let accuracy = try #require(result.testAccuracy)
            #expect(accuracy > 0.4, "test accuracy \(accuracy) after one epoch of 1,200 images (chance: 0.1)")
            #expect(result.epochAccuracies[0] > 0.3)
            // 1,200 images in batches of 32: 38 batches, reported every 10 and at the end.
            #expect(reports.map(\.batch) == [10, 20, 30, 38])
            #expect(result.weights.parameters.count == MobileNetLayout(architecture).count)
            // The running variances moved from their initial 1 towards the batches'.
            #expect(result.weights.statistics != Trainer.initialWeights(mobileNet: architecture, seed: 4).statistics)
            let again = try Trainer.train(mobileNet: architecture, data: fashionSlice, config: config)
            #expect(again.weights == result.weights, "the same seed and threads give the same weights")
            let test = fashionSlice.test.prefix(400)
            #expect(try Trainer.evaluate(mobileNet: architecture, weights: result.weights, data: test) == accuracy)
        }
    }

    /// The end-of-epoch hook (early stopping's intermediate results) sees, after epoch k, the weights a k-epoch
    /// training ends with, statistics re-estimated alike, and leaves the training as it is without it.
    @Test func eachEpochEndsWithTheWeightsOfThatManyEpochs() async throws {
        try await TestSupport.onOwnThread {
            let architecture = SmallMobileNets.mixed
            let data = syntheticData(count: 40, channels: 1, height: 9, width: 7, classes: 3, seed: 8)
            func config(_ epochs: Int) -> TrainingConfig {
                TrainingConfig(epochs: epochs, batchSize: 8, seed: 3, threads: 2, batchNormCalibration: 16)
            }
            var seen: [(Int, MobileNetWeights)] = []
            let hooked = try Trainer.train(mobileNet: architecture, training: data, config: config(3)) { _ in
            } epochEnded: { seen.append(($0, $1)) }
            #expect(seen.map(\.0) == [1, 2])
            let plain = try Trainer.train(mobileNet: architecture, training: data, config: config(3))
            #expect(hooked.weights == plain.weights)
            #expect(hooked.epochLosses == plain.epochLosses)
            let two = try Trainer.train(mobileNet: architecture, training: data, config: config(2))
            #expect(seen.last?.1 == two.weights)
            #expect(seen.first?.1 != two.weights)
            // What the hook throws ends the training.
            struct Stop: Error {}
            #expect(throws: Stop.self) {
                try Trainer.train(mobileNet: architecture, training: data, config: config(3)) { _ in
                } epochEnded: { _, _ in throw Stop() }
            }
        }
    }

    @Test func badInputIsATypedError() throws {
        let architecture = SmallMobileNets.mixed
        let data = syntheticData(count: 2, channels: 1, height: 8, width: 7, classes: 3, seed: 1)
        let error = try #require(throws: TrainingError.self) {
            try Trainer.train(mobileNet: architecture, training: data)
        }
        #expect(error.description.contains("the images are 1x8x7"))
        var weights = Trainer.initialWeights(mobileNet: architecture, seed: 1)
        weights.statistics.removeLast()
        let mismatch = try #require(throws: TrainingError.self) {
            try Trainer.predict(mobileNet: architecture, weights: weights, images: [Float](repeating: 0, count: 63))
        }
        #expect(mismatch.description.contains("batch-norm statistics"))
    }
}
