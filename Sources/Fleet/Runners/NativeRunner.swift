import Foundation
import Trainer

/// Measures models in this process with the native ONNX engine and its harness (warm-up, then repetitions):
/// how a CPU worker measures. Reports `latency_ms` (p50), `memory_bytes` (the engine's peak working memory) and the
/// harness's statistics (`mean_ms`, `p50_ms`, `p90_ms`, `p99_ms`, `stddev_ms`, `count`).
public struct NativeRunner: ModelRunner {
    /// The harness's settings.
    public var options: MeasurementOptions

    /// A runner with the harness's defaults (20 warm-up runs, 200 timed runs).
    public init(options: MeasurementOptions = MeasurementOptions()) {
        self.options = options
    }

    public func measure(modelAt path: String) async throws -> [String: Double] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FleetError.badModel("cannot read the model at \(path)")
        }
        let options = options
        // Timing runs on a thread of its own: the concurrency pool's threads stay free, and the measurement
        // does not share its core with other tasks' work.
        let report: LatencyReport = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    continuation.resume(returning: try OnnxEngine(bytes: Array(data)).measure(options))
                } catch let error as OnnxError {
                    continuation.resume(
                        throwing: error.isUnsupported
                            ? FleetError.modelNotSupported("\(error)") : FleetError.badModel("\(error)"))
                } catch {
                    continuation.resume(throwing: FleetError.badModel("\(error)"))
                }
            }
        }
        return [
            MetricKey.latency: report.p50Ms, MetricKey.memory: Double(report.peakMemoryBytes), "mean_ms": report.meanMs,
            "p50_ms": report.p50Ms, "p90_ms": report.p90Ms, "p99_ms": report.p99Ms, "stddev_ms": report.stddevMs,
            "count": Double(report.count),
        ]
    }
}
