import ArgumentParser
import Constraints
import Foundation
import Plugins

/// `nas reward`: scores trials from JSON lines, or one trial from flags.
struct RewardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reward",
        abstract: "Score trials: accuracy times one factor per constraint (MnasNet / vertex-ai-nas).",
        discussion: """
            JSON-lines mode (the default) reads one trial per line from --input or standard input and writes one
            JSON line per trial, in order: {"line":N,"reward":R,"constraints":[{..."factor":F,"feasibility":X}]}.
            A line is vertex-ai-nas's keyword form, scored exactly as cloud_nas_utils.compute_reward:
              {"accuracy":0.95,"target_latency_or_flops":0.8,"measured_latency_or_flops":0.4,"use_hard_limit":false}
            or this project's form, with constraints per line or from --constraint:
              {"accuracy":0.9,"metrics":{"flops":4e5,"latency_ms":2.1},"constraints":["flops<=0.8M:hard"]}
            A bad line gives {"line":N,"error":"..."}; the other lines are still scored and the exit status is 1.

            Flag mode: --accuracy with --metric NAME=VALUE (repeatable) scores one trial.

            Constraint syntax: [NAME=]METRIC<=TARGET[:OPTION,...]
              TARGET   a number, optionally with k, M, G or T (0.8M = 800000)
              OPTION   hard         MnasNet hard: alpha=0, beta=-1 (the default)
                       soft         MnasNet soft: alpha=beta=-0.07
                       vertex-hard  vertex-ai-nas use_hard_limit=True: alpha=0, beta=-1
                       vertex-soft  vertex-ai-nas use_hard_limit=False: alpha=beta=-1
                       weight=W     scales both exponents (vertex-ai-nas's weight)
                       alpha=A, beta=B, unit=U
              factor = (measured/target)^(weight * (alpha if measured <= target else beta))
            Examples: 'flops<=0.8M:hard'  'latency_ms<=3:soft'  'memory_bytes<=2M:vertex-soft,weight=0.5'
            """
    )

    @Option(help: ArgumentHelp("Read JSON lines from this file instead of standard input.", valueName: "FILE"))
    var input: String?

    /// Constraints for lines that name none, and for flag mode.
    @OptionGroup var constraints: ConstraintOptions

    @Option(help: "Flag mode: the trial's accuracy.")
    var accuracy: Double?

    @Option(
        name: .customLong("metric"),
        help: ArgumentHelp("Flag mode: a measured metric as NAME=VALUE (0.4M allowed); repeatable.", valueName: "NAME=VALUE"))
    var metrics: [String] = []

    @Flag(help: "Flag mode: print the result as one JSON line.")
    var json = false

    @OptionGroup var plugins: PluginOptions

    func validate() throws {
        if accuracy == nil, !metrics.isEmpty {
            throw ValidationError("--metric needs --accuracy (flag mode scores one trial)")
        }
        if accuracy != nil, input != nil {
            throw ValidationError("--input reads JSON lines; flag mode (--accuracy) scores one trial: use one of them")
        }
        _ = try metricValues()
    }

    /// The `--metric NAME=VALUE` flags, by name.
    private func metricValues() throws -> [String: Double] {
        var values: [String: Double] = [:]
        for metric in metrics {
            let parts = metric.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, let value = Constraint.parseNumber(parts[1]) else {
                throw ValidationError("--metric '\(metric)' must be NAME=VALUE with a number, e.g. latency_ms=2.4")
            }
            values[parts[0]] = value
        }
        return values
    }

    func run() throws {
        let registry = try plugins.registry()
        let defaults = try constraints.specs.map { try registry.constraint(parsing: $0) }
        if let accuracy {
            try scoreOne(accuracy: accuracy, constraints: defaults)
            return
        }
        let file: UnsafeMutablePointer<FILE>
        if let input {
            guard let opened = fopen(input, "rb") else {
                throw CLIError.badInput("cannot open --input '\(input)': \(String(cString: strerror(errno)))")
            }
            file = opened
        } else {
            guard let standardInput = fdopen(STDIN_FILENO, "rb") else {
                throw CLIError("cannot read standard input: \(String(cString: strerror(errno)))")
            }
            file = standardInput
        }
        defer { fclose(file) }
        // Lines are independent: score each block's lines on every core, then write them in input order.
        let threads = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 16))
        let lanes = (0..<threads).map { _ in
            ScoringLane(RewardLineScorer(defaultConstraints: defaults) { try registry.constraint(parsing: $0) })
        }
        var number = 0
        try LineReader(file: file).forEachBlock { block in
            let lines = LineIndex(block)
            let firstNumber = number
            number += lines.count
            DispatchQueue.concurrentPerform(iterations: threads) { part in
                let lane = lanes[part]
                for line in (lines.count * part / threads)..<(lines.count * (part + 1) / threads) {
                    let bytes = lines[line]
                    if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                    let (text, succeeded) = lane.scorer.score(line: bytes, number: firstNumber + line + 1)
                    if !succeeded { lane.failures += 1 }
                    lane.output += text
                    lane.output += "\n"
                }
            }
            for lane in lanes {
                writeAll(lane.output, to: STDOUT_FILENO)
                lane.output.removeAll(keepingCapacity: true)
            }
        }
        let failures = lanes.reduce(0) { $0 + $1.failures }
        if failures > 0 {
            printError("Error: \(failures) of \(number) lines failed; see their \"error\" members")
            throw ExitCode(1)
        }
    }

    private func scoreOne(accuracy: Double, constraints: [Constraint]) throws {
        let values = try metricValues()
        let result = try Reward(constraints: constraints).evaluate(accuracy: accuracy, metrics: values)
        if json {
            var scorer = RewardLineScorer(defaultConstraints: constraints)
            var object = "{\"accuracy\":"
            JSON.write(number: accuracy, to: &object)
            object += ",\"metrics\":" + JSON.object(values.sorted { $0.key < $1.key }.map { ($0.key, JSON.number($0.value)) }).text + "}"
            print(scorer.score(line: object, number: 1).output)
            return
        }
        // Read by people: rounded (--json keeps every digit).
        func g(_ value: Double) -> String { String(format: "%.6g", value) }
        print("reward \(g(result.reward))  (accuracy \(g(accuracy)), \(result.isFeasible ? "feasible" : "infeasible"))")
        for outcome in result.outcomes {
            let unit = outcome.unit.isEmpty ? "" : " \(outcome.unit)"
            print(
                "  \(outcome.name): \(g(outcome.measured))\(unit) vs target \(g(outcome.target))\(unit)  factor \(g(outcome.factor))  feasibility \(String(format: "%+.4f", outcome.feasibility))"
            )
        }
    }

}

/// One thread's scorer and output; `concurrentPerform` hands each lane to exactly one thread at a time.
final class ScoringLane: @unchecked Sendable {
    var scorer: RewardLineScorer
    var output = ""
    var failures = 0

    init(_ scorer: RewardLineScorer) {
        self.scorer = scorer
        output.reserveCapacity(1 << 20)
    }
}

/// The lines of a block (without their newline), by index; read-only, so shared by the scoring threads.
struct LineIndex: @unchecked Sendable {
    let block: UnsafeBufferPointer<UInt8>
    let starts: [Int]

    init(_ block: UnsafeBufferPointer<UInt8>) {
        self.block = block
        var starts = [0]
        for index in 0..<block.count where block[index] == 0x0A { starts.append(index + 1) }
        if starts.last == block.count { starts.removeLast() }
        self.starts = starts
    }

    var count: Int { starts.count }

    subscript(line: Int) -> UnsafeBufferPointer<UInt8> {
        var end = line + 1 < starts.count ? starts[line + 1] : block.count
        if end > starts[line], block[end - 1] == 0x0A { end -= 1 }
        return UnsafeBufferPointer(rebasing: block[starts[line]..<end])
    }
}

/// Reads a FILE in large blocks and hands them out cut at line ends, so that every block holds whole lines.
struct LineReader {
    let file: UnsafeMutablePointer<FILE>
    var blockSize = 1 << 22

    func forEachBlock(_ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: blockSize)
        var filled = 0
        while true {
            if filled == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
            let count = buffer.withUnsafeMutableBytes { fread($0.baseAddress! + filled, 1, $0.count - filled, file) }
            if count == 0 {
                if ferror(file) != 0 {
                    throw CLIError("reading the input failed: \(String(cString: strerror(errno)))")
                }
                if filled > 0 { try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<filled])) } }
                return
            }
            filled += count
            // Hand out everything up to the last newline; keep the partial line for the next read.
            guard let last = buffer[0..<filled].lastIndex(of: 0x0A) else { continue }
            try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0...last])) }
            let rest = filled - (last + 1)
            buffer.withUnsafeMutableBytes { bytes in
                _ = memmove(bytes.baseAddress!, bytes.baseAddress! + last + 1, rest)
            }
            filled = rest
        }
    }
}
