import Foundation
import TestSupport
import Testing

@Suite struct RewardCommandTests {
    @Test func scoresJSONLinesInOrderAndReportsBadLines() async throws {
        let input = """
            {"accuracy": 0.95, "target_latency_or_flops": 0.8, "measured_latency_or_flops": 0.4, "use_hard_limit": false}
            {"accuracy": 0.95, "target_latency_or_flops": 0.8, "measured_latency_or_flops": 1.6}
            not json

            {"accuracy": 0.9, "metrics": {"latency_ms": 6}, "constraints": ["latency_ms<=3"]}
            {"accuracy": 0.9, "metrics": {"latency_ms": 6}}
            """
        let result = try await TestSupport.nas(["reward", "--constraint", "latency_ms<=2:vertex-hard,weight=2"], input: input)
        #expect(result.status == 1)
        #expect(result.stderr.contains("1 of 6 lines failed"))
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 5, "\(result.stdout)")
        #expect(lines[0].hasPrefix(#"{"line":1,"reward":1.9,"#))
        #expect(lines[1].hasPrefix(#"{"line":2,"reward":0.475,"#))
        #expect(lines[2].hasPrefix(#"{"line":3,"reward":null,"feasible":null,"constraints":[],"error":"line 3: invalid JSON"#))
        #expect(lines[3].hasPrefix(#"{"line":5,"reward":0.45,"#))
        // Line 6 names no constraints: --constraint applies, (6/2)^-2 = 1/9.
        #expect(lines[4].hasPrefix(#"{"line":6,"reward":0.09999999999999999,"#))
    }

    @Test func everyLineHasTheSameMembersAndNoUnusableRewardPassesAsAResult() async throws {
        let input = """
            {"accuracy": 0.95, "target_latency_or_flops": 0.8, "measured_latency_or_flops": 0}
            {"accuracy": 0.95, "target_latency_or_flops": 0.8, "measured_latency_or_flops": 0.4}
            {"accuracy": 0.9, "metrics": {"latency_ms": 2}, "constraints": ["latency_ms<=3"]}
            {"accuracy": 87, "metrics": {"latency_ms": 2}, "constraints": ["latency_ms<=3"]}
            """
        let result = try await TestSupport.nas(["reward"], input: input)
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 4, "\(result.stdout)")
        #expect(lines[3].contains("a fraction in [0, 1]"), "\(lines[3])")
        // measured 0 makes compute_reward divide by zero: flagged, not printed as a reward.
        #expect(lines[0].contains(#""reward":null"#) && lines[0].contains("ZeroDivisionError"), "\(lines[0])")
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(Set(object.keys) == ["line", "reward", "feasible", "constraints", "error"], "\(line)")
        }
        #expect(lines[1].contains(#""feasible":true"#) && lines[1].contains(#""metric":"latency_or_flops""#))
    }

    @Test func readsAnInputFileAndSucceedsWhenEveryLineDoes() async throws {
        let directory = try TestSupport.temporaryDirectory()
        let file = directory.appendingPathComponent("trials.jsonl")
        try #"{"accuracy": 0.5, "metrics": {"flops": 400000}, "constraints": ["flops<=0.8M:vertex-soft"]}"#
            .write(to: file, atomically: true, encoding: .utf8)
        let result = try await TestSupport.nas(["reward", "--input", file.path])
        #expect(result.status == 0)
        #expect(result.stdout.contains(#""reward":1.0,"feasible":true"#))
        let missing = try await TestSupport.nas(["reward", "--input", directory.appendingPathComponent("absent").path])
        #expect(missing.status != 0 && missing.stderr.contains("cannot open --input"))
    }

    @Test func flagModeScoresOneTrial() async throws {
        let text = try await TestSupport.nas([
            "reward", "--accuracy", "0.9", "--metric", "flops=1.6M", "--metric", "latency_ms=1.5",
            "--constraint", "flops<=0.8M:hard", "--constraint", "latency_ms<=3:soft",
        ])
        #expect(text.status == 0)
        #expect(text.stdout.contains("infeasible"))
        #expect(text.stdout.contains("flops: 1.6e+06 FLOPs vs target 800000 FLOPs  factor 0.5  feasibility +1.0000"))
        let json = try await TestSupport.nas([
            "reward", "--accuracy", "0.9", "--metric", "flops=1.6M", "--constraint", "flops<=0.8M", "--json",
        ])
        #expect(json.stdout.hasPrefix(#"{"line":1,"reward":0.45,"feasible":false"#))
        let bad = try await TestSupport.nas(["reward", "--accuracy", "0.9", "--constraint", "flops<=0"])
        #expect(bad.status != 0 && bad.stderr.contains("target must be a finite number greater than 0"))
        let badMetric = try await TestSupport.nas(["reward", "--accuracy", "0.9", "--metric", "flops"])
        #expect(badMetric.status != 0 && badMetric.stderr.contains("NAME=VALUE"))
    }

    @Test func helpDocumentsTheConstraintSyntax() async throws {
        let help = try await TestSupport.nas(["reward", "--help"])
        #expect(help.stdout.contains("[NAME=]METRIC<=TARGET[:OPTION,...]"))
        #expect(help.stdout.contains("vertex-soft"))
    }
}

@Suite struct PluginsCommandTests {
    /// The template's README, followed outside the repository.
    @Test func templateBuildsOutsideTheRepositoryAndLoads() async throws {
        let directory = try TestSupport.temporaryDirectory("my-constraint")
        let template = TestSupport.packageRoot.appendingPathComponent("plugins/template/my_constraint.c")
        try FileManager.default.copyItem(at: template, to: directory.appendingPathComponent("my_constraint.c"))
        let include = TestSupport.packageRoot.appendingPathComponent("plugins/include").path
        let build = try await TestSupport.run(
            "/usr/bin/cc", ["-shared", "-fPIC", "-I", include, "-o", "libmy_constraint.so", "my_constraint.c", "-lm"],
            currentDirectory: directory)
        try #require(build.status == 0, "\(build.stderr)")
        let library = directory.appendingPathComponent("libmy_constraint.so").path

        let check = try await TestSupport.nas(["plugins", "check", library])
        #expect(check.status == 0)
        #expect(check.stdout.contains("name:        model_size") && check.stdout.contains("measure:     yes"))

        let list = try await TestSupport.nas(["plugins", "list", "--plugin-dir", directory.path])
        #expect(list.stdout.contains("model_size") && list.stdout.contains("power") && list.stdout.contains("flops"))

        let reward = try await TestSupport.nas([
            "reward", "--plugin-dir", directory.path, "--accuracy", "0.9", "--metric", "model_size_bytes=100000",
            "--constraint", "model_size<=50k", "--json",
        ])
        // The template's smooth step: 1 / (1 + 2^4).
        #expect(reward.stdout.contains(#""factor":0.058823529411764705"#), "\(reward.stdout)\(reward.stderr)")
    }

    @Test func checkExitsTwoWithTheReason() async throws {
        let directory = try TestSupport.temporaryDirectory()
        let bogus = directory.appendingPathComponent("bogus.so")
        try "garbage".write(to: bogus, atomically: true, encoding: .utf8)
        let result = try await TestSupport.nas(["plugins", "check", bogus.path])
        #expect(result.status == 2)
        #expect(result.stderr.contains("cannot be loaded as a shared library"))
        let missing = try await TestSupport.nas(["plugins", "check", directory.appendingPathComponent("none.so").path])
        #expect(missing.status == 2 && missing.stderr.contains("no such file"))
    }

    @Test func aBrokenPluginDirectoryStopsTheCommandWithAReason() async throws {
        let directory = try TestSupport.temporaryDirectory()
        try "garbage".write(to: directory.appendingPathComponent("broken.so"), atomically: true, encoding: .utf8)
        let result = try await TestSupport.nas(["reward", "--plugin-dir", directory.path, "--accuracy", "1"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("broken.so"))
    }
}
