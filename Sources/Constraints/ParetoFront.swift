/// The non-dominated trials over accuracy (higher is better) and constrained metrics (lower is better).
public enum ParetoFront {
    /// One trial as the front sees it.
    public struct Point: Hashable, Sendable {
        /// Higher is better.
        public var accuracy: Double
        /// Lower is better, one per constrained metric, in the same order for every point.
        public var costs: [Double]
        /// True when every constraint is met.
        public var isFeasible: Bool

        /// Creates a point.
        public init(accuracy: Double, costs: [Double], isFeasible: Bool = true) {
            self.accuracy = accuracy
            self.costs = costs
            self.isFeasible = isFeasible
        }

        /// True when `self` is at least as good everywhere and strictly better somewhere.
        public func dominates(_ other: Point) -> Bool {
            guard accuracy >= other.accuracy else { return false }
            var strictly = accuracy > other.accuracy
            for (mine, theirs) in zip(costs, other.costs) {
                if mine > theirs { return false }
                if mine < theirs { strictly = true }
            }
            return strictly
        }
    }

    /// The indices of the non-dominated points, in ascending order.
    ///
    /// With `feasibleOnly`, infeasible points neither join the front nor dominate others.
    /// Points whose values are NaN are left out. Equal points are all kept.
    public static func indices(of points: [Point], feasibleOnly: Bool = false) -> [Int] {
        let candidates = points.indices.filter { index in
            let point = points[index]
            return (!feasibleOnly || point.isFeasible) && !point.accuracy.isNaN && !point.costs.contains(where: \.isNaN)
        }
        return candidates.filter { index in
            !candidates.contains { other in other != index && points[other].dominates(points[index]) }
        }
    }
}
