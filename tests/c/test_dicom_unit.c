/* test_dicom_unit.c - the pieces of the DICOM path written by hand here, byte by
 * byte: RLE Lossless segments (src/rle.c: literal and repeat runs, two byte
 * planes of a 16-bit sample, every malformed header refused) and the lesion
 * diameters (src/measure.c) of shapes whose sizes are known exactly. */
#include "dicom.h"
#include "measure.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures;

static void check(const char *name, int ok, const char *why)
{
    printf(ok ? "ok %s\n" : "not ok %s: %s\n", name, why ? why : "");
    failures += !ok;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

int main(void)
{
    /* A 2 x 3 image of 16-bit samples: values 0x0102, 0x0304, ... in two segments (high bytes, low bytes). */
    uint8_t f[64 + 32];
    memset(f, 0, sizeof f);
    put32(f, 2);
    put32(f + 4, 64);
    /* high bytes 01 03 05 07 09 0B: one literal run of 6 -> header 5 */
    uint8_t seg1[] = {5, 1, 3, 5, 7, 9, 11};
    /* low bytes 02 02 02 02 04 04: repeat 4 (header -3), repeat 2 (header -1) */
    uint8_t seg2[] = {(uint8_t)-3, 2, (uint8_t)-1, 4};
    size_t n = 64;
    put32(f + 8, (uint32_t)(64 + sizeof seg1));
    memcpy(f + n, seg1, sizeof seg1);
    n += sizeof seg1;
    memcpy(f + n, seg2, sizeof seg2);
    n += sizeof seg2;
    uint8_t out[12];
    const char *err = csasn__rle_decode(f, n, 2, 3, 1, 2, out);
    static const uint8_t want[12] = {2, 1, 2, 3, 2, 5, 2, 7, 4, 9, 4, 11};   /* little-endian samples */
    check("RLE: literal and repeat runs, two byte planes of 16-bit samples", !err && !memcmp(out, want, 12),
          err ? err : "wrong bytes");
    /* -128 is a no-op */
    uint8_t g[64 + 3];
    memset(g, 0, sizeof g);
    put32(g, 1);
    put32(g + 4, 64);
    g[64] = 0x80, g[65] = (uint8_t)-1, g[66] = 9;
    uint8_t o2[2];
    err = csasn__rle_decode(g, sizeof g, 1, 2, 1, 1, o2);
    check("RLE: header -128 is skipped", !err && o2[0] == 9 && o2[1] == 9, err ? err : "wrong bytes");
    /* malformed */
    put32(f, 3);
    check("RLE: a segment count that is not samples x bytes is refused",
          csasn__rle_decode(f, n, 2, 3, 1, 2, out) != NULL, "accepted");
    put32(f, 2);
    put32(f + 8, 4000);
    check("RLE: a segment offset past the frame is refused", csasn__rle_decode(f, n, 2, 3, 1, 2, out) != NULL, "accepted");
    put32(f + 8, (uint32_t)(64 + sizeof seg1));
    check("RLE: a segment that ends early is refused", csasn__rle_decode(f, n - 1, 2, 3, 1, 2, out) != NULL, "accepted");
    check("RLE: a run past the plane is refused", csasn__rle_decode(f, n, 2, 2, 1, 2, out) != NULL, "accepted");
    check("RLE: a frame shorter than its header is refused", csasn__rle_decode(f, 40, 2, 3, 1, 2, out) != NULL, "accepted");

    /* Diameters: a 3 x 2 block of cells, each 4 x 5 pixels: the longest diameter is the diagonal
     * of the 12 x 10 rectangle, the perpendicular one its width across that diagonal, 2*area/diag. */
    float mask[6 * 8];
    memset(mask, 0, sizeof mask);
    for (int y = 1; y < 3; y++)
        for (int x = 2; x < 5; x++)
            mask[y * 8 + x] = 0.9f;
    mask[5 * 8 + 7] = 0.9f;   /* a smaller component elsewhere: ignored */
    double d[2];
    int ok = csasn__lesion_diameters(mask, 6, 8, 4.0, 5.0, 1.0, 1.0, d);
    double diag = sqrt(12.0 * 12 + 10.0 * 10), perp = 2.0 * 12 * 10 / diag;
    char why[128];
    snprintf(why, sizeof why, "got %g x %g, want %g x %g", d[0], d[1], diag, perp);
    check("diameters of a rectangle: its diagonal and the width across it", ok && fabs(d[0] - diag) < 1e-9 &&
          fabs(d[1] - perp) < 1e-9, why);
    ok = csasn__lesion_diameters(mask, 6, 8, 4.0, 5.0, 0.1, 0.2, d);
    diag = sqrt(1.2 * 1.2 + 2.0 * 2.0), perp = 2.0 * 1.2 * 2.0 / diag;
    snprintf(why, sizeof why, "got %g x %g, want %g x %g", d[0], d[1], diag, perp);
    check("diameters scaled per axis (mm): the scaled rectangle's", ok && fabs(d[0] - diag) < 1e-9 && fabs(d[1] - perp) < 1e-9, why);
    memset(mask, 0, sizeof mask);
    mask[3] = 0.5f;   /* not over 0.5 */
    check("no cell over 0.5: no lesion", !csasn__lesion_diameters(mask, 6, 8, 1, 1, 1, 1, d), "a lesion");
    mask[3] = 0.51f;
    ok = csasn__lesion_diameters(mask, 6, 8, 2.0, 2.0, 1.0, 1.0, d);
    /* a square: the width across one diagonal is the other diagonal */
    check("one cell: its diagonal, and the other diagonal across it", ok && fabs(d[0] - sqrt(8.0)) < 1e-9 &&
          fabs(d[1] - sqrt(8.0)) < 1e-9, "wrong size");
    return failures ? 1 : 0;
}
