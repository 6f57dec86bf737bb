import Foundation
import ONNXFixtures
import Testing
import Trainer

@testable import ONNX

@Suite struct OnnxFlopsTests {
    @Test func tutorialModelCountsWhatTensorFlowReports() throws {
        let architecture = CNNArchitecture(layers: [
            ConvLayer(kernelSize: 3, filters: 3), ConvLayer(kernelSize: 3, filters: 6),
        ])
        let bytes = try OnnxExport.serialized(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 2))
        let report = try OnnxFlops.count(bytes: bytes)
        #expect(report.total == 397_548)
        #expect(report.operations.map(\.opType) == ["Conv", "Relu", "Conv", "Relu", "Flatten", "Gemm", "Softmax"])
        #expect(report.operations.map(\.flops) == [44_688, 0, 258_720, 0, 0, 94_090, 50])
    }

    @Test func evenKernelsAndMoreLayersCount() throws {
        // [[5,4],[2,8]]: conv 28*28*4*(25*2+1) + conv 28*28*8*(4*4*2+1) + dense 6272*10*2+10 + softmax 50.
        let architecture = CNNArchitecture(layers: [
            ConvLayer(kernelSize: 5, filters: 4), ConvLayer(kernelSize: 2, filters: 8),
        ])
        let model = try OnnxExport.model(
            architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 2))
        #expect(try OnnxFlops.count(model).total == 784 * 4 * 51 + 784 * 8 * 33 + 125_450 + 50)
    }

    @Test func foreignModelsFromOtherExportersCountTheSame() async throws {
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await OnnxFixtures.writeForeignModels(to: directory)
        for name in ["tf2onnx.onnx", "torch.onnx"] {
            let bytes = Array(try Data(contentsOf: directory.appendingPathComponent(name)))
            let report = try OnnxFlops.count(bytes: bytes)
            #expect(report.total == 397_548, "\(name): \(report.operations)")
        }
    }

    @Test func unknownOperatorsAndForeignDomainsAreErrorsNamingEveryOne() throws {
        var model = try OnnxExport.model(
            architecture: CNNArchitecture(layers: []),
            weights: OnnxExport.randomWeights(for: CNNArchitecture(layers: []), seed: 1))
        model.graph.nodes[0].opType = "Mish"
        let error = try #require(throws: OnnxError.self) { try OnnxFlops.count(model) }
        #expect(error.description.contains("operator Mish of node 'flatten'"))
        // A recorded output shape does not make an unknown op count 0: the count would be silently wrong.
        model.graph.valueInfo.append(OnnxValueInfo(name: "flatten", shape: [.value(1), .value(784)]))
        #expect(throws: OnnxError.self) { try OnnxFlops.count(model) }
        // A Conv of another domain is not ONNX's Conv, whatever its name.
        model.graph.nodes[0].opType = "Flatten"
        model.graph.nodes[1].domain = "com.example"
        model.graph.nodes[1].opType = "Conv"
        model.graph.nodes[2].opType = "Swish"
        let both = try #require(throws: OnnxError.self) { try OnnxFlops.count(model) }
        #expect(both.isUnsupported)
        #expect(both.description.contains("operators com.example.Conv of"))
        #expect(both.description.contains("Swish of"))
    }

    /// Writes one model per op of mobile CNNs and `expected.txt` with `name count` lines from a counter written
    /// apart from `OnnxFlops`: shapes from onnx's own shape inference, TensorFlow's profiler formulas per op.
    static let independentCounter = #"""
        import sys, os, numpy as np, onnx
        from onnx import helper, numpy_helper, TensorProto, shape_inference
        out = sys.argv[1]
        rng = np.random.default_rng(3)
        N = helper.make_node
        f = lambda *s: rng.standard_normal(s).astype(np.float32)
        i64 = lambda *v: np.array(v, dtype=np.int64)
        lines = []
        def count(model):
            inferred = shape_inference.infer_shapes(model, strict_mode=True)
            shapes = {}
            for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
                shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
            for t in inferred.graph.initializer:
                shapes[t.name] = list(t.dims)
            size = lambda name: int(np.prod(shapes[name])) if shapes[name] else 1
            total = 0
            for n in inferred.graph.node:
                attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
                y = size(n.output[0])
                if n.op_type == 'Conv':
                    w = shapes[n.input[1]]
                    total += 2 * y * int(np.prod(w[1:])) + (y if len(n.input) > 2 and n.input[2] else 0)
                elif n.op_type == 'Gemm':
                    a = shapes[n.input[0]]
                    k = a[0] if attrs.get('transA', 0) else a[1]
                    total += 2 * y * k + (y if len(n.input) > 2 else 0)
                elif n.op_type == 'MatMul':
                    total += 2 * y * shapes[n.input[0]][-1]
                elif n.op_type in ('Add', 'Sub', 'Mul', 'Div'):
                    total += y
                elif n.op_type == 'HardSigmoid':
                    total += 2 * y
                elif n.op_type == 'HardSwish':
                    total += 3 * y
                elif n.op_type == 'Softmax':
                    total += 5 * y
                elif n.op_type in ('MaxPool', 'AveragePool'):
                    total += y * int(np.prod(attrs['kernel_shape']))
                elif n.op_type in ('GlobalAveragePool', 'ReduceMean'):
                    total += size(n.input[0])
                elif n.op_type not in ('Relu', 'Clip', 'Sigmoid', 'BatchNormalization', 'Flatten', 'Reshape', 'Concat',
                                       'Dropout', 'Identity', 'Transpose'):
                    raise SystemExit('no formula for ' + n.op_type)
            return total
        def case(name, nodes, x_shape, inits={}, opset=13):
            graph = helper.make_graph(
                nodes, name, [helper.make_tensor_value_info('x', TensorProto.FLOAT, list(x_shape))],
                [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)],
                [numpy_helper.from_array(v, k) for k, v in inits.items()])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
            model.ir_version = 8
            onnx.save(model, os.path.join(out, name + '.onnx'))
            lines.append(f'{name} {count(model)}')
        case('conv_bias', [N('Conv', ['x', 'w', 'b'], ['y'], pads=[1, 1, 1, 1])], [1, 3, 9, 9], {'w': f(4, 3, 3, 3), 'b': f(4)})
        case('conv_grouped', [N('Conv', ['x', 'w'], ['y'], group=2, strides=[2, 2])], [1, 4, 9, 9], {'w': f(6, 2, 3, 3)})
        case('conv_depthwise', [N('Conv', ['x', 'w', 'b'], ['y'], group=8, pads=[2, 2, 2, 2])], [1, 8, 10, 10],
             {'w': f(8, 1, 5, 5), 'b': f(8)})
        case('conv_depthwise_multiplier', [N('Conv', ['x', 'w'], ['y'], group=3, pads=[1, 1, 1, 1])], [1, 3, 6, 6],
             {'w': f(6, 1, 3, 3)})
        case('clip_relu6', [N('Clip', ['x', 'lo', 'hi'], ['y'])], [1, 3, 4, 4],
             {'lo': np.array(0, np.float32), 'hi': np.array(6, np.float32)})
        case('hard_sigmoid', [N('HardSigmoid', ['x'], ['y'])], [1, 5, 4, 4])
        case('hard_swish', [N('HardSwish', ['x'], ['y'])], [1, 5, 4, 4], opset=14)
        case('mul_channel', [N('Mul', ['x', 'c'], ['y'])], [1, 6, 5, 5], {'c': f(1, 6, 1, 1)})
        case('add_scalar', [N('Add', ['x', 'c'], ['y'])], [1, 6, 5, 5], {'c': np.array(3, np.float32)})
        case('sub_div', [N('Sub', ['x', 'c'], ['s']), N('Div', ['s', 'c'], ['y'])], [2, 7], {'c': f(7)})
        case('global_average_pool', [N('GlobalAveragePool', ['x'], ['y'])], [1, 16, 7, 7])
        case('reduce_mean', [N('ReduceMean', ['x'], ['y'], axes=[2, 3], keepdims=0)], [1, 16, 7, 7])
        case('batch_norm_relu', [N('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['n']), N('Relu', ['n'], ['y'])],
             [1, 3, 4, 4], {'s': f(3), 'b': f(3), 'm': f(3), 'v': np.abs(f(3)) + 1})
        case('gemm_trans_a', [N('Gemm', ['x', 'w', 'b'], ['y'], transA=1)], [6, 2], {'w': f(6, 5), 'b': f(5)})
        case('gemm_no_bias_trans_b', [N('Gemm', ['x', 'w'], ['y'], transB=1)], [1, 12], {'w': f(4, 12)})
        case('matmul_batched', [N('MatMul', ['x', 'w'], ['y'])], [3, 2, 4], {'w': f(4, 5)})
        case('flatten_reshape_concat', [N('Flatten', ['x'], ['a']), N('Reshape', ['x', 'sh'], ['b']), N('Concat', ['a', 'b'], ['y'], axis=1)],
             [1, 2, 3, 3], {'sh': i64(1, -1)})
        case('max_pool', [N('MaxPool', ['x'], ['y'], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], [1, 4, 11, 11])
        case('average_pool_ceil', [N('AveragePool', ['x'], ['y'], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], [1, 4, 7, 7])
        case('softmax', [N('Softmax', ['x'], ['y'], axis=1)], [1, 10])
        case('inverted_residual_se_block', [
            N('Conv', ['x', 'we', 'be'], ['e']), N('HardSwish', ['e'], ['ea']),
            N('Conv', ['ea', 'wd', 'bd'], ['d'], group=12, pads=[1, 1, 1, 1]), N('HardSwish', ['d'], ['da']),
            N('GlobalAveragePool', ['da'], ['g']), N('Conv', ['g', 'w1', 'b1'], ['h']), N('Relu', ['h'], ['hr']),
            N('Conv', ['hr', 'w2', 'b2'], ['s']), N('HardSigmoid', ['s'], ['sg'], alpha=1 / 6, beta=0.5),
            N('Mul', ['da', 'sg'], ['m']), N('Conv', ['m', 'wp'], ['p']),
            N('BatchNormalization', ['p', 'bs', 'bb', 'bm', 'bv'], ['pn']), N('Add', ['pn', 'x'], ['y'])],
            [1, 4, 8, 8], {'we': f(12, 4, 1, 1), 'be': f(12), 'wd': f(12, 1, 3, 3), 'bd': f(12), 'w1': f(3, 12, 1, 1),
                           'b1': f(3), 'w2': f(12, 3, 1, 1), 'b2': f(12), 'wp': f(4, 12, 1, 1), 'bs': f(4), 'bb': f(4),
                           'bm': f(4), 'bv': np.abs(f(4)) + 1}, opset=14)
        open(os.path.join(out, 'expected.txt'), 'w').write('\n'.join(lines))
        """#

    @Test func everyOpOfMobileCNNsCountsWhatAnIndependentCounterCounts() async throws {
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try await OnnxTestSupport.runPython(Self.independentCounter, [directory.path])
        let lines = try String(contentsOf: directory.appendingPathComponent("expected.txt"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count == 21)
        for line in lines {
            let parts = line.split(separator: " ")
            let name = String(parts[0])
            let expected = try #require(Int(parts[1]))
            let bytes = Array(try Data(contentsOf: directory.appendingPathComponent("\(name).onnx")))
            #expect(try OnnxFlops.count(bytes: bytes).total == expected, "\(name)")
        }
    }

    @Test func hardActivationsAndReductionsFollowHandDerivedFormulas() throws {
        // [1,5,4,4] = 80 elements: HardSigmoid 2 each, HardSwish 3 each, ReduceMean over all 80 inputs.
        func model(_ op: String, _ outputShape: [OnnxValueInfo.Dimension]? = nil, attributes: [OnnxAttribute] = [])
            -> OnnxModel
        {
            OnnxModel(
                opsetImports: [OnnxOpset(domain: "", version: 14)],
                graph: OnnxGraph(
                    nodes: [OnnxNode(opType: op, inputs: ["x"], outputs: ["y"], attributes: attributes)],
                    inputs: [OnnxValueInfo(name: "x", shape: [.value(1), .value(5), .value(4), .value(4)])],
                    outputs: [OnnxValueInfo(name: "y", shape: outputShape)]))
        }
        #expect(try OnnxFlops.count(model("HardSigmoid", nil)).total == 160)
        #expect(try OnnxFlops.count(model("HardSwish", nil)).total == 240)
        #expect(try OnnxFlops.count(model("ReduceMean", nil, attributes: [OnnxAttribute("axes", .ints([2, 3]))])).total == 80)
        #expect(try OnnxFlops.count(model("Relu", nil)).total == 0)
    }
}
