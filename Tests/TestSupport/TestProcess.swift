import Foundation
import System

/// A program running in the background of a test (a coordinator, a worker, an emulator), its standard output and
/// error kept in files for the test to read and for failure messages; killed with SIGKILL if still running when
/// dropped. All its waits are `async` and block no thread of Swift's cooperative pool.
public final class TestProcess: Sendable {
    /// The running program.
    public let subprocess: Subprocess
    /// Its arguments, for messages.
    public let arguments: [String]
    /// The file holding its standard output (and its standard error, unless `errorPath` is set).
    public let outputPath: String
    /// The file holding its standard error, when kept apart.
    public let errorPath: String?
    private let ownsFiles: Bool

    /// Starts `executable` with `environment` over this process's (a nil value removes a variable). Its output
    /// goes to `outputPath` (a new temporary file, removed when the process is dropped, by default); standard error
    /// goes to the same file, or to a file of its own with `separateErrors`.
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String?] = [:],
        outputPath: String? = nil, separateErrors: Bool = false
    ) throws {
        var variables = Subprocess.currentEnvironment()
        for (name, value) in environment { variables[name] = value }
        let base = NSTemporaryDirectory() + "nas-test-\(UUID().uuidString)"
        self.outputPath = outputPath ?? base + ".out"
        errorPath = separateErrors ? base + ".err" : nil
        ownsFiles = outputPath == nil
        self.arguments = arguments
        subprocess = try Subprocess(
            executable: executable, arguments: arguments, environment: variables, inheritEnvironment: false,
            standardOutput: .append(self.outputPath), standardError: errorPath.map { .append($0) } ?? .standardOutput)
    }

    deinit {
        if subprocess.poll() == nil {
            subprocess.signal(SIGKILL)
            // Reaped on a thread of its own: deinit may run on the cooperative pool.
            let subprocess = subprocess
            Task.detached { _ = await subprocess.wait() }
        }
        if ownsFiles { try? FileManager.default.removeItem(atPath: outputPath) }
        if let errorPath { try? FileManager.default.removeItem(atPath: errorPath) }
    }

    /// The process id.
    public var pid: pid_t { subprocess.pid }

    /// Whether it still runs.
    public var isRunning: Bool { subprocess.poll() == nil }

    /// Its standard output so far (with its standard error, unless kept apart).
    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Its standard error so far, when kept apart; else the whole output.
    public var errors: String {
        guard let errorPath else { return output }
        return (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
    }

    /// Sends it a signal.
    public func signal(_ number: Int32) {
        subprocess.signal(number)
    }

    /// Waits for its end; returns the status a shell reports (128 + the signal's number for a killed process).
    @discardableResult
    public func wait() async -> Int32 {
        await subprocess.wait().shellStatus
    }

    /// Waits at most `seconds` for its end, then kills it; returns the status a shell reports, and whether it
    /// ended by itself.
    public func wait(seconds: Double) async -> (status: Int32, ended: Bool) {
        if let termination = await subprocess.wait(timeout: .milliseconds(Int(seconds * 1000))) {
            return (termination.shellStatus, true)
        }
        return (await killAndWait(), false)
    }

    /// Sends signal `number` as soon as `condition` holds; false if it did not hold within `seconds`.
    ///
    /// The condition is polled every 20 ms on a thread of its own, which also sends the signal: a test that waits
    /// for a moment (a trial running, a worker busy) must not act late because CPU-bound tests hold the few
    /// threads of Swift's cooperative pool that its task would resume on.
    public func signal(_ number: Int32, seconds: Double = 120, when condition: @escaping @Sendable () -> Bool)
        async -> Bool
    {
        let subprocess = subprocess
        return await withCheckedContinuation { continuation in
            Thread {
                let end = Date().addingTimeInterval(seconds)
                while !condition() {
                    guard Date() < end else { return continuation.resume(returning: condition()) }
                    usleep(20_000)
                }
                subprocess.signal(number)
                continuation.resume(returning: true)
            }.start()
        }
    }

    /// Kills it (SIGKILL) and waits for its end.
    @discardableResult
    public func killAndWait() async -> Int32 {
        subprocess.signal(SIGKILL)
        return await wait()
    }

    /// Waits for a line of standard output containing `text`; returns that line.
    public func waitForLine(containing text: String, seconds: Double = 20) async throws -> String {
        var found: String?
        do {
            try await TestSupport.eventually("a line with '\(text)'", seconds: seconds) {
                found = output.split(separator: "\n").first { $0.contains(text) }.map(String.init)
                return found != nil || !isRunning
            }
        } catch {}
        // Looks once more: the line may have come with the end.
        found = found ?? output.split(separator: "\n").first { $0.contains(text) }.map(String.init)
        guard let found else {
            throw TestSupportError(
                "`\(arguments.prefix(2).joined(separator: " "))` printed no line with '\(text)'; output: \(output)"
                    + (errorPath == nil ? "" : "; stderr: \(errors)"))
        }
        return found
    }
}

extension TestSupport {
    /// Polls `condition` until it holds (bounded): the tests wait on states, not on durations. Checks once more
    /// after the time is up: on a busy machine this task may wake long after the state came.
    public static func eventually(
        _ what: String, seconds: Double = 20, _ condition: () async throws -> Bool
    ) async throws {
        let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while true {
            if (try? await condition()) == true { return }
            if ContinuousClock.now >= end { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        if (try? await condition()) == true { return }
        throw TestSupportError("never happened within \(seconds) s: \(what)")
    }

    /// Starts the built `nas` in the background.
    public static func startNas(
        _ arguments: [String], environment: [String: String?] = [:], outputPath: String? = nil,
        separateErrors: Bool = false
    ) throws -> TestProcess {
        try TestProcess(
            try nasBinary(), arguments, environment: environment, outputPath: outputPath,
            separateErrors: separateErrors)
    }
}
