import ArgumentParser
import Fleet
import HTTP2
import Foundation
import System

/// The fleet's shared token: from --token-file, else the NAS_FLEET_TOKEN environment variable.
struct FleetTokenOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A file holding the fleet's shared bearer token (else NAS_FLEET_TOKEN).",
                               valueName: "FILE"))
    var tokenFile: String?

    /// The token, or a clear error saying where to put one.
    func token() throws -> String {
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw CLIError.badInput("cannot read the token file \(tokenFile)")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw CLIError.badInput("the token file \(tokenFile) is empty") }
            return token
        }
        if let token = ProcessInfo.processInfo.environment["NAS_FLEET_TOKEN"], !token.isEmpty { return token }
        throw ValidationError(
            "no fleet token: pass --token-file FILE or set NAS_FLEET_TOKEN (the same on the coordinator and workers)")
    }
}

/// `HOST:PORT` (or `[IPv6]:PORT`), as --listen takes it.
struct ListenAddress: ExpressibleByArgument, Sendable {
    var host: String
    var port: Int

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(argument[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// The address as `--listen` takes it: `help` shows defaults this way.
    var defaultValueDescription: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// `key=value`, as --attr and --constant-metric take it.
func parsePairs(_ pairs: [String], option: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for pair in pairs {
        guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
            throw ValidationError("\(option) '\(pair)' must be key=value")
        }
        result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
    }
    return result
}

/// Waits for SIGINT or SIGTERM: servers run until told to stop.
func waitForTermination() async throws {
    SignalTrap.ignore(SIGPIPE)
    let trap = try SignalTrap([SIGINT, SIGTERM])
    defer { trap.release() }
    await trap.wait()
}

/// Prints a line to standard output at once, so a parent reading the pipe sees it.
func printNow(_ text: String) {
    writeAll(text + "\n", to: STDOUT_FILENO)
}

/// A server's TLS: its certificate and key, and the CA whose client certificates it then requires.
struct TLSServerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Serve HTTP/2 over TLS with this certificate chain (PEM); needs --tls-key.",
                               valueName: "FILE"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The private key of --tls-cert (PEM).", valueName: "FILE"))
    var tlsKey: String?

    @Option(help: ArgumentHelp("Require client certificates signed by this CA (PEM); needs --tls-cert.",
                               valueName: "FILE"))
    var tlsClientCA: String?

    func validate() throws {
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together: give both to serve over TLS, or neither")
        }
        guard tlsClientCA == nil || tlsCert != nil else {
            throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key: client certificates need TLS")
        }
    }

    /// The scheme its URLs have.
    var scheme: String { tlsCert == nil ? "http" : "https" }

    /// The server context, nil for h2c; a file that cannot be used is a clear error.
    func context() throws -> TLSContext? {
        guard tlsCert != nil else { return nil }
        return try TLSContext(server: TLSConfiguration(certificateFile: tlsCert, keyFile: tlsKey, caFile: tlsClientCA))
    }
}

/// A caller's TLS for `https://` peers: the CA their certificates must chain to, and its own client certificate.
struct TLSClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Check https:// peers' certificates against this CA (PEM; default: the system's).",
                               valueName: "FILE"))
    var tlsCA: String?

    @Option(help: ArgumentHelp("Present this client certificate (PEM) to https:// peers; needs --tls-client-key.",
                               valueName: "FILE"))
    var tlsClientCert: String?

    @Option(help: ArgumentHelp("The private key of --tls-client-cert (PEM).", valueName: "FILE"))
    var tlsClientKey: String?

    func validate() throws {
        guard (tlsClientCert == nil) == (tlsClientKey == nil) else {
            throw ValidationError("--tls-client-cert and --tls-client-key go together: give both, or neither")
        }
    }

    /// The client context, nil when no option is given (https:// peers are then checked against the system's
    /// trust store); a file that cannot be used is a clear error.
    func context() throws -> TLSContext? {
        guard tlsCA != nil || tlsClientCert != nil else { return nil }
        return try TLSContext(client: TLSConfiguration(certificateFile: tlsClientCert, keyFile: tlsClientKey,
                                                       caFile: tlsCA))
    }
}
