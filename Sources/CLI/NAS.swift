import ArgumentParser

/// The `nas` command: hardware-aware neural architecture search.
@main
struct NAS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nas",
        abstract: "Hardware-aware neural architecture search: rewards, constraint plugins, trainer, device fleet.",
        subcommands: [
            RewardCommand.self, PluginsCommand.self, SearchCommand.self, TrainCommand.self, TrialsCommand.self,
            ReportCommand.self, TrainerCommand.self, FlopsCommand.self, InferCommand.self, MeasureCommand.self,
            CoordinatorCommand.self, WorkerCommand.self, WorkersCommand.self, EvaluateCommand.self,
        ]
    )
}
