import Foundation

/// The exponents of MnasNet's factor `(m/T)^(alpha if m <= T else beta)`.
public struct Exponents: Hashable, Sendable, Codable {
    /// Applied when the measured value is at or below the target.
    public var alpha: Double
    /// Applied when the measured value is above the target.
    public var beta: Double

    /// Creates exponents.
    public init(alpha: Double, beta: Double) {
        self.alpha = alpha
        self.beta = beta
    }

    /// MnasNet's hard constraint (Tan et al. 2019, eq. 2): no bonus under the target, `m/T` penalty over it.
    public static let hard = Exponents(alpha: 0, beta: -1)
    /// MnasNet's soft constraint: a smooth trade-off, alpha = beta = -0.07.
    public static let soft = Exponents(alpha: -0.07, beta: -0.07)
    /// vertex-ai-nas `compute_reward(use_hard_limit=True)` with weight 1; scale with `Constraint.weight`.
    public static let vertexHard = Exponents(alpha: 0, beta: -1)
    /// vertex-ai-nas `compute_reward(use_hard_limit=False)` with weight 1; scale with `Constraint.weight`.
    public static let vertexSoft = Exponents(alpha: -1, beta: -1)

    /// The presets by the names the constraint syntax uses.
    public static let presets: [(name: String, exponents: Exponents)] = [
        ("hard", .hard), ("soft", .soft), ("vertex-hard", .vertexHard), ("vertex-soft", .vertexSoft),
    ]
}

/// A scoring function that replaces the standard factor of a constraint (a plugin's `score`).
public protocol ConstraintScorer: Sendable {
    /// Returns the factor for one measured value; the caller checks it is finite and >= 0.
    func factor(measured: Double, target: Double, exponents: Exponents, weight: Double) throws -> Double
}

/// One constraint of a reward: a metric, its target, and how missing or beating it scales accuracy.
///
/// The factor is `(measured / target) ^ (weight * (alpha if measured <= target else beta))`,
/// or the value of `scorer` when one is set. Its feasibility is `measured / target - 1` (<= 0 is feasible).
public struct Constraint: Sendable, CustomStringConvertible {
    /// The constraint's name, shown in results; defaults to the metric.
    public var name: String
    /// The metric key the constraint reads from a trial's metrics.
    public var metric: String
    /// The metric's unit, for display (may be empty).
    public var unit: String
    /// The target; finite and > 0.
    public var target: Double
    /// The exponents (presets: `.hard`, `.soft`, `.vertexHard`, `.vertexSoft`).
    public var exponents: Exponents
    /// Scales both exponents: vertex-ai-nas's `weight`, or the importance of this constraint.
    public var weight: Double
    /// Replaces the standard factor when set (a plugin's `score`).
    public var scorer: (any ConstraintScorer)?

    /// Creates a constraint, checking the target and the weight.
    public init(
        name: String? = nil,
        metric: String,
        unit: String = "",
        target: Double,
        exponents: Exponents = .hard,
        weight: Double = 1,
        scorer: (any ConstraintScorer)? = nil
    ) throws {
        let name = name ?? metric
        guard target.isFinite, target > 0 else { throw ConstraintError.invalidTarget(name, target) }
        guard weight.isFinite, weight >= 0 else {
            throw ConstraintError.invalidValue("the weight of constraint '\(name)'", weight, "use a finite weight >= 0")
        }
        guard exponents.alpha.isFinite, exponents.beta.isFinite else {
            throw ConstraintError.invalidValue(
                "an exponent of constraint '\(name)'", exponents.alpha.isFinite ? exponents.beta : exponents.alpha,
                "use finite alpha and beta")
        }
        self.name = name
        self.metric = metric
        self.unit = unit
        self.target = target
        self.exponents = exponents
        self.weight = weight
        self.scorer = scorer
    }

    /// How far the measured value is from the target: `measured / target - 1`; <= 0 is feasible.
    public func feasibility(_ measured: Double) -> Double {
        measured / target - 1
    }

    /// The factor that multiplies accuracy for one measured value.
    public func factor(_ measured: Double) throws -> Double {
        guard measured.isFinite, measured >= 0 else {
            throw ConstraintError.invalidValue(
                "the measured '\(metric)' of constraint '\(name)'", measured, "a measured value must be finite and >= 0")
        }
        if let scorer {
            let value: Double
            do {
                value = try scorer.factor(measured: measured, target: target, exponents: exponents, weight: weight)
            } catch let error as ConstraintError {
                throw error
            } catch {
                throw ConstraintError.scorerFailed(name, "\(error)")
            }
            guard value.isFinite, value >= 0 else { throw ConstraintError.invalidFactor(name, value) }
            return value
        }
        let exponent = weight * (measured <= target ? exponents.alpha : exponents.beta)
        if exponent == 0 { return 1 }
        guard measured > 0 else {
            // (0/T)^negative is infinite: a measured 0 only makes sense with no bonus below the target.
            throw ConstraintError.invalidValue(
                "the measured '\(metric)' of constraint '\(name)'", measured,
                "a value of 0 gives an infinite factor with exponent \(exponent); use the hard preset or check the measurement")
        }
        return pow(measured / target, exponent)
    }

    public var description: String {
        var text = "\(metric)<=\(target)"
        if let preset = Exponents.presets.first(where: { $0.exponents == exponents }) {
            text += ":\(preset.name)"
        } else {
            text += ":alpha=\(exponents.alpha),beta=\(exponents.beta)"
        }
        if weight != 1 { text += ",weight=\(weight)" }
        if name != metric { text = "\(name)=" + text }
        return text
    }
}

