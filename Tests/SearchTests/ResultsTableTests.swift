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
}
