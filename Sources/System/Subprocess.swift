internal import CSystem
import Glibc
import Synchronization

/// A child process started with posix_spawn: the package's one way to run another program.
///
/// The child gets `/dev/null` (or a pipe) as standard input, standard output and error as asked, the signal
/// dispositions and mask of a fresh process, and no other descriptor of the parent's (so that a child outliving
/// its parent never holds the parent's sockets open). It may get a process group of its own: a terminal's
/// Ctrl-C then reaches only the parent, and a signal to the group reaches whatever the child started.
///
/// Waiting never blocks Swift's cooperative pool: `wait()` and the other `async` waits block a thread of their
/// own in the kernel (waitid, or poll on a pidfd with a timeout), which costs one idle thread per waiting call and
/// reacts at once, where a shared SIGCHLD loop would need the one SIGCHLD disposition of the process. The blocking
/// variants are for threads of the caller's own. Only this object reaps its pid, and it sends no signal once it
/// has: a pid the kernel has handed to another process is never signalled.
public final class Subprocess: Sendable {
    /// Where the child's standard input comes from.
    public enum Input: Sendable, Hashable {
        /// `/dev/null`: the child reads end of file at once.
        case null
        /// A pipe that `collect(input:timeout:)` writes and then closes.
        case pipe
        /// The read end of a pipe whose only write end this process holds, open and silent, until it ends: the
        /// child reads end of file once the parent is gone, however it went (SIGKILL included). A child that must
        /// not outlive its parent (a runner's process group) waits on it.
        case lifeline
    }

    /// Where the child's standard output or error goes.
    public enum Output: Sendable, Hashable {
        /// The parent's own descriptor.
        case inherit
        /// `/dev/null`.
        case discard
        /// A pipe that `collect(input:timeout:)` reads.
        case pipe
        /// The file at the path, created if missing (mode 0644), appended to.
        case append(String)
        /// Standard error only: the same as standard output (`2>&1`).
        case standardOutput
    }

    /// The child's process group.
    public enum ProcessGroup: Sendable, Hashable {
        /// The parent's: a terminal's Ctrl-C reaches both.
        case inherited
        /// Its own, led by the child (the group id is its pid).
        case own
        /// Its own, and whatever is left in it when the child ends is killed (SIGKILL) before the child is reaped,
        /// while its pid, and so the group's id, cannot have been reused.
        case ownKilledWithLeader
    }

    /// How a child ended.
    public enum Termination: Sendable, Hashable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// A signal with this number ended it.
        case signaled(Int32)

        /// The status a shell reports: the exit status, or 128 + the signal's number.
        public var shellStatus: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }

        /// `exited with status N` or `killed by signal N (NAME)`.
        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signaled(let signal): "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
            }
        }
    }

    /// The child's process id (and, with a group of its own, its group's id).
    public let pid: Int32
    /// The program that runs.
    public let executable: String
    /// The file standard output is appended to, if it is.
    public let logPath: String?
    /// The child's process group.
    public let processGroup: ProcessGroup

    /// The parent's ends of the child's pipes, -1 where there is none; each is closed once.
    struct Pipes: Sendable {
        var input: Int32 = -1
        var output: Int32 = -1
        var error: Int32 = -1
    }
    private struct State: Sendable {
        var termination: Termination?
        var pipes = Pipes()
    }
    private let state: Mutex<State>

    /// Starts `executable` (a path; no PATH search) with `arguments` (without the program's name).
    ///
    /// - Parameters:
    ///   - environment: variables set over the inherited environment (or over an empty one when
    ///     `inheritEnvironment` is false).
    ///   - workingDirectory: where the child starts; the parent's when nil.
    /// - Throws: `SystemError` when a log file cannot be opened, the working directory cannot be entered, or the
    ///   program cannot be started (missing, not executable).
    public init(
        executable: String, arguments: [String] = [], environment: [String: String] = [:],
        inheritEnvironment: Bool = true, workingDirectory: String? = nil, standardInput: Input = .null,
        standardOutput: Output = .inherit, standardError: Output = .inherit, processGroup: ProcessGroup = .inherited
    ) throws(SystemError) {
        precondition(standardOutput != .standardOutput, "standard output cannot go to itself")
        var childEnds: [Int32] = []
        var pipes = Pipes()
        defer { childEnds.forEach { close($0) } }
        func closeParentEnds() { [pipes.input, pipes.output, pipes.error].filter { $0 >= 0 }.forEach { close($0) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        do throws(SystemError) {
            switch standardInput {
            case .null:
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            case .pipe:
                let (read, write) = try makePipe()
                childEnds.append(read)
                pipes.input = write
                posix_spawn_file_actions_adddup2(&actions, read, 0)
            case .lifeline:
                posix_spawn_file_actions_adddup2(&actions, try Lifeline.readEnd.get(), 0)
            }
            for (descriptor, output) in [(Int32(1), standardOutput), (Int32(2), standardError)] {
                switch output {
                case .inherit: break
                case .discard:
                    posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", O_WRONLY, 0)
                case .pipe:
                    let (read, write) = try makePipe()
                    childEnds.append(write)
                    if descriptor == 1 { pipes.output = read } else { pipes.error = read }
                    posix_spawn_file_actions_adddup2(&actions, write, descriptor)
                case .append(let path):
                    // Opened here rather than in the child, so that a bad path is reported as such.
                    let file = nas_open_cloexec(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
                    guard file >= 0 else { throw SystemError("open the log file", path: path) }
                    childEnds.append(file)
                    posix_spawn_file_actions_adddup2(&actions, file, descriptor)
                case .standardOutput:
                    posix_spawn_file_actions_adddup2(&actions, 1, 2)
                }
            }
            nas_spawn_close_from(&actions, 3)
            if let workingDirectory {
                // Checked here: a failed chdir in the child would read as a program that cannot start.
                var info = stat()
                guard stat(workingDirectory, &info) == 0 else {
                    throw SystemError("enter the working directory", path: workingDirectory)
                }
                guard info.st_mode & S_IFMT == S_IFDIR else {
                    throw SystemError("enter the working directory", path: workingDirectory, errno: ENOTDIR)
                }
                nas_spawn_chdir(&actions, workingDirectory)
            }
        } catch {
            closeParentEnds()
            throw error
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if processGroup != .inherited {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        // A fresh process's signals: nothing blocked (a trap or Foundation's Process may have left signals blocked
        // in this thread) and the default action for those a parent commonly ignores or traps (an ignored SIGPIPE
        // or SIGINT would be inherited through exec).
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [
            SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGALRM, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD, SIGTSTP, SIGTTIN,
            SIGTTOU,
        ] {
            sigaddset(&defaults, number)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        var variables = inheritEnvironment ? Self.currentEnvironment() : [:]
        variables.merge(environment) { $1 }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            closeParentEnds()
            throw SystemError("start", path: executable, errno: status)
        }
        pid = child
        self.executable = executable
        self.processGroup = processGroup
        if case .append(let path) = standardOutput { logPath = path } else { logPath = nil }
        state = Mutex(State(pipes: pipes))
    }

    deinit {
        let pipes = state.withLock { $0.pipes }
        [pipes.input, pipes.output, pipes.error].filter { $0 >= 0 }.forEach { close($0) }
    }

    /// This process's environment.
    public static func currentEnvironment() -> [String: String] {
        var variables: [String: String] = [:]
        var entry: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
        while let pointer = entry?.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                variables[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry = entry?.advanced(by: 1)
        }
        return variables
    }

    // MARK: - Signals

    /// Sends signal `number` to the child, or to its whole group (which it must have of its own); nothing once the
    /// child has been reaped.
    public func signal(_ number: Int32, toGroup: Bool = false) {
        precondition(!toGroup || processGroup != .inherited, "the child has no process group of its own")
        state.withLock { state in
            guard state.termination == nil else { return }
            _ = kill(toGroup ? -pid : pid, number)
        }
    }

    // MARK: - Waiting

    /// How the child ended, if it has; never blocks.
    public func poll() -> Termination? {
        reap(block: false)
    }

    /// Waits for the child's end on a thread of its own.
    public func wait() async -> Termination {
        if let termination = poll() { return termination }
        return await onThreadOfItsOwn { self.blockingWait() }
    }

    /// Waits at most `timeout` for the child's end, on a thread of its own; nil if it still runs.
    public func wait(timeout: Duration) async -> Termination? {
        if let termination = poll() { return termination }
        return await onThreadOfItsOwn { self.blockingWait(timeout: timeout) }
    }

    /// Asks the child (and its group, if it has its own) to stop with SIGTERM, and kills it with SIGKILL if it has
    /// not ended after `grace`; waits on a thread of its own.
    @discardableResult
    public func terminate(grace: Duration = .seconds(5)) async -> Termination {
        if let termination = poll() { return termination }
        return await onThreadOfItsOwn { self.blockingTerminate(grace: grace) }
    }

    /// Waits for the child's end, blocking the calling thread: for threads of the caller's own.
    @available(*, noasync, message: "blocks the thread: use wait()")
    public func blockingWait() -> Termination {
        // Without a timeout, reap(block:) always comes back with a termination.
        reap(block: true)!
    }

    /// Waits at most `timeout` for the child's end, blocking the calling thread; nil if it still runs.
    @available(*, noasync, message: "blocks the thread: use wait(timeout:)")
    public func blockingWait(timeout: Duration) -> Termination? {
        if let termination = poll() { return termination }
        let deadline = ContinuousClock.now + timeout
        let descriptor = nas_pidfd_open(pid)
        if descriptor >= 0 {
            defer { close(descriptor) }
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            while Glibc.poll(&entry, 1, millisecondsUntil(deadline)) < 0 && errno == EINTR {}
            return poll()
        }
        // Without pidfds (Linux before 5.3, some sandboxes): look every 10 ms.
        while true {
            if let termination = poll() { return termination }
            let left = millisecondsUntil(deadline)
            if left == 0 { return nil }
            usleep(UInt32(min(left, 10)) * 1000)
        }
    }

    /// `terminate(grace:)`, blocking the calling thread.
    @available(*, noasync, message: "blocks the thread: use terminate(grace:)")
    @discardableResult
    public func blockingTerminate(grace: Duration = .seconds(5)) -> Termination {
        let toGroup = processGroup != .inherited
        signal(SIGTERM, toGroup: toGroup)
        if let termination = blockingWait(timeout: grace) { return termination }
        signal(SIGKILL, toGroup: toGroup)
        return blockingWait()
    }

    /// Reaps the child once it has ended: waitid with WNOWAIT says it has while leaving it a zombie, so that the
    /// group is killed (when asked) and the status recorded under the lock, before the pid can be reused.
    private func reap(block: Bool) -> Termination? {
        if let termination = state.withLock({ $0.termination }) { return termination }
        let ended = nas_wait_ended(pid, block ? 1 : 0)
        if ended == 0 { return nil }
        let failure = ended < 0 ? errno : 0
        return state.withLock { state in
            if let termination = state.termination { return termination }
            guard failure == 0 else {
                // ECHILD without this object reaping: someone else reaped the pid (a waitpid(-1) elsewhere, or a
                // SIGCHLD set to SIG_IGN). Its status is lost; record it as a failure rather than wait forever.
                state.termination = .exited(-1)
                return state.termination
            }
            if processGroup == .ownKilledWithLeader { kill(-pid, SIGKILL) }
            var status: Int32 = 0
            // A zombie: this does not block.
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let termination: Termination =
                nas_wait_signaled(status) != 0
                ? .signaled(nas_wait_signal(status)) : .exited(nas_wait_exit_code(status))
            state.termination = termination
            return termination
        }
    }

    // MARK: - Pipes and logs

    /// Takes the parent's ends of the pipes: the caller closes them.
    func takePipes() -> Pipes {
        state.withLock { state in
            let pipes = state.pipes
            state.pipes = Pipes()
            return pipes
        }
    }

    /// The last `lines` lines of the log file (the last 4 KiB of it at most), joined by ` | `, for failure
    /// reports; empty without a log file.
    public func logTail(lines: Int = 3) -> String {
        logPath.map { Self.tail(ofFile: $0, lines: lines) } ?? ""
    }

    /// The last `lines` lines of the file at `path` (the last 4 KiB of it at most), joined by ` | `; empty when it
    /// cannot be read.
    public static func tail(ofFile path: String, lines: Int = 3) -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return "" }
        defer { close(descriptor) }
        let size = lseek(descriptor, 0, SEEK_END)
        guard size > 0 else { return "" }
        let start = max(0, size - 4096)
        var bytes = [UInt8](repeating: 0, count: Int(size - start))
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, start) }
        guard count > 0 else { return "" }
        let text = String(decoding: bytes[..<count], as: UTF8.self)
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }
}

/// The process's lifeline: a pipe made once, whose write end is never written, never closed and, being
/// close-on-exec, never inherited, so that it closes exactly when the process ends.
private enum Lifeline {
    static let readEnd: Result<Int32, SystemError> = Result { () throws(SystemError) in try makePipe().read }
}

/// A pipe whose both ends close on exec (the child's end is dup2'ed onto 0, 1 or 2, which clears the flag).
private func makePipe() throws(SystemError) -> (read: Int32, write: Int32) {
    var descriptors: [Int32] = [-1, -1]
    guard nas_pipe_cloexec(&descriptors) == 0 else { throw SystemError("create a pipe") }
    return (descriptors[0], descriptors[1])
}
