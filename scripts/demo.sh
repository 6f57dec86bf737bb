#!/usr/bin/env bash
# The main job: sets up what is missing, builds `nas`, and runs a small latency-constrained search of the seed
# tutorial's space on Fashion-MNIST, with an embedded coordinator and a native worker of this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
for product in nas nas_latency nas_memory nas_power; do swift build -c release --product "$product"; done
job_root=${NAS_DEMO_ROOT:-nas_jobs}
.build/release/nas search \
    --job-name "tutorial-$(date -u +%Y%m%d-%H%M%S)" --root-output-dir "$job_root" \
    --search-space mnist_list_of_dictionary --algorithm evolution --seed 1 \
    --max-trials 12 --max-parallel-trials 2 --num-epochs 2 \
    --target-latency-millisec 0.02 "$@"
