"""The seed tutorial's trainer in PyTorch, for `nas search --trainer-command`.

The model is the tutorial's: per layer of the architecture a 'same' Conv2D with its kernel size and filters and a
ReLU, then Flatten and Dense(10) with softmax, on Fashion-MNIST (the Debian package's IDX files). It is exported
with `torch.onnx.export` to `<job-dir>/saved_model/model.onnx`, where `nas` counts its FLOPs and measures it.
With `--target_latency_millisec`, it also asks for the latency itself while it runs and reports a reward of its
own, as the tutorial's trainer does (run the search with `--nas-target-reward-metric nas_reward` to use it).
"""

import argparse
import gzip
import os
import struct
import time

import numpy as np
import torch
from torch import nn

from nas_helper import cloud_nas_utils, metrics_reporter

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(prefix, limit):
    images = read_idx(os.path.join(DATA, f"{prefix}-images-idx3-ubyte.gz"))[:limit]
    labels = read_idx(os.path.join(DATA, f"{prefix}-labels-idx1-ubyte.gz"))[:limit]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def build(model_spec):
    layers, channels = [], 1
    for layer in model_spec:
        layers += [nn.Conv2d(channels, layer.filters, layer.kernel_size, padding="same"), nn.ReLU()]
        channels = layer.filters
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * 28 * 28, 10))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nas_params_str", required=True)
    parser.add_argument("--job-dir", "--job_dir", dest="job_dir", required=True)
    parser.add_argument("--num_epochs", type=int, default=2)
    parser.add_argument("--train_limit", type=int, default=10000)
    parser.add_argument("--target_latency_millisec", type=float, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(int(cloud_nas_utils.get_trial_id_from_environment()))

    job_dir = cloud_nas_utils.get_job_dir_from_environment_if_exist(args.job_dir)
    model_spec = cloud_nas_utils.parse_and_save_nas_params_str(None, args.nas_params_str, job_dir)
    x, y = load("train", args.train_limit)
    tx, ty = load("t10k", 10000)
    model = build(model_spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.time()
    for epoch in range(args.num_epochs):
        order = torch.randperm(len(x))
        for index in range(0, len(x), 32):
            batch = order[index:index + 32]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
        print(f"epoch={epoch + 1} loss={loss.item():.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        test_acc = float((model(tx).argmax(1) == ty).float().mean())

    saved_model_dir = cloud_nas_utils.get_saved_model_dir(job_dir)
    os.makedirs(saved_model_dir, exist_ok=True)
    exported = nn.Sequential(model, nn.Softmax(dim=1))
    torch.onnx.export(exported, torch.zeros(1, 1, 28, 28), os.path.join(saved_model_dir, "model.onnx"),
                      input_names=["input"], output_names=["output"], opset_version=13, dynamo=False)

    other_metrics = {"top_1_accuracy": test_acc, "train_seconds": time.time() - start}
    nas_reward = test_acc
    if args.target_latency_millisec:
        # The tutorial's way: wait for the device's latency, then fold it into a reward of the trainer's own.
        stats = cloud_nas_utils.wait_and_retrieve_latency(saved_model_dir)
        other_metrics["trainer_latency_ms"] = stats["latency_in_milliseconds"]
        nas_reward = cloud_nas_utils.compute_reward(
            accuracy=test_acc, target_latency_or_flops=args.target_latency_millisec,
            measured_latency_or_flops=stats["latency_in_milliseconds"], weight=1, use_hard_limit=True)
    metric_tag = os.environ.get("CLOUD_ML_HP_METRIC_TAG", "")
    if metric_tag:
        other_metrics.pop(metric_tag, None)
        metrics_reporter.NasMetricsReporter().report_metrics(
            hyperparameter_metric_tag=metric_tag,
            metric_value=nas_reward if metric_tag == "nas_reward" else test_acc,
            global_step=args.num_epochs, other_metrics=other_metrics)


if __name__ == "__main__":
    main()
