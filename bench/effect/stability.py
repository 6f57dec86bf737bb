"""How repeatable `nas measure`'s p50 is on a shared machine: the coefficient of variation of p50 over separate runs
(issue 12: at most 3%), with descheduled samples counted at their thread CPU time (the default) against their wall
time (`--preempted wall-time`, the harness before), alternating run by run so that the load hits both alike.

Usage: python bench/effect/stability.py --nas .build/release/nas [--runs 10] [--space-dir DIR [--space-count 3]]
           [--torchvision-dir DIR] [--peer OLD_NAS] [--no-tutorial] [--min-time 1] [--max-time 3] [--precision 0.01]

Models: the tutorial's three CNNs (bench/onnx_latency.py writes them), the .onnx files in --torchvision-dir
(bench/export_torchvision.py) and the models of the first --space-count trials under --space-dir (architectures of
mobilenet_v2_mini: a search's job folder, looked at when their turn comes, so a search may still be filling it).
--peer adds a third column: another `nas` binary (a build from before this harness), with its own flags. Each run is one `nas measure --json` process: at least --repeats
samples and --min-time seconds, then until the p50's 95% interval is within +-precision or --max-time.
Per model and policy: the CV of the runs' p50s, the median share of samples found descheduled, the median interval
half-width, and the median of the p50s.
"""
import argparse, glob, json, os, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from onnx_latency import ARCHITECTURES, write_model  # noqa: E402

def measure(args, path, policy, repeats):
    binary, extra = (args.peer, []) if policy == "peer" else (args.nas, ["--preempted", policy])
    command = [binary, "measure", path, "--json", "--warmup", "20", "--repeats", str(repeats),
               "--min-time", str(args.min_time), "--precision", str(args.precision), "--max-time", str(args.max_time),
               *extra]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"stability: {' '.join(command)} failed ({result.returncode}): {result.stderr[-1000:]}")
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nas", required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--space-dir")
    parser.add_argument("--space-count", type=int, default=3)
    parser.add_argument("--peer")
    parser.add_argument("--no-tutorial", dest="tutorial", action="store_false", help="leave the tutorial's CNNs out")
    parser.add_argument("--torchvision-dir")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--max-time", type=float, default=3.0)
    parser.add_argument("--precision", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        models = []
        for seed, (name, layers) in enumerate(ARCHITECTURES.items() if args.tutorial else []):
            models.append((name, os.path.join(folder, name + ".onnx")))
            write_model(models[-1][1], layers, seed)
        if args.torchvision_dir:
            models += [(os.path.basename(p)[:-5], p) for p in sorted(glob.glob(os.path.join(args.torchvision_dir, "*.onnx")))]
        if args.space_dir:
            models += [(f"space/{trial}", os.path.join(args.space_dir, str(trial), "saved_model", "model.onnx"))
                       for trial in range(1, args.space_count + 1)]
        policies = ["thread-time", "wall-time"] + (["peer"] if args.peer else [])
        print(f"nas measure stability: {args.runs} runs per model and policy, alternating; each run >= {args.repeats} "
              f"samples and {args.min_time:g} s, then until +-{args.precision:.0%} or {args.max_time:g} s "
              f"(load average {os.getloadavg()[0]:.1f} at the start)", flush=True)
        print(f"{'model':<24} {'p50 ms':>9} | " + " | ".join(f"{'CV ' + p:>14} {'desched.':>8} {'interval':>8}"
                                                          for p in policies))
        summary = []
        for name, path in models:
            waited = 0
            while not os.path.exists(path):  # a trial of the search that is still running
                if waited > 1800:
                    sys.exit(f"stability: {path} did not appear in 30 minutes; is the search in --space-dir running?")
                time.sleep(10)
                waited += 10
            reports = {policy: [] for policy in policies}
            for run in range(args.runs):
                for policy in (policies if run % 2 == 0 else policies[::-1]):
                    reports[policy].append(measure(args, path, policy, args.repeats))
            cells = []
            for policy in policies:
                p50s = [r["latency_ms"] for r in reports[policy]]
                cv = statistics.stdev(p50s) / statistics.mean(p50s) * 100
                shares = [r["latency_preempted_runs"] / r["latency_runs"] for r in reports[policy]
                          if "latency_preempted_runs" in r]
                width = statistics.median(max(r["latency_ms"] - r["latency_p50_interval"]["low_ms"],
                                              r["latency_p50_interval"]["high_ms"] - r["latency_ms"]) / r["latency_ms"]
                                          for r in reports[policy])
                descheduled = f"{statistics.median(shares):>8.1%}" if shares else f"{'-':>8}"
                cells.append(f"{cv:>13.2f}% {descheduled} {width:>7.2%}")
                summary.append((name, policy, cv))
            p50 = statistics.median(r["latency_ms"] for r in reports["thread-time"])
            print(f"{name:<24} {p50:>9.4f} | " + " | ".join(cells), flush=True)
        for policy in policies:
            cvs = [(name, cv) for name, p, cv in summary if p == policy]
            over = [name for name, cv in cvs if cv > 3]
            print(f"CV <= 3% with {policy}: {len(cvs) - len(over)} of {len(cvs)} models"
                  + (f" (not: {', '.join(over)})" if over else ""))
        print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
