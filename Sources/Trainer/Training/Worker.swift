internal import CTrainerKernels
import Foundation

/// One thread's share of a batch: buffers for up to `capacity` images, the forward pass, and the backward pass
/// into its own gradient vector (summed with the other workers' in a fixed order by the caller).
///
/// Convolutions run image by image as direct SIMD convolutions (CTrainerKernels) over zero-padded planes: with
/// the seed's 1 to 10 channels, im2col + sgemm spends more time copying than multiplying. Each conv layer's input
/// is kept padded for that layer's kernel, so the previous layer writes straight into it and the borders stay
/// zero. The dense layer runs over the whole share with sgemm.
///
/// Only one thread uses a worker at a time; the trainer hands each worker to one iteration of
/// `concurrentPerform`, hence `@unchecked Sendable`.
final class Worker: @unchecked Sendable {
    /// The geometry of one conv layer's padded planes.
    struct Plane {
        let conv: ParameterLayout.Conv
        /// Zero rows and columns before the image ("same" padding; TensorFlow puts an even kernel's extra one after).
        let before: Int
        /// Row stride: room for the padding and for the kernels' whole-tile reads.
        let row: Int
        /// Plane stride.
        let plane: Int

        init(_ conv: ParameterLayout.Conv, height: Int, width: Int, before: Int) {
            self.conv = conv
            self.before = before
            let tile = Int(NAS_CONV_TILE)
            row = (width + tile - 1) / tile * tile + conv.kernelSize - 1
            plane = (height + conv.kernelSize - 1) * row
        }
    }

    let layout: ParameterLayout
    let capacity: Int
    private let height: Int
    private let width: Int
    /// Per conv layer: padded input planes (`capacity` images of `inputChannels` planes).
    private let planes: [Plane]
    private let inputs: [UnsafeMutablePointer<Float>]
    /// Per conv layer: one image's output gradient after the ReLU mask, padded for the input-gradient convolution.
    private let gradientPlanes: [Plane]
    private let outputGradients: [UnsafeMutablePointer<Float>]
    /// Per conv layer: the kernel flipped and transposed to `[in, out, k, k]`, for the input-gradient convolution.
    private let flippedKernels: [UnsafeMutablePointer<Float>]
    /// One image's gradient with respect to a conv layer's input, compact `[C, H, W]`.
    private let inputGradient: UnsafeMutablePointer<Float>
    /// `[capacity, features]`: the dense layer's input, in C, H, W order per image.
    private let flat: UnsafeMutablePointer<Float>
    private let flatGradient: UnsafeMutablePointer<Float>
    let probabilities: UnsafeMutablePointer<Float>
    let gradient: UnsafeMutablePointer<Float>
    private(set) var images = 0

    init(layout: ParameterLayout, capacity: Int) {
        self.layout = layout
        self.capacity = capacity
        height = layout.architecture.height
        width = layout.architecture.width
        planes = layout.convs.map {
            Plane(
                $0, height: layout.architecture.height, width: layout.architecture.width,
                before: ($0.kernelSize - 1) / 2)
        }
        gradientPlanes = layout.convs.map {
            Plane(
                $0, height: layout.architecture.height,
                width: layout.architecture.width, before: $0.kernelSize - 1 - ($0.kernelSize - 1) / 2)
        }
        // One vector of room past the end: the ReLU kernel reads whole vectors at the end of the last row.
        func zeroed(_ count: Int) -> UnsafeMutablePointer<Float> {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count + 16)
            buffer.initialize(repeating: 0, count: count + 16)
            return buffer
        }
        inputs = planes.map { zeroed(capacity * $0.conv.inputChannels * $0.plane) }
        outputGradients = gradientPlanes.map { zeroed($0.conv.filters * $0.plane) }
        flippedKernels = layout.convs.map { zeroed($0.filters * $0.patch) }
        let widest = max(layout.architecture.channels, layout.convs.map(\.filters).max() ?? 0)
        inputGradient = zeroed(widest * height * width)
        flat = zeroed(capacity * layout.features)
        flatGradient = zeroed(capacity * layout.features)
        probabilities = zeroed(capacity * layout.classes)
        gradient = zeroed(layout.count)
    }

    deinit {
        for buffer in inputs + outputGradients + flippedKernels { buffer.deallocate() }
        for buffer in [inputGradient, flat, flatGradient, probabilities, gradient] { buffer.deallocate() }
    }

    /// Copies images (NCHW, at `indices` of `source`) into the first layer's padded planes.
    func load(_ source: UnsafePointer<Float>, indices: UnsafeBufferPointer<Int>) {
        precondition(indices.count <= capacity)
        images = indices.count
        let channels = layout.architecture.channels
        let pixels = height * width
        for (slot, index) in indices.enumerated() {
            let image = source + index * channels * pixels
            guard let first = planes.first else {
                (flat + slot * layout.features).update(from: image, count: channels * pixels)
                continue
            }
            for channel in 0..<channels {
                let target = inputs[0] + (slot * channels + channel) * first.plane + first.before * (first.row + 1)
                for y in 0..<height {
                    (target + y * first.row).update(from: image + channel * pixels + y * width, count: width)
                }
            }
        }
    }

    /// Where conv layer `index` writes image `slot`'s output: the next layer's padded planes, or the flat features.
    private func output(of index: Int, slot: Int) -> (pointer: UnsafeMutablePointer<Float>, plane: Int, row: Int) {
        if index + 1 < planes.count {
            let next = planes[index + 1]
            return (
                inputs[index + 1] + slot * next.conv.inputChannels * next.plane + next.before * (next.row + 1),
                next.plane, next.row
            )
        }
        return (flat + slot * layout.features, height * width, width)
    }

    /// Runs the loaded images through the network; leaves softmax probabilities in `probabilities`.
    func forward(_ parameters: UnsafePointer<Float>) {
        for slot in 0..<images {
            for (index, plane) in planes.enumerated() {
                let conv = plane.conv
                let target = output(of: index, slot: slot)
                nas_conv2d_forward(
                    inputs[index] + slot * conv.inputChannels * plane.plane, Int32(conv.inputChannels),
                    Int32(plane.plane), Int32(plane.row), parameters + conv.kernelOffset, Int32(conv.filters),
                    Int32(conv.kernelSize), parameters + conv.biasOffset, 1, target.pointer, Int32(target.plane),
                    Int32(target.row), Int32(height), Int32(width))
            }
        }
        let classes = layout.classes
        for image in 0..<images {
            (probabilities + image * classes).update(from: parameters + layout.denseBiasOffset, count: classes)
        }
        Kernels.gemm(
            transposeA: false, transposeB: false, m: images, n: classes, k: layout.features, flat,
            lda: layout.features, parameters + layout.denseKernelOffset, ldb: classes, beta: 1, probabilities,
            ldc: classes)
        for image in 0..<images {
            let row = probabilities + image * classes
            var largest = row[0]
            for j in 1..<classes { largest = max(largest, row[j]) }
            var sum: Float = 0
            for j in 0..<classes {
                row[j] = expf(row[j] - largest)
                sum += row[j]
            }
            for j in 0..<classes { row[j] /= sum }
        }
    }

    /// The predicted class of each loaded image (the first of equal maxima, as `argmax` picks).
    func predictedClass(_ image: Int) -> Int {
        let row = probabilities + image * layout.classes
        var best = 0
        for j in 1..<layout.classes where row[j] > row[best] { best = j }
        return best
    }

    /// Back-propagates the cross-entropy of the loaded images after `forward`, scaled by `scale` (1 / batch size),
    /// into `gradient` (overwritten). Returns the summed loss and the number of correct predictions.
    func backward(_ parameters: UnsafePointer<Float>, labels: UnsafeBufferPointer<Int>, scale: Float) -> (
        loss: Double, correct: Int
    ) {
        let classes = layout.classes
        let features = layout.features
        var loss = 0.0
        var correct = 0
        // The softmax probabilities become d(loss)/d(logits) in place: (p - onehot) * scale.
        for image in 0..<images {
            let label = labels[image]
            if predictedClass(image) == label { correct += 1 }
            let row = probabilities + image * classes
            loss -= Double(logf(max(row[label], Float.leastNormalMagnitude)))
            row[label] -= 1
            for j in 0..<classes { row[j] *= scale }
        }
        let logits = UnsafePointer(probabilities)
        Kernels.gemm(
            transposeA: true, transposeB: false, m: features, n: classes, k: images, flat, lda: features, logits,
            ldb: classes, beta: 0, gradient + layout.denseKernelOffset, ldc: classes)
        for j in 0..<classes {
            var sum: Float = 0
            for image in 0..<images { sum += logits[image * classes + j] }
            gradient[layout.denseBiasOffset + j] = sum
        }
        guard !planes.isEmpty else { return (loss, correct) }
        Kernels.gemm(
            transposeA: false, transposeB: true, m: images, n: features, k: classes, logits, lda: classes,
            parameters + layout.denseKernelOffset, ldb: classes, beta: 0, flatGradient, ldc: features)
        for conv in layout.convs {
            gradient.advanced(by: conv.kernelOffset).update(repeating: 0, count: conv.filters * conv.patch)
            gradient.advanced(by: conv.biasOffset).update(repeating: 0, count: conv.filters)
            flip(parameters + conv.kernelOffset, conv)
        }
        for slot in 0..<images {
            backward(slot: slot, parameters)
        }
        return (loss, correct)
    }

    /// Back-propagates one image through the conv layers, adding into the conv gradients.
    private func backward(slot: Int, _ parameters: UnsafePointer<Float>) {
        // The gradient with respect to the current layer's output, compact [C, H, W].
        var upstream = UnsafePointer(flatGradient + slot * layout.features)
        for index in stride(from: planes.count - 1, through: 0, by: -1) {
            let plane = planes[index]
            let padded = gradientPlanes[index]
            let conv = plane.conv
            let activation = output(of: index, slot: slot)
            let masked = outputGradients[index] + padded.before * (padded.row + 1)
            // The ReLU mask, written into the padded planes the next two kernels read, and the bias gradient.
            nas_relu_backward(
                upstream, Int32(height * width), Int32(width), activation.pointer, Int32(activation.plane),
                Int32(activation.row), masked, Int32(padded.plane), Int32(padded.row), Int32(conv.filters),
                Int32(height), Int32(width), gradient + conv.biasOffset)
            nas_conv2d_weight_grad(
                inputs[index] + slot * conv.inputChannels * plane.plane, Int32(conv.inputChannels),
                Int32(plane.plane), Int32(plane.row), masked, Int32(conv.filters), Int32(padded.plane),
                Int32(padded.row), Int32(conv.kernelSize), Int32(height), Int32(width), gradient + conv.kernelOffset)
            guard index > 0 else { break }
            // The input's gradient is the "full" correlation of the output's with the flipped kernel.
            nas_conv2d_forward(
                outputGradients[index], Int32(conv.filters), Int32(padded.plane), Int32(padded.row),
                flippedKernels[index], Int32(conv.inputChannels), Int32(conv.kernelSize), nil, 0, inputGradient,
                Int32(height * width), Int32(width), Int32(height), Int32(width))
            upstream = UnsafePointer(inputGradient)
        }
    }

    /// `flipped[c][o][ky][kx] = kernel[o][c][k-1-ky][k-1-kx]`.
    private func flip(_ kernel: UnsafePointer<Float>, _ conv: ParameterLayout.Conv) {
        guard let index = layout.convs.firstIndex(where: { $0.kernelOffset == conv.kernelOffset }) else { return }
        let flipped = flippedKernels[index]
        let k = conv.kernelSize
        let area = k * k
        for o in 0..<conv.filters {
            for c in 0..<conv.inputChannels {
                for position in 0..<area {
                    flipped[(c * conv.filters + o) * area + (area - 1 - position)] =
                        kernel[(o * conv.inputChannels + c) * area + position]
                }
            }
        }
    }
}
