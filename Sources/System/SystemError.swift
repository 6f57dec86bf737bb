import Glibc

/// A failed system call: what was attempted, on which path, and the kernel's reason.
///
/// Its description reads e.g. `cannot start '/opt/bench/run': No such file or directory (errno 2)`.
public struct SystemError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An errno value, compared through its named members.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate let value: Int32

        /// The code of an errno value.
        public init(errno value: Int32) { self.value = value }

        /// ENOENT: no such file or directory.
        public static let notFound = Code(errno: ENOENT)
        /// EACCES: permission denied.
        public static let permissionDenied = Code(errno: EACCES)
        /// ESRCH: no such process.
        public static let noSuchProcess = Code(errno: ESRCH)
        /// ECHILD: not a child of this process (or already reaped).
        public static let noChild = Code(errno: ECHILD)
        /// EINTR: interrupted by a signal.
        public static let interrupted = Code(errno: EINTR)
        /// EAGAIN: the call would block, or a resource is exhausted for now.
        public static let wouldBlock = Code(errno: EAGAIN)

        /// The kernel's text for the code, e.g. `No such file or directory`.
        public var description: String { String(cString: strerror(value)) }
    }

    private let errnoValue: Int32
    /// The operation that failed, as a verb phrase: `start`, `open`, `create a pipe`.
    public let operation: String
    /// The file or program it concerned, if any.
    public let path: String?

    /// The error of `operation` on `path`; `errno` defaults to the calling thread's current value.
    public init(_ operation: String, path: String? = nil, errno code: Int32 = errno) {
        self.errnoValue = code
        self.operation = operation
        self.path = path
    }

    /// Why it failed.
    public var code: Code { Code(errno: errnoValue) }

    /// `cannot OPERATION 'PATH': REASON (errno N)`.
    public var description: String {
        let target = path.map { " '\($0)'" } ?? ""
        return "cannot \(operation)\(target): \(code) (errno \(errnoValue))"
    }
}
