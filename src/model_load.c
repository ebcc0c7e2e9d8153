/* model_load.c - a .csasn file -> a ready model (src/model.h): the config
 * from the metadata (every hyperparameter checked for consistency), the
 * weights from the tensors (BatchNorm folded, packed for the kernels), and
 * the run state: one arena planned in two passes, so that the forward pass
 * allocates nothing. Also the model's public metadata getters. */
#include "csasn.h"
#include "error.h"
#include "format.h"
#include "kernels.h"
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- loading: ctx */

static int act_from_name(const char *s)
{
    if (!strcmp(s, "silu")) return CSASN__ACT_SILU;
    if (!strcmp(s, "relu6")) return CSASN__ACT_RELU6;
    return -1;
}

typedef struct {
    csasn__file *f;
    csasn_model *m;
    const char *err;
    void **tmp;                     /* temporaries, freed at the end of loading */
    int tn, tcap;
} ld_t;

static int push_ptr(void ***list, int *n, int *cap, void *p)
{
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        void **l = realloc(*list, (size_t)nc * sizeof *l);
        if (!l) return -1;
        *list = l;
        *cap = nc;
    }
    (*list)[(*n)++] = p;
    return 0;
}

static float *walloc(ld_t *L, size_t n)
{
    if (L->err) return NULL;
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p || push_ptr(&L->m->w.alloc, &L->m->w.n_alloc, &L->m->w.cap_alloc, p)) {
        free(p);
        L->err = "out of memory while loading the model";
        return NULL;
    }
    return p;
}

static float *talloc(ld_t *L, size_t n)
{
    if (L->err) return NULL;
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p || push_ptr(&L->tmp, &L->tn, &L->tcap, p)) {
        free(p);
        L->err = "out of memory while loading the model";
        return NULL;
    }
    return p;
}

static void fmt_shape(char *buf, size_t cap, int rank, const uint32_t *d)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < rank && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ",%u" : "%u", (unsigned)d[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* The tensor `name` as float32 (temporary), checked against the expected shape
 * (rank dims, zeros ignored). NULL and L->err set on any problem. */
static float *tget(ld_t *L, int rank, int d0, int d1, int d2, int d3, const char *fmt, ...)
{
    if (L->err) return NULL;
    char name[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    csasn__tensor *t = csasn__file_tensor(L->f, name);
    if (!t) { L->err = csasn__errf("missing tensor '%s'", name); return NULL; }
    uint32_t want[4] = {(uint32_t)d0, (uint32_t)d1, (uint32_t)d2, (uint32_t)d3};
    int ok = (int)t->rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = t->dims[i] == want[i];
    if (!ok) {
        char a[96], b[96];
        fmt_shape(a, sizeof a, (int)t->rank, t->dims);
        fmt_shape(b, sizeof b, rank, want);
        L->err = csasn__errf("tensor '%s' has shape %s, expected %s", name, a, b);
        return NULL;
    }
    float *p = talloc(L, t->numel);
    if (!p) return NULL;
    const char *e = csasn__tensor_to_f32(t, p);
    if (e) { L->err = e; return NULL; }
    return p;
}

/* A persistent copy of a 1-D/ND tensor (LayerNorm params, tokens). */
static float *tcopy(ld_t *L, size_t n, float *src)
{
    if (!src) return NULL;
    float *p = walloc(L, n);
    if (p) memcpy(p, src, n * sizeof(float));
    return p;
}

/* Packs W [N][K] and bias [N] into o. */
static void pack_lin(ld_t *L, csasn__linear *o, int N, int K, const float *W, const float *bias)
{
    if (L->err) return;
    o->N = N;
    o->K = K;
    o->w = walloc(L, csasn__pack_floats(K, N));
    if (L->err) return;
    csasn__pack_b(W, bias, N, K, o->w);
}

/* nn.Linear(K, N) at prefix: weight [N, K], bias [N]. */
static void load_linear(ld_t *L, csasn__linear *o, int N, int K, const char *prefix)
{
    float *w = tget(L, 2, N, K, 0, 0, "%s.weight", prefix);
    float *b = tget(L, 1, N, 0, 0, 0, "%s.bias", prefix);
    if (w && b) pack_lin(L, o, N, K, w, b);
}

/* PyTorch conv weight [cout][cin][k][k] -> [cout][(ky*k + kx)*cin + c], the
 * K order of csasn__im2col on HWC maps, each output row scaled by scale[o]. */
static float *conv_to_rows(ld_t *L, float *w, int cout, int cin, int k, const double *scale)
{
    if (k == 1) {   /* already [cout][cin]: scale in place (w is a temporary) */
        if (scale)
            for (int o = 0; o < cout; o++)
                for (int c = 0; c < cin; c++) w[(size_t)o * cin + c] = (float)(w[(size_t)o * cin + c] * scale[o]);
        return w;
    }
    float *r = talloc(L, (size_t)cout * cin * k * k);
    if (!r) return NULL;
    for (int o = 0; o < cout; o++)
        for (int c = 0; c < cin; c++)
            for (int t = 0; t < k * k; t++)
                r[((size_t)o * k * k + t) * cin + c] =
                    (float)(w[((size_t)o * cin + c) * k * k + t] * (scale ? scale[o] : 1.0));
    return r;
}

/* BatchNorm at prefix.bn folded: scale = g / sqrt(var + eps), shift = b - mean*scale. */
static double *bn_fold(ld_t *L, int C, float eps, const char *prefix, float **shift)
{
    float *g = tget(L, 1, C, 0, 0, 0, "%s.bn.weight", prefix);
    float *b = tget(L, 1, C, 0, 0, 0, "%s.bn.bias", prefix);
    float *mu = tget(L, 1, C, 0, 0, 0, "%s.bn.running_mean", prefix);
    float *var = tget(L, 1, C, 0, 0, 0, "%s.bn.running_var", prefix);
    float *sh = talloc(L, (size_t)C);
    double *sc = (double *)talloc(L, (size_t)C * 2);
    if (L->err) return NULL;
    for (int i = 0; i < C; i++) {
        if (var[i] + eps <= 0.0f) {
            L->err = csasn__errf("tensor '%s.bn.running_var' has a value <= -eps at %d", prefix, i);
            return NULL;
        }
        sc[i] = g[i] / sqrt((double)var[i] + eps);
        sh[i] = (float)(b[i] - mu[i] * sc[i]);
    }
    *shift = sh;
    return sc;
}

/* ConvBN (conv without bias + BN) at prefix, folded and packed for im2col/GEMM. */
static void load_convbn(ld_t *L, csasn__linear *o, int cin, int cout, int k, float eps, const char *prefix)
{
    float *w = tget(L, 4, cout, cin, k, k, "%s.conv.weight", prefix);
    float *shift = NULL;
    double *sc = bn_fold(L, cout, eps, prefix, &shift);
    if (!w || !sc) return;
    float *r = conv_to_rows(L, w, cout, cin, k, sc);
    if (r) pack_lin(L, o, cout, cin * k * k, r, shift);
}

/* nn.Conv2d with bias at prefix. */
static void load_conv(ld_t *L, csasn__linear *o, int cin, int cout, int k, const char *prefix)
{
    float *w = tget(L, 4, cout, cin, k, k, "%s.weight", prefix);
    float *b = tget(L, 1, cout, 0, 0, 0, "%s.bias", prefix);
    if (!w || !b) return;
    float *r = conv_to_rows(L, w, cout, cin, k, NULL);
    if (r) pack_lin(L, o, cout, cin * k * k, r, b);
}

static void load_dwbn(ld_t *L, csasn__dwconv_w *o, int C, int k, int stride, float eps, const char *prefix)
{
    float *w = tget(L, 4, C, 1, k, k, "%s.conv.weight", prefix);
    float *shift = NULL;
    double *sc = bn_fold(L, C, eps, prefix, &shift);
    if (!w || !sc) return;
    o->C = C;
    o->k = k;
    o->stride = stride;
    o->w = walloc(L, (size_t)k * k * C);
    o->b = tcopy(L, (size_t)C, shift);
    if (L->err) return;
    for (int c = 0; c < C; c++)
        for (int t = 0; t < k * k; t++) o->w[(size_t)t * C + c] = (float)(w[(size_t)c * k * k + t] * sc[c]);
}

static void load_ln(ld_t *L, float **g, float **b, int D, const char *prefix)
{
    *g = tcopy(L, (size_t)D, tget(L, 1, D, 0, 0, 0, "%s.weight", prefix));
    *b = tcopy(L, (size_t)D, tget(L, 1, D, 0, 0, 0, "%s.bias", prefix));
}


/* -------------------------------------------------- loading: metadata */

#define META(call) do { const char *e_ = (call); if (e_) return e_; } while (0)
#define BAD(...) return csasn__errf("inconsistent hyperparameters: " __VA_ARGS__)

/* Dimensions are bounded so that every size product below fits easily in
 * 64 bits and every per-layer count in an int. */
#define MAXD 65536u

static const char *meta_dim(const csasn__file *f, const char *key, int *out, unsigned lo)
{
    uint32_t v;
    META(csasn__meta_u32(f, key, &v));
    if (v < lo || v > MAXD) return csasn__errf("inconsistent hyperparameters: %s = %u (must be %u..%u)", key, v, lo, MAXD);
    *out = (int)v;
    return NULL;
}

static const char *meta_pos_f32(const csasn__file *f, const char *key, float *out)
{
    META(csasn__meta_f32(f, key, out));
    if (!(*out > 0.0f) || !isfinite(*out)) return csasn__errf("inconsistent hyperparameters: %s must be a positive number", key);
    return NULL;
}

/* ------------------------------- metadata: region geometry, descriptor heads
 *
 * Optional keys (src/FORMAT.md): a file without them means what it meant
 * before they existed (stretch, no margin, no descriptor heads). */

#define DHEAD_MIN_LABELS 2
#define DHEAD_MAX_LABELS 64
#define DHEAD_PREFIX "descriptor."

static const char *const region_mode_names[] = {"stretch", "square", "letterbox"};

static const char *read_region_and_descriptors(csasn_model *m, csasn__file *f)
{
    csasn__config *c = &m->c;
    c->region_mode = CSASN_REGION_STRETCH;
    c->region_margin = c->region_fill = 0.0f;
    if (csasn__meta_has(f, "csasn.region_mode")) {
        const char *s;
        META(csasn__meta_str(f, "csasn.region_mode", &s));
        int k = 0;
        while (k < 3 && strcmp(s, region_mode_names[k])) k++;
        if (k == 3) BAD("csasn.region_mode = '%s' (expected stretch, square or letterbox)", s);
        c->region_mode = k;   /* CSASN_REGION_* follow region_mode_names */
    }
    if (csasn__meta_has(f, "csasn.region_margin")) {
        META(csasn__meta_f32(f, "csasn.region_margin", &c->region_margin));
        if (!(c->region_margin >= 0.0f && c->region_margin <= 1.0f))
            BAD("csasn.region_margin = %g (a fraction of the box side, 0..1)", c->region_margin);
    }
    if (csasn__meta_has(f, "csasn.region_fill")) {
        META(csasn__meta_f32(f, "csasn.region_fill", &c->region_fill));
        if (!(c->region_fill >= 0.0f && c->region_fill <= 1.0f))
            BAD("csasn.region_fill = %g (a gray level, 0..1)", c->region_fill);
    }

    char *const *names = NULL;
    uint32_t n = 0;
    if (csasn__meta_has(f, "heads.descriptors")) {
        META(csasn__meta_str_array(f, "heads.descriptors", &names, &n));
        if (n > CSASN_MAX_DESCRIPTOR_HEADS)
            BAD("heads.descriptors names %u heads (at most %d)", n, CSASN_MAX_DESCRIPTOR_HEADS);
    }
    /* every descriptor.<name> key belongs to a head: a stray one is a writer's mistake */
    for (uint32_t i = 0; i < f->n_kv; i++) {
        const char *k = f->kv[i].key;
        if (strncmp(k, DHEAD_PREFIX, strlen(DHEAD_PREFIX))) continue;
        uint32_t j = 0;
        while (j < n && strcmp(k + strlen(DHEAD_PREFIX), names[j])) j++;
        if (j == n) BAD("metadata key '%s' names no head of heads.descriptors", k);
    }
    c->n_dheads = (int)n;
    c->dhead_total = 0;
    if (!n) return NULL;
    m->dhead_names = calloc(n, sizeof *m->dhead_names);
    m->dhead_labels = calloc(n, sizeof *m->dhead_labels);
    m->dhead_off = calloc(n, sizeof *m->dhead_off);
    m->dheads = calloc(n, sizeof *m->dheads);
    if (!m->dhead_names || !m->dhead_labels || !m->dhead_off || !m->dheads) return "out of memory";
    for (uint32_t i = 0; i < n; i++) {
        if (!names[i][0] || strlen(names[i]) > 64)
            BAD("heads.descriptors entry %u: a name must be 1..64 bytes", i);
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) BAD("descriptor head '%s' appears twice in heads.descriptors", names[i]);
        char key[96];
        snprintf(key, sizeof key, DHEAD_PREFIX "%s", names[i]);
        char *const *lab;
        uint32_t nl;
        if (!csasn__meta_has(f, key)) BAD("descriptor head '%s' has no labels (metadata key '%s' missing)", names[i], key);
        META(csasn__meta_str_array(f, key, &lab, &nl));
        if (nl < DHEAD_MIN_LABELS || nl > DHEAD_MAX_LABELS)
            BAD("%s has %u labels (%d..%d)", key, nl, DHEAD_MIN_LABELS, DHEAD_MAX_LABELS);
        if (!(m->dhead_names[i] = strdup(names[i]))) return "out of memory";
        /* NULL-terminated, so the free needs no count */
        if (!(m->dhead_labels[i] = calloc(nl + 1, sizeof **m->dhead_labels))) return "out of memory";
        for (uint32_t j = 0; j < nl; j++) {
            for (uint32_t k = 0; k < j; k++)
                if (!strcmp(lab[j], lab[k])) BAD("label '%s' appears twice in %s", lab[j], key);
            if (!(m->dhead_labels[i][j] = strdup(lab[j]))) return "out of memory";
        }
        m->dhead_off[i] = c->dhead_total;
        c->dhead_total += (int)nl;
        csasn_descriptor *d = &m->dheads[i];
        d->name = m->dhead_names[i];
        d->n_labels = (int)nl;
        d->labels = (const char *const *)m->dhead_labels[i];
    }
    return NULL;
}

static const char *read_meta(csasn_model *m, csasn__file *f)
{
    csasn__config *c = &m->c;
    const char *s;
    META(csasn__meta_str(f, "general.name", &s));
    if (!(m->name = strdup(s))) return "out of memory";
    META(csasn__meta_str(f, "general.source", &s));

    META(meta_dim(f, "csasn.input_size", &c->S, 32));
    if (c->S % 32 || c->S > 4096) BAD("csasn.input_size = %d is not a multiple of 32 in 32..4096", c->S);
    const float *arr;
    uint32_t n;
    META(csasn__meta_f32_array(f, "csasn.mean", &arr, &n));
    if (n != 3) BAD("csasn.mean has %u values, expected 3", n);
    memcpy(c->mean, arr, sizeof c->mean);
    META(csasn__meta_f32_array(f, "csasn.std", &arr, &n));
    if (n != 3) BAD("csasn.std has %u values, expected 3", n);
    memcpy(c->std, arr, sizeof c->std);
    for (int i = 0; i < 3; i++)
        if (!isfinite(c->mean[i]) || !(c->std[i] > 0.0f) || !isfinite(c->std[i]))
            BAD("csasn.mean/csasn.std must be finite with std > 0");

    char *const *lab;
    META(csasn__meta_str_array(f, "csasn.labels", &lab, &n));
    if (n < 1 || n > 4096) BAD("csasn.labels has %u entries (1..4096)", n);
    c->K = (int)n;
    m->labels = calloc(n, sizeof *m->labels);
    m->malignant = calloc(n, sizeof *m->malignant);
    if (!m->labels || !m->malignant) return "out of memory";
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(lab[i], lab[j])) BAD("label '%s' appears twice in csasn.labels", lab[i]);
        if (!(m->labels[i] = strdup(lab[i]))) return "out of memory";
    }
    char *const *ml;
    uint32_t nm;
    META(csasn__meta_str_array(f, "csasn.malignant_labels", &ml, &nm));
    for (uint32_t i = 0; i < nm; i++) {
        uint32_t j = 0;
        while (j < n && strcmp(ml[i], lab[j])) j++;
        if (j == n) BAD("csasn.malignant_labels names '%s', which is not in csasn.labels", ml[i]);
        m->malignant[j] = 1;
    }
    META(meta_pos_f32(f, "csasn.temperature", &c->temperature));
    META(meta_pos_f32(f, "csasn.malignancy_temperature", &c->malig_temperature));
    META(csasn__meta_f32(f, "csasn.malignancy_threshold", &c->malig_threshold));

    META(csasn__meta_str(f, "cnn.family", &s));
    if (strcmp(s, "efficientnet") && strcmp(s, "mobilenetv2"))
        BAD("cnn.family = '%s' (expected efficientnet or mobilenetv2)", s);
    META(csasn__meta_str(f, "cnn.act", &s));
    if ((c->act = act_from_name(s)) < 0) BAD("cnn.act = '%s' (expected silu or relu6)", s);
    float eps;
    META(meta_pos_f32(f, "cnn.bn_eps", &eps));
    META(meta_dim(f, "cnn.stem", &c->stem_c, 1));
    META(meta_dim(f, "cnn.head", &c->head_c, 1));
    const uint32_t *rows;
    META(csasn__meta_u32_array(f, "cnn.blocks", &rows, &n));
    if (n == 0 || n % 7 || n / 7 > 1024) BAD("cnn.blocks has %u values, expected 7 per block (1..1024 blocks)", n);
    c->n_blocks = (int)(n / 7);
    c->blocks = calloc((size_t)c->n_blocks, sizeof *c->blocks);
    m->w.blocks = calloc((size_t)c->n_blocks, sizeof *m->w.blocks);
    m->s.block_out = calloc((size_t)c->n_blocks, sizeof *m->s.block_out);
    if (!c->blocks || !m->w.blocks || !m->s.block_out) return "out of memory";
    int prev = c->stem_c, H = c->S / 2, stride = 2;
    c->t8 = c->t16 = -1;
    for (int i = 0; i < c->n_blocks; i++) {
        const uint32_t *r = rows + 7 * i;
        csasn__block_config *b = &c->blocks[i];
        for (int j = 0; j < 3; j++)
            if (r[j] < 1 || r[j] > MAXD) BAD("cnn.blocks row %d: channel count %u out of range", i, r[j]);
        if (r[3] < 1 || r[3] > 15 || r[3] % 2 == 0) BAD("cnn.blocks row %d: kernel %u (odd, 1..15)", i, r[3]);
        if (r[4] != 1 && r[4] != 2) BAD("cnn.blocks row %d: stride %u (1 or 2)", i, r[4]);
        if (r[5] > MAXD) BAD("cnn.blocks row %d: se %u out of range", i, r[5]);
        if (r[6] > 1) BAD("cnn.blocks row %d: expand %u (0 or 1)", i, r[6]);
        b->cin = (int)r[0]; b->mid = (int)r[1]; b->cout = (int)r[2]; b->k = (int)r[3];
        b->stride = (int)r[4]; b->se = (int)r[5]; b->expand = (int)r[6];
        if (b->cin != prev) BAD("cnn.blocks row %d: in = %d but the previous output has %d channels", i, b->cin, prev);
        if (!b->expand && b->mid != b->cin) BAD("cnn.blocks row %d: mid %d != in %d without expand conv", i, b->mid, b->cin);
        b->residual = b->stride == 1 && b->cin == b->cout;
        b->H = b->W = H;
        H = (H - 1) / b->stride + 1;   /* 'same' padding: ceil(H / stride) */
        b->Ho = b->Wo = H;
        stride *= b->stride;
        if (stride == 8) c->t8 = i;
        if (stride == 16) c->t16 = i;
        prev = b->cout;
    }
    if (stride != 32) BAD("the CNN's total stride is %d, expected 32", stride);
    if (c->t8 < 0 || c->t16 < 0) BAD("the CNN has no stride-8 or stride-16 stage");

    META(meta_dim(f, "vit.patch", &c->P, 1));
    META(meta_dim(f, "vit.dim", &c->D, 1));
    META(meta_dim(f, "vit.depth", &c->depth, 0));
    META(meta_dim(f, "vit.heads", &c->heads, 1));
    META(meta_dim(f, "vit.mlp", &c->mlp, 1));
    META(meta_pos_f32(f, "vit.ln_eps", &c->vit_eps));
    if (c->D % c->heads) BAD("vit.heads = %d does not divide vit.dim = %d", c->heads, c->D);
    if (c->S % c->P) BAD("vit.patch = %d does not divide csasn.input_size = %d", c->P, c->S);
    c->grid = c->S / c->P;
    c->H32 = c->S / 32;
    if (c->grid % c->H32) BAD("the ViT grid %d is not a multiple of the CNN map %d", c->grid, c->H32);
    c->vit_pool = c->grid / c->H32;
    c->N = c->grid * c->grid;
    c->T = c->N + 1;

    META(meta_dim(f, "fuse.channels", &c->C, 1));
    META(meta_dim(f, "att.stages", &c->att_stages, 0));
    if (c->att_stages > 64) BAD("att.stages = %d (0..64)", c->att_stages);
    META(meta_dim(f, "att.reduction", &c->att_r, 1));
    META(meta_dim(f, "att.kernel", &c->att_k, 1));
    if (c->att_k % 2 == 0 || c->att_k > 15) BAD("att.kernel = %d (odd, 1..15)", c->att_k);
    META(meta_dim(f, "cls.dim", &c->E, 1));
    META(meta_dim(f, "cls.hidden", &c->cls_hidden, 1));
    META(meta_dim(f, "cls.blocks", &c->cls_blocks, 0));
    if (c->cls_blocks > 64) BAD("cls.blocks = %d (0..64)", c->cls_blocks);
    uint32_t v;
    META(csasn__meta_u32(f, "cls.multiscale", &v));
    if (v > 1) BAD("cls.multiscale = %u (0 or 1)", v);
    c->multiscale = (int)v;
    c->n_desc = 2 + 2 * c->multiscale;
    META(csasn__meta_u32(f, "heads.malignancy", &v));
    if (v > 1) BAD("heads.malignancy = %u (0 or 1)", v);
    c->has_malig = (int)v;
    META(csasn__meta_u32(f, "heads.segmentation", &v));
    if (v > 1) BAD("heads.segmentation = %u (0 or 1)", v);
    c->has_seg = (int)v;
    META(meta_dim(f, "seg.channels", &c->seg_D, 1));
    META(meta_pos_f32(f, "norm.ln_eps", &c->ln_eps));
    float beps;
    META(meta_pos_f32(f, "norm.bn_eps", &beps));
    return read_region_and_descriptors(m, f);
}


/* --------------------------------------------------- loading: tensors */

#define NAME_MAX_LEN 160

/* "<prefix><i>.<leaf>" in buf: the file name (the state_dict key) of a
 * tensor group of the i-th repeated module, e.g. "vit.blocks.3.qkv". */
static const char *nth(char buf[NAME_MAX_LEN], const char *prefix, int i, const char *leaf)
{
    snprintf(buf, NAME_MAX_LEN, "%s%d.%s", prefix, i, leaf);
    return buf;
}

static void load_weights(ld_t *L)
{
    csasn_model *m = L->m;
    const csasn__config *c = &m->c;
    csasn__weights *w = &m->w;
    float ceps, beps;
    csasn__meta_f32(L->f, "cnn.bn_eps", &ceps);
    csasn__meta_f32(L->f, "norm.bn_eps", &beps);
    char p[NAME_MAX_LEN];

    /* CNN branch */
    load_convbn(L, &w->stem, 3, c->stem_c, 3, ceps, "cnn.stem");
    for (int i = 0; i < c->n_blocks && !L->err; i++) {
        const csasn__block_config *b = &c->blocks[i];
        csasn__block_weights *bw = &w->blocks[i];
        if (b->expand)
            load_convbn(L, &bw->expand, b->cin, b->mid, 1, ceps, nth(p, "cnn.blocks.", i, "expand"));
        load_dwbn(L, &bw->dw, b->mid, b->k, b->stride, ceps, nth(p, "cnn.blocks.", i, "dw"));
        if (b->se) {
            load_conv(L, &bw->se1, b->mid, b->se, 1, nth(p, "cnn.blocks.", i, "se.fc1"));
            load_conv(L, &bw->se2, b->se, b->mid, 1, nth(p, "cnn.blocks.", i, "se.fc2"));
        }
        load_convbn(L, &bw->project, b->mid, b->cout, 1, ceps, nth(p, "cnn.blocks.", i, "project"));
    }
    load_convbn(L, &w->head, c->blocks[c->n_blocks - 1].cout, c->head_c, 1, ceps, "cnn.head");

    /* ViT branch */
    load_conv(L, &w->patch, 3, c->D, c->P, "vit.patch");
    w->cls_tok = tcopy(L, (size_t)c->D, tget(L, 3, 1, 1, c->D, 0, "vit.cls"));
    w->pos = tcopy(L, (size_t)c->T * c->D, tget(L, 3, 1, c->T, c->D, 0, "vit.pos"));
    w->vit = c->depth ? calloc((size_t)c->depth, sizeof *w->vit) : NULL;
    if (c->depth && !w->vit && !L->err) L->err = "out of memory";
    for (int i = 0; i < c->depth && !L->err; i++) {
        csasn__vit_weights *v = &w->vit[i];
        load_ln(L, &v->ln1_g, &v->ln1_b, c->D, nth(p, "vit.blocks.", i, "ln1"));
        load_linear(L, &v->qkv, 3 * c->D, c->D, nth(p, "vit.blocks.", i, "qkv"));
        load_linear(L, &v->proj, c->D, c->D, nth(p, "vit.blocks.", i, "proj"));
        load_ln(L, &v->ln2_g, &v->ln2_b, c->D, nth(p, "vit.blocks.", i, "ln2"));
        load_linear(L, &v->fc1, c->mlp, c->D, nth(p, "vit.blocks.", i, "fc1"));
        load_linear(L, &v->fc2, c->D, c->mlp, nth(p, "vit.blocks.", i, "fc2"));
    }
    load_ln(L, &w->vln_g, &w->vln_b, c->D, "vit.ln");

    /* fusion, attention */
    load_convbn(L, &w->fuse, c->head_c + c->D, c->C, 1, beps, "fuse");
    w->att = c->att_stages ? calloc((size_t)c->att_stages, sizeof *w->att) : NULL;
    if (c->att_stages && !w->att && !L->err) L->err = "out of memory";
    int cr = c->C / c->att_r > 1 ? c->C / c->att_r : 1;   /* max(1, C // r) */
    for (int i = 0; i < c->att_stages && !L->err; i++) {
        load_linear(L, &w->att[i].fc1, cr, c->C, nth(p, "att.", i, "fc1"));
        load_linear(L, &w->att[i].fc2, c->C, cr, nth(p, "att.", i, "fc2"));
        load_conv(L, &w->att[i].conv, 2, 1, c->att_k, nth(p, "att.", i, "conv"));
    }

    /* classifier */
    int c8 = c->blocks[c->t8].cout, c16 = c->blocks[c->t16].cout;
    if (c->multiscale) {
        load_linear(L, &w->proj8, c->E, c8, "proj8");
        load_linear(L, &w->proj16, c->E, c16, "proj16");
    }
    load_linear(L, &w->projf, c->E, c->C, "projf");
    load_linear(L, &w->projt, c->E, c->D, "projt");
    load_linear(L, &w->mix, c->E, c->n_desc * c->E, "mix");
    w->cls = c->cls_blocks ? calloc((size_t)c->cls_blocks, sizeof *w->cls) : NULL;
    if (c->cls_blocks && !w->cls && !L->err) L->err = "out of memory";
    for (int i = 0; i < c->cls_blocks && !L->err; i++) {
        csasn__resmlp_weights *r = &w->cls[i];
        load_ln(L, &r->ln_g, &r->ln_b, c->E, nth(p, "cls_blocks.", i, "ln"));
        load_linear(L, &r->fc1, c->cls_hidden, c->E, nth(p, "cls_blocks.", i, "fc1"));
        load_linear(L, &r->fc2, c->E, c->cls_hidden, nth(p, "cls_blocks.", i, "fc2"));
    }
    load_ln(L, &w->cln_g, &w->cln_b, c->E, "cls_ln");
    load_linear(L, &w->head_sub, c->K, c->E, "head_subtype");
    if (c->has_malig) load_linear(L, &w->head_mal, 1, c->E, "head_malig");
    if (c->has_seg) {
        load_convbn(L, &w->seg_reduce, c->C, c->seg_D, 1, beps, "seg_reduce");
        load_convbn(L, &w->seg_fuse, c->seg_D + c8, c->seg_D, 3, beps, "seg_fuse");
        load_conv(L, &w->seg_out, c->seg_D, 1, 1, "seg_out");
    }
    /* descriptor heads: nn.Linear(E, n_i) each, at head_desc.<i> */
    if (c->n_dheads && !L->err && !(w->head_desc = calloc((size_t)c->n_dheads, sizeof *w->head_desc)))
        L->err = "out of memory";
    for (int i = 0; i < c->n_dheads && !L->err; i++) {
        snprintf(p, sizeof p, "head_desc.%d", i);
        load_linear(L, &w->head_desc[i], m->dheads[i].n_labels, c->E, p);
    }
    if (L->err) return;
    for (uint32_t i = 0; i < L->f->n_tensors; i++)
        if (!L->f->tensors[i].used) {
            L->err = csasn__errf("unexpected tensor '%s' in model file", L->f->tensors[i].name);
            return;
        }
}


/* --------------------------------------------------- loading: arena plan */

/* Sizes are counted in 64 bits even where u64 has 32 (wasm): a hostile
 * but well-formed header (say 65536 channels at 2048 x 2048) must fail the
 * cap check in csasn_model_load, not wrap around. */
typedef uint64_t u64;
typedef struct { float *base; u64 off; } plan_t;

/* Reserves n floats, 64-byte aligned; with base == NULL only counts. */
static float *reserve(plan_t *P, u64 n)
{
    float *p = P->base ? P->base + (u64)P->off : NULL;
    P->off += (n + 15) & ~(u64)15;
    return p;
}

static u64 zmax(u64 a, u64 b) { return a > b ? a : b; }

static void plan(csasn_model *m, plan_t *P)
{
    const csasn__config *c = &m->c;
    csasn__state *s = &m->s;
    u64 S = (u64)c->S, H2 = S / 2, H32 = (u64)c->H32, HW32 = H32 * H32;
    u64 T = (u64)c->T, D = (u64)c->D, C = (u64)c->C, E = (u64)c->E;
    u64 H8 = S / 8, c8 = (u64)c->blocks[c->t8].cout, SD = (u64)c->seg_D;
    /* im2col scratch: the largest of stem, patch embedding, seg 3x3, attention conv */
    u64 col = H2 * H2 * 27;
    col = zmax(col, (u64)c->N * c->P * c->P * 3);
    col = zmax(col, HW32 * c->att_k * c->att_k * 2);
    if (c->has_seg) col = zmax(col, H8 * H8 * 9 * (SD + c8));
    u64 ebuf = 1, dbuf = 1, mid = 1, se = 1;
    for (int i = 0; i < c->n_blocks; i++) {
        const csasn__block_config *b = &c->blocks[i];
        if (b->expand) ebuf = zmax(ebuf, (u64)b->H * b->W * b->mid);
        dbuf = zmax(dbuf, (u64)b->Ho * b->Wo * b->mid);
        mid = zmax(mid, (u64)b->mid);
        mid = zmax(mid, (u64)b->cout);   /* se_p also holds the pooled tap8/tap16 maps */
        se = zmax(se, (u64)b->se);
    }
    s->input = reserve(P, 3 * S * S);
    s->x = reserve(P, S * S * 3);
    s->col = reserve(P, col);
    s->stem_out = reserve(P, H2 * H2 * c->stem_c);
    for (int i = 0; i < c->n_blocks; i++) {
        const csasn__block_config *b = &c->blocks[i];
        s->block_out[i] = reserve(P, (u64)b->Ho * b->Wo * b->cout);
    }
    s->ebuf = reserve(P, ebuf);
    s->dbuf = reserve(P, dbuf);
    s->se_p = reserve(P, mid);
    s->se_h = reserve(P, se);
    s->se_s = reserve(P, mid);
    s->cnn_head = reserve(P, HW32 * c->head_c);
    s->fuse_in = reserve(P, HW32 * (c->head_c + D));
    s->tok = reserve(P, T * D);
    s->xn = reserve(P, T * D);
    s->qkv = reserve(P, T * 3 * D);
    s->ay = reserve(P, T * D);
    s->hid = reserve(P, T * c->mlp);
    s->scores = reserve(P, csasn__attention_scratch_floats(c->T, c->D, c->heads));
    s->tok_out = reserve(P, T * D);
    s->fused = reserve(P, HW32 * C);
    s->refined = reserve(P, HW32 * C);
    s->cy = reserve(P, HW32 * C);
    s->cavg = reserve(P, C);
    s->cmax = reserve(P, C);
    s->ch1 = reserve(P, 2 * C);
    s->ch2 = reserve(P, C);
    s->ca = reserve(P, C);
    s->smap = reserve(P, HW32 * 2);
    s->att_map = reserve(P, HW32);
    s->desc = reserve(P, (u64)c->n_desc * E);
    s->h = reserve(P, E);
    s->hn = reserve(P, E);
    s->chid = reserve(P, (u64)c->cls_hidden);
    s->cls_out = reserve(P, E);
    s->logits = reserve(P, (u64)c->K);
    s->probs = reserve(P, (u64)c->K);
    s->mal = reserve(P, 1);
    if (c->has_seg) {
        s->s32 = reserve(P, HW32 * SD);
        s->cat8 = reserve(P, H8 * H8 * (SD + c8));
        s->s8 = reserve(P, H8 * H8 * SD);
        s->s4 = reserve(P, 4 * H8 * H8 * SD);
        s->mask = reserve(P, 4 * H8 * H8);
    }
    if (c->n_dheads) {
        s->dlogits = reserve(P, (u64)c->dhead_total);
        s->dprobs = reserve(P, (u64)c->dhead_total);
    }
}


/* ------------------------------------------------------------ public API */

/* The members csasn_model_info_json adds to the file's metadata: the region
 * rule in force (the defaults when the file has no region keys) and the
 * descriptor heads' count (their names and labels are the file's own keys). */
static char *region_json(const csasn_model *m)
{
    const csasn__config *c = &m->c;
    char num[2][32];
    const float v[2] = {c->region_margin, c->region_fill};
    for (int i = 0; i < 2; i++)   /* shortest form that reads back as the same float */
        for (int prec = 6; prec <= 9; prec++) {
            snprintf(num[i], sizeof num[i], "%.*g", prec, (double)v[i]);
            if (strtof(num[i], NULL) == v[i]) break;
        }
    char *out = malloc(160);
    if (out)
        snprintf(out, 160, "\"region\": {\"mode\": \"%s\", \"margin\": %s, \"fill\": %s}, \"descriptor_heads\": %d",
                 region_mode_names[c->region_mode], num[0], num[1], c->n_dheads);
    return out;
}

void csasn_model_free(csasn_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->w.n_alloc; i++) free(m->w.alloc[i]);
    free(m->w.alloc);
    if (m->labels)
        for (int i = 0; i < m->c.K; i++) free(m->labels[i]);
    free(m->labels);
    free(m->malignant);
    for (int i = 0; m->dhead_labels && i < m->c.n_dheads; i++) {
        for (char **l = m->dhead_labels[i]; l && *l; l++) free(*l);
        free(m->dhead_labels[i]);
    }
    for (int i = 0; m->dhead_names && i < m->c.n_dheads; i++) free(m->dhead_names[i]);
    free(m->dhead_labels);
    free(m->dhead_names);
    free(m->dhead_off);
    free(m->dheads);
    free(m->w.head_desc);
    free(m->c.blocks);
    free(m->w.blocks);
    free(m->w.vit);
    free(m->w.att);
    free(m->w.cls);
    free(m->s.block_out);
    free(m->s.arena);
    free(m->name);
    free(m->info_json);
    free(m);
}

const char *csasn_model_load(csasn_model **out, const void *buf, size_t len)
{
    if (!out) return "csasn_model_load: out is NULL";
    *out = NULL;
    if (!buf) return "csasn_model_load: buffer is NULL";
    csasn__file f;
    const char *err = csasn__file_parse(&f, buf, len);
    if (err) return err;
    csasn_model *m = calloc(1, sizeof *m);
    if (!m) { csasn__file_free(&f); return "out of memory"; }
    ld_t L = {.f = &f, .m = m};
    L.err = read_meta(m, &f);
    if (!L.err) load_weights(&L);
    if (!L.err) {
        char *extra = region_json(m);
        if (!extra || !(m->info_json = csasn__file_info_json(&f, len, extra))) L.err = "out of memory";
        free(extra);
    }
    csasn__state *s = &m->s;
    if (!L.err) {
        plan_t P = {NULL, 0};
        plan(m, &P);
        /* wasm has a 32-bit size_t: cap the arena well below 4 GiB */
        if (P.off > ((u64)1 << 28))
            L.err = csasn__errf("activation memory of %.0f MiB is too large (limit 1024 MiB)", (double)P.off / 262144.0);
        else if (!(s->arena = malloc((size_t)P.off * sizeof(float)))) L.err = "out of memory (activation arena)";
        else {
            s->arena_floats = (size_t)P.off;
            P.base = s->arena;
            P.off = 0;
            plan(m, &P);
            memset(s->arena, 0, s->arena_floats * sizeof(float));
            for (int i = 0; i < m->c.n_dheads; i++) m->dheads[i].probs = s->dprobs + m->dhead_off[i];
        }
    }
    for (int i = 0; i < L.tn; i++) free(L.tmp[i]);
    free(L.tmp);
    /* err may live in csasn__errf's buffer; nothing below formats a message */
    csasn__file_free(&f);
    if (L.err) { csasn_model_free(m); return L.err; }
    *out = m;
    return NULL;
}

const char *csasn_model_name(const csasn_model *m) { return m ? m->name : NULL; }
int csasn_num_classes(const csasn_model *m) { return m ? m->c.K : 0; }
const char *csasn_label(const csasn_model *m, int i) { return m && i >= 0 && i < m->c.K ? m->labels[i] : NULL; }
int csasn_label_is_malignant(const csasn_model *m, int i) { return m && i >= 0 && i < m->c.K ? m->malignant[i] : 0; }
int csasn_input_size(const csasn_model *m) { return m ? m->c.S : 0; }
const char *csasn_model_info_json(const csasn_model *m) { return m ? m->info_json : NULL; }

/* The report's operating point (csasn.h). */
float csasn_malignancy_threshold(const csasn_model *m)
{
    return m && m->c.has_malig ? m->c.malig_threshold : NAN;
}
