/* region.h - private: how a model turns the user's ROI into the part of the
 * image its S x S input shows (src/FORMAT.md "Region geometry"; the Python
 * twin is tools/preprocess.py region_geometry / region_pixels). A leaf: plain
 * integer geometry, shared by the image pipeline (image.c) and the model's
 * public csasn_model_region (model_forward.c). */
#ifndef CSASN_REGION_H
#define CSASN_REGION_H

#include "csasn.h"   /* csasn_roi, CSASN_REGION_* */

/* The model's rule: CSASN_REGION_STRETCH / _SQUARE / _LETTERBOX, the context
 * margin per side as a fraction of the box side (0..1) and the gray level
 * (0..1) of samples outside the image (letterbox: outside the grown box). */
typedef struct {
    int mode;
    float margin, fill;
} csasn__region_spec;

/* All in upright image pixels, half-open [x0, x1) x [y0, y1). */
typedef struct {
    int x0, y0, x1, y1;        /* the sampled region (square/letterbox: may extend past the image) */
    int gx0, gy0, gx1, gy1;    /* the box grown by the margin (not clipped, except in stretch mode) */
    int ix0, iy0, ix1, iy1;    /* the part of the region that shows image pixels (never empty) */
} csasn__region;

/* roi (NULL: the whole image, never grown) of a w x h image -> *out. spec
 * NULL means stretch without margin. NULL or an error message: a ROI with
 * w or h <= 0, or one that misses the image (the messages the engine has
 * always given). */
const char *csasn__region_geometry(const csasn_roi *roi, int w, int h, const csasn__region_spec *spec,
                                   csasn__region *out);

#endif
