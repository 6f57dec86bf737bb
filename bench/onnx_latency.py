"""Batch-1 latency of the native engine (`nas measure`) against onnxruntime (1 intra-op thread), same files.

Usage: python bench/onnx_latency.py --nas .build/release/nas [--rounds 5] [--repeats 2000] [--stability 10] [--max-time 10]

Writes the tutorial's three CNNs (layers [[3,3],[3,6]], [[5,4],[3,8]], [[5,5],[5,10]]; Conv "same" + Relu,
Flatten, Gemm, Softmax; random weights) to a temporary folder, then alternates rounds of the two engines so that
machine noise hits both alike, and prints per model the median over rounds of each engine's p50 and the ratio.
onnxruntime is timed around session.run from Python with a preallocated input (its binding overhead included,
as a user calling it would see). Stability: per model, the coefficient of variation of p50 over separate `nas measure`
runs, adaptive (`--precision 0.01`: until the p50's 95% interval is within +-1%) against a fixed count (`--precision 0`).
"""
import argparse, json, os, statistics, subprocess, tempfile, time
import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper, TensorProto

ARCHITECTURES = {"k3f3_k3f6": [(3, 3), (3, 6)], "k5f4_k3f8": [(5, 4), (3, 8)], "k5f5_k5f10": [(5, 5), (5, 10)]}


def write_model(path, layers, seed):
    rng = np.random.default_rng(seed)
    nodes, inits, current, channels = [], [], "input", 1
    for i, (k, f) in enumerate(layers):
        inits += [numpy_helper.from_array((rng.standard_normal((f, channels, k, k)) * 0.2).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array((rng.standard_normal(f) * 0.1).astype(np.float32), f"b{i}")]
        lo, hi = (k - 1) // 2, k - 1 - (k - 1) // 2
        nodes += [helper.make_node("Conv", [current, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[k, k], pads=[lo, lo, hi, hi]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        current, channels = f"r{i}", f
    features = channels * 28 * 28
    inits += [numpy_helper.from_array((rng.standard_normal((features, 10)) * 0.02).astype(np.float32), "wd"),
              numpy_helper.from_array(np.zeros(10, np.float32), "bd")]
    nodes += [helper.make_node("Flatten", [current], ["flat"], axis=1),
              helper.make_node("Gemm", ["flat", "wd", "bd"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["output"], axis=1)]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 28, 28])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def write_mobilenet(path, seed):
    """An extra, informational model: MobileNet-style depthwise/pointwise blocks with ReLU6 on 96x96x3."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], [numpy_helper.from_array(np.array(0, np.float32), "lo"),
                        numpy_helper.from_array(np.array(6, np.float32), "hi")]

    def weight(name, *shape):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name))
        return name

    N = helper.make_node
    nodes += [N("Conv", ["input", weight("w0", 16, 3, 3, 3), weight("b0", 16)], ["c0"], strides=[2, 2], pads=[1, 1, 1, 1]),
              N("Clip", ["c0", "lo", "hi"], ["a0"])]
    current, channels = "a0", 16
    for i, (out, stride) in enumerate([(32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]):
        nodes += [N("Conv", [current, weight(f"dw{i}", channels, 1, 3, 3), weight(f"dwb{i}", channels)], [f"d{i}"],
                    group=channels, strides=[stride, stride], pads=[1, 1, 1, 1]),
                  N("Clip", [f"d{i}", "lo", "hi"], [f"da{i}"]),
                  N("Conv", [f"da{i}", weight(f"pw{i}", out, channels, 1, 1), weight(f"pwb{i}", out)], [f"p{i}"]),
                  N("Clip", [f"p{i}", "lo", "hi"], [f"pa{i}"])]
        current, channels = f"pa{i}", out
    nodes += [N("GlobalAveragePool", [current], ["g"]), N("Flatten", ["g"], ["f"]),
              N("Gemm", ["f", weight("fc", 10, channels), weight("fcb", 10)], ["l"], transB=1),
              N("Softmax", ["l"], ["output"], axis=1)]
    graph = helper.make_graph(nodes, "mobilenet_ish", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 96, 96])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def ort_p50(path, warmup, repeats, seconds=0.0, preempted="thread-time"):
    """p50 in ms of at least `repeats` timed runs and at least `seconds` of them.

    Each run is timed by the wall clock and by the thread's CPU clock, as `nas measure` times its samples: with one
    intra-op thread onnxruntime computes on the calling thread, so a run whose wall time exceeds its CPU time by
    more than 2% (and 2 us) was descheduled and, with preempted="thread-time" (`nas measure`'s default), counts its
    CPU time. Without this the engine's figures on a busy machine lose the waits and onnxruntime's keep them."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random(session.get_inputs()[0].shape, dtype=np.float32)
    feed = {session.get_inputs()[0].name: x}
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    deadline = clock() + seconds * 1e9
    while len(samples) < repeats or clock() < deadline:
        cpu_start = cpu_clock()
        start = clock()
        session.run(None, feed)
        wall = clock() - start
        cpu = cpu_clock() - cpu_start
        if preempted == "thread-time" and wall - cpu > max(0.02 * cpu, 2000):
            wall = cpu
        samples.append(wall / 1e6)
    return float(np.percentile(samples, 50))


def native(nas, path, warmup, repeats, extra=("--precision", "0")):
    output = subprocess.run([nas, "measure", path, "--warmup", str(warmup), "--repeats", str(repeats), "--json", *extra],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nas", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--stability", type=int, default=10)
    parser.add_argument("--max-time", type=float, default=10.0, help="the adaptive runs' --max-time, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for seed, (name, layers) in enumerate(ARCHITECTURES.items()):
            paths[name] = os.path.join(folder, name + ".onnx")
            write_model(paths[name], layers, seed)
        paths["mobilenet*"] = os.path.join(folder, "mobilenet.onnx")
        write_mobilenet(paths["mobilenet*"], 7)
        results = {name: {"native": [], "ort": [], "memory": 0} for name in paths}
        for _ in range(args.rounds):
            for name, path in paths.items():
                report = native(args.nas, path, args.warmup, args.repeats)
                results[name]["native"].append(report["latency_ms"])
                results[name]["memory"] = report["memory_bytes"]
                results[name]["ort"].append(ort_p50(path, args.warmup, args.repeats))
        print(f"batch-1 p50 latency, median of {args.rounds} rounds x {args.repeats} runs (onnxruntime {ort.__version__}, 1 thread)")
        print(f"{'model':<12} {'native ms':>10} {'ort ms':>10} {'native/ort':>11} {'arena bytes':>12}")
        for name, r in results.items():
            n, o = statistics.median(r["native"]), statistics.median(r["ort"])
            print(f"{name:<12} {n:>10.4f} {o:>10.4f} {n / o:>11.3f} {r['memory']:>12}")
        print("* informational, not a target: depthwise/pointwise blocks with ReLU6 on a 96x96x3 input")
        # Stability: separate `nas measure` processes, as a user or a worker runs them, the adaptive harness (until
        # the p50's 95% interval is within +-1% or --max-time) against the fixed count (--precision 0), alternating
        # so that the machine's load hits both alike.
        print(f"stability: {args.stability} separate `nas measure` runs per model, CV of their p50s (target <= 3%)")
        print(f"{'model':<12} {'adaptive CV':>12} {'runs':>8} {'interval':>9} {'fixed CV':>9} {'runs':>6}")
        for name, path in paths.items():
            adaptive, fixed = [], []
            for _ in range(args.stability):
                adaptive.append(native(args.nas, path, args.warmup, args.repeats,
                                       ["--precision", "0.01", "--max-time", str(args.max_time)]))
                fixed.append(native(args.nas, path, args.warmup, args.repeats, ["--precision", "0"]))

            def cv(reports):
                p50s = [r["latency_ms"] for r in reports]
                return statistics.stdev(p50s) / statistics.mean(p50s) * 100

            widths = [max(r["latency_ms"] - r["latency_p50_interval"]["low_ms"],
                          r["latency_p50_interval"]["high_ms"] - r["latency_ms"]) / r["latency_ms"] * 100 for r in adaptive]
            runs = statistics.median(r["latency_runs"] for r in adaptive)
            print(f"{name:<12} {cv(adaptive):>11.2f}% {runs:>8.0f} {statistics.median(widths):>7.2f}%  "
                  f"{cv(fixed):>8.2f}% {args.repeats:>6}")
        print("interval: median over the runs of the p50's 95% interval half-width, as a share of the p50")

if __name__ == "__main__":
    main()
