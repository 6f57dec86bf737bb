// Turnaround of the file exchange: from the trainer writing a model to the trainer holding its metrics, minus the
// measuring time, with the default 1 s polls on both sides; on a local folder and on fake-gcs-server.
// Run by bench/exchange/run.sh (on demand, never in CI). Prints medians next to the seed's floor.
import Fleet
import Foundation
import System

#if canImport(Glibc)
    import Glibc
#endif

func argument(_ name: String) -> String? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else {
        return nil
    }
    return CommandLine.arguments[index + 1]
}

let trials = Int(argument("--trials") ?? "") ?? 10
let here = URL(
    fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? CommandLine.arguments[0])
let nas = argument("--nas") ?? here.deletingLastPathComponent().appendingPathComponent("nas").path
guard let emulatorBinary = argument("--emulator") else {
    FileHandle.standardError.write(
        Data("usage: ExchangeBench --emulator PATH-TO-fake-gcs-server [--nas PATH] [--trials N]\n".utf8))
    exit(2)
}

func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            _ = bind(fd, $0, length)
            _ = getsockname(fd, $0, &length)
        }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

let model = Array(#"{"latency_ms": 1.0, "memory_bytes": 1024}"#.utf8)
let runner = try CommandRunner(command: "cat {model}")

/// The runner's own time, measured alone, to subtract from the turnaround.
func runnerSeconds(_ folder: String) async throws -> Double {
    let path = folder + "/model.onnx"
    guard FileManager.default.createFile(atPath: path, contents: Data(model)) else {
        fatalError("cannot write \(path)")
    }
    var times = [Double]()
    for _ in 0..<max(5, trials) {
        let start = Date()
        _ = try await runner.measure(modelAt: path)
        times.append(Date().timeIntervalSince(start))
    }
    return median(times)
}

func bench(_ label: String, storage: any ObjectStorage, jobDir: String, environment: [String: String]) async throws
    -> [Double]
{
    let folder = NSTemporaryDirectory() + "nas-exchange-bench-\(getpid())-\(label)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let measuring = try await runnerSeconds(folder)
    let worker = try Subprocess(
        executable: nas,
        arguments: ["worker", "--job-dir", jobDir, "--device-type", "bench", "--runner-command", "cat {model}"],
        environment: environment, standardOutput: .discard, standardError: .discard)
    defer { worker.signal(SIGKILL) }
    let trainer = TrainerExchange(storage: storage)  // the defaults: 1 s poll, 600 s timeout
    var turnarounds = [Double]()
    for trial in 1...trials {
        // A random phase, so that submissions do not lock onto the worker's poll cycle.
        try await Task.sleep(nanoseconds: UInt64(Double.random(in: 0..<1) * 1e9))
        let start = Date()
        let metrics = try await trainer.measure(trial: trial, model: model)
        precondition(metrics.latencyMilliseconds == 1)
        turnarounds.append(Date().timeIntervalSince(start) - measuring)
    }
    try JobState.succeeded.write(to: storage)
    _ = await worker.wait()
    let name = label.count < 16 ? label + String(repeating: " ", count: 16 - label.count) : label
    print(
        name
            + String(
                format:
                    " trials %3d  median %.3f s  p90 %.3f s  min %.3f s  max %.3f s  (runner alone %.3f s, subtracted)",
                trials, median(turnarounds), percentile(turnarounds, 0.9), turnarounds.min()!, turnarounds.max()!,
                measuring))
    return turnarounds
}

let localRoot = NSTemporaryDirectory() + "nas-exchange-bench-\(getpid())-job"
defer { try? FileManager.default.removeItem(atPath: localRoot) }
let local = try await bench(
    "local folder", storage: try LocalStorage(root: localRoot), jobDir: localRoot, environment: [:])

let port = freePort()
let emulator = try Subprocess(
    executable: emulatorBinary,
    arguments: [
        "-scheme", "http", "-host", "127.0.0.1", "-port", "\(port)", "-backend", "memory", "-log-level", "error",
    ],
    standardOutput: .discard, standardError: .discard)
defer { emulator.signal(SIGKILL) }
let configuration = GCSStorage.Configuration(endpoint: "http://127.0.0.1:\(port)", credentials: .none)
var created = false
for _ in 0..<200 where !created {
    let result = try await Subprocess.run(
        "/usr/bin/curl",
        [
            "-sf", "-o", "/dev/null", "-X", "POST", "-H", "Content-Type: application/json", "-d", #"{"name":"bench"}"#,
            "http://127.0.0.1:\(port)/storage/v1/b",
        ])
    created = result.termination == .exited(0)
    if !created { try await Task.sleep(for: .milliseconds(25)) }
}
let gcs = try await bench(
    "fake-gcs-server", storage: try GCSStorage(bucket: "bench", prefix: "job", configuration: configuration),
    jobDir: "gs://bench/job", environment: ["STORAGE_EMULATOR_HOST": "127.0.0.1:\(port)"])

// The seed: the trainer re-checks every 30 s and the evaluator scans every 60 s, so a model waits up to 60 s to be
// picked up and its metrics up to 30 s to be read: 0-90 s, 45 s on average with random phases.
let seedMean = 45.0
print(String(format: "seed floor (30 s trainer sleep + up to 60 s evaluator sleep): 0-90 s, mean %.0f s", seedMean))
print(
    String(
        format: "ratio seed mean / median: local %.0fx, fake-gcs-server %.0fx", seedMean / median(local),
        seedMean / median(gcs)))
