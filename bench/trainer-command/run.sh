#!/usr/bin/env bash
# The trainer-command benchmarks (on demand): the per-trial overhead of running a user's trainer command, and the
# latency a trainer asking for it through the Python helper gets. Figures: bench/README.md.
#   bash bench/trainer-command/run.sh [TRIALS] [CALLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
trials=${1:-50}
calls=${2:-200}
swift build -c release --product nas >/dev/null
nas="$PWD/.build/release/nas"
python=.venv/bin/python
PYTHONPATH="$PWD/python" $python bench/trainer-command/overhead.py "$nas" "$trials"
PYTHONPATH="$PWD/python" $python bench/trainer-command/latency.py "$nas" "$calls"
