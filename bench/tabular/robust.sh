#!/usr/bin/env bash
# The robustness checks of the multi-objective samplers (issue 15): the same comparison as run.sh (ours against
# Optuna's, by lookup, budgets 50 and 100) on the whole table with seeds 0-19 and with 40 other seeds (100-139),
# and on its first and its last 250 rows (bench/tabular/subtable.py, the true front recomputed per sub-table), so that
# a change is kept only if it wins on all four rather than on one table's noise.
#
#   bash bench/tabular/robust.sh [TABLE.json]       (default bench/tabular/mobilenet_v2_mini.json)
#   env: SAMPLERS (nsga2,motpe), PY (/work/bench-venv/bin/python, with optuna), HALF (250), SEEDS_A (0:20), SEEDS_B (100:140)
set -euo pipefail
cd "$(dirname "$0")/../.."
table=${1:-bench/tabular/mobilenet_v2_mini.json}
py=${PY:-/work/bench-venv/bin/python}
half=${HALF:-250}
swift build -c release --product MOBench >/dev/null
bin=.build/release/MOBench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/tabular/subtable.py "$table" "0:$half" > "$work/first.json"
python3 bench/tabular/subtable.py "$table" "-$half:" > "$work/last.json"
a=${SEEDS_A:-0:20}; b=${SEEDS_B:-100:140}
for check in "$table $a whole table, seeds $a" "$table $b whole table, seeds $b" \
    "$work/first.json $a first $half rows, seeds $a" "$work/last.json $a last $half rows, seeds $a"; do
    read -r path seeds label <<<"$check"
    "$bin" harness "$path" "$seeds" 50,100 "${SAMPLERS:-nsga2,motpe}" > "$work/out.jsonl"
    "$py" bench/tabular/optuna_harness.py harness "$path" "$seeds" 50,100 2>/dev/null | grep -v true_front >> "$work/out.jsonl"
    echo "== $label"
    python3 bench/tabular/summarize.py "$work/out.jsonl"
done
