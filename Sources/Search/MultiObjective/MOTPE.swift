import Constraints
import Foundation
import Trainer

/// Multi-objective TPE (Ozaki et al. 2020), as Optuna's `TPESampler` runs it for several objectives with
/// `constraints_func`: the finished trials split into a good and a bad group, each decision gets a categorical
/// Parzen estimator per group, and the option with the best ratio of good to bad density among sampled
/// candidates wins.
///
/// The split follows Optuna's: `min(ceil(gamma n), 25)` good trials (gamma 0.1); feasible trials first (infeasible ones, least violating first, only when too few are feasible); among feasible
/// ones whole non-dominated fronts, the last front cut by greedy hypervolume subset selection. Good trials weigh by their hypervolume contribution, bad
/// ones equally. Decisions are estimated independently (Optuna's default, `multivariate=False`), keyed by
/// `DecisionKey` so that a decision beneath a `one_of` learns only from trials that reached it.
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
        let (below, weights) = split(scored)
        let belowSet = Set(below)
        var good: [(decisions: [DecisionKey: Int], weight: Double)] = []
        var bad: [[DecisionKey: Int]] = []
        for (index, trial) in scored.enumerated() {
            let decisions = try space.keyedDecisions(of: trial.choice)
            if belowSet.contains(index) {
                good.append((decisions, weights[below.firstIndex(of: index)!]))
            } else {
                bad.append(decisions)
            }
        }
        // Each decision's densities once per proposal, not once per attempt (normalised: a draw is then one pass).
        var cache: [DecisionKey: (allowed: [Int], low: [Double], high: [Double])] = [:]
        func densities(_ key: DecisionKey, _ allowed: [Int]) -> (low: [Double], high: [Double]) {
            if let hit = cache[key], hit.allowed == allowed { return (hit.low, hit.high) }
            var low = [Double](repeating: priorWeight / Double(allowed.count), count: allowed.count)
            var high = low
            for (decisions, weight) in good {
                if let option = decisions[key], let slot = allowed.firstIndex(of: option) { low[slot] += weight }
            }
            for decisions in bad {
                if let option = decisions[key], let slot = allowed.firstIndex(of: option) { high[slot] += 1 }
            }
            let lowTotal = low.reduce(0, +)
            let highTotal = high.reduce(0, +)
            low = low.map { $0 / lowTotal }
            high = high.map { $0 / highTotal }
            cache[key] = (allowed, low, high)
            return (low, high)
        }
        func draw(_ low: [Double]) -> Int {
            var target = unit(&generator)
            var slot = 0
            while slot < low.count - 1, target >= low[slot] {
                target -= low[slot]
                slot += 1
            }
            return slot
        }
        // The first attempts take the best ratio among candidates; later ones sample the good density alone, so
        // that a small space's already tried best gives way to its next most likely neighbours.
        for attempt in 0..<32 {
            let draws = attempt < 4 ? candidates : 1
            let child = space.build { key, allowed in
                let (low, high) = densities(key, allowed)
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

    /// The good trials (indices into `scored`) and their weights.
    func split(_ scored: [ScoredTrial]) -> (below: [Int], weights: [Double]) {
        let count = max(1, min(Int((gamma * Double(scored.count)).rounded(.up)), 25))
        let feasible = scored.indices.filter { scored[$0].point.isFeasible }
        var below: [Int] = []
        if feasible.count <= count {
            below = feasible
            let infeasible = scored.indices.filter { !scored[$0].point.isFeasible }
                .sorted { (scored[$0].point.violation, $0) < (scored[$1].point.violation, $1) }
            below += infeasible.prefix(count - below.count)
        } else {
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
        }
        let reference = Self.reference(scored.map(\.point.objectives))
        let objectives = below.map { scored[$0].point.objectives }
        var weights = Hypervolume.contributions(objectives, reference: reference)
        let top = weights.max() ?? 0
        weights = top > 0 ? weights.map { max($0 / top, 1e-12) } : weights.map { _ in 1 }
        return (below, weights)
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
