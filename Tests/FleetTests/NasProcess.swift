import Foundation
import Testing

/// A `nas` subcommand running as a real process (the binary built beside the tests), killed in `deinit`.
final class NasProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var output = ""
    private let stderrPath: String
    private let out = Pipe()

    init(_ arguments: [String], token: String = TestFleet.token) throws {
        process.executableURL = URL(fileURLWithPath: try TestPaths.nasBinary())
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["NAS_FLEET_TOKEN"] = token
        process.environment = environment
        process.standardOutput = out
        stderrPath = NSTemporaryDirectory() + "nas-test-\(UUID().uuidString).stderr"
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            // At the end of the output the handler must go, or it fires for ever.
            if data.isEmpty { handle.readabilityHandler = nil }
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.output += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    deinit {
        // The dispatch source must go before the pipe's descriptor closes, or libdispatch trips over it.
        out.fileHandleForReading.readabilityHandler = nil
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: stderrPath)
    }

    var pid: pid_t { process.processIdentifier }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits for a line of standard output containing `text`; returns that line.
    func waitForLine(containing text: String, seconds: Double = 20) async throws -> String {
        let end = Date().addingTimeInterval(seconds)
        // Looks once more after the time is up: on a busy machine this task may wake long after the line came.
        while true {
            let line = lock.withLock { output.split(separator: "\n").first { $0.contains(text) } }
            if let line { return String(line) }
            if !process.isRunning || Date() >= end { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("`nas \(process.arguments?.first ?? "")` printed no line with '\(text)'; stderr: \(stderr)")
    }

    /// The URL a coordinator prints once it listens.
    func listeningURL() async throws -> String {
        let line = try await waitForLine(containing: "listening on http://")
        return String(line[line.range(of: "http://")!.lowerBound...])
    }

    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Kills the process and waits for its end on a thread of its own (not on the cooperative pool).
    func killAndWait() async {
        signal(SIGKILL)
        let process = process
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                process.waitUntilExit()
                continuation.resume()
            }.start()
        }
    }
}

/// Polls `condition` until it holds (bounded): the tests wait on states, not on durations.
func eventually(_ what: String, seconds: Double = 20, _ condition: () async throws -> Bool) async throws {
    let end = Date().addingTimeInterval(seconds)
    // Checks once more after the time is up: on a busy machine this task may wake long after the state came.
    while true {
        if (try? await condition()) == true { return }
        if Date() >= end { break }
        try await Task.sleep(for: .milliseconds(25))
    }
    throw TestFailure("never happened within \(seconds) s: \(what)")
}
