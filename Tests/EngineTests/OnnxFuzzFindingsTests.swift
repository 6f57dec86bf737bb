import Foundation
import ONNXFixtures
import Testing
import Trainer

@testable import Engine
@testable import ONNX

/// Inputs that fuzz/run-onnx-fuzzer.sh found to crash the ONNX import, the FLOPs counter or the engine, rebuilt
/// here as models; each must now be a typed `OnnxError` on every path a user's file takes.
@Suite struct OnnxFuzzFindingsTests {
    /// The bytes through decode, FLOPs counting, planning and one run, as `nas flops`, `nas infer` and the worker
    /// do; returns the messages of the errors (each must be an `OnnxError`).
    static func errors(_ bytes: [UInt8]) throws -> [String] {
        var messages: [String] = []
        do {
            _ = try OnnxFlops.count(bytes: bytes)
        } catch let error as OnnxError {
            messages.append(error.description)
        }
        do {
            let engine = try OnnxEngine(bytes: bytes)
            _ = try engine.run(inputs: engine.inputs.map { [Float](repeating: 0, count: $0.count) })
        } catch let error as OnnxError {
            messages.append(error.description)
        }
        return messages
    }

    static func pool(_ attributes: [OnnxAttribute], input: [Int] = [1, 1, 4, 4]) throws -> [UInt8] {
        try OnnxModel(
            graph: OnnxGraph(
                nodes: [
                    OnnxNode(name: "pool", opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: attributes)
                ],
                inputs: [OnnxValueInfo(name: "x", shape: input.map { .value($0) })],
                outputs: [OnnxValueInfo(name: "y", shape: nil)])
        ).serialized()
    }

    /// Finding 9: a broadcast over a value at the per-value limit built its index tables (gigabytes) before the
    /// arena's size was checked. Broadcasts now walk strides and build no table; the arena the model needs (its
    /// inputs and a 2^28-float output) is refused before anything is allocated.
    @Test func broadcastsOverTheLimitAreRefusedBeforeAllocating() throws {
        let side = 1 << 14
        let bytes = try OnnxModel(
            graph: OnnxGraph(
                nodes: [OnnxNode(name: "add", opType: "Add", inputs: ["a", "b"], outputs: ["y"])],
                inputs: [
                    OnnxValueInfo(name: "a", shape: [.value(side), .value(1)]),
                    OnnxValueInfo(name: "b", shape: [.value(1), .value(side)]),
                ],
                outputs: [OnnxValueInfo(name: "y", shape: nil)])
        ).serialized()
        #expect(ShapeMath.count([side, side]) * 4 <= OnnxEngine.maximumWorkingMemoryBytes)  // each value fits
        let error = #expect(throws: OnnxError.self) { try OnnxEngine(bytes: bytes) }
        #expect(
            error?.description.contains("floats of working memory, more than the engine's limit") == true,
            "\(String(describing: error))")
    }

    /// Found first: pads of 2^63 - 1 overflowed the window arithmetic (a trap in WindowGeometry).
    @Test func hugePadsAreAnError() throws {
        let bytes = try Self.pool([
            OnnxAttribute("kernel_shape", .ints([2, 2])), OnnxAttribute("pads", .ints([.max, .max, .max, .max])),
        ])
        let messages = try Self.errors(bytes)
        #expect(messages.count == 2)
        #expect(
            messages.allSatisfy { $0.contains("must each be at most \(WindowGeometry.maximumSize)") }, "\(messages)")
    }

    @Test func hugeKernelsStridesAndDilationsAreErrors() throws {
        for attributes in [
            [OnnxAttribute("kernel_shape", .ints([.max, 1]))],
            [OnnxAttribute("kernel_shape", .ints([2, 2])), OnnxAttribute("strides", .ints([1 << 62, 1]))],
            [OnnxAttribute("kernel_shape", .ints([2, 2])), OnnxAttribute("dilations", .ints([1, 1 << 40]))],
        ] {
            let messages = try Self.errors(try Self.pool(attributes))
            #expect(messages.count == 2, "\(attributes)")
            #expect(messages.allSatisfy { $0.contains("at most") }, "\(messages)")
        }
    }

    @Test func ordinaryPoolStillRuns() throws {
        let bytes = try Self.pool([
            OnnxAttribute("kernel_shape", .ints([2, 2])), OnnxAttribute("pads", .ints([1, 1, 1, 1])),
        ])
        #expect(try Self.errors(bytes).isEmpty)
        #expect(try OnnxFlops.count(bytes: bytes).total == 25 * 4)
    }
}

extension OnnxFuzzFindingsTests {
    /// Found second: an exported CNN whose input's batch was mutated to 2^20 planned a 2.9 GB arena, which the
    /// engine allocated and zeroed; now anything above `OnnxEngine.maximumWorkingMemoryBytes` is refused.
    @Test func hugeBatchIsRefusedBeforeAllocating() throws {
        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 4)], height: 8, width: 8)
        var model = try OnnxExport.model(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 1), batch: 1)
        model.graph.inputs[0].shape = [.value(1 << 20), .value(1), .value(8), .value(8)]
        let error = try #require(throws: OnnxError.self) { try OnnxEngine(bytes: try model.serialized()) }
        #expect(error.description.contains("more than the engine's limit of 1073741824 bytes"), "\(error)")
        // The same model with its real batch still plans and runs.
        model.graph.inputs[0].shape = [.value(1), .value(1), .value(8), .value(8)]
        let engine = try OnnxEngine(bytes: try model.serialized())
        #expect(try engine.run([Float](repeating: 0, count: 64)).count == 10)
    }
}

extension OnnxFuzzFindingsTests {
    /// Found third: a Conv whose group was mutated to 2^63 - 1 overflowed `weight channels * group` in the shape
    /// inference.
    @Test func hugeConvGroupIsAnError() throws {
        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 4)], height: 8, width: 8)
        var model = try OnnxExport.model(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 1), batch: 1)
        let conv = try #require(model.graph.nodes.firstIndex { $0.opType == "Conv" })
        model.graph.nodes[conv].attributes.removeAll { $0.name == "group" }
        model.graph.nodes[conv].attributes.append(OnnxAttribute("group", .int(.max)))
        let messages = try Self.errors(try model.serialized())
        #expect(messages.count == 2)
        #expect(messages.allSatisfy { $0.contains("do not agree") }, "\(messages)")
    }
}

extension OnnxFuzzFindingsTests {
    static func single(_ node: OnnxNode, input: [Int], initializers: [OnnxTensor] = []) throws -> [UInt8] {
        try OnnxModel(
            graph: OnnxGraph(
                nodes: [node], initializers: initializers,
                inputs: [OnnxValueInfo(name: "x", shape: input.map { .value($0) })],
                outputs: [OnnxValueInfo(name: "y", shape: nil)])
        ).serialized()
    }

    /// Found fourth (a 20 s timeout): a Transpose of a 2^29-float run-time value built its index table in the shape
    /// inference, which needs only the shape, and again in the planner; now the inference builds tables for
    /// constants only and the engine refuses a value above its working-memory limit before planning.
    @Test func transposeOfAHugeRunTimeValueIsRefusedQuickly() throws {
        let bytes = try Self.single(
            OnnxNode(name: "t", opType: "Transpose", inputs: ["x"], outputs: ["y"]), input: [1 << 14, 1 << 15])
        #expect(try OnnxFlops.count(bytes: bytes).operations.map(\.opType) == ["Transpose"])
        let error = try #require(throws: OnnxError.self) { try OnnxEngine(bytes: bytes) }
        // The input is refused first: every run-time value is checked before the planner builds any table.
        #expect(
            error.description.contains(
                "value 'x' has shape [16384, 32768], more than the engine's working-memory limit"))
    }

    /// Steps of Int64.min and Int64.max overflowed the Slice output-size arithmetic.
    @Test func extremeSliceStepsDoNotOverflow() throws {
        func ints(_ name: String, _ value: Int64) -> OnnxTensor { OnnxTensor(name: name, dims: [1], int64s: [value]) }
        for (start, end, step, expected) in [
            (Int64(0), Int64(8), Int64.max, 1), (7, -9, .min, 1), (Int64.min, Int64.max, 3, 3), (.max, .min, -1, 8),
        ] {
            let bytes = try Self.single(
                OnnxNode(name: "s", opType: "Slice", inputs: ["x", "st", "en", "ax", "sp"], outputs: ["y"]),
                input: [2, 8],
                initializers: [ints("st", start), ints("en", end), ints("ax", 1), ints("sp", step)])
            let engine = try OnnxEngine(bytes: bytes)
            #expect(engine.outputs[0].shape == [2, expected], "start \(start) end \(end) step \(step)")
            let output = try engine.run(Array(0..<16).map(Float.init))
            #expect(output.count == 2 * expected)
        }
    }
}

extension OnnxFuzzFindingsTests {
    /// Found fifth: a Gather of a scalar (rank 0) read `shape[0]`, because axis 0 was accepted for rank 0; the same
    /// held for Concat, Squeeze and Slice.
    @Test func axesOfAScalarAreErrors() throws {
        let indices = OnnxTensor(name: "i", dims: [1], int64s: [0])
        let nodes = [
            OnnxNode(name: "gather", opType: "Gather", inputs: ["x", "i"], outputs: ["y"]),
            OnnxNode(
                name: "concat", opType: "Concat", inputs: ["x", "x"], outputs: ["y"],
                attributes: [OnnxAttribute("axis", .int(0))]),
            OnnxNode(name: "squeeze", opType: "Squeeze", inputs: ["x", "i"], outputs: ["y"]),
            OnnxNode(name: "slice", opType: "Slice", inputs: ["x", "i", "i", "i"], outputs: ["y"]),
        ]
        for node in nodes {
            let messages = try Self.errors(try Self.single(node, input: [], initializers: [indices]))
            #expect(messages.count == 2, "\(node.name)")
            #expect(messages.allSatisfy { $0.contains("is out of range for rank 0") }, "\(node.name): \(messages)")
        }
    }
}

extension OnnxFuzzFindingsTests {
    /// Found sixth (a heap-buffer-overflow write of 262,140 bytes in `run`): a node output reusing a graph input's
    /// name gave the input the node's smaller buffer, and the run copied the whole input into it.
    @Test func aValueWithTwoProducersIsAnError() throws {
        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 4)], height: 8, width: 8)
        var model = try OnnxExport.model(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 1), batch: 1)
        let last = model.graph.nodes.count - 1
        var renamed = model
        renamed.graph.nodes[last].outputs = [OnnxExport.inputName]
        renamed.graph.outputs = [OnnxValueInfo(name: OnnxExport.inputName, shape: nil)]
        let messages = try Self.errors(try renamed.serialized())
        #expect(messages.count == 2)
        #expect(messages.allSatisfy { $0.contains("produces 'input', which is already a graph input") }, "\(messages)")
        // An initializer's name, and one name twice in a node, are the same defect.
        model.graph.nodes[0].outputs = ["conv0_bias"]
        #expect(
            try Self.errors(try model.serialized()).allSatisfy { $0.contains("already a graph input, an initializer") })
        model.graph.nodes[0].outputs = ["a", "a"]
        #expect(try Self.errors(try model.serialized()).allSatisfy { $0.contains("names an output twice") })
    }
}

extension OnnxFuzzFindingsTests {
    /// Found seventh (a timeout): the index tables of Slice, Transpose and broadcasting called a closure with a
    /// coordinate array per element; they are now built incrementally, and must still pick the same elements.
    @Test func incrementalIndexTablesMatchTheCoordinateFormula() throws {
        let input = [2, 3, 4]
        let strides = ShapeMath.strides(input)
        let slice = ShapeMath.sliceIndices(
            input: input, starts: [2, -1], ends: [0, -9], axes: [1, 2], steps: [-1, -2])
        #expect(slice.shape == [2, 2, 2])
        var expected: [Int] = []
        for a in 0..<2 {
            for b in [2, 1] { for c in [3, 1] { expected.append(a * strides[0] + b * strides[1] + c) } }
        }
        #expect(slice.indices == expected)
        let transpose = ShapeMath.transposeIndices(input: input, perm: [2, 0, 1])
        expected = []
        for c in 0..<4 { for a in 0..<2 { for b in 0..<3 { expected.append(a * 12 + b * 4 + c) } } }
        #expect(transpose.indices == expected)
        #expect(ShapeMath.broadcastIndices(input: [3, 1], output: [2, 3, 4]) == (0..<24).map { ($0 / 4) % 3 })
    }
}
