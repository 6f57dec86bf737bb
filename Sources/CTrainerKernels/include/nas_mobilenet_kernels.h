/* Kernels of the MobileNet-style family's training: depthwise convolutions, batch normalisation, the hard
 * activations, global average pooling and the squeeze-and-excite scale, with their backward passes. Pointwise
 * convolutions and the dense layer are OpenBLAS sgemm, called from Swift.
 *
 * Tensors are channel-major over the whole batch, [C][N][H][W], so that a pointwise convolution is one matrix
 * product [Co, Ci] x [Ci, N*H*W] and batch normalisation's statistics of a channel are one contiguous row. Every
 * kernel works on `channels` (or `planes`) independent rows, so callers split a tensor into channel ranges, one per
 * thread, and the results do not depend on the split. Each kernel is compiled for AVX-512, AVX2 + FMA and SSE and
 * picked at run time (nas_kernels_level). */
#ifndef NAS_MOBILENET_KERNELS_H
#define NAS_MOBILENET_KERNELS_H

/* Activations: the kinds nas_mb_activation_* take. x is the activation's input. */
enum {
    NAS_MB_IDENTITY = 0,
    NAS_MB_RELU = 1,     /* max(0, x) */
    NAS_MB_RELU6 = 2,    /* min(max(0, x), 6) */
    NAS_MB_HSWISH = 3,   /* x * relu6(x + 3) / 6 */
    NAS_MB_HSIGMOID = 4, /* relu6(x + 3) / 6 */
};

/* Depthwise k x k convolution with stride s and zero padding pad_top / pad_left (TensorFlow's "same" puts the odd
 * extra row and column after): out[c][i][y][x] = sum over ky, kx of w[c][ky][kx] * in[c][i][y*s + ky - pad_top]
 * [x*s + kx - pad_left]. in is [channels][images][hi][wi], out [channels][images][ho][wo], w [channels][k][k]. */
void nas_mb_depthwise_forward(const float *in, const float *w, float *out, int channels, int images, int hi, int wi,
                              int ho, int wo, int k, int stride, int pad_top, int pad_left);

/* The backward pass of nas_mb_depthwise_forward: dw[c] = (overwritten) the kernel gradient summed over images and
 * positions, and din (when not NULL) = the input gradient (overwritten). */
void nas_mb_depthwise_backward(const float *in, const float *w, const float *dout, float *din, float *dw,
                               int channels, int images, int hi, int wi, int ho, int wo, int k, int stride,
                               int pad_top, int pad_left);

/* The im2col matrix of a k x k convolution with stride s over images [images][ci][hi][wi]:
 * col[(c*k + ky)*k + kx][i][y][x] = in[i][c][y*s + ky - pad_top][x*s + kx - pad_left], 0 outside. */
void nas_mb_im2col(const float *in, float *col, int images, int ci, int hi, int wi, int ho, int wo, int k,
                   int stride, int pad_top, int pad_left);

/* Batch normalisation in training, per channel over its m values: mean and (biased) variance of z, computed in
 * double; xhat = (z - mean) / sqrt(var + epsilon) written over z; y = gamma * xhat + beta. mean, var and invstd
 * receive one value per channel. */
void nas_mb_batchnorm_train(float *z, float *y, int channels, long m, const float *gamma, const float *beta,
                            float epsilon, float *mean, float *var, float *invstd);

/* Batch normalisation in evaluation: y = gamma * (z - mean) / sqrt(var + epsilon) + beta. */
void nas_mb_batchnorm_eval(const float *z, float *y, int channels, long m, const float *gamma, const float *beta,
                           const float *mean, const float *var, float epsilon);

/* The backward pass of nas_mb_batchnorm_train: dgamma, dbeta (overwritten) and dz (overwritten) from dy, xhat and
 * invstd. */
void nas_mb_batchnorm_backward(const float *dy, const float *xhat, const float *gamma, const float *invstd, float *dz,
                               float *dgamma, float *dbeta, int channels, long m);

/* y = f(x) for count values (one of the NAS_MB_* kinds). */
void nas_mb_activation_forward(int kind, const float *x, float *y, long count);

/* dx = f'(x) * dy; when accumulate is non-zero, dx += instead. */
void nas_mb_activation_backward(int kind, const float *x, const float *dy, float *dx, long count, int accumulate);

/* out[p] = the mean of x[p][0 ..< area], for planes p (a [C][N][H][W] tensor is C*N planes: out is [C][N]). */
void nas_mb_average_pool(const float *x, float *out, long planes, int area);

/* dx[p][j] = dout[p] / area. */
void nas_mb_average_pool_backward(const float *dout, float *dx, long planes, int area);

/* y[p][j] = x[p][j] * e[p] (squeeze-and-excite's channel scale). */
void nas_mb_scale(const float *x, const float *e, float *y, long planes, int area);

/* dx[p][j] = dy[p][j] * e[p] and de[p] = sum over j of dy[p][j] * x[p][j] (both overwritten). */
void nas_mb_scale_backward(const float *x, const float *e, const float *dy, float *dx, float *de, long planes,
                           int area);

#endif
