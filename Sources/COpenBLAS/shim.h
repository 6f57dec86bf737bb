/* OpenBLAS's CBLAS: sgemm for the native engine and the trainer (it picks AVX2 / AVX-512 kernels at run time). */
#ifndef NAS_COPENBLAS_SHIM_H
#define NAS_COPENBLAS_SHIM_H
#include <cblas.h>

/* Row-major C = alpha * op(A) * op(B) + beta * C, with the enums as plain flags for Swift. */
static inline void nas_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                             const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Row-major y = alpha * op(A) * x + beta * y. */
static inline void nas_sgemv(int trans, int m, int n, float alpha, const float *a, int lda, const float *x, float beta,
                             float *y) {
    cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1);
}
#endif
