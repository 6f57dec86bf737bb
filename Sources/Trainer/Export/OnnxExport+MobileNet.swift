import Foundation
import ONNX

extension OnnxExport {
    /// The model of a MobileNet-style `architecture` with trained `weights`, at opset 13.
    ///
    /// Batch normalisation is folded into the convolution before it (kernel scaled by `gamma / sqrt(var + eps)`
    /// per output channel, bias `beta - mean * gamma / sqrt(var + eps)`, with the running statistics), so the graph
    /// holds only ops every runtime of mobile CNNs runs: Conv (depthwise ones with `group` = channels), Clip for
    /// ReLU6, hard-swish as `x * Clip(x + 3, 0, 6) * (1/6)` and hard-sigmoid as `Clip(x + 3, 0, 6) * (1/6)` (Add,
    /// Clip, Mul), GlobalAveragePool, Relu, Mul (squeeze-and-excite's channel scale), Add (residuals), Flatten,
    /// Gemm and Softmax.
    ///
    /// - Parameter batch: a fixed batch size for the input's first dimension, or nil for a free `N`.
    public static func model(
        mobileNet architecture: MobileNetArchitecture, weights: MobileNetWeights, batch: Int? = nil
    ) throws -> OnnxModel {
        do {
            try Trainer.validate(architecture)
        } catch let error as TrainingError {
            throw OnnxError.invalidInput(error.message)
        }
        let layout = MobileNetLayout(architecture)
        guard weights.parameters.count == layout.count, weights.statistics.count == layout.statisticsCount else {
            throw OnnxError.invalidInput(
                "the weights have \(weights.parameters.count) parameters and \(weights.statistics.count) statistics; "
                    + "this MobileNet architecture needs \(layout.count) and \(layout.statisticsCount)")
        }
        var builder = MobileNetGraphBuilder(weights: weights)
        let a = architecture
        var current = builder.conv(
            inputName, name: "stem", kernel: layout.stemKernel, norm: layout.stemNorm, inputChannels: a.channels,
            kernelSize: a.stemKernelSize, stride: a.stemStride, group: 1, input: (a.height, a.width))
        current = builder.activation(current, a.stemActivation, name: "stem")
        for (index, block) in layout.blocks.enumerated() {
            let name = "block\(index)"
            let start = current
            if let expand = block.expand {
                current = builder.conv(
                    current, name: "\(name)_expand", kernel: expand.kernel, norm: expand.norm,
                    inputChannels: block.inputChannels, kernelSize: 1, stride: 1, group: 1,
                    input: (block.inputHeight, block.inputWidth))
                current = builder.activation(current, block.block.activation, name: "\(name)_expand")
            }
            current = builder.conv(
                current, name: "\(name)_depthwise", kernel: block.depthwise, norm: block.depthwiseNorm,
                inputChannels: 1, kernelSize: block.block.kernelSize, stride: block.stride,
                group: block.expandedChannels, input: (block.inputHeight, block.inputWidth))
            current = builder.activation(current, block.block.activation, name: "\(name)_depthwise")
            if let se = block.squeezeExcite {
                current = builder.squeezeExcite(current, se, expanded: block.expandedChannels, name: "\(name)_se")
            }
            current = builder.conv(
                current, name: "\(name)_project", kernel: block.project, norm: block.projectNorm,
                inputChannels: block.expandedChannels, kernelSize: 1, stride: 1, group: 1,
                input: (block.outputHeight, block.outputWidth))
            if block.residual {
                current = builder.node("Add", [current, start], name: "\(name)_add")
            }
        }
        current = builder.node("GlobalAveragePool", [current], name: "pool")
        current = builder.node("Flatten", [current], name: "flatten", attributes: [OnnxAttribute("axis", .int(1))])
        let kernel = builder.slice(layout.denseKernel, count: layout.features * layout.classes)
        let bias = builder.slice(layout.denseBias, count: layout.classes)
        builder.initializers.append(OnnxTensor(name: "dense_kernel", dims: [layout.features, layout.classes], floats: kernel))
        builder.initializers.append(OnnxTensor(name: "dense_bias", dims: [layout.classes], floats: bias))
        current = builder.node("Gemm", [current, "dense_kernel", "dense_bias"], name: "dense")
        builder.nodes.append(
            OnnxNode(
                name: "softmax", opType: "Softmax", inputs: [current], outputs: [outputName],
                attributes: [OnnxAttribute("axis", .int(1))]))
        let batchDimension: OnnxValueInfo.Dimension = batch.map { .value($0) } ?? .param("N")
        let graph = OnnxGraph(
            name: "nas_mobilenet", nodes: builder.nodes, initializers: builder.initializers,
            inputs: [
                OnnxValueInfo(
                    name: inputName, shape: [batchDimension, .value(a.channels), .value(a.height), .value(a.width)])
            ],
            outputs: [OnnxValueInfo(name: outputName, shape: [batchDimension, .value(a.classes)])])
        return OnnxModel(
            irVersion: 8, opsetImports: [OnnxOpset(domain: "", version: 13)], producerName: "nas",
            producerVersion: "1", graph: graph)
    }

    /// The bytes of `model(mobileNet:weights:batch:)`, ready to write as `model.onnx`.
    public static func serialized(
        mobileNet architecture: MobileNetArchitecture, weights: MobileNetWeights, batch: Int? = nil
    ) throws -> [UInt8] {
        try model(mobileNet: architecture, weights: weights, batch: batch).serialized()
    }

    /// The bytes of a trial model's ONNX file, whichever its family.
    public static func serialized(_ model: BuiltInModel, weights: BuiltInWeights, batch: Int? = nil) throws -> [UInt8] {
        switch (model, weights) {
        case (.cnn(let architecture), .cnn(let weights)):
            return try serialized(architecture: architecture, weights: weights, batch: batch)
        case (.mobileNet(let architecture), .mobileNet(let weights)):
            return try serialized(mobileNet: architecture, weights: weights, batch: batch)
        default:
            throw OnnxError.invalidInput("the weights are of another model family than the architecture")
        }
    }
}

/// The trained state of a `BuiltInModel`.
public enum BuiltInWeights: Hashable, Sendable {
    /// A CNN's weights.
    case cnn(CNNWeights)
    /// A MobileNet's weights and statistics.
    case mobileNet(MobileNetWeights)
}

/// Accumulates the nodes and initializers of a MobileNet graph, folding batch norms as it goes.
private struct MobileNetGraphBuilder {
    let weights: MobileNetWeights
    var nodes: [OnnxNode] = []
    var initializers: [OnnxTensor] = []
    private var constants: Set<String> = []

    init(weights: MobileNetWeights) {
        self.weights = weights
    }

    func slice(_ offset: Int, count: Int) -> [Float] {
        Array(weights.parameters[offset..<(offset + count)])
    }

    mutating func node(_ op: String, _ inputs: [String], name: String, attributes: [OnnxAttribute] = []) -> String {
        nodes.append(OnnxNode(name: name, opType: op, inputs: inputs, outputs: [name], attributes: attributes))
        return name
    }

    mutating func constant(_ name: String, _ value: Float) -> String {
        if constants.insert(name).inserted {
            initializers.append(OnnxTensor(name: name, dims: [], floats: [value]))
        }
        return name
    }

    /// A convolution with its batch norm folded in, "same" padded as TensorFlow pads (the odd extra after).
    mutating func conv(
        _ input: String, name: String, kernel: Int, norm: MobileNetLayout.Norm, inputChannels: Int, kernelSize: Int,
        stride: Int, group: Int, input size: (Int, Int)
    ) -> String {
        let channels = norm.channels
        let perChannel = inputChannels * kernelSize * kernelSize
        var folded = slice(kernel, count: channels * perChannel)
        var bias = [Float](repeating: 0, count: channels)
        for o in 0..<channels {
            let gamma = weights.parameters[norm.gamma + o]
            let beta = weights.parameters[norm.beta + o]
            let mean = weights.statistics[norm.mean + o]
            let variance = weights.statistics[norm.variance + o]
            let scale = gamma / (variance + MobileNetNetwork.epsilon).squareRoot()
            for j in 0..<perChannel { folded[o * perChannel + j] *= scale }
            bias[o] = beta - mean * scale
        }
        initializers.append(
            OnnxTensor(name: "\(name)_kernel", dims: [channels, inputChannels, kernelSize, kernelSize], floats: folded))
        initializers.append(OnnxTensor(name: "\(name)_bias", dims: [channels], floats: bias))
        let rows = MobileNetArchitecture.same(size.0, kernel: kernelSize, stride: stride)
        let columns = MobileNetArchitecture.same(size.1, kernel: kernelSize, stride: stride)
        let bottom = max((rows.output - 1) * stride + kernelSize - size.0, 0) - rows.before
        let right = max((columns.output - 1) * stride + kernelSize - size.1, 0) - columns.before
        return node(
            "Conv", [input, "\(name)_kernel", "\(name)_bias"], name: name,
            attributes: [
                OnnxAttribute("kernel_shape", .ints([Int64(kernelSize), Int64(kernelSize)])),
                OnnxAttribute(
                    "pads", .ints([Int64(rows.before), Int64(columns.before), Int64(bottom), Int64(right)])),
                OnnxAttribute("strides", .ints([Int64(stride), Int64(stride)])),
                OnnxAttribute("dilations", .ints([1, 1])),
                OnnxAttribute("group", .int(Int64(group))),
            ])
    }

    /// `Clip(x + 3, 0, 6) * (1/6)`.
    mutating func hardSigmoid(_ input: String, name: String) -> String {
        let shifted = node("Add", [input, constant("three", 3)], name: "\(name)_add3")
        let clipped = node("Clip", [shifted, constant("zero", 0), constant("six", 6)], name: "\(name)_clip")
        return node("Mul", [clipped, constant("sixth", 1.0 / 6)], name: "\(name)_hsigmoid")
    }

    mutating func activation(_ input: String, _ activation: MobileNetActivation, name: String) -> String {
        switch activation {
        case .relu6:
            return node("Clip", [input, constant("zero", 0), constant("six", 6)], name: "\(name)_relu6")
        case .hardSwish:
            let gate = hardSigmoid(input, name: name)
            return node("Mul", [input, gate], name: "\(name)_hswish")
        }
    }

    mutating func squeezeExcite(
        _ input: String, _ se: MobileNetLayout.SqueezeExcite, expanded: Int, name: String
    ) -> String {
        let pooled = node("GlobalAveragePool", [input], name: "\(name)_pool")
        let pointwise: [OnnxAttribute] = [
            OnnxAttribute("kernel_shape", .ints([1, 1])), OnnxAttribute("pads", .ints([0, 0, 0, 0])),
            OnnxAttribute("strides", .ints([1, 1])), OnnxAttribute("group", .int(1)),
        ]
        initializers.append(
            OnnxTensor(
                name: "\(name)_reduce_kernel", dims: [se.channels, expanded, 1, 1],
                floats: slice(se.reduce, count: se.channels * expanded)))
        initializers.append(
            OnnxTensor(name: "\(name)_reduce_bias", dims: [se.channels], floats: slice(se.reduceBias, count: se.channels)))
        initializers.append(
            OnnxTensor(
                name: "\(name)_expand_kernel", dims: [expanded, se.channels, 1, 1],
                floats: slice(se.expand, count: expanded * se.channels)))
        initializers.append(
            OnnxTensor(name: "\(name)_expand_bias", dims: [expanded], floats: slice(se.expandBias, count: expanded)))
        let reduced = node(
            "Conv", [pooled, "\(name)_reduce_kernel", "\(name)_reduce_bias"], name: "\(name)_reduce",
            attributes: pointwise)
        let relu = node("Relu", [reduced], name: "\(name)_relu")
        let excited = node(
            "Conv", [relu, "\(name)_expand_kernel", "\(name)_expand_bias"], name: "\(name)_expand",
            attributes: pointwise)
        let gate = hardSigmoid(excited, name: "\(name)_gate")
        return node("Mul", [input, gate], name: "\(name)_scale")
    }
}
