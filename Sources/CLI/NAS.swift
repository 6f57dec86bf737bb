import ArgumentParser

/// The `nas` command: hardware-aware neural architecture search.
@main
struct NAS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nas",
        abstract: "Hardware-aware neural architecture search: rewards, constraint plugins, trainer, device fleet.",
        subcommands: [
            RewardCommand.self, PluginsCommand.self, CoordinatorCommand.self, WorkerCommand.self,
            WorkersCommand.self, EvaluateCommand.self,
        ]
    )
}
