#!/usr/bin/env bash
# Search efficiency (issue: search jobs): trials each algorithm needs to reach the best architecture of the
# tutorial space, averaged over 20 seeds, on a fixed reward table, against random search in the same run.
#
# The table (bench/search/tutorial_rewards.json) was made by training every architecture once:
#   nas search --algorithm grid --max-trials 36 --num-epochs 2 --target-latency-millisec 0.02 --job-name tutorial-grid
#   nas trials list nas_jobs/tutorial-grid --json | python3 bench/search/table.py > bench/search/tutorial_rewards.json
# Also prints the wall time of the README's main command when run with --main-command.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product SearchBench >/dev/null
.build/release/SearchBench bench/search/tutorial_rewards.json "${SEEDS:-20}"
if [ "${1:-}" = "--main-command" ]; then
    start=$(date +%s)
    NAS_DEMO_ROOT=$(mktemp -d) bash scripts/demo.sh --quiet > /dev/null
    echo "README main command (scripts/demo.sh): $(( $(date +%s) - start )) s wall time"
fi
