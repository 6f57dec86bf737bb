import Foundation
import HTTP2
import Testing

@testable import Fleet
@testable import FleetWire

/// Bad input at the server: auth, limits, malformed bodies, unknown paths, and bytes that are not HTTP/2.
@Suite struct ServerInputTests {
    static func rawCall(_ port: Int, path: String, body: [UInt8], token: String?) async throws -> HTTP2Response {
        let client = HTTP2Client(token: token ?? "")
        defer { client.shutdown() }
        return try await client.post(url: "http://127.0.0.1:\(port)\(path)", body: body, timeout: .seconds(10))
    }

    @Test func callsWithoutTheTokenGet401AndChangeNothing() async throws {
        let fleet = try TestFleet()
        let port = fleet.coordinator.port
        let register = RegisterRequest(deviceType: "cpu", capacity: 1, address: "http://127.0.0.1:1").encoded()
        for token in [nil, "wrong", Fleet_testToken.prefix] as [String?] {
            let response = try await Self.rawCall(port, path: FleetPath.register, body: register, token: token)
            #expect(response.status == 401)
            let error = try ErrorMessage(decoding: response.body)
            #expect(error.code == .unauthenticated)
        }
        #expect(try await fleet.client.workers().isEmpty)
        await fleet.shutdown()
    }

    @Test func malformedBodiesGet400AndUnknownPaths404() async throws {
        let fleet = try TestFleet()
        let port = fleet.coordinator.port
        let malformed = try await Self.rawCall(port, path: FleetPath.register, body: [0x0a, 0x7f, 0x41],
                                               token: TestFleet.token)
        #expect(malformed.status == 400)
        let error = try ErrorMessage(decoding: malformed.body)
        #expect(error.code == .badRequest)
        #expect(error.message.contains("RegisterRequest"))
        let unknown = try await Self.rawCall(port, path: "/nas.fleet.Coordinator/Nope", body: [], token: TestFleet.token)
        #expect(unknown.status == 404)
        #expect(try ErrorMessage(decoding: unknown.body).code == .notFound)
        // A model whose hash does not match is refused as a bad model.
        let damaged = EvaluateRequest(deviceType: "cpu", model: [1, 2, 3], sha256: SHA256.hash([9]))
        let refused = try await Self.rawCall(port, path: FleetPath.evaluate, body: damaged.encoded(),
                                             token: TestFleet.token)
        #expect(refused.status == 422)
        #expect(try ErrorMessage(decoding: refused.body).code == .badModel)
        // The proto says 32 bytes: a missing or short hash is a bad request, not a model taken on trust.
        for hash in [[], [UInt8](SHA256.hash([1, 2, 3]).prefix(31))] as [[UInt8]] {
            let unhashed = EvaluateRequest(deviceType: "cpu", model: [1, 2, 3], sha256: hash)
            let answer = try await Self.rawCall(port, path: FleetPath.evaluate, body: unhashed.encoded(),
                                                token: TestFleet.token)
            #expect(answer.status == 400)
            let error = try ErrorMessage(decoding: answer.body)
            #expect(error.code == .badRequest && error.message.contains("sha256 is \(hash.count) bytes"))
        }
        await fleet.shutdown()
    }

    @Test func bodiesOverTheLimitGet413() async throws {
        let fleet = try TestFleet(maxBodyBytes: 4096)
        let large = EvaluateRequest(deviceType: "cpu", model: [UInt8](repeating: 7, count: 100_000)).encoded()
        let response = try await Self.rawCall(fleet.coordinator.port, path: FleetPath.evaluate, body: large,
                                              token: TestFleet.token)
        #expect(response.status == 413)
        #expect(try ErrorMessage(decoding: response.body).code == .tooLarge)
        // The connection and the server are still fine for calls under the limit.
        #expect(try await fleet.client.workers().isEmpty)
        await fleet.shutdown()
    }

    @Test func http1AndGarbageCloseOnlyTheirConnection() async throws {
        let fleet = try TestFleet()
        let port = fleet.coordinator.port
        let stalled = try RawSocket(port: port)
        try stalled.send(Array("PRI * HTTP/2.0\r\n".utf8))  // half a preface, then nothing
        for bytes in [
            Array("POST /nas.fleet.Coordinator/ListWorkers HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".utf8),
            Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [UInt8](repeating: 0xff, count: 64),
            [UInt8](repeating: 0x00, count: 200),
        ] {
            let socket = try RawSocket(port: port)
            try socket.send(bytes)
            #expect(socket.readUntilClosed(), "the server kept a connection open after \(bytes.prefix(16))")
        }
        // The stalled connection holds up nobody.
        #expect(try await fleet.client.workers().isEmpty)
        stalled.close()
        await fleet.shutdown()
    }
}

private enum Fleet_testToken {
    static let prefix = String(TestFleet.token.dropLast())
}

/// A plain TCP connection for sending bytes that are not HTTP/2.
final class RawSocket {
    let fd: Int32
    private var closed = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else { throw TestFailure("connect to 127.0.0.1:\(port) failed") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) throws {
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw TestFailure("send failed") }
    }

    /// True when the peer closed the connection (within the receive timeout).
    func readUntilClosed() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return true }
            if count < 0 { return errno == ECONNRESET }
        }
    }

    /// Closes once: a second close could hit a descriptor another thread opened since.
    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    deinit {
        close()
    }
}
