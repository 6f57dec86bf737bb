extension OnnxNode {
    package func int(_ name: String, default value: Int) -> Int {
        attribute(name)?.intValue.map { Int(clamping: $0) } ?? value
    }

    package func float(_ name: String, default value: Float) -> Float {
        attribute(name)?.floatValue ?? value
    }

    package func ints(_ name: String) -> [Int]? {
        attribute(name)?.intsValue?.map { Int(clamping: $0) }
    }

    package func string(_ name: String, default value: String) -> String {
        attribute(name)?.stringValue ?? value
    }

    /// The name of input `index`, or nil when it is absent or "" (an omitted optional input).
    package func input(_ index: Int) -> String? {
        index < inputs.count && !inputs[index].isEmpty ? inputs[index] : nil
    }
}

/// The resolved geometry of a sliding window (Conv, MaxPool, AveragePool) over the spatial axes.
package struct WindowGeometry: Hashable, Sendable {
    /// The largest kernel, stride, dilation, pad or spatial size accepted (2^24).
    package static let maximumSize = 1 << 24

    package var kernel: [Int]
    package var strides: [Int]
    package var dilations: [Int]
    package var padsBegin: [Int]
    package var padsEnd: [Int]
    package var input: [Int]
    package var output: [Int]

    /// Resolves `auto_pad`, `pads`, `strides`, `dilations` and `ceil_mode` of `node` for `input` spatial sizes.
    package init(node: OnnxNode, input: [Int], kernel: [Int], allowCeil: Bool) throws {
        let rank = input.count
        guard kernel.count == rank else {
            throw OnnxError.invalidNode(node.displayName, "kernel_shape \(kernel) does not match \(rank) spatial axes")
        }
        self.kernel = kernel
        self.input = input
        strides = node.ints("strides") ?? [Int](repeating: 1, count: rank)
        dilations = node.ints("dilations") ?? [Int](repeating: 1, count: rank)
        guard strides.count == rank, dilations.count == rank, strides.allSatisfy({ $0 > 0 }),
            dilations.allSatisfy({ $0 > 0 }), kernel.allSatisfy({ $0 > 0 })
        else {
            throw OnnxError.invalidNode(
                node.displayName,
                "strides \(strides), dilations \(dilations) and kernel \(kernel) must be positive, one per spatial axis"
            )
        }
        // Real windows are a few pixels; bounding every size keeps the arithmetic below far from Int's range, so a
        // crafted attribute (pads of 2^63 - 1) is an error instead of an overflow trap.
        let limit = WindowGeometry.maximumSize
        let sizes = kernel + strides + dilations + (node.ints("pads") ?? []) + input
        guard sizes.allSatisfy({ $0 <= limit }) else {
            throw OnnxError.invalidNode(
                node.displayName,
                "kernel_shape \(kernel), strides \(strides), dilations \(dilations), pads \(node.ints("pads") ?? []) and the input's spatial sizes \(input) must each be at most \(limit)"
            )
        }
        let autoPad = node.string("auto_pad", default: "NOTSET")
        let ceil = allowCeil && node.int("ceil_mode", default: 0) != 0
        padsBegin = [Int](repeating: 0, count: rank)
        padsEnd = [Int](repeating: 0, count: rank)
        output = [Int](repeating: 0, count: rank)
        for axis in 0..<rank {
            let extent = (kernel[axis] - 1) * dilations[axis] + 1
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                let out = (input[axis] + strides[axis] - 1) / strides[axis]
                let total = max(0, (out - 1) * strides[axis] + extent - input[axis])
                let small = total / 2
                padsBegin[axis] = autoPad == "SAME_UPPER" ? small : total - small
                padsEnd[axis] = total - padsBegin[axis]
            case "VALID":
                break
            case "NOTSET", "":
                if let pads = node.ints("pads") {
                    guard pads.count == 2 * rank, pads.allSatisfy({ $0 >= 0 }) else {
                        throw OnnxError.invalidNode(node.displayName, "pads \(pads) must be \(2 * rank) values >= 0")
                    }
                    padsBegin[axis] = pads[axis]
                    padsEnd[axis] = pads[axis + rank]
                }
            default:
                throw OnnxError.invalidNode(
                    node.displayName, "auto_pad '\(autoPad)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
            }
            let span = input[axis] + padsBegin[axis] + padsEnd[axis] - extent
            guard span >= 0 else {
                throw OnnxError.invalidNode(
                    node.displayName,
                    "the window (\(extent)) is larger than the padded input (\(input[axis] + padsBegin[axis] + padsEnd[axis])) on spatial axis \(axis)"
                )
            }
            var out = (ceil ? (span + strides[axis] - 1) / strides[axis] : span / strides[axis]) + 1
            // With ceil_mode the last window must start inside the input or the left padding.
            if ceil, (out - 1) * strides[axis] >= input[axis] + padsBegin[axis] { out -= 1 }
            output[axis] = out
        }
    }
}
