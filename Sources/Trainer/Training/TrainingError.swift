/// An error from training, evaluating or running a trial's CNN.
public struct TrainingError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case invalidConfig
        case shapeMismatch
        case labelOutOfRange
        case weightsMismatch
        case nanLoss
        case emptyData
    }

    private let code: Code
    /// The readable explanation.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The readable explanation (the same as `message`).
    public var description: String { message }

    /// The status a trial reports for this error: `failed_with_nan_error` for a NaN loss (vertex-ai-nas's
    /// spelling), `failed` otherwise.
    public var trialStatus: String { code == .nanLoss ? "failed_with_nan_error" : "failed" }

    /// Whether the loss became NaN or infinite.
    public var isNaNLoss: Bool { code == .nanLoss }

    /// A configuration field out of range.
    public static func invalidConfig(_ reason: String) -> TrainingError {
        TrainingError(.invalidConfig, "invalid training configuration: \(reason)")
    }

    /// The data's image size differs from the architecture's input.
    public static func shapeMismatch(architecture: CNNArchitecture, height: Int, width: Int, channels: Int)
        -> TrainingError
    {
        shapeMismatch(
            expected: (architecture.channels, architecture.height, architecture.width), height: height, width: width,
            channels: channels)
    }

    /// The data's image size differs from the model's input `expected` (channels, height, width).
    static func shapeMismatch(expected: (Int, Int, Int), height: Int, width: Int, channels: Int) -> TrainingError {
        TrainingError(
            .shapeMismatch,
            "the images are \(channels)x\(height)x\(width) (channels x height x width) but the architecture expects "
                + "\(expected.0)x\(expected.1)x\(expected.2); build the architecture with the data's size")
    }

    /// A label is not a class of the architecture.
    public static func labelOutOfRange(_ label: Int, index: Int, classes: Int) -> TrainingError {
        TrainingError(
            .labelOutOfRange,
            "example \(index) has label \(label) but the architecture has \(classes) classes (0..<\(classes)); "
                + "use an architecture with more classes or fix the labels")
    }

    /// Weights whose tensor sizes do not fit the architecture.
    public static func weightsMismatch(_ reason: String) -> TrainingError {
        TrainingError(.weightsMismatch, "the weights do not fit the architecture: \(reason)")
    }

    /// The loss became NaN or infinite.
    public static func nanLoss(epoch: Int, batch: Int, loss: Double) -> TrainingError {
        TrainingError(
            .nanLoss,
            "the training loss became \(loss) at epoch \(epoch), batch \(batch) (failed_with_nan_error); lower the "
                + "learning rate or check the data for NaN pixels")
    }

    /// No examples to train on or evaluate.
    public static func emptyData(_ what: String) -> TrainingError {
        TrainingError(.emptyData, "\(what) holds no examples")
    }
}
