/// Non-dominated sorting and crowding distance under constrained domination, as Optuna's NSGA-II and
/// multi-objective TPE rank trials.
///
/// Constrained domination (Deb et al. 2002, as Optuna's `_constrained_dominates`): a feasible point (every
/// feasibility value at most 0) dominates an infeasible one; of two infeasible points the one with the smaller
/// total violation (the sum of the positive feasibility values) dominates; two feasible points compare by Pareto
/// dominance over their objectives, all minimised.
enum NonDominatedSorting {
    /// One evaluated point.
    struct Point {
        /// Minimised objectives.
        var objectives: [Double]
        /// The sum of the positive feasibility values: 0 when every constraint is met.
        var violation: Double

        /// A point from its objectives and feasibility values (empty when unconstrained).
        init(objectives: [Double], feasibility: [Double]) {
            self.objectives = objectives
            violation = feasibility.reduce(0) { $0 + max(0, $1) }
        }

        /// A point from its objectives and total violation.
        init(objectives: [Double], violation: Double) {
            self.objectives = objectives
            self.violation = violation
        }

        var isFeasible: Bool { violation == 0 }
    }

    static func dominates(_ a: Point, _ b: Point) -> Bool {
        switch (a.isFeasible, b.isFeasible) {
        case (true, false): return true
        case (false, true): return false
        case (false, false): return a.violation < b.violation
        case (true, true):
            var strictly = false
            for (x, y) in zip(a.objectives, b.objectives) {
                if x > y { return false }
                if x < y { strictly = true }
            }
            return strictly
        }
    }

    /// The fronts, best first, each a list of indices into `points` in ascending order, until they hold at least
    /// `limit` points (all of them by default).
    ///
    /// Points sorted by violation, then objectives, can only be dominated by points before them, and a point no
    /// member of the front being peeled dominates is in it (a dominator outside the front is itself dominated by a
    /// member, and domination is transitive): each front costs its remaining points times its size, not the square
    /// of all points as Deb's fast sort does.
    static func fronts(_ points: [Point], limit: Int = .max) -> [[Int]] {
        // The sort compares flat copies: reading `points[a].objectives` retains and releases an array per access,
        // which made the sort most of a proposal's cost at 1,000 trials.
        let width = points.first?.objectives.count ?? 0
        precondition(points.allSatisfy { $0.objectives.count == width }, "points of one objective space")
        let violations = points.map(\.violation)
        var flat: [Double] = []
        flat.reserveCapacity(points.count * width)
        for point in points { flat += point.objectives }
        var remaining = points.indices.sorted { a, b in
            if violations[a] != violations[b] { return violations[a] < violations[b] }
            for objective in 0..<width where flat[a * width + objective] != flat[b * width + objective] {
                return flat[a * width + objective] < flat[b * width + objective]
            }
            return a < b
        }
        var fronts: [[Int]] = []
        var collected = 0
        while !remaining.isEmpty, collected < limit {
            var front: [Int] = []
            var rest: [Int] = []
            for index in remaining {
                if front.contains(where: { dominates(points[$0], points[index]) }) {
                    rest.append(index)
                } else {
                    front.append(index)
                }
            }
            fronts.append(front.sorted())
            collected += front.count
            remaining = rest
        }
        return fronts
    }

    /// The crowding distance of each member of one front (indices into `points`), in the front's order: per
    /// objective, the normalised gap between a point's neighbours; the extremes are infinite.
    static func crowding(_ front: [Int], _ points: [Point]) -> [Double] {
        var distance = [Double](repeating: 0, count: front.count)
        guard front.count > 2 else { return distance.map { _ in .infinity } }
        let objectiveCount = points[front[0]].objectives.count
        for objective in 0..<objectiveCount {
            let order = front.indices.sorted {
                (points[front[$0]].objectives[objective], front[$0]) < (points[front[$1]].objectives[objective], front[$1])
            }
            let low = points[front[order.first!]].objectives[objective]
            let high = points[front[order.last!]].objectives[objective]
            distance[order.first!] = .infinity
            distance[order.last!] = .infinity
            guard high > low else { continue }
            for position in 1..<(order.count - 1) {
                let gap = points[front[order[position + 1]]].objectives[objective]
                    - points[front[order[position - 1]]].objectives[objective]
                distance[order[position]] += gap / (high - low)
            }
        }
        return distance
    }
}
