import Search
import Testing

@Suite struct SearchAlgorithmTests {
    /// The tutorial space: two layers of (kernel 3|5, filters 3 candidates).
    let space = DecisionSpace(cardinalities: [2, 3, 2, 3])

    func run(_ kind: SearchAlgorithmKind, seed: UInt64, trials: Int, reward: ([Int]) -> Double) -> [[Int]] {
        let algorithm = SearchAlgorithm(kind: kind, space: space, seed: seed)
        var proposed: [[Int]] = []
        var finished: [TrialOutcome] = []
        for trial in 0..<trials {
            guard let next = algorithm.propose(trial: trial, proposed: proposed, finished: finished) else { break }
            proposed.append(next)
            finished.append(TrialOutcome(decisions: next, reward: reward(next)))
        }
        return proposed
    }

    @Test(arguments: SearchAlgorithmKind.allCases)
    func coversTheSpaceWithoutRepeatsThenStops(kind: SearchAlgorithmKind) {
        let proposed = run(kind, seed: 3, trials: 100) { Double($0.reduce(0, +)) }
        #expect(proposed.count == 36)
        #expect(Set(proposed).count == 36)
        #expect(proposed.allSatisfy { zip($0, space.cardinalities).allSatisfy { $0 >= 0 && $0 < $1 } })
    }

    @Test func gridIsInMixedRadixOrder() {
        let proposed = run(.grid, seed: 0, trials: 4) { _ in 0 }
        #expect(proposed == [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 2], [0, 0, 1, 0]])
    }

    @Test(arguments: SearchAlgorithmKind.allCases)
    func sameSeedSameProposals(kind: SearchAlgorithmKind) {
        let reward: ([Int]) -> Double = { Double($0[1] * 3 + $0[3]) }
        #expect(run(kind, seed: 11, trials: 20, reward: reward) == run(kind, seed: 11, trials: 20, reward: reward))
        if kind != .grid {
            #expect(run(kind, seed: 11, trials: 20, reward: reward) != run(kind, seed: 12, trials: 20, reward: reward))
        }
    }

    @Test func evolutionMutatesOneDecisionOfATournamentWinner() {
        let algorithm = SearchAlgorithm(kind: .evolution, space: space, seed: 5, populationSize: 4, tournamentSize: 2)
        let population: [[Int]] = [[0, 0, 0, 0], [1, 1, 1, 1], [0, 2, 1, 2], [1, 0, 0, 1]]
        let finished = population.enumerated().map { TrialOutcome(decisions: $1, reward: Double($0)) }
        for trial in 4..<20 {
            let child = algorithm.propose(trial: trial, proposed: population, finished: finished)!
            #expect(!population.contains(child))
            let distances = population.map { zip($0, child).filter { $0 != $1 }.count }
            #expect(distances.contains(1), "\(child) is not one mutation from the population")
        }
    }

    /// On a landscape with one peak, evolution needs fewer trials than random search, over 20 seeds.
    @Test func evolutionFindsThePeakSoonerThanRandomOnAverage() {
        let big = DecisionSpace(cardinalities: [4, 4, 4, 4, 4])
        let peak = [3, 1, 2, 0, 3]
        func reward(_ d: [Int]) -> Double { -Double(zip(d, peak).map { abs($0 - $1) }.reduce(0, +)) }
        func trialsToPeak(_ kind: SearchAlgorithmKind, _ seed: UInt64) -> Int {
            let algorithm = SearchAlgorithm(kind: kind, space: big, seed: seed)
            var proposed: [[Int]] = []
            var finished: [TrialOutcome] = []
            while let next = algorithm.propose(trial: proposed.count, proposed: proposed, finished: finished) {
                proposed.append(next)
                finished.append(TrialOutcome(decisions: next, reward: reward(next)))
                if next == peak { break }
            }
            return proposed.count
        }
        let evolution = (0..<20).map { trialsToPeak(.evolution, $0) }.reduce(0, +)
        let random = (0..<20).map { trialsToPeak(.random, $0) }.reduce(0, +)
        #expect(evolution < random, "evolution \(evolution) vs random \(random) trials over 20 seeds")
    }
}
