"""Measures an ONNX model with onnxruntime: the `--runner-command` of a worker whose device runs onnxruntime.

Usage: python ort_runner.py MODEL.onnx [--repeats N]
Prints one JSON object: {"latency_ms": p50, "latency_p90_ms": ..., "memory_bytes": ..., "repeats": N}.
"""
import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    path = sys.argv[1]
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 20
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    inputs = {}
    for node in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in node.shape]
        inputs[node.name] = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(3):
        session.run(None, inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, inputs)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(json.dumps({
        "latency_ms": times[len(times) // 2],
        "latency_p90_ms": times[min(len(times) - 1, int(len(times) * 0.9))],
        "memory_bytes": float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
        "repeats": float(repeats),
    }))


if __name__ == "__main__":
    main()
