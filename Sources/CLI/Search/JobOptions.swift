import ArgumentParser
import Fleet
import Foundation
import Search

/// Flags every job (search or train) shares: where it lives, how many trials at once, when it stops.
struct JobOptions: ParsableArguments {
    @Option(
        name: .customLong("job-name"),
        help: "The job's name: its folder under --root-output-dir (default: search- or train-YYYYMMDD-HHMMSS).")
    var jobName: String?

    @Option(
        name: .customLong("root-output-dir"),
        help: ArgumentHelp(
            "Where job folders are created: a local folder, or gs://BUCKET/PREFIX (outputs published there in vertex-ai-nas's layout, state kept in --state-dir).",
            valueName: "DIR|gs://BUCKET/PREFIX"))
    var rootOutputDirectory = "nas_jobs"

    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp("With a gs:// root: the local folder that keeps jobs' state (SQLite, logs).", valueName: "DIR"))
    var stateDirectory = "nas_jobs"

    @Option(name: .customLong("max-parallel-trials"), help: "Trainer processes at once.")
    var maxParallelTrials = 2

    @Option(name: .customLong("max-failed-trials"), help: "Failed trials after which the job stops.")
    var maxFailedTrials = 3

    @Option(help: ArgumentHelp("Continue the job in this folder (after a crash, a kill or Ctrl-C).", valueName: "JOB_DIR"))
    var resume: String?

    @Option(name: .customLong("on-interrupt"), help: "On Ctrl-C: wait for running trials, or cancel them.")
    var onInterrupt: InterruptPolicy = .wait

    func check() throws {
        if let jobName {
            do {
                try JobStore.validateName(jobName)
            } catch {
                throw ValidationError("--job-name: \(error)")
            }
        }
        if isRemote {
            do {
                _ = try StorageLocation.parse(rootOutputDirectory)
            } catch {
                throw ValidationError("--root-output-dir: \(error)")
            }
        }
        guard maxParallelTrials >= 1, maxFailedTrials >= 1 else {
            throw ValidationError("--max-parallel-trials and --max-failed-trials must be 1 or more")
        }
    }

    /// The job to continue with --resume, checked to be a `kind` job, with the changes this command line asks
    /// for applied; nil without --resume.
    ///
    /// A resumed job keeps every flag it started with. Flags given with `--resume` change the job where that is
    /// meaningful: `--max-trials` (a finished job is extended, as continuing an Optuna study), the parallel and
    /// failure budgets, the fleet (`--coordinator`, `--token-file`, `--listen`, `--transport`, `--push-wait`), and how
    /// this run behaves (`--on-interrupt`, `--quiet`, `--json`, `--plugin-dir`). Any other flag is refused.
    func resumedJob(kind: String, maxTrials: Int? = nil, fleet: JobFleetOptions) throws -> JobStore? {
        guard let resume else { return nil }
        let store = try JobStore.open(directory: resume)
        guard store.config.kind == kind else {
            throw CLIError.badInput(
                "'\(resume)' holds a \(store.config.kind) job; continue it with 'nas \(store.config.kind) --resume'")
        }
        let given = Self.givenFlags(CommandLine.arguments.dropFirst())
        var changeable = Self.changeableOnResume
        if maxTrials != nil { changeable.insert("--max-trials") }
        let refused = given.subtracting(changeable).sorted()
        guard refused.isEmpty else {
            throw CLIError(
                "\(refused.joined(separator: ", ")) cannot change when a job resumes: it keeps the flags it started with (see \(JobStore.fileName)'s config, or 'nas trials list \(resume)'); these may change: \(changeable.subtracting(["--resume"]).sorted().joined(separator: ", ")). Start a new job (--job-name) to search with other flags.",
                status: ExitStatus.usage)
        }
        var config = store.config
        if given.contains("--max-trials"), let maxTrials {
            // Screened candidates were never trained and do not count against --max-trials (docs/predictor.md).
            let existing = try store.trials().filter { $0.state != .screened }.count
            guard maxTrials >= existing else {
                throw CLIError(
                    "--max-trials \(maxTrials) is fewer than the \(existing) trials the job already has",
                    status: ExitStatus.usage)
            }
            config.maxTrials = maxTrials
        }
        if given.contains("--max-parallel-trials") { config.maxParallelTrials = maxParallelTrials }
        if given.contains("--max-failed-trials") { config.maxFailedTrials = maxFailedTrials }
        config.fleet = fleet.record(over: config.fleet ?? fleet.record, given: given)
        if config != store.config { try store.update(config: config) }
        return store
    }

    /// What a resumed job may change.
    static let changeableOnResume: Set<String> = [
        "--resume", "--max-parallel-trials", "--max-failed-trials", "--on-interrupt", "--quiet", "--json",
        "--plugin-dir", "--coordinator", "--token-file", "--listen", "--transport", "--push-wait",
        // The latency predictor acts on the run it is given to (docs/predictor.md).
        "--measurement-store", "--predictor", "--predictor-min-measurements", "--predictor-min-accuracy",
        "--predictor-window",
    ]

    /// The long flags of a command line (`--name` of `--name value` and `--name=value`).
    static func givenFlags(_ arguments: ArraySlice<String>) -> Set<String> {
        Set(arguments.filter { $0.hasPrefix("--") && $0.count > 2 }.map { String($0.split(separator: "=", maxSplits: 1)[0]) })
    }

    /// True when the root output dir is a bucket.
    var isRemote: Bool { rootOutputDirectory.lowercased().hasPrefix("gs:") }

    /// The local folder of a new job named `name`.
    func directory(_ name: String) -> String {
        ((isRemote ? stateDirectory : rootOutputDirectory) as NSString).appendingPathComponent(name)
    }

    /// Where a new job named `name` publishes its outputs besides its folder: `gs://.../NAME`, or nil.
    func outputLocation(_ name: String) -> String? {
        guard isRemote else { return nil }
        var root = rootOutputDirectory
        while root.hasSuffix("/") { root.removeLast() }
        return root + "/" + name
    }
}
