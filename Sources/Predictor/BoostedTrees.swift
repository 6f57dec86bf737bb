/// Gradient-boosted regression trees on squared error: the nonlinear per-kernel-kind regressor of the kernel-level
/// latency model (nn-Meter fits random forests; boosting from a linear base extrapolates better with the few
/// measurements a search starts with). Trees are grown level by level with exact splits found in one pass per
/// feature over the samples presorted once, so a fit costs about `trees * depth * features * samples` steps.
struct BoostedTrees: Codable, Hashable, Sendable {
    /// Growth settings.
    struct Settings: Hashable, Sendable {
        var trees = 60
        var depth = 4
        var rate = 0.2
        var minimumLeaf = 2
    }

    /// Nodes of every tree, flat: a leaf has `feature == -1` and its `value`; an inner node sends `x[feature] <=
    /// threshold` to `left`, the rest to `right`.
    private(set) var feature: [Int] = []
    private(set) var threshold: [Double] = []
    private(set) var left: [Int] = []
    private(set) var right: [Int] = []
    private(set) var value: [Double] = []
    /// The root node of each tree.
    private(set) var roots: [Int] = []
    /// The shrinkage applied to every tree's output.
    private(set) var rate: Double = 0

    /// The sum of the trees' outputs for `x`.
    func predict(_ x: [Double]) -> Double {
        var sum = 0.0
        for root in roots {
            var node = root
            while feature[node] >= 0 { node = x[feature[node]] <= threshold[node] ? left[node] : right[node] }
            sum += value[node]
        }
        return sum * rate
    }

    /// Boosts trees on the residuals `targets` (what a base model leaves) of rows `x`.
    static func fit(_ x: [[Double]], _ targets: [Double], settings: Settings = Settings()) -> BoostedTrees {
        var model = BoostedTrees()
        model.rate = settings.rate
        let count = x.count
        guard count >= 2 * settings.minimumLeaf, let width = x.first?.count else { return model }
        let sorted = (0..<width).map { f in (0..<count).sorted { x[$0][f] < x[$1][f] } }
        var residual = targets
        for _ in 0..<settings.trees {
            model.grow(x, residual, sorted: sorted, settings: settings)
            for i in 0..<count { residual[i] -= model.rate * model.lastTree(x[i]) }
        }
        return model
    }

    private func lastTree(_ x: [Double]) -> Double {
        var node = roots[roots.count - 1]
        while feature[node] >= 0 { node = x[feature[node]] <= threshold[node] ? left[node] : right[node] }
        return value[node]
    }

    /// Grows one tree on `residual` level by level: every sample's current leaf, each leaf's best split over all
    /// features from one scan of the presorted orders, then the next level.
    private mutating func grow(_ x: [[Double]], _ residual: [Double], sorted: [[Int]], settings: Settings) {
        let count = residual.count
        func leaf(_ value: Double) -> Int {
            feature.append(-1)
            threshold.append(0)
            left.append(-1)
            right.append(-1)
            self.value.append(value)
            return feature.count - 1
        }
        var leafOf = [Int](repeating: leaf(residual.reduce(0, +) / Double(count)), count: count)
        roots.append(leafOf[0])
        var open = [leafOf[0]]
        for _ in 0..<settings.depth {
            // Totals per open leaf; arrays indexed by node id, since dictionaries in this loop cost more than the
            // arithmetic.
            let nodes = feature.count
            var isOpen = [Bool](repeating: false, count: nodes)
            for node in open { isOpen[node] = true }
            var sum = [Double](repeating: 0, count: nodes)
            var size = [Int](repeating: 0, count: nodes)
            for i in 0..<count where isOpen[leafOf[i]] {
                sum[leafOf[i]] += residual[i]
                size[leafOf[i]] += 1
            }
            var bestGain = [Double](repeating: 1e-12, count: nodes)
            var bestFeature = [Int](repeating: -1, count: nodes)
            var bestThreshold = [Double](repeating: 0, count: nodes)
            var leftSum = [Double](repeating: 0, count: nodes)
            var leftSize = [Int](repeating: 0, count: nodes)
            var previous = [Double](repeating: 0, count: nodes)
            for f in sorted.indices {
                for node in open { (leftSum[node], leftSize[node]) = (0, 0) }
                for i in sorted[f] {
                    let node = leafOf[i]
                    guard isOpen[node] else { continue }
                    let v = x[i][f]
                    let (m, n) = (leftSize[node], size[node])
                    if m >= settings.minimumLeaf, n - m >= settings.minimumLeaf, v > previous[node] {
                        let (l, total) = (leftSum[node], sum[node])
                        let gain =
                            l * l / Double(m) + (total - l) * (total - l) / Double(n - m) - total * total / Double(n)
                        if gain > bestGain[node] {
                            (bestGain[node], bestFeature[node], bestThreshold[node]) = (gain, f, (previous[node] + v) / 2)
                        }
                    }
                    leftSum[node] += residual[i]
                    leftSize[node] = m + 1
                    previous[node] = v
                }
            }
            var next: [Int] = []
            for node in open where bestFeature[node] >= 0 {
                feature[node] = bestFeature[node]
                threshold[node] = bestThreshold[node]
                left[node] = leaf(0)
                right[node] = leaf(0)
                next += [left[node], right[node]]
            }
            guard !next.isEmpty else { break }
            var childSum = [Double](repeating: 0, count: feature.count)
            var childSize = [Int](repeating: 0, count: feature.count)
            for i in 0..<count where isOpen[leafOf[i]] && feature[leafOf[i]] >= 0 {
                let node = leafOf[i]
                leafOf[i] = x[i][feature[node]] <= threshold[node] ? left[node] : right[node]
                childSum[leafOf[i]] += residual[i]
                childSize[leafOf[i]] += 1
            }
            for node in next { value[node] = childSum[node] / Double(max(childSize[node], 1)) }
            open = next
        }
    }
}
