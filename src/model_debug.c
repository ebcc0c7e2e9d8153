/* model_debug.c - looking inside a model (src/model.h): the intermediate
 * tensors of the last forward pass, the time per kind of op, and the
 * synthetic input every benchmark of the engine runs on. */
#include "csasn.h"
#include "kernels.h"
#include "model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* -DCSASN_PROFILE_CLOCK=CLOCK_PROCESS_CPUTIME_ID profiles CPU time instead,
 * which is what to look at on a machine shared with other jobs. */
#ifndef CSASN_PROFILE_CLOCK
#define CSASN_PROFILE_CLOCK CLOCK_MONOTONIC
#endif

double csasn__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CSASN_PROFILE_CLOCK, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* The keys of csasn_profile_json, in CSASN__PROF_* order (tools/export_onnx.py
 * counts each one's FLOPs under the same names). */
static const char *const prof_names[CSASN__PROF_COUNT] = {
    "conv1x1_gemm", "linear_gemm", "conv_im2col", "depthwise", "attention", "layernorm", "pool_se_scale", "other"};

const float *csasn_debug_tensor(const csasn_model *m, const char *name, int shape[4], int *rank)
{
    if (!m || !name || !shape || !rank) return NULL;
    const csasn__config *c = &m->c;
    const csasn__state *s = &m->s;
    int H32 = c->H32;
    const csasn__block_config *b8 = &c->blocks[c->t8], *b16 = &c->blocks[c->t16];
    struct { const char *n; const float *p; int r, d0, d1, d2; } t[] = {
        {"input", s->input, 3, 3, c->S, c->S},
        {"cnn.stem", s->stem_out, 3, c->S / 2, c->S / 2, c->stem_c},
        {"cnn.tap8", s->block_out[c->t8], 3, b8->Ho, b8->Wo, b8->cout},
        {"cnn.tap16", s->block_out[c->t16], 3, b16->Ho, b16->Wo, b16->cout},
        {"cnn.head", s->cnn_head, 3, H32, H32, c->head_c},
        {"vit.tokens", s->tok_out, 2, c->T, c->D, 0},
        {"fused", s->fused, 3, H32, H32, c->C},
        {"refined", s->refined, 3, H32, H32, c->C},
        {"attention", c->att_stages ? s->att_map : NULL, 2, H32, H32, 0},
        {"cls.out", s->cls_out, 1, c->E, 0, 0},
        {"logits", s->logits, 1, c->K, 0, 0},
        {"mask", c->has_seg ? s->mask : NULL, 2, c->S / 4, c->S / 4, 0},
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
    const char *q = name + 11;
    int i = 0;
    if (strncmp(name, "cnn.blocks.", 11) || *q < '0' || *q > '9') return NULL;
    for (; *q >= '0' && *q <= '9' && i <= c->n_blocks; q++) i = i * 10 + (*q - '0');
    if (!*q && i < c->n_blocks) {
        const csasn__block_config *b = &c->blocks[i];
        *rank = 3;
        shape[0] = b->Ho; shape[1] = b->Wo; shape[2] = b->cout; shape[3] = 0;
        return s->block_out[i];
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
    for (int i = 0; i < CSASN__PROF_COUNT && o < cap; i++)
        o += (size_t)snprintf(mm->prof_json + o, cap - o, "\"%s\": %.3f, ", prof_names[i], m->prof[i]);
    if (o < cap) snprintf(mm->prof_json + o, cap - o, "\"total\": %.3f, \"simd\": \"%s\"}", m->prof_total, csasn__simd_name());
    return mm->prof_json;
}

/* Speckle (Rayleigh-distributed, as in B-mode) over a depth gradient with a
 * darker oval lesion, gray in [0, 1], normalised like a real image. */
const char *csasn_bench_input(const csasn_model *m, float *out)
{
    if (!m || !out) return "csasn_bench_input: model and output buffer are required";
    int S = m->c.S;
    const float *mean = m->c.mean, *std = m->c.std;
    uint64_t st = 0x9E3779B97F4A7C15ull;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            st ^= st << 13; st ^= st >> 7; st ^= st << 17;
            double u = ((st >> 11) + 0.5) / 9007199254740992.0;
            double speckle = sqrt(-2.0 * log(u)) / 1.2533;   /* Rayleigh, mean 1 */
            double dx = (x - 0.5 * S) / (0.22 * S), dy = (y - 0.55 * S) / (0.15 * S);
            double base = 0.45 - 0.25 * y / S;
            if (dx * dx + dy * dy < 1.0)
                base = 0.12;
            double v = base * speckle;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            for (int c = 0; c < 3; c++)
                out[((size_t)c * S + y) * S + x] = ((float)v - mean[c]) / std[c];
        }
    return NULL;
}
