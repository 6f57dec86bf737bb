/* SIMD kernels of the native engine (Sources/Engine): the packed GEMM of its convolutions, depthwise convolutions
 * and pools, the bias/activation pass that follows its sgemv convolutions, broadcast element-wise ops, per-channel affine maps
 * (BatchNormalization) and plane means (GlobalAveragePool, ReduceMean). Each is compiled for AVX-512, AVX2 + FMA and plain SSE and picked
 * at run time (NAS_KERNELS=avx2 or NAS_KERNELS=portable caps the choice); Swift code is built for baseline x86-64
 * only. Apart from the trainer's kernels (CTrainerKernels) so that each module links only its own. */
#ifndef NAS_ENGINE_KERNELS_H
#define NAS_ENGINE_KERNELS_H

/* The geometry of a 2-D window op on one plane: kernel, strides, dilations and the output's size. */
struct nas_window {
    int kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, out_h, out_w;
};

/* One plane of a depthwise convolution or a pool over a plane of row stride padded_w that already holds the padding
 * (zeros for a convolution or an average, -infinity for a max). With p(ky, kx) = plane[oy * stride_h + ky *
 * dilation_h][ox * stride_w + kx * dilation_w]: mode 0 (depthwise) out[oy][ox] = bias + the sum of
 * w[ky * kernel_w + kx] * p(ky, kx); mode 1 (max pool) the max of p over the window; mode 2 (average pool) the
 * window's sum times scale[oy * out_w + ox]. Then the activation (0 none, 1 relu, 2 clip to [low, high], 3 hard
 * sigmoid clamp(low * x + high, 0, 1), 4 hard swish x * clamp(x / 6 + 1 / 2, 0, 1)). Rows go in blocks of 16
 * outputs: reads may run up to 16 * stride_w + (kernel_w - 1) * dilation_w + 1 floats past the last row's first
 * window and 16 past scale's last row, which both must have as slack; only out_h * out_w floats of out are
 * written. */
void nas_window2d(const float *plane, int padded_w, const struct nas_window *g, int mode, const float *w,
                  float bias, const float *scale, int activation, float low, float high, float *out);

/* A depthwise convolution (one filter per channel) of channels planes of height x width, vectorised across 16
 * channels at a time for planes too narrow for nas_window2d's rows: out[c][oy][ox] = bias[c] + the sum of
 * w[c * taps + ky * kernel_w + kx] * x[c][oy * stride_h + ky * dilation_h - pad_top][ox * stride_w + kx *
 * dilation_w - pad_left] (zero outside the plane), then the activation. tile is scratch of
 * (tile_h * tile_w + kernel_h * kernel_w) * 16 floats, tile_h and tile_w the padded plane's rows and columns. */
void nas_depthwise_channels(const float *x, int channels, int height, int width, int pad_top, int pad_left,
                            const struct nas_window *g, const float *w, const float *bias, int activation, float low,
                            float high, float *out, float *tile, int tile_h, int tile_w);

/* y[f][i] = activation(y[f][i] + bias[f]) for filters planes of plane floats (bias may be NULL; activation as
 * for nas_window2d): what follows the engine's sgemm and im2col convolutions. */
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

/* C = activation(A * B + bias) for the engine's convolutions, A (m x k, the weights) packed once by nas_gemm_pack
 * into nas_gemm_packed_count(m, k) floats (the layout depends on the CPU's level, so pack and multiply in the same
 * process). B (k x n) is read as B(k, j) = b[row(k) + col(j)], row(k) = b_rows ? b_rows[k] : k * ldb, col(j) =
 * b_cols ? b_cols[j] : j: the rows and columns of an im2col matrix without building it (b_rows the offset of each
 * (channel, ky, kx) in the padded input, b_cols of each output position's window). C is row-major with row stride
 * ldc; bias (per row) may be NULL; activation as for nas_window2d. scratch holds nas_gemm_scratch_count() floats. */
long nas_gemm_packed_count(int m, int k);
long nas_gemm_scratch_count(void);
void nas_gemm_pack(const float *a, long lda, int m, int k, float *packed);
void nas_gemm(const float *packed, int m, int k, int n, const float *b, const long *b_rows, long ldb,
              const long *b_cols, float *c, long ldc, const float *bias, int activation, float low, float high,
              float *scratch);
#endif
