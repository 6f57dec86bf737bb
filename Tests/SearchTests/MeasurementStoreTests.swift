import Foundation
import Predictor
import TestSupport
import Testing

@testable import Search

@Suite struct MeasurementStoreTests {
    static func record(_ latency: Double, sha: String = "ab", type: String = "cpu", trial: Int? = 1) -> MeasurementRecord {
        MeasurementRecord(
            deviceType: type, workerID: "w1", attributes: ["cpu": "test"], runtime: "native", modelSHA256: sha,
            features: ModelFeatures(kernels: [Kernel(kind: "conv", flops: 10, inputElements: 1, outputElements: 2, weightElements: 3)]),
            metrics: ["latency_ms": latency, "memory_bytes": 100], job: "/jobs/a", trialID: trial)
    }

    @Test func keepsMeasurementsAcrossOpeningsAndReplacesARepeat() throws {
        let path = try TestSupport.temporaryDirectory("nas-ms").appendingPathComponent("sub/m.sqlite").path
        let store = try MeasurementStore(path: path)
        try store.add(Self.record(1.5))
        try store.add(Self.record(1.7))  // the same trial's model again: replaces
        try store.add(Self.record(2, sha: "cd", trial: 2))
        try store.add(Self.record(3, type: "gpu"))
        let again = try MeasurementStore(path: path)
        let cpu = try again.records(deviceType: "cpu")
        #expect(cpu.map(\.latencyMilliseconds) == [1.7, 2])
        #expect(cpu[0].attributes == ["cpu": "test"] && cpu[0].workerID == "w1" && cpu[0].runtime == "native")
        #expect(cpu[0].features.kernels.first?.flops == 10)
        #expect(try again.deviceTypes().map(\.count) == [2, 1])
    }

    @Test func refusesANewerSchemaAndAFileThatIsNoStore() throws {
        let folder = try TestSupport.temporaryDirectory("nas-ms")
        let path = folder.appendingPathComponent("m.sqlite").path
        do {
            let store = try MeasurementStore(path: path)
            _ = store
        }
        let database = try Database(path: path, create: false)
        try database.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
        #expect {
            try MeasurementStore(path: path)
        } throws: { "\($0)".contains("schema 99, newer than this nas reads") }
        let text = folder.appendingPathComponent("text.sqlite").path
        try Data("not sqlite at all, just text that is long enough to be a header".utf8).write(to: URL(fileURLWithPath: text))
        #expect(throws: MeasurementStoreError.self) { try MeasurementStore(path: text) }
    }

    /// An empty store as schema 1 wrote it (no kernel_times column), open.
    static func schemaOneStore(at path: String) throws -> Database {
        let database = try Database(path: path, create: true)
        try database.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        try database.execute("INSERT INTO meta VALUES ('schema', '1')")
        try database.execute(
            """
            CREATE TABLE measurements (
                id INTEGER PRIMARY KEY, device_type TEXT NOT NULL, worker_id TEXT, attributes TEXT NOT NULL,
                runtime TEXT NOT NULL, model_sha256 TEXT NOT NULL, features TEXT NOT NULL, metrics TEXT NOT NULL,
                latency_ms REAL, memory_bytes REAL, job TEXT, trial_id INTEGER, measured_at REAL NOT NULL,
                UNIQUE (device_type, model_sha256, job, trial_id))
            """)
        return database
    }

    @Test func migratesASchemaOneStoreAndKeepsKernelTimes() throws {
        let path = try TestSupport.temporaryDirectory("nas-ms").appendingPathComponent("m.sqlite").path
        // A store as schema 1 wrote it: no kernel_times column.
        do {
            let database = try MeasurementStoreTests.schemaOneStore(at: path)
            try database.execute(
                """
                INSERT INTO measurements (device_type, attributes, runtime, model_sha256, features, metrics, measured_at)
                VALUES ('cpu', '{}', 'native', 'old', '{"kernels":[{"kind":"conv","flops":10,"input_elements":1,"output_elements":2,"weight_elements":3}]}', '{"latency_ms":1.25}', 1)
                """)
        }
        let store = try MeasurementStore(path: path)
        var timed = Self.record(2, sha: "new")
        timed.features.kernels[0].node = "c"
        timed.kernelTimes = ["c": 1.5]
        try store.add(timed)
        let records = try MeasurementStore(path: path).records(deviceType: "cpu")
        #expect(records.map(\.modelSHA256) == ["old", "new"])
        #expect(records[0].kernelTimes == nil && records[0].features.kernels[0].node.isEmpty)
        #expect(records[0].sample?.kernelLatencies == nil)
        #expect(records[1].kernelTimes == ["c": 1.5])
        #expect(records[1].sample?.kernelLatencies == [1.5])
        let schema = try Database(path: path, create: false).query("SELECT value FROM meta WHERE key = 'schema'")
        #expect(schema.first?.first?.string == String(MeasurementStore.schemaVersion))
        #expect(MeasurementStore.schemaVersion == 2)
    }

    @Test func concurrentWritersAllLand() async throws {
        let path = try TestSupport.temporaryDirectory("nas-ms").appendingPathComponent("m.sqlite").path
        _ = try MeasurementStore(path: path)
        // Four connections on their own threads, as four searches would be.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    try await onOwnThread {
                        let store = try MeasurementStore(path: path)
                        for index in 0..<25 { try store.add(Self.record(1, sha: "\(writer)-\(index)")) }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try MeasurementStore(path: path).records().count == 100)
    }

    @Test func savesAndReadsAPredictor() throws {
        let store = try MeasurementStore(path: try TestSupport.temporaryDirectory("nas-ms").appendingPathComponent("m.sqlite").path)
        #expect(try store.predictor(deviceType: "cpu") == nil)
        let samples = (1...6).map { i in
            LatencySample(
                features: ModelFeatures(kernels: [Kernel(kind: "conv", flops: Double(i) * 1e6, inputElements: 1, outputElements: 1, weightElements: 1)]),
                latencyMilliseconds: 0.1 + Double(i) * 0.05)
        }
        let predictor = try LatencyPredictor.fit(samples)
        try store.save(predictor, deviceType: "cpu")
        #expect(try store.predictor(deviceType: "cpu")?.coefficients == predictor.coefficients)
    }

    @Test func theDefaultPathFollowsTheEnvironment() {
        #expect(MeasurementStore.defaultPath(environment: ["NAS_MEASUREMENT_STORE": "/x/m.sqlite", "HOME": "/h"]) == "/x/m.sqlite")
        #expect(MeasurementStore.defaultPath(environment: ["XDG_DATA_HOME": "/d", "HOME": "/h"]) == "/d/nas/measurements.sqlite")
        #expect(MeasurementStore.defaultPath(environment: ["HOME": "/h"]) == "/h/.local/share/nas/measurements.sqlite")
    }
}
