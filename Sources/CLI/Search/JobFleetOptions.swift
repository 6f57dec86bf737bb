import ArgumentParser
import Fleet
import Foundation
import Search

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

    /// Refuses, before a job is created, a `--coordinator` that cannot be reached or refuses the token.
    func checkCoordinator() throws {
        guard let coordinator else { return }
        let client = FleetClient(coordinator: coordinator, token: try token.token())
        let answer = Answer()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                _ = try await client.workers()
            } catch {
                answer.error = error
            }
            done.signal()
        }
        // This thread is the command's own (a synchronous command runs on the main thread), never the pool's.
        done.wait()
        if let error = answer.error {
            throw CLIError("cannot use the coordinator --coordinator \(coordinator): \(error)")
        }
    }

    private final class Answer: @unchecked Sendable {
        var error: (any Error)?
    }

    /// The settings the job's fleet starts with.
    func settings() throws -> JobFleetSettings {
        JobFleetSettings(
            coordinator: try coordinator.map { ($0, try token.token()) }, host: listen.host, port: listen.port,
            transport: transport, pushWait: .seconds(pushWait))
    }
}

extension Transport: ExpressibleByArgument {}
extension InterruptPolicy: ExpressibleByArgument {}
