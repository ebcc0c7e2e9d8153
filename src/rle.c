/* rle.c - DICOM RLE Lossless frames (PS3.5 Annex G), for src/dicom.c.
 *
 * A frame is a 64-byte header (the segment count, then 15 segment offsets)
 * and one PackBits segment per byte of each sample: for 16-bit RGB, six
 * segments, the most significant byte of red first. Each segment must fill
 * exactly one byte plane of rows x cols; a segment that ends early, an offset
 * outside the frame or out of order is an error (nothing is left unwritten).
 */
#include "dicom.h"
#include "error.h"

#include <string.h>

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

const char *csasn__rle_decode(const uint8_t *p, size_t n, int rows, int cols, int spp, int bps, uint8_t *out)
{
    if (n < 64)
        return csasn__errf("truncated DICOM RLE frame: %zu bytes, too short for its 64-byte header", n);
    uint32_t nseg = le32(p);
    uint32_t want = (uint32_t)(spp * bps);
    if (nseg != want)
        return csasn__errf("corrupt DICOM RLE frame: %u segments for %d samples of %d bytes (%u expected)", nseg, spp,
                           bps, want);
    size_t plane = (size_t)rows * (size_t)cols;
    for (uint32_t s = 0; s < nseg; s++) {
        uint32_t off = le32(p + 4 + 4 * s);
        uint32_t stop = s + 1 < nseg ? le32(p + 8 + 4 * s) : (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n);
        if ((s == 0 && off != 64) || off < 64 || off > n || stop > n || stop < off)
            return csasn__errf("corrupt DICOM RLE frame: segment %u at bytes %u..%u of a %zu-byte frame", s + 1, off,
                               stop, n);
        /* Segment s holds byte (s % bps) of sample (s / bps), most significant first. */
        size_t sample = s / (uint32_t)bps, byte = (size_t)bps - 1 - s % (uint32_t)bps;
        size_t step = (size_t)spp * (size_t)bps;
        uint8_t *dst = out + sample * (size_t)bps + byte;
        const uint8_t *q = p + off, *e = p + stop;
        size_t got = 0;
        while (got < plane) {
            if (q >= e)
                return csasn__errf("corrupt DICOM RLE frame: segment %u ends after %zu of its %zu bytes", s + 1, got,
                                   plane);
            int h = (int8_t)*q++;
            if (h >= 0) {
                size_t cnt = (size_t)h + 1;
                if ((size_t)(e - q) < cnt || cnt > plane - got)
                    return csasn__errf("corrupt DICOM RLE frame: segment %u: a literal run of %zu bytes past its end",
                                       s + 1, cnt);
                for (size_t i = 0; i < cnt; i++)
                    dst[(got + i) * step] = q[i];
                q += cnt;
                got += cnt;
            } else if (h != -128) {
                size_t cnt = (size_t)(1 - h);
                if (q >= e || cnt > plane - got)
                    return csasn__errf("corrupt DICOM RLE frame: segment %u: a repeat run of %zu bytes past its end",
                                       s + 1, cnt);
                for (size_t i = 0; i < cnt; i++)
                    dst[(got + i) * step] = *q;
                q++;
                got += cnt;
            }
        }
    }
    return NULL;
}
