import Foundation
import TestSupport
import Testing

/// Help that reads well: examples on the main commands, defaults printed as values, the seed's spellings accepted.
@Suite struct HelpTests {
    @Test(arguments: [["search"], ["train"], ["worker"], ["coordinator"], ["trials", "list"]])
    func mainCommandsShowExamples(_ command: [String]) async throws {
        let help = try await TestSupport.nas(command + ["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("Examples:") || help.stdout.contains("Example:"), "\(command)")
        // Defaults are values a user could type, not Swift's description of a type.
        #expect(!help.stdout.contains("ListenAddress(") && !help.stdout.contains("Optional("), "\(help.stdout)")
    }

    @Test func defaultsAndUnitsReadAsValues() async throws {
        let search = try await TestSupport.nas(["search", "--help"])
        #expect(search.stdout.contains("127.0.0.1:0)"))
        let coordinator = try await TestSupport.nas(["coordinator", "--help"])
        #expect(coordinator.stdout.contains("--lease-seconds <SECONDS>"))
        #expect(!coordinator.stdout.contains("-ms "), "durations are in seconds everywhere")
    }

    @Test func theSeedsUnderscoreSpellingsAreAccepted() async throws {
        let trial = try TestSupport.temporaryDirectory("nas-seed-flags").appendingPathComponent("1").path
        let result = try await TestSupport.nas([
            "trainer", "--nas_params_str", #"{"decisions": [0, 0]}"#, "--job_dir", trial,
            "--target_latency_millisec", "0", "--num-epochs", "1",
        ])
        // Parsed (the target is then refused as a value, with usage status), not "unknown option".
        #expect(result.status == 64, "\(result.stderr)")
        #expect(result.stderr.contains("--target-flops-million") || result.stderr.contains("must be a finite number"))
        #expect(!result.stderr.contains("Unknown option"), "\(result.stderr)")
    }
}
