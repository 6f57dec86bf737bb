import ArgumentParser
import Constraints
import Plugins

/// The reward's constraints, as every command that scores trials takes them: `--constraint` specs and the
/// seed's two shorthand flags, which add hard constraints in vertex-ai-nas's form.
struct ConstraintOptions: ParsableArguments {
    @Option(
        name: .customLong("constraint"),
        help: ArgumentHelp(
            "A reward constraint, [NAME=]METRIC<=TARGET[:OPTIONS] as 'nas reward --help' explains; repeatable.",
            valueName: "SPEC"))
    var constraints: [String] = []

    @Option(
        name: [.customLong("target-latency-millisec"), .customLong("target_latency_millisec")],
        help: "Adds the hard constraint latency_ms<=Y:vertex-hard (the seed's flag), measured on --target-device-type or this machine.")
    var targetLatency: Double?

    @Option(
        name: [.customLong("target-flops-million"), .customLong("target_flops_million")],
        help: "Adds the hard constraint flops_million<=X:vertex-hard (the seed's flag).")
    var targetFlopsMillion: Double?

    func validate() throws {
        for (flag, value) in [("--target-flops-million", targetFlopsMillion), ("--target-latency-millisec", targetLatency)] {
            if let value, !(value.isFinite && value > 0) {
                throw ValidationError("\(flag) is \(value); it must be a finite number > 0")
            }
        }
    }

    /// True when any constraint flag was given.
    var isEmpty: Bool { constraints.isEmpty && targetLatency == nil && targetFlopsMillion == nil }

    /// Every constraint spec: `--constraint`s, then the shorthand flags'.
    var specs: [String] {
        var specs = constraints
        if let targetFlopsMillion {
            specs.append("\(MetricName.flopsMillion)<=\(targetFlopsMillion):vertex-hard")
        }
        if let targetLatency { specs.append("\(MetricName.latency)<=\(targetLatency):vertex-hard") }
        return specs
    }
}

/// The device types a job or trial measures on.
struct DeviceTypeOptions: ParsableArguments {
    @Option(
        name: .customLong("target-device-type"),
        help: ArgumentHelp(
            "A device type to measure latency and memory on; repeatable. With several, metrics are named latency_ms.TYPE.",
            valueName: "TYPE"))
    var deviceTypes: [String] = []

    /// The device types to measure: those given, else this machine's when a constraint reads a device metric.
    func measured(_ constraints: [Constraint], local: String) -> [String] {
        if !deviceTypes.isEmpty { return deviceTypes }
        return constraints.contains { MetricName($0.metric).isDeviceMetric && !$0.metric.contains(".") }
            ? [local] : []
    }
}
