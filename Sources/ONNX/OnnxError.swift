/// An error from reading, writing, analysing or running an ONNX model.
///
/// Each error says what was wrong and what to do about it.
public struct OnnxError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case malformed
        case invalidModel
        case unsupportedOperator
        case invalidNode
        case unsupportedDataType
        case shapeInference
        case invalidInput
        case encodingFailed
    }

    private let code: Code
    /// The readable explanation.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// True when the model is valid ONNX that this engine cannot run (an operator or data type outside its set).
    public var isUnsupported: Bool { code == .unsupportedOperator || code == .unsupportedDataType }

    /// The bytes are not an ONNX protobuf: truncated, corrupt, or another kind of file.
    public static func malformed(_ reason: String) -> OnnxError {
        OnnxError(
            .malformed,
            "not a readable ONNX model: \(reason); check that the file is a complete .onnx file (not truncated, not another format)"
        )
    }

    /// The protobuf is well formed but the model breaks an ONNX rule the tools rely on.
    public static func invalidModel(_ reason: String) -> OnnxError {
        OnnxError(.invalidModel, "invalid ONNX model: \(reason)")
    }

    /// The engine or the FLOPs counter does not implement this operator.
    public static func unsupportedOperator(_ opType: String, domain: String, node: String) -> OnnxError {
        unsupportedOperators([(opType, domain, node)])
    }

    /// The engine or the FLOPs counter does not implement these operators: each `(opType, domain, node)` of the
    /// graph, so that one error names everything a user has to replace, not only the first.
    public static func unsupportedOperators(_ found: [(opType: String, domain: String, node: String)]) -> OnnxError {
        func qualified(_ opType: String, _ domain: String) -> String {
            domain.isEmpty || domain == "ai.onnx" ? opType : "\(domain).\(opType)"
        }
        // One entry per distinct operator, with its first node and how many others use it.
        var order: [String] = []
        var nodes: [String: [String]] = [:]
        for (opType, domain, node) in found {
            let name = qualified(opType, domain)
            if nodes[name] == nil { order.append(name) }
            nodes[name, default: []].append(node)
        }
        let listed = order.map { name -> String in
            let users = nodes[name]!
            let more = users.count > 1 ? " and \(users.count - 1) more" : ""
            return "\(name) of \(users[0])\(more)"
        }
        let subject = listed.count == 1 ? "operator \(listed[0]) is" : "operators \(listed.joined(separator: ", ")) are"
        return OnnxError(
            .unsupportedOperator,
            "\(subject) not supported by the native engine and the FLOPs counter; they know the standard (ai.onnx) ops of mobile CNNs (\(supportedOperatorList)): export the model without them or measure it with another runner"
        )
    }

    /// The operators the analysis, the engine and the FLOPs counter know, for error messages.
    package static let supportedOperatorList =
        "Conv, Gemm, MatMul, Add, Sub, Mul, Div, MaxPool, AveragePool, GlobalAveragePool, ReduceMean, "
        + "BatchNormalization, Relu, Clip, Sigmoid, HardSigmoid, HardSwish, Softmax, Concat, Reshape, Flatten, "
        + "Transpose, Squeeze, Unsqueeze, Gather, Slice, Shape, Cast, Identity, Dropout, Constant, ConstantOfShape"

    /// A node whose inputs, attributes or shapes break its operator's definition.
    public static func invalidNode(_ node: String, _ reason: String) -> OnnxError {
        OnnxError(.invalidNode, "\(node): \(reason)")
    }

    /// A tensor of an element type the engine does not compute with.
    public static func unsupportedDataType(_ what: String, _ type: OnnxDataType) -> OnnxError {
        OnnxError(
            .unsupportedDataType,
            "\(what) has element type \(type); the native engine computes with FLOAT (and INT64/INT32/BOOL for shapes): convert the model to float32"
        )
    }

    /// A shape the analysis cannot determine statically.
    public static func shapeInference(_ what: String, _ reason: String) -> OnnxError {
        OnnxError(.shapeInference, "cannot infer the shape of \(what): \(reason)")
    }

    /// Input data that does not match the model.
    public static func invalidInput(_ reason: String) -> OnnxError {
        OnnxError(.invalidInput, reason)
    }

    /// protobuf-c could not encode the model.
    public static func encodingFailed(_ reason: String) -> OnnxError {
        OnnxError(.encodingFailed, "cannot encode the ONNX model: \(reason)")
    }
}
