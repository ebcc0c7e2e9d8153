/* kernel_bench.c - GFLOP/s of the engine's own kernels (src/kernels/) on the
 * shapes that dominate csasn-b0-ti, for `make bench`.
 *
 * Built twice by the Makefile's bench rule: with emcc -O3 -msimd128 (run in
 * node by tools/bench.cjs: GFLOP/s per kernel in wasm) and natively, both
 * linking only src/kernels/, so what is timed is exactly what the model calls:
 *   - csasn__gemm on the ViT linear layers, weights packed by csasn__pack_b as
 *     the loader does, bias added and (fc1) GELU fused, as in the forward pass;
 *   - csasn__dwconv with SiLU fused on the EfficientNet-B0 depthwise shapes;
 *   - csasn__attention (softmax fused) on ViT-Tiny's 197 tokens.
 * FLOPs count one multiply and one add per MAC (2*M*N*K, 2*Ho*Wo*C*k*k); bias
 * and activation work is not counted, so the figures are conservative.
 *
 * Each case is warmed up for ~0.3 s first: V8 runs wasm in its baseline tier
 * until a function is hot, and timing the first calls
 * measures the compiler, not the kernel. Then the best of 7 batches, each long
 * enough (~50 ms) for the clock; best-of because the machine is shared and
 * interference only ever adds time.
 *
 * Output: one JSON line {"simd": ..., "gemm": [...], "dwconv": [...], "attention": [...]}.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
static double now_ms(void) { return emscripten_get_now(); }
#else
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
#endif

static float *rand_buf(size_t n, unsigned *seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "kernel_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = ((*seed >> 8) / 16777216.0f) - 0.5f;
    }
    return p;
}

typedef struct { int M, N, K, act; const char *what; } gemm_case;
typedef struct { int H, W, C, k, s; const char *what; } dw_case;

/* Times f(ctx) repeatedly; returns the best ms per call. */
typedef void (*fn)(void *);
static double best_ms(fn f, void *ctx)
{
    double t0 = now_ms();
    int calls = 0;
    while (now_ms() - t0 < 300.0) {       /* warm-up: let the optimising tier kick in */
        f(ctx);
        calls++;
    }
    double per = 300.0 / calls;
    int reps = (int)(50.0 / per) + 1;      /* ~50 ms per timed batch */
    double best = 1e30;
    for (int b = 0; b < 7; b++) {
        double s = now_ms();
        for (int r = 0; r < reps; r++)
            f(ctx);
        double ms = (now_ms() - s) / reps;
        if (ms < best)
            best = ms;
    }
    return best;
}

typedef struct { const gemm_case *c; const float *A, *Bp; float *C; } gemm_ctx;
static void run_gemm(void *p)
{
    gemm_ctx *g = p;
    csasn__gemm(g->c->M, g->c->N, g->c->K, g->A, g->c->K, g->Bp, g->C, g->c->N, NULL, 0, g->c->act);
}

typedef struct { int T, D, heads; const float *qkv; float *out, *scratch; } attn_ctx;
static void run_attn(void *p)
{
    attn_ctx *a = p;
    csasn__attention(a->qkv, a->T, a->D, a->heads, a->out, a->scratch);
}

typedef struct { const dw_case *c; const float *in, *w, *bias; float *out; } dw_ctx;
static void run_dw(void *p)
{
    dw_ctx *d = p;
    csasn__dwconv(d->in, d->c->H, d->c->W, d->c->C, d->c->k, d->c->s, d->w, d->bias, d->out,
                  CSASN__ACT_SILU);
}

int main(void)
{
    /* M = 197 tokens (196 patches + class token) of ViT-Tiny, D = 192, MLP 768. */
    static const gemm_case gc[] = {
        {197, 576, 192, CSASN__ACT_NONE, "vit qkv 197x192x576"},
        {197, 768, 192, CSASN__ACT_GELU, "vit fc1 197x192x768 (+GELU)"},
        {197, 192, 768, CSASN__ACT_NONE, "vit fc2 197x768x192"},
    };
    /* EfficientNet-B0 depthwise layers at 224 px: input map H x W x C, kernel, stride. */
    static const dw_case dc[] = {
        {112, 112, 32, 3, 1, "b0 block1 112x112x32 k3 s1"},
        {112, 112, 96, 3, 2, "b0 block2 112x112x96 k3 s2"},
        {56, 56, 144, 3, 1, "b0 block3 56x56x144 k3 s1"},
        {56, 56, 144, 5, 2, "b0 block4 56x56x144 k5 s2"},
        {28, 28, 240, 5, 1, "b0 block5 28x28x240 k5 s1"},
        {14, 14, 480, 3, 1, "b0 block7 14x14x480 k3 s1"},
        {14, 14, 672, 5, 1, "b0 block11 14x14x672 k5 s1"},
        {7, 7, 1152, 5, 1, "b0 block13 7x7x1152 k5 s1"},
    };
    unsigned seed = 12345;
    printf("{\"simd\": \"%s\", \"gemm\": [", csasn__simd_name());
    for (size_t i = 0; i < sizeof gc / sizeof gc[0]; i++) {
        const gemm_case *c = &gc[i];
        float *A = rand_buf((size_t)c->M * c->K, &seed);
        float *W = rand_buf((size_t)c->N * c->K, &seed);
        float *bias = rand_buf((size_t)c->N, &seed);
        float *Bp = malloc(csasn__pack_floats(c->K, c->N) * sizeof(float));
        float *C = malloc((size_t)c->M * c->N * sizeof(float));
        if (!Bp || !C) {
            fprintf(stderr, "kernel_bench: out of memory\n");
            return 1;
        }
        csasn__pack_b(W, bias, c->N, c->K, Bp);
        gemm_ctx g = {c, A, Bp, C};
        double ms = best_ms(run_gemm, &g);
        double gf = 2.0 * c->M * c->N * c->K / (ms * 1e6);
        printf("%s{\"case\": \"%s\", \"M\": %d, \"K\": %d, \"N\": %d, \"ms\": %.5f, \"gflops\": %.2f}",
               i ? ", " : "", c->what, c->M, c->K, c->N, ms, gf);
        fflush(stdout);
        free(A); free(W); free(bias); free(Bp); free(C);
    }
    printf("], \"dwconv\": [");
    for (size_t i = 0; i < sizeof dc / sizeof dc[0]; i++) {
        const dw_case *c = &dc[i];
        int p = (c->k - 1) / 2;
        int Ho = (c->H + 2 * p - c->k) / c->s + 1, Wo = (c->W + 2 * p - c->k) / c->s + 1;
        float *in = rand_buf((size_t)c->H * c->W * c->C, &seed);
        float *w = rand_buf((size_t)c->k * c->k * c->C, &seed);
        float *bias = rand_buf((size_t)c->C, &seed);
        float *out = malloc((size_t)Ho * Wo * c->C * sizeof(float));
        if (!out) {
            fprintf(stderr, "kernel_bench: out of memory\n");
            return 1;
        }
        dw_ctx d = {c, in, w, bias, out};
        double ms = best_ms(run_dw, &d);
        double gf = 2.0 * Ho * Wo * c->C * c->k * c->k / (ms * 1e6);
        printf("%s{\"case\": \"%s\", \"H\": %d, \"W\": %d, \"C\": %d, \"k\": %d, \"stride\": %d, "
               "\"ms\": %.5f, \"gflops\": %.2f}",
               i ? ", " : "", c->what, c->H, c->W, c->C, c->k, c->s, ms, gf);
        fflush(stdout);
        free(in); free(w); free(bias); free(out);
    }
    /* ViT-Tiny attention: T = 197, D = 192, 3 heads; QK^T and AV are 2*T*T*D FLOPs each
     * (softmax not counted). */
    {
        int T = 197, D = 192, heads = 3;
        float *qkv = rand_buf((size_t)T * 3 * D, &seed);
        float *out = malloc((size_t)T * D * sizeof(float));
        float *scratch = malloc((size_t)csasn__attention_scratch_floats(T, D, heads) * sizeof(float));
        if (!out || !scratch) {
            fprintf(stderr, "kernel_bench: out of memory\n");
            return 1;
        }
        attn_ctx a = {T, D, heads, qkv, out, scratch};
        double ms = best_ms(run_attn, &a);
        double gf = 4.0 * T * T * D / (ms * 1e6);
        printf("], \"attention\": [{\"case\": \"vit attention T197 D192 h3\", \"T\": %d, \"D\": %d, "
               "\"heads\": %d, \"ms\": %.5f, \"gflops\": %.2f}", T, D, heads, ms, gf);
        free(qkv); free(out); free(scratch);
    }
    printf("]}\n");
    return 0;
}
