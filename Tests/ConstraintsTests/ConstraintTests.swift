import Constraints
import Testing

@Suite struct ConstraintTests {
    @Test func hardPresetHasNoBonusAndPenalisesOvershoot() throws {
        let flops = try Constraint(metric: "flops", target: 800_000, exponents: .hard)
        #expect(try flops.factor(400_000) == 1)
        #expect(abs(try flops.factor(1_600_000) - 0.5) < 1e-12)
        #expect(flops.feasibility(400_000) == -0.5)
        #expect(flops.feasibility(1_600_000) == 1)
    }

    @Test func softPresetIsMnasNets() throws {
        let latency = try Constraint(metric: "latency_ms", target: 3, exponents: .soft)
        #expect(abs(try latency.factor(1.5) - power(0.5, -0.07)) < 1e-12)
        #expect(abs(try latency.factor(6) - power(2, -0.07)) < 1e-12)
    }

    @Test func weightScalesBothExponentsLikeVertexAI() throws {
        let soft = try Constraint(metric: "m", target: 0.8, exponents: .vertexSoft, weight: 1)
        #expect(abs(try soft.factor(0.4) - 2) < 1e-12)
        let heavy = try Constraint(metric: "m", target: 0.8, exponents: .vertexHard, weight: 2)
        #expect(abs(try heavy.factor(1.6) - 0.25) < 1e-12)
        #expect(try heavy.factor(0.4) == 1)
    }

    @Test(arguments: [0.0, -1.0, Double.nan, Double.infinity])
    func invalidTargetsAreRefused(target: Double) {
        #expect(throws: ConstraintError.self) { try Constraint(metric: "latency_ms", target: target) }
    }

    @Test func invalidMeasurementsAreErrors() throws {
        let constraint = try Constraint(metric: "latency_ms", target: 3, exponents: .soft)
        #expect(throws: ConstraintError.self) { try constraint.factor(.nan) }
        #expect(throws: ConstraintError.self) { try constraint.factor(-1) }
        #expect(throws: ConstraintError.self) { try constraint.factor(0) }
        let hard = try Constraint(metric: "latency_ms", target: 3, exponents: .hard)
        #expect(try hard.factor(0) == 1)
    }

    @Test func customScorerReplacesTheFactorAndIsChecked() throws {
        struct Fixed: ConstraintScorer {
            let value: Double
            func factor(measured: Double, target: Double, exponents: Exponents, weight: Double) throws -> Double { value }
        }
        #expect(try Constraint(metric: "p", target: 1, scorer: Fixed(value: 0.25)).factor(9) == 0.25)
        for bad in [Double.nan, .infinity, -0.5] {
            let constraint = try Constraint(metric: "p", target: 1, scorer: Fixed(value: bad))
            #expect(throws: ConstraintError.self) { try constraint.factor(2) }
        }
    }
}

@Suite struct ConstraintParsingTests {
    @Test func aStrictLessThanIsRefusedWithWhatToWrite() throws {
        let error = try #require(throws: ConstraintError.self) { try Constraint(parsing: "latency_ms<3") }
        #expect(error.description.contains("write '<='"))
    }

    @Test func readsPresetsSuffixesAndOptions() throws {
        let flops = try Constraint(parsing: "flops<=0.8M:hard")
        #expect(flops.metric == "flops" && flops.target == 800_000 && flops.exponents == .hard && flops.weight == 1)
        let latency = try Constraint(parsing: " cpu = latency_ms <= 3 : soft , weight=2 ")
        #expect(latency.name == "cpu" && latency.metric == "latency_ms" && latency.target == 3)
        #expect(latency.exponents == .soft && latency.weight == 2)
        let custom = try Constraint(parsing: "memory_bytes<=2e6:alpha=-0.1,beta=-0.5,unit=bytes")
        #expect(custom.exponents == Exponents(alpha: -0.1, beta: -0.5) && custom.unit == "bytes")
        #expect(try Constraint(parsing: "x<=300k").target == 300_000)
        #expect(try Constraint(parsing: "x<=1G:vertex-soft").exponents == .vertexSoft)
    }

    @Test(arguments: [
        "latency_ms", "latency_ms<=", "<=3", "latency_ms<=abc", "latency_ms<=0", "latency_ms<=nan",
        "latency_ms<=-2", "latency_ms<=3:medium", "latency_ms<=3:weight=x", "lat ency<=3", "latency_ms<=3:foo=1",
        "latency_ms<=3:weight=-1", "latency_ms<=inf", "latency_ms<3",
    ])
    func refusesBadSpecsWithAReason(spec: String) {
        do {
            _ = try Constraint(parsing: spec)
            Issue.record("'\(spec)' was accepted")
        } catch {
            let text = "\(error)"
            #expect(!text.isEmpty)
            #expect(text.contains("constraint") || text.contains("weight") || text.contains("target"))
        }
    }

    @Test func descriptionReadsBack() throws {
        let constraint = try Constraint(parsing: "cpu=latency_ms<=3:soft,weight=2")
        let again = try Constraint(parsing: constraint.description)
        #expect(again.name == "cpu" && again.target == 3 && again.exponents == .soft && again.weight == 2)
    }
}

@Suite struct RewardTests {
    /// "Accuracy, subject to FLOPs at most 0.8M (hard), CPU latency at most 3 ms (soft) and memory at most 2 MB."
    @Test func combinesEveryConstraint() throws {
        let reward = Reward(constraints: [
            try Constraint(parsing: "flops<=0.8M:hard"),
            try Constraint(parsing: "latency_ms<=3:soft,weight=2"),
            try Constraint(parsing: "memory_bytes<=2M:hard,weight=0.5"),
        ])
        let result = try reward.evaluate(
            accuracy: 0.9, metrics: ["flops": 1_000_000, "latency_ms": 1.5, "memory_bytes": 4_000_000])
        let expected = 0.9 * power(1.25, -1) * power(0.5, -0.14) * power(2, -0.5)
        #expect(abs(result.reward - expected) < 1e-12)
        #expect(result.outcomes.map(\.isFeasible) == [false, true, false])
        #expect(!result.isFeasible)
        #expect(abs(result.outcomes[0].feasibility - 0.25) < 1e-12)
    }

    @Test func noConstraintsMeansAccuracy() throws {
        #expect(try Reward(constraints: []).evaluate(accuracy: 0.7, metrics: [:]).reward == 0.7)
    }

    @Test func missingMetricNamesWhatIsThere() throws {
        let reward = Reward(constraints: [try Constraint(parsing: "latency_ms<=3")])
        do {
            _ = try reward.evaluate(accuracy: 0.9, metrics: ["flops": 1])
            Issue.record("accepted a missing metric")
        } catch {
            #expect("\(error)".contains("latency_ms") && "\(error)".contains("flops"))
        }
        #expect(throws: ConstraintError.self) { try reward.evaluate(accuracy: .nan, metrics: ["latency_ms": 1]) }
    }
}

@Suite struct ParetoFrontTests {
    @Test func keepsTheNonDominatedTrials() {
        let points = [
            ParetoFront.Point(accuracy: 0.90, costs: [3, 100]),  // front: best accuracy
            ParetoFront.Point(accuracy: 0.85, costs: [1, 100]),  // front: fastest
            ParetoFront.Point(accuracy: 0.85, costs: [2, 100]),  // dominated by 1
            ParetoFront.Point(accuracy: 0.80, costs: [1, 50]),  // front: least memory
            ParetoFront.Point(accuracy: 0.80, costs: [1, 50]),  // equal to 3: kept too
            ParetoFront.Point(accuracy: .nan, costs: [0, 0]),  // not comparable: left out
        ]
        #expect(ParetoFront.indices(of: points) == [0, 1, 3, 4])
    }

    @Test func feasibleOnlyIgnoresInfeasibleTrials() {
        let points = [
            ParetoFront.Point(accuracy: 0.95, costs: [5], isFeasible: false),
            ParetoFront.Point(accuracy: 0.80, costs: [2], isFeasible: true),
            ParetoFront.Point(accuracy: 0.70, costs: [3], isFeasible: true),
        ]
        #expect(ParetoFront.indices(of: points) == [0, 1])
        #expect(ParetoFront.indices(of: points, feasibleOnly: true) == [1])
    }
}

import Foundation

func power(_ x: Double, _ y: Double) -> Double { pow(x, y) }
