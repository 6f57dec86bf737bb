import Foundation
import TestSupport

/// Shared helpers of the ONNX, engine and trainer tests: the Python peer, temporary files, deterministic floats.
public enum OnnxTestSupport {
    /// The folder holding Package.swift.
    public static var packageRoot: URL { TestSupport.packageRoot }

    /// The Python with onnx and onnxruntime: $NAS_TEST_PYTHON, else .venv/bin/python in the package root.
    public static func python() throws -> String {
        try TestSupport.python
    }

    /// Runs a program to completion, capturing its output, on a thread of its own.
    public static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil) async throws
        -> TestSupport.Output
    {
        try await TestSupport.run(executable, arguments, input: stdin)
    }

    /// Runs a Python script with the peer and returns its standard output; a failure throws its stderr.
    public static func runPython(_ script: String, _ arguments: [String] = []) async throws -> String {
        let output = try await run(try python(), ["-c", script] + arguments)
        guard output.status == 0 else {
            throw TestSupportError("python failed (\(output.status)):\n\(output.stderr)")
        }
        return output.stdout
    }

    /// A fresh temporary directory.
    public static func temporaryDirectory() throws -> URL {
        try TestSupport.temporaryDirectory("nas-onnx")
    }

    /// Deterministic pseudo-random floats in [-1, 1).
    public static func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 2_862_933_555_777_941_757 &+ 3_037_000_493
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float((state >> 40) & 0xFF_FFFF) / Float(0x80_0000) - 1
        }
    }

    /// Writes raw little-endian floats, the form `nas infer` and the Python peers read.
    public static func write(_ floats: [Float], to url: URL) throws {
        try floats.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: url)
    }

    /// Reads raw little-endian floats.
    public static func readFloats(_ url: URL) throws -> [Float] {
        let data = try Data(contentsOf: url)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}
