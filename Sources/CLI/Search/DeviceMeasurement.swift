import ArgumentParser
import Fleet
import Foundation
import Trainer

/// How a trial's model reaches a device to be measured.
enum Transport: String, ExpressibleByArgument, CaseIterable {
    /// Pushed to a worker of the device type through the coordinator (HTTP/2).
    case push
    /// Written into the job directory for a file-mode worker, as vertex-ai-nas does.
    case files
    /// Push when the coordinator has a worker of the type (within --push-wait), files otherwise.
    case auto
}

/// Measures one trial's model on each target device type: in this process for this machine's type when no
/// coordinator is given, else through the fleet, falling back to the file exchange where the fleet cannot serve.
struct DeviceMeasurement {
    var coordinator: String?
    var token: String?
    var transport: Transport
    /// Seconds to wait for a worker of the type to register before `auto` uses files.
    var pushWait: Double
    /// The job directory holding the trial's folder (the exchange's root).
    var jobRoot: String
    var trialID: Int
    var repeats: Int
    var exchange: TrainerExchange.Configuration
    var log: (String) -> Void

    /// Metrics of every device type, named as `JobPlan.deviceMetricNames`.
    func measure(model: [UInt8], modelPath: String, deviceTypes: [String]) async throws -> [String: Double] {
        var metrics: [String: Double] = [:]
        for type in deviceTypes {
            let answer = try await measure(model: model, modelPath: modelPath, deviceType: type, of: deviceTypes.count)
            let names = JobPlan.deviceMetricNames(of: type, qualified: deviceTypes.count > 1)
            let keys = [MetricKey.latency, "mean_ms", "p90_ms", "p99_ms", MetricKey.memory]
            for (name, key) in zip(names, keys) {
                if let value = answer[key] { metrics[name] = value }
            }
        }
        return metrics
    }

    private func measure(model: [UInt8], modelPath: String, deviceType: String, of count: Int) async throws
        -> [String: Double]
    {
        switch (transport, coordinator) {
        case (.push, nil):
            throw CLIError("--transport push needs --coordinator URL")
        case (.auto, nil) where deviceType == DeviceType.local:
            return try await NativeRunner(options: MeasurementOptions(warmup: 20, repeats: repeats))
                .measure(modelAt: modelPath)
        case (.files, _), (.auto, nil):
            return try await files(model: model, deviceType: deviceType, of: count)
        case (.push, let url?):
            return try await push(FleetClient(coordinator: url, token: token ?? ""), model, deviceType)
        case (.auto, let url?):
            let client = FleetClient(coordinator: url, token: token ?? "")
            if try await hasWorker(client, deviceType) { return try await push(client, model, deviceType) }
            log("no worker of device type '\(deviceType)' at \(url) after \(pushWait) s; using the file exchange")
            return try await files(model: model, deviceType: deviceType, of: count)
        }
    }

    private func push(_ client: FleetClient, _ model: [UInt8], _ deviceType: String) async throws -> [String: Double] {
        let evaluation = try await client.evaluateDetailed(model: model, deviceType: deviceType)
        log("measured on '\(deviceType)' by worker \(evaluation.workerID) (attempts: \(evaluation.attempts))")
        return evaluation.metrics
    }

    /// True once a worker of the type is registered; false after `pushWait` seconds or when the coordinator
    /// cannot be reached.
    private func hasWorker(_ client: FleetClient, _ deviceType: String) async throws -> Bool {
        let deadline = Date().addingTimeInterval(pushWait)
        while true {
            do {
                if try await client.workers().contains(where: { $0.deviceType == deviceType && $0.state == "live" }) {
                    return true
                }
            } catch let error as FleetError where !error.isRetryable {
                throw CLIError("the coordinator refused the trainer: \(error)")
            } catch {
                log("coordinator unreachable (\(error)); using the file exchange")
                return false
            }
            guard Date() < deadline else { return false }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
    }

    /// The seed's layout: one device type per job directory, so with several types each has its own folder.
    private func files(model: [UInt8], deviceType: String, of count: Int) async throws -> [String: Double] {
        let root = count > 1 ? (jobRoot.hasSuffix("/") ? jobRoot : jobRoot + "/") + "devices/\(deviceType)" : jobRoot
        let storage = try StorageLocation.parse(root).open()
        log("waiting for a file-mode worker of '\(deviceType)': nas worker --job-dir \(root) --device-type \(deviceType)")
        return try await TrainerExchange(storage: storage, configuration: exchange)
            .measure(trial: trialID, model: model).metrics
    }
}
