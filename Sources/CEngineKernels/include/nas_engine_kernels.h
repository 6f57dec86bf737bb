/* SIMD kernels of the native engine (Sources/Engine): the 3x3 depthwise convolution, the bias/activation pass
 * that follows its sgemm and im2col convolutions, broadcast element-wise ops, per-channel affine maps
 * (BatchNormalization) and plane means (GlobalAveragePool, ReduceMean). Each is compiled for AVX-512, AVX2 + FMA and plain SSE and picked
 * at run time (NAS_KERNELS=avx2 or NAS_KERNELS=portable caps the choice); Swift code is built for baseline x86-64
 * only. Apart from the trainer's kernels (CTrainerKernels) so that each module links only its own. */
#ifndef NAS_ENGINE_KERNELS_H
#define NAS_ENGINE_KERNELS_H

/* One channel of the native engine's 3x3 depthwise convolution (stride_w 1 or 2, no dilation) over a zero-padded
 * plane of row stride padded_w, with the bias and an activation fused (0 none, 1 relu, 2 clip to [low, high],
 * 3 hard sigmoid clamp(low * x + high, 0, 1), 4 hard swish x * clamp(x / 6 + 1 / 2, 0, 1)):
 * out[oy][ox] = bias + sum of w[ky * 3 + kx] * plane[oy * stride_h + ky][ox * stride_w + kx]. Reads may run up to
 * 16 * stride_w + 2 floats past the last row's first output column's window, which the plane must have as slack;
 * only out_h * out_w floats of out are written. */
void nas_depthwise3x3(const float *plane, int padded_w, int stride_h, int stride_w, const float *w, float bias,
                      int activation, float low, float high, float *out, int out_h, int out_w);

/* y[f][i] = activation(y[f][i] + bias[f]) for filters planes of plane floats (bias may be NULL; activation as
 * above): what follows the engine's sgemm and im2col convolutions. */
void nas_bias_activation(float *y, int filters, int plane, const float *bias, int activation, float low,
                         float high);

/* The most dimensions nas_binary walks, after the engine has merged the ones that can be merged. */
#define NAS_BINARY_MAX_RANK 8

/* y = activation(a op b) with ONNX (numpy) broadcasting, op 0 add, 1 sub, 2 mul, 3 div: shape is the output's
 * (rank <= NAS_BINARY_MAX_RANK, at least 1), a_strides / b_strides each input's stride per output dimension in
 * floats, 0 where it broadcasts; the innermost stride must be 0 or 1. y is dense in shape. */
void nas_binary(int op, const float *a, const long *a_strides, const float *b, const long *b_strides, float *y,
                const long *shape, int rank, int activation, float low, float high);

/* y = activation(x * scale[c] + shift[c]) over outer blocks of channels planes of plane floats; scale / shift may
 * be NULL (1 and 0). x and y may be the same buffer. */
void nas_channel_affine(const float *x, float *y, long outer, int channels, long plane, const float *scale,
                        const float *shift, int activation, float low, float high);

/* y[p] = the mean of plane floats of x from p * plane on, for p < planes. */
void nas_plane_mean(const float *x, float *y, long planes, long plane);
#endif
