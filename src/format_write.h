/* format_write.h - private: writing a .csasn file (src/FORMAT.md), the C
 * counterpart of tools/csasn_format.py's writer. An adapted model
 * (src/adapt.c) is its base file with some metadata and tensors replaced:
 * entries are added one by one, copied from a parsed file or new, and the
 * file is laid out once at the end. */
#ifndef CSASN_FORMAT_WRITE_H
#define CSASN_FORMAT_WRITE_H

#include "format.h"

#include <stddef.h>
#include <stdint.h>

typedef struct csasn__writer csasn__writer;

csasn__writer *csasn__writer_new(void);
void csasn__writer_free(csasn__writer *w);

/* Metadata. Keys and strings are copied. A failure (out of memory, a
 * duplicate key) is remembered and reported by csasn__writer_finish. */
void csasn__w_kv(csasn__writer *w, const csasn__kv *kv);      /* a parsed entry as it is */
void csasn__w_u32(csasn__writer *w, const char *key, uint32_t v);
void csasn__w_f32(csasn__writer *w, const char *key, float v);
void csasn__w_str(csasn__writer *w, const char *key, const char *v);
void csasn__w_strs(csasn__writer *w, const char *key, const char *const *v, int n);
void csasn__w_u32s(csasn__writer *w, const char *key, const uint32_t *v, int n);

/* Tensors: the data is copied. dtype CSASN__DT_F32 or _F16; bytes must be
 * numel * (4 or 2). */
void csasn__w_tensor(csasn__writer *w, const char *name, uint32_t dtype, int rank,
                     const uint32_t *dims, const void *data, size_t bytes);
/* A tensor of a parsed file, its stored bytes unchanged. */
void csasn__w_copy_tensor(csasn__writer *w, const csasn__tensor *t);

/* The file: *out (malloc'd, caller frees) and *len. Frees the writer. */
const char *csasn__writer_finish(csasn__writer *w, void **out, size_t *len);

#endif
