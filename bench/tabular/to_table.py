"""Turns `nas trials list JOB --json` into the tabular benchmark MOBench and optuna_harness.py read."""
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
parser.add_argument("--targets", default="", help="METRIC=TARGET,...; default each metric's median over the table")
args = parser.parse_args()

trials = [t for t in json.load(sys.stdin) if t["state"] == "succeeded"]
metrics = ["latency_ms", "memory_bytes", "flops"]
rows = [{"decisions": t["nas_params"]["decisions"], "value": t["nas_params"]["value"],
         "top_1_accuracy": t["top_1_accuracy"], **{m: t[m] for m in metrics if m in t}} for t in trials]
rows.sort(key=lambda r: r["decisions"])
given = dict(item.split("=", 1) for item in args.targets.split(",") if item)
objectives = [m for m in ("latency_ms", "memory_bytes") if all(m in r for r in rows)]
targets = [float(given[m]) if m in given else statistics.median(r[m] for r in rows) for m in objectives]
json.dump({
    "note": (f"{len(rows)} architectures of {args.space}, sampled without repeats, each trained once and measured on "
             f"this machine by `{args.recipe}` (bench/tabular/make_table.sh), {datetime.date.today()}, "
             f"{platform.processor() or platform.machine()} with {os.cpu_count()} cores; latency_ms is the native "
             "engine's batch-1 p50, memory_bytes its peak working memory, flops TensorFlow's profiler convention. "
             "Objectives: maximise top_1_accuracy, minimise each metric below; targets "
             + ("as given" if given else "the metrics' medians over the table") + "."),
    "space": args.space,
    "objectives": {"accuracy": "top_1_accuracy", "metrics": objectives, "targets": targets},
    "rows": rows,
}, sys.stdout, indent=1)
print()
