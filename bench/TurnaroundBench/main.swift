// The turnaround of one real evaluation through the fleet, run on demand by bench/fleet-bench.sh (never in CI).
//
//   TurnaroundBench [COUNT] [pool|loop]
//                             coordinator + 1 native-runner worker in this process, COUNT tutorial CNNs (distinct
//                             weights, so every model travels) one after the other: prints the turnaround minus the
//                             worker's measuring time, next to the seed's polling floor. `pool` (the default): the
//                             caller on Swift's cooperative pool, as a trainer is; `loop`: the caller on the
//                             client's event loop (withTaskExecutorPreference(client.loop)), as FleetBench roundtrip
//
// Apart from FleetBench because it runs the native engine (NativeRunner, hence OpenBLAS) and writes models with
// Trainer's OnnxExport; FleetBench measures the fleet alone.
import Fleet
import Foundation
import NativeRunner
import Trainer

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// The native runner, timing its own measurements so the bench can subtract them. Like the native runner, it takes
/// the pushed bytes (the worker writes its cache after answering).
final class TimedRunner: ModelBytesRunner, @unchecked Sendable {
    private let inner = NativeRunner()
    private let lock = NSLock()
    private var durations: [Double] = []

    func measure(modelAt path: String) async throws -> [String: Double] {
        try await timed { try await inner.measure(modelAt: path) }
    }

    func measure(model: [UInt8]) async throws -> [String: Double] {
        try await timed { try await inner.measure(model: model) }
    }

    private func timed(_ measure: () async throws -> [String: Double]) async throws -> [String: Double] {
        let clock = ContinuousClock()
        let start = clock.now
        let metrics = try await measure()
        let elapsed = clock.now - start
        lock.withLock { durations.append(seconds(elapsed)) }
        return metrics
    }

    func takeDurations() -> [Double] {
        lock.withLock {
            defer { durations.removeAll() }
            return durations
        }
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func turnaround(count: Int, onLoop: Bool) async throws {
    let token = "bench-token"
    let coordinator = Coordinator(configuration: .init(token: token))
    let url = "http://127.0.0.1:\(try coordinator.start())"
    let runner = TimedRunner()
    let worker = FleetWorker(configuration: .init(coordinator: url, deviceType: "cpu", token: token), runner: runner)
    try worker.start()
    let loop = Task { await worker.run() }
    let client = FleetClient(coordinator: url, token: token)
    while try await client.workers().isEmpty { try await Task.sleep(for: .milliseconds(20)) }
    let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6)])
    // Exported up front: a caller on the loop must not do heavy work between its calls.
    let models = try (0...count).map { index in
        try OnnxExport.serialized(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: UInt64(index)))
    }
    var (overheads, measuring) =
        onLoop
        ? try await withTaskExecutorPreference(client.loop) { try await evaluate(models, client, runner) }
        : try await evaluate(models, client, runner)
    overheads.sort()
    measuring.sort()
    print(String(format: "turnaround caller=%@ models=%d overhead_p50_ms=%.2f overhead_p90_ms=%.2f measuring_p50_ms=%.1f "
                     + "seed_floor_s=30-90", onLoop ? "loop" : "pool", count, percentile(overheads, 0.5) * 1000, percentile(overheads, 0.9) * 1000,
                 percentile(measuring, 0.5) * 1000))
    await worker.stop()
    loop.cancel()
    coordinator.stop()
}

/// Evaluates the models one after the other: the overhead (turnaround minus measuring time) and the measuring time
/// of each but the first, in seconds. Nonisolated: it runs on the task's preferred executor when there is one.
func evaluate(_ models: [[UInt8]], _ client: FleetClient, _ runner: TimedRunner) async throws
    -> (overheads: [Double], measuring: [Double])
{
    let clock = ContinuousClock()
    var overheads: [Double] = []
    var measuring: [Double] = []
    for (index, model) in models.enumerated() {
        let start = clock.now
        _ = try await client.evaluate(model: model, deviceType: "cpu", deadline: .seconds(60))
        let total = seconds(clock.now - start)
        let measured = runner.takeDurations().reduce(0, +)
        if index > 0 {  // the first one warms connections and caches
            overheads.append(total - measured)
            measuring.append(measured)
        }
    }
    return (overheads, measuring)
}

let arguments = CommandLine.arguments
do {
    try await turnaround(count: arguments.count > 1 ? Int(arguments[1])! : 20,
                         onLoop: arguments.count > 2 && arguments[2] == "loop")
} catch {
    print("TurnaroundBench: \(error)")
    exit(1)
}
