import ArgumentParser
import Engine
import Foundation
import ONNX

/// `nas measure`: batch-1 latency and peak working memory of an ONNX model on this machine's native engine.
struct MeasureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "measure",
        abstract: "Measure an ONNX model's batch-1 latency and peak working memory with the native engine.",
        discussion: """
            Runs --warmup untimed inferences, then at least --repeats timed samples and for at least --min-time \
            seconds, then goes on until the p50's 95% confidence interval (order statistics, no normality assumed) \
            lies within ±--precision of the p50 or --max-time seconds of timing are spent. Each sample averages \
            back-to-back runs lasting --min-repeat-time together (TVM's min_repeat_ms). Each sample is timed by \
            the wall clock and by the thread's CPU clock: one whose wall time exceeds its CPU time by more than 2% \
            was descheduled (a busy machine) and, with --preempted thread-time (the default), counts its CPU time \
            instead of the wait, with --preempted discard is dropped and timed again (its CPU time still holds what \
            the interruption cost: private caches refilled after another process ran); how many were is printed. \
            --pin keeps the measuring thread on the CPU it starts on. --reference times a fixed reference workload \
            (a 1x1 convolution of the engine's GEMM and an affine pass) in blocks as long as a sample on either side \
            of each sample and reports the median of the samples' ratios to it: on a shared machine the host's \
            clock and the caches other processes share move a model's time by tens of percent within seconds, and \
            the ratio moves far less (bench/README.md); --precision and --min-repeat-time are not applied with it. The interval is printed; \
            --json prints {"latency_ms" (the p50),"latency_mean_ms","latency_p90_ms","latency_p99_ms", \
            "latency_stddev_ms","latency_runs","memory_bytes"} (the names trials report) with \
            "latency_p50_interval": {"low_ms","high_ms","confidence"} and "latency_runs_per_sample" (with \
            --reference, "latency_reference_ms" and "latency_reference_ratio").
            """
    )

    @Argument(help: ArgumentHelp("The model.", valueName: "MODEL.onnx"))
    var model: String

    @Option(help: "Untimed runs before timing.")
    var warmup = 20

    @Option(help: "Minimum number of timed samples.")
    var repeats = 200

    @Option(name: .customLong("min-time"), help: ArgumentHelp("Minimum seconds of timed runs.", valueName: "SECONDS"))
    var minTime = 0.0

    @Option(
        help: ArgumentHelp(
            "Go on until the p50's 95% interval is within ± this share of it (0.01: ±1%); 0 stops after --repeats and --min-time.",
            valueName: "SHARE"))
    var precision = 0.01

    @Option(
        name: .customLong("max-time"),
        help: ArgumentHelp("Seconds of timing after which --precision gives up (the interval is reported).", valueName: "SECONDS"))
    var maxTime = 10.0

    @Option(
        name: .customLong("min-repeat-time"),
        help: ArgumentHelp("Each sample times back-to-back runs lasting at least this long and records their mean.", valueName: "SECONDS"))
    var minRepeatTime = 0.0

    @Option(
        help: ArgumentHelp(
            "What a sample during which the thread was descheduled counts: its thread CPU time, or its wall time with the wait.",
            valueName: "thread-time|wall-time|discard"))
    var preempted = PreemptedSamples.threadTime

    @Flag(help: "Pin the measuring thread to the CPU it starts on for the measurement.")
    var pin = false

    @Flag(help: "Also time a fixed reference workload beside every sample and report the model's ratio to it.")
    var reference = false

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    @Flag(
        help: ArgumentHelp(
            "Time each kernel on its own instead (--warmup, then --repeats runs): the time per op type and the slowest kernels, or with --json one {\"node\",\"latency_ms\"} per kernel in run order."))
    var profile = false

    /// Out-of-range values are usage errors (exit 64), as the parser's own.
    func validate() throws {
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more; got \(warmup)") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1; got \(repeats)") }
        guard minTime >= 0, minTime.isFinite, minTime <= 3600 else {
            throw ValidationError("--min-time must be between 0 and 3600 seconds; got \(minTime)")
        }
        guard precision >= 0, precision < 1 else {
            throw ValidationError("--precision must be a share of the p50 from 0 (off) to below 1, e.g. 0.01 for ±1%; got \(precision)")
        }
        guard maxTime >= minTime, maxTime <= 3600 else {
            throw ValidationError("--max-time must be between --min-time (\(minTime)) and 3600 seconds; got \(maxTime)")
        }
        guard minRepeatTime >= 0, minRepeatTime <= 1 else {
            throw ValidationError("--min-repeat-time must be between 0 and 1 second; got \(minRepeatTime)")
        }
        if profile && reference {
            throw ValidationError(
                "--profile prints each kernel's time in milliseconds; --reference would make them ratios: use one or the other")
        }
    }

    func run() throws {
        if profile { return try runProfile() }
        let report: LatencyReport
        let options = MeasurementOptions(
            warmup: warmup, repeats: repeats, minimumTime: .seconds(minTime), precision: precision > 0 ? precision : nil,
            maximumTime: .seconds(maxTime), minimumSampleTime: .seconds(minRepeatTime), preempted: preempted, pinned: pin,
            reference: reference)
        do {
            report = try measure(model: try readModelFile(model), options)
        } catch let error as OnnxError {
            throw CLIError.badInput("\(model): \(error)")
        }
        if json {
            print(try jsonLine(report))
            return
        }
        func ms(_ value: Double) -> String { String(format: "%.4f ms", value) }
        print("p50 \(ms(report.p50Ms))  mean \(ms(report.meanMs))  p90 \(ms(report.p90Ms))  p99 \(ms(report.p99Ms))")
        print("stddev \(ms(report.stddevMs))  runs \(report.count)  peak memory \(report.peakMemoryBytes) bytes")
        if let descheduled = report.preemptedCount, descheduled > 0 {
            switch preempted {
            case .threadTime: print("\(descheduled) of \(report.count) samples were descheduled (a busy machine), counted at their thread CPU time")
            case .wallTime: print("\(descheduled) of \(report.count) samples were descheduled (a busy machine), counted with the wait")
            case .discard: print("\(descheduled) descheduled samples (a busy machine) were dropped and timed again")
            }
        }
        if let ratio = report.referenceRatio, let unit = report.referenceMs {
            print(String(format: "%.4f times the reference workload (%.4f ms a run during this measurement)", ratio, unit))
        }
        if let interval = report.p50Interval, let width = report.p50RelativeHalfWidth {
            var line = String(
                format: "p50 %.0f%% interval %.4f-%.4f ms (±%.2f%%)", interval.confidence * 100, interval.low, interval.high,
                width * 100)
            if (report.runsPerSample ?? 1) > 1 { line += ", each sample the mean of \(report.runsPerSample ?? 1) runs" }
            if precision > 0, width > precision {
                line += String(
                    format: "; wider than --precision ±%.2f%% when --max-time %gs ran out (a busy machine: raise --max-time)",
                    precision * 100, maxTime)
            }
            print(line)
        }
    }
}

extension MeasureCommand {
    /// `--profile`: `OnnxEngine.profile`'s per-kernel medians, summed per op type and the slowest listed.
    private func runProfile() throws {
        let timings: [KernelTiming]
        do {
            let engine = try OnnxEngine(bytes: try readModelFile(model))
            timings = try engine.profile(
                MeasurementOptions(warmup: warmup, repeats: repeats, minimumTime: .seconds(minTime), preempted: preempted,
                                   pinned: pin))
        } catch let error as OnnxError {
            throw CLIError.badInput("\(model): \(error)")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(timings), as: UTF8.self))
            return
        }
        let total = timings.reduce(0) { $0 + $1.p50Ms }
        func share(_ ms: Double) -> String { String(format: "%9.4f ms %5.1f%%", ms, total > 0 ? ms / total * 100 : 0) }
        print("\(timings.count) kernels, sum of their p50s \(String(format: "%.4f", total)) ms")
        var byType: [String: (count: Int, ms: Double)] = [:]
        for timing in timings { byType[timing.node.opType, default: (0, 0)].count += 1; byType[timing.node.opType]!.ms += timing.p50Ms }
        for (type, entry) in byType.sorted(by: { $0.value.ms > $1.value.ms }) {
            print("\(type.padding(toLength: 22, withPad: " ", startingAt: 0)) \(String(format: "%4d", entry.count)) \(share(entry.ms))")
        }
        print("slowest kernels:")
        for (index, timing) in timings.enumerated().sorted(by: { $0.element.p50Ms > $1.element.p50Ms }).prefix(20) {
            print("  #\(String(format: "%-4d", index)) \(timing.node.opType.padding(toLength: 18, withPad: " ", startingAt: 0)) \(share(timing.p50Ms))  \(timing.node.output)")
        }
    }
}

extension PreemptedSamples: ExpressibleByArgument {}
