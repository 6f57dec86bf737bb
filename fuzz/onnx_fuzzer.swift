// libFuzzer harness of the ONNX import: the bytes of a hostile or corrupt model.onnx go through exactly what
// `nas infer`, `nas measure`, `nas flops` and the worker's native runner do with a file: decode it
// (`OnnxModel(bytes:)`), count its FLOPs (`OnnxFlops.count`), plan it (`OnnxEngine(model:)`) and, when it plans,
// run it once on zeros of its input size. Anything but a result or an `OnnxError` is a bug: a trap (overflow,
// index out of range, force unwrap), an AddressSanitizer report, an allocation above -malloc_limit_mb or a run
// above -timeout. Build and run: fuzz/run-onnx-fuzzer.sh [SECONDS]; seeds: NAS_FUZZ_WRITE_SEEDS=DIR (see there).
import Engine
import Foundation
import ONNX
import Trainer

/// The largest input one run feeds: bigger inputs are planned (and their memory counted) but not run, so that a
/// legitimately large model does not read as a hang.
private let maximumRunFloats = 1 << 18

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let model: OnnxModel
    do {
        model = try OnnxModel(bytes: bytes)
    } catch {
        expectOnnxError(error)
        return 0
    }
    do {
        _ = try OnnxFlops.count(model)
    } catch {
        expectOnnxError(error)
    }
    do {
        let engine = try OnnxEngine(model: model)
        let inputs = engine.inputs.map(\.count)
        if inputs.reduce(0, +) <= maximumRunFloats {
            _ = try engine.run(inputs: inputs.map { [Float](repeating: 0, count: $0) })
        }
    } catch {
        expectOnnxError(error)
    }
    return 0
}

private func expectOnnxError(_ error: any Error) {
    guard error is OnnxError else { fatalError("not an OnnxError: \(type(of: error)): \(error)") }
}

@_silgen_name("LLVMFuzzerMutate")
private func libFuzzerMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int) -> Int

/// Structure-aware mutation: byte flips rarely keep a protobuf decodable, so half of the mutations decode the
/// model, change one thing the analysis and the planner read (a dim, an attribute, an op type, an input name, a
/// constant's values or type), and encode it again; the other half are libFuzzer's own byte mutations.
@_cdecl("LLVMFuzzerCustomMutator")
public func mutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
    var random = Mutator(seed: UInt64(seed))
    if random.next(2) == 0,
        var model = try? OnnxModel(bytes: Array(UnsafeBufferPointer(start: data, count: size)))
    {
        random.mutate(&model)
        if let bytes = try? model.serialized(), bytes.count <= maxSize {
            data.update(from: bytes, count: bytes.count)
            return bytes.count
        }
    }
    return libFuzzerMutate(data, size, maxSize)
}

private struct Mutator {
    var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1 }

    mutating func next(_ bound: Int) -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int((state >> 33) % UInt64(max(bound, 1)))
    }

    mutating func pick<T>(_ values: [T]) -> T? { values.isEmpty ? nil : values[next(values.count)] }

    /// Sizes and indices that break arithmetic: zero, one, negatives, the edges of Int32 and Int64.
    mutating func interesting() -> Int64 {
        let edges: [Int64] = [
            0, 1, 2, 3, -1, -2, 7, 64, 255, 65_535, 1 << 20, Int64(Int32.max), 1 << 31, 1 << 32, 1 << 40, 1 << 62,
            Int64.max, Int64.min, -(1 << 31),
        ]
        return next(3) == 0 ? Int64(next(17)) : edges[next(edges.count)]
    }

    static let operators = [
        "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid", "Softmax", "MaxPool",
        "AveragePool", "GlobalAveragePool", "BatchNormalization", "Flatten", "Reshape", "Transpose", "Shape",
        "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Identity", "Constant", "Dropout", "If",
    ]
    static let attributeNames = [
        "axis", "axes", "perm", "kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "ceil_mode",
        "transA", "transB", "alpha", "beta", "epsilon", "min", "max", "value", "allowzero", "keepdims",
    ]

    mutating func mutate(_ model: inout OnnxModel) {
        var graph = model.graph
        let names = Array(Set(graph.nodes.flatMap { $0.inputs + $0.outputs } + graph.inputs.map(\.name)))
        switch next(10) {
        case 0:  // a dimension of a graph input or output
            if graph.inputs.isEmpty { break }
            let index = next(graph.inputs.count)
            var shape = graph.inputs[index].shape ?? []
            let value = interesting()
            let dimension: OnnxValueInfo.Dimension =
                value < 0 || value > Int64(Int32.max) ? .unknown : .value(Int(value))
            if shape.isEmpty || next(4) == 0 { shape.append(dimension) } else { shape[next(shape.count)] = dimension }
            graph.inputs[index].shape = next(8) == 0 ? nil : shape
        case 1, 2:  // an attribute's value
            if graph.nodes.isEmpty { break }
            let index = next(graph.nodes.count)
            var node = graph.nodes[index]
            let name = next(3) == 0 ? pick(Self.attributeNames)! : pick(node.attributes.map(\.name)) ?? "axis"
            var value: OnnxAttribute.Value
            switch next(4) {
            case 0: value = .int(interesting())
            case 1:
                var values = node.attribute(name)?.intsValue ?? []
                if values.isEmpty || next(3) == 0 {
                    values.append(interesting())
                } else {
                    values[next(values.count)] = interesting()
                }
                if next(6) == 0, !values.isEmpty { values.removeLast() }
                value = .ints(values)
            case 2: value = .float([0, -1, 1e30, .nan, .infinity, 1e-30].randomElement(using: &self)!)
            default: value = .string(pick(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", ""])!)
            }
            node.attributes.removeAll { $0.name == name }
            if next(5) != 0 { node.attributes.append(OnnxAttribute(name, value)) }
            graph.nodes[index] = node
        case 3:  // an operator
            if graph.nodes.isEmpty { break }
            graph.nodes[next(graph.nodes.count)].opType = pick(Self.operators)!
        case 4:  // an input or output name: wires values into places they do not fit, or into cycles
            if graph.nodes.isEmpty { break }
            let index = next(graph.nodes.count)
            let name = next(6) == 0 ? "" : pick(names + graph.initializers.map(\.name)) ?? ""
            if next(4) == 0, !graph.nodes[index].outputs.isEmpty {
                graph.nodes[index].outputs[next(graph.nodes[index].outputs.count)] = name
            } else if graph.nodes[index].inputs.isEmpty || next(4) == 0 {
                graph.nodes[index].inputs.append(name)
            } else {
                graph.nodes[index].inputs[next(graph.nodes[index].inputs.count)] = name
            }
        case 5:  // a constant's values (shape tensors, indices, axes)
            if graph.initializers.isEmpty { break }
            let index = next(graph.initializers.count)
            var tensor = graph.initializers[index]
            if !tensor.int64s.isEmpty {
                tensor.int64s[next(tensor.int64s.count)] = interesting()
            } else if !tensor.floats.isEmpty {
                tensor.floats[next(tensor.floats.count)] = [0, -1, 1e30, .nan, .infinity].randomElement(using: &self)!
            }
            graph.initializers[index] = tensor
        case 6:  // a constant's dims, with values to match
            if graph.initializers.isEmpty { break }
            let index = next(graph.initializers.count)
            var tensor = graph.initializers[index]
            var dims = tensor.dims
            let size = next(5) == 0 ? 0 : 1 + next(6)
            if dims.isEmpty || next(3) == 0 { dims.append(size) } else { dims[next(dims.count)] = size }
            if next(6) == 0, !dims.isEmpty { dims.removeLast() }
            let count = dims.reduce(1, *)
            if count > 1 << 16 { break }
            tensor.dims = dims
            if tensor.dataType.isInteger {
                tensor.int64s = (0..<count).map {
                    tensor.int64s.isEmpty ? Int64($0) : tensor.int64s[$0 % tensor.int64s.count]
                }
            } else {
                tensor.dataType = .float
                tensor.floats = (0..<count).map {
                    tensor.floats.isEmpty ? 0.5 : tensor.floats[$0 % tensor.floats.count]
                }
            }
            graph.initializers[index] = tensor
        case 7:  // a constant's element type, between the ones held as integers and as floats
            if graph.initializers.isEmpty { break }
            let index = next(graph.initializers.count)
            var tensor = graph.initializers[index]
            if tensor.dataType.isInteger {
                tensor.dataType = pick([.int32, .int8, .uint8, .bool, .int64, .uint64])!
                tensor.int64s = tensor.int64s.map { tensor.dataType == .bool ? $0 & 1 : $0 & 0x7F }
            } else {
                tensor.dataType = pick([.float, .double])!
            }
            graph.initializers[index] = tensor
        case 8:  // a node removed, duplicated or moved (breaks the topological order)
            if graph.nodes.isEmpty { break }
            let index = next(graph.nodes.count)
            switch next(3) {
            case 0: graph.nodes.remove(at: index)
            case 1: graph.nodes.insert(graph.nodes[index], at: next(graph.nodes.count))
            default: graph.nodes.swapAt(index, next(graph.nodes.count))
            }
        default:  // graph inputs and outputs
            if next(2) == 0, let name = pick(names) {
                graph.outputs.append(OnnxValueInfo(name: name, shape: nil))
            } else if !graph.outputs.isEmpty {
                graph.outputs.remove(at: next(graph.outputs.count))
            } else if let name = pick(names) {
                graph.inputs.append(OnnxValueInfo(name: name, shape: [.value(1), .value(next(9))]))
            }
        }
        model.graph = graph
    }
}

extension Mutator: RandomNumberGenerator {
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state ^ (state >> 29)
    }
}

/// Writes the seed corpus when NAS_FUZZ_WRITE_SEEDS names a folder: real exported models (OnnxExport of the
/// tutorial's CNN family), so that the fuzzer starts from the protobuf layout the tools write.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutableRawPointer, _ argv: UnsafeMutableRawPointer) -> CInt {
    guard let folder = ProcessInfo.processInfo.environment["NAS_FUZZ_WRITE_SEEDS"] else { return 0 }
    let architectures: [(name: String, layers: [[Int]], side: Int, batch: Int?)] = [
        ("tutorial-3x3-6", [[3, 3], [3, 6]], 12, nil), ("one-layer", [[3, 2]], 8, 1),
        ("even-kernel", [[2, 4], [4, 2]], 8, nil), ("wide", [[5, 8], [1, 3], [3, 4]], 6, 1),
    ]
    for (name, layers, side, batch) in architectures {
        let architecture = CNNArchitecture(
            layers: layers.map { ConvLayer(kernelSize: $0[0], filters: $0[1]) }, height: side, width: side)
        do {
            let weights = OnnxExport.randomWeights(for: architecture, seed: 7)
            let bytes = try OnnxExport.serialized(architecture: architecture, weights: weights, batch: batch)
            try Data(bytes).write(to: URL(fileURLWithPath: folder).appendingPathComponent("export-\(name).onnx"))
        } catch {
            fatalError("cannot write the seed \(name): \(error)")
        }
    }
    exit(0)
}
