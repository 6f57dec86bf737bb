import ArgumentParser
import Search

/// `--reference-point`: the reference of the hypervolume `nas trials list` and `nas report` show.
struct HypervolumeOptions: ParsableArguments {
    @Option(
        name: .customLong("reference-point"),
        help: ArgumentHelp(
            "The hypervolume's reference point in the metrics' own units, METRIC=VALUE,... over top_1_accuracy and the constrained metrics (default: accuracy 0, each metric at its constraint's target).",
            valueName: "METRIC=VALUE,..."))
    var referencePoint: String?

    /// The job's hypervolume history against the reference given, else the default one.
    func history(_ store: JobStore, plugins: PluginOptions) throws -> HypervolumeHistory {
        let objectives = ObjectiveSpace(constraints: JobResults.constraints(store.config, plugins: plugins))
        let reference: [Double]?
        do {
            reference = try referencePoint.map { try objectives.reference(parsing: $0) }
        } catch let error as ObjectiveError {
            throw ValidationError(error.message)
        }
        return HypervolumeHistory(trials: try store.trials(), objectives: objectives, reference: reference)
    }
}
