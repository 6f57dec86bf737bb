"""Two real searches of mobilenet_v2_mini, one with a latency target and one with an equivalent FLOPs target, and
whether they pick different winners (issue 12, item 5).

Usage: python bench/effect/searches.py --nas .build/release/nas [--trials 50] [--seed 3] [--out DIR [--reuse]]

1. A sample search (`nas search --algorithm random --seed S`, no constraint, latency measured by the job's embedded
   native worker) trains and measures the --trials architectures the random sampler proposes with that seed.
2. Equivalent targets: for a share q of the sample, T = the q-quantile of its latency and F = the q-quantile of its
   FLOPs, so that each target leaves the same share of the sample feasible. q is taken from 0.2-0.8 where the
   sample's hard-constraint winners (MnasNet hard: reward = accuracy * min(1, target / measured)) differ with the
   widest margin against latency noise: the smaller of the latency winner's slack under T and its reward lead over
   the runner-up, both relative, i.e. how far latencies may move before the latency search's winner changes.
3. Two real searches (run at the same time) with the same seed, hence the same architectures in the same order,
   trained alike:
   `--constraint 'latency_ms<=T:hard'` and `--constraint 'flops<=F:hard'`, both measuring latency (the FLOPs one to
   show its winner's). Each re-measures every model, so the latency search's winner is what this machine's timing
   gives at that moment, not the sample's. Prints both winners with accuracy, FLOPs and latency, whether they differ,
   and checks that the three searches proposed the same architectures and trained them to the same accuracies.
"""
import os, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from effect import describe, job_arguments, job_rows, reused, search, search_command, winner  # noqa: E402  (bench/effect/effect.py)


def quantile(values, q):
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def hard_reward(row, metric, target):
    return row["top_1_accuracy"] * min(1.0, target / row[metric])


def offline(sample, metric, target):
    """The winner of a hard-constrained search over the sample and the runner-up's reward."""
    ranked = sorted(sample, key=lambda r: hard_reward(r, metric, target), reverse=True)
    return ranked[0], hard_reward(ranked[1], metric, target)


def choose(sample):
    """The share q (0.2-0.8) whose equivalent targets give the sample different winners with the widest margin."""
    best = None
    for step in range(13):
        q = 0.2 + 0.05 * step
        latency_target = quantile([r["latency_ms"] for r in sample], q)
        flops_target = quantile([r["flops"] for r in sample], q)
        by_latency, runner_up = offline(sample, "latency_ms", latency_target)
        by_flops, _ = offline(sample, "flops", flops_target)
        if by_latency["trial_id"] == by_flops["trial_id"]:
            continue
        lead = 1 - runner_up / hard_reward(by_latency, "latency_ms", latency_target)
        slack = 1 - by_latency["latency_ms"] / latency_target
        margin = min(lead, slack)
        if best is None or margin > best[0]:
            best = (margin, q, latency_target, flops_target, by_latency, by_flops)
    return best


def main():
    args = job_arguments(trials=50, seed=3, limit=500).parse_args()
    args.out = args.out or tempfile.mkdtemp(prefix="nas-effect-searches-")
    print(f"searches: jobs in {args.out}; {args.trials} trials each, random sampler, seed {args.seed}", flush=True)

    rows = search(args, "sample", None, args.trials)
    sample = [r for r in rows if r["state"] == "succeeded" and "latency_ms" in r and "flops" in r]
    if len(sample) < 10:
        sys.exit(f"searches: only {len(sample)} trials of the sample succeeded with latency and FLOPs")
    chosen = choose(sample)
    if chosen is None:
        sys.exit("searches: at no share from 0.2 to 0.8 do the sample's latency and FLOPs winners differ")
    margin, q, latency_target, flops_target, sample_l, sample_f = chosen
    print(f"equivalent targets at q = {q:.2f} of the sample: latency_ms <= {latency_target:.4f}, "
          f"flops <= {flops_target:.0f} (each leaves {sum(r['latency_ms'] <= latency_target for r in sample)} and "
          f"{sum(r['flops'] <= flops_target for r in sample)} of {len(sample)} feasible); "
          f"sample winners trial {sample_l['trial_id']} / {sample_f['trial_id']}, margin {margin:.1%}")

    # The two searches run at once (they would take twice as long one after the other): each measures its models
    # while the other trains, as trials of one search do with --max-parallel-trials 2.
    jobs = {"by-latency": f"latency_ms<={latency_target:.6f}:hard", "by-flops": f"flops<={flops_target:.0f}:hard"}
    start = time.monotonic()
    running = {name: subprocess.Popen(search_command(args, name, constraint, args.trials), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
               for name, constraint in jobs.items() if not reused(args, name)}
    for name, process in running.items():
        _, errors = process.communicate()
        if process.returncode != 0:
            sys.exit(f"searches: job {name} failed ({process.returncode}):\n{errors[-2000:]}")
    latency_rows, flops_rows = job_rows(args, "by-latency"), job_rows(args, "by-flops")
    print(f"  jobs by-latency and by-flops, side by side: {len(latency_rows)} and {len(flops_rows)} trials in "
          f"{time.monotonic() - start:.0f} s", flush=True)
    by_id = [{r["trial_id"]: r for r in job} for job in (rows, latency_rows, flops_rows)]
    ids = sorted(by_id[0])
    same_architectures = all(all(job.get(i, {}).get("nas_params") == by_id[0][i]["nas_params"] for i in ids)
                             for job in by_id[1:])
    same_accuracy = all(all(job.get(i, {}).get("top_1_accuracy") == by_id[0][i].get("top_1_accuracy") for i in ids)
                        for job in by_id[1:])
    print(f"same architectures in the three searches: {same_architectures}; same accuracies: {same_accuracy}")
    ratios = [by_id[1][i]["latency_ms"] / by_id[0][i]["latency_ms"] for i in ids
              if "latency_ms" in by_id[1].get(i, {}) and "latency_ms" in by_id[0][i]]
    print(f"latency re-measured in the latency search / the sample: median {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f})")
    by_latency, by_flops = winner(latency_rows), winner(flops_rows)
    print(f"winner with latency_ms<={latency_target:.4f}:hard  {describe(by_latency)}")
    print(f"winner with flops<={flops_target / 1e6:.3f}M:hard    {describe(by_flops)}")
    over = by_flops["latency_ms"] / latency_target
    under = by_latency["flops"] / flops_target
    print(f"the FLOPs winner runs at {over:.2f}x the latency target; the latency winner has {under:.2f}x the FLOPs target")
    print("DIFFERENT WINNERS" if by_latency["nas_params"] != by_flops["nas_params"] else "THE SAME WINNER")


if __name__ == "__main__":
    main()
