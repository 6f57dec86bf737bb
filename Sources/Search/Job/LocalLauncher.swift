import Foundation
import System

/// Runs trials as child processes of this one, each in a process group of its own, its output appended to the
/// trial's log.
///
/// The group keeps a terminal's Ctrl-C away from trials, so that the job loop decides whether they finish or
/// stop, and lets a cancel reach whatever a trial started; `ParentWatch` ends a trial whose search died, even by
/// SIGKILL. A poll is one non-blocking `waitid` per running trial.
public final class LocalLauncher: TrialLauncher {
    private var processes: [String: Subprocess] = [:]

    /// A launcher of local processes.
    public init() {}

    public func launch(_ run: TrialRun) throws -> LaunchedTrial {
        let process = try Subprocess(
            executable: run.command[0], arguments: Array(run.command.dropFirst()),
            environment: run.environment.merging(ParentWatch.environment) { $1 },
            standardOutput: .append(run.logPath), standardError: .standardOutput, processGroup: .own)
        let trial = LaunchedTrial(trialID: run.trialID, handle: String(process.pid))
        processes[trial.handle] = process
        return trial
    }

    public func poll(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial: TrialExit] {
        var endings: [LaunchedTrial: TrialExit] = [:]
        for trial in trials {
            guard let process = processes[trial.handle], let termination = process.poll() else { continue }
            processes[trial.handle] = nil
            switch termination {
            case .exited(let status): endings[trial] = .exited(status)
            case .signaled(let signal): endings[trial] = .signaled(signal)
            }
        }
        return endings
    }

    public func cancel(_ trials: [LaunchedTrial]) {
        for trial in trials { processes[trial.handle]?.signal(SIGTERM, toGroup: true) }
    }
}
