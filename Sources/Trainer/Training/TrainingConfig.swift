/// How to train a trial's CNN. The defaults are the seed tutorial's Keras settings.
public struct TrainingConfig: Hashable, Sendable, Codable {
    /// Passes over the training set (default 2, as the seed trainer's `--num_epochs` in the tutorial).
    public var epochs: Int
    /// Examples per gradient step (default 32, Keras's `fit` default).
    public var batchSize: Int
    /// Adam's learning rate (default 1e-3, Keras's default).
    public var learningRate: Double
    /// Adam's first-moment decay (default 0.9).
    public var beta1: Double
    /// Adam's second-moment decay (default 0.999).
    public var beta2: Double
    /// Adam's epsilon (default 1e-7, Keras's default; added to the uncorrected root as Keras does).
    public var epsilon: Double
    /// Seeds the initial weights and the per-epoch shuffles; the same seed and thread count give bit-identical
    /// weights.
    public var seed: UInt64
    /// Threads that share each batch (default 2). Results depend on it (the batch is split and summed in a
    /// fixed order per thread count), so compare runs at the same count.
    public var threads: Int
    /// Use only the first N training examples (all when nil).
    public var trainLimit: Int?
    /// Evaluate on only the first N test examples (all when nil).
    public var testLimit: Int?
    /// Report progress every this many batches (and at each epoch's end).
    public var progressInterval: Int
    /// Models with batch norm (the MobileNet family): after training, the running statistics are re-estimated
    /// over this many training images (the mean of per-batch statistics, with the final weights), so that a short
    /// trial's evaluation does not use averages still dominated by their initial values (Keras's momentum 0.99
    /// needs some hundreds of batches). Nil means 2048; 0 keeps the training-time running averages, as Keras does.
    public var batchNormCalibration: Int?

    /// Creates a configuration; every argument has the documented default.
    public init(
        epochs: Int = 2, batchSize: Int = 32, learningRate: Double = 1e-3, beta1: Double = 0.9,
        beta2: Double = 0.999, epsilon: Double = 1e-7, seed: UInt64 = 0, threads: Int = 2,
        trainLimit: Int? = nil, testLimit: Int? = nil, progressInterval: Int = 100, batchNormCalibration: Int? = nil
    ) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.seed = seed
        self.threads = threads
        self.trainLimit = trainLimit
        self.testLimit = testLimit
        self.progressInterval = progressInterval
        self.batchNormCalibration = batchNormCalibration
    }

    /// Checks every field, so that a CLI can report a bad flag before loading data.
    public func validate() throws {
        func positive(_ value: Int, _ name: String) throws {
            guard value >= 1 else { throw TrainingError.invalidConfig("\(name) is \(value); it must be 1 or more") }
        }
        try positive(epochs, "epochs")
        try positive(batchSize, "the batch size")
        try positive(threads, "threads")
        try positive(progressInterval, "the progress interval")
        if let trainLimit { try positive(trainLimit, "the training limit") }
        if let testLimit { try positive(testLimit, "the test limit") }
        if let batchNormCalibration, batchNormCalibration < 0 {
            throw TrainingError.invalidConfig(
                "the batch-norm calibration is \(batchNormCalibration) images; it must be 0 (off) or more")
        }
        guard learningRate.isFinite, learningRate > 0 else {
            throw TrainingError.invalidConfig("the learning rate is \(learningRate); it must be a finite number > 0")
        }
        guard beta1 >= 0, beta1 < 1, beta2 >= 0, beta2 < 1 else {
            throw TrainingError.invalidConfig("Adam's betas are \(beta1), \(beta2); each must be in [0, 1)")
        }
        guard epsilon.isFinite, epsilon > 0 else {
            throw TrainingError.invalidConfig("Adam's epsilon is \(epsilon); it must be a finite number > 0")
        }
    }
}

/// A progress report during training.
public struct TrainingProgress: Hashable, Sendable {
    /// The epoch, from 1.
    public var epoch: Int
    /// Batches done in this epoch.
    public var batch: Int
    /// Batches per epoch.
    public var batchesPerEpoch: Int
    /// Mean loss over this epoch's batches so far.
    public var loss: Double
    /// Training accuracy over this epoch's examples so far (before each step's update, as Keras reports it).
    public var accuracy: Double
    /// Training throughput over this epoch so far, in images per second.
    public var imagesPerSecond: Double
}

/// What training produced.
public struct TrainingResult: Sendable {
    /// The trained weights, in ONNX layouts.
    public var weights: CNNWeights
    /// Per epoch: the mean training loss.
    public var epochLosses: [Double]
    /// Per epoch: the training accuracy.
    public var epochAccuracies: [Double]
    /// Top-1 accuracy on the test split (nil when trained without one).
    public var testAccuracy: Double?
    /// Seconds spent training (excluding the final evaluation).
    public var elapsedSeconds: Double
    /// Training throughput over all epochs, in images per second.
    public var imagesPerSecond: Double
}
