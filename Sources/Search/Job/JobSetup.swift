import Constraints
import Fleet
import Foundation

/// The checks and the creation of a new job, done before anything trains.
public enum JobSetup {
    /// Creates a new job's store, then checks that its output location can be written; a job whose outputs
    /// cannot be published is removed again before anything ran.
    public static func create(directory: String, config: JobConfig) throws -> JobStore {
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
        guard let storage = try JobRunner.outputStorage(config) else { return }
        do {
            if try storage.exists(JobLayout.statusKey) {
                throw TrialPipelineError("\(storage.location) already holds a job; choose another --job-name")
            }
            try JobState.running.write(to: storage)
        } catch let error as StorageError {
            throw TrialPipelineError("cannot publish the job's outputs to \(storage.location): \(error)")
        }
    }

    /// Refuses, before anything runs, a constraint on a metric no trial of the job will produce.
    /// `pluginMetrics` are the metrics loaded plugins measure from models. A trainer command may report any
    /// metric, so its trials are checked once they ran.
    public static func checkConstraints(_ config: JobConfig, constraints: [Constraint], pluginMetrics: Set<String>)
        throws
    {
        guard config.trainerCommand == nil else { return }
        let produced = Set(TrialPipeline.trainingMetrics.map(\.rawValue))
            .union(MetricName.deviceMetrics(of: config.targetDeviceTypes).map(\.rawValue))
            .union(pluginMetrics)
        for (spec, constraint) in zip(config.constraints, constraints) where !produced.contains(constraint.metric) {
            throw TrialPipelineError(
                "constraint '\(spec)' reads metric '\(constraint.metric)', which no trial of this job produces (they produce: \(produced.sorted().joined(separator: ", "))); add --target-device-type for latency and memory, or --plugin-dir for a plugin that measures it"
            )
        }
    }
}
