/* vmath.h - private to src/kernels/: the vector math every kernel family
 * shares (exp, erf, the activations on a vector, a horizontal max), written
 * once over simd.h so that each activation has one definition for all the
 * kernels that fuse it. Header-only: everything here must inline into the
 * loops that use it. */
#ifndef CSASN_KERNELS_VMATH_H
#define CSASN_KERNELS_VMATH_H

#include "kernels.h"
#include "simd.h"

#include <string.h>

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
static inline void act_tail__simd(float *x, int n, int act)
{
    float t[4] = {0, 0, 0, 0};
    memcpy(t, x, (size_t)n * sizeof(float));
    V4_STORE(t, v4_act(V4_LOAD(t), act));
    memcpy(x, t, (size_t)n * sizeof(float));
}

/* max of x[n], n >= 1. */
static inline float max__simd(const float *x, int n)
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

#endif
