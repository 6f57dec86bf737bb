// Benchmarks of the fleet, run on demand by bench/fleet-bench.sh (never in CI).
//
//   FleetBench roundtrip URL TOKEN [COUNT]         sequential trivial calls (ListWorkers) through FleetClient:
//                                                  prints p50/p99 in microseconds
//   FleetBench evaluations [WORKERS] [SECONDS] [CONCURRENCY]
//                                                  coordinator + WORKERS constant-runner workers in this process,
//                                                  CONCURRENCY callers evaluating a small model: prints evals/s
//   FleetBench turnaround [COUNT]                  coordinator + 1 native-runner worker in this process, COUNT
//                                                  tutorial CNNs (distinct weights, so every model travels) one
//                                                  after the other: prints the turnaround minus the worker's
//                                                  measuring time, next to the seed's polling floor
import Fleet
import Foundation
import Trainer

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func roundtrip(url: String, token: String, count: Int) async throws {
    let client = FleetClient(coordinator: url, token: token)
    for _ in 0..<200 { _ = try await client.workers() }  // warm-up: connection open, caches warm
    var samples: [Double] = []
    samples.reserveCapacity(count)
    let clock = ContinuousClock()
    for _ in 0..<count {
        let start = clock.now
        _ = try await client.workers()
        let elapsed = clock.now - start
        samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
    }
    samples.sort()
    print(String(format: "roundtrip fleet-client count=%d p50_us=%.1f p99_us=%.1f", count, percentile(samples, 0.5),
                 percentile(samples, 0.99)))
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add(_ n: Int) { lock.withLock { value += n } }
    var current: Int { lock.withLock { value } }
}

func evaluations(workers count: Int, seconds: Double, concurrency: Int) async throws {
    let token = "bench-token"
    let coordinator = Coordinator(configuration: .init(token: token))
    let port = try coordinator.start()
    let url = "http://127.0.0.1:\(port)"
    var workers: [FleetWorker] = []
    var loops: [Task<Void, Never>] = []
    for _ in 0..<count {
        let worker = FleetWorker(
            configuration: .init(coordinator: url, deviceType: "bench", token: token), runner: ConstantRunner())
        var configuration = worker.configuration
        configuration.capacity = max(1, concurrency / count)
        let sized = FleetWorker(configuration: configuration, runner: ConstantRunner())
        try sized.start()
        workers.append(sized)
        loops.append(Task { await sized.run() })
    }
    let clients = (0..<4).map { _ in FleetClient(coordinator: url, token: token) }
    while try await clients[0].workers().count < count { try await Task.sleep(for: .milliseconds(20)) }
    let model = [UInt8](repeating: 7, count: 256)
    let done = Counter()
    let failed = Counter()
    let clock = ContinuousClock()
    // Warm-up, so every worker has the model cached and every connection is open.
    _ = try await clients[0].evaluate(model: model, deviceType: "bench")
    let start = clock.now
    let end = start + .milliseconds(Int(seconds * 1000))
    await withTaskGroup(of: Void.self) { group in
        for index in 0..<concurrency {
            let client = clients[index % clients.count]
            group.addTask {
                while clock.now < end {
                    do {
                        _ = try await client.evaluate(model: model, deviceType: "bench", deadline: .seconds(30))
                        done.add(1)
                    } catch {
                        failed.add(1)
                    }
                }
            }
        }
    }
    let elapsed = clock.now - start
    let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print(String(format: "evaluations workers=%d concurrency=%d seconds=%.1f done=%d failed=%d evals_per_s=%.0f",
                 count, concurrency, wall, done.current, failed.current, Double(done.current) / wall))
    for worker in workers { await worker.stop() }
    for loop in loops { loop.cancel() }
    coordinator.stop()
}

/// The native runner, timing its own measurements so the bench can subtract them.
final class TimedRunner: ModelRunner, @unchecked Sendable {
    private let inner = NativeRunner()
    private let lock = NSLock()
    private var durations: [Double] = []

    func measure(modelAt path: String) async throws -> [String: Double] {
        let clock = ContinuousClock()
        let start = clock.now
        let metrics = try await inner.measure(modelAt: path)
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

func turnaround(count: Int) async throws {
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
    let clock = ContinuousClock()
    var overheads: [Double] = []
    var measuring: [Double] = []
    for index in 0...count {
        let model = try OnnxExport.serialized(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: UInt64(index)))
        let start = clock.now
        _ = try await client.evaluate(model: model, deviceType: "cpu", deadline: .seconds(60))
        let total = seconds(clock.now - start)
        let measured = runner.takeDurations().reduce(0, +)
        if index > 0 {  // the first one warms connections and caches
            overheads.append(total - measured)
            measuring.append(measured)
        }
    }
    overheads.sort()
    measuring.sort()
    print(String(format: "turnaround models=%d overhead_p50_ms=%.2f overhead_p90_ms=%.2f measuring_p50_ms=%.1f "
                     + "seed_floor_s=30-90", count, percentile(overheads, 0.5) * 1000, percentile(overheads, 0.9) * 1000,
                 percentile(measuring, 0.5) * 1000))
    await worker.stop()
    loop.cancel()
    coordinator.stop()
}

let arguments = CommandLine.arguments
do {
    switch arguments.dropFirst().first {
    case "roundtrip":
        try await roundtrip(url: arguments[2], token: arguments[3], count: arguments.count > 4 ? Int(arguments[4])! : 5000)
    case "evaluations":
        try await evaluations(workers: arguments.count > 2 ? Int(arguments[2])! : 4,
                              seconds: arguments.count > 3 ? Double(arguments[3])! : 10,
                              concurrency: arguments.count > 4 ? Int(arguments[4])! : 256)
    case "turnaround":
        try await turnaround(count: arguments.count > 2 ? Int(arguments[2])! : 20)
    default:
        print("usage: FleetBench roundtrip URL TOKEN [COUNT] | evaluations [WORKERS] [SECONDS] [CONCURRENCY] "
            + "| turnaround [COUNT]")
        exit(2)
    }
} catch {
    print("FleetBench: \(error)")
    exit(1)
}
