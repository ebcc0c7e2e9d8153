/* image_limits.c - the image size limits of src/csasn.h, checked against what a
 * header declares. Its own unit so that every decoder (image.c, jpeg.c, dicom.c)
 * can call it without calling back into image.c. */
#include "error.h"
#include "image.h"

const char *csasn__image_check_dims(const char *fmt, int64_t w, int64_t h)
{
    if (w <= 0 || h <= 0)
        return csasn__errf("%s image has no pixels (%lldx%lld): corrupt header", fmt, (long long)w, (long long)h);
    if (w > CSASN_MAX_IMAGE_SIDE || h > CSASN_MAX_IMAGE_SIDE || (uint64_t)w * (uint64_t)h > CSASN_MAX_IMAGE_PIXELS)
        return csasn__errf("image is %lldx%lld: over the limit (%u pixels, %u per side)", (long long)w,
                           (long long)h, (unsigned)CSASN_MAX_IMAGE_PIXELS, (unsigned)CSASN_MAX_IMAGE_SIDE);
    return NULL;
}
