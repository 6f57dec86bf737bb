import Constraints
import Foundation

/// One architecture picked from a `SearchSpace`: the index chosen at each decision, in a fixed order.
///
/// The order is depth-first over the space: lists in order, dicts in their keys' written order; a `one_of`
/// contributes the chosen candidate's index followed by that candidate's own decisions; a `sublist_of` contributes,
/// slot after slot, the chosen candidate's index followed by its decisions. This is PyGlove's DNA, flattened: a
/// compact, stable form that regularized evolution mutates and that `nas_params_str.json` stores.
public struct SearchChoice: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The chosen index at each decision, depth-first.
    public var decisions: [Int]

    /// Creates a choice from its decisions.
    public init(_ decisions: [Int]) {
        self.decisions = decisions
    }

    /// The decisions as a list, e.g. `[0, 1, 1, 2]`.
    public var description: String { "\(decisions)" }
}

/// A search space as data: the architectures a search may pick, in PyGlove's vocabulary.
///
/// The JSON form:
/// - a JSON number, string, boolean or null is a constant;
/// - a JSON array is a list whose elements are spaces, a JSON object is a dict whose values are spaces
///   (both may nest to any depth);
/// - `{"one_of": [c1, c2, ...]}` picks one candidate (PyGlove's `pg.one_of`); candidates are spaces themselves;
/// - `{"sublist_of": [c1, c2, ...], "k": 2}` picks a list of `k` candidates (PyGlove's `pg.sublist_of`), by
///   default distinct and in any order; `"choices_distinct": false` allows repeats and `"choices_sorted": true`
///   keeps the picks in candidate order, as PyGlove's arguments of the same names do;
/// - a decision object may also carry a `"name"` (a label for people; sampling ignores it).
///
/// Any other key in a decision object, an empty candidate list, or a `k` out of range is an error, as are keys
/// that look like a misspelt decision (`oneOf`, `one-of`, `sublist`). The seed tutorial's space reads:
///
///     [{"kernel_size": {"one_of": [3, 5]}, "filters": {"one_of": [3, 4, 5]}},
///      {"kernel_size": {"one_of": [3, 5]}, "filters": {"one_of": [6, 8, 10]}}]
public struct SearchSpace: Sendable {
    /// The space as written.
    public let json: JSON
    let root: SpaceNode

    /// Reads a space from its JSON value.
    public init(json: JSON) throws {
        self.json = json
        root = try SpaceNode(json, path: "$")
    }

    /// Reads a space from JSON text.
    public init(text: String) throws {
        let value: JSON
        do {
            value = try JSON.parse(text)
        } catch {
            throw SearchSpaceError.invalidSpace(at: "$", "the text is not JSON: \(error)")
        }
        try self.init(json: value)
    }

    /// Reads a built-in space by name, else a JSON file at `nameOrPath`.
    public static func load(_ nameOrPath: String) throws -> SearchSpace {
        if let space = builtin[nameOrPath] { return try SearchSpace(text: space) }
        guard FileManager.default.fileExists(atPath: nameOrPath) else {
            throw SearchSpaceError.unknownSpace(nameOrPath, known: builtinNames)
        }
        let text: String
        do {
            text = try String(contentsOfFile: nameOrPath, encoding: .utf8)
        } catch {
            throw SearchSpaceError.unreadableFile(nameOrPath, "\(error.localizedDescription)")
        }
        do {
            return try SearchSpace(text: text)
        } catch let error as SearchSpaceError {
            throw SearchSpaceError.unreadableFile(nameOrPath, error.message)
        }
    }

    /// The seed tutorial's `mnist_list_of_dictionary` space: two conv layers, kernel 3 or 5, filters 3/4/5 then
    /// 6/8/10 (36 architectures).
    public static let mnistListOfDictionary = try! SearchSpace(text: builtin["mnist_list_of_dictionary"]!)

    /// The names `load(_:)` accepts besides file paths.
    public static var builtinNames: [String] { builtin.keys.sorted() }

    /// The `mobilenet_v2_mini` space: a MobileNet-style family for 28x28 images. A 3x3 stride-2 stem (16
    /// filters, hard-swish), then three stages (stride 1, 2, 2; filters 16/24, 24/32/40, 48/64; 1-2, 1-3 and 1-2
    /// blocks), each block choosing its expansion (1, 3, 6), depthwise kernel (3, 5, 7), squeeze-and-excite and
    /// activation (ReLU6, hard-swish); global average pooling and Dense(10).
    public static let mobileNetV2Mini = try! SearchSpace(text: builtin["mobilenet_v2_mini"]!)

    private static let mobileNetBlock =
        #"{"expansion": {"one_of": [1, 3, 6]}, "kernel_size": {"one_of": [3, 5, 7]}, "se": {"one_of": [false, true]}, "#
        + #""activation": {"one_of": ["relu6", "hswish"]}}"#

    /// A stage of `filters` (one of) with 1 to `depth` blocks, each with its own decisions.
    private static func mobileNetStage(filters: [Int], stride: Int, depth: Int) -> String {
        let depths = (1...depth).map { "[" + Array(repeating: mobileNetBlock, count: $0).joined(separator: ", ") + "]" }
        return "{\"filters\": {\"one_of\": \(filters)}, \"stride\": \(stride), \"blocks\": {\"one_of\": ["
            + depths.joined(separator: ", ") + "]}}"
    }

    private static let builtin: [String: String] = [
        "mnist_list_of_dictionary": """
        [{"kernel_size": {"one_of": [3, 5]}, "filters": {"one_of": [3, 4, 5]}},
         {"kernel_size": {"one_of": [3, 5]}, "filters": {"one_of": [6, 8, 10]}}]
        """,
        "mobilenet_v2_mini": #"{"stem": {"filters": 16, "kernel_size": 3, "stride": 2, "activation": "hswish"}, "#
            + #""stages": ["# + mobileNetStage(filters: [16, 24], stride: 1, depth: 2) + ", "
            + mobileNetStage(filters: [24, 32, 40], stride: 2, depth: 3) + ", "
            + mobileNetStage(filters: [48, 64], stride: 2, depth: 2) + "]}",
    ]

    /// The number of architectures in the space (`Int.max` when it is larger).
    public var size: Int { root.size }

    /// Picks one architecture, each decision uniformly among its options (as PyGlove's random search does).
    public func sample<Generator: RandomNumberGenerator>(using generator: inout Generator) -> SearchChoice {
        SearchChoice(root.sample(&generator).decisions)
    }

    /// Every architecture of the space, in lexicographic order of decisions (for grid search).
    ///
    /// - Throws: `SearchSpaceError` when the space holds more than `limit` architectures.
    public func allChoices(limit: Int = 1_000_000) throws -> [SearchChoice] {
        let size = self.size
        guard size <= limit else { throw SearchSpaceError.tooLarge(size: size, limit: limit) }
        return root.enumerate().map { SearchChoice($0.decisions) }
    }

    /// Checks that `choice` fits the space.
    public func validate(_ choice: SearchChoice) throws {
        _ = try decided(choice)
    }

    /// The concrete value `choice` picks: the space with every decision replaced by its pick.
    public func value(of choice: SearchChoice) throws -> JSON {
        try root.value(decided(choice))
    }

    /// The CNN `choice` picks; the value must be a list of `{"kernel_size": K, "filters": F}` layers.
    public func architecture(
        of choice: SearchChoice, height: Int = 28, width: Int = 28, channels: Int = 1, classes: Int = 10
    ) throws -> CNNArchitecture {
        try CNNArchitecture(
            value: value(of: choice), height: height, width: width, channels: channels, classes: classes)
    }

    /// The model `choice` picks: a `BuiltInModel` of the family the value's shape names.
    public func model(
        of choice: SearchChoice, height: Int = 28, width: Int = 28, channels: Int = 1, classes: Int = 10
    ) throws -> BuiltInModel {
        try BuiltInModel(value: value(of: choice), height: height, width: width, channels: channels, classes: classes)
    }

    /// What a trial stores in `nas_params_str.json`: the choice and its value.
    public func parameters(of choice: SearchChoice) throws -> TrialParameters {
        TrialParameters(choice: choice, value: try value(of: choice))
    }

    /// A neighbour of `choice` for regularized evolution: one decision, picked uniformly among those with another
    /// option, changes to a different option; decisions beneath a changed `one_of` are sampled afresh.
    public func mutate<Generator: RandomNumberGenerator>(_ choice: SearchChoice, using generator: inout Generator)
        throws -> SearchChoice
    {
        let current = try decided(choice)
        var counter = Int.max
        _ = root.mutate(current, &counter, &generator)
        let points = Int.max - counter
        guard points > 0 else { throw SearchSpaceError.nothingToMutate(choice.decisions) }
        var target = generator.uniform(points)
        return SearchChoice(root.mutate(current, &target, &generator).decisions)
    }

    private func decided(_ choice: SearchChoice) throws -> Decided {
        var cursor = 0
        let result = try root.decide(choice.decisions, &cursor)
        guard cursor == choice.decisions.count else {
            throw SearchSpaceError.invalidChoice(
                choice.decisions, "the space has \(cursor) decision(s) here, the choice \(choice.decisions.count)")
        }
        return result
    }
}

/// A trial's architecture as stored in `<job_dir>/<trial_id>/nas_params_str.json`:
/// `{"decisions": [0, 1, 1, 2], "value": [{"kernel_size": 3, "filters": 4}, ...]}`.
///
/// The value alone is enough to rebuild the model, so that `nas train` can retrain a trial without its space;
/// the decisions let a search resume, and evolution mutate, the same trial.
public struct TrialParameters: Equatable, Sendable {
    /// The file name vertex-ai-nas uses.
    public static let fileName = "nas_params_str.json"

    /// The decisions that picked the value.
    public var choice: SearchChoice
    /// The picked value.
    public var value: JSON

    /// Creates parameters.
    public init(choice: SearchChoice, value: JSON) {
        self.choice = choice
        self.value = value
    }

    /// The file's JSON text.
    public var jsonText: String {
        JSON.object([
            ("decisions", .array(choice.decisions.map { .number(Double($0)) })), ("value", value),
        ]).integerText
    }

    /// Reads the file's JSON text.
    public init(jsonText: String, source: String = "nas_params_str.json") throws {
        let json: JSON
        do {
            json = try JSON.parse(jsonText)
        } catch {
            throw SearchSpaceError.unreadableFile(source, "not JSON: \(error)")
        }
        guard case .array(let items)? = json["decisions"], let value = json["value"] else {
            throw SearchSpaceError.unreadableFile(
                source, "expected {\"decisions\": [...], \"value\": ...}, found \(json.integerText.prefix(200))")
        }
        var decisions: [Int] = []
        for item in items {
            guard case .number(let number) = item, let index = Int(exactly: number), index >= 0 else {
                throw SearchSpaceError.unreadableFile(
                    source, "decision \(item.integerText) is not an index (an integer >= 0)")
            }
            decisions.append(index)
        }
        self.init(choice: SearchChoice(decisions), value: value)
    }

    /// Writes `nas_params_str.json` into `trialDirectory` (created if missing); returns the file's path.
    @discardableResult
    public func write(toTrialDirectory trialDirectory: String) throws -> String {
        let path = (trialDirectory as NSString).appendingPathComponent(Self.fileName)
        do {
            try FileManager.default.createDirectory(atPath: trialDirectory, withIntermediateDirectories: true)
            try Data((jsonText + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw SearchSpaceError.unreadableFile(path, "cannot write it: \(error.localizedDescription)")
        }
        return path
    }

    /// Reads `nas_params_str.json` from `trialDirectory`.
    public static func read(fromTrialDirectory trialDirectory: String) throws -> TrialParameters {
        try read(path: (trialDirectory as NSString).appendingPathComponent(fileName))
    }

    /// Reads a `nas_params_str.json` file.
    public static func read(path: String) throws -> TrialParameters {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SearchSpaceError.unreadableFile(path, "no such file (was the trial written?)")
        }
        return try TrialParameters(jsonText: String(decoding: data, as: UTF8.self), source: path)
    }

    /// The CNN the value describes.
    public func architecture(height: Int = 28, width: Int = 28, channels: Int = 1, classes: Int = 10) throws
        -> CNNArchitecture
    {
        try CNNArchitecture(value: value, height: height, width: width, channels: channels, classes: classes)
    }

    /// The model the value describes, of the family its shape names.
    public func model(height: Int = 28, width: Int = 28, channels: Int = 1, classes: Int = 10) throws -> BuiltInModel {
        try BuiltInModel(value: value, height: height, width: width, channels: channels, classes: classes)
    }

    /// Checks that the stored decisions fit `space` and pick the stored value.
    public func validate(against space: SearchSpace) throws {
        let expected = try space.value(of: choice)
        guard expected == value else {
            throw SearchSpaceError.invalidChoice(
                choice.decisions,
                "they pick \(expected.integerText) in this space, but the file says \(value.integerText)")
        }
    }
}

extension CNNArchitecture {
    /// Reads an architecture from a chosen value: a list of layers, each `{"kernel_size": K, "filters": F}` or
    /// `[K, F]`, or an object `{"layers": [...]}`.
    public init(value: JSON, height: Int = 28, width: Int = 28, channels: Int = 1, classes: Int = 10) throws {
        var list = value
        if case .object = value, let layers = value["layers"] { list = layers }
        guard case .array(let items) = list, !items.isEmpty else {
            throw SearchSpaceError.notAnArchitecture(value.integerText, "it is not a non-empty list of layers")
        }
        func positive(_ json: JSON?, _ name: String, _ index: Int) throws -> Int {
            guard case .number(let number)? = json, let integer = Int(exactly: number), integer > 0, integer < 4096
            else {
                throw SearchSpaceError.notAnArchitecture(
                    value.integerText,
                    "layer \(index)'s \(name) is \(json?.integerText ?? "missing"), expected an integer >= 1")
            }
            return integer
        }
        var layers: [ConvLayer] = []
        for (index, item) in items.enumerated() {
            switch item {
            case .object:
                layers.append(
                    ConvLayer(
                        kernelSize: try positive(item["kernel_size"], "kernel_size", index),
                        filters: try positive(item["filters"], "filters", index)))
            case .array(let pair) where pair.count == 2:
                layers.append(
                    ConvLayer(
                        kernelSize: try positive(pair[0], "kernel_size", index),
                        filters: try positive(pair[1], "filters", index)))
            default:
                throw SearchSpaceError.notAnArchitecture(
                    value.integerText, "layer \(index) is \(item.integerText), not {\"kernel_size\": K, \"filters\": F}"
                )
            }
        }
        self.init(layers: layers, height: height, width: width, channels: channels, classes: classes)
    }
}
