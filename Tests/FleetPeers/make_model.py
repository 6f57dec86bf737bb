"""Writes a tiny CNN of the seed's family as ONNX with the onnx package: Conv(3x3, 4 filters, same) + Relu,
Flatten, Gemm(10) + Softmax on 1x1x28x28. Usage: python make_model.py OUT.onnx"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(1)
weights = [
    numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "conv_w"),
    numpy_helper.from_array(np.zeros(4, dtype=np.float32), "conv_b"),
    numpy_helper.from_array(rng.standard_normal((4 * 28 * 28, 10)).astype(np.float32) * 0.01, "dense_w"),
    numpy_helper.from_array(np.zeros(10, dtype=np.float32), "dense_b"),
]
nodes = [
    helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c"], ["r"]),
    helper.make_node("Flatten", ["r"], ["f"], axis=1),
    helper.make_node("Gemm", ["f", "dense_w", "dense_b"], ["g"]),
    helper.make_node("Softmax", ["g"], ["y"], axis=1),
]
graph = helper.make_graph(
    nodes, "tiny_cnn",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    initializer=weights,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
