import ArgumentParser
import Constraints
import Foundation
import Search

/// How a long job reports progress.
struct ProgressOptions: ParsableArguments {
    @Flag(help: "Print only the final summary.")
    var quiet = false

    @Flag(help: "Print one JSON object per event on standard output, for scripts.")
    var json = false
}

/// Progress of a job: a live status line on a terminal, log lines otherwise, JSON events for scripts.
final class ProgressReporter: JobObserver {
    private let options: ProgressOptions
    private let live: Bool
    private let start = Date()
    private var lineShown = false
    /// How to start a worker for trials that wait for one (shown on the live line while some do).
    var workerHint: String?

    init(options: ProgressOptions) {
        self.options = options
        live = !options.quiet && !options.json && isatty(STDERR_FILENO) == 1
    }

    /// A notable event: a log line (or a JSON event).
    func event(_ event: JobEvent) {
        if options.json {
            let elapsed = (Date().timeIntervalSince(start) * 10).rounded() / 10
            let members = (event.json + [("elapsed_seconds", .number(elapsed))]).sorted { $0.key < $1.key }
            writeAll(JSON.object(members).integerText + "\n", to: STDOUT_FILENO)
            return
        }
        guard !options.quiet else { return }
        clearLine()
        writeAll("[\(Self.stamp(Date().timeIntervalSince(start)))] \(event.text)\n", to: STDERR_FILENO)
    }

    /// The live status line (terminals only).
    func progress(_ progress: JobProgress) {
        guard live else { return }
        var text = "\r\u{1B}[K\(progress.done)/\(progress.total) done, \(progress.running) running"
        if progress.measuring > 0 {
            text += " (\(progress.measuring) waiting for a device worker\(workerHint.map { ": \($0)" } ?? ""))"
        }
        text += ", \(progress.failed) failed"
        if let best = progress.best {
            text += " | best reward \(String(format: "%.4f", best.reward)) (trial \(best.trial))"
        }
        text += " | \(Self.clock(Date().timeIntervalSince(start))) elapsed"
        if let remaining = progress.remaining {
            let (seconds, attoseconds) = remaining.components
            text += ", ~\(Self.clock(Double(seconds) + Double(attoseconds) / 1e18)) left"
        }
        writeAll(text, to: STDERR_FILENO)
        lineShown = true
    }

    /// The final summary, always printed (on standard error with --json, so that stdout stays JSON).
    func summary(_ text: String) {
        clearLine()
        writeAll(text + "\n", to: options.json ? STDERR_FILENO : STDOUT_FILENO)
    }

    private func clearLine() {
        if lineShown {
            writeAll("\r\u{1B}[K", to: STDERR_FILENO)
            lineShown = false
        }
    }

    /// Elapsed time as a log line's prefix: `00:42`, `12:05`, `1:02:03` (never like an escape code).
    static func stamp(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.down))
        return total >= 3600
            ? String(format: "%d:%02d:%02d", total / 3600, total % 3600 / 60, total % 60)
            : String(format: "%02d:%02d", total / 60, total % 60)
    }

    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 3600
            ? String(format: "%dh%02dm", total / 3600, total % 3600 / 60)
            : String(format: "%dm%02ds", total / 60, total % 60)
    }
}
