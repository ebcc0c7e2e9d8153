/* jpeg.c - a JPEG walked and checked before stb_image decodes it (src/jpeg.h).
 *
 * stb_image 2.27 pads a scan that runs out of data with zero bits and carries
 * on (a file cut mid-scan with FF D9 appended decodes "fine", the rest of the
 * picture flat grey), and stops a scan early, silently, when a restart marker
 * is missing. Neither can be seen from outside stb, so this file decodes the
 * Huffman-coded data itself, without dequantising or transforming anything,
 * exactly as stb_image consumes it (same table construction, same block and
 * MCU order, same end-of-band runs and refinement rules), and requires every
 * bit stb will read to be in the file. Progressive refinement scans read one
 * correction bit per coefficient that is already non-zero, so a bit mask per
 * block (bit k = zig-zag position k) tracks which are.
 */
#include "jpeg.h"
#include "exif.h"
#include "error.h"
#include "image.h"    /* csasn__image_check_dims */

#include <stdlib.h>
#include <string.h>

/* Table-defining segments (DHT, DQT, DRI) per file: real files have a few per
 * scan; each costs stb a table rebuild. */
#define MAX_TABLE_SEGMENTS 1024

/* ------------------------------------------------------------ Huffman tables */

typedef struct {
    uint8_t counts[17];    /* counts[l]: number of codes of length l, 1..16 */
    uint8_t syms[256];
} dht_def;

typedef struct {
    uint16_t fast[512];    /* top 9 bits -> length << 8 | symbol; 0: a longer code */
    int32_t maxcode[17];   /* a code of length l is one iff its value < maxcode[l] */
    int32_t delta[17];     /* symbol index = code + delta[l] */
    const uint8_t *syms;
} huff;

/* Canonical codes as stb_image builds them (and refuses them). 0 on an
 * oversubscribed table. */
static int huff_build(huff *t, const dht_def *d)
{
    memset(t->fast, 0, sizeof t->fast);
    int32_t code = 0, k = 0;
    for (int l = 1; l <= 16; l++) {
        t->delta[l] = k - code;
        if (d->counts[l] && code + d->counts[l] - 1 >= (1 << l))
            return 0;
        for (int i = 0; i < d->counts[l]; i++, code++, k++)
            if (l <= 9)
                for (int j = 0; j < 1 << (9 - l); j++)
                    t->fast[(code << (9 - l)) + j] = (uint16_t)(l << 8 | d->syms[k]);
        t->maxcode[l] = code;
        code <<= 1;
    }
    t->syms = d->syms;
    return 1;
}

/* ------------------------------------------------------------ bit reader */

enum { E_CODE = -1, E_DATA = -2, E_BIG = -3 };

typedef struct {
    const uint8_t *p;
    size_t pos, n;
    uint64_t buf;          /* next bits, MSB first */
    int bits;              /* valid bits in buf */
    int stopped;           /* reached a marker (pos at its first FF) or the end of the file */
} bitreader;

/* Entropy-coded bytes: FF 00 is a data byte FF (fill FFs before the 00 are
 * dropped, as stb does); FF followed by anything else is a marker, where the
 * data ends. */
static void br_fill(bitreader *b)
{
    while (b->bits <= 56 && !b->stopped) {
        if (b->pos >= b->n) {
            b->stopped = 1;
            break;
        }
        unsigned c = b->p[b->pos];
        if (c == 0xFF) {
            size_t q = b->pos + 1;
            while (q < b->n && b->p[q] == 0xFF)
                q++;
            if (q >= b->n || b->p[q] != 0) {
                b->stopped = 1;
                break;
            }
            b->pos = q + 1;
        } else {
            b->pos++;
        }
        b->buf |= (uint64_t)c << (56 - b->bits);
        b->bits += 8;
    }
}

/* The next n bits into *v (when v is not NULL), consumed; 0 if the data ends first. */
static int br_get(bitreader *b, int n, unsigned *v)   /* 1 <= n <= 16, or <= 32 without v */
{
    if (b->bits < n)
        br_fill(b);
    if (b->bits < n)
        return 0;
    if (v)
        *v = (unsigned)(b->buf >> (64 - n));
    b->buf <<= n;
    b->bits -= n;
    return 1;
}

static int br_skip(bitreader *b, int n)   /* n <= 32 */
{
    return br_get(b, n, NULL);
}

/* -> symbol, E_CODE (no such code) or E_DATA (the data ends inside it) */
static int br_huff(bitreader *b, const huff *h)
{
    if (b->bits < 16)
        br_fill(b);
    unsigned peek = (unsigned)(b->buf >> 48), f = h->fast[peek >> 7];
    int len, sym;
    if (f) {
        len = (int)(f >> 8);
        sym = (int)(f & 255);
    } else {
        for (len = 10; len <= 16 && (int32_t)(peek >> (16 - len)) >= h->maxcode[len]; len++)
            ;
        if (len > 16)
            return b->bits >= 16 ? E_CODE : E_DATA;
        sym = h->syms[(int32_t)(peek >> (16 - len)) + h->delta[len]];
    }
    if (len > b->bits)
        return E_DATA;
    b->buf <<= len;
    b->bits -= len;
    return sym;
}

/* ------------------------------------------------------------ blocks */

/* Sequential (baseline or extended) block: DC difference, then AC run/size
 * codes up to end-of-block or position 63. */
static int blk_seq(bitreader *b, const huff *dc, const huff *ac)
{
    int t = br_huff(b, dc);
    if (t < 0)
        return t;
    if (t > 15)
        return E_CODE;
    if (t && !br_skip(b, t))
        return E_DATA;
    int k = 1;
    do {
        int rs = br_huff(b, ac);
        if (rs < 0)
            return rs;
        int s = rs & 15, r = rs >> 4;
        if (s == 0) {
            if (rs != 0xF0)
                break;
            k += 16;
        } else {
            k += r;
            if (!br_skip(b, s))
                return E_DATA;
            k++;
        }
    } while (k < 64);
    return 0;
}

static int blk_dc_first(bitreader *b, const huff *dc)
{
    int t = br_huff(b, dc);
    if (t < 0)
        return t;
    if (t > 15)
        return E_CODE;
    return t && !br_skip(b, t) ? E_DATA : 0;
}

/* First AC scan of a band: run/size codes, end-of-band runs across blocks.
 * stb stores a coefficient past position 63 (a run overshooting the band)
 * at 63, so that is where its bit goes. */
static int blk_ac_first(bitreader *b, const huff *ac, int ss, int se, int al, uint64_t *nz, unsigned *eobrun)
{
    if (*eobrun) {
        (*eobrun)--;
        return 0;
    }
    int k = ss;
    do {
        int rs = br_huff(b, ac);
        if (rs < 0)
            return rs;
        int s = rs & 15, r = rs >> 4;
        if (s == 0) {
            if (r < 15) {
                unsigned extra = 0;
                if (r && !br_get(b, r, &extra))
                    return E_DATA;
                *eobrun = (1u << r) + extra - 1;
                break;
            }
            k += 16;
        } else {
            k += r;
            /* stb keeps coefficients in int16: a larger one would wrap (to 0
             * even) and change which positions later scans refine. */
            if (s + al > 15)
                return E_BIG;
            if (!br_skip(b, s))
                return E_DATA;
            *nz |= 1ull << (k < 64 ? k : 63);
            k++;
        }
    } while (k <= se);
    return 0;
}

/* One correction bit for every non-zero coefficient of the band. */
static int skip_corrections(bitreader *b, uint64_t nz, int ss, int se)
{
    uint64_t band = (se == 63 ? ~0ull : (1ull << (se + 1)) - 1) & ~((1ull << ss) - 1);
    int bits = __builtin_popcountll(nz & band);
    for (; bits > 16; bits -= 16)
        if (!br_skip(b, 16))
            return E_DATA;
    return br_skip(b, bits) ? 0 : E_DATA;
}

/* Refinement AC scan: new coefficients of magnitude 1 (size code 1 and a sign
 * bit), runs counted over the coefficients that are still zero, a correction
 * bit for each one that is not. */
static int blk_ac_refine(bitreader *b, const huff *ac, int ss, int se, uint64_t *nz, unsigned *eobrun)
{
    if (*eobrun) {
        (*eobrun)--;
        return skip_corrections(b, *nz, ss, se);
    }
    int k = ss;
    do {
        int rs = br_huff(b, ac);
        if (rs < 0)
            return rs;
        int s = rs & 15, r = rs >> 4, fresh = 0;
        if (s == 0) {
            if (r < 15) {
                unsigned extra = 0;
                if (r && !br_get(b, r, &extra))
                    return E_DATA;
                *eobrun = (1u << r) + extra - 1;
                r = 64;   /* the rest of this block: corrections only */
            }
        } else {
            if (s != 1)
                return E_CODE;
            if (!br_skip(b, 1))
                return E_DATA;
            fresh = 1;
        }
        while (k <= se) {
            int kk = k++;
            if (*nz >> kk & 1) {
                if (!br_skip(b, 1))
                    return E_DATA;
            } else {
                if (r == 0) {
                    if (fresh)
                        *nz |= 1ull << kk;
                    break;
                }
                r--;
            }
        }
    } while (k <= se);
    return 0;
}

/* ------------------------------------------------------------ file walk */

typedef struct {
    int id, h, v;
    int bw, bh;            /* blocks of the component's own (non-interleaved) grid */
    int cw, chh;           /* blocks of the padded MCU grid stb allocates */
    uint64_t *nz;          /* progressive only: [chh][cw] non-zero masks */
    unsigned scans;
    unsigned refined;      /* coefficient positions of its AC refinement scans */
} comp_info;

typedef struct {
    comp_info c[4];
    int nc, progressive, mcux, mcuy;
    dht_def dht[2][4];     /* [DC, AC][table id] */
    unsigned defined;      /* bit 4 * class + id */
    unsigned restart;      /* DRI interval, 0 = none */
    unsigned scans;
    int headers_only;      /* first pass: markers and headers, no entropy-coded data */
} jpeg_state;

static const char *frame_header(jpeg_state *js, csasn__jpeg_info *info, const uint8_t *p, size_t pos, size_t seg,
                                uint8_t m)
{
    if (seg < 8)
        return csasn__errf("corrupt JPEG: frame header at byte %zu is too short", pos);
    const uint8_t *f = p + pos + 4;
    int64_t h = (int64_t)f[1] << 8 | f[2], w = (int64_t)f[3] << 8 | f[4];
    const char *err = csasn__image_check_dims("JPEG", w, h);
    if (err)
        return err;
    if (f[0] == 12)
        return "unsupported JPEG variant (12-bit samples): only 8-bit JPEG is supported";
    if (f[0] != 8)
        return csasn__errf("corrupt JPEG: %u-bit samples", f[0]);
    int nc = f[5];
    if (nc != 1 && nc != 3 && nc != 4)
        return csasn__errf("unsupported JPEG: %d components (only 1, 3 or 4)", nc);
    if (seg != 8 + 3 * (size_t)nc)
        return csasn__errf("corrupt JPEG: frame header at byte %zu has the wrong length", pos);
    info->w = (int)w;
    info->h = (int)h;
    info->n_comp = js->nc = nc;
    info->progressive = js->progressive = m == 0xC2;
    info->hmax = info->vmax = 1;
    for (int i = 0; i < nc; i++) {
        const uint8_t *c = f + 6 + 3 * i;
        js->c[i].id = c[0];
        info->hs[i] = js->c[i].h = c[1] >> 4;
        info->vs[i] = js->c[i].v = c[1] & 15;
        if (js->c[i].h < 1 || js->c[i].h > 4 || js->c[i].v < 1 || js->c[i].v > 4 || c[2] > 3)
            return csasn__errf("corrupt JPEG: component %d has sampling %dx%d, quantisation table %u", i,
                               js->c[i].h, js->c[i].v, c[2]);
        if (js->c[i].h > info->hmax) info->hmax = js->c[i].h;
        if (js->c[i].v > info->vmax) info->vmax = js->c[i].v;
    }
    js->mcux = (int)((w + 8 * info->hmax - 1) / (8 * info->hmax));
    js->mcuy = (int)((h + 8 * info->vmax - 1) / (8 * info->vmax));
    for (int i = 0; i < nc; i++) {
        comp_info *c = &js->c[i];
        /* stb_image resamples only integer ratios */
        if (info->hmax % c->h || info->vmax % c->v)
            return csasn__errf("unsupported JPEG: component %d is subsampled %dx%d against %dx%d (not an integer ratio)",
                               i, c->h, c->v, info->hmax, info->vmax);
        int64_t cx = (w * c->h + info->hmax - 1) / info->hmax, cy = (h * c->v + info->vmax - 1) / info->vmax;
        c->bw = (int)((cx + 7) / 8);
        c->bh = (int)((cy + 7) / 8);
        c->cw = js->mcux * c->h;
        c->chh = js->mcuy * c->v;
        if (js->progressive && !js->headers_only) {
            c->nz = calloc((size_t)c->cw * (size_t)c->chh, sizeof *c->nz);
            if (!c->nz)
                return "out of memory checking the JPEG";
        }
    }
    return NULL;
}

static const char *scan_error(int e, unsigned scan, uint64_t mcu, uint64_t mcus)
{
    if (e == E_DATA)
        return csasn__errf("truncated JPEG: the data of scan %u ends at MCU %llu of %llu", scan,
                           (unsigned long long)mcu, (unsigned long long)mcus);
    if (e == E_BIG)
        return csasn__errf("corrupt JPEG: scan %u codes a coefficient too large for 16 bits (MCU %llu)", scan,
                           (unsigned long long)mcu);
    return csasn__errf("corrupt JPEG: invalid Huffman code in scan %u (MCU %llu of %llu)", scan,
                       (unsigned long long)mcu, (unsigned long long)mcus);
}

/* After a restart interval: the rest of the current byte is padding, and the
 * next marker must be the restart marker due, with no data in between (stb
 * looks for it within its 24-bit look-ahead only, and otherwise ends the scan
 * there without an error). */
static const char *restart(bitreader *b, unsigned *due, unsigned scan, uint64_t mcu, uint64_t mcus)
{
    int pad = b->bits & 7;
    b->buf <<= pad;
    b->bits -= pad;
    if (!b->bits)
        br_fill(b);
    if (b->bits)
        return csasn__errf("corrupt JPEG: stray data before restart marker %u of scan %u", *due, scan);
    size_t q = b->pos;
    while (q < b->n && b->p[q] == 0xFF)
        q++;
    if (q >= b->n || b->p[q] < 0xD0 || b->p[q] > 0xD7)
        return csasn__errf("truncated JPEG: the data of scan %u ends at MCU %llu of %llu (restart marker missing)",
                           scan, (unsigned long long)mcu, (unsigned long long)mcus);
    if ((unsigned)(b->p[q] & 7) != *due)
        return csasn__errf("corrupt JPEG: restart marker %u in scan %u where %u was due", b->p[q] & 7, scan, *due);
    *due = (*due + 1) & 7;
    b->pos = q + 1;
    b->stopped = 0;
    b->buf = 0;
    return NULL;
}

/* Scan header at p[s0..] (after the length), data from p[data]. */
static const char *scan(jpeg_state *js, const uint8_t *p, size_t n, size_t s0, size_t seg, size_t data)
{
    unsigned no = ++js->scans;
    unsigned ns = p[s0];
    if (ns < 1 || ns > 4 || (int)ns > js->nc || seg != 6 + 2 * (size_t)ns)
        return csasn__errf("corrupt JPEG: scan header at byte %zu has %u components (frame: %d)", s0 - 4, ns, js->nc);
    int order[4];
    huff dc[4], ac[4];
    unsigned ss = p[s0 + 1 + 2 * ns], se = p[s0 + 2 + 2 * ns], ah = p[s0 + 3 + 2 * ns] >> 4,
             al = p[s0 + 3 + 2 * ns] & 15;
    if (js->progressive) {
        if (ss > se || se > 63 || ah > 13 || al > 13 || (ah && ah != al + 1))
            return csasn__errf("corrupt JPEG: scan %u has spectral range %u..%u, bits %u/%u", no, ss, se, ah, al);
        if (ss == 0 && se != 0)
            return csasn__errf("corrupt JPEG: scan %u mixes DC and AC coefficients", no);
        if (ss > 0 && ns != 1)
            return csasn__errf("corrupt JPEG: AC scan %u has %u components (progressive AC scans have one)", no, ns);
    } else {
        if (ss != 0 || ah != 0 || al != 0)
            return csasn__errf("corrupt JPEG: sequential scan %u has progressive parameters", no);
        se = 63;
    }
    int use_dc = !js->progressive || (ss == 0 && ah == 0), use_ac = !js->progressive || ss > 0;
    for (unsigned i = 0; i < ns; i++) {
        unsigned id = p[s0 + 1 + 2 * i], td = p[s0 + 2 + 2 * i] >> 4, ta = p[s0 + 2 + 2 * i] & 15;
        int c = 0;
        while (c < js->nc && (unsigned)js->c[c].id != id)
            c++;
        if (c == js->nc)
            return csasn__errf("corrupt JPEG: scan %u refers to component %u, which the frame does not have", no, id);
        order[i] = c;
        if (++js->c[c].scans > CSASN__JPEG_MAX_SCANS_PER_COMPONENT)
            return csasn__errf("unsupported JPEG: component %d is in more than %d scans (libjpeg's progression "
                               "uses 6; refused to bound the decoding time)",
                               c, CSASN__JPEG_MAX_SCANS_PER_COMPONENT);
        if (js->progressive && ss > 0 && ah > 0 &&
            (js->c[c].refined += se - ss + 1) > CSASN__JPEG_MAX_REFINED_PER_COMPONENT)
            return csasn__errf("unsupported JPEG: the refinement scans of component %d cover more than %d "
                               "coefficient positions (4 passes; libjpeg's progression makes 2; refused to bound "
                               "the decoding time)", c, CSASN__JPEG_MAX_REFINED_PER_COMPONENT);
        /* A table the scan decodes with must have been defined: stb_image
         * 2.27 does not zero its tables and would decode with whatever the
         * memory holds. */
        if (use_dc && (td > 3 || !(js->defined >> td & 1)))
            return csasn__errf("corrupt JPEG: scan at byte %zu uses Huffman table DC%u, which is not defined",
                               s0 - 4, td);
        if (use_ac && (ta > 3 || !(js->defined >> (4 + ta) & 1)))
            return csasn__errf("corrupt JPEG: scan at byte %zu uses Huffman table AC%u, which is not defined",
                               s0 - 4, ta);
        if ((use_dc && !huff_build(&dc[i], &js->dht[0][td])) || (use_ac && !huff_build(&ac[i], &js->dht[1][ta])))
            return csasn__errf("corrupt JPEG: Huffman table of scan %u has more codes than its lengths allow", no);
    }

    if (js->headers_only)
        return NULL;
    bitreader b = {p, data, n, 0, 0, 0};
    comp_info *c0 = &js->c[order[0]];
    uint64_t mcus = ns == 1 ? (uint64_t)c0->bw * (uint64_t)c0->bh : (uint64_t)js->mcux * (uint64_t)js->mcuy;
    unsigned todo = js->restart ? js->restart : ~0u, due = 0, eobrun = 0;
    for (uint64_t m = 0; m < mcus; m++) {
        for (unsigned i = 0; i < ns; i++) {
            comp_info *c = &js->c[order[i]];
            int nh = ns == 1 ? 1 : c->h, nv = ns == 1 ? 1 : c->v;
            uint64_t bx = ns == 1 ? m % (uint64_t)c->bw : m % (uint64_t)js->mcux * (uint64_t)c->h,
                     by = ns == 1 ? m / (uint64_t)c->bw : m / (uint64_t)js->mcux * (uint64_t)c->v;
            for (int y = 0; y < nv; y++)
                for (int x = 0; x < nh; x++) {
                    uint64_t *nz = c->nz ? &c->nz[(by + (uint64_t)y) * (uint64_t)c->cw + bx + (uint64_t)x] : NULL;
                    int e;
                    if (!js->progressive)
                        e = blk_seq(&b, &dc[i], &ac[i]);
                    else if (ss == 0 && ah == 0) {
                        e = blk_dc_first(&b, &dc[i]);
                        *nz = 0;   /* stb clears the whole block on a first DC scan */
                    } else if (ss == 0)
                        e = br_skip(&b, 1) ? 0 : E_DATA;
                    else if (ah == 0)
                        e = blk_ac_first(&b, &ac[i], (int)ss, (int)se, (int)al, nz, &eobrun);
                    else
                        e = blk_ac_refine(&b, &ac[i], (int)ss, (int)se, nz, &eobrun);
                    if (e)
                        return scan_error(e, no, m, mcus);
                }
        }
        if (--todo == 0 && m + 1 < mcus) {
            const char *err = restart(&b, &due, no, m + 1, mcus);
            if (err)
                return err;
            todo = js->restart;
            eobrun = 0;
        }
    }
    return NULL;
}

static const char *walk(jpeg_state *js, const uint8_t *p, size_t n, csasn__jpeg_info *info)
{
    /* Colour: stb_image's rule and libjpeg's differ (see the end). libjpeg
     * decides from the markers before the first scan, stb from all of them. */
    int stb_jfif = 0, stb_adobe = -1, lj_jfif = 0, lj_adobe = -1, tables = 0, have_exif = 0;
    size_t pos = 2;
    info->orientation = 1;
    for (;;) {
        while (pos + 1 < n && p[pos] == 0xFF && p[pos + 1] == 0xFF)
            pos++;   /* fill bytes */
        if (pos + 2 > n)
            return csasn__errf("truncated JPEG: no end-of-image marker in %zu bytes", n);
        if (p[pos] != 0xFF)
            return csasn__errf("corrupt JPEG: expected a marker at byte %zu", pos);
        uint8_t m = p[pos + 1];
        if (m == 0xD9)
            break;
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
        const uint8_t *d = p + pos + 4;   /* segment data, seg - 2 bytes */
        size_t dl = seg - 2;
        const char *err = NULL;
        if (m == 0xC0 || m == 0xC1 || m == 0xC2) {
            if (js->nc)
                return csasn__errf("corrupt JPEG: a second frame header at byte %zu", pos);
            if ((err = frame_header(js, info, p, pos, seg, m)) != NULL)
                return err;
        } else if (m == 0xC3 || m == 0xC7 || m == 0xCB || m == 0xCF || m == 0xF7) {
            return csasn__errf("unsupported JPEG variant (%s): only baseline and progressive JPEG are supported",
                               m == 0xF7 ? "JPEG-LS" : m == 0xC3 ? "lossless" : m == 0xC7 ? "hierarchical lossless"
                               : "lossless, arithmetic-coded");
        } else if (m == 0xC5 || m == 0xC6 || m == 0xDE || m == 0xDF) {
            return "unsupported JPEG variant (hierarchical): only baseline and progressive JPEG are supported";
        } else if ((m >= 0xC9 && m <= 0xCF) || m == 0xCC) {
            return "unsupported JPEG variant (arithmetic coding): only baseline and progressive JPEG are supported";
        } else if (m == 0xC8 || (m >= 0xF0 && m <= 0xFD)) {
            return csasn__errf("unsupported JPEG variant (extension marker 0x%02X at byte %zu)", m, pos);
        } else if (m == 0xC4) {
            if (++tables > MAX_TABLE_SEGMENTS)
                return csasn__errf("corrupt JPEG: more than %d table segments", MAX_TABLE_SEGMENTS);
            /* Validates each Huffman table: stb_image 2.27 writes one entry
             * per code into a 257-entry array without checking that a table
             * has at most 256 codes. */
            for (size_t q = pos + 4; q < end;) {
                if (end - q < 17)
                    return csasn__errf("corrupt JPEG: Huffman table at byte %zu is cut short", q);
                unsigned codes = 0;
                for (int i = 1; i <= 16; i++)
                    codes += p[q + i];
                if (codes > 256)
                    return csasn__errf("corrupt JPEG: Huffman table at byte %zu has %u codes (at most 256)", q, codes);
                if (q + 17 + codes > end)
                    return csasn__errf("corrupt JPEG: Huffman table at byte %zu runs past its segment", q);
                unsigned tc = p[q] >> 4, th = p[q] & 15;
                if (tc <= 1 && th <= 3) {   /* others: stb says "bad DHT header" */
                    dht_def *t = &js->dht[tc][th];
                    memset(t, 0, sizeof *t);
                    memcpy(t->counts + 1, p + q + 1, 16);
                    memcpy(t->syms, p + q + 17, codes);
                    js->defined |= 1u << (4 * tc + th);
                }
                q += 17 + codes;
            }
        } else if (m == 0xDB || m == 0xDD) {
            if (++tables > MAX_TABLE_SEGMENTS)
                return csasn__errf("corrupt JPEG: more than %d table segments", MAX_TABLE_SEGMENTS);
            if (m == 0xDD && dl >= 2)
                js->restart = (unsigned)d[0] << 8 | d[1];
        } else if (m == 0xE0 && dl >= 5 && !memcmp(d, "JFIF", 5)) {
            stb_jfif = 1;
            if (!js->scans && dl >= 14)
                lj_jfif = 1;
        } else if (m == 0xEE && dl >= 12 && !memcmp(d, "Adobe", 5)) {
            if (d[5] == 0)
                stb_adobe = d[11];
            if (!js->scans)
                lj_adobe = d[11];
        } else if (m == 0xE1 && !js->scans && !have_exif && dl >= 6 && !memcmp(d, "Exif\0", 6)) {
            /* The first Exif segment decides (PIL and libexif read only that one). */
            int o = csasn__exif_orientation(d + 6, dl - 6);
            info->orientation = o ? o : 1;
            have_exif = 1;
        } else if (m == 0xDA) {
            if (!js->nc)
                return "corrupt JPEG: image data before the frame header (SOF)";
            if (seg < 3)   /* Ns itself is missing (found by fuzz_classify) */
                return csasn__errf("corrupt JPEG: scan header at byte %zu is empty", pos);
            if (seg < 6 + 2 * (size_t)p[pos + 4])
                return csasn__errf("corrupt JPEG: scan header at byte %zu is too short", pos);
            if ((err = scan(js, p, n, pos + 4, seg, end)) != NULL)
                return err;
            /* Past the entropy-coded data: 0xFF is escaped as FF 00 and
             * restart markers FF D0..D7 may occur; any other FF xx is the
             * next marker. */
            pos = end;
            while (pos + 1 < n && !(p[pos] == 0xFF && p[pos + 1] != 0x00 && p[pos + 1] != 0xFF &&
                                    !(p[pos + 1] >= 0xD0 && p[pos + 1] <= 0xD7)))
                pos++;
            if (pos + 1 >= n)
                return csasn__errf("truncated JPEG: no end-of-image marker in %zu bytes", n);
            continue;
        } else if (!(m >= 0xE0 && m <= 0xEF) && m != 0xFE && m != 0xDC) {
            return csasn__errf("corrupt JPEG: unknown marker 0x%02X at byte %zu", m, pos);
        }
        pos = end;
    }
    if (!js->nc)
        return "corrupt JPEG: no frame header (SOF) before the end of the image";
    if (!js->scans)
        return "corrupt JPEG: no image data (scan) before the end of the image";
    /* stb_image fills the planes of a sequential JPEG scan by scan: a
     * component in no scan would stay 0 (libjpeg: mid-grey). */
    for (int i = 0; i < js->nc; i++)
        if (!js->progressive && !js->c[i].scans)
            return csasn__errf("corrupt JPEG: component %d is in no scan", i);
    info->scans = js->scans;

    /* Colour transform. libjpeg (jdapimin.c): a JFIF marker means YCbCr, else
     * an Adobe marker's transform (0 RGB / CMYK, 2 YCCK, others YCbCr / YCCK),
     * else component ids 'R','G','B' mean RGB, anything else YCbCr / CMYK.
     * stb_image 2.27: RGB when the ids are 'R','G','B' whatever the markers,
     * or when Adobe says 0 and there is no JFIF marker; 4 components: CMYK
     * for Adobe 0, YCCK for 2, otherwise YCbCr with K dropped. */
    if (js->nc == 3) {
        int ids_rgb = js->c[0].id == 'R' && js->c[1].id == 'G' && js->c[2].id == 'B';
        int stb_rgb = ids_rgb || (stb_adobe == 0 && !stb_jfif);
        int lj_rgb = !lj_jfif && (lj_adobe >= 0 ? lj_adobe == 0 : ids_rgb);
        if (stb_rgb && !lj_rgb)
            info->ycc_to_rgb = 1;
        else if (!stb_rgb && lj_rgb)
            return "unsupported JPEG: its colour markers (JFIF, Adobe) are read differently by libjpeg and this decoder";
    } else if (js->nc == 4) {
        /* 0 CMYK, 2 YCCK, 1 "YCbCr, K dropped" (stb only) */
        int stb_mode = stb_adobe == 0 ? 0 : stb_adobe == 2 ? 2 : 1;
        int lj_mode = lj_adobe < 0 || lj_adobe == 0 ? 0 : 2;
        if (stb_adobe < 0 || lj_adobe < 0)
            return "unsupported JPEG: 4 components (CMYK) without an Adobe colour-transform marker";
        if (stb_mode != lj_mode)
            return csasn__errf("unsupported JPEG: 4 components with Adobe colour transform %d", lj_adobe);
    }
    return NULL;
}

const char *csasn__jpeg_check(const uint8_t *p, size_t n, csasn__jpeg_info *info, int entropy)
{
    jpeg_state *js = calloc(1, sizeof *js);
    if (!js)
        return "out of memory checking the JPEG";
    memset(info, 0, sizeof *info);
    js->headers_only = !entropy;
    const char *err = walk(js, p, n, info);
    for (int i = 0; i < 4; i++)
        free(js->c[i].nz);
    free(js);
    return err;
}
