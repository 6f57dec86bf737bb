#!/usr/bin/env bash
# Multi-objective samplers on a tabular benchmark, by lookup, against Optuna's in the same run (issue 15):
# median hypervolume at budgets 50 and 100 over 20 seeds, trials to 95% of the table's true front hypervolume,
# proposal cost at 1,000 finished trials (the same history each time, and one more finished trial each time), and
# our hypervolume against optuna._hypervolume on random sets.
#
#   bash bench/tabular/run.sh [TABLE.json]          (default bench/tabular/mobilenet_v2_mini.json)
#   env: SEEDS (20), BUDGETS (50,100), FINISHED (1000), PY (/work/bench-venv/bin/python, with optuna)
set -euo pipefail
cd "$(dirname "$0")/../.."
table=${1:-bench/tabular/mobilenet_v2_mini.json}
py=${PY:-/work/bench-venv/bin/python}
swift build -c release --product MOBench >/dev/null
bin=.build/release/MOBench
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$bin" harness "$table" "${SEEDS:-20}" "${BUDGETS:-50,100}" >> "$out"
"$py" bench/tabular/optuna_harness.py harness "$table" "${SEEDS:-20}" "${BUDGETS:-50,100}" | grep -v true_front >> "$out"
for history in same growing; do
    "$bin" cost "${FINISHED:-1000}" 20 nsga2,motpe,random,evolution $history >> "$out"
    "$py" bench/tabular/optuna_harness.py cost "${FINISHED:-1000}" 20 optuna-nsga2,optuna-nsga2-p16,optuna-tpe $history >> "$out"
done
echo "table: $table"
python3 bench/tabular/summarize.py "$out"
"$py" bench/tabular/optuna_harness.py hv-check "$bin"
