/* fuzz_dicom.c - libFuzzer target: DICOM bytes -> the reader (src/dicom.c, rle.c)
 * -> the frame decoded through image.c (deflate, JPEG frames) -> crop (the
 * tissue region) -> resize -> normalise, and the same frame as raw pixels
 * (csasn__dicom_pixels, what `csasn decode` writes).
 *
 * Input layout: byte 0 = the frame to decode (1 + byte % 4), then the file.
 * Files that declare more than 4 megapixels (within the engine's limits) are
 * skipped, as in fuzz_image.c: legitimate but slow. The output must be
 * finite and within the normalised range when the call succeeds.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom.h"
#include "image.h"

#define FUZZ_MAX_PIXELS (1u << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int frame = 1 + data[0] % 4;
    data++;
    size--;
    /* Skip the legal but slow: the declared size, read with the reader's own
     * parse (a deflated dataset is not inflated here: its output is bounded by
     * the input's 32 KB x 1032). */
    csasn__dicom d;
    if (!csasn__dicom_meta(data, size, &d) && !d.deflated &&
        !csasn__dicom_parse(data + d.dataset_off, size - d.dataset_off, &d) &&
        (uint64_t)d.rows * (uint64_t)d.cols > FUZZ_MAX_PIXELS)
        return 0;
    enum { S = 24 };
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    static float out[3 * S * S];
    csasn__image_req req = {frame, NULL, 1, NULL};
    csasn__image_meta meta;
    const char *err = csasn__image_decode(size ? data : NULL, size, &req, S, mean, std, out, &meta);
    if (err) {
        if (!err[0])
            abort();
    } else {
        if (meta.image_w < 1 || meta.image_h < 1 || meta.frame != frame || meta.frames < frame ||
            meta.roi.w < 1 || meta.roi.h < 1 || meta.roi.x + meta.roi.w > meta.image_w ||
            meta.roi.y + meta.roi.h > meta.image_h || (meta.has_spacing && !(meta.spacing_mm[0] > 0)))
            abort();
        for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
            int ch = (int)(i / (S * S));
            float lo = -mean[ch] / std[ch] - 1e-3f, hi = (1.0f - mean[ch]) / std[ch] + 1e-3f;
            if (!(out[i] >= lo && out[i] <= hi)) {
                fprintf(stderr, "out[%zu] = %g outside [%g, %g]\n", i, out[i], lo, hi);
                abort();
            }
        }
    }
    uint8_t *pix = NULL;
    int w, h, nc, bits;
    err = csasn__dicom_pixels(size ? data : NULL, size, frame, &pix, &w, &h, &nc, &bits);
    if (!err) {
        /* touch every sample: a short buffer is an ASan report */
        size_t n = (size_t)w * (size_t)h * (size_t)nc * (size_t)(bits / 8);
        unsigned sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += pix[i];
        if (sum == 0xFFFFFFFFu)
            fprintf(stderr, "-");
    }
    free(pix);
    return 0;
}
