internal import CEngineKernels
import ONNX

/// One kernel of a run: the runtime values it reads and writes, its scratch need, and how to build it once the
/// arena's addresses are known.
struct PlannedStep {
    /// The index in `GraphAnalysis.nodes` of the node the kernel computes (activations fused into it excluded).
    var node: Int
    var reads: [String]
    var writes: [String]
    var scratch: Int
    var build: (Resolver, UnsafeMutablePointer<Float>?) -> () -> Void
}

/// Turns a `GraphAnalysis` into kernels and an arena layout.
struct Planner {
    let analysis: GraphAnalysis
    private(set) var storageOf: [String: Int] = [:]
    private var storageCounts: [Int] = []
    private(set) var steps: [PlannedStep] = []
    private var consumers: [String: [Int]] = [:]
    private var skipped: Set<Int> = []
    /// Entries of the index tables built so far (broadcasts, transposes, gathers, slices): memory the engine holds
    /// beside its arena, so they share its limit.
    private var tableEntries = 0
    /// The node being planned: the one each step added now computes.
    private var current = 0

    init(analysis: GraphAnalysis) throws {
        self.analysis = analysis
        for input in analysis.inputs {
            guard analysis.values[input.name]?.type.isFloatingPoint == true else {
                throw OnnxError.unsupportedDataType(
                    "graph input '\(input.name)'", analysis.values[input.name]?.type ?? .undefined)
            }
            define(input.name, count: ShapeMath.count(input.shape))
        }
        for (index, analyzed) in analysis.nodes.enumerated() {
            for name in analyzed.node.inputs where !name.isEmpty { consumers[name, default: []].append(index) }
        }
    }

    /// Counts an index table of `count` entries against the working-memory limit before it is built: a crafted
    /// model could otherwise make the planner build gigabytes of tables before the arena's size is known.
    private mutating func reserveTable(_ count: Int, for node: String) throws {
        tableEntries += count
        let limit = OnnxEngine.maximumWorkingMemoryBytes / MemoryLayout<Int32>.stride
        guard tableEntries <= limit else {
            throw OnnxError.invalidModel(
                "\(node) needs index tables of \(tableEntries) entries in all, more than the engine's limit of "
                    + "\(OnnxEngine.maximumWorkingMemoryBytes) bytes (1 GiB); a CNN for one image needs a few MB, "
                    + "so its shapes are wrong or it is not a mobile model")
        }
    }

    private mutating func define(_ name: String, count: Int) {
        storageOf[name] = storageCounts.count
        storageCounts.append(count)
    }

    private func isRuntime(_ name: String) -> Bool { storageOf[name] != nil }

    /// The activation of the node that is the only consumer of `output`, when it can be fused into its producer,
    /// or the decomposed hard sigmoid or hard swish that reads it (`GraphAnalysis.decomposedHardActivation`).
    /// Returns the activation and the nodes it replaces, the last of which writes the fused value.
    private func fusableActivation(after output: String) -> (Activation, [Int])? {
        guard !analysis.outputs.contains(output), let users = consumers[output] else { return nil }
        if users.count == 1, let activation = try? activation(of: analysis.nodes[users[0]].node) {
            return (activation, users)
        }
        switch analysis.decomposedHardActivation(after: output, consumers: consumers) {
        case (.hardSigmoid, let nodes)?: return (.hardSigmoid(alpha: 1.0 / 6, beta: 0.5), nodes)
        case (.hardSwish, let nodes)?: return (.hardSwish, nodes)
        case nil: return nil
        }
    }

    /// The activation a Relu, Clip, HardSigmoid or HardSwish node computes; nil for any other node.
    private func activation(of node: OnnxNode) throws -> Activation? {
        switch node.opType {
        case "Relu":
            return .relu
        case "Clip":
            let (low, high) = try clipBounds(node)
            return .clip(low, high)
        case "HardSigmoid":
            return .hardSigmoid(alpha: node.float("alpha", default: 0.2), beta: node.float("beta", default: 0.5))
        case "HardSwish":
            return .hardSwish
        default:
            return nil
        }
    }

    private func clipBounds(_ node: OnnxNode) throws -> (Float, Float) {
        if analysis.opset < 11 {
            return (
                node.float("min", default: -.greatestFiniteMagnitude),
                node.float("max", default: .greatestFiniteMagnitude)
            )
        }
        func bound(_ index: Int, _ fallback: Float) throws -> Float {
            guard let name = node.input(index) else { return fallback }
            guard let value = analysis.constant(name)?.floats.first else {
                throw OnnxError.shapeInference(node.displayName, "its min/max is computed at run time")
            }
            return value
        }
        return (try bound(1, -.greatestFiniteMagnitude), try bound(2, .greatestFiniteMagnitude))
    }

    mutating func plan() throws {
        for (index, analyzed) in analysis.nodes.enumerated() where !skipped.contains(index) {
            current = index
            try plan(analyzed)
        }
    }

    private mutating func add(
        _ reads: [String], _ output: String, count: Int, scratch: Int = 0,
        _ build: @escaping (Resolver, UnsafeMutablePointer<Float>?) -> () -> Void
    ) {
        define(output, count: count)
        steps.append(
            PlannedStep(node: current, reads: reads.filter { isRuntime($0) }, writes: [output], scratch: scratch, build: build))
    }

    /// Fuses a following Relu/Clip when possible; returns the activation and the name the kernel writes.
    private mutating func fuse(_ output: String) -> (Activation, String) {
        guard let (activation, replaced) = fusableActivation(after: output) else { return (.none, output) }
        skipped.formUnion(replaced)
        return (activation, analysis.nodes[replaced[replaced.count - 1]].node.outputs[0])
    }

    private mutating func plan(_ analyzed: GraphAnalysis.Node) throws {
        let node = analyzed.node
        let name = node.displayName
        guard let output = node.outputs.first, !output.isEmpty else { return }
        let outShape = analyzed.outputShapes[0]
        let outCount = ShapeMath.count(outShape)
        func inputName(_ index: Int) throws -> String {
            guard let input = node.input(index) else { throw OnnxError.invalidNode(name, "input \(index) is missing") }
            if analysis.values[input]?.type.isFloatingPoint != true {
                throw OnnxError.unsupportedDataType(
                    "input '\(input)' of \(name)", analysis.values[input]?.type ?? .undefined)
            }
            if !isRuntime(input) && analysis.constant(input) == nil {
                throw OnnxError.unsupportedDataType(
                    "input '\(input)' of \(name)", analysis.values[input]?.type ?? .undefined)
            }
            return input
        }
        func shape(_ index: Int) -> [Int] { analyzed.inputShapes[index] ?? [] }

        switch node.opType {
        case "Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast":
            let input = try inputName(0)
            if let storage = storageOf[input] {
                storageOf[output] = storage
            } else {
                add([input], output, count: outCount) { resolver, _ in
                    let x = resolver.pointer(input)
                    let y = resolver.pointer(output)
                    return { y.update(from: x, count: outCount) }
                }
            }
        case "Relu", "Clip", "HardSigmoid", "HardSwish":
            let input = try inputName(0)
            let (kind, low, high) = (try activation(of: node) ?? .none).kernelCode
            add([input], output, count: outCount) { resolver, _ in
                let x = resolver.pointer(input)
                let y = resolver.pointer(output)
                return { nas_channel_affine(x, y, 1, 1, outCount, nil, nil, kind, low, high) }
            }
        case "Sigmoid":
            let input = try inputName(0)
            add([input], output, count: outCount) { resolver, _ in
                let x = resolver.pointer(input)
                let y = resolver.pointer(output)
                return { EngineKernels.sigmoid(x, y, outCount) }
            }
        case "Add", "Sub", "Mul", "Div":
            let a = try inputName(0)
            let b = try inputName(1)
            let (activation, target) = fuse(output)
            let op: Int32 = ["Add": 0, "Sub": 1, "Mul": 2, "Div": 3][node.opType]!
            let layout = BroadcastLayout(a: shape(0), b: shape(1), output: outShape)
            guard layout.fitsKernel else {
                throw OnnxError.invalidNode(
                    name,
                    "its broadcast of \(shape(0)) and \(shape(1)) alternates between broadcast and full dimensions more than \(NAS_BINARY_MAX_RANK) times; the native engine runs mobile CNNs' broadcasts (per channel, per element, scalar)"
                )
            }
            let (kind, low, high) = activation.kernelCode
            add([a, b], target, count: outCount) { resolver, _ in
                let x = resolver.pointer(a)
                let z = resolver.pointer(b)
                let y = resolver.pointer(target)
                let shape = layout.shape
                let aStrides = layout.aStrides
                let bStrides = layout.bStrides
                let rank = Int32(shape.count)
                if outCount == 0 { return {} }
                return {
                    shape.withUnsafeBufferPointer { shape in
                        aStrides.withUnsafeBufferPointer { aStrides in
                            bStrides.withUnsafeBufferPointer { bStrides in
                                nas_binary(
                                    op, x, aStrides.baseAddress, z, bStrides.baseAddress, y, shape.baseAddress, rank,
                                    kind, low, high)
                            }
                        }
                    }
                }
            }
            if target != output { storageOf[output] = storageOf[target] }
        case "Conv":
            let x = try inputName(0)
            let w = try inputName(1)
            let bias = node.input(2) != nil ? try inputName(2) : nil
            let xs = shape(0)
            let ws = shape(1)
            guard xs.count == 4 || xs.count == 3 else {
                throw OnnxError.invalidNode(
                    name, "only 1-D and 2-D convolutions run natively; the input has shape \(xs)")
            }
            let kernel = Array(ws[2...])
            let window = try WindowGeometry(node: node, input: Array(xs[2...]), kernel: kernel, allowCeil: false)
            let p = Self.parameters(
                window: window, batch: xs[0], channels: xs[1], filters: ws[0], groups: node.int("group", default: 1))
            let (activation, target) = fuse(output)
            if p.runsAsGemm {
                let gemm = EngineKernels.GemmConvolution(p)
                try reserveTable(gemm.tableCount, for: name)
                let constantWeights = analysis.constant(w) != nil
                let scratch = gemm.scratchCount + (constantWeights ? 0 : gemm.packedCount)
                add([x, w] + (bias.map { [$0] } ?? []), target, count: outCount, scratch: scratch) {
                    resolver, scratch in
                    let input = resolver.pointer(x)
                    let weight = resolver.pointer(w)
                    let biasPointer = bias.map { UnsafePointer(resolver.pointer($0)) }
                    let y = resolver.pointer(target)
                    let work = scratch!
                    let packed = constantWeights ? resolver.constants.allocate(gemm.packedCount) : work + gemm.scratchCount
                    if constantWeights { gemm.pack(weight, into: packed) }
                    return {
                        if !constantWeights { gemm.pack(weight, into: packed) }
                        gemm.run(
                            input: input, packed: packed, bias: biasPointer, output: y, scratch: work,
                            activation: activation)
                    }
                }
                if target != output { storageOf[output] = storageOf[target] }
                return
            }
            add([x, w] + (bias.map { [$0] } ?? []), target, count: outCount, scratch: p.scratchCount) {
                resolver, scratch in
                let input = resolver.pointer(x)
                let weight = resolver.pointer(w)
                let biasPointer = bias.map { UnsafePointer(resolver.pointer($0)) }
                let y = resolver.pointer(target)
                let work = scratch ?? y
                return {
                    EngineKernels.conv(
                        p, input: input, weight: weight, bias: biasPointer, output: y, scratch: work,
                        activation: activation)
                }
            }
            if target != output { storageOf[output] = storageOf[target] }
        case "MaxPool", "AveragePool":
            let x = try inputName(0)
            let xs = shape(0)
            guard xs.count == 4 || xs.count == 3, let kernel = node.ints("kernel_shape") else {
                throw OnnxError.invalidNode(name, "only 1-D and 2-D pools run natively; the input has shape \(xs)")
            }
            let window = try WindowGeometry(node: node, input: Array(xs[2...]), kernel: kernel, allowCeil: true)
            let p = Self.parameters(window: window, batch: xs[0], channels: xs[1], filters: xs[1], groups: xs[1])
            let isMax = node.opType == "MaxPool"
            let includePad = node.int("count_include_pad", default: 0) != 0
            let scales = isMax ? nil : EngineKernels.averageScales(p, countIncludePad: includePad)
            add([x], output, count: outCount, scratch: p.windowScratch) { resolver, scratch in
                let input = resolver.pointer(x)
                let y = resolver.pointer(output)
                let scale = scales.map { UnsafePointer(resolver.constants.make($0)) }
                let work = scratch ?? y
                return { EngineKernels.pool(p, isMax: isMax, scale: scale, input: input, output: y, scratch: work) }
            }
        case "GlobalAveragePool":
            let x = try inputName(0)
            let xs = shape(0)
            let planes = xs[0] * xs[1]
            let plane = ShapeMath.count(Array(xs[2...]))
            add([x], output, count: outCount) { resolver, _ in
                let input = resolver.pointer(x)
                let y = resolver.pointer(output)
                return { nas_plane_mean(input, y, planes, plane) }
            }
        case "ReduceMean":
            let x = try inputName(0)
            let xs = shape(0)
            let listed: [Int]
            if analysis.opset >= 18 {
                listed = node.input(1).flatMap { analysis.constant($0)?.ints.map { Int($0) } } ?? []
            } else {
                listed = node.ints("axes") ?? []
            }
            let axes = Set(listed.isEmpty ? Array(0..<xs.count) : listed.map { $0 < 0 ? $0 + xs.count : $0 })
            // Means over trailing axes (the spatial ones of NCHW, or all) are plane means; axes of size 1 do not
            // matter.
            let reduced = axes.filter { xs[$0] != 1 }
            let first = reduced.min() ?? xs.count
            guard (first..<xs.count).allSatisfy({ reduced.contains($0) || xs[$0] == 1 }) else {
                throw OnnxError.invalidNode(
                    name,
                    "ReduceMean over axes \(listed.sorted()) of shape \(xs) runs natively only over trailing axes (as the spatial mean of NCHW); transpose first or export GlobalAveragePool"
                )
            }
            let plane = ShapeMath.count(Array(xs[first...]))
            let planes = ShapeMath.count(Array(xs[..<first]))
            add([x], output, count: outCount) { resolver, _ in
                let input = resolver.pointer(x)
                let y = resolver.pointer(output)
                return { nas_plane_mean(input, y, planes, plane) }
            }
        case "BatchNormalization":
            let x = try inputName(0)
            let xs = shape(0)
            let epsilon = node.float("epsilon", default: 1e-5)
            let scale = analysis.constant(node.inputs[1])!.floats
            let shift = analysis.constant(node.inputs[2])!.floats
            let mean = analysis.constant(node.inputs[3])!.floats
            let variance = analysis.constant(node.inputs[4])!.floats
            let factors = (0..<xs[1]).map { scale[$0] / (variance[$0] + epsilon).squareRoot() }
            let offsets = (0..<xs[1]).map { shift[$0] - mean[$0] * factors[$0] }
            let channels = Int32(xs[1])
            let outer = xs[0]
            let plane = ShapeMath.count(Array(xs[2...]))
            let (activation, target) = fuse(output)
            let (kind, low, high) = activation.kernelCode
            add([x], target, count: outCount) { resolver, _ in
                let input = resolver.pointer(x)
                let y = resolver.pointer(target)
                let a = resolver.constants.make(factors)
                let b = resolver.constants.make(offsets)
                return { nas_channel_affine(input, y, outer, channels, plane, a, b, kind, low, high) }
            }
            if target != output { storageOf[output] = storageOf[target] }
        case "Gemm":
            let a = try inputName(0)
            let b = try inputName(1)
            let c = node.input(2) != nil ? try inputName(2) : nil
            let transA = node.int("transA", default: 0) != 0
            let transB = node.int("transB", default: 0) != 0
            let alpha = node.float("alpha", default: 1)
            let beta = node.float("beta", default: 1)
            let (m, n) = (outShape[0], outShape[1])
            let k = transA ? shape(0)[0] : shape(0)[1]
            let lda = shape(0)[1]
            let ldb = shape(1)[1]
            if c != nil { try reserveTable(outCount, for: name) }
            let cIndex = c.map { _ in ShapeMath.broadcastIndices(input: shape(2), output: outShape, as: Int32.self) }
            let (activation, target) = fuse(output)
            // For one row, a constant B is stored transposed so that sgemv reads long contiguous rows.
            let constantB = analysis.constant(b)
            let pretranspose = m == 1 && !transA && !transB && constantB != nil
            add([a, b] + (c.map { [$0] } ?? []), target, count: outCount) { resolver, _ in
                let x = resolver.pointer(a)
                let w: UnsafeMutablePointer<Float>
                if pretranspose {
                    let values = constantB!.floats
                    w = resolver.constants.make((0..<(n * k)).map { values[($0 % k) * n + $0 / k] })
                } else {
                    w = resolver.pointer(b)
                }
                let transB = pretranspose ? true : transB
                let ldb = pretranspose ? k : ldb
                let bias = c.map { resolver.pointer($0) }
                let y = resolver.pointer(target)
                return {
                    if let bias, let cIndex {
                        cIndex.withUnsafeBufferPointer { table in
                            for i in 0..<(m * n) { y[i] = beta * bias[Int(table[i])] }
                        }
                    }
                    EngineKernels.sgemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: x, lda: lda, b: w, ldb: ldb,
                        beta: bias == nil ? 0 : 1, c: y, ldc: n)
                    activation.apply(y, m * n)
                }
            }
            if target != output { storageOf[output] = storageOf[target] }
        case "MatMul":
            let a = try inputName(0)
            let b = try inputName(1)
            let left = shape(0).count == 1 ? [1] + shape(0) : shape(0)
            let right = shape(1).count == 1 ? shape(1) + [1] : shape(1)
            let m = left[left.count - 2]
            let k = left[left.count - 1]
            let n = right[right.count - 1]
            let leftBatch = Array(left.dropLast(2))
            let rightBatch = Array(right.dropLast(2))
            let batch = ShapeMath.broadcast(leftBatch, rightBatch) ?? []
            let (activation, target) = fuse(output)
            // With one shared B, every row of every batch of A is one tall matrix: a single sgemm.
            let pairs: [(Int, Int, Int)]
            let rows: Int
            if rightBatch.allSatisfy({ $0 == 1 }) && leftBatch == batch {
                pairs = [(0, 0, 0)]
                rows = m * ShapeMath.count(batch)
            } else {
                let li = ShapeMath.broadcastIndices(input: leftBatch, output: batch)
                let ri = ShapeMath.broadcastIndices(input: rightBatch, output: batch)
                pairs = (0..<ShapeMath.count(batch)).map { ($0, li[$0], ri[$0]) }
                rows = m
            }
            add([a, b], target, count: outCount) { resolver, _ in
                let x = resolver.pointer(a)
                let w = resolver.pointer(b)
                let y = resolver.pointer(target)
                return {
                    for (out, l, r) in pairs {
                        EngineKernels.sgemm(
                            transA: false, transB: false, m: rows, n: n, k: k, alpha: 1, a: x + l * m * k, lda: k,
                            b: w + r * k * n, ldb: n, beta: 0, c: y + out * m * n, ldc: n)
                    }
                    activation.apply(y, outCount)
                }
            }
            if target != output { storageOf[output] = storageOf[target] }
        case "Softmax":
            let x = try inputName(0)
            let xs = shape(0)
            var axis = node.int("axis", default: analysis.opset >= 13 ? -1 : 1)
            if axis < 0 { axis += xs.count }
            let outer = ShapeMath.count(Array(xs[..<axis]))
            let length = analysis.opset >= 13 ? xs[axis] : ShapeMath.count(Array(xs[axis...]))
            let inner = analysis.opset >= 13 ? ShapeMath.count(Array(xs[(axis + 1)...])) : 1
            add([x], output, count: outCount) { resolver, _ in
                let input = resolver.pointer(x)
                let y = resolver.pointer(output)
                return { EngineKernels.softmax(input, y, outer: outer, length: length, inner: inner) }
            }
        case "Concat":
            let parts = try (0..<node.inputs.count).compactMap { node.input($0) == nil ? nil : try inputName($0) }
            var axis = node.int("axis", default: 0)
            if axis < 0 { axis += outShape.count }
            let outer = ShapeMath.count(Array(outShape[..<axis]))
            let inners = parts.map { ShapeMath.count(Array((analysis.shape($0) ?? [])[axis...])) }
            add(parts, output, count: outCount) { resolver, _ in
                let sources = parts.map { UnsafePointer(resolver.pointer($0)) }
                let y = resolver.pointer(output)
                return {
                    var offset = 0
                    for o in 0..<outer {
                        for (source, inner) in zip(sources, inners) {
                            (y + offset).update(from: source + o * inner, count: inner)
                            offset += inner
                        }
                    }
                }
            }
        case "Transpose", "Gather", "Slice":
            let x = try inputName(0)
            let xs = shape(0)
            try reserveTable(outCount, for: name)
            let table: [Int32]
            switch node.opType {
            case "Transpose":
                let perm = node.ints("perm") ?? Array((0..<xs.count).reversed())
                table = ShapeMath.transposeIndices(input: xs, perm: perm, as: Int32.self).indices
            case "Gather":
                let indices = analysis.constant(node.inputs[1])!
                var axis = node.int("axis", default: 0)
                if axis < 0 { axis += xs.count }
                let normalized = indices.ints.map { Int($0 < 0 ? $0 + Int64(xs[axis]) : $0) }
                table = ShapeMath.gatherIndices(input: xs, axis: axis, indices: normalized, indicesShape: indices.shape)
                    .indices.map { Int32($0) }
            default:
                table = try Self.sliceTable(node: node, analysis: analysis, shape: xs)
            }
            add([x], output, count: outCount) { resolver, _ in
                let input = resolver.pointer(x)
                let y = resolver.pointer(output)
                return {
                    table.withUnsafeBufferPointer { map in
                        for i in 0..<map.count { y[i] = input[Int(map[i])] }
                    }
                }
            }
        default:
            throw OnnxError.unsupportedOperator(node.opType, domain: node.domain, node: name)
        }
    }

    private static func sliceTable(node: OnnxNode, analysis: GraphAnalysis, shape: [Int]) throws -> [Int32] {
        let starts: [Int64]
        let ends: [Int64]
        var axes: [Int64]
        var steps: [Int64]
        if analysis.opset < 10 {
            starts = (node.ints("starts") ?? []).map { Int64($0) }
            ends = (node.ints("ends") ?? []).map { Int64($0) }
            axes = (node.ints("axes") ?? Array(0..<starts.count)).map { Int64($0) }
            steps = [Int64](repeating: 1, count: starts.count)
        } else {
            starts = analysis.constant(node.inputs[1])!.ints
            ends = analysis.constant(node.inputs[2])!.ints
            axes = node.input(3).flatMap { analysis.constant($0)?.ints } ?? (0..<Int64(starts.count)).map { $0 }
            steps = node.input(4).flatMap { analysis.constant($0)?.ints } ?? [Int64](repeating: 1, count: starts.count)
        }
        let normalized = axes.map { Int($0 < 0 ? $0 + Int64(shape.count) : $0) }
        return ShapeMath.sliceIndices(
            input: shape, starts: starts, ends: ends, axes: normalized, steps: steps, as: Int32.self
        ).indices
    }

    static func parameters(window: WindowGeometry, batch: Int, channels: Int, filters: Int, groups: Int)
        -> EngineKernels.ConvParameters
    {
        // A 1-D window is a 2-D one of height 1.
        let twoD = window.input.count == 1
        func pick(_ values: [Int], _ axis: Int, _ fallback: Int) -> Int {
            twoD ? (axis == 0 ? fallback : values[0]) : values[axis]
        }
        return EngineKernels.ConvParameters(
            batch: batch, channels: channels, height: pick(window.input, 0, 1), width: pick(window.input, 1, 1),
            filters: filters, groups: groups, kernelH: pick(window.kernel, 0, 1), kernelW: pick(window.kernel, 1, 1),
            strideH: pick(window.strides, 0, 1), strideW: pick(window.strides, 1, 1),
            dilationH: pick(window.dilations, 0, 1), dilationW: pick(window.dilations, 1, 1),
            padTop: pick(window.padsBegin, 0, 0), padLeft: pick(window.padsBegin, 1, 0),
            padBottom: pick(window.padsEnd, 0, 0), padRight: pick(window.padsEnd, 1, 0),
            outH: pick(window.output, 0, 1), outW: pick(window.output, 1, 1))
    }

    /// The arena: where each storage and each step's scratch lives, and the total size in floats.
    func layout() -> (arenaCount: Int, offsets: [Int], scratchOffsets: [Int?]) {
        let end = steps.count
        var first = [Int](repeating: -1, count: storageCounts.count)
        var last = [Int](repeating: -1, count: storageCounts.count)
        for (index, step) in steps.enumerated() {
            for name in step.writes {
                if let s = storageOf[name], first[s] == -1 || index < first[s] { first[s] = index }
            }
        }
        for input in analysis.inputs { if let s = storageOf[input.name] { first[s] = -1 } }
        for (index, step) in steps.enumerated() {
            for name in step.reads { if let s = storageOf[name] { last[s] = max(last[s], index) } }
        }
        for output in analysis.outputs { if let s = storageOf[output] { last[s] = end } }
        for s in 0..<storageCounts.count { last[s] = max(last[s], first[s]) }

        func aligned(_ count: Int) -> Int { (max(count, 1) + 15) / 16 * 16 }
        var free: [(offset: Int, size: Int)] = []
        var top = 0
        func allocate(_ count: Int) -> Int {
            let size = aligned(count)
            if let best = free.indices.filter({ free[$0].size >= size }).min(by: { free[$0].size < free[$1].size }) {
                let block = free[best]
                if block.size == size {
                    free.remove(at: best)
                } else {
                    free[best] = (block.offset + size, block.size - size)
                }
                return block.offset
            }
            top += size
            return top - size
        }
        func release(_ offset: Int, _ count: Int) {
            free.append((offset, aligned(count)))
            free.sort { $0.offset < $1.offset }
            var merged: [(offset: Int, size: Int)] = []
            for block in free {
                if let previous = merged.last, previous.offset + previous.size == block.offset {
                    merged[merged.count - 1].size += block.size
                } else {
                    merged.append(block)
                }
            }
            if let tail = merged.last, tail.offset + tail.size == top {
                top = tail.offset
                merged.removeLast()
            }
            free = merged
        }
        var offsets = [Int](repeating: 0, count: storageCounts.count)
        var scratchOffsets = [Int?](repeating: nil, count: steps.count)
        var live = Set<Int>()
        var peak = 0
        for time in -1..<end {
            for s in live where last[s] < time {
                release(offsets[s], storageCounts[s])
                live.remove(s)
            }
            for s in 0..<storageCounts.count where first[s] == time {
                offsets[s] = allocate(storageCounts[s])
                live.insert(s)
            }
            if time >= 0, steps[time].scratch > 0 {
                let offset = allocate(steps[time].scratch)
                scratchOffsets[time] = offset
                peak = max(peak, top)
                release(offset, steps[time].scratch)
            }
            peak = max(peak, top)
        }
        return (peak, offsets, scratchOffsets)
    }
}
