import ArgumentParser
import Foundation
import Plugins
import Search
import Trainer

/// `nas train`: stage 2, retrain-with-latency of chosen trials of a search job.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Retrain chosen search trials (stage 2) with their own epochs, latency measured again.",
        discussion: """
            A new job whose trial k retrains search trial k of --trials, as in vertex-ai-nas (with --trials 1,9,
            trial 1 retrains search trial 1 and trial 2 retrains search trial 9), reusing their nas_params_str.json.
            Constraints, device types and the trainer command (with its settings) default to the search job's; a
            trainer command gets the search trial's architecture as --nas_params_str (and, with --retrain-flags,
            the seed's --retrain_search_job_dir and --retrain_search_job_trials). Each trial's metrics carry
            nas_trial_id.
            --job-name defaults to train-YYYYMMDD-HHMMSS (UTC).

            Example:
              nas train --search-job nas_jobs/mine --trials 4,9 --num-epochs 10
            """
    )

    @Option(name: .customLong("search-job"), help: ArgumentHelp("The search job's folder.", valueName: "JOB_DIR"))
    var searchJob: String?

    @Option(help: ArgumentHelp("Search trials to retrain, comma-separated.", valueName: "IDS"))
    var trials: String?

    @OptionGroup var constraints: ConstraintOptions
    @OptionGroup var devices: DeviceTypeOptions
    @OptionGroup var job: JobOptions
    @OptionGroup var launcher: LauncherOptions
    @OptionGroup var trainer: TrainerOptions
    @OptionGroup var command: TrainerCommandOptions
    @OptionGroup var fleet: JobFleetOptions
    @OptionGroup var output: ProgressOptions
    @OptionGroup var plugins: PluginOptions
    @OptionGroup var measurements: MeasurementStoreOptions

    func validate() throws {
        if job.resume == nil, searchJob == nil || trials == nil {
            throw ValidationError("give --search-job JOB_DIR and --trials IDS (or --resume JOB_DIR)")
        }
        try job.check()
        try launcher.check()
        try trainer.check()
    }

    func run() throws {
        let registry = try plugins.registryCheckedInChildren()
        let store = try job.resumedJob(kind: "train", fleet: fleet) ?? create(registry: registry)
        try runJob(store, registry: registry, job: job, fleet: fleet, output: output, measurements: measurements) { _, _ in
            nil
        }
    }

    /// Checks the search job and its trials, then creates the train job with one pending trial per search trial.
    private func create(registry: ConstraintRegistry) throws -> JobStore {
        let searchDirectory = searchJob ?? ""
        let search = try JobStore.open(directory: searchDirectory)
        let ids = try TrainerCommand.parseTrialList(trials ?? "")
        let known = try search.trials()
        let missing = ids.filter { id in !known.contains { $0.id == id } }
        guard missing.isEmpty else {
            throw JobStoreError.unknownTrials(missing, directory: searchDirectory, known: known.map(\.id))
        }
        let parameters = try ids.map { try TrialParameters.read(fromTrialDirectory: search.trialDirectory($0)) }
        let name = job.jobName ?? "train-\(SearchCommand.timestamp())"
        var config = JobConfig(
            kind: "train", name: name, searchSpace: search.config.searchSpace,
            algorithm: "retrain", seed: search.config.seed, maxTrials: ids.count,
            maxParallelTrials: job.maxParallelTrials, maxFailedTrials: job.maxFailedTrials,
            constraints: constraints.isEmpty ? search.config.constraints : constraints.specs,
            targetDeviceTypes: devices.deviceTypes.isEmpty ? search.config.targetDeviceTypes : devices.deviceTypes,
            trainerArguments: trainer.arguments + plugins.directories.flatMap { ["--plugin-dir", $0] },
            searchJobDirectory: URL(fileURLWithPath: searchDirectory).standardizedFileURL.path, searchTrials: ids,
            outputLocation: job.outputLocation(name), fleet: fleet.record,
            trainerCommand: try command.spec(over: search.config.trainerCommand))
        if config.trainerCommand == nil { try trainer.checkData() }
        try fleet.checkCoordinator()
        launcher.configure(&config)
        try JobSetup.checkConstraints(
            config, constraints: try config.constraints.map { try registry.constraint(parsing: $0) },
            pluginMetrics: registry.measuredMetrics)
        try launcher.checkCluster(config)
        let store = try JobSetup.create(directory: job.directory(config.name), config: config)
        for (id, parameter) in zip(ids, parameters) {
            let trial = try store.addTrial(parameters: parameter.jsonText, decisions: parameter.choice.decisions, searchTrialID: id)
            try parameter.write(toTrialDirectory: store.trialDirectory(trial))
        }
        return store
    }
}
