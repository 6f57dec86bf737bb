#include "nas_kernels.h"

#include <stdlib.h>
#include <string.h>

/* The vector helpers are always inlined into the target-specific functions, so their ABI never matters. */
#pragma clang diagnostic ignored "-Wpsabi"

/* Sixteen floats: one register with AVX-512, two with AVX2, four with SSE. The bodies below are written once,
 * over this type and a compile-time block size, and instantiated per instruction set with a block size that
 * keeps the accumulators in registers (32 vector registers with AVX-512, 16 with AVX2). */
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef int vi16 __attribute__((vector_size(64), aligned(4)));

#define X_VECTORS (NAS_CONV_TILE / 16)
#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

ALWAYS_INLINE v16 splat16(float x) {
    v16 v = {x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
    return v;
}

/* A fixed summation order keeps results repeatable. */
ALWAYS_INLINE float sum16(v16 v) {
    float l[16];
    memcpy(l, &v, sizeof l);
    return (((l[0] + l[8]) + (l[4] + l[12])) + ((l[2] + l[10]) + (l[6] + l[14]))) +
           (((l[1] + l[9]) + (l[5] + l[13])) + ((l[3] + l[11]) + (l[7] + l[15])));
}

/* Output channels o0 ..< o0 + nb (nb <= B) of one output row tile. */
ALWAYS_INLINE void forward_block(const float *in, int ci, int in_plane, int in_row, const float *w, int k,
                                 const float *bias, int relu, float *out, int out_plane, int out_row, int y, int x0,
                                 int width, int o0, int nb, const int B) {
    const int kk = k * k;
    const int wstride = ci * kk;
    const float *wb[16];
    for (int b = 0; b < B; b++) wb[b] = w + (size_t)(o0 + (b < nb ? b : 0)) * wstride;
    v16 acc[16][X_VECTORS];
    for (int b = 0; b < B; b++)
        for (int j = 0; j < X_VECTORS; j++) acc[b][j] = splat16(0);
    for (int c = 0; c < ci; c++) {
        for (int ky = 0; ky < k; ky++) {
            const float *row = in + (size_t)c * in_plane + (size_t)(y + ky) * in_row + x0;
            const int woff = c * kk + ky * k;
            for (int kx = 0; kx < k; kx++) {
                v16 v[X_VECTORS];
                for (int j = 0; j < X_VECTORS; j++) v[j] = load16(row + kx + 16 * j);
                for (int b = 0; b < B; b++) {
                    const v16 s = splat16(wb[b][woff + kx]);
                    for (int j = 0; j < X_VECTORS; j++) acc[b][j] += s * v[j];
                }
            }
        }
    }
    const int n = width - x0 < NAS_CONV_TILE ? width - x0 : NAS_CONV_TILE;
    for (int b = 0; b < nb; b++) {
        float tile[NAS_CONV_TILE];
        memcpy(tile, acc[b], sizeof tile);
        const float shift = bias ? bias[o0 + b] : 0.0f;
        float *dst = out + (size_t)(o0 + b) * out_plane + (size_t)y * out_row + x0;
        if (relu) {
            for (int x = 0; x < n; x++) {
                const float value = tile[x] + shift;
                dst[x] = value <= 0 ? 0 : value; /* NaN passes, so that a NaN loss is seen */
            }
        } else {
            for (int x = 0; x < n; x++) dst[x] = tile[x] + shift;
        }
    }
}

ALWAYS_INLINE void forward_body(const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k,
                                const float *bias, int relu, float *out, int out_plane, int out_row, int height,
                                int width, const int max_block) {
    /* Equal blocks of at most max_block output channels, so that none is mostly empty. */
    const int blocks = (co + max_block - 1) / max_block;
    const int block = (co + blocks - 1) / blocks;
    for (int o0 = 0; o0 < co; o0 += block) {
        const int nb = co - o0 < block ? co - o0 : block;
        for (int y = 0; y < height; y++) {
            for (int x0 = 0; x0 < width; x0 += NAS_CONV_TILE) {
#define FORWARD_CASE(B)                                                                                          \
    case B:                                                                                                      \
        forward_block(in, ci, in_plane, in_row, w, k, bias, relu, out, out_plane, out_row, y, x0, width, o0, nb, \
                      B);                                                                                        \
        break;
                switch (block) {
                    FORWARD_CASE(1)
                    FORWARD_CASE(2)
                    FORWARD_CASE(3)
                    FORWARD_CASE(4)
                    FORWARD_CASE(5)
                    FORWARD_CASE(6)
                    FORWARD_CASE(7)
                    FORWARD_CASE(8)
                    FORWARD_CASE(9)
                    default:
                        forward_block(in, ci, in_plane, in_row, w, k, bias, relu, out, out_plane, out_row, y, x0,
                                      width, o0, nb, 10);
                }
#undef FORWARD_CASE
            }
        }
    }
}

/* dw for output channels o0 ..< o0 + nb (nb <= B), input channel c, kernel row ky, with the K kernel columns'
 * sums in registers: each input vector loaded feeds B outputs and each output-gradient vector K columns. */
ALWAYS_INLINE void weight_grad_block(const float *in, int in_plane, int in_row, const float *dz, int dz_plane,
                                     int dz_row, int ci, int c, int ky, int height, int width, float *dw, int o0,
                                     int nb, const int B, const int K) {
    const int kk = K * K;
    const float *db[8];
    for (int b = 0; b < B; b++) db[b] = dz + (size_t)(o0 + (b < nb ? b : 0)) * dz_plane;
    v16 acc[8][8];
    for (int b = 0; b < B; b++)
        for (int kx = 0; kx < K; kx++) acc[b][kx] = splat16(0);
    for (int y = 0; y < height; y++) {
        const float *row = in + (size_t)c * in_plane + (size_t)(y + ky) * in_row;
        const size_t drow = (size_t)y * dz_row;
        for (int x0 = 0; x0 < width; x0 += 16) {
            v16 g[8];
            for (int b = 0; b < B; b++) g[b] = load16(db[b] + drow + x0);
            for (int kx = 0; kx < K; kx++) {
                const v16 v = load16(row + x0 + kx);
                for (int b = 0; b < B; b++) acc[b][kx] += g[b] * v;
            }
        }
    }
    for (int b = 0; b < nb; b++)
        for (int kx = 0; kx < K; kx++) dw[(size_t)(o0 + b) * ci * kk + c * kk + ky * K + kx] += sum16(acc[b][kx]);
}

ALWAYS_INLINE void weight_grad_body(const float *in, int ci, int in_plane, int in_row, const float *dz, int co,
                                    int dz_plane, int dz_row, int k, int height, int width, float *dw,
                                    const int wide) {
    /* Registers: B * K accumulators plus B gradient vectors; AVX-512 affords more outputs per pass. */
    const int max_block = wide ? (k <= 3 ? 4 : k <= 5 ? 3 : 2) : 1;
    const int blocks = (co + max_block - 1) / max_block;
    const int block = (co + blocks - 1) / blocks;
    for (int o0 = 0; o0 < co; o0 += block) {
        const int nb = co - o0 < block ? co - o0 : block;
        for (int c = 0; c < ci; c++) {
            for (int ky = 0; ky < k; ky++) {
#define WG(B, K) \
    weight_grad_block(in, in_plane, in_row, dz, dz_plane, dz_row, ci, c, ky, height, width, dw, o0, nb, B, K)
#define WG_K(K)                       \
    case K:                           \
        switch (block) {              \
            case 1: WG(1, K); break;  \
            case 2: WG(2, K); break;  \
            case 3: WG(3, K); break;  \
            case 4: WG(4, K); break;  \
            case 5: WG(5, K); break;  \
            default: WG(6, K); break; \
        }                             \
        break;
                switch (k) {
                    WG_K(1)
                    WG_K(2)
                    WG_K(3)
                    WG_K(4)
                    WG_K(5)
                    WG_K(6)
                    WG_K(7)
                    default:
                        /* Kernels wider than 7 are rare: the plain loop below. */
                        for (int kx = 0; kx < k; kx++) {
                            for (int b = 0; b < nb; b++) {
                                v16 acc = splat16(0);
                                const float *grad = dz + (size_t)(o0 + b) * dz_plane;
                                for (int y = 0; y < height; y++) {
                                    const float *row = in + (size_t)c * in_plane + (size_t)(y + ky) * in_row + kx;
                                    for (int x0 = 0; x0 < width; x0 += 16)
                                        acc += load16(grad + (size_t)y * dz_row + x0) * load16(row + x0);
                                }
                                dw[(size_t)(o0 + b) * ci * k * k + c * k * k + ky * k + kx] += sum16(acc);
                            }
                        }
                }
#undef WG_K
#undef WG
            }
        }
    }
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void forward_avx512(
    const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k, const float *bias, int relu,
    float *out, int out_plane, int out_row, int height, int width) {
    forward_body(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height, width, 6);
}

__attribute__((target("avx2,fma"))) static void forward_avx2(
    const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k, const float *bias, int relu,
    float *out, int out_plane, int out_row, int height, int width) {
    forward_body(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height, width, 2);
}

static void forward_portable(const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k,
                             const float *bias, int relu, float *out, int out_plane, int out_row, int height,
                             int width) {
    forward_body(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height, width, 1);
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void weight_grad_avx512(
    const float *in, int ci, int in_plane, int in_row, const float *dz, int co, int dz_plane, int dz_row, int k,
    int height, int width, float *dw) {
    weight_grad_body(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw, 1);
}

__attribute__((target("avx2,fma"))) static void weight_grad_avx2(
    const float *in, int ci, int in_plane, int in_row, const float *dz, int co, int dz_plane, int dz_row, int k,
    int height, int width, float *dw) {
    weight_grad_body(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw, 0);
}

static void weight_grad_portable(const float *in, int ci, int in_plane, int in_row, const float *dz, int co,
                                 int dz_plane, int dz_row, int k, int height, int width, float *dw) {
    weight_grad_body(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw, 0);
}

ALWAYS_INLINE void store16(float *p, v16 v) { memcpy(p, &v, sizeof v); }

ALWAYS_INLINE void relu_backward_body(const float *grad, int grad_plane, int grad_row, const float *act,
                                      int act_plane, int act_row, float *out, int out_plane, int out_row,
                                      int channels, int height, int width, float *bias_grad) {
    vi16 lane;
    for (int l = 0; l < 16; l++) lane[l] = l;
    for (int c = 0; c < channels; c++) {
        v16 sum = splat16(0);
        for (int y = 0; y < height; y++) {
            const float *g = grad + (size_t)c * grad_plane + (size_t)y * grad_row;
            const float *a = act + (size_t)c * act_plane + (size_t)y * act_row;
            float *o = out + (size_t)c * out_plane + (size_t)y * out_row;
            for (int x = 0; x < width; x += 16) {
                /* The last vector of a row reads past it (callers leave room) but keeps only its own lanes. */
                const int n = width - x < 16 ? width - x : 16;
                const vi16 keep = (load16(a + x) > splat16(0)) & (lane < n);
                const v16 value = (v16)(keep & (vi16)load16(g + x));
                if (n == 16)
                    store16(o + x, value);
                else
                    memcpy(o + x, &value, (size_t)n * sizeof(float));
                sum += value;
            }
        }
        bias_grad[c] += sum16(sum);
    }
}

/* w -= rate * m / (sqrt(v) + epsilon) after m += (g - m) * keep1, v += (g * g - v) * keep2, with g the sum of the
 * sources' gradients in source order, for indices begin ..< end. */
ALWAYS_INLINE void adam_body(float *w, float *m, float *v, const float *const *grads, int sources, long begin,
                             long end, float rate, float keep1, float keep2, float epsilon) {
    long i = begin;
    for (; i + 16 <= end; i += 16) {
        v16 g = load16(grads[0] + i);
        for (int s = 1; s < sources; s++) g += load16(grads[s] + i);
        v16 mm = load16(m + i);
        v16 vv = load16(v + i);
        mm += (g - mm) * splat16(keep1);
        vv += (g * g - vv) * splat16(keep2);
        store16(m + i, mm);
        store16(v + i, vv);
        store16(w + i, load16(w + i) - splat16(rate) * mm / (__builtin_elementwise_sqrt(vv) + splat16(epsilon)));
    }
    for (; i < end; i++) {
        float g = grads[0][i];
        for (int s = 1; s < sources; s++) g += grads[s][i];
        m[i] += (g - m[i]) * keep1;
        v[i] += (g * g - v[i]) * keep2;
        w[i] -= rate * m[i] / (__builtin_sqrtf(v[i]) + epsilon);
    }
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void adam_avx512(
    float *w, float *m, float *v, const float *const *grads, int sources, long begin, long end, float rate,
    float keep1, float keep2, float epsilon) {
    adam_body(w, m, v, grads, sources, begin, end, rate, keep1, keep2, epsilon);
}

__attribute__((target("avx2,fma"))) static void adam_avx2(float *w, float *m, float *v, const float *const *grads,
                                                          int sources, long begin, long end, float rate,
                                                          float keep1, float keep2, float epsilon) {
    adam_body(w, m, v, grads, sources, begin, end, rate, keep1, keep2, epsilon);
}

static void adam_portable(float *w, float *m, float *v, const float *const *grads, int sources, long begin,
                          long end, float rate, float keep1, float keep2, float epsilon) {
    adam_body(w, m, v, grads, sources, begin, end, rate, keep1, keep2, epsilon);
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void relu_backward_avx512(
    const float *grad, int grad_plane, int grad_row, const float *act, int act_plane, int act_row, float *out,
    int out_plane, int out_row, int channels, int height, int width, float *bias_grad) {
    relu_backward_body(grad, grad_plane, grad_row, act, act_plane, act_row, out, out_plane, out_row, channels, height,
                       width, bias_grad);
}

__attribute__((target("avx2,fma"))) static void relu_backward_avx2(
    const float *grad, int grad_plane, int grad_row, const float *act, int act_plane, int act_row, float *out,
    int out_plane, int out_row, int channels, int height, int width, float *bias_grad) {
    relu_backward_body(grad, grad_plane, grad_row, act, act_plane, act_row, out, out_plane, out_row, channels, height,
                       width, bias_grad);
}

static void relu_backward_portable(const float *grad, int grad_plane, int grad_row, const float *act, int act_plane,
                                   int act_row, float *out, int out_plane, int out_row, int channels, int height,
                                   int width, float *bias_grad) {
    relu_backward_body(grad, grad_plane, grad_row, act, act_plane, act_row, out, out_plane, out_row, channels, height,
                       width, bias_grad);
}

/* 2: AVX-512, 1: AVX2 + FMA, 0: portable. NAS_KERNELS=avx2 or portable caps it (for benchmarks and tests). */
int nas_kernels_level(void) {
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

void nas_conv2d_forward(const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k,
                        const float *bias, int relu, float *out, int out_plane, int out_row, int height,
                        int width) {
    switch (nas_kernels_level()) {
        case 2:
            forward_avx512(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height, width);
            break;
        case 1:
            forward_avx2(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height, width);
            break;
        default:
            forward_portable(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height,
                             width);
    }
}

void nas_conv2d_weight_grad(const float *in, int ci, int in_plane, int in_row, const float *dz, int co,
                            int dz_plane, int dz_row, int k, int height, int width, float *dw) {
    switch (nas_kernels_level()) {
        case 2:
            weight_grad_avx512(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw);
            break;
        case 1:
            weight_grad_avx2(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw);
            break;
        default:
            weight_grad_portable(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw);
    }
}

void nas_relu_backward(const float *grad, int grad_plane, int grad_row, const float *act, int act_plane, int act_row,
                       float *out, int out_plane, int out_row, int channels, int height, int width,
                       float *bias_grad) {
    switch (nas_kernels_level()) {
        case 2:
            relu_backward_avx512(grad, grad_plane, grad_row, act, act_plane, act_row, out, out_plane, out_row,
                                 channels, height, width, bias_grad);
            break;
        case 1:
            relu_backward_avx2(grad, grad_plane, grad_row, act, act_plane, act_row, out, out_plane, out_row,
                               channels, height, width, bias_grad);
            break;
        default:
            relu_backward_portable(grad, grad_plane, grad_row, act, act_plane, act_row, out, out_plane, out_row,
                                   channels, height, width, bias_grad);
    }
}

void nas_adam_update(float *w, float *m, float *v, const float *const *grads, int sources, long begin, long end,
                     float rate, float keep1, float keep2, float epsilon) {
    switch (nas_kernels_level()) {
        case 2:
            adam_avx512(w, m, v, grads, sources, begin, end, rate, keep1, keep2, epsilon);
            break;
        case 1:
            adam_avx2(w, m, v, grads, sources, begin, end, rate, keep1, keep2, epsilon);
            break;
        default:
            adam_portable(w, m, v, grads, sources, begin, end, rate, keep1, keep2, epsilon);
    }
}
