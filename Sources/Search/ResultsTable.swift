import Constraints
import Foundation
import Trainer

/// A job's trials as the seed's job page shows them: one row per trial, Pareto-optimal ones marked.
public struct ResultsTable: Sendable {
    /// One trial's row.
    public struct Row: Sendable {
        /// The trial.
        public var trial: TrialRecord
        /// True when no other succeeded trial is at least as accurate and at most as costly on every
        /// constrained metric, and better somewhere.
        public var isParetoOptimal: Bool
    }

    /// The metric columns, in order: accuracy, FLOPs, then the constrained and device metrics.
    public var metricColumns: [String]
    /// The rows, sorted.
    public var rows: [Row]
    /// The metrics the Pareto front minimises (besides maximising accuracy).
    public var frontMetrics: [String]

    /// The metric holding accuracy.
    public static let accuracyKey = "top_1_accuracy"
    /// The metric holding the reward.
    public static let rewardKey = "nas_reward"

    /// Builds the table of `trials`, sorted by `sortKey` (`nas_reward` best first by default; `id` ascending;
    /// any metric, ascending except accuracy and reward).
    public init(trials: [TrialRecord], constrainedMetrics: [String], sortKey: String = rewardKey) {
        frontMetrics = constrainedMetrics
        var columns = [Self.accuracyKey, "flops_million"]
        for metric in constrainedMetrics where !columns.contains(metric) { columns.append(metric) }
        let seen = Set(trials.flatMap(\.metrics.keys))
        for metric in seen.sorted()
        where (metric.hasPrefix("latency_ms") || metric.hasPrefix("memory_bytes")) && !columns.contains(metric) {
            columns.append(metric)
        }
        // The latency predictor's predictions (every candidate's with --predictor, the screened ones' above all).
        columns += seen.filter { $0.hasPrefix(LatencyScreen.predictedMetric.rawValue) }.sorted()
        // A trainer command's own reward is the trials' nas_reward; the reward nas computed shows beside it.
        if seen.contains(MetricName.computedReward.rawValue) { columns.append(MetricName.computedReward.rawValue) }
        metricColumns = columns
        let succeeded = trials.indices.filter { trials[$0].state == .succeeded }
        let points = succeeded.map { index in
            ParetoFront.Point(
                accuracy: trials[index].metrics[Self.accuracyKey] ?? .nan,
                costs: constrainedMetrics.map { trials[index].metrics[$0] ?? .nan })
        }
        let front = Set(ParetoFront.indices(of: points).map { succeeded[$0] })
        var rows = trials.indices.map { Row(trial: trials[$0], isParetoOptimal: front.contains($0)) }
        rows.sort { a, b in
            let (x, y) = (Self.value(a.trial, sortKey), Self.value(b.trial, sortKey))
            // Missing values (failed trials) sort last; ties keep trial order.
            switch (x, y) {
            case (nil, nil): return a.trial.id < b.trial.id
            case (nil, _): return false
            case (_, nil): return true
            case let (x?, y?):
                if x == y { return a.trial.id < b.trial.id }
                return Self.descending(sortKey) ? x > y : x < y
            }
        }
        self.rows = rows
    }

    static func value(_ trial: TrialRecord, _ key: String) -> Double? {
        switch key {
        case "id", "trial": Double(trial.id)
        case rewardKey: trial.reward ?? trial.metrics[rewardKey]
        default: trial.metrics[key]
        }
    }

    static func descending(_ key: String) -> Bool {
        key == rewardKey || key == accuracyKey
    }

    /// The header of the text and CSV forms.
    public var header: [String] {
        ["trial", "state"] + (isRetrain ? ["nas_trial_id"] : []) + metricColumns + [Self.rewardKey, "pareto"]
    }

    /// True for a train job's table, whose trials each retrain a search trial.
    var isRetrain: Bool { rows.contains { $0.trial.searchTrialID != nil } }

    /// The cells of one row, as text.
    public func cells(_ row: Row) -> [String] {
        var cells = [String(row.trial.id), row.trial.state.rawValue]
        if isRetrain { cells.append(row.trial.searchTrialID.map(String.init) ?? "-") }
        for metric in metricColumns {
            cells.append(row.trial.metrics[metric].map(Self.format) ?? "-")
        }
        cells.append(row.trial.reward.map(Self.format) ?? "-")
        cells.append(row.isParetoOptimal ? "*" : "")
        return cells
    }

    /// An aligned text table.
    public var text: String {
        let table = [header] + rows.map(cells)
        let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
        return table.map { cells in
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    /// The failed trials and why, one line each (`trial 3: the trainer command exited with status 2; ...`); empty
    /// when none failed.
    public var failures: String {
        rows.filter { $0.trial.state == .failed }.sorted { $0.trial.id < $1.trial.id }
            .map { "trial \($0.trial.id): \($0.trial.error ?? "failed")" }.joined(separator: "\n")
    }

    /// Comma-separated values with a header line.
    public var csv: String {
        ([header] + rows.map(cells)).map { $0.map(Self.csvField).joined(separator: ",") }.joined(separator: "\n")
    }

    /// One JSON object per row, in a JSON array.
    public var json: String {
        var items: [JSON] = []
        for row in rows {
            var members: [(key: String, value: JSON)] = [
                ("trial_id", .number(Double(row.trial.id))), ("state", .string(row.trial.state.rawValue)),
            ]
            // The reward and the search trial have members of their own below: never two members of one name.
            for (key, value) in row.trial.metrics.sorted(by: { $0.key < $1.key })
            where key != Self.rewardKey && key != MetricName.searchTrialID.rawValue {
                members.append((key, .number(value)))
            }
            if let reward = row.trial.reward { members.append((Self.rewardKey, .number(reward))) }
            if let error = row.trial.error { members.append(("error", .string(error))) }
            if let search = row.trial.searchTrialID { members.append(("nas_trial_id", .number(Double(search)))) }
            members.append(("pareto_optimal", .bool(row.isParetoOptimal)))
            members.append(("nas_params", (try? JSON.parse(row.trial.parameters)) ?? .string(row.trial.parameters)))
            items.append(.object(members))
        }
        return JSON.array(items).integerText
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: "%.4g", value)
    }

    static func csvField(_ text: String) -> String {
        text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}
