#!/usr/bin/env bash
# Screening (issue 14): a search with a hard latency constraint, with and without `--predictor screen`, same
# seed and trial budget, on `mobilenet_v2_mini` (built-in trainer, tiny recipe, native latency measured in the
# trial's own process). Per run: trainings, trainings spent on candidates that miss the target, candidates
# screened (never trained), wrong screens (screened candidates the unscreened run trained and measured under the
# target), wall time, best feasible reward, and the wall time until a trial reached the unscreened run's best
# feasible reward.
#
# Each screened run starts from an empty measurement store of its own: its predictor learns from the search's own
# first trials (it screens once it has --predictor-min-measurements of them). `screen` keeps the default trust rule
# (screening stops while fewer than 80% of the last 10 measurements fell inside their predictions' bands);
# `screen_lenient` sets --predictor-min-accuracy 0, so only the band decides (a candidate whose band's lower end is
# over the target is screened) and the trust rule is never consulted. MODES="plain screen" runs only those.
# The hard target is the median
# latency of the candidates the unscreened run trains (measured untrained first by a --latency-first probe with an
# unreachable target, as bench/pruning/run.sh does).
#   TRIALS=40 bash bench/predictor/screening.sh            # NAS=... NAS_SKIP_BUILD=1 to use a built binary
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${TRIALS:-40} EPOCHS=${EPOCHS:-1} TRAIN_LIMIT=${TRAIN_LIMIT:-500} TEST_LIMIT=${TEST_LIMIT:-300} SEED=${SEED:-1}
NAS=${NAS:-.build/release/nas}
[ -n "${NAS_SKIP_BUILD:-}" ] || swift build -c release --product nas >/dev/null
ROOT=${ROOT:-$(mktemp -d /tmp/nas-screening-bench.XXXXXX)}
common=(--search-space mobilenet_v2_mini --algorithm random --seed "$SEED" --max-trials "$TRIALS"
    --max-parallel-trials 1 --num-epochs "$EPOCHS" --train-limit "$TRAIN_LIMIT" --test-limit "$TEST_LIMIT"
    --threads 1 --max-failed-trials "$TRIALS" --root-output-dir "$ROOT" --quiet)

# Runs already finished in ROOT (a `MODE.end` file) are not run again: ROOT=... resumes an interrupted benchmark.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -d "$ROOT/probe" ] || "$NAS" search --job-name probe "${common[@]}" --measurement-store none --latency-first \
    --target-latency-millisec 0.000001 >/dev/null
target=$("$NAS" trials list "$ROOT/probe" --json | python3 -c '
import json, statistics, sys
print("%.4f" % statistics.median(t["latency_ms"] for t in json.load(sys.stdin)))')
echo "root $ROOT; hard target: latency_ms <= $target ms (median of the $TRIALS candidates, untrained)"

for mode in ${MODES:-plain screen screen_lenient}; do
    [ -f "$ROOT/$mode.end" ] && continue
    flags=(--measurement-store none)
    [ "$mode" != plain ] && flags=(--measurement-store "$ROOT/$mode-store.sqlite" --predictor screen)
    [ "$mode" = screen_lenient ] && flags+=(--predictor-min-accuracy 0)
    date +%s.%N > "$ROOT/$mode.start"
    "$NAS" search --job-name "$mode" "${common[@]}" --target-latency-millisec "$target" "${flags[@]}" >/dev/null
    date +%s.%N > "$ROOT/$mode.end"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$ROOT" "$target" <<'PY'
import json, os, sqlite3, sys
root, target = sys.argv[1], float(sys.argv[2])

def trials(mode):
    db = sqlite3.connect(f"{root}/{mode}/nas_job.sqlite")
    rows = db.execute("SELECT id, state, decisions, metrics, reward, ended_at FROM trials ORDER BY id").fetchall()
    return [dict(id=i, state=s, decisions=d, metrics=json.loads(m), reward=r, ended=e) for i, s, d, m, r, e in rows]

def feasible(t):
    return t["state"] == "succeeded" and t["metrics"].get("latency_ms", float("inf")) <= target

modes = {"plain": "no screening", "screen": "--predictor screen",
         "screen_lenient": "--predictor screen --predictor-min-accuracy 0"}
runs = {mode: trials(mode) for mode in modes if os.path.exists(f"{root}/{mode}.end")}
best_plain = max((t["reward"] for t in runs["plain"] if feasible(t)), default=None)
measured_plain = {t["decisions"]: t["metrics"].get("latency_ms") for t in runs["plain"] if t["state"] == "succeeded"}
print(f"unscreened run's best feasible reward: {best_plain}")
print("| run | trainings | on infeasible candidates | screened | wrong screens (of those the unscreened run measured) "
      "| wall s | best feasible reward | s (trainings) to the unscreened best |")
print("|---|---|---|---|---|---|---|---|")
for mode, ts in runs.items():
    start, end = (float(open(f"{root}/{mode}.{e}").read()) for e in ("start", "end"))
    trained = [t for t in ts if t["state"] in ("succeeded", "failed", "pruned")]
    missed = [t for t in trained if t["state"] == "succeeded" and not feasible(t)]
    screened = [t for t in ts if t["state"] == "screened"]
    known = [measured_plain[t["decisions"]] for t in screened if t["decisions"] in measured_plain]
    wrong = sum(1 for latency in known if latency is not None and latency <= target)
    best = max((t["reward"] for t in ts if feasible(t)), default=None)
    reach = next(((t["ended"] - start, sum(1 for u in trained if u["id"] <= t["id"])) for t in ts
                  if best_plain is not None and feasible(t) and t["reward"] >= best_plain - 1e-12), None)
    print(f"| {modes[mode]} | {len(trained)} | {len(missed)} "
          f"| {len(screened)} | {wrong} of {len(known)} | {end - start:.0f} | {best} "
          f"| {'%.0f (%d)' % reach if reach is not None else 'not reached'} |")
for mode, ts in runs.items():
    pairs = [(t["metrics"]["predicted_latency_ms"], t["metrics"]["latency_ms"]) for t in ts
             if "predicted_latency_ms" in t["metrics"] and "latency_ms" in t["metrics"]]
    if pairs:
        close = sum(1 for p, m in pairs if abs(p - m) / m <= 0.10)
        bands = [(t["metrics"]["predicted_latency_ms"], t["metrics"].get("predicted_band"), t["metrics"]["latency_ms"])
                 for t in ts if "predicted_latency_ms" in t["metrics"] and "latency_ms" in t["metrics"]]
        held = sum(1 for p, b, m in bands if b is not None and p * (1 - b) <= m <= p * (1 + b))
        judged = sum(1 for p, b, m in bands if b is not None)
        print(f"{modes[mode]}: {close} of {len(pairs)} trials predicted before training within ±10% of their measurement, "
              f"{held} of {judged} with a finite band measured inside it")
PY
