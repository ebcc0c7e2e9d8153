/* test_adapt_net.c - the hand-written backward pass of the adaptation
 * classifier (src/adapt_net.c) against central finite differences of its
 * loss, for every parameter of every trained layer (projections, mix,
 * residual blocks with their LayerNorms, the final LayerNorm, subtype and
 * malignancy heads, task log-variances), on small shapes that exercise both
 * descriptor layouts, zero and two residual blocks, and every GEMM tail.
 *
 * Tolerance, per parameter: |analytic - numeric| <= 2e-3 + 2e-2 |numeric|.
 * The numeric gradient is (L(p+h) - L(p-h)) / 2h in float32 with h = 2e-3:
 * the loss (~1) carries float rounding of ~1e-6 through the network, i.e.
 * ~3e-4 of noise in the quotient, and the O(h^2) truncation of GELU and
 * LayerNorm curvature is ~1e-5 (measured maximum errors, printed: ~1e-4). A wrong
 * gradient (a missed term, a transposed index, a wrong tail) is off by the
 * size of the gradient itself, 1e-2..1 here, and each layer's gradient norm
 * must also agree to 1 %.
 *
 * With `--step IN OUT` it instead runs one training step (loss, gradient,
 * AdamW) on a problem written by tests/test_adapt.py and writes the result,
 * so that the step can be compared with PyTorch's.
 * Output protocol: `ok NAME` / `not ok NAME: why` (tests/run.py). */
#include "adapt_net.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static uint32_t rng = 4321u;

static float frand(void)   /* uniform in [-1, 1) */
{
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

typedef struct { const char *name; size_t off, n; } span;

static int spans_of(const csasn__anet *net, span *sp)
{
    const csasn__anet_shape *s = &net->sh;
    int n = 0;
    static char names[512][48];
#define SP(nm, o, k) do { snprintf(names[n], sizeof names[n], "%s", nm); sp[n].name = names[n]; sp[n].off = (o); sp[n].n = (k); n++; } while (0)
    char b[48];
    for (int j = 0; j < s->n_desc; j++) {
        snprintf(b, sizeof b, "proj%d.weight", j); SP(b, net->proj[j].w, (size_t)net->proj[j].out * net->proj[j].in);
        snprintf(b, sizeof b, "proj%d.bias", j); SP(b, net->proj[j].b, (size_t)net->proj[j].out);
    }
    SP("mix.weight", net->mix.w, (size_t)net->mix.out * net->mix.in);
    SP("mix.bias", net->mix.b, (size_t)net->mix.out);
    for (int k = 0; k < s->nb; k++) {
        snprintf(b, sizeof b, "cls_blocks.%d.ln.weight", k); SP(b, net->ln_g[k], (size_t)s->E);
        snprintf(b, sizeof b, "cls_blocks.%d.ln.bias", k); SP(b, net->ln_b[k], (size_t)s->E);
        snprintf(b, sizeof b, "cls_blocks.%d.fc1.weight", k); SP(b, net->fc1[k].w, (size_t)s->H * s->E);
        snprintf(b, sizeof b, "cls_blocks.%d.fc1.bias", k); SP(b, net->fc1[k].b, (size_t)s->H);
        snprintf(b, sizeof b, "cls_blocks.%d.fc2.weight", k); SP(b, net->fc2[k].w, (size_t)s->E * s->H);
        snprintf(b, sizeof b, "cls_blocks.%d.fc2.bias", k); SP(b, net->fc2[k].b, (size_t)s->E);
    }
    SP("cls_ln.weight", net->cln_g, (size_t)s->E);
    SP("cls_ln.bias", net->cln_b, (size_t)s->E);
    SP("head_subtype.weight", net->sub.w, (size_t)s->K * s->E);
    SP("head_subtype.bias", net->sub.b, (size_t)s->K);
    if (s->has_mal) {
        SP("head_malig.weight", net->mal.w, (size_t)s->E);
        SP("head_malig.bias", net->mal.b, 1);
    }
    SP("log_vars", net->logvar, 2);
#undef SP
    return n;
}

static void gradcheck(const char *label, csasn__anet_shape sh, int B)
{
    csasn__anet net;
    const char *e = csasn__anet_init(&net, &sh);
    if (e) { printf("not ok gradcheck_%s: %s\n", label, e); failures++; return; }
    float *p = malloc(net.n * sizeof(float)), *g = malloc(net.n * sizeof(float)), *g2 = malloc(net.n * sizeof(float));
    float *x = malloc((size_t)B * net.din_total * sizeof(float)), *ym = malloc((size_t)B * sizeof(float));
    int *y = malloc((size_t)B * sizeof(int));
    float cw[64];
    for (size_t i = 0; i < net.n; i++) p[i] = 0.4f * frand();
    span sp[512];
    int ns = spans_of(&net, sp);
    for (int i = 0; i < ns; i++)       /* LayerNorm gains near 1, as trained ones are */
        if (strstr(sp[i].name, "ln.weight"))
            for (size_t k = 0; k < sp[i].n; k++) p[sp[i].off + k] = 1.0f + 0.3f * frand();
    for (int i = 0; i < B * net.din_total; i++) x[i] = 1.5f * frand();
    for (int b = 0; b < B; b++) { y[b] = (int)((frand() + 1.0f) * 0.5f * sh.K) % sh.K; ym[b] = frand() > 0 ? 1.0f : 0.0f; }
    for (int k = 0; k < sh.K; k++) cw[k] = 0.5f + 0.5f * (frand() + 1.0f);
    csasn__anet_target t = {y, sh.has_mal ? ym : NULL, cw, 0.05f, 1.7f};
    csasn__anet_ws *ws = csasn__anet_ws_new(&net, B);
    csasn__anet_loss_grad(&net, p, ws, x, B, &t, g);
    const float h = 2e-3f;
    int bad = 0;
    double worst = 0.0;
    char why[256] = "";
    for (int i = 0; i < ns; i++) {
        double dn = 0.0, nn = 0.0, en = 0.0;
        for (size_t k = 0; k < sp[i].n; k++) {
            size_t q = sp[i].off + k;
            float keep = p[q];
            p[q] = keep + h;
            float lp = csasn__anet_loss_grad(&net, p, ws, x, B, &t, g2);
            p[q] = keep - h;
            float lm = csasn__anet_loss_grad(&net, p, ws, x, B, &t, g2);
            p[q] = keep;
            double num = ((double)lp - lm) / (2.0 * h), err = fabs(g[q] - num);
            if (err > worst) worst = err;
            if (err > 2e-3 + 2e-2 * fabs(num) && !bad) {
                bad = 1;
                snprintf(why, sizeof why, "%s[%zu]: analytic %.6g, numeric %.6g", sp[i].name, k, g[q], num);
            }
            dn += num * num;
            nn += (double)g[q] * g[q];
            en += (g[q] - num) * (g[q] - num);
        }
        if (!bad && sqrt(en) > 1e-2 * sqrt(dn) + 1e-4) {
            bad = 1;
            snprintf(why, sizeof why, "%s: gradient norm %.6g vs numeric %.6g (error norm %.3g)", sp[i].name,
                     sqrt(nn), sqrt(dn), sqrt(en));
        }
        if (!bad && dn == 0.0 && strcmp(sp[i].name, "log_vars")) {
            bad = 1;   /* a layer the loss does not reach would make the check vacuous */
            snprintf(why, sizeof why, "%s: zero numeric gradient", sp[i].name);
        }
    }
    if (bad) { printf("not ok gradcheck_%s: %s\n", label, why); failures++; }
    else printf("ok gradcheck_%s (%zu parameters in %d tensors, max |error| %.2g)\n", label, net.n, ns, worst);
    csasn__anet_ws_free(ws);
    free(p); free(g); free(g2); free(x); free(ym); free(y);
}

/* ------------------------------------------------------------- --step */

static int step_mode(const char *in, const char *out)
{
    FILE *f = fopen(in, "rb");
    if (!f) { printf("not ok step: cannot open %s\n", in); return 1; }
    int32_t hd[11];
    float hp[6];
    csasn__anet_shape sh;
    if (fread(hd, 4, 11, f) != 11 || fread(hp, 4, 6, f) != 6) { printf("not ok step: short header\n"); return 1; }
    sh.n_desc = hd[0];
    for (int j = 0; j < 4; j++) sh.din[j] = hd[1 + j];
    sh.E = hd[5]; sh.H = hd[6]; sh.nb = hd[7]; sh.K = hd[8]; sh.has_mal = hd[9];
    int B = hd[10];
    sh.ln_eps = hp[0];
    csasn__anet net;
    const char *e = csasn__anet_init(&net, &sh);
    if (e) { printf("not ok step: %s\n", e); return 1; }
    size_t n = net.n;
    float *p = malloc(n * 4), *g = malloc(n * 4), *x = malloc((size_t)B * net.din_total * 4), *ym = malloc((size_t)B * 4);
    float *cw = malloc((size_t)sh.K * 4), *m = calloc(n, 4), *v = calloc(n, 4);
    int32_t *y = malloc((size_t)B * 4);
    if (fread(p, 4, n, f) != n || fread(x, 4, (size_t)B * net.din_total, f) != (size_t)B * net.din_total ||
        fread(y, 4, (size_t)B, f) != (size_t)B || fread(ym, 4, (size_t)B, f) != (size_t)B ||
        fread(cw, 4, (size_t)sh.K, f) != (size_t)sh.K) { printf("not ok step: short body\n"); return 1; }
    fclose(f);
    int *yi = malloc((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) yi[b] = y[b];
    csasn__anet_target t = {yi, sh.has_mal ? ym : NULL, cw, hp[1], hp[2]};
    csasn__anet_ws *ws = csasn__anet_ws_new(&net, B);
    float L = csasn__anet_loss_grad(&net, p, ws, x, B, &t, g);
    csasn__adamw o = {hp[3], hp[4], 0.9f, 0.999f, 1e-8f, 0, m, v};
    csasn__adamw_step(&o, p, g, n);
    FILE *w = fopen(out, "wb");
    uint32_t nn = (uint32_t)n;
    fwrite(&nn, 4, 1, w);
    fwrite(&L, 4, 1, w);
    fwrite(g, 4, n, w);
    fwrite(p, 4, n, w);
    fclose(w);
    csasn__anet_ws_free(ws);
    free(p); free(g); free(x); free(ym); free(cw); free(m); free(v); free(y); free(yi);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--step")) return step_mode(argv[2], argv[3]);
    csasn__anet_shape a = {4, {5, 9, 7, 3}, 6, 10, 2, 3, 1, 1e-5f};
    gradcheck("multiscale_malignancy", a, 7);
    csasn__anet_shape b = {2, {11, 4, 0, 0}, 9, 5, 0, 4, 0, 1e-5f};
    gradcheck("two_descriptors_no_blocks", b, 5);
    csasn__anet_shape c = {4, {3, 3, 3, 3}, 4, 13, 1, 2, 1, 1e-5f};
    gradcheck("one_block_two_classes", c, 9);
    return failures ? 1 : 0;
}
