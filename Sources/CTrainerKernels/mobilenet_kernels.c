#include "nas_kernels.h"
#include "nas_mobilenet_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Each body below is plain C over contiguous rows, written once and compiled three times (AVX-512, AVX2 + FMA,
 * SSE) by DISPATCH, so that clang vectorises it for each instruction set; nas_kernels_level picks one at run
 * time, as for the CNN's kernels. Reductions that feed batch statistics accumulate in double. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

#define DISPATCH(name, params, args)                                                                   \
    __attribute__((target("avx512f,avx512vl,avx2,fma"))) static void name##_avx512 params { name##_body args; } \
    __attribute__((target("avx2,fma"))) static void name##_avx2 params { name##_body args; }                     \
    static void name##_portable params { name##_body args; }                                                     \
    void nas_mb_##name params {                                                                                  \
        switch (nas_kernels_level()) {                                                                           \
            case 2: name##_avx512 args; break;                                                                   \
            case 1: name##_avx2 args; break;                                                                     \
            default: name##_portable args;                                                                       \
        }                                                                                                        \
    }

/* One zero-padded copy of a plane: hp x wp, the input at (pad_top, pad_left). */
ALWAYS_INLINE void pad_plane(const float *in, float *pad, int hi, int wi, int hp, int wp, int pad_top,
                             int pad_left) {
    memset(pad, 0, sizeof(float) * (size_t)hp * wp);
    const int rows = hi < hp - pad_top ? hi : hp - pad_top;
    const int cols = wi < wp - pad_left ? wi : wp - pad_left;
    for (int y = 0; y < rows; y++) memcpy(pad + (size_t)(y + pad_top) * wp + pad_left, in + (size_t)y * wi,
                                          sizeof(float) * (size_t)cols);
}

/* The flat loops below run over whole 16-float vectors; the tail past the plane reads zeros. */
ALWAYS_INLINE size_t whole_vectors(size_t count) { return (count + 15) & ~(size_t)15; }

/* The zero-padded plane (hp x wp) split into stride x stride phase planes of ph x pw, phase (a, b) holding the
 * padded pixels (r * stride + a, t * stride + b), each plane followed by 16 zeros. A tap (ky, kx) of the output
 * (y, x) then reads phase (ky % stride, kx % stride) at (y + ky / stride, x + kx / stride): a stride-1 window in
 * every phase, for stride 2 as for 1 (where the one phase is the padded plane). */
ALWAYS_INLINE void phase_planes(const float *in, float *q, int s, int hi, int wi, int hp, int wp, int ph, int pw,
                                size_t plane, int pad_top, int pad_left) {
    if (s == 1) {
        pad_plane(in, q, hi, wi, hp, wp, pad_top, pad_left);
        return;
    }
    for (int a = 0; a < s; a++)
        for (int b = 0; b < s; b++) {
            float *phase = q + (size_t)(a * s + b) * plane;
            for (int r = 0; r < ph; r++) {
                const int py = r * s + a, yi = py - pad_top;
                float *row = phase + (size_t)r * pw;
                const int inside = py < hp && yi >= 0 && yi < hi;
                for (int t = 0; t < pw; t++) {
                    const int px = t * s + b, xi = px - pad_left;
                    row[t] = inside && px < wp && xi >= 0 && xi < wi ? in[(size_t)yi * wi + xi] : 0;
                }
            }
        }
}

/* Each output plane is computed as one flat row over the phases' pitch: output (y, x) is flat[y * pw + x], a sum
 * of k * k shifted phase planes, so each tap is one loop over whole vectors of (ho - 1) * pw + wo floats instead
 * of ho loops of wo (4 to 14 here, too short to vectorise); the pw - wo columns between rows are computed and
 * dropped. */
ALWAYS_INLINE void depthwise_forward_body(const float *in, const float *w, float *out, int channels, int images,
                                          int hi, int wi, int ho, int wo, int k, int stride, int pad_top,
                                          int pad_left) {
    const int s = stride, hp = (ho - 1) * s + k, wp = (wo - 1) * s + k;
    const int ph = (hp + s - 1) / s, pw = (wp + s - 1) / s;
    const size_t plane = (size_t)ph * pw + 16, flat = (size_t)(ho - 1) * pw + wo, run = whole_vectors(flat);
    float *q = calloc((size_t)s * s * plane + run, sizeof(float));
    float *acc = q + (size_t)s * s * plane;
    for (int c = 0; c < channels; c++) {
        const float *kernel = w + (size_t)c * k * k;
        for (int i = 0; i < images; i++) {
            phase_planes(in + ((size_t)c * images + i) * hi * wi, q, s, hi, wi, hp, wp, ph, pw, plane, pad_top,
                         pad_left);
            for (size_t j = 0; j < run; j++) acc[j] = 0;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float weight = kernel[ky * k + kx];
                    const float *src = q + (size_t)((ky % s) * s + kx % s) * plane + (size_t)(ky / s) * pw + kx / s;
                    for (size_t j = 0; j < run; j++) acc[j] += weight * src[j];
                }
            float *o = out + ((size_t)c * images + i) * ho * wo;
            for (int y = 0; y < ho; y++) memcpy(o + (size_t)y * wo, acc + (size_t)y * pw, sizeof(float) * wo);
        }
    }
    free(q);
}

DISPATCH(depthwise_forward,
         (const float *in, const float *w, float *out, int channels, int images, int hi, int wi, int ho, int wo,
          int k, int stride, int pad_top, int pad_left),
         (in, w, out, channels, images, hi, wi, ho, wo, k, stride, pad_top, pad_left))

/* The forward pass's layout backwards: the output's gradient in rows of pw (zeros between and after them), each
 * tap one dot product (in 16 lanes per tap, summed over a channel's images and reduced once at its end) and one
 * axpy into the phases' gradient, which is then gathered back into the input's. */
ALWAYS_INLINE void depthwise_backward_body(const float *in, const float *w, const float *dout, float *din, float *dw,
                                           int channels, int images, int hi, int wi, int ho, int wo, int k,
                                           int stride, int pad_top, int pad_left) {
    const int s = stride, hp = (ho - 1) * s + k, wp = (wo - 1) * s + k;
    const int ph = (hp + s - 1) / s, pw = (wp + s - 1) / s;
    const size_t plane = (size_t)ph * pw + 16, flat = (size_t)(ho - 1) * pw + wo, run = whole_vectors(flat);
    const size_t phases = (size_t)s * s * plane;
    float *q = calloc(2 * phases + run + (size_t)k * k * 16, sizeof(float));
    float *dq = q + phases;
    float *gflat = dq + phases;
    float *lanes = gflat + run;
    for (int c = 0; c < channels; c++) {
        const float *kernel = w + (size_t)c * k * k;
        memset(lanes, 0, sizeof(float) * (size_t)k * k * 16);
        for (int i = 0; i < images; i++) {
            phase_planes(in + ((size_t)c * images + i) * hi * wi, q, s, hi, wi, hp, wp, ph, pw, plane, pad_top,
                         pad_left);
            if (din) memset(dq, 0, sizeof(float) * phases);
            const float *g = dout + ((size_t)c * images + i) * ho * wo;
            for (int y = 0; y < ho; y++) memcpy(gflat + (size_t)y * pw, g + (size_t)y * wo, sizeof(float) * wo);
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const size_t shift = (size_t)((ky % s) * s + kx % s) * plane + (size_t)(ky / s) * pw + kx / s;
                    const float *src = q + shift;
                    float *tap = lanes + (size_t)(ky * k + kx) * 16;
                    float part[16]; /* a local copy: tap may alias the planes for all the compiler knows */
                    for (int l = 0; l < 16; l++) part[l] = tap[l];
                    for (size_t j = 0; j < run; j += 16)
                        for (int l = 0; l < 16; l++) part[l] += gflat[j + l] * src[j + l];
                    for (int l = 0; l < 16; l++) tap[l] = part[l];
                    if (din) {
                        const float weight = kernel[ky * k + kx];
                        float *dst = dq + shift;
                        for (size_t j = 0; j < run; j++) dst[j] += weight * gflat[j];
                    }
                }
            if (din) {
                /* Input pixels outside the padded plane (the odd column a stride-2 "same" leaves) get no gradient. */
                float *d = din + ((size_t)c * images + i) * hi * wi;
                const int cols = wi < wp - pad_left ? wi : wp - pad_left;
                for (int y = 0; y < hi; y++) {
                    float *row = d + (size_t)y * wi;
                    const int py = y + pad_top;
                    const int copied = py < hp ? cols : 0;
                    if (s == 1) {
                        if (copied > 0) memcpy(row, dq + (size_t)py * pw + pad_left, sizeof(float) * (size_t)copied);
                    } else {
                        for (int x = 0; x < copied; x++) {
                            const int px = x + pad_left;
                            row[x] = dq[(size_t)((py % s) * s + px % s) * plane + (size_t)(py / s) * pw + px / s];
                        }
                    }
                    for (int x = copied; x < wi; x++) row[x] = 0;
                }
            }
        }
        for (int j = 0; j < k * k; j++) {
            float sum = 0;
            for (int l = 0; l < 16; l++) sum += lanes[(size_t)j * 16 + l];
            dw[(size_t)c * k * k + j] = sum;
        }
    }
    free(q);
}

DISPATCH(depthwise_backward,
         (const float *in, const float *w, const float *dout, float *din, float *dw, int channels, int images, int hi,
          int wi, int ho, int wo, int k, int stride, int pad_top, int pad_left),
         (in, w, dout, din, dw, channels, images, hi, wi, ho, wo, k, stride, pad_top, pad_left))

ALWAYS_INLINE void im2col_body(const float *in, float *col, int images, int ci, int hi, int wi, int ho, int wo,
                               int k, int stride, int pad_top, int pad_left) {
    const size_t columns = (size_t)images * ho * wo;
    for (int c = 0; c < ci; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                float *dst = col + (size_t)((c * k + ky) * k + kx) * columns;
                for (int i = 0; i < images; i++) {
                    const float *plane = in + ((size_t)i * ci + c) * hi * wi;
                    for (int y = 0; y < ho; y++) {
                        const int sy = y * stride + ky - pad_top;
                        float *row = dst + ((size_t)i * ho + y) * wo;
                        for (int x = 0; x < wo; x++) {
                            const int sx = x * stride + kx - pad_left;
                            row[x] = sy >= 0 && sy < hi && sx >= 0 && sx < wi ? plane[(size_t)sy * wi + sx] : 0;
                        }
                    }
                }
            }
}

DISPATCH(im2col,
         (const float *in, float *col, int images, int ci, int hi, int wi, int ho, int wo, int k, int stride,
          int pad_top, int pad_left),
         (in, col, images, ci, hi, wi, ho, wo, k, stride, pad_top, pad_left))

/* Sums for batch statistics in 8 double lanes: double as before, but vectorisable (an in-order sum is not). */
ALWAYS_INLINE double sum_lanes(const float *x, long m) {
    double lanes[8] = {0};
    long j = 0;
    for (; j + 8 <= m; j += 8)
        for (int l = 0; l < 8; l++) lanes[l] += x[j + l];
    double sum = 0;
    for (; j < m; j++) sum += x[j];
    for (int l = 0; l < 8; l++) sum += lanes[l];
    return sum;
}

ALWAYS_INLINE double squares_lanes(const float *x, long m, double mu) {
    double lanes[8] = {0};
    long j = 0;
    for (; j + 8 <= m; j += 8)
        for (int l = 0; l < 8; l++) {
            const double d = x[j + l] - mu;
            lanes[l] += d * d;
        }
    double sum = 0;
    for (; j < m; j++) sum += (x[j] - mu) * (x[j] - mu);
    for (int l = 0; l < 8; l++) sum += lanes[l];
    return sum;
}

ALWAYS_INLINE void batchnorm_train_body(float *z, float *y, int channels, long m, const float *gamma,
                                        const float *beta, float epsilon, float *mean, float *var, float *invstd) {
    for (int c = 0; c < channels; c++) {
        float *row = z + (size_t)c * m;
        float *out = y + (size_t)c * m;
        const double mu = sum_lanes(row, m) / (double)m;
        const double variance = squares_lanes(row, m, mu) / (double)m;
        const float inv = (float)(1.0 / sqrt(variance + epsilon));
        const float fmu = (float)mu, g = gamma[c], b = beta[c];
        for (long j = 0; j < m; j++) {
            const float xhat = (row[j] - fmu) * inv;
            row[j] = xhat;
            out[j] = g * xhat + b;
        }
        mean[c] = fmu;
        var[c] = (float)variance;
        invstd[c] = inv;
    }
}

DISPATCH(batchnorm_train,
         (float *z, float *y, int channels, long m, const float *gamma, const float *beta, float epsilon, float *mean,
          float *var, float *invstd),
         (z, y, channels, m, gamma, beta, epsilon, mean, var, invstd))

ALWAYS_INLINE void batchnorm_eval_body(const float *z, float *y, int channels, long m, const float *gamma,
                                       const float *beta, const float *mean, const float *var, float epsilon) {
    for (int c = 0; c < channels; c++) {
        const float scale = gamma[c] / sqrtf(var[c] + epsilon);
        const float mu = mean[c], b = beta[c];
        const float *row = z + (size_t)c * m;
        float *out = y + (size_t)c * m;
        for (long j = 0; j < m; j++) out[j] = (row[j] - mu) * scale + b;
    }
}

DISPATCH(batchnorm_eval,
         (const float *z, float *y, int channels, long m, const float *gamma, const float *beta, const float *mean,
          const float *var, float epsilon),
         (z, y, channels, m, gamma, beta, mean, var, epsilon))

ALWAYS_INLINE void batchnorm_backward_body(const float *dy, const float *xhat, const float *gamma,
                                           const float *invstd, float *dz, float *dgamma, float *dbeta, int channels,
                                           long m) {
    for (int c = 0; c < channels; c++) {
        const float *g = dy + (size_t)c * m;
        const float *xh = xhat + (size_t)c * m;
        float *d = dz + (size_t)c * m;
        double sums[8] = {0}, dots[8] = {0};
        long j = 0;
        for (; j + 8 <= m; j += 8)
            for (int l = 0; l < 8; l++) {
                sums[l] += g[j + l];
                dots[l] += (double)g[j + l] * xh[j + l];
            }
        double sum = 0, dot = 0;
        for (; j < m; j++) {
            sum += g[j];
            dot += (double)g[j] * xh[j];
        }
        for (int l = 0; l < 8; l++) {
            sum += sums[l];
            dot += dots[l];
        }
        dgamma[c] = (float)dot;
        dbeta[c] = (float)sum;
        const float scale = gamma[c] * invstd[c];
        const float mean_g = (float)(sum / (double)m), mean_gx = (float)(dot / (double)m);
        for (long j = 0; j < m; j++) d[j] = scale * (g[j] - mean_g - xh[j] * mean_gx);
    }
}

DISPATCH(batchnorm_backward,
         (const float *dy, const float *xhat, const float *gamma, const float *invstd, float *dz, float *dgamma,
          float *dbeta, int channels, long m),
         (dy, xhat, gamma, invstd, dz, dgamma, dbeta, channels, m))

ALWAYS_INLINE float clamp6(float v) { return v < 0 ? 0 : v > 6 ? 6 : v; }

ALWAYS_INLINE void activation_forward_body(int kind, const float *x, float *y, long count) {
    switch (kind) {
        case NAS_MB_RELU:
            for (long j = 0; j < count; j++) y[j] = x[j] < 0 ? 0 : x[j];
            break;
        case NAS_MB_RELU6:
            for (long j = 0; j < count; j++) y[j] = clamp6(x[j]);
            break;
        case NAS_MB_HSWISH:
            for (long j = 0; j < count; j++) y[j] = x[j] * clamp6(x[j] + 3) * (1.0f / 6);
            break;
        case NAS_MB_HSIGMOID:
            for (long j = 0; j < count; j++) y[j] = clamp6(x[j] + 3) * (1.0f / 6);
            break;
        default:
            if (y != x) memcpy(y, x, sizeof(float) * (size_t)count);
    }
}

DISPATCH(activation_forward, (int kind, const float *x, float *y, long count), (kind, x, y, count))

/* The derivative at a kink is the one-sided value Keras's and PyTorch's ops use: ReLU6 passes on (0, 6), hard-swish
 * has (2x + 3) / 6 on (-3, 3), 1 above; hard-sigmoid 1/6 on (-3, 3). */
ALWAYS_INLINE float derivative(int kind, float v) {
    switch (kind) {
        case NAS_MB_RELU: return v > 0 ? 1.0f : 0.0f;
        case NAS_MB_RELU6: return v > 0 && v < 6 ? 1.0f : 0.0f;
        case NAS_MB_HSWISH: return v <= -3 ? 0.0f : v >= 3 ? 1.0f : (2 * v + 3) * (1.0f / 6);
        case NAS_MB_HSIGMOID: return v > -3 && v < 3 ? 1.0f / 6 : 0.0f;
        default: return 1.0f;
    }
}

ALWAYS_INLINE void activation_backward_body(int kind, const float *x, const float *dy, float *dx, long count,
                                            int accumulate) {
#define ACT_LOOP(KIND)                                                                   \
    if (accumulate)                                                                      \
        for (long j = 0; j < count; j++) dx[j] += derivative(KIND, x[j]) * dy[j];        \
    else                                                                                 \
        for (long j = 0; j < count; j++) dx[j] = derivative(KIND, x[j]) * dy[j];
    switch (kind) {
        case NAS_MB_RELU: ACT_LOOP(NAS_MB_RELU) break;
        case NAS_MB_RELU6: ACT_LOOP(NAS_MB_RELU6) break;
        case NAS_MB_HSWISH: ACT_LOOP(NAS_MB_HSWISH) break;
        case NAS_MB_HSIGMOID: ACT_LOOP(NAS_MB_HSIGMOID) break;
        default: ACT_LOOP(NAS_MB_IDENTITY)
    }
#undef ACT_LOOP
}

DISPATCH(activation_backward, (int kind, const float *x, const float *dy, float *dx, long count, int accumulate),
         (kind, x, dy, dx, count, accumulate))

ALWAYS_INLINE void average_pool_body(const float *x, float *out, long planes, int area) {
    for (long p = 0; p < planes; p++) {
        const float *row = x + (size_t)p * area;
        double sum = 0;
        for (int j = 0; j < area; j++) sum += row[j];
        out[p] = (float)(sum / area);
    }
}

DISPATCH(average_pool, (const float *x, float *out, long planes, int area), (x, out, planes, area))

ALWAYS_INLINE void average_pool_backward_body(const float *dout, float *dx, long planes, int area) {
    for (long p = 0; p < planes; p++) {
        const float g = dout[p] / (float)area;
        float *row = dx + (size_t)p * area;
        for (int j = 0; j < area; j++) row[j] = g;
    }
}

DISPATCH(average_pool_backward, (const float *dout, float *dx, long planes, int area), (dout, dx, planes, area))

ALWAYS_INLINE void scale_body(const float *x, const float *e, float *y, long planes, int area) {
    for (long p = 0; p < planes; p++) {
        const float s = e[p];
        const float *row = x + (size_t)p * area;
        float *out = y + (size_t)p * area;
        for (int j = 0; j < area; j++) out[j] = row[j] * s;
    }
}

DISPATCH(scale, (const float *x, const float *e, float *y, long planes, int area), (x, e, y, planes, area))

ALWAYS_INLINE void scale_backward_body(const float *x, const float *e, const float *dy, float *dx, float *de,
                                       long planes, int area) {
    for (long p = 0; p < planes; p++) {
        const float s = e[p];
        const float *row = x + (size_t)p * area;
        const float *g = dy + (size_t)p * area;
        float *d = dx + (size_t)p * area;
        float sum = 0;
        for (int j = 0; j < area; j++) {
            sum += g[j] * row[j];
            d[j] = g[j] * s;
        }
        de[p] = sum;
    }
}

DISPATCH(scale_backward, (const float *x, const float *e, const float *dy, float *dx, float *de, long planes, int area),
         (x, e, dy, dx, de, planes, area))
