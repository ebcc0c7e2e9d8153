/* test_sha256.c - csasn_sha256 (src/sha256.c) against known answers: the FIPS
 * 180-4 examples ("abc", a million 'a') and messages of 'a' whose lengths sit
 * at every padding edge (the tail plus its 9 bytes of marker and length fill
 * one block, exactly one, or spill into a second). The expected digests come
 * from Python's hashlib, an implementation no one here wrote. */
#include "csasn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(const char *name, int ok, const char *why)
{
    printf(ok ? "ok %s\n" : "not ok %s: %s\n", name, why ? why : "");
    failures += !ok;
}

int main(void)
{
    static const struct { size_t n; const char *hex; } as[] = {
        {0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {1, "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"},
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
        {1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    char *a = malloc(1000000);
    if (!a)
        return 1;
    memset(a, 'a', 1000000);
    char hex[65], name[64];
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
        csasn_sha256_hex(a, as[i].n, hex);
        snprintf(name, sizeof name, "sha256_a_x%zu", as[i].n);
        check(name, !strcmp(hex, as[i].hex), hex);
    }
    csasn_sha256_hex("abc", 3, hex);
    check("sha256_abc", !strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), hex);
    uint8_t raw[32];
    csasn_sha256("abc", 3, raw);
    check("sha256_raw_matches_hex", raw[0] == 0xba && raw[31] == 0xad, "first/last byte");
    free(a);
    return failures != 0;
}
