import Engine
import Foundation
import TestSupport
import Testing
import Trainer

/// End-to-end tests of `nas flops`, `nas infer` and `nas measure`: the built binary as a subprocess.
@Suite struct OnnxCommandsTests {
    static let tutorial = CNNArchitecture(layers: [
        ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6),
    ])

    /// `nas`, built beside this test binary by `swift build --build-tests`.
    static func nas() throws -> String { try TestSupport.nasBinary() }

    static func run(_ arguments: [String]) async throws -> TestSupport.Output {
        try await TestSupport.nas(arguments)
    }

    static func withTutorialModel(_ body: (URL, URL) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nas-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("model.onnx")
        let bytes = try OnnxExport.serialized(
            architecture: tutorial, weights: OnnxExport.randomWeights(for: tutorial, seed: 5))
        try Data(bytes).write(to: model)
        try await body(directory, model)
    }

    @Test func flopsPrintsTheCountAndAJSONBreakdown() async throws {
        try await Self.withTutorialModel { _, model in
            let plain = try await Self.run(["flops", model.path])
            #expect(plain.status == 0, "\(plain.stderr)")
            #expect(plain.stdout == "397548\n")
            let json = try await Self.run(["flops", model.path, "--json"])
            #expect(json.status == 0)
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            #expect(object?["flops"] as? Int == 397_548)
            let operations = object?["operations"] as? [[String: Any]]
            #expect(operations?.count == 7)
            #expect(operations?.first?["op_type"] as? String == "Conv")
            #expect(operations?.first?["flops"] as? Int == 44_688)
        }
    }

    @Test func flopsOfATruncatedFileIsAClearError() async throws {
        try await Self.withTutorialModel { directory, model in
            let truncated = directory.appendingPathComponent("truncated.onnx")
            try Data(try Data(contentsOf: model).prefix(500)).write(to: truncated)
            let result = try await Self.run(["flops", truncated.path])
            #expect(result.status != 0)
            #expect(result.stderr.contains("not a readable ONNX model"))
            let missing = try await Self.run(["flops", directory.appendingPathComponent("nope.onnx").path])
            #expect(missing.status != 0)
            #expect(missing.stderr.contains("cannot read model file"))
        }
    }
}

extension OnnxCommandsTests {
    @Test func inferWritesTheEnginesOutput() async throws {
        try await Self.withTutorialModel { directory, model in
            let input = directory.appendingPathComponent("in.bin")
            let output = directory.appendingPathComponent("out.bin")
            let pixels = (0..<784).map { Float($0 % 17) / 17 }
            try pixels.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: input)
            let result = try await Self.run(["infer", model.path, "--input", input.path, "--output", output.path])
            #expect(result.status == 0, "\(result.stderr)")
            let data = try Data(contentsOf: output)
            let probabilities = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let expected = try OnnxEngine(bytes: Array(try Data(contentsOf: model))).run(pixels)
            #expect(probabilities == expected)
            #expect(abs(probabilities.reduce(0, +) - 1) < 1e-5)
            let json = try await Self.run(["infer", model.path, "--input", input.path, "--output", output.path, "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let written = try #require(object["output"] as? [String: Any])
            #expect(written["path"] as? String == output.path && written["values"] as? Int == 10)
        }
    }

    @Test func inferWithAWrongInputSizeIsAClearError() async throws {
        try await Self.withTutorialModel { directory, model in
            let input = directory.appendingPathComponent("in.bin")
            try Data(count: 100).write(to: input)
            let result = try await Self.run([
                "infer", model.path, "--input", input.path, "--output", directory.appendingPathComponent("o").path,
            ])
            #expect(result.status != 0)
            #expect(result.stderr.contains("has 100 bytes; input 'input' of shape [1, 1, 28, 28] needs 3136 bytes"))
        }
    }

    @Test func measurePrintsTheReportAsJSON() async throws {
        try await Self.withTutorialModel { _, model in
            let result = try await Self.run([
                "measure", model.path, "--warmup", "2", "--repeats", "30", "--precision", "0", "--json",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            #expect(object?["latency_runs"] as? Int == 30)
            let preempted = try #require(object?["latency_preempted_runs"] as? Int)
            #expect(preempted >= 0 && preempted <= 30)
            #expect((object?["latency_ms"] as? Double ?? 0) > 0)
            #expect((object?["memory_bytes"] as? Int ?? 0) > 784 * 4)
            let text = try await Self.run(["measure", model.path, "--repeats", "5"])
            #expect(text.stdout.contains("p50 "))
            let bad = try await Self.run(["measure", model.path, "--repeats", "0"])
            #expect(bad.status != 0)
            #expect(bad.stderr.contains("--repeats must be at least 1"))
        }
    }

    @Test func measureProfilePrintsEachKernelsTime() async throws {
        try await Self.withTutorialModel { _, model in
            let result = try await Self.run(["measure", model.path, "--warmup", "1", "--repeats", "5", "--profile", "--json"])
            #expect(result.status == 0, "\(result.stderr)")
            let timings = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
            // Conv + Relu, Conv + Relu, Gemm, Softmax: the Relus are fused, Flatten is an alias.
            let types = timings.compactMap { ($0["node"] as? [String: Any])?["op_type"] as? String }
            #expect(types == ["Conv", "Conv", "Gemm", "Softmax"], "\(result.stdout)")
            #expect(timings.allSatisfy { ($0["latency_ms"] as? Double ?? -1) >= 0 })
            let text = try await Self.run(["measure", model.path, "--warmup", "1", "--repeats", "5", "--profile"])
            #expect(text.status == 0, "\(text.stderr)")
            #expect(text.stdout.contains("4 kernels, sum of their p50s"), "\(text.stdout)")
            #expect(text.stdout.contains("slowest kernels:") && text.stdout.contains("Conv "))
            let pinned = try await Self.run(["measure", model.path, "--repeats", "5", "--profile", "--pin"])
            #expect(pinned.status == 0 && pinned.stdout.contains("4 kernels"), "\(pinned.stderr)")
            let ratios = try await Self.run(["measure", model.path, "--profile", "--reference"])
            #expect(ratios.status == 64 && ratios.stderr.contains("use one or the other"), "\(ratios.stderr)")
        }
    }

    @Test func measureReportsThePercentileIntervalAndValidatesItsFlags() async throws {
        try await Self.withTutorialModel { _, model in
            // One sample asked for, but ±40% needs six at least: the interval of fewer covers the median < 95%.
            let result = try await Self.run([
                "measure", model.path, "--warmup", "2", "--repeats", "1", "--precision", "0.4", "--max-time", "60",
                "--min-repeat-time", "0.0005", "--json",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            let p50 = object?["latency_ms"] as? Double ?? 0
            let interval = object?["latency_p50_interval"] as? [String: Any]
            let (low, high) = (interval?["low_ms"] as? Double ?? .nan, interval?["high_ms"] as? Double ?? .nan)
            #expect((object?["latency_runs"] as? Int ?? 0) >= 6)
            #expect((object?["latency_runs_per_sample"] as? Int ?? 0) >= 1)
            #expect(low <= p50 && p50 <= high && low > 0)
            #expect((interval?["confidence"] as? Double ?? 0) >= 0.95)
            let text = try await Self.run([
                "measure", model.path, "--repeats", "20", "--max-time", "1", "--preempted", "wall-time",
            ])
            #expect(text.status == 0, "\(text.stderr)")
            #expect(text.stdout.contains("p50 ") && text.stdout.contains("% interval "))
            let referenced = try await Self.run([
                "measure", model.path, "--warmup", "2", "--repeats", "20", "--preempted", "discard", "--pin",
                "--reference", "--json",
            ])
            #expect(referenced.status == 0, "\(referenced.stderr)")
            let figures = try JSONSerialization.jsonObject(with: Data(referenced.stdout.utf8)) as? [String: Any]
            #expect((figures?["latency_reference_ratio"] as? Double ?? 0) > 0)
            #expect((figures?["latency_reference_ms"] as? Double ?? 0) > 0)
            #expect((figures?["latency_runs"] as? Int ?? 0) >= 20)
            let referencedText = try await Self.run(["measure", model.path, "--repeats", "10", "--reference"])
            #expect(referencedText.stdout.contains("times the reference workload"), "\(referencedText.stdout)")
            for (flags, message) in [
                (["--precision", "1.5"], "--precision must be a share of the p50"),
                (["--precision=-0.1"], "--precision must be a share of the p50"),
                (["--min-time", "5", "--max-time", "2"], "--max-time must be between --min-time"),
                (["--max-time", "nan"], "--max-time must be between"),
                (["--min-repeat-time", "2"], "--min-repeat-time must be between 0 and 1 second"),
                (["--preempted", "drop"], "--preempted"),
            ] {
                let bad = try await Self.run(["measure", model.path] + flags)
                #expect(bad.status == 64, "\(flags): \(bad.status)")
                #expect(bad.stderr.contains(message), "\(flags): \(bad.stderr)")
            }
        }
    }
}
