/* gemm_ukernel.h - private to src/kernels/: the GEMM's 4x8 register-tile
 * microkernels, and the column range of the SIMD GEMM (gemm.c) that
 * attention.c runs Q K^T through, so that both attention products go at GEMM
 * speed with the same arithmetic. B operands are panels in csasn__pack_b's
 * layout ([1 + K][8]: 8 biases, then K rows of 8 weights).
 *
 * The microkernels are defined here, static, so that each file that runs
 * them has them inlined into its loops: called out of line, the wasm GEMM
 * ran ~6% and attention ~11% more instructions in V8 (the call and the
 * epilogue's branches, which the inlined copies fold away). */
#ifndef CSASN_KERNELS_GEMM_UKERNEL_H
#define CSASN_KERNELS_GEMM_UKERNEL_H

#include "kernels.h"
#include "simd.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

/* Output columns [n0, n1) (multiples of 8 but for N) of csasn__gemm__simd's
 * product, on the calling thread. */
void csasn__gemm_cols__simd(int M, int N, int K, const float *A, int lda, const float *Bp,
                            float *C, int ldc, const float *R, int ldr, int act, int n0, int n1);

/* The 4x8 register tile: 8 accumulators (4 rows x 2 vectors), per k two B
 * vectors from the packed panel and four broadcast A values: 11 vector
 * registers, which V8 keeps in xmm registers (a 6x8 tile was 3% faster
 * natively but V8 spilled it: 26 instead of 39 GFLOP/s). Unrolling the k loop
 * did not help: clang regroups the unrolled steps per accumulator, keeping 8
 * B vectors live, and V8 spills (12 GFLOP/s). At 4 mul + 4 add per 32 flops
 * and no FMA in wasm SIMD the loop is bound by the two FP add and two FP
 * multiply pipes (peak ~48 GFLOP/s here); this version, on A in place, runs
 * at ~40, the packed-A one below at ~45. */
/* Stores a 4x8 tile. Bias is the accumulators' start value; the cheap
 * activations (none, ReLU, ReLU6) and the residual are applied here on full
 * tiles. Otherwise (SiLU, GELU, sigmoid, column tails) the tile is stored raw
 * (bias only, rows past mr and columns past nr dropped) and the caller
 * applies act (+ R) over the strip while it is in L1 (gemm_strip_act__simd). */
VINLINE void tile_store_4x8__simd(int mr, int nr, csasn__v4 c00, csasn__v4 c01, csasn__v4 c10, csasn__v4 c11,
                        csasn__v4 c20, csasn__v4 c21, csasn__v4 c30, csasn__v4 c31,
                        float *C, int ldc, const float *R, int ldr, int act)
{
    if (nr == 8) {
        if (act != CSASN__ACT_NONE) {   /* only ReLU / ReLU6 get here with act set */
            csasn__v4 lo = V4_ZERO(), hi = V4_SPLAT(act == CSASN__ACT_RELU6 ? 6.0f : INFINITY);
            c00 = V4_MIN(V4_MAX(c00, lo), hi); c01 = V4_MIN(V4_MAX(c01, lo), hi);
            c10 = V4_MIN(V4_MAX(c10, lo), hi); c11 = V4_MIN(V4_MAX(c11, lo), hi);
            c20 = V4_MIN(V4_MAX(c20, lo), hi); c21 = V4_MIN(V4_MAX(c21, lo), hi);
            c30 = V4_MIN(V4_MAX(c30, lo), hi); c31 = V4_MIN(V4_MAX(c31, lo), hi);
        }
        if (R) {
            c00 = V4_ADD(c00, V4_LOAD(R)); c01 = V4_ADD(c01, V4_LOAD(R + 4));
            if (mr > 1) { c10 = V4_ADD(c10, V4_LOAD(R + ldr)); c11 = V4_ADD(c11, V4_LOAD(R + ldr + 4)); }
            if (mr > 2) { c20 = V4_ADD(c20, V4_LOAD(R + 2 * (size_t)ldr)); c21 = V4_ADD(c21, V4_LOAD(R + 2 * (size_t)ldr + 4)); }
            if (mr > 3) { c30 = V4_ADD(c30, V4_LOAD(R + 3 * (size_t)ldr)); c31 = V4_ADD(c31, V4_LOAD(R + 3 * (size_t)ldr + 4)); }
        }
        V4_STORE(C, c00); V4_STORE(C + 4, c01);
        if (mr > 1) { V4_STORE(C + ldc, c10); V4_STORE(C + ldc + 4, c11); }
        if (mr > 2) { V4_STORE(C + 2 * (size_t)ldc, c20); V4_STORE(C + 2 * (size_t)ldc + 4, c21); }
        if (mr > 3) { V4_STORE(C + 3 * (size_t)ldc, c30); V4_STORE(C + 3 * (size_t)ldc + 4, c31); }
        return;
    }
    float t[CSASN__MR][8];   /* column tail: raw, the caller finishes it */
    V4_STORE(t[0], c00); V4_STORE(t[0] + 4, c01);
    V4_STORE(t[1], c10); V4_STORE(t[1] + 4, c11);
    V4_STORE(t[2], c20); V4_STORE(t[2] + 4, c21);
    V4_STORE(t[3], c30); V4_STORE(t[3] + 4, c31);
    for (int r = 0; r < mr; r++) memcpy(C + (size_t)r * ldc, t[r], (size_t)nr * sizeof(float));
}

static inline void gemm_4x8__simd(int mr, int nr, int K, const float *A, int lda, const float *panel,
                                  float *C, int ldc, const float *R, int ldr, int act)
{
    const float *b = panel + CSASN__NR;
    const float *a0 = A;
    const float *a1 = mr > 1 ? a0 + lda : a0;
    const float *a2 = mr > 2 ? a1 + lda : a1;
    const float *a3 = mr > 3 ? a2 + lda : a2;
    csasn__v4 blo = V4_LOAD(panel), bhi = V4_LOAD(panel + 4);   /* the panel's biases */
    csasn__v4 c00 = blo, c01 = bhi, c10 = blo, c11 = bhi, c20 = blo, c21 = bhi, c30 = blo, c31 = bhi;
    for (int k = 0; k < K; k++, b += 8) {
        csasn__v4 b0 = V4_LOAD(b), b1 = V4_LOAD(b + 4);
        csasn__v4 va = V4_LOAD_SPLAT(a0 + k);
        c00 = V4_MADD(c00, va, b0);
        c01 = V4_MADD(c01, va, b1);
        va = V4_LOAD_SPLAT(a1 + k);
        c10 = V4_MADD(c10, va, b0);
        c11 = V4_MADD(c11, va, b1);
        va = V4_LOAD_SPLAT(a2 + k);
        c20 = V4_MADD(c20, va, b0);
        c21 = V4_MADD(c21, va, b1);
        va = V4_LOAD_SPLAT(a3 + k);
        c30 = V4_MADD(c30, va, b0);
        c31 = V4_MADD(c31, va, b1);
    }
    tile_store_4x8__simd(mr, nr, c00, c01, c10, c11, c20, c21, c30, c31, C, ldc, R, ldr, act);
}

/* The same tile on a packed strip of A: ap [K][4] (row r of the strip at
 * ap[4k + r]). All loads are then at constant offsets from two pointers, so
 * the loop carries 2 pointer increments instead of the 4 row address
 * computations V8 would otherwise do per k (emcc turns clang's loop strength
 * reduction off). Same arithmetic, same order: identical results. */
static inline void gemm_4x8__simd_packed(int mr, int nr, int K, const float *ap, const float *panel,
                                         float *C, int ldc, const float *R, int ldr, int act)
{
    const float *b = panel + CSASN__NR;
    csasn__v4 blo = V4_LOAD(panel), bhi = V4_LOAD(panel + 4);   /* the panel's biases */
    csasn__v4 c00 = blo, c01 = bhi, c10 = blo, c11 = bhi, c20 = blo, c21 = bhi, c30 = blo, c31 = bhi;
    for (const float *end = ap + 4 * (size_t)K; ap < end; ap += 4, b += 8) {
        csasn__v4 b0 = V4_LOAD(b), b1 = V4_LOAD(b + 4);
        csasn__v4 va = V4_LOAD_SPLAT(ap);
        c00 = V4_MADD(c00, va, b0);
        c01 = V4_MADD(c01, va, b1);
        va = V4_LOAD_SPLAT(ap + 1);
        c10 = V4_MADD(c10, va, b0);
        c11 = V4_MADD(c11, va, b1);
        va = V4_LOAD_SPLAT(ap + 2);
        c20 = V4_MADD(c20, va, b0);
        c21 = V4_MADD(c21, va, b1);
        va = V4_LOAD_SPLAT(ap + 3);
        c30 = V4_MADD(c30, va, b0);
        c31 = V4_MADD(c31, va, b1);
    }
    tile_store_4x8__simd(mr, nr, c00, c01, c10, c11, c20, c21, c30, c31, C, ldc, R, ldr, act);
}


#endif
