// Search efficiency on a fixed reward table: how many trials each algorithm needs to reach the best
// architecture, averaged over seeds, against random search in the same run. Proposals come from the same
// `SearchAlgorithm` that `nas search` uses; rewards come from the table instead of training.
//
// Usage: swift run -c release SearchBench bench/search/tutorial_rewards.json [SEEDS]
import Foundation
import Search
import Trainer

struct Entry: Decodable {
    let decisions: [Int]
    let nas_reward: Double
}

let arguments = CommandLine.arguments
guard arguments.count >= 2, let data = FileManager.default.contents(atPath: arguments[1]) else {
    FileHandle.standardError.write(Data("usage: SearchBench TABLE.json [SEEDS]\n".utf8))
    exit(2)
}
let seeds = arguments.count > 2 ? Int(arguments[2]) ?? 20 : 20
let entries = try JSONDecoder().decode([Entry].self, from: data)
let table = Dictionary(uniqueKeysWithValues: entries.map { (SearchChoice($0.decisions), $0.nas_reward) })
let space = SearchSpace.mnistListOfDictionary
guard table.count == space.size else {
    FileHandle.standardError.write(Data("the table has \(table.count) architectures, the space \(space.size)\n".utf8))
    exit(1)
}
let best = table.values.max()!

func trialsToBest(_ kind: SearchAlgorithmKind, seed: UInt64) throws -> Int {
    let algorithm = SearchAlgorithm(kind: kind, space: space, seed: seed)
    var proposed: [SearchChoice] = []
    var finished: [TrialOutcome] = []
    while let next = try algorithm.propose(trial: proposed.count, proposed: proposed, finished: finished) {
        proposed.append(next)
        let reward = table[next]!
        finished.append(TrialOutcome(choice: next, reward: reward))
        if reward == best { break }
    }
    return proposed.count
}

print("architectures: \(table.count), best reward \(best), seeds 0..<\(seeds)")
var means: [SearchAlgorithmKind: Double] = [:]
for kind in SearchAlgorithmKind.allCases {
    let counts = try (0..<seeds).map { try trialsToBest(kind, seed: UInt64($0)) }
    means[kind] = Double(counts.reduce(0, +)) / Double(seeds)
    print(String(format: "%@ mean trials to the best: %5.2f  (min %d, max %d)", kind.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0), means[kind]!,
                 counts.min()!, counts.max()!))
}
print(String(format: "evolution / random: %.2f (below 1 means evolution needs fewer trials)",
             means[.evolution]! / means[.random]!))
