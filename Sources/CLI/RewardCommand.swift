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

    @Option(
        name: .customLong("constraint"),
        help: ArgumentHelp("A constraint for lines that name none, and for flag mode; repeatable.", valueName: "SPEC"))
    var constraints: [String] = []

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
    }

    func run() throws {
        let registry = try plugins.registry()
        let defaults = try constraints.map { try registry.constraint(parsing: $0) }
        if let accuracy {
            try scoreOne(accuracy: accuracy, constraints: defaults)
            return
        }
        let file: UnsafeMutablePointer<FILE>
        if let input {
            guard let opened = fopen(input, "rb") else {
                throw ValidationError("cannot open --input '\(input)': \(String(cString: strerror(errno)))")
            }
            file = opened
        } else {
            guard let standardInput = fdopen(STDIN_FILENO, "rb") else {
                throw ValidationError("cannot read standard input: \(String(cString: strerror(errno)))")
            }
            file = standardInput
        }
        defer { fclose(file) }
        var scorer = RewardLineScorer(defaultConstraints: defaults) { try registry.constraint(parsing: $0) }
        var failures = 0
        var output = ""
        output.reserveCapacity(1 << 17)
        var number = 0
        try LineReader(file: file).forEachLine { line in
            number += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }
            let (text, succeeded) = scorer.score(line: line, number: number)
            if !succeeded { failures += 1 }
            output += text
            output += "\n"
            if output.utf8.count >= 1 << 16 { flush(&output) }
        }
        flush(&output)
        if failures > 0 {
            printError("nas reward: \(failures) of \(number) lines failed; see their \"error\" members")
            throw ExitCode(1)
        }
    }

    private func scoreOne(accuracy: Double, constraints: [Constraint]) throws {
        var values: [String: Double] = [:]
        for metric in metrics {
            let parts = metric.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let value = Constraint.parseNumber(parts[1]) else {
                throw ValidationError("--metric '\(metric)' must be NAME=VALUE with a number, e.g. latency_ms=2.4")
            }
            values[parts[0]] = value
        }
        let result = try Reward(constraints: constraints).evaluate(accuracy: accuracy, metrics: values)
        if json {
            var scorer = RewardLineScorer(defaultConstraints: constraints)
            var object = "{\"accuracy\":"
            JSON.write(number: accuracy, to: &object)
            object += ",\"metrics\":" + JSON.object(values.sorted { $0.key < $1.key }.map { ($0.key, JSON.number($0.value)) }).text + "}"
            print(scorer.score(line: object, number: 1).output)
            return
        }
        print("reward \(result.reward)  (accuracy \(accuracy), \(result.isFeasible ? "feasible" : "infeasible"))")
        for outcome in result.outcomes {
            let unit = outcome.unit.isEmpty ? "" : " \(outcome.unit)"
            print(
                "  \(outcome.name): \(outcome.measured)\(unit) vs target \(outcome.target)\(unit)  factor \(outcome.factor)  feasibility \(outcome.feasibility)"
            )
        }
    }

    private func flush(_ output: inout String) {
        writeAll(output, to: STDOUT_FILENO)
        output.removeAll(keepingCapacity: true)
    }
}

/// Reads a FILE in large blocks and hands out its lines without their newline.
struct LineReader {
    let file: UnsafeMutablePointer<FILE>

    func forEachLine(_ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        let blockSize = 1 << 20
        var pending: [UInt8] = []
        var block = [UInt8](repeating: 0, count: blockSize)
        while true {
            let count = block.withUnsafeMutableBytes { fread($0.baseAddress, 1, blockSize, file) }
            if count == 0 { break }
            try block.withUnsafeBufferPointer { buffer in
                var start = 0
                for index in 0..<count where buffer[index] == 0x0A {
                    if pending.isEmpty {
                        try body(UnsafeBufferPointer(rebasing: buffer[start..<index]))
                    } else {
                        pending.append(contentsOf: buffer[start..<index])
                        try pending.withUnsafeBufferPointer { try body($0) }
                        pending.removeAll(keepingCapacity: true)
                    }
                    start = index + 1
                }
                pending.append(contentsOf: buffer[start..<count])
            }
        }
        if ferror(file) != 0 {
            throw ValidationError("reading the input failed: \(String(cString: strerror(errno)))")
        }
        if !pending.isEmpty { try pending.withUnsafeBufferPointer { try body($0) } }
    }
}
