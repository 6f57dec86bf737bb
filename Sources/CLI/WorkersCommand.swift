import ArgumentParser
import Fleet
import Foundation
import FleetWire

/// `nas workers`: the workers a coordinator knows.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List the coordinator's workers: device type, attributes, state, load and last heartbeat.")

    @Option(help: ArgumentHelp("The coordinator's URL.", valueName: "URL"))
    var coordinator: String

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var token: FleetTokenOptions

    @OptionGroup(title: "TLS of an https:// coordinator") var tls: TLSClientOptions

    func run() async throws {
        let client = FleetClient(coordinator: coordinator, token: try token.token(), tls: try tls.context())
        let workers: [FleetWorkerStatus]
        do {
            workers = try await client.workers()
        } catch let error as FleetError {
            printError("Error: \(error)")
            throw ExitCode(1)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(workers), as: UTF8.self))
            return
        }
        let widths = [10, 14, 7, 10, 8, 8, 12]
        func row(_ cells: [String]) -> String {
            var line = ""
            for (index, cell) in cells.enumerated() {
                line += index < widths.count ? cell.padding(widths[index]) : cell
            }
            return line
        }
        print(row(["ID", "DEVICE TYPE", "STATE", "IN-FLIGHT", "DONE", "FAILED", "HEARTBEAT", "ATTRIBUTES"]))
        for worker in workers {
            let attributes: [String] = worker.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            let cells: [String] = [
                worker.workerID, worker.deviceType, worker.state, "\(worker.inFlight)/\(worker.capacity)",
                String(worker.done), String(worker.failed), "\(worker.lastHeartbeatMillisecondsAgo)ms ago",
                attributes.joined(separator: ","),
            ]
            print(row(cells))
        }
    }
}
