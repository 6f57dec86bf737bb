import Foundation

/// One thread's share of a batch: buffers for up to `capacity` images, the forward pass, and the backward pass
/// into its own gradient vector (summed with the other workers' in a fixed order by the caller).
///
/// Only one thread uses a worker at a time; the trainer hands each worker to one iteration of
/// `concurrentPerform`, hence `@unchecked Sendable`.
final class Worker: @unchecked Sendable {
    let layout: ParameterLayout
    let capacity: Int
    /// Per conv layer: its im2col matrix, kept for the backward pass.
    private var columns: [UnsafeMutablePointer<Float>]
    /// Per conv layer: its output after ReLU (CNHW).
    private var activations: [UnsafeMutablePointer<Float>]
    private let input: UnsafeMutablePointer<Float>
    private let flat: UnsafeMutablePointer<Float>
    let probabilities: UnsafeMutablePointer<Float>
    private let gradientA: UnsafeMutablePointer<Float>
    private let gradientB: UnsafeMutablePointer<Float>
    private let gradientColumns: UnsafeMutablePointer<Float>
    private let gradientFlat: UnsafeMutablePointer<Float>
    let gradient: UnsafeMutablePointer<Float>
    private(set) var images = 0

    init(layout: ParameterLayout, capacity: Int) {
        self.layout = layout
        self.capacity = capacity
        let pixels = layout.pixels * capacity
        columns = layout.convs.map { .allocate(capacity: $0.patch * pixels) }
        activations = layout.convs.map { .allocate(capacity: $0.filters * pixels) }
        input = .allocate(capacity: layout.architecture.channels * pixels)
        flat = .allocate(capacity: layout.features * capacity)
        probabilities = .allocate(capacity: layout.classes * capacity)
        let widest = max(layout.architecture.channels, layout.convs.map(\.filters).max() ?? 0)
        gradientA = .allocate(capacity: widest * pixels)
        gradientB = .allocate(capacity: widest * pixels)
        gradientColumns = .allocate(capacity: (layout.convs.map(\.patch).max() ?? 1) * pixels)
        gradientFlat = .allocate(capacity: layout.features * capacity)
        gradient = .allocate(capacity: layout.count)
    }

    deinit {
        for buffer in columns { buffer.deallocate() }
        for buffer in activations { buffer.deallocate() }
        for buffer in [input, flat, probabilities, gradientA, gradientB, gradientColumns, gradientFlat, gradient] {
            buffer.deallocate()
        }
    }

    /// Copies images (NCHW, `imageSize` floats each, at `indices` of `source`) into the CNHW input buffer.
    func load(_ source: UnsafePointer<Float>, indices: UnsafeBufferPointer<Int>) {
        precondition(indices.count <= capacity)
        images = indices.count
        let channels = layout.architecture.channels
        let plane = layout.pixels
        for (slot, index) in indices.enumerated() {
            let image = source + index * channels * plane
            for channel in 0..<channels {
                (input + (channel * images + slot) * plane).update(from: image + channel * plane, count: plane)
            }
        }
    }

    /// Runs the loaded images through the network; leaves softmax probabilities in `probabilities`.
    func forward(_ parameters: UnsafePointer<Float>) {
        let height = layout.architecture.height
        let width = layout.architecture.width
        let points = images * layout.pixels
        var current = UnsafePointer(input)
        var channels = layout.architecture.channels
        for (index, conv) in layout.convs.enumerated() {
            Kernels.im2col(
                current, channels: channels, images: images, height: height, width: width,
                kernel: conv.kernelSize, columns[index])
            let output = activations[index]
            Kernels.gemm(
                transposeA: false, transposeB: false, m: conv.filters, n: points, k: conv.patch,
                parameters + conv.kernelOffset, lda: conv.patch, columns[index], ldb: points, beta: 0, output,
                ldc: points)
            for filter in 0..<conv.filters {
                let bias = parameters[conv.biasOffset + filter]
                let row = output + filter * points
                for point in 0..<points { row[point] = max(row[point] + bias, 0) }
            }
            current = UnsafePointer(output)
            channels = conv.filters
        }
        // Flatten to [images, C*H*W] in C, H, W order, as ONNX's Flatten of NCHW.
        let plane = layout.pixels
        for image in 0..<images {
            for channel in 0..<channels {
                (flat + image * layout.features + channel * plane).update(
                    from: current + (channel * images + image) * plane, count: plane)
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
        let points = images * layout.pixels
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
        guard !layout.convs.isEmpty else { return (loss, correct) }
        Kernels.gemm(
            transposeA: false, transposeB: true, m: images, n: features, k: classes, logits, lda: classes,
            parameters + layout.denseKernelOffset, ldb: classes, beta: 0, gradientFlat, ldc: features)
        let plane = layout.pixels
        var upstream = gradientA
        var downstream = gradientB
        let last = layout.convs[layout.convs.count - 1]
        for image in 0..<images {
            for channel in 0..<last.filters {
                (upstream + (channel * images + image) * plane).update(
                    from: gradientFlat + image * features + channel * plane, count: plane)
            }
        }
        for index in stride(from: layout.convs.count - 1, through: 0, by: -1) {
            let conv = layout.convs[index]
            let output = activations[index]
            let total = conv.filters * points
            for point in 0..<total where output[point] <= 0 { upstream[point] = 0 }
            Kernels.gemm(
                transposeA: false, transposeB: true, m: conv.filters, n: conv.patch, k: points, upstream,
                lda: points, columns[index], ldb: points, beta: 0, gradient + conv.kernelOffset, ldc: conv.patch)
            for filter in 0..<conv.filters {
                let row = upstream + filter * points
                var sum: Float = 0
                for point in 0..<points { sum += row[point] }
                gradient[conv.biasOffset + filter] = sum
            }
            guard index > 0 else { break }
            Kernels.gemm(
                transposeA: true, transposeB: false, m: conv.patch, n: points, k: conv.filters,
                parameters + conv.kernelOffset, lda: conv.patch, upstream, ldb: points, beta: 0, gradientColumns,
                ldc: points)
            Kernels.col2im(
                gradientColumns, channels: conv.inputChannels, images: images, height: layout.architecture.height,
                width: layout.architecture.width, kernel: conv.kernelSize, downstream)
            swap(&upstream, &downstream)
        }
        return (loss, correct)
    }
}
