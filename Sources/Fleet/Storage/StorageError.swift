/// Why a storage operation failed: what was wrong, where, and what to do about it.
public struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case invalidLocation
        case invalidKey
        case bucketNotFound
        case permissionDenied
        case http
        case transport
        case io
        case symbolicLink
        case auth
    }

    private let code: Code
    private let transient: Bool
    /// The readable explanation.
    public let message: String

    private init(_ code: Code, _ message: String, transient: Bool = false) {
        self.code = code
        self.message = message
        self.transient = transient
    }

    public var description: String { message }

    /// Whether retrying the same call later may succeed (server overload, outage, network).
    public var isTransient: Bool { transient }

    /// Whether the error names a bad key or location: a caller's mistake, never worth a retry.
    public var isInvalidInput: Bool { code == .invalidKey || code == .invalidLocation }

    /// A job directory that is neither a local path nor a well-formed `gs://bucket/prefix` URL.
    public static func invalidLocation(_ location: String, _ reason: String) -> StorageError {
        StorageError(
            .invalidLocation,
            "invalid job directory '\(location)': \(reason); give a local folder or gs://BUCKET[/PREFIX]"
        )
    }

    /// A key (a path inside the job directory) that is empty, absolute or tries to leave the job directory.
    public static func invalidKey(_ key: String, _ reason: String) -> StorageError {
        StorageError(
            .invalidKey,
            "invalid path '\(key)' inside the job directory: \(reason); paths are relative, '/'-separated, "
                + "without '.' or '..' components"
        )
    }

    /// The bucket does not exist (or the emulator does not have it).
    public static func bucketNotFound(_ bucket: String) -> StorageError {
        StorageError(
            .bucketNotFound,
            "bucket '\(bucket)' does not exist or cannot be listed; check the gs:// URL (create the bucket first)"
        )
    }

    /// The credentials do not allow the operation.
    public static func permissionDenied(_ what: String, status: Int, _ detail: String) -> StorageError {
        StorageError(
            .permissionDenied,
            "\(what): HTTP \(status) \(detail); the credentials in use lack access (check "
                + "GOOGLE_OAUTH_ACCESS_TOKEN, `gcloud auth application-default login` or the VM's service account)"
        )
    }

    /// A response the client did not expect.
    static func http(_ what: String, status: Int, _ detail: String, transient: Bool = false) -> StorageError {
        StorageError(.http, "\(what): HTTP \(status) \(detail)", transient: transient)
    }

    /// The request did not reach the server or got no complete answer.
    static func transport(_ what: String, _ detail: String) -> StorageError {
        StorageError(.transport, "\(what): \(detail); is the storage endpoint reachable?", transient: true)
    }

    /// A local file-system call failed.
    static func io(_ what: String, path: String, errno code: Int32) -> StorageError {
        StorageError(.io, "\(what) '\(path)' failed: \(String(cString: strerror(code))) (errno \(code))")
    }

    /// A symbolic link inside a local job folder, which is never followed (it could lead out of the folder).
    public static func symbolicLink(_ path: String) -> StorageError {
        StorageError(
            .symbolicLink,
            "'\(path)' is a symbolic link; a job folder's trials must be real files and folders inside it (links "
                + "are not followed, as they could lead out of the job folder): replace the link by the file or "
                + "folder itself")
    }

    /// No usable credentials, or the token endpoint refused them.
    static func auth(_ detail: String) -> StorageError {
        StorageError(.auth, "cannot get Google Cloud credentials: \(detail)")
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
