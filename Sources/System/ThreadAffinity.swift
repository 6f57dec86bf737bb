internal import CSystem
import Glibc

/// Which CPUs the calling thread may run on.
public enum ThreadAffinity {
    /// Runs `body` with the calling thread pinned to the CPU it is on, then gives the thread back the CPUs it had.
    /// A measurement pinned so is not migrated to the other core halfway (which starts it again on cold private
    /// caches); when the kernel refuses (a cgroup's cpuset, seccomp) `body` runs unpinned. `pinned` tells `body`
    /// which CPU it has, or nil.
    public static func pinnedToCurrentCPU<T>(_ body: (_ pinned: Int?) throws -> T) rethrows -> T {
        let saved = UnsafeMutableRawPointer.allocate(byteCount: nas_cpu_set_size(), alignment: 16)
        defer { saved.deallocate() }
        let cpu = nas_pin_to_current_cpu(saved)
        guard cpu >= 0 else { return try body(nil) }
        defer { _ = nas_restore_affinity(saved) }
        return try body(Int(cpu))
    }

    /// The CPUs the calling thread may run on, ascending.
    public static func current() -> [Int] {
        let set = UnsafeMutableRawPointer.allocate(byteCount: nas_cpu_set_size(), alignment: 16)
        defer { set.deallocate() }
        guard nas_thread_cpus(set) == 0 else { return [] }
        let bytes = set.assumingMemoryBound(to: UInt8.self)
        return (0..<(nas_cpu_set_size() * 8)).filter { bytes[$0 / 8] & (1 << UInt8($0 % 8)) != 0 }
    }
}
