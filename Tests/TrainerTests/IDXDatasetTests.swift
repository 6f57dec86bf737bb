import Foundation
import TestSupport
import Testing

@testable import Trainer

/// Writes an IDX set in MNIST's file names into a fresh temporary folder.
struct IDXFixture {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "nas-idx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    static func imageFile(count: Int, rows: Int, columns: Int, magic: UInt32 = IDXFile.imageMagic) -> [UInt8] {
        var bytes = word(magic) + word(UInt32(count)) + word(UInt32(rows)) + word(UInt32(columns))
        bytes += (0..<(count * rows * columns)).map { UInt8(($0 * 37) % 256) }
        return bytes
    }

    static func labelFile(count: Int) -> [UInt8] {
        word(IDXFile.labelMagic) + word(UInt32(count)) + (0..<count).map { UInt8($0 % 10) }
    }

    static func word(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    func write(_ name: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + name))
    }

    /// A complete, valid raw set: `train` and `test` examples of 4x3 pixels.
    func writeValid(train: Int = 5, test: Int = 3) throws {
        try write("train-images-idx3-ubyte", Self.imageFile(count: train, rows: 4, columns: 3))
        try write("train-labels-idx1-ubyte", Self.labelFile(count: train))
        try write("t10k-images-idx3-ubyte", Self.imageFile(count: test, rows: 4, columns: 3))
        try write("t10k-labels-idx1-ubyte", Self.labelFile(count: test))
    }
}

/// Expects `body` to throw a `DatasetError` about `file` whose message contains `words`.
func expectDatasetError(file: String, _ words: [String], _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a DatasetError about \(file)")
    } catch let error as DatasetError {
        #expect(error.path.hasSuffix(file), "error names \(error.path), expected \(file)")
        #expect(error.description.contains(file), "message does not name the file: \(error)")
        for word in words {
            #expect(error.description.contains(word), "message lacks '\(word)': \(error)")
        }
    } catch {
        Issue.record("expected a DatasetError, got \(error)")
    }
}

@Suite struct IDXDatasetTests {
    @Test func loadsASliceOfFashionMNIST() throws {
        let data = try IDXDataset.load(trainLimit: 100, testLimit: 50)
        #expect(data.train.count == 100)
        #expect(data.test.count == 50)
        #expect(data.train.height == 28 && data.train.width == 28 && data.train.channels == 1)
        #expect(data.train.images.count == 100 * 784)
        #expect(data.train.images.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(data.train.images.contains { $0 == 1 })
        // Fashion-MNIST's first training image is an ankle boot (9), its first test image too.
        #expect(data.train.labels[0] == 9)
        #expect(data.test.labels[0] == 9)
        #expect(data.train.labels.allSatisfy { $0 < 10 })
    }

    @Test func readsRawFilesExactly() throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid(train: 5, test: 3)
        let data = try IDXDataset.load(directory: fixture.directory)
        #expect(data.train.count == 5 && data.test.count == 3)
        #expect(data.train.height == 4 && data.train.width == 3)
        #expect(data.train.labels == [0, 1, 2, 3, 4])
        #expect(data.train.images[1] == Float(37) / 255)
        #expect(data.train.images[13] == Float((13 * 37) % 256) / 255)
        let slice = try IDXDataset.load(directory: fixture.directory, trainLimit: 2, testLimit: 10)
        #expect(slice.train.count == 2 && slice.test.count == 3)
        #expect(slice.train.images == Array(data.train.images[0..<24]))
    }

    @Test func missingFileIsNamed() throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid()
        try FileManager.default.removeItem(atPath: fixture.directory + "/t10k-labels-idx1-ubyte")
        expectDatasetError(file: "t10k-labels-idx1-ubyte.gz", ["missing", "dataset-fashion-mnist"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
    }

    @Test func truncatedRawFileIsNamed() throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid(train: 5)
        let full = IDXFixture.imageFile(count: 5, rows: 4, columns: 3)
        try fixture.write("train-images-idx3-ubyte", Array(full.dropLast(7)))
        expectDatasetError(file: "train-images-idx3-ubyte", ["truncated", "76", "69"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
        // A slice that stops before the cut still loads.
        #expect(try IDXDataset.load(directory: fixture.directory, trainLimit: 4).train.count == 4)
        try fixture.write("train-images-idx3-ubyte", Array(full.prefix(10)))
        expectDatasetError(file: "train-images-idx3-ubyte", ["truncated", "header"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
    }

    @Test func truncatedGzipFileIsNamed() throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid()
        let real = try Data(
            contentsOf: URL(fileURLWithPath: IDXDataset.defaultDirectory + "/t10k-labels-idx1-ubyte.gz"))
        try FileManager.default.removeItem(atPath: fixture.directory + "/t10k-labels-idx1-ubyte")
        try FileManager.default.removeItem(atPath: fixture.directory + "/t10k-images-idx3-ubyte")
        try fixture.write("t10k-labels-idx1-ubyte.gz", Array(real.prefix(real.count / 2)))
        try FileManager.default.copyItem(
            atPath: IDXDataset.defaultDirectory + "/t10k-images-idx3-ubyte.gz",
            toPath: fixture.directory + "/t10k-images-idx3-ubyte.gz")
        expectDatasetError(file: "t10k-labels-idx1-ubyte.gz", ["truncated", "10000 labels"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
    }

    @Test func corruptGzipFileIsNamed() throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid()
        var real = try [UInt8](
            Data(contentsOf: URL(fileURLWithPath: IDXDataset.defaultDirectory + "/t10k-labels-idx1-ubyte.gz")))
        for index in stride(from: real.count / 3, to: real.count / 3 + 64, by: 1) { real[index] ^= 0x5a }
        try FileManager.default.removeItem(atPath: fixture.directory + "/t10k-labels-idx1-ubyte")
        try fixture.write("t10k-labels-idx1-ubyte.gz", real)
        // The real label file holds 10,000 labels; the fixture's images only 3, so keep counts equal by header.
        try fixture.write("t10k-images-idx3-ubyte", IDXFixture.imageFile(count: 10000, rows: 1, columns: 1))
        try fixture.write("train-images-idx3-ubyte", IDXFixture.imageFile(count: 5, rows: 1, columns: 1))
        expectDatasetError(file: "t10k-labels-idx1-ubyte.gz", ["cannot read", "damaged"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
    }

    @Test func badMagicIsNamed() throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid()
        // A label file where an image file belongs.
        try fixture.write("train-images-idx3-ubyte", IDXFixture.labelFile(count: 5))
        expectDatasetError(file: "train-images-idx3-ubyte", ["not an IDX image file", "0x00000801", "0x00000803"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
    }

    @Test func differentCountsAreAnError() throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid(train: 5)
        try fixture.write("train-labels-idx1-ubyte", IDXFixture.labelFile(count: 6))
        expectDatasetError(file: "train-labels-idx1-ubyte", ["5 images", "6 labels", "train-images-idx3-ubyte"]) {
            _ = try IDXDataset.load(directory: fixture.directory, trainLimit: 2)
        }
    }

    /// Sides whose product overflows 64 bits once made a trainer die with SIGILL.
    @Test func overflowingImageHeaderIsRefused() throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid()
        let huge = UInt32.max
        let header = [IDXFile.imageMagic, huge, huge, huge].flatMap(IDXFixture.word)
        try fixture.write("train-images-idx3-ubyte", header + [1, 2, 3])
        try fixture.write("train-labels-idx1-ubyte", [IDXFile.labelMagic, huge].flatMap(IDXFixture.word))
        expectDatasetError(file: "train-images-idx3-ubyte", ["impossible IDX header", "4294967295x4294967295"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
        // One side within bounds, the other past them: still refused, whichever way round.
        let tall = [IDXFile.imageMagic, 5, 1 << 25, 1].flatMap(IDXFixture.word)
        try fixture.write("train-images-idx3-ubyte", tall)
        try fixture.writeValid(train: 5)
        try fixture.write("train-images-idx3-ubyte", tall)
        expectDatasetError(file: "train-images-idx3-ubyte", ["33554432x1", "16777216"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
    }

    /// A header asking for terabytes (a trainer once aborted allocating 8.6 TB) costs only the bytes the file holds
    /// and is reported as truncated, raw or gzip-compressed.
    @Test func terabyteHeaderIsTruncationNotAllocation() async throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid()
        let count: UInt32 = 4_000_000
        let images = [IDXFile.imageMagic, count, 2048, 1050].flatMap(IDXFixture.word) + [UInt8](repeating: 7, count: 100)
        let labels = [IDXFile.labelMagic, count].flatMap(IDXFixture.word) + [UInt8](repeating: 1, count: 10)
        try fixture.write("train-images-idx3-ubyte", images)
        try fixture.write("train-labels-idx1-ubyte", labels)
        expectDatasetError(file: "train-images-idx3-ubyte", ["truncated", "8601600000016", "116"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
        // The same through gzip, where the size cannot be known before reading.
        try await TestSupport.run("/usr/bin/gzip", [fixture.directory + "/train-images-idx3-ubyte"])
        expectDatasetError(file: "train-images-idx3-ubyte.gz", ["truncated", "8601600000016", "116"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
        // Test images of one pixel each: 4 GB declared, none held.
        let billions: UInt32 = 4_000_000_000
        try fixture.write("train-images-idx3-ubyte", IDXFixture.imageFile(count: 5, rows: 4, columns: 3))
        try await TestSupport.run("/usr/bin/gzip", ["-f", fixture.directory + "/train-images-idx3-ubyte"])
        try fixture.write("train-labels-idx1-ubyte", IDXFixture.labelFile(count: 5))
        try fixture.write("t10k-labels-idx1-ubyte", [IDXFile.labelMagic, billions].flatMap(IDXFixture.word))
        try fixture.write(
            "t10k-images-idx3-ubyte", [IDXFile.imageMagic, billions, 1, 1].flatMap(IDXFixture.word))
        expectDatasetError(file: "t10k-images-idx3-ubyte", ["truncated", "4000000016", "16"]) {
            _ = try IDXDataset.load(directory: fixture.directory)
        }
    }

    /// Seeded random headers and bodies never crash the loader: each loads or throws a `DatasetError`.
    @Test func randomHeadersLoadOrThrow() throws {
        let fixture = try IDXFixture()
        defer { fixture.remove() }
        try fixture.writeValid()
        var random = SeededGenerator(seed: MobileNetArchitectureTests.fuzzSeed)
        let sizes: [UInt32] = [0, 1, 3, 28, 255, 1 << 12, 1 << 16, 1 << 24, 1 << 31, UInt32.max]
        var refused = 0
        for _ in 0..<300 {
            let words = (0..<3).map { _ in sizes.randomElement(using: &random)! }
            let body = (0..<Int.random(in: 0..<64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            try fixture.write(
                "train-images-idx3-ubyte", [IDXFile.imageMagic].flatMap(IDXFixture.word)
                    + words.flatMap(IDXFixture.word) + body)
            try fixture.write("train-labels-idx1-ubyte", [IDXFile.labelMagic, words[0]].flatMap(IDXFixture.word) + body)
            do {
                let data = try IDXDataset.load(directory: fixture.directory)
                #expect(data.train.images.count == data.train.count * Int(words[1]) * Int(words[2]))
            } catch is DatasetError {
                refused += 1
            }
        }
        #expect(refused > 0)
    }

    @Test func nonPositiveLimitIsAnError() {
        #expect(throws: DatasetError.self) { try IDXDataset.load(trainLimit: 0) }
    }
}
