import Foundation

/// The bytes of a stored object and the generation they belong to.
public struct StoredObject: Sendable, Hashable {
    /// The object's content.
    public var data: [UInt8]
    /// An opaque version number: it changes on every write, and compare-and-swap takes it back.
    public var generation: Int64

    /// Wraps a content and its generation.
    public init(data: [UInt8], generation: Int64) {
        self.data = data
        self.generation = generation
    }
}

/// A flat store of objects named by relative, `/`-separated keys: the job directory of the file exchange.
///
/// Two backends: a local folder (``LocalStorage``) and a Google Cloud Storage bucket and prefix
/// (``GCSStorage``); ``InMemoryStorage`` has their semantics for unit tests. Calls block the calling thread for the duration of one round trip (like `FileManager`);
/// every key is checked with ``StorageKey/validate(_:)`` so that no call reaches outside the job directory.
public protocol ObjectStorage: Sendable {
    /// Where the objects live, as the user wrote it (`/path` or `gs://bucket/prefix`).
    var location: String { get }

    /// The object at `key`, or nil when there is none.
    func read(_ key: String) throws -> StoredObject?

    /// Writes (or overwrites) `key` so that readers see either the old or the whole new content; returns the
    /// new generation.
    @discardableResult
    func write(_ key: String, data: [UInt8]) throws -> Int64

    /// Whether an object exists at `key`.
    func exists(_ key: String) throws -> Bool

    /// Every key under `prefix` (a key prefix, e.g. `"12/"`; empty for all), recursively, sorted.
    func list(prefix: String) throws -> [String]

    /// Removes `key`; removing an absent object is not an error.
    func delete(_ key: String) throws

    /// Creates `key` only if no object exists there; returns the new generation, or nil when another
    /// writer got there first.
    func createIfAbsent(_ key: String, data: [UInt8]) throws -> Int64?

    /// Replaces `key` only if its current generation is `generation`; returns the new generation, or nil when
    /// the object changed (or vanished) since it was read.
    func compareAndSwap(_ key: String, data: [UInt8], ifGeneration generation: Int64) throws -> Int64?
}

/// The rules of keys inside a job directory.
public enum StorageKey {
    /// Checks that `key` is relative, non-empty, `/`-separated and free of `.`, `..` and empty components,
    /// so that it names an object inside the job directory and nothing else.
    public static func validate(_ key: String) throws {
        if key.isEmpty { throw StorageError.invalidKey(key, "it is empty") }
        if key.hasPrefix("/") { throw StorageError.invalidKey(key, "it is absolute") }
        if key.utf8.contains(0) { throw StorageError.invalidKey(key, "it contains a NUL byte") }
        if key.contains("\\") { throw StorageError.invalidKey(key, "it contains a backslash") }
        for component in key.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty {
                throw StorageError.invalidKey(key, "it has an empty component ('//' or a trailing '/')")
            }
            if component == ".." { throw StorageError.invalidKey(key, "it tries to leave the job directory with '..'") }
            if component == "." { throw StorageError.invalidKey(key, "it has a '.' component") }
        }
    }

    /// Checks a listing prefix: empty, or a key optionally followed by `/`.
    public static func validatePrefix(_ prefix: String) throws {
        if prefix.isEmpty { return }
        try validate(prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix)
    }
}

/// A parsed job directory: a local folder or a GCS bucket with an optional prefix.
public enum StorageLocation: Hashable, Sendable {
    /// A local folder (absolute or relative to the current directory).
    case local(path: String)
    /// `gs://bucket/prefix`; the prefix has no leading or trailing `/` and may be empty.
    case gcs(bucket: String, prefix: String)

    /// Parses `gs://bucket[/prefix]` or a local path; a `gs:` URL with a bad bucket name is a typed error.
    public static func parse(_ text: String) throws -> StorageLocation {
        if text.isEmpty { throw StorageError.invalidLocation(text, "it is empty") }
        let lower = text.lowercased()
        guard lower.hasPrefix("gs:") else {
            if text.contains("://") {
                throw StorageError.invalidLocation(text, "only gs:// URLs and local paths are supported")
            }
            return .local(path: text)
        }
        guard lower.hasPrefix("gs://") else {
            throw StorageError.invalidLocation(text, "a Cloud Storage URL starts with 'gs://'")
        }
        let rest = text.dropFirst(5)
        let slash = rest.firstIndex(of: "/")
        let bucket = String(slash.map { rest[..<$0] } ?? rest)
        var prefix = slash.map { String(rest[rest.index(after: $0)...]) } ?? ""
        while prefix.hasSuffix("/") { prefix.removeLast() }
        try validateBucket(bucket, in: text)
        if !prefix.isEmpty {
            do { try StorageKey.validate(prefix) } catch let error as StorageError {
                throw StorageError.invalidLocation(text, "the prefix is not a valid path (\(error.message))")
            }
        }
        return .gcs(bucket: bucket, prefix: prefix)
    }

    /// Google's bucket naming rules (3-63 characters of a-z, 0-9, '-', '_', '.', starting and ending with a
    /// letter or digit); dotted names may reach 222 characters.
    private static func validateBucket(_ bucket: String, in text: String) throws {
        if bucket.isEmpty { throw StorageError.invalidLocation(text, "the bucket name is missing") }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
        if let bad = bucket.first(where: { !allowed.contains($0) }) {
            throw StorageError.invalidLocation(
                text, "bucket name '\(bucket)' contains '\(bad)' (lower-case letters, digits, '-', '_', '.' only)")
        }
        let limit = bucket.contains(".") ? 222 : 63
        if bucket.count < 3 || bucket.count > limit {
            throw StorageError.invalidLocation(text, "bucket name '\(bucket)' must be 3 to \(limit) characters")
        }
        let alnum = Set("abcdefghijklmnopqrstuvwxyz0123456789")
        if !alnum.contains(bucket.first!) || !alnum.contains(bucket.last!) {
            throw StorageError.invalidLocation(
                text, "bucket name '\(bucket)' must start and end with a letter or digit")
        }
    }

    /// Opens the storage this location names; GCS picks its endpoint and credentials from the environment.
    public func open(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> any ObjectStorage {
        switch self {
        case .local(let path):
            return try LocalStorage(root: path)
        case .gcs(let bucket, let prefix):
            return try GCSStorage(bucket: bucket, prefix: prefix, configuration: .fromEnvironment(environment))
        }
    }
}
