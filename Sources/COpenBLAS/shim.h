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
#endif
