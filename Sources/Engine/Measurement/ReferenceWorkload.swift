internal import CEngineKernels

/// A fixed piece of work timed beside a model to tell how fast the machine is running at that moment: a 1x1
/// convolution as the engine runs it (its packed GEMM, 64 filters over 64 channels of a 32x32 plane, 4.2 MFLOP)
/// followed by a per-channel affine pass with ReLU6 over its 256 KB output, the two shapes of work a mobile CNN's
/// kernels are made of.
///
/// On a shared machine a model's time moves by ±30% within seconds while its thread runs undisturbed: the
/// host's clock frequency and the caches and memory bandwidth other processes share change under it, and thread
/// CPU time counts all of that. The same reference timed just before each sample moves with them, so the ratio
/// of the two repeats where either alone does not (`MeasurementOptions.reference`).
final class ReferenceWorkload {
    static let (filters, channels, plane) = (64, 64, 32 * 32)
    private let packed: UnsafeMutablePointer<Float>
    private let input: UnsafeMutablePointer<Float>
    private let output: UnsafeMutablePointer<Float>
    private let scratch: UnsafeMutablePointer<Float>
    private let scale: UnsafeMutablePointer<Float>
    private let shift: UnsafeMutablePointer<Float>

    init() {
        let (m, k, n) = (Self.filters, Self.channels, Self.plane)
        let weights = OnnxEngine.benchmarkInput(count: m * k)
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: Int(nas_gemm_packed_count(Int32(m), Int32(k))))
        weights.withUnsafeBufferPointer { nas_gemm_pack($0.baseAddress!, Int(k), Int32(m), Int32(k), packed) }
        self.packed = packed
        input = .allocate(capacity: k * n)
        input.initialize(from: OnnxEngine.benchmarkInput(count: k * n), count: k * n)
        output = .allocate(capacity: m * n)
        output.initialize(repeating: 0, count: m * n)
        scratch = .allocate(capacity: Int(nas_gemm_scratch_count()))
        scale = .allocate(capacity: m)
        scale.initialize(repeating: 0.5, count: m)
        shift = .allocate(capacity: m)
        shift.initialize(repeating: 0.1, count: m)
    }

    deinit {
        for pointer in [packed, input, output, scratch, scale, shift] { pointer.deallocate() }
    }

    /// One run of the workload.
    func run() {
        let (m, k, n) = (Int32(Self.filters), Int32(Self.channels), Int32(Self.plane))
        nas_gemm(packed, m, k, n, input, nil, Int(n), nil, output, Int(n), nil, 0, 0, 0, scratch)
        nas_channel_affine(output, output, 1, m, Int(n), scale, shift, 2, 0, 6)
    }
}
