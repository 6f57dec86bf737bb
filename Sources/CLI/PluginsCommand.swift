import ArgumentParser
import Constraints
import Plugins
import Search
import System
import Trainer

/// `nas plugins`: what constraint plugins are loaded, and whether a file is a valid one.
struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List constraint plugins or check one plugin file.",
        subcommands: [List.self, Check.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the built-in constraints and the loaded plugins.")

        @OptionGroup var plugins: PluginOptions

        @Flag(help: "Print a JSON array, one object per constraint kind.")
        var json = false

        func run() throws {
            let registry = try plugins.registry()
            if json {
                print(JSON.array(registry.kinds.map(\.json)).text)
                return
            }
            print("NAME".padding(12) + "METRIC".padding(16) + "UNIT".padding(8) + "SCORE".padding(10) + "ORIGIN")
            for kind in registry.kinds {
                let score = kind.plugin?.hasScore == true ? "custom" : "standard"
                print(kind.name.padding(12) + kind.metric.padding(16) + kind.unit.padding(8) + score.padding(10) + kind.origin)
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load one plugin file, exercise its score and measure with test values, and print its descriptor.",
            discussion: """
                The plugin runs in a child process: one that crashes, hangs, fails, scores NaN, infinity or a \
                negative factor, or measures a value that is not a finite number >= 0 fails the check with what it \
                was doing. Exit status 2 when the check fails.
                """)

        @Argument(help: ArgumentHelp("The plugin's shared library.", valueName: "FILE.so"))
        var file: String

        @Flag(help: "Print the descriptor as one JSON object.")
        var json = false

        /// The child's half: load and exercise the plugin in this process.
        @Flag(name: .customLong("in-this-process"), help: .private)
        var inThisProcess = false

        /// How long the child may take.
        static let timeout: Duration = .seconds(60)
        /// The prefix of the child's lines saying what it is about to do.
        static let stepPrefix = "nas plugins check: step: "

        /// The child's half with `--in-this-process`: stop after loading (what `nas search` checks first).
        @Flag(name: .customLong("load-only"), help: .private)
        var loadOnly = false

        func run() async throws {
            if inThisProcess { return try exercise() }
            let arguments = ["plugins", "check", "--in-this-process", file] + (json ? ["--json"] : [])
            let result = try await Subprocess.run(TrialCommand.currentExecutable, arguments, timeout: Self.timeout)
            print(try Self.verdict(file: file, result), terminator: "")
        }

        /// Loads `file` in a child process and throws what went wrong if that crashed, hung or failed: a plugin whose
        /// loading would take the calling process down (a faulty constructor) is named in a clear error instead.
        static func loadInChild(_ file: String) throws {
            let child = try Subprocess(
                executable: TrialCommand.currentExecutable,
                arguments: ["plugins", "check", "--in-this-process", "--load-only", file], standardOutput: .pipe,
                standardError: .pipe)
            _ = try verdict(file: file, child.blockingCollect(timeout: timeout))
        }

        /// The standard output of a child that checked `file`, or the error saying at which step it failed.
        private static func verdict(file: String, _ result: Subprocess.Collected) throws -> String {
            let lines = result.errorText.split(separator: "\n").map(String.init)
            let step = lines.last { $0.hasPrefix(stepPrefix) }.map { String($0.dropFirst(stepPrefix.count)) }
                ?? "starting"
            if result.timedOut {
                throw CLIError.badInput(
                    "\(file): the plugin did not finish within \(timeout) while \(step); a plugin must return "
                        + "from each call")
            }
            switch result.termination {
            case .exited(0):
                return result.outputText
            case .exited(let status):
                let message = lines.last { $0.hasPrefix("Error: ") }.map { String($0.dropFirst(7)) }
                throw CLIError(message ?? "the check's child process \(result.termination) while \(step)", status: status)
            case .signaled:
                throw CLIError.badInput(
                    "\(file): the plugin crashed (\(result.termination)) while \(step); fix the plugin or remove it "
                        + "from the plugin directories (a search would fail every trial it scores)")
            }
        }

        /// Loads the plugin here, calls `score` and `measure` with test values, then prints the descriptor. Each step is
        /// announced on standard error first, so that the parent can say which one crashed.
        private func exercise() throws {
            func step(_ text: String) { printError(Self.stepPrefix + text) }
            step("loading it")
            let plugin = try ConstraintPlugin(path: file)
            if loadOnly { return }
            if let scorer = plugin.scorer {
                for (measured, target, exponents, weight) in Self.scoreCases {
                    let values = "measured \(measured), target \(target), alpha \(exponents.alpha), "
                        + "beta \(exponents.beta), weight \(weight)"
                    step("scoring \(values)")
                    do {
                        let constraint = try Constraint(
                            name: plugin.name, metric: plugin.metric, target: target, exponents: exponents, weight: weight,
                            scorer: scorer)
                        _ = try constraint.factor(measured)
                    } catch {
                        throw CLIError.badInput("\(file): scoring \(values): \(error)")
                    }
                }
            }
            if plugin.canMeasure {
                step("measuring a test model (a small CNN in ONNX)")
                let value = try plugin.measure(model: try Self.testModel())
                guard value >= 0 else {
                    throw CLIError.badInput(
                        "\(file): plugin '\(plugin.name)' measured \(value) on a test model; a metric must be 0 or more")
                }
            }
            if json {
                print(JSON.object([
                    ("name", .string(plugin.name)), ("metric", .string(plugin.metric)), ("unit", .string(plugin.unit)),
                    ("abi_version", .number(Double(plugin.abiVersion))), ("measures", .bool(plugin.canMeasure)),
                    ("custom_score", .bool(plugin.hasScore)), ("description", .string(plugin.summary)),
                    ("path", .string(plugin.path)),
                ]).integerText)
                return
            }
            print("name:        \(plugin.name)")
            print("metric:      \(plugin.metric)")
            print("unit:        \(plugin.unit)")
            print("abi:         \(plugin.abiVersion)")
            print("measure:     \(plugin.canMeasure ? "yes" : "no")")
            print("score:       \(plugin.hasScore ? "custom" : "standard")")
            print("description: \(plugin.summary)")
            let scored = plugin.hasScore ? "score at \(Self.scoreCases.count) test values" : "no score"
            print("checked:     \(scored), \(plugin.canMeasure ? "measure on a test model" : "no measure")")
        }

        /// Test values of `score`: below, at and far above the target, soft and hard, MnasNet's weights and others.
        static let scoreCases: [(Double, Double, Exponents, Double)] = [
            (0.5, 1, .soft, 1), (1, 1, .soft, 1), (2, 1, .soft, 1), (0.5, 1, .hard, 1), (1, 1, .hard, 1),
            (2, 1, .hard, 1), (0, 0.8, .hard, 0.07), (1e9, 3, .soft, 0.07), (3e-7, 2e-6, .hard, 2),
        ]

        /// A small CNN of the tutorial's family with seeded weights, as `measure` would get it in a search.
        static func testModel() throws -> [UInt8] {
            let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 4)])
            return try OnnxExport.serialized(
                architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 1))
        }
    }
}

extension ConstraintKind {
    /// The kind as `nas plugins list --json` prints it.
    var json: JSON {
        .object([
            ("name", .string(name)), ("metric", .string(metric)), ("unit", .string(unit)),
            ("score", .string(plugin?.hasScore == true ? "custom" : "standard")),
            ("measures", .bool(plugin?.canMeasure == true)), ("origin", .string(origin)),
            ("description", .string(summary)),
        ])
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
