import ArgumentParser
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

        func run() throws {
            let registry = try plugins.registry()
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

        func run() throws {
            let plugin: ConstraintPlugin
            do {
                plugin = try ConstraintPlugin(path: file)
            } catch let error as PluginError {
                printError("nas plugins check: \(error)")
                throw ExitCode(2)
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

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
