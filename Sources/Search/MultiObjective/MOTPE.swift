import Constraints
import Foundation
import Trainer

/// Multi-objective TPE (Ozaki et al. 2020), as Optuna 5.1's `TPESampler` runs it for several objectives with
/// `constraints_func`: the finished trials split into a good and a bad group, each decision gets a categorical
/// Parzen estimator per group, and the option with the best ratio of good to bad density among sampled
/// candidates wins.
///
/// As Optuna 5.1: `ceil(gamma n)` good trials (gamma 0.1; at most 25 here, which only budgets above 250 trials
/// reach); feasible trials first (infeasible ones, least violating first, only when too few are feasible); among
/// feasible ones whole non-dominated fronts, the last front cut by greedy hypervolume subset selection. Good trials
/// weigh alike; bad ones alike up to 25, beyond that the oldest less (Optuna's `default_weights` ramp). Each
/// observation's kernel puts `1 + p / (n + 1)` on its option and `p / (n + 1)` on every other (p the prior weight,
/// n the observations), beside a uniform prior of weight p. Decisions are estimated independently (Optuna's
/// default, `multivariate=False`).
///
/// A decision's estimators learn from every trial that made a decision at the same place in the built value
/// (`DecisionKey.place`), whichever candidates of enclosing `one_of`s led there, as Optuna's define-by-run
/// parameters do: the first block of a stage is one set of decisions whether the stage has one block or three.
struct MOTPE: Sendable {
    /// Random proposals until this many trials finished (Optuna's 10).
    var startupTrials = 10
    /// The share of finished trials in the good group, up to 25 of them (Optuna's 0.1). 0.15 reached 95% of the
    /// tabular benchmark's true front sooner on its first 280 and 340 rows but not on all 399 (bench/README.md):
    /// within seed noise, so Optuna's value stays.
    var gamma = 0.1
    /// Candidates sampled from the good density per decision (Optuna's 24).
    var candidates = 24
    /// The weight of the uniform prior in each density (Optuna's 1.0).
    var priorWeight = 1.0

    /// A proposal no trial has tried, or nil while too few trials finished or no unseen one turned up.
    func propose(
        space: SearchSpace, scored: [ScoredTrial], seen: Set<SearchChoice>, generator: inout SeededGenerator
    ) throws -> SearchChoice? {
        guard scored.count >= max(1, startupTrials) else { return nil }
        var (good, bad) = try estimators(space: space, scored: scored)
        func draw(_ density: [Double]) -> Int {
            var target = unit(&generator)
            var slot = 0
            while slot < density.count - 1, target >= density[slot] {
                target -= density[slot]
                slot += 1
            }
            return slot
        }
        // The first attempts take the best ratio among candidates; later ones sample the good density alone, so
        // that a small space's already tried best gives way to its next most likely neighbours.
        for attempt in 0..<32 {
            let draws = attempt < 4 ? candidates : 1
            let child = space.build { key, allowed in
                let place = key.place
                let low = good.density(place, allowed)
                let high = bad.density(place, allowed)
                var best = -Double.infinity
                var chosen = allowed[0]
                for _ in 0..<draws {
                    let slot = draw(low)
                    let score = log(low[slot]) - log(high[slot])
                    if score > best {
                        best = score
                        chosen = allowed[slot]
                    }
                }
                return chosen
            }
            if !seen.contains(child) { return child }
        }
        return nil
    }

    /// The good and the bad group's estimators over `scored`, keyed by decision place.
    func estimators(space: SearchSpace, scored: [ScoredTrial]) throws -> (good: Estimator, bad: Estimator) {
        let below = Set(split(scored))
        var good = Estimator(priorWeight: priorWeight)
        var bad = Estimator(priorWeight: priorWeight)
        var badTrials: [[DecisionKey: Int]] = []
        for (index, trial) in scored.enumerated() {
            var decisions: [DecisionKey: Int] = [:]
            for (key, option) in try space.keyedDecisions(of: trial.choice) { decisions[key.place] = option }
            if below.contains(index) { good.add(decisions, weight: 1) } else { badTrials.append(decisions) }
        }
        for (decisions, weight) in zip(badTrials, Self.badWeights(badTrials.count)) { bad.add(decisions, weight: weight) }
        return (good, bad)
    }

    /// The bad group's weights in the order its trials finished: 1 each up to 25; beyond, Optuna's
    /// `default_weights`, the 25 latest 1 and the others rising linearly from 1 / n to 1.
    static func badWeights(_ count: Int) -> [Double] {
        guard count >= 25 else { return [Double](repeating: 1, count: count) }
        let ramp = count - 25
        let low = 1 / Double(count)
        return (0..<ramp).map { ramp == 1 ? low : low + (1 - low) * Double($0) / Double(ramp - 1) }
            + [Double](repeating: 1, count: 25)
    }

    /// One group's categorical Parzen estimators, one per decision place, as Optuna's
    /// `_calculate_categorical_distributions` with the uniform prior as one more mixture component.
    struct Estimator {
        var priorWeight: Double
        /// Each place's observations: the option and the trial's weight.
        private var observations: [DecisionKey: [(option: Int, weight: Double)]] = [:]
        private var cache: [DecisionKey: (allowed: [Int], density: [Double])] = [:]

        init(priorWeight: Double) { self.priorWeight = priorWeight }

        mutating func add(_ decisions: [DecisionKey: Int], weight: Double) {
            for (place, option) in decisions { observations[place, default: []].append((option, weight)) }
        }

        /// The mixture's density over `allowed` (normalised); uniform where no trial decided there.
        mutating func density(_ place: DecisionKey, _ allowed: [Int]) -> [Double] {
            if let hit = cache[place], hit.allowed == allowed { return hit.density }
            let count = Double(allowed.count)
            var density = [Double](repeating: 1 / count, count: allowed.count)
            let seen = (observations[place] ?? []).compactMap { item in
                allowed.firstIndex(of: item.option).map { (slot: $0, weight: item.weight) }
            }
            if !seen.isEmpty {
                // Each kernel: p / (n + 1) on every option, 1 more on its own, normalised; the prior: uniform.
                let spread = priorWeight / Double(seen.count + 1)
                let norm = 1 + count * spread
                var total = priorWeight
                density = density.map { $0 * priorWeight }
                for (slot, weight) in seen {
                    total += weight
                    for index in density.indices { density[index] += weight * spread / norm }
                    density[slot] += weight / norm
                }
                density = density.map { $0 / total }
            }
            cache[place] = (allowed, density)
            return density
        }
    }

    /// The good trials: indices into `scored`.
    func split(_ scored: [ScoredTrial]) -> [Int] {
        let count = max(1, min(Int((gamma * Double(scored.count)).rounded(.up)), 25))
        let feasible = scored.indices.filter { scored[$0].point.isFeasible }
        guard feasible.count > count else {
            let infeasible = scored.indices.filter { !scored[$0].point.isFeasible }
                .sorted { (scored[$0].point.violation, $0) < (scored[$1].point.violation, $1) }
            return feasible + infeasible.prefix(count - feasible.count)
        }
        var below: [Int] = []
        let points = feasible.map { scored[$0].point }
        for front in NonDominatedSorting.fronts(points, limit: count) {
            let members = front.map { feasible[$0] }
            if below.count + members.count <= count {
                below += members
                if below.count == count { break }
                continue
            }
            below += greedySubset(members, size: count - below.count, chosen: below, scored)
            break
        }
        return below
    }

    /// Greedy hypervolume subset selection: `size` of `candidates`, each adding the most to `chosen`'s volume.
    private func greedySubset(_ candidates: [Int], size: Int, chosen: [Int], _ scored: [ScoredTrial]) -> [Int] {
        let reference = Self.reference(scored.map(\.point.objectives))
        var picked = chosen.map { scored[$0].point.objectives }
        var left = candidates
        var out: [Int] = []
        while out.count < size, !left.isEmpty {
            let base = Hypervolume.of(picked, reference: reference)
            let gains = left.map { Hypervolume.of(picked + [scored[$0].point.objectives], reference: reference) - base }
            let best = gains.indices.max { (gains[$0], -left[$0]) < (gains[$1], -left[$1]) }!
            out.append(left[best])
            picked.append(scored[left[best]].point.objectives)
            left.remove(at: best)
        }
        return out
    }

    /// Optuna's reference for the split: each objective's worst value times 1.1 (plus a margin at 0).
    static func reference(_ objectives: [[Double]]) -> [Double] {
        guard let first = objectives.first else { return [] }
        return first.indices.map { index in
            let worst = objectives.map { $0[index] }.max()!
            return worst > 0 ? worst * 1.1 : worst < 0 ? worst * 0.9 : 1e-12
        }
    }
}
