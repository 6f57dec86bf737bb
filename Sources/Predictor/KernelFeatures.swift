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

    /// A kernel.
    public init(kind: String, flops: Double, inputElements: Double, outputElements: Double, weightElements: Double) {
        self.kind = kind
        self.flops = flops
        self.inputElements = inputElements
        self.outputElements = outputElements
        self.weightElements = weightElements
    }

    enum CodingKeys: String, CodingKey {
        case kind, flops
        case inputElements = "input_elements"
        case outputElements = "output_elements"
        case weightElements = "weight_elements"
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
        var consumers: [String: Int] = [:]
        for analyzed in analysis.nodes {
            for input in analyzed.node.inputs where !input.isEmpty { consumers[input, default: 0] += 1 }
        }
        let graphOutputs = Set(analysis.outputs)
        var fused: Set<String> = []  // outputs of producers whose single Relu/Clip consumer is fused into them
        var kernels: [Kernel] = []
        func isRuntime(_ name: String) -> Bool { analysis.constant(name) == nil }
        for analyzed in analysis.nodes {
            let node = analyzed.node
            let output = analyzed.outputShapes.first.map { Double(ShapeMath.count($0)) } ?? 0
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
            switch node.opType {
            case "Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast":
                continue  // an alias of its input's storage when the input is a runtime value
            case "Relu", "Clip":
                if let input = node.inputs.first, fused.contains(input) { continue }
                kind = "activation"
            case "Sigmoid", "HardSigmoid", "HardSwish", "Tanh":
                kind = "activation"
            case "Conv":
                let weight = inputShape(1)
                let input = inputShape(0)
                let groups = node.int("group", default: 1)
                flops = 2 * output * Double(ShapeMath.count(Array(weight.dropFirst())))
                    + (node.input(2) != nil ? output : 0)
                let channels = input.count > 1 ? input[1] : 1
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
                kind = "gemm"
            case "Add", "Sub", "Mul", "Div":
                kind = "elementwise"
            case "BatchNormalization":
                kind = "batchnorm"
            case "MaxPool", "AveragePool":
                let window = node.ints("kernel_shape") ?? []
                flops = output * Double(window.reduce(1, *))
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
            if ["conv", "pointwise", "depthwise", "gemm", "elementwise"].contains(kind), let out = node.outputs.first,
                !graphOutputs.contains(out), consumers[out] == 1,
                let user = analysis.nodes.first(where: { $0.node.inputs.contains(out) }),
                ["Relu", "Clip"].contains(user.node.opType), kind != "elementwise" || node.opType == "Add"
            {
                fused.insert(out)
            }
            kernels.append(
                Kernel(kind: kind, flops: flops, inputElements: reads, outputElements: output, weightElements: weights))
        }
        self.kernels = kernels
    }

    /// The kernel kinds present, sorted.
    public var kinds: [String] { Array(Set(kernels.map(\.kind))).sorted() }

    /// The sum of every kernel's FLOPs.
    public var totalFlops: Double { kernels.reduce(0) { $0 + $1.flops } }
}
