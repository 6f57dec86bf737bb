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
        costs[(item["sampler"], item.get("history", "same"))] = item["median_seconds"]
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
    ours = [statistics.median(runs[(s, b)]) for s in samplers if s in ("nsga2", "motpe")]
    theirs = [statistics.median(runs[(s, b)]) for s in samplers if s.startswith("optuna")]
    if ours and theirs:
        print(f"budget {b}: best of ours / best of Optuna's median hypervolume = {max(ours) / max(theirs):.3f}")
if costs:
    print("proposal cost at 1,000 finished trials (median ms per proposal; same history / one more trial each time):")
    for sampler in dict.fromkeys(s for s, _ in costs):
        cells = "  ".join(f"{costs[(sampler, h)] * 1e3:9.3f}" if (sampler, h) in costs else "        -"
                          for h in ("same", "growing"))
        print(f"  {sampler:<19} {cells}")
    for ours, theirs in (("nsga2", "optuna-nsga2"), ("nsga2", "optuna-nsga2-p16"), ("motpe", "optuna-tpe")):
        for history in ("same", "growing"):
            if (ours, history) in costs and (theirs, history) in costs:
                print(f"  {ours} / {theirs} ({history}): {costs[(ours, history)] / costs[(theirs, history)]:.3f}x")
