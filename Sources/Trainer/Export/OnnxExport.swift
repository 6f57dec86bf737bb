import ONNX

/// Builds the ONNX model of a trial's CNN: the artifact the trainer writes and the fleet measures.
public enum OnnxExport {
    /// The graph input's name.
    public static let inputName = "input"
    /// The graph output's name (class probabilities).
    public static let outputName = "output"

    /// The model of `architecture` with `weights`: per layer Conv ("same", stride 1) + Relu, then Flatten,
    /// Gemm (dense layer with bias) and Softmax, at opset 13.
    ///
    /// - Parameter batch: a fixed batch size for the input's first dimension, or nil for a free `N`.
    public static func model(
        architecture: CNNArchitecture, weights: CNNWeights, batch: Int? = nil
    ) throws -> OnnxModel {
        try validate(architecture: architecture, weights: weights)
        var nodes: [OnnxNode] = []
        var initializers: [OnnxTensor] = []
        var current = inputName
        var channels = architecture.channels
        for (index, layer) in architecture.layers.enumerated() {
            let kernel = "conv\(index)_kernel"
            let bias = "conv\(index)_bias"
            initializers.append(
                OnnxTensor(
                    name: kernel, dims: [layer.filters, channels, layer.kernelSize, layer.kernelSize],
                    floats: weights.convKernels[index]))
            initializers.append(OnnxTensor(name: bias, dims: [layer.filters], floats: weights.convBiases[index]))
            // Keras "same": the extra padding of an even kernel goes after (bottom, right), as SAME_UPPER.
            let total = layer.kernelSize - 1
            let begin = total / 2
            let end = total - begin
            nodes.append(
                OnnxNode(
                    name: "conv\(index)", opType: "Conv", inputs: [current, kernel, bias], outputs: ["conv\(index)"],
                    attributes: [
                        OnnxAttribute("kernel_shape", .ints([Int64(layer.kernelSize), Int64(layer.kernelSize)])),
                        OnnxAttribute("pads", .ints([Int64(begin), Int64(begin), Int64(end), Int64(end)])),
                        OnnxAttribute("strides", .ints([1, 1])),
                        OnnxAttribute("dilations", .ints([1, 1])),
                        OnnxAttribute("group", .int(1)),
                    ]))
            nodes.append(
                OnnxNode(name: "relu\(index)", opType: "Relu", inputs: ["conv\(index)"], outputs: ["relu\(index)"]))
            current = "relu\(index)"
            channels = layer.filters
        }
        nodes.append(
            OnnxNode(
                name: "flatten", opType: "Flatten", inputs: [current], outputs: ["flatten"],
                attributes: [OnnxAttribute("axis", .int(1))]))
        initializers.append(
            OnnxTensor(
                name: "dense_kernel", dims: [architecture.flattenedFeatures, architecture.classes],
                floats: weights.denseKernel))
        initializers.append(OnnxTensor(name: "dense_bias", dims: [architecture.classes], floats: weights.denseBias))
        nodes.append(
            OnnxNode(
                name: "dense", opType: "Gemm", inputs: ["flatten", "dense_kernel", "dense_bias"], outputs: ["logits"]))
        nodes.append(
            OnnxNode(
                name: "softmax", opType: "Softmax", inputs: ["logits"], outputs: [outputName],
                attributes: [OnnxAttribute("axis", .int(1))]))
        let batchDimension: OnnxValueInfo.Dimension = batch.map { .value($0) } ?? .param("N")
        let graph = OnnxGraph(
            name: "nas_cnn",
            nodes: nodes,
            initializers: initializers,
            inputs: [
                OnnxValueInfo(
                    name: inputName,
                    shape: [
                        batchDimension, .value(architecture.channels), .value(architecture.height),
                        .value(architecture.width),
                    ])
            ],
            outputs: [OnnxValueInfo(name: outputName, shape: [batchDimension, .value(architecture.classes)])]
        )
        return OnnxModel(
            irVersion: 8, opsetImports: [OnnxOpset(domain: "", version: 13)], producerName: "nas",
            producerVersion: "1", graph: graph)
    }

    /// The bytes of `model(architecture:weights:batch:)`, ready to write as `model.onnx`.
    public static func serialized(
        architecture: CNNArchitecture, weights: CNNWeights, batch: Int? = nil
    ) throws -> [UInt8] {
        try model(architecture: architecture, weights: weights, batch: batch).serialized()
    }

    /// Weights of the right sizes drawn uniformly from Glorot's range, from a seeded generator: for tests and
    /// benchmarks that need a model, not a trained one.
    public static func randomWeights(for architecture: CNNArchitecture, seed: UInt64) -> CNNWeights {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float((state >> 40) & 0xFF_FFFF) / Float(0x100_0000)
        }
        var channels = architecture.channels
        var kernels: [[Float]] = []
        var biases: [[Float]] = []
        for layer in architecture.layers {
            let fanIn = channels * layer.kernelSize * layer.kernelSize
            let limit = (6 / Float(fanIn + layer.filters * layer.kernelSize * layer.kernelSize)).squareRoot()
            kernels.append((0..<(layer.filters * fanIn)).map { _ in (next() * 2 - 1) * limit })
            biases.append((0..<layer.filters).map { _ in (next() * 2 - 1) * 0.1 })
            channels = layer.filters
        }
        let features = architecture.flattenedFeatures
        let limit = (6 / Float(features + architecture.classes)).squareRoot()
        return CNNWeights(
            convKernels: kernels, convBiases: biases,
            denseKernel: (0..<(features * architecture.classes)).map { _ in (next() * 2 - 1) * limit },
            denseBias: (0..<architecture.classes).map { _ in (next() * 2 - 1) * 0.1 })
    }

    private static func validate(architecture: CNNArchitecture, weights: CNNWeights) throws {
        guard architecture.height > 0, architecture.width > 0, architecture.channels > 0, architecture.classes > 0
        else {
            throw OnnxError.invalidInput(
                "the architecture's height, width, channels and classes must be positive; got \(architecture)")
        }
        guard weights.convKernels.count == architecture.layers.count,
            weights.convBiases.count == architecture.layers.count
        else {
            throw OnnxError.invalidInput(
                "the weights have \(weights.convKernels.count) conv kernels and \(weights.convBiases.count) biases for \(architecture.layers.count) layers"
            )
        }
        var channels = architecture.channels
        for (index, layer) in architecture.layers.enumerated() {
            guard layer.kernelSize > 0, layer.filters > 0 else {
                throw OnnxError.invalidInput(
                    "layer \(index) has kernel \(layer.kernelSize) and \(layer.filters) filters; both must be positive")
            }
            let expected = layer.filters * channels * layer.kernelSize * layer.kernelSize
            guard weights.convKernels[index].count == expected, weights.convBiases[index].count == layer.filters else {
                throw OnnxError.invalidInput(
                    "layer \(index) needs a kernel of \(expected) values ([\(layer.filters), \(channels), \(layer.kernelSize), \(layer.kernelSize)]) and \(layer.filters) biases; got \(weights.convKernels[index].count) and \(weights.convBiases[index].count)"
                )
            }
            channels = layer.filters
        }
        let dense = architecture.flattenedFeatures * architecture.classes
        guard weights.denseKernel.count == dense, weights.denseBias.count == architecture.classes else {
            throw OnnxError.invalidInput(
                "the dense layer needs \(dense) kernel values ([\(architecture.flattenedFeatures), \(architecture.classes)]) and \(architecture.classes) biases; got \(weights.denseKernel.count) and \(weights.denseBias.count)"
            )
        }
    }
}
