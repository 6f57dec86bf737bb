import ArgumentParser
import Constraints
import Fleet
import Foundation
import Search
import System
import Trainer

/// Runs a job's trials as `nas trainer` processes, at most `maxParallelTrials` at once, recording each change
/// of state in the job store as it happens, until the job is done, too many trials failed, or the user stops it.
struct SearchLoop {
    let plan: JobPlan
    let output: ProgressOptions
    let onInterrupt: InterruptPolicy
    let fleet: JobFleetOptions

    private var store: JobStore { plan.store }
    private var config: JobConfig { plan.store.config }

    func run() throws {
        let reporter = ProgressReporter(options: output)
        let requeued = try store.requeueInterrupted()
        if requeued > 0 {
            reporter.event("resuming: \(requeued) interrupted trial(s) will run again", json: ["event": "resumed", "requeued": requeued])
        }
        reporter.event(
            "job \(config.name) in \(store.directory): \(config.maxTrials) trials, \(config.maxParallelTrials) at once",
            json: ["event": "job_started", "job_dir": store.directory, "max_trials": config.maxTrials])
        // Outputs may be published elsewhere; latency is measured through a fleet: the one given, or one embedded
        // for the job's duration.
        var trainerExtraArguments: [String] = config.outputLocation.map { ["--output-dir", $0] } ?? []
        var trainerEnvironment: [String: String] = [:]
        var embedded: EmbeddedFleet?
        defer { embedded?.stop() }
        if !config.targetDeviceTypes.isEmpty {
            let url: String
            if let coordinator = fleet.coordinator {
                url = coordinator
                trainerEnvironment["NAS_FLEET_TOKEN"] = try fleet.token.token()
            } else {
                let started = try EmbeddedFleet(
                    jobDirectory: store.directory, listen: fleet.listen, localDeviceType: DeviceType.local
                ) { line in reporter.event(line, json: ["event": "fleet", "message": line]) }
                embedded = started
                url = started.url
                trainerEnvironment["NAS_FLEET_TOKEN"] = started.token
            }
            trainerExtraArguments += [
                "--coordinator", url, "--transport", fleet.transport.rawValue, "--push-wait", String(fleet.pushWait),
            ]
        }
        // job_status.json tells file-mode workers watching the job's folder (or bucket) when the job has ended.
        let statusStorages = try JobPlan.statusStorages(config, directory: store.directory)
        for storage in statusStorages { try JobState.running.write(to: storage) }
        // Counted instead of dying on them, so the loop can stop gracefully.
        let interrupts = try SignalTrap([SIGINT, SIGTERM])
        defer { interrupts.release() }

        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var running: [Int: (process: Subprocess, started: Date)] = [:]
        var durations: [Double] = []
        var stopReason: String?
        var exhausted = false
        var cancelled = false

        while true {
            // Reap finished trainers and record them.
            for (id, entry) in running {
                guard let ending = entry.process.poll() else { continue }
                running[id] = nil
                durations.append(Date().timeIntervalSince(entry.started))
                try record(id, ending, entry.process, cancelled: cancelled, reporter)
            }
            var trials = try store.trials()
            let failed = trials.filter { $0.state == .failed }.count
            if stopReason == nil, failed >= config.maxFailedTrials {
                stopReason = "\(failed) trials failed (--max-failed-trials \(config.maxFailedTrials))"
                reporter.event("stopping: \(stopReason!)", json: ["event": "stopping", "reason": stopReason!])
            }
            let signals = interrupts.count
            if signals > 0, stopReason == nil {
                stopReason = "interrupted"
                reporter.event(
                    running.isEmpty || onInterrupt == .wait
                        ? "interrupted: waiting for \(running.count) running trial(s); Ctrl-C again cancels them"
                        : "interrupted: cancelling \(running.count) running trial(s)",
                    json: ["event": "interrupted", "running": running.count])
            }
            if !cancelled, signals > 1 || (signals > 0 && onInterrupt == .cancel) {
                cancelled = true
                for entry in running.values { entry.process.signal(SIGTERM, toGroup: true) }
            }
            // Launch while there is room: pending trials first (a resumed job), then new proposals.
            while stopReason == nil, !exhausted, running.count < config.maxParallelTrials {
                guard let trial = try nextTrial(&trials) else {
                    exhausted = true
                    break
                }
                let directory = store.trialDirectory(trial.id)
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                // Recorded as running first: a search killed right after the spawn re-runs the trial on resume.
                try store.markRunning(trial.id)
                let process: Subprocess
                do {
                    // Its own group keeps a terminal's Ctrl-C away from it, so that this loop decides whether running
                    // trials finish or stop; ParentWatch ends it if the search dies.
                    process = try Subprocess(
                        executable: executable, arguments: plan.trainerArguments(trial: trial) + trainerExtraArguments,
                        environment: trainerEnvironment.merging(ParentWatch.environment) { $1 },
                        standardOutput: .append((directory as NSString).appendingPathComponent("trainer.log")),
                        standardError: .standardOutput, processGroup: .own)
                } catch {
                    try store.markFailed(trial.id, reason: "\(error)")
                    throw error
                }
                running[trial.id] = (process, Date())
                reporter.event(
                    "trial \(trial.id) started: \(Self.describe(trial.parameters))",
                    json: ["event": "trial_started", "trial": trial.id, "nas_params": trial.parameters])
                trials = try store.trials()
            }
            if running.isEmpty, stopReason != nil || exhausted { break }
            let done = trials.filter { $0.state == .succeeded || $0.state == .failed }.count
            let best = trials.compactMap { t in t.reward.map { (id: t.id, reward: $0) } }.max { $0.reward < $1.reward }
            let remaining = durations.isEmpty
                ? nil
                : durations.reduce(0, +) / Double(durations.count)
                    * Double(max(0, config.maxTrials - done)) / Double(config.maxParallelTrials)
            reporter.status(
                done: done, running: running.count, failed: trials.filter { $0.state == .failed }.count,
                total: config.maxTrials, best: best, remaining: remaining)
            usleep(100_000)
        }
        try finish(reporter, stopReason: stopReason, exhausted: exhausted)
        let ended: JobState = stopReason == nil ? .succeeded : stopReason == "interrupted" ? .cancelled : .failed
        for storage in statusStorages { try ended.write(to: storage) }
        if stopReason == "interrupted" { throw ExitCode(130) }
        if stopReason != nil { throw ExitCode(1) }
    }

    /// The next trial to run: a pending one, or a new proposal while the job has fewer than `maxTrials`.
    private func nextTrial(_ trials: inout [TrialRecord]) throws -> TrialRecord? {
        if let pending = trials.first(where: { $0.state == .pending }) { return pending }
        guard trials.count < config.maxTrials else { return nil }
        let finished = trials.filter { $0.state == .succeeded || $0.state == .failed }
            .sorted { ($0.endedAt ?? 0, $0.id) < ($1.endedAt ?? 0, $1.id) }
            .map { TrialOutcome(choice: SearchChoice($0.decisions), reward: $0.reward) }
        guard let parameters = try plan.propose(trials.map { SearchChoice($0.decisions) }, finished) else { return nil }
        let id = try store.addTrial(parameters: parameters.jsonText, decisions: parameters.choice.decisions)
        try parameters.write(toTrialDirectory: store.trialDirectory(id))
        trials = try store.trials()
        return trials.first { $0.id == id }
    }

    /// Records how a trainer ended: its metrics and reward, or why it failed.
    private func record(
        _ id: Int, _ ending: Subprocess.Termination, _ process: Subprocess, cancelled: Bool, _ reporter: ProgressReporter
    ) throws {
        let directory = store.trialDirectory(id)
        if ending == .exited(0) {
            let path = (directory as NSString).appendingPathComponent("metrics.json")
            if let data = FileManager.default.contents(atPath: path),
                let metrics = try? JSONDecoder().decode([String: Double].self, from: data),
                let reward = metrics[ResultsTable.rewardKey]
            {
                try store.markSucceeded(id, metrics: metrics, reward: reward)
                let accuracy = metrics[ResultsTable.accuracyKey].map { String(format: "%.4f", $0) } ?? "?"
                reporter.event(
                    "trial \(id) succeeded: accuracy \(accuracy), reward \(String(format: "%.4f", reward))",
                    json: ["event": "trial_succeeded", "trial": id, "metrics": metrics])
                return
            }
            try store.markFailed(id, reason: "the trainer exited 0 but wrote no readable metrics.json")
        } else if cancelled {
            try store.markFailed(id, reason: "cancelled by the user", state: .cancelled)
            reporter.event("trial \(id) cancelled", json: ["event": "trial_cancelled", "trial": id])
            return
        } else {
            let reason: String
            switch ending {
            case .exited(TrainerCommand.nanExitCode): reason = "failed_with_nan_error"
            case .exited(let status): reason = "trainer exited with status \(status): \(process.logTail())"
            case .signaled(let signal): reason = "trainer killed by signal \(signal)"
            }
            try store.markFailed(id, reason: reason)
        }
        let reason = try store.trials().first { $0.id == id }?.error ?? "failed"
        reporter.event("trial \(id) failed: \(reason)", json: ["event": "trial_failed", "trial": id, "reason": reason])
    }

    /// The closing summary: best trials, where the report and the trials are.
    private func finish(_ reporter: ProgressReporter, stopReason: String?, exhausted: Bool) throws {
        let constraints = config.constraints.compactMap { try? plan.registry.constraint(parsing: $0) }
        let table = ResultsTable(trials: try store.trials(), constrainedMetrics: constraints.map(\.metric))
        let plots = constraints.map { Report.Plot(metric: $0.metric, target: $0.target) }
        let report = (store.directory as NSString).appendingPathComponent("report.html")
        try Report.html(
            config: config, table: table,
            plots: plots.isEmpty ? [Report.Plot(metric: "flops_million", target: nil)] : plots
        ).write(toFile: report, atomically: true, encoding: .utf8)
        var published = ""
        if let storage = try JobPlan.outputStorage(config) {
            try storage.write("report.html", data: Array(try Data(contentsOf: URL(fileURLWithPath: report))))
            published = "\noutputs: \(storage.location) (report.html, one folder per trial)"
        }
        let counts = Dictionary(grouping: table.rows, by: \.trial.state).mapValues(\.count)
        var text = "\n\(config.kind == "train" ? "Train" : "Search") job \(config.name): "
        text += "\(counts[.succeeded] ?? 0) succeeded, \(counts[.failed] ?? 0) failed"
        if let cancelled = counts[.cancelled] { text += ", \(cancelled) cancelled" }
        if let stopReason { text += "; stopped: \(stopReason)" } else if exhausted, table.rows.count < config.maxTrials {
            text += "; the search space has no more architectures"
        }
        let lines = table.text.split(separator: "\n")
        text += "\n\nBest trials (* = Pareto-optimal):\n" + lines.prefix(6).joined(separator: "\n")
        text += "\n\nreport: \(report)\nall trials: nas trials list \(store.directory)" + published
        if stopReason == "interrupted" { text += "\nresume: nas \(config.kind) --resume \(store.directory)" }
        reporter.event("job finished", json: ["event": "job_finished", "job_dir": store.directory, "report": report])
        reporter.summary(text)
    }

    static func describe(_ parameters: String) -> String {
        guard let value = try? TrialParameters(jsonText: parameters).value else { return parameters }
        return value.integerText
    }
}
