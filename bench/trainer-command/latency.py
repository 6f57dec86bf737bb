"""Latency delivered to a trainer that asks for it through the helper (`wait_and_retrieve_latency`): from the
call to the answer, with a native worker registered at a coordinator (HTTP/2), and through the file exchange
with a file-mode worker polling every 0.1 s; the seed polls every 30 s."""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python", "tests"))
from test_nas_helper import tiny_onnx  # noqa: E402

from nas_helper import cloud_nas_utils, fleet  # noqa: E402

nas, calls = sys.argv[1], int(sys.argv[2])
scratch = tempfile.mkdtemp(prefix="nas-latency-")
path = cloud_nas_utils.save_onnx(tiny_onnx(), scratch)
token = "bench-token"
environment = dict(os.environ, NAS_FLEET_TOKEN=token)
coordinator = subprocess.Popen([nas, "coordinator", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True,
                               env=environment)
url = re.search(r"http://[\d.]+:\d+", coordinator.stdout.readline()).group(0)
worker = subprocess.Popen([nas, "worker", "--coordinator", url, "--device-type", "cpu-x86", "--runner", "native"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


try:
    os.environ.update(NAS_COORDINATOR_URL=url, NAS_FLEET_TOKEN=token, NAS_TARGET_DEVICE_TYPES="cpu-x86")
    while True:
        try:
            cloud_nas_utils.wait_and_retrieve_latency(path, timeout=5)
            break
        except fleet.FleetError:
            time.sleep(0.1)
    pushed = []
    for _ in range(calls):
        start = time.perf_counter()
        stats = cloud_nas_utils.wait_and_retrieve_latency(path)
        pushed.append((time.perf_counter() - start) * 1000)
        assert stats["latency_in_milliseconds"] > 0
finally:
    worker.terminate()
    coordinator.terminate()
    worker.wait()
    coordinator.wait()

job = os.path.join(scratch, "job")
os.makedirs(job)
with open(os.path.join(job, "job_status.json"), "w") as handle:
    handle.write('{"state": "RUNNING"}')
file_worker = subprocess.Popen([nas, "worker", "--job-dir", job, "--device-type", "cpu-x86", "--runner", "native",
                                "--poll-interval", "0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
exchanged = []
try:
    del os.environ["NAS_COORDINATOR_URL"]
    os.environ.update(NAS_EXCHANGE_DIR=job)
    for trial in range(1, 21):
        os.environ["CLOUD_ML_TRIAL_ID"] = str(trial)
        start = time.perf_counter()
        cloud_nas_utils.wait_and_retrieve_latency(path, sleep_time=0.05)
        exchanged.append((time.perf_counter() - start) * 1000)
finally:
    with open(os.path.join(job, "job_status.json"), "w") as handle:
        handle.write('{"state": "SUCCEEDED"}')
    file_worker.wait()

print(f"latency delivered to a trainer through the helper (model {os.path.getsize(path)} bytes):")
print(f"  coordinator + native worker, {calls} calls   median {statistics.median(pushed):6.1f} ms"
      f"  p99 {percentile(pushed, 0.99):6.1f} ms")
print(f"  file exchange, worker polling 0.1 s, 20 calls median {statistics.median(exchanged):6.1f} ms"
      f"  p99 {percentile(exchanged, 0.99):6.1f} ms")
print("  the seed: polls every 30 s, so at least 30,000 ms")
