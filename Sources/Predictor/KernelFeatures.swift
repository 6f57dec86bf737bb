import ONNX

/// One kernel of a model as the native engine runs it: an operator with the activation the planner fuses into it
/// (Conv + bias + Relu/Clip, Add + Relu, Gemm + Relu), with the sizes a latency model reads.
public struct Kernel: Codable, Hashable, Sendable {
    /// The kernel's kind: `conv`, `pointwise` (1x1, one group), `depthwise`, `gemm`, `elementwise`, `batchnorm`,
    /// `pool`, `globalpool`, `activation`, `softmax`, `memory` (Concat, Transpose, Gather, Slice, copies) or the
    /// lower-cased op type for an operator none of these describes.
    public var kind: String
    /// Floating-point operations (2 per multiply-add; the element count for kernels without a FLOPs count).
    public var flops: Double
    /// Elements the kernel reads from runtime values (weights not included).
    public var inputElements: Double
    /// Elements it writes.
    public var outputElements: Double
    /// Elements of its constant operands (weights, biases, BN parameters).
    public var weightElements: Double
    /// The first output of the node it computes: the key the engine's per-kernel timings (`KernelTiming`) carry.
    /// Empty in features written before kernels were timed.
    public var node: String
    /// Its configuration as a kernel-level regressor reads it: input height, width and channels, output channels,
    /// kernel size (height), stride (height) and groups; 0 where the kind has none (or in older features).
    public var shape: KernelShape

    /// A kernel.
    public init(
        kind: String, flops: Double, inputElements: Double, outputElements: Double, weightElements: Double,
        node: String = "", shape: KernelShape = KernelShape()
    ) {
        self.kind = kind
        self.flops = flops
        self.inputElements = inputElements
        self.outputElements = outputElements
        self.weightElements = weightElements
        self.node = node
        self.shape = shape
    }

    enum CodingKeys: String, CodingKey {
        case kind, flops, node, shape
        case inputElements = "input_elements"
        case outputElements = "output_elements"
        case weightElements = "weight_elements"
    }

    /// Decodes a kernel; `node` and `shape` are optional so that features stored before they existed still read.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kind = try container.decode(String.self, forKey: .kind)
        flops = try container.decode(Double.self, forKey: .flops)
        inputElements = try container.decode(Double.self, forKey: .inputElements)
        outputElements = try container.decode(Double.self, forKey: .outputElements)
        weightElements = try container.decode(Double.self, forKey: .weightElements)
        node = try container.decodeIfPresent(String.self, forKey: .node) ?? ""
        shape = try container.decodeIfPresent(KernelShape.self, forKey: .shape) ?? KernelShape()
    }
}

/// A kernel's configuration, nn-Meter's kernel features: what its latency depends on beyond its element counts.
public struct KernelShape: Codable, Hashable, Sendable {
    /// Input height and width (1 for a vector), and input channels.
    public var height = 0.0, width = 0.0, channels = 0.0
    /// Output channels.
    public var filters = 0.0
    /// Kernel (window) height, stride (height), groups.
    public var kernel = 0.0, stride = 0.0, groups = 0.0

    /// A shape; every field defaults to 0.
    public init(
        height: Double = 0, width: Double = 0, channels: Double = 0, filters: Double = 0, kernel: Double = 0,
        stride: Double = 0, groups: Double = 0
    ) {
        (self.height, self.width, self.channels, self.filters) = (height, width, channels, filters)
        (self.kernel, self.stride, self.groups) = (kernel, stride, groups)
    }
}

/// A model's kernels, derived from its ONNX graph with the ONNX module's shape inference and grouped as the
/// engine's planner fuses them: what a kernel-level latency predictor (nn-Meter's idea) sums over.
public struct ModelFeatures: Codable, Hashable, Sendable {
    /// The kernels, in graph order.
    public var kernels: [Kernel]

    /// Features of the given kernels.
    public init(kernels: [Kernel]) { self.kernels = kernels }

    /// The features of the ONNX model in `bytes`; a model that does not decode or whose shapes cannot be inferred
    /// is an `OnnxError` saying why.
    public init(onnx bytes: [UInt8]) throws {
        try self.init(model: try OnnxModel(bytes: bytes))
    }

    /// The features of `model`.
    public init(model: OnnxModel) throws {
        let analysis = try GraphAnalysis(model: model)
        var consumers: [String: [Int]] = [:]
        for (index, analyzed) in analysis.nodes.enumerated() {
            for input in analyzed.node.inputs where !input.isEmpty { consumers[input, default: []].append(index) }
        }
        let graphOutputs = Set(analysis.outputs)
        var fused: Set<String> = []  // outputs of producers whose single activation consumer is fused into them
        var absorbed: Set<Int> = []  // the nodes of decomposed hard activations fused into their producer
        var kernels: [Kernel] = []
        func isRuntime(_ name: String) -> Bool { analysis.constant(name) == nil }
        for (index, analyzed) in analysis.nodes.enumerated() where !absorbed.contains(index) {
            let node = analyzed.node
            let outputShape = analyzed.outputShapes.first ?? []
            let output = Double(ShapeMath.count(outputShape))
            func inputShape(_ index: Int) -> [Int] {
                index < analyzed.inputShapes.count ? analyzed.inputShapes[index] ?? [] : []
            }
            var reads = 0.0
            var weights = 0.0
            for (index, name) in node.inputs.enumerated() where !name.isEmpty {
                let count = Double(ShapeMath.count(inputShape(index)))
                if isRuntime(name) { reads += count } else { weights += count }
            }
            let kind: String
            var flops = output
            let input = inputShape(0)
            var shape = KernelShape(
                height: Double(input.count > 2 ? input[2] : 1), width: Double(input.count > 3 ? input[3] : 1),
                channels: Double(input.count > 1 ? input[1] : input.last ?? 1),
                filters: Double(outputShape.count > 1 ? outputShape[1] : outputShape.last ?? 1))
            switch node.opType {
            case "Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast":
                continue  // an alias of its input's storage when the input is a runtime value
            case "Relu", "Clip", "HardSigmoid", "HardSwish":
                if let input = node.inputs.first, fused.contains(input) { continue }
                kind = "activation"
            case "Sigmoid", "Tanh":
                kind = "activation"
            case "Conv":
                let weight = inputShape(1)
                let groups = node.int("group", default: 1)
                flops = 2 * output * Double(ShapeMath.count(Array(weight.dropFirst())))
                    + (node.input(2) != nil ? output : 0)
                let channels = input.count > 1 ? input[1] : 1
                shape.kernel = Double(weight.count > 2 ? weight[2] : 1)
                shape.stride = Double(node.ints("strides")?.first ?? 1)
                shape.groups = Double(groups)
                if groups > 1 && groups == channels {
                    kind = "depthwise"
                } else if groups == 1 && weight.dropFirst(2).allSatisfy({ $0 == 1 }) {
                    kind = "pointwise"
                } else {
                    kind = "conv"
                }
            case "Gemm", "MatMul":
                let a = inputShape(0)
                let inner = node.opType == "Gemm" && node.int("transA", default: 0) != 0 ? a.first ?? 1 : a.last ?? 1
                flops = 2 * output * Double(inner) + (node.input(2) != nil ? output : 0)
                shape.channels = Double(inner)
                kind = "gemm"
            case "Add", "Sub", "Mul", "Div":
                kind = "elementwise"
            case "BatchNormalization":
                kind = "batchnorm"
            case "MaxPool", "AveragePool":
                let window = node.ints("kernel_shape") ?? []
                flops = output * Double(window.reduce(1, *))
                shape.kernel = Double(window.first ?? 1)
                shape.stride = Double(node.ints("strides")?.first ?? 1)
                kind = "pool"
            case "GlobalAveragePool", "GlobalMaxPool", "ReduceMean":
                flops = reads
                kind = "globalpool"
            case "Softmax":
                flops = 5 * output
                kind = "softmax"
            case "Concat", "Transpose", "Gather", "Slice", "Pad":
                flops = 0
                kind = "memory"
            default:
                kind = node.opType.lowercased()
            }
            // The planner's rule: an activation that is its producer's only consumer, or a decomposed hard
            // sigmoid or hard swish, is fused into a Conv, a binary op, a BatchNormalization, a Gemm or a MatMul.
            if Self.fusingOps.contains(node.opType), let out = node.outputs.first, !graphOutputs.contains(out),
                let users = consumers[out]
            {
                if users.count == 1, Self.fusedActivations.contains(analysis.nodes[users[0]].node.opType) {
                    fused.insert(out)
                } else if let chain = analysis.decomposedHardActivation(after: out, consumers: consumers) {
                    absorbed.formUnion(chain.nodes)
                }
            }
            kernels.append(
                Kernel(
                    kind: kind, flops: flops, inputElements: reads, outputElements: output, weightElements: weights,
                    node: node.outputs.first ?? "", shape: shape))
        }
        self.kernels = kernels
    }

    /// The ops the engine's planner fuses a following activation into, and the activations it fuses.
    static let fusingOps: Set<String> = ["Conv", "Add", "Sub", "Mul", "Div", "BatchNormalization", "Gemm", "MatMul"]
    static let fusedActivations: Set<String> = ["Relu", "Clip", "HardSigmoid", "HardSwish"]

    /// The kernel kinds present, sorted.
    public var kinds: [String] { Array(Set(kernels.map(\.kind))).sorted() }

    /// The sum of every kernel's FLOPs.
    public var totalFlops: Double { kernels.reduce(0) { $0 + $1.flops } }
}
