/// An error from building or evaluating a constraint or a reward.
///
/// Each error says what was wrong and what to do about it.
public struct ConstraintError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case invalidSpec
        case invalidTarget
        case invalidValue
        case missingMetric
        case invalidFactor
        case seedRejected
    }

    private let code: Code
    /// The readable explanation.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// A constraint written in the `METRIC<=TARGET[:OPTIONS]` syntax could not be read.
    public static func invalidSpec(_ spec: String, _ reason: String) -> ConstraintError {
        ConstraintError(
            .invalidSpec,
            "invalid constraint '\(spec)': \(reason); write it as METRIC<=TARGET[:hard|soft|vertex-hard|vertex-soft][,weight=W][,alpha=A,beta=B], e.g. 'latency_ms<=3:soft'"
        )
    }

    /// A target that is zero, negative, NaN or infinite.
    public static func invalidTarget(_ name: String, _ target: Double) -> ConstraintError {
        ConstraintError(
            .invalidTarget,
            "constraint '\(name)' has target \(target); a target must be a finite number greater than 0"
        )
    }

    /// A measured value or accuracy that cannot enter the reward.
    public static func invalidValue(_ what: String, _ value: Double, _ hint: String) -> ConstraintError {
        ConstraintError(.invalidValue, "\(what) is \(value); \(hint)")
    }

    /// The trial has no value for a constrained metric.
    public static func missingMetric(_ constraint: String, metric: String, available: [String]) -> ConstraintError {
        let known = available.isEmpty ? "none" : available.sorted().joined(separator: ", ")
        return ConstraintError(
            .missingMetric,
            "constraint '\(constraint)' needs metric '\(metric)', which the trial does not have (it has: \(known))"
        )
    }

    /// A custom scorer returned a factor that is NaN, infinite or negative.
    public static func invalidFactor(_ constraint: String, _ factor: Double) -> ConstraintError {
        ConstraintError(
            .invalidFactor,
            "the scoring function of constraint '\(constraint)' returned factor \(factor); a factor must be finite and >= 0 (fix the plugin's score function)"
        )
    }

    /// An input that vertex-ai-nas `compute_reward` itself rejects, with Python's reason.
    public static func seedRejected(_ reason: String) -> ConstraintError {
        ConstraintError(.seedRejected, reason)
    }

    /// A custom scorer failed with its own message.
    public static func scorerFailed(_ constraint: String, _ reason: String) -> ConstraintError {
        ConstraintError(.invalidFactor, "the scoring function of constraint '\(constraint)' failed: \(reason)")
    }
}
