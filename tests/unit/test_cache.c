
/*
 * Unit tests of the pure half of the response cache (ai_cache.c): the
 * canonical key, the policy, the assembly of streamed answers, the check
 * before storing and the replay, as JSON and as SSE.  The fixtures below
 * were captured from tests/mocks/mock_provider.py (POST /v1/chat/completions
 * and /v1/completions, models gpt-chunks20, gpt-tools, gpt-long,
 * gpt-stream-error), byte for byte.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_cache.h"


static int  ai_checks, ai_failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        ai_checks++;                                                       \
        if (!(cond)) {                                                     \
            ai_failures++;                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)


/* ---- helpers ---- */

static json_t *
ai_t_json(const char *s)
{
    json_t        *v;
    json_error_t   e;

    v = json_loads(s, JSON_DECODE_ANY, &e);

    if (v == NULL) {
        fprintf(stderr, "bad test JSON: %s: %s\n", e.text, s);
        exit(2);
    }

    return v;
}


/* the canonical form of a JSON text, in a static buffer */

static const char *
ai_t_canon(const char *s)
{
    json_t           *v;
    static ai_buf_t   b;

    ai_buf_free(&b);
    v = ai_t_json(s);

    if (ai_cache_canonical(v, &b) != 0) {
        json_decref(v);
        return "<error>";
    }

    json_decref(v);

    return b.data;
}


static int
ai_t_same_canon(const char *x, const char *y)
{
    ai_buf_t   a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
    json_t    *vx, *vy;
    int        same;

    vx = ai_t_json(x);
    vy = ai_t_json(y);
    same = ai_cache_canonical(vx, &a) == 0 && ai_cache_canonical(vy, &b) == 0
           && a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
    json_decref(vx);
    json_decref(vy);
    ai_buf_free(&a);
    ai_buf_free(&b);

    return same;
}


/*
 * ai_cache_key_raw() against the tree: where the raw reader answers, the
 * digest and the policy are the tree's.  Counts how often it answered.
 */

static int  ai_t_raw_answered, ai_t_raw_declined;

static void
ai_t_raw_agrees(const char *req, int endpoint, const char *model,
    const char *ns, int force, const unsigned char *tree_digest)
{
    int             cacheable, rc;
    json_t         *v;
    ai_buf_t        scratch = { NULL, 0, 0 }, tmp = { NULL, 0, 0 };
    unsigned char   d[AI_CACHE_KEY_LEN];

    rc = ai_cache_key_raw(req, strlen(req), endpoint, endpoint, force, model,
                          strlen(model), ns, &scratch, &tmp, &cacheable, d);

    if (rc == 0) {
        ai_t_raw_answered++;
        CHECK(memcmp(d, tree_digest, AI_CACHE_KEY_LEN) == 0);

        v = json_loads(req, 0, NULL);
        CHECK(cacheable == ai_cache_cacheable(v, endpoint, force));
        json_decref(v);

        if (memcmp(d, tree_digest, AI_CACHE_KEY_LEN) != 0) {
            printf("raw key differs for: %s\n  raw: %.*s\n", req,
                   (int) scratch.len, scratch.data);
        }

    } else {
        ai_t_raw_declined++;
    }

    ai_buf_free(&scratch);
    ai_buf_free(&tmp);
}


/* both versions of the store check, which must agree */

static int
ai_t_storable(const char *body, size_t len, int ep)
{
    int       a, b;

    a = ai_cache_storable(body, len, ep);
    b = ai_cache_storable_raw(body, len, ep);
    CHECK(a == b);

    if (a != b) {
        printf("storable %d vs raw %d: %.*s\n", a, b, (int) len, body);
    }

    return a;
}


/* the key of a request text; returns the hex in a static buffer */

static const char *
ai_t_key(const char *req, int endpoint, const char *model, const char *ns)
{
    json_t         *v;
    unsigned char   d[AI_CACHE_KEY_LEN];
    static char     hex[4][65];
    static int      slot;

    v = ai_t_json(req);
    slot = (slot + 1) % 4;

    if (ai_cache_key(v, endpoint, model, strlen(model), ns, d) != 0) {
        json_decref(v);
        return "<error>";
    }

    json_decref(v);
    ai_cache_key_hex(d, hex[slot]);

    /* the tree-free reader agrees wherever it answers */
    ai_t_raw_agrees(req, endpoint, model, ns, 0, d);

    return hex[slot];
}


static int
ai_t_cacheable(const char *req, int endpoint, int force)
{
    int      r;
    json_t  *v;

    v = ai_t_json(req);
    r = ai_cache_cacheable(v, endpoint, force);

    if (v != NULL) {
        unsigned char  d[AI_CACHE_KEY_LEN];

        if (ai_cache_key(v, endpoint, "m", 1, "", d) == 0) {
            ai_t_raw_agrees(req, endpoint, "m", "", force, d);
        }
    }

    json_decref(v);

    return r;
}


/*
 * Feeds a stream in pieces: step bytes at a time (0: all at once), or in
 * two pieces cut at cut when step is (size_t) -1; len (size_t) -2 is
 * strlen(s).  Returns what
 * ai_cache_asm_finish() returns, the whole response in out.
 */

static int
ai_t_assemble_one(int endpoint, const char *s, size_t len, size_t step,
    size_t cut, int tree_only, ai_buf_t *out)
{
    int              rc;
    size_t           off, n;
    ai_cache_asm_t  *a;

    a = ai_cache_asm_new(endpoint);

    if (a == NULL) {
        return -2;
    }

    if (tree_only) {
        ai_cache_asm_tree_only(a);
    }

    if (step == (size_t) -1) {
        ai_cache_asm_feed(a, s, cut);
        ai_cache_asm_feed(a, s + cut, len - cut);

    } else {
        for (off = 0; off < len; off += n) {
            n = (step == 0 || len - off < step) ? len - off : step;
            ai_cache_asm_feed(a, s + off, n);
        }
    }

    rc = ai_cache_asm_finish(a, out);
    ai_cache_asm_free(a);

    return rc;
}


/*
 * Every assembly is made twice, chunks read from their bytes and through
 * jansson trees: the two must give the same answer, byte for byte.
 */

static int  ai_t_asm_compared;

static int
ai_t_assemble(int endpoint, const char *s, size_t len, size_t step,
    size_t cut, ai_buf_t *out)
{
    int       rc, rc2;
    size_t    start;
    ai_buf_t  tree = { NULL, 0, 0 };

    if (len == (size_t) -2) {
        len = strlen(s);
    }

    start = out->len;
    rc = ai_t_assemble_one(endpoint, s, len, step, cut, 0, out);
    rc2 = ai_t_assemble_one(endpoint, s, len, step, cut, 1, &tree);

    CHECK(rc == rc2);

    if (rc == 1 && rc2 == 1) {
        CHECK(out->len - start == tree.len
              && memcmp(out->data + start, tree.data, tree.len) == 0);
    }

    ai_t_asm_compared++;
    ai_buf_free(&tree);

    return rc;
}


static json_t *
ai_t_load(const ai_buf_t *b)
{
    return b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;
}


static const char *
ai_t_str(json_t *root, const char *path)
{
    json_t      *v;
    char         key[64];
    const char  *p, *dot;
    size_t       n;

    v = root;

    for (p = path; v && *p; p = dot ? dot + 1 : p + n) {
        dot = strchr(p, '.');
        n = dot ? (size_t) (dot - p) : strlen(p);
        snprintf(key, sizeof(key), "%.*s", (int) n, p);

        if (json_is_array(v)) {
            v = json_array_get(v, strtoul(key, NULL, 10));

        } else {
            v = json_object_get(v, key);
        }

        if (dot == NULL) {
            break;
        }
    }

    return json_string_value(v);
}


static json_int_t
ai_t_int(json_t *root, const char *path)
{
    json_t      *v;
    char         key[64];
    const char  *p, *dot;
    size_t       n;

    v = root;

    for (p = path; v && *p; p = dot ? dot + 1 : p + n) {
        dot = strchr(p, '.');
        n = dot ? (size_t) (dot - p) : strlen(p);
        snprintf(key, sizeof(key), "%.*s", (int) n, p);

        if (json_is_array(v)) {
            v = json_array_get(v, strtoul(key, NULL, 10));

        } else {
            v = json_object_get(v, key);
        }

        if (dot == NULL) {
            break;
        }
    }

    return json_is_integer(v) ? json_integer_value(v) : -12345;
}


static int
ai_t_streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}


/* ---- fixtures, captured from the mock ---- */

static const char ai_t_chunks20_sse[] =
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"cont"
    "ent\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}"
    "],\"usage\":null,\"obfuscation\":\"7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"logpro"
    "bs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"f1"
    "abe7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \"},\"logpro"
    "bs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"86"
    "0714\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"fro\"},\"logpro"
    "bs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"37"
    "c48f\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"m m\"},\"logpro"
    "bs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"4e"
    "fb30\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ock\"},\"logpro"
    "bs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"9a"
    "e3c2\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"! \"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"8bb"
    "e8\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Yo\"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"02f"
    "31\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"u \"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"c6a"
    "29\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"sa\"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"234"
    "c0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"id\"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"47b"
    "9b\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\": \"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"d99"
    "4a\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"H\303\251\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation"
    "\":\"ec9e4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ll\"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"932"
    "f0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"o \"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"2c9"
    "29\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w\303\266\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation"
    "\":\"18346\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"rl\"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"a8f"
    "f3\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"d \"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"42b"
    "02\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\342\234\223 \""
    "},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscat"
    "ion\":\"11f4a\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ca\"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"480"
    "74\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"f\303\251\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation"
    "\":\"fbbb0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_"
    "reason\":\"stop\"}],\"usage\":null,\"obfuscation\":\"999\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens"
    "\":20,\"total_tokens\":28,\"prompt_tokens_details\":{\"cached_tokens\""
    ":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_toke"
    "ns\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_"
    "prediction_tokens\":0}},\"obfuscation\":\"mockusage\"}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char ai_t_tools_sse[] =
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content"
    "\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_hGPuDh9URqc62sGum37"
    "M4YCO\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,\"finish_rea"
    "son\":null}],\"obfuscation\":\"be\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"{\\\"\"}}]},\"logprobs\":null,\"finish_reas"
    "on\":null}],\"obfuscation\":\"8f411cb82ceb\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"location\"}}]},\"logprobs\":null,\"finish_r"
    "eason\":null}],\"obfuscation\":\"f206c\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"\\\":\\\"\"}}]},\"logprobs\":null,\"finish_"
    "reason\":null}],\"obfuscation\":\"87\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"Paris\"}}]},\"logprobs\":null,\"finish_reas"
    "on\":null}],\"obfuscation\":\"ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\",\"}}]},\"logprobs\":null,\"finish_reason\""
    ":null}],\"obfuscation\":\"3c0f7d6221\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\" France\"}}]},\"logprobs\":null,\"finish_re"
    "ason\":null}],\"obfuscation\":\"cefc\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"\\\",\\\"\"}}]},\"logprobs\":null,\"finish_"
    "reason\":null}],\"obfuscation\":\"85\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"unit\"}}]},\"logprobs\":null,\"finish_reaso"
    "n\":null}],\"obfuscation\":\"3\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"\\\":\\\"\"}}]},\"logprobs\":null,\"finish_"
    "reason\":null}],\"obfuscation\":\"87\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"c\"}}]},\"logprobs\":null,\"finish_reason\""
    ":null}],\"obfuscation\":\"1ab7ca3c51\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"elsius\"}}]},\"logprobs\":null,\"finish_rea"
    "son\":null}],\"obfuscation\":\"b58\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"f"
    "unction\":{\"arguments\":\"\\\"}\"}}]},\"logprobs\":null,\"finish_reas"
    "on\":null}],\"obfuscation\":\"67b8f7815776\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-SPCIt8S7WIUc7bHow3G5diRfTgI5w\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-tools\""
    ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d19e13c1a5\""
    ",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_rea"
    "son\":\"tool_calls\"}],\"obfuscation\":\"999\"}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char ai_t_length_sse[] =
    "data: {\"id\":\"chatcmpl-pG5W3OWDGkBWyOqkdxZJY2WT3SegL\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"cont"
    "ent\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}"
    "],\"obfuscation\":\"7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-pG5W3OWDGkBWyOqkdxZJY2WT3SegL\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"He\"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"obfuscation\":\"e7418\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-pG5W3OWDGkBWyOqkdxZJY2WT3SegL\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ll\"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"obfuscation\":\"932f0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-pG5W3OWDGkBWyOqkdxZJY2WT3SegL\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"o \"},\"logprob"
    "s\":null,\"finish_reason\":null}],\"obfuscation\":\"2c929\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-pG5W3OWDGkBWyOqkdxZJY2WT3SegL\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-chunks2"
    "0\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fe837757d"
    "4\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_"
    "reason\":\"length\"}],\"obfuscation\":\"999\"}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char ai_t_compl_sse[] =
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"He\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"ll\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"o \",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"fr\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"om\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\" m\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"oc\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"k!\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\" Y\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"ou\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\" s\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"ai\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"d:\",\"i"
    "ndex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-ch"
    "unks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\" \",\"in"
    "dex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-chu"
    "nks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"S\",\"in"
    "dex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-chu"
    "nks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"a\",\"in"
    "dex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-chu"
    "nks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"y\",\"in"
    "dex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-chu"
    "nks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\" \",\"in"
    "dex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-chu"
    "nks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"h\",\"in"
    "dex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-chu"
    "nks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"i\",\"in"
    "dex\":0,\"logprobs\":null,\"finish_reason\":null}],\"model\":\"gpt-chu"
    "nks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[{\"text\":\"\",\"ind"
    "ex\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}],\"model\":\"gpt-"
    "chunks20\",\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"cmpl-r5xNyAlXwEn4BoyWeRDLk1FLKgVRx\",\"object\":\"text"
    "_completion\",\"created\":1795599860,\"choices\":[],\"model\":\"gpt-ch"
    "unks20\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":20,\"tot"
    "al_tokens\":23}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char ai_t_streamerr_sse[] =
    "data: {\"id\":\"chatcmpl-ccrGgevcHCWiT7TBeH1X4NnhoBDBt\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-stream-"
    "error\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e03d3"
    "b07dc\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\""
    "content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":n"
    "ull}],\"obfuscation\":\"7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-ccrGgevcHCWiT7TBeH1X4NnhoBDBt\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-stream-"
    "error\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e03d3"
    "b07dc\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b6468c4d\"}"
    "\n"
    "\n"
    "data: {\"id\":\"chatcmpl-ccrGgevcHCWiT7TBeH1X4NnhoBDBt\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-stream-"
    "error\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e03d3"
    "b07dc\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" from\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"26b0fc17\"}"
    "\n"
    "\n"
    "data: {\"error\":{\"message\":\"The server had an error while processi"
    "ng your request. Sorry about that!\",\"type\":\"server_error\",\"param"
    "\":null,\"code\":null}}\n"
    "\n";

static const char ai_t_long_sse[] =
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content"
    "\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],"
    "\"obfuscation\":\"7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello from mock! Yo"
    "u said: long please The quick brown fox jumps over the lazy dog\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" while the mock kee"
    "ps talking. Gateways must forward every byte of a long answer\"},\"log"
    "probs\":null,\"finish_reason\":null}],\"obfuscation\":\"a38db0ec911\"}"
    "\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy\"},\"l"
    "ogprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"0\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"f82\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" without truncation"
    ". This paragraph exists only to make the response body about eight\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"79ac\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" kilobytes. Streami"
    "ng and buffering paths should both see exactly the same content.\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e7\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"9e\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" must forward every"
    " byte of a long answer without truncation. This paragraph exists\"},\""
    "logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"b4\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" only to make the r"
    "esponse body about eight kilobytes. Streaming and buffering paths\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"e91\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" should both see ex"
    "actly the same content.\"},\"logprobs\":null,\"finish_reason\":null}],"
    "\"obfuscation\":\"623266afb\"}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-oKX7hEQyexYxsSqwqR3T27RSWsXKS\",\"object\":\""
    "chat.completion.chunk\",\"created\":1795599860,\"model\":\"gpt-long\","
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_e7ccb6f93d\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reas"
    "on\":\"stop\"}],\"obfuscation\":\"999\"}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char ai_t_tools_json[] =
    "{\n"
    "  \"id\": \"chatcmpl-KoSzyeQhV6Kvz4UNt8EUBVvfvBax6\",\n"
    "  \"object\": \"chat.completion\",\n"
    "  \"created\": 1795599860,\n"
    "  \"model\": \"gpt-tools\",\n"
    "  \"choices\": [\n"
    "    {\n"
    "      \"index\": 0,\n"
    "      \"message\": {\n"
    "        \"role\": \"assistant\",\n"
    "        \"content\": null,\n"
    "        \"tool_calls\": [\n"
    "          {\n"
    "            \"id\": \"call_SsA1i7JAdCcZSW7J6O2lz7jv\",\n"
    "            \"type\": \"function\",\n"
    "            \"function\": {\n"
    "              \"name\": \"get_weather\",\n"
    "              \"arguments\": \"{\\\"location\\\":\\\"Paris, France\\\""
    ",\\\"unit\\\":\\\"celsius\\\"}\"\n"
    "            }\n"
    "          }\n"
    "        ],\n"
    "        \"refusal\": null,\n"
    "        \"annotations\": []\n"
    "      },\n"
    "      \"logprobs\": null,\n"
    "      \"finish_reason\": \"tool_calls\"\n"
    "    }\n"
    "  ],\n"
    "  \"usage\": {\n"
    "    \"prompt_tokens\": 3,\n"
    "    \"completion_tokens\": 12,\n"
    "    \"total_tokens\": 15,\n"
    "    \"prompt_tokens_details\": {\n"
    "      \"cached_tokens\": 0,\n"
    "      \"audio_tokens\": 0\n"
    "    },\n"
    "    \"completion_tokens_details\": {\n"
    "      \"reasoning_tokens\": 0,\n"
    "      \"audio_tokens\": 0,\n"
    "      \"accepted_prediction_tokens\": 0,\n"
    "      \"rejected_prediction_tokens\": 0\n"
    "    }\n"
    "  },\n"
    "  \"service_tier\": \"default\",\n"
    "  \"system_fingerprint\": \"fp_d19e13c1a5\"\n"
    "}\n";

static const char ai_t_long_json[] =
    "{\n"
    "  \"id\": \"chatcmpl-kuGx7Hesg1gv1AH9W9FL4juNe8y3u\",\n"
    "  \"object\": \"chat.completion\",\n"
    "  \"created\": 1795599860,\n"
    "  \"model\": \"gpt-long\",\n"
    "  \"choices\": [\n"
    "    {\n"
    "      \"index\": 0,\n"
    "      \"message\": {\n"
    "        \"role\": \"assistant\",\n"
    "        \"content\": \"Hello from mock! You said: long please The quic"
    "k brown fox jumps over the lazy dog while the mock keeps talking. Gate"
    "ways must forward every byte of a long answer without truncation. This"
    " paragraph exists only to make the response body about eight kilobytes"
    ". Streaming and buffering paths should both see exactly the same conte"
    "nt. The quick brown fox jumps over the lazy dog while the mock keeps t"
    "alking. Gateways must forward every byte of a long answer without trun"
    "cation. This paragraph exists only to make the response body about eig"
    "ht kilobytes. Streaming and buffering paths should both see exactly th"
    "e same content. The quick brown fox jumps over the lazy dog while the "
    "mock keeps talking. Gateways must forward every byte of a long answer "
    "without truncation. This paragraph exists only to make the response bo"
    "dy about eight kilobytes. Streaming and buffering paths should both se"
    "e exactly the same content. The quick brown fox jumps over the lazy do"
    "g while the mock keeps talking. Gateways must forward every byte of a "
    "long answer without truncation. This paragraph exists only to make the"
    " response body about eight kilobytes. Streaming and buffering paths sh"
    "ould both see exactly the same content. The quick brown fox jumps over"
    " the lazy dog while the mock keeps talking. Gateways must forward ever"
    "y byte of a long answer without truncation. This paragraph exists only"
    " to make the response body about eight kilobytes. Streaming and buffer"
    "ing paths should both see exactly the same content. The quick brown fo"
    "x jumps over the lazy dog while the mock keeps talking. Gateways must "
    "forward every byte of a long answer without truncation. This paragraph"
    " exists only to make the response body about eight kilobytes. Streamin"
    "g and buffering paths should both see exactly the same content. The qu"
    "ick brown fox jumps over the lazy dog while the mock keeps talking. Ga"
    "teways must forward every byte of a long answer without truncation. Th"
    "is paragraph exists only to make the response body about eight kilobyt"
    "es. Streaming and buffering paths should both see exactly the same con"
    "tent. The quick brown fox jumps over the lazy dog while the mock keeps"
    " talking. Gateways must forward every byte of a long answer without tr"
    "uncation. This paragraph exists only to make the response body about e"
    "ight kilobytes. Streaming and buffering paths should both see exactly "
    "the same content. The quick brown fox jumps over the lazy dog while th"
    "e mock keeps talking. Gateways must forward every byte of a long answe"
    "r without truncation. This paragraph exists only to make the response "
    "body about eight kilobytes. Streaming and buffering paths should both "
    "see exactly the same content. The quick brown fox jumps over the lazy "
    "dog while the mock keeps talking. Gateways must forward every byte of "
    "a long answer without truncation. This paragraph exists only to make t"
    "he response body about eight kilobytes. Streaming and buffering paths "
    "should both see exactly the same content. The quick brown fox jumps ov"
    "er the lazy dog while the mock keeps talking. Gateways must forward ev"
    "ery byte of a long answer without truncation. This paragraph exists on"
    "ly to make the response body about eight kilobytes. Streaming and buff"
    "ering paths should both see exactly the same content. The quick brown "
    "fox jumps over the lazy dog while the mock keeps talking. Gateways mus"
    "t forward every byte of a long answer without truncation. This paragra"
    "ph exists only to make the response body about eight kilobytes. Stream"
    "ing and buffering paths should both see exactly the same content. The "
    "quick brown fox jumps over the lazy dog while the mock keeps talking. "
    "Gateways must forward every byte of a long answer without truncation. "
    "This paragraph exists only to make the response body about eight kilob"
    "ytes. Streaming and buffering paths should both see exactly the same c"
    "ontent. The quick brown fox jumps over the lazy dog while the mock kee"
    "ps talking. Gateways must forward every byte of a long answer without "
    "truncation. This paragraph exists only to make the response body about"
    " eight kilobytes. Streaming and buffering paths should both see exactl"
    "y the same content. The quick brown fox jumps over the lazy dog while "
    "the mock keeps talking. Gateways must forward every byte of a long ans"
    "wer without truncation. This paragraph exists only to make the respons"
    "e body about eight kilobytes. Streaming and buffering paths should bot"
    "h see exactly the same content. The quick brown fox jumps over the laz"
    "y dog while the mock keeps talking. Gateways must forward every byte o"
    "f a long answer without truncation. This paragraph exists only to make"
    " the response body about eight kilobytes. Streaming and buffering path"
    "s should both see exactly the same content. The quick brown fox jumps "
    "over the lazy dog while the mock keeps talking. Gateways must forward "
    "every byte of a long answer without truncation. This paragraph exists "
    "only to make the response body about eight kilobytes. Streaming and bu"
    "ffering paths should both see exactly the same content. The quick brow"
    "n fox jumps over the lazy dog while the mock keeps talking. Gateways m"
    "ust forward every byte of a long answer without truncation. This parag"
    "raph exists only to make the response body about eight kilobytes. Stre"
    "aming and buffering paths should both see exactly the same content. Th"
    "e quick brown fox jumps over the lazy dog while the mock keeps talking"
    ". Gateways must forward every byte of a long answer without truncation"
    ". This paragraph exists only to make the response body about eight kil"
    "obytes. Streaming and buffering paths should both see exactly the same"
    " content. The quick brown fox jumps over the lazy dog while the mock k"
    "eeps talking. Gateways must forward every byte of a long answer withou"
    "t truncation. This paragraph exists only to make the response body abo"
    "ut eight kilobytes. Streaming and buffering paths should both see exac"
    "tly the same content. The quick brown fox jumps over the lazy dog whil"
    "e the mock keeps talking. Gateways must forward every byte of a long a"
    "nswer without truncation. This paragraph exists only to make the respo"
    "nse body about eight kilobytes. Streaming and buffering paths should b"
    "oth see exactly the same content. The quick brown fox jumps over the l"
    "azy dog while the mock keeps talking. Gateways must forward every byte"
    " of a long answer without truncation. This paragraph exists only to ma"
    "ke the response body about eight kilobytes. Streaming and buffering pa"
    "ths should both see exactly the same content. The quick brown fox jump"
    "s over the lazy dog while the mock keeps talking. Gateways must forwar"
    "d every byte of a long answer without truncation. This paragraph exist"
    "s only to make the response body about eight kilobytes. Streaming and "
    "buffering paths should both see exactly the same content. The quick br"
    "own fox jumps over the lazy dog while the mock keeps talking. Gateways"
    " must forward every byte of a long answer without truncation. This par"
    "agraph exists only to make the response body about eight kilobytes. St"
    "reaming and buffering paths should both see exactly the same content. "
    "The quick brown fox jumps over the lazy dog while the mock keeps talki"
    "ng. Gateways must forward every byte of a long answer without truncati"
    "on. This paragraph exists only to make the response body about eight k"
    "ilobytes. Streaming and buffering paths should both see exactly the sa"
    "me content. The quick brown fox jumps over the lazy dog while the mock"
    " keeps talking. Gateways must forward every byte of a long answer with"
    "out truncation. This paragraph exists only to make the response body a"
    "bout eight kilobytes. Streaming and buffering paths should both see ex"
    "actly the same content. The quick brown fox jumps over the lazy dog wh"
    "ile the mock keeps talking. Gateways must forward every byte of a long"
    " answer without truncation. This paragraph exists only to make the res"
    "ponse body about eight kilobytes. Streaming and buffering paths should"
    " both see exactly the same content. The quick brown fox jumps over the"
    " lazy dog while the mock keeps talking. Gateways must forward every by"
    "te of a long answer without truncation. This paragraph exists only to "
    "make the response body about eight kilobytes. Streaming and buffering "
    "paths should both see exactly the same content.\",\n"
    "        \"refusal\": null,\n"
    "        \"annotations\": []\n"
    "      },\n"
    "      \"logprobs\": null,\n"
    "      \"finish_reason\": \"stop\"\n"
    "    }\n"
    "  ],\n"
    "  \"usage\": {\n"
    "    \"prompt_tokens\": 4,\n"
    "    \"completion_tokens\": 99,\n"
    "    \"total_tokens\": 103,\n"
    "    \"prompt_tokens_details\": {\n"
    "      \"cached_tokens\": 0,\n"
    "      \"audio_tokens\": 0\n"
    "    },\n"
    "    \"completion_tokens_details\": {\n"
    "      \"reasoning_tokens\": 0,\n"
    "      \"audio_tokens\": 0,\n"
    "      \"accepted_prediction_tokens\": 0,\n"
    "      \"rejected_prediction_tokens\": 0\n"
    "    }\n"
    "  },\n"
    "  \"service_tier\": \"default\",\n"
    "  \"system_fingerprint\": \"fp_e7ccb6f93d\"\n"
    "}\n";

static const char ai_t_compl_json[] =
    "{\n"
    "  \"id\": \"cmpl-bFy7Y56MzbtXqMCgPeewoQ66NpOhK\",\n"
    "  \"object\": \"text_completion\",\n"
    "  \"created\": 1795599860,\n"
    "  \"model\": \"gpt\",\n"
    "  \"choices\": [\n"
    "    {\n"
    "      \"text\": \"Hello from mock! You said: Say hi\",\n"
    "      \"index\": 0,\n"
    "      \"logprobs\": null,\n"
    "      \"finish_reason\": \"stop\"\n"
    "    }\n"
    "  ],\n"
    "  \"usage\": {\n"
    "    \"prompt_tokens\": 3,\n"
    "    \"completion_tokens\": 7,\n"
    "    \"total_tokens\": 10\n"
    "  }\n"
    "}\n";


/* ---- canonical JSON ---- */

static void
test_canonical(void)
{
    size_t   i;

    CHECK(ai_t_same_canon("{\"a\":1,\"b\":2}", "{\"b\":2, \"a\":1.0}"));
    CHECK(ai_t_streq(ai_t_canon("{\"b\":2, \"a\":1.0}"), "{\"a\":1,\"b\":2}"));
    CHECK(ai_t_streq(ai_t_canon(" { \"z\" : [ 3 , 2 , { \"y\" : null ,"
                                " \"x\" : true } ] , \"a\" : false } "),
                     "{\"a\":false,\"z\":[3,2,{\"x\":true,\"y\":null}]}"));

    /* arrays keep their order */
    CHECK(!ai_t_same_canon("[1,2]", "[2,1]"));

    /* numbers */
    CHECK(ai_t_same_canon("1", "1.0"));
    CHECK(ai_t_same_canon("1", "1e0"));
    CHECK(ai_t_same_canon("1", "1.00"));
    CHECK(ai_t_same_canon("100", "1e2"));
    CHECK(ai_t_same_canon("100", "1E+2"));
    CHECK(ai_t_same_canon("0", "-0"));
    CHECK(ai_t_same_canon("0", "-0.0"));
    CHECK(ai_t_same_canon("0.5", "5e-1"));
    CHECK(ai_t_same_canon("0.1", "0.10000000000000000555"));
    CHECK(!ai_t_same_canon("0.1", "0.2"));
    CHECK(ai_t_streq(ai_t_canon("0.7"), "0.7"));
    CHECK(ai_t_streq(ai_t_canon("-2.50"), "-2.5"));
    CHECK(ai_t_streq(ai_t_canon("1e300"), "1e+300"));
    CHECK(ai_t_streq(ai_t_canon("1.5e-7"), "1.5e-07"));
    CHECK(ai_t_streq(ai_t_canon("9007199254740991.0"), "9007199254740991"));
    CHECK(ai_t_streq(ai_t_canon("0.30000000000000004"),
                     "0.30000000000000004"));
    CHECK(ai_t_streq(ai_t_canon("-9223372036854775808"),
                     "-9223372036854775808"));

    /* strings: one escaping for equal strings, whatever the input's */
    CHECK(ai_t_same_canon("\"\\u0041\"", "\"A\""));
    CHECK(ai_t_same_canon("\"\\u00e9\"", "\"\303\251\""));
    CHECK(ai_t_same_canon("\"\\ud83d\\ude00\"", "\"\360\237\230\200\""));
    CHECK(ai_t_same_canon("\"\\/\"", "\"/\""));
    CHECK(ai_t_same_canon("\"\\u000a\"", "\"\\n\""));
    CHECK(ai_t_streq(ai_t_canon("\"a\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\"
                                "\\u007f\\u00e9\""),
                     "\"a\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\\177\303\251\""));
    CHECK(ai_t_same_canon("{\"\\u0061\":1}", "{\"a\":1}"));

    /* keys sort by their bytes: upper case first, "a" before "a\xc3\xa9" */
    CHECK(ai_t_streq(ai_t_canon("{\"b\":1,\"B\":2,\"a\\u00e9\":3,\"a\":4}"),
                     "{\"B\":2,\"a\":4,\"a\303\251\":3,\"b\":1}"));

    /* key order inside nested tool schemas does not matter */
    CHECK(ai_t_same_canon(
        "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"b\":"
        "{\"type\":\"string\"},\"a\":{\"type\":\"number\",\"minimum\":0}},"
        "\"required\":[\"a\"]}}}]}",
        "{\"tools\":[{\"function\":{\"parameters\":{\"required\":[\"a\"],"
        "\"properties\":{\"a\":{\"minimum\":0.0,\"type\":\"number\"},"
        "\"b\":{\"type\":\"string\"}},\"type\":\"object\"},\"name\":\"f\"},"
        "\"type\":\"function\"}]}"));

    /* the allow-list is sorted and without duplicates */
    for (i = 1; ai_cache_key_members[i]; i++) {
        CHECK(strcmp(ai_cache_key_members[i - 1], ai_cache_key_members[i])
              < 0);
    }
}


/* ---- the key ---- */

#define AI_T_BASE                                                          \
    "\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","                \
    "\"content\":\"hi\"}],\"temperature\":0"

static void
test_key(void)
{
    char            base[65];
    json_t         *v;
    unsigned char   d[AI_CACHE_KEY_LEN];

    snprintf(base, sizeof(base), "%s",
             ai_t_key("{" AI_T_BASE "}", AI_EP_CHAT, "gpt-4o", ""));

    /* the exact form: SHA-256 of {"endpoint","model","namespace",
       "request","v"} in canonical JSON (see docs/cache.md) */
    CHECK(ai_t_streq(base, "c02adf90a1d6ef089bcba4526e478e471a8499481da64a"
                           "357d26620d0c4b8fd7"));
    CHECK(strlen(base) == 64);

    /* the same request written differently */
    CHECK(ai_t_streq(base, ai_t_key(
        "{ \"temperature\" : 0.0, \"messages\" : [ { \"content\" : "
        "\"\\u0068i\", \"role\" : \"user\" } ], \"model\" : \"alias\" }",
        AI_EP_CHAT, "gpt-4o", "")));

    /* members that do not change the answer */
    CHECK(ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"stream\":true}",
                                    AI_EP_CHAT, "gpt-4o", "")));
    CHECK(ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"stream\":true,"
                                    "\"stream_options\":{\"include_usage\":"
                                    "true}}", AI_EP_CHAT, "gpt-4o", "")));
    CHECK(ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"user\":\"u1\"}",
                                    AI_EP_CHAT, "gpt-4o", "")));
    CHECK(ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"metadata\":{\"a\":"
                                    "\"b\"},\"store\":true,\"service_tier\":"
                                    "\"flex\"}", AI_EP_CHAT, "gpt-4o", "")));
    CHECK(ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"x_unknown\":1}",
                                    AI_EP_CHAT, "gpt-4o", "")));

    /* a null member is an absent one */
    CHECK(ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"seed\":null,"
                                    "\"tools\":null}", AI_EP_CHAT, "gpt-4o",
                                    "")));

    /* members that do */
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"seed\":1}",
                                     AI_EP_CHAT, "gpt-4o", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"max_tokens\":10}",
                                     AI_EP_CHAT, "gpt-4o", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"top_p\":0.5}",
                                     AI_EP_CHAT, "gpt-4o", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"stop\":[\"x\"]}",
                                     AI_EP_CHAT, "gpt-4o", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"response_format\":"
                                     "{\"type\":\"json_object\"}}",
                                     AI_EP_CHAT, "gpt-4o", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"tools\":[{\"type\":"
                                     "\"function\",\"function\":{\"name\":"
                                     "\"f\"}}]}", AI_EP_CHAT, "gpt-4o", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE ",\"n\":2}",
                                     AI_EP_CHAT, "gpt-4o", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{\"model\":\"gpt-4o\",\"messages\":"
                                     "[{\"role\":\"user\",\"content\":"
                                     "\"hi\"}],\"temperature\":0.5}",
                                     AI_EP_CHAT, "gpt-4o", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{\"model\":\"gpt-4o\",\"messages\":"
                                     "[{\"role\":\"user\",\"content\":"
                                     "\"hi \"}],\"temperature\":0}",
                                     AI_EP_CHAT, "gpt-4o", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{\"model\":\"gpt-4o\",\"messages\":"
                                     "[{\"role\":\"system\",\"content\":"
                                     "\"hi\"}],\"temperature\":0}",
                                     AI_EP_CHAT, "gpt-4o", "")));

    /* the resolved model, the namespace and the endpoint */
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE "}", AI_EP_CHAT,
                                     "gpt-4o-mini", "")));
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE "}", AI_EP_CHAT,
                                     "gpt-4o", "tenant-a")));
    CHECK(!ai_t_streq(ai_t_key("{" AI_T_BASE "}", AI_EP_CHAT, "gpt-4o",
                               "tenant-b"),
                      ai_t_key("{" AI_T_BASE "}", AI_EP_CHAT, "gpt-4o",
                               "tenant-a")));
    CHECK(!ai_t_streq(base, ai_t_key("{" AI_T_BASE "}", AI_EP_COMPLETIONS,
                                     "gpt-4o", "")));

    /* no confusion between the fields: "a" + "bc" is not "ab" + "c" */
    CHECK(!ai_t_streq(ai_t_key("{}", AI_EP_CHAT, "a", "bc"),
                      ai_t_key("{}", AI_EP_CHAT, "ab", "c")));

    /* NULL namespace is "" */
    v = ai_t_json("{" AI_T_BASE "}");
    CHECK(ai_cache_key(v, AI_EP_CHAT, "gpt-4o", 6, NULL, d) == 0);
    CHECK(d[0] == 0xc0 && d[31] == 0xd7);

    /* the model is taken by length */
    CHECK(ai_cache_key(v, AI_EP_CHAT, "gpt-4o-extra", 6, "", d) == 0);
    CHECK(d[0] == 0xc0 && d[31] == 0xd7);

    /* what has no key */
    CHECK(ai_cache_key(v, AI_EP_MODELS, "gpt-4o", 6, "", d) == -1);
    json_decref(v);

    v = ai_t_json("[1]");
    CHECK(ai_cache_key(v, AI_EP_CHAT, "gpt-4o", 6, "", d) == -1);
    json_decref(v);

    /* embeddings */
    CHECK(ai_t_streq(ai_t_key("{\"input\":\"x\",\"model\":\"e\"}",
                              AI_EP_EMBEDDINGS, "e", ""),
                     ai_t_key("{\"input\":\"x\",\"user\":\"u\"}",
                              AI_EP_EMBEDDINGS, "e", "")));
    CHECK(!ai_t_streq(ai_t_key("{\"input\":\"x\"}", AI_EP_EMBEDDINGS, "e",
                               ""),
                      ai_t_key("{\"input\":\"x\",\"dimensions\":256}",
                               AI_EP_EMBEDDINGS, "e", "")));
}


/* ---- policy ---- */

static void
test_policy(void)
{
    ai_cache_control_t  cc;

    CHECK(ai_t_cacheable("{\"temperature\":0}", AI_EP_CHAT, 0) == 1);
    CHECK(ai_t_cacheable("{\"temperature\":0.0}", AI_EP_CHAT, 0) == 1);
    CHECK(ai_t_cacheable("{}", AI_EP_CHAT, 0) == 0);
    CHECK(ai_t_cacheable("{\"temperature\":null}", AI_EP_CHAT, 0) == 0);
    CHECK(ai_t_cacheable("{\"temperature\":0.7}", AI_EP_CHAT, 0) == 0);
    CHECK(ai_t_cacheable("{\"temperature\":\"0\"}", AI_EP_CHAT, 0) == 0);
    CHECK(ai_t_cacheable("{\"seed\":42}", AI_EP_CHAT, 0) == 1);
    CHECK(ai_t_cacheable("{\"seed\":42,\"temperature\":1.2}", AI_EP_CHAT, 0)
          == 1);
    CHECK(ai_t_cacheable("{\"seed\":null}", AI_EP_CHAT, 0) == 0);
    CHECK(ai_t_cacheable("{\"temperature\":0,\"n\":1}", AI_EP_CHAT, 0) == 1);
    CHECK(ai_t_cacheable("{\"temperature\":0,\"n\":2}", AI_EP_CHAT, 0) == 0);
    CHECK(ai_t_cacheable("{\"seed\":1,\"n\":3}", AI_EP_CHAT, 0) == 0);
    CHECK(ai_t_cacheable("{\"temperature\":0}", AI_EP_COMPLETIONS, 0) == 1);
    CHECK(ai_t_cacheable("{}", AI_EP_COMPLETIONS, 0) == 0);
    CHECK(ai_t_cacheable("{\"input\":\"x\"}", AI_EP_EMBEDDINGS, 0) == 1);
    CHECK(ai_t_cacheable("{}", AI_EP_CHAT, 1) == 1);
    CHECK(ai_t_cacheable("{\"temperature\":1,\"n\":4}", AI_EP_CHAT, 1) == 1);
    CHECK(ai_t_cacheable("{}", AI_EP_MODELS, 1) == 0);
    CHECK(ai_t_cacheable("[]", AI_EP_CHAT, 1) == 0);

    cc = ai_cache_parse_control(NULL, 0);
    CHECK(!cc.no_cache && !cc.no_store && cc.max_age == -1);

    cc = ai_cache_parse_control("no-cache", 8);
    CHECK(cc.no_cache && !cc.no_store && cc.max_age == -1);

    cc = ai_cache_parse_control("No-Store", 8);
    CHECK(!cc.no_cache && cc.no_store);

    cc = ai_cache_parse_control("max-age=60", 10);
    CHECK(!cc.no_cache && !cc.no_store && cc.max_age == 60);

    cc = ai_cache_parse_control(" private , max-age=\"30\",no-cache ", 34);
    CHECK(cc.no_cache && cc.max_age == 30);

    cc = ai_cache_parse_control("max-age=abc, no-cache-please", 28);
    CHECK(!cc.no_cache && cc.max_age == -1);

    cc = ai_cache_parse_control("max-age=99999999999999999999", 28);
    CHECK(cc.max_age == 2147483647);

    cc = ai_cache_parse_control("max-age = 0", 11);
    CHECK(cc.max_age == 0);

    /* only the given length is read */
    cc = ai_cache_parse_control("no-cache", 5);
    CHECK(!cc.no_cache);

    CHECK(ai_cache_parse_force("1", 1));
    CHECK(ai_cache_parse_force(" TRUE ", 6));
    CHECK(ai_cache_parse_force("yes", 3));
    CHECK(ai_cache_parse_force("on", 2));
    CHECK(!ai_cache_parse_force("0", 1));
    CHECK(!ai_cache_parse_force("", 0));
    CHECK(!ai_cache_parse_force("10", 2));
}


/* ---- assembly ---- */

/* every way of cutting the stream gives the same whole response */

static void
ai_t_assemble_all(int endpoint, const char *s, size_t stride,
    ai_buf_t *whole)
{
    int       same;
    size_t    len, cut;
    ai_buf_t  b = { NULL, 0, 0 };

    len = strlen(s);

    CHECK(ai_t_assemble(endpoint, s, len, 0, 0, whole) == 1);

    CHECK(ai_t_assemble(endpoint, s, len, 1, 0, &b) == 1);
    CHECK(b.len == whole->len && memcmp(b.data, whole->data, b.len) == 0);

    same = 1;

    for (cut = 0; cut <= len; cut += stride) {
        b.len = 0;

        if (ai_t_assemble(endpoint, s, len, (size_t) -1, cut, &b) != 1
            || b.len != whole->len || memcmp(b.data, whole->data, b.len))
        {
            same = 0;
            fprintf(stderr, "cut at %zu differs\n", cut);
            break;
        }
    }

    CHECK(same);
    ai_buf_free(&b);
}


static void
test_assemble(void)
{
    size_t    len, done, cut;
    int       ok;
    json_t   *r, *nr;
    ai_buf_t  b = { NULL, 0, 0 };
    ai_buf_t  c = { NULL, 0, 0 };

    /* a plain answer in 20 chunks, UTF-8 in it, usage asked for */

    ai_t_assemble_all(AI_EP_CHAT, ai_t_chunks20_sse, 1, &b);
    r = ai_t_load(&b);
    CHECK(r != NULL);
    CHECK(ai_t_streq(ai_t_str(r, "object"), "chat.completion"));
    CHECK(ai_t_streq(ai_t_str(r, "id"),
                     "chatcmpl-oSIWCzkrYzqLIVEIDbvz1Kebk2JPC"));
    CHECK(ai_t_streq(ai_t_str(r, "model"), "gpt-chunks20"));
    CHECK(ai_t_int(r, "created") == 1795599860);
    CHECK(ai_t_streq(ai_t_str(r, "system_fingerprint"), "fp_fe837757d4"));
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.message.role"), "assistant"));
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.message.content"),
                     "Hello from mock! You said: H\303\251llo w\303\266rld "
                     "\342\234\223 caf\303\251"));
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.finish_reason"), "stop"));
    CHECK(ai_t_int(r, "choices.0.index") == 0);
    CHECK(ai_t_int(r, "usage.completion_tokens") == 20);
    CHECK(ai_t_int(r, "usage.prompt_tokens") > 0);
    CHECK(ai_t_storable(b.data, b.len, AI_EP_CHAT) == 1);
    json_decref(r);

    /* a tool call whose arguments come in twelve pieces */

    b.len = 0;
    ai_t_assemble_all(AI_EP_CHAT, ai_t_tools_sse, 1, &b);
    r = ai_t_load(&b);
    CHECK(r != NULL);
    CHECK(json_is_null(json_object_get(json_object_get(json_array_get(
              json_object_get(r, "choices"), 0), "message"), "content")));
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.message.tool_calls.0.id"),
                     "call_hGPuDh9URqc62sGum37M4YCO"));
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.message.tool_calls.0.type"),
                     "function"));
    CHECK(ai_t_streq(ai_t_str(r,
                     "choices.0.message.tool_calls.0.function.name"),
                     "get_weather"));
    CHECK(ai_t_streq(ai_t_str(r,
                     "choices.0.message.tool_calls.0.function.arguments"),
                     "{\"location\":\"Paris, France\",\"unit\":\"celsius\"}"));
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.finish_reason"), "tool_calls"));
    CHECK(json_object_get(r, "usage") == NULL);
    json_decref(r);

    /* a long answer: the same text as the non-streamed answer */

    b.len = 0;
    ai_t_assemble_all(AI_EP_CHAT, ai_t_long_sse, 97, &b);
    r = ai_t_load(&b);
    nr = json_loads(ai_t_long_json, 0, NULL);
    CHECK(r != NULL && nr != NULL);
    CHECK(strlen(ai_t_str(r, "choices.0.message.content")) > 8000);
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.message.content"),
                     ai_t_str(nr, "choices.0.message.content")));
    json_decref(r);
    json_decref(nr);

    /* cut by max_tokens: finish_reason "length" is stored (max_tokens is
       in the key) */

    b.len = 0;
    ai_t_assemble_all(AI_EP_CHAT, ai_t_length_sse, 1, &b);
    r = ai_t_load(&b);
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.finish_reason"), "length"));
    json_decref(r);

    /* /v1/completions */

    b.len = 0;
    ai_t_assemble_all(AI_EP_COMPLETIONS, ai_t_compl_sse, 1, &b);
    r = ai_t_load(&b);
    CHECK(ai_t_streq(ai_t_str(r, "object"), "text_completion"));
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.text"),
                     "Hello from mock! You said: Say hi"));
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.finish_reason"), "stop"));
    CHECK(ai_t_int(r, "usage.total_tokens") == 23);
    CHECK(ai_t_storable(b.data, b.len, AI_EP_COMPLETIONS) == 1);
    json_decref(r);

    /* a chat stream is not a completions stream */
    c.len = 0;
    CHECK(ai_t_assemble(AI_EP_COMPLETIONS, ai_t_chunks20_sse,
                        strlen(ai_t_chunks20_sse), 0, 0, &c) == 0);

    /* an error in the stream */
    CHECK(ai_t_assemble(AI_EP_CHAT, ai_t_streamerr_sse,
                        strlen(ai_t_streamerr_sse), 0, 0, &c) == 0);
    CHECK(c.len == 0);

    /* truncated anywhere before "[DONE]": never stored */

    len = strlen(ai_t_chunks20_sse);
    done = strstr(ai_t_chunks20_sse, "data: [DONE]") - ai_t_chunks20_sse
           + strlen("data: [DONE]");
    ok = 1;

    for (cut = 0; cut <= len; cut++) {
        if (ai_t_assemble(AI_EP_CHAT, ai_t_chunks20_sse, cut, 0, 0, &c)
            != (cut >= done ? 1 : 0))
        {
            ok = 0;
            fprintf(stderr, "truncated at %zu of %zu\n", cut, len);
            break;
        }
    }

    CHECK(ok);

    /* finished choices but no "[DONE]", or "[DONE]" without a finish */

    c.len = 0;
    CHECK(ai_t_assemble(AI_EP_CHAT, ai_t_tools_sse,
                        strstr(ai_t_tools_sse, "data: [DONE]")
                        - ai_t_tools_sse, 0, 0, &c) == 0);
    CHECK(ai_t_assemble(AI_EP_CHAT,
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"a\"},\"finish_reason\":null}]}\n\n"
        "data: [DONE]\n\n", (size_t) -2, 0, 0, &c) == 0);
    CHECK(ai_t_assemble(AI_EP_CHAT, "data: [DONE]\n\n", 14, 0, 0, &c) == 0);

    /* content filtered, data after "[DONE]", not JSON, error events */
    CHECK(ai_t_assemble(AI_EP_CHAT,
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"a\"},\"finish_reason\":\"content_filter\"}]}\n\n"
        "data: [DONE]\n\n", (size_t) -2, 0, 0, &c) == 0);
    CHECK(ai_t_assemble(AI_EP_CHAT,
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\ndata: {}\n\n", (size_t) -2, 0, 0, &c) == 0);
    CHECK(ai_t_assemble(AI_EP_CHAT,
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n"
        "data: {oops\n\ndata: [DONE]\n\n", (size_t) -2, 0, 0, &c) == 0);
    CHECK(ai_t_assemble(AI_EP_CHAT,
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n"
        "event: error\ndata: {}\n\ndata: [DONE]\n\n", (size_t) -2, 0, 0,
        &c) == 0);
    CHECK(c.len == 0);

    /* the same stream, well formed, is stored */
    CHECK(ai_t_assemble(AI_EP_CHAT,
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n", (size_t) -2, 0, 0, &c) == 1);

    /* two choices interleaved, and two tool calls interleaved */

    c.len = 0;
    CHECK(ai_t_assemble(AI_EP_CHAT,
        "data: {\"id\":\"m\",\"choices\":[{\"index\":1,\"delta\":"
        "{\"role\":\"assistant\",\"content\":\"B\"}}]}\n\n"
        "data: {\"id\":\"m\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"role\":\"assistant\",\"content\":\"A\",\"tool_calls\":["
        "{\"index\":1,\"id\":\"c1\",\"type\":\"function\",\"function\":"
        "{\"name\":\"g\",\"arguments\":\"{\"}},"
        "{\"index\":0,\"id\":\"c0\",\"type\":\"function\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"[\"}}]}}]}\n\n"
        "data: {\"id\":\"m\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"a\",\"tool_calls\":[{\"index\":0,\"function\":"
        "{\"arguments\":\"1]\"}},{\"index\":1,\"function\":"
        "{\"arguments\":\"}\"}}]},\"finish_reason\":\"tool_calls\"},"
        "{\"index\":1,\"delta\":{\"content\":\"b\"},"
        "\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n", (size_t) -2, 0, 0, &c) == 1
        || (fprintf(stderr, "multi: %s\n", c.data ? c.data : ""), 0));
    r = ai_t_load(&c);
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.message.content"), "Aa"));
    CHECK(ai_t_streq(ai_t_str(r, "choices.1.message.content"), "Bb"));
    CHECK(ai_t_int(r, "choices.1.index") == 1);
    CHECK(ai_t_streq(ai_t_str(r, "choices.0.message.tool_calls.0.id"),
                     "c0"));
    CHECK(ai_t_streq(ai_t_str(r,
                     "choices.0.message.tool_calls.0.function.arguments"),
                     "[1]"));
    CHECK(ai_t_streq(ai_t_str(r,
                     "choices.0.message.tool_calls.1.function.arguments"),
                     "{}"));
    CHECK(ai_t_streq(ai_t_str(r, "choices.1.finish_reason"), "stop"));
    json_decref(r);

    /* a limit on what is gathered */
    {
        ai_cache_asm_t  *a;

        a = ai_cache_asm_new(AI_EP_CHAT);
        ai_cache_asm_limit(a, 1000);
        CHECK(ai_cache_asm_feed(a, ai_t_chunks20_sse,
                                strlen(ai_t_chunks20_sse)) == -1);
        CHECK(ai_cache_asm_feed(a, "data: [DONE]\n\n", 14) == -1);
        c.len = 0;
        CHECK(ai_cache_asm_finish(a, &c) == 0);
        ai_cache_asm_free(a);

        CHECK(ai_cache_asm_new(AI_EP_EMBEDDINGS) == NULL);
        ai_cache_asm_free(NULL);

        /* freed before the end: nothing leaks (ASan) */
        a = ai_cache_asm_new(AI_EP_CHAT);
        CHECK(ai_cache_asm_feed(a, ai_t_tools_sse, 2000) == 0);
        ai_cache_asm_free(a);
    }

    ai_buf_free(&b);
    ai_buf_free(&c);
}


/* ---- the check before storing ---- */

static void
test_storable(void)
{
    const char  *s;

#define AI_T_STORABLE(body, ep)  ai_t_storable(body, strlen(body), ep)

    CHECK(AI_T_STORABLE(ai_t_tools_json, AI_EP_CHAT) == 1);
    CHECK(AI_T_STORABLE(ai_t_long_json, AI_EP_CHAT) == 1);
    CHECK(AI_T_STORABLE(ai_t_compl_json, AI_EP_COMPLETIONS) == 1);
    CHECK(AI_T_STORABLE(ai_t_compl_json, AI_EP_CHAT) == 0);
    CHECK(AI_T_STORABLE(ai_t_long_json, AI_EP_COMPLETIONS) == 0);
    CHECK(AI_T_STORABLE(ai_t_long_json, AI_EP_MODELS) == 0);

    s = "{\"error\":{\"message\":\"x\",\"type\":\"server_error\"}}";
    CHECK(AI_T_STORABLE(s, AI_EP_CHAT) == 0);

    s = "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
        "\"finish_reason\":\"content_filter\"}]}";
    CHECK(AI_T_STORABLE(s, AI_EP_CHAT) == 0);

    s = "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
        "\"finish_reason\":null}]}";
    CHECK(AI_T_STORABLE(s, AI_EP_CHAT) == 0);

    s = "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
        "\"finish_reason\":\"length\"}],\"error\":null}";
    CHECK(AI_T_STORABLE(s, AI_EP_CHAT) == 1);

    s = "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
        "\"finish_reason\":\"stop\"},{\"index\":1,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"y\"},\"finish_reason\":\"length\"}]}";
    CHECK(AI_T_STORABLE(s, AI_EP_CHAT) == 1);

    CHECK(AI_T_STORABLE("{\"object\":\"chat.completion\",\"choices\":[]}",
                        AI_EP_CHAT) == 0);
    CHECK(AI_T_STORABLE("{\"choices\":[{\"finish_reason\":\"stop\"}]}",
                        AI_EP_CHAT) == 0);
    CHECK(AI_T_STORABLE("{\"object\":\"chat.comp", AI_EP_CHAT) == 0);
    CHECK(AI_T_STORABLE("[]", AI_EP_CHAT) == 0);
    CHECK(ai_t_storable(NULL, 0, AI_EP_CHAT) == 0);

    s = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
        "\"embedding\":[0.1,-0.2]}],\"model\":\"e\",\"usage\":"
        "{\"prompt_tokens\":1,\"total_tokens\":1}}";
    CHECK(AI_T_STORABLE(s, AI_EP_EMBEDDINGS) == 1);
    CHECK(AI_T_STORABLE("{\"object\":\"list\",\"data\":[]}",
                        AI_EP_EMBEDDINGS) == 0);
    CHECK(AI_T_STORABLE("{\"object\":\"list\",\"data\":[{\"index\":0}]}",
                        AI_EP_EMBEDDINGS) == 0);

#undef AI_T_STORABLE
}


/* ---- replay ---- */

typedef struct {
    size_t   chunk;            /* the most content bytes an event may carry */
    int      events;
    int      done;
    int      bad;
    int      usage_chunks;
    int      usage_nulls;
    int      first_has_role;
    int      finishes;
} ai_t_replay_check_t;


static int
ai_t_on_replay(void *ctx, const ai_sse_event_t *ev)
{
    json_t               *r, *c, *d, *v;
    size_t                i;
    ai_t_replay_check_t  *k = ctx;

    if (strcmp(ev->data, "[DONE]") == 0) {
        k->done++;
        return 0;
    }

    if (k->done) {
        k->bad++;
    }

    r = json_loads(ev->data, 0, NULL);

    if (r == NULL) {
        k->bad++;
        return 0;
    }

    k->events++;
    v = json_object_get(r, "usage");

    if (json_is_object(v)) {
        k->usage_chunks++;

    } else if (json_is_null(v)) {
        k->usage_nulls++;
    }

    c = json_object_get(r, "choices");

    for (i = 0; i < json_array_size(c); i++) {
        d = json_object_get(json_array_get(c, i), "delta");

        if (k->events == 1 && json_is_string(json_object_get(d, "role"))) {
            k->first_has_role = 1;
        }

        v = json_object_get(d, "content");

        if (v == NULL) {
            v = json_object_get(json_array_get(c, i), "text");
        }

        if (json_is_string(v) && json_string_length(v) > k->chunk) {
            k->bad++;
        }

        if (json_is_string(json_object_get(json_array_get(c, i),
                                           "finish_reason")))
        {
            k->finishes++;
        }
    }

    json_decref(r);

    return 0;
}


static void
ai_t_check_replay(const ai_buf_t *sse, ai_t_replay_check_t *k)
{
    ai_sse_t  p;

    ai_sse_init(&p, AI_SSE_MAX_EVENT);
    CHECK(ai_sse_feed(&p, sse->data, sse->len, ai_t_on_replay, k) == 0);
    CHECK(ai_sse_end(&p, ai_t_on_replay, k) == 0);
    ai_sse_free(&p);

    CHECK(k->done == 1);
    CHECK(k->bad == 0);
}


/*
 * stored -> SSE -> assembled again.  Returns the assembled response (to
 * be freed), NULL when anything failed.
 */

static json_t *
ai_t_roundtrip(const char *stored, size_t len, int endpoint, size_t chunk,
    int include_usage)
{
    int                     rc;
    json_t                 *r;
    ai_buf_t                sse = { NULL, 0, 0 }, again = { NULL, 0, 0 };
    ai_cache_replay_opts_t  o;

    memset(&o, 0, sizeof(o));
    o.chunk_bytes = chunk;
    o.include_usage = include_usage;

    if (ai_cache_replay_sse(stored, len, &o, &sse) != 0) {
        return NULL;
    }

    rc = ai_t_assemble(endpoint, sse.data, sse.len, 7, 0, &again);
    r = rc == 1 ? ai_t_load(&again) : NULL;

    if (r == NULL) {
        fprintf(stderr, "round trip failed (%d):\n%s\n", rc, sse.data);
    }

    ai_buf_free(&sse);
    ai_buf_free(&again);

    return r;
}


/* what a client sees: content, tool calls and finish reasons */

static int
ai_t_same_answer(json_t *a, json_t *b, int chat)
{
    size_t   i, j;
    json_t  *ca, *cb, *ma, *mb, *ta, *tb, *x, *y;

    ca = json_object_get(a, "choices");
    cb = json_object_get(b, "choices");

    if (json_array_size(ca) == 0 || json_array_size(ca) != json_array_size(cb))
    {
        return 0;
    }

    for (i = 0; i < json_array_size(ca); i++) {
        x = json_array_get(ca, i);
        y = json_array_get(cb, i);

        if (!json_equal(json_object_get(x, "finish_reason"),
                        json_object_get(y, "finish_reason")))
        {
            return 0;
        }

        if (!chat) {
            if (!json_equal(json_object_get(x, "text"),
                            json_object_get(y, "text")))
            {
                return 0;
            }

            continue;
        }

        ma = json_object_get(x, "message");
        mb = json_object_get(y, "message");

        if (!json_equal(json_object_get(ma, "content"),
                        json_object_get(mb, "content"))
            || !json_equal(json_object_get(ma, "role"),
                           json_object_get(mb, "role")))
        {
            return 0;
        }

        ta = json_object_get(ma, "tool_calls");
        tb = json_object_get(mb, "tool_calls");

        if (json_array_size(ta) != json_array_size(tb)) {
            return 0;
        }

        for (j = 0; j < json_array_size(ta); j++) {
            x = json_array_get(ta, j);
            y = json_array_get(tb, j);

            if (!json_equal(json_object_get(x, "id"), json_object_get(y, "id"))
                || !json_equal(json_object_get(x, "function"),
                               json_object_get(y, "function")))
            {
                return 0;
            }
        }
    }

    return 1;
}


static void
ai_t_replay_stream(int endpoint, const char *sse, int include_usage)
{
    size_t    chunk;
    json_t   *a, *b, *ca, *cb;
    ai_buf_t  stored = { NULL, 0, 0 };

    CHECK(ai_t_assemble(endpoint, sse, strlen(sse), 0, 0, &stored) == 1);
    a = ai_t_load(&stored);

    for (chunk = 1; chunk <= 80; chunk += (chunk < 8 ? 1 : 24)) {
        b = ai_t_roundtrip(stored.data, stored.len, endpoint, chunk,
                           include_usage);
        CHECK(b != NULL);

        if (b == NULL) {
            continue;
        }

        /* a stream stored, replayed and gathered again is the same,
           choices and all */
        ca = json_object_get(a, "choices");
        cb = json_object_get(b, "choices");
        CHECK(json_equal(ca, cb));
        CHECK(ai_t_same_answer(a, b, endpoint == AI_EP_CHAT));
        CHECK(json_equal(json_object_get(a, "id"), json_object_get(b, "id")));
        CHECK(json_equal(json_object_get(a, "created"),
                         json_object_get(b, "created")));
        CHECK(ai_t_str(a, "system_fingerprint") == NULL
              ? ai_t_str(b, "system_fingerprint") == NULL
              : ai_t_streq(ai_t_str(a, "system_fingerprint"),
                           ai_t_str(b, "system_fingerprint")));

        if (include_usage && json_object_get(a, "usage")) {
            CHECK(ai_t_int(b, "usage.prompt_tokens")
                  == ai_t_int(a, "usage.prompt_tokens"));
            CHECK(ai_t_int(b, "usage.completion_tokens")
                  == ai_t_int(a, "usage.completion_tokens"));
            CHECK(ai_t_int(b, "usage.prompt_tokens_details.cached_tokens")
                  == ai_t_int(a, "usage.prompt_tokens"));

        } else {
            CHECK(json_object_get(b, "usage") == NULL);
        }

        json_decref(b);
    }

    json_decref(a);
    ai_buf_free(&stored);
}


static void
ai_t_replay_whole(int endpoint, const char *body)
{
    json_t  *a, *b;

    a = json_loads(body, 0, NULL);
    b = ai_t_roundtrip(body, strlen(body), endpoint, 0, 1);
    CHECK(a != NULL && b != NULL);
    CHECK(ai_t_same_answer(a, b, endpoint == AI_EP_CHAT));
    CHECK(ai_t_storable(body, strlen(body), endpoint) == 1);
    json_decref(a);
    json_decref(b);
}


static void
test_replay(void)
{
    json_t                  *r, *s;
    ai_buf_t                 stored = { NULL, 0, 0 }, out = { NULL, 0, 0 };
    ai_cache_replay_opts_t   o;
    ai_t_replay_check_t      k;
    const char              *utf8;

    /* stream -> stored -> stream, at many chunk sizes */
    ai_t_replay_stream(AI_EP_CHAT, ai_t_chunks20_sse, 1);
    ai_t_replay_stream(AI_EP_CHAT, ai_t_chunks20_sse, 0);
    ai_t_replay_stream(AI_EP_CHAT, ai_t_tools_sse, 1);
    ai_t_replay_stream(AI_EP_CHAT, ai_t_long_sse, 0);
    ai_t_replay_stream(AI_EP_CHAT, ai_t_length_sse, 0);
    ai_t_replay_stream(AI_EP_COMPLETIONS, ai_t_compl_sse, 1);

    /* whole answers (not streamed) -> stream */
    ai_t_replay_whole(AI_EP_CHAT, ai_t_tools_json);
    ai_t_replay_whole(AI_EP_CHAT, ai_t_long_json);
    ai_t_replay_whole(AI_EP_COMPLETIONS, ai_t_compl_json);

    /* the whole body of a hit: the client's model, usage marked cached */

    CHECK(ai_t_assemble(AI_EP_CHAT, ai_t_chunks20_sse,
                        strlen(ai_t_chunks20_sse), 0, 0, &stored) == 1);
    memset(&o, 0, sizeof(o));
    o.model = "my-alias-and-more";
    o.model_len = 8;
    CHECK(ai_cache_replay_json(stored.data, stored.len, &o, &out) == 0);
    r = ai_t_load(&out);
    s = ai_t_load(&stored);
    CHECK(r != NULL);
    CHECK(ai_t_streq(ai_t_str(r, "model"), "my-alias"));
    CHECK(ai_t_streq(ai_t_str(r, "object"), "chat.completion"));
    CHECK(ai_t_streq(ai_t_str(r, "id"), ai_t_str(s, "id")));
    CHECK(ai_t_int(r, "usage.prompt_tokens_details.cached_tokens")
          == ai_t_int(s, "usage.prompt_tokens"));
    CHECK(ai_t_int(r, "usage.completion_tokens")
          == ai_t_int(s, "usage.completion_tokens"));
    CHECK(ai_t_int(r, "usage.total_tokens")
          == ai_t_int(s, "usage.total_tokens"));
    CHECK(ai_t_same_answer(r, s, 1));
    CHECK(ai_t_storable(out.data, out.len, AI_EP_CHAT) == 1);
    json_decref(r);
    json_decref(s);

    /* a whole answer replayed whole keeps what it had */
    out.len = 0;
    o.created = 1700000000;
    CHECK(ai_cache_replay_json(ai_t_tools_json, strlen(ai_t_tools_json), &o,
                               &out) == 0);
    r = ai_t_load(&out);
    s = json_loads(ai_t_tools_json, 0, NULL);
    CHECK(ai_t_int(r, "created") == 1700000000);
    CHECK(json_equal(json_object_get(r, "choices"),
                     json_object_get(s, "choices")));
    CHECK(ai_t_int(r, "usage.prompt_tokens_details.cached_tokens")
          == ai_t_int(s, "usage.prompt_tokens"));
    CHECK(ai_t_int(r, "usage.prompt_tokens_details.audio_tokens") == 0);
    json_decref(r);
    json_decref(s);

    /* completions usage gets the details added */
    out.len = 0;
    CHECK(ai_cache_replay_json(ai_t_compl_json, strlen(ai_t_compl_json), NULL,
                               &out) == 0);
    r = ai_t_load(&out);
    CHECK(ai_t_int(r, "usage.prompt_tokens_details.cached_tokens") == 3);
    CHECK(ai_t_streq(ai_t_str(r, "model"), "gpt"));
    json_decref(r);

    /* the SSE of a hit: role first, pieces of at most 64 bytes, usage
       chunk when asked, "[DONE]" */

    out.len = 0;
    memset(&o, 0, sizeof(o));
    o.model = "client-model";
    o.model_len = strlen(o.model);
    o.include_usage = 1;
    CHECK(ai_cache_replay_sse(stored.data, stored.len, &o, &out) == 0);
    CHECK(out.len > 14
          && memcmp(out.data + out.len - 14, "data: [DONE]\n\n", 14) == 0);
    CHECK(strstr(out.data, "\"model\":\"client-model\"") != NULL);
    CHECK(strstr(out.data, "\"model\":\"gpt-chunks20\"") == NULL);
    CHECK(strstr(out.data, "\"object\":\"chat.completion.chunk\"") != NULL);
    memset(&k, 0, sizeof(k));
    k.chunk = AI_CACHE_CHUNK_BYTES;
    ai_t_check_replay(&out, &k);
    CHECK(k.first_has_role);
    CHECK(k.usage_chunks == 1);
    CHECK(k.usage_nulls == k.events - 1);
    CHECK(k.finishes == 1);
    CHECK(k.events == 4);       /* role, the 50 bytes, finish, usage */

    out.len = 0;
    o.include_usage = 0;
    CHECK(ai_cache_replay_sse(ai_t_long_json, strlen(ai_t_long_json), &o,
                              &out) == 0);
    memset(&k, 0, sizeof(k));
    k.chunk = AI_CACHE_CHUNK_BYTES;
    ai_t_check_replay(&out, &k);
    CHECK(k.usage_chunks == 0 && k.usage_nulls == 0);
    CHECK(k.events > 8000 / 64);
    CHECK(k.finishes == 1);

    /* multi-byte characters are never split, whatever the chunk size */

    utf8 = "{\"id\":\"u\",\"object\":\"chat.completion\",\"created\":1,"
           "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
           "\"assistant\",\"content\":\"a\\u00e9\\u2713\\ud83d\\ude00b\\u00e9"
           "\\u00e9\\u2713\\u2713\\ud83d\\ude00\\ud83d\\ude00\\\"\\n\"},"
           "\"logprobs\":null,\"finish_reason\":\"stop\"}]}";
    ai_t_replay_whole(AI_EP_CHAT, utf8);
    {
        size_t   chunk;
        json_t  *a;

        a = json_loads(utf8, 0, NULL);

        for (chunk = 1; chunk <= 9; chunk++) {
            r = ai_t_roundtrip(utf8, strlen(utf8), AI_EP_CHAT, chunk, 0);
            CHECK(r != NULL && ai_t_same_answer(a, r, 1));
            json_decref(r);
        }

        json_decref(a);
    }

    /* several choices, refusal, legacy function_call, log probabilities */

    s = ai_t_json(
        "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":5,"
        "\"model\":\"m\",\"choices\":["
        "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"one\"},\"logprobs\":{\"content\":[{\"token\":\"one\","
        "\"logprob\":-0.5,\"bytes\":[111,110,101],\"top_logprobs\":[]}],"
        "\"refusal\":null},\"finish_reason\":\"stop\"},"
        "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":null,"
        "\"refusal\":\"I can't help with that.\"},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"},"
        "{\"index\":2,\"message\":{\"role\":\"assistant\",\"content\":null,"
        "\"function_call\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}},"
        "\"logprobs\":null,\"finish_reason\":\"function_call\"}],"
        "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":3,"
        "\"total_tokens\":7}}");
    out.len = 0;
    CHECK(ai_buf_append_json(&out, s) == 0);
    r = ai_t_roundtrip(out.data, out.len, AI_EP_CHAT, 3, 1);
    CHECK(r != NULL);
    CHECK(json_equal(json_object_get(s, "choices"),
                     json_object_get(r, "choices")));
    CHECK(ai_t_int(r, "usage.prompt_tokens_details.cached_tokens") == 4);
    json_decref(r);
    json_decref(s);

    /* what cannot be replayed */
    out.len = 0;
    CHECK(ai_cache_replay_sse("{\"object\":\"list\",\"data\":[]}", 27, NULL,
                              &out) == -1);
    CHECK(ai_cache_replay_sse("nope", 4, NULL, &out) == -1);
    CHECK(ai_cache_replay_sse("{\"object\":\"chat.completion\","
                              "\"choices\":[]}", 41, NULL, &out) == -1);
    CHECK(ai_cache_replay_json("nope", 4, NULL, &out) == -1);
    CHECK(out.len == 0);

    /* embeddings replay whole, with the client's model */
    o.model = "emb-alias";
    o.model_len = 9;
    CHECK(ai_cache_replay_json("{\"object\":\"list\",\"data\":[{\"object\":"
                               "\"embedding\",\"index\":0,\"embedding\":"
                               "[0.5]}],\"model\":\"e\"}", 89, &o, &out)
          == 0);
    r = ai_t_load(&out);
    CHECK(ai_t_streq(ai_t_str(r, "model"), "emb-alias"));
    json_decref(r);

    ai_buf_free(&stored);
    ai_buf_free(&out);
}


/*
 * The pre-rendered hit: swapping the model string into it gives what
 * ai_cache_replay_json() gives, byte for byte for plain names and as the
 * same JSON for names that need escapes; usage as the client sees it.
 */

static void
ai_t_render_one(const char *stored, size_t len, const char *model)
{
    char            *p;
    json_t          *a, *b;
    ai_buf_t         slow = { NULL, 0, 0 }, fast = { NULL, 0, 0 };
    ai_buf_t         swapped = { NULL, 0, 0 };
    ai_cache_hit_t   hit;
    ai_cache_replay_opts_t  o;

    memset(&o, 0, sizeof(o));
    o.model = model;
    o.model_len = strlen(model);

    CHECK(ai_cache_replay_json(stored, len, &o, &slow) == 0);
    CHECK(ai_cache_render_hit(stored, len, &fast, &hit) == 0);

    if (fast.data == NULL || slow.data == NULL) {
        ai_buf_free(&slow);
        ai_buf_free(&fast);
        return;
    }

    CHECK(hit.model_off + hit.model_len <= fast.len);
    CHECK(fast.data[hit.model_off] == '"');
    CHECK(fast.data[hit.model_off + hit.model_len - 1] == '"');

    p = malloc(2 * strlen(model) * 6 + 3);
    p[0] = '"';
    *((char *) ai_json_escape((unsigned char *) p + 1,
                              (const unsigned char *) model, strlen(model)))
        = '\0';
    strcat(p, "\"");

    CHECK(ai_buf_append(&swapped, fast.data, hit.model_off) == 0);
    CHECK(ai_buf_append(&swapped, p, strlen(p)) == 0);
    CHECK(ai_buf_append(&swapped, fast.data + hit.model_off + hit.model_len,
                        fast.len - hit.model_off - hit.model_len) == 0);

    if (strpbrk(model, "\"\\/\x01\x7f") == NULL) {
        CHECK(swapped.len == slow.len
              && memcmp(swapped.data, slow.data, slow.len) == 0);
    }

    a = json_loadb(swapped.data, swapped.len, 0, NULL);
    b = json_loadb(slow.data, slow.len, 0, NULL);
    CHECK(a != NULL && b != NULL && json_equal(a, b));

    if (hit.usage_seen) {
        CHECK(hit.prompt_tokens == ai_t_int(b, "usage.prompt_tokens"));
        CHECK(hit.completion_tokens
              == ai_t_int(b, "usage.completion_tokens"));
        CHECK(hit.cached_tokens
              == ai_t_int(b, "usage.prompt_tokens_details.cached_tokens"));
    }

    json_decref(a);
    json_decref(b);
    free(p);
    ai_buf_free(&slow);
    ai_buf_free(&fast);
    ai_buf_free(&swapped);
}


/* each event of two SSE texts: the same JSON, or the same bytes */

static int
ai_t_same_events(const char *a, size_t alen, const char *b, size_t blen)
{
    int          same;
    json_t      *x, *y;
    const char  *ae, *be, *aend, *bend;

    aend = a + alen;
    bend = b + blen;

    while (a < aend && b < bend) {
        ae = strstr(a, "\n\n");
        be = strstr(b, "\n\n");

        if (ae == NULL || be == NULL || ae >= aend || be >= bend) {
            return 0;
        }

        x = json_loadb(a + 6, ae - a - 6, 0, NULL);
        y = json_loadb(b + 6, be - b - 6, 0, NULL);
        same = (x && y) ? json_equal(x, y)
                        : (ae - a == be - b && memcmp(a, b, ae - a) == 0);
        json_decref(x);
        json_decref(y);

        if (!same) {
            return 0;
        }

        a = ae + 2;
        b = be + 2;
    }

    return a == aend && b == bend;
}


static void
ai_t_render_sse_one(const char *stored, size_t len, const char *model)
{
    int                     usage;
    char                   *hit;
    size_t                  n;
    ai_buf_t                slow = { NULL, 0, 0 }, ev = { NULL, 0, 0 };
    ai_cache_sse_t          sse;
    ai_cache_replay_opts_t  o;

    CHECK(ai_cache_render_sse(stored, len, &ev, &sse) == 0);
    CHECK(sse.nmodel > 0);

    for (usage = 0; usage < 2; usage++) {
        memset(&o, 0, sizeof(o));
        o.model = model;
        o.model_len = strlen(model);
        o.include_usage = usage;
        slow.len = 0;

        CHECK(ai_cache_replay_sse(stored, len, &o, &slow) == 0);

        n = ai_cache_sse_hit(ev.data, ev.len, &sse,
                             (const unsigned char *) model, strlen(model),
                             usage, NULL);
        hit = malloc(n + 1);
        CHECK(ai_cache_sse_hit(ev.data, ev.len, &sse,
                               (const unsigned char *) model, strlen(model),
                               usage, hit)
              == n);

        if (strpbrk(model, "\"\\/\x01\x7f") == NULL) {
            CHECK(n == slow.len && memcmp(hit, slow.data, n) == 0);
        }

        CHECK(ai_t_same_events(hit, n, slow.data, slow.len));

        /* the usage event is there exactly when asked for */
        CHECK((strstr(slow.data, "\"choices\":[],\"usage\"") != NULL)
              == (usage && sse.usage_len != 0));

        free(hit);
    }

    ai_cache_sse_free(&sse);
    ai_buf_free(&slow);
    ai_buf_free(&ev);
}


static void
test_render_hit(void)
{
    size_t       i, j;
    ai_buf_t     stored = { NULL, 0, 0 }, out = { NULL, 0, 0 };
    ai_cache_hit_t  hit;
    static const char *models[] = {
        "gpt-4o", "", "a", "my \"quoted\" model", "back\\slash", "tab\tnl\n",
        "ctl\x01\x7f", "caf\xc3\xa9/\xe2\x82\xac", "provider/model:tag",
    };
    const char  *bodies[3];

    CHECK(ai_t_assemble(AI_EP_CHAT, ai_t_chunks20_sse,
                        strlen(ai_t_chunks20_sse), 0, 0, &stored) == 1);

    bodies[0] = ai_t_tools_json;
    bodies[1] = ai_t_compl_json;
    bodies[2] = ai_t_long_json;

    for (j = 0; j < sizeof(models) / sizeof(models[0]); j++) {
        ai_t_render_one(stored.data, stored.len, models[j]);

        for (i = 0; i < 3; i++) {
            ai_t_render_one(bodies[i], strlen(bodies[i]), models[j]);
        }
    }

    /* the streamed form, with and without the usage event */
    for (j = 0; j < sizeof(models) / sizeof(models[0]); j++) {
        ai_t_render_sse_one(stored.data, stored.len, models[j]);

        for (i = 0; i < 3; i++) {
            ai_t_render_sse_one(bodies[i], strlen(bodies[i]), models[j]);
        }
    }

    /* no model, or not a string: not rendered (replayed the slow way) */
    CHECK(ai_cache_render_hit("{\"object\":\"chat.completion\"}", 30, &out,
                              &hit) == -1);
    out.len = 0;
    CHECK(ai_cache_render_hit("{\"model\":5,\"choices\":[]}", 25, &out,
                              &hit) == -1);
    out.len = 0;
    CHECK(ai_cache_render_hit("nope", 4, &out, &hit) == -1);

    ai_buf_free(&out);
    ai_buf_free(&stored);
}


/* random request texts: the raw reader and the tree agree on each */

static unsigned long  ai_t_rng = 88172645463325252UL;

static unsigned
ai_t_rand(unsigned n)
{
    ai_t_rng ^= ai_t_rng << 13;
    ai_t_rng ^= ai_t_rng >> 7;
    ai_t_rng ^= ai_t_rng << 17;
    return (unsigned) (ai_t_rng % n);
}


static void
ai_t_ws(ai_buf_t *b)
{
    static const char *ws[] = { "", "", "", " ", "\n  ", "\t", "\r\n" };

    ai_buf_append_str(b, ws[ai_t_rand(7)]);
}


static void
ai_t_gen_value(ai_buf_t *b, int depth)
{
    unsigned            i, n;
    static const char  *strs[] = {
        "\"hi\"", "\"\"", "\"caf\xc3\xa9 \xe2\x82\xac\"", "\"a\\nb\\tc\"",
        "\"q\\\"uote\\\\\"", "\"\\u00e9\\u20ac\"", "\"\\ud83d\\ude00 ok\"",
        "\"sl\\/ash\"", "\"\\u0001\\u001f\\u007f\"", "\"\\b\\f\\r\"",
        "\"\\u0041\\u0022\\u005c\"", "\"x\x7fy\"",
    };
    static const char  *nums[] = {
        "0", "-0", "1", "-1", "1.0", "1.5", "-2.25e3", "1e2", "1E-2",
        "0.1", "123456789012345678", "3.141592653589793", "1e-300", "-0.0",
        "2.5E+10", "100", "9007199254740993", "0.30000000000000004",
    };
    static const char  *keys[] = {
        "role", "content", "type", "text", "name", "a", "b", "aa", "B",
        "\xc3\xa9", "z", "properties", "required", "x-y",
    };

    n = depth > 4 ? ai_t_rand(4) : ai_t_rand(7);

    switch (n) {
    case 0:
        ai_buf_append_str(b, strs[ai_t_rand(sizeof(strs) / sizeof(strs[0]))]);
        break;
    case 1:
        ai_buf_append_str(b, nums[ai_t_rand(sizeof(nums) / sizeof(nums[0]))]);
        break;
    case 2:
        ai_buf_append_str(b, ai_t_rand(3) == 0 ? "null"
                             : ai_t_rand(2) ? "true" : "false");
        break;
    case 3:
        ai_buf_append_str(b, strs[ai_t_rand(4)]);
        break;
    case 4:
    case 5:
        /* an object with distinct keys in a random order */
        {
            unsigned  used = 0, k;

            ai_buf_append_str(b, "{");
            ai_t_ws(b);
            n = ai_t_rand(6);

            for (i = 0; i < n; i++) {
                k = ai_t_rand(sizeof(keys) / sizeof(keys[0]));

                if (used & (1u << k)) {
                    continue;
                }

                if (used) {
                    ai_buf_append_str(b, ",");
                    ai_t_ws(b);
                }

                used |= 1u << k;
                ai_buf_append_str(b, "\"");
                ai_buf_append_str(b, keys[k]);
                ai_buf_append_str(b, "\"");
                ai_t_ws(b);
                ai_buf_append_str(b, ":");
                ai_t_ws(b);
                ai_t_gen_value(b, depth + 1);
                ai_t_ws(b);
            }

            ai_buf_append_str(b, "}");
        }
        break;
    default:
        ai_buf_append_str(b, "[");
        n = ai_t_rand(5);

        for (i = 0; i < n; i++) {
            if (i) {
                ai_buf_append_str(b, ",");
            }

            ai_t_ws(b);
            ai_t_gen_value(b, depth + 1);
            ai_t_ws(b);
        }

        ai_buf_append_str(b, "]");
    }
}


static void
test_key_raw_random(void)
{
    int             i, endpoint, force;
    unsigned        k, n, used;
    json_t         *v;
    ai_buf_t        b = { NULL, 0, 0 };
    unsigned char   d[AI_CACHE_KEY_LEN];
    static const char *top[] = {
        "messages", "temperature", "seed", "n", "tools", "stop", "top_p",
        "response_format", "tool_choice", "max_tokens", "stream", "user",
        "metadata", "x_unknown", "prompt", "input", "logit_bias",
        "stream_options", "model",
    };
    static const char *special[] = {
        "0", "0.0", "-0", "1", "1.0", "7", "7.5", "null", "\"0\"", "true",
        "1e0", "0e5",
    };

    ai_t_raw_answered = 0;
    ai_t_raw_declined = 0;

    for (i = 0; i < 20000; i++) {
        b.len = 0;
        ai_t_ws(&b);
        ai_buf_append_str(&b, "{");
        used = 0;
        n = ai_t_rand(9);

        for (k = 0; k < n; k++) {
            unsigned  t = ai_t_rand(sizeof(top) / sizeof(top[0]));

            if (used & (1u << t)) {
                continue;
            }

            if (used) {
                ai_buf_append_str(&b, ",");
            }

            used |= 1u << t;
            ai_t_ws(&b);
            ai_buf_append_str(&b, "\"");
            ai_buf_append_str(&b, top[t]);
            ai_buf_append_str(&b, "\":");
            ai_t_ws(&b);

            if (t <= 3 && ai_t_rand(3)) {
                ai_buf_append_str(&b, special[ai_t_rand(
                    sizeof(special) / sizeof(special[0]))]);
            } else {
                ai_t_gen_value(&b, 1);
            }
        }

        ai_buf_append_str(&b, "}");
        ai_t_ws(&b);
        ai_buf_append(&b, "", 1);
        b.len--;

        v = json_loads(b.data, 0, NULL);

        if (v == NULL) {
            continue;
        }

        endpoint = (int) ai_t_rand(3) == 0 ? AI_EP_COMPLETIONS
                   : ai_t_rand(5) == 0 ? AI_EP_EMBEDDINGS : AI_EP_CHAT;
        force = ai_t_rand(6) == 0;

        if (ai_cache_key(v, endpoint, "model-x", 7, "tenant", d) == 0) {
            ai_t_raw_agrees(b.data, endpoint, "model-x", "tenant", force, d);
        }

        json_decref(v);
    }

    printf("test_cache: raw key reader answered %d, left %d to the tree\n",
           ai_t_raw_answered, ai_t_raw_declined);

    /* it answers for all but the rare shapes it leaves to the tree */
    CHECK(ai_t_raw_answered > 15000);

    /* and leaves those */
    {
        ai_buf_t  s1 = { NULL, 0, 0 }, s2 = { NULL, 0, 0 };
        int       c;
        static const char *left[] = {
            "{\"te\\u006dperature\":0}",              /* escaped key */
            "{\"seed\":1,\"seed\":2}",                /* duplicate */
            "{\"seed\":1234567890123456789}",         /* 19 digits */
            "{\"stop\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
              "[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
              "]]]]]]]]]]]]]]]]]}",                       /* deep */
            "{\"stop\":\"a\"} x", "{\"stop\":\"a\"", "{\"stop\":tru}",
            "{\"stop\":\"\\ud800\"}", "{\"stop\":\"\\u0000\"}", "[1]", "",
            "{\"temperature\":1e999}",
        };

        for (k = 0; k < sizeof(left) / sizeof(left[0]); k++) {
            CHECK(ai_cache_key_raw(left[k], strlen(left[k]), AI_EP_CHAT,
                                   AI_EP_CHAT, 0, "m", 1, "", &s1, &s2, &c, d)
                  == -1);
        }

        ai_buf_free(&s1);
        ai_buf_free(&s2);
    }

    ai_buf_free(&b);
}

/*
 * Requests that share everything but their last message hash only their
 * tail: the key must be the tree path's all the same, whichever prefix a
 * slot holds (same length and one byte apart, other tenants, other
 * models, members in another order, more turns).
 */

static void
test_key_prefix_resume(void)
{
    int             i;
    char            sys[4][1200], user[64], *p;
    unsigned        k, turns, s;
    json_t         *v;
    ai_buf_t        b = { NULL, 0, 0 };
    unsigned long   resumed0, kept0, resumed, kept;
    unsigned char   d[AI_CACHE_KEY_LEN];
    static const char *models[] = { "model-x", "model-y" };
    static const char *nss[] = { "tenant", "other", "" };

    for (k = 0; k < 4; k++) {
        p = sys[k];

        for (i = 0; i < 1100; i++) {
            *p++ = (char) ('a' + (i * 7 + i / 13) % 26);
        }

        *p = '\0';
    }

    sys[1][550] = 'Z';                  /* same length, one byte apart */
    sys[2][1099] = '\0';                /* one byte shorter */
    memcpy(sys[3], "You are \\\"careful\\\".", 20);   /* escapes */

    ai_cache_digest_stats(&resumed0, &kept0);

    for (i = 0; i < 3000; i++) {
        s = ai_t_rand(4);
        turns = ai_t_rand(2);
        b.len = 0;

        ai_buf_append_str(&b, ai_t_rand(2) ? "{\"temperature\":0,"
                                          : "{\"max_tokens\":64,");
        ai_buf_append_str(&b, "\"messages\":[{\"role\":\"system\","
                              "\"content\":\"");
        ai_buf_append_str(&b, sys[s]);
        ai_buf_append_str(&b, "\"}");

        for (k = 0; k < turns; k++) {
            ai_buf_append_str(&b, ",{\"content\":\"earlier turn\","
                                  "\"role\":\"user\"}");
        }

        snprintf(user, sizeof(user), ",{\"role\":\"user\",\"content\":"
                 "\"question %u\"}]", ai_t_rand(50));
        ai_buf_append_str(&b, user);
        ai_buf_append_str(&b, ai_t_rand(2) ? ",\"seed\":3}" : "}");
        ai_buf_append(&b, "", 1);
        b.len--;

        v = json_loads(b.data, 0, NULL);
        CHECK(v != NULL);

        if (v == NULL) {
            continue;
        }

        k = ai_t_rand(10) == 0;
        s = ai_t_rand(10) == 0 ? 2 : ai_t_rand(2);

        if (ai_cache_key(v, AI_EP_CHAT, models[k], strlen(models[k]), nss[s],
                         d)
            == 0)
        {
            ai_t_raw_agrees(b.data, AI_EP_CHAT, models[k], nss[s], 0, d);
        }

        json_decref(v);
    }

    ai_cache_digest_stats(&resumed, &kept);

    printf("test_cache: %lu digests resumed from a kept prefix, %lu kept\n",
           resumed - resumed0, kept - kept0);

    /* the prefixes repeat: most digests resume, and some had to be kept */
    CHECK(resumed - resumed0 > 800);
    CHECK(kept - kept0 > 10);

    ai_buf_free(&b);
}

/* random chunk streams: the tree-free chunk reader and jansson agree */

static const char *
ai_t_pick(const char *const *set, size_t n)
{
    return set[ai_t_rand((unsigned) n)];
}

#define AI_T_PICK(set)  ai_t_pick(set, sizeof(set) / sizeof(set[0]))


static void
test_assemble_random(void)
{
    int             i, k, m, endpoint, ok;
    unsigned        nch, j;
    ai_buf_t        sse = { NULL, 0, 0 }, out = { NULL, 0, 0 };
    static const char *const str[] = {
        "\"plain\"", "\"\"", "\"esc \\\"q\\\" \\\\ \\/ \\n\\t\"",
        "\"caf\\u00e9 \\ud83d\\ude00\"", "\"caf\xc3\xa9\"", "null", "7",
        "\"gpt-x\"", "\"gpt-y\"", "[\"a\"]", "{\"x\":1}",
    };
    static const char *const objs[] = {
        "\"chat.completion.chunk\"", "\"text_completion\"",
        "\"chat.completion\"", "\"chat.completion.\\u0063hunk\"", "5",
    };
    static const char *const ints[] = {
        "0", "1", "2", "-1", "99", "1.5", "\"0\"", "null", "1741569952",
    };
    static const char *const fins[] = {
        "\"stop\"", "\"length\"", "null", "\"tool_calls\"", "3",
        "\"content_filter\"",
    };
    static const char *const rare[] = {
        "\"logprobs\":{\"content\":[]}", "\"logprobs\":null",
        "\"x_extra\":[1,{\"a\":null}]", "\"index\":0,\"index\":1",
        "\"fin\\u0069sh_reason\":\"stop\"",
    };
    static const char *const deltas[] = {
        "\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]",
        "\"tool_calls\":null", "\"function_call\":{\"name\":\"g\"}",
        "\"content\":\"a\",\"content\":\"b\"", "\"refusal\":\"no\"",
    };

    for (i = 0; i < 3000; i++) {
        endpoint = ai_t_rand(4) ? AI_EP_CHAT : AI_EP_COMPLETIONS;
        sse.len = 0;
        m = 1 + (int) ai_t_rand(8);

        for (k = 0; k < m; k++) {
            ai_buf_append_str(&sse, "data: {");

            if (ai_t_rand(8)) {
                ai_buf_append_str(&sse, "\"id\":");
                ai_buf_append_str(&sse, ai_t_rand(6) ? "\"chatcmpl-1\""
                                                     : AI_T_PICK(str));
                ai_buf_append_str(&sse, ",");
            }

            ai_buf_append_str(&sse, "\"object\":");
            ai_buf_append_str(&sse, ai_t_rand(5)
                                    ? (endpoint == AI_EP_CHAT
                                       ? "\"chat.completion.chunk\""
                                       : "\"text_completion\"")
                                    : AI_T_PICK(objs));
            ai_buf_append_str(&sse, ",\"created\":");
            ai_buf_append_str(&sse, ai_t_rand(5) ? "1741569952"
                                                 : AI_T_PICK(ints));
            ai_buf_append_str(&sse, ",\"model\":");
            ai_buf_append_str(&sse, ai_t_rand(4) ? "\"gpt-x\""
                                                 : AI_T_PICK(str));

            if (ai_t_rand(3) == 0) {
                ai_buf_append_str(&sse, ",\"system_fingerprint\":");
                ai_buf_append_str(&sse, AI_T_PICK(str));
            }

            if (ai_t_rand(30) == 0) {
                ai_buf_append_str(&sse, ai_t_rand(2)
                                        ? ",\"error\":{\"message\":\"x\"}"
                                        : ",\"error\":null");
            }

            if (ai_t_rand(6) == 0) {
                ai_buf_append_str(&sse, ai_t_rand(3)
                                  ? ",\"usage\":{\"prompt_tokens\":5,"
                                    "\"completion_tokens\":3,"
                                    "\"total_tokens\":8}"
                                  : ",\"usage\":null");
            }

            ai_buf_append_str(&sse, ",\"choices\":");

            if (ai_t_rand(20) == 0) {
                ai_buf_append_str(&sse, AI_T_PICK(str));

            } else {
                ai_buf_append_str(&sse, "[");
                nch = ai_t_rand(3);

                for (j = 0; j < nch; j++) {
                    if (j) {
                        ai_buf_append_str(&sse, ",");
                    }

                    if (ai_t_rand(40) == 0) {
                        ai_buf_append_str(&sse, "5");
                        continue;
                    }

                    ai_buf_append_str(&sse, "{\"index\":");
                    ai_buf_append_str(&sse, ai_t_rand(4) ? "0"
                                                         : AI_T_PICK(ints));

                    if (endpoint == AI_EP_CHAT) {
                        ai_buf_append_str(&sse, ",\"delta\":{");

                        if (ai_t_rand(4) == 0) {
                            ai_buf_append_str(&sse, "\"role\":");
                            ai_buf_append_str(&sse, ai_t_rand(3)
                                                    ? "\"assistant\""
                                                    : AI_T_PICK(str));
                            ai_buf_append_str(&sse, ",");
                        }

                        if (ai_t_rand(10) == 0) {
                            ai_buf_append_str(&sse, AI_T_PICK(deltas));
                            ai_buf_append_str(&sse, ",");
                        }

                        ai_buf_append_str(&sse, ai_t_rand(8)
                                                ? "\"content\":"
                                                : "\"c\\u006fntent\":");
                        ai_buf_append_str(&sse, AI_T_PICK(str));
                        ai_buf_append_str(&sse, "}");

                    } else {
                        ai_buf_append_str(&sse, ",\"text\":");
                        ai_buf_append_str(&sse, AI_T_PICK(str));
                    }

                    if (ai_t_rand(8) == 0) {
                        ai_buf_append_str(&sse, ",");
                        ai_buf_append_str(&sse, AI_T_PICK(rare));
                    }

                    ai_buf_append_str(&sse, ",\"finish_reason\":");
                    ai_buf_append_str(&sse, k == m - 1 && ai_t_rand(4)
                                            ? "\"stop\"" : AI_T_PICK(fins));
                    ai_buf_append_str(&sse, "}");
                }

                ai_buf_append_str(&sse, "]");
            }

            ai_buf_append_str(&sse, "}\n\n");
        }

        if (ai_t_rand(10)) {
            ai_buf_append_str(&sse, "data: [DONE]\n\n");
        }

        out.len = 0;
        ok = ai_t_assemble(endpoint, sse.data, sse.len,
                           ai_t_rand(3) ? 0 : 1 + ai_t_rand(200), 0, &out);
        (void) ok;
    }

    ai_buf_free(&sse);
    ai_buf_free(&out);

    printf("test_cache: %d assemblies compared (bytes and trees)\n",
           ai_t_asm_compared);
}

int
main(void)
{
    test_canonical();
    test_key();
    test_policy();
    test_assemble();
    test_storable();
    test_replay();
    test_render_hit();
    test_key_raw_random();
    test_key_prefix_resume();
    test_assemble_random();

    printf("test_cache: %d checks, %d failed\n", ai_checks, ai_failures);

    return ai_failures ? 1 : 0;
}
