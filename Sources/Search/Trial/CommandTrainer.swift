import Constraints
import Foundation

/// A user's training program as a trial's trainer, in vertex-ai-nas's contract: the command gets
/// `--nas_params_str=<JSON>` and `--job-dir=<the trial's folder>` appended (after the pass-through flags), and
/// the environment a vertex-ai-nas trainer reads (`CLOUD_ML_TRIAL_ID`, `AIP_MODEL_DIR`,
/// `CLOUD_ML_HP_METRIC_TAG`, `CLOUD_ML_HP_METRIC_FILE`) plus the fleet's coordinator and token for a trainer that
/// asks for latency itself. It runs in a process group of its own, its output appended to the trial's
/// `trainer.log`; afterwards its metrics are read back (the hypertune file, `metrics.json`, and when asked
/// `name=value` output lines) and its model is handed to the rest of the pipeline.
public struct CommandTrainer: TrialTrainer {
    /// The command and how its results come back.
    public var spec: TrainerCommandSpec
    /// Variables the command gets besides the contract's: the coordinator, its token, the device types.
    public var environment: [String: String]
    /// Stage 2: the search job and trials this job retrains, for the seed's retrain flags.
    public var retrain: (searchJobDirectory: String, searchTrials: [Int])?
    /// Receives a line for each thing worth telling (where the output goes, which metrics came back).
    public var log: @Sendable (String) -> Void

    /// A trainer running `spec`.
    public init(
        spec: TrainerCommandSpec, environment: [String: String] = [:],
        retrain: (searchJobDirectory: String, searchTrials: [Int])? = nil, log: @escaping @Sendable (String) -> Void
    ) {
        self.spec = spec
        self.environment = environment
        self.retrain = retrain
        self.log = log
    }

    /// A command may report any metric, so constraints on metrics `nas` does not measure are checked after it ran.
    public var reportsOwnMetrics: Bool { true }

    /// Where the command's hypertune file goes: `<trial>/hypertune/output.metrics`, the seed's default's shape.
    public static func hypertunePath(_ directory: String) -> String {
        (directory as NSString).appendingPathComponent("hypertune/output.metrics")
    }

    /// The trial's model file: `spec.modelPath` under the trial's folder, unless absolute.
    public func modelPath(_ trial: TrialContext) -> String {
        spec.modelPath.hasPrefix("/")
            ? spec.modelPath : (trial.directory as NSString).appendingPathComponent(spec.modelPath)
    }

    /// The command line: `/bin/sh -c '<command> "$@"'` with the pass-through flags, `--nas_params_str` and
    /// `--job-dir` as its arguments, so that the user's quoting and shell syntax stay theirs. A simple command
    /// (`python3 train.py`) is `exec`'d, so that the trainer itself gets a SIGTERM (a pruned or cancelled trial)
    /// and has the grace period to act on it: Debian's `sh` would otherwise die at once and the rest of the group
    /// be killed with it.
    public func commandLine(_ trial: TrialContext) -> [String] {
        var arguments = spec.commandFlags
        if let retrain, spec.retrainFlags {
            arguments += [
                "--retrain_search_job_dir=\(retrain.searchJobDirectory)",
                "--retrain_search_job_trials=\(retrain.searchTrials.map(String.init).joined(separator: ","))",
            ]
        }
        arguments += ["--nas_params_str=\(trial.parameters.jsonText)", "--job-dir=\(trial.directory)"]
        let command = Self.isSimpleCommand(spec.command) ? "exec " + spec.command : spec.command
        return ["/bin/sh", "-c", command + " \"$@\"", "sh"] + arguments
    }

    /// True for a command `exec` can replace the shell with: one program and its words, no shell syntax
    /// (`;`, `&`, `|`, redirections, substitutions, a variable assignment or a shell builtin first).
    static func isSimpleCommand(_ command: String) -> Bool {
        let syntax = Set(";&|<>()`$\\\n{}!*?[]#~")
        guard !command.contains(where: { syntax.contains($0) }) else { return false }
        guard let first = command.split(separator: " ").first, !first.contains("=") else { return false }
        let builtins: Set<Substring> = [
            "cd", "exec", "export", "set", "source", ".", "eval", "time", "if", "for", "while", "until", "case",
            "trap", "ulimit", "umask", "unset", "command", "nohup", "env",
        ]
        return !builtins.contains(first)
    }

    /// Where a job's launcher keeps the user's `OPENBLAS_NUM_THREADS` (empty when unset) while the trial runner
    /// runs with one OpenBLAS thread: the runner of a trainer command does no linear algebra, and OpenBLAS's
    /// thread pool would cost each trial about 17 ms of CPU. The command gets the user's setting back.
    public static let userBLASThreadsVariable = "NAS_USER_OPENBLAS_NUM_THREADS"

    /// The runner's environment for trials of trainer-command jobs: one OpenBLAS thread, the user's setting kept.
    public static func runnerEnvironment(inherited: [String: String]) -> [String: String] {
        [userBLASThreadsVariable: inherited["OPENBLAS_NUM_THREADS"] ?? "", "OPENBLAS_NUM_THREADS": "1"]
    }

    /// The command's whole environment: the runner's (`inherited`), with the user's OpenBLAS setting restored,
    /// and the contract's variables.
    public func commandEnvironment(_ trial: TrialContext, inherited: [String: String]) -> [String: String] {
        var variables = inherited
        if let user = variables.removeValue(forKey: Self.userBLASThreadsVariable) {
            variables["OPENBLAS_NUM_THREADS"] = user.isEmpty ? nil : user
        }
        return variables.merging(commandEnvironment(trial)) { $1 }
    }

    /// The contract's variables, set on top of the runner's environment.
    public func commandEnvironment(_ trial: TrialContext) -> [String: String] {
        var variables = environment
        variables["CLOUD_ML_TRIAL_ID"] = String(trial.trialID ?? 0)
        variables["AIP_MODEL_DIR"] = (trial.directory as NSString).appendingPathComponent("saved_model")
        variables["CLOUD_ML_HP_METRIC_TAG"] = spec.metricTag
        variables["CLOUD_ML_HP_METRIC_FILE"] = Self.hypertunePath(trial.directory)
        variables["NAS_TRIAL_DIR"] = trial.directory
        variables["NAS_ACCURACY_METRIC"] = spec.accuracyMetric
        if let searchTrialID = trial.searchTrialID { variables["NAS_SEARCH_TRIAL_ID"] = String(searchTrialID) }
        if let retrain {
            variables["NAS_RETRAIN_SEARCH_JOB_DIR"] = retrain.searchJobDirectory
            variables["NAS_RETRAIN_SEARCH_JOB_TRIALS"] = retrain.searchTrials.map(String.init).joined(separator: ",")
        }
        return variables
    }

    /// Removes what an earlier run of the same trial left (metrics, the model, a measurement), so that nothing
    /// stale is read back as this run's.
    func clearEarlierResults(_ trial: TrialContext) throws {
        try FileManager.default.createDirectory(atPath: trial.directory, withIntermediateDirectories: true)
        var stale = [
            Self.hypertunePath(trial.directory),
            (trial.directory as NSString).appendingPathComponent(TrialFiles.metrics),
            (trial.directory as NSString).appendingPathComponent(TrialFiles.model),
            (trial.directory as NSString).appendingPathComponent(TrialFiles.modelLatency),
        ]
        // Only what lies in the trial's folder: an absolute --model-path elsewhere is the user's file.
        let model = URL(fileURLWithPath: modelPath(trial)).standardizedFileURL.path
        if model.hasPrefix(URL(fileURLWithPath: trial.directory).standardizedFileURL.path + "/") { stale.append(model) }
        for path in stale where FileManager.default.fileExists(atPath: path) {
            try FileManager.default.removeItem(atPath: path)
        }
    }

    /// What the command left, read back after it exited 0: its metrics, with the accuracy (and its own reward,
    /// when the job honours one) checked, and its model. `output` is what it printed, for `name=value` metrics.
    func results(_ trial: TrialContext, output: () -> [UInt8]) throws -> TrainedTrial {
        var metrics: [String: Double] = [:]
        var looked: [String] = []
        if spec.standardOutputMetrics {
            metrics.merge(try TrainerMetrics.standardOutput(output(), pattern: spec.standardOutputPattern)) { $1 }
            looked.append("name=value lines of its output")
        }
        // The trial's metrics.json is also where the runner writes the final metrics: cleared before the run,
        // so what is there now is the command's.
        let metricsFile = (trial.directory as NSString).appendingPathComponent(TrialFiles.metrics)
        if let data = FileManager.default.contents(atPath: metricsFile) {
            metrics.merge(try TrainerMetrics.metricsJSON(Array(data), source: metricsFile)) { $1 }
        }
        looked.append(metricsFile)
        let hypertune = Self.hypertunePath(trial.directory)
        if let data = FileManager.default.contents(atPath: hypertune) {
            metrics.merge(try TrainerMetrics.hypertune(Array(data), source: hypertune)) { $1 }
        }
        looked.append("\(hypertune) (CLOUD_ML_HP_METRIC_FILE)")
        if !metrics.isEmpty {
            log("the trainer reported \(metrics.keys.sorted().joined(separator: ", "))")
        }

        func missing(_ name: String, _ flag: String) -> TrialPipelineError {
            let reported = metrics.isEmpty ? "nothing" : metrics.keys.sorted().joined(separator: ", ")
            return TrialPipelineError(
                "the trainer reported no \(name) (\(flag)); it reported \(reported), looking in: \(looked.joined(separator: "; ")). Report it with NasMetricsReporter().report_metrics(...), a metrics.json object, or name=value lines with --stdout-metrics"
            )
        }
        guard let accuracy = metrics[spec.accuracyMetric] else {
            throw missing(spec.accuracyMetric, "--accuracy-metric")
        }
        metrics[MetricName.accuracy.rawValue] = accuracy
        var reward: Double?
        if spec.reportsOwnReward, let name = spec.rewardMetric {
            guard let value = metrics[name] else { throw missing(name, "--nas-target-reward-metric") }
            reward = value
        }

        let path = modelPath(trial)
        var model: [UInt8]?
        if let data = FileManager.default.contents(atPath: path) {
            model = Array(data)
            // The rest of the job (file-mode workers, stage 2, publishing) finds a trial's model in one place.
            let standard = (trial.directory as NSString).appendingPathComponent(TrialFiles.model)
            if path != standard {
                try FileManager.default.createDirectory(
                    atPath: (standard as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try data.write(to: URL(fileURLWithPath: standard), options: .atomic)
            }
        }
        return TrainedTrial(model: model, modelPath: path, metrics: metrics, reward: reward)
    }

    /// Why a model the job needs is missing, with a hint when a TensorFlow SavedModel sits where ONNX should be.
    public static func missingModelHint(_ path: String) -> String {
        let folder = (path as NSString).deletingLastPathComponent
        if FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("saved_model.pb")) {
            return
                "; \(folder) holds a TensorFlow SavedModel: convert it (python -m tf2onnx.convert --saved-model \(folder) --output \(path)), or let the helper's save_onnx do it"
        }
        return ""
    }
}

/// The last lines a command printed, for failure reports: read from `offset` (where its output began in a log it
/// shares) to the end, at most the last 4 KiB.
func outputTail(_ path: String, from offset: UInt64, lines: Int = 5) -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
    defer { try? handle.close() }
    guard let end = try? handle.seekToEnd(), end > offset else { return "" }
    try? handle.seek(toOffset: max(offset, end >= 4096 ? end - 4096 : 0))
    let text = String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    let tail = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }.suffix(lines)
    return tail.joined(separator: " | ")
}

/// What a command printed from `offset` of its log to the end.
func output(of path: String, from offset: UInt64) -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
    defer { try? handle.close() }
    try? handle.seek(toOffset: offset)
    return Array((try? handle.readToEnd()) ?? Data())
}
