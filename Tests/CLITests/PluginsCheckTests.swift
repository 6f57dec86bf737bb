import Foundation
import Search
import TestSupport
import Testing

/// A plugin named `name` whose `score` and `measure` have the given C bodies (nil: no such callback).
func checkedPluginSource(name: String, score: String?, measure: String?) -> String {
    """
    #include <stddef.h>
    #include "nas_constraint.h"
    \(score.map { "static int32_t score(const nas_score_args *a, double *f, char *e, size_t n) { \($0) }" } ?? "")
    \(measure.map {
        "static int32_t measure(const uint8_t *m, size_t size, const char *format, double *v, char *e, size_t n) { \($0) }"
    } ?? "")
    static const nas_constraint_descriptor d = {
        .abi_version = NAS_CONSTRAINT_ABI_VERSION, .struct_size = sizeof(nas_constraint_descriptor),
        .name = "\(name)", .metric = "\(name)_metric", .unit = "u", .description = "check test",
        .measure = \(measure == nil ? "NULL" : "measure"), .score = \(score == nil ? "NULL" : "score"),
    };
    const nas_constraint_descriptor *nas_constraint_plugin(void) { return &d; }
    """
}

/// `nas plugins check` runs the plugin in a child process and exercises it with test values.
@Suite struct PluginsCheckTests {
    static let crash = "*(volatile int *)0 = 1; return 0;"

    @Test(arguments: [
        ("score_crash", crash, nil, "crashed", "scoring measured"),
        ("score_nan", "*f = 0.0 / 0.0; return 0;", nil, "nan; a factor must be finite and >= 0", "scoring measured"),
        ("score_negative", "*f = a->measured > a->target ? -0.5 : 1; return 0;", nil, "-0.5", "measured 2.0"),
        ("measure_crash", nil, crash, "crashed", "measuring a test model"),
        ("measure_negative", nil, "*v = -(double)size; return 0;", "a metric must be 0 or more", "measured -"),
    ] as [(String, String?, String?, String, String)])
    func aBadPluginFailsTheCheckWithWhatItWasDoing(
        _ name: String, _ score: String?, _ measure: String?, _ problem: String, _ doing: String
    ) async throws {
        let directory = try TestSupport.temporaryDirectory("nas-check")
        let library = try await TestSupport.buildSharedLibrary(
            source: checkedPluginSource(name: name, score: score, measure: measure), named: name, in: directory)
        let result = try await TestSupport.nas(["plugins", "check", library.path])
        #expect(result.status == 2, "\(name): \(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("Error: \(library.path)"), "\(name): \(result.stderr)")
        #expect(result.stderr.contains(problem) && result.stderr.contains(doing), "\(name): \(result.stderr)")
        #expect(!result.stdout.contains("name:"), "\(name): \(result.stdout)")
    }

    @Test func aGoodPluginPassesAndABareNameOpensTheFileInTheCurrentFolder() async throws {
        let directory = try TestSupport.temporaryDirectory("nas-check")
        _ = try await TestSupport.buildSharedLibrary(
            source: checkedPluginSource(
                name: "good", score: "*f = a->measured <= a->target ? 1 : a->target / a->measured; return 0;",
                measure: "*v = (double)size; return 0;"),
            named: "good", in: directory)
        let result = try await TestSupport.run(
            try TestSupport.nasBinary(), ["plugins", "check", "libgood.so"], currentDirectory: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("name:        good"), "\(result.stdout)")
        #expect(result.stdout.contains("checked:     score at 9 test values, measure on a test model"), "\(result.stdout)")
        let json = try await TestSupport.run(
            try TestSupport.nasBinary(), ["plugins", "check", "libgood.so", "--json"], currentDirectory: directory)
        #expect(json.status == 0 && json.stdout.contains("\"path\":\"libgood.so\""), "\(json.stdout)\(json.stderr)")
    }

    /// A plugin that crashes the process of every other trial it scores (a count kept in a file, trials one at a
    /// time): the search fails those trials with a reason naming the plugin, and goes on to the next.
    @Test func aPluginCrashingDuringASearchFailsOnlyTheTrialsItScored() async throws {
        let directory = try TestSupport.temporaryDirectory("nas-crashy")
        let counter = directory.appendingPathComponent("calls").path
        let score = """
            int fd = open("\(counter)", O_WRONLY | O_CREAT | O_APPEND, 0644); write(fd, "x", 1);
            struct stat info; fstat(fd, &info); close(fd);
            if (info.st_size % 2 == 1) { *(volatile int *)0 = 1; }
            *f = 1; return 0;
            """
        let plugins = directory.appendingPathComponent("plugins")
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        let source = "#include <fcntl.h>\n#include <unistd.h>\n#include <sys/stat.h>\n"
            + checkedPluginSource(name: "crashy", score: score, measure: nil).replacingOccurrences(
                of: ".metric = \"crashy_metric\"", with: ".metric = \"flops\"")
        _ = try await TestSupport.buildSharedLibrary(source: source, named: "crashy", in: plugins)
        let result = try await TestSupport.nas(
            [
                "search", "--root-output-dir", directory.path, "--job-name", "crashy", "--algorithm", "random",
                "--seed", "3", "--max-trials", "3", "--max-parallel-trials", "1", "--max-failed-trials", "5",
                "--plugin-dir", plugins.path, "--constraint", "crashy<=1M",
            ] + SearchCommandTests.quick)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let trials = try JobStore.open(directory: directory.appendingPathComponent("crashy").path).trials()
        #expect(trials.map(\.state) == [.failed, .succeeded, .failed], "\(trials.map(\.error))")
        for trial in trials where trial.state == .failed {
            let reason = trial.error ?? ""
            #expect(reason.contains("killed by signal 11") && reason.contains("calling plugin 'crashy'"), "\(reason)")
            #expect(reason.contains("score measured"), "\(reason)")
        }
    }

    /// A plugin whose loading crashes (a faulty constructor) would take `nas search` down without a word if loaded
    /// there first: the search loads each plugin in a child process beforehand and names the culprit instead.
    @Test func aPluginCrashingWhileItLoadsStopsASearchWithItsName() async throws {
        let directory = try TestSupport.temporaryDirectory("nas-crash-load")
        let plugins = directory.appendingPathComponent("plugins")
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        let source = "__attribute__((constructor)) static void boom(void) { *(volatile int *)0 = 1; }\n"
            + checkedPluginSource(name: "boom", score: nil, measure: nil)
        let library = try await TestSupport.buildSharedLibrary(source: source, named: "boom", in: plugins)
        for command in [["search"], ["train", "--search-job", directory.path, "--trials", "1"]] {
            let result = try await TestSupport.nas(
                command + ["--root-output-dir", directory.path, "--job-name", "j", "--plugin-dir", plugins.path]
                    + SearchCommandTests.quick)
            #expect(result.status == 2, "\(command): \(result.stdout)\(result.stderr)")
            #expect(
                result.stderr.contains("Error: \(library.path): the plugin crashed")
                    && result.stderr.contains("while loading it"), "\(command): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("j").path))
        }
    }
}
