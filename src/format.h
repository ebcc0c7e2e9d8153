/* format.h - private: parsing and validating a .csasn file (src/FORMAT.md).
 * The parser copies the metadata into its own memory and keeps pointers into
 * the caller's buffer for tensor data (valid while that buffer lives, i.e.
 * during csasn_model_load). */
#ifndef CSASN_FORMAT_H
#define CSASN_FORMAT_H

#include <stddef.h>
#include <stdint.h>

enum { CSASN__T_U32 = 0, CSASN__T_I32 = 1, CSASN__T_F32 = 2, CSASN__T_STR = 3, CSASN__T_ARR = 4 };
enum { CSASN__DT_F32 = 0, CSASN__DT_F16 = 1 };

typedef struct {
    char *key;
    uint32_t type;       /* CSASN__T_*; for arrays, elem_type holds the element type */
    uint32_t elem_type;
    uint32_t count;      /* array length (1 for scalars) */
    union { uint32_t u32; int32_t i32; float f32; } v;  /* scalar value */
    char *str;           /* CSASN__T_STR value (NUL-terminated copy) */
    void *arr;           /* array: uint32_t[] / int32_t[] / float[] / char*[] */
} csasn__kv;

typedef struct {
    char *name;
    uint32_t dtype;      /* CSASN__DT_* */
    uint32_t rank;
    uint32_t dims[4];
    size_t numel;
    const void *data;    /* into the caller's buffer, 64-byte aligned offset */
    int used;            /* set by the model builder; an unused tensor is "unexpected" */
} csasn__tensor;

typedef struct {
    uint32_t version;
    uint32_t n_kv, n_tensors;
    csasn__kv *kv;
    csasn__tensor *tensors;
} csasn__file;

/* Parse and validate the container (everything in FORMAT.md's list that does
 * not need to know the architecture). On error *f is left freed. */
const char *csasn__file_parse(csasn__file *f, const void *buf, size_t len);
void csasn__file_free(csasn__file *f);

/* Typed metadata getters: NULL on success, or "metadata key 'k' missing" /
 * "metadata key 'k' has type X, expected Y". */
const char *csasn__meta_u32(const csasn__file *f, const char *key, uint32_t *out);
const char *csasn__meta_f32(const csasn__file *f, const char *key, float *out);
const char *csasn__meta_str(const csasn__file *f, const char *key, const char **out);
/* Arrays: *out points into the file's own copy; *count gets the length. */
const char *csasn__meta_u32_array(const csasn__file *f, const char *key, const uint32_t **out, uint32_t *count);
const char *csasn__meta_f32_array(const csasn__file *f, const char *key, const float **out, uint32_t *count);
const char *csasn__meta_str_array(const csasn__file *f, const char *key, char *const **out, uint32_t *count);

/* 1 if the file has metadata key `key` (any type): optional keys are read
 * only when present, and then with the typed getters above. */
int csasn__meta_has(const csasn__file *f, const char *key);

/* Tensor lookup. Marks the tensor used. NULL if absent. */
csasn__tensor *csasn__file_tensor(csasn__file *f, const char *name);

/* Convert to float32 into dst[numel]; rejects NaN/Inf ("tensor 'x' contains NaN"). */
const char *csasn__tensor_to_f32(const csasn__tensor *t, float *dst);

/* All metadata as one JSON object (malloc'd; caller frees). NULL on OOM. */
char *csasn__file_meta_json(const csasn__file *f);
/* The same object followed by the container's facts: "tensors" (count),
 * "parameters" (their elements), "storage" ("f32", "f16" or "mixed") and
 * "file_bytes" (the file's size, given); extra (NULL or "") is more members
 * ("key": value, ...) that the model adds before those facts. */
char *csasn__file_info_json(const csasn__file *f, size_t file_bytes, const char *extra);

#endif
