"""Per-trial overhead of `nas trainer --trainer-command` with a trainer that exits at once.

A trial runner process starts, clears the trial's folder, runs the command (which copies a model and prints its
accuracy), reads its metrics back, counts the model's FLOPs, computes the reward and writes metrics.json and
job_status.json. The same command run by /bin/sh alone is the baseline; the difference is what nas adds. Wall
time on a loaded machine is mostly waiting for a core, so the CPU time (user + system, of the runner and all it
started) is reported beside it."""

import json
import os
import resource
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


def cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(arguments, environment=None, cpu_times=None):
    start, start_cpu = time.perf_counter(), cpu()
    subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
    cpu_times.append((cpu() - start_cpu) * 1000)
    return (time.perf_counter() - start) * 1000


runner, baseline, runner_cpu, baseline_cpu = [], [], [], []
for trial in range(1, trials + 1):
    directory = os.path.join(scratch, "job", str(trial))
    runner.append(timed([nas, "trainer", "--nas-params-str", params, "--job-dir", directory, "--trial-id", str(trial),
                         "--trainer-command", command, "--stdout-metrics", "--quiet"], cpu_times=runner_cpu))
    with open(os.path.join(directory, "metrics.json")) as handle:
        assert json.load(handle)["flops"] > 0
    alone = os.path.join(scratch, "alone", str(trial))
    baseline.append(timed(["/bin/sh", "-c", command], dict(os.environ, AIP_MODEL_DIR=alone), baseline_cpu))


def line(name, values, cpu_times):
    return (f"{name:<30} wall median {statistics.median(values):6.1f} ms, mean {statistics.mean(values):6.1f} ms;"
            f" CPU median {statistics.median(cpu_times):5.1f} ms")


print(f"trainer command, {trials} trials one after another (load average {os.getloadavg()[0]:.1f}):")
print(line("  nas trainer + command", runner, runner_cpu))
print(line("  the command alone (/bin/sh)", baseline, baseline_cpu))
print(f"  overhead per trial: wall {statistics.median(runner) - statistics.median(baseline):.1f} ms,"
      f" CPU {statistics.median(runner_cpu) - statistics.median(baseline_cpu):.1f} ms (median differences)")
