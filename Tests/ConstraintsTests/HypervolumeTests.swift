import Constraints
import Foundation
import Testing

@Suite struct HypervolumeTests {
    /// The seed of the random point sets: fixed, so a failure reproduces; `NAS_FUZZ_SEED` picks another.
    static let seed: UInt64 = ProcessInfo.processInfo.environment["NAS_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_261_202

    @Test func oneObjectiveIsALength() {
        #expect(Hypervolume.of([[0.2], [0.5]], reference: [1]) == 0.8)
    }

    /// Three steps of a staircase against (4, 4): boxes 3x1, 2x1 and 1x1 past the ones before.
    @Test func twoObjectivesByHand() {
        let points: [[Double]] = [[3, 1], [1, 3], [2, 2]]
        #expect(Hypervolume.of(points, reference: [4, 4]) == 6)
        // Dominated, duplicated, outside or on the reference, NaN: none adds anything.
        let noise: [[Double]] = [[3, 3], [2, 2], [5, 0], [0, 4], [.nan, 0]]
        #expect(Hypervolume.of(points + noise, reference: [4, 4]) == 6)
        #expect(Hypervolume.of([], reference: [4, 4]) == 0)
    }

    /// Two boxes of 4 and 2 overlapping in a unit cube.
    @Test func threeObjectivesByHand() {
        #expect(Hypervolume.of([[1, 1, 1]], reference: [2, 2, 2]) == 1)
        #expect(Hypervolume.of([[0, 0, 1], [1, 1, 0]], reference: [2, 2, 2]) == 5)
    }

    /// Random sets of up to 8 points in 2 to 5 objectives against inclusion-exclusion over every subset, an
    /// independent exact formula.
    @Test func matchesInclusionExclusion() {
        var state = Self.seed
        func next() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) * 0x1p-53
        }
        for round in 0..<200 {
            let dimensions = 2 + round % 4
            let count = 1 + round % 8
            let points = (0..<count).map { _ in (0..<dimensions).map { _ in (next() * 10).rounded() / 10 } }
            let reference = [Double](repeating: 1, count: dimensions)
            var expected = 0.0
            for mask in 1..<(1 << count) {
                let members = (0..<count).filter { mask & (1 << $0) != 0 }
                let corner = (0..<dimensions).map { d in members.map { points[$0][d] }.max()! }
                let volume = zip(corner, reference).reduce(1.0) { $0 * max(0, $1.1 - $1.0) }
                expected += members.count % 2 == 1 ? volume : -volume
            }
            let computed = Hypervolume.of(points, reference: reference)
            #expect(abs(computed - expected) < 1e-9, "round \(round): \(points) gives \(computed), expected \(expected)")
        }
    }
}
