import ArgumentParser
import Trainer

/// Trainer flags a search or train job passes to each `nas trainer`.
struct TrainerOptions: ParsableArguments {
    @Option(name: .customLong("num-epochs"), help: "Each trial's passes over the training data.")
    var epochs = 2

    @Option(name: .customLong("data-dir"), help: ArgumentHelp("An IDX data set in MNIST's file names.", valueName: "DIR"))
    var dataDirectory = IDXDataset.defaultDirectory

    @Option(name: .customLong("train-limit"), help: "Train each trial on the first N training images only.")
    var trainLimit: Int?

    @Option(name: .customLong("test-limit"), help: "Evaluate each trial on the first N test images only.")
    var testLimit: Int?

    @Option(help: "Threads of each trainer (a search runs --max-parallel-trials trainers at once).")
    var threads = 1

    @Option(name: .customLong("batch-size"), help: "Examples per step.")
    var batchSize = 32

    @Option(name: .customLong("learning-rate"), help: "Adam's learning rate.")
    var learningRate = 1e-3

    @Option(name: .customLong("latency-repeats"), help: "Timed runs of each model when latency is measured.")
    var latencyRepeats = 200

    @Option(name: .customLong("poll-interval"), help: "Seconds between looks for a file-mode worker's metrics.")
    var pollInterval = 1.0

    @Option(name: .customLong("latency-timeout"), help: "Seconds a trial waits for a file-mode worker's metrics.")
    var latencyTimeout = 600.0

    /// The flags as `nas trainer` reads them.
    var arguments: [String] {
        var arguments = [
            "--num-epochs", String(epochs), "--data-dir", dataDirectory, "--threads", String(threads), "--batch-size",
            String(batchSize), "--learning-rate", String(learningRate), "--latency-repeats", String(latencyRepeats),
            "--poll-interval", String(pollInterval), "--latency-timeout", String(latencyTimeout),
        ]
        if let trainLimit { arguments += ["--train-limit", String(trainLimit)] }
        if let testLimit { arguments += ["--test-limit", String(testLimit)] }
        return arguments
    }

    /// Refuses a data folder the built-in trainer cannot read, before a job is created: reads the headers and the
    /// first example of each of the four IDX files.
    func checkData() throws {
        do {
            _ = try IDXDataset.load(directory: dataDirectory, trainLimit: 1, testLimit: 1)
        } catch let error as DatasetError {
            throw CLIError.badInput("--data-dir \(dataDirectory): \(error)")
        }
    }

    func check() throws {
        try TrainingConfig(
            epochs: epochs, batchSize: batchSize, learningRate: learningRate, threads: threads, trainLimit: trainLimit,
            testLimit: testLimit
        ).validate()
        guard latencyRepeats >= 1 else { throw ValidationError("--latency-repeats must be 1 or more") }
        guard pollInterval > 0, latencyTimeout > 0 else {
            throw ValidationError("--poll-interval and --latency-timeout must be positive")
        }
    }
}
