/* kernels.h - private: the compute kernels of the forward pass (src/kernels/).
 *
 * Names follow XNNPACK: what the kernel computes before the "__", how after
 * it. Every kernel exists twice: "__scalar" (plain C, the reference) and
 * "__simd" (written over simd.h: wasm SIMD128, SSE2, or a portable fallback);
 * the plain name (csasn__gemm, ...) is a function that runs the SIMD version,
 * or the scalar one in a library built with -DCSASN_SCALAR.
 * tests/c/test_kernels.c compares both over every tail.
 *
 * One file per family: gemm.c (weight packing, GEMM), conv.c (depthwise,
 * im2col), attention.c, activations.c (activations, softmax), pool.c
 * (pooling, channel scale, LayerNorm), warmup.c; parallel.c is the thread
 * pool they split their outputs over.
 *
 * Layouts: feature maps are HWC (channels last), so a 1x1 convolution is the
 * GEMM [H*W x Cin] x [Cin x Cout] and depthwise convolution vectorises over
 * channels; ViT tokens are [T x D] row-major.
 *
 * What the model calls: every linear layer and 1x1 conv is csasn__pack_b at
 * load (BN folded first, bias packed with the weights) + csasn__gemm with the
 * activation and residual fused; other convs are csasn__im2col + csasn__gemm;
 * depthwise convs (BN folded, bias + SiLU/ReLU6 fused) are csasn__dwconv; ViT
 * attention is csasn__attention on the qkv GEMM's output.
 *
 * Fusion: bias is the GEMM accumulators' start value; ReLU/ReLU6 and the
 * residual are applied on the register tile; SiLU, GELU and sigmoid run over
 * each 4-row strip of output right after it is computed, while it is in L1
 * (no separate pass over the feature map); the depthwise kernel applies its
 * activation on the accumulators; attention keeps only 4 score rows per head
 * and thread, the softmax fused between its two products.
 *
 * Preconditions (sizes, strides, pointers) are asserts: the model checks its
 * hyperparameters at load, so a failing one is a bug in the caller.
 */
#ifndef CSASN_KERNELS_H
#define CSASN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

enum {
    CSASN__ACT_NONE = 0,
    CSASN__ACT_RELU,
    CSASN__ACT_RELU6,
    CSASN__ACT_SILU,
    CSASN__ACT_GELU,     /* exact (erf) GELU, as F.gelu */
    CSASN__ACT_SIGMOID,
    CSASN__ACT_COUNT
};

/* GEMM tile: MR rows of A times one B panel of NR output columns. */
#define CSASN__NR 8
#define CSASN__MR 4

/* ------------------------------------------------------------ gemm.c */

/* Floats of a packed [N x K] weight (PyTorch Linear / 1x1 conv layout):
 * ceil(N/8) panels of [1 + K][8]: the panel's 8 biases, then its K rows of 8
 * weights, zero padded past N. */
size_t csasn__pack_floats(int K, int N);
/* W[N][K] row-major and bias[N] (NULL: zeros) -> dst[csasn__pack_floats(K, N)]. */
void csasn__pack_b(const float *W, const float *bias, int N, int K, float *dst);

/* C[m][n] = act(bias[n] + sum_k A[m][k] * W[n][k]) (+ R[m][n] when R != NULL).
 * A: [M x K] with row stride lda; Bp: W and bias packed by csasn__pack_b;
 * C, R: row strides ldc, ldr. R may alias C exactly (in-place residual). */
void csasn__gemm(int M, int N, int K, const float *A, int lda, const float *Bp,
                 float *C, int ldc, const float *R, int ldr, int act);
void csasn__gemm__scalar(int M, int N, int K, const float *A, int lda, const float *Bp,
                         float *C, int ldc, const float *R, int ldr, int act);
void csasn__gemm__simd(int M, int N, int K, const float *A, int lda, const float *Bp,
                       float *C, int ldc, const float *R, int ldr, int act);

/* ------------------------------------------------------------ conv.c */

/* Depthwise convolution, HWC, "same" padding (k-1)/2, k odd, stride 1 or 2.
 * in [H][W][C], w [k*k][C] (tap-major), bias [C], out [Ho][Wo][C] with
 * Ho = (H + 2p - k)/s + 1. */
void csasn__dwconv(const float *in, int H, int W, int C, int k, int stride,
                   const float *w, const float *bias, float *out, int act);
void csasn__dwconv__scalar(const float *in, int H, int W, int C, int k, int stride,
                           const float *w, const float *bias, float *out, int act);
void csasn__dwconv__simd(const float *in, int H, int W, int C, int k, int stride,
                         const float *w, const float *bias, float *out, int act);

/* Patches for a general convolution: in [H][W][C] -> col [Ho*Wo][k*k*C], the
 * K index being (ky*k + kx)*C + c; zero outside the image. */
void csasn__im2col(const float *in, int H, int W, int C, int k, int stride, int pad,
                   float *col, int Ho, int Wo);

/* ------------------------------------------------------- activations.c */

/* In place x[n] = act(x[n]). */
void csasn__act(float *x, int n, int act);
void csasn__act__scalar(float *x, int n, int act);
void csasn__act__simd(float *x, int n, int act);

/* Scalar activation, the reference definition (libm expf / erff). */
float csasn__act1(float x, int act);

/* In place softmax of x[n], n >= 1. */
void csasn__softmax(float *x, int n);
void csasn__softmax__scalar(float *x, int n);
void csasn__softmax__simd(float *x, int n);

/* --------------------------------------------------------- attention.c */

/* Multi-head self-attention with the softmax fused: qkv [T][3D] (q | k | v,
 * head h at columns h*hd), out [T][D]; scratch: csasn__attention_scratch_floats
 * (the packed K and V of one head, 4 score rows and their packed
 * exponentials per thread). */
uint64_t csasn__attention_scratch_floats(int T, int D, int heads);   /* 64-bit: planning must not wrap in wasm */
void csasn__attention(const float *qkv, int T, int D, int heads, float *out, float *scratch);
void csasn__attention__scalar(const float *qkv, int T, int D, int heads, float *out, float *scratch);
void csasn__attention__simd(const float *qkv, int T, int D, int heads, float *out, float *scratch);

/* -------------------------------------------------------------- pool.c */

/* Global average (and max, when mx != NULL) over the HW pixels of x [HW][C]. */
void csasn__pool(const float *x, int HW, int C, float *avg, float *mx);
void csasn__pool__scalar(const float *x, int HW, int C, float *avg, float *mx);
void csasn__pool__simd(const float *x, int HW, int C, float *avg, float *mx);

/* x[p][c] *= s[c] in place (squeeze-excitation, channel attention). */
void csasn__scale(float *x, int HW, int C, const float *s);
void csasn__scale__scalar(float *x, int HW, int C, const float *s);
void csasn__scale__simd(float *x, int HW, int C, const float *s);

/* Per pixel mean and max over channels: x [HW][C] -> out [HW][2]. */
void csasn__chan_meanmax(const float *x, int HW, int C, float *out);

/* y[r][:] = (x[r][:] - mean) / sqrt(var + eps) * g + b for each of rows rows of D. */
void csasn__layernorm(const float *x, int rows, int D, int ldx, const float *g,
                      const float *b, float eps, float *y, int ldy);
void csasn__layernorm__scalar(const float *x, int rows, int D, int ldx, const float *g,
                              const float *b, float eps, float *y, int ldy);
void csasn__layernorm__simd(const float *x, int rows, int D, int ldx, const float *g,
                            const float *b, float eps, float *y, int ldy);

/* ---------------------------------------------------------- parallel.c */

/* Threads (a library built with -DCSASN_THREADS=n and -pthread: n is the
 * default count; the threaded wasm build uses 2). csasn__gemm, csasn__dwconv
 * and csasn__attention then split their outputs between that many threads,
 * with bit-identical results. Without CSASN_THREADS the count stays 1.
 * Not thread-safe itself: call it when no kernel is running. */
#define CSASN__MAX_THREADS 4
void csasn__set_threads(int n);
int csasn__threads(void);

/* ------------------------------------------------------------ warmup.c */

/* Runs every hot kernel on small scratch data, rounds times, so that a JIT
 * (V8 compiles wasm in a baseline tier first) optimises them before the first
 * real forward pass. 0, or -1 if out of memory. */
int csasn__warmup(int rounds);

/* Name of the vector instruction set compiled in ("sse2", "wasm-simd128", "scalar"). */
const char *csasn__simd_name(void);

/* selftest.c: the vector kernels against the scalar ones on fixed data; NULL,
 * or what differs. */
const char *csasn__selftest(void);

#endif /* CSASN_KERNELS_H */
