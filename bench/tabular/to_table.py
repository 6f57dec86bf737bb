"""Turns `nas trials list JOB --json` and the latency pass of make_table.sh into the tabular benchmark MOBench and
optuna_harness.py read."""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--space", required=True)
parser.add_argument("--recipe", required=True)
parser.add_argument("--measured", required=True, help="JSON lines {trial, load, metrics} of `nas measure --json`")
parser.add_argument("--repeats", required=True, help="the latency pass's `nas measure --repeats`")
parser.add_argument("--targets", default="", help="METRIC=TARGET,...; default each metric's median over the table")
args = parser.parse_args()

measured = {}
with open(args.measured) as f:
    for line in f:
        if line.strip():
            item = json.loads(line)
            measured[item["trial"]] = item
trials = [t for t in json.load(sys.stdin) if t["state"] == "succeeded" and t["trial_id"] in measured]
rows = []
for t in trials:
    m = measured[t["trial_id"]]["metrics"]
    rows.append({"decisions": t["nas_params"]["decisions"], "value": t["nas_params"]["value"],
                 "top_1_accuracy": t["top_1_accuracy"], "latency_ms": m["latency_ms"],
                 "memory_bytes": m["memory_bytes"], "flops": t["flops"]})
rows.sort(key=lambda r: r["decisions"])
given = dict(item.split("=", 1) for item in args.targets.split(",") if item)
objectives = ["latency_ms", "memory_bytes"]
targets = [float(given[m]) if m in given else statistics.median(r[m] for r in rows) for m in objectives]
loads = sorted(measured[t["trial_id"]]["load"] for t in trials)
accuracies = sorted(r["top_1_accuracy"] for r in rows)
json.dump({
    "note": (f"{len(rows)} architectures of {args.space}, sampled without repeats, each trained once by "
             f"`{args.recipe}` (bench/tabular/make_table.sh), {datetime.date.today()}, "
             f"{platform.processor() or platform.machine()} with {os.cpu_count()} cores shared with other work. "
             f"top_1_accuracy is the trial's test accuracy (from {accuracies[0]:.4f} to {accuracies[-1]:.4f}, median "
             f"{statistics.median(accuracies):.4f}); latency_ms is the native engine's batch-1 p50 of at least "
             f"{args.repeats} runs by `nas measure`, in a pass after the training, one model at a time, with a "
             f"1-minute load average from {loads[0]:.1f} to {loads[-1]:.1f} (median {statistics.median(loads):.1f}) "
             "on the 2 cores, so latencies carry that load's noise; memory_bytes the engine's peak working memory; flops TensorFlow's profiler convention. "
             "Objectives: maximise top_1_accuracy, minimise latency_ms and memory_bytes; targets "
             + ("as given" if given else "the metrics' medians over the table") + "."),
    "space": args.space,
    "objectives": {"accuracy": "top_1_accuracy", "metrics": objectives, "targets": targets},
    "rows": rows,
}, sys.stdout, indent=1)
print()
