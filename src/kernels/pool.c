/* pool.c - reductions over a feature map or a row (src/kernels.h): global
 * average/max pooling, the per-channel scale, the per-pixel channel mean and
 * max, and LayerNorm; scalar references and SIMD versions. */
#include "kernels.h"
#include "simd.h"
#include "vmath.h"

#include <assert.h>
#include <math.h>

void csasn__pool__scalar(const float *x, int HW, int C, float *avg, float *mx)
{
    assert(x && avg && HW >= 1 && C >= 1);
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
    assert(x && avg && HW >= 1 && C >= 1);
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

void csasn__pool(const float *x, int HW, int C, float *avg, float *mx)
{
#ifdef CSASN_SCALAR
    csasn__pool__scalar(x, HW, C, avg, mx);
#else
    csasn__pool__simd(x, HW, C, avg, mx);
#endif
}

void csasn__scale(float *x, int HW, int C, const float *s)
{
#ifdef CSASN_SCALAR
    csasn__scale__scalar(x, HW, C, s);
#else
    csasn__scale__simd(x, HW, C, s);
#endif
}

void csasn__chan_meanmax(const float *x, int HW, int C, float *out)
{
    assert(x && out && HW >= 1 && C >= 1);
    for (int p = 0; p < HW; p++) {
        const float *r = x + (size_t)p * C;
        float s = 0.0f, m = r[0];
        for (int c = 0; c < C; c++) { s += r[c]; m = r[c] > m ? r[c] : m; }
        out[2 * p] = s / (float)C;
        out[2 * p + 1] = m;
    }
}

void csasn__layernorm__scalar(const float *x, int rows, int D, int ldx, const float *g,
                              const float *b, float eps, float *y, int ldy)
{
    assert(x && g && b && y && rows >= 0 && D >= 1 && ldx >= D && ldy >= D);
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

/* One row of csasn__layernorm__simd: xr [D] -> yr [D]. */
static void layernorm_row__simd(const float *xr, int D, const float *g, const float *b, float eps, float *yr)
{
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

void csasn__layernorm__simd(const float *x, int rows, int D, int ldx, const float *g,
                            const float *b, float eps, float *y, int ldy)
{
    assert(x && g && b && y && rows >= 0 && D >= 1 && ldx >= D && ldy >= D);
    for (int r = 0; r < rows; r++)
        layernorm_row__simd(x + (size_t)r * ldx, D, g, b, eps, y + (size_t)r * ldy);
}

void csasn__layernorm(const float *x, int rows, int D, int ldx, const float *g,
                      const float *b, float eps, float *y, int ldy)
{
#ifdef CSASN_SCALAR
    csasn__layernorm__scalar(x, rows, D, ldx, g, b, eps, y, ldy);
#else
    csasn__layernorm__simd(x, rows, D, ldx, g, b, eps, y, ldy);
#endif
}
