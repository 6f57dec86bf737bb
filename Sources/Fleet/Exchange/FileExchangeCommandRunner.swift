import Constraints
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Measures a model by running a user's command: `CMD {model}` through `/bin/sh -c`, with `{model}` replaced
/// by the quoted path of the ONNX file (appended when absent). The command prints one JSON object of numeric
/// metrics on stdout (the last line that is an object wins, so logs before it are fine), e.g.
/// `{"latency_ms": 3.1, "memory_bytes": 123456}`. A non-zero exit, no object, or the timeout are typed errors.
public struct FileExchangeCommandRunner: ModelRunner {
    /// The command template.
    public let command: String
    /// Seconds after which the command is killed.
    public let timeout: Double

    /// Builds a runner; the default timeout is 10 minutes.
    public init(command: String, timeout: Double = 600) {
        self.command = command
        self.timeout = timeout
    }

    /// The shell command line for `path`.
    public func commandLine(modelAt path: String) -> String {
        let quoted = "'" + path.replacingOccurrences(of: "'", with: "'\\''") + "'"
        return command.contains("{model}")
            ? command.replacingOccurrences(of: "{model}", with: quoted) : command + " " + quoted
    }

    public func measure(modelAt path: String) async throws -> [String: Double] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", commandLine(modelAt: path)]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        let timedOut = Mutex(false)
        let finished: (stdout: Data, stderr: Data, status: Int32) = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let group = DispatchGroup()
                nonisolated(unsafe) var stdout = Data()
                nonisolated(unsafe) var stderr = Data()
                group.enter()
                group.enter()
                group.enter()
                // Both pipes are drained while the command runs, so a chatty command never blocks on a full pipe.
                // Dedicated threads, not the global dispatch queues: on Linux (2 cores) two reads blocked there held
                // back Swift concurrency's threads, and the lease renewals beside the measurement came seconds late.
                Thread.detachNewThread {
                    stdout = output.fileHandleForReading.readDataToEndOfFile()
                    group.leave()
                }
                Thread.detachNewThread {
                    stderr = errors.fileHandleForReading.readDataToEndOfFile()
                    group.leave()
                }
                process.terminationHandler = { _ in group.leave() }
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: ExchangeError.runnerFailed(command, "cannot start /bin/sh: \(error)"))
                    return
                }
                let pid = process.processIdentifier
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                    if process.isRunning {
                        timedOut.withLock { $0 = true }
                        kill(-pid, SIGKILL)  // Foundation starts the command in its own process group
                    }
                }
                group.notify(queue: .global()) {
                    continuation.resume(returning: (stdout, stderr, process.terminationStatus))
                }
            }
        } onCancel: {
            if process.isRunning { kill(-process.processIdentifier, SIGKILL) }
        }
        try Task.checkCancellation()
        let errorTail = String(decoding: finished.stderr.suffix(500), as: UTF8.self)
        if timedOut.withLock({ $0 }) {
            throw ExchangeError.runnerFailed(command, "it ran longer than \(timeout) s and was killed")
        }
        guard finished.status == 0 else {
            throw ExchangeError.runnerFailed(command, "it exited with status \(finished.status): \(errorTail)")
        }
        return try Self.parseMetrics(Array(finished.stdout), command: command)
    }

    /// The numeric members of the last line of `output` that is a JSON object (or of the whole output).
    static func parseMetrics(_ output: [UInt8], command: String) throws -> [String: Double] {
        let text = String(decoding: output, as: UTF8.self)
        var candidates = [text]
        candidates += text.split(separator: "\n").reversed().map(String.init)
        for candidate in candidates {
            let trimmed = candidate.trimmingCharacters(in: .whitespacesAndNewlines)
            guard trimmed.hasPrefix("{"), let json = try? JSON.parse(trimmed), case .object(let members) = json else {
                continue
            }
            var metrics = [String: Double]()
            for member in members {
                if case .number(let value) = member.value { metrics[member.key] = value }
            }
            return metrics
        }
        let start = String(text.prefix(200))
        throw ExchangeError.runnerFailed(
            command,
            "it printed no JSON object of metrics on stdout (got \(start.debugDescription)); print e.g. "
                + "{\"latency_ms\": 3.1, \"memory_bytes\": 123456}")
    }
}
