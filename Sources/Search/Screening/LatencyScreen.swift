import Constraints
import FleetWire
import Foundation
import Predictor
import Trainer

/// What a search does with its latency predictors.
public enum PredictorMode: String, CaseIterable, Codable, Sendable {
    /// Measurements are kept; nothing is predicted.
    case off
    /// Every candidate's latency is predicted before it trains (shown beside the measurement); none is skipped.
    case predict
    /// As `predict`, and a candidate whose prediction, band included, misses a hard latency target is not trained.
    case screen
}

/// A search's predictor settings as its job stores them (`JobConfig.predictor`).
public struct PredictorSettings: Codable, Hashable, Sendable {
    /// `off`, `predict` or `screen`.
    public var mode: PredictorMode
    /// Measurements of a device type before its predictor screens.
    public var minimumMeasurements: Int
    /// The recent share of measurements inside their predictions' bands below which a device type is no longer
    /// screened.
    public var minimumAccuracy: Double
    /// How many recent predicted-then-measured trials that share is taken over.
    public var window: Int

    /// Settings; the defaults are `LatencyScreen.Configuration`'s.
    public init(
        mode: PredictorMode = .off, minimumMeasurements: Int = 10, minimumAccuracy: Double = 0.8, window: Int = 10
    ) {
        self.mode = mode
        self.minimumMeasurements = minimumMeasurements
        self.minimumAccuracy = minimumAccuracy
        self.window = window
    }

    /// The screen's configuration with these settings.
    public var configuration: LatencyScreen.Configuration {
        LatencyScreen.Configuration(
            mode: mode, minimumMeasurements: minimumMeasurements, minimumAccuracy: minimumAccuracy, window: window)
    }
}

/// The search's side of the predictor: keeps every trial's device measurements (in the job store and the
/// measurement store), refits each device type's predictor as they arrive, predicts candidates before they train
/// and, in `screen` mode, records the ones that cannot meet a hard latency target as screened instead of training
/// them.
///
/// A device type is screened only while its predictor is trusted: fitted on at least `minimumMeasurements`, with
/// a finite band, and, once it has predicted trials that were then measured, with at least `minimumAccuracy` of
/// the last `window` of them measured inside their prediction's band. The band is what a screen relies on (a
/// candidate is screened when the band's lower end is over the target), so that is what is checked: whether the
/// band the predictor claimed held, not whether the prediction came within a fixed ±10%, which on a busy machine
/// the measurements themselves do not repeat to (their noise widens the band instead, and fewer candidates are
/// screened). It runs on the job loop's thread, like the loop itself.
public final class LatencyScreen {
    /// The screen's settings.
    public struct Configuration: Sendable {
        /// What is predicted and screened.
        public var mode: PredictorMode
        /// Measurements of a device type before its predictor may screen; 10 by default.
        public var minimumMeasurements: Int
        /// The recent share of measurements inside their predictions' bands below which a device type is no
        /// longer screened; 0.8 by default (the band is a 90% one).
        public var minimumAccuracy: Double
        /// How many recent predicted-then-measured trials the accuracy is taken over; 10 by default.
        public var window: Int
        /// Candidates screened in a row after which the next is trained anyway, so that a search whose space is
        /// all too slow still ends; 1000 by default.
        public var maximumScreenedInARow: Int
        /// The predictor's fit settings.
        public var fit: LatencyPredictor.Configuration

        /// Settings with the documented defaults.
        public init(
            mode: PredictorMode = .off, minimumMeasurements: Int = 10, minimumAccuracy: Double = 0.8,
            window: Int = 10, maximumScreenedInARow: Int = 1000,
            fit: LatencyPredictor.Configuration = LatencyPredictor.Configuration()
        ) {
            self.mode = mode
            self.minimumMeasurements = minimumMeasurements
            self.minimumAccuracy = minimumAccuracy
            self.window = window
            self.maximumScreenedInARow = maximumScreenedInARow
            self.fit = fit
        }
    }

    /// A hard latency constraint: the device type it reads and its target, milliseconds.
    public struct Target: Sendable, Hashable {
        /// The device type.
        public var deviceType: String
        /// The target p50 latency, milliseconds.
        public var milliseconds: Double

        /// A target.
        public init(deviceType: String, milliseconds: Double) {
            self.deviceType = deviceType
            self.milliseconds = milliseconds
        }
    }

    /// The metric a trial's prediction is kept under: `predicted_latency_ms` (`.TYPE` with several device types).
    public static let predictedMetric: MetricName = "predicted_latency_ms"
    /// The band's relative half-width kept beside it: `predicted_band` (`.TYPE`).
    public static let bandMetric: MetricName = "predicted_band"

    private let store: JobStore
    private let measurements: MeasurementStore?
    private let configuration: Configuration
    private let deviceTypes: [String]
    private let targets: [Target]
    private let export: ((TrialParameters) throws -> [UInt8])?
    private let log: (String) -> Void
    private var predictors: [String: LatencyPredictor] = [:]
    /// Per device type, whether each trial predicted with a finite band was then measured inside it, in the order
    /// measured.
    private var scored: [String: [Bool]] = [:]
    /// The predictions of candidates sent to train, by their decisions, until their trial is measured.
    private var pending: [[Int]: [String: LatencyPrediction]] = [:]

    /// A screen for `store`'s job. `export` gives an untrained model's ONNX bytes for a candidate (nil when the
    /// job's trainer cannot, which `predict` and `screen` need); `log` receives a line per screened candidate and
    /// per change of trust.
    public init(
        store: JobStore, measurements: MeasurementStore?, configuration: Configuration, targets: [Target],
        export: ((TrialParameters) throws -> [UInt8])?, log: @escaping (String) -> Void
    ) throws {
        if configuration.mode != .off, export == nil {
            throw TrialPipelineError(
                "--predictor \(configuration.mode.rawValue) predicts a candidate from its untrained model, which only the built-in trainer exports; use --predictor off with --trainer-command")
        }
        self.store = store
        self.measurements = measurements
        self.configuration = configuration
        self.deviceTypes = store.config.targetDeviceTypes
        self.targets = targets
        self.export = export
        self.log = log
        if configuration.mode != .off {
            for type in deviceTypes { refit(type) }
        }
    }

    /// The hard latency constraints among `constraints` of a job measuring `deviceTypes`.
    public static func targets(_ constraints: [Constraint], deviceTypes: [String]) -> [Target] {
        constraints.compactMap { constraint in
            guard constraint.exponents.alpha == 0, constraint.exponents.beta < 0 else { return nil }
            for type in deviceTypes
            where MetricName.latency.on(deviceType: type, qualified: deviceTypes.count > 1).rawValue == constraint.metric {
                return Target(deviceType: type, milliseconds: constraint.target)
            }
            return nil
        }
    }

    /// The built-in trainer's model of a candidate with untrained (seeded random) weights: what the screen
    /// predicts, since latency does not depend on the weights' values.
    public static func untrainedModel(_ parameters: TrialParameters) throws -> [UInt8] {
        try parameters.model().untrainedONNX(seed: 0)
    }

    /// The predictor of `deviceType`, once fitted.
    public func predictor(_ deviceType: String) -> LatencyPredictor? { predictors[deviceType] }

    /// True while `deviceType`'s predictor may screen candidates.
    public func trusted(_ deviceType: String) -> Bool {
        guard let predictor = predictors[deviceType], predictor.sampleCount >= configuration.minimumMeasurements,
            (predictor.kernelBand ?? predictor.relativeBand).isFinite
        else { return false }
        let recent = (scored[deviceType] ?? []).suffix(configuration.window)
        guard recent.count >= min(3, configuration.window) else { return true }
        return Double(recent.filter { $0 }.count) / Double(recent.count) >= configuration.minimumAccuracy
    }

    /// Keeps the device measurements of a trial that succeeded, adds its prediction (if one was made) to its
    /// metrics, scores it and refits. A measurement that cannot be kept is logged, never fatal to the search.
    public func trialSucceeded(_ id: Int) {
        do {
            try record(id)
        } catch {
            log("trial \(id): its measurements were not kept: \(error)")
        }
    }

    private func record(_ id: Int) throws {
        let directory = store.trialDirectory(id) as NSString
        guard let trial = try store.trials().first(where: { $0.id == id }) else { return }
        let predictions = pending.removeValue(forKey: trial.decisions) ?? [:]
        guard let sidecar = FileManager.default.contents(atPath: directory.appendingPathComponent(TrialFiles.measurements)),
            let model = FileManager.default.contents(atPath: directory.appendingPathComponent(TrialFiles.model))
        else { return }
        let answers = try JSONDecoder().decode([DeviceMeasurement].self, from: sidecar)
        let bytes = Array(model)
        let features = try ModelFeatures(onnx: bytes)
        let hash = SHA256.hex(SHA256.hash(bytes))
        var merged: [String: Double] = [:]
        for answer in answers {
            var metrics: [String: Double] = [:]
            for metric in MetricName.deviceMetrics + [.latencyStddev, .latencyRuns] {
                if let value = answer.metrics[metric.rawValue] ?? TrialPipeline.legacyRunnerNames[metric].flatMap({ answer.metrics[$0] }) {
                    metrics[metric.rawValue] = value
                }
            }
            let record = MeasurementRecord(
                deviceType: answer.deviceType, workerID: answer.workerID, attributes: answer.attributes,
                runtime: answer.runtime, modelSHA256: hash, features: features, metrics: metrics,
                job: store.directory, trialID: id, kernelTimes: answer.kernelTimes)
            try store.addMeasurement(record)
            try measurements?.add(record)
            let qualified = deviceTypes.count > 1
            if let prediction = predictions[answer.deviceType], let measured = record.latencyMilliseconds {
                merged[Self.predictedMetric.on(deviceType: answer.deviceType, qualified: qualified).rawValue] =
                    prediction.milliseconds
                if prediction.relativeBand.isFinite {
                    merged[Self.bandMetric.on(deviceType: answer.deviceType, qualified: qualified).rawValue] =
                        prediction.relativeBand
                }
                let wasTrusted = trusted(answer.deviceType)
                if let held = Self.bandHeld(prediction, measured: measured) {
                    scored[answer.deviceType, default: []].append(held)
                }
                if configuration.mode == .screen, wasTrusted, !trusted(answer.deviceType) {
                    let recent = (scored[answer.deviceType] ?? []).suffix(configuration.window)
                    log(
                        "predictor of '\(answer.deviceType)': \(recent.filter { $0 }.count) of its last \(recent.count) measurements inside their predictions' bands, under --predictor-min-accuracy \(configuration.minimumAccuracy); screening stops for it while that lasts")
                }
            }
            if configuration.mode != .off { refit(answer.deviceType) }
        }
        if !merged.isEmpty { try store.mergeMetrics(id, merged) }
    }

    /// Whether `measured` fell inside the band of `prediction`; nil when the band was infinite (the predictor did
    /// not know, and claimed nothing to check).
    static func bandHeld(_ prediction: LatencyPrediction, measured: Double) -> Bool? {
        bandHeld(predicted: prediction.milliseconds, band: prediction.relativeBand, measured: measured)
    }

    /// The same from a trial's recorded metrics: the prediction, its relative band and the measurement.
    static func bandHeld(predicted: Double, band: Double, measured: Double) -> Bool? {
        guard band.isFinite else { return nil }
        return predicted * (1 - band) <= measured && measured <= predicted * (1 + band)
    }

    private func refit(_ deviceType: String) {
        let records = (try? measurements?.records(deviceType: deviceType)) ?? (try? store.measurements(deviceType: deviceType)) ?? []
        let samples = records.compactMap(\.sample)
        guard samples.count >= 2 else { return }
        do {
            predictors[deviceType] = try LatencyPredictor.fit(samples, configuration: configuration.fit)
        } catch {
            log("predictor of '\(deviceType)' not refitted: \(error)")
        }
    }

    /// `propose` with every candidate predicted and, in `screen` mode, the ones that cannot meet a hard target
    /// recorded as screened trials (which do not count against `--max-trials`) while the next is proposed.
    public func wrap(_ propose: @escaping JobLoop.Proposer) -> JobLoop.Proposer {
        guard configuration.mode != .off, let export else { return propose }
        return { [self] proposed, finished in
            var proposed = proposed
            var screenedInARow = 0
            while let candidate = try propose(proposed, finished) {
                let features = try ModelFeatures(onnx: try export(candidate))
                var predictions: [String: LatencyPrediction] = [:]
                for type in deviceTypes {
                    if let predictor = predictors[type] { predictions[type] = predictor.predict(features) }
                }
                let misses = targets.compactMap { target -> (Target, LatencyPrediction)? in
                    guard configuration.mode == .screen, trusted(target.deviceType),
                        let prediction = predictions[target.deviceType], prediction.lower > target.milliseconds
                    else { return nil }
                    return (target, prediction)
                }
                guard !misses.isEmpty, screenedInARow < configuration.maximumScreenedInARow else {
                    pending[candidate.choice.decisions] = predictions
                    return candidate
                }
                try screen(candidate, predictions: predictions, misses: misses)
                screenedInARow += 1
                proposed.append(candidate.choice)
            }
            return nil
        }
    }

    private func screen(
        _ candidate: TrialParameters, predictions: [String: LatencyPrediction], misses: [(Target, LatencyPrediction)]
    ) throws {
        let qualified = deviceTypes.count > 1
        var metrics: [String: Double] = [:]
        for (type, prediction) in predictions {
            metrics[Self.predictedMetric.on(deviceType: type, qualified: qualified).rawValue] = prediction.milliseconds
            metrics[Self.bandMetric.on(deviceType: type, qualified: qualified).rawValue] = prediction.relativeBand
        }
        let reason = misses.map { target, prediction in
            String(
                format: "predicted %.4g ms on '%@' (at least %.4g ms, ±%.0f%%) > target %.4g ms", prediction.milliseconds,
                target.deviceType, prediction.lower, prediction.relativeBand * 100, target.milliseconds)
        }.joined(separator: "; ")
        let id = try store.addScreenedTrial(
            parameters: candidate.jsonText, decisions: candidate.choice.decisions, metrics: metrics, reason: reason)
        try candidate.write(toTrialDirectory: store.trialDirectory(id))
        log("trial \(id) screened, not trained: \(reason)")
    }
}
