import Constraints
import Foundation
import Trainer

/// How a job's trial becomes a command line of the trial runner (`nas trainer`), in the seed trainer's terms:
/// `--job-dir` (the trial's folder), `--nas-params-str` (its architecture) or, for stage 2, the search job and
/// trials it retrains, the job's constraints and device types, and the flags the job passes through.
public struct TrialCommand: Sendable {
    /// The `nas` executable.
    public var executable: String
    /// Flags appended to every trial's command (the fleet's coordinator, the transport...).
    public var extraArguments: [String]
    /// Variables added to every trial's environment (the fleet's token).
    public var environment: [String: String]

    /// A trial command of `executable`.
    public init(executable: String, extraArguments: [String] = [], environment: [String: String] = [:]) {
        self.executable = executable
        self.extraArguments = extraArguments
        self.environment = environment
    }

    /// The path of the running executable: trials run the same `nas`.
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// The run of `trial` of the job `config`, in `directory`.
    public func run(for trial: TrialRecord, in directory: String, config: JobConfig) -> TrialRun {
        var arguments = ["trainer", "--job-dir", directory, "--trial-id", String(trial.id), "--seed", String(config.seed)]
        if let search = config.searchJobDirectory {
            arguments += [
                "--retrain-search-job-dir", search, "--retrain-search-job-trials",
                config.searchTrials.map(String.init).joined(separator: ","),
            ]
        } else {
            arguments += ["--nas-params-str", (directory as NSString).appendingPathComponent(TrialParameters.fileName)]
        }
        for spec in config.constraints { arguments += ["--constraint", spec] }
        for type in config.targetDeviceTypes { arguments += ["--target-device-type", type] }
        var environment = self.environment
        if config.trainerCommand != nil {
            environment.merge(CommandTrainer.runnerEnvironment(inherited: ProcessInfo.processInfo.environment)) { $1 }
        }
        return TrialRun(
            trialID: trial.id, directory: directory,
            command: [executable] + arguments + config.trainerArguments + (config.trainerCommand?.arguments ?? [])
                + extraArguments, environment: environment,
            logPath: (directory as NSString).appendingPathComponent(TrialFiles.log))
    }
}
