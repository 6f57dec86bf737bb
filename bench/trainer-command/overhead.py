"""Per-trial overhead of `nas trainer --trainer-command` with a trainer that exits at once.

A trial runner process starts, clears the trial's folder, runs the command (which copies a model and prints its
accuracy), reads its metrics back, counts the model's FLOPs, computes the reward and writes metrics.json and
job_status.json. The same command run by /bin/sh alone is the baseline; the difference is what nas adds."""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python", "tests"))
from test_nas_helper import tiny_onnx  # noqa: E402

nas, trials = sys.argv[1], int(sys.argv[2])
scratch = tempfile.mkdtemp(prefix="nas-overhead-")
model = os.path.join(scratch, "model.onnx")
with open(model, "wb") as handle:
    handle.write(tiny_onnx())
command = f'mkdir -p "$AIP_MODEL_DIR" && cp {model} "$AIP_MODEL_DIR/model.onnx" && echo top_1_accuracy=0.5; true'
params = json.dumps({"decisions": [0], "value": {"hidden_units": 8}})


def timed(arguments, environment=None):
    start = time.perf_counter()
    subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
    return (time.perf_counter() - start) * 1000


runner, baseline = [], []
for trial in range(1, trials + 1):
    directory = os.path.join(scratch, "job", str(trial))
    runner.append(timed([nas, "trainer", "--nas-params-str", params, "--job-dir", directory, "--trial-id", str(trial),
                         "--trainer-command", command, "--stdout-metrics", "--quiet"]))
    with open(os.path.join(directory, "metrics.json")) as handle:
        assert json.load(handle)["flops"] > 0
    alone = os.path.join(scratch, "alone", str(trial))
    baseline.append(timed(["/bin/sh", "-c", command], dict(os.environ, AIP_MODEL_DIR=alone)))


def line(name, values):
    return f"{name:<34} median {statistics.median(values):6.1f} ms  mean {statistics.mean(values):6.1f} ms"


print(f"trainer command, {trials} trials one after another:")
print(line("  nas trainer + command", runner))
print(line("  the command alone (/bin/sh)", baseline))
print(f"  overhead per trial                median {statistics.median(runner) - statistics.median(baseline):6.1f} ms")
