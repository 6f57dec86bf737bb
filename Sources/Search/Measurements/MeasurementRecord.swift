import Constraints
import Foundation
import Predictor

/// One device measurement as kept: where and how it was measured, what was measured (the model's hash and
/// kernels) and the figures, in the job store and in the measurement store that outlives jobs.
public struct MeasurementRecord: Codable, Hashable, Sendable {
    /// The device type it was measured on (the fleet's routing key).
    public var deviceType: String
    /// The worker that measured it; nil when measured in the trial's own process.
    public var workerID: String?
    /// The worker's attributes as it registered them (or this machine's, measured in process).
    public var attributes: [String: String]
    /// What ran the model: `native` (the engine), `command`, or what the worker's `runtime` attribute says.
    public var runtime: String
    /// Lower-case hex sha256 of the ONNX bytes.
    public var modelSHA256: String
    /// The model's kernels as the engine fuses them.
    public var features: ModelFeatures
    /// The runner's figures by the trials' names: `latency_ms` (p50), `latency_mean_ms`, `latency_p90_ms`,
    /// `latency_p99_ms`, `latency_stddev_ms`, `latency_runs`, `memory_bytes`.
    public var metrics: [String: Double]
    /// The job it came from (its folder), if any.
    public var job: String?
    /// The trial it came from, if any.
    public var trialID: Int?
    /// Seconds since 1970.
    public var measuredAt: Double
    /// Each kernel's time in milliseconds by the node it computes (the native engine's profile), when the runner
    /// timed kernels; nil for other runtimes and for rows written before schema 2.
    public var kernelTimes: [String: Double]?

    /// A record.
    public init(
        deviceType: String, workerID: String?, attributes: [String: String], runtime: String, modelSHA256: String,
        features: ModelFeatures, metrics: [String: Double], job: String? = nil, trialID: Int? = nil,
        measuredAt: Double = Date().timeIntervalSince1970, kernelTimes: [String: Double]? = nil
    ) {
        self.deviceType = deviceType
        self.workerID = workerID
        self.attributes = attributes
        self.runtime = runtime
        self.modelSHA256 = modelSHA256
        self.features = features
        self.metrics = metrics
        self.job = job
        self.trialID = trialID
        self.measuredAt = measuredAt
        self.kernelTimes = kernelTimes
    }

    /// The p50 latency, milliseconds.
    public var latencyMilliseconds: Double? { metrics[MetricName.latency.rawValue] }

    /// The record as a predictor's sample, when it has a latency.
    public var sample: LatencySample? {
        latencyMilliseconds.map { LatencySample(features: features, latencyMilliseconds: $0, kernelTimes: kernelTimes) }
    }
}

/// The `measurements` table, the same in a job's store and in the measurement store.
enum MeasurementTable {
    static let create = """
        CREATE TABLE IF NOT EXISTS measurements (
            id INTEGER PRIMARY KEY, device_type TEXT NOT NULL, worker_id TEXT, attributes TEXT NOT NULL,
            runtime TEXT NOT NULL, model_sha256 TEXT NOT NULL, features TEXT NOT NULL, metrics TEXT NOT NULL,
            latency_ms REAL, memory_bytes REAL, job TEXT, trial_id INTEGER, measured_at REAL NOT NULL,
            kernel_times TEXT, UNIQUE (device_type, model_sha256, job, trial_id));
        CREATE INDEX IF NOT EXISTS measurements_by_device ON measurements (device_type, measured_at)
        """

    /// Creates the table, or adds the columns a table of an older schema lacks (schema 2: `kernel_times`).
    static func prepare(_ database: Database) throws {
        for statement in create.split(separator: ";") { try database.execute(String(statement)) }
        let columns = try database.query("PRAGMA table_info(measurements)").compactMap { $0[1].string }
        if !columns.contains("kernel_times") {
            try database.execute("ALTER TABLE measurements ADD COLUMN kernel_times TEXT")
        }
    }

    /// Inserts `record`; the same model measured again for the same trial replaces the earlier row.
    static func insert(_ record: MeasurementRecord, into database: Database) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func json<T: Encodable>(_ value: T) throws -> SQLValue { .text(String(decoding: try encoder.encode(value), as: UTF8.self)) }
        try database.execute(
            """
            INSERT OR REPLACE INTO measurements (device_type, worker_id, attributes, runtime, model_sha256, features,
                metrics, latency_ms, memory_bytes, job, trial_id, measured_at, kernel_times)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(record.deviceType), record.workerID.map { .text($0) } ?? .null, try json(record.attributes),
                .text(record.runtime), .text(record.modelSHA256), try json(record.features),
                try json(record.metrics.filter { $0.value.isFinite }),
                record.latencyMilliseconds.map { .real($0) } ?? .null,
                record.metrics[MetricName.memory.rawValue].map { .real($0) } ?? .null,
                record.job.map { .text($0) } ?? .null, record.trialID.map { .integer(Int64($0)) } ?? .null,
                .real(record.measuredAt),
                try record.kernelTimes.map { try json($0.filter { $0.value.isFinite }) } ?? .null,
            ])
    }

    /// The records, oldest first, of one device type or of all, and the rows that were skipped (or kept without
    /// their kernel times) because they do not decode, each with why.
    static func read(in database: Database, deviceType: String?) throws -> MeasurementRows {
        let columns =
            "device_type, worker_id, attributes, runtime, model_sha256, features, metrics, job, trial_id, measured_at, kernel_times, id"
        let rows =
            try deviceType.map {
                try database.query(
                    "SELECT \(columns) FROM measurements WHERE device_type = ? ORDER BY measured_at, id", [.text($0)])
            } ?? database.query("SELECT \(columns) FROM measurements ORDER BY measured_at, id")
        var result = MeasurementRows()
        for row in rows {
            let id = row[11].int ?? 0
            do {
                var record = try decode(row)
                do {
                    record.kernelTimes = try row[10].string.map { try decodeColumn("kernel_times", $0, as: [String: Double].self) }
                } catch {
                    result.problems.append(MeasurementProblem(row: id, reason: "\(error); kept without its kernel times"))
                }
                result.records.append(record)
            } catch {
                result.problems.append(MeasurementProblem(row: id, reason: "\(error); skipped"))
            }
        }
        return result
    }

    /// One row as a record (its kernel times left out); a column that is missing or does not decode is an error
    /// naming it.
    private static func decode(_ row: [SQLValue]) throws -> MeasurementRecord {
        func text(_ index: Int, _ name: String) throws -> String {
            guard let value = row[index].string else { throw MeasurementStoreError("its \(name) is not text") }
            return value
        }
        return MeasurementRecord(
            deviceType: try text(0, "device_type"), workerID: row[1].string,
            attributes: try decodeColumn("attributes", try text(2, "attributes"), as: [String: String].self),
            runtime: row[3].string ?? "", modelSHA256: row[4].string ?? "",
            features: try decodeColumn("features", try text(5, "features"), as: ModelFeatures.self),
            metrics: try decodeColumn("metrics", try text(6, "metrics"), as: [String: Double].self), job: row[7].string,
            trialID: row[8].int, measuredAt: row[9].double ?? 0)
    }

    private static func decodeColumn<T: Decodable>(_ name: String, _ text: String, as type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(text.utf8))
        } catch {
            let shown = text.count > 60 ? text.prefix(60) + "..." : Substring(text)
            throw MeasurementStoreError("its \(name) do not decode as JSON of \(T.self) ('\(shown)')")
        }
    }
}

/// Measurements as read from a store, with the rows that could not be read whole.
public struct MeasurementRows: Sendable {
    /// The records, oldest first.
    public var records: [MeasurementRecord] = []
    /// The rows skipped, or kept without their kernel times, and why.
    public var problems: [MeasurementProblem] = []

    /// Rows read; none by default.
    public init(records: [MeasurementRecord] = [], problems: [MeasurementProblem] = []) {
        self.records = records
        self.problems = problems
    }
}

/// A row of a `measurements` table that does not decode: its id and what was wrong.
public struct MeasurementProblem: Hashable, Sendable, CustomStringConvertible {
    /// The row's id in the table.
    public var row: Int
    /// What was wrong, and whether the row was skipped or kept without its kernel times.
    public var reason: String

    /// A problem of row `row`.
    public init(row: Int, reason: String) {
        self.row = row
        self.reason = reason
    }

    /// "measurement row N: reason".
    public var description: String { "measurement row \(row): \(reason)" }
}
