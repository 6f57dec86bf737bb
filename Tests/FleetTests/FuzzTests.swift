import Foundation
import Testing

@testable import Fleet

/// Short runs of the committed fuzzers (fuzz/), so that CI keeps them working; run them longer on demand.
@Suite struct FuzzTests {
    @Test func randomAndMutatedBytesNeverCrashTheDecoding() {
        var generator = SystemRandomNumberGenerator()
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
            "--iterations", "150", "--seconds", "30", "--seed", "7",
        ])
        #expect(result.status == 0, "fuzz_server.py: \(result.stderr) (run scripts/bootstrap.sh for h2)")
        #expect(result.stdout.contains("server healthy"))
        // The fleet still works after the fuzzing.
        #expect(try await fleet.client.evaluate(model: [1, 2, 3], deviceType: "cpu") == ConstantRunner().metrics)
        await fleet.shutdown()
    }
}
