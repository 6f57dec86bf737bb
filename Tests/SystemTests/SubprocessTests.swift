import Foundation
import System
import TestSupport
import Testing

/// `Subprocess` on real programs: /bin/sh, coreutils, and the built `nas` for the parent watch.
@Suite(.serialized) struct SubprocessTests {
    @Test func exitStatusesAndOutputsComeBack() async throws {
        let result = try await Subprocess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])
        #expect(result.termination == .exited(3))
        #expect(result.termination.shellStatus == 3)
        #expect(result.outputText == "out\n")
        #expect(result.errorText == "err\n")
        #expect(!result.timedOut)
        let zero = try await Subprocess.run("/bin/true")
        #expect(zero.termination == .exited(0))
    }

    @Test func aSignalThatEndsTheChildIsReported() async throws {
        let result = try await Subprocess.run("/bin/sh", ["-c", "kill -TERM $$; sleep 5"])
        #expect(result.termination == .signaled(SIGTERM))
        #expect(result.termination.shellStatus == 128 + SIGTERM)
        #expect(result.termination.description.contains("killed by signal 15"))
    }

    @Test func inputIsWrittenWhileTheOutputIsRead() async throws {
        // More than a pipe holds (64 KiB) each way: writing all first, or reading all first, would deadlock.
        let input = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let result = try await Subprocess.run("/bin/cat", input: input)
        #expect(result.termination == .exited(0))
        #expect(result.standardOutput == input)
        // Without input, standard input is /dev/null: cat ends at once instead of waiting.
        let empty = try await Subprocess.run("/bin/cat")
        #expect(empty.termination == .exited(0) && empty.standardOutput.isEmpty)
    }

    @Test func aChildThatClosesItsInputEarlyDoesNotEndTheParent() async throws {
        // The parent's write then fails with EPIPE; SIGPIPE must not end the test process.
        let input = [UInt8](repeating: 65, count: 1 << 20)
        let result = try await Subprocess.run("/bin/sh", ["-c", "exec 0<&-; echo closed"], input: input)
        #expect(result.termination == .exited(0))
        #expect(result.outputText == "closed\n")
    }

    @Test func environmentIsInheritedWithOverrides() async throws {
        setenv("NAS_SYSTEM_TEST_INHERITED", "parent", 1)
        defer { unsetenv("NAS_SYSTEM_TEST_INHERITED") }
        let result = try await Subprocess.run(
            "/usr/bin/env", environment: ["NAS_SYSTEM_TEST_SET": "a b=c", "NAS_SYSTEM_TEST_INHERITED": "child"])
        let lines = Set(result.outputText.split(separator: "\n").map(String.init))
        #expect(lines.contains("NAS_SYSTEM_TEST_SET=a b=c"))
        #expect(lines.contains("NAS_SYSTEM_TEST_INHERITED=child"))
        #expect(lines.contains { $0.hasPrefix("PATH=") })

        let bare = try Subprocess(
            executable: "/usr/bin/env", environment: ["ONLY": "1"], inheritEnvironment: false, standardOutput: .pipe)
        #expect(await bare.collect().outputText == "ONLY=1\n")
    }

    @Test func theWorkingDirectoryIsTheOneGiven() async throws {
        let directory = try TestSupport.temporaryDirectory("nas-system").resolvingSymlinksInPath().path
        let result = try await Subprocess.run("/bin/pwd", ["-P"], workingDirectory: directory)
        #expect(result.outputText == directory + "\n")
        #expect(throws: SystemError.self) {
            try Subprocess(executable: "/bin/pwd", workingDirectory: directory + "/missing")
        }
    }

    @Test func outputIsAppendedToALogFile() async throws {
        let log = try TestSupport.temporaryDirectory("nas-system").appendingPathComponent("trainer.log").path
        for index in 1...2 {
            let process = try Subprocess(
                executable: "/bin/sh", arguments: ["-c", "echo out \(index); echo err \(index) >&2"],
                standardOutput: .append(log), standardError: .standardOutput)
            #expect(await process.wait() == .exited(0))
            #expect(process.logPath == log)
        }
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "out 1\nerr 1\nout 2\nerr 2\n")
        #expect(Subprocess.tail(ofFile: log, lines: 2) == "out 2 | err 2")
        #expect(Subprocess.tail(ofFile: log + ".missing") == "")
    }

    @Test func noOtherDescriptorOfTheParentReachesTheChild() async throws {
        // Opened without O_CLOEXEC, as a careless library would.
        let leaked = open("/dev/null", O_RDONLY)
        defer { close(leaked) }
        try #require(leaked > 3)
        let result = try await Subprocess.run("/bin/ls", ["/proc/self/fd"])
        let descriptors = Set(result.outputText.split(separator: "\n").compactMap { Int32($0) })
        // 0-2, and 3: the folder ls itself reads.
        #expect(descriptors.isSubset(of: [0, 1, 2, 3]), "\(descriptors)")
        #expect(descriptors.isSuperset(of: [0, 1, 2]))
    }

    @Test func aMissingExecutableIsAClearError() throws {
        do {
            _ = try Subprocess(executable: "/nonexistent/nas-runner", arguments: ["x"])
            Issue.record("a missing program started")
        } catch {
            #expect(error.code == .notFound)
            #expect(error.description == "cannot start '/nonexistent/nas-runner': No such file or directory (errno 2)")
        }
        do {
            _ = try Subprocess(executable: "/bin/true", standardOutput: .append("/nonexistent/folder/trainer.log"))
            Issue.record("a log file in a missing folder was opened")
        } catch {
            #expect(error.description.hasPrefix("cannot open the log file '/nonexistent/folder/trainer.log'"))
        }
    }

    @Test func aChildGetsItsOwnProcessGroupOnlyWhenAsked() async throws {
        let own = try Subprocess(executable: "/bin/sleep", arguments: ["30"], processGroup: .own)
        let shared = try Subprocess(executable: "/bin/sleep", arguments: ["30"])
        #expect(getpgid(own.pid) == own.pid)
        #expect(getpgid(shared.pid) == getpgrp())
        #expect(own.poll() == nil)
        own.signal(SIGKILL, toGroup: true)
        shared.signal(SIGKILL)
        #expect(await own.wait() == .signaled(SIGKILL))
        #expect(await shared.wait() == .signaled(SIGKILL))
        // Reaped: polling again answers the same, and signalling it does nothing.
        #expect(own.poll() == .signaled(SIGKILL))
        own.signal(SIGKILL, toGroup: true)
    }

    @Test func aGrandchildIsKilledWithItsGroup() async throws {
        let log = try TestSupport.temporaryDirectory("nas-system").appendingPathComponent("pids").path
        let process = try Subprocess(
            executable: "/bin/sh", arguments: ["-c", "sleep 300 & echo $!; wait"], standardOutput: .append(log),
            processGroup: .own)
        let grandchild = try await pidWritten(to: log)
        #expect(getpgid(grandchild) == process.pid)
        process.signal(SIGKILL, toGroup: true)
        #expect(await process.wait() == .signaled(SIGKILL))
        try await TestSupport.eventually("the grandchild \(grandchild) ended") { hasEnded(grandchild) }
    }

    @Test func whatALeaderLeavesInItsGroupIsKilledWhenItEnds() async throws {
        let log = try TestSupport.temporaryDirectory("nas-system").appendingPathComponent("pids").path
        let process = try Subprocess(
            executable: "/bin/sh", arguments: ["-c", "sleep 300 & echo $!"], standardOutput: .append(log),
            processGroup: .ownKilledWithLeader)
        #expect(await process.wait() == .exited(0))
        let grandchild = try await pidWritten(to: log)
        try await TestSupport.eventually("the grandchild \(grandchild) ended") { hasEnded(grandchild) }
    }

    @Test func terminateAsksFirstThenKills() async throws {
        let polite = try Subprocess(executable: "/bin/sleep", arguments: ["300"], processGroup: .own)
        #expect(await polite.terminate(grace: .seconds(30)) == .signaled(SIGTERM))
        // `trap '' TERM` ignores SIGTERM in the shell and in the sleep it starts.
        let stubborn = try Subprocess(
            executable: "/bin/sh", arguments: ["-c", "trap '' TERM; sleep 300"], processGroup: .ownKilledWithLeader)
        #expect(await stubborn.wait(timeout: .milliseconds(50)) == nil)
        #expect(await stubborn.terminate(grace: .milliseconds(200)) == .signaled(SIGKILL))
    }

    @Test func aTimeoutKillsTheChild() async throws {
        let result = try await Subprocess.run(
            "/bin/sh", ["-c", "echo started; sleep 300"], processGroup: .own, timeout: .milliseconds(300))
        #expect(result.timedOut)
        #expect(result.termination == .signaled(SIGKILL))
        #expect(result.outputText == "started\n")
    }

    @Test func theChildStartsWithDefaultSignalsWhateverTheParentIgnores() async throws {
        // An ignored signal survives exec: the child would ignore it too without the reset.
        signal(SIGUSR2, SIG_IGN)
        defer { signal(SIGUSR2, SIG_DFL) }
        let result = try await Subprocess.run("/bin/grep", ["SigIgn", "/proc/self/status"])
        let mask = try #require(
            UInt64(
                result.outputText.split(separator: "\t").last?.trimmingCharacters(
                    in: .whitespacesAndNewlines) ?? "", radix: 16))
        #expect(mask & (1 << UInt64(SIGUSR2 - 1)) == 0, "SigIgn \(String(mask, radix: 16))")
    }

    @Test func aTrainerWhoseParentDiesEndsItself() async throws {
        let nas = try TestSupport.nasBinary()
        let directory = try TestSupport.temporaryDirectory("nas-system")
        let trial = #"{"decisions":[0,0,0,0],"value":[{"kernel_size":3,"filters":3},{"kernel_size":3,"filters":6}]}"#
        // Not its parent: it stops at once.
        let orphan = try await Subprocess.run(
            nas, ["trainer", "--nas-params-str", trial, "--job-dir", directory.appendingPathComponent("a").path],
            environment: [ParentWatch.variable: "1"])
        #expect(orphan.termination == .exited(1))
        #expect(orphan.errorText.contains("the parent process 1 is gone"))

        // A shell starts a long trainer that watches it, and is killed: the trainer ends itself.
        let log = directory.appendingPathComponent("trainer.log").path
        let pids = directory.appendingPathComponent("pids").path
        let script =
            "NAS_PARENT_PID=$$ '\(nas)' trainer --nas-params-str '\(trial)' --job-dir '\(directory.path)/b' "
            + "--num-epochs 1000 >'\(log)' 2>&1 & echo $! >'\(pids)'; wait"
        let parent = try Subprocess(executable: "/bin/sh", arguments: ["-c", script])
        let trainer = try await pidWritten(to: pids)
        parent.signal(SIGKILL)
        #expect(await parent.wait() == .signaled(SIGKILL))
        try await TestSupport.eventually("the trainer \(trainer) ended") { hasEnded(trainer) }
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("is gone; stopping"))
    }
}

/// The first pid the shell wrote to `path`.
func pidWritten(to path: String) async throws -> pid_t {
    var pid: pid_t?
    try await TestSupport.eventually("a pid in \(path)") {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        pid = text.split(separator: "\n").first.flatMap { pid_t($0) }
        return pid != nil
    }
    return pid!
}

/// Whether `pid` is gone or a zombie waiting for its new parent to reap it.
func hasEnded(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
    // The state follows the command's closing parenthesis.
    guard let close = stat.lastIndex(of: ")") else { return true }
    return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
}
