internal import COnnx
internal import CProtobufC
internal import ProtobufArena

#if canImport(Glibc)
    import Glibc
#endif

extension OnnxModel {
    /// Decodes a model from the bytes of an `.onnx` file.
    ///
    /// Throws `OnnxError` when the bytes are not a complete ONNX protobuf (truncated, corrupt, nested deeper than
    /// any real model) or when a tensor's values do not match its dims; never crashes on bad input.
    public init(bytes: [UInt8]) throws {
        try ProtobufNesting.check(bytes)
        let message = bytes.withUnsafeBufferPointer { buffer in
            onnx__model_proto__unpack(nil, buffer.count, buffer.baseAddress)
        }
        guard let message else {
            throw OnnxError.malformed("protobuf decoding failed (\(bytes.count) bytes)")
        }
        defer { onnx__model_proto__free_unpacked(message, nil) }
        self = try ProtobufDecoder.model(message.pointee)
    }

    /// Encodes the model as the bytes of an `.onnx` file.
    public func serialized() throws -> [UInt8] {
        let arena = CArena()
        let message = try ProtobufEncoder(arena: arena).model(self)
        let size = onnx__model_proto__get_packed_size(message)
        var bytes = [UInt8](repeating: 0, count: size)
        let written = bytes.withUnsafeMutableBufferPointer { onnx__model_proto__pack(message, $0.baseAddress) }
        guard written == size else {
            throw OnnxError.encodingFailed("protobuf-c wrote \(written) of \(size) bytes")
        }
        return bytes
    }
}

private struct ProtobufEncoder {
    let arena: CArena

    func model(_ model: OnnxModel) throws -> UnsafeMutablePointer<Onnx__ModelProto> {
        let message = arena.allocate(Onnx__ModelProto.self)
        onnx__model_proto__init(message)
        message.pointee.has_ir_version = 1
        message.pointee.ir_version = model.irVersion
        message.pointee.n_opset_import = model.opsetImports.count
        message.pointee.opset_import = arena.array(
            model.opsetImports.map { opset -> UnsafeMutablePointer<Onnx__OperatorSetIdProto>? in
                let entry = arena.allocate(Onnx__OperatorSetIdProto.self)
                onnx__operator_set_id_proto__init(entry)
                entry.pointee.domain = arena.string(opset.domain)
                entry.pointee.has_version = 1
                entry.pointee.version = opset.version
                return entry
            })
        if !model.producerName.isEmpty { message.pointee.producer_name = arena.string(model.producerName) }
        if !model.producerVersion.isEmpty { message.pointee.producer_version = arena.string(model.producerVersion) }
        message.pointee.graph = try graph(model.graph)
        return message
    }

    func graph(_ graph: OnnxGraph) throws -> UnsafeMutablePointer<Onnx__GraphProto> {
        let message = arena.allocate(Onnx__GraphProto.self)
        onnx__graph_proto__init(message)
        message.pointee.name = arena.string(graph.name)
        message.pointee.n_node = graph.nodes.count
        message.pointee.node = arena.array(try graph.nodes.map { Optional(try node($0)) })
        message.pointee.n_initializer = graph.initializers.count
        message.pointee.initializer = arena.array(try graph.initializers.map { Optional(try tensor($0)) })
        message.pointee.n_input = graph.inputs.count
        message.pointee.input = arena.array(graph.inputs.map { Optional(valueInfo($0)) })
        message.pointee.n_output = graph.outputs.count
        message.pointee.output = arena.array(graph.outputs.map { Optional(valueInfo($0)) })
        message.pointee.n_value_info = graph.valueInfo.count
        message.pointee.value_info = arena.array(graph.valueInfo.map { Optional(valueInfo($0)) })
        return message
    }

    func node(_ node: OnnxNode) throws -> UnsafeMutablePointer<Onnx__NodeProto> {
        let message = arena.allocate(Onnx__NodeProto.self)
        onnx__node_proto__init(message)
        if !node.name.isEmpty { message.pointee.name = arena.string(node.name) }
        message.pointee.op_type = arena.string(node.opType)
        if !node.domain.isEmpty { message.pointee.domain = arena.string(node.domain) }
        message.pointee.n_input = node.inputs.count
        message.pointee.input = arena.array(node.inputs.map { Optional(arena.string($0)) })
        message.pointee.n_output = node.outputs.count
        message.pointee.output = arena.array(node.outputs.map { Optional(arena.string($0)) })
        message.pointee.n_attribute = node.attributes.count
        message.pointee.attribute = arena.array(try node.attributes.map { Optional(try attribute($0)) })
        return message
    }

    func attribute(_ attribute: OnnxAttribute) throws -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let message = arena.allocate(Onnx__AttributeProto.self)
        onnx__attribute_proto__init(message)
        message.pointee.name = arena.string(attribute.name)
        message.pointee.has_type = 1
        switch attribute.value {
        case .float(let value):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
            message.pointee.has_f = 1
            message.pointee.f = value
        case .int(let value):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
            message.pointee.has_i = 1
            message.pointee.i = value
        case .string(let value):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
            message.pointee.has_s = 1
            message.pointee.s = arena.bytes(Array(value.utf8))
        case .tensor(let value):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
            message.pointee.t = try tensor(value)
        case .graph(let value):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH
            message.pointee.g = try graph(value)
        case .floats(let values):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
            message.pointee.n_floats = values.count
            message.pointee.floats = arena.array(values)
        case .ints(let values):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
            message.pointee.n_ints = values.count
            message.pointee.ints = arena.array(values)
        case .strings(let values):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS
            message.pointee.n_strings = values.count
            message.pointee.strings = arena.array(values.map { arena.bytes(Array($0.utf8)) })
        case .tensors(let values):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS
            message.pointee.n_tensors = values.count
            message.pointee.tensors = arena.array(try values.map { Optional(try tensor($0)) })
        case .graphs(let values):
            message.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS
            message.pointee.n_graphs = values.count
            message.pointee.graphs = arena.array(try values.map { Optional(try graph($0)) })
        }
        return message
    }

    func tensor(_ tensor: OnnxTensor) throws -> UnsafeMutablePointer<Onnx__TensorProto> {
        let message = arena.allocate(Onnx__TensorProto.self)
        onnx__tensor_proto__init(message)
        if !tensor.name.isEmpty { message.pointee.name = arena.string(tensor.name) }
        message.pointee.n_dims = tensor.dims.count
        message.pointee.dims = arena.array(tensor.dims.map { Int64($0) })
        message.pointee.has_data_type = 1
        message.pointee.data_type = tensor.dataType.rawValue
        let count = tensor.elementCount
        // raw_data, little-endian, is what onnx's own numpy_helper writes: compact and fast to read back.
        var raw: [UInt8] = []
        switch tensor.dataType {
        case .float:
            guard tensor.floats.count == count else {
                throw OnnxError.encodingFailed(
                    "tensor '\(tensor.name)' has dims \(tensor.dims) (\(count) values) but \(tensor.floats.count) floats"
                )
            }
            raw.reserveCapacity(count * 4)
            for value in tensor.floats {
                withUnsafeBytes(of: value.bitPattern.littleEndian) { raw.append(contentsOf: $0) }
            }
        case .double:
            guard tensor.floats.count == count else {
                throw OnnxError.encodingFailed("tensor '\(tensor.name)' has \(tensor.floats.count) of \(count) values")
            }
            for value in tensor.floats {
                withUnsafeBytes(of: Double(value).bitPattern.littleEndian) { raw.append(contentsOf: $0) }
            }
        case .int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64, .bool:
            guard tensor.int64s.count == count else {
                throw OnnxError.encodingFailed("tensor '\(tensor.name)' has \(tensor.int64s.count) of \(count) values")
            }
            let width = Self.byteWidth(tensor.dataType)
            for value in tensor.int64s {
                withUnsafeBytes(of: value.littleEndian) { raw.append(contentsOf: $0.prefix(width)) }
            }
        default:
            throw OnnxError.unsupportedDataType("tensor '\(tensor.name)' to encode", tensor.dataType)
        }
        message.pointee.has_raw_data = 1
        message.pointee.raw_data = arena.bytes(raw)
        return message
    }

    static func byteWidth(_ type: OnnxDataType) -> Int {
        switch type {
        case .int8, .uint8, .bool: 1
        case .int16, .uint16: 2
        case .int32, .uint32, .float: 4
        default: 8
        }
    }

    func valueInfo(_ info: OnnxValueInfo) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let message = arena.allocate(Onnx__ValueInfoProto.self)
        onnx__value_info_proto__init(message)
        message.pointee.name = arena.string(info.name)
        let type = arena.allocate(Onnx__TypeProto.self)
        onnx__type_proto__init(type)
        let tensorType = arena.allocate(Onnx__TypeProto__Tensor.self)
        onnx__type_proto__tensor__init(tensorType)
        tensorType.pointee.has_elem_type = 1
        tensorType.pointee.elem_type = info.elementType.rawValue
        if let shape = info.shape {
            let shapeMessage = arena.allocate(Onnx__TensorShapeProto.self)
            onnx__tensor_shape_proto__init(shapeMessage)
            shapeMessage.pointee.n_dim = shape.count
            shapeMessage.pointee.dim = arena.array(
                shape.map { dimension -> UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>? in
                    let entry = arena.allocate(Onnx__TensorShapeProto__Dimension.self)
                    onnx__tensor_shape_proto__dimension__init(entry)
                    switch dimension {
                    case .value(let value):
                        entry.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                        entry.pointee.dim_value = Int64(value)
                    case .param(let name):
                        entry.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                        entry.pointee.dim_param = arena.string(name)
                    case .unknown:
                        break
                    }
                    return entry
                })
            tensorType.pointee.shape = shapeMessage
        }
        type.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
        type.pointee.tensor_type = tensorType
        message.pointee.type = type
        return message
    }
}

private enum ProtobufDecoder {
    static func string(_ pointer: UnsafePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }

    static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }

    static func string(_ data: ProtobufCBinaryData) -> String {
        guard data.len > 0, let bytes = data.data else { return "" }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: data.len), as: UTF8.self)
    }

    static func list<T, R>(_ pointer: UnsafeMutablePointer<T>?, _ count: Int, _ transform: (T) throws -> R) rethrows
        -> [R]
    {
        guard let pointer, count > 0 else { return [] }
        return try UnsafeBufferPointer(start: pointer, count: count).map(transform)
    }

    static func model(_ message: Onnx__ModelProto) throws -> OnnxModel {
        guard let graphMessage = message.graph else {
            throw OnnxError.invalidModel("the model has no graph")
        }
        let opsets = list(message.opset_import, message.n_opset_import) { entry -> OnnxOpset in
            let value = entry!.pointee
            return OnnxOpset(domain: string(value.domain), version: value.has_version != 0 ? value.version : 1)
        }
        return OnnxModel(
            irVersion: message.has_ir_version != 0 ? message.ir_version : 0,
            opsetImports: opsets,
            producerName: string(message.producer_name),
            producerVersion: string(message.producer_version),
            graph: try graph(graphMessage.pointee)
        )
    }

    static func graph(_ message: Onnx__GraphProto) throws -> OnnxGraph {
        OnnxGraph(
            name: string(message.name),
            nodes: try list(message.node, message.n_node) { try node($0!.pointee) },
            initializers: try list(message.initializer, message.n_initializer) { try tensor($0!.pointee) },
            inputs: list(message.input, message.n_input) { valueInfo($0!.pointee) },
            outputs: list(message.output, message.n_output) { valueInfo($0!.pointee) },
            valueInfo: list(message.value_info, message.n_value_info) { valueInfo($0!.pointee) }
        )
    }

    static func node(_ message: Onnx__NodeProto) throws -> OnnxNode {
        OnnxNode(
            name: string(message.name),
            opType: string(message.op_type),
            domain: string(message.domain),
            inputs: list(message.input, message.n_input) { string($0) },
            outputs: list(message.output, message.n_output) { string($0) },
            attributes: try list(message.attribute, message.n_attribute) { try attribute($0!.pointee) }
                .compactMap { $0 }
        )
    }

    /// Nil for attribute kinds the tools do not use (sparse tensors, type protos, references).
    static func attribute(_ message: Onnx__AttributeProto) throws -> OnnxAttribute? {
        let name = string(message.name)
        var type = message.has_type != 0 ? message.type : ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED
        if type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED {
            // IR version 1 files carry no type: infer it from the field that is set.
            if message.has_f != 0 {
                type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
            } else if message.has_i != 0 {
                type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
            } else if message.has_s != 0 {
                type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
            } else if message.t != nil {
                type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
            } else if message.g != nil {
                type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH
            } else if message.n_floats > 0 {
                type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
            } else if message.n_ints > 0 {
                type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
            } else if message.n_strings > 0 {
                type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS
            }
        }
        let value: OnnxAttribute.Value
        switch type {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: value = .float(message.f)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: value = .int(message.i)
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: value = .string(string(message.s))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
            guard let tensorMessage = message.t else {
                throw OnnxError.invalidModel("tensor attribute '\(name)' has no tensor")
            }
            value = .tensor(try tensor(tensorMessage.pointee))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
            guard let graphMessage = message.g else {
                throw OnnxError.invalidModel("graph attribute '\(name)' has no graph")
            }
            value = .graph(try graph(graphMessage.pointee))
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
            value = .floats(list(message.floats, message.n_floats) { $0 })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: value = .ints(list(message.ints, message.n_ints) { $0 })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
            value = .strings(list(message.strings, message.n_strings) { string($0) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
            value = .tensors(try list(message.tensors, message.n_tensors) { try tensor($0!.pointee) })
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
            value = .graphs(try list(message.graphs, message.n_graphs) { try graph($0!.pointee) })
        default:
            return nil
        }
        return OnnxAttribute(name, value)
    }

    static func tensor(_ message: Onnx__TensorProto) throws -> OnnxTensor {
        let name = string(message.name)
        let dataType = OnnxDataType(rawValue: message.has_data_type != 0 ? message.data_type : 0)
        var dims: [Int] = []
        var count = 1
        for dim in list(message.dims, message.n_dims, { $0 }) {
            guard dim >= 0, dim <= Int64(Int32.max) else {
                throw OnnxError.invalidModel("tensor '\(name)' has dimension \(dim)")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(dim))
            guard !overflow, product <= 1 << 34 else {
                throw OnnxError.invalidModel("tensor '\(name)' has dims whose product is too large")
            }
            dims.append(Int(dim))
            count = product
        }
        if message.has_data_location != 0, message.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            throw OnnxError.invalidModel(
                "tensor '\(name)' keeps its values in an external file; save the model with its weights inside (onnx.save_model(..., save_as_external_data=False))"
            )
        }
        var floats: [Float] = []
        var int64s: [Int64] = []
        let raw = message.has_raw_data != 0 ? message.raw_data : ProtobufCBinaryData(len: 0, data: nil)
        func rawValues<T>(_ type: T.Type, _ convert: (UnsafeRawBufferPointer, Int) -> T) throws -> [T] {
            let width = MemoryLayout<T>.size
            guard raw.len == count * width, let base = raw.data else {
                throw OnnxError.invalidModel(
                    "tensor '\(name)' has dims \(dims) (\(count) values of \(dataType)) but \(raw.len) bytes of raw data"
                )
            }
            let buffer = UnsafeRawBufferPointer(start: base, count: raw.len)
            return (0..<count).map { convert(buffer, $0 * width) }
        }
        func checkCount(_ found: Int) throws {
            guard found == count else {
                throw OnnxError.invalidModel("tensor '\(name)' has dims \(dims) (\(count) values) but \(found) values")
            }
        }
        let hasRaw = raw.len > 0 || (message.has_raw_data != 0 && count == 0)
        switch dataType {
        case .float:
            if hasRaw {
                floats = try rawValues(Float.self) {
                    Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt32.self)))
                }
            } else {
                floats = list(message.float_data, message.n_float_data) { $0 }
                try checkCount(floats.count)
            }
        case .double:
            if hasRaw {
                floats = try rawValues(Double.self) {
                    Double(bitPattern: UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt64.self)))
                }
                .map { Float($0) }
            } else {
                floats = list(message.double_data, message.n_double_data) { Float($0) }
                try checkCount(floats.count)
            }
        case .int64:
            if hasRaw {
                int64s = try rawValues(Int64.self) {
                    Int64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int64.self))
                }
            } else {
                int64s = list(message.int64_data, message.n_int64_data) { $0 }
                try checkCount(int64s.count)
            }
        case .uint64, .uint32:
            if hasRaw {
                if dataType == .uint64 {
                    int64s = try rawValues(UInt64.self) {
                        UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt64.self))
                    }
                    .map { Int64(truncatingIfNeeded: $0) }
                } else {
                    int64s = try rawValues(UInt32.self) {
                        UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt32.self))
                    }
                    .map { Int64($0) }
                }
            } else {
                int64s = list(message.uint64_data, message.n_uint64_data) { Int64(truncatingIfNeeded: $0) }
                try checkCount(int64s.count)
            }
        case .int32, .int16, .int8, .uint8, .uint16, .bool:
            if hasRaw {
                switch dataType {
                case .int32:
                    int64s = try rawValues(Int32.self) {
                        Int32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int32.self))
                    }
                    .map { Int64($0) }
                case .int16:
                    int64s = try rawValues(Int16.self) {
                        Int16(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int16.self))
                    }
                    .map { Int64($0) }
                case .uint16:
                    int64s = try rawValues(UInt16.self) {
                        UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt16.self))
                    }
                    .map { Int64($0) }
                case .int8:
                    int64s = try rawValues(Int8.self) { $0.load(fromByteOffset: $1, as: Int8.self) }.map { Int64($0) }
                default:
                    int64s = try rawValues(UInt8.self) { $0[$1] }.map { Int64($0) }
                }
            } else {
                int64s = list(message.int32_data, message.n_int32_data) { Int64($0) }
                try checkCount(int64s.count)
            }
        default:
            break
        }
        return OnnxTensor(name: name, dataType: dataType, dims: dims, floats: floats, int64s: int64s)
    }

    static func valueInfo(_ message: Onnx__ValueInfoProto) -> OnnxValueInfo {
        let name = string(message.name)
        guard let type = message.type, type.pointee.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE,
            let tensorType = type.pointee.tensor_type
        else {
            return OnnxValueInfo(name: name, elementType: .undefined, shape: nil)
        }
        let elementType = OnnxDataType(
            rawValue: tensorType.pointee.has_elem_type != 0 ? tensorType.pointee.elem_type : 0)
        guard let shape = tensorType.pointee.shape else {
            return OnnxValueInfo(name: name, elementType: elementType, shape: nil)
        }
        let dimensions = list(shape.pointee.dim, shape.pointee.n_dim) { entry -> OnnxValueInfo.Dimension in
            let dimension = entry!.pointee
            switch dimension.value_case {
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE:
                return dimension.dim_value >= 0 && dimension.dim_value <= Int64(Int32.max)
                    ? .value(Int(dimension.dim_value)) : .unknown
            case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                return .param(string(dimension.dim_param))
            default:
                return .unknown
            }
        }
        return OnnxValueInfo(name: name, elementType: elementType, shape: dimensions)
    }
}
