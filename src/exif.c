/* exif.c - the EXIF orientation tag (src/exif.h).
 *
 * The rule is Chromium's (blink ImageDecoder::ReadImageOrientation), so that
 * the page's preview and the engine agree on which way is up: byte order "II"
 * or "MM" with the TIFF magic 42, IFD0 at the offset the header gives, the
 * first entry with tag 0x0112, type SHORT and count 1; values outside 1..8
 * mean "as stored". Every read is bounds-checked: the data comes from the file.
 */
#include "exif.h"

static unsigned rd16(const uint8_t *p, int be)
{
    return be ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

static uint32_t rd32(const uint8_t *p, int be)
{
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int csasn__exif_orientation(const uint8_t *tiff, size_t n)
{
    if (!tiff || n < 8)
        return 0;
    int be;
    if (tiff[0] == 'I' && tiff[1] == 'I')
        be = 0;
    else if (tiff[0] == 'M' && tiff[1] == 'M')
        be = 1;
    else
        return 0;
    if (rd16(tiff + 2, be) != 42)
        return 0;
    uint32_t ifd = rd32(tiff + 4, be);
    if (ifd > n || n - ifd < 2)
        return 0;
    unsigned count = rd16(tiff + ifd, be);
    size_t pos = (size_t)ifd + 2;
    for (unsigned i = 0; i < count && n - pos >= 12; i++, pos += 12) {
        const uint8_t *e = tiff + pos;
        if (rd16(e, be) == 0x0112 && rd16(e + 2, be) == 3 && rd32(e + 4, be) == 1) {
            unsigned v = rd16(e + 8, be);   /* a single SHORT sits left-justified in the value field */
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 0;
}
