import Fleet
import Foundation
import HTTP2
import System

/// How a job's trials reach their devices: through a coordinator given by the user, or one embedded in the
/// job (with a worker for this machine), pushed or exchanged as files.
public struct JobFleetSettings: Sendable {
    /// An external coordinator and its token; nil embeds one for the job's duration.
    public var coordinator: (url: String, token: String)?
    /// Where an embedded coordinator listens.
    public var host: String
    /// The embedded coordinator's port; 0 picks a free one.
    public var port: Int
    /// How models reach devices.
    public var transport: Transport
    /// How long a trial waits for a worker of its type before `auto` uses files.
    public var pushWait: Duration
    /// The client TLS files (CA, client certificate and key) of an external `https://` coordinator: the trial
    /// runners get them as `--tls-ca`, `--tls-client-cert`, `--tls-client-key`.
    public var coordinatorTLS: TLSConfiguration?

    /// Settings; by default an embedded coordinator on loopback, `auto` transport, a 10 s push wait.
    public init(
        coordinator: (url: String, token: String)? = nil, coordinatorTLS: TLSConfiguration? = nil,
        host: String = "127.0.0.1", port: Int = 0, transport: Transport = .auto, pushWait: Duration = .seconds(10)
    ) {
        self.coordinator = coordinator
        self.coordinatorTLS = coordinatorTLS
        self.host = host
        self.port = port
        self.transport = transport
        self.pushWait = pushWait
    }
}

/// The fleet of a running job: the flags and environment its trial runners get, and the embedded coordinator
/// and worker it owns, if any.
public final class JobFleet {
    /// Flags for every trial runner (`--coordinator`, `--transport`, `--push-wait`).
    public let arguments: [String]
    /// Variables for every trial runner (`NAS_FLEET_TOKEN`).
    public let environment: [String: String]
    private let embedded: EmbeddedFleet?

    /// Starts what the job of `config` in `directory` measures through; nothing when it measures no device.
    /// `local` is the runner of the embedded worker (this machine's device type).
    public init(
        config: JobConfig, directory: String, settings: JobFleetSettings, local: any ModelRunner,
        log: (String) -> Void
    ) throws {
        guard !config.targetDeviceTypes.isEmpty else {
            (arguments, environment, embedded) = ([], [:], nil)
            return
        }
        if settings.transport == .files, settings.coordinator == nil {
            // Files only: no coordinator to embed, workers watch the job's folder (or bucket).
            let root = config.outputLocation ?? directory
            let folders = config.targetDeviceTypes.count > 1
                ? config.targetDeviceTypes.map { "\(root)/devices/\($0) --device-type \($0)" }
                : config.targetDeviceTypes.map { "\(root) --device-type \($0)" }
            log("fleet: models are exchanged as files; start a worker per device type: "
                + folders.map { "nas worker --job-dir \($0) --runner native" }.joined(separator: "; "))
            (arguments, environment, embedded) = (["--transport", Transport.files.rawValue], [:], nil)
            return
        }
        let url: String
        var tlsArguments: [String] = []
        if let coordinator = settings.coordinator {
            url = coordinator.url
            environment = ["NAS_FLEET_TOKEN": coordinator.token]
            embedded = nil
            if let tls = settings.coordinatorTLS {
                for (flag, path) in [("--tls-ca", tls.caFile), ("--tls-client-cert", tls.certificateFile),
                                     ("--tls-client-key", tls.keyFile)] {
                    if let path { tlsArguments += [flag, path] }
                }
            }
        } else {
            let started = try EmbeddedFleet(
                jobDirectory: directory, host: settings.host, port: settings.port,
                local: (DeviceType.local, local), log: log)
            url = started.url
            environment = ["NAS_FLEET_TOKEN": started.token]
            embedded = started
        }
        arguments = [
            "--coordinator", url, "--transport", settings.transport.rawValue, "--push-wait",
            String(settings.pushWait.inSeconds),
        ] + tlsArguments
    }

    /// Stops the embedded coordinator and worker.
    public func stop() { embedded?.stop() }
}

/// This machine's device type, for the embedded local worker.
public enum DeviceType {
    /// `cpu-x86` on x86-64, `cpu-arm64` on ARM64, `cpu-MACHINE` elsewhere.
    public static var local: String {
        var info = utsname()
        uname(&info)
        let machine = withUnsafeBytes(of: &info.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch machine {
        case "x86_64": return "cpu-x86"
        case "aarch64", "arm64": return "cpu-arm64"
        default: return "cpu-\(machine)"
        }
    }
}
