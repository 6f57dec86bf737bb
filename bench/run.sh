#!/usr/bin/env bash
# On-demand benchmarks (never in CI): native engine vs onnxruntime latency, and `nas measure` stability.
#   bench/run.sh [extra arguments for bench/onnx_latency.py]; issue 12's benchmark (space and torchvision models) is bench/engine-vs-ort.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python="${NAS_TEST_PYTHON:-$PWD/.venv/bin/python}"
if [ ! -x "$python" ]; then
    echo "bench: no Python with onnxruntime at $python; run scripts/bootstrap.sh (or set NAS_TEST_PYTHON)" >&2
    exit 1
fi
swift build -c release --product nas
"$python" bench/onnx_latency.py --nas .build/release/nas "$@"
