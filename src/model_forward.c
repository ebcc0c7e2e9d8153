/* model_forward.c - the CSASN forward pass (src/model.h), preprocessing and
 * classification.
 *
 * The forward pass is tools/csasn_model.py's CSASN.forward + predict in eval
 * mode, for one image, and reads in the same order: the CNN branch (stem,
 * MBConv blocks, head), the ViT branch (patch embedding, blocks, LayerNorm),
 * fusion, the CBAM stages, the classifier, the heads, the segmentation head.
 * Every buffer comes from the run state planned at load: nothing here
 * allocates. The op helpers below are the only place that calls a kernel;
 * each one also times its op when profiling is on.
 */
#include "csasn.h"
#include "error.h"
#include "image.h"
#include "kernels.h"
#include "model.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ ops */

static double prof_start(const csasn_model *m) { return m->profiling ? csasn__now_ms() : 0.0; }

static void prof_stop(csasn_model *m, int op, double t0)
{
    if (m->profiling) m->prof[op] += csasn__now_ms() - t0;
}

/* y [M x N] = act(x [M x K] W^T + b) (+ r [M x N] when r != NULL; r may be y). */
static void gemm(csasn_model *m, int op, float *y, const float *x, int M, const csasn__linear *l,
                 const float *r, int act)
{
    double t0 = prof_start(m);
    csasn__gemm(M, l->N, l->K, x, l->K, l->w, y, l->N, r, l->N, act);
    prof_stop(m, op, t0);
}

/* A linear layer on M rows (tokens, or one vector). */
static void linear(csasn_model *m, float *y, const float *x, int M, const csasn__linear *l, int act)
{
    gemm(m, CSASN__PROF_LINEAR, y, x, M, l, NULL, act);
}

/* y = r + x W^T + b: a linear layer on a residual stream. */
static void linear_add(csasn_model *m, float *y, const float *x, int M, const csasn__linear *l, const float *r)
{
    gemm(m, CSASN__PROF_LINEAR, y, x, M, l, r, CSASN__ACT_NONE);
}

/* A 1x1 convolution on a map of HW pixels [HW x K] -> [HW x N]. */
static void conv1x1(csasn_model *m, float *y, const float *x, int HW, const csasn__linear *l, int act)
{
    gemm(m, CSASN__PROF_CONV1X1, y, x, HW, l, NULL, act);
}

static void conv1x1_add(csasn_model *m, float *y, const float *x, int HW, const csasn__linear *l, const float *r)
{
    gemm(m, CSASN__PROF_CONV1X1, y, x, HW, l, r, CSASN__ACT_NONE);
}

/* A k x k convolution through im2col: x [H x W x Cin] -> y [Ho x Wo x N],
 * Cin = K / k^2. */
static void conv(csasn_model *m, float *y, const float *x, int H, int W, const csasn__linear *l,
                 int k, int stride, int pad, int act)
{
    double t0 = prof_start(m);
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    csasn__im2col(x, H, W, l->K / (k * k), k, stride, pad, m->s.col, Ho, Wo);
    csasn__gemm(Ho * Wo, l->N, l->K, m->s.col, l->K, l->w, y, l->N, NULL, 0, act);
    prof_stop(m, CSASN__PROF_CONV, t0);
}

/* x [H x W x C] -> y [Ho x Wo x C]. */
static void dwconv(csasn_model *m, float *y, const float *x, int H, int W, const csasn__dwconv_w *d, int act)
{
    double t0 = prof_start(m);
    csasn__dwconv(x, H, W, d->C, d->k, d->stride, d->w, d->b, y, act);
    prof_stop(m, CSASN__PROF_DW, t0);
}

/* rows x D -> rows x D. */
static void layernorm(csasn_model *m, float *y, const float *x, int rows, int D, const float *g,
                      const float *b, float eps)
{
    double t0 = prof_start(m);
    csasn__layernorm(x, rows, D, D, g, b, eps, y, D);
    prof_stop(m, CSASN__PROF_LN, t0);
}

/* qkv [T x 3D] -> y [T x D]. */
static void attention(csasn_model *m, float *y, const float *qkv)
{
    double t0 = prof_start(m);
    csasn__attention(qkv, m->c.T, m->c.D, m->c.heads, y, m->s.scores);
    prof_stop(m, CSASN__PROF_ATTN, t0);
}

/* x [HW x C] -> avg [C] (and max [C] when mx != NULL). */
static void pool(csasn_model *m, float *avg, float *mx, const float *x, int HW, int C)
{
    double t0 = prof_start(m);
    csasn__pool(x, HW, C, avg, mx);
    prof_stop(m, CSASN__PROF_POOL, t0);
}

/* x [HW x C] *= s [C]. */
static void scale(csasn_model *m, float *x, int HW, int C, const float *s)
{
    double t0 = prof_start(m);
    csasn__scale(x, HW, C, s);
    prof_stop(m, CSASN__PROF_POOL, t0);
}

/* x [HW x C] -> y [HW x 2]: per pixel mean and max over channels. */
static void chan_meanmax(csasn_model *m, float *y, const float *x, int HW, int C)
{
    double t0 = prof_start(m);
    csasn__chan_meanmax(x, HW, C, y);
    prof_stop(m, CSASN__PROF_POOL, t0);
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

/* ----------------------------------------------------------- CNN branch */

/* MBConv.forward: x [H x W x cin] -> block_out[i] [Ho x Wo x cout]. */
static const float *mbconv(csasn_model *m, int i, const float *x)
{
    const csasn__config *c = &m->c;
    const csasn__block_config *b = &c->blocks[i];
    const csasn__block_weights *w = &m->w.blocks[i];
    csasn__state *s = &m->s;
    int HW = b->H * b->W, HWo = b->Ho * b->Wo;
    const float *y = x;                                           /* [H x W x mid] */
    if (b->expand) {
        conv1x1(m, s->ebuf, x, HW, &w->expand, c->act);
        y = s->ebuf;
    }
    dwconv(m, s->dbuf, y, b->H, b->W, &w->dw, c->act);          /* dbuf [Ho x Wo x mid] */
    if (b->se) {
        /* SqueezeExcite: [mid] -> [se] (SiLU) -> [mid] (sigmoid), dbuf *= it */
        pool(m, s->se_p, NULL, s->dbuf, HWo, b->mid);
        conv1x1(m, s->se_h, s->se_p, 1, &w->se1, CSASN__ACT_SILU);
        conv1x1(m, s->se_s, s->se_h, 1, &w->se2, CSASN__ACT_SIGMOID);
        scale(m, s->dbuf, HWo, b->mid, s->se_s);
    }
    float *out = s->block_out[i];                                 /* [Ho x Wo x cout] */
    if (b->residual)
        conv1x1_add(m, out, s->dbuf, HWo, &w->project, x);
    else
        conv1x1(m, out, s->dbuf, HWo, &w->project, CSASN__ACT_NONE);
    return out;
}

/* CNNBranch.forward: x [S x S x 3] -> the taps (block outputs t8, t16) and
 * cnn_head [H32 x H32 x head]. */
static void cnn_branch(csasn_model *m)
{
    const csasn__config *c = &m->c;
    const csasn__weights *w = &m->w;
    csasn__state *s = &m->s;
    conv(m, s->stem_out, s->x, c->S, c->S, &w->stem, 3, 2, 1, c->act);   /* [H2 x H2 x stem] */
    const float *x = s->stem_out;
    for (int i = 0; i < c->n_blocks; i++) x = mbconv(m, i, x);
    conv1x1(m, s->cnn_head, x, c->H32 * c->H32, &w->head, c->act);
}

/* ----------------------------------------------------------- ViT branch */

/* ViTBlock.forward on tok [T x D], in place. */
static void vit_block(csasn_model *m, const csasn__vit_weights *v)
{
    const csasn__config *c = &m->c;
    csasn__state *s = &m->s;
    int T = c->T, D = c->D;
    layernorm(m, s->xn, s->tok, T, D, v->ln1_g, v->ln1_b, c->vit_eps);   /* xn [T x D] */
    linear(m, s->qkv, s->xn, T, &v->qkv, CSASN__ACT_NONE);             /* qkv [T x 3D] */
    attention(m, s->ay, s->qkv);                                       /* ay [T x D] */
    linear_add(m, s->tok, s->ay, T, &v->proj, s->tok);                 /* tok += proj(ay) */
    layernorm(m, s->xn, s->tok, T, D, v->ln2_g, v->ln2_b, c->vit_eps);
    linear(m, s->hid, s->xn, T, &v->fc1, CSASN__ACT_GELU);             /* hid [T x mlp] */
    linear_add(m, s->tok, s->hid, T, &v->fc2, s->tok);                 /* tok += fc2(hid) */
}

/* ViTBranch.forward: x [S x S x 3] -> tok_out [T x D]. */
static void vit_branch(csasn_model *m)
{
    const csasn__config *c = &m->c;
    const csasn__weights *w = &m->w;
    csasn__state *s = &m->s;
    int T = c->T, D = c->D;
    /* patch embedding -> tok rows 1..N [N x D]; row 0 = class token; + pos */
    conv(m, s->tok + D, s->x, c->S, c->S, &w->patch, c->P, c->P, 0, CSASN__ACT_NONE);
    memcpy(s->tok, w->cls_tok, (size_t)D * sizeof(float));
    for (size_t i = 0; i < (size_t)T * D; i++) s->tok[i] += w->pos[i];
    for (int l = 0; l < c->depth; l++) vit_block(m, &w->vit[l]);
    layernorm(m, s->tok_out, s->tok, T, D, w->vln_g, w->vln_b, c->vit_eps);
}

/* --------------------------------------------------- fusion, attention */

/* fused [H32^2 x C] = silu(fuse(cat(cnn_head, avgpool(ViT patch map)))). */
static void fuse(csasn_model *m)
{
    const csasn__config *c = &m->c;
    csasn__state *s = &m->s;
    int H32 = c->H32, HW32 = H32 * H32, D = c->D, hc = c->head_c;
    int LF = hc + D, g = c->grid, pp = c->vit_pool;
    for (int p = 0; p < HW32; p++)                                      /* fuse_in [HW32 x (head + D)] */
        memcpy(s->fuse_in + (size_t)p * LF, s->cnn_head + (size_t)p * hc, (size_t)hc * sizeof(float));
    for (int y = 0; y < H32; y++)
        for (int x = 0; x < H32; x++) {
            float *o = s->fuse_in + ((size_t)y * H32 + x) * LF + hc;
            for (int d = 0; d < D; d++) o[d] = 0.0f;
            for (int dy = 0; dy < pp; dy++)
                for (int dx = 0; dx < pp; dx++) {
                    const float *t = s->tok_out + (1 + (size_t)(y * pp + dy) * g + x * pp + dx) * D;
                    for (int d = 0; d < D; d++) o[d] += t[d];
                }
            for (int d = 0; d < D; d++) o[d] *= 1.0f / (float)(pp * pp);
        }
    conv1x1(m, s->fused, s->fuse_in, HW32, &m->w.fuse, CSASN__ACT_SILU);
}

/* CBAMStage.forward on x [HW x C], in place; the spatial map goes to att_map [HW]. */
static void cbam_stage(csasn_model *m, const csasn__cbam_weights *a, float *x)
{
    const csasn__config *c = &m->c;
    csasn__state *s = &m->s;
    int HW = c->H32 * c->H32, C = c->C, cr = a->fc1.N;
    /* ca = sigmoid(mlp(avg) + mlp(max)) [C], mlp = fc2(relu(fc1(.))) */
    pool(m, s->cavg, s->cmax, x, HW, C);
    linear(m, s->ch1, s->cavg, 1, &a->fc1, CSASN__ACT_RELU);
    linear(m, s->ch1 + cr, s->cmax, 1, &a->fc1, CSASN__ACT_RELU);
    linear(m, s->ch2, s->ch1, 1, &a->fc2, CSASN__ACT_NONE);
    linear_add(m, s->ca, s->ch1 + cr, 1, &a->fc2, s->ch2);
    csasn__act(s->ca, C, CSASN__ACT_SIGMOID);
    memcpy(s->cy, x, (size_t)HW * C * sizeof(float));
    scale(m, s->cy, HW, C, s->ca);                                     /* y = x * ca */
    chan_meanmax(m, s->smap, s->cy, HW, C);                            /* smap [HW x 2] */
    /* sa = sigmoid(conv_k(smap)) [HW] */
    conv(m, s->att_map, s->smap, c->H32, c->H32, &a->conv, c->att_k, 1, (c->att_k - 1) / 2, CSASN__ACT_SIGMOID);
    for (int p = 0; p < HW; p++) {                                     /* x + y * sa */
        float sa = s->att_map[p];
        float *xr = x + (size_t)p * C;
        const float *yr = s->cy + (size_t)p * C;
        for (int k = 0; k < C; k++) xr[k] += yr[k] * sa;
    }
}

/* ----------------------------------------------------------- classifier */

/* descriptors -> h [E] -> ResMLP blocks -> cls_out [E]. */
static void classifier(csasn_model *m)
{
    const csasn__config *c = &m->c;
    const csasn__weights *w = &m->w;
    csasn__state *s = &m->s;
    int E = c->E;
    float *d = s->desc;                                                /* [n_desc x E] */
    if (c->multiscale) {
        const csasn__block_config *b8 = &c->blocks[c->t8], *b16 = &c->blocks[c->t16];
        pool(m, s->se_p, NULL, s->block_out[c->t8], b8->Ho * b8->Wo, b8->cout);
        linear(m, d, s->se_p, 1, &w->proj8, CSASN__ACT_NONE);
        d += E;
        pool(m, s->se_p, NULL, s->block_out[c->t16], b16->Ho * b16->Wo, b16->cout);
        linear(m, d, s->se_p, 1, &w->proj16, CSASN__ACT_NONE);
        d += E;
    }
    pool(m, s->cavg, NULL, s->refined, c->H32 * c->H32, c->C);
    linear(m, d, s->cavg, 1, &w->projf, CSASN__ACT_NONE);
    linear(m, d + E, s->tok_out, 1, &w->projt, CSASN__ACT_NONE);       /* the class token */
    linear(m, s->h, s->desc, 1, &w->mix, CSASN__ACT_GELU);
    for (int i = 0; i < c->cls_blocks; i++) {                          /* ResMLP: h += fc2(gelu(fc1(ln(h)))) */
        const csasn__resmlp_weights *r = &w->cls[i];
        layernorm(m, s->hn, s->h, 1, E, r->ln_g, r->ln_b, c->ln_eps);
        linear(m, s->chid, s->hn, 1, &r->fc1, CSASN__ACT_GELU);
        linear_add(m, s->h, s->chid, 1, &r->fc2, s->h);
    }
    layernorm(m, s->cls_out, s->h, 1, E, w->cln_g, w->cln_b, c->ln_eps);
}

/* ------------------------------------------------------------- seg head */

/* refined [H32 x H32 x C] and tap8 -> mask [H4 x H4]. */
static void segment(csasn_model *m)
{
    const csasn__config *c = &m->c;
    const csasn__weights *w = &m->w;
    csasn__state *s = &m->s;
    int H32 = c->H32, SD = c->seg_D, H8 = c->S / 8;
    int c8 = c->blocks[c->t8].cout, L8 = SD + c8;
    const float *tap8 = s->block_out[c->t8];
    conv1x1(m, s->s32, s->refined, H32 * H32, &w->seg_reduce, CSASN__ACT_RELU);  /* [H32 x H32 x SD] */
    upsample(s->s32, H32, H32, SD, 4, s->cat8, L8);                    /* cat8 = cat(up4(s32), tap8) */
    for (int p = 0; p < H8 * H8; p++)
        memcpy(s->cat8 + (size_t)p * L8 + SD, tap8 + (size_t)p * c8, (size_t)c8 * sizeof(float));
    conv(m, s->s8, s->cat8, H8, H8, &w->seg_fuse, 3, 1, 1, CSASN__ACT_RELU);     /* [H8 x H8 x SD] */
    upsample(s->s8, H8, H8, SD, 2, s->s4, SD);                          /* [H4 x H4 x SD] */
    conv1x1(m, s->mask, s->s4, 4 * H8 * H8, &w->seg_out, CSASN__ACT_SIGMOID);
}

/* ------------------------------------------------------ descriptor heads */

/* CSASN.forward's head_desc: head i reads cls_out [E] -> dlogits [n_i] at
 * dhead_off[i], softmax (no temperature) -> dprobs [n_i]; the result's
 * csasn_descriptor i points at those probabilities and gets their argmax. */
static void descriptor_heads(csasn_model *m)
{
    const csasn__config *c = &m->c;
    csasn__state *s = &m->s;
    for (int i = 0; i < c->n_dheads; i++) {
        csasn_descriptor *d = &m->dheads[i];
        float *z = s->dlogits + m->dhead_off[i], *p = s->dprobs + m->dhead_off[i];   /* [n_i] */
        linear(m, z, s->cls_out, 1, &m->w.head_desc[i], CSASN__ACT_NONE);
        memcpy(p, z, (size_t)d->n_labels * sizeof(float));
        csasn__softmax(p, d->n_labels);
        d->top = 0;
        for (int k = 1; k < d->n_labels; k++)
            if (p[k] > p[d->top]) d->top = k;
    }
}

/* -------------------------------------------------------------- forward */

static int all_finite(const float *x, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

const char *csasn_forward(csasn_model *m, const float *input, csasn_result *res)
{
    if (!m || !input || !res) return "csasn_forward: NULL argument";
    const csasn__config *c = &m->c;
    const csasn__weights *w = &m->w;
    csasn__state *s = &m->s;
    int S = c->S, H32 = c->H32, HW32 = H32 * H32;
    for (int i = 0; i < CSASN__PROF_COUNT; i++) m->prof[i] = 0.0;
    double t_start = prof_start(m);

    /* input [3 x S x S] planar -> x [S x S x 3] */
    if (input != s->input) memcpy(s->input, input, (size_t)3 * S * S * sizeof(float));
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < S * S; p++) s->x[(size_t)p * 3 + ch] = s->input[(size_t)ch * S * S + p];

    cnn_branch(m);
    vit_branch(m);
    fuse(m);
    memcpy(s->refined, s->fused, (size_t)HW32 * c->C * sizeof(float));   /* refined [HW32 x C] */
    for (int i = 0; i < c->att_stages; i++) cbam_stage(m, &w->att[i], s->refined);
    classifier(m);

    /* heads */
    linear(m, s->logits, s->cls_out, 1, &w->head_sub, CSASN__ACT_NONE);   /* [K] */
    for (int k = 0; k < c->K; k++) s->probs[k] = s->logits[k] / c->temperature;
    csasn__softmax(s->probs, c->K);
    float malignancy = NAN;
    if (c->has_malig) {
        linear(m, s->mal, s->cls_out, 1, &w->head_mal, CSASN__ACT_NONE);
        malignancy = csasn__act1(s->mal[0] / c->malig_temperature, CSASN__ACT_SIGMOID);
    }
    if (c->has_seg) segment(m);
    descriptor_heads(m);

    memset(res, 0, sizeof *res);
    res->n_classes = c->K;
    res->probs = s->probs;
    res->logits = s->logits;
    res->top = 0;
    for (int k = 1; k < c->K; k++)
        if (s->probs[k] > s->probs[res->top]) res->top = k;
    res->has_malignancy = c->has_malig;
    res->malignancy = malignancy;
    if (c->att_stages) {
        res->attention = s->att_map;
        res->att_h = res->att_w = H32;
    }
    if (c->has_seg) {
        res->mask = s->mask;
        res->mask_h = res->mask_w = S / 4;
    }
    if (c->n_dheads) {
        res->n_descriptors = c->n_dheads;
        res->descriptors = m->dheads;
    }
    if (m->profiling) {
        m->prof_total = csasn__now_ms() - t_start;
        double ops = 0.0;   /* what no op helper timed: copies, concatenations, upsampling */
        for (int i = 0; i < CSASN__PROF_OTHER; i++) ops += m->prof[i];
        m->prof[CSASN__PROF_OTHER] = m->prof_total > ops ? m->prof_total - ops : 0.0;
    }
    /* Finite weights can still overflow (say every weight x 1e18): report
     * that instead of handing out NaN probabilities. The outputs are few
     * (K + 1 + H32^2 + (S/4)^2 values), so checking them costs nothing. */
    int bad = !all_finite(s->logits, c->K) || !all_finite(s->probs, c->K) ||
              (c->has_malig && !isfinite(res->malignancy)) ||
              (c->att_stages && !all_finite(s->att_map, HW32)) ||
              (c->has_seg && !all_finite(s->mask, (S / 4) * (S / 4))) ||
              (c->n_dheads && !all_finite(s->dprobs, c->dhead_total));
    if (bad) {
        memset(res, 0, sizeof *res);
        return "the forward pass produced non-finite values (activations overflow): the model's weights are unusable";
    }
    return NULL;
}

/* ------------------------------------------------- preprocess, classify */

/* The model's region rule (csasn.region_* of its file) for the image pipeline. */
static csasn__region_spec region_spec(const csasn_model *m)
{
    csasn__region_spec r = {m->c.region_mode, m->c.region_margin, m->c.region_fill};
    return r;
}

static const char *preprocess(const csasn_model *m, const void *bytes, size_t len, const csasn_roi *roi,
                              float *out, int *image_w, int *image_h, csasn__region *g)
{
    csasn__region_spec spec = region_spec(m);
    return csasn__image_to_input(bytes, len, roi, m->c.S, m->c.mean, m->c.std, out, image_w, image_h, &spec, g);
}

const char *csasn_preprocess(const csasn_model *m, const void *bytes, size_t len,
                             const csasn_roi *roi, float *out, int *image_w, int *image_h)
{
    if (!m || !out)
        return "csasn_preprocess: model and output buffer are required";
    return preprocess(m, bytes, len, roi, out, image_w, image_h, NULL);
}

const char *csasn_model_region(const csasn_model *m, int image_w, int image_h, const csasn_roi *roi,
                               csasn_roi *region)
{
    if (!m || !region) return "csasn_model_region: model and region are required";
    if (image_w < 1 || image_h < 1 || image_w > (int)CSASN_MAX_IMAGE_SIDE || image_h > (int)CSASN_MAX_IMAGE_SIDE)
        return csasn__errf("bad image size %dx%d", image_w, image_h);
    csasn__region_spec spec = region_spec(m);
    csasn__region g;
    const char *e = csasn__region_geometry(roi, image_w, image_h, &spec, &g);
    if (e) return e;
    region->x = g.x0;
    region->y = g.y0;
    region->w = g.x1 - g.x0;
    region->h = g.y1 - g.y0;
    return NULL;
}

const char *csasn_classify(csasn_model *m, const void *bytes, size_t len, const csasn_roi *roi,
                           csasn_result *res)
{
    if (!m || !res) return "csasn_classify: NULL argument";
    int iw = 0, ih = 0;
    csasn__region g;
    const char *e = preprocess(m, bytes, len, roi, m->s.input, &iw, &ih, &g);
    if (e) return e;
    e = csasn_forward(m, m->s.input, res);
    if (e) return e;
    res->image_w = iw;
    res->image_h = ih;
    res->region_x = g.x0;
    res->region_y = g.y0;
    res->region_w = g.x1 - g.x0;
    res->region_h = g.y1 - g.y0;
    return NULL;
}

const char *csasn_warmup(int rounds)
{
    return csasn__warmup(rounds) ? "out of memory warming up the kernels" : NULL;
}

const char *csasn_selftest(void) { return csasn__selftest(); }

const char *csasn_kernels_name(void) { return csasn__simd_name(); }

