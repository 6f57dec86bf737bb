import Search
import Trainer
import Testing

@Suite struct SearchAlgorithmTests {
    let space = SearchSpace.mnistListOfDictionary

    func run(
        _ kind: SearchAlgorithmKind, space: SearchSpace? = nil, seed: UInt64, trials: Int,
        until goal: SearchChoice? = nil, reward: (SearchChoice) -> Double
    ) throws -> [SearchChoice] {
        let algorithm = SearchAlgorithm(kind: kind, space: space ?? self.space, seed: seed)
        var proposed: [SearchChoice] = []
        var finished: [TrialOutcome] = []
        for trial in 0..<trials {
            guard let next = try algorithm.propose(trial: trial, proposed: proposed, finished: finished) else { break }
            proposed.append(next)
            finished.append(TrialOutcome(choice: next, reward: reward(next)))
            if next == goal { break }
        }
        return proposed
    }

    @Test(arguments: SearchAlgorithmKind.allCases)
    func coversTheSpaceWithoutRepeatsThenStops(kind: SearchAlgorithmKind) throws {
        let proposed = try run(kind, seed: 3, trials: 100) { Double($0.decisions.reduce(0, +)) }
        #expect(proposed.count == 36)
        #expect(Set(proposed).count == 36)
        for choice in proposed { #expect(throws: Never.self) { try space.validate(choice) } }
    }

    @Test func gridIsInOrder() throws {
        let proposed = try run(.grid, seed: 0, trials: 4) { _ in 0 }
        #expect(proposed == Array(try space.allChoices().prefix(4)))
    }

    @Test(arguments: SearchAlgorithmKind.allCases)
    func sameSeedSameProposals(kind: SearchAlgorithmKind) throws {
        let reward: (SearchChoice) -> Double = { Double($0.decisions.last!) }
        #expect(try run(kind, seed: 11, trials: 20, reward: reward) == run(kind, seed: 11, trials: 20, reward: reward))
        if kind != .grid {
            #expect(try run(kind, seed: 11, trials: 20, reward: reward) != run(kind, seed: 12, trials: 20, reward: reward))
        }
    }

    @Test func evolutionMutatesOneDecisionOfThePopulation() throws {
        let algorithm = SearchAlgorithm(kind: .evolution, space: space, seed: 5, populationSize: 4, tournamentSize: 2)
        let population = Array(try space.allChoices().prefix(4))
        let finished = population.enumerated().map { TrialOutcome(choice: $1, reward: Double($0)) }
        for trial in 4..<20 {
            let child = try #require(try algorithm.propose(trial: trial, proposed: population, finished: finished))
            #expect(!population.contains(child))
            let distances = population.map { zip($0.decisions, child.decisions).filter { $0 != $1 }.count }
            #expect(distances.contains(1), "\(child) is not one mutation from the population")
        }
    }

    /// On a landscape with one peak, evolution needs fewer trials than random search, over 20 seeds.
    @Test func evolutionFindsThePeakSoonerThanRandomOnAverage() throws {
        let layer = #"{"a": {"one_of": [0, 1, 2, 3]}, "b": {"one_of": [0, 1, 2, 3]}}"#
        let big = try SearchSpace(text: "[\(layer), \(layer), {\"c\": {\"one_of\": [0, 1, 2, 3]}}]")
        let peak = SearchChoice([3, 1, 2, 0, 3])
        func reward(_ choice: SearchChoice) -> Double {
            -Double(zip(choice.decisions, peak.decisions).map { abs($0 - $1) }.reduce(0, +))
        }
        let evolution = try (0..<20).map { try run(.evolution, space: big, seed: $0, trials: 2000, until: peak, reward: reward).count }
        let random = try (0..<20).map { try run(.random, space: big, seed: $0, trials: 2000, until: peak, reward: reward).count }
        #expect(evolution.reduce(0, +) < random.reduce(0, +), "evolution \(evolution) vs random \(random)")
    }
}
