/* adapt_metrics.c - cross-validated figures of an adaptation
 * (src/adapt_metrics.h). */
#include "adapt_metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- metrics */

typedef struct { float s; int i; } scored;

static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    return x->s < y->s ? -1 : x->s > y->s ? 1 : x->i - y->i;
}

double csasn__auc_w(const float *score, const int *pos, const double *w, int n)
{
    scored *o = malloc((size_t)(n ? n : 1) * sizeof *o);
    if (!o) return NAN;
    for (int i = 0; i < n; i++) { o[i].s = score[i]; o[i].i = i; }
    qsort(o, (size_t)n, sizeof *o, cmp_scored);
    double wp = 0.0, wn = 0.0, below = 0.0, num = 0.0;
    for (int a = 0; a < n;) {
        int b = a;
        double tp = 0.0, tn = 0.0;   /* the positives and negatives of one run of tied scores */
        while (b < n && o[b].s == o[a].s) {
            double wi = w ? w[o[b].i] : 1.0;
            if (pos[o[b].i]) tp += wi; else tn += wi;
            b++;
        }
        num += tp * (below + 0.5 * tn);
        below += tn;
        wp += tp;
        wn += tn;
        a = b;
    }
    free(o);
    return wp > 0 && wn > 0 ? num / (wp * wn) : NAN;
}

void csasn__confusion_w(const int *y, const int *pred, const double *w, int n, int K, double *conf)
{
    memset(conf, 0, (size_t)K * K * sizeof *conf);
    for (int i = 0; i < n; i++) conf[(size_t)y[i] * K + pred[i]] += w ? w[i] : 1.0;
}

static double recall_of(const double *c, int K, int k)
{
    double t = 0.0;
    for (int j = 0; j < K; j++) t += c[(size_t)k * K + j];
    return t > 0 ? c[(size_t)k * K + k] / t : NAN;
}

static double precision_of(const double *c, int K, int k)
{
    double t = 0.0;
    for (int j = 0; j < K; j++) t += c[(size_t)j * K + k];
    return t > 0 ? c[(size_t)k * K + k] / t : NAN;
}

/* tools/metrics.py macro_f1: F1 per class present in the data (0 when a
 * class is never predicted), averaged. */
double csasn__macro_f1(const double *c, int K)
{
    double s = 0.0;
    int m = 0;
    for (int k = 0; k < K; k++) {
        double r = recall_of(c, K, k);
        if (r != r) continue;
        double p = precision_of(c, K, k);
        s += (p == p && p + r > 0) ? 2 * p * r / (p + r) : 0.0;
        m++;
    }
    return m ? s / m : NAN;
}

double csasn__balanced_accuracy(const double *c, int K)
{
    double s = 0.0;
    int m = 0;
    for (int k = 0; k < K; k++) {
        double r = recall_of(c, K, k);
        if (r == r) { s += r; m++; }
    }
    return m ? s / m : NAN;
}

/* ------------------------------------------------------------ JSON text */

typedef struct { char *s; size_t n, cap; int oom; } sb;

static void sb_printf(sb *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t cap = (b->cap ? 2 * b->cap : 4096) + (size_t)k;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
}

static void sb_str(sb *b, const char *s)   /* a JSON string; HTML stays text, escaped for JSON only */
{
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_printf(b, "\\%c", *p);
        else if (*p < 0x20) sb_printf(b, "\\u%04x", *p);
        else sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

static void sb_num(sb *b, double v)
{
    if (v != v || isinf(v)) sb_printf(b, "null");
    else sb_printf(b, "%.4f", v);
}

/* -------------------------------------------------------------- bootstrap */

static uint64_t next(uint64_t *s)   /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* numpy.percentile's linear interpolation of sorted v[n] at q in [0, 100]. */
static double percentile(const double *v, int n, double q)
{
    double pos = q / 100.0 * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

/* The figures of one weighting: out[0] macro-F1, [1] balanced accuracy,
 * [2] malignancy AUC, then per class recall, precision, AUC (3 K). */
static void figures(const csasn__cv_input *in, const int *pred, const double *w, double *conf, int *pos,
                    float *col, double *out)
{
    int n = in->n, K = in->K;
    csasn__confusion_w(in->y, pred, w, n, K, conf);
    out[0] = csasn__macro_f1(conf, K);
    out[1] = csasn__balanced_accuracy(conf, K);
    out[2] = NAN;
    if (in->mal) {
        for (int i = 0; i < n; i++) pos[i] = in->malignant[in->y[i]];
        out[2] = csasn__auc_w(in->mal, pos, w, n);
    }
    for (int k = 0; k < K; k++) {
        out[3 + 3 * k] = recall_of(conf, K, k);
        out[4 + 3 * k] = precision_of(conf, K, k);
        for (int i = 0; i < n; i++) {
            pos[i] = in->y[i] == k;
            col[i] = in->probs[(size_t)i * K + k];
        }
        out[5 + 3 * k] = csasn__auc_w(col, pos, w, n);
    }
}

char *csasn__cv_report(const csasn__cv_input *in)
{
    int n = in->n, K = in->K, F = 3 + 3 * K, Bn = in->bootstrap > 0 ? in->bootstrap : 1000;
    int *pred = calloc((size_t)n + 1, sizeof *pred), *pos = malloc(((size_t)n + 1) * sizeof *pos);
    float *col = malloc((size_t)n * sizeof *col);
    double *w = malloc((size_t)n * sizeof *w), *conf = malloc((size_t)K * K * sizeof *conf);
    double *est = malloc((size_t)F * sizeof *est), *bs = malloc((size_t)F * Bn * sizeof *bs);
    double *lo = malloc((size_t)F * sizeof *lo), *hi = malloc((size_t)F * sizeof *hi), *tmp = malloc((size_t)Bn * sizeof *tmp);
    int *gcount = calloc((size_t)in->n_groups + 1, sizeof *gcount), *gstart = malloc(((size_t)in->n_groups + 1) * sizeof *gstart);
    int *members = malloc((size_t)n * sizeof *members), *fill = calloc((size_t)in->n_groups + 1, sizeof *fill);
    double *conf0 = malloc((size_t)K * K * sizeof *conf0);
    char *res = NULL;
    sb b = {0};
    if (!pred || !pos || !col || !w || !conf || !est || !bs || !lo || !hi || !tmp || !gcount || !gstart || !members || !fill || !conf0)
        goto done;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (in->probs[(size_t)i * K + k] > in->probs[(size_t)i * K + best]) best = k;
        pred[i] = best;
    }
    figures(in, pred, NULL, conf, pos, col, est);
    memcpy(conf0, conf, (size_t)K * K * sizeof *conf0);
    /* groups -> members, for resampling groups (patients) rather than images */
    for (int i = 0; i < n; i++) gcount[in->group[i]]++;
    gstart[0] = 0;
    for (int g = 0; g < in->n_groups; g++) gstart[g + 1] = gstart[g] + gcount[g];
    for (int i = 0; i < n; i++) members[gstart[in->group[i]] + fill[in->group[i]]++] = i;
    uint64_t rs = in->seed ^ 0xB0075u;
    for (int r = 0; r < Bn; r++) {
        for (int i = 0; i < n; i++) w[i] = 0.0;
        for (int j = 0; j < in->n_groups; j++) {
            int g = (int)(next(&rs) % (uint64_t)in->n_groups);
            for (int q = gstart[g]; q < gstart[g + 1]; q++) w[members[q]] += 1.0;
        }
        figures(in, pred, w, conf, pos, col, bs + (size_t)r * F);
    }
    for (int f = 0; f < F; f++) {
        int m = 0;
        for (int r = 0; r < Bn; r++) {
            double v = bs[(size_t)r * F + f];
            if (v == v) tmp[m++] = v;
        }
        qsort(tmp, (size_t)m, sizeof *tmp, cmp_double);
        lo[f] = m ? percentile(tmp, m, 2.5) : NAN;
        hi[f] = m ? percentile(tmp, m, 97.5) : NAN;
    }

    sb_printf(&b, "{\"images\": %d, \"groups\": %d, \"folds\": %d, \"bootstrap\": %d", n, in->n_groups, in->folds, Bn);
#define FIG(name, f) do { sb_printf(&b, ", \"" name "\": "); sb_num(&b, est[f]); sb_printf(&b, ", \"" name "_ci\": ["); \
        sb_num(&b, lo[f]); sb_printf(&b, ", "); sb_num(&b, hi[f]); sb_printf(&b, "]"); } while (0)
    FIG("macro_f1", 0);
    FIG("balanced_accuracy", 1);
    if (in->mal) FIG("malignancy_auc", 2);
#undef FIG
    sb_printf(&b, ", \"classes\": [");
    int warn_small = 0;
    for (int k = 0; k < K; k++) {
        int cnt = 0;
        for (int i = 0; i < n; i++) cnt += in->y[i] == k;
        sb_printf(&b, "%s{\"label\": ", k ? ", " : "");
        sb_str(&b, in->labels[k]);
        sb_printf(&b, ", \"images\": %d", cnt);
        const char *nm[3] = {"recall", "precision", "auc"};
        for (int q = 0; q < 3; q++) {
            int f = 3 + 3 * k + q;
            sb_printf(&b, ", \"%s\": ", nm[q]);
            sb_num(&b, est[f]);
            sb_printf(&b, ", \"%s_ci\": [", nm[q]);
            sb_num(&b, lo[f]);
            sb_printf(&b, ", ");
            sb_num(&b, hi[f]);
            sb_printf(&b, "]");
        }
        sb_printf(&b, "}");
        warn_small |= cnt < 10;
    }
    sb_printf(&b, "], \"confusion\": [");
    for (int k = 0; k < K; k++) {
        sb_printf(&b, "%s[", k ? ", " : "");
        for (int j = 0; j < K; j++) sb_printf(&b, "%s%d", j ? ", " : "", (int)conf0[(size_t)k * K + j]);
        sb_printf(&b, "]");
    }
    sb_printf(&b, "], \"warnings\": [");
    int nw = 0;
    for (int k = 0; k < K; k++) {
        int cnt = 0;
        for (int i = 0; i < n; i++) cnt += in->y[i] == k;
        if (cnt < 10) {
            char msg[160];
            snprintf(msg, sizeof msg, "only %d image%s: too few to say anything about this class", cnt, cnt == 1 ? "" : "s");
            sb_printf(&b, "%s{\"class\": ", nw++ ? ", " : "");
            sb_str(&b, in->labels[k]);
            sb_printf(&b, ", \"message\": ");
            sb_str(&b, msg);
            sb_printf(&b, "}");
        }
    }
    /* "wider than the effect": the interval is wider than the distance of
     * the estimate from chance (1/K for balanced accuracy, 0.5 for an AUC),
     * i.e. the data cannot tell this model from guessing with any precision. */
    double chance = 1.0 / K;
    if (est[1] == est[1] && hi[1] - lo[1] > est[1] - chance) {
        sb_printf(&b, "%s{\"figure\": \"balanced_accuracy\", \"message\": ", nw++ ? ", " : "");
        sb_str(&b, "the 95% interval of the balanced accuracy is wider than its distance from chance: more images are needed");
        sb_printf(&b, "}");
    }
    if (in->mal && est[2] == est[2] && hi[2] - lo[2] > est[2] - 0.5) {
        sb_printf(&b, "%s{\"figure\": \"malignancy_auc\", \"message\": ", nw++ ? ", " : "");
        sb_str(&b, "the 95% interval of the malignancy AUC is wider than its distance from chance (0.5): more images are needed");
        sb_printf(&b, "}");
    }
    if (in->n_groups < n && in->n_groups < 2 * in->folds) {
        sb_printf(&b, "%s{\"figure\": \"groups\", \"message\": ", nw++ ? ", " : "");
        sb_str(&b, "very few groups (patients): the folds and intervals rest on a handful of independent units");
        sb_printf(&b, "}");
    }
    (void)warn_small;
    sb_printf(&b, "]}");
    if (!b.oom) res = b.s;
    else free(b.s);
done:
    free(pred); free(pos); free(col); free(w); free(conf); free(est); free(bs); free(lo); free(hi); free(tmp);
    free(gcount); free(gstart); free(members); free(fill); free(conf0);
    return res;
}
