import Constraints
import Foundation
import Testing

@testable import Trainer

/// Expects `body` to throw a `SearchSpaceError` whose message contains every word.
func expectSearchSpaceError(_ words: [String], _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a SearchSpaceError containing \(words)")
    } catch let error as SearchSpaceError {
        for word in words {
            #expect(error.description.contains(word), "message lacks '\(word)': \(error)")
        }
    } catch {
        Issue.record("expected a SearchSpaceError, got \(error)")
    }
}

@Suite struct SearchSpaceTests {
    let space = SearchSpace.mnistListOfDictionary

    @Test func builtinSpaceHas36Architectures() throws {
        #expect(space.size == 36)
        let all = try space.allChoices()
        #expect(all.count == 36)
        #expect(Set(all).count == 36)
        #expect(all.first == SearchChoice([0, 0, 0, 0]))
        #expect(all.last == SearchChoice([1, 2, 1, 2]))
        let architectures = Set(try all.map { try space.architecture(of: $0) })
        #expect(architectures.count == 36)
        #expect(architectures.allSatisfy { [3, 5].contains($0.layers[0].kernelSize) && $0.layers.count == 2 })
        #expect(architectures.allSatisfy { [6, 8, 10].contains($0.layers[1].filters) })
        #expect(try SearchSpace.load("mnist_list_of_dictionary").size == 36)
    }

    @Test func choiceTurnsIntoTheArchitecture() throws {
        let choice = SearchChoice([1, 2, 0, 1])
        #expect(
            try space.value(of: choice).integerText == #"[{"kernel_size":5,"filters":5},{"kernel_size":3,"filters":8}]"#
        )
        #expect(
            try space.architecture(of: choice)
                == CNNArchitecture(layers: [ConvLayer(kernelSize: 5, filters: 5), ConvLayer(kernelSize: 3, filters: 8)])
        )
    }

    @Test func samplingIsSeededAndCoversTheSpace() throws {
        var first = SeededGenerator(seed: 7)
        var second = SeededGenerator(seed: 7)
        let a = (0..<200).map { _ in space.sample(using: &first) }
        let b = (0..<200).map { _ in space.sample(using: &second) }
        #expect(a == b)
        #expect(Set(a).count == 36)
        var other = SeededGenerator(seed: 8)
        #expect((0..<200).map { _ in space.sample(using: &other) } != a)
        for choice in a { try space.validate(choice) }
    }

    @Test func paramsFileRoundTrips() throws {
        let directory = NSTemporaryDirectory() + "nas-trial-\(UUID().uuidString)/7"
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let parameters = try space.parameters(of: SearchChoice([0, 1, 1, 2]))
        let path = try parameters.write(toTrialDirectory: directory)
        #expect(path.hasSuffix("/7/nas_params_str.json"))
        let read = try TrialParameters.read(fromTrialDirectory: directory)
        #expect(read == parameters)
        #expect(read.choice.decisions == [0, 1, 1, 2])
        try read.validate(against: space)
        #expect(
            try read.architecture().layers == [
                ConvLayer(kernelSize: 3, filters: 4), ConvLayer(kernelSize: 5, filters: 10),
            ])
        // A file whose value disagrees with its decisions is caught.
        let forged = TrialParameters(choice: SearchChoice([0, 0, 0, 0]), value: parameters.value)
        expectSearchSpaceError(["pick", "file says"]) { try forged.validate(against: space) }
        expectSearchSpaceError(["no such file"]) { _ = try TrialParameters.read(fromTrialDirectory: directory + "/x") }
        expectSearchSpaceError(["decisions"]) { _ = try TrialParameters(jsonText: #"{"value": []}"#) }
    }

    @Test func mutationChangesExactlyOneDecision() throws {
        var generator = SeededGenerator(seed: 3)
        var seen = Set<SearchChoice>()
        let start = SearchChoice([0, 1, 1, 2])
        for _ in 0..<300 {
            let mutated = try space.mutate(start, using: &generator)
            try space.validate(mutated)
            let changed = zip(start.decisions, mutated.decisions).filter { $0 != $1 }.count
            #expect(changed == 1)
            seen.insert(mutated)
        }
        // Every neighbour: 1 + 2 + 1 + 2 alternatives.
        #expect(seen.count == 6)
        var again = SeededGenerator(seed: 3)
        var twin = SeededGenerator(seed: 3)
        let once = try space.mutate(start, using: &again)
        #expect(try space.mutate(start, using: &twin) == once)
    }

    @Test func nestedSpacesAndSublists() throws {
        let nested = try SearchSpace(
            text: """
                {"layers": {"one_of": [[{"kernel_size": 3, "filters": {"one_of": [4, 8]}}],
                                       [{"kernel_size": {"one_of": [3, 5]}, "filters": 4},
                                        {"kernel_size": 3, "filters": 6}]]},
                 "extras": {"sublist_of": ["a", "b", "c"], "k": 2, "name": "extras"}}
                """)
        // (2 + 2) layer options times 3 * 2 ordered distinct pairs.
        #expect(nested.size == 24)
        let all = try nested.allChoices()
        #expect(all.count == 24 && Set(all).count == 24)
        let values = try all.map { try nested.value(of: $0) }
        #expect(Set(values.map(\.integerText)).count == 24)
        #expect(
            try nested.value(of: SearchChoice([1, 1, 2, 0])).integerText
                == #"{"layers":[{"kernel_size":5,"filters":4},{"kernel_size":3,"filters":6}],"extras":["c","a"]}"#)
        #expect(
            try nested.architecture(of: SearchChoice([0, 1, 0, 1])).layers == [ConvLayer(kernelSize: 3, filters: 8)])
        expectSearchSpaceError(["distinct"]) { try nested.validate(SearchChoice([0, 0, 1, 1])) }
        expectSearchSpaceError(["ends after"]) { try nested.validate(SearchChoice([0, 0, 1])) }
        expectSearchSpaceError(["2 option(s)"]) { try nested.validate(SearchChoice([2, 0, 1, 0])) }
        var generator = SeededGenerator(seed: 1)
        for _ in 0..<100 {
            let choice = nested.sample(using: &generator)
            try nested.validate(choice)
            try nested.validate(try nested.mutate(choice, using: &generator))
        }
        let sorted = try SearchSpace(text: #"{"sublist_of": [1, 2, 3, 4], "k": 2, "choices_sorted": true}"#)
        #expect(sorted.size == 6)
        #expect(try sorted.allChoices().count == 6)
        let repeats = try SearchSpace(text: #"{"sublist_of": [1, 2, 3], "k": 2, "choices_distinct": false}"#)
        #expect(repeats.size == 9)
        #expect(try repeats.allChoices().count == 9)
        let multisets = try SearchSpace(
            text: #"{"sublist_of": [1, 2, 3], "k": 2, "choices_distinct": false, "choices_sorted": true}"#)
        #expect(multisets.size == 6)
        #expect(try multisets.allChoices().count == 6)
    }

    @Test func badSpacesAreClearErrors() {
        expectSearchSpaceError(["$[0].filters", "empty"]) {
            _ = try SearchSpace(text: #"[{"filters": {"one_of": []}}]"#)
        }
        expectSearchSpaceError(["unknown key 'weights'", "one_of"]) {
            _ = try SearchSpace(text: #"{"one_of": [1, 2], "weights": [1, 1]}"#)
        }
        expectSearchSpaceError(["unknown key 'oneOf'"]) { _ = try SearchSpace(text: #"{"oneOf": [1, 2]}"#) }
        expectSearchSpaceError(["'k'"]) { _ = try SearchSpace(text: #"{"sublist_of": [1, 2]}"#) }
        expectSearchSpaceError(["impossible"]) { _ = try SearchSpace(text: #"{"sublist_of": [1, 2], "k": 3}"#) }
        expectSearchSpaceError(["JSON array"]) { _ = try SearchSpace(text: #"{"one_of": 3}"#) }
        expectSearchSpaceError(["not JSON"]) { _ = try SearchSpace(text: #"{"one_of": [1,"#) }
        expectSearchSpaceError(["unknown search space 'nope'", "mnist_list_of_dictionary"]) {
            _ = try SearchSpace.load("nope")
        }
        expectSearchSpaceError(["more than the enumeration limit"]) {
            _ = try SearchSpace.mnistListOfDictionary.allChoices(limit: 10)
        }
        expectSearchSpaceError(["single option"]) {
            var generator = SeededGenerator(seed: 1)
            _ = try SearchSpace(text: #"[{"one_of": [3]}]"#).mutate(SearchChoice([0]), using: &generator)
        }
        expectSearchSpaceError(["not a built-in architecture", "filters"]) {
            _ = try SearchSpace(text: #"[{"kernel_size": 3, "filters": 0}]"#).architecture(of: SearchChoice([]))
        }
    }

    @Test func spacesLoadFromFiles() throws {
        let path = NSTemporaryDirectory() + "nas-space-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(#"[{"kernel_size": {"one_of": [1, 3, 5, 7]}, "filters": 16}]"#.utf8)
            .write(to: URL(fileURLWithPath: path))
        let space = try SearchSpace.load(path)
        #expect(space.size == 4)
        #expect(try space.architecture(of: SearchChoice([3])).layers == [ConvLayer(kernelSize: 7, filters: 16)])
        try Data(#"[{"kernel_size": {"one_of": []}}]"#.utf8).write(to: URL(fileURLWithPath: path))
        expectSearchSpaceError([path, "$[0].kernel_size.one_of", "empty"]) { _ = try SearchSpace.load(path) }
    }

    /// Sampling, shuffles and initial weights all come from this generator: pinning its output keeps a seed's
    /// trials the same across releases.
    @Test func seededGeneratorIsSplitMix64() {
        var generator = SeededGenerator(seed: 0)
        #expect(generator.next() == 0xE220_A839_7B1D_CDAF)
        #expect(generator.next() == 0x6E78_9E6A_A1B9_65F4)
        var bounded = SeededGenerator(seed: 1)
        let draws = (0..<1000).map { _ in bounded.uniform(6) }
        #expect(Set(draws) == Set(0..<6))
    }

    @Test func hugeSpacesSaturate() throws {
        let wide = try SearchSpace(
            text: "["
                + Array(repeating: #"{"one_of": [1,2,3,4,5,6,7,8,9,10]}"#, count: 30)
                .joined(separator: ",") + "]")
        #expect(wide.size == Int.max)
    }
}
