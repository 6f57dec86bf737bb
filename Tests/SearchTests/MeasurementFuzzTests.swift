import Constraints
import Foundation
import Predictor
import TestSupport
import Testing
import Trainer

@testable import Search

/// Seeded fuzzing of what the measurement store and the predictor's inputs decode: store rows (a schema-1 store
/// migrated with corrupted rows), the kernel times kept with them, the `kernel_latency_ms.NODE` metrics a worker
/// sends and the trial's `measurements.json`. Bad input is a skipped row with its reason or a thrown error, never a
/// crash. `NAS_FUZZ_SEED` reproduces a run.
@Suite struct MeasurementFuzzTests {
    static let seed: UInt64 = ProcessInfo.processInfo.environment["NAS_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_261_203

    /// Valid column texts of one row: attributes, features (two timed kernels) and metrics; and its kernel times.
    static let attributes = #"{"cpu":"test","runtime":"native"}"#
    static let features =
        #"{"kernels":[{"kind":"conv","flops":1000,"input_elements":10,"output_elements":20,"weight_elements":30,"node":"a"},{"kind":"pointwise","flops":500,"input_elements":20,"output_elements":20,"weight_elements":4,"node":"b"}]}"#
    static let metrics = #"{"latency_ms":1.5,"memory_bytes":100}"#
    static let kernelTimes = #"{"a":0.5,"b":0.75}"#

    /// `text` with 1 to 4 bytes replaced by printable ones, deleted, or the text cut short.
    static func mutate(_ text: String, _ generator: inout SeededGenerator) -> String {
        var bytes = Array(text.utf8)
        switch Int.random(in: 0..<3, using: &generator) {
        case 0:
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 32...126, using: &generator)
            }
        case 1:
            for _ in 0..<Int.random(in: 1...4, using: &generator) where bytes.count > 1 {
                bytes.remove(at: Int.random(in: 0..<bytes.count, using: &generator))
            }
        default:
            bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &generator)))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func decodes<T: Decodable>(_ text: String, as type: T.Type) -> Bool {
        (try? JSONDecoder().decode(type, from: Data(text.utf8))) != nil
    }

    @Test func aMigratedStoreWithCorruptedRowsSkipsThemWithAReason() throws {
        print("MeasurementFuzzTests: seed \(Self.seed) (NAS_FUZZ_SEED=\(Self.seed) reproduces this run)")
        var generator = SeededGenerator(seed: Self.seed)
        let path = try TestSupport.temporaryDirectory("nas-msfuzz").appendingPathComponent("m.sqlite").path
        // A store as schema 1 wrote it (no kernel_times column), with intact and corrupted rows.
        var expected: [(kept: Bool, timed: Bool)] = []
        do {
            let database = try MeasurementStoreTests.schemaOneStore(at: path)
            for index in 0..<300 {
                var columns: [SQLValue] = [.text(Self.attributes), .text(Self.features), .text(Self.metrics)]
                if index % 3 != 0 {  // every third row intact
                    let column = Int.random(in: 0..<3, using: &generator)
                    columns[column] =
                        Int.random(in: 0..<8, using: &generator) == 0
                        ? .integer(Int64.random(in: -9...9, using: &generator))
                        : .text(Self.mutate([Self.attributes, Self.features, Self.metrics][column], &generator))
                }
                let kept =
                    columns[0].string.map { Self.decodes($0, as: [String: String].self) } == true
                    && columns[1].string.map { Self.decodes($0, as: ModelFeatures.self) } == true
                    && columns[2].string.map { Self.decodes($0, as: [String: Double].self) } == true
                expected.append((kept, false))
                try database.execute(
                    "INSERT INTO measurements (device_type, attributes, runtime, model_sha256, features, metrics, measured_at) VALUES ('cpu', ?, 'native', ?, ?, ?, ?)",
                    [columns[0], .text("sha\(index)"), columns[1], columns[2], .real(Double(index))])
            }
        }
        // Opened: migrated to schema 2; then rows with kernel times, some of them corrupted.
        let store = try MeasurementStore(path: path)
        do {
            let database = try Database(path: path, create: false)
            for index in 300..<400 {
                let times = index % 2 == 0 ? Self.kernelTimes : Self.mutate(Self.kernelTimes, &generator)
                expected.append((true, Self.decodes(times, as: [String: Double].self)))
                try database.execute(
                    "INSERT INTO measurements (device_type, attributes, runtime, model_sha256, features, metrics, measured_at, kernel_times) VALUES ('cpu', ?, 'native', ?, ?, ?, ?, ?)",
                    [.text(Self.attributes), .text("sha\(index)"), .text(Self.features), .text(Self.metrics),
                     .real(Double(index)), .text(times)])
            }
        }
        let read = try store.read(deviceType: "cpu")
        let kept = read.records.map(\.modelSHA256)
        #expect(kept == expected.indices.filter { expected[$0].kept }.map { "sha\($0)" })
        let skipped = read.problems.filter { $0.reason.hasSuffix("; skipped") }
        let untimed = read.problems.filter { $0.reason.hasSuffix("kept without its kernel times") }
        #expect(skipped.map(\.row) == expected.indices.filter { !expected[$0].kept }.map { $0 + 1 })
        #expect(untimed.count == expected[300...].filter { !$0.timed }.count)
        #expect(skipped.count > 50 && untimed.count > 10)  // the seed's mutations broke enough rows to mean something
        #expect(read.problems.allSatisfy { problem in
            ["attributes", "features", "metrics", "kernel_times"].contains { problem.reason.contains("its \($0)") }
        })
        print("MeasurementFuzzTests: \(read.records.count) kept, e.g. \(skipped.first.map { "\($0)" } ?? "-")")
        // What was kept is learnt from: the intact timed rows pair their times with the kernels by node (a mutated
        // text that still decodes may name another node: then the row is learnt as a whole model).
        let samples = read.records.compactMap(\.sample)
        #expect(samples.count >= expected.filter(\.kept).count / 2)
        #expect((50...expected[300...].filter(\.timed).count).contains(samples.filter { $0.kernelLatencies != nil }.count))
        do {
            #expect(try LatencyPredictor.fit(samples).sampleCount == samples.count)
        } catch let error as PredictorError {
            #expect("\(error)".contains("cannot fit the latency predictor"))
        }
    }

    @Test func aDamagedSchemaOrStoreFileIsAClearError() throws {
        let folder = try TestSupport.temporaryDirectory("nas-msfuzz")
        let path = folder.appendingPathComponent("m.sqlite").path
        let store = try MeasurementStore(path: path)
        for index in 0..<40 { try store.add(MeasurementStoreTests.record(Double(index + 1), sha: "s\(index)")) }
        try Database(path: path, create: false).execute("UPDATE meta SET value = 'two' WHERE key = 'schema'")
        #expect {
            try MeasurementStore(path: path)
        } throws: { "\($0)".contains("schema 'two', which is no version number") }
        try Database(path: path, create: false).execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
        // The file's bytes mutated after its header: opening and reading either work or throw, never crash.
        _ = try Database(path: path, create: false).query("PRAGMA wal_checkpoint(TRUNCATE)")
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        var generator = SeededGenerator(seed: Self.seed &+ 1)
        var (opened, refused) = (0, 0)
        for round in 0..<40 {
            var bytes = [UInt8](original)
            for _ in 0..<Int.random(in: 1...16, using: &generator) {
                bytes[Int.random(in: 100..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            let copy = folder.appendingPathComponent("damaged\(round).sqlite").path
            try Data(bytes).write(to: URL(fileURLWithPath: copy))
            do {
                let rows = try MeasurementStore(path: copy).read()
                #expect(rows.records.count + rows.problems.filter { $0.reason.hasSuffix("skipped") }.count <= 40)
                opened += 1
            } catch {
                #expect(!"\(error)".isEmpty)
                refused += 1
            }
        }
        print("MeasurementFuzzTests: damaged files: \(opened) read, \(refused) refused")
        #expect(opened + refused == 40)
    }

    @Test func kernelMetricsAndTheTrialsMeasurementsFileNeverCrash() throws {
        var generator = SeededGenerator(seed: Self.seed &+ 2)
        let prefix = MetricName.kernelLatencyPrefix
        let values: [Double] = [.nan, .infinity, -.infinity, -1, 0, 0.25, 3, 1e300, -0.0]
        let path = try TestSupport.temporaryDirectory("nas-msfuzz").appendingPathComponent("m.sqlite").path
        let store = try MeasurementStore(path: path)
        let features = try JSONDecoder().decode(ModelFeatures.self, from: Data(Self.features.utf8))
        var kept: [String: [String: Double]] = [:]
        for round in 0..<500 {
            var metrics: [String: Double] = ["latency_ms": values.randomElement(using: &generator)!]
            for _ in 0..<Int.random(in: 0...4, using: &generator) {
                let node = ["a", "b", "", "a.b", "ü", "x"].randomElement(using: &generator)!
                metrics[prefix + node] = values.randomElement(using: &generator)!
            }
            if Bool.random(using: &generator) { metrics[String(prefix.dropLast())] = 1 }  // no dot: an ordinary metric
            let measurement = DeviceMeasurement(deviceType: "cpu", metrics: metrics, runtime: "native")
            #expect(measurement.metrics.keys.allSatisfy { !$0.hasPrefix(prefix) })
            let times = measurement.kernelTimes ?? [:]
            #expect(times.keys.allSatisfy { !$0.isEmpty })
            #expect(times.values.allSatisfy { $0.isFinite && $0 >= 0 })
            let record = MeasurementRecord(
                deviceType: "cpu", workerID: nil, attributes: [:], runtime: "native", modelSHA256: "m\(round)",
                features: features, metrics: measurement.metrics, kernelTimes: measurement.kernelTimes)
            try store.add(record)
            kept[record.modelSHA256] = record.kernelTimes
        }
        let read = try store.read()
        #expect(read.records.count == 500 && read.problems.isEmpty)
        #expect(read.records.allSatisfy { $0.kernelTimes == kept[$0.modelSHA256] })
        #expect(read.records.compactMap(\.sample).contains { $0.kernelLatencies != nil })
        // What a fit makes of them: a predictor, or a PredictorError saying which measurement is unusable.
        do {
            _ = try LatencyPredictor.fit(read.records.compactMap(\.sample))
        } catch let error as PredictorError {
            #expect("\(error)".contains("cannot fit the latency predictor"))
        }
        // The trial's measurements.json, mutated: decoded or refused.
        let sidecar = String(
            decoding: try JSONEncoder().encode([
                DeviceMeasurement(
                    deviceType: "cpu", metrics: ["latency_ms": 1, prefix + "a": 0.5], workerID: "w",
                    attributes: ["runtime": "native"], runtime: "native")
            ]), as: UTF8.self)
        var decoded = 0
        for _ in 0..<1000 {
            let text = Self.mutate(sidecar, &generator)
            if let answers = try? JSONDecoder().decode([DeviceMeasurement].self, from: Data(text.utf8)) {
                decoded += 1
                for answer in answers {
                    _ = MeasurementRecord(
                        deviceType: answer.deviceType, workerID: answer.workerID, attributes: answer.attributes,
                        runtime: answer.runtime, modelSHA256: "x", features: features, metrics: answer.metrics,
                        kernelTimes: answer.kernelTimes
                    ).sample
                }
            }
        }
        #expect(decoded > 0)
    }
}
