/* jpeg.h - private: a JPEG walked and checked before stb_image decodes it
 * (src/jpeg.c). */
#ifndef CSASN_JPEG_H
#define CSASN_JPEG_H

#include <stddef.h>
#include <stdint.h>

/* A component may take part in at most this many scans. libjpeg's default
 * progression uses 6 for luma and 4 for each chroma component; stb_image's
 * cost grows with every scan (it visits every block of the component), so a
 * file of hundreds of empty refinement scans is refused instead. */
#define CSASN__JPEG_MAX_SCANS_PER_COMPONENT 16
/* stb_image spends most of a progressive decode in AC refinement scans, where
 * it visits every coefficient of the band in every block, even in an empty
 * scan. Per component, the bands of all refinement scans may cover at most
 * this many coefficient positions: 4 full passes over 1..63 (libjpeg's
 * default progression makes 2 for luma, 1 for each chroma component). */
#define CSASN__JPEG_MAX_REFINED_PER_COMPONENT (4 * 63)

typedef struct {
    int w, h;              /* frame size */
    int n_comp;            /* 1, 3 or 4 */
    int progressive;
    int hs[4], vs[4];      /* sampling factors per component */
    int hmax, vmax;
    int orientation;       /* EXIF orientation, 1..8 */
    /* stb_image will output the three planes as R, G, B while libjpeg (the
     * browsers, PIL) reads them as Y, Cb, Cr: convert after decoding. */
    int ycc_to_rgb;
    unsigned scans;
} csasn__jpeg_info;

/* Walks p[n] (which starts with FF D8 FF) marker by marker up to the
 * end-of-image marker, and with entropy != 0 decodes the entropy-coded data
 * of every scan far enough to know that it holds every block the frame needs
 * (a cut scan is an error, whatever follows it). Refuses what stb_image 2.27
 * would decode differently from libjpeg or unsafely: unsupported variants
 * (arithmetic, lossless, hierarchical, 12-bit), over-long Huffman tables,
 * tables a scan uses but no DHT defines, ambiguous colour transforms, too
 * many scans. Without entropy the walk only skips the scans' data: cheap, and
 * enough to refuse a file over the scan bounds; call it first, then with
 * entropy before decoding. Returns NULL and fills *info, or an error message. */
const char *csasn__jpeg_check(const uint8_t *p, size_t n, csasn__jpeg_info *info, int entropy);

#endif
