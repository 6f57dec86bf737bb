import ArgumentParser
import Constraints
import Fleet
import Foundation
import ONNX
import Plugins
import Search
import System
import Trainer

/// The exit statuses of every `nas` command, one scheme for all (documented in `docs/cli.md`).
enum ExitStatus {
    /// The command did what it was asked.
    static let success: Int32 = 0
    /// The work failed: a trial, a search stopped by failures or whose every trial failed, a measurement, a
    /// server that could not start.
    static let failed: Int32 = 1
    /// An input was unreadable or invalid: a model, a data set, a search space, a plugin, a job folder, a token
    /// file, a JSON line.
    static let badInput: Int32 = 2
    /// `nas trainer` only: the trial's loss became NaN (vertex-ai-nas's `failed_with_nan_error`).
    static let nanLoss: Int32 = TrialExit.nanStatus
    /// `nas trainer --latency-first` only: the untrained model missed a hard device target, so the trial was not
    /// trained (`job_status.json` says infeasible, `metrics.json` holds the measurement).
    static let infeasible: Int32 = TrialExit.infeasibleStatus
    /// The command line was wrong: an unknown flag, a missing or out-of-range value (with the usage text).
    static let usage: Int32 = 64
    /// Stopped by Ctrl-C (SIGINT) or SIGTERM.
    static let interrupted: Int32 = 130

    /// The status for an error thrown while a command ran (not while its flags were parsed).
    static func of(_ error: any Error) -> Int32 {
        switch error {
        case let error as CLIError: error.status
        case is ValidationError, is ConstraintError: usage
        case is OnnxError, is DatasetError, is SearchSpaceError, is PluginError, is JobStoreError, is JSONError:
            badInput
        case let error as TrainingError: error.isNaNLoss ? nanLoss : failed
        default: failed
        }
    }
}

extension NAS {
    /// Parses the command line, runs the command, and exits with the scheme's status. Errors in flags print the
    /// usage text (status 64); errors while a command runs print one `Error: ...` line and no usage text.
    static func main() async {
        var command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") && !(error is ValidationError) {
            // The parser's own requests that run as commands (`nas help search`, completion scripts).
            exit(withError: error)
        } catch {
            printError("Error: \(error)")
            Foundation.exit(ExitStatus.of(error))
        }
        Foundation.exit(ExitStatus.success)
    }
}
