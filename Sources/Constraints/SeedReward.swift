import Foundation

/// vertex-ai-nas `cloud_nas_utils.compute_reward`, input for input, so that its users' logs score the same here.
///
/// Python semantics are kept: the ratio is `target / measured` raised to `weight`; `use_hard_limit` caps each
/// factor at 1; memory is ignored when its target is 0 and an error when its measured value is 0 with a target;
/// division by zero, `0 ** negative`, a negative base with a fractional power (a complex result in Python) and
/// overflow are errors, as Python raises (or cannot return a float) there.
public enum SeedReward {
    /// Computes the reward as `compute_reward(accuracy, target_latency_or_flops, measured_latency_or_flops,
    /// target_memory, measured_memory, weight, use_hard_limit)` does.
    public static func compute(
        accuracy: Double,
        targetLatencyOrFlops: Double,
        measuredLatencyOrFlops: Double,
        targetMemory: Double = 0,
        measuredMemory: Double = 0,
        weight: Double = 1,
        useHardLimit: Bool = true
    ) throws -> Double {
        guard measuredLatencyOrFlops != 0 else {
            throw ConstraintError.seedRejected(
                "measured_latency_or_flops is 0: compute_reward divides the target by it (ZeroDivisionError)")
        }
        let latencyRatio = targetLatencyOrFlops / measuredLatencyOrFlops
        var memoryRatio = 1.0
        if targetMemory != 0 {
            guard measuredMemory != 0 else {
                throw ConstraintError.seedRejected(
                    "measured_memory should not be 0 when target_memory is set (compute_reward raises ValueError)")
            }
            memoryRatio = targetMemory / measuredMemory
        }
        var latencyFactor = try pythonPower(latencyRatio, weight, what: "the latency/FLOPs ratio")
        var memoryFactor = try pythonPower(memoryRatio, weight, what: "the memory ratio")
        if useHardLimit {
            latencyFactor = pythonMin(latencyFactor, 1)
            memoryFactor = pythonMin(memoryFactor, 1)
        }
        return accuracy * latencyFactor * memoryFactor
    }

    /// Python's `min(x, 1.0)`: the first argument wins ties and NaN comparisons.
    private static func pythonMin(_ x: Double, _ y: Double) -> Double {
        y < x ? y : x
    }

    /// Python's float `**`, which raises where C's pow returns inf, NaN or a complex number would result.
    private static func pythonPower(_ base: Double, _ exponent: Double, what: String) throws -> Double {
        if base == 0, exponent < 0, exponent.isFinite {
            throw ConstraintError.seedRejected(
                "\(what) is 0 and weight \(exponent) is negative: 0.0 cannot be raised to a negative power (ZeroDivisionError)")
        }
        if base < 0, base.isFinite, exponent.isFinite, exponent.rounded(.towardZero) != exponent {
            throw ConstraintError.seedRejected(
                "\(what) is negative (\(base)) and weight \(exponent) is fractional: Python's result is a complex number")
        }
        let result = pow(base, exponent)
        if result.isInfinite, base.isFinite, exponent.isFinite {
            throw ConstraintError.seedRejected("\(what) \(base) ** \(exponent) overflows (OverflowError)")
        }
        return result
    }
}
