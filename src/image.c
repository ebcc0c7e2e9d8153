/* image.c - image bytes -> normalised model input (src/image.h).
 *
 * decode (stb_image) -> gray in [0,1] (BT.601 luma, alpha ignored) -> crop the
 * ROI -> antialiased triangle resize to S x S -> (x - mean[c]) / std[c] into
 * planar [3][S][S]. tools/preprocess.py is the Python twin of this file and
 * must stay in step with it (tests/test_preprocess.py compares them to 1e-5).
 */
#include "image.h"
#include "error.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* stb_image is third-party code: only the formats the engine promises, no
 * stdio (we decode from memory; also keeps the wasm build small), and its
 * own warnings silenced so that ours stay visible. */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_PNM
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_FAILURE_USERMSG
/* Zeroed allocations: stb_image 2.27 reads memory it never wrote in damaged
 * files: JPEGs (Huffman tables no DHT defined, coefficients of a progressive
 * AC scan before its DC scan) and PNGs whose zlib stream uses the invalid
 * distance codes 30/31 (stb takes them for distance 0 and copies output bytes
 * not yet written; found by fuzz_classify under MSan). From malloc/realloc
 * that is stale heap (an earlier image's data, or a wild table index).
 * Zeroed, every allocation and every grown tail, such a file decodes
 * deterministically. stb wants MALLOC, FREE and REALLOC(_SIZED) together;
 * all its reallocs go through the _SIZED form. */
static void *csasn__stbi_realloc(void *p, size_t old_size, size_t new_size)
{
    unsigned char *q = realloc(p, new_size);
    if (q && new_size > old_size)
        memset(q + old_size, 0, new_size - old_size);
    return q;
}
#define STBI_MALLOC(sz)                     calloc(1, (sz))
#define STBI_REALLOC_SIZED(p, oldsz, newsz) csasn__stbi_realloc((p), (oldsz), (newsz))
#define STBI_FREE(p)                        free(p)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

static const char *format_name(const uint8_t *p, size_t n)
{
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return "PNG";
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return "JPEG";
    if (n >= 4 && !memcmp(p, "GIF8", 4)) return "GIF";
    if (n >= 2 && p[0] == 'B' && p[1] == 'M') return "BMP";
    if (n >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return "PNM";
    return NULL;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The size every format's header declares, checked against the limits
 * before anything is decoded. */
static const char *check_dims(const char *fmt, int64_t w, int64_t h)
{
    if (w <= 0 || h <= 0)
        return csasn__errf("%s image has no pixels (%lldx%lld): corrupt header", fmt, (long long)w, (long long)h);
    if (w > CSASN_MAX_IMAGE_SIDE || h > CSASN_MAX_IMAGE_SIDE || (uint64_t)w * (uint64_t)h > CSASN_MAX_IMAGE_PIXELS)
        return csasn__errf("image is %lldx%lld: over the limit (%u pixels, %u per side)", (long long)w,
                           (long long)h, (unsigned)CSASN_MAX_IMAGE_PIXELS, (unsigned)CSASN_MAX_IMAGE_SIDE);
    return NULL;
}

/* Each check_<format> reads the header itself and walks the file structure
 * before any stb_image call sees it, for two reasons:
 * - stb_image decodes some damaged files without complaint (a PNG cut after
 *   its last IDAT, a JPEG cut mid-scan is padded with zeros); a cut file must
 *   be an error, not a half-grey image;
 * - stb_image 2.27 (the Debian version) trusts some header fields: a JPEG
 *   Huffman table with more than 256 codes overflows an array, a PNM size with
 *   many digits overflows an int, a BMP height of INT_MIN overflows abs().
 * On success *w, *h get the declared size, already within the limits. */
static const char *check_png(const uint8_t *p, size_t n, int64_t *w, int64_t *h)
{
    if (n < 33)
        return csasn__errf("truncated PNG: %zu bytes, too short for the IHDR header", n);
    if (be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4))
        return "corrupt PNG: the first chunk is not a 13-byte IHDR";
    uint32_t pw = be32(p + 16), ph = be32(p + 20);
    /* PNG sizes are at most 2^31 - 1; larger values are corrupt, say so as sizes. */
    *w = pw;
    *h = ph;
    const char *err = check_dims("PNG", *w, *h);
    if (err)
        return err;
    size_t pos = 8;
    while (pos < n) {
        if (n - pos < 12)
            return csasn__errf("truncated PNG: chunk header at byte %zu runs past the end (%zu bytes)", pos, n);
        uint32_t len = be32(p + pos);
        char type[5] = {0};
        for (int i = 0; i < 4; i++)
            type[i] = (p[pos + 4 + i] >= 32 && p[pos + 4 + i] < 127) ? (char)p[pos + 4 + i] : '?';
        if ((uint64_t)len + 12 > n - pos)
            return csasn__errf("truncated PNG: chunk '%s' at byte %zu (%u bytes) runs past the end (%zu bytes)",
                               type, pos, len, n);
        if (!memcmp(type, "IEND", 4))
            return NULL;
        pos += (size_t)len + 12;
    }
    return csasn__errf("truncated PNG: no IEND chunk in %zu bytes", n);
}

static const char *check_jpeg(const uint8_t *p, size_t n, int64_t *w, int64_t *h)
{
    /* Walk every marker segment up to the end-of-image marker, the ones
     * between the scans of a progressive JPEG included. Besides catching
     * truncation this validates each Huffman table (DHT): stb_image 2.27
     * writes one entry per code into a 257-entry array without checking that
     * a table has at most 256 codes. */
    size_t pos = 2;
    int have_size = 0, progressive = 0, n_comp = 0, adobe = 0;
    unsigned defined = 0;   /* bit (4 * Tc + Th): Huffman table Tc (0 DC, 1 AC), id Th defined */
    for (;;) {
        while (pos + 1 < n && p[pos] == 0xFF && p[pos + 1] == 0xFF)
            pos++;   /* fill bytes */
        if (pos + 2 > n)
            return csasn__errf("truncated JPEG: no end-of-image marker in %zu bytes", n);
        if (p[pos] != 0xFF)
            return csasn__errf("corrupt JPEG: expected a marker at byte %zu", pos);
        uint8_t m = p[pos + 1];
        if (m == 0xD9) {
            if (!have_size)
                return "corrupt JPEG: no frame header (SOF) before the end of the image";
            return NULL;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
            pos += 2;
            continue;
        }
        if (n - pos < 4)
            return csasn__errf("truncated JPEG: marker 0x%02X at byte %zu runs past the end (%zu bytes)", m, pos, n);
        size_t seg = (size_t)p[pos + 2] << 8 | p[pos + 3];
        if (seg < 2 || seg > n - pos - 2)
            return csasn__errf("truncated JPEG: marker segment 0x%02X at byte %zu runs past the end (%zu bytes)",
                               m, pos, n);
        size_t end = pos + 2 + seg;
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC && !have_size) {
            /* SOFn: length, precision, height, width, ... */
            if (seg < 8)
                return csasn__errf("corrupt JPEG: frame header at byte %zu is too short", pos);
            *h = (int64_t)p[pos + 5] << 8 | p[pos + 6];
            *w = (int64_t)p[pos + 7] << 8 | p[pos + 8];
            const char *err = check_dims("JPEG", *w, *h);
            if (err)
                return err;
            have_size = 1;
            progressive = m == 0xC2;
            n_comp = seg >= 9 ? p[pos + 9] : 0;
        }
        if (m == 0xEE && seg >= 14 && !memcmp(p + pos + 4, "Adobe", 5))
            adobe = 1;
        if (m == 0xC4) {
            for (size_t q = pos + 4; q < end;) {
                if (end - q < 17)
                    return csasn__errf("corrupt JPEG: Huffman table at byte %zu is cut short", q);
                unsigned codes = 0;
                for (int i = 1; i <= 16; i++)
                    codes += p[q + i];
                if (codes > 256)
                    return csasn__errf("corrupt JPEG: Huffman table at byte %zu has %u codes (at most 256)", q, codes);
                if ((p[q] >> 4) <= 1 && (p[q] & 15) <= 3)   /* others: stb says "bad DHT header" */
                    defined |= 1u << (4 * (p[q] >> 4) + (p[q] & 15));
                q += 17 + codes;
                if (q > end)
                    return csasn__errf("corrupt JPEG: Huffman table at byte %zu runs past its segment", q);
            }
        }
        pos = end;
        if (m == 0xDA) {
            if (!have_size)
                return "corrupt JPEG: image data before the frame header (SOF)";
            /* stb_image 2.27 decodes a 4-component JPEG as CMYK/YCCK only when
             * an Adobe APP14 segment says so; otherwise it takes it for YCbCr
             * and drops K: wrong pixels, silently. */
            if (n_comp == 4 && !adobe)
                return "unsupported JPEG: 4 components (CMYK) without an Adobe colour-transform marker";
            /* Scan header: Ns, Ns x (Cs, Td << 4 | Ta), Ss, Se, Ah << 4 | Al.
             * A table the scan decodes with must have been defined. */
            size_t s0 = pos - seg + 2;   /* first byte after the length */
            if (seg < 3)                 /* Ns itself is missing (found by fuzz_classify) */
                return csasn__errf("corrupt JPEG: scan header at byte %zu is empty", s0 - 4);
            unsigned ns = p[s0];
            if (seg < 6 + 2 * ns)
                return csasn__errf("corrupt JPEG: scan header at byte %zu is too short", s0 - 4);
            unsigned ss = p[s0 + 1 + 2 * ns], ah = p[s0 + 3 + 2 * ns] >> 4;
            int use_dc = !progressive || (ss == 0 && ah == 0), use_ac = !progressive || ss > 0;
            for (unsigned c = 0; c < ns; c++) {
                unsigned td = p[s0 + 2 + 2 * c] >> 4, ta = p[s0 + 2 + 2 * c] & 15;
                if (use_dc && (td > 3 || !(defined >> td & 1)))
                    return csasn__errf("corrupt JPEG: scan at byte %zu uses Huffman table DC%u, which is not defined",
                                       s0 - 4, td);
                if (use_ac && (ta > 3 || !(defined >> (4 + ta) & 1)))
                    return csasn__errf("corrupt JPEG: scan at byte %zu uses Huffman table AC%u, which is not defined",
                                       s0 - 4, ta);
            }
            /* Entropy-coded data: 0xFF is escaped as FF 00 and restart
             * markers FF D0..D7 may occur; any other FF xx is the next marker. */
            while (pos + 1 < n && !(p[pos] == 0xFF && p[pos + 1] != 0x00 && p[pos + 1] != 0xFF &&
                                    !(p[pos + 1] >= 0xD0 && p[pos + 1] <= 0xD7)))
                pos++;
            if (pos + 1 >= n)
                return csasn__errf("truncated JPEG: no end-of-image marker in %zu bytes", n);
        }
    }
}

/* Uncompressed BMP: the pixel array (rows padded to 4 bytes) must fit. A
 * negative height is a top-down image (valid); INT_MIN has no magnitude. */
static const char *check_bmp(const uint8_t *p, size_t n, int64_t *w, int64_t *h)
{
    if (n < 18 || n - 14 < le32(p + 14))
        return csasn__errf("truncated BMP: header runs past the end (%zu bytes)", n);
    uint32_t hsz = le32(p + 14), off = le32(p + 10), comp = 0;
    unsigned bpp;
    if (hsz == 12) {   /* OS/2 core header: unsigned 16-bit sizes, never compressed */
        *w = p[18] | p[19] << 8;
        *h = p[20] | p[21] << 8;
        bpp = (unsigned)p[24] | (unsigned)p[25] << 8;
    } else if (hsz >= 40) {
        int32_t sw = (int32_t)le32(p + 18), sh = (int32_t)le32(p + 22);
        if (sh == INT32_MIN)
            return "corrupt BMP: height -2147483648";
        *w = sw;
        *h = sh < 0 ? -(int64_t)sh : sh;
        bpp = (unsigned)p[28] | (unsigned)p[29] << 8;
        comp = le32(p + 30);
    } else {
        return csasn__errf("corrupt BMP: unknown header size %u", hsz);
    }
    const char *err = check_dims("BMP", *w, *h);
    if (err)
        return err;
    /* stb_image reads the field as a signed int and rejects 1, 2 and >= 4:
     * a negative value (0xFFFFFF00) would pass as uncompressed, bypassing the
     * size check below. stb decodes only 0 (BI_RGB) and 3 (BI_BITFIELDS). */
    if (comp != 0 && comp != 3)
        return csasn__errf("unsupported BMP: compression %u (only uncompressed and bitfields)", comp);
    uint64_t stride = ((uint64_t)bpp * (uint64_t)*w + 31) / 32 * 4;
    uint64_t need = (uint64_t)off + stride * (uint64_t)*h;
    if (need > n)
        return csasn__errf("truncated BMP: pixel data ends at byte %llu past end %zu",
                           (unsigned long long)need, n);
    if (comp == 0 && (bpp == 1 || bpp == 4 || bpp == 8)) {
        /* stb_image 2.27 copies pal[index] for every pixel from an uninitialised
         * local pal[256][4] of which only the file's entries are set: an index
         * past the palette would put stack garbage into the image. Its palette
         * size is what lies between the headers and the pixels, computed as
         * stb does (for the OS/2 header it subtracts 24, not 12). */
        uint64_t hdr = 14 + (hsz == 12 ? 24 : (uint64_t)hsz);
        uint64_t psize = off >= hdr ? (off - hdr) / (hsz == 12 ? 3 : 4) : 0;
        if (psize > 256)
            psize = 256;
        for (int64_t y = 0; y < *h; y++) {
            const uint8_t *row = p + off + (size_t)(stride * (uint64_t)y);
            for (int64_t x = 0; x < *w; x++) {
                unsigned v = bpp == 8 ? row[x]
                           : bpp == 4 ? (row[x >> 1] >> (x & 1 ? 0 : 4)) & 15
                                      : (row[x >> 3] >> (7 - (x & 7))) & 1;
                if (v >= psize)
                    return csasn__errf("corrupt BMP: pixel value %u at (%lld, %lld) is past the %llu-entry palette",
                                       v, (long long)x, (long long)y, (unsigned long long)psize);
            }
        }
    }
    return NULL;
}

/* Binary PNM (P5 gray, P6 RGB): header tokens (width, height, maxval) with
 * comments, one whitespace, then exactly w*h*channels samples of 1 or 2 bytes. */
static const char *check_pnm(const uint8_t *p, size_t n, int64_t *w, int64_t *h)
{
    static const char *what[3] = {"width", "height", "maxval"};
    size_t pos = 2;
    uint64_t v[3] = {0};
    for (int t = 0; t < 3; t++) {
        for (;;) {
            while (pos < n && (p[pos] == ' ' || (p[pos] >= 9 && p[pos] <= 13)))
                pos++;
            if (pos < n && p[pos] == '#') {
                while (pos < n && p[pos] != '\n' && p[pos] != '\r')
                    pos++;
                continue;
            }
            break;
        }
        if (pos >= n)
            return csasn__errf("truncated PNM: header runs past the end (%zu bytes)", n);
        if (p[pos] < '0' || p[pos] > '9')
            return csasn__errf("corrupt PNM: %s at byte %zu is not a number", what[t], pos);
        while (pos < n && p[pos] >= '0' && p[pos] <= '9') {
            /* Saturate: any value past 10^9 is over every limit anyway. */
            if (v[t] < 1000000000u)
                v[t] = v[t] * 10 + (uint64_t)(p[pos] - '0');
            pos++;
        }
        if (pos >= n)
            return csasn__errf("truncated PNM: header runs past the end (%zu bytes)", n);
    }
    *w = (int64_t)v[0];
    *h = (int64_t)v[1];
    const char *err = check_dims("PNM", *w, *h);
    if (err)
        return err;
    if (v[2] < 1 || v[2] > 65535)
        return csasn__errf("corrupt PNM: maxval %llu (must be 1..65535)", (unsigned long long)v[2]);
    pos++;   /* the single whitespace before the raster */
    uint64_t need = (uint64_t)pos + (uint64_t)*w * (uint64_t)*h * (p[1] == '6' ? 3u : 1u) * (v[2] > 255 ? 2u : 1u);
    if (need > n)
        return csasn__errf("truncated PNM: pixel data ends at byte %llu past end %zu",
                           (unsigned long long)need, n);
    return NULL;
}

/* GIF: the logical screen size, then walk the blocks up to the end of the
 * first image's LZW data (the only frame decoded); every sub-block must be
 * complete. */
static const char *check_gif(const uint8_t *p, size_t n, int64_t *w, int64_t *h)
{
    if (n < 13)
        return csasn__errf("truncated GIF: %zu bytes, too short for the header", n);
    *w = p[6] | p[7] << 8;
    *h = p[8] | p[9] << 8;
    const char *err = check_dims("GIF", *w, *h);
    if (err)
        return err;
    size_t pos = 13;
    if (p[10] & 0x80)
        pos += 3u * (2u << (p[10] & 7));   /* global colour table */
    for (;;) {
        if (pos >= n)
            return csasn__errf("truncated GIF: data ends at byte %zu before the first image", n);
        uint8_t b = p[pos];
        int image = b == 0x2C;
        if (b == 0x21) {          /* extension: label, then sub-blocks */
            pos += 2;
        } else if (image) {       /* descriptor, local colour table, LZW code size */
            if (n - pos < 10)
                return csasn__errf("truncated GIF: image descriptor at byte %zu runs past the end (%zu bytes)", pos, n);
            uint8_t fl = p[pos + 9];
            pos += 10;
            if (fl & 0x80)
                pos += 3u * (2u << (fl & 7));
            pos += 1;
        } else {
            return csasn__errf("corrupt GIF: unexpected block 0x%02X at byte %zu before the first image", b, pos);
        }
        for (;;) {                /* sub-blocks: length byte, data; 0 ends */
            if (pos >= n)
                return csasn__errf("truncated GIF: %s data runs past the end (%zu bytes)",
                                   image ? "image" : "extension", n);
            size_t len = p[pos++];
            if (len == 0)
                break;
            if (len > n - pos)
                return csasn__errf("truncated GIF: %s data runs past the end (%zu bytes)",
                                   image ? "image" : "extension", n);
            pos += len;
        }
        if (image)
            return NULL;
    }
}

/* Resampling weights of one axis: out[i] = sum_k w[i*kmax + k] * in[start[i] + k]
 * for k < cnt[i]. Antialiased triangle (PIL's BILINEAR): the filter widens by
 * in/out when shrinking so that every input pixel contributes. */
typedef struct {
    int *start, *cnt, kmax;
    double *w;
} axis_weights;

static void axis_free(axis_weights *a)
{
    free(a->start);
    free(a->cnt);
    free(a->w);
    memset(a, 0, sizeof *a);   /* safe to free twice (error paths) */
}

static int axis_init(axis_weights *a, int in, int out)
{
    double scale = (double)in / out;
    double support = scale > 1.0 ? scale : 1.0;
    a->kmax = (int)ceil(2.0 * support) + 2;
    a->start = malloc(sizeof(int) * (size_t)out);
    a->cnt = malloc(sizeof(int) * (size_t)out);
    a->w = malloc(sizeof(double) * (size_t)out * (size_t)a->kmax);
    if (!a->start || !a->cnt || !a->w) {
        axis_free(a);
        return 0;
    }
    for (int i = 0; i < out; i++) {
        double center = (i + 0.5) * scale;
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        double *w = a->w + (size_t)i * a->kmax, sum = 0.0;
        for (int j = lo; j < hi; j++) {
            double d = fabs((j + 0.5 - center) / support);
            w[j - lo] = d < 1.0 ? 1.0 - d : 0.0;
            sum += w[j - lo];
        }
        /* sum > 0: the pixel under center is within half a pixel of it. */
        for (int j = lo; j < hi; j++)
            w[j - lo] /= sum;
        a->start[i] = lo;
        a->cnt[i] = hi - lo;
    }
    return 1;
}

/* Pixel (x, y) of the decoded image as gray in [0,1]. 0.299/0.587/0.114 in
 * float, in this order, exactly as tools/preprocess.py computes them. */
static float gray_at(const void *pix, int is16, int nc, int w, int x, int y)
{
    size_t i = ((size_t)y * (size_t)w + (size_t)x) * (size_t)nc;
    float r, g, b, scale = is16 ? 65535.0f : 255.0f;
    if (is16) {
        const uint16_t *p = (const uint16_t *)pix + i;
        r = p[0];
        g = nc >= 3 ? p[1] : r;
        b = nc >= 3 ? p[2] : r;
    } else {
        const uint8_t *p = (const uint8_t *)pix + i;
        r = p[0];
        g = nc >= 3 ? p[1] : r;
        b = nc >= 3 ? p[2] : r;
    }
    /* Gray, gray + alpha, or a colour pixel with R = G = B (gray stored as
     * RGB or through a palette): the luma weights sum to 1, so this is the
     * same value without the rounding of the weighted sum. */
    if (nc < 3 || (r == g && g == b))
        return r / scale;
    return (0.299f * r + 0.587f * g + 0.114f * b) / scale;
}

const char *csasn__image_to_input(const void *bytes, size_t len, const csasn_roi *roi,
                                  int S, const float mean[3], const float std[3],
                                  float *out, int *iw, int *ih)
{
    const uint8_t *p = bytes;
    if (S <= 0 || S > 16384)
        return csasn__errf("bad input size %d", S);
    for (int c = 0; c < 3; c++)
        if (!(std[c] > 0.0f) || !isfinite(mean[c]) || !isfinite(std[c]))
            return csasn__errf("bad normalisation: mean[%d] = %g, std[%d] = %g", c, mean[c], c, std[c]);
    if (!p || len == 0)
        return "image is empty (0 bytes)";
    if (len > INT_MAX)
        return csasn__errf("image is %zu bytes: too large to decode", len);
    const char *fmt = format_name(p, len);
    if (!fmt)
        return "not an image: unrecognised format (supported: PNG, JPEG, BMP, GIF, PGM/PPM)";
    int64_t hw = 0, hh = 0;
    const char *err;
    if (!strcmp(fmt, "PNG")) err = check_png(p, len, &hw, &hh);
    else if (!strcmp(fmt, "JPEG")) err = check_jpeg(p, len, &hw, &hh);
    else if (!strcmp(fmt, "BMP")) err = check_bmp(p, len, &hw, &hh);
    else if (!strcmp(fmt, "PNM")) err = check_pnm(p, len, &hw, &hh);
    else err = check_gif(p, len, &hw, &hh);
    if (err)
        return err;

    /* stb_image now only sees a header we have read and bounded ourselves;
     * its view of the size must agree (BMP: stb reports a top-down image's
     * height negative). */
    int w, h, nc;
    if (!stbi_info_from_memory(p, (int)len, &w, &h, &nc))
        return csasn__errf("cannot read %s header: %s", fmt, stbi_failure_reason());
    if (h < 0 && !strcmp(fmt, "BMP"))
        h = -h;
    if (w != hw || h != hh)
        return csasn__errf("corrupt %s: header says %lldx%lld, decoder reads %dx%d", fmt,
                           (long long)hw, (long long)hh, w, h);

    /* The ROI is checked before decoding: a bad ROI costs nothing. */
    int x0 = 0, y0 = 0, x1 = w, y1 = h;
    if (roi) {
        if (roi->w <= 0 || roi->h <= 0)
            return csasn__errf("bad ROI %d,%d,%d,%d: width and height must be positive",
                               roi->x, roi->y, roi->w, roi->h);
        int64_t rx1 = (int64_t)roi->x + roi->w, ry1 = (int64_t)roi->y + roi->h;
        if (rx1 <= 0 || ry1 <= 0 || roi->x >= w || roi->y >= h)
            return csasn__errf("ROI %d,%d,%d,%d does not overlap the %dx%d image",
                               roi->x, roi->y, roi->w, roi->h, w, h);
        x0 = roi->x > 0 ? roi->x : 0;
        y0 = roi->y > 0 ? roi->y : 0;
        x1 = rx1 < w ? (int)rx1 : w;
        y1 = ry1 < h ? (int)ry1 : h;
    }

    int is16 = stbi_is_16_bit_from_memory(p, (int)len);
    int dw, dh, dn;
    void *pix = is16 ? (void *)stbi_load_16_from_memory(p, (int)len, &dw, &dh, &dn, 0)
                     : (void *)stbi_load_from_memory(p, (int)len, &dw, &dh, &dn, 0);
    if (!pix)
        return csasn__errf("cannot decode %s image: %s", fmt, stbi_failure_reason());
    if (dw != w || dh != h || dn < 1 || dn > 4) {
        stbi_image_free(pix);
        return csasn__errf("cannot decode %s image: header says %dx%d, decoded %dx%d", fmt, w, h, dw, dh);
    }

    int cw = x1 - x0, ch = y1 - y0;
    axis_weights ax = {0}, ay = {0};
    float *row = malloc(sizeof(float) * (size_t)cw);
    double *tmp = malloc(sizeof(double) * (size_t)ch * (size_t)S);   /* [ch][S] */
    if (!row || !tmp || !axis_init(&ax, cw, S) || !axis_init(&ay, ch, S)) {
        err = "out of memory preprocessing the image";
        goto done;
    }
    /* Horizontal pass, one crop row at a time: [ch][cw] -> tmp[ch][S]. */
    for (int y = 0; y < ch; y++) {
        for (int x = 0; x < cw; x++)
            row[x] = gray_at(pix, is16, dn, w, x0 + x, y0 + y);
        double *t = tmp + (size_t)y * S;
        for (int i = 0; i < S; i++) {
            const double *wt = ax.w + (size_t)i * ax.kmax;
            const float *src = row + ax.start[i];
            double acc = 0.0;
            for (int k = 0; k < ax.cnt[i]; k++)
                acc += wt[k] * src[k];
            t[i] = acc;
        }
    }
    /* Vertical pass, then normalise: tmp[ch][S] -> out[3][S][S]. */
    for (int i = 0; i < S; i++) {
        const double *wt = ay.w + (size_t)i * ay.kmax;
        const double *src = tmp + (size_t)ay.start[i] * S;
        for (int x = 0; x < S; x++) {
            double acc = 0.0;
            for (int k = 0; k < ay.cnt[i]; k++)
                acc += wt[k] * src[(size_t)k * S + x];
            float v = (float)acc;
            for (int c = 0; c < 3; c++)
                out[((size_t)c * S + i) * S + x] = (v - mean[c]) / std[c];
        }
    }
    if (iw) *iw = w;
    if (ih) *ih = h;
done:
    axis_free(&ax);
    axis_free(&ay);
    free(row);
    free(tmp);
    stbi_image_free(pix);
    return err;
}
