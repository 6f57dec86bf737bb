import Testing
import Trainer

/// `SearchSpace.keyedDecisions(of:)` and `build(choosing:)`: the decisions by their place in the space.
@Suite struct DecisionKeyTests {
    static let nested = try! SearchSpace(
        text: """
            {"layers": {"one_of": [[{"kernel_size": 3, "filters": {"one_of": [4, 8]}}],
                                   [{"kernel_size": {"one_of": [3, 5]}, "filters": 4},
                                    {"kernel_size": 3, "filters": 6}]]},
             "extras": {"sublist_of": ["a", "b", "c"], "k": 2}}
            """)

    @Test func keysNameEachDecisionByItsPlace() throws {
        #expect(
            try Self.nested.keyedDecisions(of: SearchChoice([1, 1, 2, 0])) == [
                DecisionKey("$.layers"): 1, DecisionKey("$.layers/1[0].kernel_size"): 1,
                DecisionKey("$.extras#0"): 2, DecisionKey("$.extras#1"): 0,
            ])
        // The filters decision of candidate 0 is another decision than candidate 1's kernel size.
        #expect(try Self.nested.keyedDecisions(of: SearchChoice([0, 1, 0, 1]))[DecisionKey("$.layers/0[0].filters")] == 1)
        #expect(throws: SearchSpaceError.self) { try Self.nested.keyedDecisions(of: SearchChoice([0, 1, 0])) }
    }

    /// Building from a choice's own keys gives the choice back, for every choice of nested, sorted and repeating
    /// spaces; the allowed options never let a distinct or sorted sublist break its rule.
    @Test func buildingFromTheKeysRoundTrips() throws {
        let spaces = [
            Self.nested, SearchSpace.mnistListOfDictionary,
            try SearchSpace(text: #"{"sublist_of": [1, 2, 3, 4], "k": 3, "choices_sorted": true}"#),
            try SearchSpace(text: #"{"sublist_of": [1, 2, 3], "k": 2, "choices_distinct": false}"#),
        ]
        for space in spaces {
            for choice in try space.allChoices() {
                let keyed = try space.keyedDecisions(of: choice)
                #expect(space.build { key, _ in keyed[key]! } == choice)
            }
            // Always the last allowed option: still a valid choice.
            for _ in 0..<3 { try space.validate(space.build { _, allowed in allowed.last! }) }
        }
        // An index outside the allowed ones falls back to the first allowed.
        #expect(Self.nested.build { _, _ in 99 } == SearchChoice([0, 0, 0, 1]))
    }

    /// A key's place drops the candidates taken on the way, so that the first layer's kernel size is one place in
    /// both depth candidates; a sublist's slots keep theirs; and no two decisions of one choice share a place, in
    /// every choice of the nested space and in samples of `mobilenet_v2_mini`.
    @Test func placesNameTheDecisionInTheBuiltValue() throws {
        #expect(DecisionKey("$.layers/1[0].kernel_size").place == DecisionKey("$.layers[0].kernel_size"))
        #expect(DecisionKey("$.stages[1].blocks/12[0].se").place == DecisionKey("$.stages[1].blocks[0].se"))
        #expect(DecisionKey("$.extras#1/2.a/b").place == DecisionKey("$.extras#1.a/b"))
        #expect(DecisionKey("$.layers").place == DecisionKey("$.layers"))
        var generator = SeededGenerator(seed: 5)
        let mobile = try SearchSpace.load("mobilenet_v2_mini")
        let choices = try Self.nested.allChoices().map { (Self.nested, $0) }
            + (0..<50).map { _ in (mobile, mobile.sample(using: &generator)) }
        for (space, choice) in choices {
            let keys = try space.keyedDecisions(of: choice).keys
            #expect(Set(keys.map(\.place)).count == keys.count, "\(choice)")
        }
    }
}
