import Engine
import Foundation
import ONNX
import ONNXFixtures
import Testing

@testable import Trainer

@Suite struct MobileNetExportTests {
    /// The exported model passes `onnx.checker` (full check, strict shape inference) and onnxruntime's
    /// probabilities match the trainer's evaluation (running statistics) within 1e-4, for models covering every
    /// layer kind and a model of the built-in space; the FLOPs counter accepts each.
    @Test func onnxRuntimeMatchesTheTrainersEvaluation() async throws {
        var generator = SeededGenerator(seed: 12)
        let space = SearchSpace.mobileNetV2Mini
        guard case .mobileNet(let sampled) = try space.model(of: space.sample(using: &generator)) else {
            Issue.record("mobilenet_v2_mini sampled a CNN")
            return
        }
        let cases: [(String, MobileNetArchitecture)] = [
            ("stem", SmallMobileNets.stemOnly), ("stride2", SmallMobileNets.depthwiseStride2),
            ("wide", SmallMobileNets.wideDepthwise), ("se", SmallMobileNets.expandedWithSE),
            ("mixed", SmallMobileNets.mixed), ("sampled", sampled),
        ]
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var expected: [String: [Float]] = [:]
        for (name, architecture) in cases {
            let weights = SmallMobileNets.perturbed(architecture, seed: 21)
            let count = 3
            let images = OnnxTestSupport.randomFloats(
                count * architecture.channels * architecture.height * architecture.width, seed: 5
            ).map { ($0 + 1) / 2 }
            let bytes = try OnnxExport.serialized(mobileNet: architecture, weights: weights)
            try Data(bytes).write(to: directory.appendingPathComponent("\(name).onnx"))
            try OnnxTestSupport.write(images, to: directory.appendingPathComponent("\(name).in.bin"))
            let shape = [count, architecture.channels, architecture.height, architecture.width]
            try shape.map(String.init).joined(separator: " ").write(
                to: directory.appendingPathComponent("\(name).shape"), atomically: true, encoding: .utf8)
            expected[name] = try Trainer.predict(mobileNet: architecture, weights: weights, images: images)
            let flops = try OnnxFlops.count(bytes: bytes)
            #expect(flops.total > 0, "\(name): FLOPs \(flops.total)")
        }
        let output = try await OnnxTestSupport.runPython(
            """
            import sys, os, numpy as np, onnx, onnxruntime as ort
            folder = sys.argv[1]
            for name in sys.argv[2:]:
                path = os.path.join(folder, name + '.onnx')
                m = onnx.load(path)
                onnx.checker.check_model(m, full_check=True)
                onnx.shape_inference.infer_shapes(m, strict_mode=True)
                shape = [int(v) for v in open(os.path.join(folder, name + '.shape')).read().split()]
                x = np.fromfile(os.path.join(folder, name + '.in.bin'), dtype=np.float32).reshape(shape)
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
                y = session.run(None, {'input': x})[0].astype(np.float32)
                y.tofile(os.path.join(folder, name + '.out.bin'))
                print('ok', name, list(y.shape))
            """, [directory.path] + cases.map(\.0))
        for (name, architecture) in cases {
            #expect(output.contains("ok \(name) [3, \(architecture.classes)]"))
            let actual = try OnnxTestSupport.readFloats(directory.appendingPathComponent("\(name).out.bin"))
            let reference = try #require(expected[name])
            #expect(actual.count == reference.count)
            let worst = zip(actual, reference).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst <= 1e-4, "\(name): onnxruntime differs from the trainer by \(worst)")
        }
    }

    @Test func mismatchedWeightsAreATypedError() throws {
        var weights = Trainer.initialWeights(mobileNet: SmallMobileNets.mixed, seed: 1)
        weights.parameters.removeLast()
        let error = try #require(throws: OnnxError.self) {
            try OnnxExport.model(mobileNet: SmallMobileNets.mixed, weights: weights)
        }
        #expect(error.description.contains("this MobileNet architecture needs"))
        let cnn = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 3)])
        #expect(throws: OnnxError.self) {
            try OnnxExport.serialized(.cnn(cnn), weights: .mobileNet(weights))
        }
    }
}
