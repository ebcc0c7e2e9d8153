/* adapt.c - on-device adaptation (csasn.h, src/ARCHITECTURE.md section 9).
 *
 * 1. Feature pass: the base model's frozen network runs once per image and
 *    view (the image, its mirror, ROI jitter); the four descriptors its
 *    residual multiscale classifier reads (pooled stride-8 and stride-16
 *    maps, pooled refined map, ViT class token) are cached, taken from the
 *    forward pass's own buffers and pooled by the engine's kernel, so they are
 *    exactly what the classifier of the adapted model will see.
 * 2. Training (src/adapt_net.c): the classifier initialised from the base
 *    model, fresh subtype and malignancy heads (the latter when some classes
 *    are malignant); AdamW with weight decay and a
 *    one-cycle learning rate, tools/train_heads.py's dynamically weighted
 *    loss (class weights 0.5 sqrt-inverse-frequency + 0.5 (1 - smoothed
 *    validation recall), recomputed every epoch; balanced malignancy BCE;
 *    homoscedastic task weights), early stopping and temperatures on a
 *    grouped inner split. Every random choice comes from one seeded PRNG.
 * 3. k-fold cross-validation, grouped and stratified, then the final model on
 *    all images; the report comes from src/adapt_metrics.c.
 * 4. The new file (src/format_write.c): the base file with the classifier,
 *    heads, labels and temperatures replaced and provenance added. Heads the
 *    adaptation does not retrain keep the base model's answers only when they
 *    read the frozen part: the lesion mask reads the refined and stride-8 maps
 *    (kept, bit for bit); descriptor heads read the retrained classifier
 *    output, so they are left out and the metadata says so. */
#include "csasn.h"
#include "adapt_metrics.h"
#include "adapt_net.h"
#include "error.h"
#include "format.h"
#include "format_write.h"
#include "kernels.h"
#include "csasn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INNER_PARTS_MAX 50
#define PI 3.14159265358979323846

struct csasn_adapt {
    csasn_adapt_options o;
    uint8_t *base;
    size_t base_len;
    char sha[65];
    char *base_name;
    csasn__file file;
    csasn_model *model;
    int K, has_mal, base_has_mal, base_has_desc, base_has_seg;
    char **labels;
    int *malignant;
    csasn__anet net;
    float *init;                 /* the base classifier's parameters (heads per run) */
    int S, V, Dt;
    float *input, *jit, *flip;   /* [3 x S x S]: view 0, a jittered view, a mirrored one */
    /* samples */
    int n, cap;
    int *cls, *grp;
    float *desc;                 /* [n x V x Dt] */
    char **gnames;
    int n_groups, cap_groups;
    /* training */
    int started, done;
    int folds, job, n_jobs, epoch;
    int *fold_of;
    int *fit, n_fit, *val, n_val;
    float *p, *best, *grad, *m, *v;
    csasn__adamw opt;
    long total_steps;
    double recall_ema[CSASN_ADAPT_MAX_CLASSES], best_score;
    int best_epoch;
    csasn__anet_ws *ws;
    int ws_batch;
    float *xb, *ymb;
    int *yb, *order;
    uint64_t rng;
    float *oof_probs, *oof_mal;
    float *final_p;
    float T, Tm, thr;
    int final_epoch;
    char *report;
};

/* ---------------------------------------------------------------- random */

static uint64_t rnd(uint64_t *s)   /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rnd01(uint64_t *s) { return (double)(rnd(s) >> 11) / 9007199254740992.0; }

static void shuffle(int *v, int n, uint64_t *s)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnd(s) % (uint64_t)(i + 1)), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* --------------------------------------------------------------- options */

void csasn_adapt_default_options(csasn_adapt_options *o)
{
    memset(o, 0, sizeof *o);
    o->folds = 5;
    o->views = 2;
    o->jitter = 0.04f;
    o->epochs = 30;
    o->batch = 32;
    o->lr = 2e-3f;
    o->weight_decay = 0.05f;
    o->val_fraction = 0.17f;
    o->bootstrap = 1000;
    o->dropout = 0.1f;
}

static const char *check_options(const csasn_adapt_options *o)
{
    if (o->folds < 2 || o->folds > 20) return csasn__errf("folds = %d (2..20)", o->folds);
    if (o->views < 1 || o->views > CSASN_ADAPT_MAX_VIEWS) return csasn__errf("views = %d (1..%d)", o->views, CSASN_ADAPT_MAX_VIEWS);
    if (!(o->jitter >= 0.0f && o->jitter <= 0.25f)) return "jitter must be in 0..0.25";
    if (o->epochs < 1 || o->epochs > 1000) return csasn__errf("epochs = %d (1..1000)", o->epochs);
    if (o->batch < 1 || o->batch > 1024) return csasn__errf("batch = %d (1..1024)", o->batch);
    if (!(o->lr > 0.0f && o->lr < 1.0f)) return "lr must be in (0, 1)";
    if (!(o->weight_decay >= 0.0f && o->weight_decay < 1.0f)) return "weight_decay must be in [0, 1)";
    if (!(o->val_fraction > 0.0f && o->val_fraction <= 0.5f)) return "val_fraction must be in (0, 0.5]";
    if (o->bootstrap < 100 || o->bootstrap > 100000) return "bootstrap must be in 100..100000";
    if (!(o->dropout >= 0.0f && o->dropout < 0.9f)) return "dropout must be in [0, 0.9)";
    return NULL;
}

/* ------------------------------------------------------------ base model */

static const char *need(csasn__file *f, const char *name, csasn__tensor **t)
{
    *t = csasn__file_tensor(f, name);
    if (!*t) return csasn__errf("the base model has no tensor '%s': it cannot be adapted", name);
    return NULL;
}

/* Copies tensor name (shape out x in, or [out] when in == 0) into p. */
static const char *load_into(csasn_adapt *a, const char *name, float *p, int out, int in)
{
    csasn__tensor *t;
    const char *e = need(&a->file, name, &t);
    if (e) return e;
    size_t want = (size_t)out * (in ? in : 1);
    if (t->numel != want || t->dims[0] != (uint32_t)out)
        return csasn__errf("the base model's tensor '%s' has an unexpected shape", name);
    return csasn__tensor_to_f32(t, p);
}

static const char *load_lin(csasn_adapt *a, const char *prefix, const csasn__anet_lin *l)
{
    char nm[128];
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    const char *e = load_into(a, nm, a->init + l->w, l->out, l->in);
    if (e) return e;
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    return load_into(a, nm, a->init + l->b, l->out, 0);
}

static int valid_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CSASN_ADAPT_MAX_LABEL) return 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {   /* strict UTF-8, no control characters */
        unsigned c = p[i];
        int k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (k < 0 || (k == 0 && c < 0x20) || c == 0x7F || i + k >= n + (k ? 0 : 1)) return 0;
        uint32_t cp = k == 0 ? c : k == 1 ? (c & 0x1F) : k == 2 ? (c & 0x0F) : (c & 0x07);
        for (int j = 1; j <= k; j++) {
            if (i + j >= n || (p[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        static const uint32_t mins[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < mins[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

const char *csasn_adapt_new(csasn_adapt **out, const void *base, size_t len,
                            const char *const *classes, int n_classes,
                            const char *const *malignant, int n_malignant,
                            const csasn_adapt_options *opt)
{
    if (!out) return "csasn_adapt_new: NULL argument";
    *out = NULL;
    if (!base || !len) return "csasn_adapt_new: no base model";
    if (n_classes < 2) return csasn__errf("adaptation needs at least two classes (got %d)", n_classes);
    if (n_classes > CSASN_ADAPT_MAX_CLASSES) return csasn__errf("%d classes: at most %d", n_classes, CSASN_ADAPT_MAX_CLASSES);
    if (!classes || n_malignant < 0 || (n_malignant && !malignant)) return "csasn_adapt_new: NULL argument";
    for (int i = 0; i < n_classes; i++) {
        if (!classes[i] || !valid_label(classes[i]))
            return csasn__errf("class %d: a class name must be 1..%d bytes of UTF-8 text without control characters",
                               i + 1, CSASN_ADAPT_MAX_LABEL);
        for (int j = 0; j < i; j++)
            if (!strcmp(classes[i], classes[j])) return csasn__errf("class '%s' appears twice", classes[i]);
    }
    csasn_adapt_options o;
    if (opt) o = *opt;
    else csasn_adapt_default_options(&o);
    const char *e = check_options(&o);
    if (e) return e;

    csasn_adapt *a = calloc(1, sizeof *a);
    if (!a) return "out of memory";
    a->o = o;
    a->K = n_classes;
    a->V = o.views;
#define FAIL(msg) do { e = (msg); goto fail; } while (0)
    if (!(a->base = malloc(len))) FAIL("out of memory");
    memcpy(a->base, base, len);
    a->base_len = len;
    csasn_sha256_hex(a->base, len, a->sha);
    if ((e = csasn_model_load(&a->model, a->base, len))) FAIL(csasn__errf("base model: %s", e));
    if ((e = csasn__file_parse(&a->file, a->base, len))) FAIL(csasn__errf("base model: %s", e));
    a->base_name = strdup(csasn_model_name(a->model));
    a->labels = calloc((size_t)n_classes, sizeof *a->labels);
    a->malignant = calloc((size_t)n_classes, sizeof *a->malignant);
    if (!a->base_name || !a->labels || !a->malignant) FAIL("out of memory");
    for (int i = 0; i < n_classes; i++)
        if (!(a->labels[i] = strdup(classes[i]))) FAIL("out of memory");
    for (int i = 0; i < n_malignant; i++) {
        int j = 0;
        while (j < n_classes && (!malignant[i] || strcmp(malignant[i], classes[j]))) j++;
        if (j == n_classes) FAIL(csasn__errf("malignant class '%s' is not one of the classes", malignant[i] ? malignant[i] : "(null)"));
        a->malignant[j] = 1;
    }
    int n_mal = 0;
    for (int i = 0; i < n_classes; i++) n_mal += a->malignant[i];
    if (n_mal == n_classes) FAIL("every class is malignant: a malignancy head needs benign classes too");
    a->has_mal = n_mal > 0;
    a->base_has_mal = csasn__file_tensor(&a->file, "head_malig.weight") != NULL;
    a->base_has_seg = csasn__file_tensor(&a->file, "seg_out.weight") != NULL;
    a->base_has_desc = csasn__file_tensor(&a->file, "head_desc.0.weight") != NULL;

    /* the classifier's shape, from the base file's tensors */
    csasn__tensor *t;
    if ((e = need(&a->file, "mix.weight", &t))) FAIL(e);
    csasn__anet_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.E = (int)t->dims[0];
    int ms = csasn__file_tensor(&a->file, "proj8.weight") != NULL;
    sh.n_desc = ms ? 4 : 2;
    const char *pn[4] = {"proj8.weight", "proj16.weight", "projf.weight", "projt.weight"};
    for (int j = 0; j < sh.n_desc; j++) {
        if ((e = need(&a->file, pn[ms ? j : j + 2], &t))) FAIL(e);
        if (t->rank != 2) FAIL("the base model's projections are not matrices");
        sh.din[j] = (int)t->dims[1];
    }
    sh.nb = 0;
    for (;;) {
        char nm[64];
        snprintf(nm, sizeof nm, "cls_blocks.%d.fc1.weight", sh.nb);
        if (!(t = csasn__file_tensor(&a->file, nm))) break;
        sh.H = (int)t->dims[0];
        if (++sh.nb == CSASN__ANET_MAX_BLOCKS) break;
    }
    if (sh.nb == 0) sh.H = 1;
    sh.K = n_classes;
    sh.has_mal = a->has_mal;
    sh.ln_eps = 1e-5f;
    csasn__file_tensor(&a->file, "cls_ln.weight");
    for (uint32_t i = 0; i < a->file.n_kv; i++)
        if (!strcmp(a->file.kv[i].key, "norm.ln_eps") && a->file.kv[i].type == CSASN__T_F32) sh.ln_eps = a->file.kv[i].v.f32;
    if ((e = csasn__anet_init(&a->net, &sh))) FAIL(e);
    a->Dt = a->net.din_total;
    if (!(a->init = calloc(a->net.n, sizeof(float)))) FAIL("out of memory");
    const char *pp[4] = {"proj8", "proj16", "projf", "projt"};
    for (int j = 0; j < sh.n_desc; j++)
        if ((e = load_lin(a, pp[ms ? j : j + 2], &a->net.proj[j]))) FAIL(e);
    if ((e = load_lin(a, "mix", &a->net.mix))) FAIL(e);
    for (int k = 0; k < sh.nb; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "cls_blocks.%d.ln.weight", k);
        if ((e = load_into(a, nm, a->init + a->net.ln_g[k], sh.E, 0))) FAIL(e);
        snprintf(nm, sizeof nm, "cls_blocks.%d.ln.bias", k);
        if ((e = load_into(a, nm, a->init + a->net.ln_b[k], sh.E, 0))) FAIL(e);
        snprintf(nm, sizeof nm, "cls_blocks.%d.fc1", k);
        if ((e = load_lin(a, nm, &a->net.fc1[k]))) FAIL(e);
        snprintf(nm, sizeof nm, "cls_blocks.%d.fc2", k);
        if ((e = load_lin(a, nm, &a->net.fc2[k]))) FAIL(e);
    }
    if ((e = load_into(a, "cls_ln.weight", a->init + a->net.cln_g, sh.E, 0))) FAIL(e);
    if ((e = load_into(a, "cls_ln.bias", a->init + a->net.cln_b, sh.E, 0))) FAIL(e);

    /* buffers; a check that the forward pass yields the descriptors of these sizes */
    a->S = csasn_input_size(a->model);
    a->input = malloc((size_t)3 * a->S * a->S * sizeof(float));
    a->jit = malloc((size_t)3 * a->S * a->S * sizeof(float));
    a->flip = malloc((size_t)3 * a->S * a->S * sizeof(float));
    if (!a->input || !a->jit || !a->flip) FAIL("out of memory");
    *out = a;
    return NULL;
fail:
#undef FAIL
    csasn_adapt_free(a);
    return e;
}

void csasn_adapt_free(csasn_adapt *a)
{
    if (!a) return;
    csasn_model_free(a->model);
    csasn__file_free(&a->file);
    free(a->base);
    free(a->base_name);
    if (a->labels)
        for (int i = 0; i < a->K; i++) free(a->labels[i]);
    free(a->labels);
    free(a->malignant);
    free(a->init);
    free(a->input);
    free(a->jit);
    free(a->flip);
    free(a->cls);
    free(a->grp);
    free(a->desc);
    for (int i = 0; i < a->n_groups; i++) free(a->gnames[i]);
    free(a->gnames);
    free(a->fold_of);
    free(a->fit);
    free(a->val);
    free(a->p);
    free(a->best);
    free(a->grad);
    free(a->m);
    free(a->v);
    csasn__anet_ws_free(a->ws);
    free(a->xb);
    free(a->ymb);
    free(a->yb);
    free(a->order);
    free(a->oof_probs);
    free(a->oof_mal);
    free(a->final_p);
    free(a->report);
    free(a);
}

/* ------------------------------------------------------------ feature pass */

/* The descriptors of the last forward pass -> out [Dt]. */
static const char *descriptors(csasn_adapt *a, float *out)
{
    static const char *names[4] = {"cnn.tap8", "cnn.tap16", "refined", "vit.tokens"};
    int first = a->net.sh.n_desc == 4 ? 0 : 2;
    for (int j = 0; j < a->net.sh.n_desc; j++) {
        int shape[4] = {0}, rank = 0;
        const float *t = csasn_debug_tensor(a->model, names[first + j], shape, &rank);
        if (!t || rank < 2) return "the forward pass did not provide the classifier's descriptors";
        int C = shape[rank - 1];
        if (C != a->net.sh.din[j]) return "the base model's descriptor sizes do not match its classifier";
        if (first + j == 3) memcpy(out, t, (size_t)C * sizeof(float));      /* the class token: row 0 */
        else csasn__pool(t, shape[0] * shape[1], C, out, NULL);
        out += C;
    }
    return NULL;
}


static int group_id(csasn_adapt *a, const char *g)
{
    for (int i = 0; i < a->n_groups; i++)
        if (!strcmp(a->gnames[i], g)) return i;
    if (a->n_groups == a->cap_groups) {
        int cap = a->cap_groups ? 2 * a->cap_groups : 64;
        char **p = realloc(a->gnames, (size_t)cap * sizeof *p);
        if (!p) return -1;
        a->gnames = p;
        a->cap_groups = cap;
    }
    if (!(a->gnames[a->n_groups] = strdup(g))) return -1;
    return a->n_groups++;
}

/* Room for one more sample; NULL or an error. */
static const char *reserve(csasn_adapt *a, int cls)
{
    if (a->started) return "images cannot be added once training has started";
    if (cls < 0 || cls >= a->K) return csasn__errf("class index %d out of range (0..%d)", cls, a->K - 1);
    if (a->n >= CSASN_ADAPT_MAX_IMAGES)
        return csasn__errf("at most %d images per adaptation", CSASN_ADAPT_MAX_IMAGES);
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 256;
        int *c = realloc(a->cls, (size_t)cap * sizeof *c);
        if (c) a->cls = c;
        int *g = realloc(a->grp, (size_t)cap * sizeof *g);
        if (g) a->grp = g;
        float *d = realloc(a->desc, (size_t)cap * a->V * a->Dt * sizeof *d);
        if (d) a->desc = d;
        if (!c || !g || !d) return "out of memory caching descriptors";
        a->cap = cap;
    }
    return NULL;
}

static const char *append(csasn_adapt *a, int cls, const char *group)
{
    char own[32];
    if (!group) {
        snprintf(own, sizeof own, "\x01image %d", a->n);   /* cannot collide with a user's group name */
        group = own;
    }
    int g = group_id(a, group);
    if (g < 0) return "out of memory";
    a->cls[a->n] = cls;
    a->grp[a->n] = g;
    a->n++;
    return NULL;
}

const char *csasn_adapt_add_descriptors(csasn_adapt *a, int cls, const char *group, const float *desc)
{
    if (!a || !desc) return "csasn_adapt_add_descriptors: NULL argument";
    const char *e = reserve(a, cls);
    if (e) return e;
    size_t k = (size_t)a->V * a->Dt;
    for (size_t i = 0; i < k; i++)
        if (!isfinite(desc[i])) return "descriptors contain NaN or infinite values";
    memcpy(a->desc + (size_t)a->n * k, desc, k * sizeof(float));
    return append(a, cls, group);
}

const char *csasn_adapt_add_image(csasn_adapt *a, int cls, const char *group,
                                  const void *bytes, size_t len, const csasn_roi *roi)
{
    if (!a || !bytes) return "csasn_adapt_add_image: NULL argument";
    const char *e = reserve(a, cls);
    if (e) return e;
    float *d = a->desc + (size_t)a->n * a->V * a->Dt;
    int iw = 0, ih = 0, S = a->S;
    csasn_result r;
    e = csasn_preprocess(a->model, bytes, len, roi, a->input, &iw, &ih);
    if (e) return e;
    uint64_t vs = a->o.seed * 0x2545F4914F6CDD1DULL + (uint64_t)a->n * 0x9E3779B97F4A7C15ULL + 17;
    for (int v = 0; v < a->V; v++) {
        const float *in = a->input;
        if (v >= 2) {   /* ROI jitter: the box shifted and resized by up to +-jitter of its side */
            csasn_roi box = roi ? *roi : (csasn_roi){0, 0, iw, ih}, j;
            double J = a->o.jitter;
            j.w = (int)lround(box.w * (1.0 + J * (2.0 * rnd01(&vs) - 1.0)));
            j.h = (int)lround(box.h * (1.0 + J * (2.0 * rnd01(&vs) - 1.0)));
            j.x = box.x + (box.w - j.w) / 2 + (int)lround(J * box.w * (2.0 * rnd01(&vs) - 1.0));
            j.y = box.y + (box.h - j.h) / 2 + (int)lround(J * box.h * (2.0 * rnd01(&vs) - 1.0));
            if (j.x < 0) j.x = 0;
            if (j.y < 0) j.y = 0;
            if (j.x + j.w > iw) j.w = iw - j.x;
            if (j.y + j.h > ih) j.h = ih - j.y;
            if (j.w < 1 || j.h < 1) j = box;
            if ((e = csasn_preprocess(a->model, bytes, len, &j, a->jit, NULL, NULL))) return e;
            in = a->jit;
        }
        if (v % 2 == 1) {   /* odd views are mirrored (the image, or its jittered box) */
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < S; y++) {
                    const float *sr = in + ((size_t)c * S + y) * S;
                    float *dr = a->flip + ((size_t)c * S + y) * S;
                    for (int x = 0; x < S; x++) dr[x] = sr[S - 1 - x];
                }
            in = a->flip;
        }
        if ((e = csasn_forward(a->model, in, &r))) return e;
        if ((e = descriptors(a, d + (size_t)v * a->Dt))) return e;
    }
    return append(a, cls, group);
}

int csasn_adapt_count(const csasn_adapt *a, int cls)
{
    int c = 0;
    if (a)
        for (int i = 0; i < a->n; i++) c += a->cls[i] == cls;
    return c;
}

void csasn_adapt_descriptors(const csasn_adapt *a, int *n, int *views, int *dim,
                             const float **desc, const int **cls)
{
    *n = a ? a->n : 0;
    *views = a ? a->V : 0;
    *dim = a ? a->Dt : 0;
    *desc = a ? a->desc : NULL;
    *cls = a ? a->cls : NULL;
}

const int *csasn_adapt_groups(const csasn_adapt *a) { return a ? a->grp : NULL; }

/* ------------------------------------------------------------------ splits */

/* Stratified grouped assignment of the groups of the samples idx[m] to parts
 * 0..P-1: groups in random order, largest first, each to the part that holds
 * fewest of its majority class (then fewest samples). part_of_group [n_groups]. */
static void assign_parts(csasn_adapt *a, const int *idx, int m, int P, uint64_t *rs, int *part_of_group)
{
    int G = a->n_groups, K = a->K;
    int *size = calloc((size_t)G, sizeof *size), *cnt = calloc((size_t)G * K, sizeof *cnt);
    int *gs = malloc((size_t)G * sizeof *gs), *pc = calloc((size_t)P * K, sizeof *pc), *ps = calloc((size_t)P, sizeof *ps);
    if (!size || !cnt || !gs || !pc || !ps) {   /* out of memory: round robin, still grouped */
        for (int g = 0; g < G; g++) part_of_group[g] = g % P;
        goto done;
    }
    for (int i = 0; i < m; i++) {
        size[a->grp[idx[i]]]++;
        cnt[(size_t)a->grp[idx[i]] * K + a->cls[idx[i]]]++;
    }
    int ng = 0;
    for (int g = 0; g < G; g++) {
        part_of_group[g] = -1;
        if (size[g]) gs[ng++] = g;
    }
    shuffle(gs, ng, rs);
    for (int i = 1; i < ng; i++) {   /* stable insertion sort by size, descending */
        int g = gs[i], j = i - 1;
        while (j >= 0 && size[gs[j]] < size[g]) { gs[j + 1] = gs[j]; j--; }
        gs[j + 1] = g;
    }
    for (int i = 0; i < ng; i++) {
        int g = gs[i], maj = 0;
        for (int k = 1; k < K; k++)
            if (cnt[(size_t)g * K + k] > cnt[(size_t)g * K + maj]) maj = k;
        int bp = 0;
        for (int q = 1; q < P; q++)
            if (pc[q * K + maj] < pc[bp * K + maj] || (pc[q * K + maj] == pc[bp * K + maj] && ps[q] < ps[bp])) bp = q;
        part_of_group[g] = bp;
        for (int k = 0; k < K; k++) pc[bp * K + k] += cnt[(size_t)g * K + k];
        ps[bp] += size[g];
    }
done:
    free(size); free(cnt); free(gs); free(pc); free(ps);
}

/* --------------------------------------------------------------- training */

static float lr_at(const csasn_adapt *a, long step)
{
    /* one-cycle as torch's OneCycleLR (pct_start 0.1, div 25, final div 1e4,
     * cosine), without its momentum cycling */
    double mx = a->o.lr, lo = mx / 25.0, fin = lo / 1e4, T = (double)a->total_steps;
    double warm = 0.1 * T;
    if (warm < 1) warm = 1;
    if (step < warm) return (float)(lo + (mx - lo) * (1 - cos(PI * step / warm)) / 2);
    double t = (step - warm) / (T - warm > 1 ? T - warm : 1);
    if (t > 1) t = 1;
    return (float)(fin + (mx - fin) * (1 + cos(PI * t)) / 2);
}

/* logits / malignancy logits of view 0 of samples idx[m] -> z [m x K], zm [m]. */
static void predict(csasn_adapt *a, const float *p, const int *idx, int m, float *z, float *zm)
{
    int B = a->ws_batch, Dt = a->Dt, K = a->K;
    for (int s = 0; s < m; s += B) {
        int nb = m - s < B ? m - s : B;
        for (int b = 0; b < nb; b++)
            memcpy(a->xb + (size_t)b * Dt, a->desc + (size_t)idx[s + b] * a->V * Dt, (size_t)Dt * sizeof(float));
        const float *lg, *ml;
        csasn__anet_forward(&a->net, p, a->ws, a->xb, nb, &lg, &ml);
        memcpy(z + (size_t)s * K, lg, (size_t)nb * K * sizeof(float));
        if (zm) for (int b = 0; b < nb; b++) zm[s + b] = ml ? ml[b] : 0.0f;
    }
}

static int argmax(const float *z, int K)
{
    int b = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[b]) b = k;
    return b;
}

/* tools/metrics.py fit_temperature: the NLL minimum on a log grid in [0.25, 8]. */
static float fit_temperature(const float *z, const int *y, int m, int K, int binary)
{
    double bestv = INFINITY, bestT = 1.0;
    for (int g = 0; g <= 240; g++) {
        double T = exp(log(0.25) + (log(8.0) - log(0.25)) * g / 240.0), nll = 0.0;
        for (int i = 0; i < m; i++) {
            if (binary) {
                double pz = 1.0 / (1.0 + exp(-z[i] / T));
                pz = pz < 1e-12 ? 1e-12 : pz > 1 - 1e-12 ? 1 - 1e-12 : pz;
                nll -= y[i] ? log(pz) : log(1 - pz);
            } else {
                const float *r = z + (size_t)i * K;
                double mx = r[0], se = 0.0;
                for (int k = 1; k < K; k++) if (r[k] > mx) mx = r[k];
                for (int k = 0; k < K; k++) se += exp((r[k] - mx) / T);
                double pz = exp((r[y[i]] - mx) / T) / se;
                nll -= log(pz < 1e-12 ? 1e-12 : pz);
            }
        }
        if (nll < bestv) { bestv = nll; bestT = T; }
    }
    return m ? (float)bestT : 1.0f;
}

/* tools/metrics.py youden_threshold on probabilities p. */
static float youden(const float *p, const int *y, int m)
{
    int np = 0;
    for (int i = 0; i < m; i++) np += y[i];
    if (np == 0 || np == m) return 0.5f;
    float *u = malloc((size_t)m * sizeof *u);
    if (!u) return 0.5f;
    memcpy(u, p, (size_t)m * sizeof *u);
    for (int i = 1; i < m; i++) {   /* insertion sort: validation sets are small */
        float v = u[i];
        int j = i - 1;
        while (j >= 0 && u[j] > v) { u[j + 1] = u[j]; j--; }
        u[j + 1] = v;
    }
    double best = -1, bt = 0.5;
    for (int c = -1; c < m; c++) {
        if (c >= 0 && c + 1 < m && u[c + 1] == u[c]) continue;
        double t = c < 0 ? 0.0 : c + 1 < m ? (u[c] + u[c + 1]) / 2.0 : 1.0;
        if (c >= 0 && c + 1 < m) {   /* midpoints between distinct neighbours */
            int k = c + 1;
            while (k < m && u[k] == u[c]) k++;
            if (k == m) continue;
            t = (u[c] + u[k]) / 2.0;
        }
        int tp = 0, tn = 0;
        for (int i = 0; i < m; i++) {
            int pr = p[i] >= t;
            tp += pr && y[i];
            tn += !pr && !y[i];
        }
        double jv = (double)tp / np + (double)tn / (m - np) - 1;
        if (jv > best) { best = jv; bt = t; }
    }
    free(u);
    return (float)bt;
}

/* Validation score of p on the inner split (early stopping) and the recall
 * per class (the dynamic weights). */
static double validate(csasn_adapt *a, const float *p, double *recall)
{
    int m = a->n_val, K = a->K;
    float *z = malloc(((size_t)m * K + 1) * sizeof *z), *zm = malloc(((size_t)m + 1) * sizeof *zm);
    int *y = malloc(((size_t)m + 1) * sizeof *y), *pr = malloc(((size_t)m + 1) * sizeof *pr), *pos = malloc(((size_t)m + 1) * sizeof *pos);
    double *conf = malloc((size_t)K * K * sizeof *conf), score = -1e9;
    if (!z || !zm || !y || !pr || !pos || !conf) goto done;
    predict(a, p, a->val, m, z, zm);
    for (int i = 0; i < m; i++) {
        y[i] = a->cls[a->val[i]];
        pr[i] = argmax(z + (size_t)i * K, K);
        pos[i] = a->malignant[y[i]];
    }
    csasn__confusion_w(y, pr, NULL, m, K, conf);
    for (int k = 0; k < K; k++) {
        double t = 0.0;
        for (int j = 0; j < K; j++) t += conf[(size_t)k * K + j];
        recall[k] = t > 0 ? conf[(size_t)k * K + k] / t : -1.0;
    }
    double f1 = csasn__macro_f1(conf, K);
    if (f1 != f1) f1 = 0.0;
    double auc = a->has_mal ? csasn__auc_w(zm, pos, NULL, m) : NAN;
    score = (auc == auc ? auc : 0.5) + 0.5 * f1;
done:
    free(z); free(zm); free(y); free(pr); free(pos); free(conf);
    return score;
}

static const char *job_begin(csasn_adapt *a)
{
    int n = a->n, j = a->job;
    uint64_t rs = a->o.seed * 1000003ULL + (uint64_t)j * 7919ULL + 1;
    /* the training samples of this run: all but the held-out fold (all for the final model) */
    int *tr = calloc((size_t)n + 1, sizeof *tr), m = 0;
    int *pg = malloc((size_t)a->n_groups * sizeof *pg);
    if (!tr || !pg) { free(tr); free(pg); return "out of memory"; }
    for (int i = 0; i < n; i++)
        if (j == a->folds || a->fold_of[i] != j) tr[m++] = i;
    int P = (int)lround(1.0 / a->o.val_fraction);
    if (P < 2) P = 2;
    if (P > INNER_PARTS_MAX) P = INNER_PARTS_MAX;
    assign_parts(a, tr, m, P, &rs, pg);
    a->n_fit = a->n_val = 0;
    for (int i = 0; i < m; i++) {
        if (pg[a->grp[tr[i]]] == 0) a->val[a->n_val++] = tr[i];
        else a->fit[a->n_fit++] = tr[i];
    }
    if (a->n_fit == 0 || a->n_val == 0) {   /* too few groups for an inner split: validate on the fit set */
        a->n_fit = a->n_val = m;
        memcpy(a->fit, tr, (size_t)m * sizeof *tr);
        memcpy(a->val, tr, (size_t)m * sizeof *tr);
    }
    free(tr);
    free(pg);
    /* parameters: the base classifier, fresh subtype and malignancy heads (the
     * user's classes and grouping are new: the base model's malignancy head,
     * trained on another organ or labelling, made a worse start on both
     * cross-domain checks, BUSI and DDTI), task log-variances 0 */
    memcpy(a->p, a->init, a->net.n * sizeof(float));
    unsigned long long ir = (unsigned long long)(a->o.seed * 31 + (uint64_t)j * 1315423911ULL + 99) | 1ULL;
    csasn__anet_init_linear(&a->net, a->p, &a->net.sub, &ir);
    if (a->has_mal) csasn__anet_init_linear(&a->net, a->p, &a->net.mal, &ir);
    a->p[a->net.logvar] = a->p[a->net.logvar + 1] = 0.0f;
    memset(a->m, 0, a->net.n * sizeof(float));
    memset(a->v, 0, a->net.n * sizeof(float));
    a->opt = (csasn__adamw){a->o.lr, a->o.weight_decay, 0.9f, 0.999f, 1e-8f, 0, a->m, a->v};
    a->total_steps = (long)a->o.epochs * ((a->n_fit + a->o.batch - 1) / a->o.batch);
    for (int k = 0; k < a->K; k++) a->recall_ema[k] = 0.5;
    a->best_score = -1e300;
    a->best_epoch = 0;
    memcpy(a->best, a->p, a->net.n * sizeof(float));
    a->rng = rs;
    a->epoch = 0;
    return NULL;
}

/* tools/train_heads.py class_weights (dynamic). */
static void class_weights(const csasn_adapt *a, float *cw)
{
    int K = a->K;
    double c[CSASN_ADAPT_MAX_CLASSES], tot = 0.0, inv[CSASN_ADAPT_MAX_CLASSES], im = 0.0, rw[CSASN_ADAPT_MAX_CLASSES], rm = 0.0;
    for (int k = 0; k < K; k++) c[k] = 0.0;
    for (int i = 0; i < a->n_fit; i++) c[a->cls[a->fit[i]]] += 1.0;
    for (int k = 0; k < K; k++) { if (c[k] < 1) c[k] = 1; tot += c[k]; }
    for (int k = 0; k < K; k++) { inv[k] = sqrt(tot / K / c[k]); im += inv[k] / K; }
    for (int k = 0; k < K; k++) { inv[k] /= im; rw[k] = 1.0 - a->recall_ema[k] + 0.1; rm += rw[k] / K; }
    double wm = 0.0, w[CSASN_ADAPT_MAX_CLASSES];
    for (int k = 0; k < K; k++) { w[k] = 0.5 * inv[k] + 0.5 * rw[k] / rm; wm += w[k] / K; }
    for (int k = 0; k < K; k++) {
        double v = w[k] / wm;
        cw[k] = (float)(v < 0.1 ? 0.1 : v > 5.0 ? 5.0 : v);
    }
}

static void train_epoch(csasn_adapt *a)
{
    int B = a->o.batch, Dt = a->Dt;
    float cw[CSASN_ADAPT_MAX_CLASSES];
    class_weights(a, cw);
    int pos = 0, neg = 0;
    for (int i = 0; i < a->n_fit; i++) {
        if (a->malignant[a->cls[a->fit[i]]]) pos++;
        else neg++;
    }
    float pw = (float)(neg > 0 ? neg : 1) / (float)(pos > 0 ? pos : 1);
    memcpy(a->order, a->fit, (size_t)a->n_fit * sizeof(int));
    shuffle(a->order, a->n_fit, &a->rng);
    for (int s = 0; s < a->n_fit; s += B) {
        int nb = a->n_fit - s < B ? a->n_fit - s : B;
        for (int b = 0; b < nb; b++) {
            int i = a->order[s + b], v = (int)(rnd(&a->rng) % (uint64_t)a->V);
            float *xr = a->xb + (size_t)b * Dt;
            memcpy(xr, a->desc + ((size_t)i * a->V + v) * Dt, (size_t)Dt * sizeof(float));
            if (a->o.dropout > 0.0f) {   /* feature dropout, as tools/train_heads.py on its cached maps */
                float keep = 1.0f / (1.0f - a->o.dropout);
                for (int k = 0; k < Dt; k++) xr[k] = rnd01(&a->rng) < a->o.dropout ? 0.0f : xr[k] * keep;
            }
            a->yb[b] = a->cls[i];
            a->ymb[b] = (float)a->malignant[a->cls[i]];
        }
        csasn__anet_target t = {a->yb, a->has_mal ? a->ymb : NULL, cw, 0.05f, pw};
        csasn__anet_loss_grad(&a->net, a->p, a->ws, a->xb, nb, &t, a->grad);
        a->opt.lr = lr_at(a, a->opt.step);
        csasn__adamw_step(&a->opt, a->p, a->grad, a->net.n);
    }
}

static const char *job_end(csasn_adapt *a)
{
    int K = a->K, m = a->n_val;
    memcpy(a->p, a->best, a->net.n * sizeof(float));
    /* temperatures (and the malignancy operating point) on the inner split */
    float *z = malloc(((size_t)m * K + 1) * sizeof *z), *zm = malloc(((size_t)m + 1) * sizeof *zm);
    int *y = malloc(((size_t)m + 1) * sizeof *y), *ym = malloc(((size_t)m + 1) * sizeof *ym);
    if (!z || !zm || !y || !ym) { free(z); free(zm); free(y); free(ym); return "out of memory"; }
    predict(a, a->p, a->val, m, z, zm);
    for (int i = 0; i < m; i++) { y[i] = a->cls[a->val[i]]; ym[i] = a->malignant[y[i]]; }
    float T = fit_temperature(z, y, m, K, 0), Tm = 1.0f, thr = 0.5f;
    if (a->has_mal) {
        Tm = fit_temperature(zm, ym, m, 1, 1);
        for (int i = 0; i < m; i++) zm[i] = 1.0f / (1.0f + expf(-zm[i] / Tm));
        thr = youden(zm, ym, m);
    }
    free(z); free(zm); free(y); free(ym);
    if (a->job < a->folds) {   /* predict the held-out fold */
        int *te = calloc((size_t)a->n + 1, sizeof *te), nt = 0;
        if (!te) return "out of memory";
        for (int i = 0; i < a->n; i++)
            if (a->fold_of[i] == a->job) te[nt++] = i;
        float *zt = malloc(((size_t)nt * K + 1) * sizeof *zt), *zmt = malloc(((size_t)nt + 1) * sizeof *zmt);
        if (!zt || !zmt) { free(te); free(zt); free(zmt); return "out of memory"; }
        predict(a, a->p, te, nt, zt, zmt);
        for (int i = 0; i < nt; i++) {
            float *pr = a->oof_probs + (size_t)te[i] * K;
            for (int k = 0; k < K; k++) pr[k] = zt[(size_t)i * K + k] / T;
            csasn__softmax(pr, K);
            if (a->has_mal) a->oof_mal[te[i]] = 1.0f / (1.0f + expf(-zmt[i] / Tm));
        }
        free(te); free(zt); free(zmt);
    } else {
        memcpy(a->final_p, a->p, a->net.n * sizeof(float));
        a->T = T;
        a->Tm = Tm;
        a->thr = thr;
        a->final_epoch = a->best_epoch + 1;
    }
    return NULL;
}

static const char *start(csasn_adapt *a)
{
    if (a->n == 0) return "no images were added";
    for (int k = 0; k < a->K; k++)
        if (csasn_adapt_count(a, k) == 0) return csasn__errf("class '%s' has no images", a->labels[k]);
    int ng = a->n_groups;
    a->folds = a->o.folds;
    if (ng < a->folds) {
        if (ng < 2) return "all images belong to one group: cross-validation needs at least two groups";
        a->folds = ng;
    }
    size_t n = (size_t)a->n, P = a->net.n;
    a->fold_of = malloc(n * sizeof(int));
    a->fit = malloc(n * sizeof(int));
    a->val = malloc(n * sizeof(int));
    a->order = malloc(n * sizeof(int));
    a->p = malloc(P * sizeof(float));
    a->best = malloc(P * sizeof(float));
    a->grad = malloc(P * sizeof(float));
    a->m = malloc(P * sizeof(float));
    a->v = malloc(P * sizeof(float));
    a->final_p = malloc(P * sizeof(float));
    a->oof_probs = calloc(n * a->K, sizeof(float));
    a->oof_mal = calloc(n, sizeof(float));
    a->ws_batch = a->o.batch > 64 ? a->o.batch : 64;
    a->ws = csasn__anet_ws_new(&a->net, a->ws_batch);
    a->xb = malloc((size_t)a->ws_batch * a->Dt * sizeof(float));
    a->yb = malloc((size_t)a->ws_batch * sizeof(int));
    a->ymb = malloc((size_t)a->ws_batch * sizeof(float));
    int *pg = malloc((size_t)ng * sizeof *pg), *all = calloc(n + 1, sizeof *all);
    if (!a->fold_of || !a->fit || !a->val || !a->order || !a->p || !a->best || !a->grad || !a->m || !a->v ||
        !a->final_p || !a->oof_probs || !a->oof_mal || !a->ws || !a->xb || !a->yb || !a->ymb || !pg || !all) {
        free(pg);
        free(all);
        return "out of memory";
    }
    for (int i = 0; i < a->n; i++) all[i] = i;
    uint64_t rs = a->o.seed * 0x9E3779B97F4A7C15ULL + 5;
    assign_parts(a, all, a->n, a->folds, &rs, pg);
    for (int i = 0; i < a->n; i++) a->fold_of[i] = pg[a->grp[i]];
    free(pg);
    free(all);
    a->n_jobs = a->folds + 1;
    a->job = 0;
    a->started = 1;
    return job_begin(a);
}

static const char *make_report(csasn_adapt *a)
{
    csasn__cv_input in = {a->n, a->K, (const char *const *)a->labels, a->cls, a->oof_probs,
                          a->has_mal ? a->oof_mal : NULL, a->malignant, a->grp, a->n_groups, a->folds,
                          a->o.bootstrap, a->o.seed};
    char *r = csasn__cv_report(&in);
    if (!r) return "out of memory writing the report";
    /* the training facts and the heads, in place of the report's closing brace */
    char extra[1024];
    int k = snprintf(extra, sizeof extra, ", \"views\": %d, \"epochs\": %d, \"final_best_epoch\": %d, \"temperature\": %.4f",
                     a->V, a->o.epochs, a->final_epoch, (double)a->T);
    if (a->has_mal)
        k += snprintf(extra + k, sizeof extra - (size_t)k, ", \"malignancy_temperature\": %.4f, \"malignancy_threshold\": %.4f",
                      (double)a->Tm, (double)a->thr);
    k += snprintf(extra + k, sizeof extra - (size_t)k, ", \"heads_kept\": [%s], \"heads_left_out\": [",
                  a->base_has_seg ? "\"lesion mask: it reads the frozen refined and stride-8 maps, so it gives the base model's answers\"" : "");
    int nl = 0;
    if (a->base_has_desc)
        k += snprintf(extra + k, sizeof extra - (size_t)k, "%s\"descriptor heads: they read the retrained classifier's output\"", nl++ ? ", " : "");
    if (a->base_has_mal && !a->has_mal)
        k += snprintf(extra + k, sizeof extra - (size_t)k, "%s\"malignancy: no class was marked malignant\"", nl++ ? ", " : "");
    snprintf(extra + k, sizeof extra - (size_t)k, "]}");
    size_t L = strlen(r);
    char *full = malloc(L + strlen(extra) + 1);
    if (!full) { free(r); return "out of memory writing the report"; }
    memcpy(full, r, L - 1);
    strcpy(full + L - 1, extra);
    free(r);
    a->report = full;
    return NULL;
}

const char *csasn_adapt_step(csasn_adapt *a, double *progress, int *done)
{
    if (!a) return "csasn_adapt_step: NULL argument";
    const char *e;
    if (!a->started && (e = start(a))) return e;
    if (!a->done) {
        train_epoch(a);
        double rec[CSASN_ADAPT_MAX_CLASSES];
        double score = validate(a, a->p, rec);
        for (int k = 0; k < a->K; k++)
            if (rec[k] >= 0) a->recall_ema[k] = 0.7 * a->recall_ema[k] + 0.3 * rec[k];
        if (score > a->best_score) {
            a->best_score = score;
            a->best_epoch = a->epoch;
            memcpy(a->best, a->p, a->net.n * sizeof(float));
        }
        if (++a->epoch == a->o.epochs) {
            if ((e = job_end(a))) return e;
            if (++a->job == a->n_jobs) {
                if ((e = make_report(a))) return e;
                a->done = 1;
            } else if ((e = job_begin(a))) {
                return e;
            }
        }
    }
    if (progress) *progress = a->done ? 1.0 : (double)(a->job * a->o.epochs + a->epoch) / (double)(a->n_jobs * a->o.epochs);
    if (done) *done = a->done;
    return NULL;
}

const char *csasn_adapt_report_json(const csasn_adapt *a) { return a && a->done ? a->report : NULL; }

/* ------------------------------------------------------------------ write */

static int retrained(const char *name)
{
    static const char *pre[] = {"proj8.", "proj16.", "projf.", "projt.", "mix.", "cls_blocks.", "cls_ln.",
                                "head_subtype.", "head_malig.", "head_desc."};
    for (size_t i = 0; i < sizeof pre / sizeof *pre; i++)
        if (!strncmp(name, pre[i], strlen(pre[i]))) return 1;
    return 0;
}

static int replaced_key(const char *k)
{
    static const char *keys[] = {"general.name", "general.source", "general.description", "csasn.labels",
                                 "csasn.malignant_labels", "csasn.temperature", "csasn.malignancy_temperature",
                                 "csasn.malignancy_threshold", "heads.malignancy", "heads.descriptors"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(k, keys[i])) return 1;
    return !strncmp(k, "descriptor.", 11) || !strncmp(k, "adapt.", 6);
}

static void put_lin(csasn__writer *w, const char *prefix, const float *p, const csasn__anet_lin *l)
{
    char nm[96];
    uint32_t d2[2] = {(uint32_t)l->out, (uint32_t)l->in}, d1[1] = {(uint32_t)l->out};
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    csasn__w_tensor(w, nm, CSASN__DT_F32, 2, d2, p + l->w, (size_t)l->out * l->in * sizeof(float));
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    csasn__w_tensor(w, nm, CSASN__DT_F32, 1, d1, p + l->b, (size_t)l->out * sizeof(float));
}

static void put_vec(csasn__writer *w, const char *name, const float *v, int n)
{
    uint32_t d[1] = {(uint32_t)n};
    csasn__w_tensor(w, name, CSASN__DT_F32, 1, d, v, (size_t)n * sizeof(float));
}

const char *csasn_adapt_write(const csasn_adapt *a, const char *name, const char *date,
                              void **out, size_t *len)
{
    if (!a || !out || !len) return "csasn_adapt_write: NULL argument";
    *out = NULL;
    *len = 0;
    if (!a->done) return "the adaptation has not finished";
    char nm[256];
    if (!name) {
        snprintf(nm, sizeof nm, "%s-adapted", a->base_name);
        name = nm;
    }
    if (!valid_label(name)) return "the model name must be 1..128 bytes of UTF-8 text";
    csasn__writer *w = csasn__writer_new();
    if (!w) return "out of memory";
    for (uint32_t i = 0; i < a->file.n_kv; i++)
        if (!replaced_key(a->file.kv[i].key)) csasn__w_kv(w, &a->file.kv[i]);
    const char *mal[CSASN_ADAPT_MAX_CLASSES];
    int nm_ = 0;
    for (int k = 0; k < a->K; k++)
        if (a->malignant[k]) mal[nm_++] = a->labels[k];
    csasn__w_str(w, "general.name", name);
    char src[512];
    snprintf(src, sizeof src, "adapted locally (on this device, no image left it) from %s, SHA-256 %s", a->base_name, a->sha);
    csasn__w_str(w, "general.source", src);
    char desc[256];
    snprintf(desc, sizeof desc, "%d classes, %d images, %d-fold cross-validated; adapted locally on %s",
             a->K, a->n, a->folds, date ? date : "an unrecorded date");
    csasn__w_str(w, "general.description", desc);
    csasn__w_strs(w, "csasn.labels", (const char *const *)a->labels, a->K);
    csasn__w_strs(w, "csasn.malignant_labels", mal, nm_);
    csasn__w_f32(w, "csasn.temperature", a->T);
    csasn__w_f32(w, "csasn.malignancy_temperature", a->has_mal ? a->Tm : 1.0f);
    csasn__w_f32(w, "csasn.malignancy_threshold", a->has_mal ? a->thr : 0.5f);
    csasn__w_u32(w, "heads.malignancy", (uint32_t)a->has_mal);
    csasn__w_str(w, "adapt.note", "adapted locally: the classifier and heads were retrained on this device; "
                                  "the image data stayed there and nothing about it but counts and figures is stored here");
    csasn__w_str(w, "adapt.base_name", a->base_name);
    csasn__w_str(w, "adapt.base_sha256", a->sha);
    csasn__w_str(w, "adapt.date", date ? date : "");
    uint32_t counts[CSASN_ADAPT_MAX_CLASSES];
    for (int k = 0; k < a->K; k++) counts[k] = (uint32_t)csasn_adapt_count(a, k);
    csasn__w_u32s(w, "adapt.counts", counts, a->K);
    csasn__w_str(w, "adapt.cv", a->report);
    const char *left[2];
    int nl = 0;
    if (a->base_has_desc) left[nl++] = "descriptors";
    if (a->base_has_mal && !a->has_mal) left[nl++] = "malignancy";
    csasn__w_strs(w, "adapt.heads_left_out", left, nl);
    for (uint32_t i = 0; i < a->file.n_tensors; i++)
        if (!retrained(a->file.tensors[i].name)) csasn__w_copy_tensor(w, &a->file.tensors[i]);
    const float *p = a->final_p;
    const csasn__anet *net = &a->net;
    const char *pp[4] = {"proj8", "proj16", "projf", "projt"};
    int first = net->sh.n_desc == 4 ? 0 : 2;
    for (int j = 0; j < net->sh.n_desc; j++) put_lin(w, pp[first + j], p, &net->proj[j]);
    put_lin(w, "mix", p, &net->mix);
    for (int k = 0; k < net->sh.nb; k++) {
        char b[64];
        snprintf(b, sizeof b, "cls_blocks.%d.ln.weight", k);
        put_vec(w, b, p + net->ln_g[k], net->sh.E);
        snprintf(b, sizeof b, "cls_blocks.%d.ln.bias", k);
        put_vec(w, b, p + net->ln_b[k], net->sh.E);
        snprintf(b, sizeof b, "cls_blocks.%d.fc1", k);
        put_lin(w, b, p, &net->fc1[k]);
        snprintf(b, sizeof b, "cls_blocks.%d.fc2", k);
        put_lin(w, b, p, &net->fc2[k]);
    }
    put_vec(w, "cls_ln.weight", p + net->cln_g, net->sh.E);
    put_vec(w, "cls_ln.bias", p + net->cln_b, net->sh.E);
    put_lin(w, "head_subtype", p, &net->sub);
    if (a->has_mal) put_lin(w, "head_malig", p, &net->mal);
    const char *e = csasn__writer_finish(w, out, len);
    if (e) return e;
    /* what is written must load: the engine's own validation, before anyone saves it */
    csasn_model *chk = NULL;
    if ((e = csasn_model_load(&chk, *out, *len))) {
        free(*out);
        *out = NULL;
        *len = 0;
        return csasn__errf("the adapted model does not load: %s", e);
    }
    csasn_model_free(chk);
    return NULL;
}

void csasn_adapt_free_buffer(void *p) { free(p); }
