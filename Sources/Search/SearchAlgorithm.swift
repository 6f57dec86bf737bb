/// The decisions of a search space: decision `i` picks one of `cardinalities[i]` candidates.
public struct DecisionSpace: Hashable, Sendable {
    /// How many candidates each decision has (each >= 1).
    public var cardinalities: [Int]

    /// Creates a space.
    public init(cardinalities: [Int]) {
        self.cardinalities = cardinalities
    }

    /// The number of distinct choices.
    public var size: Int {
        cardinalities.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
    }

    /// The `index`-th choice in mixed-radix order (the last decision varies fastest), for grid search.
    public func choice(at index: Int) -> [Int] {
        var rest = index
        var decisions = [Int](repeating: 0, count: cardinalities.count)
        for position in cardinalities.indices.reversed() {
            decisions[position] = rest % cardinalities[position]
            rest /= cardinalities[position]
        }
        return decisions
    }
}

/// How trials are proposed.
public enum SearchAlgorithmKind: String, CaseIterable, Sendable {
    /// Uniformly random choices, none repeated.
    case random
    /// Every choice in order.
    case grid
    /// Regularized evolution (Real et al. 2019): tournament selection, one-decision mutation, oldest dies.
    case evolution
}

/// A finished or running trial as the algorithms see it.
public struct TrialOutcome: Hashable, Sendable {
    /// The trial's decisions.
    public var decisions: [Int]
    /// Its reward; nil while running, or when it failed.
    public var reward: Double?

    /// Creates an outcome.
    public init(decisions: [Int], reward: Double?) {
        self.decisions = decisions
        self.reward = reward
    }
}

/// Proposes the next trial's decisions from the job's history.
///
/// Proposals depend only on the seed, the trial's number and the history, so a resumed job proposes what the
/// killed one would have. No choice is proposed twice; nil means the space is exhausted.
public struct SearchAlgorithm: Sendable {
    /// Which algorithm.
    public var kind: SearchAlgorithmKind
    /// The decisions to choose.
    public var space: DecisionSpace
    /// The search's seed.
    public var seed: UInt64
    /// Evolution: how many recent finished trials form the population.
    public var populationSize: Int
    /// Evolution: how many of the population compete in each tournament.
    public var tournamentSize: Int

    /// Creates an algorithm; evolution's defaults suit small spaces such as the tutorial's 36 choices.
    public init(
        kind: SearchAlgorithmKind, space: DecisionSpace, seed: UInt64, populationSize: Int = 8, tournamentSize: Int = 3
    ) {
        self.kind = kind
        self.space = space
        self.seed = seed
        self.populationSize = max(2, populationSize)
        self.tournamentSize = max(1, min(tournamentSize, self.populationSize))
    }

    /// The decisions of trial number `trial` (0-based), given every earlier trial in proposal order and the
    /// finished ones in `finished`, in the order they finished.
    public func propose(trial: Int, proposed: [[Int]], finished: [TrialOutcome]) -> [Int]? {
        let seen = Set(proposed)
        guard seen.count < space.size else { return nil }
        var generator = SeededGenerator(seed: seed &+ UInt64(trial) &* 0x9E37_79B9_7F4A_7C15)
        switch kind {
        case .grid:
            for index in 0..<space.size where !seen.contains(space.choice(at: index)) {
                return space.choice(at: index)
            }
            return nil
        case .random:
            return randomUnseen(seen, &generator)
        case .evolution:
            let scored = finished.filter { $0.reward != nil }
            guard scored.count >= populationSize else { return randomUnseen(seen, &generator) }
            let population = Array(scored.suffix(populationSize))
            for _ in 0..<16 {
                var best: TrialOutcome?
                for _ in 0..<tournamentSize {
                    let candidate = population[Int(generator.next() % UInt64(population.count))]
                    if best == nil || candidate.reward! > best!.reward! { best = candidate }
                }
                let child = mutate(best!.decisions, &generator)
                if !seen.contains(child) { return child }
            }
            return randomUnseen(seen, &generator)
        }
    }

    /// Changes one decision with more than one candidate to another candidate.
    public func mutate(_ decisions: [Int], _ generator: inout SeededGenerator) -> [Int] {
        let mutable = space.cardinalities.indices.filter { space.cardinalities[$0] > 1 }
        guard !mutable.isEmpty else { return decisions }
        var child = decisions
        let position = mutable[Int(generator.next() % UInt64(mutable.count))]
        let offset = 1 + Int(generator.next() % UInt64(space.cardinalities[position] - 1))
        child[position] = (decisions[position] + offset) % space.cardinalities[position]
        return child
    }

    private func randomUnseen(_ seen: Set<[Int]>, _ generator: inout SeededGenerator) -> [Int]? {
        // Rejection sampling while the space is mostly unexplored; enumeration once it is mostly seen.
        for _ in 0..<64 {
            let choice = space.cardinalities.map { Int(generator.next() % UInt64($0)) }
            if !seen.contains(choice) { return choice }
        }
        guard space.size <= 1_000_000 else { return nil }
        let remaining = (0..<space.size).map { space.choice(at: $0) }.filter { !seen.contains($0) }
        return remaining.isEmpty ? nil : remaining[Int(generator.next() % UInt64(remaining.count))]
    }
}

/// SplitMix64: small, fast and seedable, so that searches reproduce.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) {
        state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
