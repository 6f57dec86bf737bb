/* OpenBLAS's CBLAS interface (sgemm) and its thread-count control, for the trainer's numeric kernels. */
#ifndef NAS_COPENBLAS_SHIM_H
#define NAS_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
