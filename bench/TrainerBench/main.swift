// Trains the seed tutorial's CNNs with the native trainer and prints one JSON line per run, for
// bench/trainer_vs_keras.py (which runs TensorFlow-Keras on the same data in the same session).
//
// Usage: TrainerBench [--layers 3x3,3x6] [--epochs 1] [--train-limit N] [--test-limit N] [--threads 2]
//                     [--seed 0] [--data DIR]
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
    epochs: Int(options["epochs"] ?? "1")!, seed: UInt64(options["seed"] ?? "0")!,
    threads: Int(options["threads"] ?? "2")!, trainLimit: options["train-limit"].flatMap { Int($0) },
    testLimit: options["test-limit"].flatMap { Int($0) })
do {
    let data = try IDXDataset.load(
        directory: options["data"] ?? IDXDataset.defaultDirectory, trainLimit: config.trainLimit,
        testLimit: config.testLimit)
    let architecture = CNNArchitecture(layers: layers)
    var epochSeconds: [Double] = []
    var last = Date()
    let result = try Trainer.train(architecture: architecture, data: data, config: config) { progress in
        if progress.batch == progress.batchesPerEpoch {
            epochSeconds.append(Date().timeIntervalSince(last))
            last = Date()
        }
    }
    let layerText = layers.map { "[\($0.kernelSize),\($0.filters)]" }.joined(separator: ",")
    print(
        "{\"engine\":\"nas\",\"kernels\":\"\(Trainer.instructionSet)\",\"layers\":[\(layerText)],"
            + "\"epochs\":\(config.epochs),\"threads\":\(config.threads),"
            + "\"train_images\":\(data.train.count),\"images_per_second\":\(result.imagesPerSecond),"
            + "\"epoch_seconds\":\(epochSeconds),\"loss\":\(result.epochLosses),"
            + "\"test_accuracy\":\(result.testAccuracy ?? -1)}")
} catch {
    FileHandle.standardError.write(Data("TrainerBench: \(error)\n".utf8))
    exit(1)
}
