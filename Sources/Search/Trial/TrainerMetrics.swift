import Constraints
import Foundation

/// The metrics a trainer command reports, read the three ways trainers already report them: the hypertune
/// JSON-lines file vertex-ai-nas's `NasMetricsReporter` writes, a `metrics.json` object, and `name=value` lines
/// on standard output (Katib's StdOut collector).
///
/// Each reader takes bytes and returns metrics by name; input that is not what it should be is a
/// `TrainerMetricsError` naming the file, the line and what was wrong, never a crash. None of vertex-ai-nas's
/// limits apply (five extra metrics, values in 0.001..10, 64-character names).
public enum TrainerMetrics {
    /// Members of a hypertune line that are bookkeeping, not metrics.
    static let hypertuneBookkeeping: Set<String> = ["timestamp", "trial", "global_step", "checkpoint_path"]

    /// Katib's default metrics filter: `([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)`.
    public static let katibDefaultPattern = #"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"#

    /// Reads the hypertune file: one JSON object per line, the last line wins (the reporter rewrites the file
    /// with its most recent report last). From it: the metric named by the tag (`"nas_reward": "0.91"`), each
    /// `key_i`/`value_i` pair, `model_flops` when it is above 0, and any other member holding a number.
    /// Values may be numbers or strings holding numbers, as `NasMetricsReporter` writes them.
    public static func hypertune(_ bytes: [UInt8], source: String) throws -> [String: Double] {
        let lines = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
        guard let index = lines.lastIndex(where: { !$0.allSatisfy(\.isWhitespace) }) else {
            throw TrainerMetricsError(source, "the file is empty; the trainer reported nothing through it")
        }
        let place = "\(source), line \(index + 1)"
        let line: JSON
        do {
            line = try JSON.parse(String(lines[index]))
        } catch {
            throw TrainerMetricsError(
                place, "not JSON (\(error)): \(String(lines[index].prefix(80)).debugDescription)")
        }
        guard case .object(let members) = line else {
            throw TrainerMetricsError(place, "a hypertune line is a JSON object, found \(line.integerText.prefix(80))")
        }
        var metrics: [String: Double] = [:]
        var pairs: [String: (key: String?, value: JSON?)] = [:]
        for (key, value) in members {
            if let suffix = Self.suffix(key, "key_") {
                guard case .string(let name) = value, !name.isEmpty else {
                    throw TrainerMetricsError(place, "\"\(key)\" names a metric, so it must be a non-empty string")
                }
                pairs[suffix, default: (nil, nil)].key = name
            } else if let suffix = Self.suffix(key, "value_") {
                pairs[suffix, default: (nil, nil)].value = value
            } else if !hypertuneBookkeeping.contains(key) {
                guard let number = try Self.number(value, key, place, optional: true) else { continue }
                if key == "model_flops" && number <= 0 { continue }
                metrics[key] = number
            }
        }
        for (suffix, pair) in pairs.sorted(by: { $0.key < $1.key }) {
            guard let name = pair.key, let value = pair.value else {
                throw TrainerMetricsError(place, "key_\(suffix) and value_\(suffix) go together; one is missing")
            }
            metrics[name] = try Self.number(value, "value_\(suffix) (\(name))", place, optional: false)
        }
        return metrics
    }

    /// Reads a `metrics.json` object: each member holding a number (or a string holding one) is a metric;
    /// members holding lists, objects, booleans or null are the trainer's own business and are skipped.
    public static func metricsJSON(_ bytes: [UInt8], source: String) throws -> [String: Double] {
        let parsed: JSON
        do {
            parsed = try JSON.parse(bytes)
        } catch {
            throw TrainerMetricsError(source, "not JSON (\(error)); write one object such as {\"top_1_accuracy\": 0.9}")
        }
        guard case .object(let members) = parsed else {
            throw TrainerMetricsError(
                source, "expected one JSON object of metrics, found \(parsed.integerText.prefix(80))")
        }
        var metrics: [String: Double] = [:]
        for (key, value) in members {
            if let number = try Self.number(value, key, source, optional: true) { metrics[key] = number }
        }
        return metrics
    }

    /// Reads `name=value` pairs from a trainer's output with Katib's StdOut collector convention: every match of
    /// `pattern` (group 1 the name, group 2 the value; Katib's default when nil) on every line, the last value
    /// of a name winning. Matches whose value is empty or not a finite number are skipped, as Katib skips them.
    public static func standardOutput(_ bytes: [UInt8], pattern: String? = nil) throws -> [String: Double] {
        let expression = try Self.expression(pattern ?? katibDefaultPattern)
        var metrics: [String: Double] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let text = String(line)
            let range = NSRange(text.startIndex..., in: text)
            for match in expression.matches(in: text, range: range) {
                guard let name = Range(match.range(at: 1), in: text), let value = Range(match.range(at: 2), in: text),
                    !text[name].isEmpty, let number = Double(text[value]), number.isFinite
                else { continue }
                metrics[String(text[name])] = number
            }
        }
        return metrics
    }

    /// Compiles a metrics filter, refusing one that does not capture a name and a value.
    public static func expression(_ pattern: String) throws -> NSRegularExpression {
        let expression: NSRegularExpression
        do {
            expression = try NSRegularExpression(pattern: pattern)
        } catch {
            throw TrainerMetricsError("--stdout-metrics-pattern", "'\(pattern)' is not a regular expression")
        }
        guard expression.numberOfCaptureGroups >= 2 else {
            throw TrainerMetricsError(
                "--stdout-metrics-pattern",
                "'\(pattern)' needs two groups, the name and the value, as in Katib's ([\\w|-]+)\\s*=\\s*(...)")
        }
        return expression
    }

    private static func suffix(_ key: String, _ prefix: String) -> String? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        return !rest.isEmpty && rest.allSatisfy(\.isNumber) ? String(rest) : nil
    }

    /// A metric's value: a finite number, or a string holding one. With `optional`, lists, objects, booleans
    /// and null are nil (not a metric); a string that is not a number is always an error.
    private static func number(_ value: JSON, _ name: String, _ source: String, optional: Bool) throws -> Double? {
        switch value {
        case .number(let number) where number.isFinite:
            return number
        case .string(let text):
            guard let number = Double(text.trimmingCharacters(in: .whitespaces)), number.isFinite else {
                throw TrainerMetricsError(
                    source, "metric \"\(name)\" is \(text.prefix(40).debugDescription), not a finite number")
            }
            return number
        case .number:
            throw TrainerMetricsError(source, "metric \"\(name)\" is not finite (NaN or infinity)")
        default:
            guard optional else {
                throw TrainerMetricsError(source, "metric \"\(name)\" is \(value.integerText.prefix(40)), not a number")
            }
            return nil
        }
    }
}

/// Metrics a trainer reported that cannot be read: where, and what was wrong.
public struct TrainerMetricsError: Error, CustomStringConvertible, Sendable {
    /// The file (and line) or flag.
    public let source: String
    /// What was wrong.
    public let problem: String

    /// An error about `source`.
    public init(_ source: String, _ problem: String) {
        self.source = source
        self.problem = problem
    }

    public var description: String { "\(source): \(problem)" }
}
