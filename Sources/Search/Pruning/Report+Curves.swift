import Foundation

extension Report {
    /// ", 2 pruned, 1 infeasible" for the summary line, or nothing.
    static func stoppedEarly(_ trials: [TrialRecord]) -> String {
        let pruned = trials.filter { $0.state == .pruned }.count
        let infeasible = trials.filter { $0.state == .infeasible }.count
        return (pruned > 0 ? ", \(pruned) pruned" : "") + (infeasible > 0 ? ", \(infeasible) infeasible (not trained)" : "")
    }

    /// The learning curves as one inline SVG: accuracy against step, one line per trial, pruned trials grey and
    /// dashed, ending with a cross where they were stopped.
    static func learningCurves(_ curves: [Int: [CurvePoint]], trials: [TrialRecord]) -> String {
        let states = Dictionary(uniqueKeysWithValues: trials.map { ($0.id, $0.state) })
        let points = curves.values.flatMap { $0 }.filter { $0.step.isFinite && $0.value.isFinite }
        guard let maxStep = points.map(\.step).max(), let minValue = points.map(\.value).min(),
            let maxValue = points.map(\.value).max()
        else { return "" }
        let (width, height, left, bottom, top, right) = (620.0, 320.0, 52.0, 36.0, 12.0, 16.0)
        let low = min(minValue, maxValue - 0.01)
        let high = maxValue
        func x(_ step: Double) -> Double { left + step / max(maxStep, 1) * (width - left - right) }
        func y(_ value: Double) -> Double { top + (high - value) / (high - low) * (height - top - bottom) }
        var svg = """
            <h2>Learning curves</h2>
            <figure><figcaption>top_1_accuracy after each step (epochs); grey dashed: pruned, x where stopped</figcaption>
            <svg width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" role="img">
            <line x1="\(left)" y1="\(height - bottom)" x2="\(width - right)" y2="\(height - bottom)" stroke="#888"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(height - bottom)" stroke="#888"/>
            <text x="\(left)" y="\(height - 8)" font-size="11">0</text>
            <text x="\(width - right - 20)" y="\(height - 8)" font-size="11">\(ResultsTable.format(maxStep))</text>
            <text x="4" y="\(top + 10)" font-size="11">\(String(format: "%.3f", high))</text>
            <text x="4" y="\(height - bottom)" font-size="11">\(String(format: "%.3f", low))</text>

            """
        for (id, curve) in curves.sorted(by: { $0.key < $1.key }) {
            let line = curve.filter { $0.step.isFinite && $0.value.isFinite }
            guard let last = line.last else { continue }
            let pruned = states[id] == .pruned
            let path = line.map { String(format: "%.1f,%.1f", x($0.step), y($0.value)) }.joined(separator: " ")
            let style = pruned ? "stroke=\"#a0a6b1\" stroke-dasharray=\"4 3\"" : "stroke=\"#5b7db1\""
            svg += "<polyline fill=\"none\" stroke-width=\"1.5\" \(style) points=\"\(path)\"><title>trial \(id)\(pruned ? " (pruned)" : "")</title></polyline>\n"
            if pruned {
                let (cx, cy) = (x(last.step), y(last.value))
                svg += String(
                    format: "<path d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" stroke=\"#c0392b\"/>\n", cx - 4, cy - 4,
                    cx + 4, cy + 4, cx - 4, cy + 4, cx + 4, cy - 4)
            }
        }
        return svg + "</svg></figure>\n"
    }
}
