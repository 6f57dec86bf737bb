import ArgumentParser
import Foundation

/// Flags every job (search or train) shares: where it lives, how many trials at once, when it stops.
struct JobOptions: ParsableArguments {
    @Option(name: .customLong("job-name"), help: "The job's name: its folder under --root-output-dir.")
    var jobName: String?

    @Option(
        name: .customLong("root-output-dir"), help: ArgumentHelp("Where job folders are created.", valueName: "DIR"))
    var rootOutputDirectory = "nas_jobs"

    @Option(name: .customLong("max-parallel-trials"), help: "Trainer processes at once.")
    var maxParallelTrials = 2

    @Option(name: .customLong("max-failed-trials"), help: "Failed trials after which the job stops.")
    var maxFailedTrials = 3

    @Option(help: ArgumentHelp("Continue the job in this folder (after a crash, a kill or Ctrl-C).", valueName: "JOB_DIR"))
    var resume: String?

    @Option(name: .customLong("on-interrupt"), help: "On Ctrl-C: wait for running trials, or cancel them.")
    var onInterrupt: InterruptPolicy = .wait

    func check() throws {
        if rootOutputDirectory.lowercased().hasPrefix("gs:") {
            throw ValidationError(
                "--root-output-dir \(rootOutputDirectory): a job's state (SQLite) needs a local folder; keep the job local and let remote devices measure through the fleet, or through 'nas worker --job-dir' on a folder they share"
            )
        }
        guard maxParallelTrials >= 1, maxFailedTrials >= 1 else {
            throw ValidationError("--max-parallel-trials and --max-failed-trials must be 1 or more")
        }
    }

    /// The folder of a new job named `name`.
    func directory(_ name: String) -> String {
        (rootOutputDirectory as NSString).appendingPathComponent(name)
    }
}

/// What Ctrl-C does to running trials.
enum InterruptPolicy: String, ExpressibleByArgument, CaseIterable {
    case wait
    case cancel
}
