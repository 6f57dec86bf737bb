import Foundation

/// One measured model a predictor learns from: its kernels and its measured latency.
public struct LatencySample: Codable, Hashable, Sendable {
    /// The model's kernels.
    public var features: ModelFeatures
    /// The measured latency, milliseconds (the p50 of the runs).
    public var latencyMilliseconds: Double
    /// Each kernel's measured time (the engine's profile), milliseconds, in the order of `features.kernels`; nil
    /// when the runner timed only the whole model (other runtimes, older measurements).
    public var kernelLatencies: [Double]?

    /// A sample; `kernelLatencies` must have one time per kernel or it is dropped.
    public init(features: ModelFeatures, latencyMilliseconds: Double, kernelLatencies: [Double]? = nil) {
        self.features = features
        self.latencyMilliseconds = latencyMilliseconds
        self.kernelLatencies = kernelLatencies?.count == features.kernels.count ? kernelLatencies : nil
    }

    /// A sample whose kernel times are given by the node each kernel computes (`Kernel.node`, as the engine's
    /// profile names them); they are kept only when every kernel has one.
    public init(features: ModelFeatures, latencyMilliseconds: Double, kernelTimes: [String: Double]?) {
        let aligned = kernelTimes.flatMap { times in
            features.kernels.allSatisfy { !$0.node.isEmpty && times[$0.node] != nil }
                ? features.kernels.map { times[$0.node]! } : nil
        }
        self.init(features: features, latencyMilliseconds: latencyMilliseconds, kernelLatencies: aligned)
    }
}

/// A prediction with its uncertainty band.
public struct LatencyPrediction: Codable, Hashable, Sendable {
    /// The predicted latency, milliseconds.
    public var milliseconds: Double
    /// The band's lower end: `milliseconds * (1 - relativeBand)`, at least 0.
    public var lower: Double
    /// The band's upper end: `milliseconds * (1 + relativeBand)`; infinite when the predictor has too few
    /// measurements to say.
    public var upper: Double
    /// The band's half-width as a share of the prediction (0.08 = ±8%), at the predictor's coverage.
    public var relativeBand: Double
    /// Kernel kinds of the model that no measurement had: its prediction leaves them out and its band is infinite.
    public var unseenKinds: [String]

    enum CodingKeys: String, CodingKey {
        case milliseconds = "latency_ms"
        case lower = "lower_ms"
        case upper = "upper_ms"
        case relativeBand = "relative_band"
        case unseenKinds = "unseen_kinds"
    }
}

/// A kernel-level latency predictor in nn-Meter's manner: a model's latency is a per-model overhead plus the sum
/// of its kernels' latencies.
///
/// With per-kernel timings (the native engine's profile), each kernel kind has a nonlinear regressor of the
/// kernel's time on its configuration (`KernelLatencyModel`: log-log ridge plus boosted trees). Measurements with
/// whole-model latencies only (other runtimes, remote workers, older stores) feed the linear model: each kernel
/// kind's latency linear in the kernel's FLOPs, the elements it reads and writes and its weights, plus a per-kernel
/// cost, which summed over kernels is one ridge regression on per-kind sums weighted by `1 / latency²` so that it
/// minimises relative, not absolute, error. A model is predicted by the kernel-level model when every kind of it
/// was timed, else by the linear one; both fit in well under a second for thousands of measurements.
///
/// The uncertainty is split-free conformal: the relative errors of K-fold cross-validated predictions give the
/// band at `Configuration.coverage` (with the `(n + 1)` correction, so that too few measurements give an infinite
/// band rather than a confident one).
public struct LatencyPredictor: Codable, Sendable {
    /// How a predictor is fitted.
    public struct Configuration: Codable, Hashable, Sendable {
        /// The ridge penalty on standardized columns; 1e-3 by default.
        public var ridge: Double
        /// Coverage of the uncertainty band; 0.9 by default.
        public var coverage: Double
        /// Folds of the cross-validation that calibrates the band; 5 by default.
        public var folds: Int
        /// Whether each measurement's kernel times are scaled to sum to its whole-model latency before the kernel
        /// regressors learn from them. The profile runs after the whole-model runs, so on a shared machine the two
        /// are taken at different speeds of the machine; scaled, a kernel's share of its model is learnt from the
        /// profile and the total from the whole-model figure. False by default.
        public var rescaleKernels: Bool

        /// Settings; the defaults suit a few tens to thousands of measurements.
        public init(ridge: Double = 1e-3, coverage: Double = 0.9, folds: Int = 5, rescaleKernels: Bool = false) {
            self.ridge = ridge
            self.coverage = coverage
            self.folds = folds
            self.rescaleKernels = rescaleKernels
        }

        enum CodingKeys: String, CodingKey {
            case ridge, coverage, folds
            case rescaleKernels = "rescale_kernels"
        }

        /// Decodes settings; `rescale_kernels` is optional (false) so that predictors kept before it still read.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            ridge = try container.decode(Double.self, forKey: .ridge)
            coverage = try container.decode(Double.self, forKey: .coverage)
            folds = try container.decode(Int.self, forKey: .folds)
            rescaleKernels = try container.decodeIfPresent(Bool.self, forKey: .rescaleKernels) ?? false
        }
    }

    /// The terms of one kernel: per-kernel cost, FLOPs, elements read, elements written, weights.
    static let terms = ["count", "flops", "input_elements", "output_elements", "weight_elements"]

    /// The kernel kinds the predictor knows, in column order.
    public private(set) var kinds: [String]
    /// Coefficients: the overhead first, then `terms.count` per kind (milliseconds per unit).
    public private(set) var coefficients: [Double]
    /// The band's relative half-width at `configuration.coverage`.
    public private(set) var relativeBand: Double
    /// How many measurements it was fitted on.
    public private(set) var sampleCount: Int
    /// The settings it was fitted with.
    public private(set) var configuration: Configuration
    /// The kernel-level model, when at least `minimumKernelSamples` measurements had kernel timings.
    private(set) var kernelModel: KernelLatencyModel?
    /// How many measurements with kernel timings it was fitted on (0 when none had any).
    public var kernelSampleCount: Int { kernelModel?.sampleCount ?? 0 }
    /// The kernel-level model's band (relative half-width at the coverage), which predictions of models whose
    /// every kind was timed carry; nil without kernel timings.
    public var kernelBand: Double? { kernelModel?.relativeBand }

    /// Measurements with kernel timings needed before the kernel-level model is used.
    static let minimumKernelSamples = 2

    /// Fits a predictor on `samples`; at least 2 are needed, and an unusable sample (latency not positive or not
    /// finite) is a `PredictorError`.
    public static func fit(_ samples: [LatencySample], configuration: Configuration = Configuration()) throws
        -> LatencyPredictor
    {
        guard samples.count >= 2 else { throw PredictorError.tooFewMeasurements(samples.count, needed: 2) }
        if let bad = samples.first(where: { !($0.latencyMilliseconds > 0) || !$0.latencyMilliseconds.isFinite }) {
            throw PredictorError.badMeasurement("latency \(bad.latencyMilliseconds) ms is not a positive number")
        }
        let kinds = Array(Set(samples.flatMap { $0.features.kinds })).sorted()
        var predictor = LatencyPredictor(
            kinds: kinds, coefficients: [], relativeBand: .infinity, sampleCount: samples.count,
            configuration: configuration)
        // Each sample's row divided by its latency: the weighted problem's rows, whose targets are all 1.
        let rows = samples.map { sample in row(sample.features, kinds: kinds).map { $0 / sample.latencyMilliseconds } }
        predictor.coefficients = try solve(rows, ridge: configuration.ridge)
        predictor.relativeBand = try calibrate(rows, configuration: configuration)
        let timings = KernelTimings(samples, rescaled: configuration.rescaleKernels)
        if timings.latencies.count >= minimumKernelSamples {
            var model = try timings.fit(Array(timings.latencies.indices), ridge: configuration.ridge)
            model.relativeBand = try calibrateKernels(timings, configuration: configuration)
            predictor.kernelModel = model
        }
        return predictor
    }

    /// The kernel-level model's conformal band, as `calibrate` does for the linear one: relative errors of
    /// K-fold cross-validated predictions of whole models (infinite where a fold never timed one of its kinds).
    static func calibrateKernels(_ timings: KernelTimings, configuration: Configuration) throws -> Double {
        let count = timings.latencies.count
        let folds = min(configuration.folds, count)
        guard folds >= 2 else { return .infinity }
        var errors: [Double] = []
        for fold in 0..<folds {
            let model = try timings.fit((0..<count).filter { $0 % folds != fold }, ridge: configuration.ridge)
            let held = Array(stride(from: fold, to: count, by: folds))
            for (index, predicted) in zip(held, timings.predict(model, held)) {
                errors.append(predicted.map { abs(timings.latencies[index] - $0) / $0 } ?? .infinity)
            }
        }
        return conformalQuantile(errors, coverage: configuration.coverage)
    }

    /// The `coverage` quantile of `errors` with the `(n + 1)` correction; infinite when there are too few.
    static func conformalQuantile(_ errors: [Double], coverage: Double) -> Double {
        let sorted = errors.sorted()
        let rank = Int((Double(sorted.count + 1) * coverage).rounded(.up))
        return rank <= sorted.count ? sorted[rank - 1] : .infinity
    }

    /// The prediction for a model's features.
    public func predict(_ features: ModelFeatures) -> LatencyPrediction {
        if let kernelModel, let value = kernelModel.predict(features) {
            let band = kernelModel.relativeBand
            return LatencyPrediction(
                milliseconds: value, lower: max(0, value * (1 - band)), upper: value * (1 + band), relativeBand: band,
                unseenKinds: [])
        }
        let row = Self.row(features, kinds: kinds)
        let value = max(zip(row, coefficients).reduce(0) { $0 + $1.0 * $1.1 }, 1e-6)
        let unseen = Array(Set(features.kinds).subtracting(kinds)).sorted()
        let band = unseen.isEmpty ? relativeBand : .infinity
        return LatencyPrediction(
            milliseconds: value, lower: max(0, value * (1 - band)), upper: value * (1 + band), relativeBand: band,
            unseenKinds: unseen)
    }

    /// The regression's row of a model: 1 (the overhead), then each kind's sums of its kernels' terms.
    static func row(_ features: ModelFeatures, kinds: [String]) -> [Double] {
        var row = [Double](repeating: 0, count: 1 + kinds.count * terms.count)
        row[0] = 1
        var index: [String: Int] = [:]
        for (offset, kind) in kinds.enumerated() { index[kind] = 1 + offset * terms.count }
        for kernel in features.kernels {
            guard let base = index[kernel.kind] else { continue }
            row[base] += 1
            row[base + 1] += kernel.flops
            row[base + 2] += kernel.inputElements
            row[base + 3] += kernel.outputElements
            row[base + 4] += kernel.weightElements
        }
        return row
    }

    /// Ridge least squares of `rows` (each already divided by its latency, so that the targets are 1 and the
    /// error is relative) on columns scaled to unit RMS; the overhead column is not penalised, and a column that is
    /// zero in every row (a kind no row has) gets coefficient 0.
    static func solve(_ rows: [[Double]], ridge: Double) throws -> [Double] {
        try Self.ridge(rows, [Double](repeating: 1, count: rows.count), penalty: ridge)
    }

    /// Ridge least squares of `targets` on `rows` (the first column the unpenalised intercept), columns scaled
    /// to unit RMS as `solve` does.
    static func ridge(_ rows: [[Double]], _ targets: [Double], penalty: Double) throws -> [Double] {
        try NormalEquations(rows, targets).solve(penalty: penalty)
    }

    /// Solves the symmetric positive-definite system `a x = b`.
    static func cholesky(_ a: [Double], _ b: [Double], _ n: Int) throws -> [Double] {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var sum = a[i * n + j]
                for k in 0..<j { sum -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard sum > 0, sum.isFinite else {
                        throw PredictorError.badMeasurement("the measurements' features are degenerate (no fit)")
                    }
                    l[i * n + i] = sum.squareRoot()
                } else {
                    l[i * n + j] = sum / l[j * n + j]
                }
            }
        }
        var y = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var sum = b[i]
            for k in 0..<i { sum -= l[i * n + k] * y[k] }
            y[i] = sum / l[i * n + i]
        }
        var x = [Double](repeating: 0, count: n)
        for i in stride(from: n - 1, through: 0, by: -1) {
            var sum = y[i]
            for k in (i + 1)..<n { sum -= l[k * n + i] * x[k] }
            x[i] = sum / l[i * n + i]
        }
        return x
    }

    /// The conformal band: the `coverage` quantile, with the `(n + 1)` correction, of the relative errors of
    /// cross-validated predictions (infinite for a held-out model with a kind its fold never saw); infinite when
    /// there are too few samples for that quantile.
    static func calibrate(_ rows: [[Double]], configuration: Configuration) throws -> Double {
        let folds = min(configuration.folds, rows.count)
        guard folds >= 2 else { return .infinity }
        // A fold's training problem is the whole one minus the fold's: one pass over the rows for every fold.
        let width = rows[0].count
        var parts = [NormalEquations](repeating: NormalEquations(width: width), count: folds)
        for (index, row) in rows.enumerated() { parts[index % folds].add(row, 1) }
        let whole = parts.dropFirst().reduce(parts[0]) { $0 + $1 }
        var errors: [Double] = []
        for fold in 0..<folds {
            let train = whole - parts[fold]
            guard train.count >= 2 else { continue }
            let coefficients = try train.solve(penalty: configuration.ridge)
            for index in stride(from: fold, to: rows.count, by: folds) {
                let row = rows[index]  // divided by the measured latency: the prediction over the measurement
                // A column the fold's training rows never had (a kind's count column is nonzero where it has kernels).
                if (0..<width).contains(where: { row[$0] != 0 && train.nonzero[$0] == 0 }) {
                    errors.append(.infinity)
                    continue
                }
                let ratio = max(zip(row, coefficients).reduce(0) { $0 + $1.0 * $1.1 }, 1e-12)
                // |measured - predicted| / predicted, with predicted/measured = ratio.
                errors.append(abs(1 - ratio) / ratio)
            }
        }
        return conformalQuantile(errors, coverage: configuration.coverage)
    }
}

/// The sums a least-squares problem is solved from (the rows' Gram matrix, rows times targets, and per column how
/// many rows are nonzero there), which add and subtract: a cross-validation fold's problem is the whole one minus
/// the fold's.
struct NormalEquations {
    let width: Int
    /// Row-major `width x width`; the upper triangle is kept.
    private(set) var gram: [Double]
    private(set) var rhs: [Double]
    private(set) var nonzero: [Int]
    private(set) var count = 0

    init(width: Int) {
        self.width = width
        gram = [Double](repeating: 0, count: width * width)
        rhs = [Double](repeating: 0, count: width)
        nonzero = [Int](repeating: 0, count: width)
    }

    init(_ rows: [[Double]], _ targets: [Double]) {
        self.init(width: rows[0].count)
        for (row, y) in zip(rows, targets) { add(row, y) }
    }

    mutating func add(_ row: [Double], _ y: Double) {
        count += 1
        let width = width
        gram.withUnsafeMutableBufferPointer { gram in
            for i in 0..<width where row[i] != 0 {
                nonzero[i] += 1
                rhs[i] += row[i] * y
                let base = i * width
                for j in i..<width { gram[base + j] += row[i] * row[j] }
            }
        }
    }

    static func + (a: NormalEquations, b: NormalEquations) -> NormalEquations { a.combined(b, 1) }
    static func - (a: NormalEquations, b: NormalEquations) -> NormalEquations { a.combined(b, -1) }

    private func combined(_ other: NormalEquations, _ sign: Double) -> NormalEquations {
        var result = self
        for k in gram.indices { result.gram[k] += sign * other.gram[k] }
        for k in rhs.indices {
            result.rhs[k] += sign * other.rhs[k]
            result.nonzero[k] += Int(sign) * other.nonzero[k]
        }
        result.count += Int(sign) * other.count
        return result
    }

    /// The ridge solution on columns scaled to unit RMS: the first column (the intercept) is not penalised, and a
    /// column that is zero in every row gets coefficient 0.
    func solve(penalty: Double) throws -> [Double] {
        let scale = (0..<width).map { j in
            nonzero[j] > 0 ? (max(gram[j * width + j], 0) / Double(count)).squareRoot() : 0
        }
        var normal = [Double](repeating: 0, count: width * width)
        var scaled = [Double](repeating: 0, count: width)
        for i in 0..<width where scale[i] > 0 {
            scaled[i] = rhs[i] / scale[i]
            for j in i..<width where scale[j] > 0 {
                normal[i * width + j] = gram[i * width + j] / (scale[i] * scale[j])
                normal[j * width + i] = normal[i * width + j]
            }
        }
        for i in 0..<width {
            normal[i * width + i] += scale[i] == 0 ? 1 : (i == 0 ? 1e-9 : penalty) * Double(count)
        }
        let solution = try LatencyPredictor.cholesky(normal, scaled, width)
        return (0..<width).map { scale[$0] > 0 ? solution[$0] / scale[$0] : 0 }
    }
}

extension LatencyPredictor {
    /// The predictor as JSON (an infinite band written as `"inf"`), as the measurement store keeps it.
    public func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// A predictor from `jsonText()`'s text; text that is not one is a `PredictorError`.
    public init(jsonText: String) throws {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            self = try decoder.decode(LatencyPredictor.self, from: Data(jsonText.utf8))
        } catch {
            throw PredictorError.badMeasurement("the stored predictor does not decode (\(error)); fit it again")
        }
        guard coefficients.count == 1 + kinds.count * Self.terms.count else {
            throw PredictorError.badMeasurement(
                "the stored predictor has \(coefficients.count) coefficients for \(kinds.count) kernel kinds; fit it again")
        }
    }
}
