import Foundation
import Testing

@testable import Trainer

@Suite struct OnnxModelTests {
    static let tutorial = CNNArchitecture(layers: [
        ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6),
    ])

    static func tutorialModel() throws -> OnnxModel {
        try OnnxExport.model(architecture: tutorial, weights: OnnxExport.randomWeights(for: tutorial, seed: 1))
    }

    @Test func encodeThenDecodeGivesTheSameModel() throws {
        var model = try Self.tutorialModel()
        model.graph.nodes[0].attributes.append(OnnxAttribute("f", .float(0.5)))
        model.graph.nodes[0].attributes.append(OnnxAttribute("s", .string("same")))
        model.graph.nodes[0].attributes.append(OnnxAttribute("fs", .floats([1, 2.5])))
        model.graph.nodes[0].attributes.append(OnnxAttribute("ss", .strings(["a", "b"])))
        model.graph.nodes[0].attributes.append(
            OnnxAttribute("t", .tensor(OnnxTensor(name: "c", dims: [2], int64s: [3, -4]))))
        model.graph.initializers.append(OnnxTensor(name: "i32", dims: [3], int64s: [1, -2, 3], dataType: .int32))
        model.graph.initializers.append(OnnxTensor(name: "b", dims: [2], int64s: [1, 0], dataType: .bool))
        let bytes = try model.serialized()
        let decoded = try OnnxModel(bytes: bytes)
        #expect(decoded == model)
        #expect(decoded.opset == 13)
        #expect(try decoded.serialized() == bytes)
    }

    @Test func pythonOnnxReadsOurBytesAndWeReadPythons() async throws {
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let ours = directory.appendingPathComponent("ours.onnx")
        let theirs = directory.appendingPathComponent("theirs.onnx")
        try Data(try Self.tutorialModel().serialized()).write(to: ours)
        let output = try await OnnxTestSupport.runPython(
            """
            import sys, onnx
            from onnx import numpy_helper
            m = onnx.load(sys.argv[1])
            print(len(m.graph.node), m.opset_import[0].version, [n.op_type for n in m.graph.node])
            k = numpy_helper.to_array([t for t in m.graph.initializer if t.name == 'conv0_kernel'][0])
            print(k.shape)
            # Re-save with float_data instead of raw_data, as some writers do.
            for t in m.graph.initializer:
                a = numpy_helper.to_array(t)
                t.ClearField('raw_data')
                t.float_data.extend(a.flatten().tolist())
            onnx.save(m, sys.argv[2])
            """, [ours.path, theirs.path])
        #expect(output.contains("7 13 ['Conv', 'Relu', 'Conv', 'Relu', 'Flatten', 'Gemm', 'Softmax']"))
        #expect(output.contains("(3, 1, 3, 3)"))
        let decoded = try OnnxModel(bytes: Array(try Data(contentsOf: theirs)))
        #expect(decoded.graph.initializers == (try Self.tutorialModel()).graph.initializers)
    }

    @Test func malformedBytesAreATypedError() throws {
        let bytes = try Self.tutorialModel().serialized()
        for length in [1, 7, bytes.count / 3, bytes.count / 2, bytes.count - 1] {
            #expect(throws: OnnxError.self) { try OnnxModel(bytes: Array(bytes.prefix(length))) }
        }
        let error = try #require(throws: OnnxError.self) { try OnnxModel(bytes: Array("hello, world".utf8)) }
        #expect(error.description.contains("not a readable ONNX model"))
        let empty = try #require(throws: OnnxError.self) { try OnnxModel(bytes: []) }
        #expect(empty.description.contains("no graph"))
    }

    @Test func tensorWithTooFewValuesIsATypedError() throws {
        // ModelProto{graph: GraphProto{initializer: TensorProto{dims: [2], data_type: FLOAT, float_data: [1.0]}}}
        let tensor: [UInt8] = [0x08, 0x02, 0x10, 0x01, 0x25, 0x00, 0x00, 0x80, 0x3F, 0x42, 0x01, 0x77]
        let graph: [UInt8] = [0x2A, UInt8(tensor.count)] + tensor
        let model: [UInt8] = [0x3A, UInt8(graph.count)] + graph
        let error = try #require(throws: OnnxError.self) { try OnnxModel(bytes: model) }
        #expect(error.description.contains("tensor 'w' has dims [2] (2 values) but 1 values"))
        var fixed = tensor
        fixed[1] = 0x01
        let good: [UInt8] = [0x3A, UInt8(graph.count), 0x2A, UInt8(fixed.count)] + fixed
        #expect(try OnnxModel(bytes: good).graph.initializers == [OnnxTensor(name: "w", dims: [1], floats: [1])])
    }

    @Test func deeplyNestedGraphsAreRejectedWithoutCrashing() throws {
        // A graph attribute holding a graph whose node has a graph attribute ... 10,000 levels deep.
        func lengthDelimited(_ field: UInt8, _ payload: [UInt8]) -> [UInt8] {
            var out: [UInt8] = [field << 3 | 2]
            var length = payload.count
            repeat {
                let byte = UInt8(length & 0x7F)
                length >>= 7
                out.append(length > 0 ? byte | 0x80 : byte)
            } while length > 0
            return out + payload
        }
        var graph: [UInt8] = []
        for _ in 0..<10_000 {
            let attribute = lengthDelimited(6, graph)  // AttributeProto.g
            let node = lengthDelimited(5, attribute)  // NodeProto.attribute
            graph = lengthDelimited(1, node)  // GraphProto.node
        }
        let model = lengthDelimited(7, graph)  // ModelProto.graph
        let error = try #require(throws: OnnxError.self) { try OnnxModel(bytes: model) }
        #expect(error.description.contains("nested"))
    }

    /// A graph with most supported ops, including the shape-computing ones, as a fuzzing seed.
    static func kitchenSinkModel() -> OnnxModel {
        func ints(_ name: String, _ values: [Int64]) -> OnnxTensor {
            OnnxTensor(name: name, dims: [values.count], int64s: values)
        }
        func floats(_ name: String, _ dims: [Int]) -> OnnxTensor {
            OnnxTensor(
                name: name, dims: dims,
                floats: OnnxTestSupport.randomFloats(dims.reduce(1, *), seed: UInt64(name.utf8.count)))
        }
        let nodes = [
            OnnxNode(
                name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                attributes: [
                    OnnxAttribute("group", .int(3)), OnnxAttribute("strides", .ints([2, 1])),
                    OnnxAttribute("pads", .ints([1, 1, 1, 1])),
                ]),
            OnnxNode(name: "bn", opType: "BatchNormalization", inputs: ["c", "s", "bb", "m", "v"], outputs: ["n"]),
            OnnxNode(name: "clip", opType: "Clip", inputs: ["n", "lo", "hi"], outputs: ["k"]),
            OnnxNode(
                name: "pool", opType: "MaxPool", inputs: ["k"], outputs: ["p"],
                attributes: [
                    OnnxAttribute("kernel_shape", .ints([2, 2])), OnnxAttribute("strides", .ints([2, 2])),
                    OnnxAttribute("ceil_mode", .int(1)),
                ]),
            OnnxNode(
                name: "avg", opType: "AveragePool", inputs: ["p"], outputs: ["a"],
                attributes: [
                    OnnxAttribute("kernel_shape", .ints([1, 1])), OnnxAttribute("auto_pad", .string("SAME_UPPER")),
                ]),
            OnnxNode(name: "shape", opType: "Shape", inputs: ["a"], outputs: ["sh"]),
            OnnxNode(name: "gather", opType: "Gather", inputs: ["sh", "zero"], outputs: ["batch"]),
            OnnxNode(name: "unsqueeze", opType: "Unsqueeze", inputs: ["batch", "zero1"], outputs: ["batch1"]),
            OnnxNode(
                name: "concat", opType: "Concat", inputs: ["batch1", "minus1"], outputs: ["target"],
                attributes: [
                    OnnxAttribute("axis", .int(0))
                ]),
            OnnxNode(name: "reshape", opType: "Reshape", inputs: ["a", "target"], outputs: ["r"]),
            OnnxNode(name: "slice", opType: "Slice", inputs: ["r", "st", "en", "ax", "sp"], outputs: ["sl"]),
            OnnxNode(
                name: "transpose", opType: "Transpose", inputs: ["sl"], outputs: ["t"],
                attributes: [
                    OnnxAttribute("perm", .ints([1, 0]))
                ]),
            OnnxNode(
                name: "flatten", opType: "Flatten", inputs: ["t"], outputs: ["f"],
                attributes: [OnnxAttribute("axis", .int(0))]),
            OnnxNode(name: "matmul", opType: "MatMul", inputs: ["f", "wm"], outputs: ["mm"]),
            OnnxNode(name: "add", opType: "Add", inputs: ["mm", "bm"], outputs: ["logits"]),
            OnnxNode(name: "mul", opType: "Mul", inputs: ["logits", "scale"], outputs: ["scaled"]),
            OnnxNode(name: "softmax", opType: "Softmax", inputs: ["scaled"], outputs: ["y"]),
        ]
        let initializers = [
            floats("w", [6, 1, 3, 3]), floats("b", [6]), floats("s", [6]), floats("bb", [6]), floats("m", [6]),
            OnnxTensor(name: "v", dims: [6], floats: [1, 2, 3, 1, 2, 3]),
            OnnxTensor(name: "lo", dims: [], floats: [0]), OnnxTensor(name: "hi", dims: [], floats: [6]),
            OnnxTensor(name: "zero", dims: [], int64s: [0]), ints("zero1", [0]), ints("minus1", [-1]),
            ints("st", [1]), ints("en", [97]), ints("ax", [1]), ints("sp", [2]),
            floats("wm", [24, 5]), floats("bm", [5]), OnnxTensor(name: "scale", dims: [1], floats: [2]),
        ]
        return OnnxModel(
            graph: OnnxGraph(
                nodes: nodes, initializers: initializers,
                inputs: [OnnxValueInfo(name: "x", shape: [.param("N"), .value(3), .value(8), .value(8)])],
                outputs: [OnnxValueInfo(name: "y", shape: nil)]))
    }

    @Test func kitchenSinkSeedRuns() throws {
        let engine = try OnnxEngine(model: Self.kitchenSinkModel())
        let output = try engine.run(OnnxTestSupport.randomFloats(192, seed: 1))
        #expect(output.count == 5)
        #expect(abs(output.reduce(0, +) - 1) < 1e-5)
    }

    @Test func fuzzedBytesNeverCrashTheDecoder() throws {
        let seeds = [try Self.tutorialModel().serialized(), try Self.kitchenSinkModel().serialized()]
        let iterations = Int(ProcessInfo.processInfo.environment["NAS_FUZZ_ITERATIONS"] ?? "") ?? 3000
        var state: UInt64 = 0x1234_5678
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(max(bound, 1)))
        }
        var decoded = 0
        var rejected = 0
        for round in 0..<iterations {
            let seedBytes = seeds[round / 4 % seeds.count]
            var bytes: [UInt8]
            switch round % 4 {
            case 0:
                bytes = (0..<next(300)).map { _ in UInt8(next(256)) }
            case 1:
                bytes = seedBytes
                for _ in 0..<(1 + next(8)) { bytes[next(bytes.count)] = UInt8(next(256)) }
            case 2:
                bytes = Array(seedBytes.prefix(next(seedBytes.count)))
            default:
                bytes = seedBytes
                let start = next(bytes.count)
                let end = min(bytes.count, start + next(64))
                bytes.removeSubrange(start..<end)
                bytes.insert(contentsOf: (0..<next(16)).map { _ in UInt8(next(256)) }, at: next(bytes.count))
            }
            do {
                let model = try OnnxModel(bytes: bytes)
                _ = try? model.serialized()
                decoded += 1
                // What decodes must also analyse, count and plan without crashing: mutated dims, attributes
                // and op types reach the shape inference and the planner.
                _ = try? OnnxFlops.count(model)
                if let engine = try? OnnxEngine(model: model), let input = engine.inputs.first, input.count < 1 << 20 {
                    _ = try? engine.run([Float](repeating: 0.5, count: input.count))
                }
            } catch is OnnxError {
                rejected += 1
            }
        }
        #expect(decoded + rejected == iterations)
        #expect(rejected > iterations / 3)
    }

    @Test func committedGeneratedCodeMatchesProtocC() async throws {
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let root = OnnxTestSupport.packageRoot
        let result = try await OnnxTestSupport.run(
            "/bin/bash", [root.appendingPathComponent("scripts/gen-protos.sh").path, "--out", directory.path])
        try #require(result.status == 0, "scripts/gen-protos.sh failed: \(result.stderr)")
        for file in ["Sources/COnnx/onnx.pb-c.c", "Sources/COnnx/include/onnx.pb-c.h"] {
            let committed = try Data(contentsOf: root.appendingPathComponent(file))
            let fresh = try Data(contentsOf: directory.appendingPathComponent(file))
            #expect(committed == fresh, "\(file) is stale: run scripts/gen-protos.sh and commit the result")
        }
    }
}
