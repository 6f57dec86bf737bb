import ArgumentParser
import Constraints
import Foundation
import Plugins
import Search

/// `nas trials`: a job's trials as a table, JSON or CSV.
struct TrialsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trials",
        abstract: "Show a job's trials, sorted by reward, with the Pareto-optimal ones marked.",
        subcommands: [List.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List trials: id, state, top_1_accuracy, flops_million, latency per device, memory, nas_reward.",
            discussion: """
                A metric a trial did not report shows as '-'. '*' marks the Pareto-optimal trials: no other \
                succeeded trial has a higher top_1_accuracy and a lower or equal value of every metric the job \
                constrains. After the table: the hypervolume of the feasible front over accuracy and each \
                constrained metric (normalised by the targets) and its history trial by trial; --json adds each \
                trial's 'hypervolume' (the front's, up to that trial) and, for a trial that reported intermediate \
                results (--pruner), its learning 'curve' ([{"step": 1, "value": 0.71}, ...]). --reference-point sets the reference in \
                the metrics' own units (default: accuracy 0, every metric at its target).

                Examples:
                  nas trials list nas_jobs/mine
                  nas trials list nas_jobs/mine --json --reference-point top_1_accuracy=0.5,latency_ms=0.08
                  nas trials list nas_jobs/mine --sort latency_ms --csv > trials.csv
                """)

        @Argument(help: ArgumentHelp("The job directory of a search or train job.", valueName: "JOB_DIR"))
        var jobDirectory: String

        @Option(help: "Sort by nas_reward (best first), top_1_accuracy, id, or any metric (ascending).")
        var sort = ResultsTable.rewardKey

        @Flag(help: "Print a JSON array, one object per trial.")
        var json = false

        @Flag(help: "Print comma-separated values with a header line.")
        var csv = false

        @OptionGroup var hypervolume: HypervolumeOptions

        @OptionGroup var plugins: PluginOptions

        func validate() throws {
            if json && csv { throw ValidationError("choose one of --json and --csv") }
        }

        func run() throws {
            let (store, table) = try JobResults.load(jobDirectory, sort: sort, plugins: plugins)
            let history = try hypervolume.history(store, plugins: plugins)
            print(json ? table.json(with: history, curves: try store.curves()) : csv ? table.csv : table.text)
            if !json && !csv {
                print("\n" + history.text)
                if !table.failures.isEmpty { print("\nFailed:\n" + table.failures) }
            }
        }
    }
}

/// `nas report`: the job's results as one self-contained HTML file.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write an HTML report: sortable trials table, accuracy against each constraint with the Pareto front."
    )

    @Argument(help: ArgumentHelp("The job directory.", valueName: "JOB_DIR"))
    var jobDirectory: String

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Where to write the report.", valueName: "FILE"))
    var output = "report.html"

    @OptionGroup var hypervolume: HypervolumeOptions

    @OptionGroup var plugins: PluginOptions

    @Flag(help: "Print where the report was written as one JSON object.")
    var json = false

    func run() throws {
        let (store, table) = try JobResults.load(jobDirectory, sort: ResultsTable.rewardKey, plugins: plugins)
        let html = Report.html(
            config: store.config, table: table, plots: JobResults.plots(store.config, plugins: plugins),
            hypervolume: try hypervolume.history(store, plugins: plugins), curves: try store.curves())
        do {
            try html.write(toFile: output, atomically: true, encoding: .utf8)
        } catch {
            throw CLIError("cannot write the report to '\(output)': \(error.localizedDescription)")
        }
        if json {
            print(JSON.object([("report", .string(output)), ("trials", .number(Double(table.rows.count)))]).integerText)
        } else {
            print("report: \(output)")
        }
    }
}

/// Reading a job's results for the commands that show them.
enum JobResults {
    static func constraints(_ config: JobConfig, plugins: PluginOptions) -> [Constraint] {
        ((try? plugins.registry()) ?? ConstraintRegistry()).displayed(config.constraints)
    }

    static func load(_ directory: String, sort: String, plugins: PluginOptions) throws -> (JobStore, ResultsTable) {
        // Read only: showing a job changes nothing, so a finished job on a read-only folder shows too.
        let store = try JobStore.open(directory: directory, readOnly: true)
        let metrics = constraints(store.config, plugins: plugins).map(\.metric)
        return (store, ResultsTable(trials: try store.trials(), constrainedMetrics: metrics, sortKey: sort))
    }

    /// One plot per constraint; FLOPs when the job has none.
    static func plots(_ config: JobConfig, plugins: PluginOptions) -> [Report.Plot] {
        Report.plots(for: constraints(config, plugins: plugins))
    }
}
