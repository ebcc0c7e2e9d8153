/* error.h - private: the engine's formatted error messages (src/error.c).
 * Every part of the library reports a failure as a string (csasn.h); the
 * ones that need numbers or names in them format it here. */
#ifndef CSASN_ERROR_H
#define CSASN_ERROR_H

#if defined(__GNUC__) || defined(__clang__)
#define CSASN__PRINTF(i, j) __attribute__((format(printf, i, j)))
#else
#define CSASN__PRINTF(i, j)
#endif

/* printf into a thread-local buffer (512 bytes, longer messages cut) and
 * return it: valid until the next call on the same thread. An argument may
 * be an earlier message from this buffer (wrapping an error with context). */
const char *csasn__errf(const char *fmt, ...) CSASN__PRINTF(1, 2);

#endif
