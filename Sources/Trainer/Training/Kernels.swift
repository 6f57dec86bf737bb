internal import COpenBLAS

/// The numeric kernels of training: im2col / col2im for "same" convolutions and a row-major sgemm.
///
/// Activations are stored channel-major over a chunk of images, `[C, N, H, W]` ("CNHW"): then a whole chunk's
/// convolution is one matrix product `[filters, C*k*k] x [C*k*k, N*H*W]` with the OIHW kernel used as is, and
/// each output channel's plane is contiguous for the next layer's im2col.
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

    /// Fills `columns` (`[channels * k * k, images * height * width]`) from CNHW `input`, with TensorFlow's "same"
    /// padding (the extra row or column of an even kernel goes after).
    static func im2col(
        _ input: UnsafePointer<Float>, channels: Int, images: Int, height: Int, width: Int, kernel: Int,
        _ columns: UnsafeMutablePointer<Float>
    ) {
        let pad = (kernel - 1) / 2
        let plane = height * width
        let rowLength = images * plane
        for channel in 0..<channels {
            for ky in 0..<kernel {
                for kx in 0..<kernel {
                    let row = columns + ((channel * kernel + ky) * kernel + kx) * rowLength
                    let shift = kx - pad
                    let start = max(0, -shift)
                    let end = min(width, width - shift)
                    for image in 0..<images {
                        let source = input + (channel * images + image) * plane
                        let target = row + image * plane
                        for y in 0..<height {
                            let sourceY = y + ky - pad
                            let out = target + y * width
                            if sourceY < 0 || sourceY >= height || start >= end {
                                out.update(repeating: 0, count: width)
                                continue
                            }
                            if start > 0 { out.update(repeating: 0, count: start) }
                            (out + start).update(from: source + sourceY * width + start + shift, count: end - start)
                            if end < width { (out + end).update(repeating: 0, count: width - end) }
                        }
                    }
                }
            }
        }
    }

    /// Adds `columns` back into CNHW `output` (which it first zeroes): the adjoint of `im2col`.
    static func col2im(
        _ columns: UnsafePointer<Float>, channels: Int, images: Int, height: Int, width: Int, kernel: Int,
        _ output: UnsafeMutablePointer<Float>
    ) {
        let pad = (kernel - 1) / 2
        let plane = height * width
        let rowLength = images * plane
        output.update(repeating: 0, count: channels * rowLength)
        for channel in 0..<channels {
            for ky in 0..<kernel {
                for kx in 0..<kernel {
                    let row = columns + ((channel * kernel + ky) * kernel + kx) * rowLength
                    let shift = kx - pad
                    let start = max(0, -shift)
                    let end = min(width, width - shift)
                    guard start < end else { continue }
                    for image in 0..<images {
                        let target = output + (channel * images + image) * plane
                        let source = row + image * plane
                        for y in 0..<height {
                            let targetY = y + ky - pad
                            if targetY < 0 || targetY >= height { continue }
                            let into = target + targetY * width + shift
                            let from = source + y * width
                            for x in start..<end { into[x] += from[x] }
                        }
                    }
                }
            }
        }
    }
}
