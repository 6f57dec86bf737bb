import ArgumentParser
import Foundation

/// How a long job reports progress.
struct ProgressOptions: ParsableArguments {
    @Flag(help: "Print only the final summary.")
    var quiet = false

    @Flag(help: "Print one JSON object per event on standard output, for scripts.")
    var json = false
}

/// Progress of a job: a live status line on a terminal, log lines otherwise, JSON events for scripts.
final class ProgressReporter {
    private let options: ProgressOptions
    private let live: Bool
    private let start = Date()
    private var lineShown = false

    init(options: ProgressOptions) {
        self.options = options
        live = !options.quiet && !options.json && isatty(STDERR_FILENO) == 1
    }

    /// A notable event: a log line (or a JSON event).
    func event(_ text: String, json: [String: Any]) {
        if options.json {
            var object = json
            object["elapsed_seconds"] = (Date().timeIntervalSince(start) * 10).rounded() / 10
            if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
                writeAll(String(decoding: data, as: UTF8.self) + "\n", to: STDOUT_FILENO)
            }
            return
        }
        guard !options.quiet else { return }
        clearLine()
        writeAll("[\(Self.clock(Date().timeIntervalSince(start)))] \(text)\n", to: STDERR_FILENO)
    }

    /// The live status line (terminals only).
    func status(done: Int, running: Int, failed: Int, total: Int, best: (id: Int, reward: Double)?, remaining: Double?) {
        guard live else { return }
        var text = "\r\u{1B}[K\(done)/\(total) done, \(running) running, \(failed) failed"
        if let best { text += " | best reward \(String(format: "%.4f", best.reward)) (trial \(best.id))" }
        text += " | \(Self.clock(Date().timeIntervalSince(start))) elapsed"
        if let remaining { text += ", ~\(Self.clock(remaining)) left" }
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

    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 3600
            ? String(format: "%dh%02dm", total / 3600, total % 3600 / 60)
            : String(format: "%dm%02ds", total / 60, total % 60)
    }
}
