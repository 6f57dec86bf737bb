#include "nas_kernels.h"

#include <string.h>

/* The vector helpers are always inlined into the target-specific functions, so their ABI never matters. */
#pragma clang diagnostic ignored "-Wpsabi"

/* Eight floats; GCC/Clang vector extensions compile to AVX2 in the avx2 clones and to SSE pairs elsewhere. */
typedef float v8 __attribute__((vector_size(32), aligned(4)));

#define CO_BLOCK 3
#define X_VECTORS (NAS_CONV_TILE / 8)

static inline __attribute__((always_inline)) v8 load8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) v8 splat8(float x) {
    v8 v = {x, x, x, x, x, x, x, x};
    return v;
}

static inline __attribute__((always_inline)) void forward_body(
    const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k, const float *bias, int relu,
    float *out, int out_plane, int out_row, int height, int width) {
    const int kk = k * k;
    const int wstride = ci * kk; /* floats per output channel's kernel */
    for (int o0 = 0; o0 < co; o0 += CO_BLOCK) {
        const int nb = co - o0 < CO_BLOCK ? co - o0 : CO_BLOCK;
        /* Missing outputs of the last block reuse the block's first kernel and are not stored. */
        const float *wb[CO_BLOCK];
        for (int b = 0; b < CO_BLOCK; b++) wb[b] = w + (size_t)(o0 + (b < nb ? b : 0)) * wstride;
        for (int y = 0; y < height; y++) {
            for (int x0 = 0; x0 < width; x0 += NAS_CONV_TILE) {
                v8 acc[CO_BLOCK][X_VECTORS];
                for (int b = 0; b < CO_BLOCK; b++)
                    for (int j = 0; j < X_VECTORS; j++) acc[b][j] = splat8(0);
                for (int c = 0; c < ci; c++) {
                    for (int ky = 0; ky < k; ky++) {
                        const float *row = in + (size_t)c * in_plane + (size_t)(y + ky) * in_row + x0;
                        const int woff = c * kk + ky * k;
                        for (int kx = 0; kx < k; kx++) {
                            v8 v[X_VECTORS];
                            for (int j = 0; j < X_VECTORS; j++) v[j] = load8(row + kx + 8 * j);
                            for (int b = 0; b < CO_BLOCK; b++) {
                                const v8 s = splat8(wb[b][woff + kx]);
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
        }
    }
}

#define WG_BLOCK 4

static inline __attribute__((always_inline)) void weight_grad_body(
    const float *in, int ci, int in_plane, int in_row, const float *dz, int co, int dz_plane, int dz_row, int k,
    int height, int width, float *dw) {
    const int kk = k * k;
    for (int o0 = 0; o0 < co; o0 += WG_BLOCK) {
        const int nb = co - o0 < WG_BLOCK ? co - o0 : WG_BLOCK;
        const float *db[WG_BLOCK];
        for (int b = 0; b < WG_BLOCK; b++) db[b] = dz + (size_t)(o0 + (b < nb ? b : 0)) * dz_plane;
        for (int c = 0; c < ci; c++) {
            for (int ky = 0; ky < k; ky++) {
                for (int kx = 0; kx < k; kx++) {
                    v8 acc[WG_BLOCK];
                    for (int b = 0; b < WG_BLOCK; b++) acc[b] = splat8(0);
                    for (int y = 0; y < height; y++) {
                        const float *row = in + (size_t)c * in_plane + (size_t)(y + ky) * in_row + kx;
                        const size_t drow = (size_t)y * dz_row;
                        for (int x0 = 0; x0 < width; x0 += 8) {
                            const v8 v = load8(row + x0);
                            for (int b = 0; b < WG_BLOCK; b++) acc[b] += load8(db[b] + drow + x0) * v;
                        }
                    }
                    for (int b = 0; b < nb; b++) {
                        float lanes[8];
                        memcpy(lanes, &acc[b], sizeof lanes);
                        /* A fixed summation order keeps results repeatable. */
                        const float sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
                                          ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
                        dw[(size_t)(o0 + b) * ci * kk + c * kk + ky * k + kx] += sum;
                    }
                }
            }
        }
    }
}

__attribute__((target("avx2,fma"))) static void forward_avx2(
    const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k, const float *bias, int relu,
    float *out, int out_plane, int out_row, int height, int width) {
    forward_body(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height, width);
}

static void forward_portable(
    const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k, const float *bias, int relu,
    float *out, int out_plane, int out_row, int height, int width) {
    forward_body(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height, width);
}

__attribute__((target("avx2,fma"))) static void weight_grad_avx2(
    const float *in, int ci, int in_plane, int in_row, const float *dz, int co, int dz_plane, int dz_row, int k,
    int height, int width, float *dw) {
    weight_grad_body(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw);
}

static void weight_grad_portable(
    const float *in, int ci, int in_plane, int in_row, const float *dz, int co, int dz_plane, int dz_row, int k,
    int height, int width, float *dw) {
    weight_grad_body(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw);
}

int nas_kernels_use_avx2(void) {
    static int cached = -1; /* threads may race to fill it, always with the same value */
    int value = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&cached, value, __ATOMIC_RELAXED);
    }
    return value;
}

void nas_conv2d_forward(const float *in, int ci, int in_plane, int in_row, const float *w, int co, int k,
                        const float *bias, int relu, float *out, int out_plane, int out_row, int height,
                        int width) {
    if (nas_kernels_use_avx2())
        forward_avx2(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height, width);
    else
        forward_portable(in, ci, in_plane, in_row, w, co, k, bias, relu, out, out_plane, out_row, height, width);
}

void nas_conv2d_weight_grad(const float *in, int ci, int in_plane, int in_row, const float *dz, int co,
                            int dz_plane, int dz_row, int k, int height, int width, float *dw) {
    if (nas_kernels_use_avx2())
        weight_grad_avx2(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw);
    else
        weight_grad_portable(in, ci, in_plane, in_row, dz, co, dz_plane, dz_row, k, height, width, dw);
}
