// ONNX owns the model artifact: `OnnxModel` and its parts as plain Swift values, their protobuf-c decoding and
// encoding (the generated code in COnnx, packed from the shared arena in ProtobufArena), `OnnxError`, FLOPs
// counting (`OnnxFlops`) and the graph analysis that counting needs (Analysis/: static shapes, constant folding of
// shape computations, window geometry), which the engine plans from too (`package` API). It depends on no kernels
// and no BLAS, so that whatever only reads, writes or counts models (the trainer's export, the search, the CLI's
// `nas flops`) stays light; running a model is Engine's.

/// An ONNX model as plain Swift values: the graph, its opsets and its producer.
///
/// Decode one with `OnnxModel(bytes:)` and encode it with `serialized()`; both go through the protobuf-c code
/// generated from ONNX's own `onnx.proto` (the COnnx target). Only what the tools here read or write is kept:
/// metadata, functions, training info and sparse tensors are dropped on decoding.
public struct OnnxModel: Hashable, Sendable {
    /// The ONNX IR version (`ir_version`); 8 goes with opset 13 to 18.
    public var irVersion: Int64
    /// The operator sets the graph's nodes refer to.
    public var opsetImports: [OnnxOpset]
    /// The tool that wrote the model.
    public var producerName: String
    /// The version of that tool.
    public var producerVersion: String
    /// The computation.
    public var graph: OnnxGraph

    /// Creates a model.
    public init(
        irVersion: Int64 = 8, opsetImports: [OnnxOpset] = [OnnxOpset(domain: "", version: 13)],
        producerName: String = "nas", producerVersion: String = "", graph: OnnxGraph
    ) {
        self.irVersion = irVersion
        self.opsetImports = opsetImports
        self.producerName = producerName
        self.producerVersion = producerVersion
        self.graph = graph
    }

    /// The version of the default (`ai.onnx`) operator set, or nil when the model imports none.
    public var opset: Int64? {
        opsetImports.first { $0.domain == "" || $0.domain == "ai.onnx" }?.version
    }
}

/// One imported operator set.
public struct OnnxOpset: Hashable, Sendable {
    /// The domain; "" is the default `ai.onnx` domain.
    public var domain: String
    /// The operator set version.
    public var version: Int64

    /// Creates an opset import.
    public init(domain: String, version: Int64) {
        self.domain = domain
        self.version = version
    }
}

/// A graph: nodes in topological order, constant tensors, and the typed inputs and outputs.
public struct OnnxGraph: Hashable, Sendable {
    /// The graph's name.
    public var name: String
    /// The nodes, in the order the file lists them (ONNX requires a topological order).
    public var nodes: [OnnxNode]
    /// Constant tensors (weights), by name.
    public var initializers: [OnnxTensor]
    /// The graph inputs; an input that is also an initializer is a constant with a default.
    public var inputs: [OnnxValueInfo]
    /// The graph outputs.
    public var outputs: [OnnxValueInfo]
    /// Types and shapes of intermediate values, where the writer recorded them.
    public var valueInfo: [OnnxValueInfo]

    /// Creates a graph.
    public init(
        name: String = "", nodes: [OnnxNode] = [], initializers: [OnnxTensor] = [], inputs: [OnnxValueInfo] = [],
        outputs: [OnnxValueInfo] = [], valueInfo: [OnnxValueInfo] = []
    ) {
        self.name = name
        self.nodes = nodes
        self.initializers = initializers
        self.inputs = inputs
        self.outputs = outputs
        self.valueInfo = valueInfo
    }
}

/// One operator application.
public struct OnnxNode: Hashable, Sendable {
    /// The node's name (may be empty in files other tools wrote).
    public var name: String
    /// The operator, e.g. `Conv`.
    public var opType: String
    /// The operator's domain; "" is `ai.onnx`.
    public var domain: String
    /// Input value names; "" marks an omitted optional input.
    public var inputs: [String]
    /// Output value names.
    public var outputs: [String]
    /// The attributes, in file order.
    public var attributes: [OnnxAttribute]

    /// Creates a node.
    public init(
        name: String = "", opType: String, domain: String = "", inputs: [String], outputs: [String],
        attributes: [OnnxAttribute] = []
    ) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    /// The attribute with this name, if present.
    public func attribute(_ name: String) -> OnnxAttribute.Value? {
        attributes.first { $0.name == name }?.value
    }

    /// A readable name for errors: the node's name, or its op type and first output.
    public var displayName: String {
        name.isEmpty ? "\(opType) node producing '\(outputs.first ?? "")'" : "node '\(name)' (\(opType))"
    }
}

/// A named attribute of a node.
public struct OnnxAttribute: Hashable, Sendable {
    /// An attribute's value, one case per ONNX attribute type the tools use.
    public indirect enum Value: Hashable, Sendable {
        /// A float.
        case float(Float)
        /// An integer.
        case int(Int64)
        /// A string (bytes decoded as UTF-8).
        case string(String)
        /// A tensor.
        case tensor(OnnxTensor)
        /// A subgraph (If, Loop, Scan bodies).
        case graph(OnnxGraph)
        /// A list of floats.
        case floats([Float])
        /// A list of integers.
        case ints([Int64])
        /// A list of strings.
        case strings([String])
        /// A list of tensors.
        case tensors([OnnxTensor])
        /// A list of subgraphs.
        case graphs([OnnxGraph])
    }

    /// The attribute's name.
    public var name: String
    /// The attribute's value.
    public var value: Value

    /// Creates an attribute.
    public init(_ name: String, _ value: Value) {
        self.name = name
        self.value = value
    }
}

extension OnnxAttribute.Value {
    /// The integer, if this is an `int`.
    public var intValue: Int64? { if case .int(let value) = self { value } else { nil } }
    /// The float, if this is a `float` (or an `int`, which some writers use for floats).
    public var floatValue: Float? {
        switch self {
        case .float(let value): value
        case .int(let value): Float(value)
        default: nil
        }
    }
    /// The integers, if this is `ints`.
    public var intsValue: [Int64]? { if case .ints(let value) = self { value } else { nil } }
    /// The string, if this is a `string`.
    public var stringValue: String? { if case .string(let value) = self { value } else { nil } }
    /// The tensor, if this is a `tensor`.
    public var tensorValue: OnnxTensor? { if case .tensor(let value) = self { value } else { nil } }
}

/// ONNX's element types (`TensorProto.DataType`), by their numbers in `onnx.proto`.
public struct OnnxDataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The number in `onnx.proto`.
    public var rawValue: Int32
    /// Wraps a number from a file.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// No type recorded.
    public static let undefined = OnnxDataType(rawValue: 0)
    /// 32-bit float.
    public static let float = OnnxDataType(rawValue: 1)
    /// Unsigned byte.
    public static let uint8 = OnnxDataType(rawValue: 2)
    /// Signed byte.
    public static let int8 = OnnxDataType(rawValue: 3)
    /// Unsigned 16-bit integer.
    public static let uint16 = OnnxDataType(rawValue: 4)
    /// Signed 16-bit integer.
    public static let int16 = OnnxDataType(rawValue: 5)
    /// Signed 32-bit integer.
    public static let int32 = OnnxDataType(rawValue: 6)
    /// Signed 64-bit integer (shapes and indices).
    public static let int64 = OnnxDataType(rawValue: 7)
    /// Strings.
    public static let string = OnnxDataType(rawValue: 8)
    /// Booleans.
    public static let bool = OnnxDataType(rawValue: 9)
    /// 16-bit float.
    public static let float16 = OnnxDataType(rawValue: 10)
    /// 64-bit float.
    public static let double = OnnxDataType(rawValue: 11)
    /// Unsigned 32-bit integer.
    public static let uint32 = OnnxDataType(rawValue: 12)
    /// Unsigned 64-bit integer.
    public static let uint64 = OnnxDataType(rawValue: 13)

    /// Whether values of this type are held as `OnnxTensor.int64s`.
    public var isInteger: Bool {
        [.uint8, .int8, .uint16, .int16, .int32, .int64, .bool, .uint32, .uint64].contains(self)
    }

    /// Whether values of this type are held as `OnnxTensor.floats`.
    public var isFloatingPoint: Bool { self == .float || self == .double }

    public var description: String {
        let names: [Int32: String] = [
            0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
            8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
            15: "COMPLEX128", 16: "BFLOAT16",
        ]
        return names[rawValue] ?? "data type \(rawValue)"
    }
}

/// A constant tensor: an initializer or a tensor attribute.
///
/// Float and double values are held in `floats`; integer and boolean values in `int64s`. Tensors of other
/// types (float16, strings, ...) keep their type and dims with no values.
public struct OnnxTensor: Hashable, Sendable {
    /// The tensor's name (initializers are referred to by it).
    public var name: String
    /// The element type in the file.
    public var dataType: OnnxDataType
    /// The dimensions; empty for a scalar.
    public var dims: [Int]
    /// The values of a float or double tensor, row-major.
    public var floats: [Float]
    /// The values of an integer or boolean tensor, row-major.
    public var int64s: [Int64]

    /// Creates a float tensor.
    public init(name: String, dims: [Int], floats: [Float]) {
        self.name = name
        self.dataType = .float
        self.dims = dims
        self.floats = floats
        self.int64s = []
    }

    /// Creates an integer tensor of the given integer type (INT64 by default).
    public init(name: String, dims: [Int], int64s: [Int64], dataType: OnnxDataType = .int64) {
        self.name = name
        self.dataType = dataType
        self.dims = dims
        self.floats = []
        self.int64s = int64s
    }

    /// Creates a tensor with any fields.
    public init(name: String, dataType: OnnxDataType, dims: [Int], floats: [Float], int64s: [Int64]) {
        self.name = name
        self.dataType = dataType
        self.dims = dims
        self.floats = floats
        self.int64s = int64s
    }

    /// The number of elements the dims describe.
    public var elementCount: Int { ShapeMath.count(dims) }
}

/// The name, element type and shape of a graph input, output or intermediate value.
public struct OnnxValueInfo: Hashable, Sendable {
    /// One dimension of a shape.
    public enum Dimension: Hashable, Sendable, CustomStringConvertible {
        /// A fixed size.
        case value(Int)
        /// A named free size, e.g. `N` or `batch_size`.
        case param(String)
        /// Neither size nor name recorded.
        case unknown

        public var description: String {
            switch self {
            case .value(let value): "\(value)"
            case .param(let name): name
            case .unknown: "?"
            }
        }
    }

    /// The value's name.
    public var name: String
    /// The element type; `.undefined` when the file gives none.
    public var elementType: OnnxDataType
    /// The shape, or nil when the file gives none (unknown rank).
    public var shape: [Dimension]?

    /// Creates a value info.
    public init(name: String, elementType: OnnxDataType = .float, shape: [Dimension]?) {
        self.name = name
        self.elementType = elementType
        self.shape = shape
    }
}
