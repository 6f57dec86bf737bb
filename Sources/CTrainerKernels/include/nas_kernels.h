/* SIMD kernels of the trainer: direct "same" convolutions for channel counts too small for sgemm to pay off, their
 * gradients and Adam (the engine's kernels are in CEngineKernels). Each is compiled for AVX-512, AVX2 + FMA and
 * plain SSE, and picked at run time (nas_kernels_level); Swift code is built for baseline x86-64 only.
 *
 * Planes are row-major with a caller-chosen row stride; inputs are pre-padded with zeros so that the kernels
 * never branch on borders. Reads may run up to NAS_CONV_TILE + k - 1 floats past a row's first column of a tile,
 * so rows must be at least round_up(width, NAS_CONV_TILE) + k - 1 floats long (padding included), and the
 * readable padding must hold finite values. */
#ifndef NAS_KERNELS_H
#define NAS_KERNELS_H

/* Output columns computed per tile: width is rounded up to a multiple of it. */
#define NAS_CONV_TILE 32

/* out[o][y][x] = bias[o] + sum over c, ky, kx of w[o][c][ky][kx] * in[c][y + ky][x + kx], then max(0, .) if relu.
 * in: ci planes, plane stride in_plane, row stride in_row, already padded (in[c][0][0] is the top-left padding).
 * w: [co][ci][k][k]. bias may be NULL. Only the width valid columns of out are written. */
void nas_conv2d_forward(const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k,
                        const float *bias, int relu, float *out, int out_plane, int out_row, int height,
                        int width);

/* dw[o][c][ky][kx] += sum over y < height, x < round_up(width, 16) of dz[o][y][x] * in[c][y + ky][x + kx].
 * dz must be zero in columns width ..< round_up(width, 16) of each row. */
void nas_conv2d_weight_grad(const float *in, int ci, int in_plane, int in_row, const float *dz, int co,
                            int dz_plane, int dz_row, int k, int height, int width, float *dw);

/* out[c][y][x] = act[c][y][x] > 0 ? grad[c][y][x] : 0 (the ReLU's backward pass), and bias_grad[c] += the sum of
 * out[c] (the conv bias's gradient), each plane with its own strides. Only out's valid columns are written, but
 * grad and act are read up to round_up(width, 16) columns into each row, so their buffers need that much room. */
void nas_relu_backward(const float *grad, int grad_plane, int grad_row, const float *act, int act_plane, int act_row,
                       float *out, int out_plane, int out_row, int channels, int height, int width,
                       float *bias_grad);

/* One step of Keras's Adam on parameters begin ..< end: g = grads[0][i] + ... + grads[sources - 1][i] (in that
 * order), m += (g - m) * keep1, v += (g * g - v) * keep2, w -= rate * m / (sqrt(v) + epsilon). */
void nas_adam_update(float *w, float *m, float *v, const float *const *grads, int sources, long begin, long end,
                     float rate, float keep1, float keep2, float epsilon);

/* The instruction set the kernels use: 2 AVX-512, 1 AVX2 + FMA, 0 portable. The environment variable
 * NAS_KERNELS=avx2 or NAS_KERNELS=portable caps it, to compare paths. */
int nas_kernels_level(void);

#endif
