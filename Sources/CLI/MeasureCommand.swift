import ArgumentParser
import Engine
import Foundation
import ONNX

/// `nas measure`: batch-1 latency and peak working memory of an ONNX model on this machine's native engine.
struct MeasureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "measure",
        abstract: "Measure an ONNX model's batch-1 latency and peak working memory with the native engine.",
        discussion: """
            Runs --warmup untimed inferences, then at least --repeats timed ones and for at least --min-time \
            seconds. --json prints \
            {"latency_ms" (the p50),"latency_mean_ms","latency_p90_ms","latency_p99_ms","latency_stddev_ms","latency_runs", \
            "memory_bytes"}: the names trials report.
            """
    )

    @Argument(help: ArgumentHelp("The model.", valueName: "MODEL.onnx"))
    var model: String

    @Option(help: "Untimed runs before timing.")
    var warmup = 20

    @Option(help: "Minimum number of timed runs.")
    var repeats = 200

    @Option(name: .customLong("min-time"), help: ArgumentHelp("Minimum seconds of timed runs.", valueName: "SECONDS"))
    var minTime = 0.0

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    func validate() throws {
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more; got \(warmup)") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1; got \(repeats)") }
        guard minTime >= 0, minTime.isFinite, minTime <= 3600 else {
            throw ValidationError("--min-time must be between 0 and 3600 seconds; got \(minTime)")
        }
    }

    func run() throws {
        let report: LatencyReport
        do {
            report = try measure(
                model: try readModelFile(model), warmup: warmup, repeats: repeats, minimumTime: .seconds(minTime))
        } catch let error as OnnxError {
            throw CLIError.badInput("\(model): \(error)")
        }
        if json {
            print(try jsonLine(report))
            return
        }
        func ms(_ value: Double) -> String { String(format: "%.4f ms", value) }
        print("p50 \(ms(report.p50Ms))  mean \(ms(report.meanMs))  p90 \(ms(report.p90Ms))  p99 \(ms(report.p99Ms))")
        print("stddev \(ms(report.stddevMs))  runs \(report.count)  peak memory \(report.peakMemoryBytes) bytes")
    }
}
