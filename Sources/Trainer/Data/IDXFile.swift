internal import CZlib
import Foundation

/// One IDX file (the format of MNIST and Fashion-MNIST): a big-endian header, then unsigned bytes.
///
/// Gzip-compressed and raw files read the same: zlib's `gzread` passes raw files through, so the caller does
/// not have to trust the file name. Only the bytes needed for the first `limit` items are read, which keeps
/// loading a small slice fast.
///
/// A header is not trusted with memory: sizes whose product overflows, or images larger than `maxImagePixels`,
/// are refused before anything is allocated, and the items are read in chunks, so that a header claiming
/// terabytes costs only the bytes the file really holds before it is reported as truncated.
public enum IDXFile {
    /// The magic number of an image file: unsigned bytes, 3 dimensions (count, rows, columns).
    public static let imageMagic: UInt32 = 0x0000_0803
    /// The magic number of a label file: unsigned bytes, 1 dimension (count).
    public static let labelMagic: UInt32 = 0x0000_0801
    /// The largest image accepted, in pixels (4096 x 4096): the built-in trainers work on small images, and a
    /// header asking for more is far likelier damaged than meant.
    public static let maxImagePixels = 1 << 24

    /// Reads the first `limit` images (all when nil) as raw bytes, row-major, one image after another.
    public static func readImages(path: String, limit: Int? = nil) throws -> (
        count: Int, rows: Int, columns: Int, pixels: [UInt8]
    ) {
        let reader = try GzipReader(path: path)
        let header = try reader.readHeader(words: 4, what: "the image header")
        guard header[0] == imageMagic else {
            throw DatasetError.badMagic(path, found: header[0], expected: imageMagic, kind: "image")
        }
        let (total, rows, columns) = (Int(header[1]), Int(header[2]), Int(header[3]))
        guard rows > 0, columns > 0 else {
            throw DatasetError.shapeMismatch(path, "images of \(rows)x\(columns) pixels; both sides must be > 0")
        }
        // Compared by division, as rows * columns of two 32-bit sides can overflow an Int; once the image is capped
        // at 2^24 pixels the byte total cannot (below 2^56), and it is only read as far as the file really goes.
        guard rows <= maxImagePixels / columns else {
            throw DatasetError.badHeader(
                path, "images of \(rows)x\(columns) pixels, more than the \(maxImagePixels) accepted")
        }
        let count = min(total, limit ?? total)
        let pixels = try reader.read(count * rows * columns, offset: 16, what: "\(count) images of \(rows)x\(columns)")
        return (count, rows, columns, pixels)
    }

    /// Reads the first `limit` labels (all when nil) and the count the header declares.
    public static func readLabels(path: String, limit: Int? = nil) throws -> (declared: Int, labels: [UInt8]) {
        let reader = try GzipReader(path: path)
        let header = try reader.readHeader(words: 2, what: "the label header")
        guard header[0] == labelMagic else {
            throw DatasetError.badMagic(path, found: header[0], expected: labelMagic, kind: "label")
        }
        let total = Int(header[1])
        let count = min(total, limit ?? total)
        let labels = try reader.read(count, offset: 8, what: "\(count) labels")
        return (total, labels)
    }

    /// The declared item count of an IDX file, from its header only.
    static func declaredCount(path: String, magic: UInt32, kind: String) throws -> Int {
        let reader = try GzipReader(path: path)
        let header = try reader.readHeader(words: 2, what: "the \(kind) header")
        guard header[0] == magic else {
            throw DatasetError.badMagic(path, found: header[0], expected: magic, kind: kind)
        }
        return Int(header[1])
    }
}

/// Owns one zlib `gzFile` handle for reading.
final class GzipReader {
    private let file: gzFile
    let path: String

    init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DatasetError.missingFile([path], directory: (path as NSString).deletingLastPathComponent)
        }
        guard let file = gzopen(path, "rb") else {
            throw DatasetError.unreadable(path, String(cString: strerror(errno)))
        }
        self.file = file
        self.path = path
    }

    deinit {
        gzclose(file)
    }

    /// Reads `words` big-endian 32-bit words.
    func readHeader(words: Int, what: String) throws -> [UInt32] {
        let bytes = try read(words * 4, offset: 0, what: what)
        return (0..<words).map { word in
            bytes[(word * 4)..<(word * 4 + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
    }

    /// Reads exactly `count` bytes, or throws a truncation or corruption error. `offset` is where the read starts
    /// in the decompressed stream, used only to report how many bytes the file holds.
    ///
    /// The result grows as bytes arrive, never to `count` up front: `count` comes from a header and may be far
    /// more than the file holds.
    func read(_ count: Int, offset: Int, what: String) throws -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(min(count, 1 << 24))
        var chunk = [UInt8](repeating: 0, count: min(count, 1 << 20))
        var done = 0
        while done < count {
            let wanted = min(count - done, chunk.count)
            let got = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress!, UInt32(wanted)) }
            if got < 0 { throw DatasetError.unreadable(path, errorMessage()) }
            if got == 0 { break }
            chunk.withUnsafeBufferPointer { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: $0[0..<Int(got)])) }
            done += Int(got)
        }
        if done < count {
            var errnum: Int32 = 0
            _ = gzerror(file, &errnum)
            if errnum != Z_OK && errnum != Z_BUF_ERROR {
                throw DatasetError.unreadable(path, errorMessage())
            }
            throw DatasetError.truncated(path, expectedBytes: offset + count, gotBytes: offset + done, what: what)
        }
        return bytes
    }

    private func errorMessage() -> String {
        var errnum: Int32 = 0
        guard let text = gzerror(file, &errnum) else { return "zlib error \(errnum)" }
        let message = String(cString: text)
        return errnum == Z_DATA_ERROR ? "corrupt gzip data (\(message))" : message
    }
}
