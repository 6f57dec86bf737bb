import Foundation

/// Labelled images in memory: pixels as floats in [0, 1] (bytes / 255), NCHW, one label per image.
public struct Dataset: Sendable {
    /// `count * channels * height * width` pixels, image after image, each in C, H, W order.
    public var images: [Float]
    /// One class index per image.
    public var labels: [UInt8]
    /// Image height in pixels.
    public var height: Int
    /// Image width in pixels.
    public var width: Int
    /// Channels per image (1 for IDX files, which are grey).
    public var channels: Int

    /// Creates a data set; `images.count` must be `labels.count * channels * height * width`.
    public init(images: [Float], labels: [UInt8], height: Int, width: Int, channels: Int = 1) {
        precondition(images.count == labels.count * channels * height * width, "images and labels disagree")
        self.images = images
        self.labels = labels
        self.height = height
        self.width = width
        self.channels = channels
    }

    /// The number of examples.
    public var count: Int { labels.count }

    /// Floats per image.
    public var imageSize: Int { channels * height * width }

    /// The first `count` examples (all when there are fewer).
    public func prefix(_ count: Int) -> Dataset {
        let kept = min(count, self.count)
        return Dataset(
            images: Array(images[0..<(kept * imageSize)]), labels: Array(labels[0..<kept]),
            height: height, width: width, channels: channels)
    }
}

/// A training split and a test split read from IDX files in MNIST's file names.
public struct IDXDataset: Sendable {
    /// The training examples.
    public var train: Dataset
    /// The test examples.
    public var test: Dataset

    /// Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"

    /// MNIST's file names, without the optional `.gz`.
    public static let fileNames = (
        trainImages: "train-images-idx3-ubyte", trainLabels: "train-labels-idx1-ubyte",
        testImages: "t10k-images-idx3-ubyte", testLabels: "t10k-labels-idx1-ubyte"
    )

    /// Creates a data set from two splits.
    public init(train: Dataset, test: Dataset) {
        self.train = train
        self.test = test
    }

    /// Loads the four IDX files of `directory` (each raw or gzip-compressed, `.gz` or not).
    ///
    /// - Parameters:
    ///   - trainLimit: keep only the first N training examples (all when nil); only their bytes are read.
    ///   - testLimit: keep only the first N test examples (all when nil).
    /// - Throws: `DatasetError` naming the file when one is missing, truncated, corrupt, of the wrong kind, or when
    ///   a split's images and labels differ in count.
    public static func load(
        directory: String = IDXDataset.defaultDirectory, trainLimit: Int? = nil, testLimit: Int? = nil
    ) throws -> IDXDataset {
        if let trainLimit, trainLimit < 1 { throw DatasetError.invalidLimit("the training limit", trainLimit) }
        if let testLimit, testLimit < 1 { throw DatasetError.invalidLimit("the test limit", testLimit) }
        let train = try loadSplit(
            directory: directory, images: fileNames.trainImages, labels: fileNames.trainLabels, limit: trainLimit)
        let test = try loadSplit(
            directory: directory, images: fileNames.testImages, labels: fileNames.testLabels, limit: testLimit)
        guard train.height == test.height, train.width == test.width else {
            throw DatasetError.shapeMismatch(
                resolve(directory, fileNames.testImages).found ?? directory,
                "test images are \(test.height)x\(test.width) but training images are \(train.height)x\(train.width)"
            )
        }
        return IDXDataset(train: train, test: test)
    }

    /// Loads one split: an image file and a label file, named as MNIST names them, in `directory`.
    public static func loadSplit(directory: String, images: String, labels: String, limit: Int? = nil) throws
        -> Dataset
    {
        let imagePath = try path(directory, images)
        let labelPath = try path(directory, labels)
        // Compare declared counts first, so that a mismatch is reported even when only a slice is loaded.
        let labelCount = try IDXFile.declaredCount(path: labelPath, magic: IDXFile.labelMagic, kind: "label")
        let declaredImages = try IDXFile.declaredCount(path: imagePath, magic: IDXFile.imageMagic, kind: "image")
        guard declaredImages == labelCount else {
            throw DatasetError.countMismatch(
                images: imagePath, imageCount: declaredImages, labels: labelPath, labelCount: labelCount)
        }
        let imageFile = try IDXFile.readImages(path: imagePath, limit: limit)
        let labelFile = try IDXFile.readLabels(path: labelPath, limit: limit)
        // Divide (as Keras's x / 255.0 does) rather than multiply by a rounded reciprocal.
        let pixels = imageFile.pixels.map { Float($0) / 255 }
        return Dataset(
            images: pixels, labels: labelFile.labels, height: imageFile.rows, width: imageFile.columns, channels: 1)
    }

    /// The path of `name` in `directory`: the raw file if present, else `name.gz`.
    private static func path(_ directory: String, _ name: String) throws -> String {
        let resolved = resolve(directory, name)
        guard let found = resolved.found else {
            throw DatasetError.missingFile(resolved.tried, directory: directory)
        }
        return found
    }

    private static func resolve(_ directory: String, _ name: String) -> (found: String?, tried: [String]) {
        let base = (directory as NSString).appendingPathComponent(name)
        let tried = [base + ".gz", base]
        return (tried.first { FileManager.default.fileExists(atPath: $0) }, tried)
    }
}
