import Foundation
import Synchronization
import System
import TestSupport
import Testing

/// Signals sent to the test process itself: SIGUSR1/SIGUSR2, which nothing else here uses.
@Suite(.serialized) struct SignalTrapTests {
    /// Whether this process has a handler for `signal` (the SigCgt mask of /proc/self/status).
    static func isCaught(_ signal: Int32) throws -> Bool {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("SigCgt:") })
        let mask = try #require(UInt64(line.dropFirst("SigCgt:".count).trimmingCharacters(in: .whitespaces), radix: 16))
        return mask & (1 << UInt64(signal - 1)) != 0
    }

    @Test func signalsAreCountedAndAwaited() async throws {
        let trap = try SignalTrap([SIGUSR1])
        defer { trap.release() }
        #expect(trap.count == 0)
        #expect(try Self.isCaught(SIGUSR1))
        kill(getpid(), SIGUSR1)
        await trap.wait()
        kill(getpid(), SIGUSR1)
        await trap.wait(untilCount: 2)
        #expect(trap.count == 2)
    }

    @Test func theCallbackSeesEachSignalWithItsCount() async throws {
        let seen = Mutex<[String]>([])
        let trap = try SignalTrap([SIGUSR1, SIGUSR2]) { number, count in
            seen.withLock { $0.append("\(number == SIGUSR1 ? "USR1" : "USR2") \(count)") }
        }
        defer { trap.release() }
        kill(getpid(), SIGUSR2)
        await trap.wait(untilCount: 1)
        kill(getpid(), SIGUSR1)
        await trap.wait(untilCount: 2)
        // The callback runs after the waiters are woken: wait for it, do not race it.
        try await TestSupport.eventually("two callbacks") { seen.withLock { $0.count } == 2 }
        #expect(seen.withLock { $0 } == ["USR2 1", "USR1 2"])
    }

    @Test func releaseRestoresTheDefaultOnceNoTrapHoldsTheSignal() async throws {
        let first = try SignalTrap([SIGUSR1])
        let second = try SignalTrap([SIGUSR1])
        first.release()
        #expect(try Self.isCaught(SIGUSR1), "the second trap still holds it")
        kill(getpid(), SIGUSR1)
        await second.wait()
        #expect(first.count == 0 && second.count == 1)
        second.release()
        #expect(try !Self.isCaught(SIGUSR1))
    }

    @Test func aSignalThatCannotBeTrappedIsAClearErrorAndLeavesNothingTrapped() throws {
        do {
            _ = try SignalTrap([SIGUSR2, SIGKILL])
            Issue.record("SIGKILL was trapped")
        } catch {
            #expect(error.description.hasPrefix("cannot trap signal 9: Invalid argument"), "\(error)")
        }
        #expect(try !Self.isCaught(SIGUSR2))
    }

    @Test func aWaiterReturnsWhenReleasedOrCancelled() async throws {
        let trap = try SignalTrap([SIGUSR2])
        let cancelled = Task { await trap.wait() }
        cancelled.cancel()
        await cancelled.value
        let released = Task { await trap.wait(untilCount: 5) }
        trap.release()
        await released.value
        #expect(trap.count == 0)
    }
}
