import ArgumentParser
import Engine
import Fleet
import Foundation
import NativeRunner
import System

/// `nas worker`: measures models on this machine's device, pushed by a coordinator or found in a job directory.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve a device: measure the models a coordinator pushes, or those in a shared job directory.",
        discussion: """
            Push mode (--coordinator URL): the worker listens for pushes (--listen, port 0 by default), registers \
            under --device-type, keeps its lease with heartbeats, and registers again with backoff when the \
            coordinator restarts. Models are cached by sha256. An https:// coordinator's certificate is checked \
            against --tls-ca (--tls-client-cert/--tls-client-key when it requires client certificates); with \
            --tls-cert/--tls-key the push endpoint serves HTTP/2 over TLS and registers an https:// address.

            File mode (--job-dir DIR|gs://BUCKET/PREFIX), for devices the coordinator cannot reach: the worker finds \
            <job_dir>/<trial_id>/saved_model/model.onnx without model_latency.json, claims the trial \
            (latency_worker_id.json, with a lease), measures it and writes model_latency.json, as vertex-ai-nas's \
            latency calculator does. It stops when <job_dir>/job_status.json says the job ended (not when it is \
            PAUSED: a resume follows), on SIGINT/SIGTERM after the model in hand, or with exit status 2 when the job \
            directory cannot be listed (no credentials, no bucket). GCS credentials: STORAGE_EMULATOR_HOST, \
            GOOGLE_OAUTH_ACCESS_TOKEN, application default credentials (authorized_user), the GCE metadata server.

            The runner measures each model: --runner native (the default) times it with the built-in ONNX \
            engine (p50 latency, peak memory); --runner-command 'CMD {model}' runs CMD with the model's path, \
            which must print one JSON object of metrics such as {"latency_ms": 1.8, "memory_bytes": 120000}; \
            --runner constant answers --constant-metric values (tests, fleet benchmarks).

            Examples:
              nas worker --coordinator URL --token-file F --device-type arm-a76
              nas worker --job-dir gs://b/nas_jobs/j --device-type phone \\
                  --runner-command './bench {model}'
            """
    )

    @Option(help: ArgumentHelp("Push mode: the coordinator's URL.", valueName: "URL"))
    var coordinator: String?

    @Option(
        name: .customLong("job-dir"),
        help: ArgumentHelp("File mode: the job directory to watch.", valueName: "DIR|gs://BUCKET/PREFIX"))
    var jobDir: String?

    @Option(help: ArgumentHelp("This device's routing key, e.g. cpu-x86, gpu-h100, arm-a76.", valueName: "TYPE"))
    var deviceType: String

    @Option(help: ArgumentHelp("Push mode: address to listen on for pushes; port 0 picks one.", valueName: "HOST:PORT"))
    var listen = ListenAddress(host: "127.0.0.1", port: 0)

    @Option(
        help: ArgumentHelp(
            "Push mode: host the coordinator reaches this worker at (default: the --listen host).", valueName: "HOST"))
    var advertise: String?

    @Option(help: "Push mode: concurrent evaluations.")
    var capacity = 1

    @Option(
        name: .customLong("attr"),
        help: ArgumentHelp("Push mode: a free-form attribute; repeatable.", valueName: "KEY=VALUE"))
    var attributes: [String] = []

    @Option(help: ArgumentHelp("Push mode: where models are cached by hash (default: a temporary folder).", valueName: "DIR"))
    var cacheDir: String?

    @Option(
        name: .customLong("num-latency-workers"),
        help: "File mode: with N > 1, take only trials with trial_id % N == K (the seed's static partition).")
    var numLatencyWorkers: Int = 1

    @Option(name: .customLong("latency-worker-id"), help: "File mode: this worker's K in [0, N-1].")
    var latencyWorkerID: Int = 0

    @Option(name: .customLong("poll-interval"), help: "File mode: seconds between two scans of the job directory.")
    var pollInterval: Double = 1

    @Option(
        name: .customLong("lease-seconds"),
        help: "File mode: seconds a claim holds without renewal; a dead worker's trials are taken over after it.")
    var leaseSeconds: Double = 30

    @Option(
        name: .customLong("max-attempts"),
        help: "File mode: failed measurements of a trial before giving it up (model_latency_error.json says why).")
    var maxAttempts: Int = 3

    @Option(
        name: .customLong("worker-id"),
        help: "File mode: a unique name of this worker in claims (default: host-pid-random).")
    var workerID: String?

    @Option(
        help: ArgumentHelp("The built-in runner: native (default) or constant.", valueName: "NAME"),
        completion: .list(["native", "constant"]))
    var runner: String?

    @Option(help: ArgumentHelp("Measure with this command; {model} becomes the model's path.", valueName: "CMD"))
    var runnerCommand: String?

    @Option(help: "Seconds one run of --runner-command may take.")
    var runnerTimeout: Double = 600

    @Option(help: "Native runner: timed runs of each model (after 20 warm-up runs).")
    var repeats = 200

    @Option(help: ArgumentHelp("A metric of --runner constant; repeatable.", valueName: "NAME=VALUE"))
    var constantMetric: [String] = []

    @OptionGroup var token: FleetTokenOptions

    @OptionGroup(title: "Push mode: TLS of the worker's push endpoint") var tls: TLSServerOptions

    @OptionGroup(title: "Push mode: TLS of calls to an https:// coordinator") var coordinatorTLS: TLSClientOptions

    func validate() throws {
        guard !deviceType.isEmpty else { throw ValidationError("--device-type is empty") }
        switch (coordinator, jobDir) {
        case (nil, nil): throw ValidationError("give --coordinator URL (push mode) or --job-dir DIR (file mode)")
        case (.some, .some): throw ValidationError("--coordinator and --job-dir exclude each other: run two workers")
        case (nil, .some(let jobDir)):
            do {
                try fileConfiguration().validate()
                _ = try StorageLocation.parse(jobDir)
            } catch {
                throw ValidationError("\(error)")
            }
        case (.some, nil):
            guard capacity >= 1 else { throw ValidationError("--capacity must be at least 1") }
            _ = try parsePairs(attributes, option: "--attr")
        }
        switch (runner, runnerCommand) {
        case (.some, .some): throw ValidationError("--runner and --runner-command exclude each other")
        case (.some(let name), nil) where !["native", "constant"].contains(name):
            throw ValidationError("unknown --runner '\(name)': use native or constant, or --runner-command")
        case (nil, .some(let command)) where !command.contains("{model}"):
            throw ValidationError("--runner-command must contain {model} where the model's path goes")
        default: break
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be 1 or more") }
        for (name, value) in try parsePairs(constantMetric, option: "--constant-metric") where Double(value) == nil {
            throw ValidationError("--constant-metric \(name)=\(value): the value must be a number")
        }
    }

    func makeRunner() throws -> any ModelRunner {
        if let runnerCommand {
            return try CommandRunner(command: runnerCommand, timeout: .milliseconds(Int(runnerTimeout * 1000)))
        }
        if runner == "constant" {
            let metrics = try parsePairs(constantMetric, option: "--constant-metric").compactMapValues(Double.init)
            return metrics.isEmpty ? ConstantRunner() : ConstantRunner(metrics: metrics)
        }
        return NativeRunner(options: MeasurementOptions(warmup: 20, repeats: repeats))
    }

    func run() async throws {
        SignalTrap.ignore(SIGPIPE)
        if let jobDir {
            try await runFileMode(jobDir)
        } else {
            try await runPushMode(coordinator ?? "")
        }
    }

    private func runPushMode(_ coordinator: String) async throws {
        var configuration = FleetWorker.Configuration(
            coordinator: coordinator, deviceType: deviceType, token: try token.token())
        configuration.host = listen.host
        configuration.port = listen.port
        configuration.advertisedHost = advertise
        configuration.capacity = capacity
        configuration.attributes = try parsePairs(attributes, option: "--attr")
        // What runs the models, kept with every measurement in the measurement store; --attr runtime=... names it.
        if configuration.attributes["runtime"] == nil {
            configuration.attributes["runtime"] = runnerCommand != nil ? "command" : runner ?? "native"
        }
        configuration.cacheDirectory = cacheDir
        configuration.tls = try tls.context()
        configuration.coordinatorTLS = try coordinatorTLS.context()
        let worker = FleetWorker(configuration: configuration, runner: try makeRunner()) { line in
            printError("nas worker: \(line)")
        }
        let port = try worker.start()
        printNow("nas worker: listening on port \(port)")
        let loop = Task { await worker.run() }
        try await waitForTermination()
        loop.cancel()
        await worker.stop()
    }

    private func fileConfiguration() -> FileWorker.Configuration {
        FileWorker.Configuration(
            deviceType: deviceType, latencyWorkerID: latencyWorkerID, numLatencyWorkers: numLatencyWorkers,
            pollInterval: .seconds(pollInterval), leaseDuration: .seconds(leaseSeconds), workerID: workerID,
            maxAttempts: maxAttempts)
    }

    private func runFileMode(_ jobDir: String) async throws {
        let worker: FileWorker
        do {
            let storage = try StorageLocation.parse(jobDir).open()
            worker = try FileWorker(
                storage: storage, runner: try makeRunner(), configuration: fileConfiguration(),
                runnerName: runnerCommand ?? runner ?? "native")
        } catch {
            printError("Error: \(error)")
            throw ExitCode(2)
        }
        let stop = FileWorkerStop()
        // The first signal asks for a stop after the model in hand; the second ends the process at once.
        let trap = try SignalTrap([SIGINT, SIGTERM]) { number, count in
            if count > 1 { _exit(128 + number) }
            printError("nas worker: stopping after the model in hand (signal again to quit now)")
            stop.request()
        }
        defer { trap.release() }
        let measured: [Int]
        do {
            measured = try await worker.run(until: stop)
        } catch {
            printError("Error: \(error)")
            throw ExitCode(ExitStatus.badInput)
        }
        print("measured \(measured.count) trial(s): \(measured.map(String.init).joined(separator: " "))")
    }
}
