#!/usr/bin/env bash
# Latency predictor accuracy on this CPU (native engine, release build) over generated MobileNet-style ONNX
# models (inverted residual blocks; bench/predictor/gen_models.py with the onnx helper): the kernel-level model
# (per-kernel times from OnnxEngine.profile), the linear whole-model one and a FLOPs-only linear model fitted on
# the same measurements in the same run: share within ±10% / ±5%, RMSPE, Spearman and Kendall on held-out models
# after 10, 50, 200 (and 1000 with COUNT >= 1334) measurements (medians over 5 seeded splits), and the noise floor
# (every FLOOR_EVERY-th model measured a second time, after all the first measurements), under two ways of
# measuring a model: the harness's default (a descheduled sample counts its thread CPU time), on the first
# BASELINE models, and the model's time over a reference workload timed beside each sample (descheduled samples
# dropped, thread pinned: `nas measure --preempted discard --pin --reference`), on all; and the fit time (wall and
# thread CPU) for 3000 measurements.
#
#   COUNT=1400 bash bench/predictor/run.sh        # PYTHON defaults to /work/bench-venv/bin/python (onnx, numpy)
# Measurements are cached in $OUT/models/measurements-ways.json (an interrupted run carries on from
# measurements-ways.json.partial); delete it to measure again.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/nas-predictor-bench}
PYTHON=${PYTHON:-/work/bench-venv/bin/python}
if [ ! -d "$OUT/models" ]; then
    "$PYTHON" bench/predictor/gen_models.py "$OUT/models" "${COUNT:-1400}" "${SEED:-1}"
fi
swift build -c release --product PredictorBench >/dev/null
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
nice -n "${NICE:-10}" .build/release/PredictorBench --models "$OUT/models" --warmup "${WARMUP:-10}" --repeats "${REPEATS:-50}" \
    --baseline-models "${BASELINE:-400}" --floor-every "${FLOOR_EVERY:-3}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
