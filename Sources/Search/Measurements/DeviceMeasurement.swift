import Constraints
import Fleet
import Foundation

/// A device's answer with where it came from: what the measurement store keeps besides the figures.
public struct DeviceMeasurement: Codable, Hashable, Sendable {
    /// The device type.
    public var deviceType: String
    /// The runner's metrics by its names.
    public var metrics: [String: Double]
    /// The worker that measured; nil in process or through the file exchange.
    public var workerID: String?
    /// The worker's attributes (this machine's when measured in process).
    public var attributes: [String: String]
    /// What ran the model (`native`, `command`, ...; `unknown` when the measurer cannot tell).
    public var runtime: String
    /// Each kernel's time in milliseconds by the node it computes, when the runner times kernels (the native
    /// engine in this process); nil otherwise.
    public var kernelTimes: [String: Double]?

    /// A measurement. The runner's `kernel_latency_ms.<node>` metrics (`MetricName.kernelLatencyPrefix`) are
    /// taken out of `metrics` into `kernelTimes` when `kernelTimes` is nil; one with no node name or a time that is
    /// not a finite number of milliseconds (0 or more) is dropped, so its model is learnt as a whole.
    public init(
        deviceType: String, metrics: [String: Double], workerID: String? = nil, attributes: [String: String] = [:],
        runtime: String = "unknown", kernelTimes: [String: Double]? = nil
    ) {
        let prefix = MetricName.kernelLatencyPrefix
        var kernels: [String: Double] = [:]
        for (name, value) in metrics where name.hasPrefix(prefix) && name.count > prefix.count {
            if value.isFinite, value >= 0 { kernels[String(name.dropFirst(prefix.count))] = value }
        }
        self.deviceType = deviceType
        self.metrics = metrics.filter { !$0.key.hasPrefix(prefix) }
        self.workerID = workerID
        self.attributes = attributes
        self.runtime = runtime
        self.kernelTimes = kernelTimes ?? (kernels.isEmpty ? nil : kernels)
    }

    enum CodingKeys: String, CodingKey {
        case deviceType = "device_type"
        case metrics
        case workerID = "worker_id"
        case attributes, runtime
        case kernelTimes = "kernel_latencies_ms"
    }

    /// The attribute a worker names its runtime by (`nas worker` sets it from its runner).
    public static let runtimeAttribute = "runtime"

    /// This machine as attributes: host, CPU model and core count; read once per process.
    public static func machineAttributes() -> [String: String] { machine }

    private static let machine: [String: String] = {
        var attributes = [
            "host": ProcessInfo.processInfo.hostName, "cores": String(ProcessInfo.processInfo.activeProcessorCount),
        ]
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
            let colon = line.firstIndex(of: ":")
        {
            attributes["cpu"] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return attributes
    }()
}

extension DeviceMeasurer {
    /// Measures and says where: the default knows only the figures.
    public func measureDetailed(_ model: TrialModel, on deviceType: String) async throws -> DeviceMeasurement {
        DeviceMeasurement(deviceType: deviceType, metrics: try await measure(model, on: deviceType))
    }
}

extension TrialFiles {
    /// Each device measurement of the trial with its worker, attributes and runtime (JSON array), which the search
    /// keeps in the job store and the measurement store.
    public static let measurements = "measurements.json"
}
