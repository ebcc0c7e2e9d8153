/* test_report_unit.c - src/report.c on results written here: grouping by
 * label, the combination of views (mean log-odds, geometric mean) recomputed
 * independently, names made well-formed UTF-8 and JSON-escaped, a single view
 * copied unchanged, every bad argument refused with a message, and no leak or
 * overflow under ASan (make test-asan runs it too). The tiny model of the
 * hostile corpus gives the labels; tests/run.py runs from the top folder. */
#include "csasn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(const char *name, int ok, const char *why)
{
    printf(ok ? "ok %s\n" : "not ok %s: %s\n", name, why ? why : "");
    failures += !ok;
}

/* The number after `"key": ` at the n-th occurrence (0-based) of key in doc. */
static double num_after(const char *doc, const char *key, int n)
{
    const char *p = doc;
    for (int i = 0; i <= n; i++) {
        p = strstr(p, key);
        if (!p) return NAN;
        p += strlen(key);
    }
    return strtod(p, NULL);
}

int main(void)
{
    static uint8_t buf[1 << 20];
    FILE *f = fopen("tests/hostile/valid/model_tiny.csasn", "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    csasn_model *m = NULL;
    const char *err = n ? csasn_model_load(&m, buf, n) : "tests/hostile/valid/model_tiny.csasn unreadable";
    check("the tiny model loads", !err, err);
    if (!m) return 1;
    int K = csasn_num_classes(m);
    char sha[65];
    csasn_sha256_hex(buf, n, sha);
    float thr = csasn_malignancy_threshold(m);
    char why[256];

    csasn_report *r = NULL;
    check("bad date refused", csasn_report_new(&r, m, sha, "2026-12-02 10:00:00") != NULL && !r, "accepted");
    check("bad digest refused", csasn_report_new(&r, m, "ABC", "2026-12-02T10:00:00Z") != NULL && !r, "accepted");
    check("no model refused", csasn_report_new(&r, NULL, sha, "2026-12-02T10:00:00Z") != NULL, "accepted");
    err = csasn_report_new(&r, m, sha, "2026-12-02T10:00:00Z");
    check("report made", !err && r, err);
    if (!r) return 1;

    float pa[16], pb[16], pc[16];
    for (int k = 0; k < K; k++) {
        pa[k] = (float)(k + 1);
        pb[k] = (float)(K - k);
        pc[k] = 1.0f;
    }
    float sa = 0, sb = 0;
    for (int k = 0; k < K; k++) { sa += pa[k]; sb += pb[k]; }
    for (int k = 0; k < K; k++) { pa[k] /= sa; pb[k] /= sb; pc[k] /= (float)K; }
    int hm = !isnan(thr);
    csasn_result ra = {K, pa, NULL, 0, hm, hm ? 0.8f : NAN, NULL, 0, 0, NULL, 0, 0, 300, 300};
    csasn_result rb = ra, rc = ra;
    rb.probs = pb;
    rb.malignancy = hm ? 0.3f : NAN;
    rc.probs = pc;
    csasn_roi roi = {10, 20, 100, 120};
    /* an invalid UTF-8 byte, a quote and a control character in names */
    csasn_report_image a = {"a\xff\"b.png", "right lobe, nodule 1", "transverse", NULL, &ra, 14.0};
    csasn_report_image b = {"b\tc.png", "right lobe, nodule 1", "longitudinal", &roi, &rb, 9.5};
    csasn_report_image c = {"c.png", NULL, NULL, NULL, &rc, NAN};
    err = csasn_report_add(r, &a);
    check("add a", !err, err);
    err = csasn_report_add(r, &b);
    check("add b", !err, err);
    err = csasn_report_add(r, &c);
    check("add c", !err, err);
    csasn_report_image bad = a;
    bad.view = "sagittal";
    check("unknown view refused", csasn_report_add(r, &bad) != NULL, "accepted");
    csasn_result rbad = ra;
    rbad.n_classes = K + 1;
    bad = a;
    bad.result = &rbad;
    check("result of another model refused", csasn_report_add(r, &bad) != NULL, "accepted");
    float pn[16];
    memcpy(pn, pa, sizeof pa);
    pn[0] = NAN;
    rbad = ra;
    rbad.probs = pn;
    check("NaN probability refused", csasn_report_add(r, &bad) != NULL, "accepted");
    bad = a;
    bad.size_mm = -1;
    check("negative size refused", csasn_report_add(r, &bad) != NULL, "accepted");
    csasn_roi empty = {0, 0, 0, 5};
    bad = a;
    bad.roi = &empty;
    check("empty region refused", csasn_report_add(r, &bad) != NULL, "accepted");

    const char *doc = NULL;
    err = csasn_report_json(r, 0, &doc);
    check("JSON written", !err && doc, err);
    if (doc) {
        check("two nodules: the labelled pair and the single image",
              strstr(doc, "\"label\": \"right lobe, nodule 1\"") && strstr(doc, "\"label\": \"nodule 2 (c.png)\"") &&
              !strstr(doc, "nodule 3"), doc);
        check("names: bad byte -> U+FFFD, quote escaped, tab -> space",
              strstr(doc, "\"name\": \"a\xef\xbf\xbd\\\"b.png\"") && strstr(doc, "\"name\": \"b c.png\""), "names");
        /* class 0 of nodule 1: softmax of the mean log-probability, recomputed */
        double lz[16], mx = -1e300, z = 0;
        for (int k = 0; k < K; k++) {
            lz[k] = 0.5 * (log(pa[k]) + log(pb[k]));
            if (lz[k] > mx) mx = lz[k];
        }
        for (int k = 0; k < K; k++) z += exp(lz[k] - mx);
        double want0 = exp(lz[0] - mx) / z, got0 = num_after(doc, "\"probs\": [", 0);
        snprintf(why, sizeof why, "%.7f vs %.7f", got0, want0);
        check("nodule classes = normalised geometric mean of its views", fabs(got0 - want0) < 1e-6, why);
        if (hm) {
            double lo = 0.5 * (log(0.8 / 0.2) + log(0.3 / 0.7)), wantm = 1 / (1 + exp(-lo));
            double gotm = num_after(doc, "\"malignancy\": ", 0);
            snprintf(why, sizeof why, "%.7f vs %.7f", gotm, wantm);
            check("nodule malignancy = sigmoid(mean log-odds)", fabs(gotm - wantm) < 1e-6, why);
        }
        check("nodule size = largest over its views", num_after(doc, "\"size_mm\": ", 0) == 14.0, "size");
        const char *n2 = strstr(doc, "nodule 2 (c.png)");
        double g = n2 ? num_after(n2, "\"probs\": [", 0) : NAN;
        snprintf(why, sizeof why, "%.7f vs %.7f", g, 1.0 / K);
        check("single view copied unchanged", fabs(g - (double)pc[0]) < 5e-7, why);
        check("region kept", strstr(doc, "\"roi\": {\"x\": 10, \"y\": 20, \"w\": 100, \"h\": 120}") != NULL, "roi");
        /* with 3+ classes the uniform image's top class is under 50%; with 2 it is exactly 50% */
        if (K >= 3) check("uniform classes flagged uncertain", strstr(doc, "uncertain_class") != NULL, "no warning");
        else check("two classes at 50% not flagged uncertain", strstr(doc, "uncertain_class") == NULL, "flagged");
        if (hm) check("views on both sides of the operating point flagged", (0.8f >= thr) != (0.3f >= thr) ? strstr(doc, "views_disagree") != NULL : 1, "no views_disagree");
    }
    err = csasn_report_json(r, 1, &doc);
    check("FHIR written", !err && doc && strstr(doc, "\"resourceType\": \"Bundle\"") && strstr(doc, "\"status\": \"preliminary\""), err);
    char *copy = doc ? strdup(doc) : NULL;
    err = csasn_report_json(r, 1, &doc);
    check("FHIR deterministic", copy && doc && !strcmp(copy, doc), "differs");
    free(copy);
    csasn_report_free(r);

    /* an empty exam is a valid document with no nodules */
    r = NULL;
    csasn_report_new(&r, m, sha, "2026-12-02T10:00:00Z");
    err = r ? csasn_report_json(r, 0, &doc) : "no report";
    check("empty exam: \"nodules\": []", !err && strstr(doc, "\"nodules\": []"), err);
    csasn_report_free(r);
    csasn_report_free(NULL);
    csasn_model_free(m);
    return failures ? 1 : 0;
}
