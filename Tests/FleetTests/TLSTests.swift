import Foundation
import FleetWire
import HTTP2
import TestSupport
import Testing

@testable import Fleet

/// HTTP/2 over TLS on real sockets, with certificates the `openssl` command made: round trips, refusals of a
/// wrong CA, of a missing client certificate and of peers that do not speak HTTP/2 over TLS.
@Suite struct TLSTests {
    static let token = "tls-token"
    static let path = "/test.Echo/Echo"

    /// An echo server over TLS; with `clientCA`, it requires client certificates that CA signed.
    static func echoServer(_ certificates: TestCertificates, clientCA: String? = nil, host: String = "127.0.0.1")
        throws -> HTTP2Server
    {
        let tls = try TLSContext(server: TLSConfiguration(
            certificateFile: certificates.serverCertificate, keyFile: certificates.serverKey, caFile: clientCA))
        let server = HTTP2Server(
            fleet: .init(host: host, token: token, routes: [path], tls: tls),
            immediate: { request, _ in .now(HTTP2Response(status: 200, body: reversed(request.body))) }
        ) { _ in HTTP2Response(status: 500, body: []) }
        try server.start()
        return server
    }

    static func client(ca: String, certificate: String? = nil, key: String? = nil) throws -> HTTP2Client {
        HTTP2Client(configuration: .init(token: token, tls: try TLSContext(client: TLSConfiguration(
            certificateFile: certificate, keyFile: key, caFile: ca))))
    }

    /// The message of the error `body` throws.
    static func failure(_ body: () async throws -> Void) async -> String {
        do {
            try await body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func roundTripsOverTLSWithClientCertificatesManyStreamsAndLargeBodies() async throws {
        let certificates = try await TestCertificates.make()
        let server = try Self.echoServer(certificates, clientCA: certificates.ca)
        defer { server.stop() }
        let client = try Self.client(ca: certificates.ca, certificate: certificates.clientCertificate,
                                     key: certificates.clientKey)
        defer { client.shutdown() }
        let url = "https://127.0.0.1:\(server.port)\(Self.path)"
        let one = try await client.post(url: url, body: [1, 2, 3], timeout: .seconds(20))
        #expect(one.status == 200)
        #expect(one.body == [3, 2, 1])
        // Bodies larger than a TLS record and than the socket's buffers: partial writes, WANT_WRITE, many records
        // per read.
        let large = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<40 {
                group.addTask {
                    let body = index % 10 == 0 ? large : (0..<(index * 37 + 1)).map { UInt8(truncatingIfNeeded: $0 ^ index) }
                    let response = try await client.post(url: url, body: body, timeout: .seconds(60))
                    return response.status == 200 && response.body == body.reversed()
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 40)
        #expect(results.allSatisfy { $0 })
        // By name too: the certificate names localhost, and the name is resolved off the loop.
        let named = try await client.post(url: "https://localhost:\(server.port)\(Self.path)", body: [9, 8],
                                          timeout: .seconds(20))
        #expect(named.body == [8, 9])
    }

    @Test func aServerSignedByAnotherCAIsRefusedWithAClearError() async throws {
        let certificates = try await TestCertificates.make()
        let server = try Self.echoServer(certificates)
        defer { server.stop() }
        let client = try Self.client(ca: certificates.otherCA)
        defer { client.shutdown() }
        let message = await Self.failure {
            _ = try await client.post(url: "https://127.0.0.1:\(server.port)\(Self.path)", body: [1], timeout: .seconds(20))
        }
        #expect(message.contains("certificate verify failed"), "\(message)")
        #expect(message.contains("--tls-ca"), "\(message)")
        #expect(message.contains("cannot connect to https://127.0.0.1:\(server.port)"), "\(message)")
        // A refused handshake is a setting to fix, not a connection to try again.
        await #expect(throws: HTTP2Error.self) {
            do {
                _ = try await client.post(url: "https://127.0.0.1:\(server.port)\(Self.path)", body: [1],
                                          timeout: .seconds(20))
            } catch let error as HTTP2Error {
                #expect(error.kind == .invalidConfiguration, "\(error)")
                throw error
            }
        }
    }

    @Test func anEvaluationRefusedByTLSFailsAtOnceWithoutRetries() async throws {
        let certificates = try await TestCertificates.make()
        let server = try Self.echoServer(certificates)
        defer { server.stop() }
        // A certificate that will never verify is not called again: a retried call's message says "after N calls".
        var retries = FleetClient.Retries()
        retries.attempts = 3
        retries.firstBackoff = .milliseconds(10)
        let client = FleetClient(coordinator: "https://127.0.0.1:\(server.port)", token: Self.token,
                                 tls: try TLSContext(client: TLSConfiguration(caFile: certificates.otherCA)),
                                 retries: retries)
        do {
            _ = try await client.evaluateDetailed(model: [1, 2, 3], deviceType: "cpu", deadline: .seconds(60))
            Issue.record("the evaluation succeeded against a server the CA did not sign")
        } catch let error as FleetError {
            #expect(error.code == .invalidConfiguration, "\(error)")
            #expect(error.message.contains("certificate verify failed"), "\(error)")
            #expect(!error.message.contains("calls)"), "retried: \(error)")
        }
    }

    @Test func aCertificateForAnotherHostIsRefused() async throws {
        let certificates = try await TestCertificates.make()
        let server = try Self.echoServer(certificates, host: "127.0.0.2")
        defer { server.stop() }
        let client = try Self.client(ca: certificates.ca)
        defer { client.shutdown() }
        // Signed by the right CA, but for 127.0.0.1 and localhost, not 127.0.0.2.
        let message = await Self.failure {
            _ = try await client.post(url: "https://127.0.0.2:\(server.port)\(Self.path)", body: [1], timeout: .seconds(20))
        }
        #expect(message.contains("hostname mismatch") || message.contains("IP address mismatch"), "\(message)")
    }

    @Test func aClientWithoutACertificateIsRefusedWhenTheServerRequiresOne() async throws {
        let certificates = try await TestCertificates.make()
        let server = try Self.echoServer(certificates, clientCA: certificates.ca)
        defer { server.stop() }
        let client = try Self.client(ca: certificates.ca)
        defer { client.shutdown() }
        let message = await Self.failure {
            _ = try await client.post(url: "https://127.0.0.1:\(server.port)\(Self.path)", body: [1], timeout: .seconds(20))
        }
        #expect(message.contains("requires a client certificate"), "\(message)")
        #expect(message.contains("--tls-client-cert"), "\(message)")
        // A certificate from another CA is refused too.
        let stranger = try Self.client(ca: certificates.ca, certificate: certificates.otherServerCertificate,
                                       key: certificates.otherServerKey)
        defer { stranger.shutdown() }
        let refused = await Self.failure {
            _ = try await stranger.post(url: "https://127.0.0.1:\(server.port)\(Self.path)", body: [1], timeout: .seconds(20))
        }
        #expect(refused.contains("the server refused this client certificate"), "\(refused)")
    }

    @Test func mixingTLSAndCleartextFailsWithAHint() async throws {
        let certificates = try await TestCertificates.make()
        let tlsServer = try Self.echoServer(certificates)
        defer { tlsServer.stop() }
        let plain = HTTP2Server(
            fleet: .init(token: Self.token, routes: [Self.path]),
            immediate: { request, _ in .now(HTTP2Response(status: 200, body: request.body)) }
        ) { _ in HTTP2Response(status: 500, body: []) }
        try plain.start()
        defer { plain.stop() }
        let client = try Self.client(ca: certificates.ca)
        defer { client.shutdown() }
        let toPlain = await Self.failure {
            _ = try await client.post(url: "https://127.0.0.1:\(plain.port)\(Self.path)", body: [1], timeout: .seconds(20))
        }
        #expect(toPlain.contains("http://"), "\(toPlain)")
        // h2c still works beside TLS, on the same client.
        let answer = try await client.post(url: "http://127.0.0.1:\(plain.port)\(Self.path)", body: [4], timeout: .seconds(20))
        #expect(answer.body == [4])
        let toTLS = await Self.failure {
            _ = try await client.post(url: "http://127.0.0.1:\(tlsServer.port)\(Self.path)", body: [1], timeout: .seconds(20))
        }
        #expect(toTLS.contains("POST http://127.0.0.1:\(tlsServer.port)"), "\(toTLS)")
        #expect(toTLS.contains("call it with https://"), "\(toTLS)")
    }

    /// `openssl s_server` speaks TLS but no HTTP/2: the handshake ends without ALPN h2 and the call is refused.
    @Test func aTLSServerWithoutHTTP2IsRefused() async throws {
        let certificates = try await TestCertificates.make()
        let port = try freePort()
        let server = try TestProcess(
            "/usr/bin/openssl",
            ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificates.serverCertificate, "-key",
             certificates.serverKey, "-alpn", "http/1.1", "-quiet"], separateErrors: true)
        defer { server.signal(SIGKILL) }
        let client = try Self.client(ca: certificates.ca)
        defer { client.shutdown() }
        var message = ""
        try await eventually("openssl s_server answered") {
            message = await Self.failure {
                _ = try await client.post(url: "https://127.0.0.1:\(port)/x", body: [1], timeout: .seconds(10))
            }
            return !message.contains("Connection refused")
        }
        #expect(message.contains("ALPN h2"), "\(message)")
    }

    /// `openssl s_client` offering only http/1.1 gets the no_application_protocol alert from our server.
    @Test func aClientThatDoesNotOfferHTTP2IsRefused() async throws {
        let certificates = try await TestCertificates.make()
        let server = try Self.echoServer(certificates)
        defer { server.stop() }
        let result = try await TestSupport.run(
            "/usr/bin/openssl",
            ["s_client", "-connect", "127.0.0.1:\(server.port)", "-alpn", "http/1.1", "-CAfile", certificates.ca],
            input: Data())
        #expect(result.status != 0)
        #expect((result.stdout + result.stderr).contains("no application protocol"), "\(result.stderr)")
    }

    /// Peers that stall in the handshake are closed after `handshakeTimeout`; random bytes, truncated and
    /// mutated ClientHellos close their connection only, and the server goes on serving.
    @Test func stalledHandshakesAndGarbageCloseTheirConnectionOnly() async throws {
        let certificates = try await TestCertificates.make()
        let tls = try TLSContext(server: TLSConfiguration(
            certificateFile: certificates.serverCertificate, keyFile: certificates.serverKey))
        var configuration = HTTP2Server.Configuration(token: Self.token, routes: [Self.path], tls: tls)
        configuration.limits.handshakeTimeout = .milliseconds(300)
        let server = HTTP2Server(fleet: configuration,
                                 immediate: { request, _ in .now(HTTP2Response(status: 200, body: request.body)) }
        ) { _ in HTTP2Response(status: 500, body: []) }
        try server.start()
        defer { server.stop() }
        // A real ClientHello (from openssl s_client) to mutate; the peer prints what the server sent back before
        // it closed the connection, or "stalled" if it did not within 20 s.
        let script = #"""
            import os, random, socket, sys
            port, seed = int(sys.argv[1]), int(sys.argv[2])
            rng = random.Random(seed)
            def exchange(payload):
                s = socket.create_connection(("127.0.0.1", port)); s.settimeout(20)
                try:
                    if payload: s.sendall(payload)
                    got = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk: return "closed"
                        got += chunk
                except socket.timeout:
                    return "stalled"
                except ConnectionResetError:
                    return "closed"
                finally:
                    s.close()
            print("silent", exchange(b""))
            hello = bytes.fromhex("16030100c4010000c00303") + os.urandom(32) + bytes.fromhex("000004130113020100009300000014")
            results = set()
            for i in range(30):
                kind = i % 3
                if kind == 0: payload = os.urandom(rng.randint(1, 3000))
                elif kind == 1: payload = hello[:rng.randint(1, len(hello) - 1)]
                else:
                    payload = bytearray(hello)
                    for _ in range(rng.randint(1, 8)): payload[rng.randrange(len(payload))] = rng.randrange(256)
                    payload = bytes(payload)
                results.add(exchange(payload))
            print("fuzzed", " ".join(sorted(results)))
            """#
        let seed = Int.random(in: 0..<1_000_000)
        let result = try await runProgram(try TestPaths.python(), ["-c", script, String(server.port), String(seed)])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("silent closed"), "seed \(seed): \(result.stdout)")
        #expect(result.stdout.contains("fuzzed closed\n"), "seed \(seed): \(result.stdout)")
        let client = try Self.client(ca: certificates.ca)
        defer { client.shutdown() }
        let answer = try await client.post(url: "https://127.0.0.1:\(server.port)\(Self.path)", body: [5, 6],
                                           timeout: .seconds(20))
        #expect(answer.body == [5, 6])
    }

    /// A server that accepts and never answers the ClientHello: the connection is given up after
    /// `connectTimeout`, the call fails saying so (before its own deadline), and the next call dials again.
    @Test func aHandshakeThatNeverEndsIsGivenUp() async throws {
        let certificates = try await TestCertificates.make()
        let listener = try SilentListener()
        defer { close(listener.fd) }
        var configuration = HTTP2Client.Configuration(
            token: Self.token, tls: try TLSContext(client: TLSConfiguration(caFile: certificates.ca)))
        configuration.connectTimeout = .milliseconds(300)
        let client = HTTP2Client(configuration: configuration)
        defer { client.shutdown() }
        for _ in 0..<2 {
            let message = await Self.failure {
                _ = try await client.post(url: "https://127.0.0.1:\(listener.port)/x", body: [1], timeout: .seconds(60))
            }
            #expect(message.contains("TLS handshake in time"), "\(message)")
        }
    }

    @Test func unusableFilesAreClearErrors() async throws {
        let certificates = try await TestCertificates.make()
        let missing = await Self.failure {
            _ = try TLSContext(server: TLSConfiguration(certificateFile: "/nonexistent/server.pem",
                                                        keyFile: certificates.serverKey))
        }
        #expect(missing.contains("/nonexistent/server.pem"), "\(missing)")
        let mismatched = await Self.failure {
            _ = try TLSContext(server: TLSConfiguration(certificateFile: certificates.serverCertificate,
                                                        keyFile: certificates.clientKey))
        }
        #expect(mismatched.contains("does not belong"), "\(mismatched)")
        let notPEM = await Self.failure {
            _ = try TLSContext(client: TLSConfiguration(caFile: TestSupport.packageRoot.appendingPathComponent("README.md").path))
        }
        #expect(notPEM.contains("PEM expected"), "\(notPEM)")
        let halfClient = await Self.failure {
            _ = try TLSContext(client: TLSConfiguration(certificateFile: certificates.clientCertificate))
        }
        #expect(halfClient.contains("--tls-client-key"), "\(halfClient)")
        let noCertificate = await Self.failure { _ = try TLSContext(server: TLSConfiguration()) }
        #expect(noCertificate.contains("--tls-cert"), "\(noCertificate)")
    }
}

/// A port free now (bound to 0 and released), for a peer that cannot be told to pick one itself.
private func freePort() throws -> Int {
    let listener = try SilentListener()
    close(listener.fd)
    return listener.port
}

/// A listening socket nobody accepts from: the kernel completes TCP connections (up to the backlog) and no byte
/// is ever answered.
private struct SilentListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard listening else {
            close(fd)
            throw TestFailure("cannot listen")
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }
}
