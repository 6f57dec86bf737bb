import Constraints
import Foundation

/// The contents of `model_latency.json`: the seed's two keys plus any other metric the runner reported.
public struct LatencyMetrics: Sendable, Hashable {
    /// The seed's latency key, in milliseconds.
    public static let latencyKey = "latency_in_milliseconds"
    /// The seed's memory key, in bytes.
    public static let memoryKey = "model_memory"

    /// Latency in milliseconds.
    public var latencyMilliseconds: Double
    /// Peak memory in bytes; nil when the runner did not report it (then `model_memory` is left out of the file,
    /// and the trial's table shows the metric as missing rather than 0).
    public var memoryBytes: Double?
    /// Every other numeric metric, by the runner's name.
    public var others: [String: Double]

    /// Builds metrics from their parts.
    public init(latencyMilliseconds: Double, memoryBytes: Double?, others: [String: Double] = [:]) {
        self.latencyMilliseconds = latencyMilliseconds
        self.memoryBytes = memoryBytes
        self.others = others
    }

    /// Converts a runner's answer (``MetricKey`` names); a runner without a finite `latency_ms` is an error.
    public init(runnerMetrics: [String: Double], runner: String) throws {
        guard let latency = runnerMetrics[MetricKey.latency], latency.isFinite, latency >= 0 else {
            throw ExchangeError.runnerFailed(
                runner,
                "its metrics lack a finite, non-negative \"\(MetricKey.latency)\" (got: "
                    + "\(runnerMetrics.keys.sorted().joined(separator: ", ")))")
        }
        var others = runnerMetrics.filter { $0.value.isFinite }
        if let memory = others[MetricKey.memory], memory < 0 {
            throw ExchangeError.runnerFailed(runner, "it reported a negative \"\(MetricKey.memory)\" (\(memory))")
        }
        others[MetricKey.latency] = nil
        let memory = others.removeValue(forKey: MetricKey.memory)
        others[Self.latencyKey] = nil
        others[Self.memoryKey] = nil
        self.init(latencyMilliseconds: latency, memoryBytes: memory, others: others)
    }

    /// Every metric under ``MetricKey`` names (plus the others), as constraints and rewards read them.
    public var metrics: [String: Double] {
        var all = others
        all[MetricKey.latency] = latencyMilliseconds
        if let memoryBytes { all[MetricKey.memory] = memoryBytes }
        return all
    }

    /// The JSON text of `model_latency.json`, keys sorted.
    public func encoded() -> [UInt8] {
        var object: [String: Double] = others.filter { $0.value.isFinite }
        object[Self.latencyKey] = latencyMilliseconds
        if let memoryBytes { object[Self.memoryKey] = memoryBytes }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Array(data) + [UInt8(ascii: "\n")]
    }

    /// Reads `model_latency.json`; `path` names it in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws -> LatencyMetrics {
        let parsed: JSON
        do {
            parsed = try JSON.parse(bytes)
        } catch {
            let start = String(decoding: bytes.prefix(40), as: UTF8.self)
            throw ExchangeError.invalidMetrics(
                path, "it is not JSON (\(error); it starts with \(start.debugDescription))")
        }
        guard case .object(let members) = parsed else {
            throw ExchangeError.invalidMetrics(path, "it is JSON but not an object")
        }
        func number(_ key: String) throws -> Double {
            guard let value = parsed[key] else {
                let keys = members.map(\.key).sorted().joined(separator: ", ")
                throw ExchangeError.invalidMetrics(
                    path, "it lacks \"\(key)\" (it has: \(keys.isEmpty ? "nothing" : keys))")
            }
            guard case .number(let number) = value, number.isFinite else {
                throw ExchangeError.invalidMetrics(path, "\"\(key)\" is not a finite number")
            }
            return number
        }
        let latency = try number(latencyKey)
        let memory = parsed[memoryKey] == nil ? nil : try number(memoryKey)
        var others = [String: Double]()
        for member in members where member.key != latencyKey && member.key != memoryKey {
            if case .number(let number) = member.value, number.isFinite { others[member.key] = number }
        }
        return LatencyMetrics(latencyMilliseconds: latency, memoryBytes: memory, others: others)
    }
}
