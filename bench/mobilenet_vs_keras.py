#!/usr/bin/env python3
"""Training throughput and accuracy of `nas`'s native trainer on MobileNet-style models of `mobilenet_v2_mini`,
against TensorFlow-Keras and PyTorch (CPU), in the same run.

All three build the same architecture from the same trial value (stem 3x3/2 conv + BN + activation; per block 1x1
expansion + BN + activation when the ratio is above 1, depthwise kxk + BN + activation, optional squeeze-and-excite
with a quarter of the channels, linear 1x1 projection + BN, residual add when the shape allows; global average
pool, Dense(10) + softmax; TensorFlow's "same" padding), with the same recipe (Glorot-uniform kernels, zero
biases, Adam 1e-3 in Keras's form (epsilon 1e-7), batch 32, sparse categorical cross-entropy, batch norm momentum
0.99 / epsilon 1e-3, pixels / 255, a reshuffle each epoch) on the same Fashion-MNIST slice and threads,
alternating run by run; run r uses seed r everywhere. It prints per-architecture medians of images/s per epoch,
the ratios, and the median test accuracy over the runs. Images per CPU-second (each process's CPU time, every
thread) are printed beside images per wall second: on a shared machine a process's wall time depends on how many
runnable threads it has against the other jobs', while its CPU time does not. With two or more epochs the first epoch of every run is
left out of the images/s (Keras traces its graph and PyTorch warms its allocator there); accuracy uses them all.
Besides the three named architectures, `sample-N` is the architecture drawn uniformly from the space with seed N
(a mirror of `SearchSpace.mobileNetV2Mini` in Python, printed with its figures).

Setup (once; the peers stay out of the test venv):
    python3 -m venv /work/bench-venv && /work/bench-venv/bin/pip install tensorflow-cpu torch numpy
    swift build -c release --product TrainerBench
Run:
    /work/bench-venv/bin/python bench/mobilenet_vs_keras.py                       # 3 seeds x 1 epoch, 10k images
    /work/bench-venv/bin/python bench/mobilenet_vs_keras.py --train-limit 60000 --runs 3
    /work/bench-venv/bin/python bench/mobilenet_vs_keras.py --models sample-1,sample-2 --epochs 2   # throughput
"""
import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import time

DATA = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def block(expansion, kernel, se, activation):
    return {"expansion": expansion, "kernel_size": kernel, "se": se, "activation": activation}


# Three architectures of mobilenet_v2_mini: small, every feature, large.
ARCHITECTURES = {
    "small": {"stem": {"filters": 16, "kernel_size": 3, "stride": 2, "activation": "hswish"}, "stages": [
        {"filters": 16, "stride": 1, "blocks": [block(1, 3, False, "relu6")]},
        {"filters": 24, "stride": 2, "blocks": [block(3, 3, False, "relu6")]},
        {"filters": 48, "stride": 2, "blocks": [block(3, 3, False, "relu6")]}]},
    "mixed": {"stem": {"filters": 16, "kernel_size": 3, "stride": 2, "activation": "hswish"}, "stages": [
        {"filters": 16, "stride": 1, "blocks": [block(1, 3, True, "relu6"), block(3, 5, False, "hswish")]},
        {"filters": 32, "stride": 2, "blocks": [block(6, 5, True, "hswish"), block(3, 3, False, "relu6")]},
        {"filters": 64, "stride": 2, "blocks": [block(6, 3, True, "hswish")]}]},
    "large": {"stem": {"filters": 16, "kernel_size": 3, "stride": 2, "activation": "hswish"}, "stages": [
        {"filters": 24, "stride": 1, "blocks": [block(6, 7, True, "hswish"), block(6, 5, True, "hswish")]},
        {"filters": 40, "stride": 2, "blocks": [block(6, 7, True, "hswish"), block(6, 5, True, "relu6"),
                                                block(6, 3, True, "hswish")]},
        {"filters": 64, "stride": 2, "blocks": [block(6, 5, True, "hswish"), block(6, 3, True, "hswish")]}]},
}


def sample_architecture(seed):
    """One architecture of mobilenet_v2_mini, each decision uniform (stages: filters 16/24, 24/32/40, 48/64 with
    1-2, 1-3, 1-2 blocks; per block expansion 1/3/6, kernel 3/5/7, SE on/off, ReLU6 / hard-swish)."""
    generator = random.Random(seed)
    stages = []
    for filters, stride, depth in (([16, 24], 1, 2), ([24, 32, 40], 2, 3), ([48, 64], 2, 2)):
        blocks = [block(generator.choice([1, 3, 6]), generator.choice([3, 5, 7]), generator.choice([False, True]),
                        generator.choice(["relu6", "hswish"])) for _ in range(generator.randint(1, depth))]
        stages.append({"filters": generator.choice(filters), "stride": stride, "blocks": blocks})
    return {"stem": {"filters": 16, "kernel_size": 3, "stride": 2, "activation": "hswish"}, "stages": stages}


def architecture(name):
    if name.startswith("sample-"):
        return sample_architecture(int(name[len("sample-"):]))
    if name not in ARCHITECTURES:
        sys.exit(f"unknown model {name!r}: one of {', '.join(ARCHITECTURES)} or sample-N")
    return ARCHITECTURES[name]


def read_idx(name, offset):
    import numpy as np

    with gzip.open(os.path.join(DATA, name + ".gz"), "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def load(train_limit, test_limit):
    x_train = read_idx("train-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28)[:train_limit] / 255.0
    y_train = read_idx("train-labels-idx1-ubyte", 8)[:train_limit]
    x_test = read_idx("t10k-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28)[:test_limit] / 255.0
    y_test = read_idx("t10k-labels-idx1-ubyte", 8)[:test_limit]
    return x_train.astype("float32"), y_train.astype("int64"), x_test.astype("float32"), y_test.astype("int64")


def blocks_of(value):
    """(input channels, expanded, output, kernel, stride, se, activation) per block."""
    channels = value["stem"]["filters"]
    for stage in value["stages"]:
        for index, b in enumerate(stage["blocks"]):
            stride = stage["stride"] if index == 0 else 1
            yield channels, channels * b["expansion"], stage["filters"], b["kernel_size"], stride, b["se"], \
                b["activation"]
            channels = stage["filters"]


def keras_run(value, epochs, threads, train_limit, test_limit, seed, calibration=0):
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    x_train, y_train, x_test, y_test = load(train_limit, test_limit)
    x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)

    def act(x, name):
        if name == "relu6":
            return layers.ReLU(6.0)(x)
        return layers.Activation(lambda v: v * tf.nn.relu6(v + 3.0) / 6.0)(x)

    def bn(x):
        return layers.BatchNormalization(momentum=0.99, epsilon=1e-3)(x)

    inputs = tf.keras.Input(shape=(28, 28, 1))
    stem = value["stem"]
    x = layers.Conv2D(stem["filters"], stem["kernel_size"], strides=stem["stride"], padding="same",
                      use_bias=False)(inputs)
    x = act(bn(x), stem["activation"])
    for cin, ce, cout, k, stride, se, activation in blocks_of(value):
        start = x
        if ce != cin:
            x = act(bn(layers.Conv2D(ce, 1, use_bias=False)(x)), activation)
        x = act(bn(layers.DepthwiseConv2D(k, strides=stride, padding="same", use_bias=False)(x)), activation)
        if se:
            s = layers.GlobalAveragePooling2D(keepdims=True)(x)
            s = layers.Conv2D(max(1, ce // 4), 1, activation="relu")(s)
            s = layers.Conv2D(ce, 1)(s)
            s = layers.Activation(lambda v: tf.nn.relu6(v + 3.0) / 6.0)(s)
            x = layers.Multiply()([x, s])
        x = bn(layers.Conv2D(cout, 1, use_bias=False)(x))
        if stride == 1 and cin == cout:
            x = layers.Add()([x, start])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = tf.keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Timer(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self.cpu = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.start_cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)
            self.cpu.append(time.process_time() - self.start_cpu)

    timer = Timer()
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    if calibration:
        # nas's default: each batch norm's statistics re-estimated as the mean over batches of 32 of the batch
        # mean and (biased) variance, every layer in training mode, with the final weights.
        norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
        probe = tf.keras.Model(model.inputs, [norm.input for norm in norms])
        sums = [[0.0, 0.0] for _ in norms]
        order = np.random.default_rng(seed).permutation(len(y_train))[:calibration]
        batches = 0
        for lower in range(0, len(order) - 31, 32):
            for total, tensor in zip(sums, probe(x_train[order[lower:lower + 32]], training=True)):
                mean, variance = tf.nn.moments(tensor, axes=[0, 1, 2])
                total[0] += mean.numpy()
                total[1] += variance.numpy()
            batches += 1
        for norm, (mean, variance) in zip(norms, sums):
            norm.moving_mean.assign(mean / batches)
            norm.moving_variance.assign(variance / batches)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    return {"epoch_seconds": timer.seconds, "epoch_cpu_seconds": timer.cpu, "test_accuracy": float(accuracy),
            "train_images": len(y_train)}


def torch_run(value, epochs, threads, train_limit, test_limit, seed, calibration=0):
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = load(train_limit, test_limit)

    def same(size, k, stride):
        out = (size + stride - 1) // stride
        total = max((out - 1) * stride + k - size, 0)
        return (total // 2, total - total // 2)

    class Pad(nn.Module):  # TensorFlow's "same": the odd extra row and column after
        def __init__(self, size, k, stride):
            super().__init__()
            top, bottom = same(size, k, stride)
            self.pad = (top, bottom, top, bottom)

        def forward(self, x):
            return nn.functional.pad(x, self.pad)

    def act(name):
        return nn.ReLU6() if name == "relu6" else nn.Hardswish()

    def bn(c):  # PyTorch's momentum is 1 - Keras's
        return nn.BatchNorm2d(c, momentum=0.01, eps=1e-3)

    class SE(nn.Module):
        def __init__(self, c):
            super().__init__()
            r = max(1, c // 4)
            self.reduce, self.expand = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1)

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            return x * nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(s))))

    class Block(nn.Module):
        def __init__(self, cin, ce, cout, k, stride, se, activation, size):
            super().__init__()
            layers = []
            if ce != cin:
                layers += [nn.Conv2d(cin, ce, 1, bias=False), bn(ce), act(activation)]
            layers += [Pad(size, k, stride), nn.Conv2d(ce, ce, k, stride, groups=ce, bias=False), bn(ce),
                       act(activation)]
            if se:
                layers.append(SE(ce))
            layers += [nn.Conv2d(ce, cout, 1, bias=False), bn(cout)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return y + x if self.residual else y

    stem = value["stem"]
    layers = [Pad(28, stem["kernel_size"], stem["stride"]),
              nn.Conv2d(1, stem["filters"], stem["kernel_size"], stem["stride"], bias=False), bn(stem["filters"]),
              act(stem["activation"])]
    size = (28 + stem["stride"] - 1) // stem["stride"]
    for cin, ce, cout, k, stride, se, activation in blocks_of(value):
        layers.append(Block(cin, ce, cout, k, stride, se, activation, size))
        size = (size + stride - 1) // stride
    features = value["stages"][-1]["filters"]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(features, 10)]
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            # Keras's Glorot uniform: fans of the (k, k, in / groups, out) kernel; a depthwise kernel's is (k, k, c, 1).
            receptive = module.weight[0, 0].numel() if module.weight.dim() == 4 else 1
            if isinstance(module, nn.Conv2d) and module.groups > 1:
                fan_in, fan_out = module.in_channels * receptive, receptive
            else:
                fan_in, fan_out = module.weight.shape[1] * receptive, module.weight.shape[0] * receptive
            limit = (6.0 / (fan_in + fan_out)) ** 0.5
            nn.init.uniform_(module.weight, -limit, limit)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_function = nn.CrossEntropyLoss()
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = np.random.default_rng(seed)
    seconds, cpu = [], []
    for _ in range(epochs):
        start, start_cpu = time.perf_counter(), time.process_time()
        model.train()
        order = torch.from_numpy(generator.permutation(len(y)))
        for lower in range(0, len(y), 32):
            index = order[lower:lower + 32]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if calibration:
        # As nas's default: a cumulative average of the batch statistics of `calibration` training images.
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        order = torch.from_numpy(generator.permutation(len(y))[:calibration])
        with torch.no_grad():
            for lower in range(0, len(order) - 31, 32):
                model(x[order[lower:lower + 32]])
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(torch.from_numpy(x_test[i:i + 256])).argmax(1) for i in range(0, len(y_test), 256)])
    accuracy = float((predicted.numpy() == y_test).mean())
    return {"epoch_seconds": seconds, "epoch_cpu_seconds": cpu, "test_accuracy": accuracy, "train_images": len(y_train)}


NAS_BINARY = os.path.join(ROOT, ".build", "release", "TrainerBench")


def nas_run(value, epochs, threads, train_limit, test_limit, seed, calibration=0):
    binary = NAS_BINARY
    if not os.path.exists(binary):
        sys.exit("build the benchmark first: swift build -c release --product TrainerBench")
    # --calibration 0: the running statistics of training, as Keras and PyTorch keep them (the same recipe); N:
    # statistics re-estimated over N training images, which the peers then do too.
    command = [binary, "--value", json.dumps(value), "--calibration", str(calibration), "--epochs", str(epochs), "--threads", str(threads),
               "--seed", str(seed), "--train-limit", str(train_limit), "--test-limit", str(test_limit)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def in_subprocess(function, value, epochs, threads, train_limit, test_limit, seed, calibration):
    # A fresh process per run, as for the native trainer, so that none keeps warm state between runs.
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import mobilenet_vs_keras as b; "
            f"print(json.dumps(b.{function}({value!r}, {epochs}, {threads}, {train_limit}, {test_limit}, {seed}, "
            f"{calibration})))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main():
    global NAS_BINARY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=10000)
    parser.add_argument("--test-limit", type=int, default=10000)
    parser.add_argument("--models", default=",".join(ARCHITECTURES))
    parser.add_argument("--peers", default="keras,torch")
    parser.add_argument("--calibration", type=int, default=0,
                        help="0: evaluate with the running statistics of training (Keras's way); N: every engine "
                             "re-estimates its batch-norm statistics over N training images first (nas's default, "
                             "2048)")
    parser.add_argument("--nas", default=NAS_BINARY,
                        help="the TrainerBench binary (a copy keeps a long session apart from rebuilds)")
    args = parser.parse_args()
    NAS_BINARY = args.nas
    print(f"# {args.runs} run(s) of {args.epochs} epoch(s) on {args.train_limit} images, batch 32, "
          f"{args.threads} threads, calibration {args.calibration}, load average {os.getloadavg()[0]:.2f}")
    engines = {"nas": lambda *a: nas_run(*a), "keras": lambda *a: in_subprocess("keras_run", *a),
               "torch": lambda *a: in_subprocess("torch_run", *a)}
    chosen = ["nas"] + [p for p in args.peers.split(",") if p]
    for name in args.models.split(","):
        value = architecture(name)
        if name.startswith("sample-"):
            print(f"# {name}: {json.dumps(value)}", flush=True)
        rates = {engine: [] for engine in chosen}
        cpu_rates = {engine: [] for engine in chosen}
        accuracies = {engine: [] for engine in chosen}
        for run in range(args.runs):
            for engine in chosen:
                result = engines[engine](value, args.epochs, args.threads, args.train_limit, args.test_limit, run,
                                         args.calibration)
                images = result["train_images"]
                warm = result["epoch_seconds"][1:] or result["epoch_seconds"]
                rates[engine] += [images / seconds for seconds in warm]
                cpu_rates[engine] += [images / seconds for seconds in
                                      result["epoch_cpu_seconds"][1:] or result["epoch_cpu_seconds"]]
                accuracies[engine].append(result["test_accuracy"])
                print(json.dumps({"engine": engine, "model": name, "run": run,
                                  "epoch_seconds": [round(s, 3) for s in result["epoch_seconds"]],
                                  "epoch_cpu_seconds": [round(s, 3) for s in result["epoch_cpu_seconds"]],
                                  "load": round(os.getloadavg()[0], 2),
                                  "test_accuracy": round(result["test_accuracy"], 4)}), flush=True)
        nas, nas_cpu = statistics.median(rates["nas"]), statistics.median(cpu_rates["nas"])
        line = (f"{name:>6}: nas {nas:7.0f} img/s, {nas_cpu:7.0f} img per CPU-s, "
                f"acc {statistics.median(accuracies['nas']):.4f}")
        for peer in chosen[1:]:
            rate, cpu_rate = statistics.median(rates[peer]), statistics.median(cpu_rates[peer])
            line += (f"; {peer} {rate:7.0f} img/s ({nas / rate:.2f}x), {cpu_rate:7.0f} img per CPU-s "
                     f"({nas_cpu / cpu_rate:.2f}x), acc {statistics.median(accuracies[peer]):.4f}")
        print(line + f" (load average {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
