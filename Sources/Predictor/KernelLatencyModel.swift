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
            let row = KernelLatencyModel.linearRow(kernel)
            let base = zip(row, linear).reduce(0) { $0 + $1.0 * $1.1 }
            return exp(base + trees.predict(KernelLatencyModel.treeRow(kernel)))
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

    /// Fits on samples that all have kernel timings. Identical kernels (same kind and figures) measured in several
    /// models are one training row with the (lower) median of their times: searches repeat blocks, and the median
    /// damps the noise of single runs (which only ever slows a kernel down).
    static func fit(_ samples: [LatencySample], ridge: Double) throws -> KernelLatencyModel {
        var times: [Kernel: [Double]] = [:]
        for sample in samples {
            guard let measured = sample.kernelLatencies else { continue }
            for (kernel, time) in zip(sample.features.kernels, measured) where time > 0 && time.isFinite {
                var key = kernel
                key.node = ""
                times[key, default: []].append(time)
            }
        }
        var byKind: [String: [(Kernel, Double)]] = [:]
        for (kernel, values) in times {
            let sorted = values.sorted()
            byKind[kernel.kind, default: []].append((kernel, sorted[(sorted.count - 1) / 2]))
        }
        var kinds: [String: KindModel] = [:]
        for (kind, rows) in byKind {
            let ordered = rows.sorted { treeRow($0.0).lexicographicallyPrecedes(treeRow($1.0)) }  // deterministic
            let targets = ordered.map { log($0.1) }
            let x = ordered.map { linearRow($0.0) }
            let linear = try LatencyPredictor.ridge(x, targets, penalty: ridge)
            let residual = zip(x, targets).map { row, y in y - zip(row, linear).reduce(0) { $0 + $1.0 * $1.1 } }
            kinds[kind] = KindModel(linear: linear, trees: BoostedTrees.fit(ordered.map { treeRow($0.0) }, residual))
        }
        // latency ≈ overhead + scale * sum of measured kernel times, on relative error (rows over the latency),
        // fitted again without the measurements a busy machine slowed down (relative residual over three times the
        // median one): a few of those would otherwise pull the scale for every model.
        var rows = samples.compactMap { sample -> [Double]? in
            guard let measured = sample.kernelLatencies else { return nil }
            return [1, measured.reduce(0, +)].map { $0 / sample.latencyMilliseconds }
        }
        let count = rows.count
        guard count > 0 else { return KernelLatencyModel(kinds: kinds, overhead: 0, scale: 1, sampleCount: 0) }
        var fitted = (try? LatencyPredictor.solve(rows, ridge: 1e-9)) ?? [0, 1]  // degenerate: identical sums
        let residuals = rows.map { abs($0[0] * fitted[0] + $0[1] * fitted[1] - 1) }
        let limit = max(3 * residuals.sorted()[residuals.count / 2], 0.02)
        rows = zip(rows, residuals).filter { $0.1 <= limit }.map(\.0)
        if rows.count >= 2, let refitted = try? LatencyPredictor.solve(rows, ridge: 1e-9) { fitted = refitted }
        return KernelLatencyModel(kinds: kinds, overhead: fitted[0], scale: fitted[1], sampleCount: count)
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
