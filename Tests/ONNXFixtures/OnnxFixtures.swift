import Foundation
import ONNX

/// Foreign ONNX files written with the `onnx` Python helper API, shaped like other exporters' output.
public enum OnnxFixtures {
    /// Writes `tf2onnx.onnx` (NHWC input, Transpose, Conv, Reshape, MatMul, Add, Softmax; opset 13) and
    /// `torch.onnx` (Shape / Gather / Unsqueeze / Concat / Reshape flatten, Gemm with transB; opset 11) into
    /// `directory`, both with the tutorial's layers [[3,3],[3,6]] and random weights.
    public static func writeForeignModels(to directory: URL) async throws {
        _ = try await OnnxTestSupport.runPython(
            """
            import sys, os, numpy as np, onnx
            from onnx import helper, numpy_helper, TensorProto
            out = sys.argv[1]
            rng = np.random.default_rng(3)
            w1 = rng.standard_normal((3, 1, 3, 3)).astype(np.float32) * 0.3
            b1 = rng.standard_normal(3).astype(np.float32) * 0.1
            w2 = rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.3
            b2 = rng.standard_normal(6).astype(np.float32) * 0.1
            wd = rng.standard_normal((4704, 10)).astype(np.float32) * 0.02
            bd = rng.standard_normal(10).astype(np.float32) * 0.1
            def init(name, array):
                return numpy_helper.from_array(array, name)

            # tf2onnx-like: Keras NHWC graph with transposes around the convs, Reshape to [-1, 4704], MatMul + Add.
            nodes = [
                helper.make_node('Transpose', ['input'], ['nchw'], perm=[0, 3, 1, 2], name='sequential/conv2d/transpose'),
                helper.make_node('Conv', ['nchw', 'w1', 'b1'], ['c1'], kernel_shape=[3, 3], auto_pad='SAME_UPPER',
                                 strides=[1, 1], dilations=[1, 1], group=1, name='sequential/conv2d/Conv2D'),
                helper.make_node('Relu', ['c1'], ['r1'], name='sequential/conv2d/Relu'),
                helper.make_node('Conv', ['r1', 'w2', 'b2'], ['c2'], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                 name='sequential/conv2d_1/Conv2D'),
                helper.make_node('Relu', ['c2'], ['r2'], name='sequential/conv2d_1/Relu'),
                helper.make_node('Transpose', ['r2'], ['nhwc'], perm=[0, 2, 3, 1], name='sequential/conv2d_1/transpose'),
                helper.make_node('Reshape', ['nhwc', 'flat_shape'], ['flat'], name='sequential/flatten/Reshape'),
                helper.make_node('MatMul', ['flat', 'wd'], ['mm'], name='sequential/dense/MatMul'),
                helper.make_node('Add', ['mm', 'bd'], ['logits'], name='sequential/dense/BiasAdd'),
                helper.make_node('Softmax', ['logits'], ['output'], axis=-1, name='sequential/dense/Softmax'),
            ]
            graph = helper.make_graph(
                nodes, 'tf2onnx',
                [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['unk__6', 28, 28, 1])],
                [helper.make_tensor_value_info('output', TensorProto.FLOAT, ['unk__7', 10])],
                [init('w1', w1), init('b1', b1), init('w2', w2), init('b2', b2), init('wd', wd), init('bd', bd),
                 init('flat_shape', np.array([-1, 4704], dtype=np.int64))])
            model = helper.make_model(graph, producer_name='tf2onnx', opset_imports=[helper.make_opsetid('', 13)])
            model.ir_version = 8
            onnx.checker.check_model(model, full_check=True)
            onnx.save(model, os.path.join(out, 'tf2onnx.onnx'))

            # torch-like: NCHW, x.view(x.size(0), -1) as Shape/Gather/Unsqueeze/Concat/Reshape, Linear as Gemm transB.
            nodes = [
                helper.make_node('Conv', ['input', 'w1', 'b1'], ['c1'], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name='/conv1/Conv'),
                helper.make_node('Relu', ['c1'], ['r1'], name='/relu1/Relu'),
                helper.make_node('Conv', ['r1', 'w2', 'b2'], ['c2'], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name='/conv2/Conv'),
                helper.make_node('Relu', ['c2'], ['r2'], name='/relu2/Relu'),
                helper.make_node('Shape', ['r2'], ['shape'], name='/Shape'),
                helper.make_node('Constant', [], ['zero'], value=numpy_helper.from_array(np.array(0, dtype=np.int64)), name='/Constant'),
                helper.make_node('Gather', ['shape', 'zero'], ['batch'], axis=0, name='/Gather'),
                helper.make_node('Unsqueeze', ['batch'], ['batch1'], axes=[0], name='/Unsqueeze'),
                helper.make_node('Constant', [], ['minus1'], value=numpy_helper.from_array(np.array([-1], dtype=np.int64)), name='/Constant_1'),
                helper.make_node('Concat', ['batch1', 'minus1'], ['view_shape'], axis=0, name='/Concat'),
                helper.make_node('Reshape', ['r2', 'view_shape'], ['flat'], name='/Reshape'),
                helper.make_node('Gemm', ['flat', 'wt', 'bd'], ['logits'], alpha=1.0, beta=1.0, transB=1, name='/fc/Gemm'),
                helper.make_node('Softmax', ['logits'], ['output'], axis=1, name='/Softmax'),
            ]
            graph = helper.make_graph(
                nodes, 'torch_jit',
                [helper.make_tensor_value_info('input', TensorProto.FLOAT, ['batch_size', 1, 28, 28])],
                [helper.make_tensor_value_info('output', TensorProto.FLOAT, ['batch_size', 10])],
                [init('w1', w1), init('b1', b1), init('w2', w2), init('b2', b2),
                 init('wt', np.ascontiguousarray(wd.T)), init('bd', bd)])
            model = helper.make_model(graph, producer_name='pytorch', opset_imports=[helper.make_opsetid('', 11)])
            model.ir_version = 6
            onnx.checker.check_model(model, full_check=True)
            onnx.save(model, os.path.join(out, 'torch.onnx'))
            """, [directory.path])
    }

    /// A graph with most supported ops, including the shape-computing ones, as a fuzzing seed.
    public static func kitchenSinkModel() -> OnnxModel {
        func ints(_ name: String, _ values: [Int64]) -> OnnxTensor {
            OnnxTensor(name: name, dims: [values.count], int64s: values)
        }
        func floats(_ name: String, _ dims: [Int]) -> OnnxTensor {
            OnnxTensor(
                name: name, dims: dims,
                floats: OnnxTestSupport.randomFloats(dims.reduce(1, *), seed: UInt64(name.utf8.count)))
        }
        let nodes = [
            OnnxNode(
                name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                attributes: [
                    OnnxAttribute("group", .int(3)), OnnxAttribute("strides", .ints([2, 1])),
                    OnnxAttribute("pads", .ints([1, 1, 1, 1])),
                ]),
            OnnxNode(name: "bn", opType: "BatchNormalization", inputs: ["c", "s", "bb", "m", "v"], outputs: ["n"]),
            OnnxNode(name: "clip", opType: "Clip", inputs: ["n", "lo", "hi"], outputs: ["k"]),
            OnnxNode(
                name: "pool", opType: "MaxPool", inputs: ["k"], outputs: ["p"],
                attributes: [
                    OnnxAttribute("kernel_shape", .ints([2, 2])), OnnxAttribute("strides", .ints([2, 2])),
                    OnnxAttribute("ceil_mode", .int(1)),
                ]),
            OnnxNode(
                name: "avg", opType: "AveragePool", inputs: ["p"], outputs: ["a"],
                attributes: [
                    OnnxAttribute("kernel_shape", .ints([1, 1])), OnnxAttribute("auto_pad", .string("SAME_UPPER")),
                ]),
            OnnxNode(name: "shape", opType: "Shape", inputs: ["a"], outputs: ["sh"]),
            OnnxNode(name: "gather", opType: "Gather", inputs: ["sh", "zero"], outputs: ["batch"]),
            OnnxNode(name: "unsqueeze", opType: "Unsqueeze", inputs: ["batch", "zero1"], outputs: ["batch1"]),
            OnnxNode(
                name: "concat", opType: "Concat", inputs: ["batch1", "minus1"], outputs: ["target"],
                attributes: [
                    OnnxAttribute("axis", .int(0))
                ]),
            OnnxNode(name: "reshape", opType: "Reshape", inputs: ["a", "target"], outputs: ["r"]),
            OnnxNode(name: "slice", opType: "Slice", inputs: ["r", "st", "en", "ax", "sp"], outputs: ["sl"]),
            OnnxNode(
                name: "transpose", opType: "Transpose", inputs: ["sl"], outputs: ["t"],
                attributes: [
                    OnnxAttribute("perm", .ints([1, 0]))
                ]),
            OnnxNode(
                name: "flatten", opType: "Flatten", inputs: ["t"], outputs: ["f"],
                attributes: [OnnxAttribute("axis", .int(0))]),
            OnnxNode(name: "matmul", opType: "MatMul", inputs: ["f", "wm"], outputs: ["mm"]),
            OnnxNode(name: "add", opType: "Add", inputs: ["mm", "bm"], outputs: ["logits"]),
            OnnxNode(name: "mul", opType: "Mul", inputs: ["logits", "scale"], outputs: ["scaled"]),
            OnnxNode(name: "softmax", opType: "Softmax", inputs: ["scaled"], outputs: ["y"]),
        ]
        let initializers = [
            floats("w", [6, 1, 3, 3]), floats("b", [6]), floats("s", [6]), floats("bb", [6]), floats("m", [6]),
            OnnxTensor(name: "v", dims: [6], floats: [1, 2, 3, 1, 2, 3]),
            OnnxTensor(name: "lo", dims: [], floats: [0]), OnnxTensor(name: "hi", dims: [], floats: [6]),
            OnnxTensor(name: "zero", dims: [], int64s: [0]), ints("zero1", [0]), ints("minus1", [-1]),
            ints("st", [1]), ints("en", [97]), ints("ax", [1]), ints("sp", [2]),
            floats("wm", [24, 5]), floats("bm", [5]), OnnxTensor(name: "scale", dims: [1], floats: [2]),
        ]
        return OnnxModel(
            graph: OnnxGraph(
                nodes: nodes, initializers: initializers,
                inputs: [OnnxValueInfo(name: "x", shape: [.param("N"), .value(3), .value(8), .value(8)])],
                outputs: [OnnxValueInfo(name: "y", shape: nil)]))
    }
}
