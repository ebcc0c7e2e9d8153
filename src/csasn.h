/* csasn.h - CSASN thyroid/breast ultrasound classifier, the one public header.
 *
 * The engine reads a model file (format: src/FORMAT.md) from a memory buffer,
 * decodes an image from bytes, takes the model's region of an optional region
 * of interest (its region rule: stretch, square or letterbox), resizes it
 * with antialiasing, normalises it and runs the CSASN forward pass (src/ARCHITECTURE.md
 * section 1). Every function that can fail returns NULL on success or an error
 * message (a string owned by the library, valid until the next call on the same
 * thread). Nothing here ever exits the process.
 *
 * All activation memory is planned when the model is loaded: csasn_forward()
 * and csasn_classify() allocate nothing beyond the decoded image. One model
 * object serves one inference at a time.
 */
#ifndef CSASN_H
#define CSASN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CSASN_FORMAT_VERSION 1

/* Limits (documented in src/FORMAT.md and README.md). */
#define CSASN_MAX_MODEL_BYTES   (512u * 1024u * 1024u) /* 512 MiB */
#define CSASN_MAX_TENSORS       4096
#define CSASN_MAX_KV            1024
#define CSASN_MAX_RANK          4
#define CSASN_MAX_DIM           (1u << 24)
#define CSASN_MAX_IMAGE_PIXELS  (100u * 1000u * 1000u) /* 100 megapixels */
#define CSASN_MAX_IMAGE_SIDE    65535u
#define CSASN_MAX_IMAGE_BYTES   (256u * 1024u * 1024u) /* 256 MiB: an image file (CLI, API, page) */
/* Working memory of one decode, estimated from the header before decoding
 * (the decoder's buffers for that format, depth, channels and interlacing,
 * plus the resize buffers) and enforced while stb_image allocates. */
#define CSASN_MAX_DECODE_BYTES  (1024u * 1024u * 1024u) /* 1 GiB */

typedef struct csasn_model csasn_model;

typedef struct {
    int x, y, w, h;            /* pixels of the upright image (EXIF orientation applied); w,h > 0 */
} csasn_roi;

/* Region geometry (src/FORMAT.md): how a model turns the ROI into its S x S
 * input, declared by the model file (csasn.region_mode). */
#define CSASN_REGION_STRETCH   0   /* the box (grown by the margin, clipped) resized to S x S */
#define CSASN_REGION_SQUARE    1   /* the square around the grown box, image context around it */
#define CSASN_REGION_LETTERBOX 2   /* the same square, fill outside the grown box */
#define CSASN_MAX_DESCRIPTOR_HEADS 16

/* One descriptor head's output (e.g. TI-RADS composition): a softmax over
 * its labels, read from the same classifier vector as the class probabilities. */
typedef struct {
    const char *name;            /* heads.descriptors entry */
    int n_labels;                /* 2..64 */
    const char *const *labels;   /* [n_labels] */
    const float *probs;          /* [n_labels] */
    int top;                     /* argmax of probs */
} csasn_descriptor;

typedef struct {
    int n_classes;
    const float *probs;        /* [n_classes], softmax(logits / temperature) */
    const float *logits;       /* [n_classes], raw subtype logits */
    int top;                   /* argmax of probs */
    int has_malignancy;        /* model has a malignancy head */
    float malignancy;          /* P(malignant) when has_malignancy, else NAN */
    const float *attention;    /* [att_h][att_w], last spatial attention map in [0,1] */
    int att_h, att_w;          /*   (NULL/0 when the model has no attention stage) */
    const float *mask;         /* [mask_h][mask_w], lesion probability, NULL if no head */
    int mask_h, mask_w;
    int image_w, image_h;      /* upright image size (csasn_classify only) */
    /* ---- region geometry and descriptor heads ---- */
    int region_x, region_y;    /* the region the input shows, upright pixels (csasn_classify only; */
    int region_w, region_h;    /*   0 otherwise): square/letterbox: may extend past the image */
    int n_descriptors;         /* descriptor heads of the model (0..CSASN_MAX_DESCRIPTOR_HEADS) */
    const csasn_descriptor *descriptors;   /* [n_descriptors], NULL when none */

    /* ---- the input: format, frame, ROI, sizes in mm, warnings ----
     * Filled by csasn_classify and csasn_classify_ex (csasn_forward leaves
     * them 0 / NULL). The strings are the engine's: valid until the next
     * classification on the same thread. No field ever holds anything that
     * identifies a patient (such DICOM tags are not even read). */
    const char *format;        /* "png", "jpeg", "bmp", "gif", "pnm" or "dicom" */
    int frame, frames;         /* the frame classified (from 1) and how many the file has (1 but DICOM cine) */
    csasn_roi roi;             /* the box classified: the caller's ROI clipped to the image, a DICOM
                                  file's largest tissue region, or the whole image (region_* is
                                  what the model read around it by its region geometry) */
    int roi_source;            /* CSASN_ROI_WHOLE, CSASN_ROI_USER, CSASN_ROI_TISSUE */
    int has_spacing;           /* 1: spacing_mm and roi_mm hold the calibration of that box */
    float spacing_mm[2];       /* mm per pixel along x and y */
    float roi_mm[2];           /* roi.w, roi.h in mm */
    int has_lesion;            /* a mask head found a lesion (probability > 0.5) */
    float lesion_px[2];        /* its longest diameter and the one perpendicular to it, image pixels
                                  (the mask covers region_*, not roi) */
    float lesion_mm[2];        /*   the same in mm (when has_spacing) */
    const char *modality;      /* DICOM Modality (0008,0060), "" when absent or not DICOM */
    const char *manufacturer;  /* DICOM Manufacturer (0008,0070), "" when absent */
    int n_warnings;
    const char *warnings[4];   /* why the result may not hold (colour Doppler, elastography) */
} csasn_result;
#define CSASN_ROI_WHOLE  0
#define CSASN_ROI_USER   1
#define CSASN_ROI_TISSUE 2
/* The pointers in a csasn_result point into the model's own buffers: they are
 * valid until the next forward pass or csasn_model_free(). */

/* Load a model from a buffer. The buffer is only read during the call (the
 * weights are repacked into the model's own memory), so the caller may free it. */
const char *csasn_model_load(csasn_model **out, const void *buf, size_t len);
void csasn_model_free(csasn_model *m);

/* The region of an image_w x image_h upright image that the model's input
 * shows for roi (NULL: the whole image), as csasn_classify reports it in
 * result.region_*: what a page outlines to show what the model reads. The
 * same errors as csasn_classify for a bad ROI (and for a size outside
 * 1..CSASN_MAX_IMAGE_SIDE). csasn_model_info_json names the rule ("region"). */
const char *csasn_model_region(const csasn_model *m, int image_w, int image_h, const csasn_roi *roi,
                               csasn_roi *region);

/* Metadata. */
const char *csasn_model_name(const csasn_model *m);
int csasn_num_classes(const csasn_model *m);
const char *csasn_label(const csasn_model *m, int i);      /* NULL if out of range */
int csasn_label_is_malignant(const csasn_model *m, int i);
int csasn_input_size(const csasn_model *m);                /* S: input is 3 x S x S */
/* The whole metadata block as one JSON object, followed by the file's facts:
 * "tensors" (count), "parameters" (their elements), "storage" ("f32", "f16"
 * or "mixed") and "file_bytes" (what `csasn info` prints). */
const char *csasn_model_info_json(const csasn_model *m);

/* Image bytes (PNG, JPEG, BMP, GIF, binary PGM/PPM, 8 or 16 bit; DICOM, below) -> normalised
 * input tensor out[3][S][S] (planar, channel-first, as PyTorch). The image is
 * first turned upright by its EXIF orientation (JPEG, PNG eXIf), as browsers
 * show it; roi (NULL: the whole image) and *image_w, *image_h are in upright
 * pixels; the part of the image the input shows follows the model's region
 * rule (csasn_model_region). Gray is replicated to 3 channels; colour is converted to gray first
 * (ultrasound is gray; BT.601 luma), alpha is ignored. */
const char *csasn_preprocess(const csasn_model *m, const void *bytes, size_t len,
                             const csasn_roi *roi, float *out, int *image_w, int *image_h);

/* Decoder memory of the last image decoded on this thread: the estimate from
 * its header (what the decode-memory limit is checked against) and the peak the
 * decoder actually allocated (0 for formats read in place). */
void csasn_decode_stats(uint64_t *estimate, uint64_t *peak);

/* A picture of what csasn_preprocess and csasn_classify decode, for a page to
 * show so that it never decodes the file itself (src/preview.c says why): the
 * whole image, gray, resampled to side x side by the same decoder, gray
 * conversion and antialiased filter as the model input (each axis on its own:
 * show it at image_w : image_h), out[side][side] = round(255 * gray). Upright (EXIF
 * orientation applied, as for the model input), first frame only, 16-bit scaled as the engine scales it. side:
 * 1..CSASN_PREVIEW_MAX_SIDE; csasn_preview_side() gives the one to use, which
 * bounds the scratch memory (image_h x side doubles). *image_w, *image_h (may
 * be NULL) get the decoded size. */
#define CSASN_PREVIEW_MAX_SIDE 1024
const char *csasn_preview(const void *bytes, size_t len, int side, uint8_t *out,
                          int *image_w, int *image_h);
/* min(max(image_w, image_h), CSASN_PREVIEW_MAX_SIDE), lowered for tall images
 * so the resize scratch stays under 64 MiB; 0 for a bad size. */
int csasn_preview_side(int image_w, int image_h);

/* Forward pass on a preprocessed input[3][S][S]. */
const char *csasn_forward(csasn_model *m, const float *input, csasn_result *res);

/* csasn_preprocess into the model's own input buffer, then csasn_forward; the
 * result's input block (format, frame, region, mm, warnings) is filled too.
 * For csasn_preprocess and csasn_classify alike, roi NULL means a DICOM file's
 * largest tissue region (see below) when it has one, else the whole image. */
const char *csasn_classify(csasn_model *m, const void *bytes, size_t len,
                           const csasn_roi *roi, csasn_result *res);

/* ---- DICOM input: frames, the tissue region, pixels as decoded ----
 * csasn_classify takes DICOM Part 10 files too (recognised by the "DICM" after
 * the 128-byte preamble; a bare dataset without them is not read as DICOM):
 * Explicit / Implicit VR Little Endian, Deflated Explicit VR Little Endian,
 * RLE Lossless, JPEG Baseline / Extended 8-bit; native 8/16-bit (BitsStored
 * honoured, scaled to its full range), MONOCHROME1/2, RGB (planar or not),
 * YBR_FULL, YBR_FULL_422, PALETTE COLOR. Other transfer syntaxes are refused
 * by name and UID. Without a ROI, a DICOM file's largest 2D tissue region of
 * its Sequence of Ultrasound Regions is classified instead of the whole
 * frame. Only the selected frame is decoded. */
typedef struct {
    int frame;                 /* frame to classify, counting from 1 as DICOM does; 0 means 1 */
    const csasn_roi *roi;      /* NULL: the DICOM tissue region, else the whole image */
} csasn_options;

/* csasn_classify with options (opt may be NULL: frame 1, no ROI). */
const char *csasn_classify_ex(csasn_model *m, const void *bytes, size_t len, const csasn_options *opt,
                              csasn_result *res);

/* csasn_preview of one frame (1-based; 0 means 1) of the whole image. */
const char *csasn_preview_frame(const void *bytes, size_t len, int frame, int side, uint8_t *out,
                                int *image_w, int *image_h);

/* A DICOM frame as decoded, before any gray conversion or resize (for
 * comparing with other DICOM readers): *pixels (release with free()) holds
 * h rows of w pixels of channels (1 gray, 3 R G B) samples of bits (8 or
 * 16, host order) each; MONOCHROME1 inverted, YBR and palette as RGB. */
const char *csasn_dicom_frame(const void *bytes, size_t len, int frame, uint8_t **pixels, int *w, int *h,
                              int *channels, int *bits);

/* Intermediate activations of the last forward pass, for parity tests and
 * debugging. Names: "input" [3,S,S], "cnn.tap8", "cnn.tap16", "cnn.head",
 * "vit.tokens" [N+1,D] (after the final LayerNorm), "fused", "refined"
 * (maps are HWC: shape = {H, W, C}), "cls.out" [E]. Returns NULL for an unknown
 * name; shape gets up to 4 dims, *rank their count. */
const float *csasn_debug_tensor(const csasn_model *m, const char *name, int shape[4], int *rank);

/* Time per op type of the last forward pass, when built with profiling on
 * (csasn_set_profiling). Returns a JSON object {"op": ms, ...}. */
void csasn_set_profiling(csasn_model *m, int on);
const char *csasn_profile_json(const csasn_model *m);

/* The benchmark input: a deterministic ultrasound-like image (speckle over a
 * depth gradient, a darker oval lesion), normalised as the model normalises
 * a real one, into out[3][S][S]. Every benchmark of the engine (the CLI's
 * `bench` without an image, the browser's) runs on this same tensor. */
const char *csasn_bench_input(const csasn_model *m, float *out);

/* Runs every hot kernel on small scratch data, rounds times, so that a JIT
 * (V8 compiles wasm in a baseline tier first) has optimised them before the
 * first real forward pass; a page calls it while its model downloads.
 * Needs no model. Natively it only costs time. */
const char *csasn_warmup(int rounds);


/* ---------------------------------------------------------------- adaptation
 * On-device adaptation (src/adapt.c, src/ARCHITECTURE.md section 9): the
 * frozen network of a base model turns each labelled image (and each
 * augmented view of it) into the four descriptors its residual multiscale
 * classifier reads; the classifier and new heads (subtype for the user's
 * classes, malignancy when some classes are malignant) are trained on them
 * in C, cross-validated, and written as a new model file. Incremental, so a
 * page can run it in its worker with progress and cancel (cancel = stop
 * calling csasn_adapt_step and free the state):
 *   csasn_adapt_new -> csasn_adapt_add_image per image -> csasn_adapt_step
 *   until done -> csasn_adapt_report_json -> csasn_adapt_write -> csasn_adapt_free.
 * Deterministic for a given seed, data and order of csasn_adapt_add_image. */
#define CSASN_ADAPT_MAX_IMAGES   20000  /* per adaptation (descriptor memory, time) */
#define CSASN_ADAPT_MAX_CLASSES  256
#define CSASN_ADAPT_MAX_VIEWS    8
#define CSASN_ADAPT_MAX_LABEL    128    /* bytes of a class name */

typedef struct csasn_adapt csasn_adapt;

typedef struct {
    int folds;            /* k of the cross-validation (2..20; default 5) */
    int views;            /* views per image: 1 the image, 2 + its mirror, 3.. + ROI jitter (default 2) */
    float jitter;         /* ROI jitter of the extra views, fraction of the box side (default 0.04) */
    int epochs, batch;    /* per training run (default 30, 32) */
    float lr, weight_decay;   /* AdamW peak learning rate, weight decay (default 2e-3, 0.05) */
    float val_fraction;   /* inner split for early stopping and calibration (default 0.17) */
    int bootstrap;        /* resamples of the 95 % intervals (default 1000) */
    uint64_t seed;        /* default 0 */
    float dropout;        /* dropout on the cached descriptors while training (default 0.1) */
} csasn_adapt_options;

void csasn_adapt_default_options(csasn_adapt_options *o);

/* base: the base model's file bytes (copied). classes: the user's class names
 * (2..CSASN_ADAPT_MAX_CLASSES, distinct, non-empty UTF-8, stored as text);
 * malignant: the names among them that count as malignant (n_malignant 0: the
 * adapted model has no malignancy head). o NULL: defaults. */
const char *csasn_adapt_new(csasn_adapt **out, const void *base, size_t len,
                            const char *const *classes, int n_classes,
                            const char *const *malignant, int n_malignant,
                            const csasn_adapt_options *o);
void csasn_adapt_free(csasn_adapt *a);

/* The feature pass of one image of class cls (all views). group: the patient
 * (or any grouping) it belongs to, images of one group never sit on both
 * sides of a split; NULL: its own group. roi: NULL for the whole image. An
 * image that fails (unreadable, corrupt) returns its error and is not added. */
const char *csasn_adapt_add_image(csasn_adapt *a, int cls, const char *group,
                                  const void *bytes, size_t len, const csasn_roi *roi);
int csasn_adapt_count(const csasn_adapt *a, int cls);   /* images added to class cls */
/* An image whose descriptors are already known (views x dim floats, as
 * csasn_adapt_descriptors gives them, e.g. cached from an earlier run). */
const char *csasn_adapt_add_descriptors(csasn_adapt *a, int cls, const char *group, const float *desc);

/* One unit of training (an epoch of one cross-validation fold or of the
 * final model). The first call checks the data (every class has an image,
 * enough groups for the folds). *progress in [0, 1]; *done = 1 when the
 * report and the model are ready. */
const char *csasn_adapt_step(csasn_adapt *a, double *progress, int *done);

/* The cross-validated report (JSON object: images, groups, folds, macro_f1,
 * balanced_accuracy, malignancy_auc, each with _ci, classes [{label, images,
 * recall, precision, auc (+ _ci)}], confusion, warnings, heads kept and left
 * out); NULL before done. Owned by a. */
const char *csasn_adapt_report_json(const csasn_adapt *a);

/* The adapted model file: *out (malloc'd; free with csasn_adapt_free_buffer),
 * *len. name: general.name (NULL: "<base name>-adapted"); date: the date
 * recorded in the provenance (the caller's clock, e.g. "2026-12-02"). */
const char *csasn_adapt_write(const csasn_adapt *a, const char *name, const char *date,
                              void **out, size_t *len);
void csasn_adapt_free_buffer(void *p);

/* The cached descriptors, for tests and tools: n images x views x dim floats
 * (*desc), the class of each image (*cls). */
void csasn_adapt_descriptors(const csasn_adapt *a, int *n, int *views, int *dim,
                             const float **desc, const int **cls);
/* The group id of each image (0.., in order of first appearance). */
const int *csasn_adapt_groups(const csasn_adapt *a);
/* The vector kernels against their scalar references on fixed data (GEMM,
 * depthwise, attention; every tail size): NULL, or an error naming the kernel
 * and the difference. An engine whose runtime may implement its instructions
 * wrongly (the relaxed-SIMD wasm build) is used only after this passes. */
const char *csasn_selftest(void);
/* The instruction set the kernels were built for: "sse2", "wasm-simd128",
 * "wasm-relaxed-simd" or "scalar". */
const char *csasn_kernels_name(void);

/* SHA-256 of a buffer (FIPS 180-4): how a report names the model file it
 * used and an adapted model names its base. out: 32 bytes, or 64 lowercase hex
 * digits and a NUL. */
void csasn_sha256(const void *data, size_t len, uint8_t out[32]);
void csasn_sha256_hex(const void *data, size_t len, char out[65]);

/* ---- exam report (src/report.c) ----
 * One implementation of the exam report for the CLI (`csasn report`) and the
 * page (through shell/exports.c), so both write the same bytes for the same
 * inputs. Images are added one by one with their result; images that name the
 * same nodule label form one nodule, whose views combine (report.c says how).
 * The document is the csasn-report JSON (schema: src/REPORT.md) or an HL7 FHIR
 * R4 Bundle. Strings must be UTF-8 (invalid bytes become U+FFFD). */
#define CSASN_REPORT_VERSION 1
#define CSASN_REPORT_MAX_IMAGES 1000

typedef struct csasn_report csasn_report;

typedef struct {
    const char *name;             /* the image's file name (no folders) */
    const char *nodule;           /* nodule label, e.g. "right lobe, nodule 1"; NULL or "": a nodule of its own */
    const char *view;             /* "transverse", "longitudinal", "other" (NULL: "other") */
    const csasn_roi *roi;         /* the region classified; NULL: the whole image */
    const csasn_result *result;   /* read: n_classes, probs, has_malignancy, malignancy, image_w, image_h */
    double size_mm;               /* largest lesion diameter in mm; NAN where no calibration exists */
} csasn_report_image;

/* model_sha256: 64 hex digits of the model file; date: the exam's time as
 * YYYY-MM-DDThh:mm:ssZ (UTC). The model is read during the calls only. */
const char *csasn_report_new(csasn_report **out, const csasn_model *m, const char *model_sha256,
                             const char *date);
/* Copies what it needs from img (the result may be overwritten afterwards). */
const char *csasn_report_add(csasn_report *r, const csasn_report_image *img);
/* fhir 0: csasn-report JSON, 1: FHIR R4 Bundle. *out is owned by r, valid
 * until the next call on r. */
const char *csasn_report_json(csasn_report *r, int fhir, const char **out);
void csasn_report_free(csasn_report *r);
/* The malignancy head's operating point (csasn.malignancy_threshold); NAN
 * when the model has no malignancy head. */
float csasn_malignancy_threshold(const csasn_model *m);

#ifdef __cplusplus
}
#endif
#endif /* CSASN_H */
