import ArgumentParser
import Foundation
import System
import Predictor
import Search

/// `nas predictor`: the per-device latency predictor learned from kept measurements.
struct PredictorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predictor",
        abstract: "Fit, evaluate and use the latency predictor of a device type, learned from kept measurements.",
        discussion: """
            Every device measurement of a search or train job is kept in the job (nas_job.sqlite) and in the \
            measurement store (--measurement-store, else $\(MeasurementStore.environmentVariable), else \
            ~/.local/share/nas/measurements.sqlite). The predictor sums per-kernel-kind linear models over the \
            model's kernels as the native engine fuses them (nn-Meter's idea); its band is a conformal 90% band \
            on the relative error of cross-validated predictions.

            Examples:
              nas predictor fit --device-type cpu-x86
              nas predictor eval --device-type cpu-x86 --json
              nas predictor predict model.onnx --device-type cpu-x86
              nas predictor eval --device-type cpu-x86 --job nas_jobs/a --job nas_jobs/b
            """,
        subcommands: [Fit.self, Eval.self, Predict.self])

    /// Where the measurements come from; shared by the subcommands.
    struct Source: ParsableArguments {
        @Option(help: "The device type whose measurements to use.")
        var deviceType: String

        @Option(
            help: ArgumentHelp(
                "The measurement store (default: $\(MeasurementStore.environmentVariable), else ~/.local/share/nas/measurements.sqlite).",
                valueName: "PATH"))
        var measurementStore: String?

        @Option(
            name: .customLong("job"),
            help: ArgumentHelp("Use this job folder's measurements instead of the store's; repeatable.", valueName: "DIR"))
        var jobs: [String] = []

        @Flag(help: "Print one JSON object.")
        var json = false

        func store() throws -> MeasurementStore {
            do {
                return try MeasurementStore(path: measurementStore ?? MeasurementStore.defaultPath())
            } catch {
                throw CLIError.badInput("\(error)")
            }
        }

        /// The measurements of the device type, with at least `needed`.
        func records(needed: Int) throws -> [MeasurementRecord] {
            var read = MeasurementRows()
            if jobs.isEmpty {
                read = try store().read(deviceType: deviceType)
            } else {
                for job in jobs {
                    let rows = try JobStore.open(directory: job).readMeasurements(deviceType: deviceType)
                    read.records += rows.records
                    read.problems += rows.problems.map { MeasurementProblem(row: $0.row, reason: "\($0.reason) (job \(job))") }
                }
            }
            for problem in read.problems { printError("nas predictor: \(problem)") }
            let usable = read.records.filter { $0.sample != nil }
            guard usable.count >= needed else {
                let from = jobs.isEmpty ? "the measurement store" : "the jobs \(jobs.joined(separator: ", "))"
                throw CLIError.badInput(
                    "\(PredictorError.tooFewMeasurements(usable.count, needed: needed, deviceType: deviceType)) (read from \(from))")
            }
            return usable
        }
    }

    struct Fit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fit the device type's predictor on all its measurements and keep it in the measurement store.")

        @OptionGroup var source: Source

        private struct Output: Encodable {
            var device_type: String
            var measurements: Int
            var kernel_kinds: [String]
            var relative_band: Double?
            var kernel_timed_measurements: Int
            var kernel_relative_band: Double?
            var fit_seconds: Double
            var store: String
        }

        func run() throws {
            let records = try source.records(needed: 2)
            let start = ContinuousClock.now
            let predictor = try LatencyPredictor.fit(records.compactMap(\.sample))
            let seconds = (ContinuousClock.now - start).inSeconds
            let store = try source.store()
            try store.save(predictor, deviceType: source.deviceType)
            let band = predictor.relativeBand.isFinite ? predictor.relativeBand : nil
            let kernelBand = predictor.kernelBand.flatMap { $0.isFinite ? $0 : nil }
            if source.json {
                print(
                    try jsonLine(
                        Output(
                            device_type: source.deviceType, measurements: predictor.sampleCount,
                            kernel_kinds: predictor.kinds, relative_band: band,
                            kernel_timed_measurements: predictor.kernelSampleCount, kernel_relative_band: kernelBand,
                            fit_seconds: seconds, store: store.path)))
            } else {
                print(
                    "fitted the predictor of '\(source.deviceType)' on \(predictor.sampleCount) measurements in \(String(format: "%.1f", seconds * 1000)) ms")
                print("kernel kinds: \(predictor.kinds.joined(separator: ", "))")
                print("band (90%): " + (band.map { String(format: "±%.1f%%", $0 * 100) } ?? "unknown (too few measurements)"))
                if predictor.kernelSampleCount > 0 {
                    print(
                        "kernel-level model on \(predictor.kernelSampleCount) measurements with kernel times, band (90%): "
                            + (kernelBand.map { String(format: "±%.1f%%", $0 * 100) } ?? "unknown (too few measurements)"))
                }
                print("kept in \(store.path)")
            }
        }
    }

    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate the predictor on held-out models: share within ±10% and ±5%, RMSPE, Spearman, Kendall.",
            discussion: """
                The measurements are split by model (one model's measurements are all on one side), seeded; the \
                predictor is fitted on the training side and judged on the held-out side.
                """)

        @OptionGroup var source: Source

        @Option(help: "Share of the models held out, in (0, 1).")
        var testFraction = 0.2

        @Option(help: "Seeds the split.")
        var seed = 0

        func validate() throws {
            guard testFraction > 0, testFraction < 1 else { throw ValidationError("--test-fraction must be in (0, 1)") }
        }

        private struct Output: Encodable {
            var device_type: String
            var train_measurements: Int
            var test_measurements: Int
            var within_10_percent: Double
            var within_5_percent: Double
            var rmspe: Double
            var spearman: Double?
            var kendall: Double?
            var fit_seconds: Double
        }

        func run() throws {
            let records = try source.records(needed: 4)
            let (train, test) = PredictorSplit.byKey(
                records, key: \.modelSHA256, testFraction: testFraction, seed: UInt64(truncatingIfNeeded: seed))
            guard train.count >= 2, !test.isEmpty else {
                throw CLIError.badInput(
                    "\(records.count) measurements split into \(train.count) to fit and \(test.count) to test; measure more models or change --test-fraction")
            }
            let start = ContinuousClock.now
            let predictor = try LatencyPredictor.fit(train.compactMap(\.sample))
            let seconds = (ContinuousClock.now - start).inSeconds
            let evaluation = PredictorEvaluation(
                predicted: test.map { predictor.predict($0.features).milliseconds },
                measured: test.map { $0.latencyMilliseconds! })
            if source.json {
                print(
                    try jsonLine(
                        Output(
                            device_type: source.deviceType, train_measurements: train.count,
                            test_measurements: test.count, within_10_percent: evaluation.within10,
                            within_5_percent: evaluation.within5, rmspe: evaluation.rmspe,
                            spearman: evaluation.spearman, kendall: evaluation.kendall, fit_seconds: seconds)))
            } else {
                func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
                func number(_ value: Double?) -> String { value.map { String(format: "%.3f", $0) } ?? "-" }
                print("device type '\(source.deviceType)': fitted on \(train.count), tested on \(test.count) held-out measurements")
                print("within ±10%: \(percent(evaluation.within10))   within ±5%: \(percent(evaluation.within5))   RMSPE: \(percent(evaluation.rmspe))")
                print("Spearman: \(number(evaluation.spearman))   Kendall: \(number(evaluation.kendall))")
            }
        }
    }

    struct Predict: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Predict an ONNX model's latency on the device type, with its 90% band.",
            discussion: "Uses the predictor `nas predictor fit` kept; without one, fits it from the measurements first.")

        @Argument(help: ArgumentHelp("The model.", valueName: "MODEL.onnx"))
        var model: String

        @OptionGroup var source: Source

        private struct Output: Encodable {
            var device_type: String
            var latency_ms: Double
            var lower_ms: Double
            var upper_ms: Double?
            var relative_band: Double?
            var unseen_kinds: [String]
            var measurements: Int
        }

        func run() throws {
            let features: ModelFeatures
            do {
                features = try ModelFeatures(onnx: try readModelFile(model))
            } catch let error as CLIError {
                throw error
            } catch {
                throw CLIError.badInput("\(model): \(error)")
            }
            let kept = source.jobs.isEmpty ? try source.store().predictor(deviceType: source.deviceType) : nil
            let predictor = try kept ?? LatencyPredictor.fit(try source.records(needed: 2).compactMap(\.sample))
            let prediction = predictor.predict(features)
            let band = prediction.relativeBand.isFinite ? prediction.relativeBand : nil
            if source.json {
                print(
                    try jsonLine(
                        Output(
                            device_type: source.deviceType, latency_ms: prediction.milliseconds,
                            lower_ms: prediction.lower, upper_ms: band.map { _ in prediction.upper },
                            relative_band: band, unseen_kinds: prediction.unseenKinds,
                            measurements: predictor.sampleCount)))
            } else {
                var line = String(format: "%.4g ms", prediction.milliseconds)
                line += band.map { String(format: " (90%%: %.4g-%.4g ms, ±%.1f%%)", prediction.lower, prediction.upper, $0 * 100) }
                    ?? " (band unknown: too few measurements or unseen kernels)"
                print(line)
                if !prediction.unseenKinds.isEmpty {
                    print("kernel kinds never measured on '\(source.deviceType)': \(prediction.unseenKinds.joined(separator: ", "))")
                }
            }
        }
    }
}
