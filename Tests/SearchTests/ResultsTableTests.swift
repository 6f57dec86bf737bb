import Foundation
import Search
import TestSupport
import Testing

/// A small finished job: four succeeded trials (two on the front), one failed.
func sampleTrials() -> [TrialRecord] {
    func trial(_ id: Int, _ accuracy: Double, _ latency: Double, _ reward: Double) -> TrialRecord {
        TrialRecord(
            id: id, state: .succeeded, parameters: #"{"layers":[]}"#, decisions: [id],
            metrics: ["top_1_accuracy": accuracy, "latency_ms": latency, "flops_million": 0.4 * Double(id)],
            reward: reward, error: nil, searchTrialID: nil, startedAt: nil, endedAt: nil)
    }
    var failed = trial(5, 0, 0, 0)
    failed.state = .failed
    failed.metrics = [:]
    failed.reward = nil
    failed.error = "trainer exited with status 1, \"NaN\""
    return [trial(1, 0.80, 1.0, 0.80), trial(2, 0.88, 2.5, 0.87), trial(3, 0.85, 3.0, 0.84), failed, trial(4, 0.90, 4.0, 0.86)]
}

@Suite struct ResultsTableTests {
    @Test func sortsByRewardAndMarksTheFront() {
        let table = ResultsTable(trials: sampleTrials(), constrainedMetrics: ["latency_ms"])
        #expect(table.rows.map(\.trial.id) == [2, 4, 3, 1, 5])
        #expect(table.rows.filter(\.isParetoOptimal).map(\.trial.id).sorted() == [1, 2, 4])
        #expect(table.header == ["trial", "state", "top_1_accuracy", "flops_million", "latency_ms", "nas_reward", "pareto"])
        let byLatency = ResultsTable(trials: sampleTrials(), constrainedMetrics: ["latency_ms"], sortKey: "latency_ms")
        #expect(byLatency.rows.map(\.trial.id) == [1, 2, 3, 4, 5])
    }

    @Test func textCSVAndJSONForms() throws {
        let table = ResultsTable(trials: sampleTrials(), constrainedMetrics: ["latency_ms"])
        let lines = table.text.split(separator: "\n")
        #expect(lines.count == 6 && lines[0].hasPrefix("trial  state"))
        #expect(lines[1].hasPrefix("2      succeeded") && lines[1].hasSuffix("*"))
        #expect(table.csv.split(separator: "\n")[5] == "5,failed,-,-,-,-,")
        let json = try JSONSerialization.jsonObject(with: Data(table.json.utf8)) as! [[String: Any]]
        #expect(json.count == 5 && json[0]["trial_id"] as? Int == 2 && json[0]["pareto_optimal"] as? Bool == true)
        #expect(json[4]["error"] as? String == "trainer exited with status 1, \"NaN\"")
    }

    @Test func reportHasAPlotPerConstraintWithTargetAndFront() {
        let table = ResultsTable(trials: sampleTrials(), constrainedMetrics: ["latency_ms"])
        let html = Report.html(
            config: sampleConfig(), table: table,
            plots: [Report.Plot(metric: "latency_ms", target: 3), Report.Plot(metric: "flops_million", target: nil)])
        #expect(html.components(separatedBy: "<svg").count == 3)
        #expect(html.components(separatedBy: "class=\"target\"").count == 2)
        #expect(html.components(separatedBy: "<circle class=\"pareto\"").count - 1 >= 3)
        #expect(html.contains("<polyline class=\"front\""))
        #expect(!html.contains("http://") || !html.contains("src=\"http"))
        #expect(html.contains("&quot;NaN&quot;"))
    }

    @Test func reportPlotsFlopsAgainstLatencyPerDeviceType() {
        // Two device types: trial 1 measured on both, 2 on the x86 CPU only, 3 on the ARM board only (an
        // infeasible trial still counts: it was measured), 4 has no FLOPs and 5 no latency, so neither is drawn.
        func trial(_ id: Int, _ state: TrialState, _ metrics: [String: Double]) -> TrialRecord {
            TrialRecord(
                id: id, state: state, parameters: "{}", decisions: [id], metrics: metrics, reward: nil, error: nil,
                searchTrialID: nil, startedAt: nil, endedAt: nil)
        }
        let trials = [
            trial(1, .succeeded, ["flops": 2e6, "latency_ms.cpu-x86": 1.0, "latency_ms.arm-a76": 3.0]),
            trial(2, .succeeded, ["flops": 4e6, "latency_ms.cpu-x86": 0.5]),
            trial(3, .infeasible, ["flops": 8e6, "latency_ms.arm-a76": 9.0]),
            trial(4, .succeeded, ["latency_ms.cpu-x86": 2.0]),
            trial(5, .succeeded, ["flops": 1e6]),
        ]
        var config = sampleConfig()
        config.targetDeviceTypes = ["cpu-x86", "arm-a76"]
        let html = Report.html(
            config: config, table: ResultsTable(trials: trials, constrainedMetrics: []),
            plots: Report.plots(for: []))
        #expect(html.contains("<h2>FLOPs against measured latency</h2>"))
        let groups = html.components(separatedBy: "<g class=\"device\" data-device=\"").dropFirst()
        #expect(groups.map { String($0.prefix { $0 != "\"" }) } == ["arm-a76", "cpu-x86"])
        #expect(groups.map { $0.components(separatedBy: "<circle class=\"latency-point\"").count - 1 } == [2, 2])
        #expect(html.contains("trial 3 on arm-a76: 8M FLOPs, 9"))
        // The ARM board ranks as FLOPs do (tau 1), the CPU in reverse (tau -1).
        #expect(html.contains("arm-a76: 2 trials, Kendall tau 1.000"))
        #expect(html.contains("cpu-x86: 2 trials, Kendall tau -1.000"))
    }

    @Test func reportNamesTheSingleDeviceTypeAndOmitsThePlotWithoutMeasurements() {
        let html = Report.html(
            config: sampleConfig(), table: ResultsTable(trials: sampleTrials(), constrainedMetrics: ["latency_ms"]),
            plots: Report.plots(for: []))
        // sampleTrials() has flops_million but no flops: nothing to plot.
        #expect(!html.contains("FLOPs against measured latency"))
        let measured = sampleTrials().map { trial -> TrialRecord in
            var trial = trial
            if let flops = trial.metrics["flops_million"] { trial.metrics["flops"] = flops * 1e6 }
            return trial
        }
        let withFlops = Report.html(
            config: sampleConfig(), table: ResultsTable(trials: measured, constrainedMetrics: ["latency_ms"]),
            plots: Report.plots(for: []))
        #expect(withFlops.contains("data-device=\"cpu-x86\""))
        #expect(withFlops.components(separatedBy: "<circle class=\"latency-point\"").count - 1 == 4)
    }
}
