internal import CNasPlugin
import Constraints
import Foundation

/// One constraint plugin loaded with `dlopen`: its descriptor, kept alive with the library that holds it.
public final class ConstraintPlugin: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init, and the ABI requires the plugin's
    // callbacks to be reentrant.
    //
    // A plugin is never dlclose'd, not even after a failed check: a plugin written in Swift registers type
    // metadata with the Swift runtime when it loads, and unloading it leaves the runtime's caches pointing
    // into unmapped memory (a crash seen in Foundation long after the registry was gone).

    /// The shared library's path.
    public let path: String
    /// The constraint's name, unique among loaded plugins.
    public let name: String
    /// The metric key the constraint reads.
    public let metric: String
    /// The metric's unit (may be empty).
    public let unit: String
    /// One line for listings (may be empty).
    public let summary: String
    /// The ABI version the plugin was built against.
    public let abiVersion: UInt32
    /// True when the plugin computes its metric from a model.
    public var canMeasure: Bool { measureFunction != nil }
    /// True when the plugin replaces the standard factor.
    public var hasScore: Bool { scoreFunction != nil }

    private let measureFunction: nas_measure_fn?
    private let scoreFunction: nas_score_fn?

    /// The newest ABI version this build understands.
    public static let abiVersion = UInt32(NAS_CONSTRAINT_ABI_VERSION)
    /// The oldest ABI version this build still loads.
    public static let minimumABIVersion = UInt32(NAS_CONSTRAINT_ABI_MIN)
    /// The symbol every plugin exports.
    public static let entrySymbol = NAS_CONSTRAINT_ENTRY_SYMBOL

    /// Loads the plugin at `path` with `dlopen(RTLD_NOW | RTLD_LOCAL)` and checks its descriptor.
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw PluginError(.fileMissing, path, "no such file; check the path or the --plugin-dir you gave")
        }
        _ = dlerror()
        // dlopen searches the library path for a name without a '/'; a user naming a file means that file.
        guard let handle = dlopen(path.contains("/") ? path : "./" + path, RTLD_NOW | RTLD_LOCAL) else {
            throw PluginError(
                .notLoadable, path,
                "cannot be loaded as a shared library (\(Self.lastDLError())); build it with 'cc -shared -fPIC'")
        }
        guard let symbol = dlsym(handle, Self.entrySymbol) else {
            throw PluginError(
                .entrySymbolMissing, path,
                "does not export '\(Self.entrySymbol)'; a constraint plugin must define it (see plugins/include/nas_constraint.h)")
        }
        let entry = unsafeBitCast(symbol, to: nas_constraint_entry_fn.self)
        guard let descriptorPointer = entry() else {
            throw PluginError(.nullDescriptor, path, "'\(Self.entrySymbol)' returned NULL instead of a descriptor")
        }
        // Read the version alone first: a descriptor of another ABI may have another layout.
        let version = UnsafeRawPointer(descriptorPointer).load(as: UInt32.self)
        guard version >= Self.minimumABIVersion else {
            throw PluginError(
                .abiTooOld, path,
                "was built for plugin ABI \(version), older than the oldest this nas loads (\(Self.minimumABIVersion)); rebuild it against plugins/include/nas_constraint.h")
        }
        guard version <= Self.abiVersion else {
            throw PluginError(
                .abiTooNew, path,
                "was built for plugin ABI \(version), newer than this nas understands (\(Self.abiVersion)); upgrade nas or rebuild the plugin against this version's header")
        }
        let descriptor = descriptorPointer.pointee
        guard descriptor.struct_size >= UInt32(MemoryLayout<nas_constraint_descriptor>.size) else {
            throw PluginError(
                .descriptorTooSmall, path,
                "its descriptor is \(descriptor.struct_size) bytes, smaller than ABI \(version)'s \(MemoryLayout<nas_constraint_descriptor>.size); set struct_size = sizeof(nas_constraint_descriptor)")
        }
        let name = descriptor.name.map { String(cString: $0) } ?? ""
        guard Constraint.isIdentifier(name) else {
            throw PluginError(
                .invalidName, path,
                name.isEmpty
                    ? "its descriptor has an empty name; give the constraint a name of letters, digits, '_', '.' or '-'"
                    : "its name '\(name)' must be letters, digits, '_', '.' or '-'")
        }
        let metric = descriptor.metric.map { String(cString: $0) } ?? ""
        guard metric.isEmpty || Constraint.isIdentifier(metric) else {
            throw PluginError(.invalidName, path, "its metric '\(metric)' must be letters, digits, '_', '.' or '-'")
        }
        self.path = path
        self.name = name
        self.metric = metric.isEmpty ? name : metric
        self.unit = descriptor.unit.map { String(cString: $0) } ?? ""
        self.summary = descriptor.description.map { String(cString: $0) } ?? ""
        self.abiVersion = version
        self.measureFunction = descriptor.measure
        self.scoreFunction = descriptor.score
    }

    /// Computes the plugin's metric from a model's bytes, e.g. an ONNX file.
    public func measure(model: [UInt8], format: String = "onnx") throws -> Double {
        guard let measureFunction else {
            throw PluginError(.callFailed, path, "plugin '\(name)' cannot measure a model: its metric is measured elsewhere")
        }
        var value = Double.nan
        let (status, message) = Self.call { error, capacity in
            model.withUnsafeBufferPointer { bytes in
                measureFunction(bytes.baseAddress, bytes.count, format, &value, error, capacity)
            }
        }
        guard status == 0 else {
            throw PluginError(.callFailed, path, "plugin '\(name)' failed to measure the model: \(message)")
        }
        guard value.isFinite else {
            throw PluginError(.callFailed, path, "plugin '\(name)' measured \(value); a metric must be finite")
        }
        return value
    }

    /// Calls the plugin's `score`, or nil when it has none.
    func score(measured: Double, target: Double, exponents: Exponents, weight: Double) throws -> Double? {
        guard let scoreFunction else { return nil }
        var args = nas_score_args(
            measured: measured, target: target, alpha: exponents.alpha, beta: exponents.beta, weight: weight)
        var factor = Double.nan
        let (status, message) = Self.call { error, capacity in scoreFunction(&args, &factor, error, capacity) }
        guard status == 0 else {
            throw ConstraintError.scorerFailed(name, "\(message) (status \(status), plugin \(path))")
        }
        return factor
    }

    /// The scorer to attach to constraints of this plugin, or nil when it keeps the standard factor.
    public var scorer: (any ConstraintScorer)? {
        hasScore ? PluginScorer(plugin: self) : nil
    }

    private static func call(_ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> (Int32, String) {
        let capacity = 512
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: capacity) { buffer in
            buffer.initialize(repeating: 0)
            let status = body(buffer.baseAddress!, capacity)
            buffer[capacity - 1] = 0
            let text = String(cString: buffer.baseAddress!)
            return (status, text.isEmpty ? "no message" : text)
        }
    }

    private static func lastDLError() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }
}

/// A plugin's `score` as a `ConstraintScorer`; holds the plugin, so the library stays loaded.
public struct PluginScorer: ConstraintScorer {
    /// The plugin whose `score` this calls.
    public let plugin: ConstraintPlugin

    /// The plugin's factor for one measured value.
    public func factor(measured: Double, target: Double, exponents: Exponents, weight: Double) throws -> Double {
        try plugin.score(measured: measured, target: target, exponents: exponents, weight: weight) ?? .nan
    }
}
