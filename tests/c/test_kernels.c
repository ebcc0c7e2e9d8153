/* test_kernels.c - every SIMD kernel against its scalar reference (and the
 * GEMM and im2col convolution against a naive double-precision loop), over
 * many shapes including every tail size.
 *
 * Tolerance: |simd - scalar| <= 1e-5 * (1 + |scalar|). Scalar and SIMD sum in
 * the same order for GEMM and depthwise (identical up to activations); the
 * remaining differences are the SIMD polynomial exp (~1e-7 relative) and erf
 * (3.5e-7 absolute) against libm, and the 4-lane partial sums of LayerNorm,
 * softmax and attention dot products (a few ulps of the sum). 1e-5 is ~100x
 * those and ~1e5x below what an indexing or tail bug produces (O(1)).
 * The activation functions alone are held to 1e-6 * (1 + |ref|).
 * Output protocol: `ok NAME` / `not ok NAME: why` (tests/run.py). */
#include "kernels.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static uint32_t rng = 12345u;

static float frand(void)   /* uniform in [-1, 1) */
{
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

static float *rbuf(size_t n, float scale)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

/* Max of |a-b| / (1 + |b|) over n values. */
static double cmp(const float *a, const float *b, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= e)) e = d;   /* NaN propagates as failure */
    }
    return e;
}

typedef struct { const char *name; double worst; int cases; char first_bad[200]; } result;

static void note(result *r, double err, double tol, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note(result *r, double err, double tol, const char *fmt, ...)
{
    r->cases++;
    if (err > r->worst || err != err) r->worst = err;
    if (!(err <= tol) && !r->first_bad[0]) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(r->first_bad, sizeof r->first_bad - 40, fmt, ap);
        va_end(ap);
        snprintf(r->first_bad + n, 40, " err %.3g", err);
    }
}

static void report(const result *r)
{
    if (r->first_bad[0]) {
        failures++;
        printf("not ok %s: %s (%d cases, worst %.3g)\n", r->name, r->first_bad, r->cases, r->worst);
    } else {
        printf("ok %s (%d cases, worst rel err %.2g)\n", r->name, r->cases, r->worst);
    }
}

#define TOL 1e-5
static const char *act_names[] = {"none", "relu", "relu6", "silu", "gelu", "sigmoid"};

/* ---------------------------------------------------------------- GEMM */

static void gemm_case(result *r, result *rn, int M, int N, int K, int act, int with_bias, int with_res)
{
    int lda = K + 3, ldc = N + 2;
    float *A = rbuf((size_t)M * lda, 2.0f), *W = rbuf((size_t)N * K, 1.0f), *bias = rbuf((size_t)N, 1.0f);
    float *R = rbuf((size_t)M * ldc, 1.0f);
    float *Bp = malloc(csasn__pack_floats(K, N) * sizeof(float));
    float *C1 = rbuf((size_t)M * ldc, 1.0f), *C2 = malloc((size_t)M * ldc * sizeof(float));
    memcpy(C2, C1, (size_t)M * ldc * sizeof(float));
    csasn__pack_b(W, with_bias ? bias : NULL, N, K, Bp);
    csasn__gemm__scalar(M, N, K, A, lda, Bp, C1, ldc, with_res ? R : NULL, ldc, act);
    csasn__gemm__simd(M, N, K, A, lda, Bp, C2, ldc, with_res ? R : NULL, ldc, act);
    /* the padding columns between rows must be untouched */
    note(r, cmp(C2, C1, (size_t)M * ldc), TOL, "M=%d N=%d K=%d act=%s bias=%d res=%d", M, N, K,
         act_names[act], with_bias, with_res);
    /* Naive double-precision reference on the unpacked weights. A float sum
     * of K products is off by at most ~K * 2^-24 * sum|terms| (the standard
     * bound); the error is reported as a multiple of that bound + 1e-6. */
    double e = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = with_bias ? bias[n] : 0.0, mag = fabs(s);
            for (int k = 0; k < K; k++) {
                double t = (double)A[(size_t)m * lda + k] * W[(size_t)n * K + k];
                s += t;
                mag += fabs(t);
            }
            double v = csasn__act1((float)s, act) + (with_res ? R[(size_t)m * ldc + n] : 0.0);
            double bound = (K + 2) * 6e-8 * (1.0 + mag + (with_res ? fabs(R[(size_t)m * ldc + n]) : 0.0)) + 1e-6;
            double d = fabs(v - C1[(size_t)m * ldc + n]) / bound;
            if (!(d <= e)) e = d;
        }
    note(rn, e, 1.0, "M=%d N=%d K=%d act=%s", M, N, K, act_names[act]);
    free(A); free(W); free(bias); free(R); free(Bp); free(C1); free(C2);
}

static void test_gemm(void)
{
    result r = {"gemm: simd == scalar, M 1..9 x N 1..17 x K 1..9, all activations, bias/residual", 0, 0, ""};
    result rn = {"gemm: scalar == naive double-precision loop on unpacked weights (error / float bound)", 0, 0, ""};
    for (int M = 1; M <= 9; M++)
        for (int N = 1; N <= 17; N++)
            for (int K = 1; K <= 9; K++) {
                int act = (M + N + K) % CSASN__ACT_COUNT;
                gemm_case(&r, &rn, M, N, K, act, (M + K) % 2, (N + K) % 3 == 0);
            }
    for (int act = 0; act < CSASN__ACT_COUNT; act++) gemm_case(&r, &rn, 5, 11, 7, act, 1, 1);
    /* model shapes: ViT qkv / fc1 / fc2, a late 1x1 conv, a vector-matrix product */
    int big[][3] = {{197, 576, 192}, {197, 768, 192}, {197, 192, 768}, {49, 1280, 320}, {1, 256, 1024}, {13, 33, 100}};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        gemm_case(&r, &rn, big[i][0], big[i][1], big[i][2], (int)i % CSASN__ACT_COUNT, 1, (int)i % 2);
    /* Both SIMD paths with row and column tails, every activation, with and
     * without residual: A packed per 4-row strip (K <= 2048 and >= 16
     * columns: 61 x 200, 45 x 800, 67 x 30, 70 x 2048) and A read in place
     * (13 columns; K = 2100 > 2048, its columns in blocks of <= 24 KiB of B:
     * one panel each, 9 blocks) */
    for (int act = 0; act < CSASN__ACT_COUNT; act++)
        for (int res = 0; res < 2; res++) {
            gemm_case(&r, &rn, 7, 61, 200, act, 1, res);
            gemm_case(&r, &rn, 10, 45, 800, act, res, res);
            gemm_case(&r, &rn, 6, 67, 30, act, 1, res);
            gemm_case(&r, &rn, 5, 70, 2048, act, res, 1);
            gemm_case(&r, &rn, 7, 13, 300, act, 1, res);
            gemm_case(&r, &rn, 9, 70, 2100, act, 1, res);
        }
    report(&r);
    report(&rn);
}

/* ------------------------------------------------------------ depthwise */

static void test_dwconv(void)
{
    result r = {"depthwise: simd == scalar, C 1..17 (+ 32, 96), k 1/3/5/7, stride 1/2, H,W 1..9", 0, 0, ""};
    int Cs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 32, 96};
    int ks[] = {1, 3, 5, 7};
    int i = 0;
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
        for (size_t ki = 0; ki < 4; ki++)
            for (int s = 1; s <= 2; s++)
                for (int H = 1; H <= 9; H += 1 + (H > 3)) {
                    int W = 1 + (H * 3 + (int)ci) % 9, C = Cs[ci], k = ks[ki], act = i++ % CSASN__ACT_COUNT;
                    int p = (k - 1) / 2, Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
                    float *in = rbuf((size_t)H * W * C, 2.0f), *w = rbuf((size_t)k * k * C, 1.0f), *b = rbuf((size_t)C, 1.0f);
                    float *o1 = malloc((size_t)Ho * Wo * C * sizeof(float)), *o2 = malloc((size_t)Ho * Wo * C * sizeof(float));
                    csasn__dwconv__scalar(in, H, W, C, k, s, w, b, o1, act);
                    csasn__dwconv__simd(in, H, W, C, k, s, w, b, o2, act);
                    note(&r, cmp(o2, o1, (size_t)Ho * Wo * C), TOL, "C=%d k=%d s=%d H=%d W=%d act=%s", C, k, s, H, W, act_names[act]);
                    free(in); free(w); free(b); free(o1); free(o2);
                }
    report(&r);

    /* the scalar depthwise against a naive loop in PyTorch's NCHW indexing */
    result rn = {"depthwise: scalar == naive NCHW convolution (k 3/5, stride 1/2, 'same' padding)", 0, 0, ""};
    for (int k = 3; k <= 5; k += 2)
        for (int s = 1; s <= 2; s++) {
            int H = 11, W = 8, C = 5, p = (k - 1) / 2, Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
            float *in = rbuf((size_t)H * W * C, 1.0f), *wt = rbuf((size_t)C * k * k, 1.0f), *b = rbuf((size_t)C, 1.0f);
            float *w = malloc((size_t)k * k * C * sizeof(float)), *o = malloc((size_t)Ho * Wo * C * sizeof(float));
            for (int c = 0; c < C; c++)      /* [C][k][k] -> [k*k][C] */
                for (int t = 0; t < k * k; t++) w[t * C + c] = wt[c * k * k + t];
            csasn__dwconv__scalar(in, H, W, C, k, s, w, b, o, CSASN__ACT_NONE);
            double e = 0;
            for (int c = 0; c < C; c++)
                for (int oy = 0; oy < Ho; oy++)
                    for (int ox = 0; ox < Wo; ox++) {
                        double acc = b[c];
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                    acc += (double)in[(iy * W + ix) * C + c] * wt[(c * k + ky) * k + kx];
                            }
                        double d = fabs(acc - o[(oy * Wo + ox) * C + c]) / (1 + fabs(acc));
                        if (!(d <= e)) e = d;
                    }
            note(&rn, e, TOL, "k=%d s=%d", k, s);
            free(in); free(wt); free(b); free(w); free(o);
        }
    report(&rn);
}

/* ------------------------------------------------- im2col convolution */

static void test_im2col(void)
{
    result r = {"im2col + gemm == naive convolution (3x3 s2 p1, 16x16 s16, 7x7 p3, 3x3 p1, 1x1)", 0, 0, ""};
    int cases[][6] = {   /* H, W, Cin, Cout, k, stride; pad = (k-1)/2 except k = stride */
        {17, 16, 3, 5, 3, 2}, {32, 48, 3, 9, 16, 16}, {7, 7, 2, 1, 7, 1}, {6, 5, 13, 11, 3, 1}, {4, 3, 6, 10, 1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int H = cases[i][0], W = cases[i][1], Ci = cases[i][2], Co = cases[i][3], k = cases[i][4], s = cases[i][5];
        int pad = k == s && k > 1 ? 0 : (k - 1) / 2;
        int Ho = (H + 2 * pad - k) / s + 1, Wo = (W + 2 * pad - k) / s + 1, K = k * k * Ci;
        float *in = rbuf((size_t)H * W * Ci, 1.0f), *wt = rbuf((size_t)Co * Ci * k * k, 1.0f), *b = rbuf((size_t)Co, 1.0f);
        float *rows = malloc((size_t)Co * K * sizeof(float)), *Bp = malloc(csasn__pack_floats(K, Co) * sizeof(float));
        float *col = malloc((size_t)Ho * Wo * K * sizeof(float)), *o = malloc((size_t)Ho * Wo * Co * sizeof(float));
        for (int oc = 0; oc < Co; oc++)   /* PyTorch [Co][Ci][k][k] -> [Co][(ky*k+kx)*Ci + c] */
            for (int c = 0; c < Ci; c++)
                for (int t = 0; t < k * k; t++) rows[(size_t)oc * K + t * Ci + c] = wt[((size_t)oc * Ci + c) * k * k + t];
        csasn__pack_b(rows, b, Co, K, Bp);
        csasn__im2col(in, H, W, Ci, k, s, pad, col, Ho, Wo);
        csasn__gemm__simd(Ho * Wo, Co, K, col, K, Bp, o, Co, NULL, 0, CSASN__ACT_NONE);
        double e = 0;
        for (int oc = 0; oc < Co; oc++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    double acc = b[oc];
                    for (int c = 0; c < Ci; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s - pad + ky, ix = ox * s - pad + kx;
                                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                    acc += (double)in[((size_t)iy * W + ix) * Ci + c] * wt[(((size_t)oc * Ci + c) * k + ky) * k + kx];
                            }
                    double d = fabs(acc - o[((size_t)oy * Wo + ox) * Co + oc]) / (1 + fabs(acc));
                    if (!(d <= e)) e = d;
                }
        note(&r, e, TOL, "H=%d W=%d Cin=%d Cout=%d k=%d s=%d", H, W, Ci, Co, k, s);
        free(in); free(wt); free(b); free(rows); free(Bp); free(col); free(o);
    }
    report(&r);
}

/* ----------------------------------------------------------- activations */

static void test_act(void)
{
    for (int act = 1; act < CSASN__ACT_COUNT; act++) {
        char name[120];
        snprintf(name, sizeof name, "activation %s: simd == libm reference on [-30, 30] (+ lengths 1..17)", act_names[act]);
        result r = {name, 0, 0, ""};
        int n = 600001;
        float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
        for (int i = 0; i < n; i++) x[i] = -30.0f + 60.0f * (float)i / (float)(n - 1);
        memcpy(y, x, (size_t)n * sizeof(float));
        csasn__act__simd(y, n, act);
        float *ref = malloc((size_t)n * sizeof(float));
        for (int i = 0; i < n; i++) ref[i] = csasn__act1(x[i], act);
        note(&r, cmp(y, ref, (size_t)n), 1e-6, "dense range");
        for (int len = 1; len <= 17; len++) {
            float *a = rbuf((size_t)len, 8.0f), *b = malloc((size_t)len * sizeof(float));
            memcpy(b, a, (size_t)len * sizeof(float));
            csasn__act__simd(a, len, act);
            csasn__act__scalar(b, len, act);
            note(&r, cmp(a, b, (size_t)len), 1e-6, "len=%d", len);
            free(a); free(b);
        }
        /* extremes must stay finite and saturate correctly */
        float ext[4] = {-1e30f, -100.0f, 100.0f, 1e30f}, e2[4];
        memcpy(e2, ext, sizeof ext);
        csasn__act__simd(e2, 4, act);
        for (int i = 0; i < 4; i++) ext[i] = csasn__act1(ext[i], act);
        note(&r, cmp(e2, ext, 4), 1e-6, "extremes +-100, +-1e30");
        report(&r);
        free(x); free(y); free(ref);
    }
}

/* --------------------------------------------- layernorm, softmax, pools */

static void test_misc(void)
{
    result r = {"layernorm: simd == scalar, D 1..17, 64, 192, 256, row strides > D", 0, 0, ""};
    int Ds[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 64, 192, 256};
    for (size_t i = 0; i < sizeof Ds / sizeof Ds[0]; i++)
        for (int rows = 1; rows <= 3; rows++) {
            int D = Ds[i], ld = D + 5;
            float *x = rbuf((size_t)rows * ld, 3.0f), *g = rbuf((size_t)D, 1.0f), *b = rbuf((size_t)D, 1.0f);
            for (size_t j = 0; j < (size_t)rows * ld; j++) x[j] += 2.0f;   /* non-zero mean */
            float *y1 = rbuf((size_t)rows * ld, 1.0f), *y2 = malloc((size_t)rows * ld * sizeof(float));
            memcpy(y2, y1, (size_t)rows * ld * sizeof(float));
            csasn__layernorm__scalar(x, rows, D, ld, g, b, 1e-6f, y1, ld);
            csasn__layernorm__simd(x, rows, D, ld, g, b, 1e-6f, y2, ld);
            note(&r, cmp(y2, y1, (size_t)rows * ld), TOL, "D=%d rows=%d", D, rows);
            free(x); free(g); free(b); free(y1); free(y2);
        }
    report(&r);

    result rs = {"softmax: simd == scalar, n 1..17, 197, 1000; sums to 1", 0, 0, ""};
    int ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 197, 1000};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        int n = ns[i];
        float *a = rbuf((size_t)n, 20.0f), *b = malloc((size_t)n * sizeof(float));
        memcpy(b, a, (size_t)n * sizeof(float));
        csasn__softmax__scalar(a, n);
        csasn__softmax__simd(b, n);
        note(&rs, cmp(b, a, (size_t)n), TOL, "n=%d", n);
        double s = 0;
        for (int j = 0; j < n; j++) s += b[j];
        note(&rs, fabs(s - 1.0), TOL, "n=%d sum", n);
        free(a); free(b);
    }
    report(&rs);

    result ra = {"attention: simd == scalar, T 1..9 + 50 + 197, heads 1..3, head dim 1..9 + 64", 0, 0, ""};
    int Ts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 50, 197};
    int hds[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 64};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
            for (int heads = 1; heads <= 3; heads++) {
                int T = Ts[ti], hd = hds[hi], D = hd * heads;
                if (T > 9 && hd < 64 && hd != 5) continue;   /* keep the large cases few */
                float *qkv = rbuf((size_t)T * 3 * D, 2.0f), *o1 = malloc((size_t)T * D * sizeof(float));
                float *o2 = malloc((size_t)T * D * sizeof(float)), *sc = malloc(csasn__attention_scratch_floats(T, D, heads) * sizeof(float));
                csasn__attention__scalar(qkv, T, D, heads, o1, sc);
                csasn__attention__simd(qkv, T, D, heads, o2, sc);
                note(&ra, cmp(o2, o1, (size_t)T * D), TOL, "T=%d heads=%d hd=%d", T, heads, hd);
                free(qkv); free(o1); free(o2); free(sc);
            }
    report(&ra);

    result rp = {"pool (avg+max) and channel scale: simd == scalar, HW 1..9, C 1..17", 0, 0, ""};
    for (int HW = 1; HW <= 9; HW++)
        for (int C = 1; C <= 17; C++) {
            float *x = rbuf((size_t)HW * C, 3.0f), *s = rbuf((size_t)C, 1.0f);
            float a1[17], a2[17], m1[17], m2[17];
            csasn__pool__scalar(x, HW, C, a1, m1);
            csasn__pool__simd(x, HW, C, a2, m2);
            note(&rp, cmp(a2, a1, (size_t)C), TOL, "avg HW=%d C=%d", HW, C);
            note(&rp, cmp(m2, m1, (size_t)C), 0.0, "max HW=%d C=%d", HW, C);
            float *y = malloc((size_t)HW * C * sizeof(float));
            memcpy(y, x, (size_t)HW * C * sizeof(float));
            csasn__scale__scalar(x, HW, C, s);
            csasn__scale__simd(y, HW, C, s);
            note(&rp, cmp(y, x, (size_t)HW * C), 0.0, "scale HW=%d C=%d", HW, C);
            free(x); free(s); free(y);
        }
    report(&rp);
}

/* ------------------------------------------------------------- threads */

/* The threaded kernels must give bit-identical outputs for any thread count
 * (the wasm build picks 1 or 2 threads by what the page allows): the work is
 * split by output, never inside a sum. Shapes big enough to be split (the
 * kernels run small problems on one thread), with column/row tails and
 * uneven splits, every activation. Compared with memcmp: tolerance 0. */
static void test_threads(void)
{
    result r = {"threads: gemm, depthwise, attention with 2 and 3 threads == 1 thread, bit for bit", 0, 0, ""};
    csasn__set_threads(2);
    int have = csasn__threads();
    csasn__set_threads(1);
    int gs[][3] = {{197, 576, 192}, {197, 61, 800}, {3136, 21, 24}, {45, 1283, 64}, {20, 70, 2100}};
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
        for (int act = 0; act < CSASN__ACT_COUNT; act++) {
            int M = gs[i][0], N = gs[i][1], K = gs[i][2], res = act % 2;
            float *A = rbuf((size_t)M * K, 1.0f), *W = rbuf((size_t)N * K, 0.2f), *b = rbuf((size_t)N, 1.0f);
            float *R = rbuf((size_t)M * N, 1.0f), *Bp = malloc(csasn__pack_floats(K, N) * sizeof(float));
            float *o[3];
            csasn__pack_b(W, b, N, K, Bp);
            for (int t = 0; t < 3; t++) {
                o[t] = malloc((size_t)M * N * sizeof(float));
                csasn__set_threads(t + 1);
                csasn__gemm__simd(M, N, K, A, K, Bp, o[t], N, res ? R : NULL, N, act);
            }
            csasn__set_threads(1);
            for (int t = 1; t < 3; t++)
                note(&r, memcmp(o[0], o[t], (size_t)M * N * sizeof(float)) ? 1.0 : 0.0, 0.0,
                     "gemm %dx%dx%d act=%s threads=%d", M, N, K, act_names[act], t + 1);
            free(A); free(W); free(b); free(R); free(Bp); free(o[0]); free(o[1]); free(o[2]);
        }
    int ds[][5] = {{112, 112, 32, 3, 1}, {57, 31, 21, 5, 2}, {14, 14, 672, 5, 1}};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        int H = ds[i][0], W = ds[i][1], C = ds[i][2], k = ds[i][3], s = ds[i][4], act = CSASN__ACT_SILU;
        int p = (k - 1) / 2, Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
        float *in = rbuf((size_t)H * W * C, 2.0f), *w = rbuf((size_t)k * k * C, 1.0f), *b = rbuf((size_t)C, 1.0f);
        float *o[3];
        for (int t = 0; t < 3; t++) {
            o[t] = malloc((size_t)Ho * Wo * C * sizeof(float));
            csasn__set_threads(t + 1);
            csasn__dwconv__simd(in, H, W, C, k, s, w, b, o[t], act);
        }
        csasn__set_threads(1);
        for (int t = 1; t < 3; t++)
            note(&r, memcmp(o[0], o[t], (size_t)Ho * Wo * C * sizeof(float)) ? 1.0 : 0.0, 0.0,
                 "dwconv %dx%dx%d k=%d s=%d threads=%d", H, W, C, k, s, t + 1);
        free(in); free(w); free(b); free(o[0]); free(o[1]); free(o[2]);
    }
    int as[][3] = {{197, 192, 3}, {50, 15, 3}, {65, 64, 1}};
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
        int T = as[i][0], D = as[i][1], heads = as[i][2];
        float *qkv = rbuf((size_t)T * 3 * D, 2.0f), *sc = malloc(csasn__attention_scratch_floats(T, D, heads) * sizeof(float));
        float *o[3];
        for (int t = 0; t < 3; t++) {
            o[t] = malloc((size_t)T * D * sizeof(float));
            csasn__set_threads(t + 1);
            csasn__attention__simd(qkv, T, D, heads, o[t], sc);
        }
        csasn__set_threads(1);
        for (int t = 1; t < 3; t++)
            note(&r, memcmp(o[0], o[t], (size_t)T * D * sizeof(float)) ? 1.0 : 0.0, 0.0,
                 "attention T=%d D=%d heads=%d threads=%d", T, D, heads, t + 1);
        free(qkv); free(sc); free(o[0]); free(o[1]); free(o[2]);
    }
    printf("# threads available: %s\n", have >= 2 ? "yes" : "no (built without CSASN_THREADS: 1 thread each)");
    report(&r);
}

int main(void)
{
    printf("# vector ISA: %s\n", csasn__simd_name());
    test_gemm();
    test_dwconv();
    test_im2col();
    test_act();
    test_misc();
    test_threads();
    /* the JIT warm-up (called by the page's worker) runs every kernel on its
     * own scratch: it must succeed, and under ASan stay inside it */
    result rw = {"warm-up runs every kernel on its scratch without error", 0, 0, ""};
    note(&rw, csasn__warmup(2) == 0 ? 0.0 : 1.0, 0.0, "csasn__warmup failed");
    report(&rw);
    return failures ? 1 : 0;
}
