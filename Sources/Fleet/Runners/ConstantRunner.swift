/// A runner that measures nothing and answers the same metrics every time: for tests, and for benchmarks of the
/// fleet itself, where the device's time must not count.
public struct ConstantRunner: ModelRunner {
    /// The metrics every measurement returns.
    public let metrics: [String: Double]

    /// A runner answering `metrics` (by default 1 ms and 1 KiB).
    public init(metrics: [String: Double] = [MetricKey.latency: 1, MetricKey.memory: 1024]) {
        self.metrics = metrics
    }

    /// The constant metrics; the model is not read.
    public func measure(modelAt path: String) async throws -> [String: Double] {
        metrics
    }
}

/// A runner that needs no waiting: the worker calls it on its server's loop, without a task per run.
protocol ImmediateModelRunner: ModelRunner {
    func measureAtOnce(modelAt path: String) -> [String: Double]
}

extension ConstantRunner: ImmediateModelRunner {
    func measureAtOnce(modelAt path: String) -> [String: Double] { metrics }
}
