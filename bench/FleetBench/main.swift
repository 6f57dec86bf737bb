// Benchmarks of the fleet, run on demand by bench/fleet-bench.sh (never in CI).
//
//   FleetBench roundtrip URL TOKEN [COUNT] [loop|pool] [CA]
//                                                  sequential trivial calls (ListWorkers) through FleetClient:
//                                                  prints p50/p99 in microseconds. `loop` (the default): the
//                                                  caller runs on the client's event loop
//                                                  (withTaskExecutorPreference(client.loop)), so no call wakes a
//                                                  thread on our side; fine for a caller that does nothing between
//                                                  calls, never for one with heavy work after the await. `pool`:
//                                                  the caller on Swift's cooperative pool, as callers are by default.
//                                                  An https:// URL is called over TLS, its certificate checked
//                                                  against the PEM file CA (bench/tls/run.sh)
//   FleetBench coordinator TOKEN [CERT KEY]        a coordinator on an event loop of its own (over TLS with the
//                                                  PEM files CERT and KEY, else h2c): prints its URL, serves until
//                                                  killed; a peer for h2load and `roundtrip` without the CLI's build
//   FleetBench evaluations [WORKERS] [SECONDS] [CONCURRENCY] [LOOPS]
//                                                  coordinator + WORKERS constant-runner workers in this process,
//                                                  CONCURRENCY callers evaluating a small model: prints evals/s.
//                                                  LOOPS `own` (the default) gives the coordinator, the workers and
//                                                  the callers an event loop each, as the processes of a real fleet
//                                                  have; `shared` puts them all on the process's one loop
//
// The turnaround of a real evaluation is TurnaroundBench's (it needs the native engine, which the fleet does not
// link): this target builds from the fleet alone.
import Fleet
import Foundation
import HTTP2

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func roundtrip(url: String, token: String, count: Int, onLoop: Bool, ca: String?) async throws {
    let tls = try ca.map { ca throws(HTTP2Error) in try TLSContext(client: TLSConfiguration(caFile: ca)) }
    let client = FleetClient(coordinator: url, token: token, tls: tls)
    let samples =
        onLoop
        ? try await withTaskExecutorPreference(client.loop) { try await measureRoundtrips(client, count: count) }
        : try await measureRoundtrips(client, count: count)
    print(String(format: "roundtrip fleet-client caller=%@ count=%d p50_us=%.1f p99_us=%.1f", onLoop ? "loop" : "pool",
                 count, percentile(samples, 0.5), percentile(samples, 0.99)))
}

func serveCoordinator(token: String, certificate: String?, key: String?) throws -> Never {
    var configuration = Coordinator.Configuration(token: token)
    if let certificate, let key {
        configuration.tls = try TLSContext(server: TLSConfiguration(certificateFile: certificate, keyFile: key))
    }
    let coordinator = Coordinator(configuration: configuration, loop: EventLoop(name: "bench-coordinator"))
    let port = try coordinator.start()
    // Unbuffered: the script reads the line through a file while the process runs.
    FileHandle.standardOutput.write(Data("listening on \(certificate == nil ? "http" : "https")://127.0.0.1:\(port)\n".utf8))
    // The coordinator lives on its loop's thread; this one only waits for the signal that ends the process.
    while true { pause() }
}

/// `count` sequential calls, after a warm-up; sorted microseconds. Nonisolated, so it runs on the task's preferred
/// executor when there is one.
func measureRoundtrips(_ client: FleetClient, count: Int) async throws -> [Double] {
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
    return samples
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add(_ n: Int) { lock.withLock { value += n } }
    var current: Int { lock.withLock { value } }
}

func evaluations(workers count: Int, seconds: Double, concurrency: Int, ownLoops: Bool) async throws {
    let token = "bench-token"
    let eventLoops = ownLoops
        ? (EventLoop(name: "bench-coordinator"), EventLoop(name: "bench-workers"), EventLoop(name: "bench-callers"))
        : (EventLoop.shared, EventLoop.shared, EventLoop.shared)
    let coordinator = Coordinator(configuration: .init(token: token), loop: eventLoops.0)
    let port = try coordinator.start()
    let url = "http://127.0.0.1:\(port)"
    var workers: [FleetWorker] = []
    var loops: [Task<Void, Never>] = []
    for _ in 0..<count {
        let worker = FleetWorker(
            configuration: .init(coordinator: url, deviceType: "bench", token: token), runner: ConstantRunner())
        var configuration = worker.configuration
        configuration.capacity = max(1, concurrency / count)
        let sized = FleetWorker(configuration: configuration, runner: ConstantRunner(), loop: eventLoops.1)
        try sized.start()
        workers.append(sized)
        loops.append(Task { await sized.run() })
    }
    let clients = (0..<4).map { _ in FleetClient(coordinator: url, token: token, loop: eventLoops.2) }
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
    print(String(format: "evaluations workers=%d concurrency=%d loops=", count, concurrency)
        + (ownLoops ? "own" : "shared")
        + String(format: " seconds=%.1f done=%d failed=%d evals_per_s=%.0f", wall, done.current, failed.current,
                 Double(done.current) / wall))
    for worker in workers { await worker.stop() }
    for loop in loops { loop.cancel() }
    coordinator.stop()
}

let arguments = CommandLine.arguments
do {
    switch arguments.dropFirst().first {
    case "roundtrip":
        try await roundtrip(url: arguments[2], token: arguments[3], count: arguments.count > 4 ? Int(arguments[4])! : 5000,
                            onLoop: arguments.count > 5 ? arguments[5] != "pool" : true,
                            ca: arguments.count > 6 ? arguments[6] : nil)
    case "coordinator":
        try serveCoordinator(token: arguments[2], certificate: arguments.count > 4 ? arguments[3] : nil,
                             key: arguments.count > 4 ? arguments[4] : nil)
    case "evaluations":
        try await evaluations(workers: arguments.count > 2 ? Int(arguments[2])! : 4,
                              seconds: arguments.count > 3 ? Double(arguments[3])! : 10,
                              concurrency: arguments.count > 4 ? Int(arguments[4])! : 256,
                              ownLoops: arguments.count > 5 ? arguments[5] != "shared" : true)
    default:
        print("usage: FleetBench roundtrip URL TOKEN [COUNT] [loop|pool] [CA] | evaluations [WORKERS] [SECONDS] "
            + "[CONCURRENCY] [own|shared] | coordinator TOKEN [CERT KEY]")
        exit(2)
    }
} catch {
    print("FleetBench: \(error)")
    exit(1)
}
