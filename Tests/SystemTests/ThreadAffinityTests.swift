import Foundation
import System
import Testing

@Suite struct ThreadAffinityTests {
    /// On a thread of its own (the pin is the calling thread's): inside, the thread may run on one CPU only, the one
    /// reported; afterwards it has its CPUs back.
    @Test func pinsTheCallingThreadToOneCPUAndGivesItsCPUsBack() async throws {
        let (before, inside, pinned, after): ([Int], [Int], Int?, [Int]) = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let before = ThreadAffinity.current()
                let (inside, pinned) = ThreadAffinity.pinnedToCurrentCPU { cpu in (ThreadAffinity.current(), cpu) }
                continuation.resume(returning: (before, inside, pinned, ThreadAffinity.current()))
            }
        }
        #expect(!before.isEmpty)
        let cpu = try #require(pinned)
        #expect(inside == [cpu])
        #expect(before.contains(cpu))
        #expect(after == before)
    }
}
