import Foundation
import ONNXFixtures
import Testing
import Trainer

@testable import ONNX

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
