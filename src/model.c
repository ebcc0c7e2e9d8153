/* model.c - the CSASN model: loading (metadata, tensors, BatchNorm folding,
 * weight packing, activation planning) and the forward pass.
 *
 * The forward pass is tools/csasn_model.py's CSASN.forward + predict, in eval
 * mode, for one image. Feature maps are HWC (channels last): a 1x1 conv is a
 * GEMM [H*W x Cin] x [Cin x Cout] and a depthwise conv vectorises over
 * channels. ViT tokens are [T x D] row-major, T = N + 1. Shapes in comments
 * use: S input size, H2 = S/2, H8 = S/8, H16 = S/16, H32 = S/32, N = (S/P)^2.
 */
#include "csasn.h"
#include "format.h"
#include "image.h"
#include "kernels.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ----------------------------------------------------------------- types */

/* A GEMM operand: weight [N x K] packed for csasn__gemm, bias [N] (or NULL). */
typedef struct { int K, N; float *w, *b; } lin_t;
/* A depthwise conv with BN folded: w [k*k][C], b [C]. */
typedef struct { int C, k, stride; float *w, *b; } dw_t;

typedef struct {
    int cin, mid, cout, k, stride, se, expand, residual;
    int H, W, Ho, Wo;          /* input and output spatial size */
    lin_t ex;                  /* 1x1 expand + BN (when expand) */
    dw_t dw;                   /* depthwise + BN */
    lin_t se1, se2;            /* squeeze-excitation fc1 [se x mid], fc2 [mid x se] */
    lin_t proj;                /* 1x1 project + BN */
    float *out;                /* [Ho*Wo x cout] */
} block_t;

typedef struct {
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b;   /* [D] */
    lin_t qkv, proj, fc1, fc2;
} vitblock_t;

typedef struct { lin_t fc1, fc2, conv; } cbam_t;
typedef struct { float *ln_g, *ln_b; lin_t fc1, fc2; } resmlp_t;

/* Profile categories: 1x1 convolutions (GEMM on feature maps), linear layers
 * (GEMM on tokens and vectors), im2col convolutions (stem, patch embedding,
 * seg 3x3, spatial attention), depthwise, attention, ... */
enum { P_CONV1X1, P_LINEAR, P_CONV, P_DW, P_ATTN, P_LN, P_POOL, P_OTHER, P_COUNT };
static const char *const prof_names[P_COUNT] = {
    "conv1x1_gemm", "linear_gemm", "conv_im2col", "depthwise", "attention", "layernorm", "pool_se_scale", "other"};

struct csasn_model {
    /* metadata */
    char *name, *info_json;
    int S, K;                       /* input size, number of classes */
    float mean[3], std[3];
    char **labels;                  /* [K] */
    int *malignant;                 /* [K] */
    float temperature, malig_temperature, malig_threshold;
    int act;                        /* CSASN__ACT_SILU or _RELU6 */
    int n_blocks, stem_c, head_c, t8, t16;
    int P, D, depth, heads, mlp, grid, N, T, vit_pool;
    float vit_eps, ln_eps;
    int C, att_stages, att_r, att_k;
    int E, cls_hidden, cls_blocks, multiscale, n_desc;
    int has_malig, has_seg, seg_D;
    int H32;                        /* S/32: fused map side */

    /* weights (each allocation recorded in wlist for freeing) */
    void **wlist;
    int wn, wcap;
    lin_t stem;                     /* 3x3 s2 conv + BN, K = 27 */
    block_t *blocks;                /* [n_blocks] */
    lin_t head;                     /* 1x1 conv + BN */
    lin_t patch;                    /* P x P stride-P conv, K = P*P*3 */
    float *cls_tok, *pos;           /* [D], [T x D] */
    vitblock_t *vblocks;            /* [depth] */
    float *vln_g, *vln_b;
    lin_t fuse;                     /* 1x1 conv + BN, K = head + D */
    cbam_t *att;                    /* [att_stages] */
    lin_t proj8, proj16, projf, projt, mix;
    resmlp_t *cblocks;              /* [cls_blocks] */
    float *cln_g, *cln_b;
    lin_t head_sub, head_mal;
    lin_t seg_reduce, seg_fuse, seg_out;

    /* activations: one arena, planned at load */
    float *arena;
    size_t arena_floats;
    float *input;                   /* [3 x S x S] planar, as given */
    float *x;                       /* [S x S x 3] HWC input */
    float *col;                     /* im2col scratch, max over convs */
    float *stem_out;                /* [H2 x H2 x stem] */
    float *ebuf, *dbuf;             /* expanded / depthwise maps, max over blocks */
    float *se_p, *se_h, *se_s;      /* [mid], [se], [mid] */
    float *cnn_head;                /* [H32 x H32 x head] */
    float *fuse_in;                 /* [H32*H32 x (head + D)] */
    float *tok, *xn, *qkv, *ay, *hid, *scores, *tok_out;   /* ViT, see vit_forward */
    float *fused, *refined;         /* [H32*H32 x C] */
    float *cy, *cavg, *cmax, *ch1, *ch2, *ca, *smap, *att_map;  /* CBAM */
    float *desc, *h, *hn, *chid, *cls_out, *logits, *probs, *mal;
    float *s32, *cat8, *s8, *s4, *mask;                    /* segmentation */

    int profiling;
    double prof[P_COUNT], prof_total;
    char prof_json[512];
};

/* ------------------------------------------------------------ utilities */

/* -DCSASN_PROFILE_CLOCK=CLOCK_PROCESS_CPUTIME_ID profiles CPU time instead,
 * which is what to look at on a machine shared with other jobs. */
#ifndef CSASN_PROFILE_CLOCK
#define CSASN_PROFILE_CLOCK CLOCK_MONOTONIC
#endif

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CSASN_PROFILE_CLOCK, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Times the statements under category cat only when profiling is on: no
 * clock calls otherwise (one predictable branch), and one copy of the code. */
#define PROF(cat, ...) do { \
        double t0_ = m->profiling ? now_ms() : 0.0; \
        __VA_ARGS__; \
        if (m->profiling) m->prof[cat] += now_ms() - t0_; \
    } while (0)

static int act_from_name(const char *s)
{
    if (!strcmp(s, "silu")) return CSASN__ACT_SILU;
    if (!strcmp(s, "relu6")) return CSASN__ACT_RELU6;
    return -1;
}

/* ---------------------------------------------------------- loading: ctx */

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
    if (!p || push_ptr(&L->m->wlist, &L->m->wn, &L->m->wcap, p)) {
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

/* Packs W [N][K] (+ bias [N] or NULL) into o. */
static void pack_lin(ld_t *L, lin_t *o, int N, int K, const float *W, const float *bias)
{
    if (L->err) return;
    o->N = N;
    o->K = K;
    o->w = walloc(L, csasn__pack_floats(K, N));
    o->b = bias ? walloc(L, (size_t)N) : NULL;
    if (L->err) return;
    csasn__pack_b(W, N, K, o->w);
    if (bias) memcpy(o->b, bias, (size_t)N * sizeof(float));
}

/* nn.Linear(K, N) at prefix: weight [N, K], bias [N]. */
static void load_linear(ld_t *L, lin_t *o, int N, int K, const char *prefix)
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
static void load_convbn(ld_t *L, lin_t *o, int cin, int cout, int k, float eps, const char *prefix)
{
    float *w = tget(L, 4, cout, cin, k, k, "%s.conv.weight", prefix);
    float *shift = NULL;
    double *sc = bn_fold(L, cout, eps, prefix, &shift);
    if (!w || !sc) return;
    float *r = conv_to_rows(L, w, cout, cin, k, sc);
    if (r) pack_lin(L, o, cout, cin * k * k, r, shift);
}

/* nn.Conv2d with bias at prefix. */
static void load_conv(ld_t *L, lin_t *o, int cin, int cout, int k, const char *prefix)
{
    float *w = tget(L, 4, cout, cin, k, k, "%s.weight", prefix);
    float *b = tget(L, 1, cout, 0, 0, 0, "%s.bias", prefix);
    if (!w || !b) return;
    float *r = conv_to_rows(L, w, cout, cin, k, NULL);
    if (r) pack_lin(L, o, cout, cin * k * k, r, b);
}

static void load_dwbn(ld_t *L, dw_t *o, int C, int k, int stride, float eps, const char *prefix)
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

static const char *read_meta(csasn_model *m, csasn__file *f)
{
    const char *s;
    META(csasn__meta_str(f, "general.name", &s));
    if (!(m->name = strdup(s))) return "out of memory";
    META(csasn__meta_str(f, "general.source", &s));

    META(meta_dim(f, "csasn.input_size", &m->S, 32));
    if (m->S % 32 || m->S > 4096) BAD("csasn.input_size = %d is not a multiple of 32 in 32..4096", m->S);
    const float *arr;
    uint32_t n;
    META(csasn__meta_f32_array(f, "csasn.mean", &arr, &n));
    if (n != 3) BAD("csasn.mean has %u values, expected 3", n);
    memcpy(m->mean, arr, sizeof m->mean);
    META(csasn__meta_f32_array(f, "csasn.std", &arr, &n));
    if (n != 3) BAD("csasn.std has %u values, expected 3", n);
    memcpy(m->std, arr, sizeof m->std);
    for (int i = 0; i < 3; i++)
        if (!isfinite(m->mean[i]) || !(m->std[i] > 0.0f) || !isfinite(m->std[i]))
            BAD("csasn.mean/csasn.std must be finite with std > 0");

    char *const *lab;
    META(csasn__meta_str_array(f, "csasn.labels", &lab, &n));
    if (n < 1 || n > 4096) BAD("csasn.labels has %u entries (1..4096)", n);
    m->K = (int)n;
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
    META(meta_pos_f32(f, "csasn.temperature", &m->temperature));
    META(meta_pos_f32(f, "csasn.malignancy_temperature", &m->malig_temperature));
    META(csasn__meta_f32(f, "csasn.malignancy_threshold", &m->malig_threshold));

    META(csasn__meta_str(f, "cnn.family", &s));
    if (strcmp(s, "efficientnet") && strcmp(s, "mobilenetv2"))
        BAD("cnn.family = '%s' (expected efficientnet or mobilenetv2)", s);
    META(csasn__meta_str(f, "cnn.act", &s));
    if ((m->act = act_from_name(s)) < 0) BAD("cnn.act = '%s' (expected silu or relu6)", s);
    float eps;
    META(meta_pos_f32(f, "cnn.bn_eps", &eps));
    META(meta_dim(f, "cnn.stem", &m->stem_c, 1));
    META(meta_dim(f, "cnn.head", &m->head_c, 1));
    const uint32_t *rows;
    META(csasn__meta_u32_array(f, "cnn.blocks", &rows, &n));
    if (n == 0 || n % 7 || n / 7 > 1024) BAD("cnn.blocks has %u values, expected 7 per block (1..1024 blocks)", n);
    m->n_blocks = (int)(n / 7);
    m->blocks = calloc((size_t)m->n_blocks, sizeof *m->blocks);
    if (!m->blocks) return "out of memory";
    int prev = m->stem_c, H = m->S / 2, stride = 2;
    m->t8 = m->t16 = -1;
    for (int i = 0; i < m->n_blocks; i++) {
        const uint32_t *r = rows + 7 * i;
        block_t *b = &m->blocks[i];
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
        if (stride == 8) m->t8 = i;
        if (stride == 16) m->t16 = i;
        prev = b->cout;
    }
    if (stride != 32) BAD("the CNN's total stride is %d, expected 32", stride);
    if (m->t8 < 0 || m->t16 < 0) BAD("the CNN has no stride-8 or stride-16 stage");

    META(meta_dim(f, "vit.patch", &m->P, 1));
    META(meta_dim(f, "vit.dim", &m->D, 1));
    META(meta_dim(f, "vit.depth", &m->depth, 0));
    META(meta_dim(f, "vit.heads", &m->heads, 1));
    META(meta_dim(f, "vit.mlp", &m->mlp, 1));
    META(meta_pos_f32(f, "vit.ln_eps", &m->vit_eps));
    if (m->D % m->heads) BAD("vit.heads = %d does not divide vit.dim = %d", m->heads, m->D);
    if (m->S % m->P) BAD("vit.patch = %d does not divide csasn.input_size = %d", m->P, m->S);
    m->grid = m->S / m->P;
    m->H32 = m->S / 32;
    if (m->grid % m->H32) BAD("the ViT grid %d is not a multiple of the CNN map %d", m->grid, m->H32);
    m->vit_pool = m->grid / m->H32;
    m->N = m->grid * m->grid;
    m->T = m->N + 1;

    META(meta_dim(f, "fuse.channels", &m->C, 1));
    META(meta_dim(f, "att.stages", &m->att_stages, 0));
    if (m->att_stages > 64) BAD("att.stages = %d (0..64)", m->att_stages);
    META(meta_dim(f, "att.reduction", &m->att_r, 1));
    META(meta_dim(f, "att.kernel", &m->att_k, 1));
    if (m->att_k % 2 == 0 || m->att_k > 15) BAD("att.kernel = %d (odd, 1..15)", m->att_k);
    META(meta_dim(f, "cls.dim", &m->E, 1));
    META(meta_dim(f, "cls.hidden", &m->cls_hidden, 1));
    META(meta_dim(f, "cls.blocks", &m->cls_blocks, 0));
    if (m->cls_blocks > 64) BAD("cls.blocks = %d (0..64)", m->cls_blocks);
    uint32_t v;
    META(csasn__meta_u32(f, "cls.multiscale", &v));
    if (v > 1) BAD("cls.multiscale = %u (0 or 1)", v);
    m->multiscale = (int)v;
    m->n_desc = 2 + 2 * m->multiscale;
    META(csasn__meta_u32(f, "heads.malignancy", &v));
    if (v > 1) BAD("heads.malignancy = %u (0 or 1)", v);
    m->has_malig = (int)v;
    META(csasn__meta_u32(f, "heads.segmentation", &v));
    if (v > 1) BAD("heads.segmentation = %u (0 or 1)", v);
    m->has_seg = (int)v;
    META(meta_dim(f, "seg.channels", &m->seg_D, 1));
    META(meta_pos_f32(f, "norm.ln_eps", &m->ln_eps));
    float beps;
    META(meta_pos_f32(f, "norm.bn_eps", &beps));
    return NULL;
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
    float ceps, beps;
    csasn__meta_f32(L->f, "cnn.bn_eps", &ceps);
    csasn__meta_f32(L->f, "norm.bn_eps", &beps);
    char p[NAME_MAX_LEN];

    /* CNN branch */
    load_convbn(L, &m->stem, 3, m->stem_c, 3, ceps, "cnn.stem");
    for (int i = 0; i < m->n_blocks && !L->err; i++) {
        block_t *b = &m->blocks[i];
        if (b->expand)
            load_convbn(L, &b->ex, b->cin, b->mid, 1, ceps, nth(p, "cnn.blocks.", i, "expand"));
        load_dwbn(L, &b->dw, b->mid, b->k, b->stride, ceps, nth(p, "cnn.blocks.", i, "dw"));
        if (b->se) {
            load_conv(L, &b->se1, b->mid, b->se, 1, nth(p, "cnn.blocks.", i, "se.fc1"));
            load_conv(L, &b->se2, b->se, b->mid, 1, nth(p, "cnn.blocks.", i, "se.fc2"));
        }
        load_convbn(L, &b->proj, b->mid, b->cout, 1, ceps, nth(p, "cnn.blocks.", i, "project"));
    }
    load_convbn(L, &m->head, m->blocks[m->n_blocks - 1].cout, m->head_c, 1, ceps, "cnn.head");

    /* ViT branch */
    load_conv(L, &m->patch, 3, m->D, m->P, "vit.patch");
    m->cls_tok = tcopy(L, (size_t)m->D, tget(L, 3, 1, 1, m->D, 0, "vit.cls"));
    m->pos = tcopy(L, (size_t)m->T * m->D, tget(L, 3, 1, m->T, m->D, 0, "vit.pos"));
    m->vblocks = m->depth ? calloc((size_t)m->depth, sizeof *m->vblocks) : NULL;
    if (m->depth && !m->vblocks && !L->err) L->err = "out of memory";
    for (int i = 0; i < m->depth && !L->err; i++) {
        vitblock_t *v = &m->vblocks[i];
        load_ln(L, &v->ln1_g, &v->ln1_b, m->D, nth(p, "vit.blocks.", i, "ln1"));
        load_linear(L, &v->qkv, 3 * m->D, m->D, nth(p, "vit.blocks.", i, "qkv"));
        load_linear(L, &v->proj, m->D, m->D, nth(p, "vit.blocks.", i, "proj"));
        load_ln(L, &v->ln2_g, &v->ln2_b, m->D, nth(p, "vit.blocks.", i, "ln2"));
        load_linear(L, &v->fc1, m->mlp, m->D, nth(p, "vit.blocks.", i, "fc1"));
        load_linear(L, &v->fc2, m->D, m->mlp, nth(p, "vit.blocks.", i, "fc2"));
    }
    load_ln(L, &m->vln_g, &m->vln_b, m->D, "vit.ln");

    /* fusion, attention */
    load_convbn(L, &m->fuse, m->head_c + m->D, m->C, 1, beps, "fuse");
    m->att = m->att_stages ? calloc((size_t)m->att_stages, sizeof *m->att) : NULL;
    if (m->att_stages && !m->att && !L->err) L->err = "out of memory";
    int cr = m->C / m->att_r > 1 ? m->C / m->att_r : 1;   /* max(1, C // r) */
    for (int i = 0; i < m->att_stages && !L->err; i++) {
        load_linear(L, &m->att[i].fc1, cr, m->C, nth(p, "att.", i, "fc1"));
        load_linear(L, &m->att[i].fc2, m->C, cr, nth(p, "att.", i, "fc2"));
        load_conv(L, &m->att[i].conv, 2, 1, m->att_k, nth(p, "att.", i, "conv"));
    }

    /* classifier */
    int c8 = m->blocks[m->t8].cout, c16 = m->blocks[m->t16].cout;
    if (m->multiscale) {
        load_linear(L, &m->proj8, m->E, c8, "proj8");
        load_linear(L, &m->proj16, m->E, c16, "proj16");
    }
    load_linear(L, &m->projf, m->E, m->C, "projf");
    load_linear(L, &m->projt, m->E, m->D, "projt");
    load_linear(L, &m->mix, m->E, m->n_desc * m->E, "mix");
    m->cblocks = m->cls_blocks ? calloc((size_t)m->cls_blocks, sizeof *m->cblocks) : NULL;
    if (m->cls_blocks && !m->cblocks && !L->err) L->err = "out of memory";
    for (int i = 0; i < m->cls_blocks && !L->err; i++) {
        resmlp_t *r = &m->cblocks[i];
        load_ln(L, &r->ln_g, &r->ln_b, m->E, nth(p, "cls_blocks.", i, "ln"));
        load_linear(L, &r->fc1, m->cls_hidden, m->E, nth(p, "cls_blocks.", i, "fc1"));
        load_linear(L, &r->fc2, m->E, m->cls_hidden, nth(p, "cls_blocks.", i, "fc2"));
    }
    load_ln(L, &m->cln_g, &m->cln_b, m->E, "cls_ln");
    load_linear(L, &m->head_sub, m->K, m->E, "head_subtype");
    if (m->has_malig) load_linear(L, &m->head_mal, 1, m->E, "head_malig");
    if (m->has_seg) {
        load_convbn(L, &m->seg_reduce, m->C, m->seg_D, 1, beps, "seg_reduce");
        load_convbn(L, &m->seg_fuse, m->seg_D + c8, m->seg_D, 3, beps, "seg_fuse");
        load_conv(L, &m->seg_out, m->seg_D, 1, 1, "seg_out");
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
    u64 S = (u64)m->S, H2 = S / 2, H32 = (u64)m->H32, HW32 = H32 * H32;
    u64 T = (u64)m->T, D = (u64)m->D, C = (u64)m->C, E = (u64)m->E;
    u64 H8 = S / 8, c8 = (u64)m->blocks[m->t8].cout, SD = (u64)m->seg_D;
    /* im2col scratch: the largest of stem, patch embedding, seg 3x3, attention conv */
    u64 col = H2 * H2 * 27;
    col = zmax(col, (u64)m->N * m->P * m->P * 3);
    col = zmax(col, HW32 * m->att_k * m->att_k * 2);
    if (m->has_seg) col = zmax(col, H8 * H8 * 9 * (SD + c8));
    u64 ebuf = 1, dbuf = 1, mid = 1, se = 1;
    for (int i = 0; i < m->n_blocks; i++) {
        block_t *b = &m->blocks[i];
        if (b->expand) ebuf = zmax(ebuf, (u64)b->H * b->W * b->mid);
        dbuf = zmax(dbuf, (u64)b->Ho * b->Wo * b->mid);
        mid = zmax(mid, (u64)b->mid);
        mid = zmax(mid, (u64)b->cout);   /* se_p also holds the pooled tap8/tap16 maps */
        se = zmax(se, (u64)b->se);
    }
    m->input = reserve(P, 3 * S * S);
    m->x = reserve(P, S * S * 3);
    m->col = reserve(P, col);
    m->stem_out = reserve(P, H2 * H2 * m->stem_c);
    for (int i = 0; i < m->n_blocks; i++) {
        block_t *b = &m->blocks[i];
        b->out = reserve(P, (u64)b->Ho * b->Wo * b->cout);
    }
    m->ebuf = reserve(P, ebuf);
    m->dbuf = reserve(P, dbuf);
    m->se_p = reserve(P, mid);
    m->se_h = reserve(P, se);
    m->se_s = reserve(P, mid);
    m->cnn_head = reserve(P, HW32 * m->head_c);
    m->fuse_in = reserve(P, HW32 * (m->head_c + D));
    m->tok = reserve(P, T * D);
    m->xn = reserve(P, T * D);
    m->qkv = reserve(P, T * 3 * D);
    m->ay = reserve(P, T * D);
    m->hid = reserve(P, T * m->mlp);
    m->scores = reserve(P, csasn__attention_scratch_floats(m->T, m->D, m->heads));
    m->tok_out = reserve(P, T * D);
    m->fused = reserve(P, HW32 * C);
    m->refined = reserve(P, HW32 * C);
    m->cy = reserve(P, HW32 * C);
    m->cavg = reserve(P, C);
    m->cmax = reserve(P, C);
    m->ch1 = reserve(P, 2 * C);
    m->ch2 = reserve(P, C);
    m->ca = reserve(P, C);
    m->smap = reserve(P, HW32 * 2);
    m->att_map = reserve(P, HW32);
    m->desc = reserve(P, (u64)m->n_desc * E);
    m->h = reserve(P, E);
    m->hn = reserve(P, E);
    m->chid = reserve(P, (u64)m->cls_hidden);
    m->cls_out = reserve(P, E);
    m->logits = reserve(P, (u64)m->K);
    m->probs = reserve(P, (u64)m->K);
    m->mal = reserve(P, 1);
    if (m->has_seg) {
        m->s32 = reserve(P, HW32 * SD);
        m->cat8 = reserve(P, H8 * H8 * (SD + c8));
        m->s8 = reserve(P, H8 * H8 * SD);
        m->s4 = reserve(P, 4 * H8 * H8 * SD);
        m->mask = reserve(P, 4 * H8 * H8);
    }
}

/* ------------------------------------------------------------ public API */

void csasn_model_free(csasn_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->wn; i++) free(m->wlist[i]);
    free(m->wlist);
    if (m->labels)
        for (int i = 0; i < m->K; i++) free(m->labels[i]);
    free(m->labels);
    free(m->malignant);
    free(m->blocks);
    free(m->vblocks);
    free(m->att);
    free(m->cblocks);
    free(m->arena);
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
    if (!L.err && !(m->info_json = csasn__file_meta_json(&f))) L.err = "out of memory";
    if (!L.err) {
        plan_t P = {NULL, 0};
        plan(m, &P);
        /* wasm has a 32-bit size_t: cap the arena well below 4 GiB */
        if (P.off > ((u64)1 << 28))
            L.err = csasn__errf("activation memory of %.0f MiB is too large (limit 1024 MiB)", (double)P.off / 262144.0);
        else if (!(m->arena = malloc((size_t)P.off * sizeof(float)))) L.err = "out of memory (activation arena)";
        else {
            m->arena_floats = (size_t)P.off;
            P.base = m->arena;
            P.off = 0;
            plan(m, &P);
            memset(m->arena, 0, m->arena_floats * sizeof(float));
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
int csasn_num_classes(const csasn_model *m) { return m ? m->K : 0; }
const char *csasn_label(const csasn_model *m, int i) { return m && i >= 0 && i < m->K ? m->labels[i] : NULL; }
int csasn_label_is_malignant(const csasn_model *m, int i) { return m && i >= 0 && i < m->K ? m->malignant[i] : 0; }
int csasn_input_size(const csasn_model *m) { return m ? m->S : 0; }
const char *csasn_model_info_json(const csasn_model *m) { return m ? m->info_json : NULL; }

void csasn__model_norm(const csasn_model *m, int *S, float mean[3], float std[3])
{
    *S = m->S;
    memcpy(mean, m->mean, sizeof m->mean);
    memcpy(std, m->std, sizeof m->std);
}

/* --------------------------------------------------------- forward pass */

/* x [HW x K] times a lin_t -> y [HW x N] (row strides ldx, ldy). */
static inline void linear(const lin_t *l, int M, const float *x, int ldx, float *y, int ldy,
                          const float *res, int ldr, int act)
{
    csasn__gemm(M, l->N, l->K, x, ldx, l->w, l->b, y, ldy, res, ldr, act);
}

/* Bilinear upsampling by an integer factor, align_corners=False, as
 * F.interpolate(scale_factor=f): src = (dst + 0.5) / f - 0.5, clamped at 0.
 * in [H x W x C] -> out rows of stride ldo (C used), [fH x fW]. */
static void upsample(const float *in, int H, int W, int C, int f, float *out, int ldo)
{
    for (int oy = 0; oy < H * f; oy++) {
        float sy = ((float)oy + 0.5f) / (float)f - 0.5f;
        if (sy < 0) sy = 0;
        int y0 = (int)sy, y1 = y0 + (y0 < H - 1);
        float ly = sy - (float)y0;
        for (int ox = 0; ox < W * f; ox++) {
            float sx = ((float)ox + 0.5f) / (float)f - 0.5f;
            if (sx < 0) sx = 0;
            int x0 = (int)sx, x1 = x0 + (x0 < W - 1);
            float lx = sx - (float)x0;
            const float *a = in + ((size_t)y0 * W + x0) * C, *b = in + ((size_t)y0 * W + x1) * C;
            const float *c = in + ((size_t)y1 * W + x0) * C, *d = in + ((size_t)y1 * W + x1) * C;
            float *o = out + ((size_t)oy * W * f + ox) * ldo;
            for (int k = 0; k < C; k++)
                o[k] = (1.0f - ly) * ((1.0f - lx) * a[k] + lx * b[k]) + ly * ((1.0f - lx) * c[k] + lx * d[k]);
        }
    }
}

/* General conv through im2col: in [H x W x Cin] -> out [Ho x Wo x N]. */
static void conv_im2col(csasn_model *m, const lin_t *l, const float *in, int H, int W, int Cin,
                        int k, int stride, int pad, float *out, int act)
{
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    csasn__im2col(in, H, W, Cin, k, stride, pad, m->col, Ho, Wo);
    linear(l, Ho * Wo, m->col, l->K, out, l->N, NULL, 0, act);
}

static void cnn_forward(csasn_model *m)
{
    int S = m->S;
    /* stem: x [S x S x 3] -> stem_out [H2 x H2 x stem], 3x3 stride 2 */
    PROF(P_CONV, conv_im2col(m, &m->stem, m->x, S, S, 3, 3, 2, 1, m->stem_out, m->act));
    const float *x = m->stem_out;                       /* [H x W x cin] */
    for (int i = 0; i < m->n_blocks; i++) {
        block_t *b = &m->blocks[i];
        int HW = b->H * b->W, HWo = b->Ho * b->Wo;
        const float *e = x;                             /* [H x W x mid] */
        if (b->expand) {
            PROF(P_CONV1X1, linear(&b->ex, HW, x, b->cin, m->ebuf, b->mid, NULL, 0, m->act));
            e = m->ebuf;
        }
        /* dbuf [Ho x Wo x mid] */
        PROF(P_DW, csasn__dwconv(e, b->H, b->W, b->mid, b->k, b->stride, b->dw.w, b->dw.b, m->dbuf, m->act));
        if (b->se) {
            /* squeeze [mid] -> [se] (SiLU) -> [mid] (sigmoid), scale dbuf */
            PROF(P_POOL, csasn__pool(m->dbuf, HWo, b->mid, m->se_p, NULL);
                 linear(&b->se1, 1, m->se_p, b->mid, m->se_h, b->se, NULL, 0, CSASN__ACT_SILU);
                 linear(&b->se2, 1, m->se_h, b->se, m->se_s, b->mid, NULL, 0, CSASN__ACT_SIGMOID);
                 csasn__scale(m->dbuf, HWo, b->mid, m->se_s));
        }
        /* out [Ho x Wo x cout] (+ x when residual) */
        PROF(P_CONV1X1, linear(&b->proj, HWo, m->dbuf, b->mid, b->out, b->cout,
                            b->residual ? x : NULL, b->cin, CSASN__ACT_NONE));
        x = b->out;
    }
    /* head: [H32 x H32 x head] */
    block_t *last = &m->blocks[m->n_blocks - 1];
    PROF(P_CONV1X1, linear(&m->head, m->H32 * m->H32, x, last->cout, m->cnn_head, m->head_c, NULL, 0, m->act));
}

static void vit_forward(csasn_model *m)
{
    int T = m->T, D = m->D, S = m->S, P = m->P;
    /* patch embedding: x [S x S x 3] -> tok rows 1..N [N x D]; row 0 = class token */
    PROF(P_CONV, conv_im2col(m, &m->patch, m->x, S, S, 3, P, P, 0, m->tok + D, CSASN__ACT_NONE));
    memcpy(m->tok, m->cls_tok, (size_t)D * sizeof(float));
    for (size_t i = 0; i < (size_t)T * D; i++) m->tok[i] += m->pos[i];   /* tok [T x D] */
    for (int l = 0; l < m->depth; l++) {
        vitblock_t *v = &m->vblocks[l];
        PROF(P_LN, csasn__layernorm(m->tok, T, D, D, v->ln1_g, v->ln1_b, m->vit_eps, m->xn, D));  /* xn [T x D] */
        PROF(P_LINEAR, linear(&v->qkv, T, m->xn, D, m->qkv, 3 * D, NULL, 0, CSASN__ACT_NONE));        /* qkv [T x 3D] */
        PROF(P_ATTN, csasn__attention(m->qkv, T, D, m->heads, m->ay, m->scores));                   /* ay [T x D] */
        PROF(P_LINEAR, linear(&v->proj, T, m->ay, D, m->tok, D, m->tok, D, CSASN__ACT_NONE));         /* tok += proj */
        PROF(P_LN, csasn__layernorm(m->tok, T, D, D, v->ln2_g, v->ln2_b, m->vit_eps, m->xn, D));
        PROF(P_LINEAR, linear(&v->fc1, T, m->xn, D, m->hid, m->mlp, NULL, 0, CSASN__ACT_GELU));       /* hid [T x mlp] */
        PROF(P_LINEAR, linear(&v->fc2, T, m->hid, m->mlp, m->tok, D, m->tok, D, CSASN__ACT_NONE));    /* tok += mlp */
    }
    PROF(P_LN, csasn__layernorm(m->tok, T, D, D, m->vln_g, m->vln_b, m->vit_eps, m->tok_out, D)); /* tok_out [T x D] */
}

/* One CBAM stage in place on x [HW x C]; the spatial map goes to att_map [HW]. */
static void cbam_forward(csasn_model *m, const cbam_t *a, float *x)
{
    int HW = m->H32 * m->H32, C = m->C, cr = a->fc1.N;
    PROF(P_POOL, csasn__pool(x, HW, C, m->cavg, m->cmax));                            /* [C], [C] */
    /* ca = sigmoid(mlp(avg) + mlp(max)), mlp = fc2(relu(fc1(.))) */
    PROF(P_LINEAR, linear(&a->fc1, 1, m->cavg, C, m->ch1, cr, NULL, 0, CSASN__ACT_RELU);
         linear(&a->fc1, 1, m->cmax, C, m->ch1 + cr, cr, NULL, 0, CSASN__ACT_RELU);
         linear(&a->fc2, 1, m->ch1, cr, m->ch2, C, NULL, 0, CSASN__ACT_NONE);
         linear(&a->fc2, 1, m->ch1 + cr, cr, m->ca, C, m->ch2, C, CSASN__ACT_NONE));
    PROF(P_OTHER, csasn__act(m->ca, C, CSASN__ACT_SIGMOID);
         memcpy(m->cy, x, (size_t)HW * C * sizeof(float)));
    PROF(P_POOL, csasn__scale(m->cy, HW, C, m->ca);                                  /* cy = x * ca */
         csasn__chan_meanmax(m->cy, HW, C, m->smap));                                 /* smap [HW x 2] */
    /* sa = sigmoid(conv_k(smap)) [HW] */
    PROF(P_CONV, conv_im2col(m, &a->conv, m->smap, m->H32, m->H32, 2, m->att_k, 1, (m->att_k - 1) / 2,
                             m->att_map, CSASN__ACT_SIGMOID));
    PROF(P_OTHER, for (int p = 0; p < HW; p++) {
        float s = m->att_map[p];
        float *xr = x + (size_t)p * C;
        const float *yr = m->cy + (size_t)p * C;
        for (int c = 0; c < C; c++) xr[c] += yr[c] * s;                               /* x + y * sa */
    });
}

static void seg_forward(csasn_model *m)
{
    int H32 = m->H32, HW32 = H32 * H32, SD = m->seg_D, H8 = m->S / 8;
    const block_t *t8 = &m->blocks[m->t8];
    int c8 = t8->cout, L8 = SD + c8;
    /* s32 = relu(seg_reduce(refined)) [H32 x H32 x SD] */
    PROF(P_CONV1X1, linear(&m->seg_reduce, HW32, m->refined, m->C, m->s32, SD, NULL, 0, CSASN__ACT_RELU));
    /* cat8 [H8 x H8 x (SD + c8)] = cat(upsample4(s32), tap8) */
    PROF(P_OTHER, upsample(m->s32, H32, H32, SD, 4, m->cat8, L8);
         for (int p = 0; p < H8 * H8; p++)
             memcpy(m->cat8 + (size_t)p * L8 + SD, t8->out + (size_t)p * c8, (size_t)c8 * sizeof(float)));
    /* s8 = relu(seg_fuse(cat8)) [H8 x H8 x SD], 3x3 */
    PROF(P_CONV, conv_im2col(m, &m->seg_fuse, m->cat8, H8, H8, L8, 3, 1, 1, m->s8, CSASN__ACT_RELU));
    /* s4 = upsample2(s8) [H4 x H4 x SD]; mask = sigmoid(seg_out(s4)) [H4 x H4] */
    PROF(P_OTHER, upsample(m->s8, H8, H8, SD, 2, m->s4, SD));
    PROF(P_CONV1X1, linear(&m->seg_out, 4 * H8 * H8, m->s4, SD, m->mask, 1, NULL, 0, CSASN__ACT_SIGMOID));
}

static int all_finite(const float *x, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

const char *csasn_forward(csasn_model *m, const float *input, csasn_result *res)
{
    if (!m || !input || !res) return "csasn_forward: NULL argument";
    int S = m->S, H32 = m->H32, HW32 = H32 * H32, D = m->D, C = m->C, E = m->E;
    for (int i = 0; i < P_COUNT; i++) m->prof[i] = 0.0;
    double t_start = m->profiling ? now_ms() : 0.0;

    /* input [3 x S x S] planar -> x [S x S x 3] */
    PROF(P_OTHER, if (input != m->input) memcpy(m->input, input, (size_t)3 * S * S * sizeof(float));
         for (int c = 0; c < 3; c++)
             for (int p = 0; p < S * S; p++) m->x[(size_t)p * 3 + c] = m->input[(size_t)c * S * S + p]);

    cnn_forward(m);
    vit_forward(m);

    /* fuse_in [HW32 x (head + D)] = cat(cnn head, avgpool(ViT patch map)) */
    int LF = m->head_c + D, g = m->grid, pp = m->vit_pool;
    PROF(P_OTHER,
        for (int p = 0; p < HW32; p++)
            memcpy(m->fuse_in + (size_t)p * LF, m->cnn_head + (size_t)p * m->head_c, (size_t)m->head_c * sizeof(float));
        for (int y = 0; y < H32; y++)
            for (int x = 0; x < H32; x++) {
                float *o = m->fuse_in + ((size_t)y * H32 + x) * LF + m->head_c;
                for (int d = 0; d < D; d++) o[d] = 0.0f;
                for (int dy = 0; dy < pp; dy++)
                    for (int dx = 0; dx < pp; dx++) {
                        const float *t = m->tok_out + (1 + (size_t)(y * pp + dy) * g + x * pp + dx) * D;
                        for (int d = 0; d < D; d++) o[d] += t[d];
                    }
                for (int d = 0; d < D; d++) o[d] *= 1.0f / (float)(pp * pp);
            });
    /* fused = silu(fuse(fuse_in)) [HW32 x C] */
    PROF(P_CONV1X1, linear(&m->fuse, HW32, m->fuse_in, LF, m->fused, C, NULL, 0, CSASN__ACT_SILU));

    /* refined [HW32 x C]: cascaded CBAM stages, in place */
    memcpy(m->refined, m->fused, (size_t)HW32 * C * sizeof(float));
    for (int i = 0; i < m->att_stages; i++) cbam_forward(m, &m->att[i], m->refined);

    /* descriptors [n_desc x E] -> h [E] */
    float *d = m->desc;
    if (m->multiscale) {
        const block_t *b8 = &m->blocks[m->t8], *b16 = &m->blocks[m->t16];
        PROF(P_POOL, csasn__pool(b8->out, b8->Ho * b8->Wo, b8->cout, m->se_p, NULL));
        PROF(P_LINEAR, linear(&m->proj8, 1, m->se_p, b8->cout, d, E, NULL, 0, CSASN__ACT_NONE));
        d += E;
        PROF(P_POOL, csasn__pool(b16->out, b16->Ho * b16->Wo, b16->cout, m->se_p, NULL));
        PROF(P_LINEAR, linear(&m->proj16, 1, m->se_p, b16->cout, d, E, NULL, 0, CSASN__ACT_NONE));
        d += E;
    }
    PROF(P_POOL, csasn__pool(m->refined, HW32, C, m->cavg, NULL));
    PROF(P_LINEAR, linear(&m->projf, 1, m->cavg, C, d, E, NULL, 0, CSASN__ACT_NONE);
         linear(&m->projt, 1, m->tok_out, D, d + E, E, NULL, 0, CSASN__ACT_NONE);
         linear(&m->mix, 1, m->desc, m->n_desc * E, m->h, E, NULL, 0, CSASN__ACT_GELU));
    for (int i = 0; i < m->cls_blocks; i++) {
        resmlp_t *r = &m->cblocks[i];
        PROF(P_LN, csasn__layernorm(m->h, 1, E, E, r->ln_g, r->ln_b, m->ln_eps, m->hn, E));
        PROF(P_LINEAR, linear(&r->fc1, 1, m->hn, E, m->chid, m->cls_hidden, NULL, 0, CSASN__ACT_GELU);
             linear(&r->fc2, 1, m->chid, m->cls_hidden, m->h, E, m->h, E, CSASN__ACT_NONE));
    }
    PROF(P_LN, csasn__layernorm(m->h, 1, E, E, m->cln_g, m->cln_b, m->ln_eps, m->cls_out, E));   /* [E] */

    /* heads */
    PROF(P_LINEAR, linear(&m->head_sub, 1, m->cls_out, E, m->logits, m->K, NULL, 0, CSASN__ACT_NONE));
    for (int k = 0; k < m->K; k++) m->probs[k] = m->logits[k] / m->temperature;
    csasn__softmax(m->probs, m->K);
    memset(res, 0, sizeof *res);
    if (m->has_malig) {
        PROF(P_LINEAR, linear(&m->head_mal, 1, m->cls_out, E, m->mal, 1, NULL, 0, CSASN__ACT_NONE));
        res->malignancy = csasn__act1(m->mal[0] / m->malig_temperature, CSASN__ACT_SIGMOID);
    } else {
        res->malignancy = NAN;
    }
    if (m->has_seg) seg_forward(m);

    res->n_classes = m->K;
    res->probs = m->probs;
    res->logits = m->logits;
    res->top = 0;
    for (int k = 1; k < m->K; k++)
        if (m->probs[k] > m->probs[res->top]) res->top = k;
    res->has_malignancy = m->has_malig;
    if (m->att_stages) {
        res->attention = m->att_map;
        res->att_h = res->att_w = H32;
    }
    if (m->has_seg) {
        res->mask = m->mask;
        res->mask_h = res->mask_w = S / 4;
    }
    if (m->profiling) m->prof_total = now_ms() - t_start;
    /* Finite weights can still overflow (say every weight x 1e18): report
     * that instead of handing out NaN probabilities. The outputs are few
     * (K + 1 + H32^2 + (S/4)^2 values), so checking them costs nothing. */
    int bad = !all_finite(m->logits, m->K) || !all_finite(m->probs, m->K) ||
              (m->has_malig && !isfinite(res->malignancy)) ||
              (m->att_stages && !all_finite(m->att_map, HW32)) ||
              (m->has_seg && !all_finite(m->mask, (S / 4) * (S / 4)));
    if (bad) {
        memset(res, 0, sizeof *res);
        return "the forward pass produced non-finite values (activations overflow): the model's weights are unusable";
    }
    return NULL;
}

const char *csasn_classify(csasn_model *m, const void *bytes, size_t len, const csasn_roi *roi,
                           csasn_result *res)
{
    if (!m || !res) return "csasn_classify: NULL argument";
    int iw = 0, ih = 0;
    const char *e = csasn_preprocess(m, bytes, len, roi, m->input, &iw, &ih);
    if (e) return e;
    e = csasn_forward(m, m->input, res);
    if (e) return e;
    res->image_w = iw;
    res->image_h = ih;
    return NULL;
}

const float *csasn_debug_tensor(const csasn_model *m, const char *name, int shape[4], int *rank)
{
    if (!m || !name || !shape || !rank) return NULL;
    int H32 = m->H32;
    const block_t *b8 = &m->blocks[m->t8], *b16 = &m->blocks[m->t16];
    struct { const char *n; const float *p; int r, d0, d1, d2; } t[] = {
        {"input", m->input, 3, 3, m->S, m->S},
        {"cnn.stem", m->stem_out, 3, m->S / 2, m->S / 2, m->stem_c},
        {"cnn.tap8", b8->out, 3, b8->Ho, b8->Wo, b8->cout},
        {"cnn.tap16", b16->out, 3, b16->Ho, b16->Wo, b16->cout},
        {"cnn.head", m->cnn_head, 3, H32, H32, m->head_c},
        {"vit.tokens", m->tok_out, 2, m->T, m->D, 0},
        {"fused", m->fused, 3, H32, H32, m->C},
        {"refined", m->refined, 3, H32, H32, m->C},
        {"attention", m->att_stages ? m->att_map : NULL, 2, H32, H32, 0},
        {"cls.out", m->cls_out, 1, m->E, 0, 0},
        {"logits", m->logits, 1, m->K, 0, 0},
        {"mask", m->has_seg ? m->mask : NULL, 2, m->S / 4, m->S / 4, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(name, t[i].n)) {
            if (!t[i].p) return NULL;
            *rank = t[i].r;
            shape[0] = t[i].d0; shape[1] = t[i].d1; shape[2] = t[i].d2; shape[3] = 0;
            return t[i].p;
        }
    /* "cnn.blocks.I": the output of block I, [Ho, Wo, cout] */
    /* (parsed by hand: sscanf would pull ~10 KB of scanf and float parsing
     * into the wasm binary) */
    const char *s = name + 11;
    int i = 0;
    if (strncmp(name, "cnn.blocks.", 11) || *s < '0' || *s > '9') return NULL;
    for (; *s >= '0' && *s <= '9' && i <= m->n_blocks; s++) i = i * 10 + (*s - '0');
    if (!*s && i < m->n_blocks) {
        const block_t *b = &m->blocks[i];
        *rank = 3;
        shape[0] = b->Ho; shape[1] = b->Wo; shape[2] = b->cout; shape[3] = 0;
        return b->out;
    }
    return NULL;
}

void csasn_set_profiling(csasn_model *m, int on)
{
    if (m) m->profiling = on != 0;
}

const char *csasn_profile_json(const csasn_model *m)
{
    if (!m) return NULL;
    csasn_model *mm = (csasn_model *)m;   /* the JSON buffer is a cache inside the model */
    size_t o = 0, cap = sizeof mm->prof_json;
    o += (size_t)snprintf(mm->prof_json + o, cap - o, "{");
    for (int i = 0; i < P_COUNT && o < cap; i++)
        o += (size_t)snprintf(mm->prof_json + o, cap - o, "\"%s\": %.3f, ", prof_names[i], m->prof[i]);
    if (o < cap) snprintf(mm->prof_json + o, cap - o, "\"total\": %.3f, \"simd\": \"%s\"}", m->prof_total, csasn__simd_name());
    return mm->prof_json;
}
