/* adapt_metrics.h - private: the figures of an adaptation's cross-validation
 * (src/adapt.c): per-class recall and precision, macro-F1, balanced accuracy,
 * one-vs-rest AUC, malignancy AUC, 95 % bootstrap intervals over groups
 * (patients), the confusion matrix and the warnings, as one JSON object.
 * Definitions follow tools/metrics.py (AUC: Mann-Whitney with ties counted
 * half; intervals: percentile bootstrap, 1000 resamples of the groups). */
#ifndef CSASN_ADAPT_METRICS_H
#define CSASN_ADAPT_METRICS_H

#include <stdint.h>

/* Every metric takes per-sample weights w (a bootstrap resample is a
 * multiplicity per sample; NULL = all 1). */
double csasn__auc_w(const float *score, const int *pos, const double *w, int n);   /* NAN if one side is empty */
/* Confusion [K x K] (rows true, columns predicted), weighted. */
void csasn__confusion_w(const int *y, const int *pred, const double *w, int n, int K, double *conf);
double csasn__macro_f1(const double *conf, int K);
double csasn__balanced_accuracy(const double *conf, int K);

typedef struct {
    int n, K;
    const char *const *labels;   /* [K] */
    const int *y;                /* [n] true class */
    const float *probs;          /* [n x K] calibrated out-of-fold probabilities */
    const float *mal;            /* [n] out-of-fold P(malignant), NULL without a malignancy head */
    const int *malignant;        /* [K] 1 for a malignant class */
    const int *group;            /* [n] group id 0..n_groups-1 */
    int n_groups, folds, bootstrap;
    uint64_t seed;
} csasn__cv_input;

/* The report (malloc'd JSON object; NULL when out of memory). */
char *csasn__cv_report(const csasn__cv_input *in);

#endif
