/* kernels.c - compute kernels: scalar references and SIMD versions (simd.h).
 * Names follow XNNPACK: csasn__<op>[_<tile>]__<isa>. */
#include "kernels.h"
#include "simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *csasn__simd_name(void) { return CSASN_SIMD_NAME; }

/* The vector helpers must be inlined into the loops that use them, so that
 * their constants are hoisted out of those loops (GCC otherwise calls them
 * once per vector and re-materialises every constant). */
#if defined(__GNUC__) || defined(__clang__)
#define VINLINE static inline __attribute__((always_inline))
#else
#define VINLINE static inline
#endif

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* ------------------------------------------------------------ threads */

/* A minimal fork-join pool for the threaded wasm build (emcc -pthread,
 * used when the page is cross-origin isolated) and, natively, for tests and
 * benchmarks that ask for it with csasn__set_threads. Work is split by output
 * columns (GEMM), output rows (depthwise) or query blocks (attention): every
 * output is computed by exactly the same instructions as with one thread, so
 * results are bit-identical whatever the thread count.
 *
 * Helpers are started lazily on the first parallel call, spin briefly
 * between jobs (a forward pass is ~150 back-to-back parallel calls) and then
 * sleep on a condition variable. A helper that has not started running yet
 * (a pthread in the browser starts in a Worker of emscripten's pool) is not
 * waited for: until every helper has checked in, calls run on one thread. */
#ifdef CSASN_THREADS
#include <pthread.h>
#include <stdatomic.h>
typedef void (*task_fn)(void *ctx, int part, int nparts);
static struct {
    pthread_mutex_t mu;
    pthread_cond_t go, fin;
    atomic_uint gen;            /* bumped once per job */
    atomic_int pending;         /* helpers still inside the current job */
    atomic_int alive;           /* helpers that have started running */
    int started;                /* helpers created (caller's thread only) */
    int want;                   /* threads to use, 1..CSASN__MAX_THREADS */
    task_fn fn;
    void *ctx;
    int nparts;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, CSASN_THREADS, NULL, NULL, 1};

static void *helper_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned seen = atomic_load_explicit(&pool.gen, memory_order_acquire);
    atomic_fetch_add(&pool.alive, 1);
    for (;;) {
        for (int spin = 0; spin < 20000 && atomic_load_explicit(&pool.gen, memory_order_acquire) == seen; spin++)
            ;
        if (atomic_load_explicit(&pool.gen, memory_order_acquire) == seen) {
            pthread_mutex_lock(&pool.mu);
            while (atomic_load_explicit(&pool.gen, memory_order_acquire) == seen) pthread_cond_wait(&pool.go, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        seen = atomic_load_explicit(&pool.gen, memory_order_acquire);
        if (id < pool.nparts) pool.fn(pool.ctx, id, pool.nparts);
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
            /* the last one out wakes the caller if it went to sleep (under
             * mu: the caller re-checks pending under mu before waiting) */
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.fin);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    return NULL;
}

void csasn__set_threads(int n)
{
    pool.want = n < 1 ? 1 : n > CSASN__MAX_THREADS ? CSASN__MAX_THREADS : n;
}

int csasn__threads(void) { return pool.want; }

/* Runs fn(ctx, part, n) for part = 0..n-1, n = min(parts, threads), part 0
 * on the calling thread. Returns n (1: fn(ctx, 0, 1) ran alone). */
static int run_parallel(task_fn fn, void *ctx, int parts)
{
    int n = parts < pool.want ? parts : pool.want;
    while (pool.started < n - 1) {
        pthread_t t;
        if (pthread_create(&t, NULL, helper_main, (void *)(intptr_t)(pool.started + 1))) break;
        pthread_detach(t);
        pool.started++;
    }
    if (n > pool.started + 1) n = pool.started + 1;
    if (n < 2 || atomic_load(&pool.alive) < pool.started) {
        fn(ctx, 0, 1);
        return 1;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.nparts = n;
    atomic_store_explicit(&pool.pending, pool.started, memory_order_relaxed);
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    fn(ctx, 0, n);
    /* the parts are even, so the helpers are usually done or nearly: spin a
     * little, then sleep (on a loaded machine a spinning caller would take
     * the core a descheduled helper needs) */
    for (int spin = 0; spin < 2000 && atomic_load_explicit(&pool.pending, memory_order_acquire); spin++)
        ;
    if (atomic_load_explicit(&pool.pending, memory_order_acquire)) {
        pthread_mutex_lock(&pool.mu);
        while (atomic_load_explicit(&pool.pending, memory_order_acquire)) pthread_cond_wait(&pool.fin, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
    }
    return n;
}
#else
void csasn__set_threads(int n) { (void)n; }   /* built without threads: always 1 */
int csasn__threads(void) { return 1; }
typedef void (*task_fn)(void *ctx, int part, int nparts);
static int run_parallel(task_fn fn, void *ctx, int parts)
{
    (void)parts;
    fn(ctx, 0, 1);
    return 1;
}
#endif

/* ------------------------------------------------------------ activations */

float csasn__act1(float x, int act)
{
    switch (act) {
    case CSASN__ACT_RELU:    return x > 0.0f ? x : 0.0f;
    case CSASN__ACT_RELU6:   return x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f;
    case CSASN__ACT_SILU:    return x / (1.0f + expf(-x));
    case CSASN__ACT_GELU:    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case CSASN__ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    default:                 return x;
    }
}

/* exp(x) for a vector. Range reduction x = n ln2 + r, |r| <= ln2/2, with n
 * rounded by the 1.5*2^23 trick (SSE2 has no floor), e^r by a degree-5
 * polynomial 1 + r + c2 r^2 + ... + c5 r^5 fitted here for minimum relative
 * error on [-ln2/2, ln2/2] (1.0e-7 in exact arithmetic, 1.7e-7 evaluated in
 * float: about one ulp), 2^n added straight into the exponent bits. x is
 * clamped to [-86, 88] so that 2^n * e^r stays a normal float: e^-86 = 4e-38
 * is zero for every use here (sigmoid, SiLU, softmax), e^88 = 1.7e38 < FLT_MAX. */
VINLINE csasn__v4 v4_exp(csasn__v4 x)
{
    const csasn__v4 magic = V4_SPLAT(12582912.0f);
    x = V4_MIN(V4_MAX(x, V4_SPLAT(-86.0f)), V4_SPLAT(88.0f));
    csasn__v4 t = V4_ADD(V4_MUL(x, V4_SPLAT(1.44269504088896341f)), magic);
    csasn__v4 n = V4_SUB(t, magic);
    /* ln2 split in two (Cody-Waite): n*0.693359375 is exact for |n| < 2^15. */
    csasn__v4 r = V4_SUB(x, V4_MUL(n, V4_SPLAT(0.693359375f)));
    r = V4_ADD(r, V4_MUL(n, V4_SPLAT(2.12194440e-4f)));
    csasn__v4 p = V4_SPLAT(8.312505697e-03f);
    p = V4_ADD(V4_MUL(p, r), V4_SPLAT(4.189009477e-02f));
    p = V4_ADD(V4_MUL(p, r), V4_SPLAT(1.666711457e-01f));
    p = V4_ADD(V4_MUL(p, r), V4_SPLAT(4.999923192e-01f));
    p = V4_ADD(V4_MUL(p, r), V4_SPLAT(1.0f));
    p = V4_ADD(V4_MUL(p, r), V4_SPLAT(1.0f));
    /* bits(t) = bits(1.5*2^23) + n: subtract, shift into the exponent field. */
    csasn__v4i e = V4I_SHL(V4I_ADD(V4_AS_I(t), V4I_SPLAT(-0x4B400000)), 23);
    return V4I_AS_F(V4I_ADD(V4_AS_I(p), e));
}

/* erf(x) = x P(x^2) / Q(x^2) on |x| <= 3.92 (beyond, erf rounds to +-1 in
 * float). Coefficients fitted here by iterated least squares on a 40000-point
 * grid (float64 error 1.4e-9); evaluated in float the max abs error is
 * 3.5e-7 over [-4.5, 4.5], i.e. a few ulps of 1. wasm has no erf instruction
 * and libm's erff is scalar, hence this. */
VINLINE csasn__v4 v4_erf(csasn__v4 x)
{
    x = V4_MIN(V4_MAX(x, V4_SPLAT(-3.92f)), V4_SPLAT(3.92f));
    csasn__v4 t = V4_MUL(x, x);
    csasn__v4 p = V4_SPLAT(-1.333605670e-08f);
    p = V4_ADD(V4_MUL(p, t), V4_SPLAT(4.717835964e-06f));
    p = V4_ADD(V4_MUL(p, t), V4_SPLAT(3.803716099e-04f));
    p = V4_ADD(V4_MUL(p, t), V4_SPLAT(3.832339542e-03f));
    p = V4_ADD(V4_MUL(p, t), V4_SPLAT(5.427823216e-02f));
    p = V4_ADD(V4_MUL(p, t), V4_SPLAT(1.847001165e-01f));
    p = V4_ADD(V4_MUL(p, t), V4_SPLAT(1.128379226e+00f));
    csasn__v4 q = V4_SPLAT(6.341934204e-05f);
    q = V4_ADD(V4_MUL(q, t), V4_SPLAT(1.305021578e-03f));
    q = V4_ADD(V4_MUL(q, t), V4_SPLAT(1.543086860e-02f));
    q = V4_ADD(V4_MUL(q, t), V4_SPLAT(1.137751713e-01f));
    q = V4_ADD(V4_MUL(q, t), V4_SPLAT(4.970197380e-01f));
    q = V4_ADD(V4_MUL(q, t), V4_SPLAT(1.0f));
    return V4_DIV(V4_MUL(x, p), q);
}

VINLINE csasn__v4 v4_act(csasn__v4 x, int act)
{
    const csasn__v4 zero = V4_ZERO(), one = V4_SPLAT(1.0f);
    switch (act) {
    case CSASN__ACT_RELU:    return V4_MAX(x, zero);
    case CSASN__ACT_RELU6:   return V4_MIN(V4_MAX(x, zero), V4_SPLAT(6.0f));
    case CSASN__ACT_SILU:    return V4_DIV(x, V4_ADD(one, v4_exp(V4_SUB(zero, x))));
    case CSASN__ACT_GELU: {
        /* Below -5.55 the exact GELU is > -1e-7 but 1 + erf would keep the
         * polynomial's last ulp (6e-8) times x, unbounded in x: return 0. */
        csasn__v4 y = V4_MUL(V4_MUL(V4_SPLAT(0.5f), x),
                             V4_ADD(one, v4_erf(V4_MUL(x, V4_SPLAT(0.70710678118654752f)))));
        return V4_SEL(V4_LT(x, V4_SPLAT(-5.55f)), zero, y);
    }
    case CSASN__ACT_SIGMOID: return V4_DIV(one, V4_ADD(one, v4_exp(V4_SUB(zero, x))));
    default:                 return x;
    }
}

/* The vector activation on n < 4 values (tails), so a SIMD kernel uses one
 * definition of each activation for all its outputs. */
static inline void act_tail(float *x, int n, int act)
{
    float t[4] = {0, 0, 0, 0};
    memcpy(t, x, (size_t)n * sizeof(float));
    V4_STORE(t, v4_act(V4_LOAD(t), act));
    memcpy(x, t, (size_t)n * sizeof(float));
}

void csasn__act__scalar(float *x, int n, int act)
{
    if (act == CSASN__ACT_NONE) return;
    for (int i = 0; i < n; i++) x[i] = csasn__act1(x[i], act);
}

/* One loop per activation: the switch stays outside the loop. */
#define ACT_LOOP(A) for (; i + 4 <= n; i += 4) V4_STORE(x + i, v4_act(V4_LOAD(x + i), A))
void csasn__act__simd(float *x, int n, int act)
{
    int i = 0;
    switch (act) {
    case CSASN__ACT_RELU:    ACT_LOOP(CSASN__ACT_RELU); break;
    case CSASN__ACT_RELU6:   ACT_LOOP(CSASN__ACT_RELU6); break;
    case CSASN__ACT_SILU:    ACT_LOOP(CSASN__ACT_SILU); break;
    case CSASN__ACT_GELU:    ACT_LOOP(CSASN__ACT_GELU); break;
    case CSASN__ACT_SIGMOID: ACT_LOOP(CSASN__ACT_SIGMOID); break;
    default: return;
    }
    if (i < n) act_tail(x + i, n - i, act);
}
#undef ACT_LOOP

/* ------------------------------------------------------------------- GEMM */

size_t csasn__pack_floats(int K, int N)
{
    return (size_t)((N + CSASN__NR - 1) / CSASN__NR) * (size_t)K * CSASN__NR;
}

void csasn__pack_b(const float *W, int N, int K, float *dst)
{
    for (int n0 = 0; n0 < N; n0 += CSASN__NR) {
        float *p = dst + (size_t)(n0 / CSASN__NR) * K * CSASN__NR;   /* panel [K][8] */
        int nr = imin(CSASN__NR, N - n0);
        if (nr < CSASN__NR) memset(p, 0, (size_t)K * CSASN__NR * sizeof(float));
        /* row by row of W: sequential reads, 8-strided writes within one panel */
        for (int j = 0; j < nr; j++) {
            const float *wr = W + (size_t)(n0 + j) * K;
            for (int k = 0; k < K; k++) p[(size_t)k * CSASN__NR + j] = wr[k];
        }
    }
}

void csasn__gemm__scalar(int M, int N, int K, const float *A, int lda, const float *Bp,
                         const float *bias, float *C, int ldc, const float *R, int ldr, int act)
{
    for (int n0 = 0; n0 < N; n0 += CSASN__NR) {
        const float *b = Bp + (size_t)(n0 / CSASN__NR) * K * CSASN__NR;
        int nr = imin(CSASN__NR, N - n0);
        for (int m0 = 0; m0 < M; m0 += CSASN__MR) {
            int mr = imin(CSASN__MR, M - m0);
            float acc[CSASN__MR][CSASN__NR];
            for (int r = 0; r < mr; r++)
                for (int j = 0; j < CSASN__NR; j++)
                    acc[r][j] = bias && j < nr ? bias[n0 + j] : 0.0f;
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
 * applies act (+ R) over the strip while it is in L1 (gemm_strip_act). */
VINLINE void tile_store(int mr, int nr, csasn__v4 c00, csasn__v4 c01, csasn__v4 c10, csasn__v4 c11,
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

static void csasn__gemm_4x8__simd(int mr, int nr, int K, const float *A, int lda, const float *b,
                                  const float *bias8, float *C, int ldc, const float *R, int ldr, int act)
{
    const float *a0 = A;
    const float *a1 = mr > 1 ? a0 + lda : a0;
    const float *a2 = mr > 2 ? a1 + lda : a1;
    const float *a3 = mr > 3 ? a2 + lda : a2;
    csasn__v4 blo = bias8 ? V4_LOAD(bias8) : V4_ZERO(), bhi = bias8 ? V4_LOAD(bias8 + 4) : V4_ZERO();
    csasn__v4 c00 = blo, c01 = bhi, c10 = blo, c11 = bhi, c20 = blo, c21 = bhi, c30 = blo, c31 = bhi;
    for (int k = 0; k < K; k++, b += 8) {
        csasn__v4 b0 = V4_LOAD(b), b1 = V4_LOAD(b + 4);
        csasn__v4 va = V4_LOAD_SPLAT(a0 + k);
        c00 = V4_ADD(c00, V4_MUL(va, b0));
        c01 = V4_ADD(c01, V4_MUL(va, b1));
        va = V4_LOAD_SPLAT(a1 + k);
        c10 = V4_ADD(c10, V4_MUL(va, b0));
        c11 = V4_ADD(c11, V4_MUL(va, b1));
        va = V4_LOAD_SPLAT(a2 + k);
        c20 = V4_ADD(c20, V4_MUL(va, b0));
        c21 = V4_ADD(c21, V4_MUL(va, b1));
        va = V4_LOAD_SPLAT(a3 + k);
        c30 = V4_ADD(c30, V4_MUL(va, b0));
        c31 = V4_ADD(c31, V4_MUL(va, b1));
    }
    tile_store(mr, nr, c00, c01, c10, c11, c20, c21, c30, c31, C, ldc, R, ldr, act);
}

/* The same tile on a packed strip of A: ap [K][4] (row r of the strip at
 * ap[4k + r]). All loads are then at constant offsets from two pointers, so
 * the loop carries 2 pointer increments instead of the 4 row address
 * computations V8 would otherwise do per k (emcc turns clang's loop strength
 * reduction off). Same arithmetic, same order: identical results. */
static void gemm_4x8_packed__simd(int mr, int nr, int K, const float *ap, const float *b,
                                  const float *bias8, float *C, int ldc, const float *R, int ldr, int act)
{
    csasn__v4 blo = bias8 ? V4_LOAD(bias8) : V4_ZERO(), bhi = bias8 ? V4_LOAD(bias8 + 4) : V4_ZERO();
    csasn__v4 c00 = blo, c01 = bhi, c10 = blo, c11 = bhi, c20 = blo, c21 = bhi, c30 = blo, c31 = bhi;
    for (const float *end = ap + 4 * (size_t)K; ap < end; ap += 4, b += 8) {
        csasn__v4 b0 = V4_LOAD(b), b1 = V4_LOAD(b + 4);
        csasn__v4 va = V4_LOAD_SPLAT(ap);
        c00 = V4_ADD(c00, V4_MUL(va, b0));
        c01 = V4_ADD(c01, V4_MUL(va, b1));
        va = V4_LOAD_SPLAT(ap + 1);
        c10 = V4_ADD(c10, V4_MUL(va, b0));
        c11 = V4_ADD(c11, V4_MUL(va, b1));
        va = V4_LOAD_SPLAT(ap + 2);
        c20 = V4_ADD(c20, V4_MUL(va, b0));
        c21 = V4_ADD(c21, V4_MUL(va, b1));
        va = V4_LOAD_SPLAT(ap + 3);
        c30 = V4_ADD(c30, V4_MUL(va, b0));
        c31 = V4_ADD(c31, V4_MUL(va, b1));
    }
    tile_store(mr, nr, c00, c01, c10, c11, c20, c21, c30, c31, C, ldc, R, ldr, act);
}

/* act over x[n], then + r[n] when r != NULL: the deferred epilogue of a GEMM
 * strip. One loop per activation so its constants stay out of the loop. */
#define STRIP_LOOP(A) \
    for (; i + 4 <= n; i += 4) { \
        csasn__v4 v = v4_act(V4_LOAD(x + i), A); \
        V4_STORE(x + i, r ? V4_ADD(v, V4_LOAD(r + i)) : v); \
    }
static void gemm_strip_act(float *x, int n, const float *r, int act)
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
        act_tail(x + i, n - i, act);
        if (r)
            for (; i < n; i++) x[i] += r[i];
    }
}
#undef STRIP_LOOP

#define PACK_K 2048

/* A strip of 4 rows of A (row stride lda; rows past mr repeat the last one)
 * -> ap [K][4], by 4x4 register transposes. */
static void pack_a4(const float *A, int lda, int mr, int K, float *ap)
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

/* One strip of mr <= 4 rows, output columns [j0, j1), of C = act(A Bp + bias) (+ R):
 * A is read from the packed strip ap ([K][4]) when it is given, else in place
 * (a, lda). A column tail (nr < 8) is stored raw and gets its act and R after
 * the kernel; so does every panel of an expensive act (SiLU, GELU, sigmoid),
 * which runs once over the strip's outputs while they are still in L1. */
static void gemm_strip__simd(int mr, int N, int K, const float *a, int lda, const float *ap,
                             const float *Bp, const float *bias, float *cs, int ldc,
                             const float *rs, int ldr, int act, int j0, int j1)
{
    size_t panel = (size_t)K * CSASN__NR;
    int late = act > CSASN__ACT_RELU6;
    for (int j = j0; j < j1; j += CSASN__NR) {
        int nr = imin(CSASN__NR, N - j);
        float bt[CSASN__NR] = {0};
        const float *bias8 = NULL;
        if (bias) {
            if (nr == CSASN__NR) bias8 = bias + j;
            else { memcpy(bt, bias + j, (size_t)nr * sizeof(float)); bias8 = bt; }
        }
        int raw = late || nr < CSASN__NR;
        const float *bj = Bp + (size_t)(j / CSASN__NR) * panel;
        const float *rj = raw || !rs ? NULL : rs + j;
        int kact = raw ? CSASN__ACT_NONE : act;
        if (ap)
            gemm_4x8_packed__simd(mr, nr, K, ap, bj, bias8, cs + j, ldc, rj, ldr, kact);
        else
            csasn__gemm_4x8__simd(mr, nr, K, a, lda, bj, bias8, cs + j, ldc, rj, ldr, kact);
        if (raw && !late)   /* a tail of a cheap-act GEMM */
            for (int r = 0; r < mr; r++)
                gemm_strip_act(cs + (size_t)r * ldc + j, nr, rs ? rs + (size_t)r * ldr + j : NULL, act);
    }
    if (late)
        for (int r = 0; r < mr; r++)
            gemm_strip_act(cs + (size_t)r * ldc + j0, j1 - j0, rs ? rs + (size_t)r * ldr + j0 : NULL, act);
}

/* Output columns [n0, n1) (multiples of 8 but for N) of C = act(A Bp + bias) (+ R).
 * Usual case (K <= 2048, >= 16 columns): rows in strips of 4, each strip of A
 * packed once ([K][4], 32 KiB at most, on the stack) and run against every
 * panel of B in [n0, n1); B (<= 600 KiB for the ViT layers) streams from L2,
 * which the hardware prefetcher keeps up with.
 * Otherwise A is read in place and the columns go in blocks of whole panels
 * holding at most 24 KiB of B (L1), the rows in strips of 4 inside a block.
 * Splitting [n0, n1) between threads leaves every output's arithmetic
 * unchanged. */
static void gemm_cols__simd(int M, int N, int K, const float *A, int lda, const float *Bp,
                            const float *bias, float *C, int ldc, const float *R, int ldr, int act,
                            int n0, int n1)
{
#ifndef GEMM_NOPACK
    if (K <= PACK_K && n1 - n0 >= 16) {
        float ap[CSASN__MR * PACK_K];
        for (int m0 = 0; m0 < M; m0 += CSASN__MR) {
            int mr = imin(CSASN__MR, M - m0);
            pack_a4(A + (size_t)m0 * lda, lda, mr, K, ap);
            gemm_strip__simd(mr, N, K, NULL, 0, ap, Bp, bias, C + (size_t)m0 * ldc, ldc,
                             R ? R + (size_t)m0 * ldr : NULL, ldr, act, n0, n1);
        }
        return;
    }
#endif
    int bp = (int)((24 * 1024 / sizeof(float)) / ((size_t)K * CSASN__NR));
    if (bp < 1) bp = 1;
    for (int c0 = n0; c0 < n1; c0 += bp * CSASN__NR) {
        int c1 = imin(n1, c0 + bp * CSASN__NR);
        for (int m0 = 0; m0 < M; m0 += CSASN__MR)
            gemm_strip__simd(imin(CSASN__MR, M - m0), N, K, A + (size_t)m0 * lda, lda, NULL, Bp, bias,
                             C + (size_t)m0 * ldc, ldc, R ? R + (size_t)m0 * ldr : NULL, ldr, act, c0, c1);
    }
}

typedef struct {
    int M, N, K, lda, ldc, ldr, act;
    const float *A, *Bp, *bias, *R;
    float *C;
} gemm_job;

/* Part i of n: a contiguous range of whole panels. */
static void gemm_part(void *ctx, int part, int nparts)
{
    const gemm_job *g = ctx;
    int np = (g->N + CSASN__NR - 1) / CSASN__NR;
    int p0 = (int)((int64_t)np * part / nparts), p1 = (int)((int64_t)np * (part + 1) / nparts);
    gemm_cols__simd(g->M, g->N, g->K, g->A, g->lda, g->Bp, g->bias, g->C, g->ldc, g->R, g->ldr, g->act,
                    p0 * CSASN__NR, imin(g->N, p1 * CSASN__NR));
}

void csasn__gemm__simd(int M, int N, int K, const float *A, int lda, const float *Bp,
                       const float *bias, float *C, int ldc, const float *R, int ldr, int act)
{
    gemm_job g = {M, N, K, lda, ldc, ldr, act, A, Bp, bias, R, C};
    /* below ~0.5M multiply-adds (~60 us) waking a helper costs more than it saves */
    int parts = (double)M * N * K >= 5e5 ? (N + CSASN__NR - 1) / CSASN__NR : 1;
    run_parallel(gemm_part, &g, parts);
}

/* -------------------------------------------------------------- depthwise */

void csasn__dwconv__scalar(const float *in, int H, int W, int C, int k, int stride,
                           const float *w, const float *bias, float *out, int act)
{
    int p = (k - 1) / 2, Ho = (H + 2 * p - k) / stride + 1, Wo = (W + 2 * p - k) / stride + 1;
    for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++) {
            int iy0 = oy * stride - p, ix0 = ox * stride - p;
            int ky0 = imax(0, -iy0), ky1 = imin(k, H - iy0), kx0 = imax(0, -ix0), kx1 = imin(k, W - ix0);
            float *o = out + ((size_t)oy * Wo + ox) * C;
            for (int c = 0; c < C; c++) {
                float acc = bias[c];
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++)
                        acc += in[((ptrdiff_t)(iy0 + ky) * W + ix0 + kx) * C + c] * w[(ptrdiff_t)(ky * k + kx) * C + c];
                o[c] = csasn__act1(acc, act);
            }
        }
}

/* One output pixel of the depthwise conv, channels c0..C-1. */
static void dw_pixel__simd(const float *in, int H, int W, int C, int k, int stride, const float *w,
                           const float *bias, float *out, int Wo, int oy, int ox, int c, int act)
{
    int p = (k - 1) / 2, iy0 = oy * stride - p, ix0 = ox * stride - p;
    int ky0 = imax(0, -iy0), ky1 = imin(k, H - iy0), kx0 = imax(0, -ix0), kx1 = imin(k, W - ix0);
    float *o = out + ((size_t)oy * Wo + ox) * C;
    /* 8 channels per step: two independent accumulators hide add latency. */
    for (; c + 8 <= C; c += 8) {
        csasn__v4 a0 = V4_LOAD(bias + c), a1 = V4_LOAD(bias + c + 4);
        for (int ky = ky0; ky < ky1; ky++) {
            const float *ip = in + ((ptrdiff_t)(iy0 + ky) * W + ix0 + kx0) * C + c;
            const float *wp = w + ((ptrdiff_t)ky * k + kx0) * C + c;
            for (int kx = 0; kx < kx1 - kx0; kx++) {
                a0 = V4_ADD(a0, V4_MUL(V4_LOAD(ip + (size_t)kx * C), V4_LOAD(wp + (size_t)kx * C)));
                a1 = V4_ADD(a1, V4_MUL(V4_LOAD(ip + (size_t)kx * C + 4), V4_LOAD(wp + (size_t)kx * C + 4)));
            }
        }
        V4_STORE(o + c, v4_act(a0, act));
        V4_STORE(o + c + 4, v4_act(a1, act));
    }
    for (; c + 4 <= C; c += 4) {
        csasn__v4 a0 = V4_LOAD(bias + c);
        for (int ky = ky0; ky < ky1; ky++) {
            const float *ip = in + ((ptrdiff_t)(iy0 + ky) * W + ix0 + kx0) * C + c;
            const float *wp = w + ((ptrdiff_t)ky * k + kx0) * C + c;
            for (int kx = 0; kx < kx1 - kx0; kx++)
                a0 = V4_ADD(a0, V4_MUL(V4_LOAD(ip + (size_t)kx * C), V4_LOAD(wp + (size_t)kx * C)));
        }
        V4_STORE(o + c, v4_act(a0, act));
    }
    if (c < C) {
        float t[4] = {0, 0, 0, 0};
        for (int j = 0; c + j < C; j++) {
            float acc = bias[c + j];
            for (int ky = ky0; ky < ky1; ky++)
                for (int kx = kx0; kx < kx1; kx++)
                    acc += in[((ptrdiff_t)(iy0 + ky) * W + ix0 + kx) * C + c + j] *
                           w[(size_t)(ky * k + kx) * C + c + j];
            t[j] = acc;
        }
        act_tail(t, C - c, act);
        memcpy(o + c, t, (size_t)(C - c) * sizeof(float));
    }
}

/* Two horizontally adjacent output pixels whose taps are all inside the
 * image in x: each weight vector is loaded once for both (6 loads per tap and
 * 8 channels instead of 8). Channels below the last multiple of 8 only; the
 * rest goes through dw_pixel__simd. Same summation order as one pixel. */
static int dw_pair__simd(const float *in, int H, int W, int C, int k, int stride, const float *w,
                         const float *bias, float *out, int Wo, int oy, int ox, int act)
{
    int p = (k - 1) / 2, iy0 = oy * stride - p, ix0 = ox * stride - p;
    int ky0 = imax(0, -iy0), ky1 = imin(k, H - iy0);
    size_t sC = (size_t)stride * C;
    float *o = out + ((size_t)oy * Wo + ox) * C;
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        csasn__v4 a0 = V4_LOAD(bias + c), a1 = V4_LOAD(bias + c + 4), b0 = a0, b1 = a1;
        for (int ky = ky0; ky < ky1; ky++) {
            const float *ip = in + ((ptrdiff_t)(iy0 + ky) * W + ix0) * C + c;
            const float *wp = w + (size_t)ky * k * C + c;
            for (int kx = 0; kx < k; kx++) {
                csasn__v4 w0 = V4_LOAD(wp + (size_t)kx * C), w1 = V4_LOAD(wp + (size_t)kx * C + 4);
                const float *q = ip + (size_t)kx * C;
                a0 = V4_ADD(a0, V4_MUL(V4_LOAD(q), w0));
                a1 = V4_ADD(a1, V4_MUL(V4_LOAD(q + 4), w1));
                b0 = V4_ADD(b0, V4_MUL(V4_LOAD(q + sC), w0));
                b1 = V4_ADD(b1, V4_MUL(V4_LOAD(q + sC + 4), w1));
            }
        }
        V4_STORE(o + c, v4_act(a0, act));
        V4_STORE(o + c + 4, v4_act(a1, act));
        V4_STORE(o + C + c, v4_act(b0, act));
        V4_STORE(o + C + c + 4, v4_act(b1, act));
    }
    return c;
}

typedef struct {
    const float *in, *w, *bias;
    float *out;
    int H, W, C, k, stride, act;
} dw_job;

/* Part i of n: a contiguous range of output rows. */
static void dw_part(void *ctx, int part, int nparts)
{
    const dw_job *d = ctx;
    const float *in = d->in, *w = d->w, *bias = d->bias;
    float *out = d->out;
    int H = d->H, W = d->W, C = d->C, k = d->k, stride = d->stride, act = d->act;
    int p = (k - 1) / 2, Ho = (H + 2 * p - k) / stride + 1, Wo = (W + 2 * p - k) / stride + 1;
    int y0 = (int)((int64_t)Ho * part / nparts), y1 = (int)((int64_t)Ho * (part + 1) / nparts);
    for (int oy = y0; oy < y1; oy++)
        for (int ox = 0; ox < Wo; ox++) {
            /* pair path when ox and ox+1 have every tap inside the image in x */
            if (ox + 1 < Wo && ox * stride - p >= 0 && (ox + 1) * stride - p + k <= W && C >= 8) {
                int c = dw_pair__simd(in, H, W, C, k, stride, w, bias, out, Wo, oy, ox, act);
                if (c < C) {
                    dw_pixel__simd(in, H, W, C, k, stride, w, bias, out, Wo, oy, ox, c, act);
                    dw_pixel__simd(in, H, W, C, k, stride, w, bias, out, Wo, oy, ox + 1, c, act);
                }
                ox++;
                continue;
            }
            dw_pixel__simd(in, H, W, C, k, stride, w, bias, out, Wo, oy, ox, 0, act);
        }
}

void csasn__dwconv__simd(const float *in, int H, int W, int C, int k, int stride,
                         const float *w, const float *bias, float *out, int act)
{
    dw_job d = {in, w, bias, out, H, W, C, k, stride, act};
    int p = (k - 1) / 2, Ho = (H + 2 * p - k) / stride + 1, Wo = (W + 2 * p - k) / stride + 1;
    run_parallel(dw_part, &d, (double)Ho * Wo * C * k * k >= 2e5 ? Ho : 1);
}

/* ----------------------------------------------------------------- im2col */

void csasn__im2col(const float *in, int H, int W, int C, int k, int stride, int pad,
                   float *col, int Ho, int Wo)
{
    size_t row = (size_t)k * C;
    for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++) {
            float *d = col + ((size_t)oy * Wo + ox) * k * row;
            int ix0 = ox * stride - pad;
            int kx0 = imax(0, -ix0), kx1 = imin(k, W - ix0);
            for (int ky = 0; ky < k; ky++, d += row) {
                int iy = oy * stride - pad + ky;
                if (iy < 0 || iy >= H || kx1 <= kx0) { memset(d, 0, row * sizeof(float)); continue; }
                /* one contiguous run of in-bounds taps, zeros either side */
                if (kx0 > 0) memset(d, 0, (size_t)kx0 * C * sizeof(float));
                memcpy(d + (size_t)kx0 * C, in + ((size_t)iy * W + ix0 + kx0) * C,
                       (size_t)(kx1 - kx0) * C * sizeof(float));
                if (kx1 < k) memset(d + (size_t)kx1 * C, 0, (size_t)(k - kx1) * C * sizeof(float));
            }
        }
}

/* -------------------------------------------------------------- layernorm */

void csasn__layernorm__scalar(const float *x, int rows, int D, int ldx, const float *g,
                              const float *b, float eps, float *y, int ldy)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        float mean = 0.0f, var = 0.0f;
        for (int i = 0; i < D; i++) mean += xr[i];
        mean /= (float)D;
        for (int i = 0; i < D; i++) var += (xr[i] - mean) * (xr[i] - mean);
        float rs = 1.0f / sqrtf(var / (float)D + eps);
        for (int i = 0; i < D; i++) yr[i] = (xr[i] - mean) * rs * g[i] + b[i];
    }
}

void csasn__layernorm__simd(const float *x, int rows, int D, int ldx, const float *g,
                            const float *b, float eps, float *y, int ldy)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * ldy;
        csasn__v4 s = V4_ZERO();
        int i = 0;
        for (; i + 4 <= D; i += 4) s = V4_ADD(s, V4_LOAD(xr + i));
        float mean = V4_HSUM(s);
        for (; i < D; i++) mean += xr[i];
        mean /= (float)D;
        csasn__v4 vm = V4_SPLAT(mean), v = V4_ZERO();
        for (i = 0; i + 4 <= D; i += 4) {
            csasn__v4 d = V4_SUB(V4_LOAD(xr + i), vm);
            v = V4_ADD(v, V4_MUL(d, d));
        }
        float var = V4_HSUM(v);
        for (; i < D; i++) var += (xr[i] - mean) * (xr[i] - mean);
        float rs = 1.0f / sqrtf(var / (float)D + eps);
        csasn__v4 vr = V4_SPLAT(rs);
        for (i = 0; i + 4 <= D; i += 4)
            V4_STORE(yr + i, V4_ADD(V4_MUL(V4_MUL(V4_SUB(V4_LOAD(xr + i), vm), vr), V4_LOAD(g + i)), V4_LOAD(b + i)));
        for (; i < D; i++) yr[i] = (xr[i] - mean) * rs * g[i] + b[i];
    }
}

/* ---------------------------------------------------------------- softmax */

void csasn__softmax__scalar(float *x, int n)
{
    float mx = x[0], sum = 0.0f;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

/* exp(x[i] - mx) in place, returns the sum. */
static float exp_sum__simd(float *x, int n, float mx)
{
    csasn__v4 vm = V4_SPLAT(mx), s = V4_ZERO();
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        csasn__v4 e = v4_exp(V4_SUB(V4_LOAD(x + i), vm));
        V4_STORE(x + i, e);
        s = V4_ADD(s, e);
    }
    float sum = V4_HSUM(s);
    if (i < n) {
        float t[4] = {0, 0, 0, 0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
        V4_STORE(t, v4_exp(V4_SUB(V4_LOAD(t), vm)));
        for (int j = 0; i + j < n; j++) { x[i + j] = t[j]; sum += t[j]; }
    }
    return sum;
}

static float max__simd(const float *x, int n)
{
    int i = 0;
    float mx = x[0];
    if (n >= 4) {
        csasn__v4 m = V4_LOAD(x);
        for (i = 4; i + 4 <= n; i += 4) m = V4_MAX(m, V4_LOAD(x + i));
        mx = V4_HMAX(m);
    }
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

void csasn__softmax__simd(float *x, int n)
{
    float sum = exp_sum__simd(x, n, max__simd(x, n));
    csasn__v4 r = V4_SPLAT(1.0f / sum);
    int i = 0;
    for (; i + 4 <= n; i += 4) V4_STORE(x + i, V4_MUL(V4_LOAD(x + i), r));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}

/* -------------------------------------------------------------- attention */

void csasn__attention__scalar(const float *qkv, int T, int D, int heads, float *out, float *scratch)
{
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
    return (t + r - 1) / r * r * hd + (hd + r - 1) / r * r * t + (uint64_t)CSASN__MAX_THREADS * 2 * CSASN__MR * t;
}

/* K_h [T x hd] (rows of stride ld) as GEMM panels of B = K_h^T [hd x T],
 * times scale: S = Q K^T * scale then comes straight out of the GEMM (the
 * product rounds differently from (q.k)*scale, by an ulp). */
static void pack_k(const float *src, int T, int hd, size_t ld, float scale, float *dst)
{
    csasn__v4 vs = V4_SPLAT(scale);
    for (int n0 = 0; n0 < T; n0 += CSASN__NR) {
        float *p = dst + (size_t)(n0 / CSASN__NR) * hd * CSASN__NR;
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

/* V_h [T x hd] (rows of stride ld) as GEMM panels of B [T x hd]: panel p,
 * row t is V_h[t][8p .. 8p+7], a contiguous copy. */
static void pack_v(const float *src, int T, int hd, size_t ld, float *dst)
{
    for (int n0 = 0; n0 < hd; n0 += CSASN__NR) {
        float *p = dst + (size_t)(n0 / CSASN__NR) * T * CSASN__NR;
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
} attn_job;

/* Part i of n: a contiguous range of 4-query blocks of head h, with its own
 * scratch: the 4 score rows S [4 x T] and their exponentials Sp [T x 4],
 * written transposed (4x4 register transposes) so that Sp is already the
 * packed A strip of the product with V: no packing pass, and the row sums of
 * the softmax are the lanes of one vector accumulator. */
static void attn_part(void *ctx, int part, int nparts)
{
    const attn_job *a = ctx;
    int T = a->T, D = a->D, hd = a->hd, h = a->h, nb = (T + CSASN__MR - 1) / CSASN__MR;
    size_t ld = (size_t)3 * D;
    float *S = a->S + (size_t)part * 2 * CSASN__MR * T;  /* [4 x T] */
    float *Sp = S + (size_t)CSASN__MR * T;               /* [T x 4] */
    int b0 = (int)((int64_t)nb * part / nparts), b1 = (int)((int64_t)nb * (part + 1) / nparts);
    for (int i0 = b0 * CSASN__MR; i0 < T && i0 < b1 * CSASN__MR; i0 += CSASN__MR) {
        int mr = imin(CSASN__MR, T - i0);
        gemm_cols__simd(mr, T, hd, a->qkv + i0 * ld + h * hd, (int)ld, a->Kp, NULL, S, T, NULL, 0,
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
            gemm_4x8_packed__simd(mr, imin(CSASN__NR, hd - j0), T, Sp, a->Vp + (size_t)(j0 / CSASN__NR) * T * CSASN__NR,
                                  NULL, o + j0, D, NULL, 0, CSASN__ACT_NONE);
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
    int hd = D / heads;
    size_t ld = (size_t)3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    float *Kp = scratch;                                 /* K_h as B [hd x T], packed */
    float *Vp = Kp + csasn__pack_floats(hd, T);          /* V_h as B [T x hd], packed */
    float *S = Vp + csasn__pack_floats(T, hd);           /* [threads][2][4 x T] */
    for (int h = 0; h < heads; h++) {
        pack_k(qkv + D + h * hd, T, hd, ld, scale, Kp);
        pack_v(qkv + 2 * D + h * hd, T, hd, ld, Vp);
        attn_job a = {qkv, Kp, Vp, out, S, T, D, hd, h};
        run_parallel(attn_part, &a, (double)T * T * hd >= 2e5 ? (T + CSASN__MR - 1) / CSASN__MR : 1);
    }
}

/* ------------------------------------------------------- pooling, scaling */

void csasn__pool__scalar(const float *x, int HW, int C, float *avg, float *mx)
{
    for (int c = 0; c < C; c++) {
        float s = 0.0f, m = x[c];
        for (int p = 0; p < HW; p++) {
            float v = x[(size_t)p * C + c];
            s += v;
            m = v > m ? v : m;
        }
        avg[c] = s / (float)HW;
        if (mx) mx[c] = m;
    }
}

void csasn__pool__simd(const float *x, int HW, int C, float *avg, float *mx)
{
    int c = 0;
    csasn__v4 inv = V4_SPLAT(1.0f / (float)HW);
    for (; c + 4 <= C; c += 4) {
        csasn__v4 s = V4_ZERO(), m = V4_LOAD(x + c);
        for (int p = 0; p < HW; p++) {
            csasn__v4 v = V4_LOAD(x + (size_t)p * C + c);
            s = V4_ADD(s, v);
            m = V4_MAX(m, v);
        }
        V4_STORE(avg + c, V4_MUL(s, inv));
        if (mx) V4_STORE(mx + c, m);
    }
    for (; c < C; c++) {
        float s = 0.0f, m = x[c];
        for (int p = 0; p < HW; p++) {
            float v = x[(size_t)p * C + c];
            s += v;
            m = v > m ? v : m;
        }
        avg[c] = s * (1.0f / (float)HW);
        if (mx) mx[c] = m;
    }
}

void csasn__scale__scalar(float *x, int HW, int C, const float *s)
{
    for (int p = 0; p < HW; p++)
        for (int c = 0; c < C; c++) x[(size_t)p * C + c] *= s[c];
}

void csasn__scale__simd(float *x, int HW, int C, const float *s)
{
    for (int p = 0; p < HW; p++) {
        float *r = x + (size_t)p * C;
        int c = 0;
        for (; c + 4 <= C; c += 4) V4_STORE(r + c, V4_MUL(V4_LOAD(r + c), V4_LOAD(s + c)));
        for (; c < C; c++) r[c] *= s[c];
    }
}

void csasn__chan_meanmax(const float *x, int HW, int C, float *out)
{
    for (int p = 0; p < HW; p++) {
        const float *r = x + (size_t)p * C;
        float s = 0.0f, m = r[0];
        for (int c = 0; c < C; c++) { s += r[c]; m = r[c] > m ? r[c] : m; }
        out[2 * p] = s / (float)C;
        out[2 * p + 1] = m;
    }
}

/* ------------------------------------------------------------- warm-up */

/* V8 runs wasm first in its baseline compiler and optimises a function only
 * once it has run a while: the first forward pass after a page load was 3-5x
 * slower than the next. This runs every hot kernel (both GEMM paths, every
 * activation, depthwise 3x3/5x5 at strides 1 and 2, attention, layernorm,
 * softmax, pooling) on small scratch data, rounds times; the page's worker
 * calls it while the model downloads. Allocates ~150 KB and frees it;
 * returns 0, or -1 if out of memory. */
#if defined(__clang__)
__attribute__((minsize, cold))   /* without it clang inlines specialised kernel copies here: +12 KB of wasm */
#endif
int csasn__warmup(int rounds)
{
    enum { M = 16, N = 72, K = 64, T = 20, D = 64, HW = 12, C = 24 };
    float *buf = calloc(2 * M * K + 2 * N * K + 2 * M * N + N + T * 3 * D + 2 * T * D + 8192 + 2 * HW * HW * C + 25 * C + C, sizeof(float));
    if (!buf) return -1;
    float *A = buf, *W = A + 2 * M * K, *Bp = W + N * K, *Cm = Bp + N * K, *R = Cm + M * N, *bias = R + M * N;
    float *qkv = bias + N, *ao = qkv + T * 3 * D, *sc = ao + T * D, *img = sc + 8192 + T * D, *dwo = img + HW * HW * C;
    float *dww = dwo + HW * HW * C, *dwb = dww + 25 * C;
    for (int i = 0; i < 2 * M * K; i++) A[i] = (float)(i % 17) * 0.01f - 0.08f;
    for (int i = 0; i < N * K; i++) W[i] = (float)(i % 13) * 0.01f - 0.06f;
    for (int i = 0; i < T * 3 * D; i++) qkv[i] = (float)(i % 11) * 0.1f - 0.5f;
    for (int i = 0; i < HW * HW * C; i++) img[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (int i = 0; i < 25 * C; i++) dww[i] = 0.04f;
    csasn__pack_b(W, N, K, Bp);
    for (int r = 0; r < rounds; r++) {
        for (int act = 0; act < CSASN__ACT_COUNT; act++) {
            csasn__gemm(M, N, K, A, K, Bp, bias, Cm, N, act % 2 ? R : NULL, N, act);   /* A packed */
            csasn__gemm(M, 8, K, A, K, Bp, bias, Cm, N, NULL, 0, act);                 /* A in place */
        }
        for (int k = 3; k <= 5; k += 2)
            for (int s = 1; s <= 2; s++) {
                csasn__dwconv(img, HW, HW, C, k, s, dww, dwb, dwo, CSASN__ACT_SILU);
                csasn__dwconv(img, HW, HW, C, k, s, dww, dwb, dwo, CSASN__ACT_RELU6);
            }
        csasn__attention(qkv, T, D, 1, ao, sc);
        csasn__layernorm(qkv, T, D, 3 * D, bias, bias, 1e-6f, ao, D);
        csasn__softmax(ao, T * D);
        csasn__pool(img, HW * HW, C, dwb, dww);
        csasn__scale(img, HW * HW, C, dwb);
        csasn__act(Cm, M * N, CSASN__ACT_SIGMOID);
        csasn__im2col(img, HW, HW, 3, 3, 2, 1, dwo, HW / 2, HW / 2);
    }
    free(buf);
    return 0;
}

