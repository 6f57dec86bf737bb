// Early stopping over recorded learning curves, by replay: the pruners of `nas search --pruner` (PruningRule, the
// rule the job loop drives) fed the per-epoch accuracies of bench/pruning/curves_mobilenet_v2_mini_2k.json one trial
// after another, in the orders bench/pruning/replay.py gives them, which replays Optuna's pruners over the same
// orders and scores both the same way.
//
// Usage:
//   PruningBench CURVES.json ORDERS.json RULE [--latency-first] [--min-resource R] [--reduction-factor ETA]
//     RULE: none, median, asha or hyperband. ORDERS.json: {"orders": [[row index, ...], ...]}, one order per seed.
//     Prints one JSON line per order: {"epochs": [epochs spent by each trial of the order, in order]}; a trial runs
//     epoch after epoch until the rule prunes it or its curve ends. With --latency-first a row whose latency_ms is
//     above the file's latency_target_ms spends 0 epochs and never reaches the rule, as `nas search
//     --latency-first` records it infeasible untrained (it still takes its trial id).
import Foundation
import Search

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

struct Curves: Decodable {
    struct Row: Decodable {
        /// Test accuracy after each epoch, epoch 1 first.
        var curve: [Double]
        var latency_ms: Double
    }
    var latency_target_ms: Double
    var rows: [Row]
}

struct Orders: Decodable { var orders: [[Int]] }

func decode<T: Decodable>(_ type: T.Type, _ path: String) -> T {
    guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
    do { return try JSONDecoder().decode(type, from: data) } catch { fail("\(path): \(error)") }
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 3 else {
    fail("usage: PruningBench CURVES.json ORDERS.json none|median|asha|hyperband [--latency-first] [--min-resource R] [--reduction-factor ETA]")
}
let curves = decode(Curves.self, arguments.removeFirst())
let orders = decode(Orders.self, arguments.removeFirst())
let ruleName = arguments.removeFirst()
var latencyFirst = false
var minResource = 1.0
var reductionFactor = 3.0
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
    switch flag {
    case "--latency-first": latencyFirst = true
    case "--min-resource", "--reduction-factor":
        guard let value = arguments.first.flatMap(Double.init) else { fail("\(flag) needs a number") }
        arguments.removeFirst()
        if flag == "--min-resource" { minResource = value } else { reductionFactor = value }
    default: fail("unknown argument \(flag)")
    }
}
let epochs = curves.rows.map(\.curve.count).max() ?? 0
guard epochs > 0, curves.rows.allSatisfy({ $0.curve.count == epochs }) else {
    fail("every row needs a curve of the same number of epochs")
}
let kind: PrunerKind?
if ruleName == "none" {
    kind = nil
} else if let parsed = PrunerKind(rawValue: ruleName) {
    kind = parsed
} else {
    fail("unknown rule \(ruleName): none, median, asha or hyperband")
}
let configuration = kind.map {
    PrunerConfiguration(
        kind: $0, minResource: minResource, reductionFactor: reductionFactor, maxResource: Double(epochs))
}
do { try configuration?.validate() } catch { fail("\(error)") }

for order in orders.orders {
    var rule = configuration.map(PruningRule.init)
    var spent: [Int] = []
    for (position, index) in order.enumerated() {
        guard curves.rows.indices.contains(index) else { fail("row \(index) is not in the curves") }
        let row = curves.rows[index]
        if latencyFirst, row.latency_ms > curves.latency_target_ms {
            spent.append(0)
            continue
        }
        var trained = 0
        for (epoch, value) in row.curve.enumerated() {
            trained = epoch + 1
            // Trial ids count from 1 in arrival order, as the job store numbers them.
            if case .prune? = rule?.report(trial: position + 1, step: Double(trained), value: value) { break }
        }
        spent.append(trained)
    }
    let text = spent.map(String.init).joined(separator: ",")
    print("{\"epochs\": [\(text)]}")
}
