/// What one constraint contributed to a trial's reward.
public struct ConstraintOutcome: Hashable, Sendable {
    /// The constraint's name.
    public var name: String
    /// The metric it read.
    public var metric: String
    /// The metric's unit (may be empty).
    public var unit: String
    /// The measured value.
    public var measured: Double
    /// The target.
    public var target: Double
    /// The factor that multiplied accuracy.
    public var factor: Double
    /// `measured / target - 1`: <= 0 is feasible.
    public var feasibility: Double

    /// True when the measured value is at or below the target.
    public var isFeasible: Bool { feasibility <= 0 }
}

/// A trial's reward with the part each constraint played.
public struct RewardResult: Hashable, Sendable {
    /// The accuracy the reward started from.
    public var accuracy: Double
    /// `accuracy * prod(factor_i)`.
    public var reward: Double
    /// One outcome per constraint, in the order of the reward's constraints.
    public var outcomes: [ConstraintOutcome]

    /// True when every constraint is met.
    public var isFeasible: Bool { outcomes.allSatisfy(\.isFeasible) }
}

/// A MnasNet-style reward: accuracy times one factor per constraint.
///
/// `reward = accuracy * prod_i (m_i / T_i) ^ (w_i * (alpha_i if m_i <= T_i else beta_i))`.
public struct Reward: Sendable {
    /// The constraints, applied in order.
    public var constraints: [Constraint]

    /// Creates a reward from its constraints (none: the reward is the accuracy).
    public init(constraints: [Constraint]) {
        self.constraints = constraints
    }

    /// Scores one trial from its accuracy and its measured metrics.
    public func evaluate(accuracy: Double, metrics: [String: Double]) throws -> RewardResult {
        guard accuracy.isFinite, (0...1).contains(accuracy) else {
            throw ConstraintError.invalidValue(
                "the accuracy", accuracy, "an accuracy is a fraction in [0, 1] (0.87, not 87 or NaN)")
        }
        var reward = accuracy
        var outcomes: [ConstraintOutcome] = []
        outcomes.reserveCapacity(constraints.count)
        for constraint in constraints {
            guard let measured = metrics[constraint.metric] else {
                throw ConstraintError.missingMetric(constraint.name, metric: constraint.metric, available: Array(metrics.keys))
            }
            let factor = try constraint.factor(measured)
            reward *= factor
            outcomes.append(
                ConstraintOutcome(
                    name: constraint.name, metric: constraint.metric, unit: constraint.unit, measured: measured,
                    target: constraint.target, factor: factor, feasibility: constraint.feasibility(measured)))
        }
        return RewardResult(accuracy: accuracy, reward: reward, outcomes: outcomes)
    }
}
