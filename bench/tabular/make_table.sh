#!/usr/bin/env bash
# A tabular benchmark of a search space: N architectures sampled (none twice), each trained with one fixed recipe
# by the real `nas search` pipeline, then measured on this CPU in a separate pass (`nas measure`: native engine
# batch-1 latency p50 of many runs, peak working memory; FLOPs from the trial), written as bench/tabular/<SPACE>.json
# with a note on how it was made. MOBench and optuna_harness.py search it by lookup.
#
#   bash bench/tabular/make_table.sh SPACE N [OUT.json]
#   env: EPOCHS (1), TRAIN_LIMIT (6000), TEST_LIMIT (2000), SEED (0), THREADS (1), NAS (the nas binary),
#        ROOT (the job's folder: kept, and a second run resumes it; default a temporary folder, deleted),
#        REPEATS (200: `nas measure --repeats`), MIN_TIME (0.2: `nas measure --min-time`),
#        TARGETS ('latency_ms=...,memory_bytes=...': the objectives' targets; default each metric's median)
# A run that stops (Ctrl-C, the end of a session) loses nothing with ROOT set: the same command continues the
# search where it stopped (`nas search --resume`) and measures only the trials not yet measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
space=${1:?usage: make_table.sh SPACE N [OUT.json]}
count=${2:?usage: make_table.sh SPACE N [OUT.json]}
out=${3:-bench/tabular/$(basename "$space" .json).json}
nas=${NAS:-.build/release/nas}
[ -x "$nas" ] || { swift build -c release --product nas >/dev/null; nas=.build/release/nas; }
if [ -n "${ROOT:-}" ]; then
    root=$ROOT
    mkdir -p "$root"
else
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
fi
recipe="--num-epochs ${EPOCHS:-1} --train-limit ${TRAIN_LIMIT:-6000} --test-limit ${TEST_LIMIT:-2000} --threads ${THREADS:-1} --seed ${SEED:-0}"
# One trial at a time, so that no trial's training shares the cores with another's. No constraint: the table holds
# raw metrics; latency and memory are measured below, in a pass of their own.
if [ -d "$root/table" ]; then
    "$nas" search --resume "$root/table" --max-trials "$count" --quiet >&2
else
    # shellcheck disable=SC2086
    "$nas" search --search-space "$space" --algorithm random --max-trials "$count" --max-parallel-trials 1 \
        --job-name table --root-output-dir "$root" $recipe --quiet >&2
fi
# The latency pass: every trial's exported model measured alone, after the training (which would share the cores),
# with more runs than a trial's own measurement; one JSON line per trial, kept, so that a rerun measures only new
# trials. The system load during each measurement goes with it, for the note.
measured=$root/measured.jsonl
touch "$measured"
for model in "$root"/table/*/saved_model/model.onnx; do
    [ -f "$model" ] || continue
    trial=$(basename "$(dirname "$(dirname "$model")")")
    grep -q "^{\"trial\":$trial," "$measured" && continue
    metrics=$("$nas" measure "$model" --repeats "${REPEATS:-200}" --min-time "${MIN_TIME:-0.2}" --json)
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "{\"trial\":$trial,\"load\":$load,\"metrics\":$metrics}" >> "$measured"
done
"$nas" trials list "$root/table" --json | python3 bench/tabular/to_table.py --space "$space" \
    --recipe "nas search --search-space $space --algorithm random --max-trials $count --max-parallel-trials 1 $recipe" \
    --measured "$measured" --repeats "${REPEATS:-200}" --targets "${TARGETS:-}" > "$out"
echo "wrote $out" >&2
