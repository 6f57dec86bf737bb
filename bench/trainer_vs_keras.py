#!/usr/bin/env python3
"""Training throughput and accuracy of `nas`'s native trainer against TensorFlow-Keras, in the same run.

Both train the seed tutorial's CNNs (Conv2D "same" + ReLU per layer, Flatten, Dense(10) + softmax; Adam 1e-3,
batch 32, sparse categorical cross-entropy, pixels / 255) on Fashion-MNIST from Debian's dataset-fashion-mnist,
on the same cores, alternating run by run, and the script prints per-architecture medians and the ratio.

Setup (once; TensorFlow stays out of the test venv):
    python3 -m venv /work/bench-venv && /work/bench-venv/bin/pip install tensorflow-cpu numpy
    swift build -c release --product TrainerBench
Run:
    /work/bench-venv/bin/python bench/trainer_vs_keras.py                 # throughput, 1 epoch x 3 runs
    /work/bench-venv/bin/python bench/trainer_vs_keras.py --epochs 2 --runs 1   # the 2-epoch accuracy parity
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time

ARCHITECTURES = [[[3, 3], [3, 6]], [[5, 4], [3, 8]], [[5, 5], [5, 10]]]
DATA = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_idx(name, offset):
    import numpy as np

    with gzip.open(os.path.join(DATA, name + ".gz"), "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def keras_run(layers, epochs, threads, train_limit, seed):
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.keras.utils.set_random_seed(seed)
    x_train = read_idx("train-images-idx3-ubyte", 16).reshape(-1, 28, 28, 1)[:train_limit] / 255.0
    y_train = read_idx("train-labels-idx1-ubyte", 8)[:train_limit]
    x_test = read_idx("t10k-images-idx3-ubyte", 16).reshape(-1, 28, 28, 1) / 255.0
    y_test = read_idx("t10k-labels-idx1-ubyte", 8)
    model = tf.keras.Sequential([tf.keras.Input(shape=(28, 28, 1))])
    for kernel, filters in layers:
        model.add(tf.keras.layers.Conv2D(filters, kernel, padding="same", activation="relu"))
    model.add(tf.keras.layers.Flatten())
    model.add(tf.keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Timer(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = Timer()
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    return {"epoch_seconds": timer.seconds, "test_accuracy": float(accuracy), "train_images": len(y_train)}


def nas_run(layers, epochs, threads, train_limit, seed):
    binary = os.path.join(ROOT, ".build", "release", "TrainerBench")
    if not os.path.exists(binary):
        sys.exit("build the benchmark first: swift build -c release --product TrainerBench")
    command = [binary, "--layers", ",".join(f"{k}x{f}" for k, f in layers), "--epochs", str(epochs),
               "--threads", str(threads), "--seed", str(seed), "--train-limit", str(train_limit)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def keras_in_subprocess(layers, epochs, threads, train_limit, seed):
    # A fresh process per run, as for the native trainer, so that neither keeps warm state between runs.
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import trainer_vs_keras as b; "
            f"print(json.dumps(b.keras_run({layers!r}, {epochs}, {threads}, {train_limit}, {seed})))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=60000)
    args = parser.parse_args()
    print(f"# {args.runs} run(s) of {args.epochs} epoch(s) on {args.train_limit} images, batch 32, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.2f}")
    for layers in ARCHITECTURES:
        rates = {"nas": [], "keras": []}
        accuracies = {"nas": [], "keras": []}
        for run in range(args.runs):
            for engine, function in (("keras", keras_in_subprocess), ("nas", nas_run)):
                result = function(layers, args.epochs, args.threads, args.train_limit, run)
                images = result["train_images"]
                rates[engine] += [images / seconds for seconds in result["epoch_seconds"]]
                accuracies[engine].append(result["test_accuracy"])
                print(json.dumps({"engine": engine, "layers": layers, "run": run,
                                  "epoch_seconds": [round(s, 3) for s in result["epoch_seconds"]],
                                  "test_accuracy": round(result["test_accuracy"], 4)}), flush=True)
        nas, keras = statistics.median(rates["nas"]), statistics.median(rates["keras"])
        print(f"{json.dumps(layers):>20}: nas {nas:8.0f} img/s, keras {keras:8.0f} img/s, ratio {nas / keras:.2f}x; "
              f"test accuracy nas {statistics.median(accuracies['nas']):.4f}, "
              f"keras {statistics.median(accuracies['keras']):.4f}", flush=True)


if __name__ == "__main__":
    main()
