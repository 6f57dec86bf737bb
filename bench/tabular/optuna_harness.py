"""Optuna's samplers over a tabular benchmark by ask-and-tell, the peer of `MOBench harness` in the same run.

    /work/bench-venv/bin/python bench/tabular/optuna_harness.py harness TABLE.json [SEEDS|FIRST:END] [BUDGETS]
    /work/bench-venv/bin/python bench/tabular/optuna_harness.py cost [FINISHED] [PROPOSALS] [SAMPLERS] [same|growing]
    /work/bench-venv/bin/python bench/tabular/optuna_harness.py hv-check MOBENCH_BINARY

Each architecture is told to Optuna define-by-run, as a user would write the space: its concrete value (the row's
`value`) flattened into one categorical parameter per leaf that varies over the table (`stages[1].filters`,
`stages[1].blocks[0].kernel_size`) and one per list whose length varies (`stages[1].blocks#len`), a list's items
suggested only below its suggested length, so that Optuna's samplers see conditional parameters as in its own
examples. Objectives maximise top_1_accuracy and minimise each metric; `constraints_func` returns metric / target - 1.
An architecture Optuna proposes again is a trial again (Optuna does not skip repeats), as a user's study would spend
it; one the table lacks (a sampled table of a large space) is looked up as the nearest row not yet used (fewest
differing parameters), as MOBench does with its decisions. The hypervolume is the same as `nas trials list`'s:
feasible trials, (1 - accuracy, metric / target ...) against (1, 1, ...), computed by
`optuna._hypervolume.compute_hypervolume`.
"""
import json
import re
import subprocess
import sys
import time

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume

optuna.logging.set_verbosity(optuna.logging.ERROR)


def flatten(value, path="", out=None):
    """A concrete architecture as {path: leaf}, with `PATH#len` for each list's length."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        out[f"{path}#len"] = len(value)
        for index, item in enumerate(value):
            flatten(item, f"{path}[{index}]", out)
    else:
        out[path] = json.dumps(value)
    return out


def load(path):
    """The table, its rows by their parameters (a tuple of sorted (name, option) pairs) and each parameter's
    options, in suggestion order."""
    with open(path) as f:
        table = json.load(f)
    flat = [flatten(r["value"]) for r in table["rows"]]
    seen = {}
    for item in flat:
        for name, leaf in item.items():
            seen.setdefault(name, set()).add(leaf)
    # '#' sorts before '[' and '.', so a list's length comes before its items.
    options = {name: sorted(leaves) for name, leaves in sorted(seen.items()) if len(leaves) > 1}
    rows = {}
    for row, item in zip(table["rows"], flat):
        rows.setdefault(tuple(sorted((n, v) for n, v in item.items() if n in options)), row)
    return table, rows, options


def suggest(trial, options):
    """The architecture `trial` proposes, define-by-run: an item of a list only below the list's suggested length."""
    chosen = {}
    for name, leaves in options.items():
        active = True
        for match in re.finditer(r"\[(\d+)\]", name):
            length = chosen.get(name[:match.start()] + "#len")
            if length is not None and int(match.group(1)) >= length:
                active = False
                break
        if active:
            value = trial.suggest_categorical(name, leaves)
            chosen[name] = value
    return tuple(sorted(chosen.items()))


def nearest(choice, keys, used):
    """The row not yet used (any, once all are) with the fewest parameters differing from `choice`."""
    mine = dict(choice)
    left = [k for k in keys if k not in used] or keys
    def distance(key):
        theirs = dict(key)
        return sum(mine.get(n) != theirs.get(n) for n in mine.keys() | theirs.keys())
    return min(left, key=distance)


def normalised(row, objectives):
    point = [1 - row[objectives["accuracy"]]] + [row[m] / t for m, t in zip(objectives["metrics"], objectives["targets"])]
    feasible = all(row[m] <= t for m, t in zip(objectives["metrics"], objectives["targets"]))
    return point, feasible


def hypervolume(points, dims):
    inside = [p for p in points if all(x < 1 for x in p)]
    if not inside:
        return 0.0
    return float(compute_hypervolume(np.array(inside), np.ones(dims)))


def samplers(seed, objectives):
    def constraints(trial):
        return trial.user_attrs["constraints"]
    return {
        "optuna-nsga2": optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints),
        "optuna-nsga2-p16": optuna.samplers.NSGAIISampler(seed=seed, population_size=16, constraints_func=constraints),
        "optuna-tpe": optuna.samplers.TPESampler(seed=seed, constraints_func=constraints),
    }


def seed_range(text):
    """SEEDS as N (seeds 0 to N-1) or A:B (seeds A to B-1), so that seeds can be split among processes."""
    first, _, last = text.rpartition(":")
    return range(int(first or 0), int(last))


def harness(path, seeds, budgets):
    table, rows, options = load(path)
    objectives = table["objectives"]
    dims = 1 + len(objectives["metrics"])
    keys = sorted(rows)
    true_front = hypervolume([p for p, f in (normalised(rows[k], objectives) for k in keys) if f], dims)
    print(json.dumps({"true_front_hypervolume": true_front, "rows": len(rows)}))
    for seed in seeds:
        for name, sampler in samplers(seed, objectives).items():
            directions = ["maximize"] + ["minimize"] * len(objectives["metrics"])
            study = optuna.create_study(directions=directions, sampler=sampler)
            used, feasible_points, history, repeats = set(), [], [], 0
            for _ in range(max(budgets)):
                trial = study.ask()
                choice = suggest(trial, options)
                if choice not in rows:
                    choice = nearest(choice, keys, used)
                repeats += choice in used
                used.add(choice)
                row = rows[choice]
                trial.set_user_attr("constraints", [row[m] / t - 1 for m, t in zip(objectives["metrics"], objectives["targets"])])
                study.tell(trial, [row[objectives["accuracy"]]] + [row[m] for m in objectives["metrics"]])
                point, feasible = normalised(row, objectives)
                if feasible:
                    feasible_points.append(point)
                history.append(hypervolume(feasible_points, dims))
            reach = next((i + 1 for i, v in enumerate(history) if v >= 0.95 * true_front), None)
            for budget in budgets:
                print(json.dumps({"sampler": name, "seed": seed, "budget": budget, "hypervolume": history[budget - 1],
                                  "trials_to_95": reach, "repeats": repeats}))


def cost(finished, proposals, names=None, growing=False):
    """Seconds per proposal (ask + the 8 suggestions) with `finished` trials of the landscape MOBench cost uses, or
    (`growing`) each proposal after one more trial was told, as MOBench's `growing`."""
    rng = np.random.default_rng(1)
    distributions = {f"d{i}": optuna.distributions.CategoricalDistribution(list(range(8))) for i in range(8)}
    trials, seen = [], set()
    while len(trials) < finished + (proposals if growing else 0):
        d = tuple(int(x) for x in rng.integers(0, 8, 8))
        if d in seen:
            continue
        seen.add(d)
        g = 1 + 9 * sum(d[1:]) / (7 * 7)
        x = d[0] / 7
        values = [1 - x, g * (1 - (x / g) ** 0.5), 1 + sum(d[1:4])]
        trials.append(optuna.trial.create_trial(
            params={f"d{i}": d[i] for i in range(8)}, distributions=distributions, values=values,
            user_attrs={"constraints": [values[1] / 10 - 1, values[2] / 40 - 1]}))
    for name, sampler in samplers(3, None).items():
        if names and name not in names:
            continue
        study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
        study.add_trials(trials[:finished])
        times = []
        for index in range(proposals):
            if growing:
                study.add_trial(trials[finished + index])
            start = time.perf_counter()
            trial = study.ask()
            for i in range(8):
                trial.suggest_categorical(f"d{i}", list(range(8)))
            times.append(time.perf_counter() - start)
            # Told as failed, which both samplers ignore: every proposal sees the same `finished` trials, as MOBench's.
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        times.sort()
        print(json.dumps({"sampler": name, "finished": finished, "history": "growing" if growing else "same",
                          "median_seconds": times[len(times) // 2]}))


def hv_check(binary):
    """Our hypervolume against Optuna's on random sets of 2 to 4 objectives: prints the largest difference."""
    rng = np.random.default_rng(7)
    sets = []
    for round in range(300):
        dims = 2 + round % 3
        points = rng.random((1 + round % 40, dims))
        sets.append({"points": points.tolist(), "reference": [1.0] * dims})
    out = subprocess.run([binary, "hv"], input=json.dumps({"sets": sets}), capture_output=True, text=True, check=True)
    ours = [float(x) for x in out.stdout.split()]
    theirs = [float(compute_hypervolume(np.array(s["points"]), np.array(s["reference"]))) for s in sets]
    worst = max(abs(a - b) for a, b in zip(ours, theirs))
    print(json.dumps({"hv_sets": len(sets), "max_abs_difference": worst, "optuna": optuna.__version__}))


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "harness":
        harness(sys.argv[2], seed_range(sys.argv[3] if len(sys.argv) > 3 else "20"),
                [int(b) for b in sys.argv[4].split(",")] if len(sys.argv) > 4 else [50, 100])
    elif command == "cost":
        cost(int(sys.argv[2]) if len(sys.argv) > 2 else 1000, int(sys.argv[3]) if len(sys.argv) > 3 else 20,
             sys.argv[4].split(",") if len(sys.argv) > 4 else None, len(sys.argv) > 5 and sys.argv[5] == "growing")
    elif command == "hv-check":
        hv_check(sys.argv[2])
    else:
        sys.exit(__doc__)
