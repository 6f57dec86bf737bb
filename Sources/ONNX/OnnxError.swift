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
        let qualified = domain.isEmpty || domain == "ai.onnx" ? opType : "\(domain).\(opType)"
        return OnnxError(
            .unsupportedOperator,
            "operator \(qualified) of \(node) is not supported by the native engine; it runs the ONNX ops of mobile CNNs (Conv, Gemm, MatMul, pools, BatchNormalization, activations, shape ops): export the model without it or measure it with another runner"
        )
    }

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
