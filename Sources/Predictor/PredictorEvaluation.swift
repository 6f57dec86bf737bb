/// How well predictions match measurements: the share within ±10% and ±5%, RMSPE and rank correlations.
public struct PredictorEvaluation: Codable, Hashable, Sendable {
    /// Pairs compared.
    public var count: Int
    /// Share of predictions within ±10% of the measurement.
    public var within10: Double
    /// Share within ±5%.
    public var within5: Double
    /// Root mean squared relative error, as a share (0.05 = 5%).
    public var rmspe: Double
    /// Spearman's rank correlation; nil with fewer than 2 pairs or constant values.
    public var spearman: Double?
    /// Kendall's tau-b; nil with fewer than 2 pairs or constant values.
    public var kendall: Double?

    enum CodingKeys: String, CodingKey {
        case count
        case within10 = "within_10_percent"
        case within5 = "within_5_percent"
        case rmspe, spearman, kendall
    }

    /// The figures of `predicted` against `measured` (same order, measured values positive); empty input gives
    /// zeros and no correlations.
    public init(predicted: [Double], measured: [Double]) {
        precondition(predicted.count == measured.count, "one prediction per measurement")
        count = predicted.count
        guard count > 0 else {
            (within10, within5, rmspe) = (0, 0, 0)
            return
        }
        let relative = zip(predicted, measured).map { abs($0 - $1) / $1 }
        within10 = Double(relative.filter { $0 <= 0.10 }.count) / Double(count)
        within5 = Double(relative.filter { $0 <= 0.05 }.count) / Double(count)
        rmspe = (relative.reduce(0) { $0 + $1 * $1 } / Double(count)).squareRoot()
        spearman = Self.pearson(Self.ranks(predicted), Self.ranks(measured))
        kendall = Self.kendall(predicted, measured)
    }

    /// Average ranks (ties share the mean of their ranks), from 1.
    static func ranks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count, values[order[end + 1]] == values[order[start]] { end += 1 }
            let rank = Double(start + end) / 2 + 1
            for position in start...end { ranks[order[position]] = rank }
            start = end + 1
        }
        return ranks
    }

    static func pearson(_ x: [Double], _ y: [Double]) -> Double? {
        guard x.count >= 2 else { return nil }
        let mx = x.reduce(0, +) / Double(x.count)
        let my = y.reduce(0, +) / Double(y.count)
        var (sxy, sxx, syy) = (0.0, 0.0, 0.0)
        for (a, b) in zip(x, y) {
            sxy += (a - mx) * (b - my)
            sxx += (a - mx) * (a - mx)
            syy += (b - my) * (b - my)
        }
        guard sxx > 0, syy > 0 else { return nil }
        return sxy / (sxx * syy).squareRoot()
    }

    /// Kendall's tau-b, O(n²): the evaluations here compare at most a few thousand pairs.
    static func kendall(_ x: [Double], _ y: [Double]) -> Double? {
        guard x.count >= 2 else { return nil }
        var (concordant, discordant, tiesX, tiesY) = (0.0, 0.0, 0.0, 0.0)
        for i in 0..<x.count {
            for j in (i + 1)..<x.count {
                let dx = x[i] - x[j]
                let dy = y[i] - y[j]
                if dx == 0 && dy == 0 { continue }
                if dx == 0 { tiesX += 1 } else if dy == 0 { tiesY += 1 } else if (dx > 0) == (dy > 0) {
                    concordant += 1
                } else {
                    discordant += 1
                }
            }
        }
        let denominator = ((concordant + discordant + tiesX) * (concordant + discordant + tiesY)).squareRoot()
        guard denominator > 0 else { return nil }
        return (concordant - discordant) / denominator
    }
}

/// Why a predictor could not be fitted or used: what was wrong and what to do.
public struct PredictorError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable { case tooFew, badMeasurement, noPredictor }

    private let code: Code
    /// The readable explanation.
    public let description: String

    private init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }

    /// Fewer measurements than a fit needs.
    public static func tooFewMeasurements(_ count: Int, needed: Int, deviceType: String? = nil) -> PredictorError {
        let device = deviceType.map { " of device type '\($0)'" } ?? ""
        return PredictorError(
            .tooFew,
            "\(count) measurement\(count == 1 ? "" : "s")\(device) where at least \(needed) are needed; run a search that measures on the device (or give job folders that did) first"
        )
    }

    /// A measurement that cannot be learned from.
    public static func badMeasurement(_ why: String) -> PredictorError {
        PredictorError(.badMeasurement, "cannot fit the latency predictor: \(why)")
    }
}
