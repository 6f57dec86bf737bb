import Constraints
import Foundation

/// A user's training program as a job records it: the command, the flags passed through to it, and how its
/// metrics and model come back. Stored in the job's configuration, handed to each trial runner as flags.
public struct TrainerCommandSpec: Codable, Hashable, Sendable {
    /// The command, run by `/bin/sh -c` in the search's working directory; the contract's flags are appended.
    public var command: String
    /// Flags passed through to it, the seed's `--search_docker_flags`: each `name=value` becomes `--name=value`.
    public var flags: [String]
    /// The metric holding the accuracy the reward multiplies.
    public var accuracyMetric: String
    /// The metric the trainer reports as its own reward (the seed's `--nas_target_reward_metric`); when it is
    /// another metric than the accuracy, it is the trial's `nas_reward` and `nas`'s own is `computed_reward`.
    public var rewardMetric: String?
    /// Where the trainer leaves its ONNX model, relative to the trial's folder unless absolute.
    public var modelPath: String
    /// Seconds the command may run before it is stopped and the trial fails; nil for no limit.
    public var maxTrialSeconds: Double?
    /// Whether `name=value` lines of the command's output are metrics too (Katib's StdOut collector).
    public var standardOutputMetrics: Bool
    /// The regular expression finding them (group 1 the name, group 2 the value); nil for Katib's default.
    public var standardOutputPattern: String?
    /// Stage 2: whether the command also gets the seed's `--retrain_search_job_dir` and
    /// `--retrain_search_job_trials` flags (it always gets `--nas_params_str`).
    public var retrainFlags: Bool

    /// The default model path, vertex-ai-nas's `saved_model` folder.
    public static let defaultModelPath = "saved_model/model.onnx"

    /// A trainer command.
    public init(
        command: String, flags: [String] = [], accuracyMetric: String = MetricName.accuracy.rawValue,
        rewardMetric: String? = nil, modelPath: String = defaultModelPath, maxTrialSeconds: Double? = nil,
        standardOutputMetrics: Bool = false, standardOutputPattern: String? = nil, retrainFlags: Bool = false
    ) {
        self.command = command
        self.flags = flags
        self.accuracyMetric = accuracyMetric
        self.rewardMetric = rewardMetric
        self.modelPath = modelPath
        self.maxTrialSeconds = maxTrialSeconds
        self.standardOutputMetrics = standardOutputMetrics
        self.standardOutputPattern = standardOutputPattern
        self.retrainFlags = retrainFlags
    }

    /// The tag the trainer reports its objective under (`CLOUD_ML_HP_METRIC_TAG`): the reward metric when it
    /// has one, else the accuracy metric.
    public var metricTag: String { rewardMetric ?? accuracyMetric }

    /// True when the trainer's own reward is the trial's.
    public var reportsOwnReward: Bool { rewardMetric != nil && rewardMetric != accuracyMetric }

    /// The pass-through flags as the command gets them.
    public var commandFlags: [String] {
        flags.map { "--" + $0 }
    }

    /// Refuses what cannot work, before any trial runs; each error says what to change.
    public func validate() throws {
        guard !command.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw TrialPipelineError("--trainer-command is empty; give the command that trains one trial")
        }
        for flag in flags {
            guard let equals = flag.firstIndex(of: "="), equals != flag.startIndex, !flag.hasPrefix("-") else {
                throw TrialPipelineError(
                    "trainer flag '\(flag)' must read name=value, as in the seed's --search_docker_flags num_epochs=2 (other flags go in --trainer-command)"
                )
            }
        }
        for (flag, name) in [
            ("--accuracy-metric", accuracyMetric), ("--nas-target-reward-metric", rewardMetric ?? "x"),
        ]
        where name.isEmpty || name.contains(where: { $0.isWhitespace }) {
            throw TrialPipelineError("\(flag) '\(name)' must be a metric name without spaces")
        }
        if let maxTrialSeconds, !(maxTrialSeconds > 0 && maxTrialSeconds.isFinite) {
            throw TrialPipelineError("--max-trial-seconds is \(maxTrialSeconds); it must be a number of seconds > 0")
        }
        if modelPath.isEmpty { throw TrialPipelineError("--model-path is empty") }
        if let standardOutputPattern { _ = try TrainerMetrics.expression(standardOutputPattern) }
    }

    /// The spec as `nas trainer` flags.
    public var arguments: [String] {
        var arguments = ["--trainer-command", command, "--accuracy-metric", accuracyMetric, "--model-path", modelPath]
        if !flags.isEmpty { arguments += ["--trainer-flags"] + flags }
        if let rewardMetric { arguments += ["--nas-target-reward-metric", rewardMetric] }
        if let maxTrialSeconds { arguments += ["--max-trial-seconds", String(maxTrialSeconds)] }
        if standardOutputMetrics { arguments.append("--stdout-metrics") }
        if let standardOutputPattern { arguments += ["--stdout-metrics-pattern", standardOutputPattern] }
        if retrainFlags { arguments.append("--retrain-flags") }
        return arguments
    }
}
