#include "nas_engine_kernels.h"

#include <stdlib.h>
#include <string.h>

/* The vector helpers are always inlined into the target-specific functions, so their ABI never matters. */
#pragma clang diagnostic ignored "-Wpsabi"

/* Sixteen floats: one register with AVX-512, two with AVX2, four with SSE. Each body below is written once over
 * this type and instantiated per instruction set. The helpers repeat the trainer's (CTrainerKernels): a few lines
 * each, and the two C targets stay independent so that neither module links the other's kernels. */
typedef float v16 __attribute__((vector_size(64), aligned(4)));

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

ALWAYS_INLINE void store16(float *p, v16 v) { memcpy(p, &v, sizeof v); }

ALWAYS_INLINE v16 splat16(float x) {
    v16 v = {x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
    return v;
}

/* 2: AVX-512, 1: AVX2 + FMA, 0: portable. NAS_KERNELS=avx2 or portable caps it, as it caps the trainer's. */
static int kernels_level(void) {
    static int cached = -1; /* threads may race to fill it, always with the same value */
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = 0;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) value = 1;
        if (value == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) value = 2;
        const char *cap = getenv("NAS_KERNELS");
        if (cap && strcmp(cap, "avx2") == 0 && value > 1) value = 1;
        if (cap && strcmp(cap, "portable") == 0) value = 0;
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value;
}

/* Even lanes of 32 floats from p: the inputs a stride-2 window reads. */
ALWAYS_INLINE v16 even16(const float *p) {
    v16 a = load16(p), b = load16(p + 16);
    return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}

/* The activation kinds of nas_engine_kernels.h: 0 none, 1 relu, 2 clip to [low, high], 3 hard sigmoid
 * clamp(low * x + high, 0, 1), 4 hard swish x * clamp(x / 6 + 1 / 2, 0, 1). */
ALWAYS_INLINE float activate1(float x, int activation, float low, float high) {
    switch (activation) {
        case 1: return x < 0 ? 0 : x;
        case 2: return x < low ? low : (x > high ? high : x);
        case 3: {
            float h = low * x + high;
            return h < 0 ? 0 : (h > 1 ? 1 : h);
        }
        case 4: {
            float h = x * (1.0f / 6.0f) + 0.5f;
            return x * (h < 0 ? 0 : (h > 1 ? 1 : h));
        }
        default: return x;
    }
}

ALWAYS_INLINE v16 activate16(v16 acc, int activation, float low, float high) {
    if (activation == 0) return acc;
    float l[16];
    memcpy(l, &acc, sizeof l);
    if (activation == 1) {
        for (int i = 0; i < 16; i++) l[i] = l[i] < 0 ? 0 : l[i];
    } else if (activation == 2) {
        for (int i = 0; i < 16; i++) l[i] = l[i] < low ? low : (l[i] > high ? high : l[i]);
    } else if (activation == 3) {
        for (int i = 0; i < 16; i++) {
            float h = low * l[i] + high;
            l[i] = h < 0 ? 0 : (h > 1 ? 1 : h);
        }
    } else {
        for (int i = 0; i < 16; i++) {
            float h = l[i] * (1.0f / 6.0f) + 0.5f;
            l[i] = l[i] * (h < 0 ? 0 : (h > 1 ? 1 : h));
        }
    }
    memcpy(&acc, l, sizeof l);
    return acc;
}

/* activate16 with vector min / max instead of lanes: the tiles' epilogue and the window rows run it on every vector they store. */
ALWAYS_INLINE v16 activate16_vector(v16 x, int activation, float low, float high) {
    switch (activation) {
        case 1: return __builtin_elementwise_max(x, splat16(0));
        case 2: return __builtin_elementwise_min(__builtin_elementwise_max(x, splat16(low)), splat16(high));
        case 3: return __builtin_elementwise_min(__builtin_elementwise_max(x * splat16(low) + splat16(high), splat16(0)), splat16(1));
        case 4: {
            const v16 h = x * splat16(1.0f / 6.0f) + splat16(0.5f);
            return x * __builtin_elementwise_min(__builtin_elementwise_max(h, splat16(0)), splat16(1));
        }
        default: return x;
    }
}
/* Sixteen floats stride floats apart. */
ALWAYS_INLINE v16 strided16(const float *p, int stride) {
    float l[16];
    for (int i = 0; i < 16; i++) l[i] = p[(long)i * stride];
    return load16(l);
}

/* One plane of a 2-D window op over a padded plane (see nas_window2d in the header). Each output row in blocks of
 * 16 outputs, every tap accumulated in one vector; the last block of a row computes all 16 lanes (its reads stay
 * inside the plane's slack) and stores only the valid ones. The op, the horizontal stride and dilation and
 * the kernel size are constants where the compiler can unroll the taps (window2d_sized passes literals for the common ones). */
ALWAYS_INLINE void window2d_body(const float *plane, int padded_w, int kernel_h, int kernel_w, int stride_w,
                                 int tap_column, const struct nas_window *g, int mode, const float *w, float bias, const float *scale,
                                 int activation, float low, float high, float *out) {
    const int out_h = g->out_h, out_w = g->out_w;
    const long row_step = (long)g->stride_h * padded_w, tap_row = (long)g->dilation_h * padded_w;
    for (int oy = 0; oy < out_h; oy++) {
        const float *top = plane + oy * row_step;
        float *row = out + (size_t)oy * out_w;
        for (int x0 = 0; x0 < out_w; x0 += 16) {
            v16 acc = mode == 1 ? splat16(-__builtin_inff()) : splat16(mode == 0 ? bias : 0);
            for (int ky = 0; ky < kernel_h; ky++) {
                const float *line = top + ky * tap_row + (long)x0 * stride_w;
                for (int kx = 0; kx < kernel_w; kx++) {
                    const float *p = line + kx * tap_column;
                    const v16 x = stride_w == 1 ? load16(p) : (stride_w == 2 ? even16(p) : strided16(p, stride_w));
                    if (mode == 0) {
                        acc += splat16(w[ky * kernel_w + kx]) * x;
                    } else if (mode == 1) {
                        acc = __builtin_elementwise_max(acc, x);
                    } else {
                        acc += x;
                    }
                }
            }
            if (mode == 2) acc *= load16(scale + (size_t)oy * out_w + x0);
            acc = activate16(acc, activation, low, high);
            if (x0 + 16 <= out_w) {
                store16(row + x0, acc);
            } else {
                float l[16];
                memcpy(l, &acc, sizeof l);
                memcpy(row + x0, l, sizeof(float) * (size_t)(out_w - x0));
            }
        }
    }
}

/* window2d_body for a kernel size and one stride in both directions known at compile time, no dilation, R output
 * rows at a time: each input vector is loaded once and added into every one of the R rows' accumulators whose
 * window covers it, so that a 7x7 kernel loads 10 x 7 vectors for 4 x 49 taps instead of 4 x 49 (the loads, not the
 * FMAs, bound a window op). The rows out_h leaves over go one at a time. Reads stay inside what window2d_body reads.
 * Used for 5x5 and 7x7 windows only: measured on this project's Zen 4 machine (C harness, CPU time, min of 7), 4 rows
 * took 0.75-0.87x the one-row loop's time on 14x14 planes with 5x5 and 7x7 kernels and 1.1-1.3x on 3x3 ones. */
ALWAYS_INLINE void window2d_rows_block(const float *plane, int padded_w, const int KH, const int KW, const int S,
                                       const int R, int oy, const struct nas_window *g, int mode, const float *w,
                                       float bias, const float *scale, int activation, float low, float high,
                                       float *out) {
    const int out_w = g->out_w;
    const v16 init = mode == 1 ? splat16(-__builtin_inff()) : splat16(mode == 0 ? bias : 0);
    for (int x0 = 0; x0 < out_w; x0 += 16) {
        v16 acc[R];
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++) acc[r] = init;
#pragma clang loop unroll(full)
        for (int iy = 0; iy < (R - 1) * S + KH; iy++) {
            const float *line = plane + (long)(oy * S + iy) * padded_w + (long)x0 * S;
#pragma clang loop unroll(full)
            for (int kx = 0; kx < KW; kx++) {
                const v16 x = S == 1 ? load16(line + kx) : (S == 2 ? even16(line + kx) : strided16(line + kx, S));
#pragma clang loop unroll(full)
                for (int r = 0; r < R; r++) {
                    const int ky = iy - r * S;
                    if (ky < 0 || ky >= KH) continue;
                    if (mode == 0) {
                        acc[r] += splat16(w[ky * KW + kx]) * x;
                    } else if (mode == 1) {
                        acc[r] = __builtin_elementwise_max(acc[r], x);
                    } else {
                        acc[r] += x;
                    }
                }
            }
        }
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++) {
            v16 v = acc[r];
            if (mode == 2) v *= load16(scale + (size_t)(oy + r) * out_w + x0);
            v = activate16_vector(v, activation, low, high);
            float *row = out + (size_t)(oy + r) * out_w;
            if (x0 + 16 <= out_w) {
                store16(row + x0, v);
            } else {
                float l[16];
                memcpy(l, &v, sizeof l);
                memcpy(row + x0, l, sizeof(float) * (size_t)(out_w - x0));
            }
        }
    }
}

ALWAYS_INLINE void window2d_rows(const float *plane, int padded_w, const int KH, const int KW, const int S,
                                 const struct nas_window *g, int mode, const float *w, float bias, const float *scale,
                                 int activation, float low, float high, float *out) {
    int oy = 0;
    for (; oy + 4 <= g->out_h; oy += 4)
        window2d_rows_block(plane, padded_w, KH, KW, S, 4, oy, g, mode, w, bias, scale, activation, low, high, out);
    for (; oy < g->out_h; oy++)
        window2d_rows_block(plane, padded_w, KH, KW, S, 1, oy, g, mode, w, bias, scale, activation, low, high, out);
}

/* The op, the common strides and kernel sizes as constants, so that each combination compiles to its own loop. */
ALWAYS_INLINE void window2d_sized(const float *plane, int padded_w, const struct nas_window *g, int mode,
                                  const float *w, float bias, const float *scale, int activation, float low,
                                  float high, float *out) {
#define WINDOW_SIZE(MODE, STRIDE)                                                                                 \
    do {                                                                                                          \
        const int rows = g->stride_h == g->stride_w && g->dilation_h == 1 && g->dilation_w == 1;                  \
        if (rows && (STRIDE == 1 || STRIDE == 2) && g->kernel_h == 5 && g->kernel_w == 5)                         \
            window2d_rows(plane, padded_w, 5, 5, STRIDE, g, MODE, w, bias, scale, activation, low, high, out);     \
        else if (rows && (STRIDE == 1 || STRIDE == 2) && g->kernel_h == 7 && g->kernel_w == 7)                    \
            window2d_rows(plane, padded_w, 7, 7, STRIDE, g, MODE, w, bias, scale, activation, low, high, out);     \
        else if (g->kernel_h == 3 && g->kernel_w == 3 && g->dilation_w == 1)                                      \
            window2d_body(plane, padded_w, 3, 3, STRIDE, 1, g, MODE, w, bias, scale, activation, low, high, out);    \
        else if (g->kernel_h == 5 && g->kernel_w == 5 && g->dilation_w == 1)                                      \
            window2d_body(plane, padded_w, 5, 5, STRIDE, 1, g, MODE, w, bias, scale, activation, low, high, out);    \
        else if (g->kernel_h == 7 && g->kernel_w == 7 && g->dilation_w == 1)                                      \
            window2d_body(plane, padded_w, 7, 7, STRIDE, 1, g, MODE, w, bias, scale, activation, low, high, out);    \
        else                                                                                                      \
            window2d_body(plane, padded_w, g->kernel_h, g->kernel_w, STRIDE, g->dilation_w, g, MODE, w, bias, scale, activation, \
                          low, high, out);                                                                        \
    } while (0)
#define WINDOW_MODE(MODE)                                                                                         \
    do {                                                                                                          \
        if (g->stride_w == 1)                                                                                     \
            WINDOW_SIZE(MODE, 1);                                                                                 \
        else if (g->stride_w == 2)                                                                                \
            WINDOW_SIZE(MODE, 2);                                                                                 \
        else                                                                                                      \
            WINDOW_SIZE(MODE, g->stride_w);                                                                       \
    } while (0)
    switch (mode) {
        case 0: WINDOW_MODE(0); break;
        case 1: WINDOW_MODE(1); break;
        default: WINDOW_MODE(2);
    }
#undef WINDOW_MODE
#undef WINDOW_SIZE
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void window2d_avx512(
    const float *plane, int padded_w, const struct nas_window *g, int mode, const float *w, float bias,
    const float *scale, int activation, float low, float high, float *out) {
    window2d_sized(plane, padded_w, g, mode, w, bias, scale, activation, low, high, out);
}

__attribute__((target("avx2,fma"))) static void window2d_avx2(const float *plane, int padded_w,
                                                              const struct nas_window *g, int mode, const float *w,
                                                              float bias, const float *scale, int activation,
                                                              float low, float high, float *out) {
    window2d_sized(plane, padded_w, g, mode, w, bias, scale, activation, low, high, out);
}

static void window2d_portable(const float *plane, int padded_w, const struct nas_window *g, int mode, const float *w,
                              float bias, const float *scale, int activation, float low, float high, float *out) {
    window2d_sized(plane, padded_w, g, mode, w, bias, scale, activation, low, high, out);
}

void nas_window2d(const float *plane, int padded_w, const struct nas_window *g, int mode, const float *w,
                  float bias, const float *scale, int activation, float low, float high, float *out) {
    switch (kernels_level()) {
        case 2: window2d_avx512(plane, padded_w, g, mode, w, bias, scale, activation, low, high, out); break;
        case 1: window2d_avx2(plane, padded_w, g, mode, w, bias, scale, activation, low, high, out); break;
        default: window2d_portable(plane, padded_w, g, mode, w, bias, scale, activation, low, high, out);
    }
}

/* y[f][i] = activation(y[f][i] + bias[f]) in blocks of 16, the tail of each plane through a copy. */
ALWAYS_INLINE void bias_activation_body(float *y, int filters, int plane, const float *bias, int activation,
                                        float low, float high) {
    for (int f = 0; f < filters; f++) {
        float *row = y + (size_t)f * plane;
        const v16 b = splat16(bias ? bias[f] : 0);
        int i = 0;
        for (; i + 16 <= plane; i += 16) {
            store16(row + i, activate16(load16(row + i) + b, activation, low, high));
        }
        if (i < plane) {
            float l[16] = {0};
            memcpy(l, row + i, sizeof(float) * (size_t)(plane - i));
            v16 v;
            memcpy(&v, l, sizeof v);
            v = activate16(v + b, activation, low, high);
            memcpy(l, &v, sizeof l);
            memcpy(row + i, l, sizeof(float) * (size_t)(plane - i));
        }
    }
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void bias_activation_avx512(
    float *y, int filters, int plane, const float *bias, int activation, float low, float high) {
    bias_activation_body(y, filters, plane, bias, activation, low, high);
}

__attribute__((target("avx2,fma"))) static void bias_activation_avx2(float *y, int filters, int plane,
                                                                     const float *bias, int activation, float low,
                                                                     float high) {
    bias_activation_body(y, filters, plane, bias, activation, low, high);
}

static void bias_activation_portable(float *y, int filters, int plane, const float *bias, int activation, float low,
                                     float high) {
    bias_activation_body(y, filters, plane, bias, activation, low, high);
}

void nas_bias_activation(float *y, int filters, int plane, const float *bias, int activation, float low,
                         float high) {
    switch (kernels_level()) {
        case 2: bias_activation_avx512(y, filters, plane, bias, activation, low, high); break;
        case 1: bias_activation_avx2(y, filters, plane, bias, activation, low, high); break;
        default: bias_activation_portable(y, filters, plane, bias, activation, low, high);
    }
}

/* One element-wise op over a run of n outputs; a_step / b_step are 1 (contiguous) or 0 (one value repeated). */
ALWAYS_INLINE v16 binary16(int op, v16 x, v16 z) {
    switch (op) {
        case 0: return x + z;
        case 1: return x - z;
        case 2: return x * z;
        default: return x / z;
    }
}

ALWAYS_INLINE void binary_run(int op, const float *a, int a_step, const float *b, int b_step, float *y, long n,
                              int activation, float low, float high) {
    long i = 0;
    const v16 sa = splat16(a[0]), sb = splat16(b[0]);
    for (; i + 16 <= n; i += 16) {
        v16 x = a_step ? load16(a + i) : sa;
        v16 z = b_step ? load16(b + i) : sb;
        store16(y + i, activate16(binary16(op, x, z), activation, low, high));
    }
    for (; i < n; i++) {
        float x = a[a_step ? i : 0], z = b[b_step ? i : 0];
        float r = op == 0 ? x + z : (op == 1 ? x - z : (op == 2 ? x * z : x / z));
        y[i] = activate1(r, activation, low, high);
    }
}

/* The outer dimensions walked with counters, the innermost through binary_run with the op and both steps fixed
 * so that the compiler specialises each loop. */
ALWAYS_INLINE void binary_body(int op, const float *a, const long *a_strides, const float *b, const long *b_strides,
                               float *y, const long *shape, int rank, int activation, float low, float high) {
    long inner = shape[rank - 1];
    int a_step = a_strides[rank - 1] != 0, b_step = b_strides[rank - 1] != 0;
    long outer = 1;
    for (int d = 0; d < rank - 1; d++) outer *= shape[d];
    long index[NAS_BINARY_MAX_RANK] = {0};
    long a_offset = 0, b_offset = 0;
    for (long o = 0; o < outer; o++) {
        float *out = y + o * inner;
        if (a_step && b_step) {
            binary_run(op, a + a_offset, 1, b + b_offset, 1, out, inner, activation, low, high);
        } else if (a_step) {
            binary_run(op, a + a_offset, 1, b + b_offset, 0, out, inner, activation, low, high);
        } else if (b_step) {
            binary_run(op, a + a_offset, 0, b + b_offset, 1, out, inner, activation, low, high);
        } else {
            binary_run(op, a + a_offset, 0, b + b_offset, 0, out, inner, activation, low, high);
        }
        for (int d = rank - 2; d >= 0; d--) {
            a_offset += a_strides[d];
            b_offset += b_strides[d];
            if (++index[d] < shape[d]) break;
            a_offset -= a_strides[d] * shape[d];
            b_offset -= b_strides[d] * shape[d];
            index[d] = 0;
        }
    }
}

#define BINARY_OPS                                                                                                \
    switch (op) {                                                                                                 \
        case 0: binary_body(0, a, as, b, bs, y, shape, rank, activation, low, high); break;                       \
        case 1: binary_body(1, a, as, b, bs, y, shape, rank, activation, low, high); break;                       \
        case 2: binary_body(2, a, as, b, bs, y, shape, rank, activation, low, high); break;                       \
        default: binary_body(3, a, as, b, bs, y, shape, rank, activation, low, high);                             \
    }

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void binary_avx512(
    int op, const float *a, const long *as, const float *b, const long *bs, float *y, const long *shape, int rank,
    int activation, float low, float high) {
    BINARY_OPS
}

__attribute__((target("avx2,fma"))) static void binary_avx2(int op, const float *a, const long *as, const float *b,
                                                            const long *bs, float *y, const long *shape, int rank,
                                                            int activation, float low, float high) {
    BINARY_OPS
}

static void binary_portable(int op, const float *a, const long *as, const float *b, const long *bs, float *y,
                            const long *shape, int rank, int activation, float low, float high) {
    BINARY_OPS
}

void nas_binary(int op, const float *a, const long *a_strides, const float *b, const long *b_strides, float *y,
                const long *shape, int rank, int activation, float low, float high) {
    switch (kernels_level()) {
        case 2: binary_avx512(op, a, a_strides, b, b_strides, y, shape, rank, activation, low, high); break;
        case 1: binary_avx2(op, a, a_strides, b, b_strides, y, shape, rank, activation, low, high); break;
        default: binary_portable(op, a, a_strides, b, b_strides, y, shape, rank, activation, low, high);
    }
}

/* y = activation(x * scale[c] + shift[c]) per channel plane (scale / shift may be NULL: 1 and 0). */
ALWAYS_INLINE void channel_affine_body(const float *x, float *y, long outer, int channels, long plane,
                                       const float *scale, const float *shift, int activation, float low,
                                       float high) {
    for (long o = 0; o < outer; o++) {
        for (int c = 0; c < channels; c++) {
            const float *src = x + (o * channels + c) * plane;
            float *dst = y + (o * channels + c) * plane;
            float f = scale ? scale[c] : 1, t = shift ? shift[c] : 0;
            const v16 vf = splat16(f), vt = splat16(t);
            long i = 0;
            for (; i + 16 <= plane; i += 16) store16(dst + i, activate16(load16(src + i) * vf + vt, activation, low, high));
            for (; i < plane; i++) dst[i] = activate1(src[i] * f + t, activation, low, high);
        }
    }
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void channel_affine_avx512(
    const float *x, float *y, long outer, int channels, long plane, const float *scale, const float *shift,
    int activation, float low, float high) {
    channel_affine_body(x, y, outer, channels, plane, scale, shift, activation, low, high);
}

__attribute__((target("avx2,fma"))) static void channel_affine_avx2(const float *x, float *y, long outer,
                                                                    int channels, long plane, const float *scale,
                                                                    const float *shift, int activation, float low,
                                                                    float high) {
    channel_affine_body(x, y, outer, channels, plane, scale, shift, activation, low, high);
}

static void channel_affine_portable(const float *x, float *y, long outer, int channels, long plane,
                                    const float *scale, const float *shift, int activation, float low, float high) {
    channel_affine_body(x, y, outer, channels, plane, scale, shift, activation, low, high);
}

void nas_channel_affine(const float *x, float *y, long outer, int channels, long plane, const float *scale,
                        const float *shift, int activation, float low, float high) {
    switch (kernels_level()) {
        case 2: channel_affine_avx512(x, y, outer, channels, plane, scale, shift, activation, low, high); break;
        case 1: channel_affine_avx2(x, y, outer, channels, plane, scale, shift, activation, low, high); break;
        default: channel_affine_portable(x, y, outer, channels, plane, scale, shift, activation, low, high);
    }
}

/* y[p] = mean of the plane floats of x's plane p, for planes planes (GlobalAveragePool; ReduceMean over trailing
 * axes). Sixteen partial sums, added up at the end. */
ALWAYS_INLINE void plane_mean_body(const float *x, float *y, long planes, long plane) {
    const float scale = plane > 0 ? 1.0f / (float)plane : 0;
    for (long p = 0; p < planes; p++) {
        const float *src = x + p * plane;
        v16 acc = splat16(0);
        long i = 0;
        for (; i + 16 <= plane; i += 16) acc += load16(src + i);
        float l[16];
        memcpy(l, &acc, sizeof l);
        float sum = 0;
        for (int k = 0; k < 16; k++) sum += l[k];
        for (; i < plane; i++) sum += src[i];
        y[p] = sum * scale;
    }
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void plane_mean_avx512(const float *x, float *y,
                                                                                   long planes, long plane) {
    plane_mean_body(x, y, planes, plane);
}

__attribute__((target("avx2,fma"))) static void plane_mean_avx2(const float *x, float *y, long planes, long plane) {
    plane_mean_body(x, y, planes, plane);
}

static void plane_mean_portable(const float *x, float *y, long planes, long plane) {
    plane_mean_body(x, y, planes, plane);
}

void nas_plane_mean(const float *x, float *y, long planes, long plane) {
    switch (kernels_level()) {
        case 2: plane_mean_avx512(x, y, planes, plane); break;
        case 1: plane_mean_avx2(x, y, planes, plane); break;
        default: plane_mean_portable(x, y, planes, plane);
    }
}

/* Depthwise convolution vectorised across channels, for planes too narrow to fill 16 lanes along a row: 16
 * channels at a time are interleaved into a zero-padded tile (tile[(py * tile_w + px) * 16 + lane]), with their
 * weights interleaved likewise, so that every output position is one vector of 16 channels. */
/* P consecutive output positions of one row of depthwise_channels_body from ox on, each one vector of 16 channels:
 * every tap's weight vector is loaded once for the P positions, whose P independent accumulators keep the FMA
 * unit busy (one accumulator waits out each FMA's latency). top is the tile's first row of this output row's
 * windows; out the row in channel c0's plane, the lanes' planes out_plane apart. */
/* The 16 x 16 transpose of v[0..15] in place: four stages, each exchanging one bit of the row and lane indices. */
ALWAYS_INLINE void transpose16(v16 *v) {
    for (int i = 0; i < 16; i++) {
        if (i & 1) continue;
        const v16 a = v[i], b = v[i + 1];
        v[i] = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
        v[i + 1] = __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    }
    for (int i = 0; i < 16; i++) {
        if (i & 2) continue;
        const v16 a = v[i], b = v[i + 2];
        v[i] = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
        v[i + 2] = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
    for (int i = 0; i < 16; i++) {
        if (i & 4) continue;
        const v16 a = v[i], b = v[i + 4];
        v[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
        v[i + 4] = __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    }
    for (int i = 0; i < 16; i++) {
        if (i & 8) continue;
        const v16 a = v[i], b = v[i + 8];
        v[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        v[i + 8] = __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
}

#define DW_POSITIONS 8
ALWAYS_INLINE void depthwise_channels_positions(const float *top, int tile_w, const struct nas_window *g,
                                                const float *weights, v16 vb, const int P, int ox, int activation,
                                                float low, float high, float *out, int out_plane, int lanes) {
    v16 acc[P];
#pragma clang loop unroll(full)
    for (int p = 0; p < P; p++) acc[p] = vb;
    for (int ky = 0; ky < g->kernel_h; ky++) {
        const float *row = top + ((size_t)ky * g->dilation_h * tile_w + (size_t)ox * g->stride_w) * 16;
        const float *wk = weights + (size_t)ky * g->kernel_w * 16;
        for (int kx = 0; kx < g->kernel_w; kx++) {
            const v16 wv = load16(wk + kx * 16);
            const float *at = row + (size_t)kx * g->dilation_w * 16;
#pragma clang loop unroll(full)
            for (int p = 0; p < P; p++) acc[p] += wv * load16(at + (size_t)p * g->stride_w * 16);
        }
    }
#pragma clang loop unroll(full)
    for (int p = 0; p < P; p++) {
        float l[16];
        const v16 v = activate16_vector(acc[p], activation, low, high);
        memcpy(l, &v, sizeof l);
        for (int lane = 0; lane < lanes; lane++) out[(size_t)lane * out_plane + ox + p] = l[lane];
    }
}

ALWAYS_INLINE void depthwise_channels_body(const float *x, int channels, int height, int width, int pad_top,
                                           int pad_left, const struct nas_window *g, const float *w,
                                           const float *bias, int activation, float low, float high, float *out,
                                           float *tile, int tile_h, int tile_w) {
    const int taps = g->kernel_h * g->kernel_w, out_plane = g->out_h * g->out_w;
    float *weights = tile + (size_t)tile_h * tile_w * 16;
    memset(tile, 0, sizeof(float) * (size_t)tile_h * tile_w * 16);
    for (int c0 = 0; c0 < channels; c0 += 16) {
        const int lanes = channels - c0 < 16 ? channels - c0 : 16;
        float b[16] = {0};
        const int plane = height * width;
        int q = 0;
        if (lanes == 16) {
            /* 16 positions of the 16 planes at a time, transposed in registers into 16 position vectors. */
            for (; q + 16 <= plane; q += 16) {
                v16 v[16];
                for (int lane = 0; lane < 16; lane++) v[lane] = load16(x + (size_t)(c0 + lane) * plane + q);
                transpose16(v);
                for (int i = 0; i < 16; i++) {
                    const int iy = (q + i) / width, ix = (q + i) % width;
                    store16(tile + ((size_t)(iy + pad_top) * tile_w + ix + pad_left) * 16, v[i]);
                }
            }
        }
        for (int lane = 0; lane < lanes; lane++) {
            const float *source = x + (size_t)(c0 + lane) * plane;
            for (int p = q; p < plane; p++) {
                const int iy = p / width, ix = p % width;
                tile[((size_t)(iy + pad_top) * tile_w + ix + pad_left) * 16 + lane] = source[p];
            }
            for (int t = 0; t < taps; t++) weights[t * 16 + lane] = w[(size_t)(c0 + lane) * taps + t];
            b[lane] = bias ? bias[c0 + lane] : 0;
        }
        const v16 vb = load16(b);
        for (int oy = 0; oy < g->out_h; oy++) {
            const float *top = tile + (size_t)oy * g->stride_h * tile_w * 16;
            int ox = 0;
            for (; ox + DW_POSITIONS <= g->out_w; ox += DW_POSITIONS)
                depthwise_channels_positions(top, tile_w, g, weights, vb, DW_POSITIONS, ox, activation, low, high,
                                             out + (size_t)c0 * out_plane + (size_t)oy * g->out_w, out_plane, lanes);
            if (ox + 4 <= g->out_w) {
                depthwise_channels_positions(top, tile_w, g, weights, vb, 4, ox, activation, low, high,
                                             out + (size_t)c0 * out_plane + (size_t)oy * g->out_w, out_plane, lanes);
                ox += 4;
            }
            if (ox + 2 <= g->out_w) {
                depthwise_channels_positions(top, tile_w, g, weights, vb, 2, ox, activation, low, high,
                                             out + (size_t)c0 * out_plane + (size_t)oy * g->out_w, out_plane, lanes);
                ox += 2;
            }
            if (ox < g->out_w)
                depthwise_channels_positions(top, tile_w, g, weights, vb, 1, ox, activation, low, high,
                                             out + (size_t)c0 * out_plane + (size_t)oy * g->out_w, out_plane, lanes);
        }
    }
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void depthwise_channels_avx512(
    const float *x, int channels, int height, int width, int pad_top, int pad_left, const struct nas_window *g,
    const float *w, const float *bias, int activation, float low, float high, float *out, float *tile, int tile_h,
    int tile_w) {
    depthwise_channels_body(x, channels, height, width, pad_top, pad_left, g, w, bias, activation, low, high, out,
                            tile, tile_h, tile_w);
}

__attribute__((target("avx2,fma"))) static void depthwise_channels_avx2(
    const float *x, int channels, int height, int width, int pad_top, int pad_left, const struct nas_window *g,
    const float *w, const float *bias, int activation, float low, float high, float *out, float *tile, int tile_h,
    int tile_w) {
    depthwise_channels_body(x, channels, height, width, pad_top, pad_left, g, w, bias, activation, low, high, out,
                            tile, tile_h, tile_w);
}

static void depthwise_channels_portable(const float *x, int channels, int height, int width, int pad_top,
                                        int pad_left, const struct nas_window *g, const float *w, const float *bias,
                                        int activation, float low, float high, float *out, float *tile, int tile_h,
                                        int tile_w) {
    depthwise_channels_body(x, channels, height, width, pad_top, pad_left, g, w, bias, activation, low, high, out,
                            tile, tile_h, tile_w);
}

void nas_depthwise_channels(const float *x, int channels, int height, int width, int pad_top, int pad_left,
                            const struct nas_window *g, const float *w, const float *bias, int activation, float low,
                            float high, float *out, float *tile, int tile_h, int tile_w) {
    switch (kernels_level()) {
        case 2:
            depthwise_channels_avx512(x, channels, height, width, pad_top, pad_left, g, w, bias, activation, low,
                                      high, out, tile, tile_h, tile_w);
            break;
        case 1:
            depthwise_channels_avx2(x, channels, height, width, pad_top, pad_left, g, w, bias, activation, low, high,
                                    out, tile, tile_h, tile_w);
            break;
        default:
            depthwise_channels_portable(x, channels, height, width, pad_top, pad_left, g, w, bias, activation, low,
                                        high, out, tile, tile_h, tile_w);
    }
}

/* The packed GEMM (see nas_gemm in the header). A is packed once into panels of GEMM_MR rows, k-major
 * (packed[panel][k][row]); B is packed per call, one panel of GEMM_KC rows by 16 * NV columns at a time, just
 * before every panel of A multiplies it, so that the B panel stays in L1 and A's KC-deep slice in L2. A tile keeps
 * MR x NV vectors of C in registers over the KC rows; tiles of a KC block after the first add to C, the last adds
 * the bias and applies the activation. The panel sizes per level: AVX-512 8 rows by 32 columns (16 accumulators
 * of 32 registers), AVX2 6 by 16 (12 of 16 ymm registers), SSE 2 by 16 (8 of 16 xmm registers). */
#ifndef GEMM_KC
#define GEMM_KC 128
#endif

#define GEMM_NR_MAX 32
#define GEMM_NC_MAX 1024

static int gemm_mr(int level) { return level == 2 ? 8 : (level == 1 ? 6 : 2); }

/* One tile: C[rows][cols] (+)= A panel (kc x MR) * B panel (kc x 16 NV, rows b_stride apart), then the bias and
 * activation if last. */
#define GEMM_TILE(NAME, MR, NV)                                                                                   \
    ALWAYS_INLINE void NAME(const float *a, const float *b, long b_stride, int kc, float *c, long ldc, int rows,  \
                            int cols, int first, int last, const float *bias, int activation, float low,          \
                            float high) {                                                                         \
        v16 acc[MR][NV];                                                                                          \
        for (int i = 0; i < MR; i++)                                                                              \
            for (int v = 0; v < NV; v++) acc[i][v] = splat16(0);                                                  \
        for (int k = 0; k < kc; k++) {                                                                            \
            v16 bv[NV];                                                                                           \
            for (int v = 0; v < NV; v++) bv[v] = load16(b + (long)k * b_stride + v * 16);                          \
            for (int i = 0; i < MR; i++) {                                                                        \
                const v16 av = splat16(a[(long)k * MR + i]);                                                      \
                for (int v = 0; v < NV; v++) acc[i][v] += av * bv[v];                                             \
            }                                                                                                     \
        }                                                                                                         \
        for (int i = 0; i < rows; i++) {                                                                          \
            const v16 shift = splat16(last && bias ? bias[i] : 0);                                                \
            for (int v = 0; v < NV && v * 16 < cols; v++) {                                                       \
                float *out = c + (long)i * ldc + v * 16;                                                          \
                const int n = cols - v * 16 < 16 ? cols - v * 16 : 16;                                            \
                v16 r = acc[i][v];                                                                                \
                if (n == 16) {                                                                                    \
                    if (!first) r += load16(out);                                                                 \
                    if (last) r = activate16_vector(r + shift, activation, low, high);                            \
                    store16(out, r);                                                                              \
                } else {                                                                                          \
                    float l[16] = {0};                                                                            \
                    if (!first) memcpy(l, out, sizeof(float) * (size_t)n);                                        \
                    r += load16(l);                                                                               \
                    if (last) r = activate16_vector(r + shift, activation, low, high);                            \
                    memcpy(l, &r, sizeof l);                                                                      \
                    memcpy(out, l, sizeof(float) * (size_t)n);                                                    \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
    }

GEMM_TILE(gemm_tile_8x2, 8, 2)
GEMM_TILE(gemm_tile_8x1, 8, 1)
GEMM_TILE(gemm_tile_6x1, 6, 1)
GEMM_TILE(gemm_tile_2x1, 2, 1)

/* B's rows k0..k0+kc and columns j0..j0+count into dst[kk][nr] (zeros past count). B(k, j) = b[row(k) + col(j)]
 * with row(k) = rows ? rows[k] : k * ldb and col(j) = cols ? cols[j] : j. The columns are the same for every row,
 * so they are classified once per panel: a few runs of consecutive offsets (all columns without cols; a stride-1
 * convolution's output rows) are copied run by run; otherwise each 16 columns whose offsets are 2 apart (a stride-2
 * convolution's) as the even lanes of two vectors that read no further than the last offset, consecutive ones as
 * one vector and the rest one by one. The vector path took a 7x7 stride-2 convolution of 3 channels (ResNet-18's
 * first) from 3.04-3.12 to 2.81-2.86 ms in a C harness, the same on stride-1 shapes. */
ALWAYS_INLINE v16 even16_bounded(const float *p) {
    v16 a = load16(p), b = load16(p + 15);
    return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29, 31);
}

ALWAYS_INLINE void gemm_pack_b(float *dst, int nr, const float *b, const long *rows, long ldb, const long *cols,
                               int k0, int kc, int j0, int count) {
    int run_start[GEMM_NR_MAX + 1], runs = 0;
    for (int j = 0; j < count; j++) {
        if (j == 0 || !cols || cols[j0 + j] != cols[j0 + j - 1] + 1) run_start[runs++] = j;
        if (!cols) break;
    }
    run_start[runs] = count;
    if (runs <= 4) {
        /* A few runs of consecutive offsets (a stride-1 convolution's panel crossing output rows): run by run. */
        for (int kk = 0; kk < kc; kk++) {
            const float *src = b + (rows ? rows[k0 + kk] : (long)(k0 + kk) * ldb);
            float *out = dst + (long)kk * nr;
            if (runs == 1 && count == nr) {
                const float *from = src + (cols ? cols[j0] : j0);
                for (int v = 0; v < nr; v += 16) store16(out + v, load16(from + v));
                continue;
            }
            for (int r = 0; r < runs; r++) {
                const int j = run_start[r];
                memcpy(out + j, src + (cols ? cols[j0 + j] : j0 + j), sizeof(float) * (size_t)(run_start[r + 1] - j));
            }
            for (int j = count; j < nr; j++) out[j] = 0;
        }
        return;
    }
    int kind[GEMM_NR_MAX / 16];
    long start[GEMM_NR_MAX / 16];
    for (int c = 0; c < nr / 16; c++) {
        const int j = c * 16;
        start[c] = cols ? cols[j0 + j] : j0 + j;
        kind[c] = 0;
        if (j + 16 > count) continue;
        if (!cols) {
            kind[c] = 1;
            continue;
        }
        int step1 = 1, step2 = 1;
        for (int i = 1; i < 16; i++) {
            const long d = cols[j0 + j + i] - cols[j0 + j + i - 1];
            step1 &= d == 1;
            step2 &= d == 2;
        }
        kind[c] = step1 ? 1 : (step2 ? 2 : 0);
    }
    for (int kk = 0; kk < kc; kk++) {
        const float *src = b + (rows ? rows[k0 + kk] : (long)(k0 + kk) * ldb);
        float *out = dst + (long)kk * nr;
        for (int c = 0; c < nr / 16; c++) {
            const int j = c * 16;
            if (kind[c] == 1) {
                store16(out + j, load16(src + start[c]));
            } else if (kind[c] == 2) {
                store16(out + j, even16_bounded(src + start[c]));
            } else {
                const int n = count - j < 0 ? 0 : (count - j < 16 ? count - j : 16);
                for (int i = 0; i < n; i++) out[j + i] = src[cols ? cols[j0 + j + i] : j0 + j + i];
                for (int i = n; i < 16; i++) out[j + i] = 0;
            }
        }
    }
}

/* One product in BLIS's loop order: column blocks of C small enough to stay in L2 (about 256 KiB of C, at most
 * GEMM_NC_MAX columns), KC blocks of k, the B block of those (packed, or read in place when B is a plain matrix
 * and the panel is full), then each A panel against every B panel of the block, so that the A panel stays in L1
 * and the tile writes a few rows of C in long runs. A last B panel of 16 columns or fewer goes through the
 * one-vector tile. */
#define GEMM_BODY(MR, NV, TILE, NARROW_TILE)                                                                      \
    do {                                                                                                          \
        const int nr = NV * 16, direct = !b_rows && !b_cols;                                                      \
        int nc = (65536 / (m > 0 ? m : 1)) / nr * nr;                                                             \
        nc = nc < nr ? nr : (nc > GEMM_NC_MAX ? GEMM_NC_MAX : nc);                                                \
        for (int j0 = 0; j0 < n; j0 += nc) {                                                                      \
            const int block = n - j0 < nc ? n - j0 : nc;                                                          \
            for (int k0 = 0; k0 < k; k0 += GEMM_KC) {                                                             \
                const int kc = k - k0 < GEMM_KC ? k - k0 : GEMM_KC, first = k0 == 0, last = k0 + kc == k;         \
                for (int jj = 0; jj < block; jj += nr) {                                                          \
                    const int cols = block - jj < nr ? block - jj : nr;                                           \
                    if (!direct || cols < nr)                                                                     \
                        gemm_pack_b(scratch + (long)jj * kc, NV > 1 && cols <= 16 ? 16 : nr, b, b_rows, ldb,      \
                                    b_cols, k0, kc, j0 + jj, cols);                                               \
                }                                                                                                 \
                for (int p = 0; p < m; p += MR) {                                                                 \
                    const float *a = packed + (long)p * k + (long)k0 * MR;                                        \
                    const int rows = m - p < MR ? m - p : MR;                                                     \
                    const float *bias_p = bias ? bias + p : NULL;                                                 \
                    float *c_p = c + (long)p * ldc + j0;                                                          \
                    for (int jj = 0; jj < block; jj += nr) {                                                      \
                        const int cols = block - jj < nr ? block - jj : nr;                                       \
                        const int in_place = direct && cols == nr;                                                \
                        const float *panel = in_place ? b + (long)k0 * ldb + j0 + jj : scratch + (long)jj * kc;   \
                        if (NV > 1 && cols <= 16)                                                                 \
                            NARROW_TILE(a, panel, 16, kc, c_p + jj, ldc, rows, cols, first, last, bias_p,         \
                                        activation, low, high);                                                   \
                        else                                                                                      \
                            TILE(a, panel, in_place ? ldb : nr, kc, c_p + jj, ldc, rows, cols, first, last,       \
                                 bias_p, activation, low, high);                                                  \
                    }                                                                                             \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
    } while (0)

#define GEMM_PARAMETERS                                                                                           \
    const float *packed, int m, int k, int n, const float *b, const long *b_rows, long ldb, const long *b_cols,   \
        float *c, long ldc, const float *bias, int activation, float low, float high, float *scratch

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void gemm_avx512(GEMM_PARAMETERS) {
    GEMM_BODY(8, 2, gemm_tile_8x2, gemm_tile_8x1);
}

__attribute__((target("avx2,fma"))) static void gemm_avx2(GEMM_PARAMETERS) {
    GEMM_BODY(6, 1, gemm_tile_6x1, gemm_tile_6x1);
}

static void gemm_portable(GEMM_PARAMETERS) { GEMM_BODY(2, 1, gemm_tile_2x1, gemm_tile_2x1); }

long nas_gemm_packed_count(int m, int k) {
    const int mr = gemm_mr(kernels_level());
    return (long)((m + mr - 1) / mr) * mr * k;
}

long nas_gemm_scratch_count(void) { return GEMM_KC * GEMM_NC_MAX; }

void nas_gemm_pack(const float *a, long lda, int m, int k, float *packed) {
    const int mr = gemm_mr(kernels_level());
    for (int p = 0; p < m; p += mr) {
        for (int kk = 0; kk < k; kk++) {
            for (int i = 0; i < mr; i++) *packed++ = p + i < m ? a[(long)(p + i) * lda + kk] : 0;
        }
    }
}

void nas_gemm(GEMM_PARAMETERS) {
    switch (kernels_level()) {
        case 2: gemm_avx512(packed, m, k, n, b, b_rows, ldb, b_cols, c, ldc, bias, activation, low, high, scratch); break;
        case 1: gemm_avx2(packed, m, k, n, b, b_rows, ldb, b_cols, c, ldc, bias, activation, low, high, scratch); break;
        default: gemm_portable(packed, m, k, n, b, b_rows, ldb, b_cols, c, ldc, bias, activation, low, high, scratch);
    }
}
