internal import CEngineKernels

/// How a broadcast element-wise op walks its two inputs: the output's dimensions, merged wherever both inputs are
/// contiguous (or both repeat) across neighbouring dimensions, with each input's stride per dimension (0 where it
/// broadcasts). `[N,C,H,W] x [1,C,1,1]` becomes `[N*C, H*W]` with strides `[H*W, 1]` and `[1, 0]`, so the C kernel's
/// inner loop is one long contiguous run against one repeated value, with no index table.
struct BroadcastLayout: Hashable, Sendable {
    var shape: [Int]
    var aStrides: [Int]
    var bStrides: [Int]

    /// The layout of `a op b` producing `output` (the broadcast of the two shapes).
    init(a: [Int], b: [Int], output: [Int]) {
        let rank = output.count
        func strides(_ input: [Int]) -> [Int] {
            // Right-aligned, as ONNX's multidirectional broadcasting; a size-1 dimension repeats (stride 0).
            let padded = [Int](repeating: 1, count: rank - input.count) + input
            var result = [Int](repeating: 0, count: rank)
            var step = 1
            for axis in (0..<rank).reversed() {
                result[axis] = padded[axis] == 1 && output[axis] != 1 ? 0 : step
                step *= padded[axis]
            }
            return result
        }
        let sa = strides(a)
        let sb = strides(b)
        var shape: [Int] = []
        var aStrides: [Int] = []
        var bStrides: [Int] = []
        for axis in 0..<rank where output[axis] != 1 {
            if let last = shape.last, aStrides.last! == sa[axis] * output[axis], bStrides.last! == sb[axis] * output[axis]
            {
                shape[shape.count - 1] = last * output[axis]
                aStrides[aStrides.count - 1] = sa[axis]
                bStrides[bStrides.count - 1] = sb[axis]
            } else {
                shape.append(output[axis])
                aStrides.append(sa[axis])
                bStrides.append(sb[axis])
            }
        }
        if shape.isEmpty {
            (shape, aStrides, bStrides) = ([1], [0], [0])
        }
        self.shape = shape
        self.aStrides = aStrides
        self.bStrides = bStrides
    }

    /// True when the merged walk fits the C kernel (`NAS_BINARY_MAX_RANK` dimensions).
    var fitsKernel: Bool { shape.count <= Int(NAS_BINARY_MAX_RANK) }
}
