import Foundation
import Search
import TestSupport
import Testing
import Trainer

/// `nas search --algorithm nsga2` end to end: real trainer processes on small slices of the data, two at once,
/// then a resume that proposes what the job's own algorithm proposes from the finished trials.
@Suite struct MultiObjectiveSearchTests {
    @Test func nsga2SearchResumesAndShowsTheHypervolume() async throws {
        let root = try TestSupport.temporaryDirectory("nas-moo")
        let job = root.appendingPathComponent("front").path
        let first = try await TestSupport.nas(
            ["search", "--root-output-dir", root.path, "--job-name", "front", "--algorithm", "nsga2", "--seed", "4",
             "--max-trials", "3", "--max-parallel-trials", "2", "--constraint", "latency_ms<=5"]
                + SearchCommandTests.quick)
        try #require(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(first.stdout.contains("Search job front: 3 succeeded, 0 failed"))

        let resumed = try await TestSupport.nas(["search", "--resume", job, "--max-trials", "4"])
        try #require(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
        let store = try JobStore.open(directory: job)
        let trials = try store.trials()
        #expect(trials.count == 4 && trials.allSatisfy { $0.state == .succeeded })
        #expect(Set(trials.map(\.decisions)).count == 4)
        // Trial 4 is what NSGA-II proposes from the three finished trials, in the order they finished.
        let finished = trials.prefix(3).sorted { ($0.endedAt ?? 0, $0.id) < ($1.endedAt ?? 0, $1.id) }
            .map { TrialOutcome(choice: SearchChoice($0.decisions), reward: $0.reward, metrics: $0.metrics) }
        let algorithm = SearchAlgorithm(
            kind: .nsga2, space: .mnistListOfDictionary, seed: 4,
            objectives: ObjectiveSpace(metrics: ["latency_ms"], targets: [5]))
        let expected = try algorithm.propose(
            trial: 3, proposed: trials.prefix(3).map { SearchChoice($0.decisions) }, finished: finished)
        #expect(expected == SearchChoice(trials[3].decisions))

        let list = try await TestSupport.nas(["trials", "list", job])
        #expect(list.stdout.contains("hypervolume ") && list.stdout.contains("reference top_1_accuracy=0,latency_ms=5"))
        let history = HypervolumeHistory(
            trials: trials, objectives: ObjectiveSpace(metrics: ["latency_ms"], targets: [5]))
        #expect(list.stdout.contains("history (trial:hypervolume): 1:"), "\(list.stdout)")
        #expect(history.steps.count == 4 && history.hypervolume > 0 && history.hypervolume < 1, "\(trials.map(\.metrics))")
        let report = try String(contentsOfFile: job + "/report.html", encoding: .utf8)
        #expect(report.contains("<h2>Hypervolume</h2>") && report.contains("class=\"step\""))
    }
}
