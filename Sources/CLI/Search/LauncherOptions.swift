import ArgumentParser
import Foundation
import Search

/// Where a job's trials run: local processes, or Slurm batch jobs with the resources these flags ask for.
struct LauncherOptions: ParsableArguments {
    /// The launchers a job can use.
    enum Kind: String, CaseIterable, ExpressibleByArgument {
        case local, slurm
    }

    @Option(help: "Where trials run: local processes, or slurm batch jobs (sbatch; see docs/slurm.md).")
    var launcher: Kind = .local

    @Option(name: .customLong("slurm-partition"), help: ArgumentHelp("Slurm: the partition of the trials' jobs.", valueName: "NAME"))
    var partition: String?

    @Option(name: .customLong("slurm-time"), help: ArgumentHelp("Slurm: each trial's time limit (sbatch --time).", valueName: "TIME"))
    var time: String?

    @Option(name: .customLong("slurm-cpus-per-task"), help: ArgumentHelp("Slurm: CPUs for each trial.", valueName: "N"))
    var cpusPerTask: Int?

    @Option(name: .customLong("slurm-mem"), help: ArgumentHelp("Slurm: memory for each trial (sbatch --mem, e.g. 4G).", valueName: "SIZE"))
    var memory: String?

    @Option(name: .customLong("slurm-gres"), help: ArgumentHelp("Slurm: generic resources for each trial (e.g. gpu:1).", valueName: "GRES"))
    var gres: String?

    @Option(
        name: .customLong("slurm-option"),
        help: ArgumentHelp(
            "Slurm: another sbatch option, passed as it is; repeatable (--slurm-option=--account=lab).",
            valueName: "OPTION"))
    var extraOptions: [String] = []

    @Option(
        name: .customLong("slurm-poll-interval"),
        help: ArgumentHelp("Slurm: seconds between two queries of the queue (squeue).", valueName: "SECONDS"))
    var pollInterval = 2.0

    func check() throws {
        let given = partition != nil || time != nil || cpusPerTask != nil || memory != nil || gres != nil
            || !extraOptions.isEmpty
        if launcher != .slurm, given {
            throw ValidationError("the --slurm-* flags need --launcher slurm")
        }
        if let cpusPerTask, cpusPerTask < 1 { throw ValidationError("--slurm-cpus-per-task must be 1 or more") }
        guard pollInterval > 0, pollInterval.isFinite else {
            throw ValidationError("--slurm-poll-interval must be more than 0 seconds")
        }
        if let bad = extraOptions.first(where: { !$0.hasPrefix("-") }) {
            throw ValidationError("--slurm-option '\(bad)' is not an sbatch option; write it as --slurm-option=--NAME=VALUE")
        }
    }

    /// Stores the launcher in a new job's configuration, so that `--resume` keeps it.
    func configure(_ config: inout JobConfig) {
        config.launcher = launcher.rawValue
        guard launcher == .slurm else { return }
        config.slurm = SlurmOptions(
            partition: partition, time: time, cpusPerTask: cpusPerTask, memory: memory, gres: gres,
            extraOptions: extraOptions, pollInterval: pollInterval)
    }

    /// Refuses, before the job's folder exists, Slurm options the cluster would not run (sbatch --test-only).
    func checkCluster(_ config: JobConfig) throws {
        guard let slurm = config.slurm else { return }
        do {
            try SlurmLauncher(options: slurm, jobName: config.name, jobDirectory: "/").check()
        } catch let error as SlurmError {
            throw CLIError.badInput(error.description)
        }
    }
}
