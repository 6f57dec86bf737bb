import Foundation
import ONNXFixtures
import TestSupport
import Testing
import Trainer

@testable import Engine
@testable import ONNX

/// The native engine against onnxruntime (1 thread) on small random graphs covering every supported op.
@Suite struct OnnxEngineTests {
    /// Writes `<case>.onnx`, `<case>.in.bin` and onnxruntime's `<case>.out.bin` per case, and `manifest.txt`.
    static let generator = #"""
        import sys, os, numpy as np, onnx, onnxruntime as ort
        from onnx import helper, numpy_helper, TensorProto
        out = sys.argv[1]
        rng = np.random.default_rng(11)
        names = []
        def f(*shape):
            return rng.standard_normal(shape).astype(np.float32)
        def case(name, nodes, x_shape, inits={}, opset=13, output_name='y'):
            graph = helper.make_graph(
                nodes, name, [helper.make_tensor_value_info('x', TensorProto.FLOAT, list(x_shape))],
                [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, None)],
                [numpy_helper.from_array(v, k) for k, v in inits.items()])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
            model.ir_version = 8
            path = os.path.join(out, name + '.onnx')
            onnx.save(model, path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
            x = f(*[d if isinstance(d, int) else 1 for d in x_shape])
            y = session.run(None, {'x': x})[0].astype(np.float32)
            x.tofile(os.path.join(out, name + '.in.bin'))
            y.tofile(os.path.join(out, name + '.out.bin'))
            names.append(name)
        N = helper.make_node
        i64 = lambda *v: np.array(v, dtype=np.int64)

        case('conv_basic', [N('Conv', ['x', 'w', 'b'], ['y'], pads=[1, 1, 1, 1])], [1, 3, 8, 8], {'w': f(4, 3, 3, 3), 'b': f(4)})
        case('conv_strided_dilated', [N('Conv', ['x', 'w'], ['y'], strides=[2, 2], dilations=[2, 2], pads=[1, 2, 0, 1])],
             [1, 2, 11, 9], {'w': f(3, 2, 3, 3)})
        case('conv_groups', [N('Conv', ['x', 'w', 'b'], ['y'], group=2, pads=[1, 1, 1, 1])], [1, 4, 7, 7], {'w': f(6, 2, 3, 3), 'b': f(6)})
        case('conv_depthwise_same_upper', [N('Conv', ['x', 'w', 'b'], ['y'], group=4, strides=[2, 2], auto_pad='SAME_UPPER')],
             [1, 4, 9, 9], {'w': f(4, 1, 3, 3), 'b': f(4)})
        case('depthwise3x3_s1_relu', [N('Conv', ['x', 'w', 'b'], ['c'], group=3, pads=[1, 1, 1, 1]), N('Relu', ['c'], ['y'])],
             [1, 3, 20, 19], {'w': f(3, 1, 3, 3), 'b': f(3)})
        case('depthwise3x3_s2_clip', [N('Conv', ['x', 'w'], ['c'], group=2, strides=[2, 2], pads=[1, 1, 1, 1]),
             N('Clip', ['c', 'lo', 'hi'], ['y'])], [1, 2, 37, 35],
             {'w': f(2, 1, 3, 3), 'lo': np.array(-0.5, np.float32), 'hi': np.array(0.5, np.float32)})
        case('depthwise5x5_multiplier_dilated', [N('Conv', ['x', 'w', 'b'], ['y'], group=2, dilations=[1, 2], pads=[2, 4, 2, 4])],
             [1, 2, 12, 21], {'w': f(4, 1, 5, 5), 'b': f(4)})
        case('depthwise3x3_s3', [N('Conv', ['x', 'w', 'b'], ['y'], group=2, strides=[3, 3], pads=[0, 1, 2, 1])],
             [1, 2, 30, 40], {'w': f(2, 1, 3, 3), 'b': f(2)})
        case('conv_strided_wide', [N('Conv', ['x', 'w', 'b'], ['c'], strides=[2, 2], pads=[1, 1, 1, 1]), N('Relu', ['c'], ['y'])],
             [1, 3, 24, 26], {'w': f(8, 3, 3, 3), 'b': f(8)})
        case('conv_same_lower_even', [N('Conv', ['x', 'w'], ['y'], auto_pad='SAME_LOWER')], [1, 2, 6, 6], {'w': f(3, 2, 2, 2)})
        case('conv_valid_rect', [N('Conv', ['x', 'w', 'b'], ['y'], auto_pad='VALID', kernel_shape=[2, 3])], [1, 2, 6, 7],
             {'w': f(5, 2, 2, 3), 'b': f(5)})
        case('conv_pointwise_relu', [N('Conv', ['x', 'w', 'b'], ['c']), N('Relu', ['c'], ['y'])], [1, 5, 4, 4], {'w': f(3, 5, 1, 1), 'b': f(3)})
        case('conv_1d', [N('Conv', ['x', 'w', 'b'], ['y'], pads=[1, 1])], [1, 2, 10], {'w': f(3, 2, 3), 'b': f(3)})
        case('conv_clip6', [N('Conv', ['x', 'w', 'b'], ['c'], pads=[1, 1, 1, 1]), N('Clip', ['c', 'lo', 'hi'], ['y'])], [1, 2, 5, 5],
             {'w': f(3, 2, 3, 3) * 3, 'b': f(3), 'lo': np.array(0, np.float32), 'hi': np.array(1, np.float32)})
        case('relu', [N('Relu', ['x'], ['y'])], [2, 3, 4])
        case('sigmoid', [N('Sigmoid', ['x'], ['y'])], [2, 3, 4])
        case('clip_opset10', [N('Clip', ['x'], ['y'], min=-0.5, max=0.7)], [3, 4], opset=10)
        case('add_channel_broadcast', [N('Add', ['x', 'c'], ['y'])], [1, 3, 4, 5], {'c': f(3, 1, 1)})
        case('mul_last_axis', [N('Mul', ['x', 'c'], ['y'])], [1, 3, 4, 5], {'c': f(5)})
        case('sub_scalar_first', [N('Sub', ['c', 'x'], ['y'])], [2, 3], {'c': np.array(1.5, np.float32)})
        case('div_broadcast_both', [N('Div', ['x', 'c'], ['y'])], [3, 1, 4], {'c': f(2, 1) + 3})
        case('add_two_runtime_relu', [N('Relu', ['x'], ['r']), N('Sigmoid', ['x'], ['s']), N('Add', ['r', 's'], ['a']),
             N('Relu', ['a'], ['y'])], [2, 5])
        case('matmul_shared_b', [N('MatMul', ['x', 'w'], ['y'])], [2, 3, 4], {'w': f(4, 5)})
        case('matmul_batched', [N('MatMul', ['x', 'w'], ['y'])], [2, 3, 4], {'w': f(2, 4, 5)})
        case('matmul_vector', [N('MatMul', ['x', 'w'], ['y'])], [4], {'w': f(4, 5)})
        case('gemm_trans_alpha_beta', [N('Gemm', ['x', 'w', 'c'], ['y'], transA=1, transB=1, alpha=0.5, beta=2.0)], [6, 3],
             {'w': f(4, 6), 'c': f(1, 4)})
        case('gemm_no_c', [N('Gemm', ['x', 'w'], ['y'])], [2, 6], {'w': f(6, 4)})
        case('reshape_flatten_transpose', [N('Reshape', ['x', 's'], ['r']), N('Transpose', ['r'], ['t'], perm=[0, 2, 1, 3]),
             N('Flatten', ['t'], ['y'], axis=2)], [2, 12, 5], {'s': i64(2, 3, 4, -1)})
        case('softmax_axis1', [N('Softmax', ['x'], ['y'], axis=1)], [2, 4, 3])
        case('softmax_opset11_coerced', [N('Softmax', ['x'], ['y'], axis=1)], [2, 4, 3], opset=11)
        case('maxpool_strided_padded', [N('MaxPool', ['x'], ['y'], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], [1, 2, 9, 9])
        case('maxpool_ceil', [N('MaxPool', ['x'], ['y'], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], [1, 2, 7, 7])
        case('avgpool_exclude_pad', [N('AveragePool', ['x'], ['y'], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], [1, 2, 5, 6])
        case('avgpool_include_pad', [N('AveragePool', ['x'], ['y'], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1],
             count_include_pad=1)], [1, 2, 5, 6])
        case('global_average_pool', [N('GlobalAveragePool', ['x'], ['y'])], [1, 3, 5, 4])
        case('batchnorm', [N('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'], epsilon=1e-3)], [1, 3, 4, 4],
             {'s': f(3), 'b': f(3), 'm': f(3), 'v': np.abs(f(3)) + 0.5})
        case('concat_runtime_and_constant', [N('Relu', ['x'], ['r']), N('Concat', ['x', 'r', 'c'], ['y'], axis=1)], [1, 2, 3],
             {'c': f(1, 4, 3)})
        case('identity_dropout', [N('Identity', ['x'], ['i']), N('Dropout', ['i'], ['y'])], [2, 3])
        case('slice_negative_step', [N('Slice', ['x', 'st', 'en', 'ax', 'sp'], ['y'])], [3, 8],
             {'st': i64(-1, 1), 'en': i64(-9, 7), 'ax': i64(1, 0), 'sp': i64(-2, 1)})
        case('gather_runtime_data', [N('Gather', ['x', 'i'], ['y'], axis=1)], [2, 5, 3], {'i': i64(4, 0, -1)})
        case('squeeze_unsqueeze_cast', [N('Unsqueeze', ['x', 'a0'], ['u']), N('Squeeze', ['u', 'a0'], ['s']),
             N('Cast', ['s'], ['y'], to=TensorProto.FLOAT)], [2, 3], {'a0': i64(0)})
        case('shape_chain_constant_of_shape', [N('Shape', ['x'], ['sh']), N('ConstantOfShape', ['sh'], ['z'],
             value=numpy_helper.from_array(np.array([0.25], np.float32))), N('Add', ['x', 'z'], ['a']),
             N('Shape', ['x'], ['sh2'], start=1), N('Constant', [], ['k'], value_ints=[-1]), N('Concat', ['k', 'sh2'], ['ns'], axis=0),
             N('Cast', ['ns'], ['ns64'], to=TensorProto.INT64), N('Reshape', ['a', 'ns64'], ['y'])], [2, 3, 4], opset=15)
        # The ops of mobile CNNs as other tools export them (MobileNet-V2/V3, ResNet, SqueezeNet).
        case('hardsigmoid_default', [N('HardSigmoid', ['x'], ['y'])], [2, 3, 5])
        case('hardsigmoid_alpha_beta', [N('HardSigmoid', ['x'], ['y'], alpha=1 / 6, beta=0.5)], [2, 3, 5])
        case('hardswish', [N('HardSwish', ['x'], ['y'])], [1, 3, 7, 9], opset=14)
        case('conv_hardswish_fused', [N('Conv', ['x', 'w', 'b'], ['c'], pads=[1, 1, 1, 1]), N('HardSwish', ['c'], ['y'])],
             [1, 3, 9, 9], {'w': f(5, 3, 3, 3) * 2, 'b': f(5)}, opset=14)
        case('depthwise_hardsigmoid_fused', [N('Conv', ['x', 'w', 'b'], ['c'], group=4, pads=[1, 1, 1, 1]),
             N('HardSigmoid', ['c'], ['y'], alpha=1 / 6, beta=0.5)], [1, 4, 10, 11], {'w': f(4, 1, 3, 3) * 2, 'b': f(4)})
        case('depthwise5x5_hardswish', [N('Conv', ['x', 'w'], ['c'], group=3, strides=[2, 2], pads=[2, 2, 2, 2]),
             N('HardSwish', ['c'], ['y'])], [1, 3, 17, 17], {'w': f(3, 1, 5, 5)}, opset=14)
        case('conv_grouped_3_relu', [N('Conv', ['x', 'w', 'b'], ['c'], group=3, pads=[1, 1, 1, 1]), N('Relu', ['c'], ['y'])],
             [1, 6, 8, 8], {'w': f(9, 2, 3, 3), 'b': f(9)})
        case('mul_scalar', [N('Mul', ['x', 'c'], ['y'])], [1, 16, 12, 12], {'c': np.array(0.37, np.float32)})
        case('mul_scalar_first', [N('Mul', ['c', 'x'], ['y'])], [1, 5, 3, 33], {'c': np.array([1.7], np.float32)})
        case('mul_channel_1c11', [N('Mul', ['x', 'c'], ['y'])], [1, 16, 9, 7], {'c': f(1, 16, 1, 1)})
        case('add_channel_relu_fused', [N('Add', ['x', 'c'], ['a']), N('Relu', ['a'], ['y'])], [2, 3, 5, 6], {'c': f(1, 3, 1, 1)})
        case('div_scalar', [N('Div', ['x', 'c'], ['y'])], [1, 4, 5, 5], {'c': np.array(6, np.float32)})
        case('sub_row_broadcast', [N('Sub', ['c', 'x'], ['y'])], [2, 1, 4], {'c': f(3, 1)})
        case('mul_runtime_channel_gate', [N('GlobalAveragePool', ['x'], ['g']), N('Sigmoid', ['g'], ['s']),
             N('Mul', ['x', 's'], ['y'])], [1, 8, 6, 5])
        case('squeeze_excite_block', [N('GlobalAveragePool', ['x'], ['g']), N('Conv', ['g', 'w1', 'b1'], ['h']),
             N('Relu', ['h'], ['r']), N('Conv', ['r', 'w2', 'b2'], ['e']), N('HardSigmoid', ['e'], ['s'], alpha=1 / 6, beta=0.5),
             N('Mul', ['s', 'x'], ['y'])], [1, 8, 7, 7], {'w1': f(2, 8, 1, 1), 'b1': f(2), 'w2': f(8, 2, 1, 1), 'b2': f(8)})
        case('hardswish_as_clip_mul', [N('Add', ['x', 'three'], ['a']), N('Clip', ['a', 'lo', 'hi'], ['c']),
             N('Div', ['c', 'six'], ['d']), N('Mul', ['x', 'd'], ['y'])], [1, 4, 6, 6],
             {'three': np.array(3, np.float32), 'six': np.array(6, np.float32), 'lo': np.array(0, np.float32),
              'hi': np.array(6, np.float32)})
        case('relu6_clip_opset6_attributes', [N('Conv', ['x', 'w'], ['c']), N('Clip', ['c'], ['y'], min=0.0, max=6.0)],
             [1, 2, 4, 4], {'w': f(3, 2, 1, 1) * 4}, opset=6)
        case('clip_min_only_opset13', [N('Clip', ['x', 'lo'], ['y'])], [2, 6], {'lo': np.array(-0.1, np.float32)})
        case('reducemean_spatial_keepdims', [N('ReduceMean', ['x'], ['y'], axes=[2, 3])], [1, 6, 5, 7])
        case('reducemean_spatial_flat', [N('ReduceMean', ['x'], ['y'], axes=[-1, -2], keepdims=0)], [1, 6, 5, 7])
        case('reducemean_axes_input_opset18', [N('ReduceMean', ['x', 'ax'], ['y'], keepdims=1)], [1, 4, 3, 3], {'ax': i64(2, 3)},
             opset=18)
        case('reducemean_all', [N('ReduceMean', ['x'], ['y'], keepdims=0)], [2, 3, 4])
        case('batchnorm_relu_fused', [N('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['n']), N('Relu', ['n'], ['y'])],
             [2, 3, 4, 5], {'s': f(3), 'b': f(3), 'm': f(3), 'v': np.abs(f(3)) + 0.5})
        case('batchnorm_2d', [N('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'])], [3, 4],
             {'s': f(4), 'b': f(4), 'm': f(4), 'v': np.abs(f(4)) + 0.5})
        case('maxpool_resnet_stem', [N('MaxPool', ['x'], ['y'], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
             [1, 3, 16, 16])
        case('maxpool_squeezenet_ceil', [N('MaxPool', ['x'], ['y'], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
             [1, 3, 16, 16])
        case('avgpool_strided', [N('AveragePool', ['x'], ['y'], kernel_shape=[2, 2], strides=[2, 2])], [1, 3, 8, 10])
        case('fire_module_concat', [N('Conv', ['x', 'ws', 'bs'], ['s']), N('Relu', ['s'], ['sr']),
             N('Conv', ['sr', 'we1', 'be1'], ['e1']), N('Relu', ['e1'], ['e1r']),
             N('Conv', ['sr', 'we3', 'be3'], ['e3'], pads=[1, 1, 1, 1]), N('Relu', ['e3'], ['e3r']),
             N('Concat', ['e1r', 'e3r'], ['y'], axis=1)], [1, 6, 7, 7],
             {'ws': f(3, 6, 1, 1), 'bs': f(3), 'we1': f(4, 3, 1, 1), 'be1': f(4), 'we3': f(4, 3, 3, 3), 'be3': f(4)})
        case('residual_block_add_relu', [N('Conv', ['x', 'w1'], ['c1'], pads=[1, 1, 1, 1]), N('Relu', ['c1'], ['r1']),
             N('Conv', ['r1', 'w2'], ['c2'], pads=[1, 1, 1, 1]), N('Add', ['c2', 'x'], ['a']), N('Relu', ['a'], ['y'])],
             [1, 4, 6, 6], {'w1': f(4, 4, 3, 3), 'w2': f(4, 4, 3, 3)})
        case('head_gap_flatten_gemm_softmax', [N('GlobalAveragePool', ['x'], ['g']), N('Flatten', ['g'], ['f']),
             N('Gemm', ['f', 'w', 'b'], ['l'], transB=1), N('Softmax', ['l'], ['y'], axis=1)], [1, 8, 4, 4],
             {'w': f(5, 8), 'b': f(5)})
        case('head_reshape_matmul_add', [N('Reshape', ['x', 'sh'], ['r']), N('MatMul', ['r', 'w'], ['m']),
             N('Add', ['m', 'b'], ['y'])], [1, 3, 2, 2], {'sh': i64(1, -1), 'w': f(12, 4), 'b': f(4)})
        # The window kernel's specialised sizes and strides (depthwise 7x7, pools of stride 1 and 3).
        case('depthwise7x7_s2_clip', [N('Conv', ['x', 'w', 'b'], ['c'], group=5, strides=[2, 2], pads=[3, 3, 3, 3]),
             N('Clip', ['c', 'lo', 'hi'], ['y'])], [1, 5, 15, 9],
             {'w': f(5, 1, 7, 7), 'b': f(5), 'lo': np.array(0, np.float32), 'hi': np.array(1, np.float32)})
        case('depthwise7x7_s1_wide_row', [N('Conv', ['x', 'w'], ['y'], group=2, pads=[3, 3, 3, 3])], [1, 2, 4, 37],
             {'w': f(2, 1, 7, 7)})
        case('depthwise5x5_narrow_many_channels_relu', [N('Conv', ['x', 'w', 'b'], ['c'], group=20, pads=[2, 2, 2, 2]),
             N('Relu', ['c'], ['y'])], [1, 20, 6, 7], {'w': f(20, 1, 5, 5), 'b': f(20)})
        case('depthwise5x5_narrow_dilated_hardswish', [N('Conv', ['x', 'w'], ['c'], group=17, dilations=[2, 2], pads=[4, 4, 4, 4]),
             N('HardSwish', ['c'], ['y'])], [1, 17, 9, 8], {'w': f(17, 1, 5, 5)}, opset=14)
        # 5x5 and 7x7 windows four output rows at a time, the rows left over one by one (depthwise, max, average);
        # narrow planes 16 channels per vector, 8, 4, 2 and 1 positions at a time.
        case('depthwise5x5_s1_rows_tail', [N('Conv', ['x', 'w', 'b'], ['y'], group=3, pads=[2, 2, 2, 2])], [1, 3, 7, 20],
             {'w': f(3, 1, 5, 5), 'b': f(3)})
        case('maxpool_5x5_s2_rows', [N('MaxPool', ['x'], ['y'], kernel_shape=[5, 5], strides=[2, 2], pads=[2, 2, 2, 2])],
             [1, 2, 13, 21])
        case('avgpool_7x7_s1_rows', [N('AveragePool', ['x'], ['y'], kernel_shape=[7, 7], pads=[3, 3, 3, 3])], [1, 2, 9, 18])
        case('depthwise3x3_s1_channels_clip', [N('Conv', ['x', 'w', 'b'], ['c'], group=19, pads=[1, 1, 1, 1]),
             N('Clip', ['c', 'lo', 'hi'], ['y'])], [1, 19, 6, 7],
             {'w': f(19, 1, 3, 3), 'b': f(19), 'lo': np.array(0, np.float32), 'hi': np.array(6, np.float32)})
        case('depthwise7x7_channels_eight_wide', [N('Conv', ['x', 'w', 'b'], ['c'], group=18, pads=[3, 3, 3, 3]),
             N('Relu', ['c'], ['y'])], [1, 18, 5, 8], {'w': f(18, 1, 7, 7), 'b': f(18)})
        case('maxpool_3x3_s1_same', [N('MaxPool', ['x'], ['y'], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], [1, 3, 6, 19])
        case('avgpool_s3_ceil', [N('AveragePool', ['x'], ['y'], kernel_shape=[3, 2], strides=[3, 3], pads=[1, 1, 0, 1],
             ceil_mode=1)], [1, 2, 11, 13], opset=19)
        case('matmul_one_column', [N('MatMul', ['x', 'w'], ['y'])], [2, 3, 4], {'w': f(4, 1)})
        case('gemm_trans_a_one_column', [N('Gemm', ['x', 'w', 'c'], ['y'], transA=1, alpha=0.5)], [6, 3], {'w': f(6, 1), 'c': f(1)})
        # The packed GEMM's paths: several k blocks (k > 128), several column blocks (n > 1024) with a narrow tail,
        # filters not a multiple of the panel height, strided 1x1 (column table, no row table), a 7x7 stem,
        # pointwise with a tail panel, groups, and weights computed at run time (packed on every run).
        case('gemm_conv_k_blocks_column_blocks', [N('Conv', ['x', 'w', 'b'], ['c'], pads=[1, 1, 1, 1]), N('Relu', ['c'], ['y'])],
             [1, 20, 37, 41], {'w': f(19, 20, 3, 3), 'b': f(19)})
        case('gemm_pointwise_stride2', [N('Conv', ['x', 'w', 'b'], ['y'], strides=[2, 2])], [1, 16, 15, 15],
             {'w': f(33, 16, 1, 1), 'b': f(33)})
        case('gemm_stem_7x7_s2', [N('Conv', ['x', 'w', 'b'], ['c'], strides=[2, 2], pads=[3, 3, 3, 3]), N('Relu', ['c'], ['y'])],
             [1, 3, 30, 29], {'w': f(10, 3, 7, 7), 'b': f(10)})
        case('gemm_3x3_s2_wide_rows', [N('Conv', ['x', 'w', 'b'], ['y'], strides=[2, 2], pads=[1, 1, 1, 1])], [1, 3, 9, 70],
             {'w': f(11, 3, 3, 3), 'b': f(11)})
        case('gemm_pointwise_tail_clip', [N('Conv', ['x', 'w', 'b'], ['c']), N('Clip', ['c', 'lo', 'hi'], ['y'])], [1, 12, 35, 35],
             {'w': f(40, 12, 1, 1), 'b': f(40), 'lo': np.array(0, np.float32), 'hi': np.array(6, np.float32)})
        case('gemm_grouped_hardswish', [N('Conv', ['x', 'w', 'b'], ['c'], group=4, strides=[1, 2], pads=[1, 0, 1, 2]),
             N('HardSwish', ['c'], ['y'])], [1, 8, 9, 11], {'w': f(12, 2, 3, 3) * 2, 'b': f(12)}, opset=14)
        case('gemm_runtime_weights', [N('ReduceMean', ['x'], ['m'], keepdims=0), N('Mul', ['m', 'zero'], ['z']),
             N('Add', ['wc', 'z'], ['w']), N('Conv', ['x', 'w', 'b'], ['y'], pads=[1, 1, 1, 1])], [1, 3, 6, 7],
             {'wc': f(9, 3, 3, 3), 'zero': np.array(0, np.float32), 'b': f(9)})
        # Decomposed hard activations, fused into the op before them, and near misses that must not be.
        k = lambda v: np.array(v, np.float32)
        case('hardswish_decomposed_conv', [N('Conv', ['x', 'w', 'b'], ['c'], pads=[1, 1, 1, 1]), N('Add', ['c', 'three'], ['a']),
             N('Clip', ['a', 'zero', 'six'], ['cl']), N('Mul', ['cl', 'sixth'], ['g']), N('Mul', ['c', 'g'], ['y'])], [1, 3, 9, 8],
             {'w': f(5, 3, 3, 3) * 2, 'b': f(5), 'three': k(3), 'zero': k(0), 'six': k(6), 'sixth': k(1 / 6)})
        case('hardswish_decomposed_div_gate_first', [N('Conv', ['x', 'w'], ['c'], group=3, pads=[2, 2, 2, 2]),
             N('Add', ['three', 'c'], ['a']), N('Clip', ['a', 'zero', 'six'], ['cl']), N('Div', ['cl', 'six'], ['g']),
             N('Mul', ['g', 'c'], ['y'])], [1, 3, 11, 10],
             {'w': f(3, 1, 5, 5) * 2, 'three': k([3]), 'zero': k(0), 'six': k(6)})
        case('hardsigmoid_decomposed_gate', [N('GlobalAveragePool', ['x'], ['p']), N('Conv', ['p', 'w', 'b'], ['e']),
             N('Add', ['e', 'three'], ['a']), N('Clip', ['a', 'zero', 'six'], ['cl']), N('Mul', ['sixth', 'cl'], ['g']),
             N('Mul', ['x', 'g'], ['y'])], [1, 6, 5, 5],
             {'w': f(6, 6, 1, 1) * 3, 'b': f(6), 'three': k(3), 'zero': k(0), 'six': k(6), 'sixth': k(1 / 6)})
        case('hardswish_near_miss_not_fused', [N('Conv', ['x', 'w', 'b'], ['c'], pads=[1, 1, 1, 1]), N('Add', ['c', 'two'], ['a']),
             N('Clip', ['a', 'zero', 'six'], ['cl']), N('Mul', ['cl', 'sixth'], ['g']), N('Mul', ['c', 'g'], ['m']),
             N('Add', ['m', 'cl'], ['y'])], [1, 2, 6, 6],
             {'w': f(3, 2, 3, 3) * 2, 'b': f(3), 'two': k(2), 'zero': k(0), 'six': k(6), 'sixth': k(1 / 6)})
        case('hardsigmoid_chain_output_read_twice', [N('Conv', ['x', 'w', 'b'], ['c']), N('Add', ['c', 'three'], ['a']),
             N('Clip', ['a', 'zero', 'six'], ['cl']), N('Mul', ['cl', 'sixth'], ['g']), N('Add', ['cl', 'g'], ['y'])],
             [1, 2, 4, 4], {'w': f(3, 2, 1, 1) * 3, 'b': f(3), 'three': k(3), 'zero': k(0), 'six': k(6), 'sixth': k(1 / 6)})
        open(os.path.join(out, 'manifest.txt'), 'w').write('\n'.join(names))
        """#

    static func compare(_ actual: [Float], _ expected: [Float], tolerance: Float = 1e-4) -> String? {
        guard actual.count == expected.count else { return "\(actual.count) values, expected \(expected.count)" }
        for (index, (a, e)) in zip(actual, expected).enumerated() where !(abs(a - e) <= tolerance * max(1, abs(e))) {
            return "value \(index) is \(a), onnxruntime gives \(e)"
        }
        return nil
    }

    @Test func everyOpMatchesOnnxRuntime() async throws {
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try await OnnxTestSupport.runPython(Self.generator, [directory.path])
        let names = try String(contentsOf: directory.appendingPathComponent("manifest.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        #expect(names.count >= 70)
        for name in names {
            let bytes = Array(try Data(contentsOf: directory.appendingPathComponent("\(name).onnx")))
            let input = try OnnxTestSupport.readFloats(directory.appendingPathComponent("\(name).in.bin"))
            let expected = try OnnxTestSupport.readFloats(directory.appendingPathComponent("\(name).out.bin"))
            do {
                let engine = try OnnxEngine(bytes: bytes)
                let output = try engine.run(input)
                #expect(Self.compare(output, expected) == nil, "\(name): \(Self.compare(output, expected) ?? "")")
                // A second run on the same arena gives the same answer (no state leaks between runs).
                #expect(try engine.run(input) == output, "\(name): second run differs")
            } catch {
                Issue.record("\(name): \(error)")
            }
        }
    }

    /// The C kernels pick AVX-512, AVX2 or portable code once per process: each capped level (`NAS_KERNELS`), in a
    /// `nas infer` child of its own, matches onnxruntime on every case too, so a machine of another CPU level runs
    /// tested code.
    @Test(arguments: ["avx2", "portable"])
    func everyOpMatchesOnnxRuntimeAtACappedKernelLevel(_ level: String) async throws {
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try await OnnxTestSupport.runPython(Self.generator, [directory.path])
        let names = try String(contentsOf: directory.appendingPathComponent("manifest.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        for name in names {
            let file = { (suffix: String) in directory.appendingPathComponent(name + suffix) }
            let result = try await TestSupport.run(
                try TestSupport.nasBinary(),
                ["infer", file(".onnx").path, "--input", file(".in.bin").path, "--output", file(".\(level).bin").path],
                environment: ["NAS_KERNELS": level])
            try #require(result.status == 0, "\(name) at \(level): \(result.stderr)")
            let output = try OnnxTestSupport.readFloats(file(".\(level).bin"))
            let expected = try OnnxTestSupport.readFloats(file(".out.bin"))
            #expect(Self.compare(output, expected) == nil, "\(name) at \(level): \(Self.compare(output, expected) ?? "")")
        }
    }

    @Test func exportedAndForeignModelsMatchOnnxRuntime() async throws {
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await OnnxFixtures.writeForeignModels(to: directory)
        let tutorial = CNNArchitecture(layers: [
            ConvLayer(kernelSize: 5, filters: 4), ConvLayer(kernelSize: 2, filters: 8),
        ])
        try Data(
            try OnnxExport.serialized(architecture: tutorial, weights: OnnxExport.randomWeights(for: tutorial, seed: 9))
        )
        .write(to: directory.appendingPathComponent("ours.onnx"))
        try Data(try OnnxFixtures.kitchenSinkModel().serialized()).write(
            to: directory.appendingPathComponent("kitchen.onnx"))
        let output = try await OnnxTestSupport.runPython(
            """
            import sys, os, numpy as np, onnxruntime as ort
            rng = np.random.default_rng(5)
            for name in ['ours', 'tf2onnx', 'torch', 'kitchen']:
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                s = ort.InferenceSession(os.path.join(sys.argv[1], name + '.onnx'), options, providers=['CPUExecutionProvider'])
                shape = {'tf2onnx': [1, 28, 28, 1], 'kitchen': [1, 3, 8, 8]}.get(name, [1, 1, 28, 28])
                feed = s.get_inputs()[0].name
                for k in range(3):
                    x = rng.random(shape, dtype=np.float32)
                    x.tofile(os.path.join(sys.argv[1], f'{name}.{k}.in.bin'))
                    s.run(None, {feed: x})[0].tofile(os.path.join(sys.argv[1], f'{name}.{k}.out.bin'))
            print('ok')
            """, [directory.path])
        #expect(output.contains("ok"))
        for name in ["ours", "tf2onnx", "torch", "kitchen"] {
            let engine = try OnnxEngine(
                bytes: Array(try Data(contentsOf: directory.appendingPathComponent("\(name).onnx"))))
            #expect(engine.outputs.first?.shape == (name == "kitchen" ? [1, 5] : [1, 10]))
            for k in 0..<3 {
                let input = try OnnxTestSupport.readFloats(directory.appendingPathComponent("\(name).\(k).in.bin"))
                let expected = try OnnxTestSupport.readFloats(directory.appendingPathComponent("\(name).\(k).out.bin"))
                let result = try engine.run(input)
                #expect(Self.compare(result, expected) == nil, "\(name) #\(k): \(Self.compare(result, expected) ?? "")")
            }
        }
    }

    /// Our MobileNet export spells hard-swish and hard-sigmoid as Add, Clip and Mul nodes; the engine fuses each
    /// chain into the Conv before it, and still computes what onnxruntime does.
    @Test func exportedMobileNetRunsItsHardActivationsFused() async throws {
        let block = MobileNetBlock(expansion: 3, kernelSize: 5, squeezeExcite: true, activation: .hardSwish)
        let architecture = MobileNetArchitecture(
            stemFilters: 8, stemStride: 2, stemActivation: .hardSwish,
            stages: [MobileNetStage(filters: 8, stride: 1, blocks: [block])], height: 20, width: 18, channels: 1,
            classes: 3)
        let bytes = try OnnxExport.serialized(
            mobileNet: architecture, weights: Trainer.initialWeights(mobileNet: architecture, seed: 4))
        let engine = try OnnxEngine(bytes: bytes)
        // Stem, expansion, depthwise, SE pool, SE reduce (+Relu), SE expand (+hard sigmoid), SE scale, projection,
        // residual add, pool, Gemm, Softmax: 12 kernels; unfused, the 4 chains would add 11 more.
        #expect(engine.kernelCount == 12)
        let directory = try OnnxTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = OnnxTestSupport.randomFloats(20 * 18, seed: 8)
        try Data(bytes).write(to: directory.appendingPathComponent("model.onnx"))
        try OnnxTestSupport.write(input, to: directory.appendingPathComponent("in.bin"))
        _ = try await OnnxTestSupport.runPython(
            """
            import sys, os, numpy as np, onnxruntime as ort
            d = sys.argv[1]
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            s = ort.InferenceSession(os.path.join(d, 'model.onnx'), options, providers=['CPUExecutionProvider'])
            x = np.fromfile(os.path.join(d, 'in.bin'), dtype=np.float32).reshape(1, 1, 20, 18)
            s.run(None, {s.get_inputs()[0].name: x})[0].astype(np.float32).tofile(os.path.join(d, 'out.bin'))
            """, [directory.path])
        let expected = try OnnxTestSupport.readFloats(directory.appendingPathComponent("out.bin"))
        let output = try engine.run(input)
        #expect(Self.compare(output, expected) == nil, "\(Self.compare(output, expected) ?? "")")
    }

    @Test func unsupportedOperatorNamesTheOpAndTheNode() throws {
        let model = OnnxModel(
            graph: OnnxGraph(
                nodes: [OnnxNode(name: "rnn_1", opType: "LSTM", inputs: ["x"], outputs: ["y"])],
                inputs: [OnnxValueInfo(name: "x", shape: [.value(1), .value(4)])],
                outputs: [OnnxValueInfo(name: "y", shape: nil)]))
        let error = try #require(throws: OnnxError.self) { try OnnxEngine(model: model) }
        #expect(error.description.contains("operator LSTM of node 'rnn_1'"))
        var custom = model
        custom.graph.nodes[0].domain = "com.microsoft"
        custom.graph.nodes[0].opType = "FusedConv"
        let customError = try #require(throws: OnnxError.self) { try OnnxEngine(model: custom) }
        #expect(customError.description.contains("com.microsoft.FusedConv"))
    }

    @Test func everyUnsupportedOperatorIsNamedInOneError() throws {
        let model = OnnxModel(
            graph: OnnxGraph(
                nodes: [
                    OnnxNode(name: "rnn_1", opType: "LSTM", inputs: ["x"], outputs: ["a"]),
                    OnnxNode(name: "ok", opType: "Relu", inputs: ["a"], outputs: ["b"]),
                    OnnxNode(name: "rnn_2", opType: "LSTM", inputs: ["b"], outputs: ["c"]),
                    OnnxNode(name: "mine", opType: "Conv", domain: "com.example", inputs: ["c"], outputs: ["y"]),
                ],
                inputs: [OnnxValueInfo(name: "x", shape: [.value(1), .value(4)])],
                outputs: [OnnxValueInfo(name: "y", shape: nil)]))
        let error = try #require(throws: OnnxError.self) { try OnnxEngine(model: model) }
        #expect(error.isUnsupported)
        #expect(error.description.contains("operators LSTM of node 'rnn_1' (LSTM) and 1 more, com.example.Conv of node 'mine'"))
        #expect(!error.description.contains("Relu of"))
    }

    @Test func wrongInputSizeIsATypedError() throws {
        let architecture = CNNArchitecture(layers: [ConvLayer(kernelSize: 3, filters: 2)])
        let engine = try OnnxEngine(
            model: try OnnxExport.model(
                architecture: architecture, weights: OnnxExport.randomWeights(for: architecture, seed: 3)))
        #expect(engine.inputs == [OnnxEngine.Tensor(name: "input", shape: [1, 1, 28, 28])])
        let error = try #require(throws: OnnxError.self) { try engine.run([Float](repeating: 0, count: 100)) }
        #expect(error.description.contains("input 'input' has shape [1, 1, 28, 28] (784 floats); got 100 floats"))
    }

    @Test func arenaReusesMemoryOfDeadValues() throws {
        // Ten chained Relus of 1,000 floats need two live buffers at a time, not ten.
        var nodes: [OnnxNode] = []
        var previous = "x"
        for index in 0..<10 {
            nodes.append(OnnxNode(opType: "Sigmoid", inputs: [previous], outputs: ["v\(index)"]))
            previous = "v\(index)"
        }
        let model = OnnxModel(
            graph: OnnxGraph(
                nodes: nodes, inputs: [OnnxValueInfo(name: "x", shape: [.value(1000)])],
                outputs: [OnnxValueInfo(name: previous, shape: [.value(1000)])]))
        let engine = try OnnxEngine(model: model)
        #expect(engine.peakMemoryBytes <= 3 * 1008 * 4)
        #expect(engine.peakMemoryBytes >= 2 * 1000 * 4)
    }
}
