// Trains a built-in model with the native trainer and prints one JSON line per run, for
// bench/trainer_vs_keras.py and bench/mobilenet_vs_keras.py (which run TensorFlow-Keras and PyTorch on the same
// data in the same session). `--value JSON` trains the model a trial value describes (a MobileNet's
// `{"stages": ...}` or a CNN's layer list) instead of `--layers`.
//
// Usage: TrainerBench [--layers 3x3,3x6 | --value JSON] [--epochs 1] [--train-limit N] [--test-limit N]
//                     [--threads 2] [--batch-size 32] [--seed 0] [--data DIR] [--calibration IMAGES]
import Constraints
import Foundation
import Trainer

var options: [String: String] = [:]
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard flag.hasPrefix("--"), let value = arguments.popFirst() else {
        FileHandle.standardError.write(Data("usage: TrainerBench [--layers KxF,KxF] [--epochs N] ...\n".utf8))
        exit(2)
    }
    options[String(flag.dropFirst(2))] = value
}
let layers = (options["layers"] ?? "3x3,3x6").split(separator: ",").map { spec -> ConvLayer in
    let parts = spec.split(separator: "x").compactMap { Int($0) }
    precondition(parts.count == 2, "a layer is KERNELxFILTERS, e.g. 3x6")
    return ConvLayer(kernelSize: parts[0], filters: parts[1])
}
let config = TrainingConfig(
    epochs: Int(options["epochs"] ?? "1")!, batchSize: Int(options["batch-size"] ?? "32")!, seed: UInt64(options["seed"] ?? "0")!,
    threads: Int(options["threads"] ?? "2")!, trainLimit: options["train-limit"].flatMap { Int($0) },
    testLimit: options["test-limit"].flatMap { Int($0) },
    batchNormCalibration: options["calibration"].flatMap { Int($0) })
do {
    let data = try IDXDataset.load(
        directory: options["data"] ?? IDXDataset.defaultDirectory, trainLimit: config.trainLimit,
        testLimit: config.testLimit)
    // CPU seconds of the whole process (every thread) as well as wall seconds: on a shared machine the wall time
    // says as much about the other jobs as about the trainer.
    func processCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
    var epochSeconds: [Double] = []
    var epochCPUSeconds: [Double] = []
    var last = Date()
    var lastCPU = processCPUSeconds()
    let progress: (TrainingProgress) -> Void = { progress in
        if progress.batch == progress.batchesPerEpoch {
            epochSeconds.append(Date().timeIntervalSince(last))
            epochCPUSeconds.append(processCPUSeconds() - lastCPU)
            last = Date()
            lastCPU = processCPUSeconds()
        }
    }
    let model = try options["value"].map { try BuiltInModel(value: JSON.parse($0)) } ?? .cnn(CNNArchitecture(layers: layers))
    let (rate, losses, accuracy, description): (Double, [Double], Double?, String)
    switch model {
    case .cnn(let architecture):
        let result = try Trainer.train(architecture: architecture, data: data, config: config, progress: progress)
        let text = architecture.layers.map { "[\($0.kernelSize),\($0.filters)]" }.joined(separator: ",")
        (rate, losses, accuracy, description) = (
            result.imagesPerSecond, result.epochLosses, result.testAccuracy, "\"layers\":[\(text)]"
        )
    case .mobileNet(let architecture):
        let result = try Trainer.train(mobileNet: architecture, data: data, config: config, progress: progress)
        (rate, losses, accuracy, description) = (
            result.imagesPerSecond, result.epochLosses, result.testAccuracy, "\"model\":\"mobilenet\""
        )
    }
    print(
        "{\"engine\":\"nas\",\"kernels\":\"\(Trainer.instructionSet)\",\(description),"
            + "\"epochs\":\(config.epochs),\"threads\":\(config.threads),"
            + "\"train_images\":\(data.train.count),\"images_per_second\":\(rate),"
            + "\"epoch_seconds\":\(epochSeconds),\"epoch_cpu_seconds\":\(epochCPUSeconds),\"loss\":\(losses),"
            + "\"test_accuracy\":\(accuracy ?? -1)}")
} catch {
    FileHandle.standardError.write(Data("TrainerBench: \(error)\n".utf8))
    exit(1)
}
