import Foundation
import TestSupport
import Testing

/// Where the tests find the package, the built `nas` binary and the Python peers (shared `TestSupport`).
enum TestPaths {
    /// The folder holding Package.swift.
    static var packageRoot: URL { TestSupport.packageRoot }

    /// The `nas` executable built beside this test binary.
    static func nasBinary() throws -> String { try TestSupport.nasBinary() }

    /// Python with the test peers: NAS_TEST_PYTHON, else the package's .venv.
    static func python() throws -> String { try TestSupport.python }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a program to its end and returns its status and output (`TestSupport.run`: the waiting happens on a thread
/// of its own, never on Swift's cooperative pool).
@discardableResult
func runProgram(_ path: String, _ arguments: [String], environment: [String: String]? = nil, input: String? = nil)
    async throws -> (status: Int32, stdout: String, stderr: String)
{
    let output = try await TestSupport.run(
        path, arguments, input: input.map { Data($0.utf8) }, environment: environment)
    return (output.status, output.stdout, output.stderr)
}
