import Constraints
import Foundation
import TestSupport
import Testing

@Suite struct SeedRewardTests {
    /// The table of the seed tutorial: accuracy 0.95, target 0.8M FLOPs.
    @Test(arguments: [
        (0.4, false, 1.9), (0.4, true, 0.95), (1.6, false, 0.475), (1.6, true, 0.475), (0.8, false, 0.95),
        (0.8, true, 0.95),
    ])
    func tutorialTable(measured: Double, hard: Bool, expected: Double) throws {
        let reward = try SeedReward.compute(
            accuracy: 0.95, targetLatencyOrFlops: 0.8, measuredLatencyOrFlops: measured, useHardLimit: hard)
        #expect(abs(reward - expected) < 1e-12)
    }

    @Test func memoryIsIgnoredWithoutATarget() throws {
        let without = try SeedReward.compute(accuracy: 0.9, targetLatencyOrFlops: 2, measuredLatencyOrFlops: 4)
        let ignored = try SeedReward.compute(
            accuracy: 0.9, targetLatencyOrFlops: 2, measuredLatencyOrFlops: 4, targetMemory: 0, measuredMemory: 123)
        #expect(without == ignored)
        #expect(abs(without - 0.45) < 1e-12)
        let withMemory = try SeedReward.compute(
            accuracy: 0.9, targetLatencyOrFlops: 2, measuredLatencyOrFlops: 4, targetMemory: 10, measuredMemory: 20)
        #expect(abs(withMemory - 0.225) < 1e-12)
    }

    @Test func measuredMemoryZeroWithATargetIsAnError() {
        #expect(throws: ConstraintError.self) {
            try SeedReward.compute(
                accuracy: 0.9, targetLatencyOrFlops: 2, measuredLatencyOrFlops: 4, targetMemory: 10, measuredMemory: 0)
        }
        do {
            _ = try SeedReward.compute(
                accuracy: 0.9, targetLatencyOrFlops: 2, measuredLatencyOrFlops: 4, targetMemory: 10, measuredMemory: 0)
        } catch {
            #expect("\(error)".contains("measured_memory should not be 0"))
        }
    }

    @Test func softModeRaisesTheRewardBelowTheTarget() throws {
        let soft = try SeedReward.compute(
            accuracy: 0.5, targetLatencyOrFlops: 10, measuredLatencyOrFlops: 5, weight: 2, useHardLimit: false)
        #expect(abs(soft - 2.0) < 1e-12)
    }

    /// Random and edge inputs scored by CPython and by Swift: the same reward, or both refuse.
    @Test func matchesCPythonOnRandomAndEdgeInputs() async throws {
        var generator = SplitMix(seed: 7)
        let specials: [Double] = [0, -0.0, 1, -1, 0.5, 2, 1e-300, 1e300, -3.5, 0.8, 1.6, 0.4]
        func pick() -> Double {
            generator.next() % 3 == 0
                ? specials[Int(generator.next() % UInt64(specials.count))]
                : Double(Int64(bitPattern: generator.next() % 2_000_000) - 1_000_000) / 1000
        }
        var lines: [String] = []
        var inputs: [(Double, Double, Double, Double, Double, Double, Bool)] = []
        for _ in 0..<3000 {
            let input = (pick(), pick(), pick(), pick(), pick(), pick(), generator.next() % 2 == 0)
            inputs.append(input)
            lines.append(
                "{\"accuracy\": \(input.0), \"target_latency_or_flops\": \(input.1), \"measured_latency_or_flops\": \(input.2), \"target_memory\": \(input.3), \"measured_memory\": \(input.4), \"weight\": \(input.5), \"use_hard_limit\": \(input.6 ? "true" : "false")}"
            )
        }
        let script = TestSupport.packageRoot.appendingPathComponent("bench/reward/seed_reward.py").path
        let output = try await TestSupport.run("/usr/bin/env", ["python3", script], input: Data(lines.joined(separator: "\n").utf8))
        let answers = output.stdout.split(separator: "\n")
        try #require(answers.count == inputs.count, "python printed \(answers.count) lines: \(output.stderr)")
        var compared = 0
        var refused = 0
        for (input, answer) in zip(inputs, answers) {
            let swift = try? SeedReward.compute(
                accuracy: input.0, targetLatencyOrFlops: input.1, measuredLatencyOrFlops: input.2, targetMemory: input.3,
                measuredMemory: input.4, weight: input.5, useHardLimit: input.6)
            let python = try JSON.parse(String(answer))
            if case .number(let expected)? = python["reward"] {
                let got = try #require(swift, "Swift refused \(input) but Python gave \(expected)")
                #expect(got == expected || (got.isNaN && expected.isNaN), "\(input): Swift \(got), Python \(expected)")
                compared += 1
            } else {
                #expect(swift == nil, "\(input): Python refused (\(answer)) but Swift gave \(swift!)")
                refused += 1
            }
        }
        #expect(compared > 500)
        #expect(refused > 50)
    }
}

/// A small seeded generator, so that failures reproduce.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
