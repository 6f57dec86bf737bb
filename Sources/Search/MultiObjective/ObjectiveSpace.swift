import Constraints

/// The objectives of a multi-objective search and of a job's hypervolume: maximise accuracy, minimise each
/// constrained metric, every metric normalised by its constraint's target.
///
/// A trial's normalised objectives, all minimised, are `(1 - accuracy, m_1 / T_1, ..., m_k / T_k)`; its
/// feasibility values are the constraints' `m_i / T_i - 1` (at most 0 is feasible), as Optuna's
/// `constraints_func` returns them. The default reference point is `(1, 1, ..., 1)`: accuracy 0 and every metric at
/// its target, so that a hypervolume is the share of the box `[0, 1] x [0, T_1] x ... x [0, T_k]` the front
/// dominates, between 0 and 1.
public struct ObjectiveSpace: Hashable, Sendable {
    /// The metric maximised (accuracy, in [0, 1]).
    public var accuracyMetric: String
    /// The metrics minimised, one per constraint.
    public var metrics: [String]
    /// Their targets, each finite and > 0.
    public var targets: [Double]

    /// Objectives from metrics and their targets (checked by the caller: the constraints already were).
    public init(accuracyMetric: String = MetricName.accuracy.rawValue, metrics: [String], targets: [Double]) {
        precondition(metrics.count == targets.count, "one target per metric")
        self.accuracyMetric = accuracyMetric
        self.metrics = metrics
        self.targets = targets
    }

    /// The objectives of a job's constraints: accuracy against each constraint's metric.
    public init(constraints: [Constraint]) {
        self.init(metrics: constraints.map(\.metric), targets: constraints.map(\.target))
    }

    /// How many objectives: accuracy and one per constraint.
    public var count: Int { metrics.count + 1 }

    /// The names of the objectives, accuracy first.
    public var names: [String] { [accuracyMetric] + metrics }

    /// The normalised, minimised objectives of a trial's metrics; nil when one is missing or not finite.
    public func objectives(_ values: [String: Double]) -> [Double]? {
        guard let accuracy = values[accuracyMetric], accuracy.isFinite else { return nil }
        var out = [1 - accuracy]
        for (metric, target) in zip(metrics, targets) {
            guard let value = values[metric], value.isFinite else { return nil }
            out.append(value / target)
        }
        return out
    }

    /// The feasibility values of a trial's metrics, `m_i / T_i - 1` (at most 0 is feasible); nil when one is
    /// missing or not finite.
    public func feasibility(_ values: [String: Double]) -> [Double]? {
        var out: [Double] = []
        for (metric, target) in zip(metrics, targets) {
            guard let value = values[metric], value.isFinite else { return nil }
            out.append(value / target - 1)
        }
        return out
    }

    /// The reference point `(1, ..., 1)`: accuracy 0, every metric at its target.
    public var defaultReference: [Double] { [Double](repeating: 1, count: count) }

    /// A reference point from `METRIC=VALUE,...` in the metrics' own units (`top_1_accuracy=0.5,latency_ms=0.08`);
    /// an objective not named keeps its default (accuracy 0, a metric at its target).
    public func reference(parsing spec: String) throws -> [Double] {
        var reference = defaultReference
        for item in spec.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let value = Double(parts[1]), value.isFinite else {
                throw ObjectiveError.badReference(spec, "'\(item)' is not METRIC=NUMBER")
            }
            if parts[0] == accuracyMetric {
                reference[0] = 1 - value
            } else if let index = metrics.firstIndex(of: parts[0]) {
                reference[index + 1] = value / targets[index]
            } else {
                throw ObjectiveError.badReference(
                    spec, "'\(parts[0])' is not an objective of this job; the objectives are \(names.joined(separator: ", "))")
            }
        }
        return reference
    }
}

/// An error in a multi-objective setting the user gave.
public struct ObjectiveError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable { case badReference }
    private let code: Code
    /// The readable explanation.
    public let message: String

    /// The readable explanation (the same as `message`).
    public var description: String { message }

    /// A reference point that does not read as `METRIC=VALUE,...` over the job's objectives.
    public static func badReference(_ spec: String, _ reason: String) -> ObjectiveError {
        ObjectiveError(
            code: .badReference,
            message: "invalid reference point '\(spec)': \(reason); write METRIC=VALUE,... in the metrics' own units, "
                + "e.g. top_1_accuracy=0.5,latency_ms=0.08")
    }
}
