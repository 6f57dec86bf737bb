import ArgumentParser
import Foundation
import Search

/// Where a job keeps its device measurements besides its own store; shared by `nas search` and `nas train`.
struct MeasurementStoreOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The SQLite file that keeps every device measurement across jobs (the predictor learns from it); none keeps them in the job only. Default: $\(MeasurementStore.environmentVariable), else ~/.local/share/nas/measurements.sqlite.",
            valueName: "PATH|none"))
    var measurementStore: String?

    /// The store, or nil with `none`.
    func open() throws -> MeasurementStore? {
        let path = measurementStore ?? MeasurementStore.defaultPath()
        guard path != "none" else { return nil }
        do {
            return try MeasurementStore(path: path)
        } catch {
            throw CLIError.badInput("\(error)")
        }
    }
}

/// `nas search`'s latency predictor: predict candidates before training, and screen those that cannot meet a
/// hard latency target.
struct PredictorOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "off; predict (every candidate's latency predicted before it trains, shown beside the measurement); screen (as predict, and candidates whose prediction, band included, misses a hard latency target are recorded as screened, not trained).",
            valueName: "MODE"))
    var predictor: PredictorMode = .off

    @Option(help: "Measurements of a device type before its predictor screens.")
    var predictorMinMeasurements = 10

    @Option(help: "Screening of a device type stops while fewer than this share of its recent measurements fell inside their predictions' bands.")
    var predictorMinAccuracy = 0.8

    @Option(help: "How many recent predicted-then-measured trials that share is taken over.")
    var predictorWindow = 10

    func check() throws {
        guard predictorMinMeasurements >= 2 else { throw ValidationError("--predictor-min-measurements must be 2 or more") }
        guard (0...1).contains(predictorMinAccuracy) else {
            throw ValidationError("--predictor-min-accuracy must be in [0, 1]")
        }
        guard predictorWindow >= 1 else { throw ValidationError("--predictor-window must be 1 or more") }
    }

    /// The settings these flags give, as a new job stores them.
    var settings: PredictorSettings {
        PredictorSettings(
            mode: predictor, minimumMeasurements: predictorMinMeasurements, minimumAccuracy: predictorMinAccuracy,
            window: predictorWindow)
    }

    /// A resumed job's stored settings with the flags given on this command line applied: what it resumes with
    /// and stores. A job written before the settings were stored starts from these flags' values.
    func settings(over stored: PredictorSettings?, given: Set<String>) -> PredictorSettings {
        guard var settings = stored else { return self.settings }
        if given.contains("--predictor") { settings.mode = predictor }
        if given.contains("--predictor-min-measurements") { settings.minimumMeasurements = predictorMinMeasurements }
        if given.contains("--predictor-min-accuracy") { settings.minimumAccuracy = predictorMinAccuracy }
        if given.contains("--predictor-window") { settings.window = predictorWindow }
        return settings
    }
}

extension PredictorMode: ExpressibleByArgument {}
