import Foundation
import Testing

@testable import Fleet
@testable import FleetWire

/// Short runs of the committed fuzzers (fuzz/), so that CI keeps them working; run them longer on demand.
@Suite struct FuzzTests {
    /// The seed of the random inputs: fixed, so a failure reproduces; `NAS_FUZZ_SEED` picks another.
    static let seed: UInt64 = ProcessInfo.processInfo.environment["NAS_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_261_202

    @Test func randomAndMutatedBytesNeverCrashTheDecoding() {
        print("FuzzTests: seed \(Self.seed) (NAS_FUZZ_SEED=\(Self.seed) reproduces this run)")
        var generator = SplitMix64(seed: Self.seed)
        let seeds: [[UInt8]] = [
            RegisterRequest(deviceType: "cpu", attributes: ["a": "b"], capacity: 2, address: "http://h:1").encoded(),
            EvaluateRequest(deviceType: "gpu", model: [1, 2, 3], sha256: SHA256.hash([1]), deadlineMilliseconds: 9)
                .encoded(),
            ListWorkersResponse(workers: [WorkerInfo(workerID: "w", attributes: ["k": "v"], done: 3)]).encoded(),
        ]
        var decoded = 0
        for round in 0..<3000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                bytes = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...4, using: &generator) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            if (try? RegisterRequest(decoding: bytes)) != nil { decoded += 1 }
            _ = try? EvaluateRequest(decoding: bytes)
            _ = try? ListWorkersResponse(decoding: bytes)
            _ = try? RunRequest(decoding: bytes)
            _ = try? ErrorMessage(decoding: bytes)
        }
        // Some inputs are valid messages; the rest were refused with an error, none crashed.
        #expect(decoded > 0)
    }

    @Test func randomFramesAndCallsFromAPythonH2PeerLeaveTheServerHealthy() async throws {
        let python = try TestPaths.python()
        let fleet = try TestFleet()
        try await fleet.addWorker("cpu")
        let result = try await runProgram(python, [
            TestPaths.packageRoot.appendingPathComponent("fuzz/fuzz_server.py").path, fleet.url, TestFleet.token,
            "--iterations", "150", "--seconds", "30", "--seed", String(Self.seed),
        ])
        #expect(result.status == 0, "fuzz_server.py: \(result.stderr) (run scripts/bootstrap.sh for h2)")
        #expect(result.stdout.contains("server healthy"))
        // The fleet still works after the fuzzing.
        #expect(try await fleet.client.evaluate(model: [1, 2, 3], deviceType: "cpu") == ConstantRunner().metrics)
        await fleet.shutdown()
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small generator whose whole sequence follows from its seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
