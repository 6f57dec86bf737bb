/// A tensor whose values are known when the model loads: an initializer, a Constant, or a folded shape computation.
package struct HostTensor: Hashable, Sendable {
    package enum Values: Hashable, Sendable {
        case floats([Float])
        case ints([Int64])

        package var count: Int {
            switch self {
            case .floats(let values): values.count
            case .ints(let values): values.count
            }
        }

        /// The values at `indices`, in order: the one primitive every data-movement op folds to.
        package func picking(_ indices: [Int]) -> Values {
            switch self {
            case .floats(let values): .floats(indices.map { values[$0] })
            case .ints(let values): .ints(indices.map { values[$0] })
            }
        }
    }

    package var shape: [Int]
    package var type: OnnxDataType
    package var values: Values

    package init(shape: [Int], type: OnnxDataType, values: Values) {
        self.shape = shape
        self.type = type
        self.values = values
    }

    package init(shape: [Int], floats: [Float]) {
        self.init(shape: shape, type: .float, values: .floats(floats))
    }

    package init(shape: [Int], ints: [Int64]) {
        self.init(shape: shape, type: .int64, values: .ints(ints))
    }

    /// The tensor's values as integers (float values truncated).
    package var ints: [Int64] {
        switch values {
        case .ints(let values): values
        case .floats(let values): values.map { $0.isFinite ? Int64(max(min($0, 9e18), -9e18)) : 0 }
        }
    }

    /// The tensor's values as floats.
    package var floats: [Float] {
        switch values {
        case .floats(let values): values
        case .ints(let values): values.map { Float($0) }
        }
    }

    /// Converts an initializer or tensor attribute; nil for element types the engine does not compute with.
    package init?(_ tensor: OnnxTensor) {
        if tensor.dataType.isFloatingPoint {
            self.init(shape: tensor.dims, type: .float, values: .floats(tensor.floats))
        } else if tensor.dataType.isInteger {
            self.init(shape: tensor.dims, type: tensor.dataType, values: .ints(tensor.int64s))
        } else {
            return nil
        }
    }
}

/// Shape arithmetic shared by shape inference, constant folding and the engine's planner.
///
/// The index-table builders are `@inlinable` so that the engine (another module) gets them specialised for its
/// `Int32` tables, as it did when both lived in one module.
package enum ShapeMath {
    /// The element count, saturating at `Int.max` instead of trapping on crafted shapes.
    @inlinable
    package static func count(_ shape: [Int]) -> Int {
        var total = 1
        for size in shape {
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            if overflow { return Int.max }
            total = product
        }
        return total
    }

    /// The largest tensor the engine plans: 2^30 floats (4 GiB).
    package static let maximumCount = 1 << 30

    @inlinable
    package static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    /// numpy's multidirectional broadcasting; nil when the shapes are incompatible.
    package static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for axis in 0..<rank {
            let x = axis - (rank - a.count) >= 0 ? a[axis - (rank - a.count)] : 1
            let y = axis - (rank - b.count) >= 0 ? b[axis - (rank - b.count)] : 1
            if x == y || y == 1 {
                out[axis] = x
            } else if x == 1 {
                out[axis] = y
            } else {
                return nil
            }
        }
        return out
    }

    /// For each element of `output`, the flat index of the element of `input` (broadcast to it) that it reads;
    /// the planner asks for `Int32` tables, built as such (an `[Int]` first would need twice their memory).
    @inlinable
    package static func broadcastIndices<Index: FixedWidthInteger>(
        input: [Int], output: [Int], as type: Index.Type = Int.self
    ) -> [Index] {
        let rank = output.count
        let padded = [Int](repeating: 1, count: rank - input.count) + input
        let inputStrides = strides(padded)
        var effective = [Int](repeating: 0, count: rank)
        for axis in 0..<rank where padded[axis] != 1 { effective[axis] = inputStrides[axis] }
        return linearIndices(output: output, strides: effective, offset: 0, as: type)
    }

    /// `offset + sum(coordinate * strides)` for each coordinate of `output` in row-major order, updated
    /// incrementally: a closure call and a coordinate array per element made a 32 M-element Slice table take
    /// seconds (the fuzzer's timeout), this is one add per element. Wrapping arithmetic: the step past a row's
    /// last element may leave Int's range (a Slice step of 2^63 - 1) but is never stored; every stored index is exact.
    @inlinable
    package static func linearIndices<Index: FixedWidthInteger>(
        output: [Int], strides: [Int], offset: Int, as type: Index.Type = Int.self
    ) -> [Index] {
        let total = count(output)
        var result = [Index]()
        result.reserveCapacity(total)
        if total == 0 { return result }
        guard let last = output.indices.last else { return [Index(truncatingIfNeeded: offset)] }
        let innerSize = output[last]
        let innerStride = strides[last]
        var coordinate = [Int](repeating: 0, count: output.count)
        var rowStart = offset
        while result.count < total {
            var index = rowStart
            for _ in 0..<innerSize {
                result.append(Index(truncatingIfNeeded: index))
                index &+= innerStride
            }
            var axis = last - 1
            while axis >= 0 {
                coordinate[axis] += 1
                rowStart &+= strides[axis]
                if coordinate[axis] < output[axis] { break }
                rowStart &-= strides[axis] &* output[axis]
                coordinate[axis] = 0
                axis -= 1
            }
        }
        return result
    }

    /// With `withIndices` false only the shape is computed: shape inference of a run-time value needs no table,
    /// and building one as large as a crafted value took seconds and gigabytes.
    @inlinable
    package static func transposeIndices<Index: FixedWidthInteger>(
        input: [Int], perm: [Int], withIndices: Bool = true, as type: Index.Type = Int.self
    ) -> (shape: [Int], indices: [Index]) {
        let inputStrides = strides(input)
        let output = perm.map { input[$0] }
        if !withIndices { return (output, []) }
        return (output, linearIndices(output: output, strides: perm.map { inputStrides[$0] }, offset: 0, as: type))
    }

    package static func gatherIndices(
        input: [Int], axis: Int, indices: [Int], indicesShape: [Int], withIndices: Bool = true
    ) -> (shape: [Int], indices: [Int]) {
        let outer = count(Array(input[..<axis]))
        let inner = count(Array(input[(axis + 1)...]))
        let output = Array(input[..<axis]) + indicesShape + Array(input[(axis + 1)...])
        if !withIndices { return (output, []) }
        var result = [Int]()
        result.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for index in indices {
                let base = (o * input[axis] + index) * inner
                for i in 0..<inner { result.append(base + i) }
            }
        }
        return (output, result)
    }

    /// Resolved `Slice` parameters per axis: start, step and count (numpy semantics with clamping).
    @inlinable
    package static func sliceIndices<Index: FixedWidthInteger>(
        input: [Int], starts: [Int64], ends: [Int64], axes: [Int], steps: [Int64], withIndices: Bool = true,
        as type: Index.Type = Int.self
    ) -> (shape: [Int], indices: [Index]) {
        var start = [Int](repeating: 0, count: input.count)
        var step = [Int](repeating: 1, count: input.count)
        var output = input
        for (position, axis) in axes.enumerated() {
            let dim = Int64(input[axis])
            let s = steps[position]
            var first = starts[position]
            var last = ends[position]
            if first < 0 { first += dim }
            if last < 0 { last += dim }
            if s > 0 {
                first = min(max(first, 0), dim)
                last = min(max(last, 0), dim)
                // In UInt64 with the step's magnitude: a step of Int64.max or Int64.min must not overflow.
                output[axis] = last > first ? Int((UInt64(last - first) - 1) / s.magnitude + 1) : 0
            } else {
                first = min(max(first, 0), dim - 1)
                last = min(max(last, -1), dim - 1)
                output[axis] = first > last ? Int((UInt64(first - last) - 1) / s.magnitude + 1) : 0
            }
            start[axis] = Int(first)
            step[axis] = Int(s)
        }
        if !withIndices { return (output, []) }
        let inputStrides = strides(input)
        let offset = (0..<input.count).reduce(0) { $0 &+ start[$1] &* inputStrides[$1] }
        let strides = (0..<input.count).map { step[$0] &* inputStrides[$0] }
        return (output, linearIndices(output: output, strides: strides, offset: offset, as: type))
    }
}
