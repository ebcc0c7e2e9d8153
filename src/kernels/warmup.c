/* warmup.c - facts and rituals of the compiled kernels (src/kernels.h):
 * the JIT warm-up the page runs while its model downloads, and the name of
 * the vector instruction set the build uses. */
#include "kernels.h"
#include "simd.h"

#include <stdlib.h>

const char *csasn__simd_name(void) { return CSASN_SIMD_NAME; }

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
    size_t nbp = csasn__pack_floats(K, N);
    float *buf = calloc(2 * M * K + N * K + nbp + 2 * M * N + N + T * 3 * D + 2 * T * D + 8192 + 2 * HW * HW * C + 25 * C + C,
                        sizeof(float));
    if (!buf) return -1;
    float *A = buf, *W = A + 2 * M * K, *Bp = W + N * K, *Cm = Bp + nbp, *R = Cm + M * N, *bias = R + M * N;
    float *qkv = bias + N, *ao = qkv + T * 3 * D, *sc = ao + T * D, *img = sc + 8192 + T * D, *dwo = img + HW * HW * C;
    float *dww = dwo + HW * HW * C, *dwb = dww + 25 * C;
    for (int i = 0; i < 2 * M * K; i++) A[i] = (float)(i % 17) * 0.01f - 0.08f;
    for (int i = 0; i < N * K; i++) W[i] = (float)(i % 13) * 0.01f - 0.06f;
    for (int i = 0; i < T * 3 * D; i++) qkv[i] = (float)(i % 11) * 0.1f - 0.5f;
    for (int i = 0; i < HW * HW * C; i++) img[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (int i = 0; i < 25 * C; i++) dww[i] = 0.04f;
    csasn__pack_b(W, bias, N, K, Bp);
    for (int r = 0; r < rounds; r++) {
        for (int act = 0; act < CSASN__ACT_COUNT; act++) {
            csasn__gemm(M, N, K, A, K, Bp, Cm, N, act % 2 ? R : NULL, N, act);   /* A packed */
            csasn__gemm(M, 8, K, A, K, Bp, Cm, N, NULL, 0, act);                 /* A in place */
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

