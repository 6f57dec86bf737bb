/// One convolution layer of a trial's CNN: Conv2D with "same" padding, stride 1, then ReLU.
public struct ConvLayer: Hashable, Sendable, Codable {
    /// The square kernel's side, e.g. 3 or 5.
    public var kernelSize: Int
    /// The number of output channels.
    public var filters: Int

    /// Creates a layer.
    public init(kernelSize: Int, filters: Int) {
        self.kernelSize = kernelSize
        self.filters = filters
    }
}

/// A trial's model: the seed tutorial's CNN family.
///
/// Input `[N, channels, height, width]` (NCHW, float32, pixels scaled to [0, 1]), then each `ConvLayer`
/// (Conv "same" + ReLU), then Flatten (in C, H, W order, as ONNX's Flatten of NCHW) and Dense(`classes`) + Softmax.
public struct CNNArchitecture: Hashable, Sendable, Codable {
    /// The convolution layers, in order.
    public var layers: [ConvLayer]
    /// Input height in pixels.
    public var height: Int
    /// Input width in pixels.
    public var width: Int
    /// Input channels (1 for grey images).
    public var channels: Int
    /// Output classes.
    public var classes: Int

    /// Creates an architecture; the defaults are Fashion-MNIST's 28x28 grey images and 10 classes.
    public init(layers: [ConvLayer], height: Int = 28, width: Int = 28, channels: Int = 1, classes: Int = 10) {
        self.layers = layers
        self.height = height
        self.width = width
        self.channels = channels
        self.classes = classes
    }

    /// The number of features entering the dense layer.
    public var flattenedFeatures: Int {
        (layers.last?.filters ?? channels) * height * width
    }
}

/// The trained parameters of a `CNNArchitecture`, in ONNX's layouts.
public struct CNNWeights: Hashable, Sendable {
    /// Per conv layer: the kernel as `[out, in, k, k]` (ONNX Conv's OIHW), row-major.
    public var convKernels: [[Float]]
    /// Per conv layer: one bias per output channel.
    public var convBiases: [[Float]]
    /// The dense kernel as `[features, classes]` (ONNX MatMul/Gemm's B), row-major; features in C, H, W order.
    public var denseKernel: [Float]
    /// One bias per class.
    public var denseBias: [Float]

    /// Creates weights.
    public init(convKernels: [[Float]], convBiases: [[Float]], denseKernel: [Float], denseBias: [Float]) {
        self.convKernels = convKernels
        self.convBiases = convBiases
        self.denseKernel = denseKernel
        self.denseBias = denseBias
    }
}
