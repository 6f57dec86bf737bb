import ArgumentParser
import Fleet
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
