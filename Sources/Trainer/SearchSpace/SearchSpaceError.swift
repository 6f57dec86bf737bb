/// An error from reading a search space, a choice, or a trial's `nas_params_str.json`.
public struct SearchSpaceError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case invalidSpace
        case unknownSpace
        case invalidChoice
        case notAnArchitecture
        case tooLarge
        case nothingToMutate
        case unreadableFile
    }

    private let code: Code
    /// The readable explanation.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The readable explanation (the same as `message`).
    public var description: String { message }

    /// The search space's JSON breaks a rule of the format; `at` is a JSON path such as `$[0].filters`.
    public static func invalidSpace(at path: String, _ reason: String) -> SearchSpaceError {
        SearchSpaceError(
            .invalidSpace,
            "invalid search space at \(path): \(reason) (write a decision as {\"one_of\": [..]} or "
                + "{\"sublist_of\": [..], \"k\": K}; see SearchSpace's documentation)")
    }

    /// No built-in search space has this name.
    public static func unknownSpace(_ name: String, known: [String]) -> SearchSpaceError {
        SearchSpaceError(
            .unknownSpace,
            "unknown search space '\(name)': give a JSON file's path or one of the built-in names: "
                + known.joined(separator: ", "))
    }

    /// A list of decisions that does not fit the space.
    public static func invalidChoice(_ decisions: [Int], _ reason: String) -> SearchSpaceError {
        SearchSpaceError(.invalidChoice, "choice \(decisions) does not fit the search space: \(reason)")
    }

    /// A chosen value that is not a list of conv layers.
    public static func notAnArchitecture(_ value: String, _ reason: String) -> SearchSpaceError {
        SearchSpaceError(
            .notAnArchitecture,
            "the chosen value \(value) is not a built-in architecture: \(reason); a CNN is a list of layers such as "
                + "[{\"kernel_size\": 3, \"filters\": 4}, ...] (or {\"layers\": [...]}), a MobileNet an object "
                + "{\"stages\": [{\"filters\": F, \"stride\": S, \"blocks\": [...]}, ...]} (docs/search-space.md)")
    }

    /// Enumerating the space would produce too many choices.
    public static func tooLarge(size: Int, limit: Int) -> SearchSpaceError {
        SearchSpaceError(
            .tooLarge,
            "the search space holds \(size == Int.max ? "more than \(Int.max)" : String(size)) architectures, more "
                + "than the enumeration limit \(limit); sample it instead, or raise the limit")
    }

    /// A space with a single architecture has no neighbour to mutate into.
    public static func nothingToMutate(_ decisions: [Int]) -> SearchSpaceError {
        SearchSpaceError(
            .nothingToMutate,
            "choice \(decisions) cannot be mutated: every decision of the search space has a single option")
    }

    /// A file that could not be read or parsed.
    public static func unreadableFile(_ path: String, _ reason: String) -> SearchSpaceError {
        SearchSpaceError(.unreadableFile, "cannot read '\(path)': \(reason)")
    }
}
