import Constraints
import Foundation
internal import CNghttp2

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
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let output = try await runWithTimeout(line, seconds: seconds)
        return try parseMetrics(output, command: line)
    }

    private func parseMetrics(_ output: ProcessOutput, command line: String) throws -> [String: Double] {
        let stderrTail = String(decoding: output.stderr.suffix(2000), as: UTF8.self)
        if output.timedOut {
            throw FleetError(.timedOut, "the runner command timed out after \(timeout) and was killed: \(line)")
        }
        guard output.status == 0 else {
            throw FleetError(.runnerFailed,
                             "the runner command exited with status \(output.status): \(line)\n\(stderrTail)")
        }
        return try Self.parseMetrics(output.stdout, command: line)
    }

    /// The metrics in a runner's standard output: the whole output, or else its last line, that is one JSON
    /// object of numbers (so that a device script may log before its answer).
    static func parseMetrics(_ stdout: [UInt8], command line: String) throws -> [String: Double] {
        let text = String(decoding: stdout, as: UTF8.self)
        let candidates = [text] + text.split(separator: "\n").reversed().map(String.init)
        guard let members = candidates.lazy.compactMap({ candidate -> [(key: String, value: JSON)]? in
            let trimmed = candidate.trimmingCharacters(in: .whitespacesAndNewlines)
            guard trimmed.hasPrefix("{"), case .object(let members)? = try? JSON.parse(trimmed) else { return nil }
            return members
        }).first else {
            throw FleetError(.runnerFailed,
                             "the runner command must print one JSON object of metrics, e.g. {\"latency_ms\": 1.5}; "
                                 + "it printed: \(text.trimmingCharacters(in: .whitespacesAndNewlines).prefix(300))")
        }
        var metrics: [String: Double] = [:]
        for member in members {
            guard case .number(let number) = member.value else {
                throw FleetError(.runnerFailed,
                                 "the runner command's metric '\(member.key)' is not a number: \(member.value.text) (\(line))")
            }
            metrics[member.key] = number
        }
        return metrics
    }
}

private func shellQuoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

private struct ProcessOutput {
    var status: Int32
    var stdout: [UInt8]
    var stderr: [UInt8]
    var timedOut: Bool
}

/// Runs `/bin/sh -c line` in its own process group, so a timeout, or the cancellation of the calling task (a
/// file worker that lost its claim), kills the command and everything it started.
private func runWithTimeout(_ line: String, seconds: Double) async throws -> ProcessOutput {
    let group = CommandGroup()
    let output: ProcessOutput = try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                do {
                    continuation.resume(returning: try spawnAndWait(line, seconds: seconds, group: group))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "nas-command-runner"
            thread.start()
        }
    } onCancel: {
        group.kill()
    }
    try Task.checkCancellation()
    return output
}

/// The process group of a running command, killed at most once: by a cancellation before or after the spawn.
private final class CommandGroup: @unchecked Sendable {
    private let lock = NSLock()
    private var pid: pid_t = 0
    private var killed = false

    /// Records the spawned command; kills it at once when a cancellation came first.
    func started(_ pid: pid_t) {
        let killNow = lock.withLock {
            self.pid = pid
            return killed
        }
        if killNow { Glibc.kill(-pid, SIGKILL) }
    }

    func kill() {
        let pid = lock.withLock {
            killed = true
            return self.pid
        }
        if pid > 0 { Glibc.kill(-pid, SIGKILL) }
    }
}

private func spawnAndWait(_ line: String, seconds: Double, group: CommandGroup) throws -> ProcessOutput {
    var outPipe: [Int32] = [0, 0]
    var errPipe: [Int32] = [0, 0]
    guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw errnoError("pipe") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    // Nothing else of the worker's (sockets, libcurl's wakeup pair) leaks into the command: a command that
    // outlives a killed worker must not keep the worker's connections open.
    nas_spawn_close_from(&actions, 3)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
    posix_spawnattr_setpgroup(&attributes, 0)
    var pid: pid_t = 0
    let arguments = ["/bin/sh", "-c", line]
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let status = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, environ)
    close(outPipe[1])
    close(errPipe[1])
    guard status == 0 else {
        close(outPipe[0])
        close(errPipe[0])
        throw FleetError(.runnerFailed, "cannot start /bin/sh: \(String(cString: strerror(status)))")
    }
    group.started(pid)
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    var open = [outPipe[0], errPipe[0]]
    var timedOut = false
    let end = Date().addingTimeInterval(seconds)
    var buffer = [UInt8](repeating: 0, count: 65536)
    while !open.isEmpty {
        let remaining = end.timeIntervalSinceNow
        if remaining <= 0 {
            timedOut = true
            kill(-pid, SIGKILL)
            break
        }
        var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let ready = poll(&fds, nfds_t(fds.count), Int32(min(remaining, 1) * 1000) + 1)
        if ready < 0 && errno != EINTR { break }
        for entry in fds where entry.revents != 0 {
            let count = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
            if count > 0 {
                if entry.fd == outPipe[0] {
                    stdout.append(contentsOf: buffer[0..<count])
                } else {
                    stderr.append(contentsOf: buffer[0..<count])
                }
            } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                open.removeAll { $0 == entry.fd }
            }
        }
    }
    close(outPipe[0])
    close(errPipe[0])
    var waitStatus: Int32 = 0
    while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}
    // Whatever the command left running in its group goes with it.
    kill(-pid, SIGKILL)
    let exited = waitStatus & 0x7f == 0
    let code = exited ? (waitStatus >> 8) & 0xff : 128 + (waitStatus & 0x7f)
    return ProcessOutput(status: code, stdout: stdout, stderr: stderr, timedOut: timedOut)
}
