#!/usr/bin/env bash
# FLOPs against measured latency in mobilenet_v2_mini (issue 12, item 5): Kendall's tau between FLOPs, the native
# engine and onnxruntime over sampled architectures, and two searches with equivalent latency and FLOPs targets.
#   bench/effect/run.sh [--trials 100] [--search-trials 30] [--out DIR]   (more: bench/effect/effect.py --help)
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${NAS_BENCH_PYTHON:-/work/bench-venv/bin/python}"
if ! "$python" -c 'import onnxruntime, scipy' 2>/dev/null; then
    echo "bench/effect: $python lacks onnxruntime or scipy; set NAS_BENCH_PYTHON to a Python that has both" >&2
    exit 1
fi
swift build -c release --product nas
"$python" bench/effect/effect.py --nas .build/release/nas "$@"
