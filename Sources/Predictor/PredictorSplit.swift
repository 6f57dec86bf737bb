/// Seeded train/test splits that hold out whole models, so that a model measured twice is never on both sides.
public enum PredictorSplit {
    /// Splits `items` by `key` (a model's hash): about `testFraction` of the distinct keys, drawn with `seed`,
    /// go to the test side with all their items.
    public static func byKey<T>(_ items: [T], key: (T) -> String, testFraction: Double, seed: UInt64) -> (
        train: [T], test: [T]
    ) {
        var keys = Array(Set(items.map(key))).sorted()
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
        if keys.count > 1 {
            for index in stride(from: keys.count - 1, to: 0, by: -1) {
                keys.swapAt(index, Int(next() % UInt64(index + 1)))
            }
        }
        let testCount = min(keys.count - 1, max(1, Int((Double(keys.count) * testFraction).rounded())))
        let held = Set(keys.prefix(max(0, testCount)))
        return (items.filter { !held.contains(key($0)) }, items.filter { held.contains(key($0)) })
    }
}
