internal import COpenBLAS

/// OpenBLAS for the dense layer's matrix products (the convolutions use CTrainerKernels).
enum Kernels {
    /// Makes OpenBLAS single-threaded: the trainer parallelises over images itself, so that its reduction order,
    /// and thus its results, are fixed.
    static let singleThreadedBLAS: Void = {
        openblas_set_num_threads(1)
    }()

    /// `c = alpha * op(a) * op(b) + beta * c`, row-major.
    @inline(__always)
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), 1, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }
}
