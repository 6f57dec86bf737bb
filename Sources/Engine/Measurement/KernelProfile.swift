import ONNX
import System

/// The time one planned kernel of a model takes, as the engine runs it: the per-kernel measurements a kernel-level
/// latency predictor (nn-Meter's idea) learns from.
public struct KernelTiming: Hashable, Sendable, Codable {
    /// The ONNX node a kernel computes: the activation the planner fuses into it (Conv + Relu, Add + Relu, ...) is
    /// part of the same kernel and not named.
    public struct Node: Hashable, Sendable, Codable {
        /// The node's first output: unique in a graph, so it is the key that pairs a timing with the node.
        public var output: String
        /// The node's name (often empty).
        public var name: String
        /// The node's op type.
        public var opType: String

        /// A node.
        public init(output: String, name: String, opType: String) {
            self.output = output
            self.name = name
            self.opType = opType
        }

        enum CodingKeys: String, CodingKey {
            case output, name
            case opType = "op_type"
        }
    }

    /// The node the kernel computes.
    public var node: Node
    /// The median of its timed runs, milliseconds.
    public var p50Ms: Double

    /// A timing.
    public init(node: Node, p50Ms: Double) {
        self.node = node
        self.p50Ms = p50Ms
    }

    enum CodingKeys: String, CodingKey {
        case node
        case p50Ms = "latency_ms"
    }
}

extension OnnxEngine {
    /// Times each planned kernel of batch-1 inferences: `options.warmup` untimed whole runs, then at least
    /// `options.repeats` runs (and `options.minimumTime`) in which every kernel is timed on its own, a descheduled
    /// kernel as `options.preempted` says (with `.discard` a kernel's descheduled runs are left out unless it has no
    /// other), pinned to one CPU with `options.pinned`, and with `options.reference` each time over the reference
    /// workload's time in the same run (a ratio, as `LatencyReport.referenceRatio`, not milliseconds); returns one timing per kernel in run order (the median of its runs). The sum of the medians is close to, not equal to,
    /// `measure`'s p50: the runs' medians are taken per kernel.
    public func profile(_ options: MeasurementOptions = MeasurementOptions()) throws -> [KernelTiming] {
        guard options.warmup >= 0, options.repeats >= 1, options.minimumTime >= .zero else {
            throw OnnxError.invalidInput(
                "profiling needs warmup >= 0, repeats >= 1 and a minimum time >= 0; got warmup \(options.warmup), repeats \(options.repeats), minimum \(options.minimumTime)"
            )
        }
        let minimumSeconds = options.minimumTime.inSeconds
        guard let first = inputs.first, let result = outputs.first else {
            throw OnnxError.invalidInput("the model has no run-time input or no output to profile")
        }
        let input = Self.benchmarkInput(count: first.count)
        var output = [Float](repeating: 0, count: result.count)
        // samples[k][r]: kernel k's time in run r.
        var samples: [[Double]] = Array(repeating: [], count: steps.count)
        for index in samples.indices { samples[index].reserveCapacity(options.repeats) }
        // With `.discard`: each kernel's descheduled runs at their thread CPU time, used when it has no other.
        var dropped: [[Double]] = Array(repeating: [], count: steps.count)
        let reference = options.reference ? ReferenceWorkload() : nil
        options.pinning {
            input.withUnsafeBufferPointer { inputBuffer in
                output.withUnsafeMutableBufferPointer { outputBuffer in
                    for _ in 0..<options.warmup { run(input: inputBuffer, output: outputBuffer) }
                    let start = Self.now()
                    var runs = 0
                    while runs < options.repeats || Self.now() - start < minimumSeconds {
                        // With the reference, each kernel's time in this run is over the reference's just before it
                        // (its thread CPU time: a reference sample is short, and the rule is the same either way).
                        var unit = 1.0
                        if let reference {
                            let cpuBefore = Self.threadCPUTime()
                            reference.run()
                            unit = max((Self.threadCPUTime() - cpuBefore) * 1000, 1e-6)
                        }
                        inputPointers[0].update(from: inputBuffer.baseAddress!, count: min(inputBuffer.count, first.count))
                        for (index, step) in steps.enumerated() {
                            // As `measure` times a run: the CPU clock is read outside the wall clock's window, and a
                            // kernel during which the thread was descheduled counts its CPU time (`options.preempted`),
                            // so that kernel times and whole-model latencies follow one rule on a busy machine.
                            let cpuBefore = Self.threadCPUTime()
                            let before = Self.now()
                            step()
                            let wall = Self.now() - before
                            let cpu = Self.threadCPUTime() - cpuBefore
                            guard let seconds = options.counted(wall: wall, cpu: cpu, mayDrop: true).seconds else {
                                dropped[index].append(cpu * 1000 / unit)
                                continue
                            }
                            samples[index].append(seconds * 1000 / unit)
                        }
                        runs += 1
                    }
                }
            }
        }
        return stepNodes.indices.map { index in
            let times = samples[index].isEmpty ? dropped[index] : samples[index]
            return KernelTiming(node: stepNodes[index], p50Ms: LatencyReport(samples: times, peakMemoryBytes: 0).p50Ms)
        }
    }
}
