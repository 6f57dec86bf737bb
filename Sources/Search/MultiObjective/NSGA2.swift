import Trainer

/// NSGA-II (Deb et al. 2002) over a search space's decisions, as Optuna's `NSGAIISampler` with
/// `constraints_func`: elitist selection by non-dominated sorting under constrained domination and crowding
/// distance, binary tournaments for parents, uniform crossover and per-decision mutation.
///
/// Proposals come from the finished trials only (so parallel trials and a resumed job propose the same): the
/// parent population is the best `populationSize` of every finished trial (a (mu + lambda) archive; Optuna's
/// generations need a full generation to finish before the next starts, which parallel trials would wait for).
/// Until `populationSize` trials have finished, proposals are random.
struct NSGA2: Sendable {
    /// The parent population's size (Optuna's default is 50, a size for budgets of hundreds of trials).
    var populationSize = 16
    /// The probability that a child mixes two parents rather than copying one (Optuna's 0.9).
    var crossoverProbability = 0.9
    /// Uniform crossover: the probability that a decision comes from the second parent (Optuna's 0.5).
    var swappingProbability = 0.5

    /// A child no trial has tried, or nil when too few trials finished or no unseen child turned up; `fronts` are
    /// the scored trials' first fronts, `NonDominatedSorting.fronts(_:limit: populationSize)`.
    func propose(
        space: SearchSpace, scored: [ScoredTrial], fronts: [[Int]], seen: Set<SearchChoice>,
        generator: inout SeededGenerator
    ) throws -> SearchChoice? {
        guard scored.count >= populationSize else { return nil }
        let points = scored.map(\.point)
        // Elitist selection: whole fronts while they fit, then the least crowded of the next.
        var population: [(index: Int, rank: Int, crowding: Double)] = []
        for (rank, front) in fronts.enumerated() where population.count < populationSize {
            let crowding = NonDominatedSorting.crowding(front, points)
            var members = zip(front, crowding).map { (index: $0, rank: rank, crowding: $1) }
            if population.count + members.count > populationSize {
                members.sort { ($0.crowding, -$0.index) > ($1.crowding, -$1.index) }
                members = Array(members.prefix(populationSize - population.count))
            }
            population += members
        }
        func tournament() -> Int {
            let a = population[pick(population.count, &generator)]
            let b = population[pick(population.count, &generator)]
            if a.rank != b.rank { return a.rank < b.rank ? a.index : b.index }
            if a.crowding != b.crowding { return a.crowding > b.crowding ? a.index : b.index }
            return min(a.index, b.index)
        }
        for _ in 0..<32 {
            let first = try space.keyedDecisions(of: scored[tournament()].choice)
            let second = try space.keyedDecisions(of: scored[tournament()].choice)
            let crosses = unit(&generator) < crossoverProbability
            let mutation = 1 / Double(max(1, first.count))
            let child = space.build { key, allowed in
                var option = first[key] ?? second[key]
                if crosses, let other = second[key], unit(&generator) < swappingProbability { option = other }
                if option == nil || unit(&generator) < mutation { option = allowed[pick(allowed.count, &generator)] }
                return option!
            }
            if !seen.contains(child) { return child }
        }
        return nil
    }
}

/// A finished trial with the values the multi-objective samplers compare.
struct ScoredTrial {
    var choice: SearchChoice
    var point: NonDominatedSorting.Point

    /// The finished trials that succeeded and report every objective.
    ///
    /// One look-up per metric: a constraint's feasibility value `m / T - 1` is its normalised objective minus 1
    /// (`ObjectiveSpace`), so the violation comes from the objectives rather than a second pass over the metrics.
    static func from(_ finished: [TrialOutcome], objectives: ObjectiveSpace) -> [ScoredTrial] {
        finished.compactMap { outcome in
            guard outcome.reward != nil, let values = objectives.objectives(outcome.metrics) else { return nil }
            var violation = 0.0
            for value in values.dropFirst() { violation += max(0, value - 1) }
            return ScoredTrial(
                choice: outcome.choice, point: NonDominatedSorting.Point(objectives: values, violation: violation))
        }
    }
}

/// A uniform index in `0..<count`.
func pick(_ count: Int, _ generator: inout SeededGenerator) -> Int {
    Int(generator.next() % UInt64(count))
}

/// A uniform value in [0, 1) with 53 random bits.
func unit(_ generator: inout SeededGenerator) -> Double {
    Double(generator.next() >> 11) * 0x1p-53
}
