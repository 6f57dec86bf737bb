"""Generates MobileNet-style ONNX models (inverted residual blocks, depthwise kernels 3/5/7, expansion 1/3/6,
optional squeeze-and-excitation, ReLU6) with random weights, for the predictor benchmark. Seeded.

    python gen_models.py OUT_DIR COUNT [SEED]
"""
import os
import random
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, rng):
        self.rng = rng
        self.nodes, self.inits, self.count = [], [], 0
        self.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
        self.inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "six"))

    def name(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def weight(self, shape):
        name = self.name("w")
        self.inits.append(numpy_helper.from_array((np.random.randn(*shape) * 0.1).astype(np.float32), name))
        return name

    def conv(self, x, cin, cout, k, stride=1, groups=1, act="relu6"):
        w = self.weight([cout, cin // groups, k, k])
        b = self.weight([cout])
        y = self.name("conv")
        pad = k // 2
        self.nodes.append(helper.make_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[stride, stride],
                                           pads=[pad, pad, pad, pad], group=groups))
        if act == "relu6":
            z = self.name("clip")
            self.nodes.append(helper.make_node("Clip", [y, "zero", "six"], [z]))
            return z
        if act == "relu":
            z = self.name("relu")
            self.nodes.append(helper.make_node("Relu", [y], [z]))
            return z
        return y

    def block(self, x, cin, cout, k, expansion, stride, se):
        hidden = cin * expansion
        y = self.conv(x, cin, hidden, 1) if expansion > 1 else x
        y = self.conv(y, hidden, hidden, k, stride=stride, groups=hidden)
        if se:
            pooled = self.name("gap")
            self.nodes.append(helper.make_node("GlobalAveragePool", [y], [pooled]))
            squeezed = self.conv(pooled, hidden, max(4, hidden // 4), 1, act="relu")
            excited = self.conv(squeezed, max(4, hidden // 4), hidden, 1, act=None)
            gate = self.name("sigmoid")
            self.nodes.append(helper.make_node("Sigmoid", [excited], [gate]))
            scaled = self.name("mul")
            self.nodes.append(helper.make_node("Mul", [y, gate], [scaled]))
            y = scaled
        y = self.conv(y, hidden, cout, 1, act=None)
        if stride == 1 and cin == cout:
            z = self.name("add")
            self.nodes.append(helper.make_node("Add", [x, y], [z]))
            y = z
        return y


def model(rng):
    b = Builder(rng)
    resolution = rng.choice([64, 96, 128])
    width = rng.choice([0.35, 0.5, 0.75, 1.0])
    channels = [max(8, int(c * width) // 8 * 8) for c in (16, 24, 32, 64, 96)]
    x = b.conv("input", 3, channels[0], 3, stride=2)
    cin = channels[0]
    for stage, cout in enumerate(channels[1:]):
        for index in range(rng.randint(1, 3)):
            x = b.block(x, cin, cout, rng.choice([3, 5, 7]), rng.choice([1, 3, 6]),
                        2 if index == 0 and stage < 3 else 1, rng.random() < 0.3)
            cin = cout
    x = b.conv(x, cin, 128, 1)
    pooled = b.name("gap")
    b.nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
    flat = b.name("flatten")
    b.nodes.append(helper.make_node("Flatten", [pooled], [flat]))
    w, bias = b.weight([10, 128]), b.weight([10])
    b.nodes.append(helper.make_node("Gemm", [flat, w, bias], ["logits"], transB=1))
    graph = helper.make_graph(
        b.nodes, "mobilenet_style",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, resolution, resolution])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], b.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="nas-bench")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    rng = random.Random(seed)
    np.random.seed(seed)
    os.makedirs(out, exist_ok=True)
    for index in range(count):
        onnx.save(model(rng), os.path.join(out, f"m{index:04d}.onnx"))


if __name__ == "__main__":
    main()
