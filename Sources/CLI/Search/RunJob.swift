import ArgumentParser
import Constraints
import Fleet
import Foundation
import NativeRunner
import Plugins
import Search
import System
import Trainer

/// Runs a search or train job's trials as `nas trainer` processes, local or Slurm jobs as the job's configuration
/// says, measuring through the job's fleet; exits 130 when interrupted and 1 when stopped by failures.
func runJob(
    _ store: JobStore, registry: ConstraintRegistry, job: JobOptions, fleet fleetOptions: JobFleetOptions,
    output: ProgressOptions, measurements: MeasurementStoreOptions, predictor: PredictorOptions? = nil,
    propose: @escaping JobLoop.Proposer
) throws {
    // Slurm runs trials on other nodes, in other folders: every path a trial gets is absolute.
    let store = store.config.slurm == nil ? store : try JobStore.open(directory: absolutePath(store.directory))
    let launcher: any TrialLauncher = try store.config.slurm.map {
        try SlurmLauncher(options: $0, jobName: store.config.name, jobDirectory: store.directory)
    } ?? LocalLauncher()
    let observer = ProgressReporter(options: output)
    let constraints = registry.displayed(store.config.constraints)
    let settings = try JobFleetOptions.settings(store.config.fleet ?? fleetOptions.record)
    if settings.transport != .push, let type = store.config.targetDeviceTypes.first {
        let root = store.config.outputLocation ?? store.directory
        let folder = store.config.targetDeviceTypes.count > 1 ? "\(root)/devices/\(type)" : root
        observer.workerHint = "nas worker --job-dir \(folder) --device-type \(type)"
    }
    let fleet = try JobFleet(config: store.config, directory: store.directory, settings: settings, local: NativeRunner()) {
        line in observer.event(.fleet(line))
    }
    defer { fleet.stop() }
    // Counted instead of dying on them, so that the loop stops gracefully.
    let interrupts = try SignalTrap([SIGINT, SIGTERM])
    defer { interrupts.release() }
    let command = TrialCommand(
        executable: TrialCommand.currentExecutable,
        extraArguments: (store.config.outputLocation.map { ["--output-dir", $0] } ?? []) + fleet.arguments,
        environment: fleet.environment)
    let config = store.config
    // Every trial's measurements are kept; with --predictor, candidates are predicted (and screened) first.
    let export: ((TrialParameters) throws -> [UInt8])? =
        config.trainerCommand == nil ? { try LatencyScreen.untrainedModel($0) } : nil
    let screen = try LatencyScreen(
        store: store, measurements: try measurements.open(),
        configuration: (store.config.predictor ?? predictor?.settings)?.configuration ?? LatencyScreen.Configuration(),
        targets: LatencyScreen.targets(constraints, deviceTypes: config.targetDeviceTypes), export: export,
        log: { line in observer.event(.fleet("predictor: " + line)) })
    let outcome = try JobRunner(
        store: store, constraints: constraints, configuration: JobLoop.Configuration(onInterrupt: job.onInterrupt)
    ).run(
        launcher: launcher, observer: observer, interrupts: { interrupts.count }, succeeded: screen.trialSucceeded,
        propose: screen.wrap(propose)
    ) { trial, directory in command.run(for: trial, in: directory, config: config) }
    switch outcome.stop {
    case .interrupted: throw ExitCode(ExitStatus.interrupted)
    case .failures: throw ExitCode(ExitStatus.failed)
    case .none:
        // A job none of whose trials succeeded did not do its work, whatever stopped it; trials that were pruned or
        // found infeasible before training are results, not failures.
        let trials = try store.trials()
        if !trials.isEmpty, !trials.contains(where: { [.succeeded, .pruned, .infeasible].contains($0.state) }) {
            throw ExitCode(ExitStatus.failed)
        }
    }
}

/// `path` from the root, `.` and `..` resolved.
func absolutePath(_ path: String) -> String {
    let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    return (full as NSString).standardizingPath
}

extension ConstraintRegistry {
    /// A job's constraints for its tables and report: through the registry where it knows them, else read from
    /// the spec alone, so that a plugin's metric shows (and counts for the Pareto front) without the plugin loaded.
    func displayed(_ specs: [String]) -> [Constraint] {
        specs.compactMap { spec in (try? constraint(parsing: spec)) ?? (try? Constraint(parsing: spec)) }
    }

    /// The metrics that loaded plugins measure from a model.
    var measuredMetrics: Set<String> {
        Set(kinds.filter { $0.plugin?.canMeasure == true }.map(\.metric))
    }
}
