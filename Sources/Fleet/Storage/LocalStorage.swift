import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A job directory in a local (or network-mounted) folder.
///
/// Writes go to a hidden temporary file in the same folder and are renamed over the target, so a reader sees
/// the old or the whole new content. Create-if-absent hard-links the finished temporary file to the target
/// (atomic like `O_EXCL`, and no reader ever sees an empty claim), falling back to `O_CREAT|O_EXCL` where the
/// file system has no hard links. Compare-and-swap holds an `flock` on a hidden per-key lock file while it
/// compares and renames; the kernel drops the lock when its holder dies, so a killed worker blocks nobody.
/// The generation is derived from the file's inode and modification time in nanoseconds.
/// Hidden entries (names starting with `.`: temporary and lock files) are not listed.
public struct LocalStorage: ObjectStorage {
    /// The folder all keys are relative to.
    public let root: String

    public var location: String { root }

    /// Opens (and creates if needed) the folder `root`.
    public init(root: String) throws {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
        try Self.makeDirectories(root)
    }

    private func path(_ key: String) throws -> String {
        try StorageKey.validate(key)
        return root + "/" + key
    }

    public func read(_ key: String) throws -> StoredObject? {
        let path = try path(key)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw StorageError.io("opening", path: path, errno: errno)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StorageError.io("reading", path: path, errno: errno) }
        if (info.st_mode & S_IFMT) == S_IFDIR { return nil }
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw StorageError.io("reading", path: path, errno: errno)
            }
            if count == 0 { break }
            data.append(contentsOf: chunk[0..<count])
        }
        return StoredObject(data: data, generation: Self.generation(info))
    }

    @discardableResult
    public func write(_ key: String, data: [UInt8]) throws -> Int64 {
        let path = try path(key)
        let temporary = try writeTemporary(for: path, data: data)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw StorageError.io("renaming into", path: path, errno: code)
        }
        return try currentGeneration(path) ?? 0
    }

    public func exists(_ key: String) throws -> Bool {
        let path = try path(key)
        var info = stat()
        if stat(path, &info) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return false }
            throw StorageError.io("checking", path: path, errno: errno)
        }
        return (info.st_mode & S_IFMT) == S_IFREG
    }

    public func list(prefix: String) throws -> [String] {
        try StorageKey.validatePrefix(prefix)
        // Walk only the deepest folder the prefix names, not the whole job directory.
        let folder = prefix.lastIndex(of: "/").map { String(prefix[..<$0]) } ?? ""
        var keys = [String]()
        try walk(folder, into: &keys)
        return keys.filter { $0.hasPrefix(prefix) }.sorted()
    }

    private func walk(_ folder: String, into keys: inout [String]) throws {
        let path = folder.isEmpty ? root : root + "/" + folder
        guard let directory = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return }
            throw StorageError.io("listing", path: path, errno: errno)
        }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }
            let key = folder.isEmpty ? name : folder + "/" + name
            var info = stat()
            guard stat(root + "/" + key, &info) == 0 else { continue }  // removed while we looked
            switch info.st_mode & S_IFMT {
            case S_IFDIR: try walk(key, into: &keys)
            case S_IFREG: keys.append(key)
            default: continue
            }
        }
    }

    public func delete(_ key: String) throws {
        let path = try path(key)
        try withLock(path) {
            if unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR {
                throw StorageError.io("deleting", path: path, errno: errno)
            }
        }
    }

    public func createIfAbsent(_ key: String, data: [UInt8]) throws -> Int64? {
        let path = try path(key)
        let temporary = try writeTemporary(for: path, data: data)
        defer { unlink(temporary) }
        if link(temporary, path) == 0 { return try currentGeneration(path) }
        let code = errno
        if code == EEXIST { return nil }
        guard code == EPERM || code == ENOTSUP || code == EXDEV || code == EMLINK else {
            throw StorageError.io("creating", path: path, errno: code)
        }
        return try createExclusive(path, data: data)
    }

    /// The `O_EXCL` path, for file systems without hard links: a reader may briefly see a short file.
    private func createExclusive(_ path: String, data: [UInt8]) throws -> Int64? {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            if errno == EEXIST { return nil }
            throw StorageError.io("creating", path: path, errno: errno)
        }
        defer { close(fd) }
        try writeAll(fd, data, path: path)
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StorageError.io("creating", path: path, errno: errno) }
        return Self.generation(info)
    }

    public func compareAndSwap(_ key: String, data: [UInt8], ifGeneration generation: Int64) throws -> Int64? {
        let path = try path(key)
        return try withLock(path) {
            guard let current = try currentGeneration(path), current == generation else { return nil }
            let temporary = try writeTemporary(for: path, data: data)
            guard rename(temporary, path) == 0 else {
                let code = errno
                unlink(temporary)
                throw StorageError.io("renaming into", path: path, errno: code)
            }
            return try currentGeneration(path)
        }
    }

    // MARK: helpers

    private func withLock<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let slash = path.lastIndex(of: "/")!
        let lockPath = String(path[...slash]) + "." + String(path[path.index(after: slash)...]) + ".lock"
        try Self.makeDirectories(String(path[..<slash]))
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StorageError.io("opening the lock file", path: lockPath, errno: errno) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw StorageError.io("locking", path: lockPath, errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    private func writeTemporary(for path: String, data: [UInt8]) throws -> String {
        let slash = path.lastIndex(of: "/")!
        try Self.makeDirectories(String(path[..<slash]))
        let name = String(path[path.index(after: slash)...])
        let temporary = String(path[...slash]) + ".\(name).tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StorageError.io("creating", path: temporary, errno: errno) }
        do {
            try writeAll(fd, data, path: temporary)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        return temporary
    }

    private func writeAll(_ fd: Int32, _ data: [UInt8], path: String) throws {
        var offset = 0
        while offset < data.count {
            let count = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0 {
                if errno == EINTR { continue }
                throw StorageError.io("writing", path: path, errno: errno)
            }
            offset += count
        }
    }

    private func currentGeneration(_ path: String) throws -> Int64? {
        var info = stat()
        if stat(path, &info) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw StorageError.io("checking", path: path, errno: errno)
        }
        return Self.generation(info)
    }

    private static func generation(_ info: stat) -> Int64 {
        let nanoseconds = Int64(info.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(info.st_mtim.tv_nsec)
        let mixed = UInt64(info.st_ino) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(bitPattern: nanoseconds)
        return Int64(bitPattern: mixed & 0x7FFF_FFFF_FFFF_FFFF)
    }

    private static func makeDirectories(_ path: String) throws {
        if path.isEmpty { return }
        var info = stat()
        if stat(path, &info) == 0 { return }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StorageError.io("creating the folder", path: path, errno: errno == 0 ? EIO : errno)
        }
    }
}
