import Foundation
import Search
import Testing

/// The pruning rules as values: fed intermediate results in order, no processes, no clock.
@Suite struct PruningRuleTests {
    private func asha(min: Double = 1, eta: Double = 3, max: Double = 9) -> PruningRule {
        PruningRule(PrunerConfiguration(kind: .asha, minResource: min, reductionFactor: eta, maxResource: max))
    }

    @Test func ashaRungsAreGeometricBelowTheMaximum() {
        #expect(asha().rungs(of: 1) == [1, 3])
        #expect(asha(min: 1, eta: 2, max: 8).rungs(of: 5) == [1, 2, 4])
        #expect(asha(min: 1, eta: 3, max: 2).rungs(of: 1) == [1])
    }

    @Test func ashaPromotesTheTopThirdAsTrialsArrive() {
        var rule = asha()
        // The first trial at a rung is the best there is: it goes on (fewer than eta values).
        #expect(rule.report(trial: 1, step: 1, value: 0.5) == .continue)
        // A worse second one is not the best of two: stopped.
        #expect(rule.report(trial: 2, step: 1, value: 0.4) == .prune(step: 1, value: 0.4))
        // A better one goes on.
        #expect(rule.report(trial: 3, step: 1, value: 0.6) == .continue)
        // Four values: the top floor(4/3) = 1 goes on; 0.55 is not it.
        #expect(rule.report(trial: 4, step: 1, value: 0.55) == .prune(step: 1, value: 0.55))
        // Six values: the top 2 (0.7, 0.6) go on.
        #expect(rule.report(trial: 5, step: 1, value: 0.45) == .prune(step: 1, value: 0.45))
        #expect(rule.report(trial: 6, step: 1, value: 0.7) == .continue)
        // Between rungs nothing is decided.
        #expect(rule.report(trial: 6, step: 2, value: 0.1) == .continue)
        // Rung 3 has its own records.
        #expect(rule.report(trial: 6, step: 3, value: 0.8) == .continue)
        #expect(rule.report(trial: 3, step: 3, value: 0.75) == .prune(step: 3, value: 0.75))
    }

    @Test func aReportPastSeveralRungsIsJudgedAtEach() {
        var rule = asha(min: 1, eta: 2, max: 8)
        #expect(rule.report(trial: 1, step: 4, value: 0.9) == .continue)
        // Trial 2 reports only at step 4: judged at rung 1 first (0.5 below 0.9 of two values: stopped there).
        #expect(rule.report(trial: 2, step: 4, value: 0.5) == .prune(step: 1, value: 0.5))
    }

    @Test func aStoppedTrialsLaterReportsAreIgnored() {
        var rule = asha()
        _ = rule.report(trial: 1, step: 1, value: 0.9)
        #expect(rule.report(trial: 2, step: 1, value: 0.1) == .prune(step: 1, value: 0.1))
        #expect(rule.report(trial: 2, step: 3, value: 0.99) == .continue)
        // Its late report did not enter rung 3: trial 1 is alone there and goes on whatever its value.
        #expect(rule.report(trial: 1, step: 3, value: 0.2) == .continue)
    }

    @Test func replayingTheSameResultsGivesTheSameDecisions() {
        var values = SeededValues(seed: 42)
        var reports: [(trial: Int, step: Double, value: Double)] = []
        for index in 0..<200 { reports.append((index % 20 + 1, Double(index / 20 + 1), values.next())) }
        var first = asha(min: 1, eta: 3, max: 10)
        var second = asha(min: 1, eta: 3, max: 10)
        let a = reports.map { first.report(trial: $0.trial, step: $0.step, value: $0.value) }
        let b = reports.map { second.report(trial: $0.trial, step: $0.step, value: $0.value) }
        #expect(a == b)
        #expect(a.contains { $0 != PruningDecision.continue })
    }

    @Test func hyperbandDealsTrialsToBracketsByHyperbandsSizes() {
        let rule = PruningRule(PrunerConfiguration(kind: .hyperband, minResource: 1, reductionFactor: 3, maxResource: 9))
        // Brackets with minimum resource 1, 3, 9 (the last trains fully); sizes 9, 5, 3 of 17.
        let brackets = (1...17).map { rule.bracket(of: $0) }
        #expect(brackets.filter { $0 == 0 }.count == 9)
        #expect(brackets.filter { $0 == 1 }.count == 5)
        #expect(brackets.filter { $0 == 2 }.count == 3)
        #expect(rule.rungs(of: (1...17).first { rule.bracket(of: $0) == 0 }!) == [1, 3])
        #expect(rule.rungs(of: (1...17).first { rule.bracket(of: $0) == 1 }!) == [3])
        #expect(rule.rungs(of: (1...17).first { rule.bracket(of: $0) == 2 }!) == [])
    }

    @Test func hyperbandBracketsCompeteOnlyWithinThemselves() {
        var rule = PruningRule(PrunerConfiguration(kind: .hyperband, minResource: 1, reductionFactor: 3, maxResource: 9))
        let inFirst = (1...40).filter { rule.bracket(of: $0) == 0 }
        let inSecond = (1...40).filter { rule.bracket(of: $0) == 1 }
        #expect(rule.report(trial: inFirst[0], step: 3, value: 0.9) == .continue)
        // The second bracket's first trial at rung 3 is alone in its bracket's rung: goes on though below 0.9.
        #expect(rule.report(trial: inSecond[0], step: 3, value: 0.5) == .continue)
        // The second bracket has no rung at 1: nothing decided there.
        #expect(rule.report(trial: inSecond[1], step: 1, value: 0.0) == .continue)
        #expect(rule.report(trial: inSecond[1], step: 3, value: 0.4) == .prune(step: 3, value: 0.4))
    }

    @Test func medianStopsBelowTheOthersMedianAfterWarmUp() {
        var rule = PruningRule(
            PrunerConfiguration(kind: .median, minResource: 2, maxResource: 10, startupTrials: 3))
        for (trial, value) in [(1, 0.5), (2, 0.6), (3, 0.7)] {
            #expect(rule.report(trial: trial, step: 1, value: value) == .continue)
            #expect(rule.report(trial: trial, step: 2, value: value + 0.1) == .continue)
        }
        // Step 1 is warm-up: never judged.
        #expect(rule.report(trial: 4, step: 1, value: 0.0) == .continue)
        // At step 2 the others' median is 0.7: 0.65 is below.
        #expect(rule.report(trial: 4, step: 2, value: 0.65) == .prune(step: 2, value: 0.65))
        // The best value so far counts: 0.72 at step 1 carries a trial whose step 2 dips.
        #expect(rule.report(trial: 5, step: 1, value: 0.72) == .continue)
        #expect(rule.report(trial: 5, step: 2, value: 0.3) == .continue)
    }

    @Test func medianWaitsForItsStartupTrials() {
        var rule = PruningRule(PrunerConfiguration(kind: .median, minResource: 1, maxResource: 5, startupTrials: 2))
        #expect(rule.report(trial: 1, step: 1, value: 0.9) == .continue)
        #expect(rule.report(trial: 2, step: 1, value: 0.1) == .continue)
        #expect(rule.report(trial: 3, step: 1, value: 0.2) == .prune(step: 1, value: 0.2))
    }

    @Test func badSettingsSayWhichFlagToChange() {
        #expect(throws: PrunerError.self) {
            try PrunerConfiguration(kind: .asha, reductionFactor: 1, maxResource: 3).validate()
        }
        do {
            try PrunerConfiguration(kind: .asha, minResource: 4, maxResource: 3).validate()
            Issue.record("a minimum resource above the maximum was accepted")
        } catch {
            #expect("\(error)".contains("--pruner-max-resource"))
        }
        #expect(throws: Never.self) { try PrunerConfiguration(kind: .hyperband, maxResource: 3).validate() }
        do {
            try PrunerConfiguration(kind: .asha, maxResource: 3, grace: .seconds(-1)).validate()
            Issue.record("a negative grace period was accepted")
        } catch {
            #expect("\(error)".contains("--pruner-grace-seconds"))
        }
    }

    /// The grace period is a `Duration`, stored as seconds (`graceSeconds`) in the job's configuration, so that a
    /// job written before reads back the same.
    @Test func theGracePeriodIsStoredInSeconds() throws {
        let configuration = PrunerConfiguration(kind: .median, maxResource: 4, grace: .milliseconds(1500))
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(configuration)) as? [String: Any]
        #expect(json?["graceSeconds"] as? Double == 1.5)
        #expect(try JSONDecoder().decode(PrunerConfiguration.self, from: JSONEncoder().encode(configuration)) == configuration)
        let stored = #"{"kind":"asha","minResource":1,"reductionFactor":3,"maxResource":9,"startupTrials":3,"graceSeconds":2.25}"#
        let read = try JSONDecoder().decode(PrunerConfiguration.self, from: Data(stored.utf8))
        #expect(read.grace == .milliseconds(2250) && read.kind == .asha && read.maxResource == 9)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(PrunerConfiguration.self, from: Data(#"{"kind":"asha","graceSeconds":1}"#.utf8))
        }
        #expect(PrunerConfiguration(kind: .asha, maxResource: 3).grace == .seconds(10))
    }
}

/// Deterministic values in [0, 1) for replay tests.
struct SeededValues {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) / Double(1 << 53)
    }
}
