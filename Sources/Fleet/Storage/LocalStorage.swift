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
///
/// Symbolic links below the root are never followed: a trainer's folder could otherwise lead a worker out of the
/// job folder (`saved_model -> /etc`) or trap its listing in a loop (`ln -s . loop`). Listings skip them; every
/// other call reaches its key one folder at a time with `openat(O_NOFOLLOW)` and refuses a link on the way with
/// ``StorageError/symbolicLink(_:)``, so a link swapped in after a listing is refused too. The root itself may be
/// a link.
public struct LocalStorage: ObjectStorage {
    /// The folder all keys are relative to.
    public let root: String

    public var location: String { root }

    /// Opens (and creates if needed) the folder `root`.
    public init(root: String) throws {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
        var info = stat()
        if stat(root, &info) != 0 {
            do {
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            } catch {
                throw StorageError.io("creating the folder", path: root, errno: errno == 0 ? EIO : errno)
            }
        }
    }

    public func read(_ key: String) throws -> StoredObject? {
        guard let folder = try Folder(root: root, key: key, create: false) else { return nil }
        let path = folder.path
        let fd = openat(folder.fd, folder.name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            if errno == ELOOP { throw StorageError.symbolicLink(path) }
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
        let folder = try Folder(root: root, key: key, create: true)!
        let temporary = try folder.writeTemporary(data)
        guard renameat(folder.fd, temporary, folder.fd, folder.name) == 0 else {
            let code = errno
            unlinkat(folder.fd, temporary, 0)
            throw StorageError.io("renaming into", path: folder.path, errno: code)
        }
        return try folder.generation() ?? 0
    }

    public func exists(_ key: String) throws -> Bool {
        guard let folder = try Folder(root: root, key: key, create: false) else { return false }
        var info = stat()
        if fstatat(folder.fd, folder.name, &info, AT_SYMLINK_NOFOLLOW) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return false }
            throw StorageError.io("checking", path: folder.path, errno: errno)
        }
        return (info.st_mode & S_IFMT) == S_IFREG
    }

    public func list(prefix: String) throws -> [String] {
        try StorageKey.validatePrefix(prefix)
        // Walk only the deepest folder the prefix names, not the whole job directory.
        let folder = prefix.lastIndex(of: "/").map { String(prefix[..<$0]) } ?? ""
        var keys = [String]()
        if folder.isEmpty {
            let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd < 0 {
                if errno == ENOENT || errno == ENOTDIR { return [] }
                throw StorageError.io("listing", path: root, errno: errno)
            }
            try walk(fd, "", into: &keys)
        } else {
            // The prefix's folders are reached as keys are: without following a link.
            guard let parent = try Folder(root: root, key: folder, create: false) else { return [] }
            let fd = openat(parent.fd, parent.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            if fd < 0 {
                if errno == ENOENT || errno == ENOTDIR || errno == ELOOP { return [] }
                throw StorageError.io("listing", path: parent.path, errno: errno)
            }
            try walk(fd, folder, into: &keys)
        }
        return keys.filter { $0.hasPrefix(prefix) }.sorted()
    }

    /// Lists the folder open at `fd` (which it closes), descending into real folders only: a symbolic link is
    /// neither listed nor followed, so a link cannot lead out of the root or round in a loop.
    private func walk(_ fd: Int32, _ folder: String, into keys: inout [String]) throws {
        guard let directory = fdopendir(fd) else {
            let code = errno
            close(fd)
            throw StorageError.io("listing", path: root + "/" + folder, errno: code)
        }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }
            let key = folder.isEmpty ? name : folder + "/" + name
            var info = stat()
            guard fstatat(dirfd(directory), name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }  // removed
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                let child = openat(dirfd(directory), name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
                if child < 0 { continue }  // removed or replaced while we looked
                try walk(child, key, into: &keys)
            case S_IFREG: keys.append(key)
            default: continue
            }
        }
    }

    public func delete(_ key: String) throws {
        guard let folder = try Folder(root: root, key: key, create: false) else { return }
        try folder.withLock {
            if unlinkat(folder.fd, folder.name, 0) != 0 && errno != ENOENT && errno != ENOTDIR {
                throw StorageError.io("deleting", path: folder.path, errno: errno)
            }
        }
    }

    public func createIfAbsent(_ key: String, data: [UInt8]) throws -> Int64? {
        let folder = try Folder(root: root, key: key, create: true)!
        let temporary = try folder.writeTemporary(data)
        defer { unlinkat(folder.fd, temporary, 0) }
        if linkat(folder.fd, temporary, folder.fd, folder.name, 0) == 0 { return try folder.generation() }
        let code = errno
        if code == EEXIST { return nil }
        guard code == EPERM || code == ENOTSUP || code == EXDEV || code == EMLINK else {
            throw StorageError.io("creating", path: folder.path, errno: code)
        }
        return try folder.createExclusive(data)
    }

    public func compareAndSwap(_ key: String, data: [UInt8], ifGeneration generation: Int64) throws -> Int64? {
        let folder = try Folder(root: root, key: key, create: true)!
        return try folder.withLock {
            guard let current = try folder.generation(), current == generation else { return nil }
            let temporary = try folder.writeTemporary(data)
            guard renameat(folder.fd, temporary, folder.fd, folder.name) == 0 else {
                let code = errno
                unlinkat(folder.fd, temporary, 0)
                throw StorageError.io("renaming into", path: folder.path, errno: code)
            }
            return try folder.generation()
        }
    }

    static func generation(_ info: stat) -> Int64 {
        let nanoseconds = Int64(info.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(info.st_mtim.tv_nsec)
        let mixed = UInt64(info.st_ino) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(bitPattern: nanoseconds)
        return Int64(bitPattern: mixed & 0x7FFF_FFFF_FFFF_FFFF)
    }
}

/// The folder holding one key, open as a descriptor reached from the root one component at a time without
/// following a symbolic link, and the key's last component: every call on the key goes through `*at` calls on it.
private final class Folder {
    let fd: Int32
    let name: String
    /// The key's path, for messages.
    let path: String

    /// Opens the folder of `key` under `root`; nil when a folder on the way does not exist and `create` is false
    /// (with `create`, missing folders are made). A symbolic link on the way is ``StorageError/symbolicLink(_:)``.
    init?(root: String, key: String, create: Bool) throws {
        try StorageKey.validate(key)
        path = root + "/" + key
        var components = key.split(separator: "/").map(String.init)
        name = components.removeLast()
        var current = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if current < 0 {
            if !create && (errno == ENOENT || errno == ENOTDIR) { return nil }
            throw StorageError.io("opening the folder", path: root, errno: errno)
        }
        var reached = root
        for component in components {
            reached += "/" + component
            var next = openat(current, component, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(current, component, 0o755) != 0 && errno != EEXIST {
                    let code = errno
                    close(current)
                    throw StorageError.io("creating the folder", path: reached, errno: code)
                }
                next = openat(current, component, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
            }
            if next < 0 {
                let code = errno
                var info = stat()
                let isLink =
                    fstatat(current, component, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
                close(current)
                if isLink { throw StorageError.symbolicLink(reached) }
                if !create && (code == ENOENT || code == ENOTDIR) { return nil }
                throw StorageError.io("opening the folder", path: reached, errno: code)
            }
            close(current)
            current = next
        }
        fd = current
    }

    deinit { close(fd) }

    /// The generation of the key, nil when it does not exist; a link at the key is looked at, not followed.
    func generation() throws -> Int64? {
        var info = stat()
        if fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw StorageError.io("checking", path: path, errno: errno)
        }
        return LocalStorage.generation(info)
    }

    /// Runs `body` holding the key's hidden lock file.
    func withLock<T>(_ body: () throws -> T) throws -> T {
        let lockName = "." + name + ".lock"
        let lock = openat(fd, lockName, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard lock >= 0 else { throw StorageError.io("opening the lock file", path: path + ".lock", errno: errno) }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            if errno != EINTR { throw StorageError.io("locking", path: path + ".lock", errno: errno) }
        }
        defer { flock(lock, LOCK_UN) }
        return try body()
    }

    /// Writes `data` to a new hidden file beside the key and returns its name.
    func writeTemporary(_ data: [UInt8]) throws -> String {
        let temporary = ".\(name).tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let file = openat(fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard file >= 0 else {
            throw StorageError.io("creating", path: String(path[...path.lastIndex(of: "/")!]) + temporary, errno: errno)
        }
        do {
            try writeAll(file, data)
        } catch {
            close(file)
            unlinkat(fd, temporary, 0)
            throw error
        }
        close(file)
        return temporary
    }

    /// The `O_EXCL` path, for file systems without hard links: a reader may briefly see a short file.
    func createExclusive(_ data: [UInt8]) throws -> Int64? {
        // O_CREAT | O_EXCL never follows a link at the key: an existing link is EEXIST.
        let file = openat(fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if file < 0 {
            if errno == EEXIST { return nil }
            throw StorageError.io("creating", path: path, errno: errno)
        }
        defer { close(file) }
        try writeAll(file, data)
        var info = stat()
        guard fstat(file, &info) == 0 else { throw StorageError.io("creating", path: path, errno: errno) }
        return LocalStorage.generation(info)
    }

    private func writeAll(_ file: Int32, _ data: [UInt8]) throws {
        var offset = 0
        while offset < data.count {
            let count = data.withUnsafeBytes { Glibc.write(file, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0 {
                if errno == EINTR { continue }
                throw StorageError.io("writing", path: path, errno: errno)
            }
            offset += count
        }
    }
}
