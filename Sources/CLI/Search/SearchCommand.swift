import ArgumentParser
import Constraints
import Foundation
import Plugins
import Search
import Trainer

/// `nas search`: a whole architecture search, each trial a `nas trainer` process.
struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Run a latency-constrained architecture search; results sorted by reward, with the Pareto front.",
        discussion: """
            The job lives in ROOT_OUTPUT_DIR/JOB_NAME: nas_job.sqlite (the job's state), one folder per trial
            (nas_params_str.json, saved_model/model.onnx, metrics.json, job_status.json, trainer.log) and
            report.html. A killed search continues with --resume JOB_DIR; Ctrl-C stops launching trials and waits
            for the running ones (--on-interrupt cancel stops them too; a second Ctrl-C always does).
            With one --target-device-type the latency metrics are latency_ms and memory_bytes; with several they are
            latency_ms.TYPE and memory_bytes.TYPE, one constraint each. Trials marked * in the tables are \
            Pareto-optimal: no other succeeded trial has higher top_1_accuracy and a lower or equal value of every \
            constrained metric. --job-name defaults to search-YYYYMMDD-HHMMSS (UTC).
            --trainer-command runs your own trainer per trial (any framework) in vertex-ai-nas's contract; its \
            model is counted and measured on the job's devices like a built-in trial's (python/README.md).

            Examples:
              nas search --max-trials 20 --target-latency-millisec 0.05
              nas search --job-name mine --constraint 'latency_ms<=0.05:soft' \\
                  --constraint 'memory_bytes<=200k:soft'
              nas search --resume nas_jobs/mine --max-trials 40
            """
    )

    @Option(
        name: .customLong("search-space"),
        help: ArgumentHelp(
            "A built-in space (\(SearchSpace.builtinNames.joined(separator: ", "))) or a JSON file in PyGlove's vocabulary: decisions are {\"one_of\": [...]} and {\"sublist_of\": [...], \"k\": K}, anything else is fixed, e.g. [{\"kernel_size\": {\"one_of\": [3, 5]}, \"filters\": {\"one_of\": [3, 4, 5]}}] (docs/search-space.md).",
            valueName: "NAME|FILE"))
    var searchSpace = "mnist_list_of_dictionary"

    @Option(
        help: "random, grid, evolution (regularized evolution, Real et al. 2019), nsga2 (NSGA-II) or motpe (multi-objective TPE); nsga2 and motpe search accuracy against every constraint's metric at once.",
        completion: .list(SearchAlgorithmKind.allCases.map(\.rawValue)))
    var algorithm = "evolution"

    @Option(name: .customLong("max-trials"), help: "Trials to run (the seed's max_nas_trial).")
    var maxTrials = 10

    @Option(help: "Seeds the proposals and every trial's training.")
    var seed = 0

    @OptionGroup var constraints: ConstraintOptions
    @OptionGroup var devices: DeviceTypeOptions
    @OptionGroup var job: JobOptions
    @OptionGroup var launcher: LauncherOptions
    @OptionGroup var trainer: TrainerOptions
    @OptionGroup var command: TrainerCommandOptions
    @OptionGroup var pruning: PrunerOptions
    @OptionGroup var fleet: JobFleetOptions
    @OptionGroup var output: ProgressOptions
    @OptionGroup var plugins: PluginOptions
    @OptionGroup var measurements: MeasurementStoreOptions
    @OptionGroup var predictor: PredictorOptions

    func validate() throws {
        guard SearchAlgorithmKind(rawValue: algorithm) != nil else {
            throw ValidationError(
                "unknown algorithm '\(algorithm)'; use one of \(SearchAlgorithmKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard maxTrials >= 1 else { throw ValidationError("--max-trials must be 1 or more") }
        try job.check()
        try launcher.check()
        try trainer.check()
        _ = try command.spec()
        _ = try pruning.configuration(epochs: trainer.epochs)
        try predictor.check()
        if predictor.predictor != .off, try command.spec() != nil {
            throw ValidationError(
                "--predictor \(predictor.predictor.rawValue) predicts candidates from their untrained models, which only the built-in trainer exports; leave it off with --trainer-command")
        }
    }

    func run() throws {
        let registry = try plugins.registryCheckedInChildren()
        let store: JobStore
        if let resumed = try job.resumedJob(kind: "search", maxTrials: maxTrials, fleet: fleet) {
            store = resumed
            var config = store.config
            config.predictor = predictor.settings(
                over: config.predictor, given: JobOptions.givenFlags(CommandLine.arguments.dropFirst()))
            if config != store.config { try store.update(config: config) }
        } else {
            let specs = constraints.specs
            let parsed = try specs.map { try registry.constraint(parsing: $0) }
            var config = JobConfig(
                kind: "search", name: job.jobName ?? "search-\(Self.timestamp())", searchSpace: searchSpace,
                algorithm: algorithm, seed: seed, maxTrials: maxTrials, maxParallelTrials: job.maxParallelTrials,
                maxFailedTrials: job.maxFailedTrials, constraints: specs,
                targetDeviceTypes: devices.measured(parsed, local: DeviceType.local),
                trainerArguments: trainer.arguments + plugins.directories.flatMap { ["--plugin-dir", $0] },
                trainerCommand: try command.spec())
            config.outputLocation = job.outputLocation(config.name)
            config.fleet = fleet.record
            config.pruner = try pruning.configuration(epochs: trainer.epochs)
            config.predictor = predictor.settings
            config.trainerArguments += pruning.trainerArguments(pruning: config.pruner != nil)
            if pruning.latencyFirst, !parsed.contains(where: { $0.isHardDeviceConstraint }) {
                throw CLIError.badInput(
                    "--latency-first needs a hard device constraint (e.g. --target-latency-millisec with the default hard option, or --constraint 'latency_ms<=0.05:hard'); the job has none")
            }
            launcher.configure(&config)
            // Everything the job needs is checked before its folder exists or any training starts.
            let space = try SearchSpace.load(searchSpace)
            guard space.size > 0 else {
                throw CLIError.badInput("the search space '\(searchSpace)' has no architectures to try")
            }
            if config.trainerCommand == nil {
                try trainer.checkData()
                try Self.checkBuiltInTrainerCanTrain(space)
            }
            try fleet.checkCoordinator()
            try JobSetup.checkConstraints(config, constraints: parsed, pluginMetrics: registry.measuredMetrics)
            try launcher.checkCluster(config)
            store = try JobSetup.create(directory: job.directory(config.name), config: config)
        }
        let space = try SearchSpace.load(store.config.searchSpace)
        let algorithm = SearchAlgorithm(
            kind: SearchAlgorithmKind(rawValue: store.config.algorithm) ?? .random, space: space,
            seed: UInt64(truncatingIfNeeded: store.config.seed),
            objectives: ObjectiveSpace(constraints: registry.displayed(store.config.constraints)))
        try runJob(
            store, registry: registry, job: job, fleet: fleet, output: output, measurements: measurements,
            predictor: predictor
        ) { proposed, finished in
            guard let choice = try algorithm.propose(trial: proposed.count, proposed: proposed, finished: finished)
            else { return nil }
            return try space.parameters(of: choice)
        }
    }

    /// Refuses a space whose values the built-in trainer cannot build (anything but its CNN's layers or its
    /// MobileNet's stages): only a trainer command of the user's own knows what they mean.
    static func checkBuiltInTrainerCanTrain(_ space: SearchSpace) throws {
        var generator = SystemRandomNumberGenerator()
        do {
            _ = try space.model(of: space.sample(using: &generator))
        } catch {
            throw CLIError.badInput(
                "\(error); the built-in trainer builds only its CNN and MobileNet families, so train this space with "
                    + "your own --trainer-command")
        }
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date())
    }
}
