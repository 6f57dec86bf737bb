import Trainer

/// How trials are proposed.
public enum SearchAlgorithmKind: String, CaseIterable, Sendable {
    /// Uniformly random architectures, none repeated (PyGlove's random search).
    case random
    /// Every architecture in order.
    case grid
    /// Regularized evolution (Real et al. 2019): tournament selection, one-decision mutation, oldest dies.
    case evolution
    /// NSGA-II over accuracy and each constraint's metric (Optuna's `NSGAIISampler` with `constraints_func`).
    case nsga2
    /// Multi-objective TPE over the same objectives (Optuna's `TPESampler` with several objectives).
    case motpe

    /// True for the algorithms that search the front of accuracy against the constraints' metrics.
    public var isMultiObjective: Bool { self == .nsga2 || self == .motpe }
}

/// A finished trial as the algorithms see it.
public struct TrialOutcome: Hashable, Sendable {
    /// The trial's architecture.
    public var choice: SearchChoice
    /// Its reward; nil when it failed.
    public var reward: Double?
    /// The metrics it reported (accuracy, the constrained metrics), which the multi-objective algorithms compare.
    public var metrics: [String: Double]

    /// Creates an outcome.
    public init(choice: SearchChoice, reward: Double?, metrics: [String: Double] = [:]) {
        self.choice = choice
        self.reward = reward
        self.metrics = metrics
    }
}

/// Proposes the next trial's architecture from the job's history.
///
/// A proposal depends only on the seed, the trial's number and the history, so a resumed job proposes what the
/// killed one would have. No architecture is proposed twice; nil means the space is exhausted.
public struct SearchAlgorithm: Sendable {
    /// Which algorithm.
    public var kind: SearchAlgorithmKind
    /// The architectures to choose from.
    public var space: SearchSpace
    /// The search's seed.
    public var seed: UInt64
    /// Evolution: how many most recently finished trials form the population.
    public var populationSize: Int
    /// Evolution: how many of the population compete in each tournament.
    public var tournamentSize: Int
    /// NSGA-II and MOTPE: what they maximise and minimise (accuracy alone unless set).
    public var objectives: ObjectiveSpace
    /// What the last proposal worked out, extended by the next rather than rebuilt (shared by copies).
    private let memo = ProposalMemo()

    /// Creates an algorithm; evolution's defaults suit small spaces such as the tutorial's 36 architectures.
    public init(
        kind: SearchAlgorithmKind, space: SearchSpace, seed: UInt64, populationSize: Int = 8, tournamentSize: Int = 3,
        objectives: ObjectiveSpace = ObjectiveSpace(metrics: [], targets: [])
    ) {
        self.objectives = objectives
        self.kind = kind
        self.space = space
        self.seed = seed
        self.populationSize = max(2, populationSize)
        self.tournamentSize = max(1, min(tournamentSize, self.populationSize))
    }

    /// The architecture of trial number `trial` (0-based), given every architecture proposed so far and the
    /// finished trials in the order they finished.
    public func propose(trial: Int, proposed: [SearchChoice], finished: [TrialOutcome]) throws -> SearchChoice? {
        let seen = memo.seen(proposed)
        guard seen.count < space.size else { return nil }
        var generator = SeededGenerator(seed: seed &+ UInt64(trial) &* 0x9E37_79B9_7F4A_7C15)
        switch kind {
        case .grid:
            return try space.allChoices().first { !seen.contains($0) }
        case .random:
            return try randomUnseen(seen, &generator)
        case .evolution:
            let scored = finished.filter { $0.reward != nil }
            guard scored.count >= populationSize else { return try randomUnseen(seen, &generator) }
            let population = Array(scored.suffix(populationSize))
            for _ in 0..<16 {
                var best = population[Int(generator.next() % UInt64(population.count))]
                for _ in 1..<tournamentSize {
                    let candidate = population[Int(generator.next() % UInt64(population.count))]
                    if candidate.reward! > best.reward! { best = candidate }
                }
                guard let child = try? space.mutate(best.choice, using: &generator) else { break }
                if !seen.contains(child) { return child }
            }
            return try randomUnseen(seen, &generator)
        case .nsga2:
            let nsga2 = NSGA2()
            let (scored, fronts) = memo.elite(finished, objectives: objectives, limit: nsga2.populationSize)
            if let child = try nsga2.propose(
                space: space, scored: scored, fronts: fronts, seen: seen, generator: &generator)
            {
                return child
            }
            return try randomUnseen(seen, &generator)
        case .motpe:
            let scored = memo.scored(finished, objectives: objectives)
            if let child = try MOTPE().propose(space: space, scored: scored, seen: seen, generator: &generator) {
                return child
            }
            return try randomUnseen(seen, &generator)
        }
    }

    private func randomUnseen(_ seen: Set<SearchChoice>, _ generator: inout SeededGenerator) throws -> SearchChoice? {
        // Sampling while the space is mostly unexplored; enumeration once most of it is seen.
        for _ in 0..<64 {
            let choice = space.sample(using: &generator)
            if !seen.contains(choice) { return choice }
        }
        let remaining = try space.allChoices().filter { !seen.contains($0) }
        return remaining.isEmpty ? nil : remaining[Int(generator.next() % UInt64(remaining.count))]
    }
}
