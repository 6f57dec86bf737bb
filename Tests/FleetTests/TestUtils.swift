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

/// Runs a program to its end and returns its status and output. The waiting happens on a thread of its own:
/// blocking one of the few threads of Swift's cooperative pool would stall every other test's tasks.
@discardableResult
func runProgram(_ path: String, _ arguments: [String], environment: [String: String]? = nil, input: String? = nil)
    async throws -> (status: Int32, stdout: String, stderr: String)
{
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            do {
                continuation.resume(returning: try runProgramBlocking(path, arguments, environment: environment,
                                                                      input: input))
            } catch {
                continuation.resume(throwing: error)
            }
        }.start()
    }
}

private func runProgramBlocking(_ path: String, _ arguments: [String], environment: [String: String]?,
                                input: String?) throws -> (status: Int32, stdout: String, stderr: String)
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let inputPipe = Pipe()
    process.standardInput = inputPipe
    try process.run()
    if let input { inputPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try inputPipe.fileHandleForWriting.close()
    // Read both pipes while the program runs, so a full pipe cannot block it.
    let errBox = DataBox()
    let errDone = DispatchSemaphore(value: 0)
    let errHandle = err.fileHandleForReading
    DispatchQueue.global().async {
        errBox.data = errHandle.readDataToEndOfFile()
        errDone.signal()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    errDone.wait()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self),
            String(decoding: errBox.data, as: UTF8.self))
}

private final class DataBox: @unchecked Sendable {
    var data = Data()
}
