/* image.c - image bytes -> normalised model input (src/image.h).
 *
 * check the header and structure (ours) -> decode (stb_image, or read PNM and
 * palette BMP rasters straight from the file) -> gray in [0,1] (BT.601 luma,
 * alpha ignored), turned upright by the EXIF orientation -> crop the ROI ->
 * antialiased triangle resize to S x S -> (x - mean[c]) / std[c] into planar
 * [3][S][S]. tools/preprocess.py is the Python twin of this file and must
 * stay in step with it (tests/test_preprocess.py compares them to 1e-5).
 */
#include "image.h"
#include "error.h"
#include "exif.h"
#include "jpeg.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>    /* snprintf */
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------- decoder memory
 *
 * Every allocation stb_image makes goes through these hooks, which count the
 * bytes alive and refuse an allocation past two bounds set per decode: the
 * engine's decode limit (CSASN_MAX_DECODE_BYTES) for all of them together,
 * and for a single block the largest one the header implies (a PNG whose
 * image data inflates past the size its header gives cannot grow stb's zlib
 * buffer beyond that; stb then fails with "outofmem" and the engine says
 * why). Memory is zeroed: stb_image 2.27 reads memory it never wrote in
 * damaged files (JPEG Huffman tables no DHT defined, coefficients of a
 * progressive AC scan before its DC scan; PNG zlib distance codes 30/31,
 * which it takes for distance 0; found by fuzz_classify under MSan); zeroed,
 * such a file decodes deterministically instead of from stale heap. */
typedef struct {
    size_t live, peak;
    size_t cap_total, cap_block;
    int denied;
} csasn__stbi_budget;

static _Thread_local csasn__stbi_budget budget = {0, 0, SIZE_MAX, SIZE_MAX, 0};

#define MEM_HDR 16   /* the block size, kept in front of it; 16 keeps malloc's alignment */

static int budget_allows(size_t live_after, size_t block)
{
    if (block > budget.cap_block || live_after > budget.cap_total || block > SIZE_MAX - MEM_HDR) {
        budget.denied = 1;
        return 0;
    }
    return 1;
}

static void *csasn__stbi_malloc(size_t n)
{
    if (!budget_allows(budget.live + n, n))
        return NULL;
    unsigned char *p = calloc(1, n + MEM_HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    budget.live += n;
    if (budget.live > budget.peak)
        budget.peak = budget.live;
    return p + MEM_HDR;
}

static void csasn__stbi_free(void *q)
{
    if (!q)
        return;
    unsigned char *p = (unsigned char *)q - MEM_HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    budget.live -= n;
    free(p);
}

/* A realloc may copy: old and new block both exist for a moment, and that
 * moment is what the bounds and the peak count. */
static void *csasn__stbi_realloc(void *q, size_t new_size)
{
    if (!q)
        return csasn__stbi_malloc(new_size);
    unsigned char *p = (unsigned char *)q - MEM_HDR;
    size_t old;
    memcpy(&old, p, sizeof old);
    if (!budget_allows(budget.live + new_size, new_size))
        return NULL;
    if (budget.live + new_size > budget.peak)
        budget.peak = budget.live + new_size;
    unsigned char *r = realloc(p, new_size + MEM_HDR);
    if (!r)
        return NULL;
    if (new_size > old)
        memset(r + MEM_HDR + old, 0, new_size - old);
    memcpy(r, &new_size, sizeof new_size);
    budget.live = budget.live - old + new_size;
    return r + MEM_HDR;
}

/* stb_image is third-party code: only the formats the engine promises, no
 * stdio (we decode from memory; also keeps the wasm build small), and its
 * own warnings silenced so that ours stay visible. PNM and palette BMP never
 * reach it (read here), but its PNM test stays compiled in so that it can
 * never take such a file for something else. */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_PNM
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_FAILURE_USERMSG
#define STBI_MALLOC(sz)                     csasn__stbi_malloc(sz)
#define STBI_REALLOC_SIZED(p, oldsz, newsz) csasn__stbi_realloc((p), (newsz))
#define STBI_FREE(p)                        csasn__stbi_free(p)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

static _Thread_local csasn__image_stats last_stats;

const csasn__image_stats *csasn__image_last_stats(void)
{
    return &last_stats;
}

/* ------------------------------------------------------------- rasters */

/* Decoded pixels, or pixels read in place from the file (PNM, palette BMP):
 * stored row y starts at row0 + y * stride. */
enum { PX_U8, PX_U16, PX_U16BE, PX_PAL1, PX_PAL4, PX_PAL8 };

typedef struct {
    const uint8_t *row0;
    ptrdiff_t stride;        /* negative for a bottom-up BMP */
    int kind;                /* PX_* */
    int nc;                  /* samples per pixel (PX_U8, PX_U16, PX_U16BE) */
    float scale;             /* the sample value of white: 255, 65535 or a PNM maxval */
    const uint8_t *pal;      /* PX_PAL*: entries B, G, R (, reserved) */
    int pal_step;            /* bytes per palette entry */
} raster;

/* What the header (and structure) of a file says, before anything is decoded. */
typedef struct {
    const char *fmt;
    int64_t w, h;            /* as stored */
    int orientation;         /* EXIF, 1..8 */
    int own;                 /* 1: ras reads the file itself, stb_image is not used */
    raster ras;
    int ycc_to_rgb;          /* JPEG: stb's RGB output is really Y, Cb, Cr */
    uint64_t mem;            /* stb_image's peak memory for this file, from the header */
    uint64_t max_block;      /* the largest single block it may allocate */
    uint64_t inflated;       /* PNG: the bytes its image data must inflate to */
    char what[80];           /* depth, channels, ... for messages */
} image_header;

static const char *format_name(const uint8_t *p, size_t n)
{
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return "PNG";
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return "JPEG";
    if (n >= 4 && !memcmp(p, "GIF8", 4)) return "GIF";
    if (n >= 2 && p[0] == 'B' && p[1] == 'M') return "BMP";
    if (n >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return "PNM";
    /* The other Netpbm formats, recognised only to be refused by name. */
    if (n >= 3 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7' &&
        (p[2] == ' ' || (p[2] >= 9 && p[2] <= 13)))
        return "PNM";
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

static unsigned le16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* Each check_<format> reads the header itself and walks the file structure
 * before any stb_image call sees it, for these reasons:
 * - stb_image decodes some damaged files without complaint (a PNG cut after
 *   its last IDAT, a JPEG or GIF cut mid-data is padded); a cut file must be
 *   an error, not a half-grey image;
 * - stb_image 2.27 (the Debian version) trusts some header fields: a JPEG
 *   Huffman table with more than 256 codes overflows an array, a PNM size with
 *   many digits overflows an int, a BMP height of INT_MIN overflows abs();
 * - it reads some files differently from the browsers and PIL (16-bit PNM
 *   byte order, PNM maxval, the colour space of some JPEGs, the first frame
 *   of an APNG), or slowly (empty progressive JPEG scans, GIF LZW data past
 *   the frame);
 * - the memory a decode needs follows from the header: it is estimated here
 *   (stb's allocations, see its decoders) and checked against the limit.
 * On success *hd holds the declared size, already within the limits. */

/* ------------------------------------------------------------------ PNG */

/* Adam7 pass p of a w x h image is pw x ph pixels. */
static void adam7_pass(int pass, uint64_t w, uint64_t h, uint64_t *pw, uint64_t *ph)
{
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    *pw = w > (uint64_t)x0[pass] ? (w - x0[pass] + dx[pass] - 1) / dx[pass] : 0;
    *ph = h > (uint64_t)y0[pass] ? (h - y0[pass] + dy[pass] - 1) / dy[pass] : 0;
}

static const char *check_png(const uint8_t *p, size_t n, image_header *hd)
{
    if (n < 33)
        return csasn__errf("truncated PNG: %zu bytes, too short for the IHDR header", n);
    if (be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4))
        return "corrupt PNG: the first chunk is not a 13-byte IHDR";
    uint32_t pw = be32(p + 16), ph = be32(p + 20);
    /* PNG sizes are at most 2^31 - 1; larger values are corrupt, say so as sizes. */
    hd->w = pw;
    hd->h = ph;
    const char *err = csasn__image_check_dims("PNG", hd->w, hd->h);
    if (err)
        return err;
    unsigned depth = p[24], color = p[25], lace = p[28];
    int depth_ok = color == 0 ? (depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16)
                 : color == 3 ? (depth == 1 || depth == 2 || depth == 4 || depth == 8)
                 : (color == 2 || color == 4 || color == 6) && (depth == 8 || depth == 16);
    if (!depth_ok)
        return csasn__errf("corrupt PNG: bit depth %u with colour type %u", depth, color);
    if (p[26] != 0 || p[27] != 0 || lace > 1)
        return csasn__errf("corrupt PNG: compression %u, filter %u, interlace %u (only 0, 0, 0 or 1 exist)",
                           p[26], p[27], lace);

    /* Chunks up to IEND: image data size, transparency, APNG frames, eXIf. */
    size_t pos = 8;
    uint64_t idat_off = 0, idat_alloc = 0;   /* stb's IDAT buffer: grows by doubling from max(4096, 1st) */
    int have_idat = 0, trns = 0, actl = 0, fctl_first = 0, exif = 0;
    const uint8_t *fctl = NULL;
    hd->orientation = 1;
    for (;;) {
        if (pos >= n)
            return csasn__errf("truncated PNG: no IEND chunk in %zu bytes", n);
        if (n - pos < 12)
            return csasn__errf("truncated PNG: chunk header at byte %zu runs past the end (%zu bytes)", pos, n);
        uint32_t len = be32(p + pos);
        char type[5] = {0};
        for (int i = 0; i < 4; i++)
            type[i] = (p[pos + 4 + i] >= 32 && p[pos + 4 + i] < 127) ? (char)p[pos + 4 + i] : '?';
        if ((uint64_t)len + 12 > n - pos)
            return csasn__errf("truncated PNG: chunk '%s' at byte %zu (%u bytes) runs past the end (%zu bytes)",
                               type, pos, len, n);
        const uint8_t *d = p + pos + 8;
        if (!memcmp(type, "IEND", 4))
            break;
        if (!memcmp(type, "IDAT", 4)) {
            if (idat_off + len > idat_alloc) {
                if (!idat_alloc)
                    idat_alloc = len > 4096 ? len : 4096;
                while (idat_off + len > idat_alloc)
                    idat_alloc *= 2;
            }
            idat_off += len;
            have_idat = 1;
        } else if (!memcmp(type, "tRNS", 4) && !have_idat) {
            trns = 1;
        } else if (!memcmp(type, "acTL", 4) && !have_idat) {
            actl = 1;
        } else if (!memcmp(type, "fcTL", 4) && !have_idat && !fctl) {
            fctl = d;
            fctl_first = len >= 26;
        } else if (!memcmp(type, "eXIf", 4)) {
            /* libpng (the browsers) and PIL read the first eXIf before the
             * image data; one after it is not read the same way by all. */
            if (have_idat)
                return "unsupported PNG: an eXIf (orientation) chunk after the image data";
            if (!exif) {
                int o = csasn__exif_orientation(d, len);
                hd->orientation = o ? o : 1;
                exif = 1;
            }
        }
        pos += (size_t)len + 12;
    }
    if (!have_idat)
        return "corrupt PNG: no image data (IDAT chunk)";
    /* APNG: browsers show the animation, whose first frame is the default
     * image (IDAT) only when an fcTL precedes it; otherwise the first frame is
     * in fdAT chunks, which stb_image ignores: it would analyse a picture the
     * page never shows. */
    if (actl) {
        if (!fctl)
            return "unsupported APNG: the default image is not part of the animation (its first frame is stored "
                   "in fdAT chunks, which this engine does not decode)";
        if (!fctl_first || be32(fctl + 4) != pw || be32(fctl + 8) != ph || be32(fctl + 12) || be32(fctl + 16))
            return "corrupt APNG: the first frame does not cover the whole image";
    }

    /* stb_image's memory (stbi__parse_png_file): the IDAT bytes, the inflated
     * data (first sized R as below, doubled when it does not fit: interlaced
     * images need a little more than R), the output pixels (plus, interlaced,
     * one pass at a time; palette: the indices, then the expanded colours). */
    int img_n = color == 3 ? 1 : (color & 2 ? 3 : 1) + (color & 4 ? 1 : 0);
    uint64_t W = pw, H = ph, bytes = depth == 16 ? 2 : 1;
    uint64_t R = (W * depth + 7) / 8 * H * (uint64_t)img_n + H, need = 0, maxpass = 0;
    int out_n = color != 3 && trns ? img_n + 1 : img_n, pal_n = trns ? 4 : 3;
    if (!lace) {
        need = ((uint64_t)img_n * W * depth + 7) / 8 * H + H;
    } else {
        for (int i = 0; i < 7; i++) {
            uint64_t xw, yh;
            adam7_pass(i, W, H, &xw, &yh);
            if (xw && yh) {
                need += (((uint64_t)img_n * xw * depth + 7) / 8 + 1) * yh;
                maxpass = max64(maxpass, xw * yh * (uint64_t)out_n * bytes);
            }
        }
    }
    uint64_t Z = R;
    while (Z < need)
        Z *= 2;
    hd->inflated = need;
    uint64_t out = W * H * (uint64_t)out_n * bytes;
    uint64_t inflate = idat_alloc + Z + (Z > R ? Z / 2 : 0);
    uint64_t build = Z + out + maxpass;
    uint64_t expand = color == 3 ? Z + W * H + W * H * (uint64_t)pal_n : 0;
    hd->mem = max64(inflate, max64(build, expand));
    /* The zlib buffer may grow once more than the image needs (a stream with
     * some bytes to spare still decodes, as in libpng), not further. */
    hd->max_block = max64(max64(idat_alloc, 2 * Z), max64(out, color == 3 ? W * H * (uint64_t)pal_n : 0));
    static const char *ct[7] = {"gray", "?", "RGB", "palette", "gray+alpha", "?", "RGBA"};
    snprintf(hd->what, sizeof hd->what, "%u-bit %s%s", depth, ct[color], lace ? ", interlaced" : "");
    return NULL;
}

/* ------------------------------------------------------------------ JPEG */

static const char *check_jpeg(const uint8_t *p, size_t n, image_header *hd)
{
    csasn__jpeg_info ji;
    const char *err = csasn__jpeg_check(p, n, &ji, 0);   /* headers; the scans' data before decoding */
    if (err)
        return err;
    hd->w = ji.w;
    hd->h = ji.h;
    hd->orientation = ji.orientation;
    hd->ycc_to_rgb = ji.ycc_to_rgb;
    /* stb_image's memory (stbi__process_frame_header, load_jpeg_image): one
     * plane per component over the padded MCU grid (+15 for alignment), int16
     * coefficients for a progressive file, a line buffer per component, the
     * 1- or 3-channel output; and its decoder state. The walk's own masks
     * (1/16 of the coefficients) are freed before stb starts. */
    uint64_t mcux = ((uint64_t)ji.w + 8 * ji.hmax - 1) / (8 * ji.hmax);
    uint64_t mcuy = ((uint64_t)ji.h + 8 * ji.vmax - 1) / (8 * ji.vmax);
    uint64_t planes = 0, block = 0;
    for (int i = 0; i < ji.n_comp; i++) {
        uint64_t plane = mcux * (uint64_t)ji.hs[i] * 8 * mcuy * (uint64_t)ji.vs[i] * 8;
        planes += plane + 15 + (ji.progressive ? 2 * plane + 15 : 0);
        block = max64(block, (ji.progressive ? 2 : 1) * plane + 15);
        planes += (uint64_t)ji.w + 3;
    }
    uint64_t out = (uint64_t)(ji.n_comp >= 3 ? 3 : 1) * (uint64_t)ji.w * (uint64_t)ji.h + 1;
    hd->mem = sizeof(stbi__jpeg) + planes + out;
    hd->max_block = max64(block, max64(out, sizeof(stbi__jpeg)));
    snprintf(hd->what, sizeof hd->what, "%d components%s", ji.n_comp, ji.progressive ? ", progressive" : "");
    return NULL;
}

/* ------------------------------------------------------------------ BMP */

/* Uncompressed BMP: the pixel array (rows padded to 4 bytes) must fit. A
 * negative height is a top-down image (valid); INT_MIN has no magnitude.
 * Palette images (1, 4, 8 bit) are read here from the file; the others are
 * decoded by stb_image. */
static const char *check_bmp(const uint8_t *p, size_t n, image_header *hd)
{
    if (n < 18 || n - 14 < le32(p + 14))
        return csasn__errf("truncated BMP: header runs past the end (%zu bytes)", n);
    uint32_t hsz = le32(p + 14), off = le32(p + 10), comp = 0, used = 0;
    unsigned bpp;
    int top_down = 0;
    if (hsz == 12) {   /* OS/2 1.x core header: unsigned 16-bit sizes, never compressed */
        hd->w = le16(p + 18);
        hd->h = le16(p + 20);
        bpp = le16(p + 24);
    } else if (hsz >= 40) {
        int32_t sw = (int32_t)le32(p + 18), sh = (int32_t)le32(p + 22);
        if (sh == INT32_MIN)
            return "corrupt BMP: height -2147483648";
        hd->w = sw;
        hd->h = sh < 0 ? -(int64_t)sh : sh;
        top_down = sh < 0;
        bpp = le16(p + 28);
        comp = le32(p + 30);
        used = le32(p + 46);
    } else {
        return csasn__errf("corrupt BMP: unknown header size %u", hsz);
    }
    const char *err = csasn__image_check_dims("BMP", hd->w, hd->h);
    if (err)
        return err;
    /* stb_image reads the field as a signed int and rejects 1, 2 and >= 4:
     * a negative value (0xFFFFFF00) would pass as uncompressed, bypassing the
     * size check below. stb decodes only 0 (BI_RGB) and 3 (BI_BITFIELDS). */
    if (comp != 0 && comp != 3)
        return csasn__errf("unsupported BMP: compression %u (only uncompressed and bitfields)", comp);
    uint64_t stride = ((uint64_t)bpp * (uint64_t)hd->w + 31) / 32 * 4;
    uint64_t need = (uint64_t)off + stride * (uint64_t)hd->h;
    if (need > n)
        return csasn__errf("truncated BMP: pixel data ends at byte %llu past end %zu",
                           (unsigned long long)need, n);
    snprintf(hd->what, sizeof hd->what, "%u-bit", bpp);
    if (bpp == 1 || bpp == 4 || bpp == 8) {
        if (comp != 0)
            return csasn__errf("corrupt BMP: %u-bit palette image with bitfields compression", bpp);
        /* The palette lies between the headers and the pixels, 3 bytes an
         * entry after an OS/2 header, 4 after a Windows one; a Windows header
         * may say it uses fewer (biClrUsed). An index past the entries every
         * reader agrees on is refused: stb_image 2.27 would read it from an
         * uninitialised array, browsers as black. */
        uint64_t hdr = 14 + (uint64_t)hsz, step = hsz == 12 ? 3 : 4;
        uint64_t psize = off >= hdr ? (off - hdr) / step : 0, lim = 1u << bpp;
        if (hsz >= 40 && used && used < lim)
            lim = used;
        if (psize > lim)
            psize = lim;
        for (int64_t y = 0; y < hd->h; y++) {
            const uint8_t *row = p + off + (size_t)(stride * (uint64_t)y);
            for (int64_t x = 0; x < hd->w; x++) {
                unsigned v = bpp == 8 ? row[x]
                           : bpp == 4 ? (row[x >> 1] >> (x & 1 ? 0 : 4)) & 15
                                      : (row[x >> 3] >> (7 - (x & 7))) & 1;
                if (v >= psize)
                    return csasn__errf("corrupt BMP: pixel value %u at (%lld, %lld) is past the %llu-entry palette",
                                       v, (long long)x, (long long)(top_down ? y : hd->h - 1 - y),
                                       (unsigned long long)psize);
            }
        }
        hd->own = 1;
        hd->ras.kind = bpp == 8 ? PX_PAL8 : bpp == 4 ? PX_PAL4 : PX_PAL1;
        hd->ras.pal = p + hdr;
        hd->ras.pal_step = (int)step;
        hd->ras.scale = 255.0f;
        hd->ras.nc = 3;
        /* Rows are stored bottom-up unless the height is negative. */
        hd->ras.row0 = p + off + (top_down ? 0 : (size_t)(stride * (uint64_t)(hd->h - 1)));
        hd->ras.stride = top_down ? (ptrdiff_t)stride : -(ptrdiff_t)stride;
        return NULL;
    }
    /* stb_image (stbi__bmp_load): 3 or 4 bytes per pixel of output. */
    hd->mem = hd->max_block = 4 * (uint64_t)hd->w * (uint64_t)hd->h;
    return NULL;
}

/* ------------------------------------------------------------------ PNM */

/* Binary PNM (P5 gray, P6 RGB): header tokens (width, height, maxval) with
 * comments, one whitespace, then exactly w*h*channels samples of 1 byte
 * (maxval < 256) or 2 bytes, most significant first. Read in place: stb_image
 * 2.27 copies 16-bit samples without swapping them and ignores maxval. */
static const char *check_pnm(const uint8_t *p, size_t n, image_header *hd)
{
    if (p[1] != '5' && p[1] != '6') {
        static const char *name[8] = {"", "plain (ASCII) PBM", "plain (ASCII) PGM", "plain (ASCII) PPM",
                                      "binary PBM (1 bit)", "", "", "PAM"};
        return csasn__errf("unsupported PNM: %s (P%c); only binary PGM (P5) and PPM (P6) are supported",
                           name[p[1] - '0'], p[1]);
    }
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
    hd->w = (int64_t)v[0];
    hd->h = (int64_t)v[1];
    const char *err = csasn__image_check_dims("PNM", hd->w, hd->h);
    if (err)
        return err;
    if (v[2] < 1 || v[2] > 65535)
        return csasn__errf("corrupt PNM: maxval %llu (must be 1..65535)", (unsigned long long)v[2]);
    if (!(p[pos] == ' ' || (p[pos] >= 9 && p[pos] <= 13)))
        return csasn__errf("corrupt PNM: no whitespace after maxval at byte %zu", pos);
    pos++;   /* the single whitespace before the raster */
    unsigned nc = p[1] == '6' ? 3 : 1, maxval = (unsigned)v[2], bps = maxval > 255 ? 2 : 1;
    uint64_t samples = (uint64_t)hd->w * (uint64_t)hd->h * nc;
    uint64_t need = (uint64_t)pos + samples * bps;
    if (need > n)
        return csasn__errf("truncated PNM: pixel data ends at byte %llu past end %zu",
                           (unsigned long long)need, n);
    /* A sample over maxval has no meaning (netpbm refuses it). */
    if (maxval != 255 && maxval != 65535) {
        const uint8_t *s = p + pos;
        for (uint64_t i = 0; i < samples; i++) {
            unsigned x = bps == 2 ? (unsigned)s[2 * i] << 8 | s[2 * i + 1] : s[i];
            if (x > maxval)
                return csasn__errf("corrupt PNM: sample %u at byte %llu is over maxval %u", x,
                                   (unsigned long long)(pos + i * bps), maxval);
        }
    }
    hd->own = 1;
    hd->ras.row0 = p + pos;
    hd->ras.stride = (ptrdiff_t)((uint64_t)hd->w * nc * bps);
    hd->ras.kind = bps == 2 ? PX_U16BE : PX_U8;
    hd->ras.nc = (int)nc;
    hd->ras.scale = (float)maxval;
    snprintf(hd->what, sizeof hd->what, "maxval %u", maxval);
    return NULL;
}

/* ------------------------------------------------------------------ GIF */

/* The first image's LZW data, from its code-size byte at p[pos], walked as
 * stb_image decodes it (stbi__process_gif_raster: codes, table growth, code
 * size changes; the same errors) while counting the pixels each code yields.
 * stb outputs every code's whole chain, even once the frame is full, so a
 * stream that goes on past the frame costs it up to 4096 steps a code: such
 * data is refused, as is data that ends before the frame is complete (stb
 * would leave the rest black) or is far longer than the frame can need. */
static const char *check_lzw(const uint8_t *p, size_t n, size_t pos, uint64_t frame)
{
    unsigned cs = p[pos++];
    if (cs < 1 || cs > 8)
        return csasn__errf("corrupt GIF: LZW minimum code size %u (GIF allows 2 to 8)", cs);
    /* Even one clear code per pixel needs less than 3 bytes a pixel. */
    uint64_t max_bytes = 3 * frame + 1024, max_px = frame + 8192, px = 0, bytes = 0;
    uint16_t *len = malloc(8192 * sizeof *len);   /* pixels per table entry */
    if (!len)
        return "out of memory checking the GIF";
    int clear = 1 << cs, size = (int)cs + 1, mask = (1 << size) - 1, avail = clear + 2, old = -1, first = 1;
    for (int i = 0; i < clear; i++)
        len[i] = 1;
    uint32_t bits = 0;
    int valid = 0;
    size_t blk = 0;
    const char *err = NULL;
    for (;;) {
        if (valid < size) {
            if (blk == 0) {
                if (pos >= n) {
                    err = csasn__errf("truncated GIF: image data runs past the end (%zu bytes)", n);
                    break;
                }
                blk = p[pos++];
                if (blk == 0)
                    break;   /* data ends without an end code (stb accepts that) */
                if (blk > n - pos) {
                    err = csasn__errf("truncated GIF: image data runs past the end (%zu bytes)", n);
                    break;
                }
            }
            blk--;
            bits |= (uint32_t)p[pos++] << valid;
            valid += 8;
            if (++bytes > max_bytes) {
                err = csasn__errf("corrupt GIF: %llu bytes of LZW data for a %llu-pixel image",
                                  (unsigned long long)bytes, (unsigned long long)frame);
                break;
            }
            continue;
        }
        int code = (int)(bits & (uint32_t)mask);
        bits >>= size;
        valid -= size;
        if (code == clear) {
            size = (int)cs + 1;
            mask = (1 << size) - 1;
            avail = clear + 2;
            old = -1;
            first = 0;
        } else if (code == clear + 1) {
            /* end code: the rest of the sub-blocks must still be there */
            pos += blk;
            while (pos < n && p[pos] != 0) {
                size_t l = p[pos];
                if (l >= n - pos) {
                    pos = n;
                    break;
                }
                pos += l + 1;
            }
            if (pos >= n)
                err = csasn__errf("truncated GIF: image data runs past the end (%zu bytes)", n);
            break;
        } else if (code <= avail) {
            if (first) {
                err = "corrupt GIF: the LZW data does not start with a clear code";
                break;
            }
            if (old >= 0) {
                if (avail >= 8192) {
                    err = "corrupt GIF: too many LZW codes without a clear code";
                    break;
                }
                len[avail] = (uint16_t)(len[old] + 1);
                avail++;
            } else if (code == avail) {
                err = "corrupt GIF: illegal LZW code";
                break;
            }
            px += len[code];
            if (px > max_px) {
                err = csasn__errf("corrupt GIF: the LZW data goes on past the end of the %llu-pixel image",
                                  (unsigned long long)frame);
                break;
            }
            if ((avail & mask) == 0 && avail <= 0x0FFF) {
                size++;
                mask = (1 << size) - 1;
            }
            old = code;
        } else {
            err = "corrupt GIF: illegal LZW code";
            break;
        }
    }
    free(len);
    if (!err && px < frame)
        err = csasn__errf("truncated GIF: the image data ends after %llu of its %llu pixels",
                          (unsigned long long)px, (unsigned long long)frame);
    return err;
}

/* GIF: the logical screen size, then walk the blocks up to the first image
 * (the only frame decoded) and check its LZW data. */
static const char *check_gif(const uint8_t *p, size_t n, image_header *hd)
{
    if (n < 13)
        return csasn__errf("truncated GIF: %zu bytes, too short for the header", n);
    hd->w = le16(p + 6);
    hd->h = le16(p + 8);
    const char *err = csasn__image_check_dims("GIF", hd->w, hd->h);
    if (err)
        return err;
    size_t pos = 13;
    if (p[10] & 0x80)
        pos += 3u * (2u << (p[10] & 7));   /* global colour table */
    for (;;) {
        if (pos >= n)
            return csasn__errf("truncated GIF: data ends at byte %zu before the first image", n);
        uint8_t b = p[pos];
        if (b == 0x2C) {          /* descriptor, local colour table, LZW code size */
            if (n - pos < 10)
                return csasn__errf("truncated GIF: image descriptor at byte %zu runs past the end (%zu bytes)", pos, n);
            unsigned x = le16(p + pos + 1), y = le16(p + pos + 3), iw = le16(p + pos + 5), ih = le16(p + pos + 7);
            uint8_t fl = p[pos + 9];
            if (x + iw > hd->w || y + ih > hd->h)
                return csasn__errf("corrupt GIF: the first image (%ux%u at %u,%u) does not fit the %lldx%lld screen",
                                   iw, ih, x, y, (long long)hd->w, (long long)hd->h);
            if (!iw || !ih)
                return csasn__errf("corrupt GIF: the first image has no pixels (%ux%u)", iw, ih);
            pos += 10;
            if (fl & 0x80)
                pos += 3u * (2u << (fl & 7));
            if (pos >= n)
                return csasn__errf("truncated GIF: image data runs past the end (%zu bytes)", n);
            if ((err = check_lzw(p, n, pos, (uint64_t)iw * ih)) != NULL)
                return err;
            break;
        }
        if (b != 0x21)
            return csasn__errf("corrupt GIF: unexpected block 0x%02X at byte %zu before the first image", b, pos);
        pos += 2;                 /* extension: label, then sub-blocks; 0 ends */
        for (;;) {
            if (pos >= n)
                return csasn__errf("truncated GIF: extension data runs past the end (%zu bytes)", n);
            size_t len = p[pos++];
            if (len == 0)
                break;
            if (len > n - pos)
                return csasn__errf("truncated GIF: extension data runs past the end (%zu bytes)", n);
            pos += len;
        }
    }
    /* stb_image (stbi__gif_load_next): output, background and history for
     * the whole screen, 4 + 4 + 1 bytes a pixel. */
    uint64_t px = (uint64_t)hd->w * (uint64_t)hd->h;
    hd->mem = 9 * px;
    hd->max_block = 4 * px;
    return NULL;
}

/* ------------------------------------------------------------ gray rows */

/* Stored (sx, sy) of the upright pixel (ux, uy), EXIF orientation o of a
 * w x h stored image: sx = m[0] + m[1] ux + m[2] uy, sy = m[3] + m[4] ux + m[5] uy.
 * 2: mirrored, 3: turned 180, 4: flipped, 5: transposed, 6: stored turned
 * 90 degrees anticlockwise (shown turned clockwise), 7: transverse, 8: stored
 * turned clockwise. */
static void orient_map(int o, int64_t w, int64_t h, int64_t m[6])
{
    static const int8_t t[9][6] = {{0}, {0, 1, 0, 0, 0, 1}, {1, -1, 0, 0, 0, 1}, {1, -1, 0, 1, 0, -1},
                                   {0, 1, 0, 1, 0, -1}, {0, 0, 1, 0, 1, 0}, {0, 0, 1, 1, -1, 0},
                                   {1, 0, -1, 1, -1, 0}, {1, 0, -1, 0, 1, 0}};
    const int8_t *r = t[o >= 1 && o <= 8 ? o : 1];
    m[0] = r[0] * (w - 1);
    m[1] = r[1];
    m[2] = r[2];
    m[3] = r[3] * (h - 1);
    m[4] = r[4];
    m[5] = r[5];
}

/* Gray in [0,1]. 0.299/0.587/0.114 in float, in this order, exactly as
 * tools/preprocess.py computes them. Gray, gray + alpha, or a colour pixel
 * with R = G = B (gray stored as RGB or through a palette): the luma weights
 * sum to 1, so this is the same value without the rounding of the weighted
 * sum. */
static float luma(float r, float g, float b, float scale)
{
    if (r == g && g == b)
        return r / scale;
    return (0.299f * r + 0.587f * g + 0.114f * b) / scale;
}

/* out[i] = gray of upright pixel (ux0 + i, uy), i < cnt. */
static void gray_row(const raster *r, const int64_t m[6], int64_t ux0, int64_t uy, int cnt, float *out)
{
    int64_t sx = m[0] + m[1] * ux0 + m[2] * uy, sy = m[3] + m[4] * ux0 + m[5] * uy;
    const int64_t dx = m[1], dy = m[4];
    const float scale = r->scale;
    const int nc = r->nc;
    for (int i = 0; i < cnt; i++, sx += dx, sy += dy) {
        const uint8_t *row = r->row0 + (ptrdiff_t)sy * r->stride;
        float v;
        switch (r->kind) {
        case PX_U8: {
            const uint8_t *q = row + (size_t)sx * (size_t)nc;
            v = nc < 3 ? q[0] / scale : luma(q[0], q[1], q[2], scale);
            break;
        }
        case PX_U16: {
            const uint16_t *q = (const uint16_t *)(const void *)row + (size_t)sx * (size_t)nc;
            v = nc < 3 ? q[0] / scale : luma(q[0], q[1], q[2], scale);
            break;
        }
        case PX_U16BE: {
            const uint8_t *q = row + (size_t)sx * (size_t)nc * 2;
            float s0 = (float)(q[0] << 8 | q[1]);
            v = nc < 3 ? s0 / scale : luma(s0, (float)(q[2] << 8 | q[3]), (float)(q[4] << 8 | q[5]), scale);
            break;
        }
        default: {   /* palette: index -> B, G, R */
            unsigned k = r->kind == PX_PAL8 ? row[sx] : r->kind == PX_PAL4 ? (row[sx >> 1] >> (sx & 1 ? 0 : 4)) & 15
                                                                           : (row[sx >> 3] >> (7 - (sx & 7))) & 1;
            const uint8_t *e = r->pal + (size_t)k * (size_t)r->pal_step;
            v = luma(e[2], e[1], e[0], scale);
            break;
        }
        }
        out[i] = v;
    }
}

/* stb_image read the planes of this JPEG as R, G, B; they are Y, Cb, Cr.
 * Converted with the kernel stb uses for YCbCr files (stbi__setup_jpeg picks
 * it: the same result as if stb had taken the file for YCbCr). The kernel
 * writes a 4th byte after each pixel, so each row goes through a copy. */
static int ycc_to_rgb(uint8_t *pix, int w, int h)
{
    stbi__jpeg *j = malloc(sizeof *j);
    uint8_t *t = malloc(6 * (size_t)w + 1);   /* [3][w] planes, then one output row */
    if (!j || !t) {
        free(j);
        free(t);
        return 0;
    }
    stbi__setup_jpeg(j);
    for (int y = 0; y < h; y++) {
        uint8_t *row = pix + (size_t)y * 3 * (size_t)w;
        for (int x = 0; x < w; x++) {
            t[x] = row[3 * x];
            t[w + x] = row[3 * x + 1];
            t[2 * w + x] = row[3 * x + 2];
        }
        j->YCbCr_to_RGB_kernel(t + 3 * (size_t)w, t, t + w, t + 2 * (size_t)w, w, 3);
        memcpy(row, t + 3 * (size_t)w, 3 * (size_t)w);
    }
    free(j);
    free(t);
    return 1;
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


static const char *decode_error(const image_header *hd)
{
    const char *fmt = hd->fmt;
    if (budget.denied) {
        if (!strcmp(fmt, "PNG"))
            return csasn__errf("corrupt PNG: the image data inflates past the %llu bytes a %lldx%lld %s image "
                               "needs (a decompression bomb?)", (unsigned long long)hd->inflated,
                               (long long)hd->w, (long long)hd->h, hd->what);
        return csasn__errf("cannot decode %s image: it needs more memory than its header implies "
                           "(limit %u MiB)", fmt, (unsigned)(CSASN_MAX_DECODE_BYTES >> 20));
    }
    const char *why = stbi_failure_reason();
    return csasn__errf("cannot decode %s image: %s", fmt, why && *why ? why : "unknown error");
}

/* stb_image on a file check_<format> accepted: its view of the size must
 * agree with ours (BMP: stb reports a top-down image's height negative).
 * -> the pixels (ras describes them), or NULL and *err. */
static void *stb_decode(const uint8_t *p, size_t len, const image_header *hd, raster *ras, const char **err)
{
    int w = (int)hd->w, h = (int)hd->h, sw, sh, snc;
    if (!stbi_info_from_memory(p, (int)len, &sw, &sh, &snc)) {
        *err = csasn__errf("cannot read %s header: %s", hd->fmt, stbi_failure_reason());
        return NULL;
    }
    if (sh < 0 && !strcmp(hd->fmt, "BMP"))
        sh = -sh;
    if (sw != w || sh != h) {
        *err = csasn__errf("corrupt %s: header says %dx%d, decoder reads %dx%d", hd->fmt, w, h, sw, sh);
        return NULL;
    }
    int is16 = stbi_is_16_bit_from_memory(p, (int)len);
    int dw, dh, dn;
    void *pix = is16 ? (void *)stbi_load_16_from_memory(p, (int)len, &dw, &dh, &dn, 0)
                     : (void *)stbi_load_from_memory(p, (int)len, &dw, &dh, &dn, 0);
    if (!pix) {
        *err = decode_error(hd);
        return NULL;
    }
    if (dw != w || dh != h || dn < 1 || dn > 4) {
        stbi_image_free(pix);
        *err = csasn__errf("cannot decode %s image: header says %dx%d, decoded %dx%d", hd->fmt, w, h, dw, dh);
        return NULL;
    }
    if (hd->ycc_to_rgb && (dn != 3 || !ycc_to_rgb(pix, w, h))) {
        stbi_image_free(pix);
        *err = "out of memory converting the JPEG colours";
        return NULL;
    }
    ras->row0 = pix;
    ras->kind = is16 ? PX_U16 : PX_U8;
    ras->nc = dn;
    ras->scale = is16 ? 65535.0f : 255.0f;
    ras->stride = (ptrdiff_t)((size_t)w * (size_t)dn * (is16 ? 2 : 1));
    return pix;
}

const char *csasn__image_to_input(const void *bytes, size_t len, const csasn_roi *roi,
                                  int S, const float mean[3], const float std[3],
                                  float *out, int *iw, int *ih,
                                  const csasn__region_spec *spec, csasn__region *region)
{
    const uint8_t *p = bytes;
    memset(&last_stats, 0, sizeof last_stats);
    if (S <= 0 || S > 16384)
        return csasn__errf("bad input size %d", S);
    for (int c = 0; c < 3; c++)
        if (!(std[c] > 0.0f) || !isfinite(mean[c]) || !isfinite(std[c]))
            return csasn__errf("bad normalisation: mean[%d] = %g, std[%d] = %g", c, mean[c], c, std[c]);
    if (!p || len == 0)
        return "image is empty (0 bytes)";
    if (len > CSASN_MAX_IMAGE_BYTES)
        return csasn__errf("image is %zu bytes: over the %u MiB limit", len, (unsigned)(CSASN_MAX_IMAGE_BYTES >> 20));
    const char *fmt = format_name(p, len);
    if (!fmt)
        return "not an image: unrecognised format (supported: PNG, JPEG, BMP, GIF, binary PGM/PPM)";
    image_header hd;
    memset(&hd, 0, sizeof hd);
    hd.fmt = fmt;
    hd.orientation = 1;
    const char *err;
    if (!strcmp(fmt, "PNG")) err = check_png(p, len, &hd);
    else if (!strcmp(fmt, "JPEG")) err = check_jpeg(p, len, &hd);
    else if (!strcmp(fmt, "BMP")) err = check_bmp(p, len, &hd);
    else if (!strcmp(fmt, "PNM")) err = check_pnm(p, len, &hd);
    else err = check_gif(p, len, &hd);
    if (err)
        return err;
    /* stbi_info probes the formats in turn and allocates a JPEG and a GIF
     * decoder state (one after the other) whatever the file is. */
    if (!hd.own)
        hd.mem = max64(hd.mem, max64(sizeof(stbi__jpeg), sizeof(stbi__gif)));
    int w = (int)hd.w, h = (int)hd.h;

    /* Upright size: orientations 5..8 swap the sides. The ROI refers to the
     * upright image and is checked before decoding: a bad ROI costs nothing. */
    int turned = hd.orientation >= 5;
    int uw = turned ? h : w, uh = turned ? w : h;
    /* The region the model reads (region.h): [x0, x1) x [y0, y1), image
     * pixels in [ix0, ix1) x [iy0, iy1), fill elsewhere. */
    csasn__region g;
    if ((err = csasn__region_geometry(roi, uw, uh, spec, &g)) != NULL)
        return err;
    int x0 = g.x0, y0 = g.y0;
    int cw = g.x1 - g.x0, ch = g.y1 - g.y0;
    const float fill = spec ? spec->fill : 0.0f;

    /* Memory, from the header: the decoder's peak plus this function's own
     * buffers (the resize row, [ch][S] sums and weights; the JPEG colour fix). */
    double kx = ceil(2.0 * (cw > S ? (double)cw / S : 1.0)) + 2, ky = ceil(2.0 * (ch > S ? (double)ch / S : 1.0)) + 2;
    uint64_t mine = 4 * (uint64_t)cw + 8 * (uint64_t)ch * (uint64_t)S + (uint64_t)S * (16 + 8 * (uint64_t)(kx + ky)) +
                    (hd.ycc_to_rgb ? 6 * (uint64_t)w + 1 + sizeof(stbi__jpeg) : 0);
    last_stats.estimate = hd.mem;
    if (hd.mem + mine > CSASN_MAX_DECODE_BYTES)
        return csasn__errf("%s %dx%d (%s) needs about %llu MiB of memory to decode: over the %u MiB limit", fmt, w,
                           h, hd.what, (unsigned long long)((hd.mem + mine + (1u << 20) - 1) >> 20),
                           (unsigned)(CSASN_MAX_DECODE_BYTES >> 20));

    /* The JPEG's entropy-coded data, walked once the header has passed
     * every cheap check (the ROI, the memory). */
    csasn__jpeg_info ji;
    if (!strcmp(fmt, "JPEG") && (err = csasn__jpeg_check(p, len, &ji, 1)) != NULL)
        return err;
    raster ras = hd.ras;
    void *pix = NULL;
    if (!hd.own) {
        budget.cap_total = CSASN_MAX_DECODE_BYTES;
        budget.cap_block = (size_t)hd.max_block + 65536;   /* + stb's small state blocks */
        budget.live = budget.peak = 0;
        budget.denied = 0;
        pix = stb_decode(p, len, &hd, &ras, &err);
        last_stats.peak = budget.peak;
        budget.cap_total = budget.cap_block = SIZE_MAX;
        if (!pix)
            return err;
    }
    int64_t map[6];
    orient_map(hd.orientation, w, h, map);

    axis_weights ax = {0}, ay = {0};
    float *row = malloc(sizeof(float) * (size_t)cw);
    double *tmp = malloc(sizeof(double) * (size_t)ch * (size_t)S);   /* [ch][S] */
    err = NULL;
    if (!row || !tmp || !axis_init(&ax, cw, S) || !axis_init(&ay, ch, S)) {
        err = "out of memory preprocessing the image";
        goto done;
    }
    /* Horizontal pass, one region row at a time: [ch][cw] -> tmp[ch][S]. */
    for (int y = 0; y < ch; y++) {
        int uy = y0 + y, a = 0, b = 0;   /* row[a, b) shows the image */
        if (uy >= g.iy0 && uy < g.iy1) {
            a = g.ix0 - x0;
            b = g.ix1 - x0;
            gray_row(&ras, map, g.ix0, uy, b - a, row + a);
        }
        for (int i = 0; i < a; i++) row[i] = fill;
        for (int i = b; i < cw; i++) row[i] = fill;
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
    if (iw) *iw = uw;
    if (ih) *ih = uh;
    if (region) *region = g;
done:
    axis_free(&ax);
    axis_free(&ay);
    free(row);
    free(tmp);
    if (pix)
        stbi_image_free(pix);
    return err;
}

void csasn_decode_stats(uint64_t *estimate, uint64_t *peak)
{
    const csasn__image_stats *st = csasn__image_last_stats();
    if (estimate) *estimate = st->estimate;
    if (peak) *peak = st->peak;
}
