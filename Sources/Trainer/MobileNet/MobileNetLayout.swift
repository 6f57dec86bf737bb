/// Where each tensor of a `MobileNetArchitecture` lives in the flat parameter vector and in the flat vector of
/// batch-norm statistics, with each layer's geometry.
///
/// Parameters, in order: the stem's kernel `[Co, Ci, k, k]`, gamma, beta; per block the expansion's kernel
/// `[Ce, Ci]` (when the ratio is above 1), gamma, beta, the depthwise kernel `[Ce, 1, k, k]`, gamma, beta, the
/// squeeze-and-excite reduce kernel `[Cr, Ce]` and bias, expand kernel `[Ce, Cr]` and bias (when on), the
/// projection's kernel `[Co, Ce]`, gamma, beta; then the dense kernel `[features, classes]` and bias. Statistics:
/// per batch norm, in the same order, the running mean then the running variance. Kernels are in ONNX's layouts.
struct MobileNetLayout: Sendable {
    /// One batch normalisation: offsets of gamma and beta (parameters), mean and variance (statistics).
    struct Norm: Sendable {
        var channels: Int
        var gamma: Int
        var beta: Int
        var mean: Int
        var variance: Int
    }

    struct SqueezeExcite: Sendable {
        var channels: Int
        var reduce: Int
        var reduceBias: Int
        var expand: Int
        var expandBias: Int
    }

    struct Block: Sendable {
        var block: MobileNetBlock
        var inputChannels: Int
        var expandedChannels: Int
        var outputChannels: Int
        var stride: Int
        var inputHeight: Int
        var inputWidth: Int
        var outputHeight: Int
        var outputWidth: Int
        var padTop: Int
        var padLeft: Int
        /// The expansion's kernel offset and norm (nil when the ratio is 1).
        var expand: (kernel: Int, norm: Norm)?
        var depthwise: Int
        var depthwiseNorm: Norm
        var squeezeExcite: SqueezeExcite?
        var project: Int
        var projectNorm: Norm
        var residual: Bool { stride == 1 && inputChannels == outputChannels }
        var inputArea: Int { inputHeight * inputWidth }
        var outputArea: Int { outputHeight * outputWidth }
    }

    let architecture: MobileNetArchitecture
    let stemKernel: Int
    let stemNorm: Norm
    let stemHeight: Int
    let stemWidth: Int
    let stemPadTop: Int
    let stemPadLeft: Int
    let blocks: [Block]
    let denseKernel: Int
    let denseBias: Int
    /// The number of parameters.
    let count: Int
    /// The number of batch-norm statistics.
    let statisticsCount: Int
    /// Every batch norm, in order.
    let norms: [Norm]

    init(_ architecture: MobileNetArchitecture) {
        self.architecture = architecture
        var offset = 0
        var statistics = 0
        var norms: [Norm] = []
        func take(_ size: Int) -> Int {
            defer { offset += size }
            return offset
        }
        func norm(_ channels: Int) -> Norm {
            let result = Norm(
                channels: channels, gamma: take(channels), beta: take(channels), mean: statistics,
                variance: statistics + channels)
            statistics += 2 * channels
            norms.append(result)
            return result
        }
        let k = architecture.stemKernelSize
        stemKernel = take(architecture.stemFilters * architecture.channels * k * k)
        stemNorm = norm(architecture.stemFilters)
        let rows = MobileNetArchitecture.same(architecture.height, kernel: k, stride: architecture.stemStride)
        let columns = MobileNetArchitecture.same(architecture.width, kernel: k, stride: architecture.stemStride)
        (stemHeight, stemPadTop, stemWidth, stemPadLeft) = (rows.output, rows.before, columns.output, columns.before)
        var (channels, height, width) = (architecture.stemFilters, rows.output, columns.output)
        var blocks: [Block] = []
        for stage in architecture.stages {
            for (index, block) in stage.blocks.enumerated() {
                let stride = index == 0 ? stage.stride : 1
                let expanded = channels * block.expansion
                let expand = block.expansion == 1 ? nil : (kernel: take(expanded * channels), norm: norm(expanded))
                let depthwise = take(expanded * block.kernelSize * block.kernelSize)
                let depthwiseNorm = norm(expanded)
                var squeezeExcite: SqueezeExcite?
                if block.squeezeExcite {
                    let reduced = MobileNetArchitecture.squeezeChannels(expanded)
                    squeezeExcite = SqueezeExcite(
                        channels: reduced, reduce: take(reduced * expanded), reduceBias: take(reduced),
                        expand: take(expanded * reduced), expandBias: take(expanded))
                }
                let project = take(stage.filters * expanded)
                let projectNorm = norm(stage.filters)
                let rows = MobileNetArchitecture.same(height, kernel: block.kernelSize, stride: stride)
                let columns = MobileNetArchitecture.same(width, kernel: block.kernelSize, stride: stride)
                blocks.append(
                    Block(
                        block: block, inputChannels: channels, expandedChannels: expanded,
                        outputChannels: stage.filters, stride: stride, inputHeight: height, inputWidth: width,
                        outputHeight: rows.output, outputWidth: columns.output, padTop: rows.before,
                        padLeft: columns.before, expand: expand, depthwise: depthwise, depthwiseNorm: depthwiseNorm,
                        squeezeExcite: squeezeExcite, project: project, projectNorm: projectNorm))
                (channels, height, width) = (stage.filters, rows.output, columns.output)
            }
        }
        self.blocks = blocks
        denseKernel = take(channels * architecture.classes)
        denseBias = take(architecture.classes)
        count = offset
        statisticsCount = statistics
        self.norms = norms
    }

    var features: Int { architecture.features }
    var classes: Int { architecture.classes }
    /// The area of the last feature map, which global average pooling reduces.
    var finalArea: Int { blocks.last.map(\.outputArea) ?? stemHeight * stemWidth }

    /// Glorot-uniform kernels with Keras's fans (a depthwise kernel `[k, k, C, 1]` has fan-in `C k^2` and fan-out
    /// `k^2`), zero biases and betas, gammas of 1; running means 0 and variances 1.
    func initialParameters(seed: UInt64) -> (parameters: [Float], statistics: [Float]) {
        var generator = SeededGenerator(seed: seed)
        var parameters = [Float](repeating: 0, count: count)
        func glorot(_ offset: Int, _ size: Int, fanIn: Int, fanOut: Int) {
            let limit = Float((6.0 / Double(fanIn + fanOut)).squareRoot())
            for index in offset..<(offset + size) {
                parameters[index] = (generator.unitFloat() * 2 - 1) * limit
            }
        }
        func ones(_ norm: Norm) {
            for index in norm.gamma..<(norm.gamma + norm.channels) { parameters[index] = 1 }
        }
        let a = architecture
        let area = a.stemKernelSize * a.stemKernelSize
        glorot(stemKernel, a.stemFilters * a.channels * area, fanIn: a.channels * area, fanOut: a.stemFilters * area)
        ones(stemNorm)
        for block in blocks {
            let (input, expanded, output) = (block.inputChannels, block.expandedChannels, block.outputChannels)
            if let expand = block.expand {
                glorot(expand.kernel, expanded * input, fanIn: input, fanOut: expanded)
                ones(expand.norm)
            }
            let kk = block.block.kernelSize * block.block.kernelSize
            glorot(block.depthwise, expanded * kk, fanIn: expanded * kk, fanOut: kk)
            ones(block.depthwiseNorm)
            if let se = block.squeezeExcite {
                glorot(se.reduce, se.channels * expanded, fanIn: expanded, fanOut: se.channels)
                glorot(se.expand, expanded * se.channels, fanIn: se.channels, fanOut: expanded)
            }
            glorot(block.project, output * expanded, fanIn: expanded, fanOut: output)
            ones(block.projectNorm)
        }
        glorot(denseKernel, features * classes, fanIn: features, fanOut: classes)
        var statistics = [Float](repeating: 0, count: statisticsCount)
        for norm in norms {
            for index in norm.variance..<(norm.variance + norm.channels) { statistics[index] = 1 }
        }
        return (parameters, statistics)
    }

    /// Checks that `weights` has this layout's sizes.
    func check(_ weights: MobileNetWeights) throws {
        guard weights.parameters.count == count, weights.statistics.count == statisticsCount else {
            throw TrainingError.weightsMismatch(
                "\(weights.parameters.count) parameters and \(weights.statistics.count) batch-norm statistics, "
                    + "expected \(count) and \(statisticsCount) for this MobileNet architecture")
        }
    }
}

/// The trained state of a `MobileNetArchitecture`: the parameters and the batch norms' running statistics, each
/// one flat vector in a fixed order (each kernel in ONNX's layout; `OnnxExport` reads them).
public struct MobileNetWeights: Hashable, Sendable {
    /// Kernels, biases, gammas and betas, in the architecture's layer order.
    public var parameters: [Float]
    /// Per batch norm, in layer order: the running mean then the running variance of each channel.
    public var statistics: [Float]

    /// Creates weights.
    public init(parameters: [Float], statistics: [Float]) {
        self.parameters = parameters
        self.statistics = statistics
    }
}
