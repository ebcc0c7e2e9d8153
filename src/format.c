/* format.c - parsing and validating a .csasn model file (src/FORMAT.md).
 *
 * The buffer is untrusted: every length, count and offset is checked against
 * the bytes that remain before it is used, with 64-bit arithmetic so that
 * nothing can wrap around (size_t is 32 bits in wasm). Allocation sizes are
 * bounded by the buffer size before anything is allocated, so a hostile count
 * cannot make us allocate gigabytes. */
#include "format.h"
#include "csasn.h"
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 256u
#define ALIGN 64u

/* ------------------------------------------------------------------ reader */

typedef struct {
    const uint8_t *buf;
    uint64_t len, pos;
} reader;

static int has(const reader *r, uint64_t n) { return n <= r->len - r->pos; }

static uint32_t rd_u32(reader *r)
{
    const uint8_t *p = r->buf + r->pos;
    r->pos += 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd_u64(reader *r)
{
    uint64_t lo = rd_u32(r);
    return lo | (uint64_t)rd_u32(r) << 32;
}

static float u32_as_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF) and no
 * NUL, so that every string can be copied as a C string and printed as JSON. */
static int valid_utf8(const uint8_t *s, uint64_t n)
{
    uint64_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) { i++; continue; }
        int k;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if ((uint64_t)k > n - i - 1)
            return 0;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (uint64_t)k + 1;
    }
    return 1;
}

/* Reads "u32 len, bytes" into a fresh NUL-terminated copy. what/idx/ctx only
 * build the error message. max_len = 0: no limit other than the buffer. */
static const char *rd_string(reader *r, char **out, uint32_t max_len, const char *what)
{
    uint64_t start = r->pos;
    if (!has(r, 4))
        return csasn__errf("model file truncated: %s length at byte %llu past end %llu",
                           what, (unsigned long long)start, (unsigned long long)r->len);
    uint32_t n = rd_u32(r);
    if (max_len && n > max_len)
        return csasn__errf("%s is %u bytes long (limit %u)", what, n, max_len);
    if (!has(r, n))
        return csasn__errf("model file truncated: %s (%u bytes at byte %llu) ends at byte %llu past end %llu",
                           what, n, (unsigned long long)r->pos,
                           (unsigned long long)(r->pos + n), (unsigned long long)r->len);
    if (!valid_utf8(r->buf + r->pos, n))
        return csasn__errf("%s at byte %llu is not valid UTF-8 (or contains a NUL byte)",
                           what, (unsigned long long)r->pos);
    char *s = malloc((size_t)n + 1);
    if (!s)
        return csasn__errf("out of memory reading %s", what);
    memcpy(s, r->buf + r->pos, n);
    s[n] = 0;
    r->pos += n;
    *out = s;
    return NULL;
}

static const char *type_name(uint32_t t)
{
    static const char *names[] = {"u32", "i32", "f32", "str", "array"};
    return t < 5 ? names[t] : "unknown";
}

static void kv_free(csasn__kv *kv)
{
    free(kv->key);
    free(kv->str);
    if (kv->type == CSASN__T_ARR && kv->elem_type == CSASN__T_STR && kv->arr) {
        char **s = kv->arr;
        for (uint32_t i = 0; i < kv->count; i++)
            free(s[i]);
    }
    free(kv->arr);
}

void csasn__file_free(csasn__file *f)
{
    if (!f)
        return;
    if (f->kv) {
        for (uint32_t i = 0; i < f->n_kv; i++)
            kv_free(&f->kv[i]);
        free(f->kv);
    }
    if (f->tensors) {
        for (uint32_t i = 0; i < f->n_tensors; i++)
            free(f->tensors[i].name);
        free(f->tensors);
    }
    memset(f, 0, sizeof *f);
}

static const char *rd_scalar(reader *r, uint32_t t, csasn__kv *kv, const char *what)
{
    if (t == CSASN__T_STR)
        return rd_string(r, &kv->str, 0, what);
    if (!has(r, 4))
        return csasn__errf("model file truncated: %s value at byte %llu past end %llu",
                           what, (unsigned long long)r->pos, (unsigned long long)r->len);
    uint32_t u = rd_u32(r);
    if (t == CSASN__T_U32) kv->v.u32 = u;
    else if (t == CSASN__T_I32) kv->v.i32 = (int32_t)u;
    else kv->v.f32 = u32_as_f32(u);
    return NULL;
}

static const char *rd_kv(reader *r, uint32_t idx, csasn__kv *kv)
{
    char what[320];
    snprintf(what, sizeof what, "metadata entry %u key", idx);
    const char *err = rd_string(r, &kv->key, MAX_NAME, what);
    if (err)
        return err;
    snprintf(what, sizeof what, "metadata entry %u ('%s')", idx, kv->key);
    if (!has(r, 4))
        return csasn__errf("model file truncated: %s type at byte %llu past end %llu",
                           what, (unsigned long long)r->pos, (unsigned long long)r->len);
    kv->type = rd_u32(r);
    kv->count = 1;
    if (kv->type <= CSASN__T_STR) {
        kv->elem_type = kv->type;
        return rd_scalar(r, kv->type, kv, what);
    }
    if (kv->type != CSASN__T_ARR)
        return csasn__errf("%s has unknown value type %u", what, kv->type);
    if (!has(r, 8))
        return csasn__errf("model file truncated: %s array header at byte %llu past end %llu",
                           what, (unsigned long long)r->pos, (unsigned long long)r->len);
    kv->elem_type = rd_u32(r);
    uint32_t n = rd_u32(r);
    if (kv->elem_type > CSASN__T_STR)
        return csasn__errf("%s: array of unknown element type %u", what, kv->elem_type);
    /* Every element takes at least 4 bytes: bound the allocation by the file. */
    if ((uint64_t)n * 4 > r->len - r->pos)
        return csasn__errf("model file truncated: %s array of %u elements at byte %llu "
                           "needs at least %llu bytes, only %llu left",
                           what, n, (unsigned long long)r->pos, (unsigned long long)n * 4,
                           (unsigned long long)(r->len - r->pos));
    kv->count = 0;
    kv->arr = calloc(n ? n : 1, kv->elem_type == CSASN__T_STR ? sizeof(char *) : 4);
    if (!kv->arr)
        return csasn__errf("out of memory reading %s", what);
    for (uint32_t i = 0; i < n; i++) {
        if (kv->elem_type == CSASN__T_STR) {
            char ew[360];
            snprintf(ew, sizeof ew, "%s element %u", what, i);
            const char *e = rd_string(r, &((char **)kv->arr)[i], 0, ew);
            if (e)
                return e;
        } else {
            /* has() was established for all n elements above. */
            uint32_t u = rd_u32(r);
            memcpy((uint8_t *)kv->arr + 4 * (size_t)i, &u, 4);
        }
        kv->count = i + 1;   /* so that kv_free frees exactly what was read */
    }
    kv->count = n;
    return NULL;
}

static const char *rd_tensor_info(reader *r, uint32_t idx, csasn__tensor *t, uint64_t *offset)
{
    char what[320];
    snprintf(what, sizeof what, "tensor table entry %u name", idx);
    const char *err = rd_string(r, &t->name, MAX_NAME, what);
    if (err)
        return err;
    if (!t->name[0])
        return csasn__errf("tensor table entry %u has an empty name", idx);
    uint64_t start = r->pos;
    if (!has(r, 8))
        return csasn__errf("model file truncated: tensor table entry %u ('%s') ends at byte %llu past end %llu",
                           idx, t->name, (unsigned long long)(start + 8), (unsigned long long)r->len);
    t->dtype = rd_u32(r);
    t->rank = rd_u32(r);
    if (t->dtype != CSASN__DT_F32 && t->dtype != CSASN__DT_F16)
        return csasn__errf("tensor '%s' has unknown dtype %u (0 = f32, 1 = f16)", t->name, t->dtype);
    if (t->rank < 1 || t->rank > CSASN_MAX_RANK)
        return csasn__errf("tensor '%s' has rank %u (must be 1..%d)", t->name, t->rank, CSASN_MAX_RANK);
    uint64_t need = 4ull * t->rank + 8;
    if (!has(r, need))
        return csasn__errf("model file truncated: tensor table entry %u ('%s') ends at byte %llu past end %llu",
                           idx, t->name, (unsigned long long)(r->pos + need), (unsigned long long)r->len);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < t->rank; d++) {
        t->dims[d] = rd_u32(r);
        if (t->dims[d] == 0 || t->dims[d] > CSASN_MAX_DIM)
            return csasn__errf("tensor '%s' dimension %u is %u (must be 1..%u)",
                               t->name, d, t->dims[d], (unsigned)CSASN_MAX_DIM);
        /* dims <= 2^24 and numel <= len (checked below) keep this exact, but
         * check anyway: four dims of 2^24 would need 96 bits. */
        if (numel > UINT64_MAX / t->dims[d])
            return csasn__errf("tensor '%s': element count overflows", t->name);
        numel *= t->dims[d];
    }
    for (uint32_t d = t->rank; d < 4; d++)
        t->dims[d] = 1;
    if (numel > (uint64_t)SIZE_MAX / 4 || numel > ((uint64_t)1 << 40))
        return csasn__errf("tensor '%s': element count %llu overflows", t->name, (unsigned long long)numel);
    t->numel = (size_t)numel;
    *offset = rd_u64(r);
    if (*offset % ALIGN)
        return csasn__errf("tensor '%s': data offset %llu is not a multiple of %u",
                           t->name, (unsigned long long)*offset, ALIGN);
    return NULL;
}

/* Sort keys for duplicate detection in O(n log n). */
static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *find_duplicate(const char **names, uint32_t n)
{
    if (n < 2)
        return NULL;
    qsort(names, n, sizeof *names, cmp_str_ptr);
    for (uint32_t i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i]))
            return names[i];
    return NULL;
}

static const char *parse(csasn__file *f, const void *buf, size_t len)
{
    reader r = {buf, len, 0};
    if (len == 0)
        return "model file is empty (0 bytes)";
    if (!buf)
        return "model buffer is NULL";
    if (len < 4 || memcmp(buf, "CSAN", 4))
        return "bad magic: not a .csasn model file";
    if (len < 16)
        return csasn__errf("model file truncated: header ends at byte 16 past end %llu",
                           (unsigned long long)len);
    if ((uint64_t)len > CSASN_MAX_MODEL_BYTES)
        return csasn__errf("model file is %llu bytes (limit %u)", (unsigned long long)len,
                           (unsigned)CSASN_MAX_MODEL_BYTES);
    r.pos = 4;
    f->version = rd_u32(&r);
    uint32_t n_kv = rd_u32(&r), n_t = rd_u32(&r);
    if (f->version != CSASN_FORMAT_VERSION)
        return csasn__errf("unsupported format version %u (this engine reads %d)",
                           f->version, CSASN_FORMAT_VERSION);
    if (n_kv > CSASN_MAX_KV)
        return csasn__errf("too many metadata entries: %u (limit %d)", n_kv, CSASN_MAX_KV);
    if (n_t > CSASN_MAX_TENSORS)
        return csasn__errf("too many tensors: %u (limit %d)", n_t, CSASN_MAX_TENSORS);

    f->kv = calloc(n_kv ? n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(n_t ? n_t : 1, sizeof *f->tensors);
    uint64_t *offsets = calloc(n_t ? n_t : 1, sizeof *offsets);
    const char **names = calloc((n_kv > n_t ? n_kv : n_t) + 1, sizeof *names);
    const char *err = NULL;
    if (!f->kv || !f->tensors || !offsets || !names) {
        err = "out of memory reading the model header";
        goto done;
    }
    for (uint32_t i = 0; i < n_kv; i++) {
        f->n_kv = i + 1;    /* entries [0, i] are freed on error */
        if ((err = rd_kv(&r, i, &f->kv[i])))
            goto done;
    }
    for (uint32_t i = 0; i < n_kv; i++)
        names[i] = f->kv[i].key;
    const char *dup = find_duplicate(names, n_kv);
    if (dup) {
        err = csasn__errf("duplicate metadata key '%s'", dup);
        goto done;
    }
    for (uint32_t i = 0; i < n_t; i++) {
        f->n_tensors = i + 1;
        if ((err = rd_tensor_info(&r, i, &f->tensors[i], &offsets[i])))
            goto done;
    }
    for (uint32_t i = 0; i < n_t; i++)
        names[i] = f->tensors[i].name;
    dup = find_duplicate(names, n_t);
    if (dup) {
        err = csasn__errf("duplicate tensor '%s'", dup);
        goto done;
    }
    /* Data starts at the next multiple of 64 after the table; offsets are
     * relative to it, so no tensor can overlap the header. */
    uint64_t data_start = (r.pos + ALIGN - 1) / ALIGN * ALIGN;
    if (n_t && data_start > r.len) {
        err = csasn__errf("model file truncated: tensor data starts at byte %llu past end %llu",
                          (unsigned long long)data_start, (unsigned long long)r.len);
        goto done;
    }
    for (uint32_t i = 0; i < n_t; i++) {
        csasn__tensor *t = &f->tensors[i];
        uint64_t bytes = (uint64_t)t->numel * (t->dtype == CSASN__DT_F32 ? 4 : 2);
        uint64_t room = r.len - data_start;
        if (offsets[i] > room || bytes > room - offsets[i]) {
            /* offsets[i] < 2^64 and bytes < 2^42: report the end exactly when
             * it fits, otherwise say it overflows. */
            if (offsets[i] > UINT64_MAX - data_start - bytes)
                err = csasn__errf("tensor %u ('%s'): data offset %llu overflows", i, t->name,
                                  (unsigned long long)offsets[i]);
            else
                err = csasn__errf("model file truncated: tensor %u ('%s') data ends at byte %llu past end %llu",
                                  i, t->name, (unsigned long long)(data_start + offsets[i] + bytes),
                                  (unsigned long long)r.len);
            goto done;
        }
        t->data = (const uint8_t *)buf + data_start + offsets[i];
    }
done:
    free(offsets);
    free(names);
    return err;
}

const char *csasn__file_parse(csasn__file *f, const void *buf, size_t len)
{
    memset(f, 0, sizeof *f);
    const char *err = parse(f, buf, len);
    if (err)
        csasn__file_free(f);
    return err;
}

/* ------------------------------------------------------------------ getters */

static const csasn__kv *find_kv(const csasn__file *f, const char *key)
{
    for (uint32_t i = 0; i < f->n_kv; i++)
        if (!strcmp(f->kv[i].key, key))
            return &f->kv[i];
    return NULL;
}

int csasn__meta_has(const csasn__file *f, const char *key)
{
    return find_kv(f, key) != NULL;
}

static const char *kv_type_desc(const csasn__kv *kv)
{
    static _Thread_local char s[32];
    if (kv->type != CSASN__T_ARR)
        return type_name(kv->type);
    snprintf(s, sizeof s, "%s[%u]", type_name(kv->elem_type), kv->count);
    return s;
}

static const char *get_scalar(const csasn__file *f, const char *key, uint32_t want, const csasn__kv **out)
{
    const csasn__kv *kv = find_kv(f, key);
    if (!kv)
        return csasn__errf("metadata key '%s' missing", key);
    /* The Python writer stores a non-negative int as u32, a negative one as
     * i32: accept an i32 >= 0 where a u32 is expected. */
    int ok = kv->type == want || (want == CSASN__T_U32 && kv->type == CSASN__T_I32 && kv->v.i32 >= 0);
    if (!ok)
        return csasn__errf("metadata key '%s' has type %s, expected %s", key, kv_type_desc(kv), type_name(want));
    *out = kv;
    return NULL;
}

const char *csasn__meta_u32(const csasn__file *f, const char *key, uint32_t *out)
{
    const csasn__kv *kv;
    const char *err = get_scalar(f, key, CSASN__T_U32, &kv);
    if (!err)
        *out = kv->v.u32;
    return err;
}

const char *csasn__meta_f32(const csasn__file *f, const char *key, float *out)
{
    const csasn__kv *kv;
    const char *err = get_scalar(f, key, CSASN__T_F32, &kv);
    if (!err)
        *out = kv->v.f32;
    return err;
}

const char *csasn__meta_str(const csasn__file *f, const char *key, const char **out)
{
    const csasn__kv *kv;
    const char *err = get_scalar(f, key, CSASN__T_STR, &kv);
    if (!err)
        *out = kv->str;
    return err;
}

static const char *get_array(const csasn__file *f, const char *key, uint32_t elem, const void **out, uint32_t *count)
{
    const csasn__kv *kv = find_kv(f, key);
    if (!kv)
        return csasn__errf("metadata key '%s' missing", key);
    /* An empty list has no element type in Python; the writer calls it str[0]. */
    int ok = kv->type == CSASN__T_ARR && (kv->elem_type == elem || kv->count == 0 ||
             (elem == CSASN__T_U32 && kv->elem_type == CSASN__T_I32));
    if (ok && elem == CSASN__T_U32 && kv->elem_type == CSASN__T_I32) {
        const int32_t *a = kv->arr;
        for (uint32_t i = 0; i < kv->count; i++)
            if (a[i] < 0)
                return csasn__errf("metadata key '%s' element %u is negative (%d), expected u32",
                                   key, i, (int)a[i]);
    }
    if (!ok) {
        char want[16];
        snprintf(want, sizeof want, "%s[]", type_name(elem));
        return csasn__errf("metadata key '%s' has type %s, expected %s", key, kv_type_desc(kv), want);
    }
    *out = kv->arr;
    *count = kv->count;
    return NULL;
}

const char *csasn__meta_u32_array(const csasn__file *f, const char *key, const uint32_t **out, uint32_t *count)
{
    const void *p;
    const char *err = get_array(f, key, CSASN__T_U32, &p, count);
    if (!err)
        *out = p;
    return err;
}

const char *csasn__meta_f32_array(const csasn__file *f, const char *key, const float **out, uint32_t *count)
{
    const void *p;
    const char *err = get_array(f, key, CSASN__T_F32, &p, count);
    if (!err)
        *out = p;
    return err;
}

const char *csasn__meta_str_array(const csasn__file *f, const char *key, char *const **out, uint32_t *count)
{
    const void *p;
    const char *err = get_array(f, key, CSASN__T_STR, &p, count);
    if (!err)
        *out = p;
    return err;
}

csasn__tensor *csasn__file_tensor(csasn__file *f, const char *name)
{
    for (uint32_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) {
            f->tensors[i].used = 1;
            return &f->tensors[i];
        }
    return NULL;
}

/* ------------------------------------------------------------------ data */

/* IEEE half -> single, exact (every half is representable as a float). */
static uint32_t half_to_float_bits(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0) {
        if (man == 0)
            return sign;
        /* Subnormal: shift the mantissa up until its leading 1 is implicit. */
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        return sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3FF) << 13;
    }
    if (exp == 31)
        return sign | 0x7F800000u | man << 13;
    return sign | (exp + 127 - 15) << 23 | man << 13;
}

const char *csasn__tensor_to_f32(const csasn__tensor *t, float *dst)
{
    const uint8_t *p = t->data;
    for (size_t i = 0; i < t->numel; i++) {
        uint32_t bits;
        if (t->dtype == CSASN__DT_F16)
            bits = half_to_float_bits((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        else
            bits = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                   (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        if ((bits & 0x7F800000u) == 0x7F800000u)
            return csasn__errf("tensor '%s' contains %s at element %llu", t->name,
                               (bits & 0x007FFFFFu) ? "NaN" : "an infinite value",
                               (unsigned long long)i);
        memcpy(&dst[i], &bits, 4);
    }
    return NULL;
}

/* ------------------------------------------------------------------ JSON */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Strings were validated as UTF-8 without NUL, so escaping '"', '\\' and
 * control characters gives valid JSON. */
static void sb_json_str(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') sb_puts(b, "\\\"");
        else if (c == '\\') sb_puts(b, "\\\\");
        else if (c == '\n') sb_puts(b, "\\n");
        else if (c == '\t') sb_puts(b, "\\t");
        else if (c == '\r') sb_puts(b, "\\r");
        else if (c < 0x20 || c == 0x7F) sb_printf(b, "\\u%04x", c);
        else sb_put(b, (const char *)&c, 1);
    }
    sb_put(b, "\"", 1);
}

static void sb_json_f32(sbuf *b, float v)
{
    if (v != v || v - v != 0)   /* NaN or infinite: JSON has no such number */
        sb_puts(b, "null");
    else {
        /* Shortest form that reads back as the same float: 0.485, not 0.485000014. */
        char tmp[32];
        for (int prec = 6; prec <= 9; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, (double)v);
            if (strtof(tmp, NULL) == v)
                break;
        }
        sb_puts(b, tmp);
    }
}

static void sb_json_elem(sbuf *b, uint32_t t, const void *p)
{
    uint32_t u;
    if (t == CSASN__T_STR) {
        sb_json_str(b, *(char *const *)p);
        return;
    }
    memcpy(&u, p, 4);
    if (t == CSASN__T_U32) sb_printf(b, "%u", u);
    else if (t == CSASN__T_I32) sb_printf(b, "%d", (int)(int32_t)u);
    else sb_json_f32(b, u32_as_f32(u));
}

/* The metadata entries "key": value, ... (no braces). */
static void sb_meta(sbuf *b, const csasn__file *f)
{
    for (uint32_t i = 0; i < f->n_kv; i++) {
        const csasn__kv *kv = &f->kv[i];
        if (i)
            sb_puts(b, ", ");
        sb_json_str(b, kv->key);
        sb_puts(b, ": ");
        if (kv->type == CSASN__T_STR) {
            sb_json_str(b, kv->str);
        } else if (kv->type == CSASN__T_ARR) {
            size_t es = kv->elem_type == CSASN__T_STR ? sizeof(char *) : 4;
            sb_puts(b, "[");
            for (uint32_t j = 0; j < kv->count; j++) {
                if (j)
                    sb_puts(b, ", ");
                sb_json_elem(b, kv->elem_type, (const char *)kv->arr + es * j);
            }
            sb_puts(b, "]");
        } else {
            sb_json_elem(b, kv->type, &kv->v);
        }
    }
}

static char *sb_finish(sbuf *b)
{
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

char *csasn__file_meta_json(const csasn__file *f)
{
    sbuf b = {0};
    sb_puts(&b, "{");
    sb_meta(&b, f);
    sb_puts(&b, "}");
    return sb_finish(&b);
}

char *csasn__file_info_json(const csasn__file *f, size_t file_bytes, const char *extra)
{
    uint64_t params = 0;
    uint32_t n_f16 = 0;
    for (uint32_t i = 0; i < f->n_tensors; i++) {
        params += f->tensors[i].numel;
        n_f16 += f->tensors[i].dtype == CSASN__DT_F16;
    }
    sbuf b = {0};
    sb_puts(&b, "{");
    sb_meta(&b, f);
    if (f->n_kv)
        sb_puts(&b, ", ");
    if (extra && *extra) {
        sb_puts(&b, extra);
        sb_puts(&b, ", ");
    }
    sb_printf(&b, "\"tensors\": %u, \"parameters\": %llu, ", (unsigned)f->n_tensors, (unsigned long long)params);
    sb_printf(&b, "\"storage\": \"%s\", \"file_bytes\": %zu}",
              n_f16 == f->n_tensors ? "f16" : n_f16 ? "mixed" : "f32", file_bytes);
    return sb_finish(&b);
}
