import ArgumentParser
import Fleet
import Foundation
import HTTP2
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

    /// How an `https://` --coordinator is checked, and the client certificate it may require.
    @OptionGroup var tls: TLSClientOptions

    func validate() throws {
        guard pushWait >= 0, pushWait.isFinite else { throw ValidationError("--push-wait must be 0 or more seconds") }
    }

    /// Refuses, before a job is created, a `--coordinator` that cannot be reached or refuses the token.
    func checkCoordinator() throws {
        guard let coordinator else { return }
        let client = FleetClient(coordinator: coordinator, token: try token.token(), tls: try tls.context())
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

    /// The settings as the job stores them.
    var record: JobFleetRecord {
        var record = JobFleetRecord(
            coordinator: coordinator, tokenFile: token.tokenFile, host: listen.host, port: listen.port,
            transport: transport.rawValue, pushWaitSeconds: pushWait)
        (record.tlsCA, record.tlsClientCert, record.tlsClientKey) = tlsFiles
        return record
    }

    /// The TLS files as absolute paths: the job keeps them for `--resume` from any folder, and its trial runners
    /// start in folders of their own.
    private var tlsFiles: (ca: String?, certificate: String?, key: String?) {
        (tls.tlsCA.map(absolutePath), tls.tlsClientCert.map(absolutePath), tls.tlsClientKey.map(absolutePath))
    }

    /// `record` with the flags given on this command line (`given`, long names) laid over it: what a resumed job
    /// keeps and what it changes.
    func record(over stored: JobFleetRecord, given: Set<String>) -> JobFleetRecord {
        var record = stored
        if given.contains("--coordinator") { record.coordinator = coordinator }
        if given.contains("--token-file") { record.tokenFile = token.tokenFile }
        if given.contains("--listen") { (record.host, record.port) = (listen.host, listen.port) }
        if given.contains("--transport") { record.transport = transport.rawValue }
        if given.contains("--push-wait") { record.pushWaitSeconds = pushWait }
        if given.contains("--tls-ca") { record.tlsCA = tlsFiles.ca }
        if given.contains("--tls-client-cert") || given.contains("--tls-client-key") {
            (record.tlsClientCert, record.tlsClientKey) = (tlsFiles.certificate, tlsFiles.key)
        }
        return record
    }

    /// The settings a job's fleet starts with, from its stored record.
    static func settings(_ record: JobFleetRecord) throws -> JobFleetSettings {
        var token = FleetTokenOptions()
        token.tokenFile = record.tokenFile
        let tls = record.tlsCA != nil || record.tlsClientCert != nil
            ? TLSConfiguration(certificateFile: record.tlsClientCert, keyFile: record.tlsClientKey, caFile: record.tlsCA)
            : nil
        return JobFleetSettings(
            coordinator: try record.coordinator.map { ($0, try token.token()) }, coordinatorTLS: tls,
            host: record.host, port: record.port,
            transport: Transport(rawValue: record.transport) ?? .auto, pushWait: .seconds(record.pushWaitSeconds))
    }
}

extension Transport: ExpressibleByArgument {}
extension InterruptPolicy: ExpressibleByArgument {}
