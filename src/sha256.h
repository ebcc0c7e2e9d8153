/* sha256.h - private: SHA-256 (FIPS 180-4), for the provenance an adapted
 * model records about its base model (src/adapt.c). */
#ifndef CSASN_SHA256_H
#define CSASN_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* digest of data[len] -> hex[65] (64 lowercase hex digits + NUL). */
void csasn__sha256_hex(const void *data, size_t len, char hex[65]);

#endif
