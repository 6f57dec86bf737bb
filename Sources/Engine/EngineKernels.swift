internal import COpenBLAS
internal import CEngineKernels
import ONNX

#if canImport(Glibc)
    import Glibc
#endif

/// The activation fused into the op that produces a value (Conv, Gemm, MatMul, element-wise ops, BatchNormalization
/// followed by Relu, Clip, HardSigmoid or HardSwish), or run on its own.
enum Activation: Hashable, Sendable {
    case none
    case relu
    case clip(Float, Float)
    /// clamp(alpha * x + beta, 0, 1).
    case hardSigmoid(alpha: Float, beta: Float)
    /// x * clamp(x / 6 + 1 / 2, 0, 1).
    case hardSwish

    /// The activation as the C kernels take it: 0 none, 1 relu, 2 clip to [low, high], 3 hard sigmoid with
    /// (alpha, beta) as (low, high), 4 hard swish.
    var kernelCode: (kind: Int32, low: Float, high: Float) {
        switch self {
        case .none: (0, 0, 0)
        case .relu: (1, 0, 0)
        case .clip(let low, let high): (2, low, high)
        case .hardSigmoid(let alpha, let beta): (3, alpha, beta)
        case .hardSwish: (4, 0, 0)
        }
    }

    /// Applies the activation in place, in C at the CPU's vector width.
    @inline(__always)
    func apply(_ pointer: UnsafeMutablePointer<Float>, _ count: Int) {
        if self == .none || count == 0 { return }
        let (kind, low, high) = kernelCode
        nas_channel_affine(pointer, pointer, 1, 1, count, nil, nil, kind, low, high)
    }
}

/// Numeric kernels of the native engine over raw float buffers; shapes are resolved by the planner.
enum EngineKernels {
    /// Row-major C = alpha * op(A) * op(B) + beta * C, through OpenBLAS.
    @inline(__always)
    static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if k == 0 {
            for row in 0..<m {
                for column in 0..<n { c[row * ldc + column] = beta == 0 ? 0 : beta * c[row * ldc + column] }
            }
            return
        }
        if m == 1 && !transA && transB {
            // One row of A is a matrix-vector product; sgemv skips sgemm's packing of B.
            nas_sgemv(0, Int32(n), Int32(k), alpha, b, Int32(ldb), a, beta, c)
            return
        }
        if n == 1 && !transB && ldb == 1 && ldc == 1 {
            // One column of B (a 1x1 convolution of a 1x1 plane: squeeze-and-excite's) is one too.
            nas_sgemv(transA ? 1 : 0, transA ? Int32(k) : Int32(m), transA ? Int32(m) : Int32(k), alpha, a, Int32(lda), b, beta, c)
            return
        }
        nas_sgemm(
            transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c,
            Int32(ldc))
    }

    static func setSingleThreaded() {
        openblas_set_num_threads(1)
    }

    /// 2-D convolution parameters, resolved for one input shape.
    struct ConvParameters {
        var batch: Int
        var channels: Int
        var height: Int
        var width: Int
        var filters: Int
        var groups: Int
        var kernelH: Int
        var kernelW: Int
        var strideH: Int
        var strideW: Int
        var dilationH: Int
        var dilationW: Int
        var padTop: Int
        var padLeft: Int
        var padBottom: Int
        var padRight: Int
        var outH: Int
        var outW: Int

        var channelsPerGroup: Int { channels / groups }
        var filtersPerGroup: Int { filters / groups }
        var paddedH: Int { height + padTop + padBottom }
        var paddedW: Int { width + padLeft + padRight }
        /// Rows of the im2col matrix of one group.
        var patch: Int { channelsPerGroup * kernelH * kernelW }
        var isPointwise: Bool {
            kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padTop == 0 && padLeft == 0
                && padBottom == 0 && padRight == 0
        }
        var isPadded: Bool { padTop > 0 || padLeft > 0 || padBottom > 0 || padRight > 0 }
        var slack: Int { (kernelW - 1) * dilationW + 1 }
        /// A pointwise convolution of a 1x1 plane (squeeze-and-excite's) is a matrix-vector product: sgemv on the
        /// weights as they are. Every other convolution that is not depthwise runs as a packed GEMM
        /// (`GemmConvolution`).
        var isMatrixVector: Bool { isPointwise && outH * outW == 1 }
        var runsAsGemm: Bool { !isDepthwise && !isMatrixVector }

        /// One input channel per group (depthwise): direct loops beat an sgemm with one row per channel.
        var isDepthwise: Bool { channelsPerGroup == 1 && groups > 1 }
        /// The window geometry the C kernels take.
        var window: nas_window {
            nas_window(
                kernel_h: Int32(kernelH), kernel_w: Int32(kernelW), stride_h: Int32(strideH), stride_w: Int32(strideW),
                dilation_h: Int32(dilationH), dilation_w: Int32(dilationW), out_h: Int32(outH), out_w: Int32(outW))
        }
        /// Rows and columns of the padded plane a window kernel reads: the explicit pads, and for a pool in ceil
        /// mode the windows that run past them.
        var planeH: Int { max(paddedH, (outH - 1) * strideH + (kernelH - 1) * dilationH + 1) }
        var planeW: Int { max(paddedW, (outW - 1) * strideW + (kernelW - 1) * dilationW + 1) }
        /// Rows too narrow to fill half of 16 lanes (8 outputs or fewer: the 4x4 and 7x7 planes of small models)
        /// run vectorised across channels instead under a 5x5 or larger window, and under any window at stride 1;
        /// one filter per channel. (Measured in the engine: 240 channels of 7x7, 3x3, stride 1: 23.5 -> 20.5 us;
        /// 96 channels of 14x14 to 7x7, 3x3, stride 2: 13.3 -> 16.5 us, so strided 3x3 ones stay on rows.)
        var usesChannelVectors: Bool {
            isDepthwise && filtersPerGroup == 1 && outW <= 8 && (kernelH * kernelW >= 25 || strideW == 1)
        }
        /// One padded plane, plus the slack the last 16-output block of a row reads.
        var windowScratch: Int { planeH * planeW + 16 * max(strideW, 1) + slack }

        /// Floats of scratch memory one depthwise or matrix-vector run needs (`GemmConvolution` has its own).
        var scratchCount: Int {
            if usesChannelVectors { return (planeH * planeW + kernelH * kernelW) * 16 }
            if isDepthwise { return windowScratch }
            return 0
        }
    }

    /// A convolution as one GEMM per group, C (filters x output positions) = packed weights x im2col(input),
    /// with the bias and the activation applied as C is stored. The im2col matrix is never built: `rows` holds
    /// the offset of each (channel, ky, kx) in the input (zero-padded into scratch first when the convolution
    /// pads) and `columns` that of each output position's window, and the C kernel packs B's panels straight
    /// from them (nas_gemm). Weights are packed once when the model loads; a weight computed at run time is
    /// packed into scratch on every run.
    struct GemmConvolution {
        let p: ConvParameters
        /// Row offsets of one group's im2col matrix; nil for a 1x1 kernel (row k is input channel k).
        let rows: [Int]?
        /// Column offsets; nil when output position j reads input position j (stride 1 without padding).
        let columns: [Int]?
        /// Row stride and plane size of the input the offsets index: the padded plane, or the input's own.
        let planeW: Int
        let plane: Int
        /// Floats of one group's packed weights.
        let packedPerGroup: Int

        init(_ p: ConvParameters) {
            self.p = p
            planeW = p.isPadded ? p.paddedW : p.width
            plane = (p.isPadded ? p.paddedH : p.height) * planeW
            if p.kernelH == 1 && p.kernelW == 1 {
                rows = nil
            } else {
                var offsets: [Int] = []
                offsets.reserveCapacity(p.patch)
                for channel in 0..<p.channelsPerGroup {
                    for ky in 0..<p.kernelH {
                        for kx in 0..<p.kernelW {
                            offsets.append(channel * plane + ky * p.dilationH * planeW + kx * p.dilationW)
                        }
                    }
                }
                rows = offsets
            }
            var offsets: [Int] = []
            offsets.reserveCapacity(p.outH * p.outW)
            for oy in 0..<p.outH {
                for ox in 0..<p.outW { offsets.append(oy * p.strideH * planeW + ox * p.strideW) }
            }
            columns = offsets.indices.elementsEqual(offsets) ? nil : offsets
            packedPerGroup = nas_gemm_packed_count(Int32(p.filtersPerGroup), Int32(p.patch))
        }

        /// Entries of the offset tables, which the planner counts against the working-memory limit.
        var tableCount: Int { (rows?.count ?? 0) + (columns?.count ?? 0) }
        var packedCount: Int { packedPerGroup * p.groups }
        private var paddedCount: Int { p.isPadded ? p.channels * plane : 0 }
        /// Floats of scratch one run needs: the padded input and the kernel's B panels.
        var scratchCount: Int { paddedCount + nas_gemm_scratch_count() }

        /// Packs ONNX's weights (filters x channelsPerGroup x kernelH x kernelW) into `packedCount` floats.
        func pack(_ weight: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>) {
            for group in 0..<p.groups {
                nas_gemm_pack(
                    weight + group * p.filtersPerGroup * p.patch, p.patch, Int32(p.filtersPerGroup), Int32(p.patch),
                    packed + group * packedPerGroup)
            }
        }

        func run(
            input: UnsafePointer<Float>, packed: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
            output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, activation: Activation
        ) {
            let (kind, low, high) = activation.kernelCode
            let inputPlane = p.height * p.width
            let outputPlane = p.outH * p.outW
            let padded = scratch
            let work = scratch + paddedCount
            Self.withOptional(rows) { rows in
                Self.withOptional(columns) { columns in
                    for image in 0..<p.batch {
                        var x = input + image * p.channels * inputPlane
                        if p.isPadded {
                            padded.update(repeating: 0, count: paddedCount)
                            for channel in 0..<p.channels {
                                for row in 0..<p.height {
                                    (padded + channel * plane + (row + p.padTop) * planeW + p.padLeft).update(
                                        from: x + (channel * p.height + row) * p.width, count: p.width)
                                }
                            }
                            x = UnsafePointer(padded)
                        }
                        let y = output + image * p.filters * outputPlane
                        for group in 0..<p.groups {
                            nas_gemm(
                                packed + group * packedPerGroup, Int32(p.filtersPerGroup), Int32(p.patch),
                                Int32(outputPlane), x + group * p.channelsPerGroup * plane, rows, plane, columns,
                                y + group * p.filtersPerGroup * outputPlane, outputPlane,
                                bias.map { $0 + group * p.filtersPerGroup }, kind, low, high, work)
                        }
                    }
                }
            }
        }

        private static func withOptional(_ values: [Int]?, _ body: (UnsafePointer<Int>?) -> Void) {
            guard let values else { return body(nil) }
            values.withUnsafeBufferPointer { body($0.baseAddress) }
        }
    }

    static func conv(
        _ p: ConvParameters, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, activation: Activation
    ) {
        let inputPlane = p.height * p.width
        let outputPlane = p.outH * p.outW
        for image in 0..<p.batch {
            let x = input + image * p.channels * inputPlane
            let y = output + image * p.filters * outputPlane
            if p.isDepthwise {
                depthwise(p, x: x, weight: weight, bias: bias, y: y, scratch: scratch, activation: activation)
            } else {
                // A matrix-vector product per group (`isMatrixVector`); the planner sends every other
                // convolution to `GemmConvolution`.
                for group in 0..<p.groups {
                    sgemm(
                        transA: false, transB: false, m: p.filtersPerGroup, n: outputPlane, k: p.channelsPerGroup,
                        alpha: 1, a: weight + group * p.filtersPerGroup * p.patch, lda: p.patch,
                        b: x + group * p.channelsPerGroup * inputPlane, ldb: inputPlane, beta: 0,
                        c: y + group * p.filtersPerGroup * outputPlane, ldc: outputPlane)
                }
                finish(y, filters: p.filters, plane: outputPlane, bias: bias, activation: activation)
            }
        }
    }

    /// Bias and activation in one pass over each output plane, in C at the CPU's vector width.
    static func finish(
        _ y: UnsafeMutablePointer<Float>, filters: Int, plane: Int, bias: UnsafePointer<Float>?, activation: Activation
    ) {
        if bias == nil && activation == .none { return }
        let (kind, low, high) = activation.kernelCode
        nas_bias_activation(y, Int32(filters), Int32(plane), bias, kind, low, high)
    }

    /// Depthwise convolution: each channel's input is copied into a zero-padded plane, then a C kernel (AVX-512,
    /// AVX2 or SSE, picked at run time: Swift here is built for baseline x86-64) accumulates every tap of 16
    /// outputs of a row in one vector (5x5 and 7x7 windows: four rows at a time), with the bias and the activation
    /// fused; narrow planes under large windows or at stride 1 go 16 channels per vector instead
    /// (`usesChannelVectors`).
    private static func depthwise(
        _ p: ConvParameters, x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, activation: Activation
    ) {
        var window = p.window
        let (kind, low, high) = activation.kernelCode
        if p.usesChannelVectors {
            nas_depthwise_channels(
                x, Int32(p.channels), Int32(p.height), Int32(p.width), Int32(p.padTop), Int32(p.padLeft), &window,
                weight, bias, kind, low, high, y, scratch, Int32(p.planeH), Int32(p.planeW))
            return
        }
        let outputPlane = p.outH * p.outW
        let taps = p.kernelH * p.kernelW
        let plane = scratch
        plane.update(repeating: 0, count: p.windowScratch)
        for filter in 0..<p.filters {
            // Filters of one group share its channel: copy it once.
            if filter % p.filtersPerGroup == 0 {
                copy(p, x + (filter / p.filtersPerGroup) * p.height * p.width, into: plane)
            }
            nas_window2d(
                plane, Int32(p.planeW), &window, 0, weight + filter * taps, bias?[filter] ?? 0, nil, kind, low, high,
                y + filter * outputPlane)
        }
    }

    /// Copies one input plane into the inside of a padded plane, whose borders stay as they were filled.
    @inline(__always)
    private static func copy(_ p: ConvParameters, _ source: UnsafePointer<Float>, into plane: UnsafeMutablePointer<Float>) {
        for row in 0..<p.height {
            (plane + (row + p.padTop) * p.planeW + p.padLeft).update(from: source + row * p.width, count: p.width)
        }
    }

    /// MaxPool / AveragePool over NCHW: each plane is copied into one padded with -infinity (max) or zeros
    /// (average), then the C window kernel takes the max or the sum times `scale` (`averageScales`).
    static func pool(
        _ p: ConvParameters, isMax: Bool, scale: UnsafePointer<Float>?, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    ) {
        scratch.update(repeating: isMax ? -.infinity : 0, count: p.windowScratch)
        var window = p.window
        for plane in 0..<(p.batch * p.channels) {
            copy(p, input + plane * p.height * p.width, into: scratch)
            nas_window2d(
                scratch, Int32(p.planeW), &window, isMax ? 1 : 2, nil, 0, scale, 0, 0, 0, output + plane * p.outH * p.outW)
        }
    }

    /// 1 / the number of inputs each average-pool window counts: those inside the input, and with
    /// `countIncludePad` the explicit pads it covers too (never the positions past them that ceil_mode adds); 16
    /// floats of slack after the last row, which the kernel's last vector reads.
    static func averageScales(_ p: ConvParameters, countIncludePad: Bool) -> [Float] {
        var scales = [Float](repeating: 0, count: p.outH * p.outW + 16)
        for oy in 0..<p.outH {
            for ox in 0..<p.outW {
                var count = 0
                var padded = 0
                for ky in 0..<p.kernelH {
                    let iy = oy * p.strideH - p.padTop + ky * p.dilationH
                    for kx in 0..<p.kernelW {
                        let ix = ox * p.strideW - p.padLeft + kx * p.dilationW
                        if iy >= 0 && iy < p.height && ix >= 0 && ix < p.width {
                            count += 1
                        } else if iy < p.height + p.padBottom && ix < p.width + p.padRight {
                            padded += 1
                        }
                    }
                }
                let divisor = countIncludePad ? count + padded : count
                scales[oy * p.outW + ox] = divisor > 0 ? 1 / Float(divisor) : 0
            }
        }
        return scales
    }

    static func softmax(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, outer: Int, length: Int, inner: Int
    ) {
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * length * inner + i
                var largest = -Float.infinity
                for j in 0..<length { largest = max(largest, x[base + j * inner]) }
                var sum: Float = 0
                for j in 0..<length {
                    let value = expf(x[base + j * inner] - largest)
                    y[base + j * inner] = value
                    sum += value
                }
                let scale = 1 / sum
                for j in 0..<length { y[base + j * inner] *= scale }
            }
        }
    }

    static func sigmoid(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { y[i] = 1 / (1 + expf(-x[i])) }
    }
}
