import Foundation
import Testing

/// Where the tests find the package, the built `nas` binary and the Python peers.
enum TestPaths {
    /// The folder holding Package.swift, found by walking up from this file.
    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
            url.deleteLastPathComponent()
        }
        fatalError("no Package.swift above \(#filePath)")
    }()

    /// The `nas` executable built beside this test binary.
    static func nasBinary() throws -> String {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var folder = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The test bundle may be a folder (nasPackageTests.xctest) with the binary inside.
        for _ in 0..<3 {
            let candidate = folder.appendingPathComponent("nas").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            folder.deleteLastPathComponent()
        }
        throw TestFailure("the `nas` binary is not beside the test binary (\(exe)); run `swift build` first")
    }

    /// Python with the test peers: NAS_TEST_PYTHON, else the package's .venv.
    static func python() throws -> String {
        let path = ProcessInfo.processInfo.environment["NAS_TEST_PYTHON"]
            ?? packageRoot.appendingPathComponent(".venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("no Python with the test peers at \(path): run scripts/bootstrap.sh")
        }
        return path
    }
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
