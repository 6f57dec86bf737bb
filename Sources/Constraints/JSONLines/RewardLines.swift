import Foundation

/// Scores JSON lines of trials: the engine of `nas reward`.
///
/// A line is either vertex-ai-nas's keyword form (`accuracy`, `target_latency_or_flops`,
/// `measured_latency_or_flops`, and optionally `target_memory`, `measured_memory`, `weight`, `use_hard_limit`),
/// scored exactly as `compute_reward`, or this project's form: `accuracy`, `metrics` (an object of numbers) and
/// optionally `constraints` (specs as strings, e.g. `"latency_ms<=3:soft"`, or objects with `metric`, `target`,
/// `mode`, `weight`, `alpha`, `beta`, `name`); without `constraints` the scorer's default constraints apply.
/// A `trial_id` or `id` member is copied to the output.
///
/// Every line yields one output line: the reward with each constraint's factor and feasibility, or an error
/// that names the line; the other lines are scored regardless.
public struct RewardLineScorer {
    /// Turns a constraint spec into a constraint (the plugin registry resolves names and scorers).
    public typealias Resolver = (String) throws -> Constraint

    /// The constraints used by lines that name none.
    public var defaultConstraints: [Constraint]
    private let resolve: Resolver
    private var cache: [String: Constraint] = [:]

    static let seedKeys: Set<String> = [
        "accuracy", "target_latency_or_flops", "measured_latency_or_flops", "target_memory", "measured_memory",
        "weight", "use_hard_limit", "trial_id", "id",
    ]

    /// Creates a scorer.
    public init(defaultConstraints: [Constraint] = [], resolve: @escaping Resolver = { try Constraint(parsing: $0) }) {
        self.defaultConstraints = defaultConstraints
        self.resolve = resolve
    }

    /// Scores one line (1-based `number`); returns the output line, without newline, and whether it succeeded.
    public mutating func score(line: UnsafeBufferPointer<UInt8>, number: Int) -> (output: String, succeeded: Bool) {
        var out = "{\"line\":\(number),"
        if let seed = SeedLine.read(line) {
            do {
                try writeSeed(seed, into: &out)
                out += ",\"error\":null}"
                return (out, true)
            } catch {
                // The general path below reports the error.
            }
        }
        do {
            let value = try JSON.parse(buffer: line)
            guard case .object = value else { throw LineError("a line must be a JSON object, not \(value.kindName)") }
            for key in ["trial_id", "id"] {
                if let id = value[key] {
                    JSON.write(string: key, to: &out)
                    out += ":"
                    id.write(to: &out)
                    out += ","
                }
            }
            if value["target_latency_or_flops"] != nil || value["measured_latency_or_flops"] != nil {
                try scoreSeed(value, into: &out)
            } else {
                try scoreProject(value, into: &out)
            }
            out += ",\"error\":null}"
            return (out, true)
        } catch {
            // The same members as a scored line, so that a script reads every line alike.
            out = "{\"line\":\(number),\"reward\":null,\"feasible\":null,\"constraints\":[],\"error\":"
            JSON.write(string: "line \(number): \(error)", to: &out)
            out += "}"
            return (out, false)
        }
    }

    /// Scores one line given as a string.
    public mutating func score(line: String, number: Int) -> (output: String, succeeded: Bool) {
        var text = line
        return text.withUTF8 { score(line: $0, number: number) }
    }

    private func scoreSeed(_ value: JSON, into out: inout String) throws {
        guard case .object(let members) = value else { return }
        for member in members where !Self.seedKeys.contains(member.key) {
            throw LineError(
                "unknown key '\(member.key)' in vertex-ai-nas's form; compute_reward takes accuracy, target_latency_or_flops, measured_latency_or_flops, target_memory, measured_memory, weight, use_hard_limit"
            )
        }
        var seed = SeedLine()
        seed.accuracy = try Self.number(value, "accuracy")
        seed.target = try Self.number(value, "target_latency_or_flops")
        seed.measured = try Self.number(value, "measured_latency_or_flops")
        seed.targetMemory = try Self.number(value, "target_memory", default: 0)
        seed.measuredMemory = try Self.number(value, "measured_memory", default: 0)
        seed.weight = try Self.number(value, "weight", default: 1)
        switch value["use_hard_limit"] {
        case nil: seed.useHardLimit = true
        case .bool(let flag): seed.useHardLimit = flag
        case .number(let flag): seed.useHardLimit = flag != 0
        case .null: seed.useHardLimit = false
        default: throw LineError("use_hard_limit must be true or false")
        }
        try writeSeed(seed, into: &out)
    }

    private func writeSeed(_ seed: SeedLine, into out: inout String) throws {
        let (accuracy, target, measured) = (seed.accuracy, seed.target, seed.measured)
        guard accuracy.isFinite, (0...1).contains(accuracy) else {
            throw LineError("'accuracy' is \(accuracy); an accuracy is a fraction in [0, 1] (0.87, not 87)")
        }
        let (targetMemory, measuredMemory) = (seed.targetMemory, seed.measuredMemory)
        let (weight, hard) = (seed.weight, seed.useHardLimit)
        let reward = try SeedReward.compute(
            accuracy: accuracy, targetLatencyOrFlops: target, measuredLatencyOrFlops: measured,
            targetMemory: targetMemory, measuredMemory: measuredMemory, weight: weight, useHardLimit: hard)
        guard reward.isFinite, reward >= 0 else {
            throw LineError(
                "compute_reward gives \(reward) for these values, which is no reward: targets and measurements must be positive numbers"
            )
        }
        let feasible = measured <= target && (targetMemory == 0 || measuredMemory <= targetMemory)
        out += "\"reward\":"
        JSON.write(number: reward, to: &out)
        out += ",\"feasible\":\(feasible),\"constraints\":["
        Self.writeSeedOutcome("latency_or_flops", measured: measured, target: target, weight: weight, hard: hard, to: &out)
        if targetMemory != 0 {
            out += ","
            Self.writeSeedOutcome("memory", measured: measuredMemory, target: targetMemory, weight: weight, hard: hard, to: &out)
        }
        out += "]"
    }

    private static func writeSeedOutcome(
        _ name: String, measured: Double, target: Double, weight: Double, hard: Bool, to out: inout String
    ) {
        var factor = pow(target / measured, weight)
        if hard, 1 < factor { factor = 1 }
        out += "{\"name\":\"\(name)\",\"metric\":\"\(name)\",\"measured\":"
        JSON.write(number: measured, to: &out)
        out += ",\"target\":"
        JSON.write(number: target, to: &out)
        out += ",\"factor\":"
        JSON.write(number: factor, to: &out)
        out += ",\"feasibility\":"
        JSON.write(number: measured / target - 1, to: &out)
        out += "}"
    }

    private mutating func scoreProject(_ value: JSON, into out: inout String) throws {
        let accuracy = try Self.number(value, "accuracy")
        guard case .object(let metricMembers)? = value["metrics"] else {
            throw LineError(
                value["metrics"] == nil
                    ? "the line has neither 'metrics' (this project's form) nor 'target_latency_or_flops' (vertex-ai-nas's form)"
                    : "'metrics' must be an object of numbers, e.g. {\"latency_ms\": 2.5}")
        }
        var metrics: [String: Double] = [:]
        metrics.reserveCapacity(metricMembers.count)
        for member in metricMembers {
            guard case .number(let number) = member.value else {
                throw LineError("metric '\(member.key)' must be a number, not \(member.value.kindName)")
            }
            metrics[member.key] = number
        }
        var constraints = defaultConstraints
        if let list = value["constraints"] {
            guard case .array(let specs) = list else {
                throw LineError("'constraints' must be an array of specs such as \"latency_ms<=3:soft\"")
            }
            constraints = try specs.map { try constraint(from: $0) }
        }
        let result = try Reward(constraints: constraints).evaluate(accuracy: accuracy, metrics: metrics)
        out += "\"reward\":"
        JSON.write(number: result.reward, to: &out)
        out += ",\"feasible\":\(result.isFeasible),\"constraints\":["
        for (offset, outcome) in result.outcomes.enumerated() {
            if offset > 0 { out += "," }
            out += "{\"name\":"
            JSON.write(string: outcome.name, to: &out)
            out += ",\"metric\":"
            JSON.write(string: outcome.metric, to: &out)
            out += ",\"measured\":"
            JSON.write(number: outcome.measured, to: &out)
            out += ",\"target\":"
            JSON.write(number: outcome.target, to: &out)
            out += ",\"factor\":"
            JSON.write(number: outcome.factor, to: &out)
            out += ",\"feasibility\":"
            JSON.write(number: outcome.feasibility, to: &out)
            out += "}"
        }
        out += "]"
    }

    private mutating func constraint(from value: JSON) throws -> Constraint {
        switch value {
        case .string(let spec):
            if let cached = cache[spec] { return cached }
            let constraint = try resolve(spec)
            cache[spec] = constraint
            return constraint
        case .object(let members):
            // An object is a spec spelled out: rebuild the spec text so that both forms share one parser.
            let known: Set<String> = ["name", "metric", "target", "mode", "weight", "alpha", "beta", "unit"]
            if let unknown = members.first(where: { !known.contains($0.key) }) {
                throw LineError("unknown constraint key '\(unknown.key)' (known: \(known.sorted().joined(separator: ", ")))")
            }
            guard case .string(let metric)? = value["metric"] else {
                throw LineError("a constraint object needs \"metric\" as a string")
            }
            guard case .number(let target)? = value["target"] else {
                throw LineError("constraint on '\(metric)' needs \"target\" as a number")
            }
            var spec = metric + "<=" + target.description
            if case .string(let name)? = value["name"] { spec = name + "=" + spec }
            var options: [String] = []
            if let mode = value["mode"] {
                guard case .string(let text) = mode else { throw LineError("constraint \"mode\" must be a string") }
                options.append(text)
            }
            for key in ["weight", "alpha", "beta"] {
                guard let option = value[key] else { continue }
                guard case .number(let number) = option else { throw LineError("constraint \"\(key)\" must be a number") }
                options.append("\(key)=\(number)")
            }
            if case .string(let unit)? = value["unit"] { options.append("unit=\(unit)") }
            if !options.isEmpty { spec += ":" + options.joined(separator: ",") }
            return try resolve(spec)
        default:
            throw LineError("a constraint must be a spec string such as \"latency_ms<=3:soft\" or an object")
        }
    }

    private static func number(_ object: JSON, _ key: String, default fallback: Double? = nil) throws -> Double {
        switch object[key] {
        case .number(let value)?: return value
        case .bool(let flag)?: return flag ? 1 : 0
        case nil:
            if let fallback { return fallback }
            throw LineError("'\(key)' is missing")
        case let other?: throw LineError("'\(key)' must be a number, not \(other.kindName)")
        }
    }
}

struct LineError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension JSON {
    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
