import ArgumentParser
import Search
import System

/// `nas search`'s early-stopping flags: the pruner, its parameters, and latency first.
struct PrunerOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Stop unpromising trials early: median (below the median of the others at the same epoch), asha (asynchronous successive halving, Li et al. 2020) or hyperband (brackets of ASHA). Pruned trials are recorded as pruned with their partial accuracy, not as failures.",
            valueName: "RULE"))
    var pruner: PrunerKind?

    @Option(
        name: .customLong("pruner-min-resource"),
        help: "The first rung (asha, hyperband) or the warm-up epochs (median), in epochs (a trainer command's global_step).")
    var minResource = PrunerConfiguration.defaults.minResource

    @Option(
        name: .customLong("pruner-reduction-factor"),
        help: "eta: rungs at min-resource * eta^k; the top 1/eta of the trials at a rung go on.")
    var reductionFactor = PrunerConfiguration.defaults.reductionFactor

    @Option(
        name: .customLong("pruner-max-resource"),
        help: "The steps of a whole training (default: --num-epochs); no trial is judged at or above it.")
    var maxResource: Double?

    @Option(
        name: .customLong("pruner-startup-trials"),
        help: "median: how many other trials must have reached an epoch before a trial is judged there.")
    var startupTrials = PrunerConfiguration.defaults.startupTrials

    @Option(
        name: .customLong("pruner-grace-seconds"),
        help: "Seconds a pruned trial's trainer gets between SIGTERM and SIGKILL.")
    var graceSeconds = PrunerConfiguration.defaults.grace.inSeconds

    @Flag(
        name: .customLong("latency-first"),
        help:
            "With a hard device constraint: export and measure each trial's untrained model first, and do not train one that misses the target (recorded as infeasible with its latency). A --trainer-command must then export its model without training when NAS_EXPORT_ONLY=1 is set.")
    var latencyFirst = false

    /// The pruner's settings for a job of `epochs` epochs, checked; nil without --pruner.
    func configuration(epochs: Int) throws -> PrunerConfiguration? {
        guard let pruner else { return nil }
        guard let grace = PrunerConfiguration.grace(seconds: graceSeconds) else {
            throw ValidationError("--pruner-grace-seconds must be 0 to 1e9 seconds, not \(graceSeconds)")
        }
        let configuration = PrunerConfiguration(
            kind: pruner, minResource: minResource, reductionFactor: reductionFactor,
            maxResource: maxResource ?? Double(epochs), startupTrials: startupTrials, grace: grace)
        do {
            try configuration.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return configuration
    }

    /// The flags each `nas trainer` of the job gets: report each epoch for the pruner, measure first.
    func trainerArguments(pruning: Bool) -> [String] {
        (pruning ? ["--report-each-epoch"] : []) + (latencyFirst ? ["--latency-first"] : [])
    }
}

extension PrunerKind: ExpressibleByArgument {}
