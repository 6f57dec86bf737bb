/// The name of a metric a trial reports, as it appears in `metrics.json`, the job store, constraints and tables.
///
/// One vocabulary instead of string literals spread over the trainer, the search loop, the fleet and the
/// tables. Device metrics are measured per device type: with one target device type they keep their plain
/// names (`latency_ms`), with several each is qualified by its type (`latency_ms.arm-a76`), one constraint each.
public struct MetricName: RawRepresentable, Hashable, Sendable, Comparable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    /// The name as written in files and constraint specs.
    public let rawValue: String

    /// A metric by name.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// A metric by name.
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// A metric by name.
    public init(stringLiteral value: String) { rawValue = value }

    public var description: String { rawValue }

    public static func < (lhs: MetricName, rhs: MetricName) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Test accuracy in [0, 1]: what the reward multiplies (vertex-ai-nas's default metric tag).
    public static let accuracy: MetricName = "top_1_accuracy"
    /// The reward: accuracy times one factor per constraint.
    public static let reward: MetricName = "nas_reward"
    /// The reward `nas` computed from accuracy and constraints, kept beside `nas_reward` when a trainer
    /// command reported its own reward and the job honours it (`--nas-target-reward-metric`).
    public static let computedReward: MetricName = "computed_reward"
    /// FLOPs under TensorFlow's profiler convention (2 per multiply-add).
    public static let flops: MetricName = "flops"
    /// FLOPs in millions, as the seed's `--target-flops-million` reads them.
    public static let flopsMillion: MetricName = "flops_million"
    /// Stage 2: the search trial a retrained trial came from.
    public static let searchTrialID: MetricName = "nas_trial_id"
    /// Seconds the training took.
    public static let trainSeconds: MetricName = "train_seconds"
    /// Training throughput.
    public static let imagesPerSecond: MetricName = "images_per_second"
    /// The last epoch's mean training loss.
    public static let finalLoss: MetricName = "final_loss"

    /// Latency on a device, milliseconds: the p50 of the measured repetitions.
    public static let latency: MetricName = "latency_ms"
    /// Mean latency, milliseconds.
    public static let latencyMean: MetricName = "latency_mean_ms"
    /// 90th-percentile latency, milliseconds.
    public static let latencyP90: MetricName = "latency_p90_ms"
    /// 99th-percentile latency, milliseconds.
    public static let latencyP99: MetricName = "latency_p99_ms"
    /// Standard deviation of the latency, milliseconds.
    public static let latencyStddev: MetricName = "latency_stddev_ms"
    /// How many timed runs the latency statistics come from.
    public static let latencyRuns: MetricName = "latency_runs"
    /// Peak working memory of one inference on a device, bytes.
    public static let memory: MetricName = "memory_bytes"

    /// The prefix of the per-kernel times a native runner reports beside its figures, one metric per kernel:
    /// `kernel_latency_ms.<first output of the node the kernel computes>`, milliseconds (the engine's profile).
    /// They travel with the figures (fleet, file exchange) and are kept apart from the trial's metrics.
    public static let kernelLatencyPrefix = "kernel_latency_ms."

    /// The metrics a trial reports per device type, in this order: p50, mean, p90, p99 latency, peak memory.
    public static let deviceMetrics: [MetricName] = [.latency, .latencyMean, .latencyP90, .latencyP99, .memory]

    /// This metric of one device type: the plain name when the job has one type, `NAME.TYPE` when it has several.
    public func on(deviceType: String, qualified: Bool) -> MetricName {
        qualified ? MetricName(rawValue + "." + deviceType) : self
    }

    /// The device metrics a trial reports for each of `deviceTypes`.
    public static func deviceMetrics(of deviceTypes: [String]) -> [MetricName] {
        deviceTypes.flatMap { type in deviceMetrics.map { $0.on(deviceType: type, qualified: deviceTypes.count > 1) } }
    }

    /// True for a device metric, plain or qualified by a device type.
    public var isDeviceMetric: Bool {
        Self.deviceMetrics.contains { rawValue == $0.rawValue || rawValue.hasPrefix($0.rawValue + ".") }
    }
}
