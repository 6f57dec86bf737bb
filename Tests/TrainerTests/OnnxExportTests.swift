import Engine
import Foundation
import ONNX
import ONNXFixtures
import Testing

@testable import Trainer

@Suite struct OnnxExportTests {
    @Test(arguments: [
        [ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6)],
        [ConvLayer(kernelSize: 5, filters: 4), ConvLayer(kernelSize: 2, filters: 8)],
        [],
    ])
    func exportPassesTheOnnxCheckerWithFullCheck(layers: [ConvLayer]) async throws {
        let architecture = CNNArchitecture(layers: layers)
        let weights = OnnxExport.randomWeights(for: architecture, seed: 7)
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("model.onnx")
        try Data(try OnnxExport.serialized(architecture: architecture, weights: weights)).write(to: file)
        let output = try await OnnxTestSupport.runPython(
            """
            import sys, onnx
            m = onnx.load(sys.argv[1])
            onnx.checker.check_model(m, full_check=True)
            inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
            print("ok", [d.dim_value or d.dim_param for d in inferred.graph.output[0].type.tensor_type.shape.dim])
            """, [file.path])
        #expect(output.contains("ok ['N', 10]"))
    }

    @Test func mismatchedWeightsAreATypedError() throws {
        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 3)])
        var weights = OnnxExport.randomWeights(for: architecture, seed: 1)
        weights.convKernels[0].removeLast()
        let error = try #require(throws: OnnxError.self) {
            try OnnxExport.model(architecture: architecture, weights: weights)
        }
        #expect(error.description.contains("layer 0 needs a kernel of 27 values"))
    }
}
