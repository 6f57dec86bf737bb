#!/usr/bin/env bash
# The Slurm launcher's benchmark (on demand, never in CI): N trials (default 256) of a trainer that exits at once,
# through this machine's single-node cluster (scripts/slurm-up.sh; run as root). It prints
#   - Slurm alone: sbatch's submission rate, and the wall time of N jobs of the same trainer command submitted
#     straight to sbatch and waited for;
#   - the search with --launcher slurm (N at once): the rate it submits at, its wall time, and its overhead per
#     trial over Slurm alone;
#   - the time of one poll (the launcher's squeue) with N jobs known against 8;
#   - the search with --launcher local (2 at once) against the same commands run by xargs -P 2.
# "Exits at once": a user's trainer command (--trainer-command) that copies a ready model and prints its accuracy;
# TRAINER=builtin uses nas trainer on one training image instead (--train-limit 1, 1 epoch: ~0.3 s of start and
# data load).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-256}
nas=${NAS:-$PWD/.build/release/nas}
[ -x "$nas" ] || swift build -c release --product nas
bash scripts/slurm-up.sh >/dev/null
work=$(mktemp -d /tmp/nas-slurm-bench.XXXXXX)
builtin=(--num-epochs 1 --train-limit 1 --test-limit 1 --threads 1)
if [ "${TRAINER:-command}" = builtin ]; then
    trainer=("${builtin[@]}")
else
    mkdir -p "$work/seed"
    printf '%s' '{"decisions":[0,0,0,0],"value":[{"kernel_size":3,"filters":1},{"kernel_size":3,"filters":1}]}' \
        > "$work/seed/nas_params_str.json"
    "$nas" trainer --job-dir "$work/seed" --nas-params-str "$work/seed/nas_params_str.json" "${builtin[@]}" >/dev/null
    cp "$work/seed/saved_model/model.onnx" "$work/model.onnx"
    trainer=(--trainer-command "mkdir -p \"\$AIP_MODEL_DIR\" && cp $work/model.onnx \"\$AIP_MODEL_DIR/model.onnx\" && echo top_1_accuracy=0.5"
        --stdout-metrics)
fi
# One trial's run without the search, for sbatch and xargs: the same trial runner and flags.
{
    echo '#!/bin/bash'
    printf 'exec %q trainer --job-dir "$1" --nas-params-str "$1/nas_params_str.json"' "$nas"
    printf ' %q' "${trainer[@]}"
    echo
} > "$work/trial.sh"
chmod +x "$work/trial.sh"
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# Slurm alone: the same trainer command per trial, submitted straight to sbatch.
params='{"decisions":[0,0,0,0],"value":[{"kernel_size":3,"filters":1},{"kernel_size":3,"filters":1}]}'
ids=()
start=$(now)
for i in $(seq "$N"); do
    dir=$work/direct/$i
    mkdir -p "$dir"
    printf '%s' "$params" > "$dir/nas_params_str.json"
    ids+=("$(sbatch --parsable --job-name=bench.direct --chdir="$dir" --output="$dir/trainer.log" \
        --wrap "$work/trial.sh $dir")")
done
submitted=$(now)
all=$(IFS=,; echo "${ids[*]}")
active=PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED,REQUEUED
while [ -n "$(squeue --noheader --states=$active --jobs="$all" --format=%i)" ]; do sleep 0.1; done
done_direct=$(now)
direct_submit=$(elapsed "$start" "$submitted")
direct_total=$(elapsed "$start" "$done_direct")

# One poll, as the launcher makes it, with N jobs known against 8 (the jobs above, still listed as COMPLETED).
poll() {
    python3 - "$1" <<'PY'
import statistics, subprocess, sys, time
ids = sys.argv[1]
times = []
for _ in range(21):
    t = time.perf_counter()
    subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={ids}", "--format=%i|%T|%r|%N"],
                   check=True, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - t)
print(f"{statistics.median(times) * 1000:.1f}")
PY
}
poll_all=$(poll "$all")
poll_8=$(poll "$(IFS=,; echo "${ids[*]:0:8}")")

# The search through Slurm, every trial submitted at once.
search() {
    local name=$1
    shift
    local t0
    t0=$(now)
    "$nas" search --root-output-dir "$work" --job-name "$name" --search-space bench/slurm/space.json \
        --algorithm random --max-trials "$N" --max-failed-trials "$N" "${trainer[@]}" --json "$@" \
        > "$work/$name.events" 2> "$work/$name.log"
    elapsed "$t0" "$(now)"
}
slurm_total=$(search slurm --launcher slurm --slurm-poll-interval 0.2 --max-parallel-trials "$N")
read -r slurm_submit slurm_ok < <(python3 - "$work/slurm.events" <<'PY'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
started = [e["elapsed_seconds"] for e in events if e["event"] == "trial_started"]
ok = sum(e["event"] == "trial_succeeded" for e in events)
print(f"{started[-1] - started[0]:.2f} {ok}")
PY
)

# The local launcher beside it: the search, 2 at once, against the same commands run by xargs -P 2.
start=$(now)
seq "$N" | xargs -P 2 -I{} sh -c "$work/trial.sh $work/direct/{} > $work/direct/{}/local.log 2>&1"
local_direct=$(elapsed "$start" "$(now)")
local_total=$(search local --launcher local --max-parallel-trials 2)

python3 - <<PY
n = $N
print(f"{n} trials of a trainer that exits at once (${TRAINER:-command}), single-node Slurm, 2 CPUs")
print(f"Slurm alone: sbatch {n / $direct_submit:.0f} jobs/s; {n} jobs done in $direct_total s ({$direct_total / n * 1000:.0f} ms per job)")
print(f"search --launcher slurm: submitted {n} in $slurm_submit s ({n / max($slurm_submit, 1e-9):.0f} trials/s); done in $slurm_total s, $slurm_ok succeeded; overhead over Slurm alone {($slurm_total - $direct_total) / n * 1000:.0f} ms per trial")
print(f"one poll (squeue): {$poll_all} ms with {n} jobs known, {$poll_8} ms with 8")
print(f"local: xargs -P 2 $local_direct s; search --launcher local (2 at once) $local_total s; overhead {($local_total - $local_direct) / n * 1000:.0f} ms per trial")
PY
echo "work folder: $work"
