#!/usr/bin/env bash
# A tabular benchmark of a search space: N architectures sampled (none twice), each trained with one fixed recipe
# and measured on this CPU by the real `nas search` pipeline (native engine latency p50, peak memory, FLOPs), written
# as bench/tabular/<SPACE>.json with a note on how it was made. MOBench and optuna_harness.py search it by lookup.
#
#   bash bench/tabular/make_table.sh SPACE N [OUT.json]
#   env: EPOCHS (1), TRAIN_LIMIT (6000), TEST_LIMIT (2000), SEED (0), THREADS (1), NAS (the nas binary),
#        TARGETS ('latency_ms=...,memory_bytes=...': the objectives' targets; default each metric's median)
set -euo pipefail
cd "$(dirname "$0")/../.."
space=${1:?usage: make_table.sh SPACE N [OUT.json]}
count=${2:?usage: make_table.sh SPACE N [OUT.json]}
out=${3:-bench/tabular/$(basename "$space" .json).json}
nas=${NAS:-.build/release/nas}
[ -x "$nas" ] || { swift build -c release --product nas >/dev/null; nas=.build/release/nas; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
recipe="--num-epochs ${EPOCHS:-1} --train-limit ${TRAIN_LIMIT:-6000} --test-limit ${TEST_LIMIT:-2000} --threads ${THREADS:-1} --seed ${SEED:-0}"
# One trial at a time, so that no measurement shares the cores with another trial's training. No constraint: the
# trainer measures this machine's latency and memory in process either way, and the table holds raw metrics.
# shellcheck disable=SC2086
"$nas" search --search-space "$space" --algorithm random --max-trials "$count" --max-parallel-trials 1 \
    --job-name table --root-output-dir "$root" $recipe --quiet >&2
"$nas" trials list "$root/table" --json | python3 bench/tabular/to_table.py --space "$space" \
    --recipe "nas search --search-space $space --algorithm random --max-trials $count --max-parallel-trials 1 $recipe" \
    --targets "${TARGETS:-}" > "$out"
echo "wrote $out" >&2
