import Constraints
import Foundation

/// A kind of constraint the tool knows: built in, or from a plugin.
public struct ConstraintKind: Sendable {
    /// The name a constraint spec uses, e.g. `flops` in `flops<=0.8M`.
    public var name: String
    /// The metric key it reads.
    public var metric: String
    /// The metric's unit.
    public var unit: String
    /// One line for listings.
    public var summary: String
    /// The plugin, or nil for a built-in.
    public var plugin: ConstraintPlugin?

    /// `built-in` or the plugin's path.
    public var origin: String { plugin?.path ?? "built-in" }
}

/// The constraints by name: built-ins plus the plugins loaded from directories and files.
///
/// A spec whose metric no kind names is still valid: it reads that metric from the trial as is.
public struct ConstraintRegistry: Sendable {
    /// The environment variable with more plugin directories, separated by ':'.
    public static let environmentVariable = "NAS_PLUGIN_PATH"
    /// The shipped plugins, found beside the `nas` executable when the package built them.
    public static let shippedPluginFiles = ["libnas_latency.so", "libnas_memory.so", "libnas_power.so"]

    /// Every kind, built-ins first, then plugins in load order.
    public private(set) var kinds: [ConstraintKind]

    /// The built-in kinds: what the tool computes itself.
    public static let builtIns: [ConstraintKind] = [
        ConstraintKind(
            name: "flops", metric: "flops", unit: "FLOPs",
            summary: "FLOPs of the model by TensorFlow's profiler convention (2 per multiply-add, bias adds counted)",
            plugin: nil)
    ]

    /// A registry with the built-ins only.
    public init() {
        kinds = Self.builtIns
    }

    /// Built-ins, the shipped plugins beside the executable, then `NAS_PLUGIN_PATH`'s directories and `directories`.
    public static func standard(
        directories: [String], environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ConstraintRegistry {
        var registry = ConstraintRegistry()
        try registry.loadShipped()
        for file in try userPluginFiles(directories: directories, environment: environment) {
            try registry.load(file: file)
        }
        return registry
    }

    /// The plugin files `standard(directories:environment:)` loads besides the shipped ones: every `*.so` of
    /// `NAS_PLUGIN_PATH`'s directories, then of `directories`, each directory in name order.
    public static func userPluginFiles(
        directories: [String], environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> [String] {
        let fromEnvironment = (environment[environmentVariable] ?? "").split(separator: ":").map(String.init)
        return try (fromEnvironment + directories).flatMap(pluginFiles(in:))
    }

    /// The kind with this name, or else the first kind reading this metric.
    public func kind(named name: String) -> ConstraintKind? {
        kinds.first { $0.name == name } ?? kinds.first { $0.metric == name }
    }

    /// Adds a loaded plugin; two kinds with one name are refused.
    public mutating func register(_ plugin: ConstraintPlugin) throws {
        if let existing = kinds.first(where: { $0.name == plugin.name }) {
            throw PluginError(
                .duplicateName, plugin.path,
                "defines constraint '\(plugin.name)', which \(existing.origin) already defines; rename one of them or load only one")
        }
        kinds.append(
            ConstraintKind(
                name: plugin.name, metric: plugin.metric, unit: plugin.unit, summary: plugin.summary, plugin: plugin))
    }

    /// Loads one plugin file.
    public mutating func load(file path: String) throws {
        try register(ConstraintPlugin(path: path))
    }

    /// The `*.so` files of a directory, in name order.
    static func pluginFiles(in directory: String) throws -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw PluginError(
                .directoryUnreadable, directory,
                "cannot read this plugin directory (\((error as NSError).localizedDescription)); check --plugin-dir and \(Self.environmentVariable)")
        }
        return names.sorted().filter { $0.hasSuffix(".so") }.map { (directory as NSString).appendingPathComponent($0) }
    }

    /// Loads the plugins this package ships, when they sit beside the running executable.
    public mutating func loadShipped() throws {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        let directory = (executable as NSString).deletingLastPathComponent
        guard !directory.isEmpty else { return }
        for file in Self.shippedPluginFiles {
            let path = (directory as NSString).appendingPathComponent(file)
            if FileManager.default.fileExists(atPath: path), !kinds.contains(where: { $0.plugin?.path == path }) {
                try load(file: path)
            }
        }
    }

    /// Reads a constraint spec (see `Constraint.init(parsing:)`), resolving its metric through the registry.
    ///
    /// `cpu=latency_ms<=3` keeps the name `cpu`; `power<=5` with a plugin named `power` reads the plugin's
    /// metric, takes its unit and uses its score function when it has one.
    public func constraint(parsing spec: String) throws -> Constraint {
        var constraint = try Constraint(parsing: spec)
        guard let kind = kind(named: constraint.metric) else { return constraint }
        if constraint.name == constraint.metric { constraint.name = kind.name }
        constraint.metric = kind.metric
        if constraint.unit.isEmpty { constraint.unit = kind.unit }
        constraint.scorer = kind.plugin?.scorer
        return constraint
    }
}
