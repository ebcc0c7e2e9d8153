/* adapt_net.h - private: the residual multiscale classifier of CSASN
 * (src/ARCHITECTURE.md section 1, step 5, and its heads) as a trainable
 * network on cached descriptors, for on-device adaptation (src/adapt.c):
 * batched forward pass, hand-written backward pass, the model's dynamically
 * weighted loss and AdamW, all in float32.
 *
 * The network is tools/csasn_model.py's CSASN.forward_features after the
 * pooling:
 *   d_j = proj_j(x_j)              x_j the pooled stride-8 map, stride-16 map,
 *                                  refined map and the ViT class token
 *   h = gelu(mix(cat(d_j)))
 *   h = h + fc2(gelu(fc1(ln(h))))  per residual block
 *   o = cls_ln(h)
 *   logits = head_subtype(o), malignancy = head_malig(o)
 *
 * Parameters live in one flat float array (the offsets below), so that the
 * optimiser, the best-epoch copy and the gradient are plain vectors; the
 * weight of a linear layer is [out x in] row-major, as in PyTorch. */
#ifndef CSASN_ADAPT_NET_H
#define CSASN_ADAPT_NET_H

#include <stddef.h>

#define CSASN__ANET_MAX_BLOCKS 64
#define CSASN__ANET_MAX_CLASSES 1024

typedef struct {
    int n_desc;        /* 4 (multiscale) or 2 (refined map, class token) */
    int din[4];        /* descriptor sizes, in the order above */
    int E, H, nb;      /* classifier width, residual-MLP hidden size, blocks */
    int K, has_mal;    /* classes; a malignancy head */
    float ln_eps;
} csasn__anet_shape;

typedef struct { size_t w, b; int out, in; } csasn__anet_lin;   /* offsets into the parameters */

typedef struct {
    csasn__anet_shape sh;
    size_t n;                              /* parameter count */
    int din_total, din_off[4];             /* a sample is [din_total] = cat(x_j) */
    csasn__anet_lin proj[4], mix, fc1[CSASN__ANET_MAX_BLOCKS], fc2[CSASN__ANET_MAX_BLOCKS], sub, mal;
    size_t ln_g[CSASN__ANET_MAX_BLOCKS], ln_b[CSASN__ANET_MAX_BLOCKS], cln_g, cln_b;
    size_t logvar;                         /* 2: subtype and malignancy task log-variances */
} csasn__anet;

/* Lays out the parameters of shape sh; NULL or an error for a bad shape. */
const char *csasn__anet_init(csasn__anet *net, const csasn__anet_shape *sh);

/* PyTorch's default initialisation of nn.Linear (weight and bias uniform in
 * +-1/sqrt(in)) for one layer, from a xorshift generator state. */
void csasn__anet_init_linear(const csasn__anet *net, float *p, const csasn__anet_lin *l, unsigned long long *rng);

/* Activations of one batch (up to max_batch samples) and the scratch of the
 * backward pass. */
typedef struct csasn__anet_ws csasn__anet_ws;
csasn__anet_ws *csasn__anet_ws_new(const csasn__anet *net, int max_batch);
void csasn__anet_ws_free(csasn__anet_ws *ws);

/* x [B x din_total] -> logits [B x K] and malignancy logits [B] (NULL
 * pointers are skipped); pointers into the workspace, valid until the next call. */
void csasn__anet_forward(const csasn__anet *net, const float *p, csasn__anet_ws *ws,
                         const float *x, int B, const float **logits, const float **mal);

/* The training target of one batch. The loss is tools/train_heads.py's:
 *   L_sub = cross_entropy(logits, y, weight=cw, label_smoothing=smoothing)
 *           (PyTorch's definition: weighted mean over the batch)
 *   L_mal = binary_cross_entropy_with_logits(mal, ym, pos_weight)
 *   L = exp(-lv0) L_sub + lv0 / 2 + exp(-lv1) L_mal + lv1 / 2
 * (the malignancy terms only when the network has that head). */
typedef struct {
    const int *y;          /* [B] class index */
    const float *ym;       /* [B] 1 malignant / 0 benign; NULL: no malignancy term */
    const float *cw;       /* [K] class weights */
    float smoothing, pos_weight;
} csasn__anet_target;

/* Forward, loss and gradient of every parameter (grad [n], overwritten).
 * Returns the loss. */
float csasn__anet_loss_grad(const csasn__anet *net, const float *p, csasn__anet_ws *ws,
                            const float *x, int B, const csasn__anet_target *t, float *grad);

/* torch.optim.AdamW, step for step (decoupled weight decay on every parameter,
 * bias-corrected moments). m, v [n] start at zero; step counts from 0. */
typedef struct { float lr, wd, beta1, beta2, eps; long step; float *m, *v; } csasn__adamw;
void csasn__adamw_step(csasn__adamw *o, float *p, const float *g, size_t n);

#endif
