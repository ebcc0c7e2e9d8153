/* exports.c - the wasm boundary: thin wrappers over csasn.h that JavaScript
 * can call with plain numbers (pointers are i32 offsets into wasm memory).
 *
 * Why a separate layer: csasn.h returns errors through the return value and
 * results through out-pointers to structs whose layout depends on the C ABI.
 * JavaScript reads memory by offset, so these wrappers flatten everything into
 * one struct made only of 4-byte fields (csasn_wasm_result, below), whose word
 * offsets shell/csasn.js hard-codes; the static assertions keep both in step.
 * The last error message is kept so a failing call can return 0/NULL and
 * JavaScript fetches the text afterwards with csasn_wasm_error().
 *
 * Nothing here prints: the wasm build has no stdio (the download stays small).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "csasn.h"

#ifdef __EMSCRIPTEN__
#include <emscripten/emscripten.h>
#define CSASN_WASM_EXPORT EMSCRIPTEN_KEEPALIVE
#else
#define CSASN_WASM_EXPORT
#endif

/* Word layout read by shell/csasn.js (RESULT_WORDS there). Every field is 4
 * bytes on wasm32 (pointers included), so field i is at byte offset 4*i. */
typedef struct {
    int32_t n_classes;        /* 0 */
    int32_t top;              /* 1 */
    int32_t has_malignancy;   /* 2 */
    float malignancy;         /* 3  NAN when absent */
    const float *probs;       /* 4  [n_classes] */
    const float *logits;      /* 5  [n_classes] */
    const float *attention;   /* 6  [att_h][att_w] or NULL */
    int32_t att_h;            /* 7 */
    int32_t att_w;            /* 8 */
    const float *mask;        /* 9  [mask_h][mask_w] or NULL */
    int32_t mask_h;           /* 10 */
    int32_t mask_w;           /* 11 */
    int32_t image_w;          /* 12 */
    int32_t image_h;          /* 13 */
    /* ---- region geometry and descriptor heads ---- */
    int32_t region_x;         /* 14 the region the input shows, upright pixels */
    int32_t region_y;         /* 15 */
    int32_t region_w;         /* 16 0 from csasn_wasm_forward */
    int32_t region_h;         /* 17 */
    int32_t n_descriptors;    /* 18 */
    const csasn_descriptor *descriptors;   /* 19 [n_descriptors], the model's own (5 words each, below) */
    /* ---- the input: format, frame, ROI, sizes in mm, warnings (csasn_result's block) ---- */
    const char *format;       /* 20 */
    int32_t frame;            /* 21 */
    int32_t frames;           /* 22 */
    int32_t roi_x;            /* 23  the box classified (roi) */
    int32_t roi_y;            /* 24 */
    int32_t roi_w;            /* 25 */
    int32_t roi_h;            /* 26 */
    int32_t roi_source;       /* 27  CSASN_ROI_* */
    int32_t has_spacing;      /* 28 */
    float spacing_x;          /* 29  mm per pixel */
    float spacing_y;          /* 30 */
    float roi_mm_w;           /* 31 */
    float roi_mm_h;           /* 32 */
    int32_t has_lesion;       /* 33 */
    float lesion_px_long;     /* 34 */
    float lesion_px_short;    /* 35 */
    float lesion_mm_long;     /* 36 */
    float lesion_mm_short;    /* 37 */
    const char *modality;     /* 38 */
    const char *manufacturer; /* 39 */
    int32_t n_warnings;       /* 40 */
    const char *warning0;     /* 41 */
    const char *warning1;     /* 42 */
    const char *warning2;     /* 43 */
    const char *warning3;     /* 44 */
} csasn_wasm_result;

#if defined(__wasm32__)
_Static_assert(sizeof(csasn_wasm_result) == 45 * 4, "csasn.js reads 45 words");
_Static_assert(offsetof(csasn_wasm_result, image_h) == 13 * 4, "layout drifted from csasn.js");
_Static_assert(offsetof(csasn_wasm_result, descriptors) == 19 * 4, "layout drifted from csasn.js");
_Static_assert(offsetof(csasn_wasm_result, format) == 20 * 4, "layout drifted from csasn.js");
_Static_assert(offsetof(csasn_wasm_result, warning3) == 44 * 4, "layout drifted from csasn.js");
/* csasn_descriptor (csasn.h) is read in place: name, n_labels, labels, probs, top. */
_Static_assert(sizeof(csasn_descriptor) == 5 * 4, "csasn.js reads csasn_descriptor as 5 words");
_Static_assert(offsetof(csasn_descriptor, top) == 4 * 4, "csasn_descriptor drifted from csasn.js");
#endif

/* One result per module instance is enough: a model serves one inference at
 * a time (csasn.h) and the JS wrapper copies the values out before returning. */
static csasn_wasm_result g_result;
static const char *g_error;
/* Owned copy of the last error: the library's strings are only valid until
 * the next call, and JavaScript reads the text after another call returns. */
static char g_error_buf[512];

static void set_error(const char *msg)
{
    if (!msg) {
        g_error = NULL;
        return;
    }
    size_t n = strlen(msg);
    if (n >= sizeof g_error_buf) n = sizeof g_error_buf - 1;
    memcpy(g_error_buf, msg, n);
    g_error_buf[n] = 0;
    g_error = g_error_buf;
}

static void fill_result(const csasn_result *r)
{
    g_result.n_classes = r->n_classes;
    g_result.top = r->top;
    g_result.has_malignancy = r->has_malignancy;
    g_result.malignancy = r->has_malignancy ? r->malignancy : NAN;
    g_result.probs = r->probs;
    g_result.logits = r->logits;
    g_result.attention = r->attention;
    g_result.att_h = r->attention ? r->att_h : 0;
    g_result.att_w = r->attention ? r->att_w : 0;
    g_result.mask = r->mask;
    g_result.mask_h = r->mask ? r->mask_h : 0;
    g_result.mask_w = r->mask ? r->mask_w : 0;
    g_result.image_w = r->image_w;
    g_result.image_h = r->image_h;
    g_result.region_x = r->region_x;
    g_result.region_y = r->region_y;
    g_result.region_w = r->region_w;
    g_result.region_h = r->region_h;
    g_result.n_descriptors = r->n_descriptors;
    g_result.descriptors = r->n_descriptors ? r->descriptors : NULL;
    /* the input block */
    g_result.format = r->format;
    g_result.frame = r->frame;
    g_result.frames = r->frames;
    g_result.roi_x = r->roi.x;
    g_result.roi_y = r->roi.y;
    g_result.roi_w = r->roi.w;
    g_result.roi_h = r->roi.h;
    g_result.roi_source = r->roi_source;
    g_result.has_spacing = r->has_spacing;
    g_result.spacing_x = r->spacing_mm[0];
    g_result.spacing_y = r->spacing_mm[1];
    g_result.roi_mm_w = r->roi_mm[0];
    g_result.roi_mm_h = r->roi_mm[1];
    g_result.has_lesion = r->has_lesion;
    g_result.lesion_px_long = r->lesion_px[0];
    g_result.lesion_px_short = r->lesion_px[1];
    g_result.lesion_mm_long = r->lesion_mm[0];
    g_result.lesion_mm_short = r->lesion_mm[1];
    g_result.modality = r->modality;
    g_result.manufacturer = r->manufacturer;
    g_result.n_warnings = r->n_warnings;
    g_result.warning0 = r->warnings[0];
    g_result.warning1 = r->warnings[1];
    g_result.warning2 = r->warnings[2];
    g_result.warning3 = r->warnings[3];
}

/* The message of the last failed call ("" when the last call succeeded). */
CSASN_WASM_EXPORT const char *csasn_wasm_error(void)
{
    return g_error ? g_error : "";
}

/* Buffers JavaScript fills before a call. Separate names from malloc/free so
 * the JS side never depends on which allocator symbols the linker kept. */
CSASN_WASM_EXPORT void *csasn_wasm_alloc(uint32_t n)
{
    return malloc(n ? n : 1);
}

CSASN_WASM_EXPORT void csasn_wasm_free(void *p)
{
    free(p);
}

/* Model bytes at buf[len] -> model handle, or 0 with csasn_wasm_error() set.
 * The loader repacks the weights, so the caller frees buf right after. */
CSASN_WASM_EXPORT csasn_model *csasn_wasm_load(const void *buf, uint32_t len)
{
    csasn_model *m = NULL;
    const char *err = csasn_model_load(&m, buf, len);
    set_error(err);
    if (err) {
        if (m) csasn_model_free(m);
        return NULL;
    }
    return m;
}

CSASN_WASM_EXPORT void csasn_wasm_model_free(csasn_model *m)
{
    if (m) csasn_model_free(m);
}

CSASN_WASM_EXPORT const char *csasn_wasm_info_json(const csasn_model *m)
{
    return csasn_model_info_json(m);
}

CSASN_WASM_EXPORT const char *csasn_wasm_name(const csasn_model *m)
{
    return csasn_model_name(m);
}

CSASN_WASM_EXPORT int csasn_wasm_num_classes(const csasn_model *m)
{
    return csasn_num_classes(m);
}

CSASN_WASM_EXPORT const char *csasn_wasm_label(const csasn_model *m, int i)
{
    return csasn_label(m, i);
}

CSASN_WASM_EXPORT int csasn_wasm_label_is_malignant(const csasn_model *m, int i)
{
    return csasn_label_is_malignant(m, i);
}

CSASN_WASM_EXPORT int csasn_wasm_input_size(const csasn_model *m)
{
    return csasn_input_size(m);
}

/* Image bytes -> result, or 0 with csasn_wasm_error() set. has_roi = 0 means
 * the whole image (x, y, w, h ignored). */
CSASN_WASM_EXPORT const csasn_wasm_result *csasn_wasm_classify(csasn_model *m, const void *bytes,
                                                               uint32_t len, int has_roi, int x,
                                                               int y, int w, int h)
{
    csasn_roi roi = {x, y, w, h};
    csasn_result r;
    memset(&r, 0, sizeof r);
    const char *err = csasn_classify(m, bytes, len, has_roi ? &roi : NULL, &r);
    set_error(err);
    if (err) return NULL;
    fill_result(&r);
    return &g_result;
}

/* csasn_wasm_classify with the frame of a multi-frame (DICOM) file, from 1. */
CSASN_WASM_EXPORT const csasn_wasm_result *csasn_wasm_classify_ex(csasn_model *m, const void *bytes,
                                                                  uint32_t len, int has_roi, int x, int y,
                                                                  int w, int h, int frame)
{
    csasn_roi roi = {x, y, w, h};
    csasn_options o = {frame, has_roi ? &roi : NULL};
    csasn_result r;
    memset(&r, 0, sizeof r);
    const char *err = csasn_classify_ex(m, bytes, len, &o, &r);
    set_error(err);
    if (err) return NULL;
    fill_result(&r);
    return &g_result;
}

/* Forward pass on a preprocessed input[3][S][S] (benchmarks and parity with
 * other runtimes feed identical tensors). image_w/h are 0 in the result. */
CSASN_WASM_EXPORT const csasn_wasm_result *csasn_wasm_forward(csasn_model *m, const float *input)
{
    csasn_result r;
    memset(&r, 0, sizeof r);
    const char *err = csasn_forward(m, input, &r);
    set_error(err);
    if (err) return NULL;
    fill_result(&r);
    return &g_result;
}

/* shape_out receives 4 ints then the rank (5 words). Returns NULL for an
 * unknown name. */
CSASN_WASM_EXPORT const float *csasn_wasm_debug_tensor(const csasn_model *m, const char *name,
                                                       int32_t *shape_out)
{
    int shape[4] = {0, 0, 0, 0}, rank = 0;
    const float *p = csasn_debug_tensor(m, name, shape, &rank);
    for (int i = 0; i < 4; i++) shape_out[i] = shape[i];
    shape_out[4] = p ? rank : 0;
    return p;
}

CSASN_WASM_EXPORT void csasn_wasm_set_profiling(csasn_model *m, int on)
{
    csasn_set_profiling(m, on);
}

CSASN_WASM_EXPORT const char *csasn_wasm_profile_json(const csasn_model *m)
{
    return csasn_profile_json(m);
}

/* Runs the hot kernels on scratch data (rounds times) so that V8 optimises
 * them before the first real image: the worker calls it while the model
 * downloads. 0, or -1 if out of memory. */
CSASN_WASM_EXPORT int csasn_wasm_warmup(int rounds)
{
    return csasn_warmup(rounds) ? -1 : 0;
}

/* The kernels' known-answer self-test (csasn_selftest): 0, or -1 with the
 * reason in csasn_wasm_error(). shell/csasn.js runs it on the relaxed-SIMD
 * engine before using it. */
CSASN_WASM_EXPORT int csasn_wasm_selftest(void)
{
    const char *e = csasn_selftest();
    set_error(e);
    return e ? -1 : 0;
}

/* "wasm-simd128" or "wasm-relaxed-simd": which engine this instance is. */
CSASN_WASM_EXPORT const char *csasn_wasm_kernels_name(void)
{
    return csasn_kernels_name();
}

/* Byte offset of every field of csasn_wasm_result, in declaration order, then
 * sizeof: out[] gets at most n of those values; returns their count. shell/csasn.js
 * compares them with the offsets it reads at, field by field, before it uses
 * an engine, so a reordered or resized field fails loudly instead of being
 * read as another. */
CSASN_WASM_EXPORT int csasn_wasm_result_layout(int32_t *out, int n)
{
    const int32_t v[] = {
        (int32_t)offsetof(csasn_wasm_result, n_classes),
        (int32_t)offsetof(csasn_wasm_result, top),
        (int32_t)offsetof(csasn_wasm_result, has_malignancy),
        (int32_t)offsetof(csasn_wasm_result, malignancy),
        (int32_t)offsetof(csasn_wasm_result, probs),
        (int32_t)offsetof(csasn_wasm_result, logits),
        (int32_t)offsetof(csasn_wasm_result, attention),
        (int32_t)offsetof(csasn_wasm_result, att_h),
        (int32_t)offsetof(csasn_wasm_result, att_w),
        (int32_t)offsetof(csasn_wasm_result, mask),
        (int32_t)offsetof(csasn_wasm_result, mask_h),
        (int32_t)offsetof(csasn_wasm_result, mask_w),
        (int32_t)offsetof(csasn_wasm_result, image_w),
        (int32_t)offsetof(csasn_wasm_result, image_h),
        /* region geometry and descriptor heads */
        (int32_t)offsetof(csasn_wasm_result, region_x),
        (int32_t)offsetof(csasn_wasm_result, region_y),
        (int32_t)offsetof(csasn_wasm_result, region_w),
        (int32_t)offsetof(csasn_wasm_result, region_h),
        (int32_t)offsetof(csasn_wasm_result, n_descriptors),
        (int32_t)offsetof(csasn_wasm_result, descriptors),
        /* the input block */
        (int32_t)offsetof(csasn_wasm_result, format),
        (int32_t)offsetof(csasn_wasm_result, frame),
        (int32_t)offsetof(csasn_wasm_result, frames),
        (int32_t)offsetof(csasn_wasm_result, roi_x),
        (int32_t)offsetof(csasn_wasm_result, roi_y),
        (int32_t)offsetof(csasn_wasm_result, roi_w),
        (int32_t)offsetof(csasn_wasm_result, roi_h),
        (int32_t)offsetof(csasn_wasm_result, roi_source),
        (int32_t)offsetof(csasn_wasm_result, has_spacing),
        (int32_t)offsetof(csasn_wasm_result, spacing_x),
        (int32_t)offsetof(csasn_wasm_result, spacing_y),
        (int32_t)offsetof(csasn_wasm_result, roi_mm_w),
        (int32_t)offsetof(csasn_wasm_result, roi_mm_h),
        (int32_t)offsetof(csasn_wasm_result, has_lesion),
        (int32_t)offsetof(csasn_wasm_result, lesion_px_long),
        (int32_t)offsetof(csasn_wasm_result, lesion_px_short),
        (int32_t)offsetof(csasn_wasm_result, lesion_mm_long),
        (int32_t)offsetof(csasn_wasm_result, lesion_mm_short),
        (int32_t)offsetof(csasn_wasm_result, modality),
        (int32_t)offsetof(csasn_wasm_result, manufacturer),
        (int32_t)offsetof(csasn_wasm_result, n_warnings),
        (int32_t)offsetof(csasn_wasm_result, warning0),
        (int32_t)offsetof(csasn_wasm_result, warning1),
        (int32_t)offsetof(csasn_wasm_result, warning2),
        (int32_t)offsetof(csasn_wasm_result, warning3),
        (int32_t)sizeof(csasn_wasm_result),
    };
    int total = (int)(sizeof v / sizeof v[0]);
    for (int i = 0; i < n && i < total; i++)
        out[i] = v[i];
    return total;
}

/* The same for csasn_descriptor (each entry of result.descriptors): the
 * offsets of name, n_labels, labels, probs, top, then sizeof; returns 6. */
CSASN_WASM_EXPORT int csasn_wasm_descriptor_layout(int32_t *out, int n)
{
    const int32_t v[] = {
        (int32_t)offsetof(csasn_descriptor, name),
        (int32_t)offsetof(csasn_descriptor, n_labels),
        (int32_t)offsetof(csasn_descriptor, labels),
        (int32_t)offsetof(csasn_descriptor, probs),
        (int32_t)offsetof(csasn_descriptor, top),
        (int32_t)sizeof(csasn_descriptor),
    };
    int total = (int)(sizeof v / sizeof v[0]);
    for (int i = 0; i < n && i < total; i++)
        out[i] = v[i];
    return total;
}

/* The region of an image_w x image_h image the model reads for the ROI
 * (csasn_model_region): out[4] = x, y, w, h; 0, or -1 with csasn_wasm_error()
 * set. has_roi = 0: the whole image. */
CSASN_WASM_EXPORT int csasn_wasm_region(const csasn_model *m, int image_w, int image_h, int has_roi, int x,
                                        int y, int w, int h, int32_t *out)
{
    csasn_roi roi = {x, y, w, h}, r;
    const char *err = csasn_model_region(m, image_w, image_h, has_roi ? &roi : NULL, &r);
    set_error(err);
    if (err) return -1;
    out[0] = r.x;
    out[1] = r.y;
    out[2] = r.w;
    out[3] = r.h;
    return 0;
}

/* Image bytes -> out[side][side] gray preview (csasn_preview), 0 or -1 with
 * csasn_wasm_error() set; side from csasn_wasm_preview_side(w, h). */
CSASN_WASM_EXPORT int csasn_wasm_preview(const void *bytes, uint32_t len, int side, uint8_t *out)
{
    const char *err = csasn_preview(bytes, len, side, out, NULL, NULL);
    set_error(err);
    return err ? -1 : 0;
}

/* csasn_wasm_preview of one frame (from 1) of a multi-frame (DICOM) file. */
CSASN_WASM_EXPORT int csasn_wasm_preview_frame(const void *bytes, uint32_t len, int frame, int side, uint8_t *out)
{
    const char *err = csasn_preview_frame(bytes, len, frame, side, out, NULL, NULL);
    set_error(err);
    return err ? -1 : 0;
}

CSASN_WASM_EXPORT int csasn_wasm_preview_side(int image_w, int image_h)
{
    return csasn_preview_side(image_w, image_h);
}

/* ---------------------------------------------------------------- adaptation
 * On-device adaptation (csasn_adapt_* in csasn.h) for the worker. Lists of
 * names travel as one '\n'-separated string (a class name cannot hold a
 * control character, csasn.h). */

static int split_names(char *s, const char **out, int max)
{
    int n = 0;
    if (!s || !*s) return 0;
    for (char *p = s; n < max;) {
        out[n++] = p;
        char *q = strchr(p, '\n');
        if (!q) break;
        *q = 0;
        p = q + 1;
    }
    return n;
}

CSASN_WASM_EXPORT csasn_adapt *csasn_wasm_adapt_new(const void *base, uint32_t len, char *classes, char *malignant,
                                                    int folds, int views, int epochs, uint32_t seed)
{
    static const char *cls[CSASN_ADAPT_MAX_CLASSES + 1], *mal[CSASN_ADAPT_MAX_CLASSES + 1];
    int nc = split_names(classes, cls, CSASN_ADAPT_MAX_CLASSES + 1);
    int nm = split_names(malignant, mal, CSASN_ADAPT_MAX_CLASSES + 1);
    csasn_adapt_options o;
    csasn_adapt_default_options(&o);
    if (folds > 0) o.folds = folds;
    if (views > 0) o.views = views;
    if (epochs > 0) o.epochs = epochs;
    o.seed = seed;
    csasn_adapt *a = NULL;
    set_error(csasn_adapt_new(&a, base, len, cls, nc, mal, nm, &o));
    return a;
}

CSASN_WASM_EXPORT int csasn_wasm_adapt_add_image(csasn_adapt *a, int cls, const char *group, const void *bytes, uint32_t len)
{
    const char *e = csasn_adapt_add_image(a, cls, group, bytes, len, NULL);
    set_error(e);
    return e ? -1 : 0;
}

CSASN_WASM_EXPORT int csasn_wasm_adapt_count(const csasn_adapt *a, int cls) { return csasn_adapt_count(a, cls); }

static double g_adapt_progress;

/* One unit of training: 1 done, 0 more to do, -1 error; csasn_wasm_adapt_progress() after. */
CSASN_WASM_EXPORT int csasn_wasm_adapt_step(csasn_adapt *a)
{
    int done = 0;
    const char *e = csasn_adapt_step(a, &g_adapt_progress, &done);
    set_error(e);
    return e ? -1 : done;
}

CSASN_WASM_EXPORT double csasn_wasm_adapt_progress(void) { return g_adapt_progress; }

CSASN_WASM_EXPORT const char *csasn_wasm_adapt_report(const csasn_adapt *a) { return csasn_adapt_report_json(a); }

static uint32_t g_adapt_len;

/* The adapted file (free it with csasn_wasm_free); its length from csasn_wasm_adapt_written_len(). */
CSASN_WASM_EXPORT void *csasn_wasm_adapt_write(const csasn_adapt *a, const char *name, const char *date)
{
    void *out = NULL;
    size_t len = 0;
    const char *e = csasn_adapt_write(a, name && *name ? name : NULL, date, &out, &len);
    set_error(e);
    g_adapt_len = (uint32_t)len;
    return e ? NULL : out;
}

CSASN_WASM_EXPORT uint32_t csasn_wasm_adapt_written_len(void) { return g_adapt_len; }

CSASN_WASM_EXPORT void csasn_wasm_adapt_free(csasn_adapt *a) { csasn_adapt_free(a); }
/* ---- exam report (src/report.c): the page's report is built by the same C
 * as `csasn report`, in the worker that holds the model. ---- */

/* model_sha256, date: NUL-terminated strings (csasn_report_new). 0 on error. */
CSASN_WASM_EXPORT csasn_report *csasn_wasm_report_new(const csasn_model *m, const char *model_sha256,
                                                      const char *date)
{
    csasn_report *r = NULL;
    set_error(csasn_report_new(&r, m, model_sha256, date));
    return r;
}

/* One image: strings NUL-terminated (nodule/view may be 0), probs[n] as the
 * classification returned them, malignancy used when has_malignancy, size_mm
 * NAN when unknown. 0, or -1 with csasn_wasm_error() set. */
CSASN_WASM_EXPORT int csasn_wasm_report_add(csasn_report *r, const char *name, const char *nodule,
                                            const char *view, int has_roi, int x, int y, int w, int h,
                                            const float *probs, int n, int has_malignancy,
                                            float malignancy, int image_w, int image_h, double size_mm)
{
    csasn_roi roi = {x, y, w, h};
    csasn_result res;
    memset(&res, 0, sizeof res);
    res.n_classes = n;
    res.probs = probs;
    res.has_malignancy = has_malignancy;
    res.malignancy = has_malignancy ? malignancy : NAN;
    res.image_w = image_w;
    res.image_h = image_h;
    csasn_report_image img = {name, nodule, view, has_roi ? &roi : NULL, &res, size_mm};
    const char *err = csasn_report_add(r, &img);
    set_error(err);
    return err ? -1 : 0;
}

/* The document (fhir 0: csasn-report JSON, 1: FHIR R4 Bundle), owned by r; 0 on error. */
CSASN_WASM_EXPORT const char *csasn_wasm_report_json(csasn_report *r, int fhir)
{
    const char *out = NULL;
    set_error(csasn_report_json(r, fhir, &out));
    return out;
}

CSASN_WASM_EXPORT void csasn_wasm_report_free(csasn_report *r)
{
    csasn_report_free(r);
}
