/* report.c - the exam report: the images of one exam grouped into nodules,
 * written as the csasn-report JSON (src/REPORT.md) or as an HL7 FHIR R4 Bundle.
 *
 * Why in C: the CLI and the page must produce the same document for the same
 * inputs, number for number. Both call this file (the page through
 * shell/exports.c, in the worker that holds the model), so the combination of
 * views, the rounding and the wording exist once. Numbers are printed with a
 * fixed number of decimals (probabilities 6, percentages 4, millimetres 1) by
 * snprintf, whose decimal conversion is exact in glibc and in Emscripten's
 * musl alike; the only floating-point functions used are log and exp, on the
 * combination of views (a disagreement would have to fall on a rounding
 * boundary of the sixth decimal to show).
 *
 * How a nodule's views combine: the mean of the calibrated log-odds of
 * malignancy over its views (p = sigmoid(mean(logit p_i))) and, for the
 * classes, the normalised geometric mean of the per-view probabilities
 * (softmax of the mean log-probability). Both are what independent views of
 * one calibrated model would give up to a common factor, both leave a single
 * view unchanged, and a nodule is called suspicious when the combined
 * malignancy reaches the model's operating point. README.md gives the
 * measurement on DDTI nodules with several images.
 */
#include "csasn.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT 512              /* bytes of a name or a nodule label */

typedef struct {
    char *name, *nodule, *view;
    int has_roi;
    csasn_roi roi;
    int image_w, image_h;
    float *probs;                 /* [K] */
    int has_malig;
    float malig;
    double size_mm;
} rep_image;

typedef struct {
    char *label;
    int *images, n;               /* indices into the report's images */
    double *probs;                /* [K] combined */
    int top;
    int has_malig;
    double malig;
    double size_mm;               /* NAN when no view has a size */
} rep_nodule;

struct csasn_report {
    char *model_name;
    char sha[65];
    char date[21];
    int K, S;
    char **labels;
    int *malignant;
    int has_malig;
    float threshold;
    int body;                     /* BODY_* */
    int system;                   /* SYS_* */
    rep_image *img;
    int n_img, cap_img;
    char *out;
    size_t out_len, out_cap;
    int oom;
    char err[160];
};

enum { BODY_UNKNOWN, BODY_THYROID, BODY_BREAST };
enum { SYS_OWN, SYS_DDTI, SYS_BUSI };

/* ------------------------------------------------------------ strings */

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

/* A copy that is well-formed UTF-8 (bad bytes -> U+FFFD, controls -> space,
 * surrounding spaces trimmed), at most MAX_TEXT bytes cut at a character. */
static char *clean_text(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *p = o;
    if (!o)
        return NULL;
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        int k = utf8_len(u);
        size_t need = k == 0 ? 3 : (size_t)k;
        if ((size_t)(p - o) + need > MAX_TEXT)
            break;
        if (k == 0) {
            memcpy(p, "\xEF\xBF\xBD", 3);
            p += 3;
            u++;
        } else if (k == 1) {
            *p++ = (*u < 0x20 || *u == 0x7F) ? ' ' : (char)*u;
            u++;
        } else {
            memcpy(p, u, (size_t)k);
            p += k;
            u += k;
        }
    }
    while (p > o && p[-1] == ' ')
        p--;
    *p = 0;
    char *q = o;
    while (*q == ' ')
        q++;
    if (q != o)
        memmove(o, q, strlen(q) + 1);
    return o;
}

/* ------------------------------------------------------------ output buffer */

static void put(csasn_report *r, const char *s, size_t n)
{
    if (r->oom)
        return;
    if (r->out_len + n + 1 > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap : 4096;
        while (cap < r->out_len + n + 1)
            cap *= 2;
        char *p = realloc(r->out, cap);
        if (!p) {
            r->oom = 1;
            return;
        }
        r->out = p;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, s, n);
    r->out_len += n;
    r->out[r->out_len] = 0;
}

static void puts_(csasn_report *r, const char *s) { put(r, s, strlen(s)); }

static void putf(csasn_report *r, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    put(r, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* The inside of a JSON string, for text already made well-formed
 * (clean_text) or of our own. */
static void jraw(csasn_report *r, const char *s)
{
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        if (*u == '"' || *u == '\\') {
            char e[2] = {'\\', (char)*u};
            put(r, e, 2);
        } else if (*u < 0x20) {
            putf(r, "\\u%04x", *u);
        } else {
            put(r, (const char *)u, 1);
        }
    }
}

static void jstr(csasn_report *r, const char *s)
{
    put(r, "\"", 1);
    jraw(r, s);
    put(r, "\"", 1);
}

/* "key": "value" */
static void jkv(csasn_report *r, const char *key, const char *val)
{
    jstr(r, key);
    puts_(r, ": ");
    jstr(r, val);
}

/* A probability as the document writes it: 6 decimals. */
static void jprob(csasn_report *r, double p) { putf(r, "%.6f", p); }
/* A percentage (FHIR valueQuantity): the same precision. */
static void jpct(csasn_report *r, double p) { putf(r, "%.4f", 100.0 * p); }

/* ------------------------------------------------------------ texts */

static const char *RESEARCH_USE =
    "Research use only. Not a medical device and not a diagnosis: the output must not be used to "
    "make or change a clinical decision; a qualified clinician interprets every image.";

static const char *INTENDED_USE =
    "Intended use: an adjunct that shows a model's estimate for a region of interest that a "
    "clinician has placed on a grey-scale (B-mode) ultrasound image of a thyroid or breast "
    "nodule, to be read together with the full examination; never a diagnosis on its own. "
    "Trained on DDTI thyroid crops from one centre (IDIME, Colombia) and BUSI breast images "
    "from one hospital (Baheya, Cairo); not validated elsewhere. Not for Doppler or "
    "elastography overlays, post-surgical sites, images of normal tissue with the thyroid "
    "model, or children. Probabilities are temperature-calibrated on a small validation split; "
    "the model cards give the measured calibration error.";

static const char *label_system_text(const csasn_report *r)
{
    switch (r->system) {
    case SYS_DDTI:
        return "TI-RADS categories 2, 3, 4a, 4b, 4c and 5 as assigned by the radiologists of the "
               "DDTI database: a Kwak-style TI-RADS scale, not the ACR TI-RADS levels TR1-TR5. "
               "'Malignant' means category 4a or higher (suspicious), a radiologist's category, "
               "not a pathology result.";
    case SYS_BUSI:
        return "The BUSI dataset's image classes normal, benign and malignant (the labels its "
               "authors gave each image).";
    default:
        return "The model's own labels (see the list of labels); no standard scale.";
    }
}

static const char *body_text(int body)
{
    return body == BODY_THYROID ? "thyroid gland" : body == BODY_BREAST ? "breast" : "unknown";
}

static const char *combination_text(void)
{
    return "Views of one nodule combine as the mean of their calibrated log-odds of malignancy "
           "and the normalised geometric mean of their class probabilities; the nodule's size "
           "is the largest diameter over its views.";
}

/* ------------------------------------------------------------ building */

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* YYYY-MM-DDThh:mm:ssZ with plausible fields (FHIR instant, UTC). */
static int is_date(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
    if (!s || strlen(s) != sizeof pat - 1)
        return 0;
    for (size_t i = 0; i < sizeof pat - 1; i++) {
        if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
            return 0;
    }
    int mo = (s[5] - '0') * 10 + s[6] - '0', d = (s[8] - '0') * 10 + s[9] - '0';
    int h = (s[11] - '0') * 10 + s[12] - '0', mi = (s[14] - '0') * 10 + s[15] - '0';
    int se = (s[17] - '0') * 10 + s[18] - '0';
    return mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && se <= 60;
}

static int contains_ci(const char *s, const char *w)
{
    size_t n = strlen(w);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && (s[i] | 32) == (w[i] | 32))
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

const char *csasn_report_new(csasn_report **out, const csasn_model *m, const char *model_sha256,
                             const char *date)
{
    if (!out)
        return "report: no output pointer";
    *out = NULL;
    if (!m)
        return "report: no model";
    if (!is_hex64(model_sha256))
        return "report: the model's SHA-256 must be 64 lowercase hex digits";
    if (!is_date(date))
        return "report: the date must be YYYY-MM-DDThh:mm:ssZ (UTC)";
    csasn_report *r = calloc(1, sizeof *r);
    if (!r)
        return "report: out of memory";
    r->K = csasn_num_classes(m);
    r->S = csasn_input_size(m);
    const char *nm = csasn_model_name(m);
    r->model_name = clean_text(nm ? nm : "");
    r->labels = calloc((size_t)r->K, sizeof *r->labels);
    r->malignant = calloc((size_t)r->K, sizeof *r->malignant);
    if (!r->model_name || !r->labels || !r->malignant) {
        csasn_report_free(r);
        return "report: out of memory";
    }
    int tirads = r->K > 0, busi = r->K == 3;
    static const char *busi_labels[3] = {"normal", "benign", "malignant"};
    for (int i = 0; i < r->K; i++) {
        const char *l = csasn_label(m, i);
        if (!(r->labels[i] = clean_text(l ? l : ""))) {
            csasn_report_free(r);
            return "report: out of memory";
        }
        r->malignant[i] = csasn_label_is_malignant(m, i);
        if (strncmp(r->labels[i], "TI-RADS ", 8))
            tirads = 0;
        if (busi && strcmp(r->labels[i], busi_labels[i]))
            busi = 0;
    }
    r->threshold = csasn_malignancy_threshold(m);
    r->has_malig = !isnan(r->threshold);
    r->system = tirads ? SYS_DDTI : busi ? SYS_BUSI : SYS_OWN;
    r->body = (tirads || contains_ci(r->model_name, "thyroid")) ? BODY_THYROID
              : contains_ci(r->model_name, "breast") ? BODY_BREAST : BODY_UNKNOWN;
    memcpy(r->sha, model_sha256, 65);
    memcpy(r->date, date, 21);
    *out = r;
    return NULL;
}

const char *csasn_report_add(csasn_report *r, const csasn_report_image *img)
{
    if (!r || !img || !img->result)
        return "report: no image or result";
    const csasn_result *res = img->result;
    if (res->n_classes != r->K || !res->probs)
        return "report: the result is not of this report's model (class count differs)";
    if (r->n_img >= CSASN_REPORT_MAX_IMAGES)
        return "report: too many images (at most 1000)";
    for (int k = 0; k < r->K; k++)
        if (!(res->probs[k] >= 0 && res->probs[k] <= 1))
            return "report: a class probability is not in [0, 1]";
    if (res->has_malignancy && !(res->malignancy >= 0 && res->malignancy <= 1))
        return "report: the malignancy probability is not in [0, 1]";
    if (res->has_malignancy != r->has_malig)
        return "report: the result's malignancy head does not match the model's";
    const char *view = img->view ? img->view : "other";
    if (strcmp(view, "transverse") && strcmp(view, "longitudinal") && strcmp(view, "other"))
        return "report: view must be transverse, longitudinal or other";
    if (img->roi && (img->roi->w <= 0 || img->roi->h <= 0))
        return "report: the region of interest has no area";
    if (!isnan(img->size_mm) && !(img->size_mm > 0 && img->size_mm < 1e4))
        return "report: size_mm must be a positive number of millimetres or NAN";
    if (r->n_img == r->cap_img) {
        int cap = r->cap_img ? 2 * r->cap_img : 16;
        rep_image *p = realloc(r->img, (size_t)cap * sizeof *p);
        if (!p)
            return "report: out of memory";
        r->img = p;
        r->cap_img = cap;
    }
    rep_image *e = &r->img[r->n_img];
    memset(e, 0, sizeof *e);
    e->name = clean_text(img->name ? img->name : "");
    e->nodule = clean_text(img->nodule ? img->nodule : "");
    e->view = clean_text(view);
    e->probs = malloc((size_t)r->K * sizeof *e->probs);
    if (!e->name || !e->nodule || !e->view || !e->probs) {
        free(e->name); free(e->nodule); free(e->view); free(e->probs);
        return "report: out of memory";
    }
    if (!e->name[0]) {
        free(e->name);
        e->name = clean_text("(unnamed image)");
        if (!e->name) {
            free(e->nodule); free(e->view); free(e->probs);
            return "report: out of memory";
        }
    }
    memcpy(e->probs, res->probs, (size_t)r->K * sizeof *e->probs);
    e->has_roi = img->roi != NULL;
    if (img->roi)
        e->roi = *img->roi;
    e->image_w = res->image_w;
    e->image_h = res->image_h;
    e->has_malig = res->has_malignancy;
    e->malig = res->malignancy;
    e->size_mm = img->size_mm;
    r->n_img++;
    return NULL;
}

void csasn_report_free(csasn_report *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_img; i++) {
        free(r->img[i].name);
        free(r->img[i].nodule);
        free(r->img[i].view);
        free(r->img[i].probs);
    }
    free(r->img);
    if (r->labels)
        for (int i = 0; i < r->K; i++)
            free(r->labels[i]);
    free(r->labels);
    free(r->malignant);
    free(r->model_name);
    free(r->out);
    free(r);
}

/* ------------------------------------------------------------ nodules */

static int argmax_f(const float *p, int n)
{
    int t = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[t])
            t = i;
    return t;
}

static int argmax_d(const double *p, int n)
{
    int t = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[t])
            t = i;
    return t;
}

/* Probabilities are clamped away from 0 and 1 before log: a float32 sigmoid
 * reaches exactly 1, and one such view must not make the mean infinite. */
static double clampp(double p)
{
    const double eps = 1e-7;
    return p < eps ? eps : p > 1 - eps ? 1 - eps : p;
}

/* Groups the images by nodule label in order of first appearance; an image
 * without a label is a nodule of its own, named after the image. */
static rep_nodule *group(csasn_report *r, int *n_out)
{
    rep_nodule *nd = calloc((size_t)(r->n_img ? r->n_img : 1), sizeof *nd);
    int n = 0;
    if (!nd)
        return NULL;
    for (int i = 0; i < r->n_img; i++) {
        const char *lab = r->img[i].nodule[0] ? r->img[i].nodule : NULL;
        int j = 0;
        if (lab)
            while (j < n && !(nd[j].label && !strcmp(nd[j].label, lab)))
                j++;
        else
            j = n;
        if (j == n) {
            nd[n].label = lab ? (char *)lab : NULL;
            nd[n].images = calloc((size_t)r->n_img, sizeof(int));
            nd[n].probs = calloc((size_t)r->K, sizeof(double));
            if (!nd[n].images || !nd[n].probs) {
                free(nd[n].images);
                free(nd[n].probs);
                for (int q = 0; q < n; q++) { free(nd[q].images); free(nd[q].probs); }
                free(nd);
                return NULL;
            }
            n++;
        }
        nd[j].images[nd[j].n++] = i;
    }
    for (int j = 0; j < n; j++) {
        rep_nodule *d = &nd[j];
        double mx = -INFINITY, lo = 0, sz = NAN;
        for (int k = 0; k < r->K; k++) {
            double s = 0;
            for (int q = 0; q < d->n; q++)
                s += log(clampp(r->img[d->images[q]].probs[k]));
            d->probs[k] = s / d->n;
            if (d->probs[k] > mx)
                mx = d->probs[k];
        }
        double z = 0;
        for (int k = 0; k < r->K; k++)
            z += (d->probs[k] = exp(d->probs[k] - mx));
        for (int k = 0; k < r->K; k++)
            d->probs[k] /= z;
        if (d->n == 1) /* a single view is reported as it is, bit for bit */
            for (int k = 0; k < r->K; k++)
                d->probs[k] = r->img[d->images[0]].probs[k];
        d->top = argmax_d(d->probs, r->K);
        d->has_malig = r->has_malig;
        if (d->has_malig) {
            for (int q = 0; q < d->n; q++) {
                double p = clampp(r->img[d->images[q]].malig);
                lo += log(p / (1 - p));
            }
            d->malig = d->n == 1 ? r->img[d->images[0]].malig : 1 / (1 + exp(-lo / d->n));
        }
        for (int q = 0; q < d->n; q++) {
            double s = r->img[d->images[q]].size_mm;
            if (!isnan(s) && (isnan(sz) || s > sz))
                sz = s;
        }
        d->size_mm = sz;
    }
    *n_out = n;
    return nd;
}

static void free_nodules(rep_nodule *nd, int n)
{
    for (int j = 0; j < n; j++) {
        free(nd[j].images);
        free(nd[j].probs);
    }
    free(nd);
}

/* The name a nodule is shown by: its label, or "nodule N (image name)". */
static void nodule_name(const csasn_report *r, const rep_nodule *d, int j, char *buf, size_t n)
{
    if (d->label)
        snprintf(buf, n, "%s", d->label);
    else
        snprintf(buf, n, "nodule %d (%s)", j + 1, r->img[d->images[0]].name);
}

/* ------------------------------------------------------------ warnings */

typedef struct {
    const char *code, *text;
} warning;

/* What a reader should know about one image's result (at most 4). */
static int image_warnings(const csasn_report *r, const rep_image *e, warning w[4])
{
    int n = 0, rw = e->has_roi ? e->roi.w : e->image_w, rh = e->has_roi ? e->roi.h : e->image_h;
    int top = argmax_f(e->probs, r->K);
    if (e->probs[top] < 0.5f)
        w[n++] = (warning){"uncertain_class", "The top class has a probability below 50%: no class clearly leads."};
    if (e->has_malig && fabs((double)e->malig - (double)r->threshold) < 0.05)
        w[n++] = (warning){"near_operating_point", "The malignancy estimate lies within 5 points of the operating point: either call is weak."};
    int lo = rw < rh ? rw : rh, hi = rw < rh ? rh : rw;
    if (lo > 0 && lo * 4 < r->S)
        w[n++] = (warning){"small_region", "The region of interest is under a quarter of the model's input side: it was enlarged more than 4 times."};
    if (lo > 0 && hi > 2 * lo)
        w[n++] = (warning){"elongated_region", "The region of interest is more than twice as long as it is wide: the models were trained on near-square crops."};
    return n;
}

static int nodule_warnings(const csasn_report *r, const rep_nodule *d, warning w[2])
{
    int n = 0, above = 0, below = 0;
    for (int q = 0; d->has_malig && q < d->n; q++) {
        if (r->img[d->images[q]].malig >= r->threshold)
            above++;
        else
            below++;
    }
    if (above && below)
        w[n++] = (warning){"views_disagree", "Its views fall on both sides of the operating point."};
    return n;
}

static void jwarnings(csasn_report *r, const warning *w, int n)
{
    puts_(r, "[");
    for (int i = 0; i < n; i++) {
        puts_(r, i ? ", {" : "{");
        jkv(r, "code", w[i].code);
        puts_(r, ", ");
        jkv(r, "text", w[i].text);
        puts_(r, "}");
    }
    puts_(r, "]");
}

/* ------------------------------------------------------------ csasn-report JSON */

static void model_version(const csasn_report *r, char buf[32])
{
    /* The model file carries no version string: its digest is its identity,
     * and the version is written as "sha256:" and the first 12 hex digits. */
    snprintf(buf, 32, "sha256:%.12s", r->sha);
}

static void write_report(csasn_report *r, rep_nodule *nd, int nn)
{
    char ver[32], nm[MAX_TEXT + 64];
    model_version(r, ver);
    puts_(r, "{\n  \"format\": \"csasn-report\",\n");
    putf(r, "  \"version\": %d,\n  ", CSASN_REPORT_VERSION);
    jkv(r, "date", r->date);
    puts_(r, ",\n  \"model\": {");
    jkv(r, "name", r->model_name);
    puts_(r, ", ");
    jkv(r, "version", ver);
    puts_(r, ", ");
    jkv(r, "sha256", r->sha);
    puts_(r, ",\n    \"labels\": [");
    for (int k = 0; k < r->K; k++) {
        if (k) puts_(r, ", ");
        jstr(r, r->labels[k]);
    }
    puts_(r, "], \"malignant_labels\": [");
    for (int k = 0, c = 0; k < r->K; k++)
        if (r->malignant[k]) {
            if (c++) puts_(r, ", ");
            jstr(r, r->labels[k]);
        }
    puts_(r, "],\n    \"operating_point\": ");
    if (r->has_malig) jprob(r, r->threshold); else puts_(r, "null");
    puts_(r, ",\n    ");
    jkv(r, "label_system", label_system_text(r));
    puts_(r, ",\n    ");
    jkv(r, "body_site", body_text(r->body));
    puts_(r, "},\n  ");
    jkv(r, "combination", combination_text());
    puts_(r, ",\n  ");
    jkv(r, "intended_use", INTENDED_USE);
    puts_(r, ",\n  ");
    jkv(r, "research_use", RESEARCH_USE);
    puts_(r, ",\n  \"nodules\": [");
    for (int j = 0; j < nn; j++) {
        rep_nodule *d = &nd[j];
        warning w[4];
        nodule_name(r, d, j, nm, sizeof nm);
        puts_(r, j ? ",\n    {" : "\n    {");
        jkv(r, "label", nm);
        puts_(r, ", ");
        jkv(r, "body_site", body_text(r->body));
        puts_(r, ", \"views\": [");
        for (int q = 0; q < d->n; q++) {
            if (q) puts_(r, ", ");
            jstr(r, r->img[d->images[q]].view);
        }
        puts_(r, "],\n     \"probs\": [");
        for (int k = 0; k < r->K; k++) {
            if (k) puts_(r, ", ");
            jprob(r, d->probs[k]);
        }
        puts_(r, "], ");
        jkv(r, "top", r->labels[d->top]);
        puts_(r, ", \"malignancy\": ");
        if (d->has_malig) jprob(r, d->malig); else puts_(r, "null");
        puts_(r, ", \"above_operating_point\": ");
        puts_(r, !d->has_malig ? "null" : d->malig >= r->threshold ? "true" : "false");
        puts_(r, ", \"size_mm\": ");
        if (isnan(d->size_mm)) puts_(r, "null"); else putf(r, "%.1f", d->size_mm);
        puts_(r, ", \"warnings\": ");
        jwarnings(r, w, nodule_warnings(r, d, w));
        puts_(r, ",\n     \"images\": [");
        for (int q = 0; q < d->n; q++) {
            rep_image *e = &r->img[d->images[q]];
            puts_(r, q ? ",\n       {" : "\n       {");
            jkv(r, "name", e->name);
            puts_(r, ", ");
            jkv(r, "view", e->view);
            puts_(r, ", \"roi\": ");
            if (e->has_roi) putf(r, "{\"x\": %d, \"y\": %d, \"w\": %d, \"h\": %d}", e->roi.x, e->roi.y, e->roi.w, e->roi.h);
            else puts_(r, "null");
            putf(r, ", \"image_w\": %d, \"image_h\": %d,\n        \"probs\": [", e->image_w, e->image_h);
            for (int k = 0; k < r->K; k++) {
                if (k) puts_(r, ", ");
                jprob(r, e->probs[k]);
            }
            puts_(r, "], ");
            jkv(r, "top", r->labels[argmax_f(e->probs, r->K)]);
            puts_(r, ", \"malignancy\": ");
            if (e->has_malig) jprob(r, e->malig); else puts_(r, "null");
            puts_(r, ", \"above_operating_point\": ");
            puts_(r, !e->has_malig ? "null" : e->malig >= r->threshold ? "true" : "false");
            puts_(r, ", \"size_mm\": ");
            if (isnan(e->size_mm)) puts_(r, "null"); else putf(r, "%.1f", e->size_mm);
            puts_(r, ", \"warnings\": ");
            jwarnings(r, w, image_warnings(r, e, w));
            puts_(r, "}");
        }
        puts_(r, "]}");
    }
    puts_(r, nn ? "\n  ]\n}\n" : "]\n}\n");
}

/* ------------------------------------------------------------ FHIR R4 Bundle */

/* A UUID made from the report's own inputs (the model digest, the date, the
 * document content so far and a role), so that the same inputs give the same
 * Bundle byte for byte and two exams do not share ids. Version nibble 8
 * (RFC 9562: custom), variant 10. */
static void make_uuid(const csasn_report *r, const char *role, int index, char out[37])
{
    char seed[MAX_TEXT + 160];
    uint8_t h[32];
    snprintf(seed, sizeof seed, "%s|%s|%s|%d|%d", r->sha, r->date, role, index, r->n_img);
    size_t n = strlen(seed);
    /* the image names and their numbers tell two exams of one date apart */
    uint8_t acc[32] = {0};
    for (int i = 0; i < r->n_img; i++) {
        csasn_sha256(r->img[i].name, strlen(r->img[i].name), h);
        for (int b = 0; b < 32; b++) acc[b] ^= (uint8_t)(h[b] + (uint8_t)i);
        csasn_sha256(r->img[i].probs, (size_t)r->K * sizeof(float), h);
        for (int b = 0; b < 32; b++) acc[b] ^= h[b];
    }
    for (int b = 0; b < 32 && n + 2 < sizeof seed; b++) {
        snprintf(seed + n, sizeof seed - n, "%02x", acc[b]);
        n += 2;
    }
    csasn_sha256(seed, n, h);
    h[6] = (uint8_t)((h[6] & 0x0F) | 0x80);
    h[8] = (uint8_t)((h[8] & 0x3F) | 0x80);
    static const char hx[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hx[h[i] >> 4];
        out[o++] = hx[h[i] & 15];
    }
    out[o] = 0;
}

static const char *LABEL_SYSTEM_URI_PREFIX = "urn:csasn:labels:";

/* {"system": "http://unitsofmeasure.org", ...} percentage */
static void fhir_pct(csasn_report *r, double p)
{
    puts_(r, "{\"value\": ");
    jpct(r, p);
    puts_(r, ", \"unit\": \"%\", \"system\": \"http://unitsofmeasure.org\", \"code\": \"%\"}");
}

static void fhir_body_site(csasn_report *r, const char *nodule_label)
{
    char txt[2 * MAX_TEXT + 64];
    snprintf(txt, sizeof txt, "%s: %s", body_text(r->body), nodule_label);
    puts_(r, "{");
    /* SNOMED CT 69748006 |Thyroid gland|, as the NZHTS thyroid topography value
     * set lists it; no other code was verified, so other sites are text only. */
    if (r->body == BODY_THYROID)
        puts_(r, "\"coding\": [{\"system\": \"http://snomed.info/sct\", \"code\": \"69748006\", \"display\": \"Thyroid gland\"}], ");
    jkv(r, "text", txt);
    puts_(r, "}");
}

static void write_fhir(csasn_report *r, rep_nodule *nd, int nn)
{
    char dev[37], rep[37], obs[37], ver[32], nm[MAX_TEXT + 64], sys[MAX_TEXT + 32];
    model_version(r, ver);
    make_uuid(r, "Device", 0, dev);
    make_uuid(r, "DiagnosticReport", 0, rep);
    /* a URI may not hold spaces or quotes: other characters of the name become '-' */
    snprintf(sys, sizeof sys, "%s%s", LABEL_SYSTEM_URI_PREFIX, r->model_name[0] ? r->model_name : "model");
    for (char *c = sys + strlen(LABEL_SYSTEM_URI_PREFIX); *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_'))
            *c = '-';
    puts_(r, "{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"collection\",\n  ");
    jkv(r, "timestamp", r->date);
    puts_(r, ",\n  \"entry\": [\n");

    /* the model */
    putf(r, "    {\"fullUrl\": \"urn:uuid:%s\", \"resource\": {\"resourceType\": \"Device\", \"id\": \"%s\",\n", dev, dev);
    puts_(r, "      \"status\": \"active\",\n      \"deviceName\": [{");
    jkv(r, "name", r->model_name);
    puts_(r, ", \"type\": \"model-name\"}],\n      \"type\": {\"text\": \"Ultrasound image classification software (CSASN model), research use\"},\n");
    puts_(r, "      \"version\": [{\"type\": {\"text\": \"model version\"}, ");
    jkv(r, "value", ver);
    puts_(r, "}, {\"type\": {\"text\": \"SHA-256 of the model file\"}, ");
    jkv(r, "value", r->sha);
    puts_(r, "}],\n      \"property\": [{\"type\": {\"text\": \"malignancy operating point (probability)\"}");
    if (r->has_malig) {
        puts_(r, ", \"valueQuantity\": [");
        fhir_pct(r, r->threshold);
        puts_(r, "]");
    }
    puts_(r, "}],\n      \"note\": [{");
    jkv(r, "text", RESEARCH_USE);
    puts_(r, "}, {");
    jkv(r, "text", INTENDED_USE);
    puts_(r, "}]}}");

    /* one Observation per nodule */
    for (int j = 0; j < nn; j++) {
        rep_nodule *d = &nd[j];
        warning w[4];
        nodule_name(r, d, j, nm, sizeof nm);
        make_uuid(r, "Observation", j, obs);
        putf(r, ",\n    {\"fullUrl\": \"urn:uuid:%s\", \"resource\": {\"resourceType\": \"Observation\", \"id\": \"%s\",\n", obs, obs);
        puts_(r, "      \"status\": \"preliminary\",\n      \"code\": {\"text\": \"");
        puts_(r, d->has_malig ? "Malignancy probability of the nodule estimated by the CSASN model" : "Class probabilities of the nodule estimated by the CSASN model");
        puts_(r, "\"},\n      ");
        jkv(r, "effectiveDateTime", r->date);
        puts_(r, ", ");
        jkv(r, "issued", r->date);
        puts_(r, ",\n      \"bodySite\": ");
        fhir_body_site(r, nm);
        putf(r, ",\n      \"device\": {\"reference\": \"urn:uuid:%s\"}", dev);
        if (d->has_malig) {
            puts_(r, ",\n      \"valueQuantity\": ");
            fhir_pct(r, d->malig);
            puts_(r, ",\n      \"interpretation\": [{\"text\": \"");
            puts_(r, d->malig >= r->threshold ? "at or above the model's operating point (suspicious)" : "below the model's operating point");
            puts_(r, "\"}]");
        } else {
            puts_(r, ",\n      \"valueCodeableConcept\": {\"coding\": [{");
            jkv(r, "system", sys);
            puts_(r, ", ");
            jkv(r, "code", r->labels[d->top]);
            puts_(r, ", ");
            jkv(r, "display", r->labels[d->top]);
            puts_(r, "}], ");
            jkv(r, "text", r->labels[d->top]);
            puts_(r, "}");
        }
        puts_(r, ",\n      \"note\": [{");
        jkv(r, "text", RESEARCH_USE);
        puts_(r, "}, {");
        int nw = nodule_warnings(r, d, w);
        putf(r, "\"text\": \"Views: %d (", d->n);
        for (int q = 0; q < d->n; q++) {
            if (q) puts_(r, "; ");
            jraw(r, r->img[d->images[q]].view);
            puts_(r, " ");
            jraw(r, r->img[d->images[q]].name);
        }
        puts_(r, "). ");
        jraw(r, combination_text());
        puts_(r, "\"}");
        for (int i = 0; i < nw; i++) {
            puts_(r, ", {");
            jkv(r, "text", w[i].text);
            puts_(r, "}");
        }
        puts_(r, "],\n      \"component\": [\n        {\"code\": {\"text\": \"Top class (label system: ");
        /* the label system in words, then the coded class */
        jraw(r, label_system_text(r));
        puts_(r, ")\"}, \"valueCodeableConcept\": {\"coding\": [{");
        jkv(r, "system", sys);
        puts_(r, ", ");
        jkv(r, "code", r->labels[d->top]);
        puts_(r, ", ");
        jkv(r, "display", r->labels[d->top]);
        puts_(r, "}], ");
        jkv(r, "text", r->labels[d->top]);
        puts_(r, "}}");
        for (int k = 0; k < r->K; k++) {
            char t[MAX_TEXT + 32];
            snprintf(t, sizeof t, "Probability of class %s", r->labels[k]);
            puts_(r, ",\n        {\"code\": {");
            jkv(r, "text", t);
            puts_(r, "}, \"valueQuantity\": ");
            fhir_pct(r, d->probs[k]);
            puts_(r, "}");
        }
        if (!isnan(d->size_mm)) {
            puts_(r, ",\n        {\"code\": {\"text\": \"Largest diameter over the views\"}, \"valueQuantity\": {\"value\": ");
            putf(r, "%.1f", d->size_mm);
            puts_(r, ", \"unit\": \"mm\", \"system\": \"http://unitsofmeasure.org\", \"code\": \"mm\"}}");
        }
        puts_(r, "\n      ]}}");
    }

    /* the report */
    putf(r, ",\n    {\"fullUrl\": \"urn:uuid:%s\", \"resource\": {\"resourceType\": \"DiagnosticReport\", \"id\": \"%s\",\n", rep, rep);
    /* LOINC 18748-4 "Diagnostic imaging study" (listed in the imaging-report
     * value sets of published FHIR guides) */
    puts_(r, "      \"status\": \"preliminary\",\n      \"code\": {\"coding\": [{\"system\": \"http://loinc.org\", \"code\": \"18748-4\", \"display\": \"Diagnostic imaging study\"}], \"text\": \"Ultrasound nodule classification by the CSASN model (research use)\"},\n      ");
    jkv(r, "effectiveDateTime", r->date);
    puts_(r, ", ");
    jkv(r, "issued", r->date);
    puts_(r, ",\n      \"result\": [");
    for (int j = 0; j < nn; j++) {
        make_uuid(r, "Observation", j, obs);
        putf(r, "%s{\"reference\": \"urn:uuid:%s\"}", j ? ", " : "", obs);
    }
    puts_(r, "],\n      ");
    {
        char c[2048];
        int nsus = 0;
        for (int j = 0; j < nn; j++)
            nsus += nd[j].has_malig && nd[j].malig >= r->threshold;
        if (r->has_malig)
            snprintf(c, sizeof c, "%s %d nodule(s) from %d image(s); %d at or above the model's operating point. Labels: %s",
                     RESEARCH_USE, nn, r->n_img, nsus, label_system_text(r));
        else
            snprintf(c, sizeof c, "%s %d nodule(s) from %d image(s). Labels: %s", RESEARCH_USE, nn, r->n_img, label_system_text(r));
        jkv(r, "conclusion", c);
    }
    puts_(r, "}}\n  ]\n}\n");
}

const char *csasn_report_json(csasn_report *r, int fhir, const char **out)
{
    if (!r || !out)
        return "report: no report";
    *out = NULL;
    int nn = 0;
    rep_nodule *nd = group(r, &nn);
    if (!nd)
        return "report: out of memory";
    r->out_len = 0;
    r->oom = 0;
    if (fhir)
        write_fhir(r, nd, nn);
    else
        write_report(r, nd, nn);
    free_nodules(nd, nn);
    if (r->oom || !r->out)
        return "report: out of memory";
    *out = r->out;
    return NULL;
}
