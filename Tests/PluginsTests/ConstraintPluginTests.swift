import Constraints
import Foundation
import Plugins
import TestSupport
import Testing

/// A plugin's C source with the given descriptor fields and score body.
func pluginSource(
    version: String = "NAS_CONSTRAINT_ABI_VERSION", name: String = "\"custom\"", metric: String = "\"custom_metric\"",
    score: String? = nil, measure: Bool = false, entry: String = "nas_constraint_plugin"
) -> String {
    """
    #include <string.h>
    #include "nas_constraint.h"
    \(score.map { "static int32_t score(const nas_score_args *a, double *f, char *e, size_t n) { \($0) }" } ?? "")
    \(measure ? """
    static int32_t measure(const uint8_t *m, size_t size, const char *format, double *v, char *e, size_t n) {
        if (strcmp(format, "onnx") != 0) { strncpy(e, "only onnx", n); return NAS_STATUS_UNSUPPORTED; }
        *v = (double)size; return NAS_STATUS_OK;
    }
    """ : "")
    static const nas_constraint_descriptor d = {
        .abi_version = \(version), .struct_size = sizeof(nas_constraint_descriptor),
        .name = \(name), .metric = \(metric), .unit = "u", .description = "test plugin",
        .measure = \(measure ? "measure" : "NULL"), .score = \(score == nil ? "NULL" : "score"),
    };
    const nas_constraint_descriptor *\(entry)(void) { return &d; }
    """
}

@Suite struct ConstraintPluginTests {
    let directory: URL

    init() throws {
        directory = try TestSupport.temporaryDirectory("nas-plugins")
    }

    func build(_ source: String, _ name: String) async throws -> String {
        try await TestSupport.buildSharedLibrary(source: source, named: name, in: directory).path
    }

    func loadError(_ path: String) -> PluginError? {
        do {
            _ = try ConstraintPlugin(path: path)
            return nil
        } catch {
            return error as? PluginError
        }
    }

    @Test func loadsAValidPluginAndItsDescriptor() async throws {
        let plugin = try await ConstraintPlugin(path: build(pluginSource(measure: true), "good"))
        #expect(plugin.name == "custom" && plugin.metric == "custom_metric" && plugin.unit == "u")
        #expect(plugin.canMeasure && !plugin.hasScore && plugin.abiVersion == ConstraintPlugin.abiVersion)
        #expect(try plugin.measure(model: [1, 2, 3, 4, 5]) == 5)
        #expect(throws: PluginError.self) { try plugin.measure(model: [1], format: "tflite") }
    }

    @Test func missingFile() {
        #expect(loadError(directory.appendingPathComponent("nope.so").path)?.code == .fileMissing)
    }

    @Test func notASharedObject() throws {
        let path = directory.appendingPathComponent("text.so").path
        try "not an ELF file".write(toFile: path, atomically: true, encoding: .utf8)
        let error = try #require(loadError(path))
        #expect(error.code == .notLoadable)
        #expect(error.description.contains("cc -shared -fPIC"))
    }

    @Test func entrySymbolMissing() async throws {
        let error = try #require(loadError(try await build(pluginSource(entry: "some_other_name"), "nosymbol")))
        #expect(error.code == .entrySymbolMissing)
        #expect(error.description.contains("nas_constraint_plugin"))
    }

    @Test func abiTooNewAndTooOld() async throws {
        #expect(loadError(try await build(pluginSource(version: "99u"), "new"))?.code == .abiTooNew)
        #expect(loadError(try await build(pluginSource(version: "0u"), "old"))?.code == .abiTooOld)
    }

    @Test func emptyOrInvalidName() async throws {
        #expect(loadError(try await build(pluginSource(name: "\"\""), "empty"))?.code == .invalidName)
        #expect(loadError(try await build(pluginSource(name: "NULL"), "null"))?.code == .invalidName)
        #expect(loadError(try await build(pluginSource(name: "\"has space\""), "space"))?.code == .invalidName)
    }

    @Test func twoPluginsWithOneName() async throws {
        let first = try await build(pluginSource(), "first")
        let second = try await build(pluginSource(metric: "\"other\""), "second")
        var registry = ConstraintRegistry()
        try registry.load(file: first)
        do {
            try registry.load(file: second)
            Issue.record("a second plugin named 'custom' was accepted")
        } catch let error as PluginError {
            #expect(error.code == .duplicateName)
            #expect(error.description.contains(first))
        }
        #expect(throws: PluginError.self) {
            try ConstraintRegistry.standard(directories: [directory.path], environment: [:])
        }
    }

    @Test func unreadableDirectory() {
        do {
            _ = try ConstraintRegistry.standard(
                directories: [directory.appendingPathComponent("absent").path], environment: [:])
            Issue.record("a missing directory was accepted")
        } catch let error as PluginError {
            #expect(error.code == .directoryUnreadable)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test(arguments: [("nan", "*f = 0.0 / 0.0;"), ("inf", "*f = 1.0 / 0.0;"), ("negative", "*f = -0.5;")])
    func scoreReturningAnInvalidFactorIsAnError(label: String, body: String) async throws {
        var registry = ConstraintRegistry()
        try await registry.load(file: build(pluginSource(score: "\(body) return NAS_STATUS_OK;"), "bad_\(label)"))
        let constraint = try registry.constraint(parsing: "custom<=2")
        #expect(constraint.metric == "custom_metric" && constraint.scorer != nil)
        do {
            _ = try Reward(constraints: [constraint]).evaluate(accuracy: 0.9, metrics: ["custom_metric": 1])
            Issue.record("factor '\(label)' was accepted")
        } catch {
            #expect("\(error)".contains("custom") && "\(error)".contains("factor"))
        }
    }

    @Test func scoreFailureCarriesThePluginsMessage() async throws {
        var registry = ConstraintRegistry()
        let source = pluginSource(score: "strncpy(e, \"sensor offline\", n); return NAS_STATUS_INTERNAL;")
        try await registry.load(file: build(source, "failing"))
        let constraint = try registry.constraint(parsing: "custom<=2")
        #expect(throws: ConstraintError.self) { try constraint.factor(1) }
        do { _ = try constraint.factor(1) } catch { #expect("\(error)".contains("sensor offline")) }
    }

    @Test func customScoreDrivesTheReward() async throws {
        var registry = ConstraintRegistry()
        try await registry.load(file: build(pluginSource(score: "*f = a->target / (a->target + a->measured); return 0;"), "half"))
        let result = try Reward(constraints: [try registry.constraint(parsing: "custom<=3")])
            .evaluate(accuracy: 0.8, metrics: ["custom_metric": 3])
        #expect(abs(result.reward - 0.4) < 1e-12)
    }
}

@Suite struct ShippedPluginTests {
    @Test func latencyMemoryAndPowerLoadFromTheBuild() throws {
        var registry = ConstraintRegistry()
        try registry.load(file: TestSupport.productsDirectory.appendingPathComponent("libnas_latency.so").path)
        try registry.load(file: TestSupport.productsDirectory.appendingPathComponent("libnas_memory.so").path)
        try registry.load(file: TestSupport.productsDirectory.appendingPathComponent("libnas_power.so").path)
        #expect(registry.kind(named: "latency")?.metric == "latency_ms")
        #expect(registry.kind(named: "memory")?.unit == "bytes")
        let power = try #require(registry.kind(named: "power"))
        #expect(power.metric == "power_w" && power.plugin?.hasScore == true)
        // The Swift plugin's linear penalty: 20% over a 5 W budget with weight 2 keeps 60%.
        let constraint = try registry.constraint(parsing: "power<=5:weight=2")
        #expect(abs(try constraint.factor(6) - 0.6) < 1e-12)
        #expect(try constraint.factor(4) == 1)
        #expect(try constraint.factor(100) == 0)
    }

    @Test func standardRegistryReadsTheEnvironmentVariable() async throws {
        let directory = try TestSupport.temporaryDirectory("nas-env-plugins")
        _ = try await TestSupport.buildSharedLibrary(source: pluginSource(name: "\"from_env\""), named: "env", in: directory)
        let registry = try ConstraintRegistry.standard(
            directories: [], environment: [ConstraintRegistry.environmentVariable: directory.path])
        #expect(registry.kind(named: "from_env")?.plugin != nil)
        #expect(registry.kind(named: "flops")?.plugin == nil)
    }
}
