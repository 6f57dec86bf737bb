import Foundation
import TestSupport
import Testing

@testable import Fleet

/// A stand-in for Google's OAuth token endpoint and the GCE metadata server (which cannot run here), and a
/// flaky storage endpoint: a real HTTP server in Python that logs what it receives.
final class TokenServer: Sendable {
    static let script = #"""
        import http.server, json, sys, urllib.parse
        log = open(sys.argv[1], "a", buffering=1)
        flaky = {"count": 0}
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args): pass
            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            def do_POST(self):
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["content-length"])).decode())
                log.write("POST %s %s\n" % (self.path, json.dumps(form, sort_keys=True)))
                if form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == ["r-1"]:
                    self.reply(200, {"access_token": "user-token", "expires_in": 3600, "token_type": "Bearer"})
                else:
                    self.reply(400, {"error": "invalid_grant"})
            def do_GET(self):
                log.write("GET %s %s %s\n" % (self.path, self.headers.get("authorization"), self.headers.get("metadata-flavor")))
                if self.path.startswith("/computeMetadata/v1/instance/service-accounts/default/token"):
                    if self.headers.get("metadata-flavor") != "Google":
                        return self.reply(403, {"error": "missing Metadata-Flavor"})
                    return self.reply(200, {"access_token": "vm-token", "expires_in": 3600})
                if self.path.startswith("/storage/v1/b/flaky/o?"):
                    flaky["count"] += 1
                    if flaky["count"] == 1: return self.reply(503, {"error": {"code": 503, "message": "backend busy"}})
                    if flaky["count"] == 2: return self.reply(429, {"error": {"code": 429, "message": "slow down"}})
                    return self.reply(200, {"items": [{"name": "job/1/saved_model/model.onnx"}]})
                if self.path.startswith("/storage/v1/b/denied/o?"):
                    return self.reply(403, {"error": {"code": 403, "message": "caller does not have storage.objects.list access"}})
                self.reply(404, {"error": {"code": 404, "message": "Not Found"}})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """#

    let process: TestProcess
    let logPath: String
    let port: Int
    var endpoint: String { "http://127.0.0.1:\(port)" }

    init(folder: String) async throws {
        logPath = folder + "/requests.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        guard FileManager.default.isExecutableFile(atPath: StorageTestSupport.python) else {
            Issue.record(
                "python not found at \(StorageTestSupport.python); run scripts/bootstrap.sh or set NAS_TEST_PYTHON")
            throw StorageTestFailure("python missing")
        }
        let process = try TestProcess(StorageTestSupport.python, ["-c", Self.script, logPath], separateErrors: true)
        self.process = process
        // The server prints its port once it listens.
        try await TestSupport.eventually("the token server's port", seconds: 30) { process.output.contains("\n") }
        let line = process.output.split(separator: "\n").first.map(String.init) ?? ""
        guard let port = Int(line.trimmingCharacters(in: .whitespaces)) else {
            throw StorageTestFailure("the token server did not start: \(line) \(process.errors)")
        }
        self.port = port
    }

    var requests: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

}

@Suite("GCS credentials and retries against live HTTP servers")
struct StorageAuthTests {
    @Test("authorized_user ADC: the refresh token is exchanged once and the access token sent to storage")
    func authorizedUser() async throws {
        let folder = StorageTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let server = try await TokenServer(folder: folder)
        let adc = folder + "/adc.json"
        try Data(
            """
            {"type": "authorized_user", "client_id": "c-1", "client_secret": "s-1", "refresh_token": "r-1",
             "token_uri": "\(server.endpoint)/token"}
            """.utf8
        ).write(to: URL(fileURLWithPath: adc))
        var configuration = try GCSStorage.Configuration.fromEnvironment(["GOOGLE_APPLICATION_CREDENTIALS": adc])
        configuration.endpoint = server.endpoint
        let storage = try GCSStorage(bucket: "flaky", prefix: "job", configuration: configuration)
        #expect(try storage.list(prefix: "") == ["1/saved_model/model.onnx"])  // after a 503 and a 429
        #expect(try storage.read("1/x") == nil)
        let requests = server.requests
        let exchanges = requests.filter { $0.hasPrefix("POST /token") }
        #expect(exchanges.count == 1, "\(requests)")
        #expect(exchanges.first?.contains(#""client_id": ["c-1"]"#) == true)
        #expect(exchanges.first?.contains(#""grant_type": ["refresh_token"]"#) == true)
        let storageCalls = requests.filter { $0.hasPrefix("GET /storage") }
        #expect(storageCalls.count == 4, "\(requests)")  // 503, 429, 200, then the read's 404
        #expect(storageCalls.allSatisfy { $0.contains("Bearer user-token") }, "\(requests)")
    }

    @Test("a refused refresh token is a typed auth error")
    func refusedRefresh() async throws {
        let folder = StorageTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let server = try await TokenServer(folder: folder)
        let configuration = GCSStorage.Configuration(
            endpoint: server.endpoint,
            credentials: .authorizedUser(
                clientID: "c", clientSecret: "s", refreshToken: "revoked", tokenURI: server.endpoint + "/token"))
        let storage = try GCSStorage(bucket: "flaky", configuration: configuration)
        let error = try #require(throws: StorageError.self) { try storage.list(prefix: "") }
        #expect(
            error.description.contains("cannot get Google Cloud credentials")
                && error.description.contains("invalid_grant"))
        #expect(error.description.contains("HTTP 400"))
    }

    @Test("the metadata server's token, asked with Metadata-Flavor: Google; 403 is a permission error")
    func metadataServer() async throws {
        let folder = StorageTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let server = try await TokenServer(folder: folder)
        var configuration = try GCSStorage.Configuration.fromEnvironment(
            ["HOME": folder, "GCE_METADATA_HOST": "127.0.0.1:\(server.port)"])
        configuration.endpoint = server.endpoint
        let storage = try GCSStorage(bucket: "denied", prefix: "job", configuration: configuration)
        let error = try #require(throws: StorageError.self) { try storage.list(prefix: "") }
        #expect(error.description.contains("storage.objects.list access"))
        #expect(error.description.contains("lack access"))
        let requests = server.requests
        #expect(requests.contains { $0.hasPrefix("GET /computeMetadata") && $0.hasSuffix("Google") }, "\(requests)")
        #expect(
            requests.contains { $0.hasPrefix("GET /storage/v1/b/denied") && $0.contains("Bearer vm-token") },
            "\(requests)")
    }
}
