/* activations.c - activations and softmax (src/kernels.h): the scalar
 * reference definitions (libm) and their vector versions (vmath.h). */
#include "kernels.h"
#include "simd.h"
#include "vmath.h"

#include <assert.h>
#include <math.h>
#include <string.h>

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
    if (i < n) act_tail__simd(x + i, n - i, act);
}
#undef ACT_LOOP

void csasn__act(float *x, int n, int act)
{
#ifdef CSASN_SCALAR
    csasn__act__scalar(x, n, act);
#else
    csasn__act__simd(x, n, act);
#endif
}

void csasn__softmax__scalar(float *x, int n)
{
    assert(x && n >= 1);
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

void csasn__softmax__simd(float *x, int n)
{
    assert(x && n >= 1);
    float sum = exp_sum__simd(x, n, max__simd(x, n));
    csasn__v4 r = V4_SPLAT(1.0f / sum);
    int i = 0;
    for (; i + 4 <= n; i += 4) V4_STORE(x + i, V4_MUL(V4_LOAD(x + i), r));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}

void csasn__softmax(float *x, int n)
{
#ifdef CSASN_SCALAR
    csasn__softmax__scalar(x, n);
#else
    csasn__softmax__simd(x, n);
#endif
}
