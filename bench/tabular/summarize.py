"""Medians of MOBench's and optuna_harness.py's JSON lines: hypervolume per budget, trials to 95% of the true
front's hypervolume (a run that never reached it counts as more than its budget), proposal cost."""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
reach = defaultdict(list)
costs = {}
true_front = None
items = [json.loads(line) for line in open(sys.argv[1])]
last_budget = max(item["budget"] for item in items if "budget" in item)
for item in items:
    if "true_front_hypervolume" in item:
        true_front = item["true_front_hypervolume"]
    elif "median_seconds" in item:
        costs[item["sampler"]] = item["median_seconds"]
    else:
        runs[(item["sampler"], item["budget"])].append(item["hypervolume"])
        if item["budget"] == last_budget:
            reach[item["sampler"]].append(item["trials_to_95"] or float("inf"))

print(f"true front hypervolume {true_front:.4f}")
budgets = sorted({b for _, b in runs})
samplers = sorted({s for s, _ in runs}, key=lambda s: (s.startswith("optuna"), s))
print("sampler            " + "".join(f"  median HV@{b:<4}" for b in budgets) + "  median trials to 95%  seeds")
for sampler in samplers:
    cells = "".join(f"  {statistics.median(runs[(sampler, b)]):<13.4f}" for b in budgets)
    trials = statistics.median(reach[sampler])
    print(f"{sampler:<19}{cells}  {trials:<20}  {len(runs[(sampler, budgets[0])])}")
for b in budgets:
    ours = max(statistics.median(runs[(s, b)]) for s in samplers if s in ("nsga2", "motpe"))
    theirs = max(statistics.median(runs[(s, b)]) for s in samplers if s.startswith("optuna"))
    print(f"budget {b}: best of ours / best of Optuna's median hypervolume = {ours / theirs:.3f}")
if costs:
    print("proposal cost at 1,000 finished trials (median seconds per proposal):")
    for sampler, seconds in costs.items():
        print(f"  {sampler:<19} {seconds * 1e3:9.3f} ms")
    for ours, theirs in (("nsga2", "optuna-nsga2"), ("motpe", "optuna-tpe")):
        if ours in costs and theirs in costs:
            print(f"  {ours} / {theirs}: {costs[ours] / costs[theirs]:.3f}x")
