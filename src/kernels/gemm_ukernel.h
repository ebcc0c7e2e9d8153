/* gemm_ukernel.h - private to src/kernels/: the pieces of the SIMD GEMM
 * (gemm.c) that attention.c runs its two products through, so that Q K^T and
 * softmax(.) V go at GEMM speed with the same arithmetic. B operands are
 * panels in csasn__pack_b's layout ([1 + K][8]: 8 biases, then K rows). */
#ifndef CSASN_KERNELS_GEMM_UKERNEL_H
#define CSASN_KERNELS_GEMM_UKERNEL_H

/* Output columns [n0, n1) (multiples of 8 but for N) of csasn__gemm__simd's
 * product, on the calling thread. */
void csasn__gemm_cols__simd(int M, int N, int K, const float *A, int lda, const float *Bp,
                            float *C, int ldc, const float *R, int ldr, int act, int n0, int n1);

/* One 4x8 tile (mr <= 4 rows, nr <= 8 columns stored) of A times one panel,
 * A packed as a strip ap [K][4] (row r at ap[4k + r]). */
void csasn__gemm_4x8__simd_packed(int mr, int nr, int K, const float *ap, const float *panel,
                                  float *C, int ldc, const float *R, int ldr, int act);

#endif
