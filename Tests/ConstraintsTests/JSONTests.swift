import Constraints
import Testing

@Suite struct JSONTests {
    @Test func parsesWhatPythonWrites() throws {
        let value = try JSON.parse(
            #" {"a": [1, -2.5e3, true, false, null], "b": {"c": "x\"y\\z\n\u00e9\ud83d\ude00"}, "n": NaN, "i": -Infinity} "#)
        #expect(value["a"] == .array([.number(1), .number(-2500), .bool(true), .bool(false), .null]))
        #expect(value["b"]?["c"] == .string("x\"y\\z\né😀"))
        if case .number(let n)? = value["n"] { #expect(n.isNaN) } else { Issue.record("NaN not read") }
        #expect(value["i"] == .number(-.infinity))
    }

    @Test func lastRepeatedKeyWinsAsInPython() throws {
        #expect(try JSON.parse(#"{"k": 1, "k": 2}"#)["k"] == .number(2))
    }

    @Test(arguments: [
        "", "{", "}", "[1,]", "{\"a\":}", "{\"a\" 1}", "01", "1.", "-", "1e", "\"abc", "\"\\x\"", "tru", "{\"a\":1}x",
        "[\"\u{01}\"]", "\"\\u12G4\"", "{1:2}",
    ])
    func refusesMalformedTextWithAnOffset(text: String) {
        #expect(throws: JSONError.self) { try JSON.parse(text) }
    }

    @Test func refusesDeepNestingInsteadOfOverflowingTheStack() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONError.self) { try JSON.parse(deep) }
    }

    @Test func writesAndReadsBack() throws {
        let value = JSON.object([
            ("s", .string("tab\t\"q\"\u{02}")), ("n", .number(0.1)), ("a", .array([.null, .bool(true)])),
            ("big", .number(1e300)),
        ])
        #expect(try JSON.parse(value.text) == value)
    }

    /// Random bytes and mutations of valid lines: the parser returns or throws, never crashes.
    @Test func fuzzedInputNeverCrashes() {
        var generator = SplitMix(seed: 42)
        let seeds = Array(
            #"{"accuracy":0.9,"metrics":{"latency_ms":2.5},"constraints":["latency_ms<=3:soft",{"metric":"f","target":1e6}]}"#
                .utf8)
        var parsed = 0
        for round in 0..<20_000 {
            var bytes = seeds
            if round % 4 == 0 {
                bytes = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                for _ in 0..<(1 + generator.next() % 4) {
                    let index = Int(generator.next() % UInt64(bytes.count))
                    switch generator.next() % 3 {
                    case 0: bytes[index] = UInt8(truncatingIfNeeded: generator.next())
                    case 1: bytes.remove(at: index)
                    default: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: index)
                    }
                    if bytes.isEmpty { break }
                }
            }
            if (try? JSON.parse(bytes)) != nil { parsed += 1 }
            var scorer = RewardLineScorer()
            _ = bytes.withUnsafeBufferPointer { scorer.score(line: $0, number: round) }
        }
        #expect(parsed > 0)
    }
}

@Suite struct RewardLineScorerTests {
    @Test func scoresTheSeedForm() throws {
        var scorer = RewardLineScorer()
        let (text, ok) = scorer.score(
            line: #"{"accuracy": 0.95, "target_latency_or_flops": 0.8, "measured_latency_or_flops": 0.4, "use_hard_limit": false}"#,
            number: 1)
        #expect(ok)
        let output = try JSON.parse(text)
        #expect(output["line"] == .number(1))
        #expect(output["reward"] == .number(1.9))
        #expect(output["constraints"] == .array([
            .object([
                ("name", .string("latency_or_flops")), ("metric", .string("latency_or_flops")), ("measured", .number(0.4)),
                ("target", .number(0.8)),
                ("factor", .number(2)), ("feasibility", .number(-0.5)),
            ])
        ]))
    }

    @Test func seedFormErrorsAreCompute_rewardsErrors() throws {
        var scorer = RewardLineScorer()
        let (text, ok) = scorer.score(
            line: #"{"accuracy": 0.9, "target_latency_or_flops": 1, "measured_latency_or_flops": 2, "target_memory": 5, "measured_memory": 0}"#,
            number: 7)
        #expect(!ok)
        guard case .string(let message)? = try JSON.parse(text)["error"] else {
            Issue.record("no error member in \(text)")
            return
        }
        #expect(message.hasPrefix("line 7:") && message.contains("measured_memory"))
        let (unknown, unknownOK) = scorer.score(
            line: #"{"accuracy": 0.9, "target_latency_or_flops": 1, "measured_latency_or_flops": 2, "wieght": 2}"#,
            number: 8)
        #expect(!unknownOK && unknown.contains("wieght"))
    }

    @Test func scoresTheProjectFormWithLineOrDefaultConstraints() throws {
        var scorer = RewardLineScorer(defaultConstraints: [try Constraint(parsing: "latency_ms<=3:hard")])
        let (withDefaults, ok1) = scorer.score(
            line: #"{"trial_id": "4", "accuracy": 0.9, "metrics": {"latency_ms": 6}}"#, number: 1)
        #expect(ok1)
        let first = try JSON.parse(withDefaults)
        #expect(first["reward"] == .number(0.45) && first["feasible"] == .bool(false) && first["trial_id"] == .string("4"))
        let (withOwn, ok2) = scorer.score(
            line: #"{"accuracy": 0.9, "metrics": {"f": 2e6, "l": 1}, "constraints": ["f<=1M:hard", {"metric": "l", "target": 2, "mode": "vertex-soft"}]}"#,
            number: 2)
        #expect(ok2)
        let second = try JSON.parse(withOwn)
        #expect(second["reward"] == .number(0.9))
        #expect(second["feasible"] == .bool(false))
    }

    @Test(arguments: [
        (#"[1, 2]"#, "JSON object"),
        (#"{"accuracy": 0.9}"#, "metrics"),
        (#"{"accuracy": "high", "metrics": {}}"#, "accuracy"),
        (#"{"accuracy": 0.9, "metrics": {"l": "fast"}}"#, "metric 'l'"),
        (#"{"accuracy": 0.9, "metrics": {"l": 1}, "constraints": ["l<=0"]}"#, "target"),
        (#"{"accuracy": 0.9, "metrics": {"l": 1}, "constraints": ["q<=1"]}"#, "needs metric 'q'"),
        (#"{"accuracy": 0.9, "metrics": {"l": 1}, "constraints": [{"metric": "l"}]}"#, "target"),
        (#"{"accuracy": 0.9, "metrics": {"l": 1}, "constraints": [{"metric": "l", "target": 1, "bogus": 1}]}"#, "bogus"),
        (#"{"accuracy": 0.9, "#, "invalid JSON"),
    ])
    func badLinesExplainThemselves(line: String, mention: String) throws {
        var scorer = RewardLineScorer()
        let (text, ok) = scorer.score(line: line, number: 3)
        #expect(!ok)
        guard case .string(let message)? = try JSON.parse(text)["error"] else {
            Issue.record("no error in \(text)")
            return
        }
        #expect(message.contains(mention), "\(message)")
        #expect(message.hasPrefix("line 3: "))
    }
}
