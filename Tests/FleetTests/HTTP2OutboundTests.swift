import Foundation
import Testing

@testable import Fleet

/// Calls a server's loop sends to other servers (`HTTP2Server.post`): how the coordinator pushes models.
@Suite struct HTTP2OutboundTests {
    static let token = HTTP2Tests.token

    /// A server that only calls out.
    static func caller() throws -> HTTP2Server {
        let server = HTTP2Server(configuration: .init(token: token, routes: [])) { _ in HTTP2Response(status: 404, body: []) }
        try server.start()
        return server
    }

    static func post(_ server: HTTP2Server, _ url: String, body: [UInt8], timeout: Double = 10) async
        -> Result<HTTP2Response, FleetError>
    {
        await withCheckedContinuation { continuation in
            server.post(url: url, body: body, timeout: timeout) { continuation.resume(returning: $0) }
        }
    }

    @Test func manyConcurrentCallsAndALargeBodyRoundTrip() async throws {
        let echo = try HTTP2Tests.echoServer()
        defer { echo.stop() }
        let caller = try Self.caller()
        defer { caller.stop() }
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
        let answer = try await Self.post(caller, url, body: large, timeout: 60).get()
        #expect(answer.status == 200)
        #expect(answer.body == large.reversed())
    }

    @Test func theServersAnswersKeepTheirStatusAndErrors() async throws {
        let echo = try HTTP2Tests.echoServer(maxBodyBytes: 1000)
        defer { echo.stop() }
        let caller = try Self.caller()
        defer { caller.stop() }
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
        let caller = try Self.caller()
        defer { caller.stop() }
        let result = await Self.post(caller, "http://127.0.0.1:\(port)/test.Echo/Echo", body: [1])
        guard case .failure(let error) = result else {
            Issue.record("a call to a closed port succeeded")
            return
        }
        #expect(error.code == .transport)
        #expect(error.message.contains("127.0.0.1:\(port)"))
        #expect(error.isRetryable)
    }

    @Test func aServerThatNeverAnswersTimesTheCallOut() async throws {
        let silent = HTTP2Server(configuration: .init(token: Self.token, routes: ["/test.Silent/Wait"]),
                                 immediate: { _, _ in .later }) { _ in HTTP2Response(status: 500, body: []) }
        try silent.start()
        defer { silent.stop() }
        let caller = try Self.caller()
        defer { caller.stop() }
        let url = "http://127.0.0.1:\(silent.port)/test.Silent/Wait"
        let started = ContinuousClock.now
        let result = await Self.post(caller, url, body: [1], timeout: 0.3)
        guard case .failure(let error) = result else {
            Issue.record("a call nobody answered succeeded")
            return
        }
        #expect(error.code == .timedOut)
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        // The connection stays usable for the next call.
        let echo = try HTTP2Tests.echoServer()
        defer { echo.stop() }
        #expect(try await Self.post(caller, "http://127.0.0.1:\(echo.port)/test.Echo/Echo", body: [4, 5]).get().body
            == [5, 4])
    }

    @Test func aPeerThatRestartsOnItsPortIsReachedAgain() async throws {
        let first = try HTTP2Tests.echoServer()
        let port = first.port
        let caller = try Self.caller()
        defer { caller.stop() }
        let url = "http://127.0.0.1:\(port)/test.Echo/Echo"
        #expect(try await Self.post(caller, url, body: [1, 2]).get().body == [2, 1])
        first.stop()
        let second = HTTP2Server(configuration: .init(port: port, token: Self.token, routes: ["/test.Echo/Echo"])) {
            HTTP2Response(status: 200, body: $0.body + [9])
        }
        try second.start()
        defer { second.stop() }
        // The old connection's end may race the next call: at most one call fails, on the transport.
        var failures = 0
        var answer: [UInt8]?
        while answer == nil && failures < 2 {
            switch await Self.post(caller, url, body: [7]) {
            case .success(let response): answer = response.body
            case .failure(let error):
                #expect(error.code == .transport)
                failures += 1
            }
        }
        #expect(answer == [7, 9])
        #expect(failures <= 1)
    }

    @Test func aStoppedServerFailsCallsAtOnce() async throws {
        let caller = try Self.caller()
        caller.stop()
        let result = await Self.post(caller, "http://127.0.0.1:9/test.Echo/Echo", body: [1])
        guard case .failure(let error) = result else {
            Issue.record("a stopped server sent a call")
            return
        }
        #expect(error.code == .transport)
        let malformed = try Self.caller()
        defer { malformed.stop() }
        guard case .failure(let bad) = await Self.post(malformed, "ftp://example/x", body: []) else {
            Issue.record("a non-http URL was called")
            return
        }
        #expect(bad.code == .invalidConfiguration)
    }
}
