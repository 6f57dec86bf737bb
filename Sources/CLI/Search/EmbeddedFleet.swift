import ArgumentParser
import Fleet
import Foundation

/// Fleet flags of a search or train job.
struct JobFleetOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "An external coordinator to measure on; without it the job embeds one, plus a worker for this machine.",
            valueName: "URL"))
    var coordinator: String?

    @Option(
        help: ArgumentHelp(
            "Where the embedded coordinator listens, so that workers on other machines can register.",
            valueName: "HOST:PORT"))
    var listen = ListenAddress(host: "127.0.0.1", port: 0)

    @Option(help: "How models reach devices: push, files, or auto (push where a worker of the type is registered).")
    var transport: Transport = .auto

    @Option(name: .customLong("push-wait"), help: "Seconds a trial waits for a worker of its type before using files.")
    var pushWait = 10.0

    @OptionGroup var token: FleetTokenOptions

    func validate() throws {
        guard pushWait >= 0, pushWait.isFinite else { throw ValidationError("--push-wait must be 0 or more seconds") }
    }
}

/// The coordinator a job embeds, and a worker measuring this machine's device type with the native engine.
final class EmbeddedFleet {
    let url: String
    let token: String
    let tokenFile: String
    private let coordinator: Coordinator
    private let worker: FleetWorker?
    private var workerTask: Task<Void, Never>?

    /// Starts the coordinator on `listen`, writes its token to `<jobDirectory>/fleet_token` (mode 0600), and starts
    /// a native worker of `localDeviceType` when given.
    init(jobDirectory: String, listen: ListenAddress, localDeviceType: String?, log: (String) -> Void)
        throws
    {
        var generator = SystemRandomNumberGenerator()
        token = (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
        tokenFile = (jobDirectory as NSString).appendingPathComponent("fleet_token")
        guard FileManager.default.createFile(
            atPath: tokenFile, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw CLIError("cannot write the fleet's token to \(tokenFile): check that the job directory is writable")
        }
        var configuration = Coordinator.Configuration(token: token)
        configuration.host = listen.host
        configuration.port = listen.port
        coordinator = Coordinator(configuration: configuration)
        let port = try coordinator.start()
        let host = listen.host == "0.0.0.0" ? "127.0.0.1" : listen.host
        url = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        if let localDeviceType {
            var workerConfiguration = FleetWorker.Configuration(coordinator: url, deviceType: localDeviceType, token: token)
            workerConfiguration.attributes = ["embedded": "true"]
            let worker = FleetWorker(configuration: workerConfiguration, runner: NativeRunner(), log: { _ in })
            _ = try worker.start()
            self.worker = worker
            workerTask = Task { await worker.run() }
        } else {
            worker = nil
        }
        log(
            "fleet: coordinator \(url) (token in \(tokenFile))\(localDeviceType.map { ", embedded worker of \($0)" } ?? ""); more workers: nas worker --coordinator \(url) --token-file \(tokenFile) --device-type TYPE --runner native"
        )
    }

    /// Stops the worker and the coordinator.
    func stop() {
        if let worker {
            let done = DispatchSemaphore(value: 0)
            Task {
                await worker.stop()
                done.signal()
            }
            _ = done.wait(timeout: .now() + 5)
        }
        workerTask?.cancel()
        coordinator.stop()
    }
}
