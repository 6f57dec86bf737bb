/// Gradient-boosted regression trees on squared error: the nonlinear per-kernel-kind regressor of the kernel-level
/// latency model (nn-Meter fits random forests; boosting from a linear base extrapolates better with the few
/// measurements a search starts with). Each feature is binned once (its distinct values, or 256 quantile bins
/// when it has more), and trees are grown level by level from per-leaf histograms: a fit costs about
/// `trees * depth * features * samples` additions into small contiguous arrays, with no sort and no allocation per
/// split. With at most 256 distinct values per feature the splits are the exact ones.
struct BoostedTrees: Codable, Hashable, Sendable {
    /// Growth settings.
    struct Settings: Hashable, Sendable {
        var trees = 60
        var depth = 4
        var rate = 0.2
        var minimumLeaf = 2
        /// Bins per feature; a feature with more distinct values is cut at their quantiles.
        var bins = 256
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

    /// The rows binned per feature: `bin[f * count + i]` is row `i`'s bin of feature `f`, and `cut[f][b]` the
    /// threshold between bins `b` and `b + 1` (a value `<= cut` falls in bin `b` or below).
    struct Binned {
        var bin: [UInt16]
        var cut: [[Double]]
        var count: Int

        init(_ x: [[Double]], bins: Int) {
            count = x.count
            let width = x.first?.count ?? 0
            bin = [UInt16](repeating: 0, count: width * count)
            cut = []
            for f in 0..<width {
                var distinct = x.map { $0[f] }
                distinct.sort()
                var unique: [Double] = []
                unique.reserveCapacity(distinct.count)
                for v in distinct where unique.last != v { unique.append(v) }
                // The bins' upper edges (indices into the distinct values): every one, or `bins` quantiles.
                let edges =
                    unique.count <= bins ? Array(unique.indices) : (1...bins).map { $0 * unique.count / bins - 1 }
                let cuts = edges.dropLast().map { (unique[$0] + unique[$0 + 1]) / 2 }
                cut.append(cuts)
                for i in 0..<count {
                    // The first bin whose cut is at or above the value (binary search over the cuts).
                    var (low, high) = (0, cuts.count)
                    while low < high {
                        let mid = (low + high) / 2
                        if x[i][f] <= cuts[mid] { high = mid } else { low = mid + 1 }
                    }
                    bin[f * count + i] = UInt16(low)
                }
            }
        }
    }

    /// Boosts trees on the residuals `targets` (what a base model leaves) of rows `x`.
    static func fit(_ x: [[Double]], _ targets: [Double], settings: Settings = Settings()) -> BoostedTrees {
        var model = BoostedTrees()
        model.rate = settings.rate
        guard x.count >= 2 * settings.minimumLeaf, x.first?.isEmpty == false else { return model }
        let binned = Binned(x, bins: min(max(settings.bins, 2), Int(UInt16.max)))
        var grower = Grower(binned: binned, settings: settings)
        var residual = targets
        for _ in 0..<settings.trees {
            grower.grow(&model, residual)
            // Each row's leaf of the new tree is known: no traversal.
            for i in residual.indices { residual[i] -= model.rate * model.value[grower.leafOf[i]] }
        }
        return model
    }

    /// The buffers of growth, allocated once per fit and reused by every tree and level.
    struct Grower {
        let binned: Binned
        let settings: Settings
        let bins: [Int]
        let offsets: [Int]  // feature f's histogram starts at offsets[f] within one slot
        let stride: Int  // one slot's histogram size: the sum of the features' bin counts
        /// Each row's current node.
        var leafOf: [Int]
        /// Each row's open slot (index among the level's open leaves), -1 once its leaf is final.
        var slotOf: [Int]
        var sums: [Double]
        var sizes: [Int32]

        init(binned: Binned, settings: Settings) {
            self.binned = binned
            self.settings = settings
            bins = binned.cut.map { $0.count + 1 }
            var offsets: [Int] = []
            var total = 0
            for count in bins {
                offsets.append(total)
                total += count
            }
            self.offsets = offsets
            stride = total
            leafOf = [Int](repeating: 0, count: binned.count)
            slotOf = [Int](repeating: 0, count: binned.count)
            let slots = 1 << max(settings.depth - 1, 0)
            sums = [Double](repeating: 0, count: slots * total)
            sizes = [Int32](repeating: 0, count: slots * total)
        }

        /// Grows one tree on `residual` level by level: each open leaf's histogram of every feature from one pass
        /// over the rows, its best split from a scan of the histogram, then the next level.
        mutating func grow(_ model: inout BoostedTrees, _ residual: [Double]) {
            let count = binned.count
            let width = bins.count
            let minimumLeaf = settings.minimumLeaf
            let root = model.leaf(residual.reduce(0, +) / Double(count))
            model.roots.append(root)
            for i in 0..<count { (leafOf[i], slotOf[i]) = (root, 0) }
            var open = [root]
            var totals = [(sum: residual.reduce(0, +), size: count)]
            for _ in 0..<settings.depth {
                let used = open.count * stride
                sums.withUnsafeMutableBufferPointer { s in
                    sizes.withUnsafeMutableBufferPointer { n in
                        for k in 0..<used { (s[k], n[k]) = (0, 0) }
                        binned.bin.withUnsafeBufferPointer { bin in
                            slotOf.withUnsafeBufferPointer { slot in
                                residual.withUnsafeBufferPointer { r in
                                    for f in 0..<width {
                                        let (rowBase, histBase) = (f * count, offsets[f])
                                        for i in 0..<count where slot[i] >= 0 {
                                            let k = slot[i] * stride + histBase + Int(bin[rowBase + i])
                                            s[k] += r[i]
                                            n[k] += 1
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                // Best split per open leaf; features and bins in order, the first of equal gains kept.
                var splits: [(feature: Int, bin: Int)?] = []
                for (slot, total) in totals.enumerated() {
                    var best: (gain: Double, feature: Int, bin: Int) = (1e-12, -1, 0)
                    let (whole, size) = (total.sum, total.size)
                    for f in 0..<width {
                        var (l, m) = (0.0, 0)
                        let base = slot * stride + offsets[f]
                        for b in 0..<(bins[f] - 1) {
                            l += sums[base + b]
                            m += Int(sizes[base + b])
                            guard m >= minimumLeaf else { continue }
                            guard size - m >= minimumLeaf else { break }
                            let gain = l * l / Double(m) + (whole - l) * (whole - l) / Double(size - m)
                                - whole * whole / Double(size)
                            if gain > best.gain { best = (gain, f, b) }
                        }
                    }
                    splits.append(best.feature >= 0 ? (best.feature, best.bin) : nil)
                }
                // Split the leaves, then send each row to its child.
                var next: [Int] = []
                var nextTotals: [(sum: Double, size: Int)] = []
                var childSlot = [Int](repeating: -1, count: 2 * open.count)
                for (slot, node) in open.enumerated() {
                    guard let split = splits[slot] else { continue }
                    model.feature[node] = split.feature
                    model.threshold[node] = binned.cut[split.feature][split.bin]
                    model.left[node] = model.leaf(0)
                    model.right[node] = model.leaf(0)
                    childSlot[2 * slot] = next.count
                    childSlot[2 * slot + 1] = next.count + 1
                    next += [model.left[node], model.right[node]]
                    nextTotals += [(0, 0), (0, 0)]
                }
                guard !next.isEmpty else { break }
                for i in 0..<count where slotOf[i] >= 0 {
                    let slot = slotOf[i]
                    guard let split = splits[slot] else {
                        slotOf[i] = -1
                        continue
                    }
                    let side = Int(binned.bin[split.feature * count + i]) <= split.bin ? 0 : 1
                    let child = childSlot[2 * slot + side]
                    slotOf[i] = child
                    leafOf[i] = next[child]
                    nextTotals[child].sum += residual[i]
                    nextTotals[child].size += 1
                }
                for (child, node) in next.enumerated() {
                    model.value[node] = nextTotals[child].sum / Double(max(nextTotals[child].size, 1))
                }
                open = next
                totals = nextTotals
            }
        }
    }

    fileprivate mutating func leaf(_ value: Double) -> Int {
        feature.append(-1)
        threshold.append(0)
        left.append(-1)
        right.append(-1)
        self.value.append(value)
        return feature.count - 1
    }
}
