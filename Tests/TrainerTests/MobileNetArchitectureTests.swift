import Constraints
import Foundation
import Testing

@testable import Trainer

@Suite struct MobileNetArchitectureTests {
    let space = SearchSpace.mobileNetV2Mini

    @Test func builtInSpaceIsLargeAndPicksMobileNets() throws {
        #expect(space.size > 1_000_000, "\(space.size) architectures")
        #expect(try SearchSpace.load("mobilenet_v2_mini").size == space.size)
        #expect(SearchSpace.builtinNames == ["mnist_list_of_dictionary", "mobilenet_v2_mini"])
        var generator = SeededGenerator(seed: 3)
        var seen = Set<MobileNetArchitecture>()
        for _ in 0..<200 {
            let choice = space.sample(using: &generator)
            guard case .mobileNet(let architecture) = try space.model(of: choice) else {
                Issue.record("\(choice) is not a MobileNet")
                return
            }
            #expect(architecture.stages.map(\.stride) == [1, 2, 2])
            #expect((1...2).contains(architecture.stages[0].blocks.count))
            #expect((1...3).contains(architecture.stages[1].blocks.count))
            #expect([48, 64].contains(architecture.features))
            for block in architecture.stages.flatMap(\.blocks) {
                #expect([1, 3, 6].contains(block.expansion) && [3, 5, 7].contains(block.kernelSize))
            }
            // A trial's stored value rebuilds the same model (nas train reads only the value).
            let parameters = try space.parameters(of: choice)
            let stored = try TrialParameters(jsonText: parameters.jsonText)
            #expect(try stored.model() == .mobileNet(architecture))
            seen.insert(architecture)
        }
        #expect(seen.count > 190)
        // The tutorial's space still builds its CNNs.
        let tutorial = SearchSpace.mnistListOfDictionary
        #expect(tutorial.size == 36)
        #expect(try tutorial.model(of: SearchChoice([1, 2, 0, 1])) == .cnn(tutorial.architecture(of: SearchChoice([1, 2, 0, 1]))))
    }

    @Test func valueReadsEveryField() throws {
        let value = try JSON.parse(
            #"{"stem": {"filters": 8, "kernel_size": 5, "stride": 1, "activation": "relu6"}, "stages": [{"filters": 12, "stride": 2, "blocks": [{"expansion": 3, "kernel_size": 7, "se": true, "activation": "hswish"}, {"expansion": 1, "kernel_size": 3, "activation": "relu6"}]}]}"#
        )
        let architecture = try MobileNetArchitecture(value: value)
        #expect(
            architecture
                == MobileNetArchitecture(
                    stemFilters: 8, stemKernelSize: 5, stemStride: 1, stemActivation: .relu6,
                    stages: [
                        MobileNetStage(
                            filters: 12, stride: 2,
                            blocks: [
                                MobileNetBlock(expansion: 3, kernelSize: 7, squeezeExcite: true, activation: .hardSwish),
                                MobileNetBlock(expansion: 1, kernelSize: 3, squeezeExcite: false, activation: .relu6),
                            ])
                    ]))
        let layout = MobileNetLayout(architecture)
        // 28x28, stride 1 stem then stride 2: 14x14; the second block is stride 1 with equal channels: a residual.
        #expect(layout.blocks.map(\.outputHeight) == [14, 14] && layout.blocks.map(\.residual) == [false, true])
    }

    @Test func badValuesAreTypedErrorsNamingTheField() throws {
        func check(_ text: String, _ words: [String]) throws {
            let value = try JSON.parse(text)
            expectSearchSpaceError(words) { _ = try BuiltInModel(value: value) }
        }
        try check(#"{"stages": []}"#, ["no non-empty \"stages\""])
        try check(#"{"stages": [{"filters": 8, "blocks": [{"expansion": 3, "kernel_size": 3}]}]}"#, [
            "stage 0 block 0's activation is missing", "\"relu6\", \"hswish\"",
        ])
        try check(#"{"stages": [{"filters": 8, "stride": 3, "blocks": [{"expansion": 1, "kernel_size": 3, "activation": "relu6"}]}]}"#, [
            "stage 0's stride is 3", "1...2",
        ])
        try check(#"{"stages": [{"filters": 8, "blocks": [{"expansion": 1, "kernel_size": 3, "activation": "relu6", "se": 1}]}]}"#, [
            "se is 1, expected true or false"
        ])
        try check(#"{"stem": [], "stages": [{"filters": 8, "blocks": []}]}"#, ["\"stem\" is not an object"])
    }

    /// The seed of the fuzzer's mutations: fixed, so a failure reproduces; `NAS_FUZZ_SEED` picks another.
    static let fuzzSeed: UInt64 = ProcessInfo.processInfo.environment["NAS_FUZZ_SEED"].flatMap { UInt64($0) }
        ?? 20_261_202

    /// Mutated space values (fields dropped, replaced by other JSON types, numbers out of range) either read as an
    /// architecture the trainer and the exporter accept, or are refused with a `SearchSpaceError`; none crashes.
    @Test func fuzzedValuesAreReadOrRefused() throws {
        print("MobileNetArchitectureTests: seed \(Self.fuzzSeed) (NAS_FUZZ_SEED=\(Self.fuzzSeed) reproduces this run)")
        var generator = SeededGenerator(seed: Self.fuzzSeed)
        let replacements: [JSON] = [
            .null, .bool(true), .number(0), .number(-1), .number(2.5), .number(1e12), .number(3), .string("relu6"),
            .string("x"), .array([]), .object([]),
        ]
        func mutate(_ json: JSON) -> JSON {
            if generator.uniform(60) == 0 { return replacements[generator.uniform(replacements.count)] }
            switch json {
            case .array(let items):
                var items = items.map(mutate)
                if !items.isEmpty, generator.uniform(30) == 0 { items.remove(at: generator.uniform(items.count)) }
                return .array(items)
            case .object(let members):
                var members = members.map { (key: $0.key, value: mutate($0.value)) }
                if !members.isEmpty, generator.uniform(30) == 0 { members.remove(at: generator.uniform(members.count)) }
                return .object(members)
            default:
                return json
            }
        }
        var read = 0
        var refused = 0
        for _ in 0..<600 {
            let value = mutate(try space.value(of: space.sample(using: &generator)))
            do {
                let architecture = try MobileNetArchitecture(value: value, height: 9, width: 7)
                try Trainer.validate(architecture)
                let weights = Trainer.initialWeights(mobileNet: architecture, seed: 1)
                #expect(weights.parameters.count == MobileNetLayout(architecture).count)
                read += 1
            } catch is SearchSpaceError {
                refused += 1
            }
        }
        #expect(read > 0 && refused > 0, "\(read) read, \(refused) refused")
    }
}
