import Foundation
import Testing

@testable import Fleet

/// A job folder with symbolic links a trainer (or anyone who can write there) might leave: links out of the
/// folder, to a file and to a folder, and two `ln -s . loop` links.
struct LinkedJobFolder {
    let job: String
    let outside: String

    init() throws {
        job = StorageTestSupport.temporaryFolder("nas-links-job")
        outside = StorageTestSupport.temporaryFolder("nas-links-outside")
        let files = FileManager.default
        try files.createDirectory(atPath: job + "/1/saved_model", withIntermediateDirectories: true)
        try Data("real model".utf8).write(to: URL(fileURLWithPath: job + "/1/saved_model/model.onnx"))
        try files.createDirectory(atPath: outside + "/saved_model", withIntermediateDirectories: true)
        try Data("secret".utf8).write(to: URL(fileURLWithPath: outside + "/saved_model/model.onnx"))
        // Trial 2's saved_model is a link to a folder outside; trial 3's model a link to a file outside.
        try files.createDirectory(atPath: job + "/2", withIntermediateDirectories: true)
        try files.createSymbolicLink(atPath: job + "/2/saved_model", withDestinationPath: outside + "/saved_model")
        try files.createDirectory(atPath: job + "/3/saved_model", withIntermediateDirectories: true)
        try files.createSymbolicLink(
            atPath: job + "/3/saved_model/model.onnx", withDestinationPath: outside + "/saved_model/model.onnx")
        // Trial 4 is a link to the whole outside folder.
        try files.createSymbolicLink(atPath: job + "/4", withDestinationPath: outside)
        // Two loops at the top and two inside trial 1: a walk that follows them visits 2^40 paths.
        for folder in [job, job + "/1"] {
            try files.createSymbolicLink(atPath: folder + "/loop", withDestinationPath: ".")
            try files.createSymbolicLink(atPath: folder + "/loop2", withDestinationPath: ".")
        }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: job)
        try? FileManager.default.removeItem(atPath: outside)
    }
}

/// Expects `body` to throw the storage error about a symbolic link at `path`.
func expectSymbolicLinkError(_ path: String, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a symbolic-link error about \(path)")
    } catch let error as StorageError {
        #expect(error == StorageError.symbolicLink(path), "\(error)")
        #expect(error.description.contains("symbolic link") && error.description.contains("replace the link"))
    } catch {
        Issue.record("expected a StorageError, got \(error)")
    }
}

@Suite("Local job folders never follow symbolic links", .timeLimit(.minutes(1)))
struct LocalStorageTests {
    @Test("a listing skips links and is not trapped by link loops")
    func listingSkipsLinks() throws {
        let folder = try LinkedJobFolder()
        defer { folder.remove() }
        let storage = try LocalStorage(root: folder.job)
        #expect(try storage.list(prefix: "") == ["1/saved_model/model.onnx"])
        #expect(try storage.list(prefix: "1/") == ["1/saved_model/model.onnx"])
        #expect(try storage.list(prefix: "2/saved_model/") == [])
        #expect(try storage.list(prefix: "4/") == [])
    }

    @Test("reads through a link are refused with the link's path; exists says no")
    func readsRefuseLinks() throws {
        let folder = try LinkedJobFolder()
        defer { folder.remove() }
        let storage = try LocalStorage(root: folder.job)
        #expect(try storage.read("1/saved_model/model.onnx")?.data == Array("real model".utf8))
        expectSymbolicLinkError(folder.job + "/2/saved_model") { _ = try storage.read("2/saved_model/model.onnx") }
        expectSymbolicLinkError(folder.job + "/3/saved_model/model.onnx") {
            _ = try storage.read("3/saved_model/model.onnx")
        }
        expectSymbolicLinkError(folder.job + "/4") { _ = try storage.read("4/saved_model/model.onnx") }
        expectSymbolicLinkError(folder.job + "/loop") { _ = try storage.read("loop/1/saved_model/model.onnx") }
        #expect(try storage.exists("3/saved_model/model.onnx") == false)
        #expect(throws: StorageError.symbolicLink(folder.job + "/2/saved_model")) {
            try storage.exists("2/saved_model/model.onnx")
        }
    }

    @Test("writes, claims and swaps through a link are refused and leave the outside untouched")
    func writesRefuseLinks() throws {
        let folder = try LinkedJobFolder()
        defer { folder.remove() }
        let storage = try LocalStorage(root: folder.job)
        let outsideFolder = folder.outside + "/saved_model"
        expectSymbolicLinkError(folder.job + "/2/saved_model") {
            try storage.write("2/saved_model/model_latency.json", data: [1])
        }
        expectSymbolicLinkError(folder.job + "/2/saved_model") {
            _ = try storage.createIfAbsent("2/saved_model/latency_worker_id.json", data: [1])
        }
        expectSymbolicLinkError(folder.job + "/4") {
            _ = try storage.compareAndSwap("4/saved_model/model.onnx", data: [1], ifGeneration: 0)
        }
        expectSymbolicLinkError(folder.job + "/4") { try storage.delete("4/saved_model/model.onnx") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: outsideFolder) == ["model.onnx"])
        #expect(try String(contentsOfFile: outsideFolder + "/model.onnx", encoding: .utf8) == "secret")
        // A write over a link to a file replaces the link itself, never the file it points to.
        try storage.write("3/saved_model/model.onnx", data: Array("replaced".utf8))
        #expect(try storage.read("3/saved_model/model.onnx")?.data == Array("replaced".utf8))
        #expect(try String(contentsOfFile: outsideFolder + "/model.onnx", encoding: .utf8) == "secret")
    }
}
