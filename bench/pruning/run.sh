#!/usr/bin/env bash
# Early stopping (issue 18): on the MobileNet-style space, the same trial budget and seed, a full-training search
# against ASHA, Hyperband, latency first, and ASHA with latency first. Per mode: wall time, training epochs
# spent (a succeeded trial's --num-epochs, a pruned one's epochs up to its stop, one never trained 0), the best
# feasible reward, and the epochs spent until a trial reached the full search's best feasible reward.
#
# The hard latency target is the median latency of the 16 candidates, measured first by a latency-first pass
# with an unreachable target (every candidate exported and measured untrained, none trained).
#   TRIALS=16 EPOCHS=3 TRAIN_LIMIT=3000 TEST_LIMIT=1000 PARALLEL=2 bash bench/pruning/run.sh
#
# FULL_JOB=DIR takes the full-training mode from an existing full-training job of the same seed and settings (the
# curves recording of bench/pruning/replay.py, whose median pruner never prunes: its curves only): its first TRIALS
# trials, wall time from the first one's start to the TRIALS-th's end; the hard target is still the probe's.
# THREADS (default 1) is each trainer's --threads; NAS_FLAGS more flags for every search (--measurement-store FILE).
#
# With an existing ROOT, a mode whose job is listed there ($ROOT/MODE.json) is not run again and the probe's target
# is kept: a stopped run goes on where it was. MODES="asha hyperband" runs only those modes; two runs with disjoint
# MODES can share a ROOT (the table lists the modes that have finished).
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${TRIALS:-16} EPOCHS=${EPOCHS:-3} TRAIN_LIMIT=${TRAIN_LIMIT:-3000} TEST_LIMIT=${TEST_LIMIT:-1000}
PARALLEL=${PARALLEL:-2} SEED=${SEED:-1} THREADS=${THREADS:-1} FULL_JOB=${FULL_JOB:-}
NAS=${NAS:-.build/release/nas}
[ -n "${NAS_SKIP_BUILD:-}" ] || swift build -c release --product nas >/dev/null
ROOT=${ROOT:-$(mktemp -d /tmp/nas-pruning-bench.XXXXXX)}
common=(--search-space mobilenet_v2_mini --algorithm random --seed "$SEED" --max-trials "$TRIALS"
    --max-parallel-trials "$PARALLEL" --num-epochs "$EPOCHS" --train-limit "$TRAIN_LIMIT" --test-limit "$TEST_LIMIT"
    --threads "$THREADS" --latency-repeats 20 --max-failed-trials "$TRIALS" --root-output-dir "$ROOT" --quiet)
# shellcheck disable=SC2206
common+=(${NAS_FLAGS:-})
modes=(full asha hyperband latency_first asha_latency_first)

[ -f "$ROOT/probe.json" ] || {
    "$NAS" search --job-name probe "${common[@]}" --latency-first --target-latency-millisec 0.000001 >/dev/null
    "$NAS" trials list "$ROOT/probe" --json > "$ROOT/probe.json"
}
target=$(python3 -c '
import json, statistics, sys
print("%.4f" % statistics.median(t["latency_ms"] for t in json.load(sys.stdin)))' < "$ROOT/probe.json")
echo "root $ROOT; hard target: latency_ms <= $target (median of the untrained candidates)"
[ -z "$FULL_JOB" ] || modes=(asha hyperband latency_first asha_latency_first)
# shellcheck disable=SC2206
[ -z "${MODES:-}" ] || modes=($MODES)

declare -A flags=(
    [full]="" [asha]="--pruner asha" [hyperband]="--pruner hyperband" [latency_first]="--latency-first"
    [asha_latency_first]="--pruner asha --latency-first"
)
for mode in "${modes[@]}"; do
    [ ! -f "$ROOT/$mode.json" ] || continue
    rm -rf "${ROOT:?}/$mode"
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$NAS" search --job-name "$mode" "${common[@]}" --target-latency-millisec "$target" ${flags[$mode]} >/dev/null
    echo "$mode $(echo "$(date +%s.%N) - $start" | bc)" >> "$ROOT/wall"
    "$NAS" trials list "$ROOT/$mode" --json > "$ROOT/$mode.json"
done
if [ -n "$FULL_JOB" ] && [ ! -f "$ROOT/full.json" ]; then
    "$NAS" trials list "$FULL_JOB" --json | python3 -c '
import json, sys
trials = [t for t in json.load(sys.stdin) if t["trial_id"] <= int(sys.argv[1])]
assert len(trials) == int(sys.argv[1]), f"{len(trials)} trials in the full job, {sys.argv[1]} needed"
print(json.dumps(trials))' "$TRIALS" > "$ROOT/full.json"
    python3 - "$FULL_JOB/nas_job.sqlite" "$TRIALS" >> "$ROOT/wall" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
start, end = db.execute("SELECT MIN(started_at), MAX(ended_at) FROM trials WHERE id <= ?", (int(sys.argv[2]),)).fetchone()
print("full", end - start)
PY
fi

python3 - "$ROOT" "$EPOCHS" "$target" <<'PY'
import json, os, sys
root, epochs, target = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
wall = dict(line.split() for line in open(root + "/wall"))  # a mode run again (its job removed) counts its last run
def trials(mode): return json.load(open(f"{root}/{mode}.json"))
def spent(t):
    if t["state"] == "succeeded": return epochs
    if t["state"] == "pruned": return t["pruned_at_step"]
    return 0
def feasible(t): return t["state"] == "succeeded" and t.get("latency_ms", float("inf")) <= target
best_full = max((t["nas_reward"] for t in trials("full") if feasible(t)), default=None)
print(f"| mode | wall s | epochs spent | best feasible reward | epochs to reach full's best ({best_full}) |")
print("|---|---|---|---|---|")
for mode in ["full", "asha", "hyperband", "latency_first", "asha_latency_first"]:
    if mode not in wall or not os.path.exists(f"{root}/{mode}.json"):
        continue
    ts = sorted(trials(mode), key=lambda t: t["trial_id"])
    total, reach = 0, None
    for t in ts:
        total += spent(t)
        if reach is None and best_full is not None and feasible(t) and t["nas_reward"] >= best_full - 1e-12:
            reach = total
    best = max((t["nas_reward"] for t in ts if feasible(t)), default=None)
    print(f"| {mode} | {float(wall[mode]):.0f} | {total:g} | {best} | {reach if reach is not None else 'not reached'} |")
PY
