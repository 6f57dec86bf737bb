internal import CSystem
import Glibc

extension Subprocess {
    /// What a child printed on its pipes, and how it ended.
    public struct Collected: Sendable {
        /// How it ended.
        public var termination: Termination
        /// Its standard output, when that was a pipe.
        public var standardOutput: [UInt8]
        /// Its standard error, when that was a pipe.
        public var standardError: [UInt8]
        /// Whether the timeout ran out and the child was killed.
        public var timedOut: Bool

        /// Standard output as UTF-8 text.
        public var outputText: String { String(decoding: standardOutput, as: UTF8.self) }
        /// Standard error as UTF-8 text.
        public var errorText: String { String(decoding: standardError, as: UTF8.self) }
    }

    /// Starts a program with piped output, writes `input` to it, and collects its output and its end, on a thread
    /// of its own: `collect(input:timeout:)` of a new `Subprocess`.
    public static func run(
        _ executable: String, _ arguments: [String] = [], input: [UInt8] = [], environment: [String: String] = [:],
        workingDirectory: String? = nil, processGroup: ProcessGroup = .inherited, timeout: Duration? = nil
    ) async throws(SystemError) -> Collected {
        let process = try Subprocess(
            executable: executable, arguments: arguments, environment: environment,
            workingDirectory: workingDirectory, standardInput: input.isEmpty ? .null : .pipe, standardOutput: .pipe,
            standardError: .pipe, processGroup: processGroup)
        return await process.collect(input: input, timeout: timeout)
    }

    /// Writes `input` to the child's standard input pipe (then closes it), reads its output pipes to their end and
    /// waits for it, on a thread of its own. After `timeout` the child (its group, if it has its own) is killed
    /// with SIGKILL and `timedOut` is set. Call it once: it takes the pipes.
    public func collect(input: [UInt8] = [], timeout: Duration? = nil) async -> Collected {
        await onThreadOfItsOwn { self.blockingCollect(input: input, timeout: timeout) }
    }

    /// `collect(input:timeout:)`, blocking the calling thread.
    @available(*, noasync, message: "blocks the thread: use collect(input:timeout:)")
    public func blockingCollect(input: [UInt8] = [], timeout: Duration? = nil) -> Collected {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let pipes = takePipes()
        var inputFD = pipes.input
        var outputs = [pipes.output, pipes.error].filter { $0 >= 0 }
        defer {
            if inputFD >= 0 { close(inputFD) }
            outputs.forEach { close($0) }
        }
        if inputFD >= 0 && input.isEmpty {
            close(inputFD)
            inputFD = -1
        }
        if inputFD >= 0 { _ = nas_set_nonblocking(inputFD) }
        var written = 0
        var standardOutput: [UInt8] = []
        var standardError: [UInt8] = []
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        while inputFD >= 0 || !outputs.isEmpty {
            if let deadline, millisecondsUntil(deadline) == 0 {
                timedOut = true
                break
            }
            var entries = outputs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if inputFD >= 0 { entries.append(pollfd(fd: inputFD, events: Int16(POLLOUT), revents: 0)) }
            let wait = deadline.map(millisecondsUntil) ?? -1
            let ready = Glibc.poll(&entries, nfds_t(entries.count), wait)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            for entry in entries where entry.revents != 0 {
                if entry.fd == inputFD {
                    let count = input.withUnsafeBytes {
                        nas_write_nosigpipe(inputFD, $0.baseAddress! + written, $0.count - written)
                    }
                    if count > 0 { written += count }
                    if written == input.count || (count < 0 && errno != EAGAIN && errno != EINTR) {
                        // All written, or the child closed its end (EPIPE): it gets end of file, or has gone.
                        close(inputFD)
                        inputFD = -1
                    }
                    continue
                }
                let count = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    if entry.fd == pipes.output {
                        standardOutput.append(contentsOf: buffer[..<count])
                    } else {
                        standardError.append(contentsOf: buffer[..<count])
                    }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(entry.fd)
                    outputs.removeAll { $0 == entry.fd }
                }
            }
        }
        var termination: Termination?
        if !timedOut {
            // The pipes are closed, yet the child may run on (it may have closed them itself).
            termination = deadline.map { blockingWait(timeout: ContinuousClock.now.duration(to: $0)) } ?? blockingWait()
            timedOut = termination == nil
        }
        if termination == nil {
            signal(SIGKILL, toGroup: processGroup != .inherited)
            termination = blockingWait()
        }
        return Collected(
            termination: termination!, standardOutput: standardOutput, standardError: standardError,
            timedOut: timedOut)
    }
}
