import Foundation
import TestSupport
import Testing

@testable import Trainer

/// A direct, double-precision implementation of the CNN, written independently of the trainer's im2col + sgemm
/// kernels, as the reference for the forward pass and for finite differences.
enum ReferenceCNN {
    static func probabilities(_ architecture: CNNArchitecture, _ parameters: [Float], image: [Float]) -> [Double] {
        let layout = ParameterLayout(architecture)
        let (height, width) = (architecture.height, architecture.width)
        var current = image.map(Double.init)
        var channels = architecture.channels
        for conv in layout.convs {
            let k = conv.kernelSize
            let pad = (k - 1) / 2
            var output = [Double](repeating: 0, count: conv.filters * height * width)
            for o in 0..<conv.filters {
                for y in 0..<height {
                    for x in 0..<width {
                        var sum = Double(parameters[conv.biasOffset + o])
                        for c in 0..<channels {
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let (sy, sx) = (y + ky - pad, x + kx - pad)
                                    guard sy >= 0, sy < height, sx >= 0, sx < width else { continue }
                                    let w = parameters[conv.kernelOffset + ((o * channels + c) * k + ky) * k + kx]
                                    sum += Double(w) * current[(c * height + sy) * width + sx]
                                }
                            }
                        }
                        output[(o * height + y) * width + x] = max(sum, 0)
                    }
                }
            }
            current = output
            channels = conv.filters
        }
        let classes = architecture.classes
        var logits = (0..<classes).map { Double(parameters[layout.denseBiasOffset + $0]) }
        for (feature, value) in current.enumerated() {
            for j in 0..<classes {
                logits[j] += value * Double(parameters[layout.denseKernelOffset + feature * classes + j])
            }
        }
        let largest = logits.max()!
        let exps = logits.map { exp($0 - largest) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }

    static func loss(_ architecture: CNNArchitecture, _ parameters: [Float], _ data: Dataset) -> Double {
        var total = 0.0
        for index in 0..<data.count {
            let image = Array(data.images[(index * data.imageSize)..<((index + 1) * data.imageSize)])
            total -= log(probabilities(architecture, parameters, image: image)[Int(data.labels[index])])
        }
        return total / Double(data.count)
    }
}

/// Random images in [0, 1] with random labels.
func syntheticData(count: Int, channels: Int, height: Int, width: Int, classes: Int, seed: UInt64) -> Dataset {
    var generator = SeededGenerator(seed: seed)
    let images = (0..<(count * channels * height * width)).map { _ in generator.unitFloat() }
    let labels = (0..<count).map { _ in UInt8(generator.uniform(classes)) }
    return Dataset(images: images, labels: labels, height: height, width: width, channels: channels)
}

@Suite struct TrainerGradientTests {
    // Two channels, a non-square image, an even kernel (TensorFlow pads it more after than before).
    let architecture = CNNArchitecture(
        layers: [ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 4, filters: 2)], height: 6, width: 5,
        channels: 2, classes: 4)

    @Test func forwardPassMatchesTheDirectReference() async throws {
        try await TestSupport.onOwnThread {
            let data = syntheticData(count: 5, channels: 2, height: 6, width: 5, classes: 4, seed: 11)
            let weights = Trainer.initialWeights(architecture: architecture, seed: 5)
            let parameters = try ParameterLayout(architecture).parameters(weights)
            let predicted = try Trainer.predict(architecture: architecture, weights: weights, images: data.images)
            #expect(predicted.count == 5 * 4)
            for index in 0..<5 {
                let image = Array(data.images[(index * 60)..<((index + 1) * 60)])
                let expected = ReferenceCNN.probabilities(architecture, parameters, image: image)
                for j in 0..<4 {
                    #expect(abs(Double(predicted[index * 4 + j]) - expected[j]) < 1e-5)
                }
            }
        }
    }

    @Test func backwardPassMatchesFiniteDifferences() async throws {
        try await TestSupport.onOwnThread {
            let data = syntheticData(count: 3, channels: 2, height: 6, width: 5, classes: 4, seed: 12)
            var parameters = try ParameterLayout(architecture).parameters(
                Trainer.initialWeights(architecture: architecture, seed: 6))
            // Non-zero biases, so that their gradients are exercised away from the initial point.
            var generator = SeededGenerator(seed: 9)
            for index in parameters.indices { parameters[index] += (generator.unitFloat() - 0.5) * 0.2 }
            let (loss, gradient) = Trainer.lossAndGradient(
                architecture: architecture, parameters: parameters, data: data, indices: [0, 1, 2])
            #expect(abs(loss - ReferenceCNN.loss(architecture, parameters, data)) < 1e-5)
            var worst = 0.0
            for index in parameters.indices {
                var plus = parameters
                var minus = parameters
                // Small steps: the reference is exact enough, and larger ones (1e-3) cross a ReLU kink here.
                let step: Float = 1e-4
                plus[index] += step
                minus[index] -= step
                let numeric =
                    (ReferenceCNN.loss(architecture, plus, data) - ReferenceCNN.loss(architecture, minus, data))
                    / Double(plus[index] - minus[index])
                let error = abs(Double(gradient[index]) - numeric) / max(1e-2, abs(numeric))
                worst = max(worst, error)
            }
            #expect(worst < 1e-3, "largest relative gradient error \(worst)")
        }
    }

    /// Wide rows (two 32-column tiles, a 16-column vector and a scalar tail) and channel counts that split into
    /// uneven blocks, so that every path of the SIMD kernels runs.
    @Test func wideImagesMatchTheReference() async throws {
        try await TestSupport.onOwnThread {
            let wide = CNNArchitecture(
                layers: [ConvLayer(kernelSize: 3, filters: 6), ConvLayer(kernelSize: 5, filters: 7)], height: 3,
                width: 37, channels: 1, classes: 3)
            let data = syntheticData(count: 2, channels: 1, height: 3, width: 37, classes: 3, seed: 21)
            var parameters = try ParameterLayout(wide).parameters(Trainer.initialWeights(architecture: wide, seed: 2))
            var generator = SeededGenerator(seed: 4)
            for index in parameters.indices { parameters[index] += (generator.unitFloat() - 0.5) * 0.1 }
            let (loss, gradient) = Trainer.lossAndGradient(
                architecture: wide, parameters: parameters, data: data, indices: [0, 1])
            #expect(abs(loss - ReferenceCNN.loss(wide, parameters, data)) < 1e-5)
            var worst = 0.0
            let layout = ParameterLayout(wide)
            // Every 7th conv parameter (the dense layer is plain sgemm, checked above) keeps the debug build quick.
            for index in stride(from: 0, to: layout.denseKernelOffset, by: 7) {
                var plus = parameters
                var minus = parameters
                // Many units here: steps of 1e-4 already cross ReLU kinks; the double reference affords 1e-5.
                plus[index] += 1e-5
                minus[index] -= 1e-5
                let numeric =
                    (ReferenceCNN.loss(wide, plus, data) - ReferenceCNN.loss(wide, minus, data))
                    / Double(plus[index] - minus[index])
                worst = max(worst, abs(Double(gradient[index]) - numeric) / max(1e-2, abs(numeric)))
            }
            #expect(worst < 1e-3, "largest relative gradient error \(worst)")
        }
    }
}
