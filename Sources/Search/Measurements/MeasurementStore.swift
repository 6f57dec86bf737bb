import Foundation
import Predictor

/// The measurements of every job on this machine, in one SQLite file that outlives the jobs: a second search on
/// the same device type starts with what the first one learned.
///
/// Several searches may write it at once: WAL, a busy timeout, and each insert its own transaction. The schema is
/// versioned (`meta.schema`); a file of a newer schema is refused rather than misread.
public final class MeasurementStore {
    /// The schema this version writes: 2 added each measurement's kernel times (`kernel_times`); a store of
    /// schema 1 is migrated when opened.
    public static let schemaVersion = 2
    /// The environment variable that sets the store's path (`--measurement-store` wins over it).
    public static let environmentVariable = "NAS_MEASUREMENT_STORE"

    /// The file's path.
    public let path: String
    private let database: Database

    /// The default path: `$NAS_MEASUREMENT_STORE`, else `$XDG_DATA_HOME/nas/measurements.sqlite`, else
    /// `~/.local/share/nas/measurements.sqlite`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let path = environment[environmentVariable], !path.isEmpty { return path }
        let data =
            environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? NSHomeDirectory()) as NSString).appendingPathComponent(".local/share")
        return ((data as NSString).appendingPathComponent("nas") as NSString).appendingPathComponent(
            "measurements.sqlite")
    }

    /// Opens the store at `path`, creating it (and its folder) when missing.
    public init(path: String) throws {
        self.path = path
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty { try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        do {
            database = try Database(path: path, create: true)
        } catch {
            throw MeasurementStoreError("cannot open the measurement store \(path): \(error); set another path with --measurement-store or \(Self.environmentVariable)")
        }
        do {
            try database.transaction {
                try database.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                let version = try database.query("SELECT value FROM meta WHERE key = 'schema'").first?.first?.string
                if let version, Int(version) == nil {
                    throw MeasurementStoreError(
                        "the measurement store \(path) has schema '\(version)', which is no version number: the file is damaged; move it away (a new store is made) or use another --measurement-store")
                }
                if let version, let number = Int(version), number > Self.schemaVersion {
                    throw MeasurementStoreError(
                        "the measurement store \(path) has schema \(version), newer than this nas reads (\(Self.schemaVersion)); upgrade nas or use another --measurement-store")
                }
                try MeasurementTable.prepare(database)
                try database.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", [.text(String(Self.schemaVersion))])
                try database.execute(
                    "CREATE TABLE IF NOT EXISTS predictors (device_type TEXT PRIMARY KEY, fitted_at REAL NOT NULL, measurements INTEGER NOT NULL, predictor TEXT NOT NULL)"
                )
            }
        } catch let error as MeasurementStoreError {
            throw error
        } catch {
            throw MeasurementStoreError("\(path) is not a nas measurement store (\(error)); give another --measurement-store")
        }
    }

    /// Keeps a measurement.
    public func add(_ record: MeasurementRecord) throws {
        try MeasurementTable.insert(record, into: database)
    }

    /// The measurements of `deviceType` (every type when nil), oldest first; rows that do not decode are left out
    /// (`read` says which and why).
    public func records(deviceType: String? = nil) throws -> [MeasurementRecord] {
        try read(deviceType: deviceType).records
    }

    /// The measurements of `deviceType` (every type when nil), oldest first, with the rows that do not decode.
    public func read(deviceType: String? = nil) throws -> MeasurementRows {
        try MeasurementTable.read(in: database, deviceType: deviceType)
    }

    /// Device types with measurements, and how many each.
    public func deviceTypes() throws -> [(deviceType: String, count: Int)] {
        try database.query("SELECT device_type, COUNT(*) FROM measurements GROUP BY device_type ORDER BY device_type")
            .map { ($0[0].string ?? "", $0[1].int ?? 0) }
    }

    /// Saves a fitted predictor of `deviceType`, replacing the last one.
    public func save(_ predictor: LatencyPredictor, deviceType: String) throws {
        try database.execute(
            "INSERT OR REPLACE INTO predictors VALUES (?, ?, ?, ?)",
            [
                .text(deviceType), .real(Date().timeIntervalSince1970), .integer(Int64(predictor.sampleCount)),
                .text(try predictor.jsonText()),
            ])
    }

    /// The last predictor fitted for `deviceType`, if any.
    public func predictor(deviceType: String) throws -> LatencyPredictor? {
        guard let text = try database.query("SELECT predictor FROM predictors WHERE device_type = ?", [.text(deviceType)])
            .first?.first?.string
        else { return nil }
        return try LatencyPredictor(jsonText: text)
    }
}

/// A measurement store that cannot be used: what was wrong and what to do.
public struct MeasurementStoreError: Error, CustomStringConvertible, Sendable {
    /// The explanation.
    public let description: String
    init(_ description: String) { self.description = description }
}
