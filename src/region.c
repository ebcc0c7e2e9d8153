/* region.c - ROI -> the region the model reads (src/region.h). Integer
 * rules of src/FORMAT.md "Region geometry", step for step as
 * tools/preprocess.py region_geometry and region_pixels take them, so that
 * both sample exactly the same pixels. */
#include "region.h"
#include "error.h"

#include <math.h>
#include <stdint.h>

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Python's // for a non-negative numerator and positive divisor is plain
 * division; side - g >= 0 always holds here. */
const char *csasn__region_geometry(const csasn_roi *roi, int w, int h, const csasn__region_spec *spec,
                                   csasn__region *out)
{
    int mode = spec ? spec->mode : CSASN_REGION_STRETCH;
    double margin = spec ? (double)spec->margin : 0.0;
    /* 1. the ROI clipped to the image (the whole image without one) */
    int64_t bx0 = 0, by0 = 0, bx1 = w, by1 = h;
    if (roi) {
        if (roi->w <= 0 || roi->h <= 0)
            return csasn__errf("bad ROI %d,%d,%d,%d: width and height must be positive",
                               roi->x, roi->y, roi->w, roi->h);
        int64_t rx1 = (int64_t)roi->x + roi->w, ry1 = (int64_t)roi->y + roi->h;
        if (rx1 <= 0 || ry1 <= 0 || roi->x >= w || roi->y >= h)
            return csasn__errf("ROI %d,%d,%d,%d does not overlap the %dx%d image",
                               roi->x, roi->y, roi->w, roi->h, w, h);
        bx0 = max64(roi->x, 0);
        by0 = max64(roi->y, 0);
        bx1 = min64(rx1, w);
        by1 = min64(ry1, h);
    }
    /* 2. the margin, per axis, of a given ROI only: floor(margin * side + 0.5) */
    int64_t mx = 0, my = 0;
    if (roi) {
        mx = (int64_t)floor(margin * (double)(bx1 - bx0) + 0.5);
        my = (int64_t)floor(margin * (double)(by1 - by0) + 0.5);
    }
    int64_t gx0 = bx0 - mx, gy0 = by0 - my, gx1 = bx1 + mx, gy1 = by1 + my;
    int64_t x0, y0, x1, y1, ix0, iy0, ix1, iy1;
    if (mode == CSASN_REGION_SQUARE || mode == CSASN_REGION_LETTERBOX) {
        /* 4. the smallest square holding the grown box, the box centred (floor) */
        int64_t gw = gx1 - gx0, gh = gy1 - gy0, side = gw > gh ? gw : gh;
        x0 = gx0 - (side - gw) / 2;
        y0 = gy0 - (side - gh) / 2;
        x1 = x0 + side;
        y1 = y0 + side;
        /* image where the square covers it (square) or only inside the grown box (letterbox) */
        int64_t vx0 = 0, vy0 = 0, vx1 = w, vy1 = h;
        if (mode == CSASN_REGION_LETTERBOX) {
            vx0 = gx0; vy0 = gy0; vx1 = gx1; vy1 = gy1;
        }
        ix0 = max64(max64(x0, vx0), 0);
        iy0 = max64(max64(y0, vy0), 0);
        ix1 = min64(min64(x1, vx1), w);
        iy1 = min64(min64(y1, vy1), h);
    } else {
        /* 3. stretch: the grown box clipped to the image */
        gx0 = x0 = ix0 = max64(gx0, 0);
        gy0 = y0 = iy0 = max64(gy0, 0);
        gx1 = x1 = ix1 = min64(gx1, w);
        gy1 = y1 = iy1 = min64(gy1, h);
    }
    /* |values| <= 3 * 65535 (the image side bound, margin <= 1): ints hold them */
    out->x0 = (int)x0; out->y0 = (int)y0; out->x1 = (int)x1; out->y1 = (int)y1;
    out->gx0 = (int)gx0; out->gy0 = (int)gy0; out->gx1 = (int)gx1; out->gy1 = (int)gy1;
    out->ix0 = (int)ix0; out->iy0 = (int)iy0; out->ix1 = (int)ix1; out->iy1 = (int)iy1;
    return NULL;
}
