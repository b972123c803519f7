
/*
 * Helpers shared by the libFuzzer targets in tests/fuzz/.  Each target is
 * one fuzz_<name>.c with LLVMFuzzerTestOneInput(); tools/fuzz.sh builds
 * them with -fsanitize=fuzzer,address,undefined and runs them.
 *
 * A broken invariant is reported with FUZZ_CHECK(), which prints what was
 * expected and aborts, so libFuzzer keeps the input as a crash.
 */

#ifndef _AIGW_FUZZ_COMMON_H_INCLUDED_
#define _AIGW_FUZZ_COMMON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz: %s:%d: invariant broken: %s\n",          \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


/*
 * Targets that need a choice besides the payload (where to split it, a
 * flag) read it from a small header at the start of the input:
 *
 *   byte 0, 1   split point, little-endian, taken modulo (payload + 1)
 *   byte 2      flags, target-specific
 *   byte 3      reserved (0)
 *
 * tests/fuzz/make_corpus.py writes seeds with this header.
 */

#define FUZZ_HDR  4

typedef struct {
    const uint8_t  *data;      /* the payload */
    size_t          len;
    size_t          split;     /* 0 .. len */
    unsigned        flags;
} fuzz_input_t;


static inline int
fuzz_input(const uint8_t *data, size_t size, fuzz_input_t *in)
{
    if (size < FUZZ_HDR) {
        return -1;
    }

    in->data = data + FUZZ_HDR;
    in->len = size - FUZZ_HDR;
    in->split = ((size_t) data[0] | ((size_t) data[1] << 8)) % (in->len + 1);
    in->flags = data[2];

    return 0;
}


/* a NUL-terminated malloc'd copy (so that parsers may read text) */
static inline char *
fuzz_strdup(const uint8_t *data, size_t size)
{
    char  *s;

    s = malloc(size + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';

    return s;
}


#endif /* _AIGW_FUZZ_COMMON_H_INCLUDED_ */
