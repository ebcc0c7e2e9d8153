/* preview.c - what the engine decoded, small and gray, for a page to show
 * (src/csasn.h: csasn_preview, csasn_preview_side).
 *
 * Why the engine draws the preview: a page that decodes the file itself uses a
 * second decoder, which need not see the image the engine classifies (a
 * browser applies a JPEG's EXIF rotation, shows an APNG's animation, scales a
 * PNM by its maxval; stb_image does none of these), and a region drawn on such
 * a picture lands on other pixels than the engine crops. Here the bytes go
 * through the very decoder, gray conversion and antialiased resize that
 * csasn_classify uses (src/image.h), so the preview is the engine's view and
 * its coordinates are the engine's.
 *
 * The resize of src/image.h makes a square: the preview is side x side, each
 * axis resampled on its own, and is shown stretched to image_w : image_h.
 */
#include "csasn.h"
#include "image.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* The resize keeps one row of doubles per image row: image_h x side x 8
 * bytes besides the decoded image. Bounded here so that a tall image
 * (65535 rows) cannot make the preview cost more memory than the image. */
#define PREVIEW_SCRATCH_BYTES (64.0 * 1024 * 1024)

int csasn_preview_side(int image_w, int image_h)
{
    if (image_w <= 0 || image_h <= 0)
        return 0;
    int side = image_w > image_h ? image_w : image_h;
    if (side > CSASN_PREVIEW_MAX_SIDE)
        side = CSASN_PREVIEW_MAX_SIDE;
    double cap = PREVIEW_SCRATCH_BYTES / (8.0 * image_h);
    if (side > cap)
        side = cap < 1.0 ? 1 : (int)cap;
    return side;
}

const char *csasn_preview(const void *bytes, size_t len, int side, uint8_t *out,
                          int *image_w, int *image_h)
{
    if (!out)
        return "csasn_preview: an output buffer is required";
    if (side < 1 || side > CSASN_PREVIEW_MAX_SIDE)
        return "csasn_preview: side must be 1..CSASN_PREVIEW_MAX_SIDE";
    /* mean 0, std 1: the normalised input is the gray value itself, [3][side][side]. */
    static const float mean[3] = {0.0f, 0.0f, 0.0f}, std[3] = {1.0f, 1.0f, 1.0f};
    float *gray = malloc(sizeof(float) * 3 * (size_t)side * (size_t)side);
    if (!gray)
        return "out of memory making the preview";
    int w = 0, h = 0;
    const char *err = csasn__image_to_input(bytes, len, NULL, side, mean, std, gray, &w, &h, NULL, NULL);
    if (!err) {
        /* Channel 0 of three equal ones; the filter's weights are positive and
         * sum to 1, so values stay in [0, 1] but for rounding. */
        size_t n = (size_t)side * (size_t)side;
        for (size_t i = 0; i < n; i++) {
            float v = gray[i] * 255.0f + 0.5f;
            out[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
        }
        if (image_w) *image_w = w;
        if (image_h) *image_h = h;
    }
    free(gray);
    return err;
}
