/// The exact hypervolume of a set of points: the volume they dominate, bounded by a reference point.
///
/// Every objective is minimised. A point counts only where it is strictly better than the reference in every
/// objective; points with a NaN are left out. One objective is a length, two a sweep over the points sorted by the
/// first (O(n log n)), more the WFG algorithm (While, Bradstreet and Barone 2012), as Optuna's `_hypervolume`
/// computes it: exact, and fast enough for the few hundred points of a search's front.
public enum Hypervolume {
    /// The hypervolume of `points` against `reference`; every point has `reference.count` objectives.
    public static func of(_ points: [[Double]], reference: [Double]) -> Double {
        let inside = points.filter { point in
            point.count == reference.count && zip(point, reference).allSatisfy { $0 < $1 }
        }
        guard !inside.isEmpty, !reference.isEmpty else { return 0 }
        return wfg(nonDominated(inside), reference)
    }

    private static func wfg(_ points: [[Double]], _ reference: [Double]) -> Double {
        switch reference.count {
        case 1:
            return reference[0] - points.map { $0[0] }.min()!
        case 2:
            var total = 0.0
            var bound = reference[1]
            for point in points.sorted(by: { ($0[0], $0[1]) < ($1[0], $1[1]) }) where point[1] < bound {
                total += (reference[0] - point[0]) * (bound - point[1])
                bound = point[1]
            }
            return total
        default:
            // Sorted worst-first in the last objective, each point's exclusive part is its box less what the
            // points after it, limited to that box, already cover.
            let sorted = points.sorted { $0[reference.count - 1] > $1[reference.count - 1] }
            var total = 0.0
            for (index, point) in sorted.enumerated() {
                let box = zip(point, reference).reduce(1.0) { $0 * ($1.1 - $1.0) }
                let limited = sorted[(index + 1)...].map { other in zip(point, other).map { max($0, $1) } }
                total += box - (limited.isEmpty ? 0 : wfg(nonDominated(limited), reference))
            }
            return total
        }
    }

    /// The points no other point weakly dominates; of equal points one is kept.
    static func nonDominated(_ points: [[Double]]) -> [[Double]] {
        var kept: [[Double]] = []
        for point in points.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            if kept.contains(where: { other in zip(other, point).allSatisfy { $0 <= $1 } }) { continue }
            kept.removeAll { other in zip(point, other).allSatisfy { $0 <= $1 } }
            kept.append(point)
        }
        return kept
    }
}
