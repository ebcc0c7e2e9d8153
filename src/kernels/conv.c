/* conv.c - convolutions other than 1x1 (src/kernels.h): depthwise
 * (scalar reference, SIMD with a two-pixel path, rows split over the thread
 * pool) and im2col, which turns a general convolution into a GEMM. */
#include "kernels.h"
#include "parallel.h"
#include "simd.h"
#include "vmath.h"

#include <assert.h>
#include <string.h>

void csasn__dwconv__scalar(const float *in, int H, int W, int C, int k, int stride,
                           const float *w, const float *bias, float *out, int act)
{
    assert(in && w && bias && out && H >= 1 && W >= 1 && C >= 1 && k >= 1 && k % 2 == 1 && (stride == 1 || stride == 2));
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
static void dwconv_pixel__simd(const float *in, int H, int W, int C, int k, int stride, const float *w,
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
                a0 = V4_MADD(a0, V4_LOAD(ip + (size_t)kx * C), V4_LOAD(wp + (size_t)kx * C));
                a1 = V4_MADD(a1, V4_LOAD(ip + (size_t)kx * C + 4), V4_LOAD(wp + (size_t)kx * C + 4));
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
                a0 = V4_MADD(a0, V4_LOAD(ip + (size_t)kx * C), V4_LOAD(wp + (size_t)kx * C));
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
        act_tail__simd(t, C - c, act);
        memcpy(o + c, t, (size_t)(C - c) * sizeof(float));
    }
}

/* Two horizontally adjacent output pixels whose taps are all inside the
 * image in x: each weight vector is loaded once for both (6 loads per tap and
 * 8 channels instead of 8). Channels below the last multiple of 8 only; the
 * rest goes through dwconv_pixel__simd. Same summation order as one pixel. */
static int dwconv_pair__simd(const float *in, int H, int W, int C, int k, int stride, const float *w,
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
                a0 = V4_MADD(a0, V4_LOAD(q), w0);
                a1 = V4_MADD(a1, V4_LOAD(q + 4), w1);
                b0 = V4_MADD(b0, V4_LOAD(q + sC), w0);
                b1 = V4_MADD(b1, V4_LOAD(q + sC + 4), w1);
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
} dwconv_job;

/* Part i of n: a contiguous range of output rows. */
static void dwconv_part__simd(void *ctx, int part, int nparts)
{
    const dwconv_job *d = ctx;
    const float *in = d->in, *w = d->w, *bias = d->bias;
    float *out = d->out;
    int H = d->H, W = d->W, C = d->C, k = d->k, stride = d->stride, act = d->act;
    int p = (k - 1) / 2, Ho = (H + 2 * p - k) / stride + 1, Wo = (W + 2 * p - k) / stride + 1;
    int y0 = (int)((int64_t)Ho * part / nparts), y1 = (int)((int64_t)Ho * (part + 1) / nparts);
    for (int oy = y0; oy < y1; oy++)
        for (int ox = 0; ox < Wo; ox++) {
            /* pair path when ox and ox+1 have every tap inside the image in x */
            if (ox + 1 < Wo && ox * stride - p >= 0 && (ox + 1) * stride - p + k <= W && C >= 8) {
                int c = dwconv_pair__simd(in, H, W, C, k, stride, w, bias, out, Wo, oy, ox, act);
                if (c < C) {
                    dwconv_pixel__simd(in, H, W, C, k, stride, w, bias, out, Wo, oy, ox, c, act);
                    dwconv_pixel__simd(in, H, W, C, k, stride, w, bias, out, Wo, oy, ox + 1, c, act);
                }
                ox++;
                continue;
            }
            dwconv_pixel__simd(in, H, W, C, k, stride, w, bias, out, Wo, oy, ox, 0, act);
        }
}

void csasn__dwconv__simd(const float *in, int H, int W, int C, int k, int stride,
                         const float *w, const float *bias, float *out, int act)
{
    assert(in && w && bias && out && H >= 1 && W >= 1 && C >= 1 && k >= 1 && k % 2 == 1 && (stride == 1 || stride == 2));
    dwconv_job d = {in, w, bias, out, H, W, C, k, stride, act};
    int p = (k - 1) / 2, Ho = (H + 2 * p - k) / stride + 1, Wo = (W + 2 * p - k) / stride + 1;
    csasn__parallel(dwconv_part__simd, &d, (double)Ho * Wo * C * k * k >= 2e5 ? Ho : 1);
}

void csasn__dwconv(const float *in, int H, int W, int C, int k, int stride,
                   const float *w, const float *bias, float *out, int act)
{
#ifdef CSASN_SCALAR
    csasn__dwconv__scalar(in, H, W, C, k, stride, w, bias, out, act);
#else
    csasn__dwconv__simd(in, H, W, C, k, stride, w, bias, out, act);
#endif
}

void csasn__im2col(const float *in, int H, int W, int C, int k, int stride, int pad,
                   float *col, int Ho, int Wo)
{
    assert(in && col && H >= 1 && W >= 1 && C >= 1 && k >= 1 && stride >= 1 && pad >= 0 && Ho >= 1 && Wo >= 1);
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
