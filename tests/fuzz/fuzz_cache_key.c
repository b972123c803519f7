
/*
 * The canonical cache key on any JSON jansson accepts: ai_cache_key() for
 * every endpoint, ai_cache_canonical() and the invariants of a canonical
 * form: it parses back, and canonicalising it again changes nothing (so
 * two requests that differ only in key order or whitespace share a key).
 * The policy helpers (ai_cache_cacheable, the header parsers) and the
 * stored-body paths (ai_cache_storable, replay as JSON and as SSE, the
 * rendered streamed hit against the replay) get the same bytes.
 */

#include <jansson.h>

#include "ai_cache.h"
#include "fuzz_common.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                      ep, rc, rc2, cacheable, usage;
    char                    *hit;
    size_t                   n;
    ai_cache_sse_t           sse;
    json_t                  *v, *again, *copy;
    ai_buf_t                 canon, canon2, out, s1, s2, slow;
    unsigned char            d1[AI_CACHE_KEY_LEN], d2[AI_CACHE_KEY_LEN];
    char                     hex[65];
    ai_cache_replay_opts_t   ro;

    ai_cache_parse_control((const char *) data, size);
    ai_cache_parse_force((const char *) data, size);

    memset(&s1, 0, sizeof(s1));
    memset(&s2, 0, sizeof(s2));

    for (ep = AI_EP_CHAT; ep <= AI_EP_EMBEDDINGS; ep++) {
        rc = ai_cache_storable((const char *) data, size, ep);
        rc2 = ai_cache_storable_raw((const char *) data, size, ep);

        /* the tree-free check may refuse more (an escaped finish_reason),
           never accept what the tree refuses */
        FUZZ_CHECK(rc2 <= rc);
    }

    memset(&ro, 0, sizeof(ro));
    ro.model = "client-model";
    ro.model_len = 12;
    ro.include_usage = size & 1;
    ro.chunk_bytes = size % 7;

    memset(&out, 0, sizeof(out));
    ai_cache_replay_json((const char *) data, size, &ro, &out);
    ai_buf_free(&out);
    memset(&out, 0, sizeof(out));
    ai_cache_replay_sse((const char *) data, size, &ro, &out);
    ai_buf_free(&out);

    /* a streamed hit from the rendered events: the replay's bytes */
    memset(&out, 0, sizeof(out));

    if (ai_cache_render_sse((const char *) data, size, &out, &sse) == 0) {
        for (usage = 0; usage < 2; usage++) {
            memset(&ro, 0, sizeof(ro));
            ro.model = "client-model";
            ro.model_len = 12;
            ro.include_usage = usage;

            memset(&slow, 0, sizeof(slow));
            FUZZ_CHECK(ai_cache_replay_sse((const char *) data, size, &ro,
                                           &slow) == 0);

            n = ai_cache_sse_hit(out.data, out.len, &sse,
                                 (const unsigned char *) "client-model", 12,
                                 usage, NULL);
            hit = malloc(n + 1);
            FUZZ_CHECK(hit != NULL);
            FUZZ_CHECK(ai_cache_sse_hit(out.data, out.len, &sse,
                                        (const unsigned char *)
                                        "client-model", 12, usage, hit)
                       == n);
            FUZZ_CHECK(n == slow.len && memcmp(hit, slow.data, n) == 0);
            free(hit);
            ai_buf_free(&slow);
        }

        ai_cache_sse_free(&sse);
    }

    ai_buf_free(&out);

    v = json_loadb((const char *) data, size, JSON_DECODE_ANY, NULL);
    if (v == NULL) {
        ai_buf_free(&s1);
        ai_buf_free(&s2);
        return 0;
    }

    for (ep = AI_EP_UNKNOWN; ep <= AI_EP_MESSAGES; ep++) {
        ai_cache_cacheable(v, ep, 0);
        ai_cache_cacheable(v, ep, 1);

        rc = ai_cache_key(v, ep, "gpt-4o", 6, "ns", d1);

        if (!json_is_object(v)) {
            FUZZ_CHECK(rc == -1);
        }

        /* the tree-free reader, where it answers, gives the same key and
           the same policy */
        if (rc == 0 && (ep == AI_EP_CHAT || ep == AI_EP_COMPLETIONS
                        || ep == AI_EP_EMBEDDINGS))
        {
            if (ai_cache_key_raw((const char *) data, size, ep, ep, 0,
                                 "gpt-4o", 6, "ns", &s1, &s2, &cacheable, d2)
                == 0)
            {
                FUZZ_CHECK(memcmp(d1, d2, sizeof(d1)) == 0);
                FUZZ_CHECK(cacheable == ai_cache_cacheable(v, ep, 0));
            }
        }

        if (rc == 0) {
            ai_cache_key_hex(d1, hex);
            FUZZ_CHECK(strlen(hex) == 64);

            /* a deep copy has the same key */
            copy = json_deep_copy(v);
            FUZZ_CHECK(copy != NULL);
            rc2 = ai_cache_key(copy, ep, "gpt-4o", 6, "ns", d2);
            FUZZ_CHECK(rc2 == 0 && memcmp(d1, d2, sizeof(d1)) == 0);
            json_decref(copy);
        }
    }

    memset(&canon, 0, sizeof(canon));

    if (ai_cache_canonical(v, &canon) == 0) {
        again = json_loadb(canon.data, canon.len, JSON_DECODE_ANY
                           | JSON_ALLOW_NUL, NULL);
        FUZZ_CHECK(again != NULL);

        memset(&canon2, 0, sizeof(canon2));
        FUZZ_CHECK(ai_cache_canonical(again, &canon2) == 0);
        FUZZ_CHECK(canon2.len == canon.len
                   && memcmp(canon2.data, canon.data, canon.len) == 0);
        ai_buf_free(&canon2);
        json_decref(again);
    }

    ai_buf_free(&canon);
    ai_buf_free(&s1);
    ai_buf_free(&s2);
    json_decref(v);

    return 0;
}
