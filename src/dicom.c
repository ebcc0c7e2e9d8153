/* dicom.c - a DICOM Part 10 file read far enough to decode one frame (src/dicom.h).
 *
 * What an ultrasound machine or a PACS exports: the meta header, then the
 * dataset in Explicit or Implicit VR Little Endian (or deflated, inflated by
 * image.c), the pixel data native or encapsulated (RLE here, JPEG by image.c).
 * Only the attributes the engine needs are read; every other element is
 * skipped by its length, so nothing that identifies a patient is ever kept.
 * Every length is checked against the bytes that remain and against the
 * engine's limits before anything is allocated; a damaged file is an error
 * that says where and why.
 */
#include "dicom.h"
#include "error.h"
#include "image.h"   /* csasn__image_check_dims (image_limits.c) */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TAG(g, e) ((uint32_t)(g) << 16 | (uint32_t)(e))
#define TAG_ITEM       TAG(0xFFFE, 0xE000)
#define TAG_ITEM_END   TAG(0xFFFE, 0xE00D)
#define TAG_SEQ_END    TAG(0xFFFE, 0xE0DD)
#define TAG_PIXEL      TAG(0x7FE0, 0x0010)
#define TAG_REGIONS    TAG(0x0018, 0x6011)
#define UNDEFINED      0xFFFFFFFFu

static unsigned le16(const uint8_t *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* ------------------------------------------------------ transfer syntaxes */

enum { TS_IMPLICIT, TS_EXPLICIT, TS_DEFLATED, TS_JPEG, TS_RLE, TS_REFUSED };

static const struct {
    const char *uid, *name;
    int kind;
} ts_table[] = {
    {"1.2.840.10008.1.2", "Implicit VR Little Endian", TS_IMPLICIT},
    {"1.2.840.10008.1.2.1", "Explicit VR Little Endian", TS_EXPLICIT},
    {"1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", TS_DEFLATED},
    {"1.2.840.10008.1.2.5", "RLE Lossless", TS_RLE},
    {"1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", TS_JPEG},
    {"1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", TS_JPEG},
    {"1.2.840.10008.1.2.2", "Explicit VR Big Endian", TS_REFUSED},
    {"1.2.840.10008.1.2.1.98", "Encapsulated Uncompressed Explicit VR Little Endian", TS_REFUSED},
    {"1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", TS_REFUSED},
    {"1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction", TS_REFUSED},
    {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", TS_REFUSED},
    {"1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless", TS_REFUSED},
    {"1.2.840.10008.1.2.4.90", "JPEG 2000 (Lossless Only)", TS_REFUSED},
    {"1.2.840.10008.1.2.4.91", "JPEG 2000", TS_REFUSED},
    {"1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component (Lossless Only)", TS_REFUSED},
    {"1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component", TS_REFUSED},
    {"1.2.840.10008.1.2.4.94", "JPIP Referenced", TS_REFUSED},
    {"1.2.840.10008.1.2.4.95", "JPIP Referenced Deflate", TS_REFUSED},
    {"1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level", TS_REFUSED},
    {"1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level", TS_REFUSED},
    {"1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile / Level 4.1", TS_REFUSED},
    {"1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", TS_REFUSED},
    {"1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile / Level 4.2 (2D video)", TS_REFUSED},
    {"1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile / Level 4.2 (3D video)", TS_REFUSED},
    {"1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", TS_REFUSED},
    {"1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile / Level 5.1", TS_REFUSED},
    {"1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile / Level 5.1", TS_REFUSED},
    {"1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 (Lossless Only)", TS_REFUSED},
    {"1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)", TS_REFUSED},
    {"1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000", TS_REFUSED},
};

#define WHAT_TO_DO "export the images uncompressed (Explicit VR Little Endian) or as RLE Lossless, " \
                   "e.g. `gdcmconv --raw IN.dcm OUT.dcm` or `dcmdjpeg`/`dcmdjpls IN.dcm OUT.dcm`"

/* A string value without its padding (trailing spaces and NULs), as
 * printable ASCII (anything else becomes '?'), cut to cap - 1 bytes. */
static void get_str(const uint8_t *v, size_t len, char *out, size_t cap)
{
    while (len && (v[len - 1] == ' ' || v[len - 1] == 0))
        len--;
    size_t i = 0;
    while (i < len && v[i] == ' ')
        i++, v++, len--;
    size_t k = len < cap - 1 ? len : cap - 1;
    for (i = 0; i < k; i++)
        out[i] = v[i] >= 32 && v[i] < 127 ? (char)v[i] : '?';
    out[k] = 0;
}

const char *csasn__dicom_meta(const uint8_t *p, size_t n, csasn__dicom *d)
{
    memset(d, 0, sizeof *d);
    d->rows = d->cols = d->spp = d->bits_alloc = d->bits_stored = d->high_bit = -1;
    d->frames = d->planar = d->pixrep = -1;
    d->photo = -1;
    if (n < 132 || memcmp(p + 128, "DICM", 4))
        return "not a DICOM Part 10 file (no \"DICM\" after the 128-byte preamble)";
    /* The meta header: group 0002, always Explicit VR Little Endian. */
    size_t pos = 132;
    int have_ts = 0;
    while (pos + 8 <= n && le16(p + pos) == 0x0002) {
        unsigned elem = le16(p + pos + 2);
        char vr[3] = {(char)p[pos + 4], (char)p[pos + 5], 0};
        if (vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z')
            return csasn__errf("corrupt DICOM: meta header element (0002,%04X) at byte %zu has no valid VR", elem, pos);
        int long_vr = strstr("OB OD OF OL OV OW SQ SV UC UN UR UT UV", vr) != NULL;
        size_t hdr = long_vr ? 12 : 8;
        if (pos + hdr > n)
            return csasn__errf("truncated DICOM: meta header element (0002,%04X) at byte %zu runs past the end (%zu bytes)",
                               elem, pos, n);
        uint64_t len = long_vr ? le32(p + pos + 8) : le16(p + pos + 6);
        if (len == UNDEFINED || len > n - pos - hdr)
            return csasn__errf("truncated DICOM: meta header element (0002,%04X) at byte %zu: length %llu runs past "
                               "the end (%zu bytes)", elem, pos, (unsigned long long)len, n);
        if (elem == 0x0010) {
            get_str(p + pos + hdr, (size_t)len, d->ts_uid, sizeof d->ts_uid);
            have_ts = 1;
        }
        pos += hdr + (size_t)len;
    }
    if (!have_ts)
        return "corrupt DICOM: the meta header has no Transfer Syntax UID (0002,0010)";
    d->dataset_off = pos;
    int kind = -1;
    const char *name = NULL;
    for (size_t i = 0; i < sizeof ts_table / sizeof ts_table[0]; i++)
        if (!strcmp(d->ts_uid, ts_table[i].uid)) {
            kind = ts_table[i].kind;
            name = ts_table[i].name;
        }
    if (kind < 0)
        return csasn__errf("unsupported DICOM transfer syntax: unknown UID %s; " WHAT_TO_DO, d->ts_uid);
    if (kind == TS_REFUSED)
        return csasn__errf("unsupported DICOM transfer syntax: %s (%s); " WHAT_TO_DO, name, d->ts_uid);
    d->explicit_vr = kind != TS_IMPLICIT;
    d->deflated = kind == TS_DEFLATED;
    d->codec = kind == TS_JPEG ? CSASN__DCM_JPEG : kind == TS_RLE ? CSASN__DCM_RLE : CSASN__DCM_NATIVE;
    return NULL;
}

/* ------------------------------------------------------------- dataset */

typedef struct {
    const uint8_t *p;
    size_t n;
    csasn__dicom *d;
    int have_pixel;
    const char *err;
} ctx;

/* VRs whose explicit header has 2 reserved bytes and a 32-bit length. */
static int long_vr(const char vr[2])
{
    static const char list[][2] = {{'O', 'B'}, {'O', 'D'}, {'O', 'F'}, {'O', 'L'}, {'O', 'V'}, {'O', 'W'}, {'S', 'Q'},
                                   {'S', 'V'}, {'U', 'C'}, {'U', 'N'}, {'U', 'R'}, {'U', 'T'}, {'U', 'V'}};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (vr[0] == list[i][0] && vr[1] == list[i][1])
            return 1;
    return 0;
}

/* An element header at pos: tag, VR ("" implicit or item), value offset, length. */
typedef struct {
    uint32_t tag;
    char vr[3];
    size_t value;
    uint32_t len;
} elem;

static const char *read_header(const ctx *c, size_t pos, size_t end, int explicit_vr, elem *e)
{
    if (end - pos < 8)
        return csasn__errf("truncated DICOM: element header at dataset byte %zu runs past the end (%zu bytes)", pos, end);
    const uint8_t *q = c->p + pos;
    e->tag = TAG(le16(q), le16(q + 2));
    e->vr[0] = e->vr[1] = e->vr[2] = 0;
    if (!explicit_vr || (e->tag >> 16) == 0xFFFE) {
        e->len = le32(q + 4);
        e->value = pos + 8;
        return NULL;
    }
    if (q[4] < 'A' || q[4] > 'Z' || q[5] < 'A' || q[5] > 'Z')
        return csasn__errf("corrupt DICOM: element (%04X,%04X) at dataset byte %zu has no valid VR (bytes 0x%02X 0x%02X)",
                           e->tag >> 16, e->tag & 0xFFFF, pos, q[4], q[5]);
    e->vr[0] = (char)q[4];
    e->vr[1] = (char)q[5];
    if (long_vr(e->vr)) {
        if (end - pos < 12)
            return csasn__errf("truncated DICOM: element header at dataset byte %zu runs past the end (%zu bytes)", pos, end);
        e->len = le32(q + 8);
        e->value = pos + 12;
    } else {
        e->len = le16(q + 6);
        e->value = pos + 8;
    }
    return NULL;
}

/* Unsigned integer value: US/UL/SS/SL binary, IS/DS text; implicit VR
 * (no VR in the file) takes the size from the length. -1 if unreadable. */
static int64_t get_uint(const elem *e, const uint8_t *v)
{
    const char *vr = e->vr;
    if ((!vr[0] || !strcmp(vr, "US") || !strcmp(vr, "SS") || !strcmp(vr, "UN")) && e->len == 2)
        return le16(v);
    if ((!vr[0] || !strcmp(vr, "UL") || !strcmp(vr, "SL") || !strcmp(vr, "UN")) && e->len == 4)
        return le32(v);
    if (!strcmp(vr, "US") && e->len >= 2)
        return le16(v);
    if (!strcmp(vr, "UL") && e->len >= 4)
        return le32(v);
    if (!vr[0] || !strcmp(vr, "IS") || !strcmp(vr, "DS")) {
        char s[24];
        get_str(v, e->len, s, sizeof s);
        char *endp;
        long long x = strtoll(s, &endp, 10);
        if (endp == s || (*endp && *endp != '\\' && *endp != '.') || x < 0)
            return -1;
        return x > INT32_MAX ? INT32_MAX : x;
    }
    return -1;
}

/* The first two numbers of a DS (decimal string) value "a\b". */
static int get_ds2(const elem *e, const uint8_t *v, double out[2])
{
    char s[68];
    get_str(v, e->len, s, sizeof s);
    char *p = s, *endp;
    for (int i = 0; i < 2; i++) {
        out[i] = strtod(p, &endp);
        if (endp == p || !isfinite(out[i]) || out[i] <= 0)
            return 0;
        while (*endp == ' ')
            endp++;
        if (i == 0) {
            if (*endp != '\\')
                return 0;
            p = endp + 1;
        }
    }
    return 1;
}

static double get_fd(const elem *e, const uint8_t *v)
{
    if (e->len < 8)
        return NAN;
    uint64_t b = le64(v);
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

static const char *parse_items(ctx *c, const elem *seq, size_t limit, int depth, int explicit_vr, int regions,
                               size_t *next);

/* Elements from pos to end (an item of undefined length ends at its
 * delimitation item instead: *next gets the position after it). depth 0 is
 * the dataset itself; reg != NULL is an ultrasound region item. */
static const char *parse_elements(ctx *c, size_t pos, size_t end, int depth, int explicit_vr, int until_delim,
                                  csasn__us_region *reg, size_t *next)
{
    csasn__dicom *d = c->d;
    const char *err;
    for (;;) {
        if (pos == end) {
            if (until_delim)
                return csasn__errf("truncated DICOM: an item of undefined length has no end (%zu bytes)", end);
            *next = pos;
            return NULL;
        }
        elem e;
        if ((err = read_header(c, pos, end, explicit_vr, &e)) != NULL)
            return err;
        unsigned g = e.tag >> 16, el = e.tag & 0xFFFF;
        if (e.tag == TAG_ITEM_END) {
            if (!until_delim)
                return csasn__errf("corrupt DICOM: item delimiter outside an item at dataset byte %zu", pos);
            *next = e.value;
            return NULL;
        }
        if (e.tag == TAG_ITEM || e.tag == TAG_SEQ_END)
            return csasn__errf("corrupt DICOM: unexpected item tag (FFFE,%04X) at dataset byte %zu", el, pos);
        int is_sq = !strcmp(e.vr, "SQ") || (!e.vr[0] && (e.tag == TAG_REGIONS));
        if (e.len == UNDEFINED) {
            if (depth == 0 && e.tag == TAG_PIXEL) {
                /* Encapsulated pixel data: the offset table item, fragments, delimiter. */
                if (d->codec == CSASN__DCM_NATIVE)
                    return csasn__errf("corrupt DICOM: encapsulated pixel data in a file whose transfer syntax (%s) "
                                       "is not compressed", d->ts_uid);
                size_t q = e.value;
                elem it;
                int first = 1;
                for (;;) {
                    if ((err = read_header(c, q, end, 0, &it)) != NULL)
                        return csasn__errf("truncated DICOM: pixel data fragments run past the end (%zu bytes)", end);
                    if (it.tag == TAG_SEQ_END) {
                        if (first)
                            return "corrupt DICOM: encapsulated pixel data without its offset table item";
                        d->frag_len = q - (size_t)(d->frag0 - c->p);
                        q = it.value;
                        break;
                    }
                    if (it.tag != TAG_ITEM)
                        return csasn__errf("corrupt DICOM: pixel data fragment at dataset byte %zu is not an item "
                                           "(tag %04X,%04X)", q, it.tag >> 16, it.tag & 0xFFFF);
                    if (it.len == UNDEFINED || it.len > end - it.value)
                        return csasn__errf("truncated DICOM: pixel data fragment at dataset byte %zu (%u bytes) runs past "
                                           "the end (%zu bytes)", q, it.len, end);
                    if (first) {
                        d->bot = c->p + it.value;
                        d->bot_len = it.len;
                        d->frag0 = c->p + it.value + it.len;
                        first = 0;
                    } else {
                        d->n_fragments++;
                    }
                    q = it.value + it.len;
                }
                d->encapsulated = 1;
                d->pixel = d->frag0;
                d->pixel_len = d->frag_len;
                c->have_pixel = 1;
                pos = q;
                continue;
            }
            if (!is_sq && strcmp(e.vr, "UN") && e.vr[0])
                return csasn__errf("corrupt DICOM: element (%04X,%04X) at dataset byte %zu (VR %s) has undefined length",
                                   g, el, pos, e.vr);
            /* A sequence of undefined length; explicit UN of undefined
             * length is a sequence in Implicit VR (PS3.5 6.2.2). */
            int ex = !strcmp(e.vr, "UN") ? 0 : explicit_vr;
            if ((err = parse_items(c, &e, end, depth + 1, ex, depth == 0 && e.tag == TAG_REGIONS, &pos)) != NULL)
                return err;
            continue;
        }
        if (e.len > end - e.value)
            return csasn__errf("truncated DICOM: element (%04X,%04X) at dataset byte %zu: length %u runs past the end "
                               "(%zu bytes)", g, el, pos, e.len, end);
        if (e.len & 1)
            return csasn__errf("corrupt DICOM: element (%04X,%04X) at dataset byte %zu has an odd length (%u)", g, el, pos, e.len);
        const uint8_t *v = c->p + e.value;
        if (is_sq) {
            size_t after;
            if ((err = parse_items(c, &e, end, depth + 1, explicit_vr, depth == 0 && e.tag == TAG_REGIONS, &after)) != NULL)
                return err;
            pos = e.value + e.len;
            continue;
        }
        if (reg) {
            int64_t u = get_uint(&e, v);
            switch (e.tag) {
            case TAG(0x0018, 0x6012): reg->spatial = (int)u; break;
            case TAG(0x0018, 0x6014): reg->type = (int)u; break;
            case TAG(0x0018, 0x6018): reg->x0 = u; break;
            case TAG(0x0018, 0x601A): reg->y0 = u; break;
            case TAG(0x0018, 0x601C): reg->x1 = u; break;
            case TAG(0x0018, 0x601E): reg->y1 = u; break;
            case TAG(0x0018, 0x6024): reg->units_x = (int)u; break;
            case TAG(0x0018, 0x6026): reg->units_y = (int)u; break;
            case TAG(0x0018, 0x602C): reg->dx = get_fd(&e, v); break;
            case TAG(0x0018, 0x602E): reg->dy = get_fd(&e, v); break;
            default: break;
            }
        } else if (depth == 0) {
            int64_t u;
            switch (e.tag) {
            case TAG(0x0008, 0x0060): get_str(v, e.len, d->modality, sizeof d->modality); break;
            case TAG(0x0008, 0x0070): get_str(v, e.len, d->manufacturer, sizeof d->manufacturer); break;
            case TAG(0x0028, 0x0004): get_str(v, e.len, d->photometric, sizeof d->photometric); break;
            case TAG(0x0028, 0x0030): {
                double s[2];
                if (get_ds2(&e, v, s)) {   /* row spacing (y), column spacing (x) */
                    d->pixel_spacing[0] = s[1];
                    d->pixel_spacing[1] = s[0];
                }
                break;
            }
            case TAG(0x0018, 0x1164): {
                double s[2];
                if (!d->pixel_spacing[0] && get_ds2(&e, v, s)) {
                    d->pixel_spacing[0] = s[1];
                    d->pixel_spacing[1] = s[0];
                }
                break;
            }
            case TAG(0x0028, 0x0002): case TAG(0x0028, 0x0006): case TAG(0x0028, 0x0008):
            case TAG(0x0028, 0x0010): case TAG(0x0028, 0x0011): case TAG(0x0028, 0x0100):
            case TAG(0x0028, 0x0101): case TAG(0x0028, 0x0102): case TAG(0x0028, 0x0103):
                u = get_uint(&e, v);
                if (u < 0)
                    return csasn__errf("corrupt DICOM: element (%04X,%04X) has an unreadable value", g, el);
                if (u > INT32_MAX)
                    u = INT32_MAX;
                if (el == 0x0002) d->spp = (int)u;
                else if (el == 0x0006) d->planar = (int)u;
                else if (el == 0x0008) d->frames = (int)u;
                else if (el == 0x0010) d->rows = (int)u;
                else if (el == 0x0011) d->cols = (int)u;
                else if (el == 0x0100) d->bits_alloc = (int)u;
                else if (el == 0x0101) d->bits_stored = (int)u;
                else if (el == 0x0102) d->high_bit = (int)u;
                else d->pixrep = (int)u;
                break;
            case TAG(0x0028, 0x1101): case TAG(0x0028, 0x1102): case TAG(0x0028, 0x1103): {
                if (e.len != 6)
                    return csasn__errf("corrupt DICOM: palette descriptor (0028,%04X) is %u bytes, not 6", el, e.len);
                int k = (int)(el - 0x1101);
                d->lut_n[k] = le16(v) ? le16(v) : 65536;
                d->lut_first[k] = le16(v + 2);
                d->lut_bits[k] = le16(v + 4);
                break;
            }
            case TAG(0x0028, 0x1201): case TAG(0x0028, 0x1202): case TAG(0x0028, 0x1203): {
                int k = (int)(el - 0x1201);
                d->lut[k] = v;
                d->lut_len[k] = e.len;
                break;
            }
            case TAG(0x0028, 0x1221): case TAG(0x0028, 0x1222): case TAG(0x0028, 0x1223):
                return "unsupported DICOM: segmented palette colour lookup tables";
            case TAG(0x7FE0, 0x0001): d->eot = v; d->eot_len = e.len; break;
            case TAG(0x7FE0, 0x0002): d->eotl = v; d->eotl_len = e.len; break;
            case TAG(0x7FE0, 0x0008): case TAG(0x7FE0, 0x0009):
                return "unsupported DICOM: floating-point pixel data";
            case TAG_PIXEL:
                if (d->codec != CSASN__DCM_NATIVE)
                    return csasn__errf("corrupt DICOM: native pixel data in a file whose transfer syntax (%s) is "
                                       "compressed", d->ts_uid);
                d->pixel = v;
                d->pixel_len = e.len;
                c->have_pixel = 1;
                break;
            default: break;
            }
        }
        pos = e.value + e.len;
    }
}

/* The items of sequence seq (defined length: exactly its bytes; undefined:
 * up to the sequence delimiter). *next: the position after the sequence. */
static const char *parse_items(ctx *c, const elem *seq, size_t limit, int depth, int explicit_vr, int regions,
                               size_t *next)
{
    if (depth > CSASN__DICOM_MAX_DEPTH)
        return csasn__errf("unsupported DICOM: sequences nested more than %d deep", CSASN__DICOM_MAX_DEPTH);
    int undefined = seq->len == UNDEFINED;
    size_t pos = seq->value, end = undefined ? limit : seq->value + seq->len;
    const char *err;
    for (;;) {
        if (!undefined && pos == end) {
            *next = pos;
            return NULL;
        }
        elem it;
        if ((err = read_header(c, pos, end, 0, &it)) != NULL)
            return csasn__errf("truncated DICOM: sequence (%04X,%04X) runs past the end (%zu bytes)", seq->tag >> 16,
                               seq->tag & 0xFFFF, end);
        if (undefined && it.tag == TAG_SEQ_END) {
            *next = it.value;
            return NULL;
        }
        if (it.tag != TAG_ITEM)
            return csasn__errf("corrupt DICOM: sequence (%04X,%04X) holds tag (%04X,%04X) at dataset byte %zu instead of an item",
                               seq->tag >> 16, seq->tag & 0xFFFF, it.tag >> 16, it.tag & 0xFFFF, pos);
        csasn__us_region r = {-1, -1, -1, -1, -1, -1, -1, -1, 0.0, 0.0}, *reg = NULL;
        if (regions) {
            if (c->d->n_regions >= CSASN__DICOM_MAX_REGIONS)
                return csasn__errf("unsupported DICOM: more than %d ultrasound regions", CSASN__DICOM_MAX_REGIONS);
            reg = &r;
        }
        if (it.len == UNDEFINED) {
            err = parse_elements(c, it.value, end, depth, explicit_vr, 1, reg, &pos);
        } else {
            if (it.len > end - it.value)
                return csasn__errf("truncated DICOM: item at dataset byte %zu (%u bytes) runs past the end of its sequence",
                                   pos, it.len);
            err = parse_elements(c, it.value, it.value + it.len, depth, explicit_vr, 0, reg, &pos);
        }
        if (err)
            return err;
        if (reg)
            c->d->region[c->d->n_regions++] = r;
    }
}

uint64_t csasn__dicom_out_bytes(const csasn__dicom *d)
{
    int nc = d->photo == CSASN__PHOTO_MONO1 || d->photo == CSASN__PHOTO_MONO2 ? 1 : 3;
    int bytes = d->photo == CSASN__PHOTO_PALETTE ? (d->lut_bits[0] > 8 ? 2 : 1) : d->bits_alloc / 8;
    return (uint64_t)d->rows * (uint64_t)d->cols * (uint64_t)nc * (uint64_t)bytes;
}

/* Bytes of one native (or RLE-decoded) frame. */
static uint64_t frame_bytes(const csasn__dicom *d)
{
    uint64_t px = (uint64_t)d->rows * (uint64_t)d->cols, bps = (uint64_t)d->bits_alloc / 8;
    if (d->photo == CSASN__PHOTO_YBR_FULL_422 && d->codec == CSASN__DCM_NATIVE)
        return px * 2 * bps;
    return px * (uint64_t)d->spp * bps;
}

const char *csasn__dicom_parse(const uint8_t *ds, size_t n, csasn__dicom *d)
{
    ctx c = {ds, n, d, 0, NULL};
    size_t end;
    const char *err = parse_elements(&c, 0, n, 0, d->explicit_vr, 0, NULL, &end);
    if (err)
        return err;
    if (!c.have_pixel)
        return "DICOM file without pixel data (7FE0,0010): not an image";
    if (d->rows < 0 || d->cols < 0)
        return "corrupt DICOM: Rows (0028,0010) or Columns (0028,0011) missing";
    if ((err = csasn__image_check_dims("DICOM", d->cols, d->rows)) != NULL)
        return err;
    if (d->bits_alloc != 8 && d->bits_alloc != 16)
        return csasn__errf("unsupported DICOM: BitsAllocated %d (8 and 16 are decoded)", d->bits_alloc);
    if (d->bits_stored < 0)
        d->bits_stored = d->bits_alloc;
    if (d->high_bit < 0)
        d->high_bit = d->bits_stored - 1;
    if (d->bits_stored < 1 || d->bits_stored > d->bits_alloc || d->high_bit >= d->bits_alloc ||
        d->high_bit < d->bits_stored - 1)
        return csasn__errf("corrupt DICOM: BitsStored %d, HighBit %d with BitsAllocated %d", d->bits_stored,
                           d->high_bit, d->bits_alloc);
    if (d->pixrep > 0)
        return "unsupported DICOM: signed pixel data (PixelRepresentation 1); ultrasound images are unsigned";
    if (d->spp < 0)
        d->spp = 1;
    if (d->spp != 1 && d->spp != 3)
        return csasn__errf("unsupported DICOM: SamplesPerPixel %d (1 or 3 are decoded)", d->spp);
    static const char *names[] = {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR"};
    for (int i = 0; i < 6; i++)
        if (!strcmp(d->photometric, names[i]))
            d->photo = i;
    /* A JPEG frame's colours are the codec's: YBR_PARTIAL_* says the same as YBR_FULL_422 there. */
    if (d->photo < 0 && d->codec == CSASN__DCM_JPEG &&
        (!strcmp(d->photometric, "YBR_PARTIAL_422") || !strcmp(d->photometric, "YBR_PARTIAL_420")))
        d->photo = CSASN__PHOTO_YBR_FULL_422;
    if (d->photo < 0)
        return csasn__errf("unsupported DICOM: PhotometricInterpretation \"%s\"", d->photometric);
    int want = d->photo <= CSASN__PHOTO_MONO2 || d->photo == CSASN__PHOTO_PALETTE ? 1 : 3;
    if (d->spp != want)
        return csasn__errf("corrupt DICOM: %s with SamplesPerPixel %d", d->photometric, d->spp);
    if (d->planar < 0)
        d->planar = 0;
    if (d->planar > 1)
        return csasn__errf("corrupt DICOM: PlanarConfiguration %d", d->planar);
    if (d->photo >= CSASN__PHOTO_YBR_FULL && d->photo <= CSASN__PHOTO_YBR_FULL_422 && d->bits_alloc != 8 &&
        d->codec != CSASN__DCM_JPEG)
        return csasn__errf("unsupported DICOM: %d-bit %s", d->bits_alloc, d->photometric);
    if (d->photo == CSASN__PHOTO_YBR_FULL_422 && d->codec == CSASN__DCM_NATIVE && (d->cols & 1))
        return csasn__errf("corrupt DICOM: YBR_FULL_422 with an odd number of columns (%d)", d->cols);
    if (d->codec == CSASN__DCM_JPEG && d->bits_alloc != 8)
        return csasn__errf("unsupported DICOM: %d-bit JPEG (only 8-bit JPEG frames are decoded)", d->bits_alloc);
    if (d->codec == CSASN__DCM_JPEG && d->photo == CSASN__PHOTO_MONO1)
        return "unsupported DICOM: MONOCHROME1 JPEG frames";
    if (d->codec == CSASN__DCM_JPEG && d->photo == CSASN__PHOTO_PALETTE)
        return "unsupported DICOM: PALETTE COLOR JPEG frames";
    if (d->photo == CSASN__PHOTO_PALETTE) {
        for (int k = 0; k < 3; k++) {
            if (!d->lut_n[k] || !d->lut[k])
                return "corrupt DICOM: PALETTE COLOR without its lookup tables (0028,1101..1203)";
            if (d->lut_bits[k] != 8 && d->lut_bits[k] != 16)
                return csasn__errf("corrupt DICOM: palette entries of %u bits (8 or 16)", d->lut_bits[k]);
            if (d->lut_bits[k] != d->lut_bits[0] || d->lut_n[k] != d->lut_n[0])
                return "unsupported DICOM: palette lookup tables of different sizes";
            /* One entry per 16-bit word; 8-bit entries may also be packed two to a word. */
            if (d->lut_len[k] != 2 * (size_t)d->lut_n[k] && !(d->lut_bits[k] == 8 && d->lut_len[k] == d->lut_n[k] + (d->lut_n[k] & 1)))
                return csasn__errf("corrupt DICOM: palette data of %zu bytes for %u entries", d->lut_len[k], d->lut_n[k]);
        }
    }
    if (d->frames < 0)
        d->frames = 1;
    if (d->frames < 1)
        return "corrupt DICOM: NumberOfFrames 0";
    if (d->encapsulated) {
        if (d->n_fragments < 1)
            return "corrupt DICOM: encapsulated pixel data without fragments";
        if ((uint64_t)d->frames > d->n_fragments)
            return csasn__errf("corrupt DICOM: NumberOfFrames %d but only %zu pixel data fragments", d->frames,
                               d->n_fragments);
        if (d->bot_len && d->bot_len != 4 * (uint64_t)d->frames)
            return csasn__errf("corrupt DICOM: the Basic Offset Table has %zu bytes for %d frames", d->bot_len, d->frames);
        if (d->eot && (d->eot_len != 8 * (uint64_t)d->frames || !d->eotl || d->eotl_len != d->eot_len))
            return csasn__errf("corrupt DICOM: the Extended Offset Table has %zu bytes for %d frames", d->eot_len,
                               d->frames);
    } else {
        uint64_t fb = frame_bytes(d);
        if ((uint64_t)d->frames * fb > d->pixel_len)
            return csasn__errf("truncated DICOM: pixel data holds %zu bytes, %d frame%s of %dx%d (%s, %d-bit) need %llu",
                               d->pixel_len, d->frames, d->frames > 1 ? "s" : "", d->cols, d->rows, d->photometric,
                               d->bits_alloc, (unsigned long long)((uint64_t)d->frames * fb));
    }
    return NULL;
}

/* ------------------------------------------------------------- frames */

/* Item at q (within the fragments): its value and length. The fragment
 * walk in csasn__dicom_parse has checked every item already. */
static const uint8_t *fragment(const uint8_t *q, size_t *len)
{
    *len = le32(q + 4);
    return q + 8;
}

const char *csasn__dicom_frame_bytes(const csasn__dicom *d, int frame, const uint8_t **out, size_t *out_n,
                                     uint8_t **owned)
{
    *owned = NULL;
    const uint8_t *base = d->frag0, *end = d->frag0 + d->frag_len;
    size_t first = 0, last = d->n_fragments;   /* fragment indices [first, last) */
    int k = frame - 1;
    if (d->eot || d->bot_len) {
        /* Offset table: each frame's first fragment item, as an offset from
         * the first fragment item; the frame runs up to the next one's. */
        uint64_t off, nxt;
        if (d->eot) {
            off = le64(d->eot + 8 * (size_t)k);
            nxt = k + 1 < d->frames ? le64(d->eot + 8 * (size_t)k + 8) : d->frag_len;
        } else {
            off = le32(d->bot + 4 * (size_t)k);
            nxt = k + 1 < d->frames ? le32(d->bot + 4 * (size_t)k + 4) : d->frag_len;
        }
        const char *table = d->eot ? "Extended" : "Basic";
        if (d->eot)
            nxt = d->frag_len;   /* the lengths decide (below) */
        if (off >= d->frag_len || nxt > d->frag_len || nxt <= off)
            return csasn__errf("corrupt DICOM: the %s Offset Table puts frame %d at bytes %llu..%llu of %zu bytes of "
                               "fragments", table, frame, (unsigned long long)off, (unsigned long long)nxt, d->frag_len);
        first = last = (size_t)-1;
        size_t i = 0;
        const uint8_t *r = base;
        for (; r < end; i++) {
            if ((uint64_t)(r - base) == off)
                first = i;
            if ((uint64_t)(r - base) == nxt)
                last = i;
            size_t l;
            fragment(r, &l);
            r += 8 + l;
        }
        if ((uint64_t)(r - base) == nxt)
            last = i;
        if (d->eot && first != (size_t)-1) {
            /* The Extended table also gives the frame's length: its fragments are those that hold it. */
            uint64_t len = le64(d->eotl + 8 * (size_t)k), have = 0;
            const uint8_t *q = base;
            last = 0;
            for (size_t j = 0; q < end; j++) {
                size_t l;
                fragment(q, &l);
                if (j >= first) {
                    if (have >= len)
                        break;
                    have += l;
                    last = j + 1;
                }
                q += 8 + l;
            }
            if (have < len)
                return csasn__errf("corrupt DICOM: the Extended Offset Table gives frame %d %llu bytes, its fragments "
                                   "hold %llu", frame, (unsigned long long)len, (unsigned long long)have);
        }
        if (first == (size_t)-1 || last == (size_t)-1)
            return csasn__errf("corrupt DICOM: the %s Offset Table's offset for frame %d is not a fragment", table, frame);
    } else if (d->frames == 1) {
        first = 0;
        last = d->n_fragments;
    } else if ((size_t)d->frames == d->n_fragments) {
        first = (size_t)k;
        last = first + 1;
    } else if (d->codec == CSASN__DCM_JPEG) {
        /* No table: each frame starts with a JPEG start-of-image marker. */
        size_t i = 0, starts = 0;
        first = last = (size_t)-1;
        for (const uint8_t *r = base; r < end; i++) {
            size_t l;
            const uint8_t *v = fragment(r, &l);
            if (l >= 2 && v[0] == 0xFF && v[1] == 0xD8) {
                if ((int)starts == k)
                    first = i;
                if ((int)starts == k + 1)
                    last = i;
                starts++;
            }
            r += 8 + l;
        }
        if (starts != (size_t)d->frames)
            return csasn__errf("corrupt DICOM: %d frames in %zu fragments without an offset table, but %zu JPEG "
                               "images start in them", d->frames, d->n_fragments, starts);
        if (last == (size_t)-1)
            last = d->n_fragments;
    } else {
        return csasn__errf("corrupt DICOM: %d frames in %zu fragments without an offset table", d->frames,
                           d->n_fragments);
    }
    /* Fragments [first, last) -> one buffer (or a pointer when just one). */
    const uint8_t *r = base;
    for (size_t i = 0; i < first; i++) {
        size_t l;
        fragment(r, &l);
        r += 8 + l;
    }
    if (last == first + 1) {
        *out = fragment(r, out_n);
        return NULL;
    }
    size_t total = 0;
    const uint8_t *s = r;
    for (size_t i = first; i < last; i++) {
        size_t l;
        fragment(s, &l);
        total += l;
        s += 8 + l;
    }
    uint8_t *buf = malloc(total ? total : 1);
    if (!buf)
        return "out of memory joining the frame's fragments";
    size_t at = 0;
    for (size_t i = first; i < last; i++) {
        size_t l;
        const uint8_t *v = fragment(r, &l);
        memcpy(buf + at, v, l);
        at += l;
        r += 8 + l;
    }
    *owned = buf;
    *out = buf;
    *out_n = total;
    return NULL;
}

/* YBR_FULL -> RGB (PS3.3 C.7.6.3.1.2), in float32 and in the order pydicom
 * computes it (its matrix product, +0.5, floor, clip), so that both decode
 * the same bytes to the same pixels. */
static void ybr_to_rgb(unsigned y, unsigned cb, unsigned cr, uint8_t *out)
{
    const float g_cb = (float)(-0.114 * 1.772 / 0.587), g_cr = (float)(-0.299 * 1.402 / 0.587);
    float Y = (float)y, B = (float)cb - 128.0f, R = (float)cr - 128.0f;
    float v[3] = {Y + R * 1.402f, Y + B * g_cb + R * g_cr, Y + B * 1.772f};
    for (int i = 0; i < 3; i++) {
        float x = floorf(v[i] + 0.5f);
        out[i] = x <= 0.0f ? 0 : x >= 255.0f ? 255 : (uint8_t)x;
    }
}

const char *csasn__dicom_decode(const csasn__dicom *d, int frame, uint8_t **pix, int *nc_out, int *is16,
                                float *white)
{
    *pix = NULL;
    uint64_t fb = frame_bytes(d);
    const uint8_t *src;
    uint8_t *tmp = NULL;
    if (d->codec == CSASN__DCM_RLE) {
        const uint8_t *fp;
        size_t fn;
        uint8_t *owned;
        const char *err = csasn__dicom_frame_bytes(d, frame, &fp, &fn, &owned);
        if (err)
            return err;
        tmp = malloc((size_t)fb);
        if (!tmp) {
            free(owned);
            return "out of memory decoding the RLE frame";
        }
        err = csasn__rle_decode(fp, fn, d->rows, d->cols, d->spp, d->bits_alloc / 8, tmp);
        free(owned);
        if (err) {
            free(tmp);
            return err;
        }
        src = tmp;
    } else {
        src = d->pixel + (size_t)((uint64_t)(frame - 1) * fb);
    }
    /* RLE output is interleaved whatever PlanarConfiguration says (PS3.5 G.2). */
    int planar = d->codec == CSASN__DCM_RLE ? 0 : d->planar;
    size_t px = (size_t)d->rows * (size_t)d->cols;
    int bps = d->bits_alloc / 8, shift = d->high_bit + 1 - d->bits_stored;
    unsigned mask = (unsigned)((1u << d->bits_stored) - 1);
    int nc = d->spp == 3 || d->photo == CSASN__PHOTO_PALETTE ? 3 : 1;
    int out16 = d->photo == CSASN__PHOTO_PALETTE ? d->lut_bits[0] > 8 : bps == 2;
    uint8_t *out = malloc((size_t)csasn__dicom_out_bytes(d));
    if (!out) {
        free(tmp);
        return "out of memory decoding the DICOM frame";
    }
#define SAMPLE(i) (((bps == 2 ? le16(src + 2 * (size_t)(i)) : src[i]) >> shift) & mask)
    uint16_t *o16 = (uint16_t *)(void *)out;
    if (d->photo == CSASN__PHOTO_MONO1 || d->photo == CSASN__PHOTO_MONO2) {
        int inv = d->photo == CSASN__PHOTO_MONO1;
        for (size_t i = 0; i < px; i++) {
            unsigned v = SAMPLE(i);
            if (inv)
                v = mask - v;
            if (bps == 2) o16[i] = (uint16_t)v;
            else out[i] = (uint8_t)v;
        }
        *white = (float)mask;
    } else if (d->photo == CSASN__PHOTO_PALETTE) {
        unsigned n = d->lut_n[0];
        int packed = d->lut_len[0] != 2 * (size_t)n;
        for (size_t i = 0; i < px; i++) {
            unsigned v = SAMPLE(i);
            for (int c = 0; c < 3; c++) {
                unsigned k = v < d->lut_first[c] ? 0 : v - d->lut_first[c] >= n ? n - 1 : v - d->lut_first[c];
                unsigned e = packed ? d->lut[c][k] : le16(d->lut[c] + 2 * (size_t)k);
                if (out16) o16[3 * i + c] = (uint16_t)e;
                else out[3 * i + c] = (uint8_t)(e > 255 ? e >> 8 : e);
            }
        }
        *white = out16 ? 65535.0f : 255.0f;
    } else if (d->photo == CSASN__PHOTO_YBR_FULL_422 && d->codec == CSASN__DCM_NATIVE) {
        /* Y0 Y1 Cb Cr for each pair of pixels (PS3.3 C.7.6.3.1.2). */
        for (size_t i = 0; i < px; i += 2) {
            const uint8_t *q = src + 2 * i;
            ybr_to_rgb(q[0] & mask, q[2] & mask, q[3] & mask, out + 3 * i);
            ybr_to_rgb(q[1] & mask, q[2] & mask, q[3] & mask, out + 3 * i + 3);
        }
        *white = 255.0f;
    } else {
        int ybr = d->photo != CSASN__PHOTO_RGB;
        for (size_t i = 0; i < px; i++) {
            unsigned s[3];
            for (int c = 0; c < 3; c++)
                s[c] = SAMPLE(planar ? (size_t)c * px + i : 3 * i + (size_t)c);
            if (ybr) {
                ybr_to_rgb(s[0], s[1], s[2], out + 3 * i);
            } else {
                for (int c = 0; c < 3; c++) {
                    if (bps == 2) o16[3 * i + c] = (uint16_t)s[c];
                    else out[3 * i + c] = (uint8_t)s[c];
                }
            }
        }
        *white = ybr ? 255.0f : (float)mask;
    }
#undef SAMPLE
    free(tmp);
    *pix = out;
    *nc_out = nc;
    *is16 = out16;
    return NULL;
}

/* ------------------------------------------------------------- regions */

int csasn__dicom_spacing(const csasn__dicom *d, int64_t x0, int64_t y0, int64_t x1, int64_t y1, double mm[2])
{
    mm[0] = mm[1] = 0.0;
    if (d->n_regions) {
        int found = 0;
        for (int i = 0; i < d->n_regions; i++) {
            const csasn__us_region *r = &d->region[i];
            if (r->x0 < 0 || r->y0 < 0 || r->x1 < r->x0 || r->y1 < r->y0)
                continue;
            if (!(x0 >= r->x0 && y0 >= r->y0 && x1 - 1 <= r->x1 && y1 - 1 <= r->y1))
                continue;
            /* A region that holds the ROI but is not calibrated in cm on both
             * axes makes the size unknown: a wrong mm is worse than none. */
            if (r->units_x != 3 || r->units_y != 3 || !(r->dx > 0) || !(r->dy > 0) || !isfinite(r->dx) ||
                !isfinite(r->dy))
                return 0;
            double sx = 10.0 * r->dx, sy = 10.0 * r->dy;
            if (found && (fabs(sx - mm[0]) > 1e-9 * sx || fabs(sy - mm[1]) > 1e-9 * sy))
                return 0;
            mm[0] = sx;
            mm[1] = sy;
            found = 1;
        }
        if (!found)
            mm[0] = mm[1] = 0.0;
        return found;
    }
    if (d->pixel_spacing[0] > 0 && d->pixel_spacing[1] > 0) {
        mm[0] = d->pixel_spacing[0];
        mm[1] = d->pixel_spacing[1];
        return 1;
    }
    return 0;
}

int csasn__dicom_tissue_region(const csasn__dicom *d, int64_t *x0, int64_t *y0, int64_t *x1, int64_t *y1)
{
    int64_t best = 0;
    for (int i = 0; i < d->n_regions; i++) {
        const csasn__us_region *r = &d->region[i];
        if (r->type != 1 || r->spatial != 1 || r->x0 < 0 || r->y0 < 0 || r->x1 < r->x0 || r->y1 < r->y0)
            continue;
        int64_t a0 = r->x0, b0 = r->y0, a1 = r->x1 + 1, b1 = r->y1 + 1;
        if (a1 > d->cols) a1 = d->cols;
        if (b1 > d->rows) b1 = d->rows;
        if (a0 >= a1 || b0 >= b1)
            continue;
        int64_t area = (a1 - a0) * (b1 - b0);
        if (area > best) {
            best = area;
            *x0 = a0;
            *y0 = b0;
            *x1 = a1;
            *y1 = b1;
        }
    }
    return best > 0;
}

int csasn__dicom_colour_flow(const csasn__dicom *d, int64_t x0, int64_t y0, int64_t x1, int64_t y1)
{
    for (int i = 0; i < d->n_regions; i++) {
        const csasn__us_region *r = &d->region[i];
        if (r->type == 2 && r->x0 >= 0 && r->y0 >= 0 && r->x0 < x1 && r->x1 >= x0 && r->y0 < y1 && r->y1 >= y0)
            return 1;
    }
    return 0;
}
