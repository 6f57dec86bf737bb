import Foundation
import Testing
import Trainer

@testable import Search

@Suite struct NonDominatedSortingTests {
    /// The seed of the random point sets: fixed, so a failure reproduces; `NAS_FUZZ_SEED` picks another.
    static let seed: UInt64 = ProcessInfo.processInfo.environment["NAS_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_261_202

    typealias Point = NonDominatedSorting.Point

    /// The next value in [0, 1) of a seeded linear congruential sequence.
    static func unit(_ state: inout UInt64) -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) * 0x1p-53
    }

    @Test func constrainedDomination() {
        let feasible = Point(objectives: [0.5, 0.9], feasibility: [-0.1])
        let better = Point(objectives: [0.4, 0.9], feasibility: [0])
        let slightlyOver = Point(objectives: [0.0, 0.0], feasibility: [0.1, -3])
        let farOver = Point(objectives: [0.0, 0.0], feasibility: [0.5])
        #expect(NonDominatedSorting.dominates(better, feasible) && !NonDominatedSorting.dominates(feasible, better))
        #expect(NonDominatedSorting.dominates(feasible, slightlyOver))
        #expect(NonDominatedSorting.dominates(slightlyOver, farOver) && !NonDominatedSorting.dominates(farOver, slightlyOver))
        #expect(NonDominatedSorting.fronts([farOver, feasible, slightlyOver, better]) == [[3], [1], [2], [0]])
    }

    /// Crowding: the extremes are infinite, an inner point gets its neighbours' normalised gaps summed.
    @Test func crowdingByHand() {
        let points = [[0.0, 1.0], [0.25, 0.5], [1.0, 0.0]].map { Point(objectives: $0, feasibility: []) }
        let distance = NonDominatedSorting.crowding([0, 1, 2], points)
        #expect(distance[0] == .infinity && distance[2] == .infinity && distance[1] == 2)
    }

    /// Random points with and without violations: the peeled fronts equal the definition (a point's front is one
    /// past the latest front of any point dominating it), and a limit stops once enough points are ranked.
    @Test func frontsMatchTheDefinition() {
        var state = Self.seed
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % bound
        }
        for round in 0..<100 {
            let points = (0..<(1 + next(40))).map { _ in
                Point(
                    objectives: (0..<(2 + round % 2)).map { _ in Double(next(6)) },
                    feasibility: next(3) == 0 ? [Double(next(3))] : [-1])
            }
            var rank = [Int](repeating: -1, count: points.count)
            while rank.contains(-1) {
                let level = (rank.max() ?? -1) + 1
                let unranked = points.indices.filter { rank[$0] == -1 }
                for index in unranked
                where !unranked.contains(where: { NonDominatedSorting.dominates(points[$0], points[index]) }) {
                    rank[index] = level
                }
                for index in unranked where rank[index] == level { rank[index] = level }
            }
            let fronts = NonDominatedSorting.fronts(points)
            #expect(fronts.count == rank.max()! + 1)
            for (level, front) in fronts.enumerated() {
                #expect(front == points.indices.filter { rank[$0] == level }, "round \(round), front \(level)")
            }
            let limited = NonDominatedSorting.fronts(points, limit: 5)
            #expect(limited == Array(fronts.prefix(limited.count)))
            #expect(limited.joined().count >= min(5, points.count))
        }
    }

    /// The samplers' points take their violation from the normalised objectives (one look-up per metric): it equals,
    /// bit for bit, the sum of the positive feasibility values `ObjectiveSpace.feasibility` gives, on metrics
    /// inside, at and beyond their targets; trials that failed or lack a metric are left out.
    @Test func scoredViolationEqualsTheFeasibilityValues() {
        var state = Self.seed
        func next() -> Double { Self.unit(&state) }
        let objectives = ObjectiveSpace(metrics: ["latency_ms", "memory_bytes"], targets: [0.37, 183_456])
        var outcomes: [TrialOutcome] = []
        for index in 0..<500 {
            var metrics = [
                "top_1_accuracy": next(), "latency_ms": 0.37 * 2 * next(), "memory_bytes": 183_456 * 2 * next(),
            ]
            if index % 7 == 0 { metrics["latency_ms"] = 0.37 }
            if index % 11 == 0 { metrics["memory_bytes"] = nil }
            outcomes.append(TrialOutcome(choice: SearchChoice([index]), reward: index % 13 == 0 ? nil : 1, metrics: metrics))
        }
        let scored = ScoredTrial.from(outcomes, objectives: objectives)
        let expected = outcomes.filter { $0.reward != nil && $0.metrics["memory_bytes"] != nil }
        #expect(scored.count == expected.count)
        #expect(scored.contains { $0.point.isFeasible } && scored.contains { !$0.point.isFeasible })
        for (trial, outcome) in zip(scored, expected) {
            let reference = NonDominatedSorting.Point(
                objectives: objectives.objectives(outcome.metrics)!, feasibility: objectives.feasibility(outcome.metrics)!)
            #expect(trial.choice == outcome.choice)
            #expect(trial.point.objectives == reference.objectives && trial.point.violation == reference.violation)
        }
    }

    /// A memo fed a growing history (a few trials at a time, some failed, some infeasible) gives the same scored
    /// trials and the same elite fronts as computing them afresh, at every step; a history that does not extend the
    /// remembered one (shorter, or a trial changed) is computed afresh too.
    @Test func memoMatchesAFreshComputationAsTheHistoryGrows() {
        var state = Self.seed
        func next() -> Double { Self.unit(&state) }
        let objectives = ObjectiveSpace(metrics: ["latency_ms", "memory_bytes"], targets: [1, 1])
        for limit in [4, 16] {
            let memo = ProposalMemo()
            var history: [TrialOutcome] = []
            var proposed: [SearchChoice] = []
            func check(_ history: [TrialOutcome], _ context: String) {
                let (scored, fronts) = memo.elite(history, objectives: objectives, limit: limit)
                let fresh = ScoredTrial.from(history, objectives: objectives)
                #expect(scored.map(\.choice) == fresh.map(\.choice), "\(context)")
                #expect(fronts == NonDominatedSorting.fronts(fresh.map(\.point), limit: limit), "\(context)")
            }
            while history.count < 300 {
                for _ in 0..<(1 + Int(next() * 4)) {
                    // Points closing in on a front over time, as a search's do, so that new points displace old.
                    let progress = Double(history.count) / 300
                    let metrics = [
                        "top_1_accuracy": progress * next(), "latency_ms": 1.2 * next() * (1 - progress / 2),
                        "memory_bytes": 1.1 * next(),
                    ]
                    let choice = SearchChoice([history.count])
                    history.append(TrialOutcome(choice: choice, reward: next() < 0.1 ? nil : 1, metrics: metrics))
                    proposed.append(choice)
                }
                check(history, "limit \(limit), \(history.count) trials")
                #expect(memo.seen(proposed) == Set(proposed))
            }
            check(Array(history.prefix(150)), "a shorter history")
            var changed = history
            changed[10].reward = changed[10].reward == nil ? 1 : nil
            check(changed, "a changed trial")
            #expect(memo.seen(Array(proposed.prefix(20))) == Set(proposed.prefix(20)))
        }
    }

    /// MOTPE's good group is the best `ceil(0.1 n)` trials, at most 25: on a chain of feasible points (each front
    /// one point) the first 4 of 40, 10 of 100 and 25 of 400; infeasible trials join it only when too few are
    /// feasible, least violating first.
    @Test func motpeGoodGroupIsTheBestShare() {
        func chain(_ count: Int, infeasibleFrom: Int = .max) -> [ScoredTrial] {
            (0..<count).map { index in
                let value = Double(index) / Double(count)
                return ScoredTrial(
                    choice: SearchChoice([index]),
                    point: Point(objectives: [value, value], violation: index >= infeasibleFrom ? 1 + value : 0))
            }
        }
        for (count, good) in [(40, 4), (100, 10), (400, 25)] {
            #expect(Set(MOTPE().split(chain(count))) == Set(0..<good), "\(count) trials")
        }
        #expect(Set(MOTPE().split(chain(40, infeasibleFrom: 2))) == Set(0..<4))
        #expect(Set(MOTPE(gamma: 0.15).split(chain(40))) == Set(0..<6))
    }

    /// Optuna 5.1's categorical kernels, by hand: with prior weight 1 and one observation of option 2 among 4, the
    /// observation's kernel is (1/2 + [own]) / 3 and the prior 1/4, each half of the mixture: 0.375 on option 2 and
    /// 0.2083 on each other; a place no trial reached is uniform.
    @Test func motpeKernelsAreOptunas() {
        var estimator = MOTPE.Estimator(priorWeight: 1)
        estimator.add([DecisionKey("$.k"): 2], weight: 1)
        let density = estimator.density(DecisionKey("$.k"), [0, 1, 2, 3])
        let expected: [Double] = [0.208_333_333_333_333_3, 0.208_333_333_333_333_3, 0.375, 0.208_333_333_333_333_3]
        let worst = zip(density, expected).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-12, "\(density)")
        let unseen = estimator.density(DecisionKey("$.other"), [0, 1, 2])
        let third: [Double] = [1.0 / 3, 1.0 / 3, 1.0 / 3]
        #expect(unseen == third)
    }

    /// The bad group's weights are Optuna's `default_weights`: 1 each up to 25 trials; with 30, the oldest 5 rise
    /// as `numpy.linspace(1/30, 1, 5)` and the latest 25 weigh 1.
    @Test func motpeBadWeightsRampTheOldest() {
        #expect(MOTPE.badWeights(25) == [Double](repeating: 1, count: 25))
        let weights = MOTPE.badWeights(30)
        let ramp: [Double] = [1.0 / 30, 0.275, 31.0 / 60, 0.758_333_333_333_333_3, 1]
        let worst = zip(weights.prefix(5), ramp).map { abs($0 - $1) }.max()!
        #expect(weights.count == 30)
        #expect(worst < 1e-12, "\(weights)")
        #expect(weights.suffix(25).allSatisfy { $0 == 1 })
    }

    /// A decision learns from every trial that decided at its place, whichever enclosing candidate led there: the
    /// good trials all have one block with kernel option 5, and a two-block architecture's first block (another
    /// key, `$.blocks/1[0].k`) gets most of its good density on option 5 too, as Optuna's define-by-run
    /// `blocks[0].k` would; the second block, which no good trial has, stays at the prior.
    @Test func motpeSharesADecisionAcrossCandidates() throws {
        let block = #"{"k": {"one_of": [0, 1, 2, 3, 4, 5, 6, 7]}}"#
        let space = try SearchSpace(text: #"{"blocks": {"one_of": [["# + block + "], [" + block + "," + block + "]]}}")
        // Good: one block, k = 5, best accuracy; bad: two blocks, k spread over the other options.
        var scored: [ScoredTrial] = (0..<4).map { index in
            ScoredTrial(choice: SearchChoice([0, 5]), point: Point(objectives: [0.1 + 0.01 * Double(index), 0.5], violation: 0))
        }
        for index in 0..<36 {
            let k = [0, 1, 2, 3, 4, 6, 7][index % 7]
            scored.append(
                ScoredTrial(
                    choice: SearchChoice([1, k, index % 8]), point: Point(objectives: [0.5 + 0.01 * Double(index), 0.9], violation: 0)))
        }
        var (good, _) = try MOTPE().estimators(space: space, scored: scored)
        let first = good.density(DecisionKey("$.blocks/1[0].k").place, Array(0..<8))
        #expect(DecisionKey("$.blocks/1[0].k").place == DecisionKey("$.blocks/0[0].k").place)
        #expect(first.indices.allSatisfy { $0 == 5 || first[5] > 4 * first[$0] }, "\(first)")
        let second = good.density(DecisionKey("$.blocks/1[1].k").place, Array(0..<8))
        #expect(second.allSatisfy { abs($0 - 0.125) < 1e-12 }, "\(second)")
    }
}
