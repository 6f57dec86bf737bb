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

    @Test func callersOnTheClientsLoopStayThereAndCallersOnThePoolDoNot() async throws {
        let server = try Self.echoServer()
        defer { server.stop() }
        let client = HTTP2Client(token: Self.token)
        defer { client.shutdown() }
        let url = "http://127.0.0.1:\(server.port)/test.Echo/Echo"
        let loop = client.loop
        // Both kinds at once on one connection: every answer right, each caller where it asked to be.
        let results = try await withThrowingTaskGroup(of: (onLoop: Bool, ok: Bool).self) { group in
            for index in 0..<40 {
                let wantsLoop = index % 2 == 0
                group.addTask {
                    if wantsLoop {
                        return try await withTaskExecutorPreference(loop) {
                            try await sequentialCalls(client, url, seed: index, loop: loop)
                        }
                    }
                    return try await sequentialCalls(client, url, seed: index, loop: loop)
                }
            }
            return try await group.reduce(into: [(onLoop: Bool, ok: Bool)]()) { $0.append($1) }
        }
        #expect(results.count == 40)
        #expect(results.allSatisfy { $0.ok })
        #expect(results.filter { $0.onLoop }.count == 20)
    }

    @Test func aTaskThatKeepsYieldingOnTheLoopDoesNotHoldUpItsSockets() async throws {
        let server = try Self.echoServer()
        defer { server.stop() }
        let client = HTTP2Client(token: Self.token)
        defer { client.shutdown() }
        let stop = Flag()
        let spinner = Task(executorPreference: client.loop) {
            var turns = 0
            while !stop.isSet {
                await Task.yield()
                turns += 1
            }
            return turns
        }
        let answer = try await client.post(url: "http://127.0.0.1:\(server.port)/test.Echo/Echo", body: [1, 2],
                                           timeout: .seconds(30))
        stop.set()
        #expect(answer.body == [2, 1])
        #expect(await spinner.value > 0)
    }
}

/// Ten calls one after the other; whether the caller was on `loop` before and after every call (all or none), and
/// whether every answer was right. Nonisolated: it runs on the task's preferred executor when there is one.
private func sequentialCalls(_ client: HTTP2Client, _ url: String, seed: Int, loop: EventLoop) async throws
    -> (onLoop: Bool, ok: Bool)
{
    var places: [Bool] = [loop.inLoop]
    var ok = true
    for call in 0..<10 {
        let body = (0...(call + seed)).map { UInt8(truncatingIfNeeded: $0 &* 5 &+ seed) }
        let answer = try await client.post(url: url, body: body, timeout: .seconds(30))
        ok = ok && answer.status == 200 && answer.body == body.reversed()
        places.append(loop.inLoop)
    }
    let onLoop = places.allSatisfy { $0 }
    return (onLoop, ok && (onLoop || places.allSatisfy { !$0 }))
}

/// A flag set from one task and read by another.
private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
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
