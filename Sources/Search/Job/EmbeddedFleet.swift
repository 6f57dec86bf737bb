import Fleet
import Foundation

/// The coordinator a job embeds, and a worker measuring this machine's device type with the native engine.
public final class EmbeddedFleet {
    /// The coordinator's URL.
    public let url: String
    /// The fleet's token.
    public let token: String
    /// Where the token is written (mode 0600), for workers that join.
    public let tokenFile: String
    private let coordinator: Coordinator
    private let worker: FleetWorker?
    private var workerTask: Task<Void, Never>?

    /// Starts the coordinator on `host:port`, writes its token to `<jobDirectory>/fleet_token` (mode 0600), and
    /// starts a worker of `local`'s device type measuring with its runner when given.
    public init(
        jobDirectory: String, host: String, port: Int, local: (deviceType: String, runner: any ModelRunner)?,
        log: (String) -> Void
    ) throws {
        var generator = SystemRandomNumberGenerator()
        token = (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
        tokenFile = (jobDirectory as NSString).appendingPathComponent("fleet_token")
        guard FileManager.default.createFile(
            atPath: tokenFile, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw TrialPipelineError("cannot write the fleet's token to \(tokenFile): check that the job directory is writable")
        }
        var configuration = Coordinator.Configuration(token: token)
        configuration.host = host
        configuration.port = port
        coordinator = Coordinator(configuration: configuration)
        let port = try coordinator.start()
        let reachable = host == "0.0.0.0" ? "127.0.0.1" : host
        url = "http://\(reachable.contains(":") ? "[\(reachable)]" : reachable):\(port)"
        if let local {
            var workerConfiguration = FleetWorker.Configuration(coordinator: url, deviceType: local.deviceType, token: token)
            workerConfiguration.attributes = ["embedded": "true"]
            let worker = FleetWorker(configuration: workerConfiguration, runner: local.runner, log: { _ in })
            _ = try worker.start()
            self.worker = worker
            workerTask = Task { await worker.run() }
        } else {
            worker = nil
        }
        log(
            "fleet: coordinator \(url) (token in \(tokenFile))\(local.map { ", embedded worker of \($0.deviceType)" } ?? ""); more workers: nas worker --coordinator \(url) --token-file \(tokenFile) --device-type TYPE --runner native"
        )
    }

    /// Stops the worker and the coordinator.
    public func stop() {
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
