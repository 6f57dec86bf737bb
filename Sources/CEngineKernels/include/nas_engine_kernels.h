/* SIMD kernels of the native engine (Sources/Engine): the 3x3 depthwise convolution and the bias/activation pass
 * that follows its sgemm and im2col convolutions. Each is compiled for AVX-512, AVX2 + FMA and plain SSE and picked
 * at run time (NAS_KERNELS=avx2 or NAS_KERNELS=portable caps the choice); Swift code is built for baseline x86-64
 * only. Apart from the trainer's kernels (CTrainerKernels) so that each module links only its own. */
#ifndef NAS_ENGINE_KERNELS_H
#define NAS_ENGINE_KERNELS_H

/* One channel of the native engine's 3x3 depthwise convolution (stride_w 1 or 2, no dilation) over a zero-padded
 * plane of row stride padded_w, with the bias and an activation fused (0 none, 1 relu, 2 clip to [low, high]):
 * out[oy][ox] = bias + sum of w[ky * 3 + kx] * plane[oy * stride_h + ky][ox * stride_w + kx]. Reads may run up to
 * 16 * stride_w + 2 floats past the last row's first output column's window, which the plane must have as slack;
 * only out_h * out_w floats of out are written. */
void nas_depthwise3x3(const float *plane, int padded_w, int stride_h, int stride_w, const float *w, float bias,
                      int activation, float low, float high, float *out, int out_h, int out_w);

/* y[f][i] = activation(y[f][i] + bias[f]) for filters planes of plane floats (bias may be NULL; activation as
 * above): what follows the engine's sgemm and im2col convolutions. */
void nas_bias_activation(float *y, int filters, int plane, const float *bias, int activation, float low,
                         float high);
#endif
