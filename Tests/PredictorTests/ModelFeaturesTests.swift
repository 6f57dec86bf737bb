import Engine
import Foundation
import ONNX
import Testing
import Trainer

@testable import Predictor

/// Kernels of real ONNX models (the tutorial CNNs OnnxExport writes), and a predictor fitted on their
/// measurements by the native engine.
@Suite struct ModelFeaturesTests {
    static func cnn(_ layers: [(Int, Int)], seed: UInt64 = 1) throws -> [UInt8] {
        let architecture = CNNArchitecture(layers: layers.map { ConvLayer(kernelSize: $0.0, filters: $0.1) })
        return try OnnxExport.serialized(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: seed), batch: 1)
    }

    @Test func kernelsAreFusedAsTheEngineRunsThemAndCountTheFlops() throws {
        let bytes = try Self.cnn([(3, 3), (3, 6)])
        let features = try ModelFeatures(onnx: bytes)
        // Conv + bias + Relu is one kernel each; Flatten is an alias; Dense and softmax follow.
        #expect(features.kernels.map(\.kind).prefix(2) == ["conv", "conv"])
        #expect(features.kinds.contains("gemm"))
        #expect(!features.kinds.contains("activation"))
        #expect(features.totalFlops == Double(try OnnxFlops.count(bytes: bytes).total))
        #expect(features.totalFlops == 397_548)
        let first = features.kernels[0]
        #expect(first.outputElements == 28 * 28 * 3 && first.inputElements == 28 * 28 && first.weightElements == 3 * 9 + 3)
    }

    /// The kernels are the engine's: every planned kernel of MobileNets of the built-in space (depthwise, SE,
    /// hard activations) has exactly one `Kernel` of the same node, so the profile's times pair with them.
    @Test func kernelsPairOneToOneWithTheEnginesProfile() throws {
        let space = SearchSpace.mobileNetV2Mini
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<6 {
            let bytes = try space.parameters(of: space.sample(using: &generator)).model().untrainedONNX(seed: 1)
            let features = try ModelFeatures(onnx: bytes)
            let timings = try OnnxEngine(bytes: bytes).profile(MeasurementOptions(warmup: 0, repeats: 1))
            #expect(features.kernels.map(\.node) == timings.map(\.node.output))
            let times = Dictionary(uniqueKeysWithValues: timings.map { ($0.node.output, $0.p50Ms) })
            let sample = LatencySample(features: features, latencyMilliseconds: 1, kernelTimes: times)
            #expect(sample.kernelLatencies?.count == features.kernels.count)
            #expect(features.kinds.contains("depthwise") && features.kinds.contains("pointwise"))
            let depthwise = try #require(features.kernels.first { $0.kind == "depthwise" })
            #expect(depthwise.shape.groups == depthwise.shape.channels && [3, 5, 7].contains(depthwise.shape.kernel))
        }
    }

    @Test func refusesBytesThatAreNoModel() {
        #expect(throws: OnnxError.self) { try ModelFeatures(onnx: [1, 2, 3, 4]) }
    }

    @Test func fitsOnRealMeasurementsOfTheNativeEngine() throws {
        let layers: [[(Int, Int)]] = [
            [(3, 4)], [(5, 8)], [(3, 16)], [(7, 16)], [(3, 8), (3, 8)], [(5, 16), (3, 32)], [(3, 32), (5, 32)],
            [(7, 32), (7, 64)],
        ]
        var samples: [LatencySample] = []
        for layer in layers {
            let bytes = try Self.cnn(layer)
            let report = try measure(model: bytes, warmup: 3, repeats: 25)
            samples.append(LatencySample(features: try ModelFeatures(onnx: bytes), latencyMilliseconds: report.p50Ms))
        }
        let predictor = try LatencyPredictor.fit(samples)
        let predicted = samples.map { predictor.predict($0.features).milliseconds }
        #expect(predicted.allSatisfy { $0 > 0 && $0.isFinite })
        // The models' FLOPs span 300x: even on a busy machine their order is clear, and the fit keeps it.
        let evaluation = PredictorEvaluation(predicted: predicted, measured: samples.map(\.latencyMilliseconds))
        print("ModelFeaturesTests: predicted \(predicted), measured \(samples.map(\.latencyMilliseconds)), coefficients \(predictor.coefficients) kinds \(predictor.kinds)")
        print("ModelFeaturesTests: in-sample within ±10% \(evaluation.within10), Spearman \(evaluation.spearman ?? .nan)")
        #expect((evaluation.spearman ?? 0) > 0.5)
    }
}

/// Seeded fuzzing of what this module decodes: ONNX bytes into features, stored text into a predictor.
@Suite struct PredictorFuzzTests {
    static let seed: UInt64 = ProcessInfo.processInfo.environment["NAS_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_261_202

    @Test func mutatedModelsAndPredictorTextNeverCrash() throws {
        print("PredictorFuzzTests: seed \(Self.seed) (NAS_FUZZ_SEED=\(Self.seed) reproduces this run)")
        var generator = SeededGenerator(seed: Self.seed)
        let model = try ModelFeaturesTests.cnn([(3, 4), (3, 4)])
        var decoded = 0
        for _ in 0..<400 {
            var bytes = model
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            if let features = try? ModelFeatures(onnx: bytes) {
                decoded += 1
                #expect(features.kernels.allSatisfy { $0.flops >= 0 && $0.outputElements >= 0 })
            }
        }
        #expect(decoded > 0)
        let predictor = try LatencyPredictor.fit(LatencyPredictorTests.samples(20, noise: 0.01, seed: 9))
        let text = Array(try predictor.jsonText().utf8)
        var predictors = 0
        for _ in 0..<2000 {
            var bytes = text
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 32...126, using: &generator)
            }
            if let mutated = try? LatencyPredictor(jsonText: String(decoding: bytes, as: UTF8.self)) {
                predictors += 1
                _ = mutated.predict(LatencyPredictorTests.samples(1, noise: 0, seed: 10)[0].features)
            }
        }
        #expect(predictors > 0)
    }
}
