import ArgumentParser
import Constraints
import Plugins

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

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load one plugin file and print its descriptor; exit status 2 when it cannot be loaded.")

        @Argument(help: ArgumentHelp("The plugin's shared library.", valueName: "FILE.so"))
        var file: String

        @Flag(help: "Print the descriptor as one JSON object.")
        var json = false

        func run() throws {
            let plugin = try ConstraintPlugin(path: file)
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
