import Constraints
import Foundation
import ONNX
import Trainer

extension Constraint {
    /// A constraint on a device metric whose factor gives no bonus under the target (alpha 0: `hard`,
    /// `vertex-hard`): a model over its target is what the job does not want, so latency first need not train it.
    public var isHardDeviceConstraint: Bool {
        MetricName(rawValue: metric).isDeviceMetric && exponents.alpha == 0 && exponents.beta < 0 && scorer == nil
    }
}

/// A trial that was not trained: its untrained model missed a hard device target. Its folder has the measurement
/// (`metrics.json`) and `job_status.json` says `infeasible`; the trial runner exits `TrialExit.infeasibleStatus`.
public struct TrialInfeasible: Error, CustomStringConvertible, Sendable {
    /// What missed which target.
    public let description: String
    /// What was measured.
    public let metrics: [String: Double]
}

extension TrialPipeline {
    /// The hard device constraints latency first checks.
    var hardDeviceConstraints: [Constraint] { reward.constraints.filter(\.isHardDeviceConstraint) }

    /// Latency first: exports the untrained model, measures it on the job's devices and returns the device
    /// metrics, or throws `TrialInfeasible` (leaving the measurement and the status in the trial's folder) when a
    /// hard target is missed. Nil when latency first is off or does not apply (no measurer, no hard device
    /// constraint, a trainer that cannot export untrained).
    func measureFirst(_ trial: TrialContext, _ status: TrialStatusFile) async throws
        -> (metrics: [String: Double], measurements: [DeviceMeasurement])?
    {
        guard latencyFirst, let measurer, !deviceTypes.isEmpty, !hardDeviceConstraints.isEmpty else { return nil }
        guard let bytes = try await trainer.exportUntrained(trial) else { return nil }
        let measured = try await measureDevices(
            TrialModel(trialID: trial.trialID, bytes: bytes, path: trial.modelPath), measurer)
        var metrics = measured.metrics
        let missed = hardDeviceConstraints.compactMap { constraint -> String? in
            guard let value = metrics[constraint.metric], value > constraint.target else { return nil }
            return "\(constraint.metric) \(ResultsTable.format(value)) > target \(ResultsTable.format(constraint.target))"
        }
        guard !missed.isEmpty else { return measured }
        let flops = try OnnxFlops.count(bytes: bytes).total
        metrics[MetricName.flops.rawValue] = Double(flops)
        metrics[MetricName.flopsMillion.rawValue] = Double(flops) / 1e6
        let reason = "the untrained model misses a hard target (\(missed.joined(separator: ", "))): not trained"
        let metricsPath = (trial.directory as NSString).appendingPathComponent(TrialFiles.metrics)
        try Data((Self.jsonLine(metrics) + "\n").utf8).write(to: URL(fileURLWithPath: metricsPath), options: .atomic)
        try status.write("infeasible", reason: reason)
        throw TrialInfeasible(description: reason, metrics: metrics)
    }

    /// The model's metrics on each of the job's device types, by the job's names (`latency_ms`, or
    /// `latency_ms.TYPE` with several types).
    func measureDevices(_ model: TrialModel, _ measurer: any DeviceMeasurer) async throws
        -> (metrics: [String: Double], measurements: [DeviceMeasurement])
    {
        var metrics: [String: Double] = [:]
        var measurements: [DeviceMeasurement] = []
        for type in deviceTypes {
            var measurement = try await measurer.measureDetailed(model, on: type)
            let answer = try Self.checked(measurement.metrics, deviceType: type)
            measurement.metrics = answer
            measurements.append(measurement)
            for metric in MetricName.deviceMetrics {
                let name = metric.on(deviceType: type, qualified: deviceTypes.count > 1)
                if let value = answer[metric.rawValue] ?? Self.legacyRunnerNames[metric].flatMap({ answer[$0] }) {
                    metrics[name.rawValue] = value
                }
            }
        }
        return (metrics, measurements)
    }
}

extension BuiltInTrainer {
    /// The trial's model with the weights training would start from, exported to the trial's model path.
    public func exportUntrained(_ trial: TrialContext) async throws -> [UInt8]? {
        let model = try trial.parameters.model().untrainedONNX(seed: config.seed)
        try CommandTrainer.writeModel(model, to: trial.modelPath)
        return model
    }
}

extension CommandTrainer {
    /// The contract's request to export without training: the command runs once with `NAS_EXPORT_ONLY=1` and
    /// must leave its (untrained) model where it leaves the trained one, then exit 0.
    public static let exportOnlyVariable = "NAS_EXPORT_ONLY"

    /// Runs the command with `NAS_EXPORT_ONLY=1` and reads the model it left.
    public func exportUntrained(_ trial: TrialContext) async throws -> [UInt8]? {
        try clearEarlierResults(trial)
        _ = try await runCommand(trial, extraEnvironment: [Self.exportOnlyVariable: "1"])
        let path = modelPath(trial)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrialPipelineError(
                "--latency-first: the trainer command exited 0 with \(Self.exportOnlyVariable)=1 but left no model at \(path); when \(Self.exportOnlyVariable)=1 is set, export the untrained model there and exit without training (the helper's cloud_nas_utils.export_only()), or drop --latency-first"
            )
        }
        let standard = (trial.directory as NSString).appendingPathComponent(TrialFiles.model)
        if path != standard { try Self.writeModel(Array(data), to: standard) }
        return Array(data)
    }

    /// Writes a model file, its folder created.
    static func writeModel(_ bytes: [UInt8], to path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

extension TrialStatusFile {
    /// The reason the status file gives, whatever its status (`infeasible`'s included).
    func statedReason() -> String? {
        guard let data = FileManager.default.contents(atPath: path), let json = try? JSON.parse(Array(data)),
            case .string(let reason)? = json["reason"], !reason.isEmpty
        else { return nil }
        return reason
    }
}
