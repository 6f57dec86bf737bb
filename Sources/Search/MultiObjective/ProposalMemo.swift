import Synchronization
import Trainer

/// What one job's proposals keep for the next: the set of proposed architectures, the scored finished trials and
/// NSGA-II's elite fronts, each extended by the trials added since the last proposal rather than rebuilt. A
/// proposal at 1,000 finished trials then costs a comparison of the history with the remembered one, not a hash of
/// every architecture, a metric look-up per trial and objective and a sort of every point.
///
/// A job's history only grows. A call whose history does not extend the remembered one (shorter, or a trial
/// changed) starts over from it, so a proposal never depends on what the memo saw before: the same history gives
/// the same proposal with a fresh memo or a used one. Histories compare by architecture and reward, which a job's
/// finished trials never change.
final class ProposalMemo: Sendable {
    private struct State {
        var proposed: [SearchChoice] = []
        var seen: Set<SearchChoice> = []
        var objectives: ObjectiveSpace?
        var finished: [TrialOutcome] = []
        var scored: [ScoredTrial] = []
        /// The elite fronts over `scored` (indices, ascending), ranks 0 to k, holding at least `eliteLimit` points
        /// unless every point is in them.
        var elite: [[Int]] = []
        var eliteLimit = 0
        /// How many of `scored` `elite` ranked.
        var eliteCount = 0
    }

    private let state = Mutex(State())

    /// The set of `proposed`.
    func seen(_ proposed: [SearchChoice]) -> Set<SearchChoice> {
        state.withLock { state in
            if !Self.extends(proposed, state.proposed, by: ==) {
                state.seen = []
                state.proposed = []
            }
            for choice in proposed[state.proposed.count...] { state.seen.insert(choice) }
            state.proposed = proposed
            return state.seen
        }
    }

    /// `ScoredTrial.from(finished, objectives:)`.
    func scored(_ finished: [TrialOutcome], objectives: ObjectiveSpace) -> [ScoredTrial] {
        state.withLock { Self.update(&$0, finished, objectives) }
    }

    /// The scored trials and their first non-dominated fronts holding at least `limit` points (all when fewer),
    /// as `NonDominatedSorting.fronts(_:limit:)` ranks them.
    ///
    /// New points can only push old ones to worse ranks, so the points ranked k or better among the remembered
    /// fronts (ranks up to k) and the new points are the same as among all points; when they still hold `limit`
    /// points, the fronts are those, else every point is sorted again.
    func elite(_ finished: [TrialOutcome], objectives: ObjectiveSpace, limit: Int) -> (
        scored: [ScoredTrial], fronts: [[Int]]
    ) {
        state.withLock { state in
            let scored = Self.update(&state, finished, objectives)
            if state.eliteLimit != limit { state.elite = [] }
            if state.elite.isEmpty {
                state.elite = NonDominatedSorting.fronts(scored.map(\.point), limit: limit)
            } else if state.eliteCount < scored.count {
                let members = state.elite.flatMap { $0 }.sorted() + Array(state.eliteCount..<scored.count)
                let ranked = NonDominatedSorting.fronts(members.map { scored[$0].point }, limit: limit)
                    .prefix(state.elite.count).map { $0.map { members[$0] } }
                if ranked.reduce(0, { $0 + $1.count }) >= min(limit, scored.count) {
                    var kept: [[Int]] = []
                    var count = 0
                    for front in ranked where count < limit {
                        kept.append(front)
                        count += front.count
                    }
                    state.elite = kept
                } else {
                    state.elite = NonDominatedSorting.fronts(scored.map(\.point), limit: limit)
                }
            }
            state.eliteLimit = limit
            state.eliteCount = scored.count
            return (scored, state.elite)
        }
    }

    private static func update(_ state: inout State, _ finished: [TrialOutcome], _ objectives: ObjectiveSpace)
        -> [ScoredTrial]
    {
        if state.objectives != objectives
            || !extends(finished, state.finished, by: { $0.choice == $1.choice && $0.reward == $1.reward })
        {
            state.objectives = objectives
            state.finished = []
            state.scored = []
            state.elite = []
        }
        state.scored += ScoredTrial.from(Array(finished[state.finished.count...]), objectives: objectives)
        state.finished = finished
        return state.scored
    }

    /// True when `history` begins with `known`.
    private static func extends<T>(_ history: [T], _ known: [T], by equal: (T, T) -> Bool) -> Bool {
        known.count <= history.count && zip(known, history).allSatisfy(equal)
    }
}
