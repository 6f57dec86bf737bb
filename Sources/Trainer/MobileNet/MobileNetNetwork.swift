internal import CTrainerKernels
import Dispatch
import Foundation

/// The forward and backward passes of a `MobileNetArchitecture` over one whole batch.
///
/// Every tensor is channel-major over the batch, `[C][N][H][W]`: a pointwise convolution is one sgemm
/// `[Co, Ci] x [Ci, N*H*W]`, and batch normalisation's statistics of a channel are one contiguous row, so they are
/// exact whole-batch statistics whatever the thread count. The work of each layer is split across threads by
/// channels (depthwise convolutions, batch norm, activations, pooling) or by columns and rows of the matrix
/// products; each output element is computed by exactly one thread, so a seed and thread count give the same bits.
///
/// Used by one thread at a time (the trainer's), hence `@unchecked Sendable`; the threads it starts for each layer
/// write disjoint ranges.
final class MobileNetNetwork: @unchecked Sendable {
    /// A tensor `[channels][images][area]` and, when training, its gradient.
    struct Tensor {
        let channels: Int
        let area: Int
        let values: UnsafeMutablePointer<Float>
        let gradient: UnsafeMutablePointer<Float>?
    }

    /// A convolution's output through batch norm and an activation: `normalized` holds the pre-norm values, then
    /// (in training) the normalised ones; `activated` the activation's output (the same as `output` when none).
    struct NormStage {
        let norm: MobileNetLayout.Norm
        let normalized: Tensor
        let output: Tensor
        let activated: Tensor
        let activation: Int32
    }

    struct BlockTensors {
        let expand: NormStage?
        let depthwise: NormStage
        /// Pooled, reduce pre-activation, reduce output, expand pre-activation, excitation, scaled output.
        let squeeze: (pooled: Tensor, reducePre: Tensor, reduced: Tensor, excitePre: Tensor, excite: Tensor,
            scaled: Tensor)?
        let project: NormStage
        let output: Tensor
    }

    let layout: MobileNetLayout
    let capacity: Int
    let threads: Int
    let training: Bool
    /// Images loaded by the last `load`.
    private(set) var images = 0

    private var allocations: [UnsafeMutablePointer<Float>] = []
    private let input: UnsafeMutablePointer<Float>
    private let columns: UnsafeMutablePointer<Float>
    private let stem: NormStage
    private let blocks: [BlockTensors]
    private let pooled: Tensor
    /// Softmax probabilities `[images][classes]`; in `backward`, the logits' gradient.
    let probabilities: UnsafeMutablePointer<Float>
    /// The gradient of the loss with respect to every parameter, in the layout's order (training only).
    let gradient: UnsafeMutablePointer<Float>
    /// Per batch norm: the batch's mean and (biased) variance of the last training forward pass, laid out as the
    /// layout's statistics; and each channel's 1 / sqrt(var + epsilon).
    let batchStatistics: UnsafeMutablePointer<Float>
    private let inverseDeviations: UnsafeMutablePointer<Float>

    static let epsilon: Float = 1e-3

    init(layout: MobileNetLayout, capacity: Int, threads: Int, training: Bool) {
        self.layout = layout
        self.capacity = capacity
        self.threads = max(1, threads)
        self.training = training
        var allocations: [UnsafeMutablePointer<Float>] = []
        func zeroed(_ count: Int) -> UnsafeMutablePointer<Float> {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            buffer.initialize(repeating: 0, count: max(count, 1))
            allocations.append(buffer)
            return buffer
        }
        func tensor(_ channels: Int, _ area: Int, gradient: Bool = true) -> Tensor {
            Tensor(
                channels: channels, area: area, values: zeroed(channels * capacity * area),
                gradient: training && gradient ? zeroed(channels * capacity * area) : nil)
        }
        func stage(_ norm: MobileNetLayout.Norm, _ area: Int, _ activation: MobileNetActivation?) -> NormStage {
            let normalized = tensor(norm.channels, area)
            let output = tensor(norm.channels, area)
            let kind = activation.map(Self.kind) ?? Int32(NAS_MB_IDENTITY)
            return NormStage(
                norm: norm, normalized: normalized, output: output,
                activated: activation == nil ? output : tensor(norm.channels, area), activation: kind)
        }
        let a = layout.architecture
        input = zeroed(capacity * a.channels * a.height * a.width)
        let stemArea = layout.stemHeight * layout.stemWidth
        columns = zeroed(a.channels * a.stemKernelSize * a.stemKernelSize * capacity * stemArea)
        stem = stage(layout.stemNorm, stemArea, a.stemActivation)
        var previous = stem.activated
        var blocks: [BlockTensors] = []
        for block in layout.blocks {
            let activation = block.block.activation
            let expand = block.expand.map { stage($0.norm, block.inputArea, activation) }
            let depthwise = stage(block.depthwiseNorm, block.outputArea, activation)
            let squeeze = block.squeezeExcite.map { se in
                (
                    pooled: tensor(block.expandedChannels, 1), reducePre: tensor(se.channels, 1),
                    reduced: tensor(se.channels, 1), excitePre: tensor(block.expandedChannels, 1),
                    excite: tensor(block.expandedChannels, 1), scaled: tensor(block.expandedChannels, block.outputArea)
                )
            }
            let project = stage(block.projectNorm, block.outputArea, nil)
            let output = block.residual ? tensor(block.outputChannels, block.outputArea) : project.output
            blocks.append(
                BlockTensors(expand: expand, depthwise: depthwise, squeeze: squeeze, project: project, output: output))
            previous = output
        }
        _ = previous
        self.blocks = blocks
        pooled = tensor(layout.features, 1)
        probabilities = zeroed(capacity * layout.classes)
        gradient = zeroed(training ? layout.count : 0)
        batchStatistics = zeroed(layout.statisticsCount)
        inverseDeviations = zeroed(layout.statisticsCount / 2)
        self.allocations = allocations
    }

    deinit {
        for buffer in allocations { buffer.deallocate() }
    }

    static func kind(_ activation: MobileNetActivation) -> Int32 {
        switch activation {
        case .relu6: Int32(NAS_MB_RELU6)
        case .hardSwish: Int32(NAS_MB_HSWISH)
        }
    }

    /// Copies images (NCHW, at `indices` of `source`) into the input and builds the stem's im2col matrix.
    func load(_ source: UnsafePointer<Float>, indices: UnsafeBufferPointer<Int>) {
        precondition(indices.count <= capacity && indices.count > 0)
        images = indices.count
        let a = layout.architecture
        let size = a.channels * a.height * a.width
        for (slot, index) in indices.enumerated() {
            (input + slot * size).update(from: source + index * size, count: size)
        }
        nas_mb_im2col(
            input, columns, Int32(images), Int32(a.channels), Int32(a.height), Int32(a.width),
            Int32(layout.stemHeight), Int32(layout.stemWidth), Int32(a.stemKernelSize), Int32(a.stemStride),
            Int32(layout.stemPadTop), Int32(layout.stemPadLeft))
    }

    // MARK: - Forward

    /// Runs the loaded images through the network, with batch statistics (training) or the running `statistics`
    /// (evaluation); leaves softmax probabilities in `probabilities`.
    func forward(_ parameters: UnsafePointer<Float>, statistics: UnsafePointer<Float>?) {
        let a = layout.architecture
        let stemArea = layout.stemHeight * layout.stemWidth
        let patch = a.channels * a.stemKernelSize * a.stemKernelSize
        pointwise(
            parameters + layout.stemKernel, outputs: a.stemFilters, inputs: patch, columns, stem.normalized.values,
            columnsCount: images * stemArea)
        normalize(stem, parameters, statistics)
        var current = stem.activated
        for (block, tensors) in zip(layout.blocks, blocks) {
            current = forward(block, tensors, input: current, parameters, statistics)
        }
        nas_mb_average_pool(current.values, pooled.values, current.channels * images, Int32(current.area))
        let classes = layout.classes
        for image in 0..<images {
            (probabilities + image * classes).update(from: parameters + layout.denseBias, count: classes)
        }
        Kernels.gemm(
            transposeA: true, transposeB: false, m: images, n: classes, k: layout.features, pooled.values,
            lda: images, parameters + layout.denseKernel, ldb: classes, beta: 1, probabilities, ldc: classes)
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

    private func forward(
        _ block: MobileNetLayout.Block, _ tensors: BlockTensors, input: Tensor, _ parameters: UnsafePointer<Float>,
        _ statistics: UnsafePointer<Float>?
    ) -> Tensor {
        var expanded = input
        if let expand = block.expand, let stage = tensors.expand {
            pointwise(
                parameters + expand.kernel, outputs: block.expandedChannels, inputs: block.inputChannels,
                input.values, stage.normalized.values, columnsCount: images * block.inputArea)
            normalize(stage, parameters, statistics)
            expanded = stage.activated
        }
        let k = block.block.kernelSize
        let n = images
        parallel(block.expandedChannels) { lower, upper in
            nas_mb_depthwise_forward(
                expanded.values + lower * n * block.inputArea, parameters + block.depthwise + lower * k * k,
                tensors.depthwise.normalized.values + lower * n * block.outputArea, Int32(upper - lower), Int32(n),
                Int32(block.inputHeight), Int32(block.inputWidth), Int32(block.outputHeight),
                Int32(block.outputWidth), Int32(k), Int32(block.stride), Int32(block.padTop), Int32(block.padLeft))
        }
        normalize(tensors.depthwise, parameters, statistics)
        var projected = tensors.depthwise.activated
        if let se = block.squeezeExcite, let squeeze = tensors.squeeze {
            let channels = block.expandedChannels
            nas_mb_average_pool(projected.values, squeeze.pooled.values, channels * n, Int32(block.outputArea))
            dense(
                parameters + se.reduce, bias: parameters + se.reduceBias, outputs: se.channels, inputs: channels,
                squeeze.pooled.values, squeeze.reducePre.values)
            nas_mb_activation_forward(
                Int32(NAS_MB_RELU), squeeze.reducePre.values, squeeze.reduced.values, se.channels * n)
            dense(
                parameters + se.expand, bias: parameters + se.expandBias, outputs: channels, inputs: se.channels,
                squeeze.reduced.values, squeeze.excitePre.values)
            nas_mb_activation_forward(
                Int32(NAS_MB_HSIGMOID), squeeze.excitePre.values, squeeze.excite.values, channels * n)
            let source = projected
            parallel(channels) { lower, upper in
                nas_mb_scale(
                    source.values + lower * n * block.outputArea, squeeze.excite.values + lower * n,
                    squeeze.scaled.values + lower * n * block.outputArea, (upper - lower) * n,
                    Int32(block.outputArea))
            }
            projected = squeeze.scaled
        }
        pointwise(
            parameters + block.project, outputs: block.outputChannels, inputs: block.expandedChannels,
            projected.values, tensors.project.normalized.values, columnsCount: n * block.outputArea)
        normalize(tensors.project, parameters, statistics)
        if block.residual {
            let count = block.outputChannels * n * block.outputArea
            let (sum, left, right) = (tensors.output.values, tensors.project.output.values, input.values)
            parallel(count, grain: 4096) { lower, upper in
                for index in lower..<upper { sum[index] = left[index] + right[index] }
            }
        }
        return tensors.output
    }

    /// Batch norm (training: batch statistics, kept in `batchStatistics`; evaluation: `statistics`), then the
    /// stage's activation.
    private func normalize(
        _ stage: NormStage, _ parameters: UnsafePointer<Float>, _ statistics: UnsafePointer<Float>?
    ) {
        let norm = stage.norm
        let m = images * stage.output.area
        let (batch, deviations) = (batchStatistics, inverseDeviations)
        parallel(norm.channels) { lower, upper in
            let rows = lower * m
            if let statistics {
                nas_mb_batchnorm_eval(
                    stage.normalized.values + rows, stage.output.values + rows, Int32(upper - lower), m,
                    parameters + norm.gamma + lower, parameters + norm.beta + lower, statistics + norm.mean + lower,
                    statistics + norm.variance + lower, Self.epsilon)
            } else {
                nas_mb_batchnorm_train(
                    stage.normalized.values + rows, stage.output.values + rows, Int32(upper - lower), m,
                    parameters + norm.gamma + lower, parameters + norm.beta + lower, Self.epsilon,
                    batch + norm.mean + lower, batch + norm.variance + lower, deviations + norm.mean / 2 + lower)
            }
            if stage.activated.values != stage.output.values {
                nas_mb_activation_forward(
                    stage.activation, stage.output.values + rows, stage.activated.values + rows, (upper - lower) * m)
            }
        }
    }

    /// `output[o][j] = sum over c of kernel[o][c] * input[c][j]` for `columnsCount` columns, split by columns.
    private func pointwise(
        _ kernel: UnsafePointer<Float>, outputs: Int, inputs: Int, _ input: UnsafePointer<Float>,
        _ output: UnsafeMutablePointer<Float>, columnsCount: Int
    ) {
        parallel(columnsCount, grain: 256) { lower, upper in
            Kernels.gemm(
                transposeA: false, transposeB: false, m: outputs, n: upper - lower, k: inputs, kernel, lda: inputs,
                input + lower, ldb: columnsCount, beta: 0, output + lower, ldc: columnsCount)
        }
    }

    /// A 1x1 convolution with bias on a pooled `[inputs][images]` tensor (squeeze-and-excite), one thread.
    private func dense(
        _ kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>, outputs: Int, inputs: Int,
        _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>
    ) {
        let n = images
        for o in 0..<outputs { (output + o * n).update(repeating: bias[o], count: n) }
        Kernels.gemm(
            transposeA: false, transposeB: false, m: outputs, n: n, k: inputs, kernel, lda: inputs, input, ldb: n,
            beta: 1, output, ldc: n)
    }

    /// The predicted class of each loaded image (the first of equal maxima, as `argmax` picks).
    func predictedClass(_ image: Int) -> Int {
        let row = probabilities + image * layout.classes
        var best = 0
        for j in 1..<layout.classes where row[j] > row[best] { best = j }
        return best
    }

    // MARK: - Backward

    /// Back-propagates the mean cross-entropy of the loaded images after a training `forward` into `gradient`
    /// (overwritten). Returns the summed loss and the number of correct predictions.
    func backward(_ parameters: UnsafePointer<Float>, labels: UnsafeBufferPointer<Int>) -> (loss: Double, correct: Int) {
        precondition(training)
        let classes = layout.classes
        let n = images
        let scale = 1 / Float(n)
        var loss = 0.0
        var correct = 0
        for image in 0..<n {
            let label = labels[image]
            if predictedClass(image) == label { correct += 1 }
            let row = probabilities + image * classes
            loss -= Double(logf(max(row[label], Float.leastNormalMagnitude)))
            row[label] -= 1
            for j in 0..<classes { row[j] *= scale }
        }
        let logits = UnsafePointer(probabilities)
        Kernels.gemm(
            transposeA: false, transposeB: false, m: layout.features, n: classes, k: n, pooled.values, lda: n, logits,
            ldb: classes, beta: 0, gradient + layout.denseKernel, ldc: classes)
        for j in 0..<classes {
            var sum: Float = 0
            for image in 0..<n { sum += logits[image * classes + j] }
            gradient[layout.denseBias + j] = sum
        }
        Kernels.gemm(
            transposeA: false, transposeB: true, m: layout.features, n: n, k: classes, parameters + layout.denseKernel,
            lda: classes, logits, ldb: classes, beta: 0, pooled.gradient!, ldc: n)
        let last = blocks.last?.output ?? stem.activated
        nas_mb_average_pool_backward(pooled.gradient!, last.gradient!, last.channels * n, Int32(last.area))
        for index in stride(from: layout.blocks.count - 1, through: 0, by: -1) {
            let input = index == 0 ? stem.activated : blocks[index - 1].output
            backward(layout.blocks[index], blocks[index], input: input, parameters)
        }
        normalizeBackward(stem, parameters)
        let a = layout.architecture
        let patch = a.channels * a.stemKernelSize * a.stemKernelSize
        kernelGradient(
            stem.normalized.gradient!, outputs: a.stemFilters, columns, inputs: patch,
            columnsCount: n * layout.stemHeight * layout.stemWidth, into: gradient + layout.stemKernel)
        return (loss, correct)
    }

    /// Back-propagates one block from its output's gradient into its input's gradient (overwritten) and the
    /// parameters' gradients.
    private func backward(
        _ block: MobileNetLayout.Block, _ tensors: BlockTensors, input: Tensor, _ parameters: UnsafePointer<Float>
    ) {
        let n = images
        let gradient = self.gradient
        if block.residual {
            (tensors.project.output.gradient!).update(
                from: tensors.output.gradient!, count: block.outputChannels * n * block.outputArea)
        }
        normalizeBackward(tensors.project, parameters)
        let projected = tensors.squeeze?.scaled ?? tensors.depthwise.activated
        kernelGradient(
            tensors.project.normalized.gradient!, outputs: block.outputChannels, projected.values,
            inputs: block.expandedChannels, columnsCount: n * block.outputArea, into: gradient + block.project)
        inputGradient(
            parameters + block.project, outputs: block.outputChannels, inputs: block.expandedChannels,
            tensors.project.normalized.gradient!, projected.gradient!, columnsCount: n * block.outputArea)
        if let se = block.squeezeExcite, let squeeze = tensors.squeeze {
            let channels = block.expandedChannels
            let area = block.outputArea
            let activated = tensors.depthwise.activated
            parallel(channels) { lower, upper in
                nas_mb_scale_backward(
                    activated.values + lower * n * area, squeeze.excite.values + lower * n,
                    squeeze.scaled.gradient! + lower * n * area, activated.gradient! + lower * n * area,
                    squeeze.excite.gradient! + lower * n, (upper - lower) * n, Int32(area))
            }
            nas_mb_activation_backward(
                Int32(NAS_MB_HSIGMOID), squeeze.excitePre.values, squeeze.excite.gradient!,
                squeeze.excitePre.gradient!, channels * n, 0)
            denseBackward(
                parameters + se.expand, kernelGradient: gradient + se.expand, biasGradient: gradient + se.expandBias,
                outputs: channels, inputs: se.channels, input: squeeze.reduced, output: squeeze.excitePre)
            nas_mb_activation_backward(
                Int32(NAS_MB_RELU), squeeze.reducePre.values, squeeze.reduced.gradient!, squeeze.reducePre.gradient!,
                se.channels * n, 0)
            denseBackward(
                parameters + se.reduce, kernelGradient: gradient + se.reduce, biasGradient: gradient + se.reduceBias,
                outputs: se.channels, inputs: channels, input: squeeze.pooled, output: squeeze.reducePre)
            // The pooled input's share of the depthwise output's gradient.
            let pooled = squeeze.pooled.gradient!
            let target = activated.gradient!
            let scale = 1 / Float(area)
            parallel(channels) { lower, upper in
                for plane in (lower * n)..<(upper * n) {
                    let share = pooled[plane] * scale
                    let row = target + plane * area
                    for j in 0..<area { row[j] += share }
                }
            }
        }
        normalizeBackward(tensors.depthwise, parameters)
        let expanded = tensors.expand?.activated ?? input
        let k = block.block.kernelSize
        let depthwiseGradient = tensors.depthwise.normalized.gradient!
        parallel(block.expandedChannels) { lower, upper in
            nas_mb_depthwise_backward(
                expanded.values + lower * n * block.inputArea, parameters + block.depthwise + lower * k * k,
                depthwiseGradient + lower * n * block.outputArea, expanded.gradient! + lower * n * block.inputArea,
                gradient + block.depthwise + lower * k * k, Int32(upper - lower), Int32(n), Int32(block.inputHeight),
                Int32(block.inputWidth), Int32(block.outputHeight), Int32(block.outputWidth), Int32(k),
                Int32(block.stride), Int32(block.padTop), Int32(block.padLeft))
        }
        if let expand = block.expand, let stage = tensors.expand {
            normalizeBackward(stage, parameters)
            kernelGradient(
                stage.normalized.gradient!, outputs: block.expandedChannels, input.values,
                inputs: block.inputChannels, columnsCount: n * block.inputArea, into: gradient + expand.kernel)
            inputGradient(
                parameters + expand.kernel, outputs: block.expandedChannels, inputs: block.inputChannels,
                stage.normalized.gradient!, input.gradient!, columnsCount: n * block.inputArea)
        }
        if block.residual {
            let count = block.inputChannels * n * block.inputArea
            let (target, skip) = (input.gradient!, UnsafePointer(tensors.output.gradient!))
            parallel(count, grain: 4096) { lower, upper in
                for index in lower..<upper { target[index] += skip[index] }
            }
        }
    }

    /// From the activated output's gradient: the activation's and batch norm's backward passes, leaving the
    /// pre-norm gradient in `normalized.gradient` and gamma's and beta's in `gradient`.
    private func normalizeBackward(_ stage: NormStage, _ parameters: UnsafePointer<Float>) {
        let norm = stage.norm
        let m = images * stage.output.area
        let (gradient, deviations) = (self.gradient, inverseDeviations)
        parallel(norm.channels) { lower, upper in
            let rows = lower * m
            if stage.activated.values != stage.output.values {
                nas_mb_activation_backward(
                    stage.activation, stage.output.values + rows, stage.activated.gradient! + rows,
                    stage.output.gradient! + rows, (upper - lower) * m, 0)
            }
            nas_mb_batchnorm_backward(
                stage.output.gradient! + rows, stage.normalized.values + rows, parameters + norm.gamma + lower,
                deviations + norm.mean / 2 + lower, stage.normalized.gradient! + rows, gradient + norm.gamma + lower,
                gradient + norm.beta + lower, Int32(upper - lower), m)
        }
    }

    /// `into[o][c] = sum over j of outputGradient[o][j] * input[c][j]`, split by output rows.
    private func kernelGradient(
        _ outputGradient: UnsafePointer<Float>, outputs: Int, _ input: UnsafePointer<Float>, inputs: Int,
        columnsCount: Int, into kernel: UnsafeMutablePointer<Float>
    ) {
        parallel(outputs) { lower, upper in
            Kernels.gemm(
                transposeA: false, transposeB: true, m: upper - lower, n: inputs, k: columnsCount,
                outputGradient + lower * columnsCount, lda: columnsCount, input, ldb: columnsCount, beta: 0,
                kernel + lower * inputs, ldc: inputs)
        }
    }

    /// `inputGradient[c][j] = sum over o of kernel[o][c] * outputGradient[o][j]`, split by columns.
    private func inputGradient(
        _ kernel: UnsafePointer<Float>, outputs: Int, inputs: Int, _ outputGradient: UnsafePointer<Float>,
        _ inputGradient: UnsafeMutablePointer<Float>, columnsCount: Int
    ) {
        parallel(columnsCount, grain: 256) { lower, upper in
            Kernels.gemm(
                transposeA: true, transposeB: false, m: inputs, n: upper - lower, k: outputs, kernel, lda: inputs,
                outputGradient + lower, ldb: columnsCount, beta: 0, inputGradient + lower, ldc: columnsCount)
        }
    }

    /// The backward pass of `dense`: kernel and bias gradients, and the input's gradient (overwritten).
    private func denseBackward(
        _ kernel: UnsafePointer<Float>, kernelGradient: UnsafeMutablePointer<Float>,
        biasGradient: UnsafeMutablePointer<Float>, outputs: Int, inputs: Int, input: Tensor, output: Tensor
    ) {
        let n = images
        let outputGradient = UnsafePointer(output.gradient!)
        Kernels.gemm(
            transposeA: false, transposeB: true, m: outputs, n: inputs, k: n, outputGradient, lda: n, input.values,
            ldb: n, beta: 0, kernelGradient, ldc: inputs)
        for o in 0..<outputs {
            var sum: Float = 0
            for j in 0..<n { sum += outputGradient[o * n + j] }
            biasGradient[o] = sum
        }
        Kernels.gemm(
            transposeA: true, transposeB: false, m: inputs, n: n, k: outputs, kernel, lda: inputs, outputGradient,
            ldb: n, beta: 0, input.gradient!, ldc: n)
    }

    // MARK: - Threads

    /// Splits `0..<count` into one contiguous range per thread (fewer when a range would hold under `grain`
    /// items) and runs `body` on each, concurrently; returns when all are done.
    private func parallel(_ count: Int, grain: Int = 1, _ body: (Int, Int) -> Void) {
        let parts = min(threads, max(1, count / max(grain, 1)))
        guard parts > 1 else {
            if count > 0 { body(0, count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedBody(body: body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let lower = count * part / parts
                let upper = count * (part + 1) / parts
                if upper > lower { shared.body(lower, upper) }
            }
        }
    }
}

/// A range body handed to the threads of one `concurrentPerform`; each call writes a disjoint range.
private struct UncheckedBody: @unchecked Sendable {
    let body: (Int, Int) -> Void
}
