import Constraints
import Foundation

/// The HTML report of a job: one self-contained file (no network assets) with the sortable trials table,
/// per constraint a scatter plot of accuracy against the metric with the target line and the Pareto front, and
/// the front's hypervolume with its history trial by trial, and measured latency against FLOPs per device type.
public enum Report {
    /// One plot: a metric on x, accuracy on y.
    public struct Plot: Sendable {
        /// The metric on the x axis.
        public var metric: String
        /// The constraint's target, drawn as a vertical line.
        public var target: Double?

        /// Creates a plot description.
        public init(metric: String, target: Double?) {
            self.metric = metric
            self.target = target
        }
    }

    /// One plot per constraint, its target drawn; FLOPs when the job has no constraint.
    public static func plots(for constraints: [Constraint]) -> [Plot] {
        let plots = constraints.map { Plot(metric: $0.metric, target: $0.target) }
        return plots.isEmpty ? [Plot(metric: MetricName.flopsMillion.rawValue, target: nil)] : plots
    }

    /// Renders the report; with `hypervolume`, its value and history too; with `curves` (the job's learning curves,
    /// by trial) it draws them too.
    public static func html(
        config: JobConfig, table: ResultsTable, plots: [Plot], hypervolume: HypervolumeHistory? = nil,
        curves: [Int: [CurvePoint]] = [:]
    ) -> String {
        let trials = table.rows.map(\.trial)
        let succeeded = trials.filter { $0.state == .succeeded }
        let failed = trials.filter { $0.state == .failed }.count
        let best = table.rows.first { $0.trial.reward != nil }?.trial
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>nas report: \(escape(config.name))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; }
            h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
            .summary { color: #4a5568; margin-bottom: 16px; }
            .plots { display: flex; flex-wrap: wrap; gap: 16px; }
            figure { margin: 0; border: 1px solid #d8dde6; border-radius: 6px; padding: 8px; background: #fff; }
            figcaption { font-weight: 600; margin-bottom: 4px; }
            table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
            th, td { padding: 4px 10px; border-bottom: 1px solid #e5e8ee; text-align: right; }
            th { cursor: pointer; background: #f3f5f9; user-select: none; }
            th:hover { background: #e6eaf2; }
            td:nth-child(2), th:nth-child(2) { text-align: left; }
            tr.pareto td { background: #fff6e0; } tr.failed td { color: #a0a6b1; }
            .legend span { margin-right: 14px; } .dot { display: inline-block; width: 10px; height: 10px;
              border-radius: 50%; margin-right: 4px; vertical-align: middle; }
            </style></head><body>
            <h1>\(escape(config.kind == "train" ? "Retrain job" : "Search job")) \(escape(config.name))</h1>
            <div class="summary">\(trials.count) trials: \(succeeded.count) succeeded, \(failed) failed\(stoppedEarly(trials)).
            Algorithm \(escape(config.algorithm)), search space \(escape(config.searchSpace)).
            Constraints: \(config.constraints.isEmpty ? "none" : config.constraints.map(escape).joined(separator: ", ")).
            \(best.map { "Best reward \(ResultsTable.format($0.reward ?? .nan)) by trial \($0.id)." } ?? "")</div>
            <div class="summary">Pareto-optimal trials: no other succeeded trial has a higher top_1_accuracy and a \
            lower or equal \(table.frontMetrics.isEmpty ? "value of nothing else (accuracy alone)" : table.frontMetrics.map(escape).joined(separator: ", ")).</div>
            <div class="legend"><span><i class="dot" style="background:#e07a1f"></i>Pareto-optimal</span>
            <span><i class="dot" style="background:#5b7db1"></i>other trials</span>
            <span>dashed line: target</span></div>
            <h2>Accuracy against each constraint</h2>
            <div class="plots">

            """
        for plot in plots {
            html += scatter(plot, trials: succeeded)
        }
        html += "</div>\n" + flopsLatencySection(config: config, trials: trials) + predictorSection(trials)
        if let hypervolume { html += hypervolumeSection(hypervolume) }
        if !curves.isEmpty { html += learningCurves(curves, trials: trials) }
        html += "<h2>Trials</h2>\n<table id=\"trials\"><thead><tr>"
        for (column, title) in table.header.enumerated() {
            html += "<th onclick=\"sortBy(\(column))\" title=\"sort\">\(escape(title))</th>"
        }
        html += "</tr></thead><tbody>\n"
        for row in table.rows {
            let kind = row.isParetoOptimal ? " class=\"pareto\"" : row.trial.state == .failed ? " class=\"failed\"" : ""
            let title = row.trial.error.map { " title=\"\(escape($0))\"" } ?? ""
            html += "<tr\(kind)\(title)>" + table.cells(row).map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n"
        }
        html += "</tbody></table>\n"
        let failures = table.rows.filter { $0.trial.state == .failed }.sorted { $0.trial.id < $1.trial.id }
        if !failures.isEmpty {
            html += "<h2>Failed trials</h2>\n<ul class=\"failures\">\n"
            for row in failures {
                html += "<li>trial \(row.trial.id): \(escape(row.trial.error ?? "failed"))</li>\n"
            }
            html += "</ul>\n"
        }
        html += """
            <script>
            // Sorts the trials table by a column: numbers numerically, '-' last; a second click reverses.
            let lastColumn = -1, ascending = true;
            function sortBy(column) {
              ascending = column === lastColumn ? !ascending : false; lastColumn = column;
              const body = document.querySelector('#trials tbody');
              const rows = Array.from(body.rows);
              const key = r => { const t = r.cells[column].textContent; const n = parseFloat(t);
                return isNaN(n) ? (t === '-' || t === '' ? null : t) : n; };
              rows.sort((a, b) => { const x = key(a), y = key(b);
                if (x === null) return 1; if (y === null) return -1;
                const c = x < y ? -1 : x > y ? 1 : 0; return ascending ? c : -c; });
              rows.forEach(r => body.appendChild(r));
            }
            </script>
            </body></html>

            """
        return html
    }

    /// One scatter plot as inline SVG.
    static func scatter(_ plot: Plot, trials: [TrialRecord]) -> String {
        let points = trials.compactMap { trial -> (id: Int, x: Double, y: Double)? in
            guard let x = trial.metrics[plot.metric], let y = trial.metrics[ResultsTable.accuracyKey], x.isFinite,
                y.isFinite
            else { return nil }
            return (trial.id, x, y)
        }
        var svg = "<figure><figcaption>accuracy vs \(escape(plot.metric))</figcaption>"
        guard !points.isEmpty else {
            svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"460\" height=\"320\" role=\"img\" "
            svg += "aria-label=\"accuracy against \(escape(plot.metric))\">"
            return svg + "<text x=\"20\" y=\"40\">no succeeded trial has \(escape(plot.metric))</text></svg></figure>\n"
        }
        var xs = points.map(\.x)
        if let target = plot.target { xs.append(target) }
        let frame = PlotFrame(
            width: 460, height: 320, x: padded(xs.min()!, xs.max()!), y: padded(points.map(\.y).min()!, points.map(\.y).max()!))
        let (px, py, top, bottom) = (frame.px, frame.py, frame.top, frame.height - frame.bottom)
        svg += frame.svg(
            label: "accuracy against \(escape(plot.metric))", xTitle: escape(plot.metric), yTitle: "top_1_accuracy",
            yTick: ResultsTable.format)
        if let target = plot.target {
            svg += "<line class=\"target\" x1=\"\(f(px(target)))\" y1=\"\(top)\" x2=\"\(f(px(target)))\" y2=\"\(bottom)\" stroke=\"#c0392b\" stroke-dasharray=\"6 4\" stroke-width=\"1.5\"><title>target \(ResultsTable.format(target))</title></line>"
        }
        // The 2-D front of this plot: most accurate for its cost.
        let front = Set(
            ParetoFront.indices(of: points.map { ParetoFront.Point(accuracy: $0.y, costs: [$0.x]) }).map {
                points[$0].id
            })
        let frontPoints = points.filter { front.contains($0.id) }.sorted { $0.x < $1.x }
        if frontPoints.count > 1 {
            let path = frontPoints.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            svg += "<polyline class=\"front\" points=\"\(path)\" fill=\"none\" stroke=\"#e07a1f\" stroke-width=\"1.5\"/>"
        }
        for point in points {
            let onFront = front.contains(point.id)
            svg += "<circle class=\"\(onFront ? "pareto" : "trial")\" cx=\"\(f(px(point.x)))\" cy=\"\(f(py(point.y)))\" r=\"\(onFront ? 5.5 : 4)\" fill=\"\(onFront ? "#e07a1f" : "#5b7db1")\" fill-opacity=\"0.85\">"
            svg += "<title>trial \(point.id): \(escape(plot.metric)) \(ResultsTable.format(point.x)), accuracy \(ResultsTable.format(point.y))</title></circle>"
        }
        return svg + "</svg></figure>\n"
    }

    /// The frame of a scatter plot: its size and margins, the data ranges on each axis and the mapping of data to
    /// pixels, drawn as a background, five ticks per axis and the axis titles.
    struct PlotFrame {
        var width: Double
        var height: Double
        var x: (low: Double, high: Double)
        var y: (low: Double, high: Double)
        var (left, right, top, bottom) = (62.0, 26.0, 12.0, 44.0)

        init(width: Double, height: Double, x: (Double, Double), y: (Double, Double)) {
            (self.width, self.height, self.x, self.y) = (width, height, x, y)
        }

        func px(_ value: Double) -> Double { left + (value - x.low) / (x.high - x.low) * (width - left - right) }
        func py(_ value: Double) -> Double {
            height - bottom - (value - y.low) / (y.high - y.low) * (height - top - bottom)
        }

        /// The opening `<svg>` tag, the background, the ticks and the titles (already escaped).
        func svg(label: String, xTitle: String, yTitle: String, yTick: (Double) -> String) -> String {
            var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            svg += "role=\"img\" aria-label=\"\(label)\">"
            svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width - left - right)\" height=\"\(height - top - bottom)\" fill=\"#fbfcfe\" stroke=\"#c5ccd8\"/>"
            for step in 0...4 {
                let xValue = x.low + (x.high - x.low) * Double(step) / 4
                let yValue = y.low + (y.high - y.low) * Double(step) / 4
                svg += "<text x=\"\(f(px(xValue)))\" y=\"\(f(height - bottom + 16))\" font-size=\"11\" text-anchor=\"middle\">\(tick(xValue))</text>"
                svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(yValue) + 4))\" font-size=\"11\" text-anchor=\"end\">\(yTick(yValue))</text>"
            }
            svg += "<text x=\"\(f((left + width - right) / 2))\" y=\"\(f(height - 8))\" font-size=\"12\" text-anchor=\"middle\">\(xTitle)</text>"
            svg += "<text transform=\"translate(14 \(f((top + height - bottom) / 2))) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">\(yTitle)</text>"
            return svg
        }
    }

    /// An axis label: short, with k/M/G for large values.
    static func tick(_ value: Double) -> String {
        for (scale, suffix) in [(1e9, "G"), (1e6, "M"), (1e4, "k")] where abs(value) >= scale {
            let divisor = suffix == "k" ? 1e3 : scale
            return String(format: "%.3g", value / divisor) + suffix
        }
        return String(format: "%.3g", value)
    }

    static func padded(_ low: Double, _ high: Double) -> (Double, Double) {
        let span = high - low
        let margin = span > 0 ? span * 0.08 : max(abs(low) * 0.1, 1e-3)
        return (low - margin, high + margin)
    }

    static func f(_ value: Double) -> String {
        String(format: "%.1f", value)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
