import Constraints
import Fleet
import Foundation

/// A whole job from start to end: `job_status.json` where file-mode workers watch, the job loop, the HTML report,
/// the published outputs and the closing summary.
///
/// The CLI parses flags into a store, constraints and a launcher, and calls `run`; everything a job does between
/// its first and its last trial happens here and in `JobLoop`.
public struct JobRunner {
    /// The job.
    public var store: JobStore
    /// The job's constraints, for the report's plots and the table's Pareto front.
    public var constraints: [Constraint]
    /// The loop's settings.
    public var configuration: JobLoop.Configuration

    /// A runner for `store`'s job.
    public init(store: JobStore, constraints: [Constraint], configuration: JobLoop.Configuration) {
        self.store = store
        self.constraints = constraints
        self.configuration = configuration
    }

    private var config: JobConfig { store.config }

    /// Runs the job's loop with `launcher`, then writes the report and the summary; returns how it ended.
    public func run(
        launcher: any TrialLauncher, observer: any JobObserver, clock: any JobClock = SystemJobClock(),
        interrupts: @escaping () -> Int, succeeded: @escaping (Int) -> Void = { _ in },
        propose: @escaping JobLoop.Proposer,
        command: @escaping (TrialRecord, _ directory: String) throws -> TrialRun
    ) throws -> JobOutcome {
        observer.event(
            .started(
                directory: store.directory, maxTrials: config.maxTrials, maxParallelTrials: config.maxParallelTrials,
                name: config.name))
        // job_status.json tells file-mode workers watching the job's folder (or bucket) when the job has ended.
        let statusStorages = try Self.statusStorages(config, directory: store.directory)
        for storage in statusStorages { try JobState.running.write(to: storage) }
        let loop = JobLoop(
            store: store, configuration: configuration, launcher: launcher, observer: observer, clock: clock,
            interrupts: interrupts, succeeded: succeeded, propose: propose, command: command)
        let outcome = try loop.run()
        try finish(outcome, observer: observer)
        let ended: JobState = switch outcome.stop {
        case nil: .succeeded
        // Resumable: file-mode workers keep waiting for the trials a resume will run.
        case .interrupted: .paused
        case .failures: .failed
        }
        for storage in statusStorages { try ended.write(to: storage) }
        return outcome
    }

    /// Where `job_status.json` goes: the job's folder (or bucket), and with several device types each one's
    /// exchange folder `devices/TYPE`, which file-mode workers of that type watch.
    public static func statusStorages(_ config: JobConfig, directory: String) throws -> [any ObjectStorage] {
        let root = config.outputLocation ?? directory
        var locations = [root]
        if config.targetDeviceTypes.count > 1 {
            locations += config.targetDeviceTypes.map { (root.hasSuffix("/") ? root : root + "/") + "devices/\($0)" }
        }
        return try locations.map { try StorageLocation.parse($0).open() }
    }

    /// The bucket (or folder) where the job publishes its outputs, when it has one besides its local folder.
    public static func outputStorage(_ config: JobConfig) throws -> (any ObjectStorage)? {
        try config.outputLocation.map { try StorageLocation.parse($0).open() }
    }

    /// The closing summary: best trials, where the report and the trials are.
    private func finish(_ outcome: JobOutcome, observer: any JobObserver) throws {
        let table = ResultsTable(trials: try store.trials(), constrainedMetrics: constraints.map(\.metric))
        let report = (store.directory as NSString).appendingPathComponent("report.html")
        let history = HypervolumeHistory(trials: try store.trials(), objectives: ObjectiveSpace(constraints: constraints))
        try Report.html(
            config: config, table: table, plots: Report.plots(for: constraints), hypervolume: history,
            curves: try store.curves())
            .write(toFile: report, atomically: true, encoding: .utf8)
        var published = ""
        if let storage = try Self.outputStorage(config) {
            try storage.write("report.html", data: Array(try Data(contentsOf: URL(fileURLWithPath: report))))
            published = "\noutputs: \(storage.location) (report.html, one folder per trial)"
        }
        let counts = Dictionary(grouping: table.rows, by: \.trial.state).mapValues(\.count)
        var text = "\n\(config.kind == "train" ? "Train" : "Search") job \(config.name): "
        text += "\(counts[.succeeded] ?? 0) succeeded, \(counts[.failed] ?? 0) failed"
        if let cancelled = counts[.cancelled] { text += ", \(cancelled) cancelled" }
        if let pruned = counts[.pruned] { text += ", \(pruned) pruned" }
        if let infeasible = counts[.infeasible] { text += ", \(infeasible) infeasible (not trained)" }
        if let screened = counts[.screened] { text += ", \(screened) screened (not trained)" }
        if let stop = outcome.stop {
            text += "; stopped: \(stop)"
        } else if outcome.exhausted {
            text += "; the search space has no more architectures"
        }
        let lines = table.text.split(separator: "\n")
        text += "\n\nBest trials (* = Pareto-optimal):\n" + lines.prefix(6).joined(separator: "\n")
        text += "\n\nreport: \(report)\nall trials: nas trials list \(store.directory)" + published
        if outcome.stop == .interrupted { text += "\nresume: nas \(config.kind) --resume \(store.directory)" }
        observer.event(.finished(directory: store.directory, report: report))
        observer.summary(text)
    }
}
