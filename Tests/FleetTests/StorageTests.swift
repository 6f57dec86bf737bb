import Foundation
import Testing

@testable import Fleet

@Suite("Storage backends (local folder and fake-gcs-server)")
struct StorageTests {
    @Test("write, read, exists, delete", arguments: StorageBackend.allCases)
    func readWriteDelete(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let storage = fixture.storage
        #expect(try storage.read("1/saved_model/model.onnx") == nil)
        #expect(try storage.exists("1/saved_model/model.onnx") == false)
        let first = try storage.write("1/saved_model/model.onnx", data: Array("onnx bytes".utf8))
        let object = try #require(try storage.read("1/saved_model/model.onnx"))
        #expect(object.data == Array("onnx bytes".utf8))
        #expect(object.generation == first)
        #expect(try storage.exists("1/saved_model/model.onnx"))
        let second = try storage.write("1/saved_model/model.onnx", data: [0, 1, 2, 255])
        #expect(second != first)
        #expect(try storage.read("1/saved_model/model.onnx")?.data == [0, 1, 2, 255])
        try storage.delete("1/saved_model/model.onnx")
        #expect(try storage.exists("1/saved_model/model.onnx") == false)
        try storage.delete("1/saved_model/model.onnx")  // deleting an absent object is fine
        let empty = try storage.write("empty.json", data: [])
        #expect(try storage.read("empty.json") == StoredObject(data: [], generation: empty))
    }

    @Test("list by prefix, across pages, without other prefixes", arguments: StorageBackend.allCases)
    func listing(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend, pageSize: 2)
        let storage = fixture.storage
        var expected = [String]()
        for trial in 1...4 {
            for file in ["nas_params_str.json", "saved_model/model.onnx"] {
                try storage.write("\(trial)/\(file)", data: [UInt8(trial)])
                expected.append("\(trial)/\(file)")
            }
        }
        try storage.write("job_status.json", data: Array("{}".utf8))
        #expect(try storage.list(prefix: "") == (expected + ["job_status.json"]).sorted())
        #expect(try storage.list(prefix: "3/") == ["3/nas_params_str.json", "3/saved_model/model.onnx"])
        #expect(try storage.list(prefix: "3/saved_model/") == ["3/saved_model/model.onnx"])
        #expect(try storage.list(prefix: "9/") == [])
        // A sibling job beside this one is not listed.
        if case .gcs = backend, let emulator = fixture.emulator {
            let sibling = try GCSStorage(
                bucket: "nas-test", prefix: "jobs/job-10",
                configuration: StorageTestSupport.emulatorConfiguration(emulator))
            try sibling.write("1/saved_model/model.onnx", data: [9])
            #expect(try storage.list(prefix: "1/") == ["1/nas_params_str.json", "1/saved_model/model.onnx"])
        }
    }

    @Test("create-if-absent lets exactly one writer win", arguments: StorageBackend.allCases)
    func createIfAbsent(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let storage = fixture.storage
        let won = try storage.createIfAbsent("5/saved_model/latency_worker_id.json", data: Array("a".utf8))
        #expect(won != nil)
        #expect(try storage.createIfAbsent("5/saved_model/latency_worker_id.json", data: Array("b".utf8)) == nil)
        #expect(try storage.read("5/saved_model/latency_worker_id.json")?.data == Array("a".utf8))
    }

    @Test("create-if-absent under contention: one winner among many threads", arguments: StorageBackend.allCases)
    func createRace(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let storage = fixture.storage
        let winners = try await withThrowingTaskGroup(of: Int?.self) { group in
            for contender in 0..<8 {
                group.addTask {
                    try storage.createIfAbsent("7/claim.json", data: Array("\(contender)".utf8)) != nil
                        ? contender : nil
                }
            }
            var winners = [Int]()
            for try await winner in group { if let winner { winners.append(winner) } }
            return winners
        }
        #expect(winners.count == 1)
        #expect(try storage.read("7/claim.json")?.data == Array("\(winners.first ?? -1)".utf8))
    }

    @Test("a local reader never sees half a file while a writer replaces it")
    func noTornReads() async throws {
        let fixture = try await StorageFixture(.local)
        let storage = fixture.storage
        let size = 1 << 17
        try storage.write("1/saved_model/model.onnx", data: [UInt8](repeating: 0, count: size))
        async let writer: Void = {
            for round in 1...40 {
                try storage.write("1/saved_model/model.onnx", data: [UInt8](repeating: UInt8(round), count: size))
            }
        }()
        var torn = 0
        for _ in 0..<100 {
            let object = try #require(try storage.read("1/saved_model/model.onnx"))
            if object.data.count != size || object.data.contains(where: { $0 != object.data[0] }) { torn += 1 }
        }
        try await writer
        #expect(torn == 0)
        #expect(try storage.list(prefix: "1/") == ["1/saved_model/model.onnx"])  // no temporary file left over
    }

    @Test("compare-and-swap succeeds only on the generation read", arguments: StorageBackend.allCases)
    func compareAndSwap(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let storage = fixture.storage
        let first = try #require(try storage.createIfAbsent("2/claim.json", data: Array("one".utf8)))
        let second = try #require(
            try storage.compareAndSwap("2/claim.json", data: Array("two".utf8), ifGeneration: first))
        #expect(second != first)
        // A writer still holding the first generation loses.
        #expect(try storage.compareAndSwap("2/claim.json", data: Array("three".utf8), ifGeneration: first) == nil)
        #expect(try storage.read("2/claim.json") == StoredObject(data: Array("two".utf8), generation: second))
        // Swapping an absent object fails rather than creating it.
        #expect(try storage.compareAndSwap("2/other.json", data: [1], ifGeneration: first) == nil)
        #expect(try storage.exists("2/other.json") == false)
    }

    @Test("keys that leave the job directory are typed errors", arguments: StorageBackend.allCases)
    func badKeys(_ backend: StorageBackend) async throws {
        let fixture = try await StorageFixture(backend)
        let storage = fixture.storage
        for key in ["../escape.json", "1/../../x", "/etc/passwd", "", "1//model.onnx", "1/./x", "1/"] {
            let error = try #require(throws: StorageError.self) { try storage.write(key, data: [1]) }
            #expect(error.isInvalidInput)
            #expect(error.description.contains("inside the job directory"))
            #expect(throws: StorageError.self) { try storage.read(key) }
        }
        #expect(throws: StorageError.self) { try storage.list(prefix: "../") }
    }

    @Test("job directory URLs: gs:// parsed, malformed ones rejected with the reason")
    func locations() throws {
        #expect(try StorageLocation.parse("gs://my-bucket/a/b/") == .gcs(bucket: "my-bucket", prefix: "a/b"))
        #expect(try StorageLocation.parse("gs://my-bucket") == .gcs(bucket: "my-bucket", prefix: ""))
        #expect(try StorageLocation.parse("/tmp/job") == .local(path: "/tmp/job"))
        let cases: [(String, String)] = [
            ("gs://", "bucket name is missing"), ("gs:/bucket/x", "starts with 'gs://'"),
            ("gs://My_Bucket/x", "contains 'M'"), ("gs://ab/x", "3 to 63"), ("gs://-abc/x", "start and end"),
            ("gs://bucket/../x", "prefix is not a valid path"), ("s3://bucket/x", "only gs://"),
        ]
        for (text, reason) in cases {
            let error = try #require(throws: StorageError.self) { try StorageLocation.parse(text) }
            #expect(error.description.contains(reason), "\(text): \(error)")
            #expect(error.isInvalidInput)
        }
    }

    @Test("a bucket that does not exist is a typed error naming it")
    func missingBucket() async throws {
        let emulator = try await FakeGCS()
        defer { emulator.stop() }
        let storage = try GCSStorage(
            bucket: "no-such-bucket", prefix: "job", configuration: StorageTestSupport.emulatorConfiguration(emulator))
        let error = try #require(throws: StorageError.self) { try storage.list(prefix: "") }
        #expect(error.description.contains("bucket 'no-such-bucket' does not exist"))
        #expect(throws: StorageError.self) { try storage.write("1/x", data: [1]) }
    }

    @Test("an unreachable endpoint is a transient error after the retries")
    func unreachable() throws {
        // Port 9 (discard): nothing listens there, where a port picked free might be taken by another test.
        let configuration = GCSStorage.Configuration(
            endpoint: "http://127.0.0.1:9", credentials: .none,
            retry: .init(maxAttempts: 2, initialDelay: .milliseconds(10), maxDelay: .milliseconds(20)))
        let storage = try GCSStorage(bucket: "nas-test", configuration: configuration)
        let error = try #require(throws: StorageError.self) { try storage.read("1/x") }
        #expect(error.isTransient)
        #expect(error.description.contains("reachable"))
    }

    @Test("credentials follow Google's order: emulator, token, ADC authorized_user, metadata server")
    func credentialOrder() throws {
        let folder = StorageTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let adc = folder + "/adc.json"
        try Data(
            #"{"type":"authorized_user","client_id":"id","client_secret":"s","refresh_token":"r"}"#.utf8
        ).write(to: URL(fileURLWithPath: adc))
        let emulator = try GCSStorage.Configuration.fromEnvironment(
            ["STORAGE_EMULATOR_HOST": "localhost:4443", "GOOGLE_OAUTH_ACCESS_TOKEN": "t"])
        #expect(emulator.endpoint == "http://localhost:4443")
        #expect(emulator.credentials == .none)
        let token = try GCSStorage.Configuration.fromEnvironment(
            ["GOOGLE_OAUTH_ACCESS_TOKEN": "t", "GOOGLE_APPLICATION_CREDENTIALS": adc])
        #expect(token.credentials == .accessToken("t"))
        #expect(token.endpoint == "https://storage.googleapis.com")
        let user = try GCSStorage.Configuration.fromEnvironment(["GOOGLE_APPLICATION_CREDENTIALS": adc])
        #expect(
            user.credentials
                == .authorizedUser(
                    clientID: "id", clientSecret: "s", refreshToken: "r",
                    tokenURI: "https://oauth2.googleapis.com/token"))
        let metadata = try GCSStorage.Configuration.fromEnvironment([
            "HOME": folder, "GCE_METADATA_HOST": "127.0.0.1:9",
        ])
        #expect(metadata.credentials == .metadataServer(host: "127.0.0.1:9"))
        try Data(#"{"type":"service_account"}"#.utf8).write(to: URL(fileURLWithPath: adc))
        let error = try #require(throws: StorageError.self) {
            try GCSStorage.Configuration.fromEnvironment(["GOOGLE_APPLICATION_CREDENTIALS": adc])
        }
        #expect(error.description.contains("service_account"))
    }
}
