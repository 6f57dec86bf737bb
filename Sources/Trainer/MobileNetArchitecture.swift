import Constraints

/// A MobileNet block's activation.
public enum MobileNetActivation: String, Hashable, Sendable, Codable, CaseIterable {
    /// `min(max(0, x), 6)` (MobileNet-V2).
    case relu6
    /// `x * relu6(x + 3) / 6` (MobileNet-V3's hard-swish).
    case hardSwish = "hswish"
}

/// One inverted-residual block: 1x1 expansion (none when `expansion` is 1), depthwise `kernelSize` x
/// `kernelSize` convolution, optional squeeze-and-excite, 1x1 linear projection, residual add when the stride is 1
/// and the channels match. Batch normalisation follows each convolution; `activation` follows the expansion's and
/// the depthwise convolution's.
public struct MobileNetBlock: Hashable, Sendable, Codable {
    /// The expansion ratio: the depthwise convolution runs on `expansion` times the input channels.
    public var expansion: Int
    /// The depthwise kernel's side (3, 5 or 7 in the built-in space).
    public var kernelSize: Int
    /// Whether squeeze-and-excite (global average pool, 1x1 reduce to a quarter, ReLU, 1x1 expand, hard-sigmoid,
    /// channel-wise multiply) follows the depthwise convolution.
    public var squeezeExcite: Bool
    /// The activation after the expansion and the depthwise convolution.
    public var activation: MobileNetActivation

    /// Creates a block.
    public init(expansion: Int, kernelSize: Int, squeezeExcite: Bool, activation: MobileNetActivation) {
        self.expansion = expansion
        self.kernelSize = kernelSize
        self.squeezeExcite = squeezeExcite
        self.activation = activation
    }
}

/// A stage: blocks with the same output channels; the first block has the stage's stride, the others stride 1.
public struct MobileNetStage: Hashable, Sendable, Codable {
    /// Output channels of every block.
    public var filters: Int
    /// The first block's stride (1 or 2).
    public var stride: Int
    /// The blocks, at least one.
    public var blocks: [MobileNetBlock]

    /// Creates a stage.
    public init(filters: Int, stride: Int, blocks: [MobileNetBlock]) {
        self.filters = filters
        self.stride = stride
        self.blocks = blocks
    }
}

/// A trial's model of the MobileNet-style family.
///
/// Input `[N, channels, height, width]` (NCHW, float32 in [0, 1]); a stem (3x3 conv with `stemStride`, batch norm,
/// `stemActivation`); the stages' inverted-residual blocks; global average pooling; Dense(`classes`) + Softmax.
/// Strided convolutions pad as TensorFlow's "same" does (output `ceil(input / stride)`, the odd extra row and
/// column after), so that a Keras model of the same architecture computes the same function.
public struct MobileNetArchitecture: Hashable, Sendable, Codable {
    /// The stem convolution's output channels.
    public var stemFilters: Int
    /// The stem convolution's kernel side.
    public var stemKernelSize: Int
    /// The stem convolution's stride.
    public var stemStride: Int
    /// The stem's activation.
    public var stemActivation: MobileNetActivation
    /// The stages, in order.
    public var stages: [MobileNetStage]
    /// Input height in pixels.
    public var height: Int
    /// Input width in pixels.
    public var width: Int
    /// Input channels (1 for grey images).
    public var channels: Int
    /// Output classes.
    public var classes: Int

    /// Creates an architecture; the defaults are Fashion-MNIST's 28x28 grey images and 10 classes.
    public init(
        stemFilters: Int = 16, stemKernelSize: Int = 3, stemStride: Int = 2,
        stemActivation: MobileNetActivation = .hardSwish, stages: [MobileNetStage], height: Int = 28,
        width: Int = 28, channels: Int = 1, classes: Int = 10
    ) {
        self.stemFilters = stemFilters
        self.stemKernelSize = stemKernelSize
        self.stemStride = stemStride
        self.stemActivation = stemActivation
        self.stages = stages
        self.height = height
        self.width = width
        self.channels = channels
        self.classes = classes
    }

    /// The channels entering the dense layer (the last stage's filters, or the stem's).
    public var features: Int { stages.last?.filters ?? stemFilters }

    /// The squeeze-and-excite bottleneck's channels for `channels` expanded channels: a quarter, at least 1.
    public static func squeezeChannels(_ channels: Int) -> Int { max(1, channels / 4) }

    /// TensorFlow's "same" padding along one axis: the output size and the padding before.
    static func same(_ size: Int, kernel: Int, stride: Int) -> (output: Int, before: Int) {
        let output = (size + stride - 1) / stride
        let total = max((output - 1) * stride + kernel - size, 0)
        return (output, total / 2)
    }
}

/// A trial's model: one of the built-in families, picked from the shape of the trial's value.
public enum BuiltInModel: Hashable, Sendable {
    /// The seed tutorial's CNN (a list of conv layers).
    case cnn(CNNArchitecture)
    /// The MobileNet-style family (an object with `stages`).
    case mobileNet(MobileNetArchitecture)
}

extension MobileNetArchitecture {
    /// Reads an architecture from a chosen value:
    /// `{"stem": {"filters": 16, "kernel_size": 3, "stride": 2, "activation": "hswish"}, "stages": [{"filters": 24,
    /// "stride": 2, "blocks": [{"expansion": 6, "kernel_size": 5, "se": true, "activation": "relu6"}, ...]}, ...]}`;
    /// the stem and each stage's stride are optional (the defaults above, and 1).
    public init(value: JSON, height: Int = 28, width: Int = 28, channels: Int = 1, classes: Int = 10) throws {
        func fail(_ reason: String) -> SearchSpaceError {
            SearchSpaceError.notAnArchitecture(value.integerText, reason)
        }
        func integer(_ json: JSON?, _ name: String, allowed: ClosedRange<Int>, default fallback: Int? = nil) throws
            -> Int
        {
            if json == nil, let fallback { return fallback }
            guard case .number(let number)? = json, let integer = Int(exactly: number), allowed.contains(integer)
            else {
                throw fail("\(name) is \(json?.integerText ?? "missing"), expected an integer in \(allowed)")
            }
            return integer
        }
        func activation(_ json: JSON?, _ name: String, default fallback: MobileNetActivation? = nil) throws
            -> MobileNetActivation
        {
            if json == nil, let fallback { return fallback }
            guard case .string(let text)? = json, let activation = MobileNetActivation(rawValue: text) else {
                throw fail(
                    "\(name) is \(json?.integerText ?? "missing"), expected one of "
                        + MobileNetActivation.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))
            }
            return activation
        }
        guard case .object = value, case .array(let stageItems)? = value["stages"], !stageItems.isEmpty else {
            throw fail("it has no non-empty \"stages\" list")
        }
        let stem = value["stem"] ?? .object([])
        guard case .object = stem else { throw fail("\"stem\" is not an object") }
        var stages: [MobileNetStage] = []
        for (index, item) in stageItems.enumerated() {
            let name = "stage \(index)'s"
            guard case .object = item, case .array(let blockItems)? = item["blocks"], !blockItems.isEmpty else {
                throw fail("stage \(index) is not {\"filters\": F, \"stride\": S, \"blocks\": [...]} with blocks")
            }
            var blocks: [MobileNetBlock] = []
            for (number, block) in blockItems.enumerated() {
                let label = "stage \(index) block \(number)'s"
                guard case .object = block else { throw fail("stage \(index) block \(number) is not an object") }
                let squeeze: Bool
                switch block["se"] {
                case .bool(let on)?: squeeze = on
                case nil: squeeze = false
                case let other?: throw fail("\(label) se is \(other.integerText), expected true or false")
                }
                blocks.append(
                    MobileNetBlock(
                        expansion: try integer(block["expansion"], "\(label) expansion", allowed: 1...32),
                        kernelSize: try integer(block["kernel_size"], "\(label) kernel_size", allowed: 1...15),
                        squeezeExcite: squeeze,
                        activation: try activation(block["activation"], "\(label) activation")))
            }
            stages.append(
                MobileNetStage(
                    filters: try integer(item["filters"], "\(name) filters", allowed: 1...4096),
                    stride: try integer(item["stride"], "\(name) stride", allowed: 1...2, default: 1), blocks: blocks))
        }
        self.init(
            stemFilters: try integer(stem["filters"], "the stem's filters", allowed: 1...4096, default: 16),
            stemKernelSize: try integer(stem["kernel_size"], "the stem's kernel_size", allowed: 1...15, default: 3),
            stemStride: try integer(stem["stride"], "the stem's stride", allowed: 1...2, default: 2),
            stemActivation: try activation(stem["activation"], "the stem's activation", default: .hardSwish),
            stages: stages, height: height, width: width, channels: channels, classes: classes)
    }
}

extension BuiltInModel {
    /// Reads a trial's model from its value: an object with `"stages"` is a `MobileNetArchitecture`, anything else
    /// a `CNNArchitecture` (a list of layers, or `{"layers": [...]}`).
    public init(value: JSON, height: Int = 28, width: Int = 28, channels: Int = 1, classes: Int = 10) throws {
        if case .object = value, value["stages"] != nil {
            self = .mobileNet(
                try MobileNetArchitecture(
                    value: value, height: height, width: width, channels: channels, classes: classes))
        } else {
            self = .cnn(
                try CNNArchitecture(value: value, height: height, width: width, channels: channels, classes: classes))
        }
    }
}

extension BuiltInModel {
    /// The model's ONNX bytes with the weights training would start from (seeded), batch 1: what is measured or
    /// predicted before training, since latency does not depend on the weights' values.
    public func untrainedONNX(seed: UInt64) throws -> [UInt8] {
        switch self {
        case .cnn(let architecture):
            return try OnnxExport.serialized(
                architecture: architecture, weights: Trainer.initialWeights(architecture: architecture, seed: seed),
                batch: 1)
        case .mobileNet(let architecture):
            return try OnnxExport.serialized(
                mobileNet: architecture, weights: Trainer.initialWeights(mobileNet: architecture, seed: seed),
                batch: 1)
        }
    }
}
