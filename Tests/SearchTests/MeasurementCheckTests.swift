import Testing

@testable import Search

/// A device's answer is a measurement only when it has a finite, non-negative latency and nothing that is not a
/// number: a runner that prints NaN or a negative latency failed.
@Suite struct MeasurementCheckTests {
    @Test func aUsableMeasurementPassesAndLegacyNamesAreRead() throws {
        let answer = ["latency_ms": 1.5, "memory_bytes": 2048, "mean_ms": 1.6]
        #expect(try TrialPipeline.checked(answer, deviceType: "cpu") == answer)
        #expect(TrialPipeline.legacyRunnerNames[.latencyMean] == "mean_ms")
    }

    @Test(arguments: [
        ["latency_ms": Double.nan], ["latency_ms": .infinity], ["latency_ms": -1], ["memory_bytes": 10],
        ["latency_ms": 1, "memory_bytes": -5], ["latency_ms": 1, "latency_p99_ms": .nan], [:],
    ])
    func anUnusableMeasurementIsAFailureThatSaysWhy(_ answer: [String: Double]) {
        #expect(throws: TrialPipelineError.self) { try TrialPipeline.checked(answer, deviceType: "arm-a76") }
        let error = (try? TrialPipeline.checked(answer, deviceType: "arm-a76")) == nil
        #expect(error)
    }
}
