"""Writes ONNX models with the onnx Python package into a fuzzing corpus folder: the encodings other exporters
use (float_data instead of raw_data, int32 shapes, dim_param, value_info, subgraphs, opset 11 and 18 forms) so
that libFuzzer starts from them too. Usage: python fuzz/onnx_seeds.py CORPUS_DIR (fuzz/run-onnx-fuzzer.sh calls it).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def weights(name, *shape, raw=True):
    values = np.random.default_rng(len(name)).uniform(-1, 1, shape).astype(np.float32)
    if raw:
        return numpy_helper.from_array(values, name)
    return helper.make_tensor(name, TensorProto.FLOAT, shape, values.flatten().tolist())


def ints(name, values, dtype=TensorProto.INT64):
    return helper.make_tensor(name, dtype, [len(values)], values)


def model(name, nodes, inputs, outputs, initializers, opset=13, value_info=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers, value_info=list(value_info))
    return name, helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnx-seeds")


def seeds():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    yield model(
        "cnn-float-data",
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
            helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-5),
            helper.make_node("Relu", ["n"], ["r"]),
            helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Flatten", ["p"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", "wd", "bd"], ["g"], transB=1),
            helper.make_node("Softmax", ["g"], ["y"], axis=-1),
        ],
        [x], [y],
        [weights("w", 3, 2, 3, 3, raw=False), weights("b", 3, raw=False), weights("s", 3), weights("bb", 3),
         weights("m", 3), numpy_helper.from_array(np.ones(3, np.float32), "v"), weights("wd", 4, 27),
         weights("bd", 4)],
    )
    yield model(
        "shape-ops-opset11",
        [
            helper.make_node("Shape", ["x"], ["sh"]),
            helper.make_node("Gather", ["sh", "zero"], ["batch"], axis=0),
            helper.make_node("Unsqueeze", ["batch"], ["batch1"], axes=[0]),
            helper.make_node("Concat", ["batch1", "minus1"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["flat"]),
            helper.make_node("Transpose", ["flat"], ["t"], perm=[1, 0]),
            helper.make_node("MatMul", ["wm", "t"], ["mm"]),
            helper.make_node("Clip", ["mm"], ["y"], min=0.0, max=6.0),
        ],
        [x], [y],
        [numpy_helper.from_array(np.array(0, np.int64), "zero"), ints("minus1", [-1]), weights("wm", 5, 72)],
        opset=11,
    )
    yield model(
        "pools-and-slices-opset18",
        [
            helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
            helper.make_node("GlobalAveragePool", ["a"], ["g"]),
            helper.make_node("Slice", ["g", "st", "en", "ax", "sp"], ["sl"]),
            helper.make_node("Sigmoid", ["sl"], ["s"]),
            helper.make_node("Mul", ["s", "scale"], ["m"]),
            helper.make_node("Sub", ["m", "scale"], ["d"]),
            helper.make_node("Div", ["d", "scale"], ["y"]),
        ],
        [x], [y],
        [ints("st", [0], TensorProto.INT32), ints("en", [1], TensorProto.INT32), ints("ax", [1], TensorProto.INT32),
         ints("sp", [1], TensorProto.INT32), weights("scale", 1)],
        opset=18,
        value_info=[helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2, 6, 6])],
    )
    then_graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"])], "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    yield model(
        "if-subgraph",
        [helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=then_graph)],
        [x], [y],
        [numpy_helper.from_array(np.array(True), "cond")],
    )


def main():
    folder = sys.argv[1]
    for name, proto in seeds():
        with open(os.path.join(folder, f"onnx-{name}.onnx"), "wb") as file:
            file.write(proto.SerializeToString())


if __name__ == "__main__":
    main()
