import Foundation
import ONNXFixtures
import Testing
import Trainer

@testable import Engine
@testable import ONNX

@Suite struct LatencyReportTests {
    @Test func statisticsOfKnownSamples() throws {
        let report = LatencyReport(samples: (1...100).map { Double($0) }.shuffled(), peakMemoryBytes: 64)
        #expect(report.count == 100)
        #expect(report.meanMs == 50.5)
        #expect(abs(report.p50Ms - 50.5) < 1e-9)
        #expect(abs(report.p90Ms - 90.1) < 1e-9)
        #expect(abs(report.p99Ms - 99.01) < 1e-9)
        #expect(abs(report.stddevMs - 29.011491975882016) < 1e-9)
        #expect(report.peakMemoryBytes == 64)
    }

    @Test func jsonUsesTheFleetsKeys() throws {
        let report = LatencyReport(
            meanMs: 1, p50Ms: 2, p90Ms: 3, p99Ms: 4, stddevMs: 0.5, count: 7, peakMemoryBytes: 1024)
        let object = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(report)) as? [String: Any]
        #expect(
            Set(object?.keys ?? [:].keys) == [
                "latency_mean_ms", "latency_ms", "latency_p90_ms", "latency_p99_ms", "latency_stddev_ms", "latency_runs", "memory_bytes",
            ])
        #expect(try JSONDecoder().decode(LatencyReport.self, from: try JSONEncoder().encode(report)) == report)
    }

    @Test func measuringAModelRunsTheRequestedRepetitions() throws {
        let architecture = CNNArchitecture(layers: [
            ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6),
        ])
        let bytes = try OnnxExport.serialized(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 4))
        let report = try measure(model: bytes, warmup: 3, repeats: 25)
        #expect(report.count == 25)
        #expect(report.p50Ms > 0)
        #expect(report.p50Ms <= report.p90Ms && report.p90Ms <= report.p99Ms)
        // The arena holds at least the two 28x28x6 and 28x28x3 activations live across the second conv.
        let engine = try OnnxEngine(bytes: bytes)
        #expect(report.peakMemoryBytes == engine.peakMemoryBytes)
        #expect(engine.peakMemoryBytes >= (784 * 3 + 784 * 6) * 4)
        let timed = try measure(model: bytes, warmup: 0, repeats: 1, minimumTime: .milliseconds(50))
        #expect(timed.count > 1)
        #expect(throws: OnnxError.self) { try measure(model: bytes, warmup: 0, repeats: 0) }
    }
}
