import Foundation
import System

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
        _ = isolatedMeasurementStore
        guard FileManager.default.isExecutableFile(atPath: nas.path) else {
            throw TestSupportError("no `nas` at \(nas.path): run `swift build --build-tests` first")
        }
        return nas.path
    }

    /// The measurement store every `nas` a test runs writes: one temporary file per test run (set in this
    /// process's environment, which the children inherit), never the user's `~/.local/share/nas`; a
    /// `NAS_MEASUREMENT_STORE` already set is kept.
    public static let isolatedMeasurementStore: String = {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("nas-tests-measurements-\(getpid()).sqlite").path
        setenv("NAS_MEASUREMENT_STORE", path, 0)
        return ProcessInfo.processInfo.environment["NAS_MEASUREMENT_STORE"] ?? path
    }()

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
        /// The status a shell reports: the exit status, or 128 + the number of the signal that killed it.
        public var status: Int32
        /// Standard output as text.
        public var stdout: String
        /// Standard error as text.
        public var stderr: String
    }

    /// Runs a program to its end, feeding `input` to its standard input; the waiting happens on a thread of its
    /// own, never on Swift's cooperative pool (a blocked pool thread stalls every other test's tasks).
    @discardableResult
    public static func run(
        _ executable: String, _ arguments: [String], input: Data? = nil, environment: [String: String]? = nil,
        currentDirectory: URL? = nil
    ) async throws -> Output {
        await processSlots.acquire()
        do {
            let result = try await Subprocess.run(
                executable, arguments, input: input.map { Array($0) } ?? [], environment: environment ?? [:],
                workingDirectory: currentDirectory?.path)
            await processSlots.release()
            return Output(status: result.termination.shellStatus, stdout: result.outputText, stderr: result.errorText)
        } catch {
            await processSlots.release()
            throw error
        }
    }

    /// Programs run to their end by `run` at once: one per core (at least 2). Tests that wait without holding a
    /// thread all run at once, and unbounded, their trainers and searches would share the cores dozens at a time
    /// and each run past its deadlines.
    static let processSlots = Slots(max(2, ProcessInfo.processInfo.activeProcessorCount))

    /// A counting semaphore for tasks.
    actor Slots {
        private var free: Int
        private var waiters: [CheckedContinuation<Void, Never>] = []

        init(_ count: Int) { free = count }

        func acquire() async {
            if free > 0 {
                free -= 1
                return
            }
            await withCheckedContinuation { waiters.append($0) }
        }

        func release() {
            if waiters.isEmpty { free += 1 } else { waiters.removeFirst().resume() }
        }
    }

    /// Runs the built `nas` with arguments.
    @discardableResult
    public static func nas(_ arguments: [String], input: String? = nil, environment: [String: String]? = nil)
        async throws -> Output
    {
        try await run(try nasBinary(), arguments, input: input.map { Data($0.utf8) }, environment: environment)
    }

    /// Compiles C source into a shared library with the system C compiler, as a plugin author would.
    public static func buildSharedLibrary(source: String, named name: String, in directory: URL) async throws -> URL {
        let sourceURL = directory.appendingPathComponent("\(name).c")
        try source.write(to: sourceURL, atomically: true, encoding: .utf8)
        let output = directory.appendingPathComponent("lib\(name).so")
        let include = packageRoot.appendingPathComponent("plugins/include").path
        let result = try await run(
            "/usr/bin/cc", ["-shared", "-fPIC", "-I", include, "-o", output.path, sourceURL.path])
        guard result.status == 0 else { throw TestSupportError("cc failed for \(name): \(result.stderr)") }
        return output
    }
}

/// A failure of the test harness itself (a missing tool, a failed compile).
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
