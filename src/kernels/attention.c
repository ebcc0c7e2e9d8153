/* attention.c - multi-head self-attention with the softmax fused
 * (src/kernels.h): the scalar reference and a SIMD version that runs both
 * products through the GEMM microkernels (gemm_ukernel.h), query blocks
 * split over the thread pool. */
#include "kernels.h"
#include "gemm_ukernel.h"
#include "parallel.h"
#include "simd.h"
#include "vmath.h"

#include <assert.h>
#include <math.h>
#include <string.h>

void csasn__attention__scalar(const float *qkv, int T, int D, int heads, float *out, float *scratch)
{
    assert(qkv && out && scratch && T >= 1 && heads >= 1 && D >= heads && D % heads == 0);
    int hd = D / heads;
    size_t ld = (size_t)3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < T; i++) {
            const float *q = qkv + i * ld + h * hd;
            for (int j = 0; j < T; j++) {
                const float *k = qkv + j * ld + D + h * hd;
                float s = 0.0f;
                for (int d = 0; d < hd; d++) s += q[d] * k[d];
                scratch[j] = s * scale;
            }
            csasn__softmax__scalar(scratch, T);
            float *o = out + (size_t)i * D + h * hd;
            for (int d = 0; d < hd; d++) o[d] = 0.0f;
            for (int j = 0; j < T; j++) {
                const float *v = qkv + j * ld + 2 * D + h * hd;
                for (int d = 0; d < hd; d++) o[d] += scratch[j] * v[d];
            }
        }
}

uint64_t csasn__attention_scratch_floats(int T, int D, int heads)
{
    uint64_t hd = (uint64_t)(D / heads), t = (uint64_t)T, r = CSASN__NR;
    /* = csasn__pack_floats(hd, T) + csasn__pack_floats(T, hd) + 2 x 4*T per
     * thread (CSASN__MAX_THREADS: the count may change after planning), in 64 bits */
    return (t + r - 1) / r * r * (hd + 1) + (hd + r - 1) / r * r * (t + 1) +
           (uint64_t)CSASN__MAX_THREADS * 2 * CSASN__MR * t;
}

/* K_h [T x hd] (rows of stride ld) as GEMM panels of B = K_h^T [hd x T]
 * (zero biases), times scale: S = Q K^T * scale then comes straight out of
 * the GEMM (the product rounds differently from (q.k)*scale, by an ulp). */
static void pack_k__simd(const float *src, int T, int hd, size_t ld, float scale, float *dst)
{
    csasn__v4 vs = V4_SPLAT(scale);
    for (int n0 = 0; n0 < T; n0 += CSASN__NR) {
        float *p = dst + (size_t)(n0 / CSASN__NR) * ((size_t)hd + 1) * CSASN__NR;
        memset(p, 0, CSASN__NR * sizeof(float));
        p += CSASN__NR;
        int nr = imin(CSASN__NR, T - n0);
        for (int j0 = 0; j0 < CSASN__NR; j0 += 4) {
            /* 4 tokens x 4 dims at a time, transposed in registers; a token
             * past T reads as zeros (r[] points at a zero row) */
            static const float zeros[4] = {0, 0, 0, 0};
            const float *r[4];
            int stride[4];
            for (int j = 0; j < 4; j++) {
                int ok = j0 + j < nr;
                r[j] = ok ? src + (size_t)(n0 + j0 + j) * ld : zeros;
                stride[j] = ok;   /* 1: walk the row, 0: stay on the zeros */
            }
            int d = 0;
            for (; d + 4 <= hd; d += 4) {
                csasn__v4 r0 = V4_LOAD(r[0] + d * stride[0]), r1 = V4_LOAD(r[1] + d * stride[1]);
                csasn__v4 r2 = V4_LOAD(r[2] + d * stride[2]), r3 = V4_LOAD(r[3] + d * stride[3]);
                V4_TRANSPOSE4(r0, r1, r2, r3);
                V4_STORE(p + (size_t)d * CSASN__NR + j0, V4_MUL(r0, vs));
                V4_STORE(p + (size_t)(d + 1) * CSASN__NR + j0, V4_MUL(r1, vs));
                V4_STORE(p + (size_t)(d + 2) * CSASN__NR + j0, V4_MUL(r2, vs));
                V4_STORE(p + (size_t)(d + 3) * CSASN__NR + j0, V4_MUL(r3, vs));
            }
            for (; d < hd; d++)
                for (int j = 0; j < 4; j++) p[(size_t)d * CSASN__NR + j0 + j] = r[j][d * stride[j]] * scale;
        }
    }
}

/* V_h [T x hd] (rows of stride ld) as GEMM panels of B [T x hd] (zero
 * biases): panel p, row t is V_h[t][8p .. 8p+7], a contiguous copy. */
static void pack_v__simd(const float *src, int T, int hd, size_t ld, float *dst)
{
    for (int n0 = 0; n0 < hd; n0 += CSASN__NR) {
        float *p = dst + (size_t)(n0 / CSASN__NR) * ((size_t)T + 1) * CSASN__NR;
        memset(p, 0, CSASN__NR * sizeof(float));
        p += CSASN__NR;
        int nr = imin(CSASN__NR, hd - n0);
        for (int t = 0; t < T; t++, p += CSASN__NR) {
            const float *v = src + (size_t)t * ld + n0;
            if (nr == CSASN__NR) {
                V4_STORE(p, V4_LOAD(v));
                V4_STORE(p + 4, V4_LOAD(v + 4));
            } else {
                for (int j = 0; j < CSASN__NR; j++) p[j] = j < nr ? v[j] : 0.0f;
            }
        }
    }
}

/* Per head: K_h (scaled) and V_h are packed as GEMM panels once (T*hd each,
 * small next to the T*T*hd work), then for every block of 4 queries:
 *   S [4 x T] = Q_blk (scale K_h)^T    (the GEMM microkernel)
 *   S = exp(S - rowmax)                (softmax numerator, in place)
 *   O [4 x hd] = S V_h, then / rowsum  (normalising hd outputs, not T scores)
 * so only 4 score rows per head ever exist, and both products run at GEMM
 * speed. */
typedef struct {
    const float *qkv, *Kp, *Vp;
    float *out, *S;
    int T, D, hd, h;
} attention_job;

/* Part i of n: a contiguous range of 4-query blocks of head h, with its own
 * scratch: the 4 score rows S [4 x T] and their exponentials Sp [T x 4],
 * written transposed (4x4 register transposes) so that Sp is already the
 * packed A strip of the product with V: no packing pass, and the row sums of
 * the softmax are the lanes of one vector accumulator. */
static void attention_part__simd(void *ctx, int part, int nparts)
{
    const attention_job *a = ctx;
    int T = a->T, D = a->D, hd = a->hd, h = a->h, nb = (T + CSASN__MR - 1) / CSASN__MR;
    size_t ld = (size_t)3 * D;
    float *S = a->S + (size_t)part * 2 * CSASN__MR * T;  /* [4 x T] */
    float *Sp = S + (size_t)CSASN__MR * T;               /* [T x 4] */
    int b0 = (int)((int64_t)nb * part / nparts), b1 = (int)((int64_t)nb * (part + 1) / nparts);
    for (int i0 = b0 * CSASN__MR; i0 < T && i0 < b1 * CSASN__MR; i0 += CSASN__MR) {
        int mr = imin(CSASN__MR, T - i0);
        csasn__gemm_cols__simd(mr, T, hd, a->qkv + i0 * ld + h * hd, (int)ld, a->Kp, S, T, NULL, 0,
                               CSASN__ACT_NONE, 0, T);
        /* rows past mr (last block): copies of the last row, computed, never stored */
        for (int r = mr; r < CSASN__MR; r++) memcpy(S + (size_t)r * T, S + (size_t)(mr - 1) * T, (size_t)T * sizeof(float));
        float mx[CSASN__MR], inv[CSASN__MR];
        for (int r = 0; r < CSASN__MR; r++) mx[r] = max__simd(S + (size_t)r * T, T);
        const float *s0 = S, *s1 = S + T, *s2 = S + 2 * (size_t)T, *s3 = S + 3 * (size_t)T;
        csasn__v4 vmx = V4_LOAD(mx), sum = V4_ZERO();
        int j = 0;
        for (; j + 4 <= T; j += 4) {
            csasn__v4 r0 = V4_LOAD(s0 + j), r1 = V4_LOAD(s1 + j), r2 = V4_LOAD(s2 + j), r3 = V4_LOAD(s3 + j);
            V4_TRANSPOSE4(r0, r1, r2, r3);               /* r0 = column j of the 4 rows, ... */
            r0 = v4_exp(V4_SUB(r0, vmx));
            r1 = v4_exp(V4_SUB(r1, vmx));
            r2 = v4_exp(V4_SUB(r2, vmx));
            r3 = v4_exp(V4_SUB(r3, vmx));
            V4_STORE(Sp + 4 * (size_t)j, r0);
            V4_STORE(Sp + 4 * (size_t)j + 4, r1);
            V4_STORE(Sp + 4 * (size_t)j + 8, r2);
            V4_STORE(Sp + 4 * (size_t)j + 12, r3);
            sum = V4_ADD(V4_ADD(V4_ADD(V4_ADD(sum, r0), r1), r2), r3);
        }
        for (; j < T; j++) {
            float t[4] = {s0[j], s1[j], s2[j], s3[j]};
            csasn__v4 e = v4_exp(V4_SUB(V4_LOAD(t), vmx));
            V4_STORE(Sp + 4 * (size_t)j, e);
            sum = V4_ADD(sum, e);
        }
        V4_STORE(inv, V4_DIV(V4_SPLAT(1.0f), sum));
        /* O [4 x hd] = Sp^T V_h, then each row / its sum */
        float *o = a->out + (size_t)i0 * D + h * hd;
        for (int j0 = 0; j0 < hd; j0 += CSASN__NR)
            gemm_4x8__simd_packed(mr, imin(CSASN__NR, hd - j0), T, Sp,
                                         a->Vp + (size_t)(j0 / CSASN__NR) * ((size_t)T + 1) * CSASN__NR,
                                         o + j0, D, NULL, 0, CSASN__ACT_NONE);
        for (int r = 0; r < mr; r++) {
            float *orow = o + (size_t)r * D;
            csasn__v4 vi = V4_SPLAT(inv[r]);
            int d = 0;
            for (; d + 4 <= hd; d += 4) V4_STORE(orow + d, V4_MUL(V4_LOAD(orow + d), vi));
            for (; d < hd; d++) orow[d] *= inv[r];
        }
    }
}

void csasn__attention__simd(const float *qkv, int T, int D, int heads, float *out, float *scratch)
{
    assert(qkv && out && scratch && T >= 1 && heads >= 1 && D >= heads && D % heads == 0);
    int hd = D / heads;
    size_t ld = (size_t)3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    float *Kp = scratch;                                 /* K_h as B [hd x T], packed */
    float *Vp = Kp + csasn__pack_floats(hd, T);          /* V_h as B [T x hd], packed */
    float *S = Vp + csasn__pack_floats(T, hd);           /* [threads][2][4 x T] */
    for (int h = 0; h < heads; h++) {
        pack_k__simd(qkv + D + h * hd, T, hd, ld, scale, Kp);
        pack_v__simd(qkv + 2 * D + h * hd, T, hd, ld, Vp);
        attention_job a = {qkv, Kp, Vp, out, S, T, D, hd, h};
        csasn__parallel(attention_part__simd, &a, (double)T * T * hd >= 2e5 ? (T + CSASN__MR - 1) / CSASN__MR : 1);
    }
}

void csasn__attention(const float *qkv, int T, int D, int heads, float *out, float *scratch)
{
#ifdef CSASN_SCALAR
    csasn__attention__scalar(qkv, T, D, heads, out, scratch);
#else
    csasn__attention__simd(qkv, T, D, heads, out, scratch);
#endif
}
