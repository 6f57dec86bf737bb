import Constraints
import Foundation

/// One intermediate result of a trial: its accuracy after `step` steps (epochs for the built-in trainer).
public struct CurvePoint: Hashable, Sendable {
    /// The trial.
    public var trialID: Int
    /// The step (`global_step` of a hypertune line, the epoch of the built-in trainer).
    public var step: Double
    /// The accuracy at that step.
    public var value: Double

    /// A point.
    public init(trialID: Int, step: Double, value: Double) {
        self.trialID = trialID
        self.step = step
        self.value = value
    }
}

extension JobStore {
    /// The metric of a pruned trial that says at which step it was stopped.
    public static let prunedAtStepMetric = "pruned_at_step"

    /// The table of learning curves (schema 3): one row per intermediate result, `seq` keeping their arrival
    /// order, which a resumed pruner replays.
    static let curvesSchema = """
        CREATE TABLE IF NOT EXISTS curves (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, trial_id INTEGER NOT NULL, step REAL NOT NULL, value REAL NOT NULL)
        """

    /// Schema 2 (before curves) lacks the curves table: it is added, so that an old job resumes with pruning.
    static func addCurvesTable(_ database: Database) throws {
        let tables = try database.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'curves'")
        guard tables.isEmpty else { return }
        try database.transaction {
            try database.execute(curvesSchema)
            try database.execute("UPDATE job SET value = '3' WHERE key = 'schema'")
        }
    }

    /// The job's schema version (`1`, `2`, `3`).
    public func schemaVersion() throws -> Int {
        Int(try database.query("SELECT value FROM job WHERE key = 'schema'").first?.first?.string ?? "") ?? 1
    }

    /// Appends intermediate results, in order, in one transaction.
    public func addCurvePoints(_ points: [CurvePoint]) throws {
        guard !points.isEmpty else { return }
        try database.transaction {
            for point in points {
                try database.execute(
                    "INSERT INTO curves (trial_id, step, value) VALUES (?, ?, ?)",
                    [.integer(Int64(point.trialID)), .real(point.step), .real(point.value)])
            }
        }
    }

    /// Every intermediate result in the order it arrived; none for a job written before curves (opened read-only,
    /// so without the table).
    public func curvePoints() throws -> [CurvePoint] {
        let tables = try database.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'curves'")
        guard !tables.isEmpty else { return [] }
        return try database.query("SELECT trial_id, step, value FROM curves ORDER BY seq").map {
            CurvePoint(trialID: $0[0].int ?? 0, step: $0[1].double ?? 0, value: $0[2].double ?? 0)
        }
    }

    /// Each trial's curve, by trial id, in step order.
    public func curves() throws -> [Int: [CurvePoint]] {
        Dictionary(grouping: try curvePoints(), by: \.trialID).mapValues { $0.sorted { $0.step < $1.step } }
    }

    /// Records that the pruner stopped a trial at `step` with `value`: its partial accuracy is its
    /// `top_1_accuracy`, it has no reward, and it is not a failure.
    public func markPruned(_ id: Int, step: Double, value: Double) throws {
        let metrics = [MetricName.accuracy.rawValue: value, Self.prunedAtStepMetric: step]
        let json = String(decoding: try JSONEncoder().encode(metrics), as: UTF8.self)
        try update(
            id, "state = 'pruned', metrics = ?, reward = NULL, error = NULL, ended_at = ?",
            [.text(json), .real(Date().timeIntervalSince1970)])
    }

    /// Records that a trial was not trained: its untrained model missed a hard device target; `metrics` hold
    /// what was measured.
    public func markInfeasible(_ id: Int, metrics: [String: Double], reason: String) throws {
        let json = String(decoding: try JSONEncoder().encode(metrics), as: UTF8.self)
        try update(
            id, "state = 'infeasible', metrics = ?, reward = NULL, error = ?, ended_at = ?",
            [.text(json), .text(reason), .real(Date().timeIntervalSince1970)])
    }
}

