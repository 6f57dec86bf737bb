/// Measures models on the device of this machine: how a worker turns a model into metrics.
///
/// Backends: a user's command (a device with its own runtime), a constant one (benchmarks), and the native engine
/// (in-process, `Sources/NativeRunner`), which whoever starts a worker injects: the fleet does not link the engine.
/// All return metrics by name; every runner reports at least `latency_ms` (the p50 of its repetitions) and, where it
/// can, `memory_bytes` (peak working memory of one inference).
public protocol ModelRunner: Sendable {
    /// Measures the ONNX model stored at `path`.
    func measure(modelAt path: String) async throws -> [String: Double]
}

/// A runner that measures a model from its bytes: the worker hands it the pushed bytes at once and writes its cache
/// after answering, instead of writing the file first for the runner to read back (the native engine's case).
public protocol ModelBytesRunner: ModelRunner {
    /// Measures the ONNX model `model`. The worker calls it from its event loop's thread: it must not block before
    /// its first suspension, and it measures on a thread of its own (as the native runner does), not on the loop.
    func measure(model: [UInt8]) async throws -> [String: Double]
}

/// The metric keys runners and the file exchange agree on.
public enum MetricKey {
    /// Latency in milliseconds (p50 of the repetitions).
    public static let latency = "latency_ms"
    /// Peak working memory of one inference, in bytes.
    public static let memory = "memory_bytes"
}
