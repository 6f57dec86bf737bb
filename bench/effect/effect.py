"""How far FLOPs are from latency on this CPU, in the mobilenet_v2_mini space (issue 12, item 5).

Usage: python bench/effect/effect.py --nas .build/release/nas [--trials 100] [--search-trials 30] [--out DIR [--reuse]]

1. A real `nas search` (random, --seed) samples --trials architectures of mobilenet_v2_mini, trains each briefly
   (--train-limit images, one epoch: accuracy is a proxy here, latency does not depend on it), exports its ONNX
   model, counts its FLOPs and measures its p50 latency with the native engine (the job's embedded worker).
2. Each exported model is measured again here, alternating `nas measure --json` (adaptive: until the p50's 95%
   interval is within +-1% or 5 s) and onnxruntime (1 intra-op thread, p50 of as many runs as fill 0.5 s), so
   that machine noise hits both alike; `nas flops --json` counts its FLOPs again (checked equal to the job's).
3. Kendall's tau-b (scipy.stats.kendalltau) between FLOPs and each runtime's latency, and between the runtimes.
4. Equivalent targets: the median p50 latency T of the sampled trials and the median FLOPs F, so that each target
   leaves the same share (half) of the sample feasible. Two real searches with the same seed (so the same first
   --search-trials architectures, trained alike), one with `--constraint 'latency_ms<=T'`, one with
   `--constraint 'flops<=F'` (hard, MnasNet's 0/-1), and their winners (best nas_reward) printed side by side.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

import onnxruntime as ort
from scipy.stats import kendalltau

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from onnx_latency import ort_p50  # noqa: E402  (bench/onnx_latency.py: 1 intra-op thread, preallocated input)


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"effect: {' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def search_command(args, name, constraint, trials):
    command = [args.nas, "search", "--search-space", "mobilenet_v2_mini", "--algorithm", "random",
               "--seed", str(args.seed), "--max-trials", str(trials), "--max-parallel-trials", "1",
               "--num-epochs", "1", "--train-limit", str(args.train_limit), "--test-limit", str(args.test_limit),
               "--root-output-dir", args.out, "--job-name", name, "--measurement-store", "none", "--quiet"]
    # Latency is measured in every job (the FLOPs-constrained one too, to show its winner's latency).
    return command + ["--target-device-type", "cpu-x86"] + (["--constraint", constraint] if constraint else [])


def reused(args, name):
    return args.reuse and os.path.exists(os.path.join(args.out, name, "nas_job.sqlite"))


def job_rows(args, name):
    return json.loads(run([args.nas, "trials", "list", os.path.join(args.out, name), "--json"]))


def search(args, name, constraint, trials):
    start = time.monotonic()
    if not reused(args, name):
        run(search_command(args, name, constraint, trials))
    rows = job_rows(args, name)
    print(f"  job {name}: {len(rows)} trials in {time.monotonic() - start:.0f} s", flush=True)
    return rows


def winner(rows):
    best = max((r for r in rows if r.get("nas_reward") is not None), key=lambda r: r["nas_reward"])
    return best


def describe(row):
    stages = row["nas_params"]["value"]["stages"]
    shape = " | ".join(f"{s['filters']}x{len(s['blocks'])}:" + ",".join(
        f"e{b['expansion']}k{b['kernel_size']}{'se' if b['se'] else ''}" for b in s["blocks"]) for s in stages)
    return (f"trial {row['trial_id']}: acc {row['top_1_accuracy']:.4f}, {row['flops'] / 1e6:.2f} MFLOPs, "
            f"{row['latency_ms']:.4f} ms, reward {row['nas_reward']:.4f}  [{shape}]")


def job_arguments(trials, seed, limit):
    """The flags `search` reads (also bench/effect/searches.py's), with these defaults."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--nas", required=True)
    parser.add_argument("--trials", type=int, default=trials)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--train-limit", type=int, default=limit)
    parser.add_argument("--test-limit", type=int, default=limit)
    parser.add_argument("--out")
    parser.add_argument("--reuse", action="store_true", help="reuse the jobs already in --out (a run cut short)")
    return parser


def main():
    parser = job_arguments(trials=100, seed=1, limit=1000)
    parser.add_argument("--search-trials", type=int, default=30)
    parser.add_argument("--ort-seconds", type=float, default=0.5)
    args = parser.parse_args()
    args.out = args.out or tempfile.mkdtemp(prefix="nas-effect-")
    print(f"effect: jobs in {args.out}; onnxruntime {ort.__version__}, 1 thread", flush=True)

    sample = [r for r in search(args, "effect-sample", None, args.trials)
              if r["state"] == "succeeded" and "latency_ms" in r and "flops" in r]
    flops, native, ort_ms = [], [], []
    for row in sorted(sample, key=lambda r: r["trial_id"]):
        model = os.path.join(args.out, "effect-sample", str(row["trial_id"]), "saved_model", "model.onnx")
        counted = json.loads(run([args.nas, "flops", model, "--json"]))["flops"]
        if counted != row["flops"]:
            sys.exit(f"effect: trial {row['trial_id']}: nas flops says {counted}, the job {row['flops']}")
        report = json.loads(run([args.nas, "measure", model, "--precision", "0.01", "--max-time", "5", "--json"]))
        flops.append(counted)
        native.append(report["latency_ms"])
        ort_ms.append(ort_p50(model, 20, 50, args.ort_seconds))
    n = len(flops)
    print(f"\n{n} architectures of mobilenet_v2_mini: {min(flops) / 1e6:.2f}-{max(flops) / 1e6:.2f} MFLOPs, "
          f"native p50 {min(native):.4f}-{max(native):.4f} ms, onnxruntime p50 {min(ort_ms):.4f}-{max(ort_ms):.4f} ms")
    for label, x, y in [("FLOPs vs native", flops, native), ("FLOPs vs onnxruntime", flops, ort_ms),
                        ("native vs onnxruntime", native, ort_ms), ("FLOPs vs the job's latency_ms", flops,
                                                                   [r["latency_ms"] for r in sorted(sample, key=lambda r: r["trial_id"])])]:
        tau, p = kendalltau(x, y)
        print(f"Kendall tau {label:<30} {tau:6.3f}  (p {p:.1e})")
    ratios = [a / b for a, b in zip(native, ort_ms)]
    print(f"native / onnxruntime p50: median {statistics.median(ratios):.3f}x "
          f"(min {min(ratios):.3f}x, max {max(ratios):.3f}x)")

    latency_target = statistics.median(r["latency_ms"] for r in sample)
    flops_target = statistics.median(r["flops"] for r in sample)
    share_l = sum(r["latency_ms"] <= latency_target for r in sample) / n
    share_f = sum(r["flops"] <= flops_target for r in sample) / n
    both = sum(r["latency_ms"] <= latency_target and r["flops"] <= flops_target for r in sample)
    print(f"\nequivalent targets: latency_ms<={latency_target:.4f} leaves {share_l:.0%} of the sample feasible, "
          f"flops<={flops_target:.0f} {share_f:.0%}; {both} of {n} meet both, "
          f"{sum(r['latency_ms'] <= latency_target for r in sample) - both} only the latency one, "
          f"{sum(r['flops'] <= flops_target for r in sample) - both} only the FLOPs one")
    k = args.search_trials
    latency_rows = search(args, "effect-latency", f"latency_ms<={latency_target:.6f}", k)
    flops_rows = search(args, "effect-flops", f"flops<={flops_target:.0f}", k)
    same = all(a["nas_params"] == b["nas_params"] for a, b in zip(
        sorted(latency_rows, key=lambda r: r["trial_id"]), sorted(flops_rows, key=lambda r: r["trial_id"])))
    print(f"two searches, seed {args.seed}, {k} trials each, same architectures in the same order: {same}")
    by_latency, by_flops = winner(latency_rows), winner(flops_rows)
    print(f"  winner with latency_ms<={latency_target:.4f}: {describe(by_latency)}")
    print(f"  winner with flops<={flops_target / 1e6:.3f}M:  {describe(by_flops)}")
    print("  different winners" if by_latency["nas_params"] != by_flops["nas_params"]
          else "  the same winner: on this sample the two targets agree at the top")

if __name__ == "__main__":
    main()
