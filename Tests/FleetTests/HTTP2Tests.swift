import Foundation
import HTTP2
import Testing

@testable import Fleet

@Suite struct HTTP2Tests {
    static let token = "test-token"

    static func echoServer(maxBodyBytes: Int = 64 << 20) throws -> HTTP2Server {
        // Answered on the loop, reversed through raw buffers: a debug build's generic reversal of a 3 MiB body on
        // the fleet's two threads held up other suites' lease renewals.
        let server = HTTP2Server(
            fleet: .init(token: token, maxBodyBytes: maxBodyBytes, routes: ["/test.Echo/Echo"]),
            immediate: { request, _ in .now(HTTP2Response(status: 200, body: reversed(request.body))) }
        ) { request in
            HTTP2Response(status: 500, body: [])
        }
        try server.start()
        return server
    }

    @Test func roundTripAndManyConcurrentStreamsOnOneClient() async throws {
        let server = try Self.echoServer()
        defer { server.stop() }
        let client = HTTP2Client(token: Self.token)
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/test.Echo/Echo"
        let one = try await client.post(url: url, body: [1, 2, 3], timeout: .seconds(10))
        #expect(one.status == 200)
        #expect(one.body == [3, 2, 1])
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<200 {
                group.addTask {
                    let body = (0..<(index % 50 + 1)).map { UInt8(truncatingIfNeeded: $0 &+ index) }
                    let response = try await client.post(url: url, body: body, timeout: .seconds(10))
                    return response.status == 200 && response.body == body.reversed()
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 200)
        #expect(results.allSatisfy { $0 })
    }

    /// A handler's task runs on the fleet's own threads, so that code holding the global executor's few threads
    /// for seconds (a synchronous training step of another suite) cannot delay the answer past the peer's timeout.
    @Test func asyncHandlersRunOnTheFleetsOwnThreads() async throws {
        let server = HTTP2Server(fleet: .init(token: Self.token, routes: ["/test.Where/Where"])) { _ in
            HTTP2Response(status: 200, body: [onFleetThread() ? 1 : 0])
        }
        try server.start()
        defer { server.stop() }
        let client = HTTP2Client(token: Self.token)
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/test.Where/Where"
        for _ in 0..<5 {
            let response = try await client.post(url: url, body: [], timeout: .seconds(10))
            #expect(response.body == [1])
        }
    }

    @Test func largeBodyRoundTrips() async throws {
        let server = try Self.echoServer()
        defer { server.stop() }
        let client = HTTP2Client(token: Self.token)
        defer { client.shutdown() }
        let body = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let response = try await client.post(url: "http://127.0.0.1:\(server.port)/test.Echo/Echo", body: body, timeout: .seconds(30))
        #expect(response.status == 200)
        #expect(response.body == body.reversed())
    }
}


/// Synchronous, as thread identity means nothing to async code in general.
private func onFleetThread() -> Bool {
    FleetExecutor.shared.isCurrentThread
}

/// The bytes in reverse order.
func reversed(_ bytes: [UInt8]) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: bytes.count) { output, count in
        bytes.withUnsafeBufferPointer { input in
            for index in 0..<input.count { output[input.count - 1 - index] = input[index] }
        }
        count = bytes.count
    }
}
