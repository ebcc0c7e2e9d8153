/* exif.h - private: the EXIF orientation tag of an image (src/exif.c). */
#ifndef CSASN_EXIF_H
#define CSASN_EXIF_H

#include <stddef.h>
#include <stdint.h>

/* tiff[n]: a TIFF structure as stored in a JPEG APP1 "Exif\0\0" segment (after
 * those 6 bytes) or in a PNG eXIf chunk. Returns the orientation tag of IFD0
 * (1..8: how the stored pixels must be turned to stand upright; a value out of
 * range counts as 1, as stored, which is what browsers do), or 0 when the data
 * holds no such tag (malformed, or no orientation entry). */
int csasn__exif_orientation(const uint8_t *tiff, size_t n);

#endif
