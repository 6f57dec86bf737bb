import Foundation
import Testing

@testable import Fleet
@testable import FleetWire

@Suite struct CommandRunnerTests {
    static func model(named name: String = "model.onnx") throws -> String {
        let folder = NSTemporaryDirectory() + "nas runner \(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data("abc".utf8))
        return path
    }

    @Test func readsOneJSONObjectOfMetricsWithTheModelPathSubstituted() async throws {
        // A path with a space and a quote must reach the command as one argument.
        let path = try Self.model(named: "it's a model.onnx")
        let runner = try CommandRunner(command: #"f={model}; test -f "$f" && printf '{"latency_ms": %d, "memory_bytes": 2048}' $(wc -c < "$f")"#)
        let metrics = try await runner.measure(modelAt: path)
        #expect(metrics == ["latency_ms": 3, "memory_bytes": 2048])
    }

    @Test func badAnswersAreClearErrors() async throws {
        let path = try Self.model()
        let cases: [(String, String)] = [
            ("echo hello # {model}", "must print one JSON object"),
            ("echo '[1, 2]' # {model}", "must print one JSON object"),
            (#"echo '{"latency_ms": "fast"}' # {model}"#, "'latency_ms' is not a number"),
            ("echo oops >&2; exit 3 # {model}", "exited with status 3"),
        ]
        for (command, expected) in cases {
            let runner = try CommandRunner(command: command)
            do {
                _ = try await runner.measure(modelAt: path)
                Issue.record("\(command) gave metrics")
            } catch let error as FleetError {
                #expect(error.description.contains(expected), "\(command): \(error)")
                #expect(!error.isRetryable)
            }
        }
    }

    @Test func aCommandOverItsTimeoutIsKilled() async throws {
        let runner = try CommandRunner(command: "sleep 30; echo '{}' # {model}", timeout: .milliseconds(200))
        do {
            _ = try await runner.measure(modelAt: try Self.model())
            Issue.record("a command past its timeout gave metrics")
        } catch let error as FleetError {
            #expect(error.description.contains("timed out"))
        }
    }

    @Test func aCommandWithoutTheModelPlaceholderIsRefused() {
        #expect(throws: FleetError.self) { try CommandRunner(command: "python measure.py") }
    }
}
