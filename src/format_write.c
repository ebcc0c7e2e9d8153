/* format_write.c - writing a .csasn file (src/format_write.h, src/FORMAT.md):
 * header, metadata, tensor infos, zero padding to 64, then each tensor at a
 * 64-byte aligned offset. Little-endian byte by byte, so the output is the
 * same on any host. */
#include "format_write.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    uint32_t type, elem_type, count;
    uint32_t u;         /* u32 / i32 / f32 bits */
    char **strs;        /* str (count 1) or str array */
    uint32_t *vals;     /* u32 / i32 / f32 array */
} wkv;

typedef struct {
    char *name;
    uint32_t dtype, rank, dims[4];
    void *data;
    size_t bytes;
} wtensor;

struct csasn__writer {
    wkv *kv;
    int n_kv, cap_kv;
    wtensor *t;
    int n_t, cap_t;
    const char *err;
};

csasn__writer *csasn__writer_new(void) { return calloc(1, sizeof(csasn__writer)); }

void csasn__writer_free(csasn__writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n_kv; i++) {
        wkv *k = &w->kv[i];
        free(k->key);
        if (k->strs)
            for (uint32_t j = 0; j < k->count; j++) free(k->strs[j]);
        free(k->strs);
        free(k->vals);
    }
    for (int i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

static wkv *add_kv(csasn__writer *w, const char *key, uint32_t type)
{
    if (w->err) return NULL;
    for (int i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            w->err = csasn__errf("metadata key '%s' written twice", key);
            return NULL;
        }
    if (w->n_kv == w->cap_kv) {
        int cap = w->cap_kv ? 2 * w->cap_kv : 64;
        wkv *p = realloc(w->kv, (size_t)cap * sizeof *p);
        if (!p) { w->err = "out of memory writing a model file"; return NULL; }
        w->kv = p;
        w->cap_kv = cap;
    }
    wkv *k = &w->kv[w->n_kv];
    memset(k, 0, sizeof *k);
    if (!(k->key = strdup(key))) { w->err = "out of memory writing a model file"; return NULL; }
    k->type = type;
    k->count = 1;
    w->n_kv++;
    return k;
}

static void set_strs(csasn__writer *w, wkv *k, const char *const *v, int n)
{
    k->count = (uint32_t)n;
    k->strs = calloc(n ? (size_t)n : 1, sizeof *k->strs);
    if (!k->strs) { w->err = "out of memory writing a model file"; return; }
    for (int i = 0; i < n; i++)
        if (!(k->strs[i] = strdup(v[i]))) { w->err = "out of memory writing a model file"; return; }
}

static void set_vals(csasn__writer *w, wkv *k, const void *v, int n)
{
    k->count = (uint32_t)n;
    k->vals = malloc(n ? (size_t)n * 4 : 4);
    if (!k->vals) { w->err = "out of memory writing a model file"; return; }
    if (n) memcpy(k->vals, v, (size_t)n * 4);
}

void csasn__w_u32(csasn__writer *w, const char *key, uint32_t v)
{
    wkv *k = add_kv(w, key, CSASN__T_U32);
    if (k) k->u = v;
}

void csasn__w_f32(csasn__writer *w, const char *key, float v)
{
    wkv *k = add_kv(w, key, CSASN__T_F32);
    if (k) memcpy(&k->u, &v, 4);
}

void csasn__w_str(csasn__writer *w, const char *key, const char *v)
{
    wkv *k = add_kv(w, key, CSASN__T_STR);
    if (k) set_strs(w, k, &v, 1);
}

void csasn__w_strs(csasn__writer *w, const char *key, const char *const *v, int n)
{
    wkv *k = add_kv(w, key, CSASN__T_ARR);
    if (!k) return;
    k->elem_type = CSASN__T_STR;
    set_strs(w, k, v, n);
}

void csasn__w_u32s(csasn__writer *w, const char *key, const uint32_t *v, int n)
{
    wkv *k = add_kv(w, key, CSASN__T_ARR);
    if (!k) return;
    k->elem_type = CSASN__T_U32;
    set_vals(w, k, v, n);
}

void csasn__w_kv(csasn__writer *w, const csasn__kv *kv)
{
    wkv *k = add_kv(w, kv->key, kv->type);
    if (!k) return;
    if (kv->type == CSASN__T_STR) {
        const char *s = kv->str;
        set_strs(w, k, &s, 1);
    } else if (kv->type == CSASN__T_ARR) {
        k->elem_type = kv->elem_type;
        if (kv->elem_type == CSASN__T_STR) set_strs(w, k, (const char *const *)kv->arr, (int)kv->count);
        else set_vals(w, k, kv->arr, (int)kv->count);
    } else {
        memcpy(&k->u, &kv->v, 4);
    }
}

void csasn__w_tensor(csasn__writer *w, const char *name, uint32_t dtype, int rank,
                     const uint32_t *dims, const void *data, size_t bytes)
{
    if (w->err) return;
    if (rank < 1 || rank > 4) { w->err = "tensor rank out of range writing a model file"; return; }
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 256;
        wtensor *p = realloc(w->t, (size_t)cap * sizeof *p);
        if (!p) { w->err = "out of memory writing a model file"; return; }
        w->t = p;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(bytes ? bytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        w->err = "out of memory writing a model file";
        return;
    }
    memcpy(t->data, data, bytes);
    t->dtype = dtype;
    t->rank = (uint32_t)rank;
    memcpy(t->dims, dims, (size_t)rank * sizeof *dims);
    t->bytes = bytes;
    w->n_t++;
}

void csasn__w_copy_tensor(csasn__writer *w, const csasn__tensor *t)
{
    csasn__w_tensor(w, t->name, t->dtype, (int)t->rank, t->dims, t->data,
                    t->numel * (t->dtype == CSASN__DT_F16 ? 2 : 4));
}

/* ---------------------------------------------------------------- layout */

typedef struct { uint8_t *p; size_t n; } out_buf;

static void put_u32(out_buf *b, uint32_t v)
{
    if (b->p) for (int i = 0; i < 4; i++) b->p[b->n + i] = (uint8_t)(v >> (8 * i));
    b->n += 4;
}

static void put_u64(out_buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_bytes(out_buf *b, const void *s, size_t n)
{
    if (b->p) memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_str(out_buf *b, const char *s)
{
    size_t n = strlen(s);
    put_u32(b, (uint32_t)n);
    put_bytes(b, s, n);
}

/* The header, metadata and tensor infos; b->p NULL only measures. */
static void put_header(out_buf *b, const csasn__writer *w, const uint64_t *offsets)
{
    put_bytes(b, "CSAN", 4);
    put_u32(b, 1);
    put_u32(b, (uint32_t)w->n_kv);
    put_u32(b, (uint32_t)w->n_t);
    for (int i = 0; i < w->n_kv; i++) {
        const wkv *k = &w->kv[i];
        put_str(b, k->key);
        put_u32(b, k->type);
        if (k->type == CSASN__T_STR) {
            put_str(b, k->strs[0]);
        } else if (k->type == CSASN__T_ARR) {
            put_u32(b, k->elem_type);
            put_u32(b, k->count);
            for (uint32_t j = 0; j < k->count; j++) {
                if (k->elem_type == CSASN__T_STR) put_str(b, k->strs[j]);
                else put_u32(b, k->vals[j]);
            }
        } else {
            put_u32(b, k->u);
        }
    }
    for (int i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(b, t->name);
        put_u32(b, t->dtype);
        put_u32(b, t->rank);
        for (uint32_t d = 0; d < t->rank; d++) put_u32(b, t->dims[d]);
        put_u64(b, offsets ? offsets[i] : 0);
    }
}

const char *csasn__writer_finish(csasn__writer *w, void **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!w) return "out of memory writing a model file";
    if (w->err) {
        const char *e = w->err;
        csasn__writer_free(w);
        return e;
    }
    uint64_t *off = calloc(w->n_t ? (size_t)w->n_t : 1, sizeof *off);
    if (!off) { csasn__writer_free(w); return "out of memory writing a model file"; }
    out_buf m = {NULL, 0};
    put_header(&m, w, NULL);
    size_t data_start = (m.n + 63) / 64 * 64, pos = 0;
    for (int i = 0; i < w->n_t; i++) {
        off[i] = pos;
        pos = (pos + w->t[i].bytes + 63) / 64 * 64;
    }
    size_t total = data_start + pos;
    uint8_t *p = calloc(total, 1);
    if (!p) { free(off); csasn__writer_free(w); return "out of memory writing a model file"; }
    out_buf b = {p, 0};
    put_header(&b, w, off);
    for (int i = 0; i < w->n_t; i++) memcpy(p + data_start + off[i], w->t[i].data, w->t[i].bytes);
    free(off);
    csasn__writer_free(w);
    *out = p;
    *len = total;
    return NULL;
}
