/* fuzz_image.c - libFuzzer target: image bytes -> decode -> crop -> resize ->
 * normalise (csasn__image_to_input, src/image.h).
 *
 * Input layout: byte 0 = flags, then (flags & 1) four little-endian int32
 * x, y, w, h of a region of interest, then the image bytes. Bits 1..6 of the
 * flags pick the output size S (1..64), so both shrinking and enlarging
 * resamplers are reached; bit 7 takes the region as a model with square
 * geometry would (margin 0.25, fill 0.5: samples past the image edge).
 * The output must be finite when the call succeeds.
 *
 * Images whose header claims more than 4 megapixels but are within the
 * engine's limit (100 MP) are skipped: decoding them is legitimate but takes
 * seconds, which would stall the fuzzer; the hostile-input tests cover a
 * 50 MP scan. Claims over the limit are still passed in (they must be
 * refused before any large allocation).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags;
    csasn_roi roi, *proi;
    if (!fz_prefix(&data, &size, &flags, &roi, &proi) || fz_too_slow(data, size))
        return 0;
    int S = 1 + ((flags >> 1) & 63);
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    float *out = malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);   /* [3][S][S] */
    if (!out)
        return 0;
    int iw = -1, ih = -1;
    const csasn__region_spec square = {CSASN_REGION_SQUARE, 0.25f, 0.5f};
    const char *err = csasn__image_to_input(size ? data : NULL, size, proi, S, mean, std, out, &iw, &ih,
                                            flags & 128 ? &square : NULL, NULL);
    if (err) {
        if (!err[0])
            abort();
    } else {
        if (iw < 1 || ih < 1 || (uint64_t)iw * (uint64_t)ih > CSASN_MAX_IMAGE_PIXELS)
            abort();
        /* Gray in [0,1] normalised: every value lies in [-mean/std, (1-mean)/std]. */
        for (size_t i = 0; i < 3 * (size_t)S * (size_t)S; i++) {
            int ch = (int)(i / ((size_t)S * S));
            float lo = -mean[ch] / std[ch] - 1e-3f, hi = (1.0f - mean[ch]) / std[ch] + 1e-3f;
            if (!(out[i] >= lo && out[i] <= hi)) {
                fprintf(stderr, "out[%zu] = %g outside [%g, %g]\n", i, out[i], lo, hi);
                abort();
            }
        }
    }
    free(out);
    return 0;
}
