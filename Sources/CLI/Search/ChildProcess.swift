import Foundation

/// A child process in its own process group, its output appended to a log file.
///
/// Its own group keeps a terminal's Ctrl-C away from it, so that the parent decides whether running trials
/// finish or stop; `NAS_PARENT_PID` lets the child end itself if the parent dies (see `ParentWatch`).
final class ChildProcess {
    /// The child's process id.
    let pid: pid_t
    /// Where its standard output and error go.
    let logPath: String

    /// How a child ended.
    enum Ending: Equatable {
        case exited(Int32)
        case signaled(Int32)
    }

    /// Starts `executable` with `arguments`.
    init(executable: String, arguments: [String], logPath: String, environment: [String: String] = [:]) throws {
        var fileActions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&fileActions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&fileActions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&fileActions, 1, 2)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)

        var merged = ProcessInfo.processInfo.environment
        merged["NAS_PARENT_PID"] = String(getpid())
        merged.merge(environment) { $1 }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &fileActions, &attributes, argv, envp)
        guard status == 0 else {
            throw CLIError("cannot start \(executable): \(String(cString: strerror(status)))")
        }
        pid = child
        self.logPath = logPath
    }

    /// The ending, if the child has ended; never blocks.
    func poll() -> Ending? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return nil }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros; their arithmetic is fixed by POSIX on Linux.
        let signal = status & 0x7F
        return signal == 0 ? .exited((status >> 8) & 0xFF) : .signaled(signal)
    }

    /// Sends a signal to the child's whole process group.
    func signal(_ number: Int32) {
        kill(-pid, number)
    }

    /// The last lines of the child's log, for failure reports.
    func logTail(lines: Int = 3) -> String {
        guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
        let text = String(decoding: data.suffix(4096), as: UTF8.self)
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }
}

/// Ends a child process whose parent died (even by SIGKILL): the child notices it was re-parented.
enum ParentWatch {
    /// Starts watching when `NAS_PARENT_PID` is set; exits with status 1 once the parent is gone.
    static func startIfRequested() {
        guard let text = ProcessInfo.processInfo.environment["NAS_PARENT_PID"], let parent = pid_t(text) else { return }
        guard getppid() == parent else { exit(1) }
        Thread.detachNewThread {
            while true {
                sleep(1)
                if getppid() != parent {
                    printError("nas: the parent process \(parent) is gone; stopping")
                    exit(1)
                }
            }
        }
    }
}
