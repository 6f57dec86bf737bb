#!/usr/bin/env bash
# `nas reward` over 1,000,000 JSON lines in vertex-ai-nas's form, against the seed's formula in CPython
# (json + the same arithmetic, bench/reward/seed_reward.py), in the same run. Prints medians of 3 and the ratio.
# Usage: bash bench/reward/run.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/../.."
lines=${1:-1000000}
swift build -c release --product nas >/dev/null
nas=.build/release/nas
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
python3 - "$lines" > "$data/trials.jsonl" <<'PY'
import json, random, sys
random.seed(1)
for i in range(int(sys.argv[1])):
    line = {"accuracy": round(random.uniform(0.5, 0.99), 4),
            "target_latency_or_flops": 0.8,
            "measured_latency_or_flops": round(random.uniform(0.1, 3.0), 4),
            "weight": random.choice([1, 0.5, 2]),
            "use_hard_limit": random.random() < 0.5}
    if i % 3 == 0:
        line["target_memory"] = 100
        line["measured_memory"] = random.randint(20, 300)
    print(json.dumps(line))
PY
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_of() { local start end; start=$(date +%s.%N); "$@" > /dev/null; end=$(date +%s.%N); echo "$end - $start" | bc -l; }
nas_times=(); py_times=()
for _ in 1 2 3; do
    nas_times+=("$(time_of "$nas" reward --input "$data/trials.jsonl")")
    py_times+=("$(time_of python3 bench/reward/seed_reward.py < "$data/trials.jsonl")")
done
nas_median=$(printf '%s\n' "${nas_times[@]}" | median)
py_median=$(printf '%s\n' "${py_times[@]}" | median)
# Both must agree before their times mean anything.
"$nas" reward --input "$data/trials.jsonl" > "$data/nas.jsonl"
python3 bench/reward/seed_reward.py < "$data/trials.jsonl" > "$data/python.jsonl"
python3 - "$data/nas.jsonl" "$data/python.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as a, open(sys.argv[2]) as b:
    count = 0
    for x, y in zip(a, b):
        rx, ry = json.loads(x)["reward"], json.loads(y)["reward"]
        assert rx == ry, (count, rx, ry)
        count += 1
print(f"outputs agree on {count} lines")
PY
printf 'lines: %s\nnas reward (median of 3): %.3f s\nCPython seed formula (median of 3): %.3f s\nratio CPython/nas: %.2fx\n' \
    "$lines" "$nas_median" "$py_median" "$(echo "$py_median / $nas_median" | bc -l)"
