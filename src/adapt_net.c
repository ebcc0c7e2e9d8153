/* adapt_net.c - the trainable classifier of on-device adaptation
 * (src/adapt_net.h): forward, backward, loss, AdamW.
 *
 * Every matrix product runs on the engine's GEMM (csasn__gemm over a weight
 * packed by csasn__pack_b): the forward product Y = X W^T directly, the two
 * backward products through transposed copies (dX = dY W as X' = dY (W^T)^T,
 * dW = dY^T X as (dY^T) (X^T)^T). Packing costs one pass over a weight per
 * product, small against the batch's arithmetic, and the GEMM is the fast,
 * SIMD path on every target (SSE2 natively, SIMD128 in wasm). */
#include "adapt_net.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- layout */

static size_t add(size_t *n, size_t k)
{
    size_t o = *n;
    *n += k;
    return o;
}

static csasn__anet_lin lin(size_t *n, int out, int in)
{
    csasn__anet_lin l = {0, 0, out, in};
    l.w = add(n, (size_t)out * in);
    l.b = add(n, (size_t)out);
    return l;
}

const char *csasn__anet_init(csasn__anet *net, const csasn__anet_shape *sh)
{
    memset(net, 0, sizeof *net);
    if (sh->n_desc != 2 && sh->n_desc != 4) return "classifier: 2 or 4 descriptors";
    if (sh->E < 1 || sh->H < 1 || sh->K < 1 || sh->K > CSASN__ANET_MAX_CLASSES || sh->nb < 0 ||
        sh->nb > CSASN__ANET_MAX_BLOCKS)
        return "classifier: bad sizes";
    net->sh = *sh;
    size_t n = 0;
    for (int j = 0; j < sh->n_desc; j++) {
        if (sh->din[j] < 1) return "classifier: bad descriptor size";
        net->din_off[j] = net->din_total;
        net->din_total += sh->din[j];
        net->proj[j] = lin(&n, sh->E, sh->din[j]);
    }
    net->mix = lin(&n, sh->E, sh->n_desc * sh->E);
    for (int i = 0; i < sh->nb; i++) {
        net->ln_g[i] = add(&n, sh->E);
        net->ln_b[i] = add(&n, sh->E);
        net->fc1[i] = lin(&n, sh->H, sh->E);
        net->fc2[i] = lin(&n, sh->E, sh->H);
    }
    net->cln_g = add(&n, sh->E);
    net->cln_b = add(&n, sh->E);
    net->sub = lin(&n, sh->K, sh->E);
    if (sh->has_mal) net->mal = lin(&n, 1, sh->E);
    net->logvar = add(&n, 2);
    net->n = n;
    return NULL;
}

static float uniform(unsigned long long *s)   /* xorshift64*, [0, 1) */
{
    unsigned long long x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (float)((x * 2685821657736338717ULL) >> 40) / 16777216.0f;
}

void csasn__anet_init_linear(const csasn__anet *net, float *p, const csasn__anet_lin *l, unsigned long long *rng)
{
    float bound = 1.0f / sqrtf((float)l->in);
    for (size_t i = 0; i < (size_t)l->out * l->in; i++) p[l->w + i] = (2.0f * uniform(rng) - 1.0f) * bound;
    for (int i = 0; i < l->out; i++) p[l->b + i] = (2.0f * uniform(rng) - 1.0f) * bound;
}

/* ---------------------------------------------------------- workspace */

struct csasn__anet_ws {
    int maxB;
    float *cat, *a0, *dcat;                          /* [B x nE], [B x E], [B x nE] */
    float *h[CSASN__ANET_MAX_BLOCKS + 1];            /* block inputs; h[nb] the classifier's */
    float *xhat[CSASN__ANET_MAX_BLOCKS + 1], *rstd[CSASN__ANET_MAX_BLOCKS + 1];
    float *u[CSASN__ANET_MAX_BLOCKS], *a[CSASN__ANET_MAX_BLOCKS], *z[CSASN__ANET_MAX_BLOCKS];
    float *o, *logits, *mal;                         /* [B x E], [B x K], [B] */
    float *dh, *dxo, *dz, *da, *dlog, *dmal;         /* backward */
    float *pack, *t1, *t2;                           /* GEMM scratch */
    size_t pack_cap, t_cap;
    void *mem[8 * CSASN__ANET_MAX_BLOCKS + 32];
    int n_mem, oom;
};

static float *wsa(csasn__anet_ws *ws, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) ws->oom = 1;
    else ws->mem[ws->n_mem++] = p;
    return p;
}

csasn__anet_ws *csasn__anet_ws_new(const csasn__anet *net, int B)
{
    const csasn__anet_shape *s = &net->sh;
    csasn__anet_ws *ws = calloc(1, sizeof *ws);
    if (!ws || B < 1) { free(ws); return NULL; }
    ws->maxB = B;
    size_t b = (size_t)B, E = (size_t)s->E, H = (size_t)s->H, nE = (size_t)s->n_desc * s->E;
    ws->cat = wsa(ws, b * nE);
    ws->dcat = wsa(ws, b * nE);
    ws->a0 = wsa(ws, b * E);
    for (int i = 0; i <= s->nb; i++) {
        ws->h[i] = wsa(ws, b * E);
        ws->xhat[i] = wsa(ws, b * E);
        ws->rstd[i] = wsa(ws, b);
    }
    for (int i = 0; i < s->nb; i++) {
        ws->u[i] = wsa(ws, b * E);
        ws->a[i] = wsa(ws, b * H);
        ws->z[i] = wsa(ws, b * H);
    }
    ws->o = wsa(ws, b * E);
    ws->logits = wsa(ws, b * s->K);
    ws->mal = wsa(ws, b);
    ws->dh = wsa(ws, b * E);
    ws->dxo = wsa(ws, b * (E > H ? E : H));
    ws->dz = wsa(ws, b * H);
    ws->da = wsa(ws, b * (E > H ? E : H));
    ws->dlog = wsa(ws, b * s->K);
    ws->dmal = wsa(ws, b);
    /* Scratch for the largest product: a packed weight of any layer (either
     * orientation, or a batch-long one for dW) and two transposed operands. */
    size_t mx = nE > H ? nE : H;
    if ((size_t)net->din_total > mx) mx = (size_t)net->din_total;
    if (E > mx) mx = E;
    size_t big = mx > b ? mx : b;
    ws->pack_cap = csasn__pack_floats((int)big, (int)big);
    ws->pack = wsa(ws, ws->pack_cap);
    ws->t_cap = big * big;
    ws->t1 = wsa(ws, ws->t_cap);
    ws->t2 = wsa(ws, ws->t_cap);
    if (ws->oom) { csasn__anet_ws_free(ws); return NULL; }
    return ws;
}

void csasn__anet_ws_free(csasn__anet_ws *ws)
{
    if (!ws) return;
    for (int i = 0; i < ws->n_mem; i++) free(ws->mem[i]);
    free(ws);
}

/* ------------------------------------------------------------ products */

/* C [M x N] (row stride ldc) = A [M x K] (stride lda) W^T + bias, W [N x K]
 * (row stride ldw), bias [N] or NULL. */
static void mm_nt(csasn__anet_ws *ws, int M, int N, int K, const float *A, int lda, const float *W, int ldw,
                  const float *bias, float *C, int ldc)
{
    const float *Wc = W;
    if (ldw != K) {            /* pack_b wants contiguous rows */
        for (int n = 0; n < N; n++) memcpy(ws->t2 + (size_t)n * K, W + (size_t)n * ldw, (size_t)K * sizeof(float));
        Wc = ws->t2;
    }
    csasn__pack_b(Wc, bias, N, K, ws->pack);
    csasn__gemm(M, N, K, A, lda, ws->pack, C, ldc, NULL, 0, CSASN__ACT_NONE);
}

/* dst [cols x rows] = src [rows x cols] (row stride lds) transposed. */
static void transpose(const float *src, int rows, int cols, int lds, float *dst)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[(size_t)r * lds + c];
}

/* The backward pass of y = x W^T + b for a batch: dW [N x K] = dY^T X,
 * db [N] = column sums of dY, and dX [B x K] = dY W when dX != NULL.
 * dY [B x N] (stride N), X [B x K] (stride ldx). */
static void lin_back(csasn__anet_ws *ws, int B, int N, int K, const float *dY, const float *X, int ldx,
                     const float *W, float *dW, float *db, float *dX, int lddx)
{
    /* dW = dY^T [N x B] times (X^T [K x B])^T */
    transpose(dY, B, N, N, ws->t1);
    transpose(X, B, K, ldx, ws->t2);
    csasn__pack_b(ws->t2, NULL, K, B, ws->pack);
    csasn__gemm(N, K, B, ws->t1, B, ws->pack, dW, K, NULL, 0, CSASN__ACT_NONE);
    for (int n = 0; n < N; n++) {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += dY[(size_t)b * N + n];
        db[n] = s;
    }
    if (dX) {   /* dX = dY [B x N] times ((W^T) [K x N])^T */
        transpose(W, N, K, K, ws->t2);
        csasn__pack_b(ws->t2, NULL, K, N, ws->pack);
        csasn__gemm(B, K, N, dY, N, ws->pack, dX, lddx, NULL, 0, CSASN__ACT_NONE);
    }
}

/* -------------------------------------------------------- elementwise */

static float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

static float gelu_grad(float x)
{
    return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.39894228040143268f * expf(-0.5f * x * x);
}

/* LayerNorm of B rows of E: y = xhat g + b; keeps xhat and 1/std. */
static void ln_fwd(const float *x, int B, int E, const float *g, const float *bb, float eps,
                   float *xhat, float *rstd, float *y)
{
    for (int r = 0; r < B; r++) {
        const float *xr = x + (size_t)r * E;
        double mu = 0.0, var = 0.0;
        for (int i = 0; i < E; i++) mu += xr[i];
        mu /= E;
        for (int i = 0; i < E; i++) var += (xr[i] - mu) * (xr[i] - mu);
        var /= E;
        float rs = (float)(1.0 / sqrt(var + eps));
        rstd[r] = rs;
        for (int i = 0; i < E; i++) {
            float xh = (float)(xr[i] - mu) * rs;
            xhat[(size_t)r * E + i] = xh;
            y[(size_t)r * E + i] = xh * g[i] + bb[i];
        }
    }
}

/* LayerNorm backward: dg, db (overwritten) and dx (added to dx_acc). */
static void ln_back(const float *dy, const float *xhat, const float *rstd, int B, int E, const float *g,
                    float *dg, float *db, float *dx_acc)
{
    for (int i = 0; i < E; i++) dg[i] = db[i] = 0.0f;
    for (int r = 0; r < B; r++) {
        const float *d = dy + (size_t)r * E, *xh = xhat + (size_t)r * E;
        double m1 = 0.0, m2 = 0.0;
        for (int i = 0; i < E; i++) {
            float gd = g[i] * d[i];
            m1 += gd;
            m2 += gd * xh[i];
            dg[i] += d[i] * xh[i];
            db[i] += d[i];
        }
        m1 /= E;
        m2 /= E;
        for (int i = 0; i < E; i++)
            dx_acc[(size_t)r * E + i] += rstd[r] * (float)(g[i] * d[i] - m1 - xh[i] * m2);
    }
}

/* ------------------------------------------------------------ forward */

void csasn__anet_forward(const csasn__anet *net, const float *p, csasn__anet_ws *ws,
                         const float *x, int B, const float **logits, const float **mal)
{
    const csasn__anet_shape *s = &net->sh;
    int E = s->E, H = s->H, nE = s->n_desc * E;
    for (int j = 0; j < s->n_desc; j++) {
        const csasn__anet_lin *l = &net->proj[j];
        mm_nt(ws, B, E, l->in, x + net->din_off[j], net->din_total, p + l->w, l->in, p + l->b, ws->cat + j * E, nE);
    }
    mm_nt(ws, B, E, nE, ws->cat, nE, p + net->mix.w, nE, p + net->mix.b, ws->a0, E);
    for (size_t i = 0; i < (size_t)B * E; i++) ws->h[0][i] = gelu(ws->a0[i]);
    for (int k = 0; k < s->nb; k++) {
        ln_fwd(ws->h[k], B, E, p + net->ln_g[k], p + net->ln_b[k], s->ln_eps, ws->xhat[k], ws->rstd[k], ws->u[k]);
        mm_nt(ws, B, H, E, ws->u[k], E, p + net->fc1[k].w, E, p + net->fc1[k].b, ws->a[k], H);
        for (size_t i = 0; i < (size_t)B * H; i++) ws->z[k][i] = gelu(ws->a[k][i]);
        mm_nt(ws, B, E, H, ws->z[k], H, p + net->fc2[k].w, H, p + net->fc2[k].b, ws->h[k + 1], E);
        for (size_t i = 0; i < (size_t)B * E; i++) ws->h[k + 1][i] += ws->h[k][i];
    }
    ln_fwd(ws->h[s->nb], B, E, p + net->cln_g, p + net->cln_b, s->ln_eps, ws->xhat[s->nb], ws->rstd[s->nb], ws->o);
    mm_nt(ws, B, s->K, E, ws->o, E, p + net->sub.w, E, p + net->sub.b, ws->logits, s->K);
    if (s->has_mal) mm_nt(ws, B, 1, E, ws->o, E, p + net->mal.w, E, p + net->mal.b, ws->mal, 1);
    if (logits) *logits = ws->logits;
    if (mal) *mal = s->has_mal ? ws->mal : NULL;
}

/* ---------------------------------------------------------------- loss */

static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

/* The loss of the batch just forwarded; dlog [B x K], dmal [B] and the
 * log-variance gradients. */
static float loss(const csasn__anet *net, const float *p, csasn__anet_ws *ws, int B,
                  const csasn__anet_target *t, float *glv)
{
    const csasn__anet_shape *s = &net->sh;
    int K = s->K;
    double S = 0.0, Wsum = 0.0, eps = t->smoothing, Ls = 0.0;
    for (int k = 0; k < K; k++) Wsum += t->cw[k];
    for (int b = 0; b < B; b++) S += t->cw[t->y[b]];
    double pr[CSASN__ANET_MAX_CLASSES];
    for (int b = 0; b < B; b++) {
        const float *z = ws->logits + (size_t)b * K;
        double mx = z[0], se = 0.0;
        for (int k = 1; k < K; k++) if (z[k] > mx) mx = z[k];
        for (int k = 0; k < K; k++) se += exp(z[k] - mx);
        double lse = mx + log(se);
        int y = t->y[b];
        Ls += (1.0 - eps) * t->cw[y] * (lse - z[y]);
        for (int k = 0; k < K; k++) {
            Ls += eps / K * t->cw[k] * (lse - z[k]);
            pr[k] = exp(z[k] - lse);
        }
        for (int k = 0; k < K; k++)
            ws->dlog[(size_t)b * K + k] = (float)(((1.0 - eps) * t->cw[y] * (pr[k] - (k == y)) +
                                                   eps / K * (Wsum * pr[k] - t->cw[k])) / S);
    }
    Ls /= S;
    double lv0 = p[net->logvar], lv1 = p[net->logvar + 1];
    double e0 = exp(-lv0), total = e0 * Ls + lv0 / 2;
    for (size_t i = 0; i < (size_t)B * K; i++) ws->dlog[i] = (float)(ws->dlog[i] * e0);
    glv[0] = (float)(-e0 * Ls + 0.5);
    glv[1] = 0.0f;
    if (s->has_mal && t->ym) {
        double Lm = 0.0, e1 = exp(-lv1), pw = t->pos_weight;
        for (int b = 0; b < B; b++) {
            double z = ws->mal[b], y = t->ym[b], sg = 1.0 / (1.0 + exp(-z));
            Lm += pw * y * softplus(-z) + (1.0 - y) * softplus(z);
            ws->dmal[b] = (float)(e1 * (pw * y * (sg - 1.0) + (1.0 - y) * sg) / B);
        }
        Lm /= B;
        total += e1 * Lm + lv1 / 2;
        glv[1] = (float)(-e1 * Lm + 0.5);
    } else {
        for (int b = 0; b < B; b++) ws->dmal[b] = 0.0f;
    }
    return (float)total;
}

/* ------------------------------------------------------------ backward */

float csasn__anet_loss_grad(const csasn__anet *net, const float *p, csasn__anet_ws *ws,
                            const float *x, int B, const csasn__anet_target *t, float *grad)
{
    const csasn__anet_shape *s = &net->sh;
    int E = s->E, H = s->H, nE = s->n_desc * E, K = s->K;
    csasn__anet_forward(net, p, ws, x, B, NULL, NULL);
    float L = loss(net, p, ws, B, t, grad + net->logvar);

    /* heads -> do [B x E] (in dxo) */
    lin_back(ws, B, K, E, ws->dlog, ws->o, E, p + net->sub.w, grad + net->sub.w, grad + net->sub.b, ws->dxo, E);
    if (s->has_mal) {
        const float *wm = p + net->mal.w;
        float *gw = grad + net->mal.w;
        double gb = 0.0;
        for (int i = 0; i < E; i++) gw[i] = 0.0f;
        for (int b = 0; b < B; b++) {
            float d = ws->dmal[b];
            gb += d;
            for (int i = 0; i < E; i++) {
                gw[i] += d * ws->o[(size_t)b * E + i];
                ws->dxo[(size_t)b * E + i] += d * wm[i];
            }
        }
        grad[net->mal.b] = (float)gb;
    }
    /* cls_ln -> dh */
    memset(ws->dh, 0, (size_t)B * E * sizeof(float));
    ln_back(ws->dxo, ws->xhat[s->nb], ws->rstd[s->nb], B, E, p + net->cln_g, grad + net->cln_g, grad + net->cln_b, ws->dh);
    /* residual blocks, last first: h' = h + fc2(gelu(fc1(ln(h)))) */
    for (int k = s->nb - 1; k >= 0; k--) {
        lin_back(ws, B, E, H, ws->dh, ws->z[k], H, p + net->fc2[k].w, grad + net->fc2[k].w, grad + net->fc2[k].b, ws->dz, H);
        for (size_t i = 0; i < (size_t)B * H; i++) ws->dz[i] *= gelu_grad(ws->a[k][i]);
        lin_back(ws, B, H, E, ws->dz, ws->u[k], E, p + net->fc1[k].w, grad + net->fc1[k].w, grad + net->fc1[k].b, ws->da, E);
        ln_back(ws->da, ws->xhat[k], ws->rstd[k], B, E, p + net->ln_g[k], grad + net->ln_g[k], grad + net->ln_b[k], ws->dh);
    }
    /* mix: h0 = gelu(a0) */
    for (size_t i = 0; i < (size_t)B * E; i++) ws->dh[i] *= gelu_grad(ws->a0[i]);
    lin_back(ws, B, E, nE, ws->dh, ws->cat, nE, p + net->mix.w, grad + net->mix.w, grad + net->mix.b, ws->dcat, nE);
    /* projections (their inputs are cached descriptors: no gradient needed there) */
    for (int j = 0; j < s->n_desc; j++) {
        const csasn__anet_lin *l = &net->proj[j];
        for (int b = 0; b < B; b++)
            memcpy(ws->da + (size_t)b * E, ws->dcat + (size_t)b * nE + j * E, (size_t)E * sizeof(float));
        lin_back(ws, B, E, l->in, ws->da, x + net->din_off[j], net->din_total, p + l->w, grad + l->w, grad + l->b, NULL, 0);
    }
    return L;
}

/* -------------------------------------------------------------- AdamW */

void csasn__adamw_step(csasn__adamw *o, float *p, const float *g, size_t n)
{
    o->step++;
    float bc1 = 1.0f - powf(o->beta1, (float)o->step);
    float bc2s = sqrtf(1.0f - powf(o->beta2, (float)o->step));
    float step_size = o->lr / bc1, decay = 1.0f - o->lr * o->wd;
    for (size_t i = 0; i < n; i++) {
        p[i] *= decay;
        o->m[i] += (g[i] - o->m[i]) * (1.0f - o->beta1);
        o->v[i] = o->v[i] * o->beta2 + (1.0f - o->beta2) * g[i] * g[i];
        float denom = sqrtf(o->v[i]) / bc2s + o->eps;
        p[i] -= step_size * o->m[i] / denom;
    }
}
