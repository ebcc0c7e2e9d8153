/* fuzz_model_load.c - libFuzzer target: csasn_model_load on arbitrary bytes.
 *
 * The loader must either return an error string (and no model) or a model
 * whose metadata getters all work and that runs a forward pass (on a
 * constant input) to finite probabilities; ASan/UBSan catch the rest. Seeds are a
 * tiny but complete model (tests/fuzz/corpus_model_load/), so mutations reach
 * the architecture checks and the BN folding, not only the container parser.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csasn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csasn_model *m = NULL;
    const char *err = csasn_model_load(&m, data, size);
    if (err) {
        /* An error must say something, and must not leak a half-built model. */
        if (!err[0] || strlen(err) > 4096) {
            fprintf(stderr, "bad error string (%zu chars)\n", strlen(err));
            abort();
        }
        if (m) {
            fprintf(stderr, "error '%s' but a model was returned\n", err);
            abort();
        }
        return 0;
    }
    if (!m)
        abort();
    int k = csasn_num_classes(m), S = csasn_input_size(m);
    if (k < 1 || S < 1)
        abort();
    for (int i = -1; i <= k; i++) {
        const char *l = csasn_label(m, i);
        if ((i < 0 || i >= k) != (l == NULL))
            abort();
        if (l)
            (void)strlen(l);
        if (i >= 0 && i < k)
            (void)csasn_label_is_malignant(m, i);
    }
    const char *name = csasn_model_name(m), *json = csasn_model_info_json(m);
    if (!name || !json || json[0] != '{')
        abort();
    (void)strlen(name);
    (void)strlen(json);
    /* A model that loads must run: the activation plan, the folded weights and
     * every hyperparameter the loader accepted are exercised. Inputs above
     * 256 x 256 are skipped only because they are slow, not unsafe. */
    if (S <= 256) {
        float *in = calloc((size_t)3 * S * S, sizeof(float));   /* [3][S][S] */
        csasn_result r;
        if (in) {
            const char *ferr = csasn_forward(m, in, &r);
            if (!ferr) {
                double sum = 0.0;
                for (int i = 0; i < r.n_classes; i++)
                    sum += r.probs[i];
                /* NaN-free weights and a finite input: softmax sums to 1 (1e-3: a
                 * file may hold extreme but finite weights). */
                if (r.n_classes != k || !(fabs(sum - 1.0) < 1e-3)) {
                    fprintf(stderr, "forward pass: %d classes, probabilities sum to %g\n", r.n_classes, sum);
                    abort();
                }
            }
            free(in);
        }
    }
    csasn_model_free(m);
    return 0;
}
