import Foundation
import Synchronization
import System

extension CommandTrainer {
    /// Runs the command for `trial` and reads back what it left.
    ///
    /// The command runs in a process group of its own, so that a time limit or a cancel stops everything it
    /// started and nothing it started outlives it. A SIGINT or SIGTERM to this process (the search cancelling the
    /// trial) is passed on to that group; if this process exits while the command runs (its search died, and
    /// `ParentWatch` ends it), the group is killed on the way out.
    public func train(_ trial: TrialContext) async throws -> TrainedTrial {
        try clearEarlierResults(trial)
        let (logPath, offset) = try await runCommand(trial, extraEnvironment: [:])
        return try results(trial) { output(of: logPath, from: offset) }
    }

    /// Runs the command once with `extraEnvironment` on top of the contract's; returns the log and where this
    /// run's output began in it. Throws when it did not exit 0, ran past its time limit or was cancelled.
    func runCommand(_ trial: TrialContext, extraEnvironment: [String: String]) async throws -> (String, UInt64) {
        let logPath = (trial.directory as NSString).appendingPathComponent(TrialFiles.log)
        log("running the trainer command; its output goes to \(logPath)")
        let offset = (try? FileManager.default.attributesOfItem(atPath: logPath)[.size] as? UInt64) ?? 0
        let line = commandLine(trial)

        let state = CancelState()
        // Trapped before the start, so that no cancel falls between the two and kills only this process.
        let trap = try SignalTrap([SIGINT, SIGTERM]) { _, count in
            state.signals.store(count, ordering: .releasing)
            state.process.withLock { $0?.signal(count == 1 ? SIGTERM : SIGKILL, toGroup: true) }
        }
        defer { trap.release() }
        let process = try Subprocess(
            executable: line[0], arguments: Array(line.dropFirst()),
            environment: commandEnvironment(trial, inherited: Subprocess.currentEnvironment())
                .merging(ParentWatch.environment) { $1 }.merging(extraEnvironment) { $1 }, inheritEnvironment: false,
            standardOutput: .append(logPath), standardError: .standardOutput, processGroup: .ownKilledWithLeader)
        state.process.withLock { $0 = process }
        RunningCommand.started(process.pid)
        if state.signals.load(ordering: .acquiring) > 0 { process.signal(SIGTERM, toGroup: true) }

        var timedOut = false
        let termination: Subprocess.Termination
        if let limit = spec.maxTrialSeconds {
            if let ended = await process.wait(timeout: .milliseconds(Int64(limit * 1000))) {
                termination = ended
            } else {
                timedOut = true
                termination = await process.terminate(grace: .seconds(5))
            }
        } else {
            termination = await process.wait()
        }
        // Reaped: its group is gone, and its id may be reused.
        RunningCommand.ended()
        let tail = outputTail(logPath, from: offset)
        let lastLines = tail.isEmpty ? "it printed nothing" : "its last lines: \(tail)"
        if timedOut {
            throw TrialPipelineError(
                "the trainer command ran past --max-trial-seconds \(ResultsTable.format(spec.maxTrialSeconds ?? 0)) and was stopped; \(lastLines)"
            )
        }
        if state.signals.load(ordering: .acquiring) > 0 {
            throw TrialPipelineError("the trial was cancelled; the trainer command \(termination)")
        }
        guard termination == .exited(0) else {
            throw TrialPipelineError("the trainer command \(termination); \(lastLines)")
        }
        return (logPath, offset)
    }
}

/// What the signal trap of a running command shares with the wait.
private final class CancelState: Sendable {
    let process = Mutex<Subprocess?>(nil)
    let signals = Atomic<Int>(0)
}

/// The process group of the trainer command this process runs, killed if the process exits while it runs.
enum RunningCommand {
    /// The group's id (its leader's pid), 0 when no command runs.
    static let group = Atomic<Int32>(0)

    /// Registered once: `exit` (ParentWatch's, or any other) kills the running command's group.
    private static let exitHook: Void = {
        atexit {
            let group = RunningCommand.group.load(ordering: .acquiring)
            if group > 0 { kill(-group, SIGKILL) }
        }
    }()

    static func started(_ pid: Int32) {
        _ = exitHook
        group.store(pid, ordering: .releasing)
    }

    static func ended() {
        group.store(0, ordering: .releasing)
    }
}
