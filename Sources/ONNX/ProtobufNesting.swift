/// Rejects ONNX bytes whose messages nest deeper than any real model before protobuf-c sees them.
///
/// protobuf-c decodes sub-messages recursively with no depth limit, and ONNX's messages are recursive (a node's
/// attribute holds a graph of nodes; a type holds a sequence of types), so a few kilobytes of crafted input could
/// exhaust the stack. This walks only those recursive fields, without recursion, and stops at `maximumDepth`.
enum ProtobufNesting {
    static let maximumDepth = 64

    private enum Kind {
        case model, trainingInfo, graph, function, node, attribute, valueInfo, type, typeSequence, typeMap,
            typeOptional
    }

    /// The sub-message kind of a length-delimited field, for the fields that can lead back into a cycle.
    private static func child(of kind: Kind, field: UInt64) -> Kind? {
        switch (kind, field) {
        case (.model, 7): .graph
        case (.model, 20): .trainingInfo
        case (.model, 25): .function
        case (.trainingInfo, 1), (.trainingInfo, 2): .graph
        case (.graph, 1): .node
        case (.graph, 11), (.graph, 12), (.graph, 13): .valueInfo
        case (.function, 7): .node
        case (.function, 11): .attribute
        case (.function, 12): .valueInfo
        case (.node, 5): .attribute
        case (.attribute, 6), (.attribute, 11): .graph
        case (.attribute, 14), (.attribute, 15): .type
        case (.valueInfo, 2): .type
        case (.type, 4): .typeSequence
        case (.type, 5): .typeMap
        case (.type, 9): .typeOptional
        case (.typeSequence, 1), (.typeMap, 2), (.typeOptional, 1): .type
        default: nil
        }
    }

    /// Throws `OnnxError.malformed` when the nesting is too deep; leaves every other defect to protobuf-c.
    static func check(_ bytes: [UInt8]) throws {
        var stack: [(kind: Kind, end: Int)] = [(.model, bytes.count)]
        var offset = 0
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while offset < bytes.count, shift < 64 {
                let byte = bytes[offset]
                offset += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        while let top = stack.last {
            if offset >= top.end {
                stack.removeLast()
                continue
            }
            guard let key = varint() else { return }
            switch key & 7 {
            case 0:
                guard varint() != nil else { return }
            case 1:
                offset += 8
            case 5:
                offset += 4
            case 2:
                guard let length = varint(), offset <= top.end, length <= UInt64(top.end - offset) else { return }
                let end = offset + Int(length)
                if let kind = child(of: top.kind, field: key >> 3) {
                    if stack.count >= maximumDepth {
                        throw OnnxError.malformed("messages are nested more than \(maximumDepth) levels deep")
                    }
                    stack.append((kind, end))
                } else {
                    offset = end
                }
            default:
                return
            }
            if offset > top.end { return }
        }
    }
}
