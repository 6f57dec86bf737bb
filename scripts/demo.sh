#!/usr/bin/env bash
# The main job: sets up what is missing, builds `nas`, and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
swift build -c release
nas=.build/release/nas
echo "== The seed tutorial's table, scored as vertex-ai-nas compute_reward does =="
"$nas" reward <<'JSONL'
{"accuracy": 0.95, "target_latency_or_flops": 0.8, "measured_latency_or_flops": 0.4, "use_hard_limit": false}
{"accuracy": 0.95, "target_latency_or_flops": 0.8, "measured_latency_or_flops": 0.4, "use_hard_limit": true}
{"accuracy": 0.95, "target_latency_or_flops": 0.8, "measured_latency_or_flops": 1.6}
JSONL
echo
echo "== Accuracy subject to FLOPs <= 0.8M (hard), CPU latency <= 3 ms (soft), memory <= 2 MB, power <= 5 W =="
"$nas" reward --accuracy 0.91 --metric flops=397548 --metric latency_ms=3.4 --metric memory_bytes=2.5M \
    --metric power_w=5.5 --constraint 'flops<=0.8M:hard' --constraint 'latency_ms<=3:soft' \
    --constraint 'memory_bytes<=2M:vertex-hard,weight=0.5' --constraint 'power<=5:weight=2'
echo
echo "== Constraint plugins loaded =="
"$nas" plugins list
