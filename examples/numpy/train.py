"""A trainer for `nas search --trainer-command`, on numpy and onnx only: a one-hidden-layer network on a slice
of Fashion-MNIST, trained with SGD, exported as ONNX to `<job-dir>/saved_model/model.onnx`.

Its search space (space.json) is not the built-in CNN's: the hidden width, the activation and the learning
rate. The flags are the seed's contract: `--nas_params_str` and `--job-dir` from nas, the rest passed through
with `--trainer-flags name=value`.
"""

import argparse
import gzip
import os
import struct
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nas_helper import cloud_nas_utils, metrics_reporter

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, prefix, limit):
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))[:limit]
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))[:limit]
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels.astype(np.int64)


def activate(name, x):
    return np.maximum(x, 0) if name == "relu" else 1.0 / (1.0 + np.exp(-x))


def activate_grad(name, y):
    return (y > 0).astype(np.float32) if name == "relu" else y * (1 - y)


def train(arch, x, y, epochs, batch, seed, epoch_ended=None):
    rng = np.random.default_rng(seed)
    hidden, act, rate = int(arch["hidden_units"]), arch["activation"], float(arch["learning_rate"])
    w1 = (rng.standard_normal((784, hidden)) * np.sqrt(2.0 / 784)).astype(np.float32)
    b1 = np.zeros(hidden, np.float32)
    w2 = (rng.standard_normal((hidden, 10)) * np.sqrt(1.0 / hidden)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    loss = 0.0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        losses = []
        for start in range(0, len(x), batch):
            index = order[start:start + batch]
            xb, yb = x[index], y[index]
            h = activate(act, xb @ w1 + b1)
            logits = h @ w2 + b2
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            losses.append(-np.log(p[np.arange(len(yb)), yb] + 1e-9).mean())
            g = p
            g[np.arange(len(yb)), yb] -= 1
            g /= len(yb)
            gh = (g @ w2.T) * activate_grad(act, h)
            w2 -= rate * h.T @ g
            b2 -= rate * g.sum(0)
            w1 -= rate * xb.T @ gh
            b1 -= rate * gh.sum(0)
        loss = float(np.mean(losses))
        print(f"epoch={epoch + 1} loss={loss:.4f}", flush=True)
        if epoch_ended is not None and epoch + 1 < epochs:
            epoch_ended(epoch + 1, (w1, b1, w2, b2))
    return (w1, b1, w2, b2), loss


def accuracy(weights, act, x, y):
    w1, b1, w2, b2 = weights
    return float(((activate(act, x @ w1 + b1) @ w2 + b2).argmax(1) == y).mean())


def export(weights, act, path):
    """Input 1x1x28x28 as the built-in models take it: Flatten, Gemm, the activation, Gemm, Softmax."""
    w1, b1, w2, b2 = weights
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w1", "b1"], ["hidden"]),
        helper.make_node("Relu" if act == "relu" else "Sigmoid", ["hidden"], ["activated"]),
        helper.make_node("Gemm", ["activated", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["output"], axis=1),
    ]
    initializers = [numpy_helper.from_array(a, n) for a, n in zip(weights, ["w1", "b1", "w2", "b2"])]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nas_params_str", required=True)
    parser.add_argument("--job-dir", "--job_dir", dest="job_dir", required=True)
    parser.add_argument("--num_epochs", type=int, default=2)
    parser.add_argument("--train_limit", type=int, default=6000)
    parser.add_argument("--test_limit", type=int, default=1000)
    parser.add_argument("--data_dir", default=DATA)
    parser.add_argument("--ask_latency", default="false", help="true: ask nas for the latency while training")
    parser.add_argument("--fail", default="", help="for tests: exit_2, no_accuracy or no_model")
    parser.add_argument("--fail_activation", default="", help="for tests: exit 2 when the activation is this one")
    parser.add_argument("--sleep", type=float, default=0, help="for tests: seconds to wait before training")
    args = parser.parse_args()
    time.sleep(args.sleep)
    if args.fail == "exit_2":
        print("Traceback (most recent call last):\nValueError: the trainer failed on purpose", flush=True)
        raise SystemExit(2)

    job_dir = cloud_nas_utils.get_job_dir_from_environment_if_exist(args.job_dir)
    arch = cloud_nas_utils.parse_and_save_nas_params_str(None, args.nas_params_str, job_dir)
    print(f"architecture {dict(arch)}", flush=True)
    if arch.activation == args.fail_activation:
        print(f"ValueError: {args.fail_activation} is not supported here", flush=True)
        raise SystemExit(2)
    seed = int(cloud_nas_utils.get_trial_id_from_environment())
    model_path = os.path.join(cloud_nas_utils.get_saved_model_dir(job_dir), "model.onnx")
    if cloud_nas_utils.export_only():
        # nas search --latency-first: the untrained model only; nas measures it before deciding to train.
        weights, _ = train(arch, np.zeros((0, 784), np.float32), np.zeros(0, np.int64), 0, 32, seed=seed)
        export(weights, arch.activation, model_path)
        return
    x, y = load(args.data_dir, "train", args.train_limit)
    tx, ty = load(args.data_dir, "t10k", args.test_limit)
    start = time.time()

    def epoch_ended(epoch, weights):
        # Intermediate results, for nas search --pruner: it may stop this trainer (SIGTERM) at a rung.
        metrics_reporter.report_intermediate_result(accuracy(weights, arch.activation, tx, ty), step=epoch)

    weights, loss = train(arch, x, y, args.num_epochs, 32, seed=seed, epoch_ended=epoch_ended)
    test_accuracy = accuracy(weights, arch.activation, tx, ty)
    if args.fail != "no_model":
        export(weights, arch.activation, model_path)

    other_metrics = {"train_seconds": time.time() - start, "final_loss": loss}
    if args.ask_latency == "true":
        started = time.time()
        stats = cloud_nas_utils.wait_and_retrieve_latency(cloud_nas_utils.get_saved_model_dir(job_dir))
        other_metrics["trainer_latency_ms"] = stats["latency_in_milliseconds"]
        other_metrics["latency_wait_seconds"] = time.time() - started
    if args.fail == "no_accuracy":
        return
    other_metrics["top_1_accuracy"] = test_accuracy
    tag = os.environ.get("CLOUD_ML_HP_METRIC_TAG") or "top_1_accuracy"
    value = test_accuracy
    if tag != "top_1_accuracy":
        # A reward of the trainer's own, as the seed's trainers compute it: here a hard limit of 32 hidden units.
        value = cloud_nas_utils.compute_reward(test_accuracy, 32, int(arch.hidden_units), use_hard_limit=True)
    other_metrics.pop(tag, None)
    metrics_reporter.NasMetricsReporter().report_metrics(
        hyperparameter_metric_tag=tag, metric_value=value, global_step=args.num_epochs, other_metrics=other_metrics)
    print(f"top_1_accuracy={test_accuracy:.4f}", flush=True)

if __name__ == "__main__":
    main()
