import Foundation

/// Paths and processes shared by the test targets.
public enum TestSupport {
    /// The package's root folder (the one holding Package.swift).
    public static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url = url.deletingLastPathComponent()
        }
        return url
    }()

    /// The build products folder: where the test binary, `nas` and the shipped plugins are.
    public static let productsDirectory: URL = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var url = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // An .xctest bundle keeps its binary inside; climb out of it.
        while url.path.contains(".xctest") { url = url.deletingLastPathComponent() }
        return url
    }()

    /// The built `nas` executable.
    public static var nas: URL { productsDirectory.appendingPathComponent("nas") }

    /// The path of the built `nas`, or a clear error when the build did not make it.
    public static func nasBinary() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: nas.path) else {
            throw TestSupportError("no `nas` at \(nas.path): run `swift build --build-tests` first")
        }
        return nas.path
    }

    /// The Python of the test venv: `NAS_TEST_PYTHON`, else `.venv/bin/python` in the package.
    public static var python: String {
        get throws {
            let path = ProcessInfo.processInfo.environment["NAS_TEST_PYTHON"]
                ?? packageRoot.appendingPathComponent(".venv/bin/python").path
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw TestSupportError("no Python venv at \(path): run scripts/bootstrap.sh (or set NAS_TEST_PYTHON)")
            }
            return path
        }
    }

    /// A new empty temporary folder.
    public static func temporaryDirectory(_ label: String = "nas-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// What a finished process left.
    public struct Output: Sendable {
        /// The exit status (or the signal number for a killed process).
        public var status: Int32
        /// Standard output as text.
        public var stdout: String
        /// Standard error as text.
        public var stderr: String
    }

    /// Runs a program to its end, feeding `input` to its standard input.
    @discardableResult
    public static func run(
        _ executable: String, _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil,
        currentDirectory: URL? = nil
    ) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        let stdout = Pipe()
        let stderr = Pipe()
        let stdin = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = stdin
        try process.run()
        // Read both pipes while the process runs so that neither fills up and blocks it.
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data()
        nonisolated(unsafe) var errData = Data()
        DispatchQueue.global().async(group: group) { outData = stdout.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { errData = stderr.fileHandleForReading.readDataToEndOfFile() }
        if let input { stdin.fileHandleForWriting.write(input) }
        try stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        group.wait()
        return Output(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs the built `nas` with arguments.
    @discardableResult
    public static func nas(_ arguments: [String], input: String? = nil, environment: [String: String]? = nil) throws
        -> Output
    {
        try run(nas.path, arguments, input: input.map { Data($0.utf8) }, environment: environment)
    }

    /// Compiles C source into a shared library with the system C compiler, as a plugin author would.
    public static func buildSharedLibrary(source: String, named name: String, in directory: URL) throws -> URL {
        let sourceURL = directory.appendingPathComponent("\(name).c")
        try source.write(to: sourceURL, atomically: true, encoding: .utf8)
        let output = directory.appendingPathComponent("lib\(name).so")
        let include = packageRoot.appendingPathComponent("plugins/include").path
        let result = try run("/usr/bin/cc", ["-shared", "-fPIC", "-I", include, "-o", output.path, sourceURL.path])
        guard result.status == 0 else { throw TestSupportError("cc failed for \(name): \(result.stderr)") }
        return output
    }
}

/// A failure of the test harness itself (a missing tool, a failed compile).
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
