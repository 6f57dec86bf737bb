import Constraints

/// The hypervolume of a job's front trial by trial, as Optuna's `plot_hypervolume_history` draws it.
///
/// Over the objectives of `ObjectiveSpace` (normalised: `1 - accuracy` and each metric over its target), against a
/// reference point (by default accuracy 0 and every metric at its target, which makes the value the share of that
/// box the front dominates, in [0, 1]). Only succeeded trials that meet every constraint count, as in Optuna; the
/// history has one value per trial in trial order, the hypervolume of the trials up to and including it.
public struct HypervolumeHistory: Sendable, Equatable {
    /// One step of the history.
    public struct Step: Sendable, Equatable {
        /// The trial.
        public var trial: Int
        /// The hypervolume of the feasible succeeded trials up to this one.
        public var hypervolume: Double
    }

    /// The objectives.
    public var objectives: ObjectiveSpace
    /// The reference point, normalised as the objectives are.
    public var reference: [Double]
    /// One step per trial, in trial order.
    public var steps: [Step]

    /// The hypervolume of all the trials' front (0 with no trial).
    public var hypervolume: Double { steps.last?.hypervolume ?? 0 }

    /// The history of `trials` against `reference` (normalised), or the default reference.
    public init(trials: [TrialRecord], objectives: ObjectiveSpace, reference: [Double]? = nil) {
        self.objectives = objectives
        self.reference = reference ?? objectives.defaultReference
        var front: [[Double]] = []
        var current = 0.0
        steps = []
        for trial in trials.sorted(by: { $0.id < $1.id }) {
            if trial.state == .succeeded, let point = objectives.objectives(trial.metrics),
                let feasibility = objectives.feasibility(trial.metrics), feasibility.allSatisfy({ $0 <= 0 }),
                !front.contains(where: { other in zip(other, point).allSatisfy { $0 <= $1 } })
            {
                front.removeAll { other in zip(point, other).allSatisfy { $0 <= $1 } }
                front.append(point)
                current = Hypervolume.of(front, reference: self.reference)
            }
            steps.append(Step(trial: trial.id, hypervolume: current))
        }
    }

    /// The reference point in the metrics' own units, `top_1_accuracy=0,latency_ms=0.05`.
    public var referenceDescription: String {
        var parts = ["\(objectives.accuracyMetric)=\(ResultsTable.format(1 - reference[0]))"]
        for (index, metric) in objectives.metrics.enumerated() {
            parts.append("\(metric)=\(ResultsTable.format(reference[index + 1] * objectives.targets[index]))")
        }
        return parts.joined(separator: ",")
    }

    /// The text form `nas trials list` prints: the value, the reference and the history.
    public var text: String {
        var text = "hypervolume \(ResultsTable.format(hypervolume)) (normalised; reference \(referenceDescription))"
        text += "\nhistory (trial:hypervolume): "
        text += steps.map { "\($0.trial):\(ResultsTable.format($0.hypervolume))" }.joined(separator: " ")
        return text
    }
}
