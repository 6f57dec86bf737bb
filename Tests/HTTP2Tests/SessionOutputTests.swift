import Foundation
import Testing

@testable import HTTP2

struct SocketFailure: Error, CustomStringConvertible {
    let description: String
}

/// A session's output over a real socket pair whose send buffer holds little: frame bytes and payloads sent from
/// their bodies (h2c) or copied (TLS, small payloads) arrive whole and in order through partial writes.
@Suite struct SessionOutputTests {
    static func drain(_ output: inout SessionOutput, through pair: (Int32, Int32)) throws -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        var partial = 0
        while !output.isDrained {
            let status = output.send(contiguous: { Transport.plain.send(pair.0, $0) }, fd: pair.0)
            switch status {
            case .done(let written):
                output.advance(written)
                if !output.isDrained { partial += 1 }
            case .wouldBlock: break
            case .ended, .failed, .refused: throw SocketFailure(description: "send failed: \(status)")
            }
            // The reader takes what arrived, so the writer can go on.
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(pair.1, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                guard count > 0 else { break }
                received += buffer[..<count]
            }
        }
        #expect(partial > 0, "the send buffer took everything at once: the test shows nothing about partial writes")
        return received
    }

    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw SocketFailure(description: "socketpair failed: errno \(errno)") }
        var small: Int32 = 4096
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        return (fds[0], fds[1])
    }

    @Test(arguments: [false, true]) func piecesArriveWholeAndInOrderThroughPartialWrites(copies: Bool) throws {
        let pair = try Self.socketPair()
        defer {
            close(pair.0)
            close(pair.1)
        }
        let body = OutgoingBody((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
        var output = SessionOutput(copiesPayloads: copies)
        var expected: [UInt8] = []
        var offset = 0
        // DATA frames of 16 KiB and a short last one (copied even over h2c), each after a 9-byte header.
        for (index, length) in [16384, 16384, 16384, 100, 60_000, 16384, 1000].enumerated() {
            let header = (0..<9).map { UInt8(index * 9 + $0) }
            header.withUnsafeBufferPointer { output.append($0) }
            output.append(body, offset..<offset + length)
            expected += header + body.bytes[offset..<offset + length]
            offset += length
        }
        output.append(UInt8(0xee))
        expected.append(0xee)
        #expect(output.count == expected.count)
        #expect(try Self.drain(&output, through: pair) == expected)
        // Reset, the buffers are reused for the next batch.
        output.reset()
        #expect(output.isDrained && output.count == 0)
        output.append(body, 0..<50_000)
        #expect(try Self.drain(&output, through: pair) == Array(body.bytes[0..<50_000]))
    }
}
