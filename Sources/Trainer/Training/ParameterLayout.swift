/// Where each tensor of a `CNNArchitecture` lives in one flat parameter vector.
///
/// The order is conv kernel 0, conv bias 0, ..., dense kernel, dense bias, each already in ONNX's layout (OIHW
/// kernels, `[features, classes]` dense kernel with features in C, H, W order), so that turning the vector into
/// `CNNWeights` only slices it. One flat vector lets Adam and the gradient reduction run as single loops.
struct ParameterLayout: Sendable {
    struct Conv: Sendable {
        var inputChannels: Int
        var filters: Int
        var kernelSize: Int
        var kernelOffset: Int
        var biasOffset: Int
        /// Rows of the im2col matrix: `inputChannels * kernelSize * kernelSize`.
        var patch: Int { inputChannels * kernelSize * kernelSize }
    }

    let architecture: CNNArchitecture
    let convs: [Conv]
    let denseKernelOffset: Int
    let denseBiasOffset: Int
    let count: Int

    init(_ architecture: CNNArchitecture) {
        self.architecture = architecture
        var offset = 0
        var channels = architecture.channels
        var convs: [Conv] = []
        for layer in architecture.layers {
            let kernel = layer.filters * channels * layer.kernelSize * layer.kernelSize
            convs.append(
                Conv(
                    inputChannels: channels, filters: layer.filters, kernelSize: layer.kernelSize,
                    kernelOffset: offset, biasOffset: offset + kernel))
            offset += kernel + layer.filters
            channels = layer.filters
        }
        self.convs = convs
        denseKernelOffset = offset
        denseBiasOffset = offset + architecture.flattenedFeatures * architecture.classes
        count = denseBiasOffset + architecture.classes
    }

    var pixels: Int { architecture.height * architecture.width }
    var features: Int { architecture.flattenedFeatures }
    var classes: Int { architecture.classes }

    /// Glorot-uniform kernels and zero biases, as Keras initialises Conv2D and Dense.
    func initialParameters(seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        var parameters = [Float](repeating: 0, count: count)
        func glorot(_ offset: Int, _ size: Int, fanIn: Int, fanOut: Int) {
            let limit = Float((6.0 / Double(fanIn + fanOut)).squareRoot())
            for index in offset..<(offset + size) {
                parameters[index] = (generator.unitFloat() * 2 - 1) * limit
            }
        }
        for conv in convs {
            let area = conv.kernelSize * conv.kernelSize
            glorot(
                conv.kernelOffset, conv.filters * conv.patch, fanIn: conv.inputChannels * area,
                fanOut: conv.filters * area)
        }
        glorot(denseKernelOffset, features * classes, fanIn: features, fanOut: classes)
        return parameters
    }

    func weights(_ parameters: [Float]) -> CNNWeights {
        CNNWeights(
            convKernels: convs.map { Array(parameters[$0.kernelOffset..<$0.biasOffset]) },
            convBiases: convs.map { Array(parameters[$0.biasOffset..<($0.biasOffset + $0.filters)]) },
            denseKernel: Array(parameters[denseKernelOffset..<denseBiasOffset]),
            denseBias: Array(parameters[denseBiasOffset..<count]))
    }

    func parameters(_ weights: CNNWeights) throws -> [Float] {
        guard weights.convKernels.count == convs.count, weights.convBiases.count == convs.count else {
            throw TrainingError.weightsMismatch(
                "\(weights.convKernels.count) conv kernels and \(weights.convBiases.count) biases for "
                    + "\(convs.count) conv layers")
        }
        var parameters: [Float] = []
        parameters.reserveCapacity(count)
        for (index, conv) in convs.enumerated() {
            guard weights.convKernels[index].count == conv.filters * conv.patch else {
                throw TrainingError.weightsMismatch(
                    "conv \(index)'s kernel has \(weights.convKernels[index].count) values, expected "
                        + "\(conv.filters)x\(conv.inputChannels)x\(conv.kernelSize)x\(conv.kernelSize)")
            }
            guard weights.convBiases[index].count == conv.filters else {
                throw TrainingError.weightsMismatch(
                    "conv \(index)'s bias has \(weights.convBiases[index].count) values, expected \(conv.filters)")
            }
            parameters += weights.convKernels[index]
            parameters += weights.convBiases[index]
        }
        guard weights.denseKernel.count == features * classes, weights.denseBias.count == classes else {
            throw TrainingError.weightsMismatch(
                "the dense kernel has \(weights.denseKernel.count) values and bias \(weights.denseBias.count), "
                    + "expected \(features)x\(classes) and \(classes)")
        }
        parameters += weights.denseKernel
        parameters += weights.denseBias
        return parameters
    }
}
