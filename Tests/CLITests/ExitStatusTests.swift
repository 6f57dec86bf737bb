import Foundation
import TestSupport
import Testing

/// One exit-status scheme for every command (docs/cli.md): 64 with the usage text for a wrong command line, 2
/// with one `Error:` line and no usage text for an input that cannot be read, 1 for work that failed.
@Suite struct ExitStatusTests {
    static let usage: Int32 = 64
    static let badInput: Int32 = 2

    /// Every subcommand, with a flag it does not have.
    static let subcommands = [
        ["reward"], ["plugins", "list"], ["plugins", "check"], ["search"], ["train"], ["trials", "list"], ["report"],
        ["trainer"], ["flops"], ["infer"], ["measure"], ["coordinator"], ["worker"], ["workers"], ["evaluate"],
        ["predictor", "fit"], ["predictor", "eval"], ["predictor", "predict"],
    ]

    @Test(arguments: subcommands)
    func anUnknownFlagIsAUsageErrorWithTheUsageText(_ command: [String]) async throws {
        let result = try await TestSupport.nas(command + ["--no-such-flag"])
        #expect(result.status == Self.usage, "\(command): \(result.stderr)")
        #expect(result.stderr.contains("Usage:"), "\(command): \(result.stderr)")
    }

    /// A value each command's checks refuse, and the words of the reason.
    static let outOfRange: [([String], String)] = [
        (["measure", "m.onnx", "--repeats", "0"], "--repeats"), (["measure", "m.onnx", "--warmup", "-1"], "--warmup"),
        (["measure", "m.onnx", "--min-time", "-1"], "--min-time"), (["search", "--max-trials", "0"], "--max-trials"),
        (["search", "--job-name", "../x"], "--job-name"), (["train", "--resume", "j", "--max-parallel-trials", "0"], "1 or more"),
        (["trials", "list", "j", "--json", "--csv"], "--json"), (["worker", "--device-type", ""], "--device-type"),
        (["coordinator", "--max-attempts", "0"], "--max-attempts"),
        (["predictor", "eval", "--device-type", "x", "--test-fraction", "2"], "--test-fraction"),
        (["reward", "--metric", "latency_ms=1"], "--accuracy"),
        (["reward", "--accuracy", "0.9", "--metric", "latency_ms=fast"], "NAME=VALUE"),
        (["trainer", "--job-dir", "j", "--latency-repeats", "0"], "--latency-repeats"),
    ]

    /// Checked before any work, so nothing needs to exist: each is a usage error with the command's usage text.
    @Test(arguments: outOfRange)
    func anOutOfRangeValueIsAUsageErrorWithTheUsageText(_ command: [String], _ reason: String) async throws {
        let result = try await TestSupport.nas(command)
        #expect(result.status == Self.usage, "\(command): \(result.stderr)")
        #expect(result.stderr.contains(reason), "\(command): \(result.stderr)")
        #expect(result.stderr.contains("Usage: nas \(command[0])"), "\(command): \(result.stderr)")
    }

    /// Each command given an input that does not exist (or is not what it should be).
    static func badInputs(_ directory: URL) throws -> [[String]] {
        let missing = directory.appendingPathComponent("missing").path
        let garbage = directory.appendingPathComponent("garbage.onnx")
        try Data("this is not a model".utf8).write(to: garbage)
        let notAJob = try TestSupport.temporaryDirectory("nas-not-a-job").path
        return [
            ["reward", "--input", missing],
            ["plugins", "check", missing + ".so"],
            ["search", "--resume", notAJob],
            ["search", "--search-space", missing + ".json", "--root-output-dir", directory.path],
            ["search", "--data-dir", missing, "--root-output-dir", directory.path, "--job-name", "no-data"],
            ["train", "--resume", notAJob],
            ["trials", "list", notAJob],
            ["report", notAJob, "-o", directory.appendingPathComponent("r.html").path],
            ["trainer", "--nas-params-str", missing + ".json", "--job-dir", directory.appendingPathComponent("t").path],
            ["flops", garbage.path],
            ["flops", missing],
            ["infer", garbage.path, "--input", missing, "--output", missing],
            ["measure", garbage.path],
            ["evaluate", missing, "--coordinator", "http://127.0.0.1:9", "--device-type", "x"],
            ["workers", "--coordinator", "http://127.0.0.1:9", "--token-file", missing],
            ["coordinator", "--token-file", missing],
            ["predictor", "predict", garbage.path, "--device-type", "x", "--measurement-store", missing + ".sqlite"],
            ["predictor", "eval", "--device-type", "x", "--job", notAJob],
        ]
    }

    @Test func anUnreadableInputIsStatusTwoWithOneErrorLineAndNoUsageText() async throws {
        let directory = try TestSupport.temporaryDirectory("nas-exit")
        for command in try Self.badInputs(directory) {
            let result = try await TestSupport.nas(command, environment: ["NAS_FLEET_TOKEN": "t"])
            #expect(result.status == Self.badInput, "\(command): status \(result.status): \(result.stderr)")
            #expect(!result.stderr.contains("Usage:"), "\(command): \(result.stderr)")
            #expect(result.stderr.contains("Error: "), "\(command): \(result.stderr)")
        }
        // A search refused before its first trial leaves no job behind.
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("no-data").path))
    }

    @Test func versionAndHelpExitZero() async throws {
        let version = try await TestSupport.nas(["--version"])
        #expect(version.status == 0 && version.stdout.hasPrefix("0."))
        let help = try await TestSupport.nas(["help", "search"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: nas search"))
    }

    @Test func aSearchWhoseEveryTrialFailedDoesNotExitZero() async throws {
        let root = try TestSupport.temporaryDirectory("nas-all-failed")
        // A learning rate that makes every loss NaN: each trial fails with failed_with_nan_error.
        let result = try await TestSupport.nas([
            "search", "--root-output-dir", root.path, "--job-name", "nan", "--max-trials", "2", "--max-failed-trials",
            "5", "--num-epochs", "1", "--train-limit", "200", "--test-limit", "50", "--learning-rate", "1e12",
        ])
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("0 succeeded, 2 failed"), "\(result.stdout)")
    }
}
