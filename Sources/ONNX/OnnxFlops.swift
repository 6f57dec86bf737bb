/// The floating-point operations of one inference (batch 1), per node and in total.
public struct FlopsReport: Hashable, Sendable, Codable {
    /// One node's count.
    public struct Entry: Hashable, Sendable, Codable {
        /// The node's name, or its op type and output when the file gives none.
        public var node: String
        /// The operator.
        public var opType: String
        /// The operations it performs.
        public var flops: Int

        /// Creates an entry.
        public init(node: String, opType: String, flops: Int) {
            self.node = node
            self.opType = opType
            self.flops = flops
        }

        enum CodingKeys: String, CodingKey {
            case node
            case opType = "op_type"
            case flops
        }
    }

    /// The sum over all nodes.
    public var total: Int
    /// Per node that runs at inference time, in graph order (shape computations folded at load time are left out).
    public var operations: [Entry]

    /// Creates a report.
    public init(total: Int, operations: [Entry]) {
        self.total = total
        self.operations = operations
    }
}

/// Counts FLOPs on an ONNX graph by TensorFlow's profiler convention, the one vertex-ai-nas's `get_flops` uses.
///
/// 2 per multiply-add in Conv (grouped and depthwise: the weight's `C/group * kernel` taps per output), MatMul and
/// Gemm at every output position (padded or not); 1 per output element for a bias (Conv's and Gemm's C) and for
/// Add, Sub, Mul and Div (broadcast or not: TF counts the output); 5 per element for Softmax; the window size per
/// output element for MaxPool and AveragePool and 1 per input element for GlobalAveragePool and ReduceMean (TF's
/// pools and Mean); 2 per element for HardSigmoid and 3 for HardSwish (the Add and Mul / Div of TF's
/// `relu6(x + 3) / 6` and the Mul by x; the Relu6 counts nothing); 0 for Relu, Clip and Sigmoid (TF registers
/// none), BatchNormalization (TF's FusedBatchNorm has no count either) and data movement. Free dimensions are taken
/// as 1, so the count is per image. An operator outside this list, or in another domain than the standard one, is
/// an `OnnxError` naming every such node, never a silent 0.
public enum OnnxFlops {
    /// Counts the FLOPs of `model`, inferring every shape from its inputs' (files from other tools included).
    public static func count(_ model: OnnxModel) throws -> FlopsReport {
        let analysis = try GraphAnalysis(model: model)
        var entries: [FlopsReport.Entry] = []
        for analyzed in analysis.nodes {
            let node = analyzed.node
            let output = analyzed.outputShapes.first.map(ShapeMath.count) ?? 0
            let input = ShapeMath.count(analyzed.inputShapes.first.flatMap { $0 } ?? [])
            let flops: Int
            switch node.opType {
            case "Conv":
                let weight = analyzed.inputShapes[1] ?? []
                let perOutput = ShapeMath.count(Array(weight.dropFirst()))
                flops = try sum(product(2, output, perOutput), node.input(2) != nil ? output : 0)
            case "MatMul":
                let a = analyzed.inputShapes[0] ?? []
                flops = try product(2, output, a.last ?? 0)
            case "Gemm":
                let a = analyzed.inputShapes[0] ?? []
                let k = node.int("transA", default: 0) != 0 ? a[0] : a[1]
                flops = try sum(product(2, output, k), node.input(2) != nil ? output : 0)
            case "Add", "Sub", "Mul", "Div":
                flops = output
            case "HardSigmoid":
                flops = try product(2, output)
            case "HardSwish":
                flops = try product(3, output)
            case "Softmax":
                flops = try product(5, output)
            case "MaxPool", "AveragePool":
                flops = try product(output, ShapeMath.count(node.ints("kernel_shape") ?? []))
            case "GlobalAveragePool", "ReduceMean":
                flops = input
            case "Relu", "Clip", "Sigmoid", "BatchNormalization", "Identity", "Dropout", "Reshape", "Flatten",
                "Transpose", "Squeeze", "Unsqueeze", "Gather", "Slice", "Concat", "Cast", "Shape", "Constant",
                "ConstantOfShape":
                flops = 0
            default:
                // The analysis refuses what it does not know; an op it learns must get a count here too.
                throw OnnxError.unsupportedOperator(node.opType, domain: node.domain, node: node.displayName)
            }
            entries.append(
                FlopsReport.Entry(
                    node: node.name.isEmpty ? node.displayName : node.name, opType: node.opType, flops: flops))
        }
        return FlopsReport(total: try entries.reduce(0) { try sum($0, $1.flops) }, operations: entries)
    }

    /// A crafted graph (a pool window of 2^24 on each of many axes) can ask for more operations than Int holds.
    private static func product(_ factors: Int...) throws -> Int {
        try factors.reduce(1) { total, factor in
            let (result, overflow) = total.multipliedReportingOverflow(by: factor)
            guard !overflow else { throw tooMany }
            return result
        }
    }

    private static func sum(_ a: Int, _ b: Int) throws -> Int {
        let (result, overflow) = a.addingReportingOverflow(b)
        guard !overflow else { throw tooMany }
        return result
    }

    private static let tooMany = OnnxError.invalidModel(
        "the model's operation count does not fit in a 64-bit integer; its shapes or windows are not a real model's")

    /// Counts the FLOPs of the model in `bytes` (an `.onnx` file's contents).
    public static func count(bytes: [UInt8]) throws -> FlopsReport {
        try count(try OnnxModel(bytes: bytes))
    }
}
