import Foundation
import HTTP2
import Synchronization
import Testing

@testable import Fleet
@testable import FleetWire

/// Calls made on the event loop with completions (`HTTP2Client.post(url:body:timeout:completion:)`): how the
/// coordinator pushes models to its workers.
@Suite struct HTTP2OutboundTests {
    static let token = HTTP2Tests.token

    /// A client of the test servers.
    static func caller() -> HTTP2Client {
        HTTP2Client(token: token)
    }

    static func post(_ client: HTTP2Client, _ url: String, body: [UInt8], timeout: Duration = .seconds(10)) async
        -> Result<HTTP2Response, HTTP2Error>
    {
        await withCheckedContinuation { continuation in
            client.post(url: url, body: body, timeout: timeout) { continuation.resume(returning: $0) }
        }
    }

    @Test func manyConcurrentCallsAndALargeBodyRoundTrip() async throws {
        let echo = try HTTP2Tests.echoServer()
        defer { echo.stop() }
        let caller = Self.caller()
        defer { caller.shutdown() }
        let url = "http://127.0.0.1:\(echo.port)/test.Echo/Echo"
        let results = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<300 {
                group.addTask {
                    let body = (0..<(index % 70 + 1)).map { UInt8(truncatingIfNeeded: $0 &* 3 &+ index) }
                    guard case .success(let answer) = await Self.post(caller, url, body: body) else { return false }
                    return answer.status == 200 && answer.body == body.reversed()
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 300)
        #expect(results.allSatisfy { $0 })
        // Larger than a stream's flow-control window (1 MiB) both ways: sent in several rounds.
        let large = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let answer = try await Self.post(caller, url, body: large, timeout: .seconds(60)).get()
        #expect(answer.status == 200)
        #expect(answer.body == large.reversed())
    }

    @Test func theServersAnswersKeepTheirStatusAndErrors() async throws {
        let echo = try HTTP2Tests.echoServer(maxBodyBytes: 1000)
        defer { echo.stop() }
        let caller = Self.caller()
        defer { caller.shutdown() }
        let unknown = try await Self.post(caller, "http://127.0.0.1:\(echo.port)/test.Echo/Nothing", body: [1]).get()
        #expect(unknown.status == 404)
        let tooLarge = try await Self.post(caller, "http://127.0.0.1:\(echo.port)/test.Echo/Echo",
                                           body: [UInt8](repeating: 1, count: 5000)).get()
        #expect(tooLarge.status == 413)
        #expect(try ErrorMessage(decoding: tooLarge.body).code == .tooLarge)
    }

    @Test func nobodyListeningIsATransportError() async throws {
        let gone = try HTTP2Tests.echoServer()
        let port = gone.port
        gone.stop()
        let caller = Self.caller()
        defer { caller.shutdown() }
        let result = await Self.post(caller, "http://127.0.0.1:\(port)/test.Echo/Echo", body: [1])
        guard case .failure(let error) = result else {
            Issue.record("a call to a closed port succeeded")
            return
        }
        #expect(error.kind == .transport)
        #expect(error.message.contains("127.0.0.1:\(port)"))
        #expect(FleetError(error).isRetryable)
    }

    @Test func aServerThatNeverAnswersTimesTheCallOut() async throws {
        let silent = HTTP2Server(fleet: .init(token: Self.token, routes: ["/test.Silent/Wait"]),
                                 immediate: { _, _ in .later }) { _ in HTTP2Response(status: 500, body: []) }
        try silent.start()
        defer { silent.stop() }
        let caller = Self.caller()
        defer { caller.shutdown() }
        let url = "http://127.0.0.1:\(silent.port)/test.Silent/Wait"
        let result = await Self.post(caller, url, body: [1], timeout: .milliseconds(300))
        guard case .failure(let error) = result else {
            Issue.record("a call nobody answered succeeded")
            return
        }
        #expect(error.kind == .timedOut)
        #expect(FleetError(error).code == .timedOut)
        // The connection stays usable for the next call.
        let echo = try HTTP2Tests.echoServer()
        defer { echo.stop() }
        #expect(try await Self.post(caller, "http://127.0.0.1:\(echo.port)/test.Echo/Echo", body: [4, 5]).get().body
            == [5, 4])
    }

    /// A worker that restarts drops its connections; the next push must open a new one. A relay in front of the
    /// echo server cuts the connections, so no port is bound twice (another socket may take a freed port).
    @Test func aConnectionThePeerDropsIsReplacedByANewOne() async throws {
        let echo = try HTTP2Tests.echoServer()
        defer { echo.stop() }
        let relay = try TCPRelay(to: echo.port)
        defer { relay.stop() }
        let caller = Self.caller()
        defer { caller.shutdown() }
        let url = "http://127.0.0.1:\(relay.port)/test.Echo/Echo"
        #expect(try await Self.post(caller, url, body: [1, 2]).get().body == [2, 1])
        for round in 0..<3 {
            relay.cutConnections()
            // The end of the old connection may race the next call: at most one call fails, on the transport.
            var failures = 0
            var answer: [UInt8]?
            while answer == nil && failures < 2 {
                switch await Self.post(caller, url, body: [UInt8(round)]) {
                case .success(let response): answer = response.body
                case .failure(let error):
                    #expect(error.kind == .transport)
                    failures += 1
                }
            }
            #expect(answer == [UInt8(round)])
            #expect(failures <= 1)
        }
        #expect(relay.accepted == 4)
    }

    @Test func aShutDownClientFailsCallsAtOnce() async throws {
        let caller = Self.caller()
        caller.shutdown()
        let result = await Self.post(caller, "http://127.0.0.1:9/test.Echo/Echo", body: [1])
        guard case .failure(let error) = result else {
            Issue.record("a shut-down client sent a call")
            return
        }
        #expect(error.kind == .transport)
        let malformed = Self.caller()
        defer { malformed.shutdown() }
        for url in ["ftp://example/x", "http://no-port/x", "http://:80/x"] {
            guard case .failure(let bad) = await Self.post(malformed, url, body: []) else {
                Issue.record("\(url) was called")
                continue
            }
            #expect(bad.kind == .invalidAddress)
            #expect(FleetError(bad).code == .invalidConfiguration)
        }
    }

    /// A call in flight when its server goes away fails on the transport, and the server's next life is reached
    /// on a new connection.
    @Test func callsInFlightFailWhenTheServerStops() async throws {
        let arrived = Mutex(false)
        let silent = HTTP2Server(fleet: .init(token: Self.token, routes: ["/test.Silent/Wait"]),
                                 immediate: { _, _ in
                                     arrived.withLock { $0 = true }
                                     return .later
                                 }) { _ in HTTP2Response(status: 500, body: []) }
        try silent.start()
        let caller = Self.caller()
        defer { caller.shutdown() }
        let url = "http://127.0.0.1:\(silent.port)/test.Silent/Wait"
        async let waiting = Self.post(caller, url, body: [1], timeout: .seconds(60))
        // Stopped once the call arrived.
        while !arrived.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        silent.stop()
        guard case .failure(let error) = await waiting else {
            Issue.record("a call whose server stopped succeeded")
            return
        }
        #expect(error.kind == .transport)
        #expect(error.message.contains("lost"))
    }
}

/// A TCP relay on 127.0.0.1 to a local port, one thread per direction, whose connections the test can cut.
private final class TCPRelay: @unchecked Sendable {
    private let listener: Int32
    private let target: Int
    private let lock = NSLock()
    private var sockets: [Int32] = []
    private var acceptedCount = 0
    let port: Int

    init(to target: Int) throws {
        self.target = target
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound, listen(fd, 16) == 0 else { throw FleetError.transport("the relay cannot listen") }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    var accepted: Int { lock.withLock { acceptedCount } }

    /// Ends every relayed connection, both sides, as a restarting server would. Under the lock: a socket is
    /// closed (and its number free for reuse) only once it left the list.
    func cutConnections() {
        lock.withLock {
            for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        cutConnections()
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: target)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            guard connected else {
                close(client)
                close(server)
                continue
            }
            lock.withLock {
                acceptedCount += 1
                sockets += [client, server]
            }
            let directionsLeft = Mutex(2)
            let finish: @Sendable () -> Void = { [self] in
                guard directionsLeft.withLock({ $0 -= 1; return $0 == 0 }) else { return }
                lock.withLock {
                    sockets.removeAll { $0 == client || $0 == server }
                    close(client)
                    close(server)
                }
            }
            Thread.detachNewThread {
                Self.pump(from: client, to: server)
                finish()
            }
            Thread.detachNewThread {
                Self.pump(from: server, to: client)
                finish()
            }
        }
    }

    /// Copies until either side ends, then ends both (their owner closes them once both directions are done).
    private static func pump(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            var sent = 0
            while sent < count {
                let written = buffer.withUnsafeBytes {
                    send(destination, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL))
                }
                if written <= 0 { break }
                sent += written
            }
            if sent < count { break }
        }
        shutdown(destination, Int32(SHUT_RDWR))
        shutdown(source, Int32(SHUT_RDWR))
    }
}
