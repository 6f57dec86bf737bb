import Foundation
import ONNXFixtures
import Testing
import Trainer

@testable import ONNX

@Suite struct OnnxFlopsTests {
    @Test func tutorialModelCountsWhatTensorFlowReports() throws {
        let architecture = CNNArchitecture(layers: [
            ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6),
        ])
        let bytes = try OnnxExport.serialized(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 2))
        let report = try OnnxFlops.count(bytes: bytes)
        #expect(report.total == 397_548)
        #expect(report.operations.map(\.opType) == ["Conv", "Relu", "Conv", "Relu", "Flatten", "Gemm", "Softmax"])
        #expect(report.operations.map(\.flops) == [44_688, 0, 258_720, 0, 0, 94_090, 50])
    }

    @Test func evenKernelsAndMoreLayersCount() throws {
        // [[5,4],[2,8]]: conv 28*28*4*(25*2+1) + conv 28*28*8*(4*4*2+1) + dense 6272*10*2+10 + softmax 50.
        let architecture = CNNArchitecture(layers: [
            ConvLayer(kernelSize: 5, filters: 4), ConvLayer(kernelSize: 2, filters: 8),
        ])
        let model = try OnnxExport.model(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 2))
        #expect(try OnnxFlops.count(model).total == 784 * 4 * 51 + 784 * 8 * 33 + 125_450 + 50)
    }

    @Test func foreignModelsFromOtherExportersCountTheSame() async throws {
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await OnnxFixtures.writeForeignModels(to: directory)
        for name in ["tf2onnx.onnx", "torch.onnx"] {
            let bytes = Array(try Data(contentsOf: directory.appendingPathComponent(name)))
            let report = try OnnxFlops.count(bytes: bytes)
            #expect(report.total == 397_548, "\(name): \(report.operations)")
        }
    }

    @Test func unknownOperatorWithoutRecordedShapesIsATypedError() throws {
        var model = try OnnxExport.model(
            architecture: CNNArchitecture(layers: []),
            weights: OnnxExport.randomWeights(for: CNNArchitecture(layers: []), seed: 1))
        model.graph.nodes[0].opType = "Mish"
        let error = try #require(throws: OnnxError.self) { try OnnxFlops.count(model) }
        #expect(error.description.contains("operator Mish of node 'flatten'"))
        // With the output's shape recorded, the count goes on (Mish counts 0, as TF registers nothing for it).
        model.graph.valueInfo.append(OnnxValueInfo(name: "flatten", shape: [.value(1), .value(784)]))
        #expect(try OnnxFlops.count(model).total == 2 * 7840 + 10 + 50)
    }
}
