/* image.h - private: image bytes -> normalised model input (src/image.c).
 * A leaf: it knows nothing of models; csasn_preprocess (model_forward.c)
 * hands it the model's input size and normalisation. */
#ifndef CSASN_IMAGE_H
#define CSASN_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "csasn.h"   /* csasn_roi */
#include "region.h"  /* csasn__region_spec, csasn__region */

/* Decode bytes (PNG, JPEG, BMP, GIF, PNM; 8/16 bit; gray/RGB/RGBA) to gray in
 * [0,1], turned upright by the file's EXIF orientation (JPEG, PNG), take the
 * region of roi that spec says (upright pixels; roi NULL = whole image;
 * spec NULL = stretch: the ROI clipped to the image; rejected if it does not
 * overlap; square/letterbox samples outside the image read spec->fill),
 * resize it to S x S with the antialiased triangle filter, normalise per
 * channel ((x - mean[c]) / std[c]) and write planar out[3][S][S]. *iw, *ih
 * get the upright image size, *region the geometry used (any may be NULL).
 * Returns NULL or an error message (thread-local buffer, see csasn__errf).
 * Allocates temporaries (decoded image, resize scratch) and frees them. */
const char *csasn__image_to_input(const void *bytes, size_t len, const csasn_roi *roi,
                                  int S, const float mean[3], const float std[3],
                                  float *out, int *iw, int *ih,
                                  const csasn__region_spec *spec, csasn__region *region);

/* The size a header declares, against CSASN_MAX_IMAGE_PIXELS / _SIDE:
 * NULL or an error message naming fmt. Shared with the JPEG walk (jpeg.c). */
const char *csasn__image_check_dims(const char *fmt, int64_t w, int64_t h);

/* The decoder memory of the last csasn__image_to_input on this thread:
 * estimated from the header (what the limit is checked against) and the
 * peak actually allocated by stb_image (0 for formats read in place). */
typedef struct {
    uint64_t estimate, peak;
} csasn__image_stats;
const csasn__image_stats *csasn__image_last_stats(void);
#endif
