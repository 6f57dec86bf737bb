import ArgumentParser
import Fleet
import HTTP2
import Foundation

/// `nas coordinator`: serves the fleet: workers register with it and evaluations go through it.
struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the fleet's coordinator: workers register, models are pushed to a worker of the asked type.",
        discussion: """
            Speaks HTTP/2 over TLS with --tls-cert/--tls-key (ALPN h2; --tls-client-ca also requires client \
            certificates), else cleartext h2c with prior knowledge, which warns when bound beyond loopback: \
            POST /nas.fleet.Coordinator/<Method> with protobuf bodies (Sources/CFleetProto/proto/fleet.proto). \
            Every call needs `authorization: Bearer <token>`. Pushes to https:// workers check their certificates \
            against --tls-ca. Prints `listening on https://HOST:PORT` (or http://) once it serves; port 0 picks a \
            free port. Stops on SIGINT/SIGTERM.

            Example:
              NAS_FLEET_TOKEN=secret nas coordinator --listen 0.0.0.0:7878 \\
                  --tls-cert server.pem --tls-key server.key --tls-ca ca.pem
            """
    )

    @Option(help: ArgumentHelp("Address to listen on; port 0 picks one.", valueName: "HOST:PORT"))
    var listen = ListenAddress(host: "127.0.0.1", port: 7878)

    @OptionGroup var token: FleetTokenOptions

    @OptionGroup(title: "TLS of the coordinator's server") var tls: TLSServerOptions

    @OptionGroup(title: "TLS of pushes to https:// workers") var pushTLS: TLSClientOptions

    @Option(help: "Largest request body (a model) accepted, in bytes; larger ones get 413.")
    var maxBodyBytes = 64 << 20

    @Option(
        name: .customLong("lease-seconds"),
        help: ArgumentHelp("A worker is dropped when no heartbeat came for this long.", valueName: "SECONDS"))
    var leaseSeconds = 3.0

    @Option(
        name: .customLong("heartbeat-seconds"),
        help: ArgumentHelp("How often workers send heartbeats.", valueName: "SECONDS"))
    var heartbeatSeconds = 1.0

    @Option(help: "Dispatches of one evaluation before a retryable failure (worker lost, timed out) is final.")
    var maxAttempts = 3

    @Option(help: "Open connections at most; one more is closed at once.")
    var maxConnections = ServerLimits().maxConnections

    @Option(help: "Seconds a new connection has to send its HTTP/2 preface and SETTINGS before it is closed.")
    var handshakeTimeoutSeconds = 10.0

    @Option(help: "Seconds a connection may go without a request before it is closed (with GOAWAY).")
    var idleTimeoutSeconds = 120.0

    @Option(help: "Request bodies (models) held at once, in bytes, until answered; a request over it gets 503.")
    var maxBufferedBodyBytes = ServerLimits().maxBufferedBodyBytes

    func validate() throws {
        guard maxBodyBytes > 0 else { throw ValidationError("--max-body-bytes must be positive") }
        guard heartbeatSeconds.isFinite, heartbeatSeconds > 0, leaseSeconds.isFinite, leaseSeconds > heartbeatSeconds
        else {
            throw ValidationError("--lease-seconds must be longer than --heartbeat-seconds (both positive)")
        }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        for (flag, seconds) in [("--handshake-timeout-seconds", handshakeTimeoutSeconds),
                                ("--idle-timeout-seconds", idleTimeoutSeconds)]
        where !(seconds.isFinite && seconds > 0) {
            throw ValidationError("\(flag) must be a positive number of seconds")
        }
        guard maxBufferedBodyBytes >= maxBodyBytes else {
            throw ValidationError("--max-buffered-body-bytes must be at least --max-body-bytes (\(maxBodyBytes))")
        }
    }

    func run() async throws {
        var configuration = Coordinator.Configuration(token: try token.token())
        configuration.host = listen.host
        configuration.port = listen.port
        configuration.maxBodyBytes = maxBodyBytes
        configuration.lease = .seconds(leaseSeconds)
        configuration.heartbeat = .seconds(heartbeatSeconds)
        configuration.maxAttempts = maxAttempts
        configuration.limits.maxConnections = maxConnections
        configuration.limits.handshakeTimeout = .seconds(handshakeTimeoutSeconds)
        configuration.limits.idleTimeout = .seconds(idleTimeoutSeconds)
        configuration.limits.maxBufferedBodyBytes = maxBufferedBodyBytes
        configuration.tls = try tls.context()
        configuration.pushTLS = try pushTLS.context()
        let coordinator = Coordinator(configuration: configuration)
        let port = try coordinator.start()
        let host = listen.host.contains(":") ? "[\(listen.host)]" : listen.host
        printNow("nas coordinator: listening on \(tls.scheme)://\(host):\(port)")
        try await waitForTermination()
        coordinator.stop()
    }
}
