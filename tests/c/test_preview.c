/* test_preview.c - csasn_preview (src/preview.c) on images written here byte by
 * byte: it shows the pixels the engine decodes (8-bit exactly, 16-bit at 8
 * bits, colour as BT.601 luma) in the engine's orientation, refuses what
 * csasn_classify refuses with the same words, and csasn_preview_side bounds
 * the preview's size. */
#include "csasn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

/* `ok NAME` or `not ok NAME: why`, the lines tests/run.py counts. */
static void check(const char *name, int ok, const char *why)
{
    printf(ok ? "ok %s\n" : "not ok %s: %s\n", name, why ? why : "");
    failures += !ok;
}

/* Binary PNM (P5 gray / P6 RGB) header + samples; 2-byte big-endian samples
 * when maxval > 255, as the format says. */
static size_t pnm(uint8_t *buf, int kind, int w, int h, int maxval, const int *samples)
{
    int n = sprintf((char *)buf, "P%d\n%d %d\n%d\n", kind, w, h, maxval);
    int nc = kind == 6 ? 3 : 1;
    for (int i = 0; i < w * h * nc; i++) {
        if (maxval > 255) {
            buf[n++] = (uint8_t)(samples[i] >> 8);
            buf[n++] = (uint8_t)(samples[i] & 255);
        } else
            buf[n++] = (uint8_t)samples[i];
    }
    return (size_t)n;
}

int main(void)
{
    static uint8_t file[1 << 16], out[64 * 64];
    static int px[64 * 64 * 3];
    char why[256];

    /* 8-bit gray, side = the image's side: the antialiased filter at scale 1
     * is the identity, so the preview is the file's pixels, in the file's
     * orientation (row 0 first, column 0 left). */
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            px[y * 8 + x] = (x * 31 + y * 7) % 256;
    size_t n = pnm(file, 5, 8, 8, 255, px);
    int w = 0, h = 0, bad = 0;
    const char *err = csasn_preview(file, n, 8, out, &w, &h);
    for (int i = 0; i < 64 && !err; i++)
        bad += out[i] != px[i];
    snprintf(why, sizeof why, "%s, %dx%d, %d pixels differ", err ? err : "ok", w, h, bad);
    check("8-bit gray at its own size: the pixels themselves", !err && w == 8 && h == 8 && bad == 0, why);

    /* A wide image: each axis resampled on its own to side x side. Rows are
     * equal in the file, so every preview row equals the file's row. */
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 16; x++)
            px[y * 16 + x] = x * 16;
    n = pnm(file, 5, 16, 2, 255, px);
    err = csasn_preview(file, n, 16, out, &w, &h);
    bad = 0;
    for (int y = 0; y < 16 && !err; y++)
        for (int x = 0; x < 16; x++)
            bad += out[y * 16 + x] != px[x];
    snprintf(why, sizeof why, "%s, %dx%d, %d pixels differ", err ? err : "ok", w, h, bad);
    check("16x2 image -> 16x16 preview, columns kept", !err && w == 16 && h == 2 && bad == 0, why);

    /* 16-bit gray: samples / 65535, as the model input. 0x6464 reads the same in
     * either byte order: 25700 / 65535 = 100/255. */
    for (int i = 0; i < 16; i++)
        px[i] = i < 8 ? 0x6464 : 0;
    n = pnm(file, 5, 4, 4, 65535, px);
    err = csasn_preview(file, n, 4, out, &w, &h);
    snprintf(why, sizeof why, "%s, top %d, bottom %d", err ? err : "ok", out[0], out[15]);
    check("16-bit gray at 8 bits", !err && out[0] == 100 && out[15] == 0, why);

    /* RGB: BT.601 luma of the engine (0.299 R + 0.587 G + 0.114 B). */
    for (int i = 0; i < 4; i++) {
        px[i * 3 + 0] = i == 0 ? 255 : 0;
        px[i * 3 + 1] = i == 1 ? 255 : 0;
        px[i * 3 + 2] = i == 2 ? 255 : 0;
    }
    px[9] = px[10] = px[11] = 200;
    n = pnm(file, 6, 2, 2, 255, px);
    err = csasn_preview(file, n, 2, out, &w, &h);
    snprintf(why, sizeof why, "%s, %d %d %d %d", err ? err : "ok", out[0], out[1], out[2], out[3]);
    check("RGB shown as the engine's luma", !err && out[0] == 76 && out[1] == 150 && out[2] == 29 && out[3] == 200, why);

    /* Refusals: the decoder's own words, the very ones csasn_classify gives (a
     * small model of the hostile corpus; tests/run.py runs from the top folder). */
    csasn_model *m = NULL;
    FILE *f = fopen("tests/hostile/valid/model_tiny.csasn", "rb");
    static uint8_t model[1 << 20];
    size_t mn = f ? fread(model, 1, sizeof model, f) : 0;
    if (f) fclose(f);
    err = mn ? csasn_model_load(&m, model, mn) : "tests/hostile/valid/model_tiny.csasn unreadable";
    check("the tiny model loads", !err, err);
    n = pnm(file, 5, 8, 8, 255, px);
    const struct { const char *what; const void *p; size_t n; } refused[] = {
        {"not an image", "<html>hello</html>", 18}, {"a truncated PGM", file, n - 10}, {"no bytes", file, 0},
    };
    for (int i = 0; i < 3 && m; i++) {
        csasn_result r;
        const char *e1 = csasn_preview(refused[i].p, refused[i].n, 8, out, &w, &h);
        const char *e1copy = e1 ? strcpy(why, e1) : NULL;   /* valid until the next call */
        const char *e2 = csasn_classify(m, refused[i].p, refused[i].n, NULL, &r);
        char name[96];
        snprintf(name, sizeof name, "%s: refused with csasn_classify's message", refused[i].what);
        check(name, e1copy && e2 && !strcmp(e1copy, e2), e2 ? e2 : "classify accepted it");
    }
    if (m) csasn_model_free(m);
    err = csasn_preview(file, n, 0, out, &w, &h);
    check("side 0 refused", err != NULL, "accepted");
    err = csasn_preview(file, n, CSASN_PREVIEW_MAX_SIDE + 1, out, &w, &h);
    check("side above the maximum refused", err != NULL, "accepted");

    /* Sizes: the longest side up to the maximum; a tall image gets less so
     * the resize scratch (image_h x side doubles) stays under 64 MiB. */
    int s1 = csasn_preview_side(580, 360), s2 = csasn_preview_side(7071, 7071);
    int s3 = csasn_preview_side(1, 65535), s4 = csasn_preview_side(0, 10);
    snprintf(why, sizeof why, "%d %d %d %d", s1, s2, s3, s4);
    check("preview side", s1 == 580 && s2 == 1024 && s3 == 128 && s4 == 0 &&
          (double)s3 * 65535 * 8 <= 64.0 * 1024 * 1024, why);

    return failures ? 1 : 0;
}
