import ArgumentParser

/// The `nas` command: hardware-aware neural architecture search.
@main
struct NAS: AsyncParsableCommand {
    /// The tool's version, as `nas --version` prints it.
    static let version = "0.2.0"

    static let configuration = CommandConfiguration(
        commandName: "nas",
        abstract: "Hardware-aware neural architecture search: rewards, constraint plugins, trainer, device fleet.",
        discussion: """
            Exit status, the same for every command: 0 success, 1 the work failed (a trial, a search whose trials \
            all failed), 2 an input could not be read or is invalid (a model, data, a search space, a plugin, a job \
            folder), 64 a wrong command line (with the usage text), 130 interrupted; nas trainer exits 3 when the \
            loss became NaN. See docs/cli.md.
            """,
        version: NAS.version,
        subcommands: [
            RewardCommand.self, PluginsCommand.self, SearchCommand.self, TrainCommand.self, TrialsCommand.self,
            ReportCommand.self, TrainerCommand.self, FlopsCommand.self, InferCommand.self, MeasureCommand.self,
            CoordinatorCommand.self, WorkerCommand.self, WorkersCommand.self, EvaluateCommand.self,
            PredictorCommand.self,
        ]
    )
}
