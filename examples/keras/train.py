"""The seed tutorial's Keras trainer, ported to `nas` by changing its imports (`from nas_helper import ...`).

Per layer of the architecture a 'same' Conv2D with its kernel size and filters and a ReLU, then Flatten and
Dense(10) with softmax, on Fashion-MNIST from the Debian package. The model is exported as a SavedModel and
converted to ONNX with tf2onnx into `<job-dir>/saved_model/model.onnx`, where `nas` counts and measures it. With
`--target_latency_millisec`, it waits for the latency itself as the tutorial does and reports its own reward.
"""

import argparse
import gzip
import os
import struct

import numpy as np
import tensorflow as tf

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
    return images.astype(np.float32)[..., None] / 255.0, labels.astype(np.int64)


def create_model(model_spec):
    layers = [tf.keras.Input(shape=(28, 28, 1))]
    for layer in model_spec:
        layers.append(tf.keras.layers.Conv2D(layer.filters, layer.kernel_size, padding="same", activation="relu"))
    layers += [tf.keras.layers.Flatten(), tf.keras.layers.Dense(10, activation="softmax")]
    return tf.keras.Sequential(layers)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nas_params_str", required=True)
    parser.add_argument("--job-dir", "--job_dir", dest="job_dir", required=True)
    parser.add_argument("--num_epochs", type=int, default=2)
    parser.add_argument("--train_limit", type=int, default=10000)
    parser.add_argument("--target_latency_millisec", type=float, default=0)
    argv = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)

    job_dir = cloud_nas_utils.get_job_dir_from_environment_if_exist(argv.job_dir)
    model_spec = cloud_nas_utils.parse_and_save_nas_params_str(None, argv.nas_params_str, job_dir)
    x, y = load("train", argv.train_limit)
    tx, ty = load("t10k", 10000)
    model = create_model(model_spec)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=argv.num_epochs, batch_size=32, verbose=2)
    _, test_acc = model.evaluate(tx, ty, batch_size=1000, verbose=0)

    saved_model_dir = cloud_nas_utils.get_saved_model_dir(job_dir)
    keras_dir = os.path.join(job_dir, "keras_saved_model")
    # The same layers with a fixed batch of 1, as a device runs the model: the ONNX then has static shapes.
    single = tf.keras.Sequential([tf.keras.Input(shape=(28, 28, 1), batch_size=1)] + model.layers)
    single.export(keras_dir)
    cloud_nas_utils.save_onnx(keras_dir, job_dir)

    other_metrics = {"top_1_accuracy": test_acc}
    nas_reward = test_acc
    if argv.target_latency_millisec:
        model_stats = cloud_nas_utils.wait_and_retrieve_latency(saved_model_dir)
        other_metrics["trainer_latency_ms"] = model_stats["latency_in_milliseconds"]
        nas_reward = cloud_nas_utils.compute_reward(
            accuracy=test_acc, target_latency_or_flops=argv.target_latency_millisec,
            measured_latency_or_flops=model_stats["latency_in_milliseconds"], weight=1, use_hard_limit=True)
    metric_tag = os.environ.get("CLOUD_ML_HP_METRIC_TAG", "")
    if metric_tag:
        other_metrics.pop(metric_tag, None)
        metrics_reporter.NasMetricsReporter().report_metrics(
            hyperparameter_metric_tag=metric_tag,
            metric_value=nas_reward if metric_tag == "nas_reward" else test_acc,
            global_step=argv.num_epochs, other_metrics=other_metrics)


if __name__ == "__main__":
    main()
