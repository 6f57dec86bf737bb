import Constraints
import Fleet
import Foundation
import Plugins
import Search
import Trainer

/// A job's trials to run: where they come from and how each becomes a `nas trainer` command line.
struct JobPlan {
    /// Proposes the next trial's parameters from the architectures proposed so far and the finished trials;
    /// nil when there is nothing more to propose.
    typealias Proposer = (_ proposed: [SearchChoice], _ finished: [TrialOutcome]) throws -> TrialParameters?

    let store: JobStore
    let registry: ConstraintRegistry
    let propose: Proposer

    var config: JobConfig { store.config }

    /// The device metrics a trial reports for each device type: plain names with one type, `NAME.TYPE` with several.
    static func deviceMetricNames(_ types: [String]) -> [String] {
        types.flatMap { deviceMetricNames(of: $0, qualified: types.count > 1) }
    }

    /// The names of one device type's metrics, in the order p50 latency, mean, p90, p99, peak memory.
    static func deviceMetricNames(of type: String, qualified: Bool) -> [String] {
        ["latency_ms", "latency_mean_ms", "latency_p90_ms", "latency_p99_ms", "memory_bytes"].map {
            qualified ? "\($0).\(type)" : $0
        }
    }

    /// The bucket (or folder) where the job publishes its outputs, when it has one besides its local folder.
    static func outputStorage(_ config: JobConfig) throws -> (any ObjectStorage)? {
        try config.outputLocation.map { try StorageLocation.parse($0).open() }
    }

    /// Where `job_status.json` goes: the job's folder (or bucket), and with several device types each one's
    /// exchange folder `devices/TYPE`, which file-mode workers of that type watch.
    static func statusStorages(_ config: JobConfig, directory: String) throws -> [any ObjectStorage] {
        let root = config.outputLocation ?? directory
        var locations = [root]
        if config.targetDeviceTypes.count > 1 {
            locations += config.targetDeviceTypes.map { (root.hasSuffix("/") ? root : root + "/") + "devices/\($0)" }
        }
        return try locations.map { try StorageLocation.parse($0).open() }
    }

    /// Creates a new job's store, then checks that its output location can be written; a job whose outputs
    /// cannot be published is removed again before anything ran.
    static func create(directory: String, config: JobConfig) throws -> JobStore {
        let store = try JobStore.create(directory: directory, config: config)
        do {
            try checkOutput(config)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        return store
    }

    /// Refuses an output location that cannot be written, or that holds another job; marks the job as running.
    static func checkOutput(_ config: JobConfig) throws {
        guard let storage = try outputStorage(config) else { return }
        do {
            if try storage.exists(JobLayout.statusKey) {
                throw CLIError("\(storage.location) already holds a job; choose another --job-name")
            }
            try JobState.running.write(to: storage)
        } catch let error as StorageError {
            throw CLIError("cannot publish the job's outputs to \(storage.location): \(error)")
        }
    }

    /// Refuses, before anything runs, a constraint on a metric no trial will produce.
    static func checkConstraints(_ config: JobConfig, registry: ConstraintRegistry) throws {
        let produced = Set(["top_1_accuracy", "flops", "flops_million"])
            .union(deviceMetricNames(config.targetDeviceTypes))
            .union(registry.kinds.filter { $0.plugin?.canMeasure == true }.map(\.metric))
        for spec in config.constraints {
            let constraint = try registry.constraint(parsing: spec)
            guard produced.contains(constraint.metric) else {
                throw CLIError(
                    "constraint '\(spec)' reads metric '\(constraint.metric)', which no trial of this job produces (they produce: \(produced.sorted().joined(separator: ", "))); add --target-device-type for latency and memory, or --plugin-dir for a plugin that measures it"
                )
            }
        }
    }

    /// The command line of one trial.
    func trainerArguments(trial: TrialRecord) -> [String] {
        let directory = store.trialDirectory(trial.id)
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
        return arguments + config.trainerArguments
    }
}
