/// Output shapes, types and (when the inputs are constants) values of one node.
struct ShapeInference {
    typealias Value = GraphAnalysis.Value
    let opset: Int64

    static let supported: Set<String> = [
        "Conv", "Relu", "Clip", "Sigmoid", "Add", "Sub", "Mul", "Div", "MatMul", "Gemm", "Reshape", "Flatten",
        "Transpose", "Softmax", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "Concat",
        "Identity", "Dropout", "Shape", "Gather", "Slice", "Cast", "Unsqueeze", "Squeeze", "Constant",
        "ConstantOfShape", "HardSigmoid", "HardSwish", "ReduceMean",
    ]

    static func knows(_ node: OnnxNode) -> Bool {
        (node.domain.isEmpty || node.domain == "ai.onnx") && supported.contains(node.opType)
    }

    func outputs(of node: OnnxNode, inputs: [Value?]) throws -> [Value] {
        guard Self.knows(node) else {
            throw OnnxError.unsupportedOperator(node.opType, domain: node.domain, node: node.displayName)
        }
        func fail(_ reason: String) -> OnnxError { OnnxError.invalidNode(node.displayName, reason) }
        func input(_ index: Int) throws -> Value {
            guard index < inputs.count, let value = inputs[index] else { throw fail("input \(index) is missing") }
            return value
        }
        func constant(_ index: Int, _ what: String) throws -> HostTensor {
            guard let value = try input(index).constant else {
                throw OnnxError.shapeInference(
                    "\(node.displayName)",
                    "its \(what) (input \(index)) is computed at run time; the engine needs it to be known when the model loads"
                )
            }
            return value
        }
        func optionalConstant(_ index: Int, _ what: String) throws -> HostTensor? {
            index < inputs.count && inputs[index] != nil ? try constant(index, what) : nil
        }
        func axis(_ value: Int, rank: Int) throws -> Int {
            let normalized = value < 0 ? value + rank : value
            // Strict even for a scalar: callers index the shape with the result (Gather, Concat, Squeeze, Slice
            // of a rank-0 value trapped on `shape[0]`).
            guard normalized >= 0, normalized < rank else {
                throw fail("axis \(value) is out of range for rank \(rank)")
            }
            return normalized
        }
        let allConstant = !inputs.isEmpty && inputs.allSatisfy { $0 == nil || $0?.constant != nil }
        let x = inputs.first.flatMap { $0 }

        switch node.opType {
        case "Relu", "Sigmoid", "HardSigmoid", "HardSwish", "Identity", "Dropout":
            let value = try input(0)
            var result = Value(shape: value.shape, type: value.type)
            if allConstant, let c = value.constant, node.opType == "Identity" || node.opType == "Dropout" {
                result.constant = c
            }
            return [result] + (node.outputs.count > 1 ? [Value(shape: value.shape, type: .bool)] : [])
        case "Clip":
            let value = try input(0)
            _ = try optionalConstant(1, "min")
            _ = try optionalConstant(2, "max")
            return [Value(shape: value.shape, type: value.type)]
        case "Softmax":
            let value = try input(0)
            _ = try axis(node.int("axis", default: opset >= 13 ? -1 : 1), rank: value.shape.count)
            return [Value(shape: value.shape, type: value.type)]
        case "BatchNormalization":
            let value = try input(0)
            guard value.shape.count >= 2 else { throw fail("input rank \(value.shape.count) is below 2") }
            for (index, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")] {
                let parameter = try constant(index, what)
                guard parameter.floats.count == value.shape[1] else {
                    throw fail("\(what) has \(parameter.floats.count) values for \(value.shape[1]) channels")
                }
            }
            return [Value(shape: value.shape, type: value.type)]
        case "Add", "Sub", "Mul", "Div":
            let a = try input(0)
            let b = try input(1)
            guard let shape = ShapeMath.broadcast(a.shape, b.shape) else {
                throw fail("shapes \(a.shape) and \(b.shape) do not broadcast")
            }
            var result = Value(shape: shape, type: a.type)
            if let ca = a.constant, let cb = b.constant {
                result.constant = Self.elementwise(node.opType, ca, cb, shape: shape)
            }
            return [result]
        case "MatMul":
            let a = try input(0)
            let b = try input(1)
            guard let shape = Self.matMulShape(a.shape, b.shape) else {
                throw fail("shapes \(a.shape) and \(b.shape) cannot be multiplied")
            }
            return [Value(shape: shape, type: a.type)]
        case "Gemm":
            let a = try input(0)
            let b = try input(1)
            guard a.shape.count == 2, b.shape.count == 2 else {
                throw fail("Gemm needs 2-D A and B, got \(a.shape) and \(b.shape)")
            }
            let transA = node.int("transA", default: 0) != 0
            let transB = node.int("transB", default: 0) != 0
            let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
            let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
            guard k == kb else { throw fail("A is \(m)x\(k) but B is \(kb)x\(n)") }
            if let c = inputs.count > 2 ? inputs[2] : nil {
                guard ShapeMath.broadcast([m, n], c.shape) == [m, n] else {
                    throw fail("C of shape \(c.shape) does not broadcast to [\(m), \(n)]")
                }
            }
            return [Value(shape: [m, n], type: a.type)]
        case "Conv":
            let value = try input(0)
            let weight = try input(1)
            guard value.shape.count >= 3, weight.shape.count == value.shape.count else {
                throw fail("input \(value.shape) and weight \(weight.shape) must have the same rank, at least 3")
            }
            let group = node.int("group", default: 1)
            // A crafted group (2^63 - 1) must not overflow the product: compare by division instead.
            guard group > 0, value.shape[1] % group == 0, value.shape[1] / group == weight.shape[1],
                weight.shape[0] % group == 0
            else {
                throw fail("input channels \(value.shape[1]), weight \(weight.shape) and group \(group) do not agree")
            }
            let kernel = node.ints("kernel_shape") ?? Array(weight.shape[2...])
            guard kernel == Array(weight.shape[2...]) else {
                throw fail("kernel_shape \(kernel) differs from the weight's \(weight.shape)")
            }
            if let bias = inputs.count > 2 ? inputs[2] : nil, bias.shape != [weight.shape[0]] {
                throw fail("bias shape \(bias.shape) is not [\(weight.shape[0])]")
            }
            let window = try WindowGeometry(
                node: node, input: Array(value.shape[2...]), kernel: kernel, allowCeil: false)
            return [Value(shape: [value.shape[0], weight.shape[0]] + window.output, type: value.type)]
        case "MaxPool", "AveragePool":
            let value = try input(0)
            guard value.shape.count >= 3, let kernel = node.ints("kernel_shape") else {
                throw fail("needs an input of rank >= 3 and a kernel_shape attribute")
            }
            if node.outputs.count > 1, !node.outputs[1].isEmpty { throw fail("the Indices output is not supported") }
            let window = try WindowGeometry(
                node: node, input: Array(value.shape[2...]), kernel: kernel, allowCeil: true)
            return [Value(shape: Array(value.shape[..<2]) + window.output, type: value.type)]
        case "GlobalAveragePool":
            let value = try input(0)
            guard value.shape.count >= 3 else { throw fail("needs an input of rank >= 3") }
            return [
                Value(
                    shape: Array(value.shape[..<2]) + [Int](repeating: 1, count: value.shape.count - 2),
                    type: value.type)
            ]
        case "ReduceMean":
            let value = try input(0)
            let rank = value.shape.count
            let listed: [Int]
            if opset >= 18 {
                listed = try optionalConstant(1, "axes").map { $0.ints.map { Int($0) } } ?? []
            } else {
                listed = node.ints("axes") ?? []
            }
            if listed.isEmpty && opset >= 18 && node.int("noop_with_empty_axes", default: 0) != 0 {
                return [Value(shape: value.shape, type: value.type)]
            }
            let axes = try Set(listed.isEmpty ? Array(0..<rank) : listed.map { try axis($0, rank: rank) })
            guard axes.count == max(listed.count, listed.isEmpty ? rank : 0) else {
                throw fail("axes \(listed) name an axis twice")
            }
            let keep = node.int("keepdims", default: 1) != 0
            let shape = (0..<rank).compactMap { index -> Int? in
                axes.contains(index) ? (keep ? 1 : nil) : value.shape[index]
            }
            return [Value(shape: shape, type: value.type)]
        case "Flatten":
            let value = try input(0)
            let rank = value.shape.count
            var at = node.int("axis", default: 1)
            if at < 0 { at += rank }
            guard at >= 0, at <= rank else { throw fail("axis \(at) is out of range for rank \(rank)") }
            let shape = [ShapeMath.count(Array(value.shape[..<at])), ShapeMath.count(Array(value.shape[at...]))]
            return [
                Value(
                    shape: shape, type: value.type,
                    constant: value.constant.map { HostTensor(shape: shape, type: $0.type, values: $0.values) })
            ]
        case "Reshape":
            let value = try input(0)
            let requested: [Int64]
            if opset < 5, let attribute = node.ints("shape") {
                requested = attribute.map { Int64($0) }
            } else {
                requested = try constant(1, "target shape").ints
            }
            let allowZero = node.int("allowzero", default: 0) != 0
            var shape: [Int] = []
            var inferred: Int?
            for (index, size) in requested.enumerated() {
                if size == 0 && !allowZero {
                    guard index < value.shape.count else {
                        throw fail("shape \(requested) copies a missing dimension \(index)")
                    }
                    shape.append(value.shape[index])
                } else if size == -1 {
                    guard inferred == nil else { throw fail("shape \(requested) has more than one -1") }
                    inferred = index
                    shape.append(1)
                } else if size >= 0 && size <= Int64(Int32.max) {
                    shape.append(Int(size))
                } else {
                    throw fail("shape \(requested) has an invalid size \(size)")
                }
            }
            let total = ShapeMath.count(value.shape)
            if let inferred {
                let known = ShapeMath.count(shape)
                guard known > 0, total % known == 0 else { throw fail("cannot reshape \(value.shape) to \(requested)") }
                shape[inferred] = total / known
            }
            guard ShapeMath.count(shape) == total else {
                throw fail("cannot reshape \(value.shape) (\(total) values) to \(shape)")
            }
            return [
                Value(
                    shape: shape, type: value.type,
                    constant: value.constant.map { HostTensor(shape: shape, type: $0.type, values: $0.values) })
            ]
        case "Transpose":
            let value = try input(0)
            let rank = value.shape.count
            let perm = node.ints("perm") ?? Array((0..<rank).reversed())
            guard perm.sorted() == Array(0..<rank) else {
                throw fail("perm \(perm) is not a permutation of 0..<\(rank)")
            }
            let (shape, indices) = ShapeMath.transposeIndices(
                input: value.shape, perm: perm, withIndices: value.constant != nil)
            return [
                Value(
                    shape: shape, type: value.type,
                    constant: value.constant.map {
                        HostTensor(shape: shape, type: $0.type, values: $0.values.picking(indices))
                    })
            ]
        case "Concat":
            let parts = try (0..<inputs.count).compactMap { inputs[$0] == nil ? nil : try input($0) }
            guard let first = parts.first else { throw fail("has no inputs") }
            let at = try axis(node.int("axis", default: 0), rank: first.shape.count)
            var shape = first.shape
            shape[at] = 0
            for part in parts {
                guard part.shape.count == first.shape.count,
                    (0..<shape.count).allSatisfy({ $0 == at || part.shape[$0] == first.shape[$0] })
                else { throw fail("input shapes \(parts.map(\.shape)) differ outside axis \(at)") }
                shape[at] += part.shape[at]
            }
            var result = Value(shape: shape, type: first.type)
            if allConstant {
                let outer = ShapeMath.count(Array(shape[..<at]))
                var floats: [Float] = []
                var ints: [Int64] = []
                let isFloat = first.type.isFloatingPoint
                for o in 0..<outer {
                    for part in parts {
                        let inner = ShapeMath.count(Array(part.shape[at...]))
                        let range = (o * inner)..<((o + 1) * inner)
                        if isFloat {
                            floats += part.constant!.floats[range]
                        } else {
                            ints += part.constant!.ints[range]
                        }
                    }
                }
                result.constant = HostTensor(
                    shape: shape, type: first.type, values: isFloat ? .floats(floats) : .ints(ints))
            }
            return [result]
        case "Shape":
            let value = try input(0)
            let rank = value.shape.count
            var start = node.int("start", default: 0)
            var end = node.int("end", default: rank)
            if start < 0 { start += rank }
            if end < 0 { end += rank }
            start = min(max(start, 0), rank)
            end = min(max(end, start), rank)
            let dims = value.shape[start..<end].map { Int64($0) }
            return [Value(shape: [dims.count], type: .int64, constant: HostTensor(shape: [dims.count], ints: dims))]
        case "Gather":
            let data = try input(0)
            let indicesValue = try constant(1, "indices")
            let rank = data.shape.count
            let at = try axis(node.int("axis", default: 0), rank: rank)
            let size = data.shape[at]
            var indices: [Int] = []
            for index in indicesValue.ints {
                let normalized = index < 0 ? index + Int64(size) : index
                guard normalized >= 0, normalized < Int64(size) else {
                    throw fail("index \(index) is out of range for size \(size)")
                }
                indices.append(Int(normalized))
            }
            let (shape, map) = ShapeMath.gatherIndices(
                input: data.shape, axis: at, indices: indices, indicesShape: indicesValue.shape,
                withIndices: data.constant != nil)
            return [
                Value(
                    shape: shape, type: data.type,
                    constant: data.constant.map {
                        HostTensor(shape: shape, type: $0.type, values: $0.values.picking(map))
                    })
            ]
        case "Slice":
            let data = try input(0)
            let rank = data.shape.count
            let starts: [Int64]
            let ends: [Int64]
            var axes: [Int64]
            var steps: [Int64]
            if opset < 10 {
                starts = (node.ints("starts") ?? []).map { Int64($0) }
                ends = (node.ints("ends") ?? []).map { Int64($0) }
                axes = (node.ints("axes") ?? Array(0..<starts.count)).map { Int64($0) }
                steps = [Int64](repeating: 1, count: starts.count)
            } else {
                starts = try constant(1, "starts").ints
                ends = try constant(2, "ends").ints
                axes = try optionalConstant(3, "axes")?.ints ?? (0..<Int64(starts.count)).map { $0 }
                steps = try optionalConstant(4, "steps")?.ints ?? [Int64](repeating: 1, count: starts.count)
            }
            guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count,
                steps.allSatisfy({ $0 != 0 })
            else { throw fail("starts, ends, axes and steps must have the same length and steps no zero") }
            let normalizedAxes = try axes.map { try axis(Int($0), rank: rank) }
            let (shape, map) = ShapeMath.sliceIndices(
                input: data.shape, starts: starts, ends: ends, axes: normalizedAxes, steps: steps,
                withIndices: data.constant != nil)
            return [
                Value(
                    shape: shape, type: data.type,
                    constant: data.constant.map {
                        HostTensor(shape: shape, type: $0.type, values: $0.values.picking(map))
                    })
            ]
        case "Cast":
            let value = try input(0)
            let to = OnnxDataType(rawValue: Int32(clamping: node.int("to", default: 1)))
            guard to.isFloatingPoint || to.isInteger else {
                throw OnnxError.unsupportedDataType("the output of \(node.displayName)", to)
            }
            var result = Value(shape: value.shape, type: to.isFloatingPoint ? .float : to)
            if let c = value.constant {
                result.constant = HostTensor(
                    shape: c.shape, type: result.type, values: to.isFloatingPoint ? .floats(c.floats) : .ints(c.ints))
            } else if !to.isFloatingPoint {
                throw OnnxError.unsupportedDataType("the run-time output of \(node.displayName)", to)
            }
            return [result]
        case "Unsqueeze":
            let value = try input(0)
            let axes = opset < 13 ? (node.ints("axes") ?? []).map { Int64($0) } : try constant(1, "axes").ints
            let rank = value.shape.count + axes.count
            let normalized = try Set(axes.map { try axis(Int($0), rank: rank) })
            guard normalized.count == axes.count else { throw fail("axes \(axes) repeat an axis") }
            var shape: [Int] = []
            var source = value.shape.makeIterator()
            for index in 0..<rank { shape.append(normalized.contains(index) ? 1 : source.next()!) }
            return [
                Value(
                    shape: shape, type: value.type,
                    constant: value.constant.map { HostTensor(shape: shape, type: $0.type, values: $0.values) })
            ]
        case "Squeeze":
            let value = try input(0)
            let rank = value.shape.count
            let axes =
                opset < 13 ? node.ints("axes").map { $0.map { Int64($0) } } : try optionalConstant(1, "axes")?.ints
            let normalized: Set<Int>
            if let axes {
                normalized = try Set(axes.map { try axis(Int($0), rank: rank) })
                guard normalized.allSatisfy({ value.shape[$0] == 1 }) else {
                    throw fail("cannot squeeze axes \(axes) of \(value.shape)")
                }
            } else {
                normalized = Set((0..<rank).filter { value.shape[$0] == 1 })
            }
            let shape = (0..<rank).filter { !normalized.contains($0) }.map { value.shape[$0] }
            return [
                Value(
                    shape: shape, type: value.type,
                    constant: value.constant.map { HostTensor(shape: shape, type: $0.type, values: $0.values) })
            ]
        case "Constant":
            let tensor: HostTensor
            if let value = node.attribute("value")?.tensorValue {
                guard let host = HostTensor(value) else {
                    throw OnnxError.unsupportedDataType("the value of \(node.displayName)", value.dataType)
                }
                tensor = host
            } else if case .float(let value)? = node.attribute("value_float") {
                tensor = HostTensor(shape: [], floats: [value])
            } else if case .floats(let values)? = node.attribute("value_floats") {
                tensor = HostTensor(shape: [values.count], floats: values)
            } else if case .int(let value)? = node.attribute("value_int") {
                tensor = HostTensor(shape: [], ints: [value])
            } else if case .ints(let values)? = node.attribute("value_ints") {
                tensor = HostTensor(shape: [values.count], ints: values)
            } else {
                throw fail("has no value, value_float(s) or value_int(s) attribute")
            }
            guard tensor.values.count == ShapeMath.count(tensor.shape) else {
                throw fail("its value has the wrong number of elements")
            }
            return [Value(shape: tensor.shape, type: tensor.type, constant: tensor)]
        case "ConstantOfShape":
            let dims = try constant(0, "shape").ints
            guard dims.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else {
                throw fail("shape \(dims) has a negative or huge size")
            }
            let shape = dims.map { Int($0) }
            let count = ShapeMath.count(shape)
            guard count <= 1 << 26 else { throw fail("shape \(dims) is too large to fold") }
            let fill =
                node.attribute("value")?.tensorValue.flatMap { HostTensor($0) } ?? HostTensor(shape: [1], floats: [0])
            let tensor: HostTensor
            switch fill.values {
            case .floats(let values):
                tensor = HostTensor(
                    shape: shape, type: .float, values: .floats(.init(repeating: values.first ?? 0, count: count)))
            case .ints(let values):
                tensor = HostTensor(
                    shape: shape, type: fill.type, values: .ints(.init(repeating: values.first ?? 0, count: count)))
            }
            return [Value(shape: shape, type: tensor.type, constant: tensor)]
        default:
            _ = x
            throw OnnxError.unsupportedOperator(node.opType, domain: node.domain, node: node.displayName)
        }
    }

    static func matMulShape(_ a: [Int], _ b: [Int]) -> [Int]? {
        guard !a.isEmpty, !b.isEmpty else { return nil }
        let left = a.count == 1 ? [1] + a : a
        let right = b.count == 1 ? b + [1] : b
        guard left[left.count - 1] == right[right.count - 2],
            let batch = ShapeMath.broadcast(Array(left.dropLast(2)), Array(right.dropLast(2)))
        else { return nil }
        var shape = batch + [left[left.count - 2], right[right.count - 1]]
        if b.count == 1 { shape.removeLast() }
        if a.count == 1 { shape.remove(at: shape.count - (b.count == 1 ? 1 : 2)) }
        return shape
    }

    static func elementwise(_ op: String, _ a: HostTensor, _ b: HostTensor, shape: [Int]) -> HostTensor {
        let ia = ShapeMath.broadcastIndices(input: a.shape, output: shape)
        let ib = ShapeMath.broadcastIndices(input: b.shape, output: shape)
        if a.type.isFloatingPoint || b.type.isFloatingPoint {
            let x = a.floats
            let y = b.floats
            let values: [Float] = zip(ia, ib).map { i, j in
                switch op {
                case "Add": x[i] + y[j]
                case "Sub": x[i] - y[j]
                case "Mul": x[i] * y[j]
                default: x[i] / y[j]
                }
            }
            return HostTensor(shape: shape, floats: values)
        }
        let x = a.ints
        let y = b.ints
        let values: [Int64] = zip(ia, ib).map { i, j in
            switch op {
            case "Add": x[i] &+ y[j]
            case "Sub": x[i] &- y[j]
            case "Mul": x[i] &* y[j]
            default: y[j] == 0 ? 0 : x[i].dividedReportingOverflow(by: y[j]).partialValue
            }
        }
        return HostTensor(shape: shape, type: a.type, values: .ints(values))
    }
}
