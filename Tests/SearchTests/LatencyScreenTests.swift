import Constraints
import Foundation
@testable import Predictor
import TestSupport
import Testing
import Trainer

@testable import Search

/// The latency screen over a real job store and measurement store, with the tutorial space's untrained models
/// and latencies from a known generating model of their kernels.
@Suite struct LatencyScreenTests {
    static let space = try! SearchSpace.load("mnist_list_of_dictionary")

    /// Each candidate's untrained model's kernels, computed once.
    static let features: [[Int]: ModelFeatures] = {
        var features: [[Int]: ModelFeatures] = [:]
        for candidate in try! candidates() {
            features[candidate.choice.decisions] = try! ModelFeatures(onnx: try! LatencyScreen.untrainedModel(candidate))
        }
        return features
    }()

    static func latency(_ candidate: TrialParameters) -> Double { latency(features[candidate.choice.decisions]!) }

    /// The generating model: 0.002 ms plus 1 ms per 10 MFLOPs.
    static func latency(_ features: ModelFeatures) -> Double { 0.002 + features.totalFlops / 1e7 }

    static func candidates() throws -> [TrialParameters] {
        let grid = SearchAlgorithm(kind: .grid, space: space, seed: 0)
        var proposed: [SearchChoice] = []
        while let choice = try grid.propose(trial: proposed.count, proposed: proposed, finished: []) {
            proposed.append(choice)
        }
        return try proposed.map { try space.parameters(of: $0) }
    }

    /// A job with a hard latency target, and a measurement store holding `measured` of the space's models.
    static func fixture(measured: Int, target: Double, noise: (Int) -> Double = { _ in 1 }) throws
        -> (JobStore, MeasurementStore, [TrialParameters])
    {
        let folder = try TestSupport.temporaryDirectory("nas-screen")
        var config = sampleConfig()
        config.constraints = ["latency_ms<=\(target)"]
        config.maxTrials = 100
        let store = try JobStore.create(directory: folder.appendingPathComponent("job").path, config: config)
        let measurements = try MeasurementStore(path: folder.appendingPathComponent("m.sqlite").path)
        let all = try candidates()
        for (index, candidate) in all.prefix(measured).enumerated() {
            let features = Self.features[candidate.choice.decisions]!
            try measurements.add(
                MeasurementRecord(
                    deviceType: "cpu-x86", workerID: nil, attributes: [:], runtime: "native", modelSHA256: "m\(index)",
                    features: features, metrics: ["latency_ms": latency(features) * noise(index)], job: "earlier",
                    trialID: index + 1))
        }
        return (store, measurements, all)
    }

    final class Lines: @unchecked Sendable { var lines: [String] = [] }

    @Test func screensCandidatesThatCannotMeetTheTargetAndTrainsTheRest() throws {
        let (store, measurements, all) = try Self.fixture(measured: 20, target: 0.06)
        let lines = Lines()
        let screen = try LatencyScreen(
            store: store, measurements: measurements, configuration: .init(mode: .screen),
            targets: LatencyScreen.targets(
                [try Constraint(parsing: "latency_ms<=0.06")], deviceTypes: store.config.targetDeviceTypes),
            export: LatencyScreen.untrainedModel, log: { lines.lines.append($0) })
        #expect(screen.trusted("cpu-x86"))
        var index = 0
        let propose = screen.wrap { _, _ in
            defer { index += 1 }
            return index < all.count ? all[index] : nil
        }
        var trained: [TrialParameters] = []
        while let next = try propose([], []) { trained.append(next) }
        let screened = try store.trials().filter { $0.state == .screened }
        let slow = try all.filter { Self.latency($0) > 0.06 * 1.2 }
        let fast = try all.filter { Self.latency($0) < 0.06 * 0.8 }
        #expect(!screened.isEmpty && !slow.isEmpty && !fast.isEmpty)
        #expect(screened.count + trained.count == all.count)
        // Every clearly slow candidate is screened, no clearly fast one is.
        #expect(Set(slow.map(\.choice.decisions)).isSubset(of: Set(screened.map(\.decisions))))
        #expect(Set(fast.map(\.choice.decisions)).isSubset(of: Set(trained.map(\.choice.decisions))))
        for trial in screened {
            #expect(trial.metrics["predicted_latency_ms"].map { $0 > 0.06 } == true)
            #expect(trial.error?.contains("> target 0.06 ms") == true)
            #expect(FileManager.default.fileExists(atPath: store.trialDirectory(trial.id) + "/nas_params_str.json"))
        }
        #expect(lines.lines.contains { $0.contains("screened, not trained") })
    }

    /// Writes what a trial runner leaves after measuring (the model, `measurements.json`) and records success.
    static func succeed(_ store: JobStore, _ screen: LatencyScreen, _ candidate: TrialParameters, latency: Double)
        throws -> Int
    {
        let id = try store.addTrial(parameters: candidate.jsonText, decisions: candidate.choice.decisions)
        let directory = store.trialDirectory(id)
        try FileManager.default.createDirectory(atPath: directory + "/saved_model", withIntermediateDirectories: true)
        try Data(try LatencyScreen.untrainedModel(candidate)).write(to: URL(fileURLWithPath: directory + "/" + TrialFiles.model))
        let answer = DeviceMeasurement(
            deviceType: "cpu-x86", metrics: ["latency_ms": latency, "latency_p90_ms": latency * 1.1, "memory_bytes": 5000],
            workerID: "w7", attributes: ["runtime": "native", "cpu": "x"], runtime: "native")
        try JSONEncoder().encode([answer]).write(to: URL(fileURLWithPath: directory + "/" + TrialFiles.measurements))
        try store.markRunning(id)
        try store.markSucceeded(id, metrics: ["top_1_accuracy": 0.5, "latency_ms": latency], reward: 0.5)
        screen.trialSucceeded(id)
        return id
    }

    @Test func keepsMeasurementsScoresPredictionsAndStopsScreeningWhenTheyGoWrong() throws {
        let (store, measurements, all) = try Self.fixture(measured: 12, target: 0.06)
        let lines = Lines()
        let screen = try LatencyScreen(
            store: store, measurements: measurements, configuration: .init(mode: .screen, window: 4),
            targets: [.init(deviceType: "cpu-x86", milliseconds: 0.06)], export: LatencyScreen.untrainedModel,
            log: { lines.lines.append($0) })
        // The four quickest models, well under the target.
        let fast = Array(all.sorted { Self.latency($0) < Self.latency($1) }.prefix(4))
        try #require(Self.latency(fast[3]) < 0.06)
        // Proposed (and predicted) first, then measured: its prediction lands in its metrics, its measurement in
        // both stores with the worker and its attributes.
        let first = try screen.wrap { _, _ in fast[0] }([], [])
        let id = try Self.succeed(store, screen, try #require(first), latency: Self.latency(fast[0]))
        let trial = try #require(try store.trials().first { $0.id == id })
        let predicted = try #require(trial.metrics["predicted_latency_ms"])
        #expect(abs(predicted - trial.metrics["latency_ms"]!) / trial.metrics["latency_ms"]! < 0.1)
        let kept = try store.measurements(deviceType: "cpu-x86")
        #expect(kept.count == 1 && kept[0].workerID == "w7" && kept[0].attributes["cpu"] == "x")
        #expect(kept[0].metrics["latency_p90_ms"] != nil && kept[0].metrics["memory_bytes"] == 5000)
        #expect(kept[0].modelSHA256.count == 64)
        #expect(try measurements.records(deviceType: "cpu-x86").count == 13)
        #expect(screen.predictor("cpu-x86")?.sampleCount == 13)
        #expect(screen.trusted("cpu-x86"))

        // The device turns 5x slower than predicted: after enough misses, screening stops for it.
        for candidate in fast[1...3] {
            let proposed = try #require(try screen.wrap { _, _ in candidate }([], []))
            let truth = Self.latency(proposed)
            _ = try Self.succeed(store, screen, proposed, latency: truth * 5)
        }
        #expect(!screen.trusted("cpu-x86"))
        #expect(lines.lines.contains { $0.contains("screening stops") })
        // Untrusted, even a slow candidate is trained.
        let slow = try #require(all.max { Self.latency($0) < Self.latency($1) })
        #expect(try screen.wrap { _, _ in slow }([], []) == slow)
        #expect(try store.trials().allSatisfy { $0.state != .screened })
    }

    @Test func aCommandTrainerCannotPredictAndHardLatencyTargetsAreFound() throws {
        let (store, measurements, _) = try Self.fixture(measured: 0, target: 1)
        #expect(throws: TrialPipelineError.self) {
            try LatencyScreen(store: store, measurements: measurements, configuration: .init(mode: .screen), targets: [], export: nil, log: { _ in })
        }
        let constraints = try ["latency_ms.a<=2", "latency_ms.b<=3:soft", "memory_bytes.a<=9"].map { try Constraint(parsing: $0) }
        #expect(LatencyScreen.targets(constraints, deviceTypes: ["a", "b"]) == [.init(deviceType: "a", milliseconds: 2)])
    }

    /// A busy machine's measurements: each one 15% over or under the generating model's latency, by a fixed
    /// pattern. The predictor's band widens to cover that, so the measurements keep landing inside their
    /// predictions' bands and the screen stays trusted, though many are more than 10% off their prediction (a fixed
    /// ±10% rule would have stopped screening); and what it screens is slow even when measured 15% fast.
    @Test func staysTrustedOnANoisyMachineWhileItsBandsHoldAndScreensOnlyWhatTheBandRulesOut() throws {
        let swing = { (index: Int) -> Double in [1.15, 0.85, 1.0, 0.9, 1.1][index % 5] }
        let (store, measurements, all) = try Self.fixture(measured: 20, target: 0.06, noise: swing)
        let screen = try LatencyScreen(
            store: store, measurements: measurements, configuration: .init(mode: .screen),
            targets: [.init(deviceType: "cpu-x86", milliseconds: 0.06)], export: LatencyScreen.untrainedModel,
            log: { _ in })
        let band = try #require(screen.predictor("cpu-x86")?.kernelBand ?? screen.predictor("cpu-x86")?.relativeBand)
        #expect(band > 0.1 && band.isFinite)
        let byLatency = all.sorted { Self.latency($0) < Self.latency($1) }
        var offByMoreThan10 = 0
        for (index, candidate) in byLatency.prefix(10).enumerated() {
            let proposed = try #require(try screen.wrap { _, _ in candidate }([], []))
            let measured = Self.latency(proposed) * swing(index + 3)
            let id = try Self.succeed(store, screen, proposed, latency: measured)
            let predicted = try #require(try store.trials().first { $0.id == id }?.metrics["predicted_latency_ms"])
            if abs(predicted - measured) / measured > 0.1 { offByMoreThan10 += 1 }
        }
        #expect(offByMoreThan10 >= 3)
        #expect(screen.trusted("cpu-x86"))
        // The slowest candidates: screened only when even 15% faster they would miss the target.
        var index = 0
        let rest = Array(byLatency.suffix(12))
        let propose = screen.wrap { _, _ in
            defer { index += 1 }
            return index < rest.count ? rest[index] : nil
        }
        while try propose([], []) != nil {}
        let screened = try store.trials().filter { $0.state == .screened }
        #expect(!screened.isEmpty)
        let latencyOf = Dictionary(uniqueKeysWithValues: all.map { ($0.choice.decisions, Self.latency($0)) })
        #expect(screened.allSatisfy { latencyOf[$0.decisions]! * 0.85 > 0.06 })
    }

    @Test func aBandIsHeldWhenTheMeasurementIsInsideItAndNotJudgedWhenInfinite() {
        let prediction = LatencyPrediction(milliseconds: 1, lower: 0.8, upper: 1.2, relativeBand: 0.2, unseenKinds: [])
        #expect(LatencyScreen.bandHeld(prediction, measured: 1.15) == true)
        #expect(LatencyScreen.bandHeld(prediction, measured: 0.79) == false)
        #expect(LatencyScreen.bandHeld(prediction, measured: 1.21) == false)
        let unknown = LatencyPrediction(milliseconds: 1, lower: 0, upper: .infinity, relativeBand: .infinity, unseenKinds: [])
        #expect(LatencyScreen.bandHeld(unknown, measured: 5) == nil)
    }
}
