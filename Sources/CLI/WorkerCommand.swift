import ArgumentParser
import Fleet
import Foundation

/// `nas worker`: measures models on this machine's device for a coordinator.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve a device to the fleet: register with the coordinator and measure the models it pushes.",
        discussion: """
            The worker listens for pushes (--listen, port 0 by default), registers under --device-type, keeps its
            lease with heartbeats, and registers again with backoff when the coordinator restarts. Models are
            cached by sha256. The runner measures each model:
              --runner-command 'CMD {model}'  runs CMD with the model's path; it must print one JSON object of
                                              metrics, e.g. {"latency_ms": 1.8, "memory_bytes": 120000}
              --runner constant               answers --constant-metric values (tests, fleet benchmarks)
              --runner native                 the built-in inference engine (not available in this build yet)
            """
    )

    @Option(help: ArgumentHelp("The coordinator's URL.", valueName: "URL"))
    var coordinator: String

    @Option(help: ArgumentHelp("This device's routing key, e.g. cpu-x86, gpu-h100, arm-a76.", valueName: "TYPE"))
    var deviceType: String

    @Option(help: ArgumentHelp("Address to listen on for pushes; port 0 picks one.", valueName: "HOST:PORT"))
    var listen = ListenAddress(host: "127.0.0.1", port: 0)

    @Option(help: ArgumentHelp("Host the coordinator reaches this worker at (default: the --listen host).",
                               valueName: "HOST"))
    var advertise: String?

    @Option(help: "Concurrent evaluations.")
    var capacity = 1

    @Option(name: .customLong("attr"), help: ArgumentHelp("A free-form attribute; repeatable.", valueName: "KEY=VALUE"))
    var attributes: [String] = []

    @Option(help: ArgumentHelp("The built-in runner: native or constant.", valueName: "NAME"))
    var runner: String?

    @Option(help: ArgumentHelp("Measure with this command; {model} becomes the model's path.", valueName: "CMD"))
    var runnerCommand: String?

    @Option(help: "Seconds one run of --runner-command may take.")
    var runnerTimeout: Double = 600

    @Option(help: ArgumentHelp("A metric of --runner constant; repeatable.", valueName: "NAME=VALUE"))
    var constantMetric: [String] = []

    @Option(help: ArgumentHelp("Where models are cached by hash (default: a temporary folder).", valueName: "DIR"))
    var cacheDir: String?

    @OptionGroup var token: FleetTokenOptions

    func validate() throws {
        guard !deviceType.isEmpty else { throw ValidationError("--device-type is empty") }
        guard capacity >= 1 else { throw ValidationError("--capacity must be at least 1") }
        switch (runner, runnerCommand) {
        case (nil, nil): throw ValidationError("choose a runner: --runner-command 'CMD {model}' or --runner NAME")
        case (.some, .some): throw ValidationError("--runner and --runner-command exclude each other")
        case (.some(let name), nil) where !["native", "constant"].contains(name):
            throw ValidationError("unknown --runner '\(name)': use native or constant, or --runner-command")
        case (nil, .some(let command)) where !command.contains("{model}"):
            throw ValidationError("--runner-command must contain {model} where the model's path goes")
        default: break
        }
        _ = try parsePairs(attributes, option: "--attr")
        for (name, value) in try parsePairs(constantMetric, option: "--constant-metric") where Double(value) == nil {
            throw ValidationError("--constant-metric \(name)=\(value): the value must be a number")
        }
    }

    func makeRunner() throws -> any ModelRunner {
        if let runnerCommand {
            return try CommandRunner(command: runnerCommand, timeout: .milliseconds(Int(runnerTimeout * 1000)))
        }
        if runner == "native" {
            printError("nas worker: the native runner is not available yet in this build; measure with "
                       + "--runner-command 'CMD {model}' (e.g. an onnxruntime script)")
            throw ExitCode(2)
        }
        let metrics = try parsePairs(constantMetric, option: "--constant-metric").compactMapValues(Double.init)
        return metrics.isEmpty ? ConstantRunner() : ConstantRunner(metrics: metrics)
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let runner = try makeRunner()
        var configuration = FleetWorker.Configuration(coordinator: coordinator, deviceType: deviceType,
                                                      token: try token.token())
        configuration.host = listen.host
        configuration.port = listen.port
        configuration.advertisedHost = advertise
        configuration.capacity = capacity
        configuration.attributes = try parsePairs(attributes, option: "--attr")
        configuration.cacheDirectory = cacheDir
        let worker = FleetWorker(configuration: configuration, runner: runner) { line in
            printError("nas worker: \(line)")
        }
        let port = try worker.start()
        printNow("nas worker: listening on port \(port)")
        let loop = Task { await worker.run() }
        await waitForTermination()
        loop.cancel()
        await worker.stop()
    }
}
