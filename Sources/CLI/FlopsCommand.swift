import ArgumentParser
import ONNX

/// `nas flops`: the FLOPs of one inference of an ONNX model, by TensorFlow's profiler convention.
struct FlopsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flops",
        abstract: "Count the FLOPs of an ONNX model (batch 1), as TensorFlow's profiler and vertex-ai-nas count them.",
        discussion: """
            2 per multiply-add in Conv, MatMul and Gemm, 1 per element for biases and Add/Sub/Mul/Div, 5 per \
            element for Softmax, window size per output for pools, 0 for activations and data movement. Works on \
            files other exporters wrote (tf2onnx, torch.onnx): shapes are inferred over the graph. Prints the \
            count; --json prints {"flops":N,"operations":[{"node":..,"op_type":..,"flops":..}]}.
            """
    )

    @Argument(help: ArgumentHelp("The model.", valueName: "MODEL.onnx"))
    var model: String

    @Flag(help: "Print JSON with a per-node breakdown.")
    var json = false

    private struct Output: Encodable {
        var flops: Int
        var operations: [FlopsReport.Entry]
    }

    func run() throws {
        let report: FlopsReport
        do {
            report = try OnnxFlops.count(try loadModel(model))
        } catch let error as OnnxError {
            throw CLIError.badInput("\(model): \(error)")
        }
        if json {
            print(try jsonLine(Output(flops: report.total, operations: report.operations)))
        } else {
            print(report.total)
        }
    }
}
