import Foundation
import Search

/// Runs trials as child processes of this one, each in its own process group.
final class LocalLauncher: TrialLauncher {
    private var processes: [String: ChildProcess] = [:]

    func launch(_ run: TrialRun) throws -> LaunchedTrial {
        let process = try ChildProcess(
            executable: run.command[0], arguments: Array(run.command.dropFirst()), logPath: run.logPath,
            environment: run.environment)
        let trial = LaunchedTrial(trialID: run.trialID, handle: String(process.pid))
        processes[trial.handle] = process
        return trial
    }

    func poll(_ trials: [LaunchedTrial]) throws -> [LaunchedTrial: TrialExit] {
        var endings: [LaunchedTrial: TrialExit] = [:]
        for trial in trials {
            guard let process = processes[trial.handle], let ending = process.poll() else { continue }
            processes[trial.handle] = nil
            switch ending {
            case .exited(let status): endings[trial] = .exited(status)
            case .signaled(let signal): endings[trial] = .signaled(signal)
            }
        }
        return endings
    }

    func cancel(_ trials: [LaunchedTrial]) {
        for trial in trials { processes[trial.handle]?.signal(SIGTERM) }
    }
}
