import Constraints
import Foundation
import Predictor

extension Report {
    /// The latency predictor's section: per device type, how many trainings screening saved, the predictions
    /// against the measurements of every trial predicted before it was measured, and the predictor's running
    /// accuracy (share within ±10% of the predictions so far, in trial order) and how many measurements fell inside
    /// their prediction's band (what the screen's trust rule checks). Empty when nothing was predicted.
    static func predictorSection(_ trials: [TrialRecord]) -> String {
        let prefix = LatencyScreen.predictedMetric.rawValue
        let names = Set(trials.flatMap(\.metrics.keys)).filter { $0.hasPrefix(prefix) }.sorted()
        guard !names.isEmpty else { return "" }
        let screened = trials.filter { $0.state == .screened }
        var html = "<h2>Latency predictor</h2>\n<div class=\"summary\">Screening saved \(screened.count) training"
        html += screened.count == 1 ? "" : "s"
        html += ": candidates whose predicted latency, band included, missed a hard latency target were not trained.</div>\n"
        for name in names {
            let suffix = String(name.dropFirst(prefix.count))
            let measuredName = MetricName.latency.rawValue + suffix
            let bandName = LatencyScreen.bandMetric.rawValue + suffix
            let pairs = trials.sorted { $0.id < $1.id }.compactMap { trial -> (Int, Double, Double)? in
                guard trial.state == .succeeded, let predicted = trial.metrics[name],
                    let measured = trial.metrics[measuredName], measured > 0
                else { return nil }
                return (trial.id, predicted, measured)
            }
            let banded = trials.filter { $0.state == .succeeded }.compactMap { trial -> Bool? in
                guard let predicted = trial.metrics[name], let band = trial.metrics[bandName],
                    let measured = trial.metrics[measuredName]
                else { return nil }
                return LatencyScreen.bandHeld(predicted: predicted, band: band, measured: measured)
            }
            let device = suffix.isEmpty ? "" : " on \(escape(String(suffix.dropFirst())))"
            let evaluation = PredictorEvaluation(predicted: pairs.map(\.1), measured: pairs.map(\.2))
            html += "<h3>Predicted against measured \(escape(measuredName))\(device)</h3>\n<div class=\"summary\">"
            html += "\(pairs.count) trials predicted before they were measured"
            if !pairs.isEmpty {
                html += String(
                    format: ": %.0f%% within ±10%%, %.0f%% within ±5%%, RMSPE %.1f%%", evaluation.within10 * 100,
                    evaluation.within5 * 100, evaluation.rmspe * 100)
                if let spearman = evaluation.spearman { html += String(format: ", Spearman %.3f", spearman) }
                if let kendall = evaluation.kendall { html += String(format: ", Kendall %.3f", kendall) }
                if !banded.isEmpty {
                    html += "; \(banded.filter { $0 }.count) of \(banded.count) with a finite band measured inside it"
                }
            }
            html += ".</div>\n"
            guard !pairs.isEmpty else { continue }
            html += "<table><thead><tr><th>trial</th><th>predicted ms</th><th>measured ms</th><th>error</th>"
            html += "<th>running within ±10%</th></tr></thead><tbody>\n"
            var within = 0
            for (index, (trial, predicted, measured)) in pairs.enumerated() {
                let error = (predicted - measured) / measured
                if abs(error) <= 0.10 { within += 1 }
                html += "<tr><td>\(trial)</td><td>\(ResultsTable.format(predicted))</td>"
                html += "<td>\(ResultsTable.format(measured))</td>"
                html += String(format: "<td>%+.1f%%</td><td>%.0f%%</td></tr>\n", error * 100, Double(within) / Double(index + 1) * 100)
            }
            html += "</tbody></table>\n"
        }
        return html
    }
}
