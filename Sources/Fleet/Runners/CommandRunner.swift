import Constraints
import Foundation
import FleetWire
internal import System

/// Runs the user's command for each model: `{model}` in the command becomes the model's path (shell-quoted), the
/// command runs under `/bin/sh -c`, and its standard output must be one JSON object of metrics, e.g.
/// `{"latency_ms": 1.8, "memory_bytes": 120000}`. A device with its own runtime (onnxruntime, TensorRT, a phone
/// bridge) plugs in this way.
public struct CommandRunner: ModelRunner {
    /// The command line with `{model}` where the model's path goes.
    public let command: String
    /// How long one measurement may take before its process group is killed.
    public let timeout: Duration

    /// A runner of `command`, which must contain `{model}`.
    public init(command: String, timeout: Duration = .seconds(600)) throws {
        guard command.contains("{model}") else {
            throw FleetError.invalidConfiguration(
                "the runner command '\(command)' has no {model}: write where the model's path goes, "
                    + "e.g. 'python measure.py {model}'")
        }
        self.command = command
        self.timeout = timeout
    }

    /// Runs the command on the model at `path` and parses the metrics it prints.
    public func measure(modelAt path: String) async throws -> [String: Double] {
        let line = command.replacingOccurrences(of: "{model}", with: shellQuoted(path))
        return try parseMetrics(try await run(line, timeout: timeout), command: line)
    }

    private func parseMetrics(_ output: Subprocess.Collected, command line: String) throws -> [String: Double] {
        let stderrTail = String(decoding: output.standardError.suffix(2000), as: UTF8.self)
        if output.timedOut {
            throw FleetError(.timedOut, "the runner command timed out after \(timeout) and was killed: \(line)")
        }
        guard output.termination == .exited(0) else {
            throw FleetError(
                .runnerFailed,
                "the runner command \(output.termination): \(line)\n\(stderrTail)")
        }
        return try Self.parseMetrics(output.standardOutput, command: line)
    }

    /// The metrics in a runner's standard output: the whole output, or else its last line, that is one JSON
    /// object of numbers (so that a device script may log before its answer).
    static func parseMetrics(_ stdout: [UInt8], command line: String) throws -> [String: Double] {
        let text = String(decoding: stdout, as: UTF8.self)
        let candidates = [text] + text.split(separator: "\n").reversed().map(String.init)
        guard
            let members = candidates.lazy.compactMap({ candidate -> [(key: String, value: JSON)]? in
                let trimmed = candidate.trimmingCharacters(in: .whitespacesAndNewlines)
                guard trimmed.hasPrefix("{"), case .object(let members)? = try? JSON.parse(trimmed) else { return nil }
                return members
            }).first
        else {
            throw FleetError(
                .runnerFailed,
                "the runner command must print one JSON object of metrics, e.g. {\"latency_ms\": 1.5}; "
                    + "it printed: \(text.trimmingCharacters(in: .whitespacesAndNewlines).prefix(300))")
        }
        var metrics: [String: Double] = [:]
        for member in members {
            guard case .number(let number) = member.value else {
                throw FleetError(
                    .runnerFailed,
                    "the runner command's metric '\(member.key)' is not a number: \(member.value.text) (\(line))")
            }
            metrics[member.key] = number
        }
        return metrics
    }
}

/// The shell around a runner's command (`$1`): the watcher keeps the lifeline on descriptor 3 (an asynchronous
/// list's standard input is `/dev/null`), waits for its end and kills the group; the command, started with `exec`
/// so that it keeps the group leader's pid, sees neither.
private let groupWatchedByLifeline =
    #"exec 3<&0 </dev/null; (read -r _ <&3; kill -KILL 0) >/dev/null 2>&1 & exec 3<&-; exec /bin/sh -c "$1""#

private func shellQuoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Runs `/bin/sh -c line` in its own process group, so a timeout, or the cancellation of the calling task (a
/// file worker that lost its claim), kills the command and everything it started; whatever it leaves running in
/// its group when it ends goes with it. The child inherits no descriptor of the worker's (sockets, libcurl's
/// wakeup pair): a command that outlives a killed worker must not keep the worker's connections open.
///
/// Nor does the group outlive the worker: a watcher in the group reads the worker's lifeline (standard input, of
/// which the command itself gets `/dev/null`) and kills the group once it reads end of file, i.e. once the worker
/// is gone, even by SIGKILL, which no handler of the worker's could see.
private func run(_ line: String, timeout: Duration) async throws -> Subprocess.Collected {
    try Task.checkCancellation()
    let process: Subprocess
    do {
        process = try Subprocess(
            executable: "/bin/sh", arguments: ["-c", groupWatchedByLifeline, "sh", line], standardInput: .lifeline,
            standardOutput: .pipe, standardError: .pipe, processGroup: .ownKilledWithLeader)
    } catch {
        throw FleetError(.runnerFailed, "\(error)")
    }
    let output = await withTaskCancellationHandler {
        await process.collect(timeout: timeout)
    } onCancel: {
        process.signal(SIGKILL, toGroup: true)
    }
    try Task.checkCancellation()
    return output
}
