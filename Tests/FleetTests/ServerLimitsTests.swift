import Foundation
import HTTP2
import TestSupport
import Testing

@testable import Fleet
@testable import FleetWire

/// What peers can hold of a fleet server (issue 16 item 2), on real sockets: slow or silent peers are cut off,
/// connections and request-body memory are capped, and a process out of descriptors backs off and recovers.
@Suite struct ServerLimitsTests {
    static func limits(_ change: (inout ServerLimits) -> Void) -> ServerLimits {
        var limits = ServerLimits()
        change(&limits)
        return limits
    }

    @Test func aPeerTricklingItsHeadersIsCutOff() async throws {
        let fleet = try TestFleet(limits: Self.limits { $0.headerTimeout = .milliseconds(300) })
        let socket = try RawSocket(port: fleet.coordinator.port)
        try socket.send(RawFrames.preface + RawFrames.settings)
        // A HEADERS frame with one field (HPACK: literal, not indexed), a byte every 50 ms: whole after 5.6 s, cut
        // off long before.
        let block = [0x00, 0x09] + Array("x-trickle".utf8) + [0x64] + [UInt8](repeating: UInt8(ascii: "a"), count: 100)
        try socket.send(RawFrames.header(length: block.count, type: 1, flags: 0x4, stream: 1))
        var sent = 0
        while sent < block.count, socket.sendOrClosed([block[sent]]) {
            sent += 1
            usleep(50_000)
        }
        #expect(sent < block.count, "the server kept a connection whose headers trickled in for \(sent) bytes")
        #expect(try await fleet.client.workers().isEmpty)
        await fleet.shutdown()
    }

    @Test func aConnectionWithoutHandshakeIsClosedAndAnIdleOneGetsGoAway() async throws {
        let fleet = try TestFleet(limits: Self.limits {
            $0.handshakeTimeout = .milliseconds(300)
            $0.idleTimeout = .milliseconds(400)
        })
        let silent = try RawSocket(port: fleet.coordinator.port)
        #expect(silent.readUntilClosed(), "a connection that never sent the preface stayed open")
        let idle = try RawSocket(port: fleet.coordinator.port)
        try idle.send(RawFrames.preface + RawFrames.settings)
        let (closed, types) = idle.framesUntilClosed()
        #expect(closed, "an idle connection stayed open")
        #expect(types.contains(RawFrames.goAway), "no GOAWAY before closing an idle connection: \(types)")
        // A client whose connection was closed for idleness opens another one.
        #expect(try await fleet.client.workers().isEmpty)
        try await Task.sleep(for: .milliseconds(600))
        #expect(try await fleet.client.workers().isEmpty)
        await fleet.shutdown()
    }

    @Test func connectionsOverTheCapAreClosedAtOnce() async throws {
        let fleet = try TestFleet(limits: Self.limits { $0.maxConnections = 3 })
        var held: [RawSocket] = []
        for _ in 0..<3 {
            let socket = try RawSocket(port: fleet.coordinator.port)
            try socket.send(RawFrames.preface + RawFrames.settings)
            #expect(socket.readFrame() == RawFrames.settingsType, "the server did not answer a connection under the cap")
            held.append(socket)
        }
        let over = try RawSocket(port: fleet.coordinator.port)
        #expect(over.readUntilClosed(), "a connection over the cap stayed open")
        held.removeFirst().close()
        try await eventually("a connection is served again once one closed") {
            (try? await fleet.client.workers()) == []
        }
        await fleet.shutdown()
    }

    /// Bodies count against the server's total until answered: evaluations waiting for a worker hold their model.
    @Test func requestBodiesHeldInTotalAreCapped() async throws {
        var retries = FleetClient.Retries()
        retries.attempts = 1
        let fleet = try TestFleet(maxBodyBytes: 2 << 20, limits: Self.limits { $0.maxBufferedBodyBytes = 3 << 20 },
                                  retries: retries)
        let model = [UInt8](repeating: 7, count: 1 << 20)
        let codes = await withTaskGroup(of: FleetError.Code?.self) { group in
            for _ in 0..<5 {
                group.addTask {
                    do {
                        _ = try await fleet.client.evaluate(model: model, deviceType: "gpu", deadline: .seconds(2))
                        return nil
                    } catch {
                        return (error as? FleetError)?.code
                    }
                }
            }
            return await group.reduce(into: [FleetError.Code?]()) { $0.append($1) }
        }
        #expect(codes.contains(.unavailable), "\(codes)")
        #expect(codes.contains(.noWorker), "\(codes)")
        #expect(codes.allSatisfy { $0 == .unavailable || $0 == .noWorker }, "\(codes)")
        // Answered, they gave their bytes back.
        await #expect(throws: FleetError.noWorker(deviceType: "gpu", registered: [])) {
            _ = try await fleet.client.evaluate(model: model, deviceType: "gpu", deadline: .milliseconds(200))
        }
        await fleet.shutdown()
    }

    /// With 64 descriptors and 100 connections that never speak, the coordinator used to spin on its listener and
    /// answer nobody: now it pauses accepting, the handshake timeout frees descriptors, and a client gets through.
    @Test func aCoordinatorOutOfDescriptorsBacksOffAndAnswersAgain() async throws {
        let coordinator = try TestProcess(
            "/bin/sh",
            ["-c", #"ulimit -n 64 && exec "$0" coordinator --listen 127.0.0.1:0 --handshake-timeout-seconds 1"#,
             try TestPaths.nasBinary()],
            environment: ["NAS_FLEET_TOKEN": TestFleet.token], separateErrors: true)
        let line = try await coordinator.waitForLine(containing: "listening on http://")
        let url = String(line[line.range(of: "http://")!.lowerBound...])
        let port = Int(url.split(separator: ":").last!)!
        let silent = try (0..<100).map { _ in try RawSocket(port: port) }
        let client = FleetClient(coordinator: url, token: TestFleet.token)
        try await eventually("the coordinator answers again", seconds: 30) { (try? await client.workers()) == [] }
        #expect(coordinator.isRunning)
        silent.forEach { $0.close() }
        await coordinator.killAndWait()
    }
}

/// Hand-made HTTP/2 frames, for peers that misbehave.
enum RawFrames {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let settingsType: UInt8 = 4
    static let goAway: UInt8 = 7
    /// An empty SETTINGS frame.
    static let settings = header(length: 0, type: settingsType, flags: 0, stream: 0)

    static func header(length: Int, type: UInt8, flags: UInt8, stream: UInt32) -> [UInt8] {
        [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags,
         UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)]
    }
}

extension RawSocket {
    /// Sends `bytes`; false once the peer closed the connection.
    func sendOrClosed(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Reads exactly `count` bytes; nil when the connection ended first.
    func read(_ count: Int) -> [UInt8]? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        while bytes.count < count {
            errno = 0  // a recv that returns 0 (the peer closed) leaves errno as it was
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count - bytes.count, 0) }
            guard got > 0 else { return nil }
            bytes += buffer[..<got]
        }
        return bytes
    }

    /// The type of the next frame the server sent (its payload skipped); nil when the connection ended.
    func readFrame() -> UInt8? {
        guard let header = read(9) else { return nil }
        let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
        guard length == 0 || read(length) != nil else { return nil }
        return header[3]
    }

    /// The types of the frames the server sent until it closed the connection, and whether it did (within the
    /// receive timeout).
    func framesUntilClosed() -> (closed: Bool, types: [UInt8]) {
        var types: [UInt8] = []
        while let type = readFrame() { types.append(type) }
        return (errno != EAGAIN && errno != EWOULDBLOCK, types)
    }
}
