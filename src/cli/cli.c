/* cli.c - build/csasn, the native command line (contract in README.md): a
 * program over the library's public header, as any other user of it.
 *
 *   csasn classify   --model FILE [--roi X,Y,W,H] [--frame N] [--attention] [--mask] IMAGE...
 *   csasn info       --model FILE
 *   csasn bench      --model FILE [--runs N] [--profile] [IMAGE]
 *   csasn dump       --model FILE [--roi X,Y,W,H] --tensor NAME [--out FILE.f32] IMAGE
 *   csasn preprocess --model FILE [--roi X,Y,W,H] --out FILE.f32 IMAGE
 *   csasn decode     [--frame N] --out FILE.pgm|.ppm DICOM   (the frame as decoded)
 *   csasn report     --model FILE [--fhir] [--date T] [[--nodule L] [--view V] [--roi R] IMAGE]...
 *
 * Exit status: 0 success; 1 a model or an image failed (message says why);
 * 2 usage error or a file that cannot be read.
 * Files are read whole into memory and handed to the library, which is what
 * the browser build does with fetched bytes.
 */
#include "csasn.h"
#include "adapt_cmd.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The same limit as the engine, the API and the page (csasn.h). */
#define MAX_IMAGE_BYTES CSASN_MAX_IMAGE_BYTES

static const char *usage_text =
    "usage: csasn <command> [options]\n"
    "  classify   --model FILE [--roi X,Y,W,H] [--frame N] [--attention] [--mask] IMAGE...\n"
    "             one JSON line per image: image, model, labels, probs, top, malignancy,\n"
    "             region (what the model read), descriptors, format, frame, frames, roi (the box\n"
    "             classified), spacing_mm, roi_mm, lesion_px, lesion_mm, warnings, ms\n"
    "             (--frame: the frame of a multi-frame DICOM file, from 1)\n"
    "  info       --model FILE                      metadata and tensor count as JSON\n"
    "  bench      --model FILE [--runs N] [--profile] [IMAGE]\n"
    "             forward-pass latency (3 warm-up runs; synthetic input if no IMAGE)\n"
    "  dump       --model FILE [--roi X,Y,W,H] --tensor NAME [--out FILE.f32] IMAGE\n"
    "             an intermediate tensor of the forward pass (\"input\", \"cnn.tap8\", ...)\n"
    "  preprocess --model FILE [--roi X,Y,W,H] --out FILE.f32 IMAGE\n"
    "             the normalised [3,S,S] input as raw little-endian float32\n"
    "  decode     [--frame N] --out FILE DICOM      a DICOM frame as decoded: PGM (gray) or PPM (colour),\n"
    "             16-bit samples big-endian when the frame has them\n"
    "%s"
    "  report     --model FILE [--fhir] [--date YYYY-MM-DDThh:mm:ssZ]\n"
    "             [[--nodule LABEL] [--view transverse|longitudinal|other] [--roi X,Y,W,H]\n"
    "             [--size-mm MM] IMAGE]...  the exam report (csasn-report JSON, or a FHIR R4\n"
    "             Bundle with --fhir); per-image options apply to the IMAGE that follows them\n"
    "exit status: 0 ok, 1 a model or image failed, 2 usage error or unreadable file\n";

static int usage(const char *fmt, const char *arg)
{
    fputs("csasn: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    fprintf(stderr, usage_text, csasn_cli_adapt_usage);
    return 2;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ files */

/* Reads a whole file. Returns NULL, or an error message (static buffer);
 * *too_big tells "exists but over the cap" from "cannot be read". */
static const char *read_file(const char *path, size_t cap, unsigned char **out, size_t *len, int *too_big)
{
    static char msg[600];
    *out = NULL;
    *len = 0;
    *too_big = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, sizeof msg, "cannot open '%s': %s", path, strerror(errno));
        return msg;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        snprintf(msg, sizeof msg, "cannot read '%s': is a directory", path);
        return msg;
    }
    size_t cap_alloc = 1 << 16, n = 0;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size <= cap)
        cap_alloc = (size_t)st.st_size + 1;
    unsigned char *buf = malloc(cap_alloc);
    for (;;) {
        if (!buf) {
            fclose(f);
            snprintf(msg, sizeof msg, "out of memory reading '%s'", path);
            return msg;
        }
        if (n == cap_alloc) {
            if (n > cap) {
                free(buf);
                fclose(f);
                *too_big = 1;
                snprintf(msg, sizeof msg, "'%s' is larger than the %zu MiB limit", path, cap >> 20);
                return msg;
            }
            size_t grow = cap_alloc > cap / 2 ? cap + 1 : cap_alloc * 2;   /* never past cap + 1 */
            unsigned char *p = realloc(buf, grow);
            if (!p)
                free(buf);
            buf = p;
            cap_alloc = grow;
            continue;
        }
        size_t r = fread(buf + n, 1, cap_alloc - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                int e = errno;
                free(buf);
                fclose(f);
                snprintf(msg, sizeof msg, "cannot read '%s': %s", path, strerror(e));
                return msg;
            }
            break;
        }
    }
    fclose(f);
    if (n > cap) {
        free(buf);
        *too_big = 1;
        snprintf(msg, sizeof msg, "'%s' is larger than the %zu MiB limit", path, cap >> 20);
        return msg;
    }
    *out = buf;
    *len = n;
    return NULL;
}

/* ------------------------------------------------------------------ JSON */

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0: overlong
 * forms, surrogates and code points past U+10FFFF are not well-formed. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

/* A JSON string. File names are bytes, not always UTF-8: a byte that is not
 * part of a well-formed sequence is written as \udcXX (XX = the byte), the
 * escape Python's surrogateescape uses, so the line stays valid UTF-8 and
 * os.fsencode(json.loads(line)["image"]) gives back the exact name. */
static void json_str(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    putchar('"');
    while (*s) {
        unsigned char c = *s;
        int n = utf8_len(s);
        if (n > 1) {
            fwrite(s, 1, (size_t)n, stdout);
            s += n;
            continue;
        }
        if (n == 0) printf("\\udc%02x", c);
        else if (c == '"' || c == '\\') { putchar('\\'); putchar(c); }
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7F) printf("\\u%04x", c);
        else putchar(c);
        s++;
    }
    putchar('"');
}

static void json_num(double v)
{
    if (isfinite(v))
        printf("%.9g", v);
    else
        fputs("null", stdout);
}

static void json_floats(const float *v, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", stdout);
        json_num(v[i]);
    }
    putchar(']');
}

static void json_map(const float *v, int h, int w)
{
    if (!v) {
        fputs("null", stdout);
        return;
    }
    putchar('[');
    for (int y = 0; y < h; y++) {
        if (y)
            fputs(", ", stdout);
        json_floats(v + (size_t)y * w, (size_t)w);
    }
    putchar(']');
}

/* ", "region": {x, y, w, h}, "descriptors": {head: {label: p, ...}, ...}":
 * the region of the image the model read (upright pixels; square/letterbox
 * may reach past the image) and the descriptor heads' probabilities. */
static void json_region(const csasn_roi *r)
{
    printf(", \"region\": {\"x\": %d, \"y\": %d, \"w\": %d, \"h\": %d}", r->x, r->y, r->w, r->h);
}

static void json_region_and_descriptors(const csasn_result *res)
{
    csasn_roi r = {res->region_x, res->region_y, res->region_w, res->region_h};
    json_region(&r);
    fputs(", \"descriptors\": {", stdout);
    for (int i = 0; i < res->n_descriptors; i++) {
        const csasn_descriptor *d = &res->descriptors[i];
        if (i)
            fputs(", ", stdout);
        json_str(d->name);
        fputs(": {", stdout);
        for (int k = 0; k < d->n_labels; k++) {
            if (k)
                fputs(", ", stdout);
            json_str(d->labels[k]);
            fputs(": ", stdout);
            json_num(d->probs[k]);
        }
        putchar('}');
    }
    putchar('}');
}

/* ------------------------------------------------------------------ options */

typedef struct {
    const char *model, *tensor, *out;
    int has_roi, attention, mask, profile, runs, frame;
    csasn_roi roi;
    const char **files;
    int n_files;
} options;

static int parse_roi(const char *s, csasn_roi *r)
{
    long v[4];
    const char *p = s;
    for (int i = 0; i < 4; i++) {
        char *end;
        errno = 0;
        v[i] = strtol(p, &end, 10);
        if (end == p || errno || v[i] < INT_MIN || v[i] > INT_MAX)
            return 0;
        p = end;
        if (i < 3) {
            if (*p != ',')
                return 0;
            p++;
        }
    }
    if (*p)
        return 0;
    r->x = (int)v[0];
    r->y = (int)v[1];
    r->w = (int)v[2];
    r->h = (int)v[3];
    return 1;
}

/* Options may come anywhere, as "--opt VALUE" or "--opt=VALUE"; "--" ends them.
 * allowed: which options this command takes. Returns 0 or the exit status 2. */
static int parse_options(int argc, char **argv, const char *allowed, options *o)
{
    memset(o, 0, sizeof *o);
    o->runs = 20;
    o->files = calloc((size_t)argc + 1, sizeof *o->files);
    if (!o->files)
        return usage("%s", "out of memory");
    int only_files = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || !a[1]) {
            o->files[o->n_files++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_files = 1;
            continue;
        }
        char name[32];
        const char *val = NULL, *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof name)
            return usage("unknown option '%s'", a);
        memcpy(name, a, nl);
        name[nl] = 0;
        /* allowed is a list like " --model --roi "; match whole words. */
        char word[40];
        snprintf(word, sizeof word, " %s ", name);
        if (!strstr(allowed, word))
            return usage("unknown option '%s' for this command", name);
        int flag = !strcmp(name, "--attention") || !strcmp(name, "--mask") || !strcmp(name, "--profile");
        if (flag) {
            if (eq)
                return usage("option '%s' takes no value", name);
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return usage("option '%s' needs a value", name);
        }
        if (!strcmp(name, "--model")) o->model = val;
        else if (!strcmp(name, "--tensor")) o->tensor = val;
        else if (!strcmp(name, "--out")) o->out = val;
        else if (!strcmp(name, "--attention")) o->attention = 1;
        else if (!strcmp(name, "--mask")) o->mask = 1;
        else if (!strcmp(name, "--profile")) o->profile = 1;
        else if (!strcmp(name, "--frame")) {
            char *end;
            long n = strtol(val, &end, 10);
            if (end == val || *end || n < 1 || n > INT_MAX)
                return usage("bad --frame '%s': expected an integer from 1 (DICOM frames count from 1)", val);
            o->frame = (int)n;
        }
        else if (!strcmp(name, "--roi")) {
            if (!parse_roi(val, &o->roi))
                return usage("bad --roi '%s': expected X,Y,W,H (integers)", val);
            o->has_roi = 1;
        } else if (!strcmp(name, "--runs")) {
            char *end;
            long n = strtol(val, &end, 10);
            if (end == val || *end || n < 1 || n > 1000000)
                return usage("bad --runs '%s': expected an integer 1..1000000", val);
            o->runs = (int)n;
        }
    }
    if (!o->model && strstr(allowed, " --model "))   /* decode takes no model */
        return usage("%s", "--model FILE is required");
    return 0;
}

/* Loads the model named by --model. Returns NULL and sets *status on failure. */
/* sha (may be NULL) gets the file's SHA-256 in hex. */
static csasn_model *load_model(const char *path, int *status, char sha[65])
{
    unsigned char *buf;
    size_t len;
    int too_big;
    const char *err = read_file(path, CSASN_MAX_MODEL_BYTES, &buf, &len, &too_big);
    if (err) {
        if (too_big) {
            fprintf(stderr, "csasn: cannot load model: %s\n", err);
            *status = 1;
        } else {
            *status = usage("%s", err);
        }
        return NULL;
    }
    csasn_model *m = NULL;
    err = csasn_model_load(&m, buf, len);
    if (err) {
        fprintf(stderr, "csasn: cannot load model '%s': %s\n", path, err);
        free(buf);
        *status = 1;
        return NULL;
    }
    if (sha)
        csasn_sha256_hex(buf, len, sha);
    free(buf);
    return m;
}

/* Reads the one IMAGE argument of bench/dump. Returns 0, or the exit status:
 * 1 for a file over the size cap (it exists; the input is at fault), 2 for a
 * file that cannot be read (the caller's mistake, as for a missing model). */
static int read_image_arg(const char *path, unsigned char **img, size_t *len)
{
    int too_big;
    const char *err = read_file(path, MAX_IMAGE_BYTES, img, len, &too_big);
    if (!err)
        return 0;
    if (too_big) {
        fprintf(stderr, "csasn: %s\n", err);
        return 1;
    }
    return usage("%s", err);
}

/* ------------------------------------------------------------------ commands */

/* A pair of sizes, as "%.6g" of the float the engine gives (shell/csasn.js
 * rounds the same float to 6 significant digits: both print the same). */
static void json_pair(int has, const float v[2])
{
    if (!has) {
        fputs("null", stdout);
        return;
    }
    printf("[%.6g, %.6g]", v[0], v[1]);
}

/* What the result says about the input: format, frame, region, mm, warnings. */
static void json_input_facts(const csasn_result *r)
{
    fputs(", \"format\": ", stdout);
    json_str(r->format ? r->format : "");
    printf(", \"frame\": %d, \"frames\": %d", r->frame, r->frames);
    printf(", \"roi\": [%d, %d, %d, %d], \"roi_source\": \"%s\"", r->roi.x, r->roi.y, r->roi.w, r->roi.h,
           r->roi_source == CSASN_ROI_USER ? "user" : r->roi_source == CSASN_ROI_TISSUE ? "tissue" : "whole");
    fputs(", \"spacing_mm\": ", stdout);
    json_pair(r->has_spacing, r->spacing_mm);
    fputs(", \"roi_mm\": ", stdout);
    json_pair(r->has_spacing, r->roi_mm);
    fputs(", \"lesion_px\": ", stdout);
    json_pair(r->has_lesion, r->lesion_px);
    fputs(", \"lesion_mm\": ", stdout);
    json_pair(r->has_lesion && r->has_spacing, r->lesion_mm);
    fputs(", \"warnings\": [", stdout);
    for (int i = 0; i < r->n_warnings; i++) {
        if (i)
            fputs(", ", stdout);
        json_str(r->warnings[i]);
    }
    fputs("], \"modality\": ", stdout);
    if (r->modality && *r->modality) json_str(r->modality); else fputs("null", stdout);
    fputs(", \"manufacturer\": ", stdout);
    if (r->manufacturer && *r->manufacturer) json_str(r->manufacturer); else fputs("null", stdout);
}

/* decode: a DICOM frame as decoded, as binary PGM/PPM (maxval 255 or 65535). */
static int cmd_decode(const options *o)
{
    if (o->n_files != 1)
        return usage("%s", o->n_files ? "exactly one DICOM file expected" : "DICOM file is required");
    if (!o->out)
        return usage("%s", "--out FILE.pgm|FILE.ppm is required");
    unsigned char *img;
    size_t len;
    int status = read_image_arg(o->files[0], &img, &len);
    if (status)
        return status;
    uint8_t *pix = NULL;
    int w = 0, h = 0, nc = 0, bits = 0;
    const char *err = csasn_dicom_frame(img, len, o->frame ? o->frame : 1, &pix, &w, &h, &nc, &bits);
    free(img);
    if (err) {
        fprintf(stderr, "csasn: %s: %s\n", o->files[0], err);
        return 1;
    }
    FILE *f = fopen(o->out, "wb");
    int ok = f != NULL;
    if (ok) {
        fprintf(f, "P%c\n%d %d\n%d\n", nc == 3 ? '6' : '5', w, h, bits == 16 ? 65535 : 255);
        size_t n = (size_t)w * (size_t)h * (size_t)nc;
        if (bits == 16) {
            const uint16_t *s = (const uint16_t *)(const void *)pix;
            for (size_t i = 0; i < n && ok; i++)
                ok = fputc(s[i] >> 8, f) != EOF && fputc(s[i] & 255, f) != EOF;
        } else {
            ok = fwrite(pix, 1, n, f) == n;
        }
        ok = fclose(f) == 0 && ok;
    }
    free(pix);
    if (!ok) {
        fprintf(stderr, "csasn: cannot write '%s': %s\n", o->out, strerror(errno));
        return 1;
    }
    printf("{\"image\": ");
    json_str(o->files[0]);
    printf(", \"w\": %d, \"h\": %d, \"channels\": %d, \"bits\": %d}\n", w, h, nc, bits);
    return 0;
}

static int cmd_classify(const options *o)
{
    if (o->n_files < 1)
        return usage("%s", "classify needs at least one IMAGE");
    int status = 0;
    csasn_model *m = load_model(o->model, &status, NULL);
    if (!m)
        return status;
    int failed = 0, unreadable = 0;
    for (int i = 0; i < o->n_files; i++) {
        const char *path = o->files[i];
        unsigned char *buf;
        size_t len;
        int too_big;
        const char *err = read_file(path, MAX_IMAGE_BYTES, &buf, &len, &too_big);
        csasn_result res;
        double ms = 0;
        if (err) {
            if (too_big) {
                failed = 1;
            } else {
                /* A file that cannot be read is the caller's mistake (status
                 * 2, as for a missing model); it still gets its JSON line. */
                unreadable = 1;
                fprintf(stderr, "csasn: %s\n", err);
            }
        } else {
            double t0 = now_ms();
            csasn_options opt = {o->frame, o->has_roi ? &o->roi : NULL};
            err = csasn_classify_ex(m, buf, len, &opt, &res);
            ms = now_ms() - t0;
            free(buf);
            if (err)
                failed = 1;
        }
        fputs("{\"image\": ", stdout);
        json_str(path);
        if (err) {
            fputs(", \"error\": ", stdout);
            json_str(err);
            fputs("}\n", stdout);
            fflush(stdout);
            continue;
        }
        fputs(", \"model\": ", stdout);
        json_str(csasn_model_name(m));
        fputs(", \"labels\": [", stdout);
        for (int k = 0; k < res.n_classes; k++) {
            if (k)
                fputs(", ", stdout);
            const char *l = csasn_label(m, k);
            json_str(l ? l : "");
        }
        fputs("], \"probs\": ", stdout);
        json_floats(res.probs, (size_t)res.n_classes);
        fputs(", \"top\": ", stdout);
        const char *top = csasn_label(m, res.top);
        json_str(top ? top : "");
        fputs(", \"malignancy\": ", stdout);
        if (res.has_malignancy)
            json_num(res.malignancy);
        else
            fputs("null", stdout);
        if (o->attention) {
            fputs(", \"attention\": ", stdout);
            json_map(res.attention, res.att_h, res.att_w);
        }
        if (o->mask) {
            fputs(", \"mask\": ", stdout);
            json_map(res.mask, res.mask_h, res.mask_w);
        }
        json_region_and_descriptors(&res);
        json_input_facts(&res);
        printf(", \"image_w\": %d, \"image_h\": %d, \"ms\": %.3f}\n", res.image_w, res.image_h, ms);
        fflush(stdout);
    }
    csasn_model_free(m);
    return unreadable ? 2 : failed ? 1 : 0;
}

static int cmd_info(const options *o)
{
    if (o->n_files)
        return usage("unexpected argument '%s'", o->files[0]);
    int status = 0;
    char sha[65];
    csasn_model *m = load_model(o->model, &status, sha);
    if (!m)
        return status;
    /* One JSON object: the metadata keys (all dotted) plus the file's facts,
     * and the file's SHA-256 (what a report names the model by). */
    const char *info = csasn_model_info_json(m);
    size_t n = strlen(info);
    printf("%.*s, \"sha256\": \"%s\"}\n", (int)(n - 1), info, sha);
    csasn_model_free(m);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_bench(const options *o)
{
    if (o->n_files > 1)
        return usage("unexpected argument '%s'", o->files[1]);
    int status = 0;
    unsigned char *img = NULL;
    size_t img_len = 0;
    if (o->n_files == 1 && (status = read_image_arg(o->files[0], &img, &img_len)) != 0)
        return status;
    csasn_model *m = load_model(o->model, &status, NULL);
    if (!m) {
        free(img);
        return status;
    }
    int S = csasn_input_size(m);
    float *in = malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);
    double *t = malloc(sizeof(double) * (size_t)o->runs);
    if (!in || !t) {
        fprintf(stderr, "csasn: out of memory\n");
        free(in); free(t); free(img);
        csasn_model_free(m);
        return 1;
    }
    double pre_ms = 0;
    if (img) {
        double t0 = now_ms();
        const char *err = csasn_preprocess(m, img, img_len, o->has_roi ? &o->roi : NULL, in, NULL, NULL);
        pre_ms = now_ms() - t0;
        if (err) {
            fprintf(stderr, "csasn: %s: %s\n", o->files[0], err);
            free(in); free(t); free(img);
            csasn_model_free(m);
            return 1;
        }
    } else {
        csasn_bench_input(m, in);
    }
    csasn_set_profiling(m, o->profile);
    csasn_result res;
    const char *err = NULL;
    for (int i = 0; i < 3 && !err; i++)
        err = csasn_forward(m, in, &res);
    for (int i = 0; i < o->runs && !err; i++) {
        double t0 = now_ms();
        err = csasn_forward(m, in, &res);
        t[i] = now_ms() - t0;
    }
    if (err) {
        fprintf(stderr, "csasn: forward pass failed: %s\n", err);
        free(in); free(t); free(img);
        csasn_model_free(m);
        return 1;
    }
    double sum = 0;
    for (int i = 0; i < o->runs; i++)
        sum += t[i];
    qsort(t, (size_t)o->runs, sizeof *t, cmp_double);
    int n = o->runs;
    double median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    int i90 = (int)ceil(0.9 * n) - 1;   /* nearest-rank percentile */
    double mean = sum / n, p90 = t[i90 < 0 ? 0 : i90];
    printf("csasn bench: model %s, input 3x%dx%d (%s), %d runs after 3 warm-up: "
           "median %.3f ms, min %.3f ms, mean %.3f ms, p90 %.3f ms", csasn_model_name(m), S, S,
           img ? o->files[0] : "synthetic", n, median, t[0], mean, p90);
    if (img)
        printf(" (preprocessing %.3f ms)", pre_ms);
    printf("\n{\"runs\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f, \"mean_ms\": %.4f, \"p90_ms\": %.4f}\n",
           n, median, t[0], mean, p90);
    if (o->profile) {
        const char *pj = csasn_profile_json(m);
        printf("%s\n", pj ? pj : "{}");
    }
    free(in); free(t); free(img);
    csasn_model_free(m);
    return 0;
}

/* dump and preprocess: one IMAGE, optional ROI. */
static int cmd_dump(const options *o, int preprocess_only)
{
    if (o->n_files != 1)
        return usage("%s", o->n_files ? "exactly one IMAGE expected" : "IMAGE is required");
    if (!preprocess_only && !o->tensor)
        return usage("%s", "--tensor NAME is required");
    if (preprocess_only && !o->out)
        return usage("%s", "--out FILE.f32 is required");
    unsigned char *img;
    size_t len;
    int status = read_image_arg(o->files[0], &img, &len);
    if (status)
        return status;
    csasn_model *m = load_model(o->model, &status, NULL);
    if (!m) {
        free(img);
        return status;
    }
    const csasn_roi *roi = o->has_roi ? &o->roi : NULL;
    int shape[4] = {0}, rank = 0, iw = 0, ih = 0;
    const float *data = NULL;
    float *own = NULL;
    const char *err;
    if (preprocess_only) {
        int S = csasn_input_size(m);
        own = malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);
        if (!own)
            err = "out of memory";
        else
            err = csasn_preprocess(m, img, len, roi, own, &iw, &ih);
        data = own;
        rank = 3;
        shape[0] = 3;
        shape[1] = shape[2] = S;
    } else {
        csasn_result res;
        err = csasn_classify(m, img, len, roi, &res);
        if (!err) {
            iw = res.image_w;
            ih = res.image_h;
            data = csasn_debug_tensor(m, o->tensor, shape, &rank);
            if (!data)
                err = "unknown debug tensor (try input, cnn.tap8, cnn.tap16, cnn.head, "
                      "vit.tokens, fused, refined, cls.out)";
        }
    }
    free(img);
    int rc = 0;
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)shape[i];
    if (err) {
        fprintf(stderr, "csasn: %s: %s\n", o->files[0], err);
        rc = 1;
    } else if (o->out) {
        FILE *f = fopen(o->out, "wb");
        /* Raw float32 in host order; every target we build for is little-endian. */
        if (!f || fwrite(data, sizeof(float), n, f) != n || fclose(f) != 0) {
            fprintf(stderr, "csasn: cannot write '%s': %s\n", o->out, strerror(errno));
            rc = 1;
        }
    }
    if (!rc) {
        fputs("{\"image\": ", stdout);
        json_str(o->files[0]);
        fputs(", \"name\": ", stdout);
        json_str(preprocess_only ? "input" : o->tensor);
        fputs(", \"shape\": [", stdout);
        for (int i = 0; i < rank; i++)
            printf(i ? ", %d" : "%d", shape[i]);
        printf("], \"image_w\": %d, \"image_h\": %d", iw, ih);
        csasn_roi region;
        if (preprocess_only && !csasn_model_region(m, iw, ih, roi, &region))
            json_region(&region);
        if (preprocess_only) {
            /* what the decode-memory limit was checked against, and what it took */
            uint64_t est, peak;
            csasn_decode_stats(&est, &peak);
            printf(", \"decode_bytes\": {\"estimate\": %llu, \"peak\": %llu}",
                   (unsigned long long)est, (unsigned long long)peak);
        }
        if (!o->out) {
            fputs(", \"data\": ", stdout);
            json_floats(data, n);
        }
        fputs("}\n", stdout);
    }
    free(own);
    csasn_model_free(m);
    return rc;
}

/* ------------------------------------------------------------------ report */

/* The exam report (src/report.c): every image classified as `classify` does,
 * then one document on stdout. Its own parser: --nodule, --view, --roi and
 * --size-mm belong to the IMAGE after them, so their order matters. */
static int cmd_report(int argc, char **argv)
{
    const char *model = NULL, *date = NULL;
    int fhir = 0, n_img = 0;
    typedef struct { const char *path, *nodule, *view; int has_roi; csasn_roi roi; double mm; } item;
    item *it = calloc((size_t)argc + 1, sizeof *it);
    if (!it)
        return usage("%s", "out of memory");
    item cur = {NULL, NULL, NULL, 0, {0, 0, 0, 0}, NAN};
    int only_files = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || !a[1]) {
            cur.path = a;
            it[n_img++] = cur;
            cur = (item){NULL, NULL, NULL, 0, {0, 0, 0, 0}, NAN};
            continue;
        }
        if (!strcmp(a, "--")) { only_files = 1; continue; }
        if (!strcmp(a, "--fhir")) { fhir = 1; continue; }
        const char *eq = strchr(a, '='), *val;
        char name[32];
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof name) { free(it); return usage("unknown option '%s'", a); }
        memcpy(name, a, nl);
        name[nl] = 0;
        if (strcmp(name, "--model") && strcmp(name, "--date") && strcmp(name, "--nodule") &&
            strcmp(name, "--view") && strcmp(name, "--roi") && strcmp(name, "--size-mm")) {
            free(it);
            return usage("unknown option '%s' for this command", name);
        }
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else { free(it); return usage("option '%s' needs a value", name); }
        if (!strcmp(name, "--model")) model = val;
        else if (!strcmp(name, "--date")) date = val;
        else if (!strcmp(name, "--nodule")) cur.nodule = val;
        else if (!strcmp(name, "--view")) cur.view = val;
        else if (!strcmp(name, "--roi")) {
            if (!parse_roi(val, &cur.roi)) { free(it); return usage("bad --roi '%s': expected X,Y,W,H (integers)", val); }
            cur.has_roi = 1;
        } else {
            char *end;
            double v = strtod(val, &end);
            if (end == val || *end || !(v > 0 && v < 1e4)) { free(it); return usage("bad --size-mm '%s': expected millimetres > 0", val); }
            cur.mm = v;
        }
    }
    if (!model) { free(it); return usage("%s", "--model FILE is required"); }
    if (cur.nodule || cur.view || cur.has_roi || !isnan(cur.mm)) { free(it); return usage("%s", "--nodule/--view/--roi/--size-mm must come before an IMAGE"); }
    if (!n_img) { free(it); return usage("%s", "report needs at least one IMAGE"); }
    char now[32];
    if (!date) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
        date = now;
    }
    int status = 0;
    char sha[65];
    csasn_model *m = load_model(model, &status, sha);
    if (!m) { free(it); return status; }
    csasn_report *rep = NULL;
    const char *err = csasn_report_new(&rep, m, sha, date);
    if (err) {
        csasn_model_free(m);
        free(it);
        return usage("%s", err);
    }
    int rc = 0;
    for (int i = 0; i < n_img && !rc; i++) {
        unsigned char *buf;
        size_t len;
        int too_big;
        err = read_file(it[i].path, MAX_IMAGE_BYTES, &buf, &len, &too_big);
        if (err) {
            fprintf(stderr, "csasn: %s\n", err);
            rc = too_big ? 1 : 2;
            break;
        }
        csasn_result res;
        err = csasn_classify(m, buf, len, it[i].has_roi ? &it[i].roi : NULL, &res);
        free(buf);
        const char *base = strrchr(it[i].path, '/');
        base = base ? base + 1 : it[i].path;
        if (!err) {
            csasn_report_image ri = {base, it[i].nodule, it[i].view, it[i].has_roi ? &it[i].roi : NULL, &res, it[i].mm};
            err = csasn_report_add(rep, &ri);
        }
        if (err) {
            fprintf(stderr, "csasn: %s: %s\n", it[i].path, err);
            rc = 1;
        }
    }
    const char *doc = NULL;
    if (!rc && (err = csasn_report_json(rep, fhir, &doc)) != NULL) {
        fprintf(stderr, "csasn: %s\n", err);
        rc = 1;
    }
    if (!rc)
        fputs(doc, stdout);
    csasn_report_free(rep);
    csasn_model_free(m);
    free(it);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage("%s", "no command given");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        printf(usage_text, csasn_cli_adapt_usage);
        return 0;
    }
    if (!strcmp(cmd, "adapt")) return csasn_cli_adapt(argc - 2, argv + 2);   /* its own options (src/cli/adapt_cmd.c) */
    const char *allowed;
    if (!strcmp(cmd, "classify")) allowed = " --model --roi --frame --attention --mask ";
    else if (!strcmp(cmd, "decode")) allowed = " --frame --out ";
    else if (!strcmp(cmd, "info")) allowed = " --model ";
    else if (!strcmp(cmd, "bench")) allowed = " --model --runs --profile --roi ";
    else if (!strcmp(cmd, "dump")) allowed = " --model --roi --tensor --out ";
    else if (!strcmp(cmd, "preprocess")) allowed = " --model --roi --out ";
    else if (!strcmp(cmd, "report")) return cmd_report(argc - 2, argv + 2);
    else return usage("unknown command '%s'", cmd);
    options o;
    int rc = parse_options(argc - 2, argv + 2, allowed, &o);
    if (!rc) {
        if (!strcmp(cmd, "classify")) rc = cmd_classify(&o);
        else if (!strcmp(cmd, "info")) rc = cmd_info(&o);
        else if (!strcmp(cmd, "bench")) rc = cmd_bench(&o);
        else if (!strcmp(cmd, "dump")) rc = cmd_dump(&o, 0);
        else if (!strcmp(cmd, "decode")) rc = cmd_decode(&o);
        else rc = cmd_dump(&o, 1);
    }
    free(o.files);
    return rc;
}
