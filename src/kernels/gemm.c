/* gemm.c - weight packing and the GEMM (src/kernels.h): scalar reference,
 * SIMD 4x8 register tile, column split over the thread pool. */
#include "kernels.h"
#include "gemm_ukernel.h"
#include "parallel.h"
#include "simd.h"
#include "vmath.h"

#include <assert.h>
#include <math.h>
#include <string.h>

size_t csasn__pack_floats(int K, int N)
{
    return (size_t)((N + CSASN__NR - 1) / CSASN__NR) * ((size_t)K + 1) * CSASN__NR;
}

void csasn__pack_b(const float *W, const float *bias, int N, int K, float *dst)
{
    assert(W && dst && N >= 1 && K >= 1);
    size_t panel = ((size_t)K + 1) * CSASN__NR;
    for (int n0 = 0; n0 < N; n0 += CSASN__NR) {
        float *p = dst + (size_t)(n0 / CSASN__NR) * panel;   /* [1 + K][8]: biases, then weights */
        int nr = imin(CSASN__NR, N - n0);
        if (nr < CSASN__NR) memset(p, 0, panel * sizeof(float));
        for (int j = 0; j < nr; j++) p[j] = bias ? bias[n0 + j] : 0.0f;
        /* row by row of W: sequential reads, 8-strided writes within one panel */
        float *pw = p + CSASN__NR;
        for (int j = 0; j < nr; j++) {
            const float *wr = W + (size_t)(n0 + j) * K;
            for (int k = 0; k < K; k++) pw[(size_t)k * CSASN__NR + j] = wr[k];
        }
    }
}

void csasn__gemm__scalar(int M, int N, int K, const float *A, int lda, const float *Bp,
                         float *C, int ldc, const float *R, int ldr, int act)
{
    assert(M >= 0 && N >= 1 && K >= 1 && A && Bp && C && lda >= K && ldc >= N && (!R || ldr >= N));
    for (int n0 = 0; n0 < N; n0 += CSASN__NR) {
        const float *bias = Bp + (size_t)(n0 / CSASN__NR) * ((size_t)K + 1) * CSASN__NR;
        const float *b = bias + CSASN__NR;
        int nr = imin(CSASN__NR, N - n0);
        for (int m0 = 0; m0 < M; m0 += CSASN__MR) {
            int mr = imin(CSASN__MR, M - m0);
            float acc[CSASN__MR][CSASN__NR];
            for (int r = 0; r < mr; r++)
                for (int j = 0; j < CSASN__NR; j++) acc[r][j] = bias[j];
            for (int k = 0; k < K; k++)
                for (int r = 0; r < mr; r++) {
                    float a = A[(size_t)(m0 + r) * lda + k];
                    for (int j = 0; j < CSASN__NR; j++) acc[r][j] += a * b[(size_t)k * CSASN__NR + j];
                }
            for (int r = 0; r < mr; r++)
                for (int j = 0; j < nr; j++) {
                    float v = csasn__act1(acc[r][j], act);
                    if (R) v += R[(size_t)(m0 + r) * ldr + n0 + j];
                    C[(size_t)(m0 + r) * ldc + n0 + j] = v;
                }
        }
    }
}

/* act over x[n], then + r[n] when r != NULL: the deferred epilogue of a GEMM
 * strip. One loop per activation so its constants stay out of the loop. */
#define STRIP_LOOP(A) \
    for (; i + 4 <= n; i += 4) { \
        csasn__v4 v = v4_act(V4_LOAD(x + i), A); \
        V4_STORE(x + i, r ? V4_ADD(v, V4_LOAD(r + i)) : v); \
    }
static void gemm_strip_act__simd(float *x, int n, const float *r, int act)
{
    int i = 0;
    switch (act) {
    case CSASN__ACT_RELU:    STRIP_LOOP(CSASN__ACT_RELU); break;
    case CSASN__ACT_RELU6:   STRIP_LOOP(CSASN__ACT_RELU6); break;
    case CSASN__ACT_SILU:    STRIP_LOOP(CSASN__ACT_SILU); break;
    case CSASN__ACT_GELU:    STRIP_LOOP(CSASN__ACT_GELU); break;
    case CSASN__ACT_SIGMOID: STRIP_LOOP(CSASN__ACT_SIGMOID); break;
    default:                 STRIP_LOOP(CSASN__ACT_NONE); break;
    }
    if (i < n) {
        act_tail__simd(x + i, n - i, act);
        if (r)
            for (; i < n; i++) x[i] += r[i];
    }
}
#undef STRIP_LOOP

#define PACK_K 2048

/* A strip of 4 rows of A (row stride lda; rows past mr repeat the last one)
 * -> ap [K][4], by 4x4 register transposes. */
static void pack_a4__simd(const float *A, int lda, int mr, int K, float *ap)
{
    const float *a0 = A, *a1 = mr > 1 ? a0 + lda : a0, *a2 = mr > 2 ? a1 + lda : a1, *a3 = mr > 3 ? a2 + lda : a2;
    int k = 0;
    for (; k + 4 <= K; k += 4, ap += 16) {
        csasn__v4 r0 = V4_LOAD(a0 + k), r1 = V4_LOAD(a1 + k), r2 = V4_LOAD(a2 + k), r3 = V4_LOAD(a3 + k);
        V4_TRANSPOSE4(r0, r1, r2, r3);
        V4_STORE(ap, r0);
        V4_STORE(ap + 4, r1);
        V4_STORE(ap + 8, r2);
        V4_STORE(ap + 12, r3);
    }
    for (; k < K; k++, ap += 4) {
        ap[0] = a0[k];
        ap[1] = a1[k];
        ap[2] = a2[k];
        ap[3] = a3[k];
    }
}

/* One strip of mr <= 4 rows, output columns [j0, j1), of C = act(A Bp) (+ R):
 * A is read from the packed strip ap ([K][4]) when it is given, else in place
 * (a, lda). A column tail (nr < 8) is stored raw and gets its act and R after
 * the kernel; so does every panel of an expensive act (SiLU, GELU, sigmoid),
 * which runs once over the strip's outputs while they are still in L1. */
static void gemm_strip__simd(int mr, int N, int K, const float *a, int lda, const float *ap,
                             const float *Bp, float *cs, int ldc,
                             const float *rs, int ldr, int act, int j0, int j1)
{
    size_t panel = ((size_t)K + 1) * CSASN__NR;
    int late = act > CSASN__ACT_RELU6;
    for (int j = j0; j < j1; j += CSASN__NR) {
        int nr = imin(CSASN__NR, N - j);
        int raw = late || nr < CSASN__NR;
        const float *bj = Bp + (size_t)(j / CSASN__NR) * panel;
        const float *rj = raw || !rs ? NULL : rs + j;
        int kact = raw ? CSASN__ACT_NONE : act;
        if (ap)
            gemm_4x8__simd_packed(mr, nr, K, ap, bj, cs + j, ldc, rj, ldr, kact);
        else
            gemm_4x8__simd(mr, nr, K, a, lda, bj, cs + j, ldc, rj, ldr, kact);
        if (raw && !late)   /* a tail of a cheap-act GEMM */
            for (int r = 0; r < mr; r++)
                gemm_strip_act__simd(cs + (size_t)r * ldc + j, nr, rs ? rs + (size_t)r * ldr + j : NULL, act);
    }
    if (late)
        for (int r = 0; r < mr; r++)
            gemm_strip_act__simd(cs + (size_t)r * ldc + j0, j1 - j0, rs ? rs + (size_t)r * ldr + j0 : NULL, act);
}

/* Output columns [n0, n1) (multiples of 8 but for N) of C = act(A Bp) (+ R).
 * Usual case (K <= 2048, >= 16 columns): rows in strips of 4, each strip of A
 * packed once ([K][4], 32 KiB at most, on the stack) and run against every
 * panel of B in [n0, n1); B (<= 600 KiB for the ViT layers) streams from L2,
 * which the hardware prefetcher keeps up with.
 * Otherwise A is read in place and the columns go in blocks of whole panels
 * holding at most 24 KiB of B (L1), the rows in strips of 4 inside a block.
 * Splitting [n0, n1) between threads leaves every output's arithmetic
 * unchanged. */
void csasn__gemm_cols__simd(int M, int N, int K, const float *A, int lda, const float *Bp,
                            float *C, int ldc, const float *R, int ldr, int act, int n0, int n1)
{
#ifndef GEMM_NOPACK
    if (K <= PACK_K && n1 - n0 >= 16) {
        float ap[CSASN__MR * PACK_K];
        for (int m0 = 0; m0 < M; m0 += CSASN__MR) {
            int mr = imin(CSASN__MR, M - m0);
            pack_a4__simd(A + (size_t)m0 * lda, lda, mr, K, ap);
            gemm_strip__simd(mr, N, K, NULL, 0, ap, Bp, C + (size_t)m0 * ldc, ldc,
                             R ? R + (size_t)m0 * ldr : NULL, ldr, act, n0, n1);
        }
        return;
    }
#endif
    int bp = (int)((24 * 1024 / sizeof(float)) / (((size_t)K + 1) * CSASN__NR));
    if (bp < 1) bp = 1;
    for (int c0 = n0; c0 < n1; c0 += bp * CSASN__NR) {
        int c1 = imin(n1, c0 + bp * CSASN__NR);
        for (int m0 = 0; m0 < M; m0 += CSASN__MR)
            gemm_strip__simd(imin(CSASN__MR, M - m0), N, K, A + (size_t)m0 * lda, lda, NULL, Bp,
                             C + (size_t)m0 * ldc, ldc, R ? R + (size_t)m0 * ldr : NULL, ldr, act, c0, c1);
    }
}

typedef struct {
    int M, N, K, lda, ldc, ldr, act;
    const float *A, *Bp, *R;
    float *C;
} gemm_job;

/* Part i of n: a contiguous range of whole panels. */
static void gemm_part__simd(void *ctx, int part, int nparts)
{
    const gemm_job *g = ctx;
    int np = (g->N + CSASN__NR - 1) / CSASN__NR;
    int p0 = (int)((int64_t)np * part / nparts), p1 = (int)((int64_t)np * (part + 1) / nparts);
    csasn__gemm_cols__simd(g->M, g->N, g->K, g->A, g->lda, g->Bp, g->C, g->ldc, g->R, g->ldr, g->act,
                           p0 * CSASN__NR, imin(g->N, p1 * CSASN__NR));
}

void csasn__gemm__simd(int M, int N, int K, const float *A, int lda, const float *Bp,
                       float *C, int ldc, const float *R, int ldr, int act)
{
    assert(M >= 0 && N >= 1 && K >= 1 && A && Bp && C && lda >= K && ldc >= N && (!R || ldr >= N));
    gemm_job g = {M, N, K, lda, ldc, ldr, act, A, Bp, R, C};
    /* below ~0.5M multiply-adds (~60 us) waking a helper costs more than it saves */
    int parts = (double)M * N * K >= 5e5 ? (N + CSASN__NR - 1) / CSASN__NR : 1;
    csasn__parallel(gemm_part__simd, &g, parts);
}

void csasn__gemm(int M, int N, int K, const float *A, int lda, const float *Bp,
                 float *C, int ldc, const float *R, int ldr, int act)
{
#ifdef CSASN_SCALAR
    csasn__gemm__scalar(M, N, K, A, lda, Bp, C, ldc, R, ldr, act);
#else
    csasn__gemm__simd(M, N, K, A, lda, Bp, C, ldc, R, ldr, act);
#endif
}
