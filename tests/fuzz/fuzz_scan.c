
/*
 * Request JSON: ai_scan() + ai_scan_validate() on any bytes, and a
 * differential check against jansson, which builds the tree the gateway
 * uses later on the same body (translation, cache keys, plugins).
 *
 * What ai_scan() accepts, json_loadb() must accept, and the reverse,
 * except for these documented differences:
 *   - duplicate keys in the root object: refused by ai_scan() only;
 *   - "\u0000" in a string or a key: refused by jansson only (no
 *     JSON_ALLOW_NUL; in keys never);
 *   - nesting deeper than AI_SCAN_MAX_DEPTH (512): refused by ai_scan()
 *     only (jansson's own limit is 2048);
 *   - a raw NUL byte: jansson stops reading at it and may accept what
 *     comes before; ai_scan() must refuse it (NUL is never valid JSON).
 * The root type found must agree with jansson's.
 *
 * Known open bug (tests/fuzz/regressions/fuzz_scan/number-*): ai_scan()
 * accepts numbers that jansson refuses ("too big integer", "real number
 * overflow"), so such a body passes validation and then fails to parse
 * in ngx_http_ai_request_json() (500).  While it is open, fuzzing runs
 * with AIGW_FUZZ_TOLERATE_KNOWN=1 (tools/fuzz.sh) to look past it; the
 * regression inputs are replayed without it and fail until it is fixed.
 */

#include <jansson.h>

#include "ai_scan.h"
#include "fuzz_common.h"


static int  fuzz_tolerate_known;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char  *v;

    (void) argc;
    (void) argv;

    v = getenv("AIGW_FUZZ_TOLERATE_KNOWN");
    fuzz_tolerate_known = v != NULL && strcmp(v, "1") == 0;

    return 0;
}


static int
fuzz_jt(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return AI_JT_OBJECT;
    case JSON_ARRAY:   return AI_JT_ARRAY;
    case JSON_STRING:  return AI_JT_STRING;
    case JSON_INTEGER: return AI_JT_INTEGER;
    case JSON_REAL:    return AI_JT_REAL;
    case JSON_TRUE:    return AI_JT_TRUE;
    case JSON_FALSE:   return AI_JT_FALSE;
    default:           return AI_JT_NULL;
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               rc, ep;
    char              err[256];
    json_t           *root;
    ai_scan_t         s;
    json_error_t      jerr;
    ai_json_error_t   verr;

    static const int  endpoints[] = { AI_EP_CHAT, AI_EP_COMPLETIONS,
                                      AI_EP_EMBEDDINGS, AI_EP_MESSAGES };

    rc = ai_scan(data, size, &s, err, sizeof(err));

    if (rc == 0) {
        FUZZ_CHECK(s.root_type > 0);
        FUZZ_CHECK(s.model_type == AI_JT_NONE || s.model_type == AI_JT_STRING
                   || s.model == NULL);

        if (s.model != NULL) {
            FUZZ_CHECK(s.model >= data && s.model + s.model_len <= data + size);
        }

        for (ep = 0; ep < (int) (sizeof(endpoints) / sizeof(int)); ep++) {
            memset(&verr, 0, sizeof(verr));

            if (ai_scan_validate(&s, endpoints[ep], &verr) != 0) {
                FUZZ_CHECK(memchr(verr.message, '\0', sizeof(verr.message))
                           != NULL);
                FUZZ_CHECK(memchr(verr.param, '\0', sizeof(verr.param))
                           != NULL);
            }
        }

    } else {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    }

    if (memchr(data, '\0', size) != NULL) {
        FUZZ_CHECK(rc != 0);
        return 0;
    }

    root = json_loadb((const char *) data, size, JSON_DECODE_ANY, &jerr);

    if (rc == 0 && root == NULL) {
        if (fuzz_tolerate_known
            && (strstr(jerr.text, "too big") != NULL
                || strstr(jerr.text, "real number overflow") != NULL))
        {
            return 0;
        }

        if (strstr(jerr.text, "\\u0000") == NULL
            && strstr(jerr.text, "NUL byte in object key") == NULL)
        {
            fprintf(stderr, "fuzz: ai_scan accepts, jansson refuses: %s\n",
                    jerr.text);
            FUZZ_CHECK(!"ai_scan accepts what jansson refuses");
        }
    }

    if (rc != 0 && root != NULL) {
        if (strstr(err, "duplicate object key") == NULL
            && strstr(err, "maximum nesting depth") == NULL)
        {
            fprintf(stderr, "fuzz: jansson accepts, ai_scan refuses: %s\n",
                    err);
            FUZZ_CHECK(!"jansson accepts what ai_scan refuses");
        }
    }

    if (rc == 0 && root != NULL) {
        FUZZ_CHECK(s.root_type == fuzz_jt(root));
    }

    json_decref(root);

    return 0;
}
