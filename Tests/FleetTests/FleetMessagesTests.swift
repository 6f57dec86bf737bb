import Foundation
import Testing

@testable import Fleet
@testable import FleetWire

@Suite struct FleetMessagesTests {
    @Test func messagesRoundTripThroughProtobufC() throws {
        let register = RegisterRequest(
            deviceType: "cpu-x86", attributes: ["cores": "2", "os": "linux"], capacity: 4,
            address: "http://127.0.0.1:9000", workerID: "w-1")
        #expect(try RegisterRequest(decoding: register.encoded()) == register)
        let evaluate = EvaluateRequest(deviceType: "arm-a76", model: [1, 2, 3, 0, 255], sha256: SHA256.hash([1]),
                                       deadlineMilliseconds: 1234)
        #expect(try EvaluateRequest(decoding: evaluate.encoded()) == evaluate)
        let list = ListWorkersResponse(workers: [
            WorkerInfo(workerID: "a", deviceType: "t", attributes: ["k": "v"], state: "live", capacity: 2, inFlight: 1,
                       done: 10, failed: 1, lastHeartbeatMillisecondsAgo: 5, address: "http://x"),
            WorkerInfo(workerID: "b", deviceType: "u"),
        ])
        #expect(try ListWorkersResponse(decoding: list.encoded()) == list)
        let response = EvaluateResponse(metrics: ["latency_ms": 1.5, "memory_bytes": 4096], workerID: "a", attempts: 2)
        #expect(try EvaluateResponse(decoding: response.encoded()) == response)
        let error = ErrorMessage(code: .noWorker, message: "none")
        #expect(try ErrorMessage(decoding: error.encoded()) == error)
        #expect(try ListWorkersRequest(decoding: []) == ListWorkersRequest())
    }

    /// A model is taken straight from the body (the other fields through protobuf-c): any field order, the last of
    /// repeated model fields (as protobuf keeps), unknown fields skipped, and a body that is no message refused.
    @Test func modelsAreDecodedFromTheBodyWhateverTheFieldOrder() throws {
        let model: [UInt8] = (0..<300).map { UInt8($0 % 251) }
        let push = RunRequest(sha256: SHA256.hash(model), model: model, timeoutMilliseconds: 77)
        #expect(try RunRequest(decoding: push.encoded()) == push)
        #expect(try RunRequest(decoding: RunRequest(sha256: [9], timeoutMilliseconds: 5).encoded())
            == RunRequest(sha256: [9], timeoutMilliseconds: 5))
        // deadline_ms (4) = 1234, an older model (2), an unknown fixed64 field (9), the model (2), sha256 (3), then
        // device_type (1) last.
        var body: [UInt8] = [0x20, 0xd2, 0x09, 0x12, 0x02, 0xaa, 0xbb, 0x49] + [UInt8](repeating: 1, count: 8)
        body += [0x12, 0xac, 0x02] + model + [0x1a, 0x01, 0x07, 0x0a, 0x03] + Array("cpu".utf8)
        #expect(try EvaluateRequest(decoding: body)
            == EvaluateRequest(deviceType: "cpu", model: model, sha256: [7], deadlineMilliseconds: 1234))
        // The model's length runs past the end; then a well-formed model beside a truncated varint.
        #expect(throws: FleetError.self) { try EvaluateRequest(decoding: [0x12, 0x05, 0x01]) }
        #expect(throws: FleetError.self) { try RunRequest(decoding: [0x12, 0x01, 0x01, 0x18, 0xff]) }
    }

    @Test func malformedBytesAreATypedError() {
        // Field 1 as a length-delimited string whose length runs past the end.
        #expect(throws: FleetError.self) { try RegisterRequest(decoding: [0x0a, 0x7f, 0x41]) }
        #expect(throws: FleetError.self) { try EvaluateRequest(decoding: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) }
        do {
            _ = try HeartbeatRequest(decoding: [0x0a, 0x05, 0x61])
            Issue.record("decoding a truncated message succeeded")
        } catch {
            #expect(error.description.contains("HeartbeatRequest"))
        }
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hex(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(SHA256.hash(Array("abc".utf8)))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let million = [UInt8](repeating: 0x61, count: 1_000_000)
        #expect(SHA256.hex(SHA256.hash(million)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// The committed C must be what protoc-c makes of the committed .proto.
    @Test func committedGeneratedCodeIsFresh() async throws {
        let root = TestPaths.packageRoot
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("nas-protos-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let result = try await runProgram("/bin/bash", [root.appendingPathComponent("scripts/gen-fleet-protos.sh").path, out.path])
        try #require(result.status == 0, "gen-fleet-protos.sh failed: \(result.stderr)")
        let pairs = [
            ("fleet.pb-c.c", "Sources/CFleetProto/fleet.pb-c.c"),
            ("fleet.pb-c.h", "Sources/CFleetProto/include/fleet.pb-c.h"),
        ]
        for (generated, committed) in pairs {
            let fresh = try Data(contentsOf: out.appendingPathComponent(generated))
            let current = try Data(contentsOf: root.appendingPathComponent(committed))
            #expect(fresh == current, "\(committed) is stale: run scripts/gen-fleet-protos.sh and commit the result")
        }
    }
}
