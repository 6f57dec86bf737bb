import Foundation
import TestSupport
import Testing

/// A `nas` subcommand running as a real process (the binary built beside the tests) with the fleet's test token,
/// killed when dropped.
final class NasProcess: Sendable {
    let process: TestProcess

    init(_ arguments: [String], token: String = TestFleet.token) throws {
        process = try TestSupport.startNas(arguments, environment: ["NAS_FLEET_TOKEN": token], separateErrors: true)
    }

    var pid: pid_t { process.pid }

    var stderr: String { process.errors }

    /// Waits for a line of standard output containing `text`; returns that line.
    func waitForLine(containing text: String, seconds: Double = 20) async throws -> String {
        try await process.waitForLine(containing: text, seconds: seconds)
    }

    /// The URL a coordinator prints once it listens.
    func listeningURL() async throws -> String {
        let line = try await waitForLine(containing: "listening on http://")
        return String(line[line.range(of: "http://")!.lowerBound...])
    }

    func signal(_ number: Int32) {
        process.signal(number)
    }

    /// Kills the process and waits for its end.
    func killAndWait() async {
        await process.killAndWait()
    }
}

/// Polls `condition` until it holds (bounded): the tests wait on states, not on durations.
func eventually(_ what: String, seconds: Double = 20, _ condition: () async throws -> Bool) async throws {
    try await TestSupport.eventually(what, seconds: seconds, condition)
}
