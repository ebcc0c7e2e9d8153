/* fuzz_classify.c - libFuzzer target: the whole csasn_classify call (decode,
 * preprocess, forward pass) on a tiny model embedded at build time
 * (tests/hostile/valid/model_tiny.csasn -> build/fuzz/tiny_model.h via xxd).
 *
 * Input: byte 0 = flags; (flags & 1): a 16-byte ROI (4 x int32 LE) follows;
 * the rest is the image. A success must give finite probabilities that sum
 * to 1, a top class in range, a malignancy in [0,1] and maps in [0,1]; the
 * same model object is reused across inputs, as the page does.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csasn.h"
#include "tiny_model.h"
#include "fuzz_common.h"

static csasn_model *model;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *err = csasn_model_load(&model, model_tiny_csasn, model_tiny_csasn_len);
    if (err) {
        fprintf(stderr, "cannot load the embedded tiny model: %s\n", err);
        abort();
    }
    return 0;
}

static void check_map(const char *what, const float *p, int h, int w)
{
    if (!p)
        return;
    if (h < 1 || w < 1 || h > 4096 || w > 4096)
        abort();
    for (int i = 0; i < h * w; i++)
        if (!(p[i] >= 0.0f && p[i] <= 1.0f)) {
            fprintf(stderr, "%s[%d] = %g\n", what, i, p[i]);
            abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags;
    csasn_roi roi, *proi;
    if (!fz_prefix(&data, &size, &flags, &roi, &proi) || fz_too_slow(data, size))
        return 0;
    csasn_result r;
    memset(&r, 0, sizeof r);
    const char *err = csasn_classify(model, size ? data : NULL, size, proi, &r);
    if (err) {
        if (!err[0])
            abort();
        return 0;
    }
    int k = csasn_num_classes(model);
    if (r.n_classes != k || r.top < 0 || r.top >= k || !r.probs || !r.logits)
        abort();
    /* Softmax in float over k <= a few classes: the sum is 1 to a few ulps;
     * 1e-4 leaves room for any summation order. */
    double sum = 0.0;
    for (int i = 0; i < k; i++) {
        if (!isfinite(r.logits[i]) || !(r.probs[i] >= 0.0f && r.probs[i] <= 1.0f))
            abort();
        sum += r.probs[i];
        if (r.probs[i] > r.probs[r.top])
            abort();
    }
    if (fabs(sum - 1.0) > 1e-4) {
        fprintf(stderr, "probabilities sum to %.9g\n", sum);
        abort();
    }
    if (r.has_malignancy && !(r.malignancy >= 0.0f && r.malignancy <= 1.0f))
        abort();
    check_map("attention", r.attention, r.att_h, r.att_w);
    check_map("mask", r.mask, r.mask_h, r.mask_w);
    if (r.image_w < 1 || r.image_h < 1)
        abort();
    return 0;
}
