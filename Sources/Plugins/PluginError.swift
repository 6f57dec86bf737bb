/// Why a constraint plugin could not be loaded or used. Each says what failed and what to do.
public struct PluginError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kinds of failure, for callers that branch on them.
    public enum Code: Hashable, Sendable {
        case fileMissing
        case notLoadable
        case entrySymbolMissing
        case nullDescriptor
        case abiTooOld
        case abiTooNew
        case descriptorTooSmall
        case invalidName
        case duplicateName
        case directoryUnreadable
        case callFailed
    }

    /// What kind of failure this is.
    public let code: Code
    /// The plugin file or directory concerned.
    public let path: String
    /// The readable explanation.
    public let message: String

    init(_ code: Code, _ path: String, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
