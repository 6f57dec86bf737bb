import Foundation
import Synchronization
import System
import ONNXFixtures
import TestSupport
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

    @Test func measuringAModelRunsTheRequestedRepetitions() async throws {
        try await TestSupport.onOwnThread {
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
            // The minimum time is on the wall clock: long enough that no descheduling of one ~0.05 ms run outlasts it
            // on a loaded machine (50 ms did once, at load 17).
            let timed = try measure(model: bytes, warmup: 0, repeats: 1, minimumTime: .milliseconds(500))
            #expect(timed.count > 1)
            #expect(throws: OnnxError.self) { try measure(model: bytes, warmup: 0, repeats: 0) }
        }
    }

    @Test func medianIntervalRanksMatchTheBinomialTable() throws {
        // Ranks and coverage from scipy.stats.binom: the largest j with P(B <= j-1) <= 2.5%, B ~ Binomial(n, 1/2).
        for (n, rank, coverage) in [
            (6, 1, 0.96875), (100, 40, 0.9647997997822952), (1000, 469, 0.9537088026395019),
            (100_000, 49_690, 0.9504442853304776), (1_000_000, 499_020, 0.9501210313476314),
        ] {
            let found = MedianInterval.lowerRank(count: n, confidence: 0.95)
            #expect(found.rank == rank, "n \(n)")
            #expect(abs(found.coverage - coverage) < 1e-6, "n \(n)")
        }
        // Under six samples the whole range is all there is, and it says how little it covers.
        let five = try #require(MedianInterval(sorted: [1, 2, 3, 4, 5]))
        #expect(five.low == 1 && five.high == 5 && abs(five.confidence - 0.9375) < 1e-12)
        #expect(MedianInterval(sorted: []) == nil)
        // 1...100 timed so that each tenth holds the same spread (medians 46...55): no drift, the blocks do not widen it.
        let steady = (0..<100).map { (i: Int) -> Double in Double((i % 10) * 10 + i / 10 + 1) }
        let report = LatencyReport(samples: steady, peakMemoryBytes: 0)
        #expect(report.p50Interval?.low == 40 && report.p50Interval?.high == 61)
        #expect(abs((report.p50Interval?.confidence ?? 0) - 0.9647997997822952) < 1e-9)
        #expect(abs((report.p50RelativeHalfWidth ?? 0) - 10.5 / 50.5) < 1e-12)
    }

    @Test func aLoadDriftDuringTheRunWidensTheInterval() async throws {
        try await TestSupport.onOwnThread {
            // 200 samples near 1.0 ms, 200 near 1.1, 200 near 1.2: the machine got busier twice. Taken as independent,
            // the median's interval is the middle group's, ±0.5%; the medians of the ten blocks see 1.0 to 1.2.
            let samples = (0..<600).map { (i: Int) -> Double in
                let level = Double(i / 200) * 0.1
                let noise = Double(i % 7) * 0.001
                return 1.0 + level + noise
            }
            let report = LatencyReport(samples: samples, peakMemoryBytes: 0)
            let independent = try #require(MedianInterval(sorted: samples.sorted()))
            #expect(independent.relativeHalfWidth(around: report.p50Ms) < 0.01)
            let interval = try #require(report.p50Interval)
            #expect(interval.low < 1.01 && interval.high > 1.19)
            #expect(interval.contains(report.p50Ms) && interval.confidence >= 0.95)
            #expect((report.p50RelativeHalfWidth ?? 0) > 0.05)
        }
    }

    @Test func measuringWithAPrecisionReportsAnIntervalAroundTheP50() async throws {
        try await TestSupport.onOwnThread {
            let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 3)])
            let bytes = try OnnxExport.serialized(
                architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 2))
            // One sample asked for, but a precision needs an interval of 95% coverage: six samples at least.
            let report = try measure(
                model: bytes,
                MeasurementOptions(
                    warmup: 1, repeats: 1, precision: 0.5, maximumTime: .seconds(60),
                    minimumSampleTime: .microseconds(200)))
            #expect(report.count >= 6)
            let interval = try #require(report.p50Interval)
            #expect(interval.contains(report.p50Ms) && interval.low > 0 && interval.confidence >= 0.95)
            #expect((report.runsPerSample ?? 0) >= 1)
            let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(report)) as? [String: Any]
            // JSONSerialization may round the last digit: compare with a relative tolerance.
            let low = (json?["latency_p50_interval"] as? [String: Any])?["low_ms"] as? Double ?? .nan
            #expect(abs(low - interval.low) <= 1e-12 * interval.low)
            #expect(try JSONDecoder().decode(LatencyReport.self, from: try JSONEncoder().encode(report)) == report)
            for options in [
                MeasurementOptions(precision: 1.5), MeasurementOptions(precision: .nan),
                MeasurementOptions(minimumTime: .seconds(5), precision: 0.01, maximumTime: .seconds(1)),
                MeasurementOptions(minimumSampleTime: .seconds(2)),
            ] {
                #expect(options.problem != nil)
                #expect(throws: OnnxError.self) { try measure(model: bytes, options) }
            }
            #expect(MeasurementOptions(precision: 0.01).problem == nil)
        }
    }

    @Test func aSampleIsPreemptedWhenItsWallTimeExceedsItsThreadTime() {
        let rule = PreemptionRule()
        #expect(!rule.preempted(wall: 1e-3, cpu: 1e-3))
        #expect(!rule.preempted(wall: 1e-3, cpu: 1.0001e-3))  // the CPU clock read around the wall clock's window
        #expect(!rule.preempted(wall: 1.015e-3, cpu: 1e-3))  // 1.5% over: an interrupt, not a time slice
        #expect(rule.preempted(wall: 1.05e-3, cpu: 1e-3))
        #expect(rule.preempted(wall: 4e-3, cpu: 1e-3))
        // Below the floor the clocks' resolution decides: 1.5 us over 10 us is not counted, 2.5 us is.
        #expect(!rule.preempted(wall: 11.5e-6, cpu: 10e-6))
        #expect(rule.preempted(wall: 12.5e-6, cpu: 10e-6))
        #expect(PreemptionRule(margin: 0, floor: .zero).preempted(wall: 1.0000001, cpu: 1))
        for bad in [PreemptionRule(margin: -0.1), PreemptionRule(margin: .nan), PreemptionRule(floor: .microseconds(-1))] {
            #expect(MeasurementOptions(preemption: bad).problem?.contains("preemption margin") == true)
        }
    }

    @Test func samplesDescheduledByCompetingThreadsAreCountedAndReported() async throws {
        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 3)])
        let bytes = try OnnxExport.serialized(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 3))
        // Twice as many spinning threads as CPUs for the whole measurement, and samples of back-to-back runs lasting
        // 10 ms together (on its CPU clock): time slices are a few milliseconds, so the scheduler must take the
        // measuring thread off its CPU inside samples. (Between short samples it need not: the CPU clock's system
        // calls around each sample are where the kernel likes to switch, outside the timed window.)
        let stop = Atomic<Bool>(false)
        let spinners = ProcessInfo.processInfo.activeProcessorCount * 2
        for _ in 0..<spinners {
            Thread.detachNewThread {
                var x = 0
                while !stop.load(ordering: .relaxed) { x &+= 1 }
                _ = x
            }
        }
        defer { stop.store(true, ordering: .relaxed) }
        for policy in PreemptedSamples.allCases {
            let report: LatencyReport = try await withCheckedThrowingContinuation { continuation in
                Thread.detachNewThread {
                    continuation.resume(
                        with: Result {
                            try measure(
                                model: bytes,
                                MeasurementOptions(
                                    warmup: 2, repeats: 3, minimumSampleTime: .milliseconds(10), preempted: policy))
                        })
                }
            }
            let preempted = try #require(report.preemptedCount, "\(policy)")
            #expect(preempted > 0, "\(policy)")
            // Dropped samples are timed again: the report holds the repeats asked for; after ten times as many
            // attempts (30) the dropped ones count their CPU time and the rest are kept, descheduled or not.
            if policy == .discard {
                #expect(report.count >= 3 && preempted <= 33, "\(policy): \(preempted) descheduled, \(report.count) kept")
            } else {
                #expect(preempted <= report.count, "\(policy): \(preempted) of \(report.count)")
            }
            let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(report)) as? [String: Any]
            #expect(json?["latency_preempted_runs"] as? Int == preempted)
        }
    }

    /// Against the reference workload: the report has the reference's time and the model's ratio to it, in JSON
    /// too; a model with about twenty times the work has the larger ratio; the thread's CPUs are given back after a
    /// pinned measurement.
    @Test func aMeasurementAgainstTheReferenceReportsTheRatio() async throws {
        func model(_ filters: Int, _ layers: Int) throws -> [UInt8] {
            let architecture = CNNArchitecture(
                layers: Array(repeating: ConvLayer(kernelSize: 3, filters: filters), count: layers))
            return try OnnxExport.serialized(
                architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 3))
        }
        let (small, large) = (try model(2, 1), try model(16, 3))
        let options = MeasurementOptions(warmup: 2, repeats: 30, preempted: .discard, pinned: true, reference: true)
        let (reports, cpus): ([LatencyReport], [Int]) = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(
                    with: Result {
                        let cpus = ThreadAffinity.current()
                        let reports = [try measure(model: small, options), try measure(model: large, options)]
                        #expect(ThreadAffinity.current() == cpus)
                        return (reports, cpus)
                    })
            }
        }
        #expect(!cpus.isEmpty)
        for report in reports {
            let (reference, ratio) = (try #require(report.referenceMs), try #require(report.referenceRatio))
            #expect(reference > 0 && ratio > 0 && ratio.isFinite)
            #expect(report.count >= 30)
            let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(report)) as? [String: Any]
            #expect(json?["latency_reference_ratio"] as? Double != nil && json?["latency_reference_ms"] as? Double != nil)
        }
        #expect(reports[1].referenceRatio! > reports[0].referenceRatio!)
        // Without the reference the report has neither.
        let plain = try measure(model: small, MeasurementOptions(warmup: 1, repeats: 5))
        #expect(plain.referenceMs == nil && plain.referenceRatio == nil)
    }
}
