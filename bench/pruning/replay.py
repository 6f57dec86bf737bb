"""Pruners over recorded learning curves: `nas`' (PruningBench, the PruningRule the job loop drives) against Optuna's
SuccessiveHalvingPruner and HyperbandPruner, over the same architectures in the same orders, scored the same way.

    python3 bench/pruning/replay.py export JOB_DIR OUT.json NOTE      a job's curves, latencies and accuracies
    /work/bench-venv/bin/python bench/pruning/replay.py run CURVES.json [SEEDS] [TRIAL_BUDGETS] [EPOCH_BUDGETS]

(`swift build --product PruningBench` first; PRUNING_BENCH names another build of it.)

`run` draws one order of the table's rows per seed (numpy's default_rng(seed).permutation: a random search without
repeats), then runs each order as a sequential search, one trial at a time: a trial trains epoch after epoch (its
recorded accuracy after each), reporting each to the pruner, until the pruner stops it or its curve ends. Optuna's
pruners are driven by ask-and-tell as an Optuna objective drives them: `trial.report(accuracy, epoch)` then
`trial.should_prune()` after every epoch, the last one included. A trial counts as found when it trained all its
epochs (Optuna's pruners judge the last step too: a trial pruned there still trained fully, and its accuracy is
counted); its reward is its final accuracy if its latency_ms is within the table's latency_target_ms (the hard
target), and it is infeasible otherwise. `latency first` modes spend no epochs on an infeasible row, as `nas search
--latency-first` does (Optuna has no such option: a user's objective can do the same, by raising TrialPruned before
training; that is what the Optuna latency-first row does).

Two scores, medians over the seeds:
- at a trial budget T (issue 18's first benchmark): the first T rows of the order; the full-training search's best
  feasible reward over them, and per mode the epochs spent, its best feasible reward and the epochs spent until a
  trial reached the full search's best;
- at an epoch budget B (the second): the best feasible reward found when the total epochs spent reach B (a trial
  still training at B does not count).
"""
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def export(job_dir, out, note):
    """The job's succeeded trials with a full curve, as rows: decisions, value, curve, accuracy, latency."""
    listed = subprocess.run(
        [os.environ.get("NAS", os.path.join(ROOT, ".build/release/nas")), "trials", "list", job_dir, "--json"],
        check=True, capture_output=True, text=True).stdout
    trials = {t["trial_id"]: t for t in json.loads(listed)}
    curves = {i: {p["step"]: p["value"] for p in t.get("curve", [])} for i, t in trials.items()}
    epochs = max(len(c) for c in curves.values())
    rows = []
    for trial_id, t in sorted(trials.items()):
        curve = curves[trial_id]
        if t["state"] != "succeeded" or sorted(curve) != list(range(1, epochs + 1)):
            continue
        rows.append({
            "trial_id": trial_id, "decisions": t["nas_params"]["decisions"], "value": t["nas_params"]["value"],
            "curve": [curve[s] for s in range(1, epochs + 1)], "top_1_accuracy": t["top_1_accuracy"],
            "latency_ms": t["latency_ms"], "flops_million": t["flops_million"], "train_seconds": t["train_seconds"]})
    target = statistics.median(r["latency_ms"] for r in rows)
    with open(out, "w") as f:
        json.dump({"note": note, "space": "mobilenet_v2_mini", "epochs": epochs, "latency_target_ms": target,
                   "latency_target_note": "the median latency_ms of the rows", "rows": rows}, f, indent=1)
        f.write("\n")
    print(f"{len(rows)} rows of {epochs} epochs, latency target {target:.4f} ms", file=sys.stderr)


def optuna_epochs(table, order, pruner, seed, latency_first):
    """Epochs each trial of `order` spends under an Optuna pruner, driven by ask-and-tell."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # A fixed study name: HyperbandPruner deals trials to brackets by a hash of the name and the trial number.
    study = optuna.create_study(
        study_name=f"replay-{seed}", direction="maximize", pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=seed))
    spent = []
    for index in order:
        row = table["rows"][index]
        trial = study.ask()
        if latency_first and row["latency_ms"] > table["latency_target_ms"]:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            spent.append(0)
            continue
        trained, pruned = 0, False
        for epoch, value in enumerate(row["curve"], start=1):
            trained = epoch
            trial.report(value, epoch)
            if trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, row["curve"][-1])
        spent.append(trained)
    return spent


def nas_epochs(curves_path, orders_path, rule, flags):
    """Epochs each trial of each order spends under one of `nas`' rules (PruningBench)."""
    binary = os.environ.get("PRUNING_BENCH", os.path.join(ROOT, ".build/debug/PruningBench"))
    command = [binary, curves_path, orders_path, rule] + flags
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [json.loads(line)["epochs"] for line in out.splitlines()]


def score(table, order, spent, trials=None, budget=None):
    """(epochs spent, best feasible reward, [(epochs so far, reward) of each feasible trial found, in order])."""
    # No feasible trial found scores 0, the reward of an infeasible one.
    epochs, total, best, found = table["epochs"], 0, 0.0, []
    for index, cost in list(zip(order, spent))[:trials]:
        if budget is not None and total + cost > budget:
            break
        total += cost
        row = table["rows"][index]
        if cost == epochs and row["latency_ms"] <= table["latency_target_ms"]:
            found.append((total, row["curve"][-1]))
            best = max(best, row["curve"][-1])
    return total, best, found


def spearman(xs, ys):
    """Spearman's rank correlation (average ranks for ties)."""
    def ranks(values):
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run(curves_path, seeds, trial_budgets, epoch_budgets):
    import numpy as np
    import optuna
    with open(curves_path) as f:
        table = json.load(f)
    epochs = table["epochs"]
    orders = [[int(i) for i in np.random.default_rng(seed).permutation(len(table["rows"]))] for seed in seeds]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"orders": orders}, f)
        orders_path = f.name
    modes = {}
    lf = ["--latency-first"]
    for name, rule, flags in [
            ("full training", "none", []), ("nas asha", "asha", []), ("nas hyperband", "hyperband", []),
            ("nas asha, min resource 3", "asha", ["--min-resource", "3"]), ("latency first", "none", lf),
            ("nas asha + latency first", "asha", lf), ("nas hyperband + latency first", "hyperband", lf),
            ("nas asha, min resource 3 + latency first", "asha", ["--min-resource", "3"] + lf)]:
        modes[name] = nas_epochs(curves_path, orders_path, rule, flags)
    os.unlink(orders_path)
    optuna_pruners = {
        "optuna SuccessiveHalvingPruner": lambda: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=3),
        "optuna HyperbandPruner": lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=3),
    }
    for name, make in optuna_pruners.items():
        modes[name] = [optuna_epochs(table, order, make(), seed, False) for seed, order in zip(seeds, orders)]
    modes["optuna SuccessiveHalvingPruner + latency first"] = [
        optuna_epochs(table, order, optuna_pruners["optuna SuccessiveHalvingPruner"](), seed, True)
        for seed, order in zip(seeds, orders)]

    print(f"{len(table['rows'])} rows x {epochs} epochs, hard target latency_ms <= {table['latency_target_ms']:.4f}, "
          f"{len(seeds)} seeds (medians over seeds)")
    finals = [r["curve"][-1] for r in table["rows"]]
    print("Spearman rank correlation of the accuracy after epoch e with the final one: " + ", ".join(
        f"e={e} {spearman([r['curve'][e - 1] for r in table['rows']], finals):.2f}" for e in range(1, epochs)))
    print(f"final accuracies {min(finals):.4f} to {max(finals):.4f}, median {statistics.median(finals):.4f}\n")
    for trials in trial_budgets:
        full = [score(table, order, spent, trials=trials) for order, spent in zip(orders, modes["full training"])]
        print(f"Trial budget {trials}: full training's best feasible reward, median {median(f[1] for f in full):.4f}")
        print("| mode | epochs spent | best feasible reward | epochs to reach full's best | reached (seeds) | "
              "ratio vs full (median of per-seed ratios) |")
        print("|---|---|---|---|---|---|")
        for name, spent_by_seed in modes.items():
            rows, reach, ratios = [], [], []
            for (order, spent), (_, full_best, full_found) in zip(zip(orders, spent_by_seed), full):
                total, best, found = score(table, order, spent, trials=trials)
                rows.append((total, best))
                full_reach = next((e for e, r in full_found if r >= full_best - 1e-12), None)
                if full_reach is None:
                    continue
                # Not reaching the full search's best counts as infinitely many epochs (a ratio of 0).
                mine = next((e for e, r in found if r >= full_best - 1e-12), math.inf)
                reach.append(mine)
                ratios.append(full_reach / mine if mine > 0 else math.inf)
            reached = sum(r < math.inf for r in reach)
            to_reach = statistics.median(reach) if reach else math.inf
            print(f"| {name} | {median(r[0] for r in rows):g} | {median(r[1] for r in rows):.4f} | "
                  f"{'not reached' if to_reach == math.inf else f'{to_reach:g}'} | {reached}/{len(reach)} | "
                  f"{'-' if not ratios else f'{statistics.median(ratios):.2f}x'} |")
        print()
    print("Epoch budget: median best feasible reward when the total epochs spent reach B")
    print("| mode | " + " | ".join(f"B={b}" for b in epoch_budgets) + " |")
    print("|---|" + "---|" * len(epoch_budgets))
    for name, spent_by_seed in modes.items():
        cells = []
        for budget in epoch_budgets:
            bests = [score(table, order, spent, budget=budget)[1] for order, spent in zip(orders, spent_by_seed)]
            value = median(bests)
            cells.append("-" if value is None else f"{value:.4f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def numbers(text):
    return [int(x) for x in text.split(",")]


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 3 and sys.argv[1] == "run":
        run(sys.argv[2], list(range(numbers(sys.argv[3])[0])) if len(sys.argv) > 3 else list(range(20)),
            numbers(sys.argv[4]) if len(sys.argv) > 4 else [27],
            numbers(sys.argv[5]) if len(sys.argv) > 5 else [45, 90, 135, 180, 270])
    else:
        sys.exit(__doc__)
