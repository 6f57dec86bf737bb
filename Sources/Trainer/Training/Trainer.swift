// Trainer owns what makes a trial's model: IDX data (Fashion-MNIST), the built-in families (the tutorial's CNN,
// `CNNArchitecture`, and MobileNet-style blocks, `MobileNetArchitecture`, picked by `BuiltInModel`) and
// search spaces as data (`SearchSpace`), training on the CPU (`Trainer`, its SIMD kernels in CTrainerKernels and
// OpenBLAS for the dense layer and pointwise convs) and the export of a trained model as ONNX (`OnnxExport`). It depends on ONNX to
// write the model and on Constraints for its JSON values (search spaces), not on the engine: measuring a model is the
// engine's job, and a trial's model is measured wherever the job says (in the trainer process, or on the fleet).
internal import CTrainerKernels
import Dispatch
import Foundation

/// Trains, evaluates and runs a trial's CNN (`CNNArchitecture`) on the CPU.
///
/// The recipe is the seed tutorial's Keras one: Glorot-uniform kernels and zero biases, Adam in Keras's form,
/// sparse categorical cross-entropy on softmax outputs, a reshuffle each epoch. Each batch is split into one
/// contiguous share per thread; each share's gradient is computed with direct SIMD convolutions (CTrainerKernels)
/// and OpenBLAS sgemm for the dense layer, and the shares are summed in thread order, so that a seed and thread
/// count give bit-identical weights on a given machine (AVX-512 and AVX2 give the same bits; the portable
/// fallback rounds differently).
public enum Trainer {
    /// Trains `architecture` on `data.train` and measures top-1 accuracy on `data.test`.
    ///
    /// - Parameter progress: called on the calling thread every `config.progressInterval` batches and at the end
    ///   of each epoch.
    /// - Parameter epochEnded: called on the calling thread after each epoch but the last with the epoch and the
    ///   weights so far (intermediate results for early stopping); what it throws ends the training.
    /// - Throws: `TrainingError` for a bad configuration, data that does not fit the architecture, or a NaN loss
    ///   (`trialStatus == "failed_with_nan_error"`).
    public static func train(
        architecture: CNNArchitecture, data: IDXDataset, config: TrainingConfig = TrainingConfig(),
        progress: ((TrainingProgress) -> Void)? = nil, epochEnded: ((Int, CNNWeights) throws -> Void)? = nil
    ) throws -> TrainingResult {
        var result = try train(
            architecture: architecture, training: data.train, config: config, progress: progress,
            epochEnded: epochEnded)
        let test = config.testLimit.map { data.test.prefix($0) } ?? data.test
        result.testAccuracy = try evaluate(
            architecture: architecture, weights: result.weights, data: test, threads: config.threads)
        return result
    }

    /// Trains `architecture` on `training` only (`testAccuracy` is nil).
    public static func train(
        architecture: CNNArchitecture, training: Dataset, config: TrainingConfig = TrainingConfig(),
        progress: ((TrainingProgress) -> Void)? = nil, epochEnded: ((Int, CNNWeights) throws -> Void)? = nil
    ) throws -> TrainingResult {
        try config.validate()
        let data = config.trainLimit.map { training.prefix($0) } ?? training
        try check(architecture, data, what: "the training data")
        _ = Kernels.singleThreadedBLAS
        let layout = ParameterLayout(architecture)
        var parameters = layout.initialParameters(seed: config.seed)
        let threads = min(config.threads, config.batchSize)
        let share = (config.batchSize + threads - 1) / threads
        let workers = (0..<threads).map { _ in Worker(layout: layout, capacity: share) }
        let optimizer = Adam(count: layout.count, config: config)
        let labels = data.labels.map(Int.init)
        let start = DispatchTime.now()
        let outcome = try EpochLoop(config: config, count: data.count).run(
            progress: progress,
            epochEnded: epochEnded.map { epochEnded in { epoch, _ in try epochEnded(epoch, layout.weights(parameters)) } }
        ) { batch in
            let outcome = parameters.withUnsafeBufferPointer { parameterBuffer in
                data.images.withUnsafeBufferPointer { images in
                    labels.withUnsafeBufferPointer { labels in
                        step(
                            workers: workers, parameters: parameterBuffer.baseAddress!, images: images.baseAddress!,
                            batch: batch, labels: labels, share: share)
                    }
                }
            }
            optimizer.update(&parameters, workers: workers)
            return outcome
        }
        let elapsed = seconds(since: start)
        return TrainingResult(
            weights: layout.weights(parameters), epochLosses: outcome.epochLosses,
            epochAccuracies: outcome.epochAccuracies, testAccuracy: nil, elapsedSeconds: elapsed,
            imagesPerSecond: Double(data.count * config.epochs) / elapsed)
    }

    /// Top-1 accuracy of `weights` on `data`, in [0, 1].
    public static func evaluate(architecture: CNNArchitecture, weights: CNNWeights, data: Dataset, threads: Int = 2)
        throws -> Double
    {
        try check(architecture, data, what: "the evaluation data")
        var correct = 0
        try run(
            architecture: architecture, weights: weights, images: data.images, count: data.count,
            threads: threads
        ) { worker, first in
            var hits = 0
            for slot in 0..<worker.images where worker.predictedClass(slot) == Int(data.labels[first + slot]) {
                hits += 1
            }
            return hits
        } collect: {
            correct += $0
        }
        return Double(correct) / Double(data.count)
    }

    /// Softmax probabilities `[count, classes]` for `count` images given as NCHW floats in [0, 1].
    public static func predict(
        architecture: CNNArchitecture, weights: CNNWeights, images: [Float], threads: Int = 2
    ) throws -> [Float] {
        let imageSize = architecture.channels * architecture.height * architecture.width
        guard imageSize > 0, images.count % imageSize == 0 else {
            throw TrainingError.weightsMismatch(
                "\(images.count) input floats are not a whole number of \(architecture.channels)x"
                    + "\(architecture.height)x\(architecture.width) images")
        }
        let count = images.count / imageSize
        let classes = architecture.classes
        var output = [Float](repeating: 0, count: count * classes)
        var chunks: [(Int, [Float])] = []
        try run(architecture: architecture, weights: weights, images: images, count: count, threads: threads) {
            worker, first in
            (first, Array(UnsafeBufferPointer(start: worker.probabilities, count: worker.images * classes)))
        } collect: {
            chunks.append($0)
        }
        for (first, probabilities) in chunks {
            output.replaceSubrange((first * classes)..<(first * classes + probabilities.count), with: probabilities)
        }
        return output
    }

    /// The instruction set the convolution kernels use on this machine: "avx512", "avx2" or "portable"
    /// (the environment variable `NAS_KERNELS=avx2` or `NAS_KERNELS=portable` caps it). Results are bit-identical
    /// between "avx512" and "avx2"; "portable" rounds differently.
    public static var instructionSet: String {
        switch nas_kernels_level() {
        case 2: return "avx512"
        case 1: return "avx2"
        default: return "portable"
        }
    }

    /// The initial weights training starts from for `seed` (Glorot uniform, zero biases).
    public static func initialWeights(architecture: CNNArchitecture, seed: UInt64) -> CNNWeights {
        let layout = ParameterLayout(architecture)
        return layout.weights(layout.initialParameters(seed: seed))
    }

    /// The mean loss over `indices` and its gradient, in the flat parameter layout (for gradient checks).
    static func lossAndGradient(
        architecture: CNNArchitecture, parameters: [Float], data: Dataset, indices: [Int]
    ) -> (loss: Double, gradient: [Float]) {
        _ = Kernels.singleThreadedBLAS
        let layout = ParameterLayout(architecture)
        let worker = Worker(layout: layout, capacity: indices.count)
        let labels = indices.map { Int(data.labels[$0]) }
        let loss = parameters.withUnsafeBufferPointer { parameters in
            data.images.withUnsafeBufferPointer { images in
                indices.withUnsafeBufferPointer { order in
                    labels.withUnsafeBufferPointer { labels in
                        worker.load(images.baseAddress!, indices: order)
                        worker.forward(parameters.baseAddress!)
                        return worker.backward(
                            parameters.baseAddress!, labels: labels, scale: 1 / Float(indices.count)
                        ).loss
                    }
                }
            }
        }
        return (loss / Double(indices.count), Array(UnsafeBufferPointer(start: worker.gradient, count: layout.count)))
    }

    private static func step(
        workers: [Worker], parameters: UnsafePointer<Float>, images: UnsafePointer<Float>,
        batch: UnsafeBufferPointer<Int>, labels: UnsafeBufferPointer<Int>, share: Int
    ) -> (loss: Double, correct: Int) {
        let count = batch.count
        let scale = 1 / Float(count)
        let parts = UnsafeMutableBufferPointer<(loss: Double, correct: Int)>.allocate(capacity: workers.count)
        defer { parts.deallocate() }
        let shared = SharedPointers(
            parameters: parameters, images: images, order: batch, labels: labels, parts: parts)
        DispatchQueue.concurrentPerform(iterations: workers.count) { index in
            let first = min(index * share, count)
            let last = min(first + share, count)
            let worker = workers[index]
            let slice = UnsafeBufferPointer(rebasing: shared.order[first..<last])
            worker.load(shared.images, indices: slice)
            guard last > first else {
                shared.parts[index] = (0, 0)
                return
            }
            let batchLabels = slice.map { shared.labels[$0] }
            worker.forward(shared.parameters)
            shared.parts[index] = batchLabels.withUnsafeBufferPointer {
                worker.backward(shared.parameters, labels: $0, scale: scale)
            }
        }
        var loss = 0.0
        var correct = 0
        for (index, part) in parts.enumerated() where workers[index].images > 0 {
            loss += part.loss
            correct += part.correct
        }
        return (loss, correct)
    }

    /// Runs the forward pass over `count` images in chunks spread over `threads`, handing each finished chunk to
    /// `each` on its thread, then every chunk's result to `collect` on the calling thread, in order.
    private static func run<Part>(
        architecture: CNNArchitecture, weights: CNNWeights, images: [Float], count: Int, threads: Int,
        each: @escaping @Sendable (Worker, Int) -> Part, collect: (Part) -> Void
    ) throws {
        guard count > 0 else { throw TrainingError.emptyData("the input") }
        guard threads >= 1 else { throw TrainingError.invalidConfig("threads is \(threads); it must be 1 or more") }
        _ = Kernels.singleThreadedBLAS
        let layout = ParameterLayout(architecture)
        let parameters = try layout.parameters(weights)
        let chunk = 32
        let workers = (0..<threads).map { _ in Worker(layout: layout, capacity: chunk) }
        let chunks = (count + chunk - 1) / chunk
        let results = ResultSlots<Part>(count: chunks)
        let order = Array(0..<count)
        parameters.withUnsafeBufferPointer { parameters in
            images.withUnsafeBufferPointer { images in
                order.withUnsafeBufferPointer { order in
                    let shared = SharedPointers(
                        parameters: parameters.baseAddress!, images: images.baseAddress!, order: order,
                        labels: order, parts: UnsafeMutableBufferPointer(start: nil, count: 0))
                    DispatchQueue.concurrentPerform(iterations: workers.count) { thread in
                        let worker = workers[thread]
                        // Chunks go round-robin to threads, so that the split, and thus the results, are fixed.
                        for index in stride(from: thread, to: chunks, by: workers.count) {
                            let first = index * chunk
                            let last = min(first + chunk, count)
                            worker.load(
                                shared.images, indices: UnsafeBufferPointer(rebasing: shared.order[first..<last]))
                            worker.forward(shared.parameters)
                            results.set(index, each(worker, first))
                        }
                    }
                }
            }
        }
        for index in 0..<chunks { collect(results.get(index)) }
    }

    private static func check(_ architecture: CNNArchitecture, _ data: Dataset, what: String) throws {
        guard data.count > 0 else { throw TrainingError.emptyData(what) }
        guard data.height == architecture.height, data.width == architecture.width,
            data.channels == architecture.channels
        else {
            throw TrainingError.shapeMismatch(
                architecture: architecture, height: data.height, width: data.width, channels: data.channels)
        }
        guard !architecture.layers.contains(where: { $0.kernelSize < 1 || $0.filters < 1 }), architecture.classes > 1
        else {
            throw TrainingError.weightsMismatch(
                "every layer needs a kernel size and filters >= 1, and the model at least 2 classes")
        }
        if let index = data.labels.firstIndex(where: { Int($0) >= architecture.classes }) {
            throw TrainingError.labelOutOfRange(Int(data.labels[index]), index: index, classes: architecture.classes)
        }
    }

    static func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
}

/// Pointers shared with the threads of one `concurrentPerform`; each thread writes only its own slots.
private struct SharedPointers: @unchecked Sendable {
    let parameters: UnsafePointer<Float>
    let images: UnsafePointer<Float>
    let order: UnsafeBufferPointer<Int>
    let labels: UnsafeBufferPointer<Int>
    let parts: UnsafeMutableBufferPointer<(loss: Double, correct: Int)>
}

/// One result slot per chunk, each written by exactly one thread before being read on the calling thread. Raw
/// memory rather than an array, so that threads writing different slots never touch a shared array's storage.
private final class ResultSlots<Part>: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<Part?>
    private let count: Int

    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil, count: count)
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    func set(_ index: Int, _ value: Part) {
        slots[index] = value
    }

    func get(_ index: Int) -> Part { slots[index]! }
}

/// Adam as Keras implements it: `lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)`,
/// `m += (g - m) * (1 - beta1)`, `v += (g^2 - v) * (1 - beta2)`, `w -= lr_t * m / (sqrt(v) + epsilon)`.
///
/// The workers' gradients are summed in worker order inside the update (the fixed order is what makes runs
/// repeatable), and the parameters are split into one contiguous range per worker thread.
final class Adam: @unchecked Sendable {
    private let first: UnsafeMutablePointer<Float>
    private let second: UnsafeMutablePointer<Float>
    private let count: Int
    private var step = 0
    private let learningRate: Double
    private let beta1: Double
    private let beta2: Double
    private let epsilon: Float

    init(count: Int, config: TrainingConfig) {
        self.count = count
        first = .allocate(capacity: count)
        first.initialize(repeating: 0, count: count)
        second = .allocate(capacity: count)
        second.initialize(repeating: 0, count: count)
        learningRate = config.learningRate
        beta1 = config.beta1
        beta2 = config.beta2
        epsilon = Float(config.epsilon)
    }

    deinit {
        first.deallocate()
        second.deallocate()
    }

    func update(_ parameters: inout [Float], workers: [Worker]) {
        update(
            &parameters, sources: workers.filter { $0.images > 0 }.map { UnsafePointer($0.gradient) },
            parts: workers.count)
    }

    /// One step with the gradient summed over `sources` (in order), the parameters split into `parts` ranges.
    func update(_ parameters: inout [Float], sources: [UnsafePointer<Float>?], parts: Int) {
        step += 1
        let t = Double(step)
        let rate = Float(learningRate * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t)))
        let keep1 = Float(1 - beta1)
        let keep2 = Float(1 - beta2)
        let count = self.count
        // Ranges of whole vectors, so that the split does not change which elements take the scalar tail.
        let share = (count / parts + 15) / 16 * 16
        parameters.withUnsafeMutableBufferPointer { weights in
            sources.withUnsafeBufferPointer { sources in
                let shared = AdamPointers(
                    weights: weights.baseAddress!, first: first, second: second, sources: sources.baseAddress!)
                let (epsilon, sourceCount) = (self.epsilon, Int32(sources.count))
                DispatchQueue.concurrentPerform(iterations: parts) { part in
                    let begin = min(part * share, count)
                    let end = part == parts - 1 ? count : min(begin + share, count)
                    guard begin < end else { return }
                    nas_adam_update(
                        shared.weights, shared.first, shared.second, shared.sources, sourceCount, begin, end, rate,
                        keep1, keep2, epsilon)
                }
            }
        }
    }
}

/// The buffers one Adam step shares with its threads; each thread writes a disjoint range.
private struct AdamPointers: @unchecked Sendable {
    let weights: UnsafeMutablePointer<Float>
    let first: UnsafeMutablePointer<Float>
    let second: UnsafeMutablePointer<Float>
    let sources: UnsafePointer<UnsafePointer<Float>?>
}
