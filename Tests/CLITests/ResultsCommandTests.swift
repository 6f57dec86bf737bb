import Foundation
import Search
import TestSupport
import Testing

/// A finished search job on disk: five trials, one failed.
func writeSampleJob() throws -> String {
    let directory = try TestSupport.temporaryDirectory("nas-results").path
    let config = JobConfig(
        kind: "search", name: "latency-demo", searchSpace: "mnist_list_of_dictionary", algorithm: "evolution", seed: 1,
        maxTrials: 5, maxParallelTrials: 1, maxFailedTrials: 2, constraints: ["latency_ms<=3:soft", "flops<=0.8M"],
        targetDeviceTypes: ["cpu-x86"], trainerArguments: [])
    let store = try JobStore.create(directory: directory, config: config)
    let rows: [(Double, Double, Double, Double)] = [
        (0.80, 1.0, 300_000, 0.80), (0.88, 2.5, 500_000, 0.87), (0.85, 3.0, 900_000, 0.84), (0.90, 4.0, 700_000, 0.86),
    ]
    for (offset, row) in rows.enumerated() {
        let id = try store.addTrial(parameters: #"{"layers":[[3,3],[3,6]]}"#, decisions: [offset])
        try store.markRunning(id)
        try store.markSucceeded(
            id,
            metrics: ["top_1_accuracy": row.0, "latency_ms": row.1, "flops": row.2, "flops_million": row.2 / 1e6],
            reward: row.3)
    }
    let failed = try store.addTrial(parameters: "{}", decisions: [9])
    try store.markFailed(failed, reason: "failed_with_nan_error")
    return directory
}

@Suite struct ResultsCommandTests {
    @Test func trialsListInEveryForm() async throws {
        let job = try writeSampleJob()
        let text = try await TestSupport.nas(["trials", "list", job])
        #expect(text.status == 0)
        let lines = text.stdout.split(separator: "\n")
        // The table, the hypervolume and its history, then why each failed trial failed.
        #expect(lines.count == 10 && lines[8] == "Failed:" && lines[9].hasSuffix(": failed_with_nan_error"))
        // Trials 1 and 2 are feasible: normalised (0.2, 1/3, 0.375) and (0.12, 5/6, 0.625) against (1, 1, 1) cover
        // 0.8 x 2/3 x 0.625 + 0.88 x 1/6 x 0.375 - 0.8 x 1/6 x 0.375 = 0.33833.
        #expect(lines[6] == "hypervolume 0.3383 (normalised; reference top_1_accuracy=0,latency_ms=3,flops=800000)")
        #expect(lines[7] == "history (trial:hypervolume): 1:0.3333 2:0.3383 3:0.3383 4:0.3383 5:0.3383")
        #expect(lines[0].contains("top_1_accuracy") && lines[0].contains("latency_ms") && lines[0].contains("nas_reward"))
        #expect(lines[1].hasPrefix("2 ") && lines[1].hasSuffix("*"))
        #expect(lines[5].hasPrefix("5 ") && lines[5].contains("failed"))
        let csv = try await TestSupport.nas(["trials", "list", job, "--csv", "--sort", "latency_ms"])
        #expect(csv.stdout.split(separator: "\n")[1].hasPrefix("1,succeeded,0.8,0.3,1,"))
        let json = try await TestSupport.nas(["trials", job, "--json"])
        let objects = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [[String: Any]]
        #expect(objects.count == 5 && objects[4]["error"] as? String == "failed_with_nan_error")
        #expect(objects.map { ($0["hypervolume"] as? Double).map { ($0 * 1e4).rounded() } } == [3383, 3383, 3383, 3333, 3383])
        // A reference of accuracy 0.5 and latency 6 ms (normalised 0.5, 2, 1): 0.3 x 5/3 x 0.625 for trial 1,
        // 0.38 x 7/6 x 0.375 for trial 2, less 0.3 x 7/6 x 0.375 for both.
        let moved = try await TestSupport.nas(["trials", "list", job, "--reference-point", "top_1_accuracy=0.5,latency_ms=6"])
        #expect(moved.stdout.contains("hypervolume 0.3475 (normalised; reference top_1_accuracy=0.5,latency_ms=6,flops=800000)"))
        let wrong = try await TestSupport.nas(["trials", "list", job, "--reference-point", "memory_bytes=5"])
        #expect(wrong.status == 64 && wrong.stderr.contains("'memory_bytes' is not an objective of this job"), "\(wrong.stderr)")
        let notAJob = try await TestSupport.nas(["trials", "list", try TestSupport.temporaryDirectory().path])
        #expect(notAJob.status != 0 && notAJob.stderr.contains("is not a nas job directory"))
    }

    /// The report, rendered by headless Chromium: its DOM has the table, the plots, targets and fronts.
    @Test func reportRendersInChromium() async throws {
        let job = try writeSampleJob()
        let output = URL(fileURLWithPath: job).appendingPathComponent("report.html")
        let result = try await TestSupport.nas(["report", job, "-o", output.path])
        #expect(result.status == 0 && result.stdout.contains(output.path))
        let json = try await TestSupport.nas(["report", job, "-o", output.path, "--json"])
        #expect(json.status == 0 && json.stdout.hasPrefix(#"{"report":"\#(output.path)","#), "\(json.stdout)")
        let html = try String(contentsOf: output, encoding: .utf8)
        #expect(!html.contains("src=\"http") && !html.contains("href=\"http"), "the report must be self-contained")

        let chromium = try #require(
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "chromium is missing: run scripts/bootstrap.sh")
        let profile = try TestSupport.temporaryDirectory("chromium-profile").path
        let dom = try await TestSupport.run(
            chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile)", "--virtual-time-budget=2000",
                "--dump-dom", output.absoluteString,
            ])
        try #require(dom.status == 0, "chromium failed: \(dom.stderr)")
        let page = dom.stdout
        #expect(page.contains("Search job latency-demo"))
        // Accuracy against each constraint's metric, the hypervolume history, and FLOPs against latency.
        #expect(page.components(separatedBy: "<svg").count - 1 == 4)
        #expect(page.components(separatedBy: "class=\"target\"").count - 1 == 2)
        #expect(page.components(separatedBy: "<circle").count - 1 == 8 + 5 + 4)
        #expect(page.contains("<b class=\"hypervolume\">0.3383</b>"))
        #expect(page.components(separatedBy: "class=\"step\"").count - 1 == 5)
        #expect(page.components(separatedBy: "<tr").count - 1 == 6)
        #expect(page.contains("Best reward 0.87 by trial 2"))

        let screenshot = URL(fileURLWithPath: job).appendingPathComponent("report.png")
        let shot = try await TestSupport.run(
            chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile)", "--window-size=1100,900",
                "--screenshot=\(screenshot.path)", output.absoluteString,
            ])
        #expect(shot.status == 0)
        let png = try Data(contentsOf: screenshot)
        #expect(png.count > 10_000 && png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
    }
}
