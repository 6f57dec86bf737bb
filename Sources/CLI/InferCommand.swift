import ArgumentParser
import Constraints
import Engine
import Foundation
import ONNX

/// `nas infer`: one batch-1 inference of an ONNX model with the native engine, raw floats in and out.
struct InferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Run an ONNX model once with the native engine on raw little-endian float32 data.",
        discussion: """
            --input holds the model's first input for batch 1 (free dimensions taken as 1), row-major float32; \
            --output receives the first output the same way. Prints the input and output shapes.
            """
    )

    @Argument(help: ArgumentHelp("The model.", valueName: "MODEL.onnx"))
    var model: String

    @Option(help: ArgumentHelp("Raw little-endian float32 input.", valueName: "IN.bin"))
    var input: String

    @Option(help: ArgumentHelp("Where to write the first output as raw little-endian float32.", valueName: "OUT.bin"))
    var output: String

    @Flag(help: "Print what was run and written as one JSON object.")
    var json = false

    func run() throws {
        let engine: OnnxEngine
        do {
            engine = try OnnxEngine(model: try loadModel(model))
        } catch let error as OnnxError {
            throw CLIError.badInput("\(model): \(error)")
        }
        guard let data = FileManager.default.contents(atPath: input) else {
            throw CLIError.badInput("cannot read --input '\(input)': it does not exist or is not readable")
        }
        guard let first = engine.inputs.first, engine.inputs.count == 1 else {
            throw CLIError.badInput("\(model) has \(engine.inputs.count) run-time inputs; nas infer feeds exactly one")
        }
        guard data.count == first.count * 4 else {
            throw CLIError.badInput(
                "--input '\(input)' has \(data.count) bytes; input '\(first.name)' of shape \(first.shape) needs \(first.count * 4) bytes (\(first.count) little-endian float32 values)"
            )
        }
        let values = data.withUnsafeBytes { raw in
            (0..<first.count).map {
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        }
        let result = try engine.run(values)
        var bytes = Data(capacity: result.count * 4)
        for value in result { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        do {
            try bytes.write(to: URL(fileURLWithPath: output))
        } catch {
            throw CLIError("cannot write --output '\(output)': \(error.localizedDescription)")
        }
        if json {
            print(
                JSON.object([
                    ("input", .object([("name", .string(first.name)), ("shape", .array(first.shape.map { .number(Double($0)) }))])),
                    ("output", .object([
                        ("name", .string(engine.outputs[0].name)),
                        ("shape", .array(engine.outputs[0].shape.map { .number(Double($0)) })), ("path", .string(output)),
                        ("values", .number(Double(result.count))),
                    ])),
                ]).integerText)
            return
        }
        print("input \(first.name) \(first.shape) -> output \(engine.outputs[0].name) \(engine.outputs[0].shape)")
    }
}
