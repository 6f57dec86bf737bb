/// An error from reading an IDX data set: which file, what was wrong, and what to do.
public struct DatasetError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case missingFile
        case unreadable
        case badMagic
        case truncated
        case badHeader
        case countMismatch
        case shapeMismatch
        case invalidLimit
    }

    private let code: Code
    /// The file the error is about (empty when it is about no single file).
    public let path: String
    /// The readable explanation.
    public let message: String

    private init(_ code: Code, path: String, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    /// The readable explanation (the same as `message`).
    public var description: String { message }

    /// None of the accepted spellings of a data file exists.
    public static func missingFile(_ tried: [String], directory: String) -> DatasetError {
        DatasetError(
            .missingFile, path: tried.first ?? directory,
            "missing data file: none of \(tried.joined(separator: ", ")) exists; the data directory '\(directory)' "
                + "must hold MNIST's file names (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                + "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz); for Fashion-MNIST install "
                + "Debian's dataset-fashion-mnist (scripts/bootstrap.sh)")
    }

    /// The file could not be opened or decompressed (I/O error, corrupt gzip data).
    public static func unreadable(_ path: String, _ reason: String) -> DatasetError {
        DatasetError(
            .unreadable, path: path,
            "cannot read '\(path)': \(reason); the file is damaged or unreadable, fetch it again")
    }

    /// The header does not start with the IDX magic number of the expected kind.
    public static func badMagic(_ path: String, found: UInt32, expected: UInt32, kind: String) -> DatasetError {
        DatasetError(
            .badMagic, path: path,
            "'\(path)' is not an IDX \(kind) file: its magic number is 0x\(hex(found)), expected 0x\(hex(expected)) "
                + "(unsigned bytes, \(kind == "image" ? 3 : 1) dimension(s)); check that the right file is in place")
    }

    /// The file ends before its header says it does.
    public static func truncated(_ path: String, expectedBytes: Int, gotBytes: Int, what: String) -> DatasetError {
        DatasetError(
            .truncated, path: path,
            "'\(path)' is truncated: reading \(what) needed \(expectedBytes) bytes but the file holds only "
                + "\(gotBytes); the download or copy was cut short, fetch the file again")
    }

    /// The header declares sizes no real data set has (a product that overflows, an image too large to train on):
    /// refused before anything is allocated.
    public static func badHeader(_ path: String, _ reason: String) -> DatasetError {
        DatasetError(
            .badHeader, path: path,
            "'\(path)' has an impossible IDX header: it declares \(reason); the file is damaged or not an IDX data "
                + "file, fetch it again")
    }

    /// The image and label files of one split hold different numbers of examples.
    public static func countMismatch(images: String, imageCount: Int, labels: String, labelCount: Int)
        -> DatasetError
    {
        DatasetError(
            .countMismatch, path: labels,
            "'\(images)' holds \(imageCount) images but '\(labels)' holds \(labelCount) labels; images and labels "
                + "must come in pairs of the same count (are they from the same data set?)")
    }

    /// The training and test images differ in size, or a size is zero.
    public static func shapeMismatch(_ path: String, _ reason: String) -> DatasetError {
        DatasetError(.shapeMismatch, path: path, "'\(path)': \(reason)")
    }

    /// A negative example limit.
    public static func invalidLimit(_ name: String, _ value: Int) -> DatasetError {
        DatasetError(.invalidLimit, path: "", "\(name) is \(value); a limit must be 1 or more (or absent for all)")
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}
