import ArgumentParser
import Foundation
import Plugins

/// Where constraint plugins come from; shared by every command that builds constraints.
struct PluginOptions: ParsableArguments {
    @Option(
        name: .customLong("plugin-dir"),
        help: ArgumentHelp(
            "A directory of constraint plugins (*.so) to load; repeatable. \(ConstraintRegistry.environmentVariable) adds more (':'-separated).",
            valueName: "DIR"))
    var directories: [String] = []

    /// Built-ins, shipped plugins, then the environment's and the flags' directories.
    func registry() throws -> ConstraintRegistry {
        try ConstraintRegistry.standard(directories: directories)
    }

    /// `registry()`, after loading each plugin of the user's directories in a child process first: for the
    /// commands that run jobs, which a plugin crashing while it loads would otherwise take down without a word.
    func registryCheckedInChildren() throws -> ConstraintRegistry {
        for file in try ConstraintRegistry.userPluginFiles(directories: directories) {
            try PluginsCommand.Check.loadInChild(file)
        }
        return try registry()
    }
}

/// Writes text to standard error.
func printError(_ text: String) {
    var stream = StandardError()
    print(text, to: &stream)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        writeAll(string, to: STDERR_FILENO)
    }
}

/// Writes all of `text` to a file descriptor, retrying short writes.
func writeAll(_ text: String, to descriptor: Int32) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}

/// A failure while a command runs (not a misuse of its flags): printed as `Error: ...` without the usage text.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    /// The exit status: `ExitStatus.failed` by default, `ExitStatus.badInput` for an unreadable or invalid input.
    let status: Int32

    init(_ description: String, status: Int32 = ExitStatus.failed) {
        self.description = description
        self.status = status
    }

    /// An input (a file, a plugin, a job folder) that cannot be read or is invalid.
    static func badInput(_ description: String) -> CLIError { CLIError(description, status: ExitStatus.badInput) }
}
