import ArgumentParser
import Fleet
import Foundation
import FleetWire

/// `nas evaluate`: measures one ONNX model on a device type of the fleet.
struct EvaluateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Measure an ONNX model on a worker of a device type, through the coordinator.")

    @Argument(help: ArgumentHelp("The model.", valueName: "MODEL.onnx"))
    var model: String

    @Option(help: ArgumentHelp("The coordinator's URL.", valueName: "URL"))
    var coordinator: String

    @Option(help: ArgumentHelp("The device type to measure on.", valueName: "TYPE"))
    var deviceType: String

    @Option(help: "Seconds to wait for a worker and its measurement.")
    var deadline: Double = 300

    @Flag(help: "Print one JSON object: metrics, worker_id, attempts.")
    var json = false

    @OptionGroup var token: FleetTokenOptions

    @OptionGroup(title: "TLS of an https:// coordinator") var tls: TLSClientOptions

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: model) else {
            throw CLIError.badInput("cannot read the model \(model)")
        }
        let client = FleetClient(coordinator: coordinator, token: try token.token(), tls: try tls.context())
        let result: FleetEvaluation
        do {
            result = try await client.evaluateDetailed(model: Array(data), deviceType: deviceType,
                                                       deadline: .milliseconds(Int(deadline * 1000)))
        } catch let error as FleetError {
            printError("Error: \(error)")
            throw ExitCode(1)
        }
        if json {
            struct Output: Encodable {
                var metrics: [String: Double]
                var worker_id: String
                var attempts: Int
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            let output = Output(metrics: result.metrics, worker_id: result.workerID, attempts: result.attempts)
            print(String(decoding: try encoder.encode(output), as: UTF8.self))
            return
        }
        for (name, value) in result.metrics.sorted(by: { $0.key < $1.key }) {
            print(name.padding(16) + String(value))
        }
        print("worker".padding(16) + result.workerID + " (\(result.attempts) attempt\(result.attempts == 1 ? "" : "s"))")
    }
}
