/* test_format_unit.c - src/format.c in process: a file built here byte by
 * byte parses back exactly; getters, f16 conversion and the metadata JSON give
 * known values; every truncation and every single-byte change of the header
 * is either rejected with a message or parsed consistently - never a crash
 * or a read outside the buffer (run it under -fsanitize=address to see the
 * latter; tests/run.py runs the normal build). */
#include "format.h"
#include "csasn.h"
#include "error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(const char *name, int ok, const char *why)
{
    if (ok)
        printf("ok %s\n", name);
    else {
        printf("not ok %s: %s\n", name, why ? why : "");
        failures++;
    }
}

/* ---- a little writer (the layout of src/FORMAT.md) */
typedef struct {
    unsigned char *b;
    size_t n, cap;
} buf;

static void put(buf *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 64;
        o->b = realloc(o->b, o->cap);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void u32(buf *o, uint32_t v)
{
    unsigned char c[4] = {v & 255, (v >> 8) & 255, (v >> 16) & 255, v >> 24};
    put(o, c, 4);
}

static void u64(buf *o, uint64_t v)
{
    u32(o, (uint32_t)v);
    u32(o, (uint32_t)(v >> 32));
}

static void f32(buf *o, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    u32(o, v);
}

static void str(buf *o, const char *s)
{
    u32(o, (uint32_t)strlen(s));
    put(o, s, strlen(s));
}

static void pad64(buf *o)
{
    while (o->n % 64)
        put(o, "", 1);
}

/* 6 metadata entries, 3 tensors: "a.w" f32 [2,3], "b" f16 [5], "c" f32 [1]. */
static const uint16_t halves[5] = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x8000};  /* 1, -2, 2^-24, 65504, -0 */
static const float expect_b[5] = {1.0f, -2.0f, 5.9604644775390625e-08f, 65504.0f, -0.0f};

static buf make_file(void)
{
    buf o = {0};
    put(&o, "CSAN", 4);
    u32(&o, 1);
    u32(&o, 6);
    u32(&o, 3);
    str(&o, "general.name"); u32(&o, CSASN__T_STR); str(&o, "t\"est\n\xc3\xa9");
    str(&o, "csasn.input_size"); u32(&o, CSASN__T_U32); u32(&o, 224);
    str(&o, "x.neg"); u32(&o, CSASN__T_I32); u32(&o, (uint32_t)-5);
    str(&o, "csasn.mean"); u32(&o, CSASN__T_ARR); u32(&o, CSASN__T_F32); u32(&o, 3);
    f32(&o, 0.485f); f32(&o, 0.5f); f32(&o, 0.25f);
    str(&o, "csasn.labels"); u32(&o, CSASN__T_ARR); u32(&o, CSASN__T_STR); u32(&o, 2);
    str(&o, "benign"); str(&o, "malignant");
    str(&o, "csasn.malignant_labels"); u32(&o, CSASN__T_ARR); u32(&o, CSASN__T_STR); u32(&o, 0);
    str(&o, "a.w"); u32(&o, CSASN__DT_F32); u32(&o, 2); u32(&o, 2); u32(&o, 3); u64(&o, 0);
    str(&o, "b"); u32(&o, CSASN__DT_F16); u32(&o, 1); u32(&o, 5); u64(&o, 64);
    str(&o, "c"); u32(&o, CSASN__DT_F32); u32(&o, 1); u32(&o, 1); u64(&o, 128);
    pad64(&o);
    for (int i = 0; i < 6; i++)
        f32(&o, (float)i - 2.5f);
    pad64(&o);
    for (int i = 0; i < 5; i++) {
        unsigned char c[2] = {halves[i] & 255, halves[i] >> 8};
        put(&o, c, 2);
    }
    pad64(&o);
    f32(&o, 7.0f);
    return o;
}

int main(void)
{
    buf o = make_file();
    csasn__file f;
    const char *err = csasn__file_parse(&f, o.b, o.n);
    check("valid_file_parses", !err, err);
    if (err)
        return 1;
    check("counts", f.version == 1 && f.n_kv == 6 && f.n_tensors == 3, "");

    uint32_t u;
    float fl;
    const char *s;
    const float *fa;
    const uint32_t *ua;
    char *const *sa;
    uint32_t n;
    check("meta_u32", !csasn__meta_u32(&f, "csasn.input_size", &u) && u == 224, "");
    check("meta_str", !csasn__meta_str(&f, "general.name", &s) && !strcmp(s, "t\"est\n\xc3\xa9"), "");
    check("meta_f32_array", !csasn__meta_f32_array(&f, "csasn.mean", &fa, &n) && n == 3 && fa[0] == 0.485f && fa[2] == 0.25f, "");
    check("meta_str_array", !csasn__meta_str_array(&f, "csasn.labels", &sa, &n) && n == 2 && !strcmp(sa[1], "malignant"), "");
    check("empty_array_any_type", !csasn__meta_u32_array(&f, "csasn.malignant_labels", &ua, &n) && n == 0, "");
    err = csasn__meta_u32(&f, "nope", &u);
    check("meta_missing", err && strstr(err, "'nope' missing"), err);
    err = csasn__meta_f32(&f, "csasn.input_size", &fl);
    check("meta_wrong_type", err && strstr(err, "has type u32, expected f32"), err);
    err = csasn__meta_u32(&f, "x.neg", &u);
    check("meta_negative_not_u32", err && strstr(err, "i32"), err);
    err = csasn__meta_u32_array(&f, "csasn.mean", &ua, &n);
    check("meta_array_wrong_type", err && strstr(err, "f32[3]"), err);

    csasn__tensor *a = csasn__file_tensor(&f, "a.w"), *b = csasn__file_tensor(&f, "b");
    check("tensor_lookup", a && b && !csasn__file_tensor(&f, "zz") && a->used && b->used && !f.tensors[2].used, "");
    check("tensor_shape", a && a->rank == 2 && a->dims[0] == 2 && a->dims[1] == 3 && a->numel == 6, "");
    float dst[6];
    err = csasn__tensor_to_f32(a, dst);
    check("f32_data", !err && dst[0] == -2.5f && dst[5] == 2.5f, err);
    err = csasn__tensor_to_f32(b, dst);
    int same = !err;
    for (int i = 0; i < 5 && same; i++)
        same = dst[i] == expect_b[i] && signbit(dst[i]) == signbit(expect_b[i]);
    check("f16_to_f32_exact (1, -2, subnormal, max, -0)", same, err);

    /* NaN / Inf in f16 and f32 data. */
    unsigned char nan16[2] = {0x01, 0x7E}, inf16[2] = {0x00, 0xFC}, nan32[4] = {0, 0, 0xC0, 0x7F};
    csasn__tensor t = {.name = "w", .dtype = CSASN__DT_F16, .rank = 1, .numel = 1, .data = nan16};
    err = csasn__tensor_to_f32(&t, dst);
    check("f16_nan_rejected", err && strstr(err, "'w' contains NaN"), err);
    t.data = inf16;
    err = csasn__tensor_to_f32(&t, dst);
    check("f16_inf_rejected", err && strstr(err, "infinite"), err);
    t.dtype = CSASN__DT_F32;
    t.data = nan32;
    err = csasn__tensor_to_f32(&t, dst);
    check("f32_nan_rejected", err && strstr(err, "NaN"), err);

    char *js = csasn__file_meta_json(&f);
    const char *want = "{\"general.name\": \"t\\\"est\\n\xc3\xa9\", \"csasn.input_size\": 224, \"x.neg\": -5, "
                       "\"csasn.mean\": [0.485, 0.5, 0.25], \"csasn.labels\": [\"benign\", \"malignant\"], "
                       "\"csasn.malignant_labels\": []}";
    check("meta_json", js && !strcmp(js, want), js);
    free(js);
    csasn__file_free(&f);

    /* Every truncation of the file is rejected (the last tensor's data is the
     * last 4 bytes, so every shorter prefix misses something). */
    int bad = 0;
    for (size_t len = 0; len < o.n; len++) {
        err = csasn__file_parse(&f, o.b, len);
        if (!err) {
            bad++;
            csasn__file_free(&f);
        } else if (len >= 16 && !strstr(err, "truncated") && !strstr(err, "UTF-8")) {
            bad++;
            printf("# truncated at %zu: %s\n", len, err);
        }
    }
    check("every_truncation_rejected", bad == 0, "some prefix parsed or gave an unclear message");

    /* Every single-byte change in the header: no crash, and when it parses,
     * every tensor lies inside the buffer. */
    size_t hdr_end = 0;
    {
        /* data starts at the first 64-aligned offset holding a.w = -2.5f */
        float first = -2.5f;
        for (size_t i = 0; i + 4 <= o.n; i += 64)
            if (!memcmp(o.b + i, &first, 4)) { hdr_end = i; break; }
    }
    int outside = 0, parsed = 0;
    for (size_t i = 0; i < hdr_end; i++)
        for (int v = 0; v < 256; v += 17) {
            unsigned char keep = o.b[i];
            o.b[i] = (unsigned char)(keep ^ (v ? v : 0x80));
            if (!csasn__file_parse(&f, o.b, o.n)) {
                parsed++;
                for (uint32_t k = 0; k < f.n_tensors; k++) {
                    const unsigned char *d = f.tensors[k].data;
                    size_t bytes = f.tensors[k].numel * (f.tensors[k].dtype ? 2 : 4);
                    if (d < o.b || d + bytes > o.b + o.n)
                        outside++;
                }
                csasn__file_free(&f);
            }
            o.b[i] = keep;
        }
    char why[64];
    snprintf(why, sizeof why, "%d tensors outside the buffer", outside);
    check("byte_changes_never_point_outside", hdr_end > 0 && outside == 0, why);
    printf("# %d of %zu changed headers still parse (e.g. a changed name)\n", parsed, hdr_end * 16);

    /* Hostile counts: a huge array count must not allocate or read past the end. */
    buf h = {0};
    put(&h, "CSAN", 4);
    u32(&h, 1); u32(&h, 1); u32(&h, 0);
    str(&h, "k"); u32(&h, CSASN__T_ARR); u32(&h, CSASN__T_F32); u32(&h, 0x40000000);
    err = csasn__file_parse(&f, h.b, h.n);
    check("huge_array_count", err && strstr(err, "truncated") && strstr(err, "'k'"), err);
    h.n = 0;
    put(&h, "CSAN", 4);
    u32(&h, 1); u32(&h, 1); u32(&h, 0);
    str(&h, "k"); u32(&h, CSASN__T_ARR); u32(&h, CSASN__T_ARR); u32(&h, 1);
    err = csasn__file_parse(&f, h.b, h.n);
    check("array_of_arrays_rejected", err && strstr(err, "element type"), err);
    h.n = 0;
    put(&h, "CSAN", 4);
    u32(&h, 1); u32(&h, 1); u32(&h, 0);
    str(&h, "k"); u32(&h, CSASN__T_STR); str(&h, "bad\xff utf8");
    err = csasn__file_parse(&f, h.b, h.n);
    check("invalid_utf8_rejected", err && strstr(err, "UTF-8"), err);
    h.n = 0;
    put(&h, "CSAN", 4);
    u32(&h, 1); u32(&h, 0); u32(&h, 0);
    err = csasn__file_parse(&f, h.b, h.n);
    check("empty_model_parses", !err && f.n_kv == 0 && f.n_tensors == 0, err);
    if (!err)
        csasn__file_free(&f);

    /* Errors can wrap earlier errors (same thread-local buffer). */
    const char *e1 = csasn__errf("inner %d", 42);
    const char *e2 = csasn__errf("outer: %s", e1);
    check("errf_wraps_itself", !strcmp(e2, "outer: inner 42"), e2);

    free(o.b);
    free(h.b);
    return failures ? 1 : 0;
}
