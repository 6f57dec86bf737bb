import Constraints

extension ResultsTable {
    /// The JSON array of `json` with each trial's `hypervolume`: the front's hypervolume over the trials up to
    /// and including it (the history of `history`, trial by trial), and, for a trial with intermediate results,
    /// its learning `curve`: `[{"step": s, "value": v}, ...]` in step order (`JobStore.curves()`).
    public func json(with history: HypervolumeHistory, curves: [Int: [CurvePoint]] = [:]) -> String {
        let byTrial = Dictionary(history.steps.map { ($0.trial, $0.hypervolume) }, uniquingKeysWith: { $1 })
        guard case .array(let items)? = try? JSON.parse(json) else { return json }
        let rows = items.map { item -> JSON in
            guard case .object(var members) = item, case .number(let id)? = item["trial_id"] else { return item }
            if let value = byTrial[Int(id)] { members.append(("hypervolume", .number(value))) }
            if let curve = curves[Int(id)], !curve.isEmpty {
                members.append(
                    ("curve", .array(curve.map { .object([("step", .number($0.step)), ("value", .number($0.value))]) })))
            }
            return .object(members)
        }
        return JSON.array(rows).integerText
    }
}

extension Report {
    /// The hypervolume section: the value, its reference and a step plot of its history (as Optuna's
    /// `plot_hypervolume_history`).
    static func hypervolumeSection(_ history: HypervolumeHistory) -> String {
        var html = "<h2>Hypervolume</h2>\n<div class=\"summary\">Hypervolume of the feasible front: "
        html += "<b class=\"hypervolume\">\(ResultsTable.format(history.hypervolume))</b> (objectives "
        html += history.objectives.names.map(escape).joined(separator: ", ")
        html += ", normalised by the targets; reference \(escape(history.referenceDescription)))</div>\n"
        let width = 460.0
        let height = 260.0
        let (left, right, top, bottom) = (62.0, 26.0, 12.0, 44.0)
        html += "<figure><figcaption>hypervolume history</figcaption>"
        html += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
        html += "role=\"img\" aria-label=\"hypervolume by trial\">"
        guard let first = history.steps.first, let last = history.steps.last else {
            return html + "<text x=\"20\" y=\"40\">no trials</text></svg></figure>\n"
        }
        let xLow = Double(first.trial) - 0.5
        let xHigh = Double(last.trial) + 0.5
        let yHigh = max(history.hypervolume * 1.1, 1e-9)
        func px(_ x: Double) -> Double { left + (x - xLow) / (xHigh - xLow) * (width - left - right) }
        func py(_ y: Double) -> Double { height - bottom - y / yHigh * (height - top - bottom) }
        html += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width - left - right)\" height=\"\(height - top - bottom)\" fill=\"#fbfcfe\" stroke=\"#c5ccd8\"/>"
        for step in 0...4 {
            let x = xLow + 0.5 + (xHigh - xLow - 1) * Double(step) / 4
            let y = yHigh * Double(step) / 4
            html += "<text x=\"\(f(px(x)))\" y=\"\(f(height - bottom + 16))\" font-size=\"11\" text-anchor=\"middle\">\(Int(x.rounded()))</text>"
            html += "<text x=\"\(f(left - 6))\" y=\"\(f(py(y) + 4))\" font-size=\"11\" text-anchor=\"end\">\(String(format: "%.3g", y))</text>"
        }
        html += "<text x=\"\(f((left + width - right) / 2))\" y=\"\(f(height - 8))\" font-size=\"12\" text-anchor=\"middle\">trial</text>"
        html += "<text transform=\"translate(14 \(f((top + height - bottom) / 2))) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">hypervolume</text>"
        var path: [String] = []
        var previous: Double?
        for step in history.steps {
            if let previous { path.append("\(f(px(Double(step.trial)))),\(f(py(previous)))") }
            path.append("\(f(px(Double(step.trial)))),\(f(py(step.hypervolume)))")
            previous = step.hypervolume
        }
        html += "<polyline class=\"hypervolume\" points=\"\(path.joined(separator: " "))\" fill=\"none\" stroke=\"#e07a1f\" stroke-width=\"1.5\"/>"
        for step in history.steps {
            html += "<circle class=\"step\" cx=\"\(f(px(Double(step.trial))))\" cy=\"\(f(py(step.hypervolume)))\" r=\"3\" fill=\"#5b7db1\">"
            html += "<title>trial \(step.trial): hypervolume \(ResultsTable.format(step.hypervolume))</title></circle>"
        }
        return html + "</svg></figure>\n"
    }
}
