/* model.h - private: the CSASN model in memory, split as llama2.c splits a
 * transformer into Config, Weights and RunState:
 *
 *   csasn__config   the hyperparameters, read from the file's metadata and
 *                   checked for consistency (model_load.c);
 *   csasn__weights  every parameter, BatchNorm folded in and packed for the
 *                   kernels at load (model_load.c);
 *   csasn__state    every activation buffer of the forward pass, carved out
 *                   of one arena planned at load (model_load.c), written by
 *                   the forward pass (model_forward.c), read by the debug
 *                   and profiling views (model_debug.c).
 *
 * Feature maps are HWC (channels last): a 1x1 conv is a GEMM
 * [H*W x Cin] x [Cin x Cout] and a depthwise conv vectorises over channels.
 * ViT tokens are [T x D] row-major, T = N + 1. Shapes in comments use: S the
 * input size, H2 = S/2, H4 = S/4, H8 = S/8, H32 = S/32 (the fused map),
 * N = (S/P)^2 patches, D the ViT width, C the fused channels, E the
 * classifier width, K the classes, SD the segmentation channels.
 */
#ifndef CSASN_MODEL_H
#define CSASN_MODEL_H

#include "csasn.h"

#include <stddef.h>

/* ---------------------------------------------------------------- config */

/* One MBConv / inverted-residual block of the CNN branch. */
typedef struct {
    int cin, mid, cout;        /* channels in, expanded, out */
    int k, stride, se;         /* depthwise kernel and stride, squeeze channels (0: no SE) */
    int expand, residual;      /* has a 1x1 expand conv; output += input */
    int H, W, Ho, Wo;          /* input and output spatial size */
} csasn__block_config;

typedef struct {
    int S, K;                  /* input is 3 x S x S; K classes */
    float mean[3], std[3];     /* input normalisation per channel */
    float temperature;         /* probs = softmax(logits / temperature) */
    float malig_temperature, malig_threshold;
    /* CNN branch */
    int act;                   /* CSASN__ACT_SILU or _RELU6 */
    int stem_c, head_c, n_blocks;
    int t8, t16;               /* the blocks whose outputs have stride 8 and 16 (the taps) */
    csasn__block_config *blocks;   /* [n_blocks] */
    /* ViT branch */
    int P, D, depth, heads, mlp;   /* patch, width, blocks, heads, MLP width */
    int grid, N, T;            /* grid = S/P, N = grid^2 patches, T = N + 1 tokens */
    int vit_pool;              /* grid / H32: the patch map's average pooling */
    float vit_eps;
    /* fusion, CBAM attention */
    int H32;                   /* S/32: side of the fused map */
    int C, att_stages, att_r, att_k;
    /* classifier and heads */
    int E, cls_hidden, cls_blocks, multiscale;
    int n_desc;                /* descriptors mixed: 2 (+ 2 when multiscale) */
    float ln_eps;
    int has_malig, has_seg, seg_D;
    /* region geometry and descriptor heads (optional keys; absent = the old behaviour) */
    int region_mode;           /* CSASN_REGION_* */
    float region_margin, region_fill;
    int n_dheads;              /* descriptor heads, 0..CSASN_MAX_DESCRIPTOR_HEADS */
    int dhead_total;           /* their labels summed */
} csasn__config;

/* --------------------------------------------------------------- weights */

/* A linear layer or convolution run as one GEMM: weight [N x K] and bias [N]
 * packed together by csasn__pack_b (a conv's K = k*k*cin, csasn__im2col's order). */
typedef struct { int K, N; float *w; } csasn__linear;
/* A depthwise conv with BN folded: w [k*k][C] (tap-major), b [C]. */
typedef struct { int C, k, stride; float *w, *b; } csasn__dwconv_w;

typedef struct {
    csasn__linear expand;      /* 1x1 expand + BN (when config expand) */
    csasn__dwconv_w dw;        /* depthwise + BN */
    csasn__linear se1, se2;    /* squeeze-excitation fc1 [se x mid], fc2 [mid x se] */
    csasn__linear project;     /* 1x1 project + BN */
} csasn__block_weights;

typedef struct {
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b;   /* [D] */
    csasn__linear qkv, proj, fc1, fc2;      /* [3D x D], [D x D], [mlp x D], [D x mlp] */
} csasn__vit_weights;

typedef struct { csasn__linear fc1, fc2, conv; } csasn__cbam_weights;   /* [C/r x C], [C x C/r], k x k conv 2 -> 1 */
typedef struct { float *ln_g, *ln_b; csasn__linear fc1, fc2; } csasn__resmlp_weights;

typedef struct {
    csasn__linear stem;                /* 3x3 s2 conv + BN, K = 27 */
    csasn__block_weights *blocks;      /* [n_blocks] */
    csasn__linear head;                /* 1x1 conv + BN */
    csasn__linear patch;               /* P x P stride-P conv, K = P*P*3 */
    float *cls_tok, *pos;              /* [D], [T x D] */
    csasn__vit_weights *vit;           /* [depth] */
    float *vln_g, *vln_b;              /* final ViT LayerNorm [D] */
    csasn__linear fuse;                /* 1x1 conv + BN, K = head + D */
    csasn__cbam_weights *att;          /* [att_stages] */
    csasn__linear proj8, proj16, projf, projt, mix;   /* descriptors -> [E]; mix [E x n_desc*E] */
    csasn__resmlp_weights *cls;        /* [cls_blocks] */
    float *cln_g, *cln_b;              /* classifier LayerNorm [E] */
    csasn__linear head_sub, head_mal;  /* [K x E], [1 x E] */
    csasn__linear seg_reduce, seg_fuse, seg_out;   /* 1x1 C -> SD, 3x3 SD + c8 -> SD, 1x1 SD -> 1 */
    csasn__linear *head_desc;          /* [n_dheads]: descriptor head i [n_i x E] */
    void **alloc;                      /* every weight allocation, freed with the model */
    int n_alloc, cap_alloc;
} csasn__weights;

/* ------------------------------------------------------------- run state */

/* Every buffer lives in one arena (plan() in model_load.c); c8 is the tap8
 * block's channels, mid/se the largest over the blocks. */
typedef struct {
    float *arena;
    size_t arena_floats;
    float *input;              /* [3 x S x S] planar, as given */
    float *x;                  /* [S x S x 3] HWC input */
    float *col;                /* im2col scratch, the largest of the convs it serves */
    /* CNN branch */
    float *stem_out;           /* [H2 x H2 x stem] */
    float **block_out;         /* [n_blocks]: block i's output [Ho x Wo x cout] */
    float *ebuf;               /* expanded map [H x W x mid], largest over the blocks */
    float *dbuf;               /* depthwise output [Ho x Wo x mid], largest over the blocks */
    float *se_p, *se_h, *se_s; /* SE pooled [mid], squeezed [se], scale [mid]; se_p also the pooled taps */
    float *cnn_head;           /* [H32 x H32 x head] */
    /* ViT branch */
    float *tok;                /* [T x D] the residual stream */
    float *xn;                 /* [T x D] LayerNorm output */
    float *qkv;                /* [T x 3D] */
    float *ay;                 /* [T x D] attention output */
    float *hid;                /* [T x mlp] */
    float *scores;             /* csasn__attention_scratch_floats(T, D, heads) */
    float *tok_out;            /* [T x D] after the final LayerNorm */
    /* fusion, CBAM */
    float *fuse_in;            /* [H32*H32 x (head + D)] */
    float *fused, *refined;    /* [H32*H32 x C] */
    float *cy;                 /* [H32*H32 x C] x * channel attention */
    float *cavg, *cmax;        /* [C] pooled */
    float *ch1;                /* hidden [C/r] of the avg path, then of the max path (2C reserved) */
    float *ch2, *ca;           /* [C] */
    float *smap;               /* [H32*H32 x 2] channel mean and max */
    float *att_map;            /* [H32*H32] spatial attention of the last stage */
    /* classifier and heads */
    float *desc;               /* [n_desc x E] */
    float *h, *hn;             /* [E] */
    float *chid;               /* [cls_hidden] */
    float *cls_out;            /* [E] */
    float *logits, *probs;     /* [K] */
    float *mal;                /* [1] malignancy logit */
    /* segmentation head */
    float *s32;                /* [H32 x H32 x SD] */
    float *cat8;               /* [H8 x H8 x (SD + c8)] */
    float *s8;                 /* [H8 x H8 x SD] */
    float *s4;                 /* [H4 x H4 x SD] */
    float *mask;               /* [H4 x H4] lesion probability */
    /* descriptor heads: head i's logits and probabilities at offset dhead_off[i] */
    float *dlogits, *dprobs;   /* [dhead_total] */
} csasn__state;

/* ----------------------------------------------------------- profiling */

/* Time per kind of op (csasn_profile_json), summed by the op helpers of
 * model_forward.c: 1x1 convolutions (GEMM on feature maps, SE included),
 * linear layers (GEMM on tokens and vectors), im2col convolutions (stem,
 * patch embedding, seg 3x3, spatial attention), depthwise, attention,
 * LayerNorm, pooling and channel scaling; "other" is the rest of the total
 * (copies, concatenations, upsampling, the softmax of the logits). */
enum {
    CSASN__PROF_CONV1X1, CSASN__PROF_LINEAR, CSASN__PROF_CONV, CSASN__PROF_DW, CSASN__PROF_ATTN,
    CSASN__PROF_LN, CSASN__PROF_POOL, CSASN__PROF_OTHER, CSASN__PROF_COUNT
};

/* ---------------------------------------------------------------- model */

struct csasn_model {
    char *name;                /* general.name */
    char *info_json;           /* csasn_model_info_json */
    char **labels;             /* [K] */
    int *malignant;            /* [K] */
    /* descriptor heads: names, labels, and the per-head results csasn_forward
     * hands out (probs point into the run state) */
    char **dhead_names;        /* [n_dheads] */
    char ***dhead_labels;      /* [n_dheads][n_i] */
    int *dhead_off;            /* [n_dheads] offset of head i in dlogits/dprobs */
    csasn_descriptor *dheads;  /* [n_dheads] */
    csasn__config c;
    csasn__weights w;
    csasn__state s;
    int profiling;
    double prof[CSASN__PROF_COUNT], prof_total;   /* ms of the last forward pass */
    char prof_json[512];
};

/* Milliseconds of the profiling clock (model_debug.c). */
double csasn__now_ms(void);

#endif
