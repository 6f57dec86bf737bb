import Foundation

/// nn-Meter's kernel-level latency model, fitted on the engine's per-kernel timings: per kernel kind, a regressor
/// of the kernel's time on its configuration (a ridge fit in log-log space of FLOPs and element counts, then
/// boosted trees on what it leaves, over every `Kernel` and `KernelShape` figure); a model's latency is an
/// overhead plus a scale times the sum of its kernels' predictions, both fitted on the measured whole-model
/// latencies against the sums of their measured kernel times.
struct KernelLatencyModel: Codable, Sendable {
    /// One kind's regressor of `log(milliseconds)`.
    struct KindModel: Codable, Sendable {
        var linear: [Double]
        var trees: BoostedTrees

        func predict(_ kernel: Kernel) -> Double {
            predict(linearRow: KernelLatencyModel.linearRow(kernel), treeRow: KernelLatencyModel.treeRow(kernel))
        }

        func predict(linearRow: [Double], treeRow: [Double]) -> Double {
            exp(zip(linearRow, linear).reduce(0) { $0 + $1.0 * $1.1 } + trees.predict(treeRow))
        }
    }

    /// The regressors by kernel kind.
    var kinds: [String: KindModel]
    /// latency = overhead + scale * (sum of kernel predictions).
    var overhead: Double
    var scale: Double
    /// The measurements it was fitted on.
    var sampleCount: Int
    /// Its conformal band (`LatencyPredictor.calibrateKernels`), set once calibrated.
    var relativeBand = Double.infinity

    /// The row of the log-log base: intercept, then log(1 + FLOPs, elements read, written, weights).
    static func linearRow(_ kernel: Kernel) -> [Double] {
        [1, log1p(kernel.flops), log1p(kernel.inputElements), log1p(kernel.outputElements), log1p(kernel.weightElements)]
    }

    /// The trees' row: every figure of the kernel (monotone transforms do not change a tree's splits).
    static func treeRow(_ kernel: Kernel) -> [Double] {
        let s = kernel.shape
        return [
            kernel.flops, kernel.inputElements, kernel.outputElements, kernel.weightElements, s.height, s.width,
            s.channels, s.filters, s.kernel, s.stride, s.groups,
        ]
    }

    /// The predicted latency of `features`, nil when one of its kinds was never timed.
    func predict(_ features: ModelFeatures) -> Double? {
        var sum = 0.0
        for kernel in features.kernels {
            guard let model = kinds[kernel.kind] else { return nil }
            sum += model.predict(kernel)
        }
        return max(overhead + scale * sum, 1e-6)
    }
}

/// The kernel timings of samples, indexed once: the distinct kernels (kind and figures, in a fixed order) with
/// their regressors' rows, and per timed sample the distinct kernel of each of its kernels, so that the
/// cross-validation's folds fit on subsets without hashing every kernel again.
struct KernelTimings {
    /// The distinct kernels' kinds, linear rows and tree rows.
    var kinds: [String] = []
    var linearRows: [[Double]] = []
    var treeRows: [[Double]] = []
    /// Per timed sample: the distinct kernel and the measured time of each of its kernels (a time that is not a
    /// positive number is not learnt from), and its latency.
    var kernels: [[Int]] = []
    var times: [[Double]] = []
    var latencies: [Double] = []

    /// The samples' kernels and times; `rescaled`: each sample's times scaled to sum to its latency
    /// (`LatencyPredictor.Configuration.rescaleKernels`).
    init(_ samples: [LatencySample], rescaled: Bool = false) {
        var index: [Kernel: Int] = [:]
        var distinct: [Kernel] = []
        for sample in samples {
            guard let measured = sample.kernelLatencies else { continue }
            var ids: [Int] = []
            for kernel in sample.features.kernels {
                var key = kernel
                key.node = ""
                if let id = index[key] {
                    ids.append(id)
                } else {
                    index[key] = distinct.count
                    ids.append(distinct.count)
                    distinct.append(key)
                }
            }
            kernels.append(ids)
            times.append(measured)
            latencies.append(sample.latencyMilliseconds)
        }
        if rescaled { rescaleTimes() }
        // A fixed order (kind, then figures), whatever order the samples came in: the fits are deterministic.
        let rows = distinct.map { KernelLatencyModel.treeRow($0) }
        let order = distinct.indices.sorted {
            distinct[$0].kind != distinct[$1].kind
                ? distinct[$0].kind < distinct[$1].kind : rows[$0].lexicographicallyPrecedes(rows[$1])
        }
        var rank = [Int](repeating: 0, count: distinct.count)
        for (new, old) in order.enumerated() { rank[old] = new }
        kinds = order.map { distinct[$0].kind }
        linearRows = order.map { KernelLatencyModel.linearRow(distinct[$0]) }
        treeRows = order.map { rows[$0] }
        kernels = kernels.map { $0.map { rank[$0] } }
    }

    /// Scales each sample's kernel times so that `overhead + scale * their sum` is its latency, with the overhead
    /// and scale fitted (relative error) on all samples' unscaled sums: what each sample's profile says beyond that
    /// fit is taken as the machine's speed at that moment and undone. Samples the fit leaves nothing positive for
    /// keep their times.
    private mutating func rescaleTimes() {
        let totals = times.map { $0.reduce(0) { $1 > 0 && $1.isFinite ? $0 + $1 : $0 } }
        let rows = zip(totals, latencies).map { total, latency in [1 / latency, total / latency] }
        guard rows.count >= 2, let fitted = try? LatencyPredictor.solve(rows, ridge: 1e-9), fitted[1] > 0 else { return }
        for index in times.indices where totals[index] > 0 {
            let factor = (latencies[index] - fitted[0]) / (fitted[1] * totals[index])
            if factor > 0, factor.isFinite { times[index] = times[index].map { $0 * factor } }
        }
    }

    /// `model`'s predicted latencies of the timed samples at `subset`, each distinct kernel predicted once (nil for
    /// a sample with a kind the model never timed), as `KernelLatencyModel.predict` gives them.
    func predict(_ model: KernelLatencyModel, _ subset: [Int]) -> [Double?] {
        var cache = [Double?](repeating: nil, count: kinds.count)
        return subset.map { sample in
            var sum = 0.0
            for id in kernels[sample] {
                if cache[id] == nil {
                    guard let regressor = model.kinds[kinds[id]] else { return nil }
                    cache[id] = regressor.predict(linearRow: linearRows[id], treeRow: treeRows[id])
                }
                sum += cache[id]!
            }
            return max(model.overhead + model.scale * sum, 1e-6)
        }
    }

    /// The model fitted on the timed samples at `subset` (indices into `latencies`). Identical kernels (same kind
    /// and figures) measured in several models are one training row with the (lower) median of their times:
    /// searches repeat blocks, and the median damps the noise of single runs (which only ever slows a kernel down).
    func fit(_ subset: [Int], ridge: Double) throws -> KernelLatencyModel {
        var measured = [[Double]](repeating: [], count: kinds.count)
        for sample in subset {
            for (id, time) in zip(kernels[sample], times[sample]) where time > 0 && time.isFinite {
                measured[id].append(time)
            }
        }
        var models: [String: KernelLatencyModel.KindModel] = [:]
        var start = 0
        while start < kinds.count {
            var end = start
            while end < kinds.count, kinds[end] == kinds[start] { end += 1 }
            let ids = (start..<end).filter { !measured[$0].isEmpty }
            if !ids.isEmpty {
                let targets = ids.map { id -> Double in
                    let sorted = measured[id].sorted()
                    return log(sorted[(sorted.count - 1) / 2])
                }
                let x = ids.map { linearRows[$0] }
                let linear = try LatencyPredictor.ridge(x, targets, penalty: ridge)
                let residual = zip(x, targets).map { row, y in y - zip(row, linear).reduce(0) { $0 + $1.0 * $1.1 } }
                models[kinds[start]] = KernelLatencyModel.KindModel(
                    linear: linear, trees: BoostedTrees.fit(ids.map { treeRows[$0] }, residual))
            }
            start = end
        }
        // latency ≈ overhead + scale * sum of measured kernel times, on relative error (rows over the latency),
        // fitted again without the measurements a busy machine slowed down (relative residual over three times the
        // median one): a few of those would otherwise pull the scale for every model.
        var rows = subset.map { sample in
            [1, times[sample].reduce(0) { $1 > 0 && $1.isFinite ? $0 + $1 : $0 }].map { $0 / latencies[sample] }
        }
        let count = rows.count
        guard count > 0 else { return KernelLatencyModel(kinds: models, overhead: 0, scale: 1, sampleCount: 0) }
        var fitted = (try? LatencyPredictor.solve(rows, ridge: 1e-9)) ?? [0, 1]  // degenerate: identical sums
        let residuals = rows.map { abs($0[0] * fitted[0] + $0[1] * fitted[1] - 1) }
        let limit = max(3 * residuals.sorted()[residuals.count / 2], 0.02)
        rows = zip(rows, residuals).filter { $0.1 <= limit }.map(\.0)
        if rows.count >= 2, let refitted = try? LatencyPredictor.solve(rows, ridge: 1e-9) { fitted = refitted }
        return KernelLatencyModel(kinds: models, overhead: fitted[0], scale: fitted[1], sampleCount: count)
    }
}
