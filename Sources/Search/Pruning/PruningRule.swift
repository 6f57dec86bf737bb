import Foundation
import System

/// Which early-stopping rule a job applies to its trials' learning curves.
public enum PrunerKind: String, Codable, CaseIterable, Sendable {
    /// Optuna's `MedianPruner`: stop a trial whose best value so far is below the median of the other trials'
    /// values at the same step.
    case median
    /// Asynchronous successive halving (Li et al. 2020), in its stopping form: at each rung a trial goes on only
    /// if it is in the top 1/eta of the values recorded at that rung so far.
    case asha
    /// Hyperband (Li et al. 2018) as brackets of ASHA, each with its own minimum resource; trials are spread over
    /// the brackets in proportion to Hyperband's bracket sizes.
    case hyperband
}

/// A job's pruning settings, as stored in its configuration so that `--resume` keeps them.
public struct PrunerConfiguration: Codable, Hashable, Sendable {
    /// The rule.
    public var kind: PrunerKind
    /// The first rung (ASHA, Hyperband's most aggressive bracket) or the warm-up steps (median), in the trainer's
    /// steps (epochs for the built-in trainer). Default 1.
    public var minResource: Double
    /// eta: the share 1/eta of trials that go on at each rung; rungs are `minResource * eta^k`. Default 3.
    public var reductionFactor: Double
    /// The steps of a whole training (`--num-epochs`); no rung is at or above it.
    public var maxResource: Double
    /// Median: how many other trials must have reported a step before a trial is judged at it. Default 3.
    public var startupTrials: Int
    /// How long a stopped trial gets between SIGTERM and SIGKILL. Default 10 seconds.
    public var grace: Duration

    /// The defaults of the settings that have one (`--pruner`'s flags show them).
    public static let defaults = PrunerConfiguration(kind: .asha, maxResource: 2)

    /// Settings with the usual defaults.
    public init(
        kind: PrunerKind, minResource: Double = 1, reductionFactor: Double = 3, maxResource: Double,
        startupTrials: Int = 3, grace: Duration = .seconds(10)
    ) {
        self.kind = kind
        self.minResource = minResource
        self.reductionFactor = reductionFactor
        self.maxResource = maxResource
        self.startupTrials = startupTrials
        self.grace = grace
    }

    /// Refuses settings no rule can work with, saying which flag to change.
    public func validate() throws {
        guard minResource > 0, minResource.isFinite else {
            throw PrunerError("--pruner-min-resource must be a positive number of steps, not \(minResource)")
        }
        guard reductionFactor >= 2, reductionFactor.isFinite else {
            throw PrunerError("--pruner-reduction-factor must be 2 or more, not \(reductionFactor)")
        }
        guard maxResource > minResource, maxResource.isFinite else {
            throw PrunerError(
                "--pruner-max-resource (default --num-epochs) \(maxResource) must be above --pruner-min-resource \(minResource), or no trial is ever judged"
            )
        }
        guard startupTrials >= 1 else { throw PrunerError("--pruner-startup-trials must be 1 or more") }
        guard grace >= .zero else { throw PrunerError("--pruner-grace-seconds must be 0 or more") }
    }

    // The grace period is stored in seconds, as jobs written before it was a Duration have it.
    private enum CodingKeys: String, CodingKey {
        case kind, minResource, reductionFactor, maxResource, startupTrials, graceSeconds
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let grace = Self.grace(seconds: try container.decode(Double.self, forKey: .graceSeconds)) else {
            throw DecodingError.dataCorruptedError(
                forKey: .graceSeconds, in: container, debugDescription: "the grace period must be 0 to 1e9 seconds")
        }
        self.init(
            kind: try container.decode(PrunerKind.self, forKey: .kind),
            minResource: try container.decode(Double.self, forKey: .minResource),
            reductionFactor: try container.decode(Double.self, forKey: .reductionFactor),
            maxResource: try container.decode(Double.self, forKey: .maxResource),
            startupTrials: try container.decode(Int.self, forKey: .startupTrials),
            grace: grace)
    }

    /// A grace period of `seconds` (to the millisecond); nil unless 0 to 1e9 seconds (NaN and infinity are not).
    public static func grace(seconds: Double) -> Duration? {
        guard seconds >= 0, seconds <= 1e9 else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encode(minResource, forKey: .minResource)
        try container.encode(reductionFactor, forKey: .reductionFactor)
        try container.encode(maxResource, forKey: .maxResource)
        try container.encode(startupTrials, forKey: .startupTrials)
        try container.encode(grace.inSeconds, forKey: .graceSeconds)
    }
}

/// Pruning settings that cannot work: what was wrong and which flag to change.
public struct PrunerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The explanation.
    public let description: String

    init(_ description: String) { self.description = description }
}

/// What the rule says about a trial after one of its reports.
public enum PruningDecision: Sendable, Equatable {
    /// Let it go on.
    case `continue`
    /// Stop it: it fell behind at `step` (a rung, or the median's step) with `value`.
    case prune(step: Double, value: Double)
}

/// The decision rule of early stopping, as a value: fed each intermediate result (trial, step, value; higher is
/// better) in the order they arrive, it says whether that trial goes on. It knows no processes or clocks, so the
/// job loop, a resumed job (replaying the stored curves in their order rebuilds the same state) and the tests all
/// drive it the same way.
///
/// ASHA (Li et al. 2020) decides without waiting for a rung to fill: the first trials to reach a rung compare
/// against the few values there are (with fewer than eta values a trial goes on only if it is the best, as
/// Optuna's `SuccessiveHalvingPruner` does), so parallel trials never wait for each other.
public struct PruningRule: Sendable {
    /// The settings.
    public let configuration: PrunerConfiguration
    /// Per bracket, per rung, the values recorded there, in arrival order.
    private var rungValues: [[[Double]]]
    /// Per trial, how many of its bracket's rungs it has passed.
    private var passed: [Int: Int] = [:]
    /// Trials already stopped: later reports of theirs (a run that had not yet seen its SIGTERM) are ignored.
    private var stopped: Set<Int> = []
    /// Median: per step, each trial's value at it.
    private var stepValues: [Double: [Int: Double]] = [:]
    /// Median: each trial's best value so far.
    private var best: [Int: Double] = [:]

    /// A rule with no results yet.
    public init(_ configuration: PrunerConfiguration) {
        self.configuration = configuration
        rungValues = Self.bracketMinimums(configuration).map { minimum in
            Array(repeating: [], count: Self.rungs(from: minimum, configuration).count)
        }
    }

    /// The minimum resource of each bracket: one for ASHA and the median, `minResource * eta^s` for Hyperband's
    /// s = 0 ... s_max with `s_max = floor(log_eta(maxResource / minResource))`.
    static func bracketMinimums(_ configuration: PrunerConfiguration) -> [Double] {
        guard configuration.kind == .hyperband else { return [configuration.minResource] }
        let eta = configuration.reductionFactor
        var minimums: [Double] = []
        var minimum = configuration.minResource
        // A bracket whose first rung is the whole training judges nothing: it is the "train fully" bracket.
        while minimum <= configuration.maxResource * (1 + 1e-9) {
            minimums.append(minimum)
            minimum *= eta
        }
        return minimums
    }

    /// The rungs from `minimum`: `minimum * eta^k` below the maximum resource.
    static func rungs(from minimum: Double, _ configuration: PrunerConfiguration) -> [Double] {
        var rungs: [Double] = []
        var rung = minimum
        while rung < configuration.maxResource * (1 - 1e-9) {
            rungs.append(rung)
            rung *= configuration.reductionFactor
        }
        return rungs
    }

    /// The rungs (steps where trials are judged) of `trial`'s bracket.
    public func rungs(of trial: Int) -> [Double] {
        Self.rungs(from: Self.bracketMinimums(configuration)[bracket(of: trial)], configuration)
    }

    /// Hyperband's bracket of a trial, 0 for the other rules: trial ids (from 1) are dealt to the brackets in
    /// proportion to Hyperband's sizes n_s = ceil((s_max + 1) / (s + 1) * eta^s), the most aggressive bracket
    /// (the lowest minimum) getting the most, each next trial to the bracket furthest below its share.
    public func bracket(of trial: Int) -> Int {
        let count = rungValues.count
        guard count > 1 else { return 0 }
        let eta = configuration.reductionFactor
        let sMax = count - 1
        // Bracket b (minimum resource minResource * eta^b) is Hyperband's s = sMax - b.
        let sizes = (0..<count).map { b -> Double in
            let s = Double(sMax - b)
            return (Double(sMax + 1) / (s + 1) * pow(eta, s)).rounded(.up)
        }
        var dealt = Array(repeating: 0.0, count: count)
        var chosen = 0
        for _ in 1...max(1, trial) {
            chosen = (0..<count).min { (dealt[$0] + 1) / sizes[$0] < (dealt[$1] + 1) / sizes[$1] } ?? 0
            dealt[chosen] += 1
        }
        return chosen
    }

    /// Records `trial`'s `value` at `step` and says whether it goes on.
    public mutating func report(trial: Int, step: Double, value: Double) -> PruningDecision {
        guard !stopped.contains(trial), step.isFinite, value.isFinite else { return .continue }
        let decision: PruningDecision
        switch configuration.kind {
        case .median: decision = median(trial: trial, step: step, value: value)
        case .asha, .hyperband: decision = successiveHalving(trial: trial, step: step, value: value)
        }
        if case .prune = decision { stopped.insert(trial) }
        return decision
    }

    private mutating func successiveHalving(trial: Int, step: Double, value: Double) -> PruningDecision {
        let bracket = bracket(of: trial)
        let rungs = Self.rungs(from: Self.bracketMinimums(configuration)[bracket], configuration)
        var index = passed[trial] ?? 0
        defer { passed[trial] = index }
        // A report past several rungs (a trainer reporting every few epochs) is judged at each of them in turn.
        while index < rungs.count, step >= rungs[index] * (1 - 1e-9) {
            rungValues[bracket][index].append(value)
            let competing = rungValues[bracket][index]
            index += 1
            if !Self.promotable(value, competing, eta: configuration.reductionFactor) {
                return .prune(step: rungs[index - 1], value: value)
            }
        }
        return .continue
    }

    /// Top 1/eta of the values at the rung (the trial's own among them); with fewer than eta values, the best.
    static func promotable(_ value: Double, _ competing: [Double], eta: Double) -> Bool {
        let sorted = competing.sorted(by: >)
        let top = max(1, Int((Double(sorted.count) / eta).rounded(.down)))
        return value >= sorted[top - 1]
    }

    private mutating func median(trial: Int, step: Double, value: Double) -> PruningDecision {
        stepValues[step, default: [:]][trial] = value
        let bestSoFar = max(best[trial] ?? -.infinity, value)
        best[trial] = bestSoFar
        guard step >= configuration.minResource * (1 - 1e-9) else { return .continue }
        let others = (stepValues[step] ?? [:]).filter { $0.key != trial }.map(\.value).sorted()
        guard others.count >= configuration.startupTrials else { return .continue }
        let middle = others.count / 2
        let median = others.count % 2 == 1 ? others[middle] : (others[middle - 1] + others[middle]) / 2
        return bestSoFar < median ? .prune(step: step, value: value) : .continue
    }
}
