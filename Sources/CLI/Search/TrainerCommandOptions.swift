import ArgumentParser
import Constraints
import Search

/// The flags of a user's own trainer (`--trainer-command`), shared by `nas search`, `nas train` and
/// `nas trainer`.
struct TrainerCommandOptions: ParsableArguments {
    @Option(
        name: .customLong("trainer-command"),
        help: ArgumentHelp(
            "Your own trainer, run by /bin/sh once per trial with --nas_params_str=JSON and --job-dir=TRIAL_DIR appended (and CLOUD_ML_TRIAL_ID, AIP_MODEL_DIR, CLOUD_ML_HP_METRIC_TAG, CLOUD_ML_HP_METRIC_FILE set); it reports metrics through the hypertune file or metrics.json and leaves saved_model/model.onnx. Without it, the built-in CNN trainer runs.",
            valueName: "COMMAND"))
    var command: String?

    @Option(
        name: [.customLong("trainer-flags"), .customLong("search-docker-flags"), .customLong("train-docker-flags")],
        parsing: .upToNextOption,
        help: ArgumentHelp(
            "Flags passed through to the trainer command, as the seed's --search_docker_flags: each name=value becomes --name=value.",
            valueName: "NAME=VALUE ..."))
    var flags: [String] = []

    @Option(
        name: .customLong("accuracy-metric"),
        help: ArgumentHelp(
            "The metric of the trainer command holding the accuracy the reward multiplies (default: top_1_accuracy).",
            valueName: "NAME"))
    var accuracyMetric: String?

    @Option(
        name: .customLong("nas-target-reward-metric"),
        help: ArgumentHelp(
            "The metric the trainer command reports as its own reward (the seed's flag, e.g. nas_reward): it becomes the trial's nas_reward, and the reward nas computes from accuracy and constraints is kept as computed_reward.",
            valueName: "NAME"))
    var rewardMetric: String?

    @Option(
        name: .customLong("model-path"),
        help: ArgumentHelp(
            "Where the trainer command leaves its ONNX model, relative to the trial's folder (default: saved_model/model.onnx).",
            valueName: "PATH"))
    var modelPath: String?

    @Option(
        name: .customLong("max-trial-seconds"),
        help: "Seconds a trainer command may run; past them it is stopped and the trial fails.")
    var maxTrialSeconds: Double?

    @Flag(
        name: .customLong("stdout-metrics"),
        help: "Also read metrics from name=value lines of the trainer command's output (Katib's StdOut collector).")
    var standardOutputMetrics = false

    @Option(
        name: .customLong("stdout-metrics-pattern"),
        help: ArgumentHelp(
            "The regular expression finding them: group 1 the name, group 2 the value (default: Katib's).",
            valueName: "REGEX"))
    var standardOutputPattern: String?

    @Flag(
        name: .customLong("retrain-flags"),
        help:
            "Stage 2: also pass the seed's --retrain_search_job_dir and --retrain_search_job_trials to the trainer command."
    )
    var retrainFlags = false

    /// True when a flag that only a trainer command reads was given.
    private var givesCommandSettings: Bool {
        !flags.isEmpty || accuracyMetric != nil || rewardMetric != nil || modelPath != nil || maxTrialSeconds != nil
            || standardOutputMetrics || standardOutputPattern != nil || retrainFlags
    }

    /// The trainer command these flags describe over `base` (a search job's, for stage 2): nil for the built-in
    /// trainer. Refuses trainer-command flags without a command, and anything the spec refuses.
    func spec(over base: TrainerCommandSpec? = nil) throws -> TrainerCommandSpec? {
        guard let command = command ?? base?.command else {
            if givesCommandSettings {
                throw ValidationError(
                    "--trainer-flags, --accuracy-metric, --nas-target-reward-metric, --model-path, --max-trial-seconds, --stdout-metrics and --retrain-flags go with --trainer-command"
                )
            }
            return nil
        }
        var spec = base ?? TrainerCommandSpec(command: command)
        spec.command = command
        if !flags.isEmpty { spec.flags = flags }
        if let accuracyMetric { spec.accuracyMetric = accuracyMetric }
        if let rewardMetric { spec.rewardMetric = rewardMetric }
        if let modelPath { spec.modelPath = modelPath }
        if let maxTrialSeconds { spec.maxTrialSeconds = maxTrialSeconds }
        if standardOutputMetrics { spec.standardOutputMetrics = true }
        if let standardOutputPattern {
            spec.standardOutputPattern = standardOutputPattern
            spec.standardOutputMetrics = true
        }
        if retrainFlags { spec.retrainFlags = true }
        do {
            try spec.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return spec
    }
}
