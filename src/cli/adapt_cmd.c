/* adapt_cmd.c - `csasn adapt`: on-device adaptation from the command line,
 * over the library's csasn_adapt_* API (csasn.h), as the page uses it.
 *
 *   csasn adapt --model BASE.csasn --data DIR --out NEW.csasn [--malignant A,B]
 *               [--group REGEX | --groups FILE.csv] [--folds K] [--views N]
 *               [--seed S] [--epochs E] [--name NAME] [--descriptors FILE]
 *
 * --from-descriptors FILE reads them back instead of running the feature pass
 * (the class folders still name the classes); --lr, --batch and --dropout set
 * AdamW's peak learning rate, the batch size and the descriptor dropout.
 * --descriptors writes the cached descriptors (for tests and tools, never
 * into the model): int32 n, views, dim, then int32 class[n], int32 group[n]
 * (ids in order of first appearance), then float32 [n][views][dim].
 * DIR/<class>/ holds the images of each class (sub-folders in byte order;
 * hidden entries skipped). Grouping (patients): --group REGEX (POSIX
 * extended) on each file name, the group being the first parenthesised
 * match or else the whole match (a name it does not match is its own group);
 * --groups a CSV whose header has a `patient` (or `group`) column and a
 * `file` (or `image`, `path`) column naming the file by its name or its
 * `<class>/<name>` path. Progress with an ETA on stderr, unreadable images
 * listed there and skipped; one JSON line on stdout. Exit status: 0 ok, 1 the
 * adaptation failed, 2 usage error or unreadable input. */
#define _DEFAULT_SOURCE 1
#include "adapt_cmd.h"
#include "csasn.h"

#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char *csasn_cli_adapt_usage =
    "  adapt      --model BASE.csasn --data DIR --out NEW.csasn [--malignant A,B]\n"
    "             [--group REGEX | --groups FILE.csv] [--folds K] [--views N] [--seed S]\n"
    "             [--epochs E] [--name NAME]\n"
    "             retrain the classifier on DIR/<class>/ images, cross-validated; JSON summary\n";

#define MAX_FILES_SHOWN 20

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(int rc, const char *fmt, const char *a, const char *b)
{
    fputs("csasn adapt: ", stderr);
    fprintf(stderr, fmt, a, b ? b : "");
    fputc('\n', stderr);
    return rc;
}

static unsigned char *slurp(const char *path, size_t cap, size_t *len, const char **err)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) { *err = strerror(errno); return NULL; }
    size_t n = 0, c = 1 << 16;
    unsigned char *b = malloc(c);
    for (;;) {
        if (!b) { fclose(f); *err = "out of memory"; return NULL; }
        if (n == c) {
            if (c > cap) { free(b); fclose(f); *err = "larger than the size limit"; return NULL; }
            unsigned char *p = realloc(b, c * 2);
            if (!p) free(b);
            b = p;
            c *= 2;
            continue;
        }
        size_t r = fread(b + n, 1, c - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(b); *err = "read error"; return NULL; }
    if (n > cap) { free(b); *err = "larger than the size limit"; return NULL; }
    *len = n;
    return b;
}

static void json_str(FILE *o, const char *s)
{
    fputc('"', o);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(o, "\\%c", *p);
        else if (*p < 0x20) fprintf(o, "\\u%04x", *p);
        else fputc(*p, o);
    }
    fputc('"', o);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names in dir (no hidden ones); dirs: 1 sub-folders, 0 regular files. */
static char **list(const char *dir, int dirs, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    int cap = 64;
    char **v = malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t L = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(L);
        if (!p) break;
        snprintf(p, L, "%s/%s", dir, e->d_name);
        struct stat st;
        int ok = stat(p, &st) == 0 && (dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
        free(p);
        if (!ok) continue;
        if (*n == cap) {
            char **q = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!q) break;
            v = q;
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (v) qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* ------------------------------------------------------------ groups CSV */

typedef struct { char **file, **group; int n; } group_table;

/* One CSV field from *p (quotes allowed), into out; advances *p. */
static void csv_field(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    size_t k = 0;
    int q = *s == '"';
    if (q) s++;
    while (*s && (q ? !(*s == '"' && s[1] != '"') : (*s != ',' && *s != '\n' && *s != '\r'))) {
        if (q && *s == '"') s++;
        if (k + 1 < cap) out[k++] = *s;
        s++;
    }
    if (q && *s == '"') s++;
    out[k] = 0;
    if (*s == ',') s++;
    *p = s;
}

static const char *load_groups(const char *path, group_table *t)
{
    static char msg[300];
    size_t len;
    const char *err;
    char *txt = (char *)slurp(path, 64u << 20, &len, &err);
    if (!txt) { snprintf(msg, sizeof msg, "cannot read groups file '%s': %s", path, err); return msg; }
    char *z = realloc(txt, len + 1);
    if (!z) { free(txt); return "out of memory"; }
    txt = z;
    txt[len] = 0;
    const char *p = txt;
    char f[1024];
    int col = 0, fc = -1, gc = -1;
    while (*p && *p != '\n' && *p != '\r') {
        csv_field(&p, f, sizeof f);
        for (char *c = f; *c; c++) if (*c >= 'A' && *c <= 'Z') *c += 32;
        if (!strcmp(f, "patient") || (gc < 0 && !strcmp(f, "group"))) gc = col;
        if (fc < 0 && (!strcmp(f, "file") || !strcmp(f, "image") || !strcmp(f, "path") || !strcmp(f, "filename"))) fc = col;
        col++;
    }
    if (gc < 0 || fc < 0) {
        free(txt);
        snprintf(msg, sizeof msg, "groups file '%s' needs a header with a 'patient' (or 'group') and a 'file' (or 'image', 'path') column", path);
        return msg;
    }
    int cap = 256;
    t->file = malloc((size_t)cap * sizeof(char *));
    t->group = malloc((size_t)cap * sizeof(char *));
    t->n = 0;
    while (*p) {
        while (*p == '\n' || *p == '\r') p++;
        if (!*p) break;
        char fv[1024] = "", gv[1024] = "";
        for (int c = 0; *p && *p != '\n' && *p != '\r'; c++) {
            csv_field(&p, f, sizeof f);
            if (c == fc) snprintf(fv, sizeof fv, "%s", f);
            if (c == gc) snprintf(gv, sizeof gv, "%s", f);
        }
        if (!fv[0] || !gv[0]) continue;
        if (t->n == cap) {
            cap *= 2;
            char **a = realloc(t->file, (size_t)cap * sizeof(char *)), **b = realloc(t->group, (size_t)cap * sizeof(char *));
            if (a) t->file = a;
            if (b) t->group = b;
            if (!a || !b) { free(txt); return "out of memory"; }
        }
        t->file[t->n] = strdup(fv);
        t->group[t->n] = strdup(gv);
        if (!t->file[t->n] || !t->group[t->n]) { free(t->file[t->n]); free(t->group[t->n]); free(txt); return "out of memory"; }
        t->n++;
    }
    free(txt);
    return NULL;
}

/* The table's file column reduced to "<class>/<name>" (its last two path parts) or "<name>",
 * sorted, so each image is looked up by binary search (20000 files x 20000 rows stays fast). */
static const char *key_of(const char *f)
{
    const char *last = strrchr(f, '/');
    if (!last) return f;
    const char *p = last;
    while (p > f && p[-1] != '/') p--;
    return p;
}

static const group_table *sort_table;
static int cmp_row(const void *x, const void *y)
{
    int i = *(const int *)x, j = *(const int *)y;
    return strcmp(key_of(sort_table->file[i]), key_of(sort_table->file[j]));
}

static int *index_table(const group_table *t)
{
    int *ix = malloc(((size_t)t->n + 1) * sizeof *ix);
    if (!ix) return NULL;
    for (int i = 0; i < t->n; i++) ix[i] = i;
    sort_table = t;
    qsort(ix, (size_t)t->n, sizeof *ix, cmp_row);
    return ix;
}

static const char *find_key(const group_table *t, const int *ix, const char *key)
{
    int lo = 0, hi = t->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(key_of(t->file[ix[mid]]), key);
        if (!c) return t->group[ix[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

static const char *table_group(const group_table *t, const int *ix, const char *cls, const char *name)
{
    char rel[2048];
    snprintf(rel, sizeof rel, "%s/%s", cls, name);
    const char *g = find_key(t, ix, rel);
    return g ? g : find_key(t, ix, name);
}

/* --------------------------------------------------------------- command */

int csasn_cli_adapt(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *out = NULL, *malig = NULL, *group_re = NULL, *groups = NULL, *name = NULL, *dump = NULL, *from = NULL;
    csasn_adapt_options o;
    csasn_adapt_default_options(&o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char *opts[] = {"--model", "--data", "--out", "--malignant", "--group", "--groups", "--folds",
                              "--views", "--seed", "--epochs", "--name", "--descriptors", "--from-descriptors", "--lr", "--batch", "--dropout"};
        int k = -1;
        for (int j = 0; j < (int)(sizeof opts / sizeof *opts); j++)
            if (!strcmp(a, opts[j])) k = j;
        if (k < 0) return fail(2, "unknown option '%s'%s", a, "");
        if (!v) return fail(2, "option %s needs a value%s", a, "");
        i++;
        char *end;
        long n = 0;
        if (k >= 6 && k <= 9) {
            errno = 0;
            n = strtol(v, &end, 10);
            if (errno || *end || end == v || n < 0 || n > 1000000000L) return fail(2, "%s: not a valid number: '%s'", a, v);
        }
        switch (k) {
        case 0: model = v; break;
        case 1: data = v; break;
        case 2: out = v; break;
        case 3: malig = v; break;
        case 4: group_re = v; break;
        case 5: groups = v; break;
        case 6: o.folds = (int)n; break;
        case 7: o.views = (int)n; break;
        case 8: o.seed = (uint64_t)n; break;
        case 9: o.epochs = (int)n; break;
        case 10: name = v; break;
        case 11: dump = v; break;
        case 12: from = v; break;
        case 13: o.lr = strtof(v, &end); if (*end || end == v) return fail(2, "%s: not a valid number: '%s'", a, v); break;
        case 15: o.dropout = strtof(v, &end); if (*end || end == v) return fail(2, "%s: not a valid number: '%s'", a, v); break;
        case 14: o.batch = (int)strtol(v, &end, 10); if (*end || end == v) return fail(2, "%s: not a valid number: '%s'", a, v); break;
        }
    }
    if (!model || !data || !out) return fail(2, "--model, --data and --out are required%s%s", "", "");
    if (group_re && groups) return fail(2, "give --group or --groups, not both%s%s", "", "");
    if (o.folds < 2 || o.folds > 20) return fail(2, "--folds must be 2..20%s%s", "", "");
    if (o.views < 1 || o.views > CSASN_ADAPT_MAX_VIEWS) return fail(2, "--views must be 1..8%s%s", "", "");
    if (o.epochs < 1 || o.epochs > 1000) return fail(2, "--epochs must be 1..1000%s%s", "", "");

    int rc = 1, nc = 0, nm = 0, n_files = 0, n_skipped = 0;
    char **classes = list(data, 1, &nc), **files[CSASN_ADAPT_MAX_CLASSES] = {0};
    int nf[CSASN_ADAPT_MAX_CLASSES] = {0};
    char *mal_names[CSASN_ADAPT_MAX_CLASSES];
    char *mal_copy = NULL;
    unsigned char *base = NULL;
    size_t base_len = 0;
    csasn_adapt *ad = NULL;
    group_table gt = {0};
    int *gix = NULL;
    regex_t re;
    int have_re = 0;
    void *file = NULL;
    size_t file_len = 0;
    const char *e;
    if (!classes) { rc = fail(2, "cannot read data folder '%s'%s", data, ""); goto done; }
    if (nc < 2) {
        rc = fail(2, "'%s' needs at least two class sub-folders (DIR/<class>/images), found %s", data,
                  nc ? "one" : "none");
        goto done;
    }
    if (nc > CSASN_ADAPT_MAX_CLASSES) { rc = fail(2, "'%s' has more class folders than the limit%s", data, ""); goto done; }
    for (int c = 0; c < nc; c++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", data, classes[c]);
        files[c] = list(dir, 0, &nf[c]);
        if (!files[c] || nf[c] == 0) { rc = fail(2, "class folder '%s' is empty (no image files)%s", dir, ""); goto done; }
        n_files += nf[c];
    }
    if (n_files > CSASN_ADAPT_MAX_IMAGES) {
        char lim[32];
        snprintf(lim, sizeof lim, "%d", CSASN_ADAPT_MAX_IMAGES);
        rc = fail(2, "'%s' holds more files than the limit of %s images per adaptation", data, lim);
        goto done;
    }
    if (malig && *malig) {
        mal_copy = strdup(malig);
        for (char *tok = strtok(mal_copy, ","); tok && nm < CSASN_ADAPT_MAX_CLASSES; tok = strtok(NULL, ","))
            mal_names[nm++] = tok;
    }
    if (group_re) {
        int r = regcomp(&re, group_re, REG_EXTENDED);
        if (r) { rc = fail(2, "--group: not a valid regular expression: '%s'%s", group_re, ""); goto done; }
        have_re = 1;
    }
    if (groups && (e = load_groups(groups, &gt))) { rc = fail(2, "%s%s", e, ""); goto done; }
    if (groups && !(gix = index_table(&gt))) { rc = fail(1, "out of memory%s%s", "", ""); goto done; }
    const char *err;
    if (!(base = slurp(model, CSASN_MAX_MODEL_BYTES, &base_len, &err))) { rc = fail(2, "cannot read model '%s': %s", model, err); goto done; }
    if ((e = csasn_adapt_new(&ad, base, base_len, (const char *const *)classes, nc, (const char *const *)mal_names, nm, &o))) {
        rc = fail(1, "%s%s", e, "");
        goto done;
    }

    /* feature pass */
    double t0 = now_s(), last = t0, c0 = (double)clock() / CLOCKS_PER_SEC;
    int done_files = 0, ungrouped = 0;
    if (from) {
        size_t dl;
        int32_t *dd = (int32_t *)slurp(from, (size_t)1 << 31, &dl, &err);
        if (!dd) { rc = fail(2, "cannot read '%s': %s", from, err); goto done; }
        int n = dl >= 12 ? dd[0] : -1, V = dl >= 12 ? dd[1] : 0, dim = dl >= 12 ? dd[2] : 0;
        if (n < 0 || V != o.views || dim < 1 || dl != 12 + 8 * (size_t)n + 4 * (size_t)n * V * dim) {
            free(dd);
            rc = fail(2, "'%s' is not a descriptor file of this model and view count%s", from, "");
            goto done;
        }
        const float *x = (const float *)(dd + 3 + 2 * n);
        for (int i = 0; i < n && !e; i++) {
            char gb[32];
            snprintf(gb, sizeof gb, "g%d", dd[3 + n + i]);
            e = csasn_adapt_add_descriptors(ad, dd[3 + i], gb, x + (size_t)i * V * dim);
        }
        free(dd);
        if (e) { rc = fail(1, "%s%s", e, ""); goto done; }
    }
    for (int c = 0; c < nc && !from; c++) {
        for (int i = 0; i < nf[c]; i++, done_files++) {
            char path[4096], gbuf[1024];
            snprintf(path, sizeof path, "%s/%s/%s", data, classes[c], files[c][i]);
            const char *g = NULL;
            if (have_re) {
                regmatch_t mt[2];
                if (!regexec(&re, files[c][i], 2, mt, 0)) {
                    int s = mt[1].rm_so >= 0 ? 1 : 0;
                    int L = (int)(mt[s].rm_eo - mt[s].rm_so);
                    snprintf(gbuf, sizeof gbuf, "%.*s", L, files[c][i] + mt[s].rm_so);
                    g = gbuf;
                } else {
                    ungrouped++;
                }
            } else if (groups) {
                if (!(g = table_group(&gt, gix, classes[c], files[c][i]))) ungrouped++;
            }
            size_t len;
            unsigned char *img = slurp(path, CSASN_MAX_IMAGE_BYTES, &len, &err);
            e = img ? csasn_adapt_add_image(ad, c, g, img, len, NULL) : err;
            free(img);
            if (e) {
                if (n_skipped < MAX_FILES_SHOWN) fprintf(stderr, "csasn adapt: skipped '%s': %s\n", path, e);
                else if (n_skipped == MAX_FILES_SHOWN) fprintf(stderr, "csasn adapt: (further skipped files not listed)\n");
                n_skipped++;
            }
            double t = now_s();
            if (t - last > 2.0 || done_files + 1 == n_files) {
                double eta = (t - t0) / (done_files + 1) * (n_files - done_files - 1);
                fprintf(stderr, "csasn adapt: features %d/%d images (%d%%), ETA %.0f s\n", done_files + 1, n_files,
                        100 * (done_files + 1) / n_files, eta);
                last = t;
            }
        }
    }
    if (n_skipped) fprintf(stderr, "csasn adapt: %d unreadable file%s skipped\n", n_skipped, n_skipped == 1 ? "" : "s");
    if (ungrouped) fprintf(stderr, "csasn adapt: %d file%s matched no group: each is its own group\n", ungrouped, ungrouped == 1 ? "" : "s");
    for (int c = 0; c < nc; c++)
        if (csasn_adapt_count(ad, c) == 0) {
            rc = fail(1, "class '%s' has no readable image (%s)", classes[c], "all its files were skipped");
            goto done;
        }
    double t_feat = now_s() - t0, c_feat = (double)clock() / CLOCKS_PER_SEC - c0;
    if (dump) {
        int n, V, dim;
        const float *d;
        const int *cl;
        csasn_adapt_descriptors(ad, &n, &V, &dim, &d, &cl);
        FILE *df = fopen(dump, "wb");
        int32_t hd[3] = {n, V, dim};
        int ok = df && fwrite(hd, 4, 3, df) == 3 && fwrite(cl, 4, (size_t)n, df) == (size_t)n &&
                 fwrite(csasn_adapt_groups(ad), 4, (size_t)n, df) == (size_t)n &&
                 fwrite(d, 4, (size_t)n * V * dim, df) == (size_t)n * V * dim;
        if (df && fclose(df)) ok = 0;
        if (!ok) { rc = fail(2, "cannot write '%s'%s", dump, ""); goto done; }
    }

    /* training and cross-validation */
    double t1 = now_s(), p = 0.0, c1 = (double)clock() / CLOCKS_PER_SEC;
    last = t1;
    for (int fin = 0; !fin;) {
        if ((e = csasn_adapt_step(ad, &p, &fin))) { rc = fail(1, "%s%s", e, ""); goto done; }
        double t = now_s();
        if (t - last > 2.0 || fin) {
            fprintf(stderr, "csasn adapt: training %.0f%%, ETA %.0f s\n", 100 * p, p > 0 ? (t - t1) / p * (1 - p) : 0.0);
            last = t;
        }
    }
    double t_train = now_s() - t1, c_train = (double)clock() / CLOCKS_PER_SEC - c1;
    char date[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(date, sizeof date, "%Y-%m-%d", &tmv);
    if ((e = csasn_adapt_write(ad, name, date, &file, &file_len))) { rc = fail(1, "%s%s", e, ""); goto done; }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(file, 1, file_len, f) != file_len || fclose(f)) {
        if (f) fclose(f);
        remove(tmp);
        rc = fail(2, "cannot write '%s'%s", out, "");
        goto done;
    }
    if (rename(tmp, out)) { remove(tmp); rc = fail(2, "cannot write '%s'%s", out, ""); goto done; }

    printf("{\"out\": ");
    json_str(stdout, out);
    printf(", \"classes\": [");
    for (int c = 0; c < nc; c++) { if (c) printf(", "); json_str(stdout, classes[c]); }
    printf("], \"counts\": [");
    for (int c = 0; c < nc; c++) printf("%s%d", c ? ", " : "", csasn_adapt_count(ad, c));
    printf("], \"malignant\": [");
    for (int i = 0; i < nm; i++) { if (i) printf(", "); json_str(stdout, mal_names[i]); }
    /* wall clock, and CPU time (what the work costs on a machine shared with other jobs) */
    printf("], \"skipped\": %d, \"seconds\": {\"features\": %.1f, \"training\": %.1f}, "
           "\"cpu_seconds\": {\"features\": %.1f, \"training\": %.1f}, \"cv\": %s}\n",
           n_skipped, t_feat, t_train, c_feat, c_train, csasn_adapt_report_json(ad));
    rc = 0;
done:
    csasn_adapt_free_buffer(file);
    csasn_adapt_free(ad);
    free(base);
    free(mal_copy);
    if (have_re) regfree(&re);
    for (int i = 0; i < gt.n; i++) { free(gt.file[i]); free(gt.group[i]); }
    free(gt.file);
    free(gt.group);
    free(gix);
    for (int c = 0; c < nc && c < CSASN_ADAPT_MAX_CLASSES; c++) if (files[c]) free_list(files[c], nf[c]);
    if (classes) free_list(classes, nc);
    return rc;
}
