import Constraints
import Foundation

/// Reads intermediate results (a learning curve) from what a trial leaves while it runs, the ways the trainer
/// contract reports metrics: hypertune lines carrying a `global_step` above 0 (vertex-ai-nas's
/// `NasMetricsReporter`, the helper's `report_intermediate_result`, and the built-in trainer after each epoch), and,
/// when the job reads output metrics, output lines holding `global_step=N` and `<accuracy>=V`.
///
/// A trial's files are read while it writes them, so the readers are lenient: a line that is not a report
/// (half-written, not JSON, no step or no accuracy) is skipped, never an error; the strict reading of the
/// trial's final metrics happens when it ends.
public enum TrialCurve {
    /// The bookkeeping member holding a hypertune report's step.
    public static let stepName = "global_step"

    /// The `(step, value)` reports in a hypertune file's bytes, in file order; lines without a step above 0 (the
    /// final report of a trainer that gives none) are not intermediate results.
    public static func hypertunePoints(_ bytes: [UInt8], accuracyMetric: String) -> [(step: Double, value: Double)] {
        var points: [(step: Double, value: Double)] = []
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            guard let json = try? JSON.parse(line), let step = number(json[stepName]), step > 0,
                let value = number(json[accuracyMetric])
            else { continue }
            points.append((step, value))
        }
        return points
    }

    /// The `(step, value)` reports among output lines: each line where `expression` (Katib's form, group 1 the
    /// name, group 2 the value) finds both `global_step` and the accuracy metric.
    public static func outputPoints(
        _ bytes: [UInt8], accuracyMetric: String, expression: NSRegularExpression
    ) -> [(step: Double, value: Double)] {
        var points: [(step: Double, value: Double)] = []
        for line in String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let text = String(line)
            guard text.contains(stepName) else { continue }
            var step: Double?
            var value: Double?
            for match in expression.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                guard let name = Range(match.range(at: 1), in: text), let number = Range(match.range(at: 2), in: text),
                    let parsed = Double(text[number]), parsed.isFinite
                else { continue }
                if text[name] == stepName { step = parsed } else if text[name] == accuracyMetric { value = parsed }
            }
            if let step, step > 0, let value { points.append((step, value)) }
        }
        return points
    }

    /// A finite number, or a string holding one (hypertune values are strings).
    private static func number(_ value: JSON?) -> Double? {
        switch value {
        case .number(let number)? where number.isFinite: return number
        case .string(let text)?:
            guard let number = Double(text.trimmingCharacters(in: .whitespaces)), number.isFinite else { return nil }
            return number
        default: return nil
        }
    }
}

/// Follows the curves of a job's running trials: each call returns the results that are new since the last
/// (a step above the last one seen for that trial), reading the hypertune file whole (it is small and rewritten
/// whole) and the trial's log from where the last call stopped.
final class CurveWatcher {
    private let accuracyMetric: String
    private let outputExpression: NSRegularExpression?
    private var lastStep: [Int: Double] = [:]
    private var logOffset: [Int: UInt64] = [:]
    private var hypertuneSize: [Int: Int] = [:]

    /// A watcher for a job with `trainerCommand` (nil: the built-in trainer, hypertune lines only).
    init(trainerCommand: TrainerCommandSpec?) {
        accuracyMetric = trainerCommand?.accuracyMetric ?? MetricName.accuracy.rawValue
        outputExpression =
            trainerCommand?.standardOutputMetrics == true
            ? try? TrainerMetrics.expression(trainerCommand?.standardOutputPattern ?? TrainerMetrics.katibDefaultPattern)
            : nil
    }

    /// Forgets a trial (it ended, or runs again from the start).
    func forget(_ trialID: Int) {
        lastStep[trialID] = nil
        logOffset[trialID] = nil
        hypertuneSize[trialID] = nil
    }

    /// Starts following a trial at the end of its log: what an earlier run of it printed is not this run's.
    func start(_ trialID: Int, directory: String) {
        forget(trialID)
        let log = (directory as NSString).appendingPathComponent(TrialFiles.log)
        logOffset[trialID] = (try? FileManager.default.attributesOfItem(atPath: log)[.size] as? UInt64) ?? 0
    }

    /// The new results of `trialID`, whose folder is `directory`.
    func newPoints(_ trialID: Int, directory: String) -> [CurvePoint] {
        var points: [(step: Double, value: Double)] = []
        let hypertune = CommandTrainer.hypertunePath(directory)
        if let data = FileManager.default.contents(atPath: hypertune), data.count != hypertuneSize[trialID] {
            hypertuneSize[trialID] = data.count
            points += TrialCurve.hypertunePoints(Array(data), accuracyMetric: accuracyMetric)
        }
        if let outputExpression {
            let log = (directory as NSString).appendingPathComponent(TrialFiles.log)
            if let handle = FileHandle(forReadingAtPath: log) {
                defer { try? handle.close() }
                let offset = logOffset[trialID] ?? 0
                try? handle.seek(toOffset: offset)
                let bytes = Array((try? handle.readToEnd()) ?? Data())
                // Only whole lines: the rest is read again next time.
                if let end = bytes.lastIndex(of: UInt8(ascii: "\n")) {
                    logOffset[trialID] = offset + UInt64(end + 1)
                    points += TrialCurve.outputPoints(
                        Array(bytes[...end]), accuracyMetric: accuracyMetric, expression: outputExpression)
                }
            }
        }
        var fresh: [CurvePoint] = []
        for point in points where point.step > (lastStep[trialID] ?? 0) {
            lastStep[trialID] = point.step
            fresh.append(CurvePoint(trialID: trialID, step: point.step, value: point.value))
        }
        return fresh
    }
}
