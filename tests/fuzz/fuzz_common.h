/* fuzz_common.h - shared by the image fuzz targets: the control prefix and a
 * cheap, independent guess of the pixel count an image header claims.
 *
 * The guess does NOT call stb_image: the harness must not touch the decoder
 * before the engine's own checks do (a decoder bug reached only by the
 * harness would be a false alarm). It is only used to skip images that are
 * legal but slow (4..100 MP); a wrong guess costs time, never correctness.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "csasn.h"

#define FUZZ_MAX_PIXELS (1u << 22)

static int32_t fz_rd32le(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static uint64_t fz_abs(int64_t v) { return (uint64_t)(v < 0 ? -v : v); }

/* Claimed width * height (0 when unknown). Reads the size fields every format
 * has at a fixed place (PNG IHDR, GIF screen, BMP info header) or walks to
 * the first SOF (JPEG) / the first two numbers (PNM). Any image frame of a
 * GIF may be larger than the screen, so the largest descriptor counts. */
static uint64_t fz_claimed_pixels(const uint8_t *p, size_t n)
{
    if (n >= 24 && !memcmp(p, "\x89PNG", 4))
        return ((uint64_t)p[16] << 24 | (uint64_t)p[17] << 16 | (uint64_t)p[18] << 8 | p[19]) *
               ((uint64_t)p[20] << 24 | (uint64_t)p[21] << 16 | (uint64_t)p[22] << 8 | p[23]);
    if (n >= 10 && !memcmp(p, "GIF8", 4)) {
        uint64_t best = (uint64_t)(p[6] | p[7] << 8) * (uint64_t)(p[8] | p[9] << 8);
        for (size_t i = 10; i + 9 < n; i++)
            if (p[i] == 0x2C) {
                uint64_t v = (uint64_t)(p[i + 5] | p[i + 6] << 8) * (uint64_t)(p[i + 7] | p[i + 8] << 8);
                if (v > best)
                    best = v;
            }
        return best;
    }
    if (n >= 26 && p[0] == 'B' && p[1] == 'M')
        return fz_abs(fz_rd32le(p + 18)) * fz_abs(fz_rd32le(p + 22));
    if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
        for (size_t i = 2; i + 8 < n; i++)
            if (p[i] == 0xFF && p[i + 1] >= 0xC0 && p[i + 1] <= 0xCF && p[i + 1] != 0xC4 &&
                p[i + 1] != 0xC8 && p[i + 1] != 0xCC)
                return (uint64_t)(p[i + 5] << 8 | p[i + 6]) * (uint64_t)(p[i + 7] << 8 | p[i + 8]);
        return 0;
    }
    if (n >= 2 && p[0] == 'P') {
        uint64_t v[2] = {0, 0};
        size_t i = 2;
        for (int t = 0; t < 2; t++) {
            while (i < n && (p[i] < '0' || p[i] > '9')) {
                if (p[i] == '#')
                    while (i < n && p[i] != '\n')
                        i++;
                else
                    i++;
            }
            while (i < n && p[i] >= '0' && p[i] <= '9' && v[t] < (1u << 30))
                v[t] = v[t] * 10 + (uint64_t)(p[i++] - '0');
        }
        return v[0] * v[1];
    }
    return 0;
}

/* Legal but too slow to fuzz: over FUZZ_MAX_PIXELS and within the engine's limit. */
static int fz_too_slow(const uint8_t *p, size_t n)
{
    uint64_t px = fz_claimed_pixels(p, n);
    return px > FUZZ_MAX_PIXELS && px <= CSASN_MAX_IMAGE_PIXELS;
}

/* Input: flag byte, then (flag & 1) a ROI x, y, w, h as int32 LE, then the image.
 * Returns 0 when the input is too short for its own prefix. */
static int fz_prefix(const uint8_t **data, size_t *size, uint8_t *flags, csasn_roi *roi, csasn_roi **proi)
{
    if (*size < 1)
        return 0;
    *flags = (*data)[0];
    (*data)++, (*size)--;
    *proi = NULL;
    if (*flags & 1) {
        if (*size < 16)
            return 0;
        const uint8_t *d = *data;
        roi->x = fz_rd32le(d), roi->y = fz_rd32le(d + 4), roi->w = fz_rd32le(d + 8), roi->h = fz_rd32le(d + 12);
        *proi = roi;
        *data += 16, *size -= 16;
    }
    return 1;
}

#endif
