// Multi-objective search on a tabular benchmark, by lookup: the samplers of `nas search` (NSGA-II, MOTPE, random,
// regularized evolution) run against a table of trained and measured architectures (bench/tabular/make_table.sh),
// 20 seeds at each budget; bench/tabular/optuna_harness.py runs Optuna's samplers over the same table, and
// bench/tabular/run.sh compares them. Also the proposal cost at 1,000 finished trials, and our hypervolume of
// point sets for the cross-check against Optuna's.
//
// Usage:
//   MOBench harness TABLE.json [SEEDS] [BUDGETS] [SAMPLERS]
//                                                 JSON lines: sampler, seed, budget, hypervolume, trials to 95%
//   MOBench cost [FINISHED] [PROPOSALS] [SAMPLERS] [same|growing]
//                                                 JSON lines: sampler, median seconds per proposal
//   MOBench hv < POINTS.json                      {"points": [[...]], "reference": [...]} -> the hypervolume
import Constraints
import Foundation
import Search
import Trainer

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

func line(_ members: [(String, JSON)]) {
    print(JSON.object(members.map { (key: $0.0, value: $0.1) }).integerText)
}

/// A table: the space it samples, the objectives and one row per architecture.
struct Table {
    var space: SearchSpace
    var objectives: ObjectiveSpace
    var rows: [SearchChoice: [String: Double]]
    var order: [SearchChoice]
    var keyed: [SearchChoice: [DecisionKey: Int]]

    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
        let json = try JSON.parse(String(decoding: data, as: UTF8.self))
        guard case .string(let spaceName)? = json["space"], case .array(let rows)? = json["rows"],
            case .array(let metrics)? = json["objectives"]?["metrics"],
            case .array(let targets)? = json["objectives"]?["targets"]
        else { fail("\(path): expected {\"space\", \"objectives\": {\"metrics\", \"targets\"}, \"rows\"}") }
        space = try SearchSpace.load(spaceName)
        objectives = ObjectiveSpace(
            metrics: metrics.compactMap { if case .string(let s) = $0 { s } else { nil } },
            targets: targets.compactMap { if case .number(let n) = $0 { n } else { nil } })
        self.rows = [:]
        order = []
        keyed = [:]
        for row in rows {
            guard case .array(let decisions)? = row["decisions"], case .object(let members) = row else { continue }
            let choice = SearchChoice(decisions.compactMap { if case .number(let n) = $0 { Int(n) } else { nil } })
            var values: [String: Double] = [:]
            for member in members { if case .number(let n) = member.value { values[member.key] = n } }
            if self.rows[choice] == nil { order.append(choice) }
            self.rows[choice] = values
            keyed[choice] = try space.keyedDecisions(of: choice)
        }
    }

    /// The row of `choice`, or of the nearest row not yet used (fewest differing decisions) when the table does not
    /// hold it (a sampled table of a large space).
    func lookup(_ choice: SearchChoice, used: Set<SearchChoice>) throws -> SearchChoice? {
        if rows[choice] != nil { return choice }
        let mine = try space.keyedDecisions(of: choice)
        return order.filter { !used.contains($0) }.min { a, b in
            distance(mine, keyed[a]!) < distance(mine, keyed[b]!)
        }
    }

    /// The decisions made differently or by only one of the two (the keys of either that the other differs on).
    func distance(_ a: [DecisionKey: Int], _ b: [DecisionKey: Int]) -> Int {
        var count = 0
        for (key, option) in a where b[key] != option { count += 1 }
        for key in b.keys where a[key] == nil { count += 1 }
        return count
    }

    /// Accuracy times one MnasNet hard factor per constraint: the reward evolution maximises.
    func reward(_ values: [String: Double]) -> Double {
        var reward = values[objectives.accuracyMetric] ?? 0
        for (metric, target) in zip(objectives.metrics, objectives.targets) {
            let value = values[metric] ?? .infinity
            if value > target { reward *= target / value }
        }
        return reward
    }

    func history(_ trials: [SearchChoice]) -> HypervolumeHistory {
        HypervolumeHistory(
            trials: trials.enumerated().map { index, choice in
                TrialRecord(id: index + 1, state: .succeeded, parameters: "{}", decisions: choice.decisions, metrics: rows[choice]!)
            }, objectives: objectives)
    }
}

func harness(_ table: Table, seeds: Range<Int>, budgets: [Int], kinds: [SearchAlgorithmKind]) throws {
    let best = table.history(table.order).hypervolume
    line([("true_front_hypervolume", .number(best)), ("rows", .number(Double(table.order.count)))])
    for kind in kinds {
        for seed in seeds {
            let algorithm = SearchAlgorithm(kind: kind, space: table.space, seed: UInt64(seed), objectives: table.objectives)
            var proposed: [SearchChoice] = []
            var finished: [TrialOutcome] = []
            var used = Set<SearchChoice>()
            while proposed.count < budgets.max()!, used.count < table.order.count {
                guard let next = try algorithm.propose(trial: proposed.count, proposed: proposed, finished: finished),
                    let row = try table.lookup(next, used: used)
                else { break }
                used.insert(row)
                proposed.append(row)
                let values = table.rows[row]!
                finished.append(TrialOutcome(choice: row, reward: table.reward(values), metrics: values))
            }
            let steps = table.history(proposed).steps
            let reach = steps.first { $0.hypervolume >= 0.95 * best }?.trial
            for budget in budgets {
                let value = steps.isEmpty ? 0 : steps[min(budget, steps.count) - 1].hypervolume
                line([
                    ("sampler", .string(kind.rawValue)), ("seed", .number(Double(seed))), ("budget", .number(Double(budget))),
                    ("hypervolume", .number(value)), ("trials_to_95", reach.map { .number(Double($0)) } ?? .null),
                ])
            }
        }
    }
}

/// Seconds per proposal with `count` finished trials of a ZDT-like landscape over 8 decisions of 8 options: every
/// proposal of the same `count` trials (`same`, as parallel trials propose), or each after one more trial finished
/// (`growing`, as a job with one trial at a time proposes).
func cost(finished count: Int, proposals: Int, kinds: [SearchAlgorithmKind], growing: Bool) throws {
    let space = try SearchSpace(
        text: "[" + (0..<8).map { _ in #"{"one_of": [0, 1, 2, 3, 4, 5, 6, 7]}"# }.joined(separator: ",") + "]")
    let objectives = ObjectiveSpace(metrics: ["latency_ms", "memory_bytes"], targets: [10, 40])
    var generator = SeededGenerator(seed: 1)
    var seen = Set<SearchChoice>()
    var finished: [TrialOutcome] = []
    while finished.count < count + (growing ? proposals : 0) {
        let choice = space.sample(using: &generator)
        guard seen.insert(choice).inserted else { continue }
        let d = choice.decisions.map(Double.init)
        let g = 1 + 9 * d.dropFirst().reduce(0, +) / (7 * 7)
        let x = d[0] / 7
        finished.append(
            TrialOutcome(
                choice: choice, reward: 1,
                metrics: ["top_1_accuracy": 1 - x, "latency_ms": g * (1 - (x / g).squareRoot()), "memory_bytes": d[1...3].reduce(1, +)]))
    }
    let proposed = finished.map(\.choice)
    for kind in kinds {
        let algorithm = SearchAlgorithm(kind: kind, space: space, seed: 3, objectives: objectives)
        // Not timed: the first proposal of a job's memo, which later ones extend.
        _ = try algorithm.propose(trial: count, proposed: Array(proposed.prefix(count)), finished: Array(finished.prefix(count)))
        var times: [Double] = []
        for trial in 0..<proposals {
            let seen = growing ? count + trial + 1 : count
            let (history, done) = (Array(proposed.prefix(seen)), Array(finished.prefix(seen)))
            let start = ContinuousClock.now
            _ = try algorithm.propose(trial: count + trial, proposed: history, finished: done)
            let elapsed = ContinuousClock.now - start
            times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        }
        times.sort()
        line([
            ("sampler", .string(kind.rawValue)), ("finished", .number(Double(count))),
            ("history", .string(growing ? "growing" : "same")), ("median_seconds", .number(times[times.count / 2])),
        ])
    }
}

let arguments = CommandLine.arguments

/// The samplers named by argument `index` (comma-separated), or all four multi-objective-comparable ones.
func samplers(at index: Int) -> [SearchAlgorithmKind] {
    let names = arguments.count > index ? arguments[index].split(separator: ",").map(String.init) : ["nsga2", "motpe", "random", "evolution"]
    return names.map { name in
        guard let kind = SearchAlgorithmKind(rawValue: name) else { fail("unknown sampler '\(name)'; use nsga2, motpe, random or evolution") }
        return kind
    }
}
switch arguments.count > 1 ? arguments[1] : "" {
case "harness":
    guard arguments.count > 2 else { fail("usage: MOBench harness TABLE.json [SEEDS] [BUDGETS] [SAMPLERS]") }
    // SEEDS as N (seeds 0 to N-1) or A:B (seeds A to B-1), as optuna_harness.py reads them.
    let seedText = arguments.count > 3 ? arguments[3] : "20"
    let bounds = seedText.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
    let first = bounds.count == 2 ? bounds[0] ?? 0 : 0
    guard bounds.count <= 2, let last = bounds.last!, first < last
    else { fail("SEEDS '\(seedText)' is neither N nor A:B with A < B") }
    let seeds = first..<last
    let budgets = arguments.count > 4 ? arguments[4].split(separator: ",").compactMap { Int($0) } : [50, 100]
    try harness(try Table(path: arguments[2]), seeds: seeds, budgets: budgets, kinds: samplers(at: 5))
case "cost":
    try cost(
        finished: arguments.count > 2 ? Int(arguments[2]) ?? 1000 : 1000,
        proposals: arguments.count > 3 ? Int(arguments[3]) ?? 20 : 20,
        kinds: samplers(at: 4), growing: arguments.count > 5 && arguments[5] == "growing")
case "hv":
    let input = FileHandle.standardInput.readDataToEndOfFile()
    let json = try JSON.parse(String(decoding: input, as: UTF8.self))
    func numbers(_ value: JSON?) -> [Double] {
        guard case .array(let items)? = value else { return [] }
        return items.compactMap { if case .number(let n) = $0 { n } else { nil } }
    }
    guard case .array(let sets)? = json["sets"] else { fail("expected {\"sets\": [{\"points\", \"reference\"}]}") }
    for set in sets {
        guard case .array(let points)? = set["points"] else { continue }
        print(Hypervolume.of(points.map(numbers), reference: numbers(set["reference"])))
    }
default:
    fail("usage: MOBench harness TABLE.json [SEEDS] [BUDGETS] [SAMPLERS] | cost [FINISHED] [PROPOSALS] [SAMPLERS] [same|growing] | hv < SETS.json")
}
