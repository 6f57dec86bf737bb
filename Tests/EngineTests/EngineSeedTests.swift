import Foundation
import ONNXFixtures
import TestSupport
import Testing
import Trainer

@testable import Engine
@testable import ONNX

/// The engine on the fuzzing seeds: the kitchen-sink graph runs, and mutated bytes never crash decoding, analysis,
/// planning or a run.
@Suite struct EngineSeedTests {
    static let tutorial = CNNArchitecture(layers: [
        ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6),
    ])

    static func tutorialModel() throws -> OnnxModel {
        try OnnxExport.model(architecture: tutorial, weights: OnnxExport.randomWeights(for: tutorial, seed: 1))
    }

    @Test func kitchenSinkSeedRuns() throws {
        let engine = try OnnxEngine(model: OnnxFixtures.kitchenSinkModel())
        let output = try engine.run(OnnxTestSupport.randomFloats(192, seed: 1))
        #expect(output.count == 5)
        #expect(abs(output.reduce(0, +) - 1) < 1e-5)
    }

    @Test func fuzzedBytesNeverCrashTheDecoder() async throws {
        try await TestSupport.onOwnThread {
            let seeds = [try Self.tutorialModel().serialized(), try OnnxFixtures.kitchenSinkModel().serialized()]
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
                    if let engine = try? OnnxEngine(model: model), let input = engine.inputs.first,
                        input.count < 1 << 20
                    {
                        _ = try? engine.run([Float](repeating: 0.5, count: input.count))
                    }
                } catch is OnnxError {
                    rejected += 1
                }
            }
            #expect(decoded + rejected == iterations)
            #expect(rejected > iterations / 3)
        }
    }
}
