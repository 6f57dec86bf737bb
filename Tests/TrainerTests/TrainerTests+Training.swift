import Foundation
import TestSupport
import Testing

@testable import Trainer

/// Fashion-MNIST slices, loaded once for the suite.
let fashionSlice: IDXDataset = {
    do {
        return try IDXDataset.load(trainLimit: 3000, testLimit: 1000)
    } catch {
        fatalError("Fashion-MNIST is missing (\(error)); run scripts/bootstrap.sh")
    }
}()

@Suite struct TrainerTrainingTests {
    let small = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6)])

    @Test func learnsFashionMNISTWellAboveChance() async throws {
        try await TestSupport.onOwnThread {
            var reports: [TrainingProgress] = []
            let result = try Trainer.train(
                architecture: small, data: fashionSlice,
                config: TrainingConfig(epochs: 1, seed: 1, progressInterval: 20)
            ) { reports.append($0) }
            let accuracy = try #require(result.testAccuracy)
            #expect(accuracy > 0.6, "test accuracy \(accuracy) after one epoch of 3,000 images")
            #expect(result.epochLosses.count == 1 && result.epochLosses[0] < 1.5)
            #expect(result.epochAccuracies[0] > 0.4)
            // 3,000 images in batches of 32: 94 batches, reported at 20, 40, 60, 80 and at the end.
            #expect(reports.map(\.batch) == [20, 40, 60, 80, 94])
            #expect(reports.allSatisfy { $0.batchesPerEpoch == 94 && $0.epoch == 1 && $0.imagesPerSecond > 0 })
            #expect(reports.last!.loss == result.epochLosses[0])
            #expect(result.imagesPerSecond > 0 && result.elapsedSeconds > 0)
            // The weights come in ONNX's layouts and sizes.
            #expect(result.weights.convKernels.map(\.count) == [3 * 1 * 3 * 3, 6 * 3 * 3 * 3])
            #expect(result.weights.convBiases.map(\.count) == [3, 6])
            #expect(result.weights.denseKernel.count == 6 * 28 * 28 * 10)
            #expect(result.weights.denseBias.count == 10)
            // evaluate and predict agree with the accuracy training reported.
            let test = fashionSlice.test
            #expect(try Trainer.evaluate(architecture: small, weights: result.weights, data: test) == accuracy)
            let probabilities = try Trainer.predict(architecture: small, weights: result.weights, images: test.images)
            #expect(probabilities.count == test.count * 10)
            var correct = 0
            for index in 0..<test.count {
                let row = probabilities[(index * 10)..<(index * 10 + 10)]
                #expect(abs(row.reduce(0, +) - 1) < 1e-4)
                if row.firstIndex(of: row.max()!)! - index * 10 == Int(test.labels[index]) { correct += 1 }
            }
            #expect(Double(correct) / Double(test.count) == accuracy)
        }
    }

    @Test func sameSeedGivesBitIdenticalWeights() async throws {
        try await TestSupport.onOwnThread {
            let data = IDXDataset(train: fashionSlice.train.prefix(400), test: fashionSlice.test.prefix(100))
            let config = TrainingConfig(epochs: 2, seed: 42, threads: 2)
            let first = try Trainer.train(architecture: small, data: data, config: config)
            let second = try Trainer.train(architecture: small, data: data, config: config)
            #expect(first.weights == second.weights)
            #expect(first.epochLosses == second.epochLosses)
            var other = config
            other.seed = 43
            #expect(try Trainer.train(architecture: small, data: data, config: other).weights != first.weights)
            // Bit-identical at one thread too, and the same up to rounding (not bit for bit) across thread counts.
            var single = config
            single.threads = 1
            let one = try Trainer.train(architecture: small, data: data, config: single)
            #expect(try Trainer.train(architecture: small, data: data, config: single).weights == one.weights)
            #expect(abs(one.epochLosses[1] - first.epochLosses[1]) < 1e-3)
        }
    }

    @Test func limitsInTheConfigurationSliceTheData() async throws {
        try await TestSupport.onOwnThread {
            var batches = 0
            let config = TrainingConfig(epochs: 1, trainLimit: 500, testLimit: 200, progressInterval: 1000)
            let result = try Trainer.train(architecture: small, data: fashionSlice, config: config) {
                batches = $0.batchesPerEpoch
            }
            #expect(batches == 16)
            let accuracy = try #require(result.testAccuracy)
            let expected = try Trainer.evaluate(
                architecture: small, weights: result.weights, data: fashionSlice.test.prefix(200))
            #expect(accuracy == expected)
            #expect(["avx512", "avx2", "portable"].contains(Trainer.instructionSet))
        }
    }

    @Test func nanLossIsATypedError() throws {
        var train = fashionSlice.train.prefix(64)
        for index in 0..<train.imageSize { train.images[index] = .nan }
        do {
            _ = try Trainer.train(architecture: small, training: train, config: TrainingConfig(epochs: 1))
            Issue.record("training on NaN pixels succeeded")
        } catch let error as TrainingError {
            #expect(error.isNaNLoss)
            #expect(error.trialStatus == "failed_with_nan_error")
            #expect(error.description.contains("epoch 1, batch"))
        }
    }

    @Test func badInputsAreClearErrors() throws {
        let train = fashionSlice.train.prefix(10)
        let wide = CNNArchitecture(layers: small.layers, height: 32, width: 32)
        #expect(throws: TrainingError.self) { try Trainer.train(architecture: wide, training: train) }
        do {
            _ = try Trainer.train(architecture: wide, training: train)
        } catch {
            #expect("\(error)".contains("1x28x28") && "\(error)".contains("1x32x32"))
        }
        let fewClasses = CNNArchitecture(layers: small.layers, classes: 3)
        do {
            _ = try Trainer.train(architecture: fewClasses, training: train)
            Issue.record("labels beyond the classes were accepted")
        } catch let error as TrainingError {
            #expect(error.description.contains("3 classes"))
            #expect(error.trialStatus == "failed")
        }
        for config in [
            TrainingConfig(epochs: 0), TrainingConfig(batchSize: 0), TrainingConfig(learningRate: -1),
            TrainingConfig(threads: 0),
        ] {
            #expect(throws: TrainingError.self) { try config.validate() }
        }
        let weights = Trainer.initialWeights(architecture: small, seed: 0)
        let other = CNNArchitecture(layers: [
            ConvLayer(kernelSize: 5, filters: 3), ConvLayer(kernelSize: 3, filters: 6),
        ])
        #expect(throws: TrainingError.self) { try Trainer.evaluate(architecture: other, weights: weights, data: train) }
        #expect(throws: TrainingError.self) {
            try Trainer.predict(architecture: small, weights: weights, images: [Float](repeating: 0, count: 100))
        }
    }

    @Test func glorotInitialisationHasKerasLimits() {
        let weights = Trainer.initialWeights(architecture: small, seed: 3)
        // Conv 1: fan in 1*9, fan out 3*9; conv 2: 3*9 and 6*9; dense: 4704 and 10.
        let limits: [Float] = [(6.0 / 36).squareRoot(), (6.0 / 81).squareRoot()]
        for (kernel, limit) in zip(weights.convKernels, limits) {
            #expect(kernel.allSatisfy { abs($0) <= limit })
            #expect(kernel.map { abs($0) }.max()! > limit * 0.8)
        }
        #expect(weights.denseKernel.allSatisfy { abs($0) <= Float((6.0 / 4714).squareRoot()) })
        #expect(weights.convBiases.allSatisfy { $0.allSatisfy { $0 == 0 } } && weights.denseBias.allSatisfy { $0 == 0 })
        #expect(Trainer.initialWeights(architecture: small, seed: 3) == weights)
    }
}
