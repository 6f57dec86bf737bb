internal import CSystem
import Glibc

/// Ends a child whose parent died, even by SIGKILL: the parent passes its pid in `NAS_PARENT_PID`, and the child
/// watches it on a thread of its own.
///
/// PR_SET_PDEATHSIG would not do: it fires when the spawning *thread* ends, and children are spawned from
/// short-lived threads.
public enum ParentWatch {
    /// The environment variable holding the parent's pid.
    public static let variable = "NAS_PARENT_PID"

    /// The environment a parent gives a child it wants watched.
    public static var environment: [String: String] { [variable: String(getpid())] }

    /// Starts watching when `NAS_PARENT_PID` is set: once that process is gone (or already is), prints why on
    /// standard error and exits with status 1.
    public static func startIfRequested() {
        guard let text = getenv(variable).map({ String(cString: $0) }), let parent = pid_t(text) else { return }
        // A pidfd of the parent becomes readable when it ends: no polling. Opened before the check below, so that
        // a parent gone in between is seen by one or the other.
        let descriptor = nas_pidfd_open(parent)
        guard getppid() == parent else { parentGone(parent) }
        startThread {
            if descriptor >= 0 {
                var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                while Glibc.poll(&entry, 1, -1) < 0 && errno == EINTR {}
            } else {
                // Without pidfds: a re-parented child has another parent.
                while getppid() == parent { sleep(1) }
            }
            parentGone(parent)
        }
    }

    private static func parentGone(_ parent: pid_t) -> Never {
        let line = "nas: the parent process \(parent) is gone; stopping\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        exit(1)
    }
}
