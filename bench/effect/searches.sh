#!/usr/bin/env bash
# Issue 12 item 5 shown by real searches: `nas search --search-space mobilenet_v2_mini` with a hard latency target
# and the same search (same seed, so the same proposals) with the equivalent FLOPs target, their winners side by side.
#   bench/effect/searches.sh [--trials 50] [--seed 3] [--out DIR [--reuse]]   (more: bench/effect/searches.py --help)
# NAS_SKIP_BUILD=1 uses the release build as it is. On a shared machine run it under nice -n 10: each job measures
# latency with the harness's thread-CPU-time rule, so a descheduled sample does not count the wait (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${NAS_BENCH_PYTHON:-/work/bench-venv/bin/python}"
[ -n "${NAS_SKIP_BUILD:-}" ] || nice -n 10 swift build -c release --product nas
"$python" bench/effect/searches.py --nas .build/release/nas "$@"
