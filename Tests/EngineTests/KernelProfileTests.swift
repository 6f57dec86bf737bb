import ONNXFixtures
import Testing

@testable import Engine
@testable import ONNX

@Suite struct KernelProfileTests {
    @Test func profileTimesEveryPlannedKernelUnderItsNode() throws {
        let model = OnnxFixtures.kitchenSinkModel()
        let engine = try OnnxEngine(model: model)
        let timings = try engine.profile(MeasurementOptions(warmup: 2, repeats: 9))
        #expect(timings.count == engine.kernelCount)
        // One timing per kernel, each named by a node of the graph, in graph order.
        let order = model.graph.nodes.compactMap(\.outputs.first)
        let indices = timings.map { timing in order.firstIndex(of: timing.node.output) }
        #expect(!indices.contains(nil))
        #expect(indices.compactMap { $0 } == indices.compactMap { $0 }.sorted())
        #expect(Set(timings.map(\.node.output)).count == timings.count)
        // The Clip after the BatchNormalization is fused into it, so it is no kernel of its own; reshapes are
        // aliases; shape arithmetic is folded at load time.
        #expect(timings.first?.node == KernelTiming.Node(output: "c", name: "conv", opType: "Conv"))
        #expect(timings.contains { $0.node.name == "bn" })
        for folded in ["clip", "reshape", "flatten", "shape", "unsqueeze"] {
            #expect(!timings.contains { $0.node.name == folded }, "\(folded)")
        }
        #expect(timings.allSatisfy { $0.p50Ms >= 0 && $0.p50Ms.isFinite })
        #expect(timings.reduce(0) { $0 + $1.p50Ms } > 0)
    }

    @Test func profilingStillComputesTheModelAndRejectsBadOptions() throws {
        let engine = try OnnxEngine(model: OnnxFixtures.kitchenSinkModel())
        let input = OnnxEngine.benchmarkInput(count: engine.inputs[0].count)
        let before = try engine.run(input)
        _ = try engine.profile(MeasurementOptions(warmup: 0, repeats: 1))
        // The engine is reusable after profiling and its results do not change.
        #expect(try engine.run(input) == before)
        #expect(throws: OnnxError.self) { try engine.profile(MeasurementOptions(warmup: 0, repeats: 0)) }
        #expect(throws: OnnxError.self) { try engine.profile(MeasurementOptions(warmup: -1, repeats: 3)) }
    }
}
