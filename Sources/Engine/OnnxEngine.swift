// Engine owns running and timing models on this CPU: `OnnxEngine` (the planner that turns ONNX's graph analysis
// into a fixed list of kernels over one preallocated arena, and the kernels: the SIMD C kernels of CEngineKernels,
// convolutions' packed GEMM among them, and OpenBLAS sgemm/sgemv for Gemm, MatMul and matrix-vector products) and
// the measurement harness (`MeasurementOptions`, `LatencyReport`, `measure`). It depends on ONNX for the model and
// its analysis, and on OpenBLAS; not on the trainer, and the fleet reaches it only through NativeRunner, so that
// neither links the other.
import ONNX

#if canImport(Glibc)
    import Glibc
#endif

/// The native inference engine: runs an ONNX model of the mobile-CNN op set on this CPU, one image at a time.
///
/// Everything is decided when the model loads: shapes are inferred with free dimensions bound to 1, shape
/// computations are folded, Relu/Clip/HardSigmoid/HardSwish (also spelt as `Clip(x + 3, 0, 6) / 6` chains) are
/// fused into the Conv, Gemm, MatMul or Add before them, reshapes become
/// aliases, and every intermediate value gets a fixed place in one preallocated arena. A run is then a fixed list
/// of kernels over raw buffers with no allocation. Not thread-safe: one run at a time per engine.
public final class OnnxEngine {
    /// A graph input or output with its static shape.
    public struct Tensor: Hashable, Sendable {
        /// The value's name in the graph.
        public var name: String
        /// Its shape, with free dimensions bound to 1.
        public var shape: [Int]
        /// The number of floats.
        public var count: Int { shape.reduce(1, *) }
    }

    /// The graph inputs fed at run time, in graph order.
    public let inputs: [Tensor]
    /// The graph outputs, in graph order.
    public let outputs: [Tensor]
    /// The peak working memory of one inference in bytes: the arena holding every intermediate value and
    /// scratch buffer (weights not included).
    public let peakMemoryBytes: Int
    /// The largest arena a model may ask for (1 GiB): far above any mobile CNN's working memory (a few MB for one
    /// image), and low enough that a hostile file's shapes cannot make a worker allocate and zero gigabytes.
    public static let maximumWorkingMemoryBytes = 1 << 30
    /// The number of kernels one run executes.
    public var kernelCount: Int { steps.count }

    private let arena: UnsafeMutablePointer<Float>
    private let constants: ConstantStore
    /// The kernels in run order; `profile` times them one by one.
    let steps: [() -> Void]
    /// The node each kernel computes, in run order: what `profile` names its timings by.
    let stepNodes: [KernelTiming.Node]
    let inputPointers: [UnsafeMutablePointer<Float>]
    private let outputPointers: [UnsafePointer<Float>]

    /// Plans `model` for execution; throws `OnnxError` naming the op and node of anything it cannot run.
    public init(model: OnnxModel) throws {
        EngineKernels.setSingleThreaded()
        let analysis = try GraphAnalysis(model: model)
        guard !analysis.outputs.isEmpty else {
            throw OnnxError.invalidModel("the graph has no outputs, so there is nothing to run")
        }
        for output in analysis.outputs where analysis.values[output]?.constant == nil {
            guard analysis.values[output]?.type.isFloatingPoint == true else {
                throw OnnxError.unsupportedDataType(
                    "graph output '\(output)'", analysis.values[output]?.type ?? .undefined)
            }
        }
        // Checked before planning: the planner builds index tables (transpose, gather, broadcast) as large as the
        // values, so a value that could never fit in the arena would cost seconds and gigabytes first.
        let limit = Self.maximumWorkingMemoryBytes / MemoryLayout<Float>.stride
        let runTimeValues = analysis.inputs.map { ($0.name, $0.shape) }
            + analysis.nodes.flatMap { zip($0.node.outputs, $0.outputShapes) }
        for (name, shape) in runTimeValues where ShapeMath.count(shape) > limit {
            throw OnnxError.invalidModel(
                "value '\(name)' has shape \(shape), more than the engine's working-memory limit of \(Self.maximumWorkingMemoryBytes) bytes (1 GiB); a CNN for one image needs a few MB, so its shapes are wrong or it is not a mobile model")
        }
        var planner = try Planner(analysis: analysis)
        try planner.plan()
        for output in analysis.outputs where planner.storageOf[output] == nil && analysis.constant(output) == nil {
            throw OnnxError.invalidModel("graph output '\(output)' is not computed by any node the engine runs")
        }
        let layout = planner.layout()
        guard layout.arenaCount <= Self.maximumWorkingMemoryBytes / MemoryLayout<Float>.stride else {
            throw OnnxError.invalidModel(
                "the model needs \(layout.arenaCount) floats of working memory, more than the engine's limit of \(Self.maximumWorkingMemoryBytes) bytes (1 GiB); a CNN for one image needs a few MB, so its shapes are wrong or it is not a mobile model")
        }
        let count = max(layout.arenaCount, 16)
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, count * MemoryLayout<Float>.stride) == 0, let raw else {
            throw OnnxError.invalidModel("cannot allocate \(count * 4) bytes of working memory")
        }
        let base = raw.bindMemory(to: Float.self, capacity: count)
        base.initialize(repeating: 0, count: count)
        arena = base
        let store = ConstantStore(analysis: analysis)
        constants = store
        let resolver = Resolver(arena: base, offsets: layout.offsets, storageOf: planner.storageOf, constants: store)
        var built: [() -> Void] = []
        for (index, step) in planner.steps.enumerated() {
            built.append(step.build(resolver, layout.scratchOffsets[index].map { base + $0 }))
        }
        steps = built
        stepNodes = planner.steps.map { step in
            let node = analysis.nodes[step.node].node
            return KernelTiming.Node(output: node.outputs.first ?? "", name: node.name, opType: node.opType)
        }
        inputs = analysis.inputs.map { Tensor(name: $0.name, shape: $0.shape) }
        outputs = analysis.outputs.map { Tensor(name: $0, shape: analysis.shape($0) ?? []) }
        inputPointers = inputs.map { resolver.pointer($0.name) }
        outputPointers = outputs.map { UnsafePointer(resolver.pointer($0.name)) }
        peakMemoryBytes = layout.arenaCount * MemoryLayout<Float>.stride
    }

    /// Decodes and plans the model in `bytes`.
    public convenience init(bytes: [UInt8]) throws {
        try self.init(model: try OnnxModel(bytes: bytes))
    }

    deinit {
        free(arena)
    }

    /// Runs the model on its first input (row-major floats in its shape) and returns its first output.
    public func run(_ input: [Float]) throws -> [Float] {
        try run(inputs: [input])[0]
    }

    /// Runs the model on one array per input, in graph order; returns one array per output.
    public func run(inputs values: [[Float]]) throws -> [[Float]] {
        guard values.count == inputs.count else {
            throw OnnxError.invalidInput(
                "the model takes \(inputs.count) inputs (\(inputs.map(\.name))); got \(values.count)")
        }
        for (value, input) in zip(values, inputs) where value.count != input.count {
            throw OnnxError.invalidInput(
                "input '\(input.name)' has shape \(input.shape) (\(input.count) floats); got \(value.count) floats")
        }
        for (index, value) in values.enumerated() {
            value.withUnsafeBufferPointer { inputPointers[index].update(from: $0.baseAddress!, count: value.count) }
        }
        execute()
        return zip(outputs, outputPointers).map { output, pointer in
            Array(UnsafeBufferPointer(start: pointer, count: output.count))
        }
    }

    /// Runs on the first input, writing the first output: the allocation-free form the measurement harness times.
    func run(input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>) {
        inputPointers[0].update(from: input.baseAddress!, count: min(input.count, inputs[0].count))
        execute()
        output.baseAddress!.update(from: outputPointers[0], count: min(output.count, outputs[0].count))
    }

    @inline(__always)
    private func execute() {
        for step in steps { step() }
    }
}

/// Owns the float copies of the constants the kernels read.
final class ConstantStore {
    private var pointers: [String: UnsafeMutablePointer<Float>] = [:]
    private let analysis: GraphAnalysis

    init(analysis: GraphAnalysis) {
        self.analysis = analysis
    }

    func pointer(_ name: String) -> UnsafeMutablePointer<Float>? {
        if let pointer = pointers[name] { return pointer }
        guard let tensor = analysis.constant(name) else { return nil }
        let floats = tensor.floats
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(floats.count, 1))
        floats.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: floats.count) }
        pointers[name] = pointer
        return pointer
    }

    /// A constant buffer the planner derives (folded BatchNormalization, broadcast index tables).
    func make(_ values: [Float]) -> UnsafeMutablePointer<Float> {
        let pointer = allocate(values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
        return pointer
    }

    /// A zeroed constant buffer of `count` floats the planner fills itself (packed weights).
    func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
        pointers["\u{0}derived\(pointers.count)"] = pointer
        return pointer
    }

    deinit {
        for pointer in pointers.values { pointer.deallocate() }
    }
}

/// Maps value names to their buffers once the arena exists.
struct Resolver {
    let arena: UnsafeMutablePointer<Float>
    let offsets: [Int]
    let storageOf: [String: Int]
    let constants: ConstantStore

    func pointer(_ name: String) -> UnsafeMutablePointer<Float> {
        if let storage = storageOf[name] { return arena + offsets[storage] }
        return constants.pointer(name)!
    }
}
