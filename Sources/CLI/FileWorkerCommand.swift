import ArgumentParser
import Fleet
import Foundation
import Synchronization

/// `nas file-worker`: the device side of the file exchange (vertex-ai-nas's latency calculator), for workers
/// the coordinator cannot reach: it watches a job directory (a folder or `gs://bucket/prefix`), measures each
/// trial's model once and writes `model_latency.json` beside it.
struct FileWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "file-worker",
        abstract: "Measure models through a shared job directory (local folder or gs://bucket/prefix).",
        discussion: """
            Finds <job_dir>/<trial_id>/saved_model/model.onnx without model_latency.json, claims the trial \
            (latency_worker_id.json, with a lease), measures it and writes model_latency.json. Stops when \
            <job_dir>/job_status.json has a state other than RUNNING, or on SIGINT/SIGTERM after the model in \
            hand. GCS credentials: STORAGE_EMULATOR_HOST, GOOGLE_OAUTH_ACCESS_TOKEN, application default \
            credentials (authorized_user), then the GCE metadata server.
            """)

    @Option(name: .customLong("job-dir"), help: ArgumentHelp("The job directory.", valueName: "DIR|gs://BUCKET/PREFIX"))
    var jobDir: String

    @Option(
        name: .customLong("device-type"),
        help: ArgumentHelp("The device type measured here, e.g. cpu-x86.", valueName: "TYPE"))
    var deviceType: String

    @Option(
        name: .customLong("num-latency-workers"),
        help: "With N > 1, take only trials with trial_id % N == K (the seed's static partition).")
    var numLatencyWorkers: Int = 1

    @Option(name: .customLong("latency-worker-id"), help: "This worker's K in [0, N-1].")
    var latencyWorkerID: Int = 0

    @Option(name: .customLong("poll-interval"), help: "Seconds between two scans of the job directory.")
    var pollInterval: Double = 1

    @Option(
        name: .customLong("runner-command"),
        help: ArgumentHelp(
            "Measure with a command printing one JSON object, e.g. {\"latency_ms\": 3.1, \"memory_bytes\": 1234}; "
                + "{model} is the ONNX path.",
            valueName: "CMD {model}"))
    var runnerCommand: String?

    @Option(name: .customLong("runner-timeout"), help: "Seconds after which the runner command is killed.")
    var runnerTimeout: Double = 600

    @Option(
        name: .customLong("lease-seconds"),
        help: "Seconds a claim holds without renewal; a dead worker's trials are taken over after it.")
    var leaseSeconds: Double = 30

    @Option(
        name: .customLong("max-attempts"),
        help: "Failed measurements of a trial before giving it up (model_latency_error.json tells its trainer why).")
    var maxAttempts: Int = 3

    @Option(name: .customLong("worker-id"), help: "A unique name of this worker in claims (default: host-pid-random).")
    var workerID: String?

    func validate() throws {
        guard runnerCommand != nil else {
            throw ValidationError("give --runner-command 'CMD {model}' (the native engine runner is not wired in yet)")
        }
        do {
            try workerConfiguration().validate()
            _ = try StorageLocation.parse(jobDir)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    private func workerConfiguration() -> FileWorker.Configuration {
        FileWorker.Configuration(
            deviceType: deviceType, latencyWorkerID: latencyWorkerID, numLatencyWorkers: numLatencyWorkers,
            pollInterval: pollInterval, leaseDuration: leaseSeconds, workerID: workerID, maxAttempts: maxAttempts)
    }

    func run() async throws {
        let storage: any ObjectStorage
        let worker: FileWorker
        do {
            storage = try StorageLocation.parse(jobDir).open()
            let command = runnerCommand ?? ""
            worker = try FileWorker(
                storage: storage, runner: FileExchangeCommandRunner(command: command, timeout: runnerTimeout),
                configuration: workerConfiguration(), runnerName: command)
        } catch {
            printError("nas file-worker: \(error)")
            throw ExitCode(2)
        }
        let stop = FileWorkerStop()
        installStopSignals()
        // The handler only counts signals (all it may safely do); this task turns the count into a stop request.
        let watcher = Task {
            while !Task.isCancelled {
                if fileWorkerSignals.load(ordering: .relaxed) > 0 && !stop.isRequested {
                    printError("nas file-worker: stopping after the model in hand (signal again to quit now)")
                    stop.request()
                }
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        defer { watcher.cancel() }
        let measured = await worker.run(until: stop)
        print("measured \(measured.count) trial(s): \(measured.map(String.init).joined(separator: " "))")
    }
}

/// SIGINT and SIGTERM received so far.
private let fileWorkerSignals = Atomic<Int32>(0)

/// Counts SIGINT/SIGTERM; the second one ends the process at once. Only async-signal-safe calls here.
private func fileWorkerSignalHandler(_ number: Int32) {
    if fileWorkerSignals.add(1, ordering: .relaxed).newValue > 1 { _exit(128 + number) }
}

/// Installs the handler and unblocks the signals, which a parent may have left blocked (Foundation's
/// Process passes on the spawning thread's mask).
private func installStopSignals() {
    var mask = sigset_t()
    sigemptyset(&mask)
    for number in [SIGINT, SIGTERM] {
        signal(number, fileWorkerSignalHandler)
        sigaddset(&mask, number)
    }
    pthread_sigmask(SIG_UNBLOCK, &mask, nil)
}
