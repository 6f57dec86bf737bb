import Constraints
import Foundation
import Predictor

extension Report {
    /// One device type's points of the FLOPs-against-latency plot.
    struct LatencySeries {
        /// The device type, or the metric's name when the job did not name its device.
        var device: String
        /// (trial, FLOPs, p50 latency in ms), by trial.
        var points: [(trial: Int, flops: Double, latency: Double)]
        /// Kendall's tau-b between FLOPs and the latency: 1 when FLOPs order the trials as the device does.
        var kendall: Double?
    }

    /// Per device type, the trials that have both FLOPs and a measured latency on it, whatever became of them
    /// afterwards (an infeasible or pruned trial was measured too, and its point is as informative).
    static func latencySeries(config: JobConfig, trials: [TrialRecord]) -> [LatencySeries] {
        let plain = MetricName.latency.rawValue
        let names = Set(trials.flatMap(\.metrics.keys)).filter { $0 == plain || $0.hasPrefix(plain + ".") }.sorted()
        return names.compactMap { name in
            let points = trials.sorted { $0.id < $1.id }.compactMap { trial -> (Int, Double, Double)? in
                guard let flops = trial.metrics[MetricName.flops.rawValue], let latency = trial.metrics[name],
                    flops.isFinite, latency.isFinite, latency > 0
                else { return nil }
                return (trial.id, flops, latency)
            }
            guard !points.isEmpty else { return nil }
            let device =
                name == plain
                ? (config.targetDeviceTypes.count == 1 ? config.targetDeviceTypes[0] : plain)
                : String(name.dropFirst(plain.count + 1))
            // FLOPs read as a prediction of latency: only the ranks matter to tau.
            let kendall = PredictorEvaluation(predicted: points.map(\.1), measured: points.map(\.2)).kendall
            return LatencySeries(device: device, points: points, kendall: kendall)
        }
    }

    /// The section that shows how far FLOPs are from latency: one scatter plot of FLOPs (x) against the measured
    /// p50 latency (y), one colour per device type, with Kendall's tau of each series in the legend. Empty when
    /// no trial was measured.
    static func flopsLatencySection(config: JobConfig, trials: [TrialRecord]) -> String {
        let series = latencySeries(config: config, trials: trials)
        guard !series.isEmpty else { return "" }
        let colours = ["#5b7db1", "#e07a1f", "#2e9e6a", "#b0417a", "#7a5bb1", "#8a8f2a"]
        let all = series.flatMap(\.points)
        let frame = PlotFrame(
            width: 620, height: 360, x: padded(all.map(\.flops).min()!, all.map(\.flops).max()!),
            y: padded(all.map(\.latency).min()!, all.map(\.latency).max()!))
        var html = "<h2>FLOPs against measured latency</h2>\n<div class=\"summary\">Each point is a trial measured on a "
        html += "device; when FLOPs ranked trials as the device does, Kendall's tau would be 1. A FLOPs target is "
        html += "a proxy: trials of equal FLOPs can differ in latency.</div>\n<div class=\"legend\">"
        for (index, line) in series.enumerated() {
            let tau = line.kendall.map { String(format: ", Kendall tau %.3f", $0) } ?? ""
            html += "<span class=\"series\"><i class=\"dot\" style=\"background:\(colours[index % colours.count])\"></i>"
            html += "\(escape(line.device)): \(line.points.count) trials\(tau)</span>"
        }
        html += "</div>\n<figure class=\"flops-latency\"><figcaption>p50 latency (ms) vs FLOPs, per device type</figcaption>"
        html += frame.svg(
            label: "measured latency against FLOPs per device type", xTitle: "flops", yTitle: "latency_ms (p50)",
            yTick: tick)
        for (index, line) in series.enumerated() {
            let colour = colours[index % colours.count]
            html += "<g class=\"device\" data-device=\"\(escape(line.device))\">"
            for point in line.points {
                html += "<circle class=\"latency-point\" cx=\"\(f(frame.px(point.flops)))\" cy=\"\(f(frame.py(point.latency)))\" r=\"4\" fill=\"\(colour)\" fill-opacity=\"0.8\">"
                html += "<title>trial \(point.trial) on \(escape(line.device)): \(tick(point.flops)) FLOPs, "
                html += "\(ResultsTable.format(point.latency)) ms</title></circle>"
            }
            html += "</g>"
        }
        return html + "</svg></figure>\n"
    }
}
