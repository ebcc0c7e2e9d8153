/* selftest.c - the known-answer check an engine passes before it is used:
 * the vector kernels (GEMM both paths, depthwise 3x3 and 5x5, attention)
 * against their scalar references on fixed data with every tail size. The
 * relaxed-SIMD engine exists because its instructions are allowed to differ
 * between implementations (fused or not); a runtime that computes them wrongly
 * (some JIT tiers have) must fall back to the simd128 engine, not classify. */
#include "kernels.h"
#include "simd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Largest |a - b| / (1 + |b|): a sum of K products rounded once per step
 * (fused) or twice (mul, add) differs by a few ulp of the running sum; 1e-5
 * is ~100 ulp of values of order 1, far below a wrong lane or a wrong sign. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= worst)) worst = d;     /* NaN counts as the worst */
    }
    return worst;
}

static char msg[160];

static const char *verdict(const char *kernel, double d)
{
    if (d <= 1e-5) return NULL;
    snprintf(msg, sizeof msg, "%s: the %s kernel differs from its reference by %.3g (allowed 1e-5); "
             "this runtime computes its vector instructions wrongly", CSASN_SIMD_NAME, kernel, d);
    return msg;
}

#if defined(__clang__)
__attribute__((minsize, cold))   /* runs once per engine start: size over speed */
#endif
const char *csasn__selftest(void)
{
    enum { M = 7, N = 21, K = 37, H = 9, W = 7, C = 12, T = 11, D = 16 };
    size_t nbp = csasn__pack_floats(K, N);
    size_t nsc = (size_t)csasn__attention_scratch_floats(T, D, 2);
    size_t total = M * K + N * K + N + nbp + 2 * M * N + 3 * H * W * C + 25 * C + C + T * 3 * D + 2 * T * D + nsc;
    float *buf = malloc(total * sizeof(float));
    if (!buf) return "out of memory in the kernel self-test";
    float *A = buf, *Wt = A + M * K, *bias = Wt + N * K, *Bp = bias + N, *c1 = Bp + nbp, *c2 = c1 + M * N;
    float *img = c2 + M * N, *o1 = img + H * W * C, *o2 = o1 + H * W * C, *dw = o2 + H * W * C, *db = dw + 25 * C;
    float *qkv = db + C, *a1 = qkv + T * 3 * D, *a2 = a1 + T * D, *sc = a2 + T * D;
    /* Fixed pseudo-random values in [-1, 1): a linear congruential sequence. */
    uint32_t s = 12345;
    for (size_t i = 0; i < total; i++) {
        s = s * 1664525u + 1013904223u;
        buf[i] = (float)(s >> 8) / (float)(1 << 23) - 1.0f;
    }
    const char *err = NULL;
    csasn__pack_b(Wt, bias, N, K, Bp);
    for (int m = 1; m <= M && !err; m += 3) {      /* row tails 1, 4, 7; column tail 21 = 2*8 + 5 */
        csasn__gemm__simd(m, N, K, A, K, Bp, c1, N, NULL, 0, CSASN__ACT_NONE);
        csasn__gemm__scalar(m, N, K, A, K, Bp, c2, N, NULL, 0, CSASN__ACT_NONE);
        err = verdict("GEMM", rel_diff(c1, c2, (size_t)m * N));
    }
    for (int k = 3; k <= 5 && !err; k += 2) {
        csasn__dwconv__simd(img, H, W, C, k, 1, dw, db, o1, CSASN__ACT_NONE);
        csasn__dwconv__scalar(img, H, W, C, k, 1, dw, db, o2, CSASN__ACT_NONE);
        err = verdict("depthwise convolution", rel_diff(o1, o2, (size_t)H * W * C));
    }
    if (!err) {
        csasn__attention__simd(qkv, T, D, 2, a1, sc);
        csasn__attention__scalar(qkv, T, D, 2, a2, sc);
        err = verdict("attention", rel_diff(a1, a2, (size_t)T * D));
    }
    free(buf);
    return err;
}
