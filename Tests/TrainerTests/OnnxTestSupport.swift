import Foundation
import TestSupport
import Testing

/// Shared helpers of the ONNX tests: the package root, the Python peer, subprocesses, temporary files.
enum OnnxTestSupport {
    /// The folder holding Package.swift.
    static var packageRoot: URL { TestSupport.packageRoot }

    /// The Python with onnx and onnxruntime: $NAS_TEST_PYTHON, else .venv/bin/python in the package root.
    static func python() throws -> String {
        do {
            return try TestSupport.python
        } catch {
            Issue.record("\(error)")
            throw CancellationError()
        }
    }

    /// Runs a program to completion, capturing its output, on a thread of its own.
    static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil) async throws
        -> TestSupport.Output
    {
        try await TestSupport.run(executable, arguments, input: stdin)
    }

    /// Runs a Python script with the peer and returns its standard output; records its stderr on failure.
    static func runPython(_ script: String, _ arguments: [String] = []) async throws -> String {
        let output = try await run(try python(), ["-c", script] + arguments)
        if output.status != 0 {
            Issue.record("python failed (\(output.status)):\n\(output.stderr)")
            throw CancellationError()
        }
        return output.stdout
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("nas-onnx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Deterministic pseudo-random floats in [-1, 1).
    static func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 2_862_933_555_777_941_757 &+ 3_037_000_493
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float((state >> 40) & 0xFF_FFFF) / Float(0x80_0000) - 1
        }
    }

    static func write(_ floats: [Float], to url: URL) throws {
        try floats.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: url)
    }

    static func readFloats(_ url: URL) throws -> [Float] {
        let data = try Data(contentsOf: url)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}
