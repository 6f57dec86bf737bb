#!/usr/bin/env bash
# Issue 12's engine speed benchmark (on demand, never in CI): the native engine against onnxruntime with one
# intra-op thread on 20 architectures sampled from `mobilenet_v2_mini` and on torchvision's MobileNet-V2,
# MobileNet-V3-Small, ResNet-18 and SqueezeNet 1.1 (224x224, random weights), in one run.
#   bench/engine-vs-ort.sh [extra arguments for bench/engine_vs_ort.py, e.g. --rounds 3]
# BENCH_PYTHON: a Python with torch, torchvision, onnx and onnxruntime (default /work/bench-venv/bin/python);
# CACHE: where the exported models are kept between runs (default .build/bench-engine-models).
# The build and the exports run under nice; the measured processes do not.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${BENCH_PYTHON:-/work/bench-venv/bin/python}"
cache="${CACHE:-$PWD/.build/bench-engine-models}"
if ! "$python" -c 'import torch, torchvision, onnx, onnxruntime' 2>/dev/null; then
    echo "bench: $python lacks torch, torchvision, onnx or onnxruntime; set BENCH_PYTHON to one that has them" >&2
    exit 1
fi
nice -n 10 swift build -c release --product nas
nas="$PWD/.build/release/nas"
mkdir -p "$cache"
nice -n 10 "$python" bench/export_torchvision.py "$cache/torchvision"
# Twenty random architectures of the space, trained on 64 images for one epoch (their weights do not matter for
# latency; the search is only the way the space's models are sampled and exported).
space="$cache/space/mobilenet_v2_mini"
if [ "$(ls "$space"/*/saved_model/model.onnx 2>/dev/null | wc -l)" -lt 20 ]; then
    rm -rf "$cache/space"
    nice -n 10 "$nas" search --search-space mobilenet_v2_mini --algorithm random --seed 12 --max-trials 20 \
        --num-epochs 1 --train-limit 64 --test-limit 64 --root-output-dir "$cache/space" \
        --job-name mobilenet_v2_mini --quiet > /dev/null
fi
"$python" bench/engine_vs_ort.py --nas "$nas" --space-dir "$space" --torchvision-dir "$cache/torchvision" "$@"
