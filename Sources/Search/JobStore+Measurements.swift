import Foundation

extension JobStore {
    /// Keeps a device measurement of one of the job's trials in the job's store.
    public func addMeasurement(_ record: MeasurementRecord) throws {
        try MeasurementTable.prepare(database)
        try MeasurementTable.insert(record, into: database)
    }

    /// The job's measurements, oldest first (none in jobs written before measurements were kept); rows that do
    /// not decode are left out (`readMeasurements` says which and why).
    public func measurements(deviceType: String? = nil) throws -> [MeasurementRecord] {
        try readMeasurements(deviceType: deviceType).records
    }

    /// The job's measurements, oldest first, with the rows that do not decode.
    public func readMeasurements(deviceType: String? = nil) throws -> MeasurementRows {
        try MeasurementTable.prepare(database)
        return try MeasurementTable.read(in: database, deviceType: deviceType)
    }
}

extension JobStore {
    /// Records a candidate that the latency screen kept from training: state `screened`, with its predictions
    /// as metrics and why in its `error` column (shown as the reason, not as a failure); returns its id.
    @discardableResult
    public func addScreenedTrial(parameters: String, decisions: [Int], metrics: [String: Double], reason: String)
        throws -> Int
    {
        let json = String(decoding: try JSONEncoder().encode(metrics.filter { $0.value.isFinite }), as: UTF8.self)
        let now = Date().timeIntervalSince1970
        try database.execute(
            "INSERT INTO trials (state, parameters, decisions, metrics, error, started_at, ended_at) VALUES ('screened', ?, ?, ?, ?, ?, ?)",
            [
                .text(parameters), .text(decisions.map(String.init).joined(separator: ",")), .text(json),
                .text(reason), .real(now), .real(now),
            ])
        return database.lastInsertedID
    }

    /// Adds `metrics` to a trial's recorded metrics (its prediction, once it was measured).
    public func mergeMetrics(_ id: Int, _ metrics: [String: Double]) throws {
        guard var trial = try trials().first(where: { $0.id == id }) else { throw JobStoreError.unknownTrial(id) }
        trial.metrics.merge(metrics.filter { $0.value.isFinite }) { _, new in new }
        let json = String(decoding: try JSONEncoder().encode(trial.metrics), as: UTF8.self)
        try database.execute("UPDATE trials SET metrics = ? WHERE id = ?", [.text(json), .integer(Int64(id))])
    }
}
