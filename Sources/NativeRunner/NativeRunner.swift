// NativeRunner: the native ONNX engine (Sources/Engine) as a fleet `ModelRunner` (Sources/Fleet). It owns only
// the glue: reading the model file, timing it on a thread of its own and naming the metrics the way runners and the
// file exchange agree on. It depends on both so that neither depends on the other: the fleet builds without the
// engine and OpenBLAS, and `nas worker`, `nas search`'s embedded fleet and in-trainer measurement inject it.
import Constraints
import Engine
import Fleet
import FleetWire
import Foundation
import ONNX

/// Measures models in this process with the native ONNX engine and its harness (warm-up, then repetitions):
/// how a CPU worker measures. Reports `latency_ms` (p50), `memory_bytes` (the engine's peak working memory) and the
/// harness's statistics (`latency_mean_ms`, `latency_p90_ms`, `latency_p99_ms`, `latency_stddev_ms`,
/// `latency_runs`): the names trials report (`MetricName`); and, with `profileKernels`, each kernel's time as
/// `kernel_latency_ms.<node>` (`MetricName.kernelLatencyPrefix`), which the measurement store keeps for the
/// kernel-level latency predictor.
public struct NativeRunner: ModelBytesRunner {
    /// The harness's settings.
    public var options: MeasurementOptions
    /// Whether each kernel is also timed (`OnnxEngine.profile`, up to 50 runs after the whole-model runs, so the
    /// engine is warm); true by default.
    public var profileKernels: Bool

    /// A runner with the harness's defaults (20 warm-up runs, 200 timed runs, kernels timed).
    public init(options: MeasurementOptions = MeasurementOptions(), profileKernels: Bool = true) {
        self.options = options
        self.profileKernels = profileKernels
    }

    /// Loads and times the model at `path`; an operator the engine lacks is `modelNotSupported`, any other
    /// defect `badModel`, both final for the fleet.
    public func measure(modelAt path: String) async throws -> [String: Double] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FleetError.badModel("cannot read the model at \(path)")
        }
        return try await measure(model: Array(data))
    }

    /// Times the model `model` (the worker's pushed bytes, with no file in between); errors as `measure(modelAt:)`.
    public func measure(model: [UInt8]) async throws -> [String: Double] {
        let (options, profiling) = (options, profileKernels)
        // Timing runs on a thread of its own: the concurrency pool's threads stay free, and the measurement
        // does not share its core with other tasks' work.
        let (report, kernels): (LatencyReport, [KernelTiming]) = try await withCheckedThrowingContinuation {
            continuation in
            Thread.detachNewThread {
                do {
                    let engine = try OnnxEngine(bytes: model)
                    let report = try engine.measure(options)
                    let kernels =
                        profiling
                        ? try engine.profile(MeasurementOptions(warmup: 0, repeats: min(options.repeats, 50))) : []
                    continuation.resume(returning: (report, kernels))
                } catch let error as OnnxError {
                    continuation.resume(
                        throwing: error.isUnsupported
                            ? FleetError.modelNotSupported("\(error)") : FleetError.badModel("\(error)"))
                } catch {
                    continuation.resume(throwing: FleetError.badModel("\(error)"))
                }
            }
        }
        let figures: [(MetricName, Double)] = [
            (.latency, report.p50Ms), (.memory, Double(report.peakMemoryBytes)), (.latencyMean, report.meanMs),
            (.latencyP90, report.p90Ms), (.latencyP99, report.p99Ms), (.latencyStddev, report.stddevMs),
            (.latencyRuns, Double(report.count)),
        ]
        var metrics = Dictionary(uniqueKeysWithValues: figures.map { ($0.0.rawValue, $0.1) })
        for kernel in kernels { metrics[MetricName.kernelLatencyPrefix + kernel.node.output] = kernel.p50Ms }
        return metrics
    }
}
