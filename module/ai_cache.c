
/*
 * The pure half of the response cache (see ai_cache.h and docs/cache.md):
 * canonical keys, policy, assembly of streamed answers, the check before
 * storing, and replay as a whole body or as SSE chunks.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

#include <openssl/evp.h>

#include "ai_cache.h"
#include "ai_jtok.h"


/* ---- canonical JSON ---- */

typedef int (*ai_cache_write_pt)(void *ctx, const char *p, size_t n);

typedef struct ai_cache_choice_s  ai_cache_choice_t;

typedef struct {
    ai_cache_write_pt   write;
    void               *ctx;
} ai_cache_sink_t;


static int ai_cache_put(ai_cache_sink_t *k, const char *p, size_t n);
static int ai_cache_put_str(ai_cache_sink_t *k, const char *s);
static int ai_cache_put_string(ai_cache_sink_t *k, const char *s, size_t n);
static int ai_cache_put_real(ai_cache_sink_t *k, double x);
static int ai_cache_put_value(ai_cache_sink_t *k, json_t *v);
static int ai_cache_key_cmp(const void *a, const void *b);
static int ai_cache_buf_write(void *ctx, const char *p, size_t n);
static int ai_cache_md_write(void *ctx, const char *p, size_t n);
static const char *ai_cache_endpoint_name(int endpoint);
static int ai_cache_digest(const unsigned char *t, size_t len, size_t split,
    unsigned char digest[AI_CACHE_KEY_LEN]);

static int ai_cache_token_is(const char *p, size_t n, const char *name);

static int ai_cache_on_event(void *ctx, const ai_sse_event_t *ev);
static int ai_cache_asm_chunk(ai_cache_asm_t *a, json_t *root);
static int ai_cache_asm_chunk_raw(ai_cache_asm_t *a, const char *data,
    size_t len);
static int ai_cache_asm_chunk_like(ai_cache_asm_t *a, const char *data,
    size_t len);
static ai_cache_choice_t *ai_cache_asm_slot(ai_cache_asm_t *a, long index);
static int ai_cache_set_raw(ai_cache_asm_t *a, char **dst, uint32_t v);
static int ai_cache_append_raw(ai_jdoc_t *doc, uint32_t v, ai_buf_t *b);
static int ai_cache_asm_choice(ai_cache_asm_t *a, json_t *c);
static int ai_cache_asm_delta(ai_cache_choice_t *ch, json_t *delta);
static int ai_cache_asm_tool(ai_cache_choice_t *ch, json_t *tc, size_t pos);
static int ai_cache_merge_logprobs(ai_cache_choice_t *ch, json_t *lp);
static json_t *ai_cache_asm_build(ai_cache_asm_t *a);
static int ai_cache_asm_write(ai_cache_asm_t *a, ai_buf_t *out);
static int ai_cache_choice_cmp(const void *x, const void *y);
static json_t *ai_cache_asm_message(ai_cache_choice_t *ch);
static int ai_cache_finish_ok(const char *reason);
static int ai_cache_choices_ok(json_t *choices, int endpoint);

static int ai_cache_mark_cached(json_t *usage);
static void ai_cache_hit_usage(json_t *root, ai_cache_hit_t *hit);
static json_t *ai_cache_load_object(const char *p, size_t len);
static int ai_cache_prefix(ai_buf_t *b, json_t *root, const char *object);
static int ai_cache_emit(ai_buf_t *out, ai_buf_t *prefix, const char *choice,
    size_t len, int include_usage);
static int ai_cache_emit_json(ai_buf_t *out, ai_buf_t *prefix, json_t *choice,
    int include_usage);
static int ai_cache_emit_pieces(ai_buf_t *out, ai_buf_t *prefix,
    ai_buf_t *tmp, const char *head, const char *tail, const char *s,
    size_t len, size_t chunk, int include_usage);
static int ai_cache_replay_chat(json_t *choice, size_t pos, ai_buf_t *out,
    ai_buf_t *prefix, size_t chunk, int include_usage);
static int ai_cache_replay_text(json_t *choice, size_t pos, ai_buf_t *out,
    ai_buf_t *prefix, size_t chunk, int include_usage);


/*
 * Members of a request that change the answer, sorted by bytes.  Anything
 * else (stream, stream_options, user, metadata, store, service_tier,
 * unknown extensions) is left out of the key.  A null member counts as
 * absent.
 */
const char *const ai_cache_key_members[] = {
    "audio",
    "best_of",
    "dimensions",
    "echo",
    "encoding_format",
    "frequency_penalty",
    "function_call",
    "functions",
    "input",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "messages",
    "min_p",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt",
    "reasoning",
    "reasoning_effort",
    "repetition_penalty",
    "response_format",
    "seed",
    "stop",
    "suffix",
    "temperature",
    "tool_choice",
    "tools",
    "top_k",
    "top_logprobs",
    "top_p",
    "verbosity",
    "web_search_options",
    NULL
};


/*
 * SHA-256 fetched once per process: EVP_sha256() in a digest call means a
 * fetch, with its locks, every time.  Falls back to it if the fetch fails.
 */

static const EVP_MD *
ai_cache_sha256(void)
{
    static EVP_MD  *md;

    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
    }

    return md ? md : EVP_sha256();
}


int
ai_cache_key(json_t *req, int endpoint, const char *resolved_model,
    size_t len, const char *namespace, unsigned char digest[AI_CACHE_KEY_LEN])
{
    int                 rc, first;
    json_t             *v;
    const char         *ep, *const *m;
    EVP_MD_CTX         *md;
    unsigned int        dlen;
    ai_cache_sink_t     k;

    ep = ai_cache_endpoint_name(endpoint);

    if (!json_is_object(req) || ep == NULL
        || (resolved_model == NULL && len != 0))
    {
        return -1;
    }

    md = EVP_MD_CTX_new();

    if (md == NULL) {
        return -1;
    }

    if (EVP_DigestInit_ex(md, ai_cache_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return -1;
    }

    k.write = ai_cache_md_write;
    k.ctx = md;

    /* the members are written in the order of their names' bytes */

    rc = ai_cache_put_str(&k, "{\"endpoint\":");
    rc |= ai_cache_put_string(&k, ep, strlen(ep));
    rc |= ai_cache_put_str(&k, ",\"model\":");
    rc |= ai_cache_put_string(&k, resolved_model ? resolved_model : "", len);
    rc |= ai_cache_put_str(&k, ",\"namespace\":");
    rc |= ai_cache_put_string(&k, namespace ? namespace : "",
                              namespace ? strlen(namespace) : 0);
    rc |= ai_cache_put_str(&k, ",\"request\":{");

    first = 1;

    for (m = ai_cache_key_members; *m && rc == 0; m++) {
        v = json_object_get(req, *m);

        if (v == NULL || json_is_null(v)) {
            continue;
        }

        rc |= ai_cache_put_str(&k, first ? "\"" : ",\"");
        rc |= ai_cache_put_str(&k, *m);
        rc |= ai_cache_put_str(&k, "\":");
        rc |= ai_cache_put_value(&k, v);
        first = 0;
    }

    rc |= ai_cache_put_str(&k, "},\"v\":");
    rc |= ai_cache_put_real(&k, AI_CACHE_KEY_VERSION);
    rc |= ai_cache_put_str(&k, "}");

    if (rc == 0 && EVP_DigestFinal_ex(md, digest, &dlen) != 1) {
        rc = -1;
    }

    EVP_MD_CTX_free(md);

    return rc ? -1 : 0;
}


void
ai_cache_key_hex(const unsigned char d[AI_CACHE_KEY_LEN], char out[65])
{
    int                 i;
    static const char   hex[] = "0123456789abcdef";

    for (i = 0; i < AI_CACHE_KEY_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 0xf];
    }

    out[64] = '\0';
}


int
ai_cache_canonical(json_t *v, ai_buf_t *out)
{
    ai_cache_sink_t  k;

    k.write = ai_cache_buf_write;
    k.ctx = out;

    return ai_cache_put_value(&k, v);
}


static const char *
ai_cache_endpoint_name(int endpoint)
{
    switch (endpoint) {
    case AI_EP_CHAT:
        return "chat";
    case AI_EP_COMPLETIONS:
        return "completions";
    case AI_EP_EMBEDDINGS:
        return "embeddings";
    default:
        return NULL;
    }
}


static int
ai_cache_md_write(void *ctx, const char *p, size_t n)
{
    return EVP_DigestUpdate(ctx, p, n) == 1 ? 0 : -1;
}


static int
ai_cache_buf_write(void *ctx, const char *p, size_t n)
{
    return ai_buf_append(ctx, p, n);
}


static int
ai_cache_put(ai_cache_sink_t *k, const char *p, size_t n)
{
    return n ? k->write(k->ctx, p, n) : 0;
}


static int
ai_cache_put_str(ai_cache_sink_t *k, const char *s)
{
    return ai_cache_put(k, s, strlen(s));
}


/*
 * Strings are written from their decoded bytes (jansson has already
 * turned "\u0041" into "A" and surrogate pairs into UTF-8), escaping only
 * what JSON requires, as RFC 8785 does: '"', '\\', and controls, the
 * usual five by letter and the others as \u00xx.
 */

static int
ai_cache_put_string(ai_cache_sink_t *k, const char *s, size_t n)
{
    size_t               i, run;
    char                 esc[8];
    unsigned char        c;
    static const char    hex[] = "0123456789abcdef";

    if (ai_cache_put(k, "\"", 1) != 0) {
        return -1;
    }

    run = 0;

    for (i = 0; i < n; i++) {
        c = (unsigned char) s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        if (ai_cache_put(k, s + run, i - run) != 0) {
            return -1;
        }

        esc[0] = '\\';

        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];

            if (ai_cache_put(k, esc, 6) != 0) {
                return -1;
            }

            run = i + 1;
            continue;
        }

        if (ai_cache_put(k, esc, 2) != 0) {
            return -1;
        }

        run = i + 1;
    }

    if (ai_cache_put(k, s + run, n - run) != 0) {
        return -1;
    }

    return ai_cache_put(k, "\"", 1);
}


/*
 * Numbers: a real that holds an integer below 2^53 in magnitude is
 * written as that integer (so 1, 1.0, 1e0, 1.00 and 100 == 1e2 agree,
 * and -0 is 0); any other real in the fewest significant digits, up to
 * 17, that read back to the same double ("%.{p}g").  No libm needed.
 */

static int
ai_cache_put_real(ai_cache_sink_t *k, double x)
{
    int     p, n;
    char    buf[48];

    if (x != x || x > 1.7976931348623157e308 || x < -1.7976931348623157e308) {
        return -1;
    }

    if (x > -9007199254740992.0 && x < 9007199254740992.0
        && (double) (long long) x == x)
    {
        n = snprintf(buf, sizeof(buf), "%lld", (long long) x);
        return ai_cache_put(k, buf, n);
    }

    n = 0;

    for (p = 1; p <= 17; p++) {
        n = snprintf(buf, sizeof(buf), "%.*g", p, x);

        if (strtod(buf, NULL) == x) {
            break;
        }
    }

    return ai_cache_put(k, buf, n);
}


typedef struct {
    const char   *key;
    size_t        len;
    json_t       *value;
} ai_cache_member_t;


static int
ai_cache_put_value(ai_cache_sink_t *k, json_t *v)
{
    int                 rc;
    char                buf[32];
    size_t              i, n;
    void               *it;
    ai_cache_member_t  *m;

    switch (json_typeof(v)) {

    case JSON_OBJECT:
        n = json_object_size(v);

        if (n == 0) {
            return ai_cache_put(k, "{}", 2);
        }

        m = malloc(n * sizeof(ai_cache_member_t));

        if (m == NULL) {
            return -1;
        }

        i = 0;

        for (it = json_object_iter(v); it && i < n;
             it = json_object_iter_next(v, it))
        {
            m[i].key = json_object_iter_key(it);
            m[i].len = json_object_iter_key_len(it);
            m[i].value = json_object_iter_value(it);
            i++;
        }

        n = i;
        qsort(m, n, sizeof(ai_cache_member_t), ai_cache_key_cmp);

        rc = ai_cache_put(k, "{", 1);

        for (i = 0; i < n && rc == 0; i++) {
            rc |= i ? ai_cache_put(k, ",", 1) : 0;
            rc |= ai_cache_put_string(k, m[i].key, m[i].len);
            rc |= ai_cache_put(k, ":", 1);
            rc |= ai_cache_put_value(k, m[i].value);
        }

        free(m);

        return rc ? -1 : ai_cache_put(k, "}", 1);

    case JSON_ARRAY:
        rc = ai_cache_put(k, "[", 1);

        for (i = 0; i < json_array_size(v) && rc == 0; i++) {
            rc |= i ? ai_cache_put(k, ",", 1) : 0;
            rc |= ai_cache_put_value(k, json_array_get(v, i));
        }

        return rc ? -1 : ai_cache_put(k, "]", 1);

    case JSON_STRING:
        return ai_cache_put_string(k, json_string_value(v),
                                   json_string_length(v));

    case JSON_INTEGER:
        n = snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        return ai_cache_put(k, buf, n);

    case JSON_REAL:
        return ai_cache_put_real(k, json_real_value(v));

    case JSON_TRUE:
        return ai_cache_put(k, "true", 4);

    case JSON_FALSE:
        return ai_cache_put(k, "false", 5);

    case JSON_NULL:
        return ai_cache_put(k, "null", 4);

    default:
        return -1;
    }
}


static int
ai_cache_key_cmp(const void *a, const void *b)
{
    int                       r;
    const ai_cache_member_t  *x = a, *y = b;

    r = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

    if (r != 0) {
        return r;
    }

    return (x->len > y->len) - (x->len < y->len);
}


/* ---- the key from the body's own bytes ---- */

/*
 * The same canonical text as ai_cache_key() and the same answer as
 * ai_cache_cacheable(), read straight from the JSON bytes: no tree.  Any
 * input this reader does not take exactly as jansson would (a key with
 * escapes, duplicate keys, an integer of 19 digits or more, nesting past
 * AI_CACHE_RAW_DEPTH, more than AI_CACHE_RAW_MEMBERS members in one
 * object) is -1: the caller then takes the tree path.
 */

#define AI_CACHE_RAW_DEPTH    64
#define AI_CACHE_RAW_MEMBERS  64

typedef struct {
    const char           *name;
    const unsigned char  *start;          /* NULL: absent */
    const unsigned char  *end;
} ai_cache_raw_cap_t;

typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    ai_buf_t             *out;
    ai_buf_t             *tmp;
    int                   depth;
    ai_cache_raw_cap_t   *cap;            /* top-level members wanted */
    size_t                elem;           /* the last element begun in an
                                             array member of the request */
    size_t                split;          /* where the last message begins
                                             in out; 0: nowhere */
} ai_cache_raw_t;

typedef struct {
    const unsigned char  *key;
    size_t                klen;
    size_t                start;
    size_t                end;
    size_t                split;      /* top level: the last element of a
                                         message list, from start; 0: none */
    int                   rank;       /* top level: allow-list index */
} ai_cache_raw_member_t;


static int ai_cache_raw_value(ai_cache_raw_t *r);


/* the allow-list's name lengths, measured once */

static size_t
ai_cache_member_len(size_t i)
{
    size_t        n;
    static size_t len[64];

    if (len[0] == 0) {
        for (n = 0; ai_cache_key_members[n] && n < 64; n++) {
            len[n] = strlen(ai_cache_key_members[n]);
        }
    }

    return i < 64 ? len[i] : strlen(ai_cache_key_members[i]);
}


/* out == NULL: the input is only read (checked), nothing written */

static inline int
ai_cache_raw_put(ai_cache_raw_t *r, const void *p, size_t n)
{
    ai_buf_t  *b = r->out;

    if (b == NULL) {
        return 0;
    }

    if (b->cap - b->len <= n && ai_buf_reserve(b, n) != 0) {
        return -1;
    }

    memcpy(b->data + b->len, p, n);
    b->len += n;

    return 0;
}


static void
ai_cache_raw_ws(ai_cache_raw_t *r)
{
    while (r->p < r->end
           && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n'
               || *r->p == '\r'))
    {
        r->p++;
    }
}


/* a string's span (between the quotes) and whether it holds escapes */

static int
ai_cache_raw_span(ai_cache_raw_t *r, const unsigned char **s, size_t *len,
    int *escaped)
{
    size_t                n;
    const unsigned char  *p;

    p = r->p + 1;
    *s = p;
    *escaped = 0;

    while (p < r->end && *p != '"') {

        p = ai_json_plain(p, r->end);

        if (p == r->end || *p == '"') {
            break;
        }

        if (*p < 0x20) {
            return -1;
        }

        if (*p >= 0x80) {
            /* as jansson: UTF-8, no overlong forms, no surrogates */
            n = ai_json_utf8_len(p, r->end);

            if (n == 0) {
                return -1;
            }

            p += n;
            continue;
        }

        if (*p == '\\') {
            *escaped = 1;

            if (++p == r->end) {
                return -1;
            }
        }

        p++;
    }

    if (p == r->end) {
        return -1;
    }

    *len = p - *s;
    r->p = p + 1;

    return 0;
}


/* a string as ai_cache_put_string() writes its decoded bytes */

static int
ai_cache_raw_string(ai_cache_raw_t *r)
{
    int                   escaped;
    char                  esc[8];
    size_t                len, n;
    unsigned              u;
    const unsigned char  *s, *p, *end;
    static const char     hex[] = "0123456789abcdef";

    if (ai_cache_raw_span(r, &s, &len, &escaped) != 0) {
        return -1;
    }

    if (!escaped) {
        /* raw bytes need no escape: >= 0x20, neither '"' nor '\\' */
        return ai_cache_raw_put(r, (const char *) s - 1, len + 2);
    }

    if (ai_cache_raw_put(r, "\"", 1) != 0) {
        return -1;
    }

    p = s;
    end = s + len;

    while (p < end) {

        if (*p != '\\') {
            s = p;

            while (p < end && *p != '\\') {
                p++;
            }

            if (ai_cache_raw_put(r, (const char *) s, p - s) != 0) {
                return -1;
            }

            continue;
        }

        esc[0] = '\\';
        n = 2;

        switch (p[1]) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case 'b':  esc[1] = 'b'; break;
        case 'f':  esc[1] = 'f'; break;
        case 'n':  esc[1] = 'n'; break;
        case 'r':  esc[1] = 'r'; break;
        case 't':  esc[1] = 't'; break;
        case '/':  esc[0] = '/'; n = 1; break;

        case 'u':
            n = ai_json_unicode(p, end, &u);

            if (n == 0) {
                return -1;
            }

            p += n;

            if (u < 0x20) {
                switch (u) {
                case '\b': esc[1] = 'b'; n = 2; break;
                case '\f': esc[1] = 'f'; n = 2; break;
                case '\n': esc[1] = 'n'; n = 2; break;
                case '\r': esc[1] = 'r'; n = 2; break;
                case '\t': esc[1] = 't'; n = 2; break;
                default:
                    memcpy(esc + 1, "u00", 3);
                    esc[4] = hex[u >> 4];
                    esc[5] = hex[u & 0xf];
                    n = 6;
                }

            } else if (u == '"' || u == '\\') {
                esc[1] = (char) u;
                n = 2;

            } else {
                n = ai_json_utf8_put(esc, u);
            }

            if (ai_cache_raw_put(r, esc, n) != 0) {
                return -1;
            }

            continue;

        default:
            return -1;
        }

        p += 2;

        if (ai_cache_raw_put(r, esc, n) != 0) {
            return -1;
        }
    }

    return ai_cache_raw_put(r, "\"", 1);
}


/*
 * A number's token; *integer when it has neither fraction nor exponent
 * (jansson's integer).  Integers of 19 digits or more are refused: past
 * 2^63 jansson does not take them either.
 */

static int
ai_cache_raw_number(ai_cache_raw_t *r, const unsigned char **tok,
    size_t *len, int *integer)
{
    size_t                digits;
    const unsigned char  *p;

    p = r->p;
    *tok = p;
    *integer = 1;

    if (p < r->end && *p == '-') {
        p++;
    }

    if (p == r->end || *p < '0' || *p > '9') {
        return -1;
    }

    digits = 0;

    if (*p == '0') {
        p++;
        digits = 1;

    } else {
        while (p < r->end && *p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
    }

    if (p < r->end && *p == '.') {
        *integer = 0;

        if (++p == r->end || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < r->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < r->end && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;

        if (p < r->end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == r->end || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < r->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if ((*integer && digits > 18) || p - *tok > 400) {
        return -1;
    }

    *len = p - *tok;
    r->p = p;

    return 0;
}


static int
ai_cache_raw_double(const unsigned char *tok, size_t len, double *x)
{
    char  buf[408];

    memcpy(buf, tok, len);
    buf[len] = '\0';
    *x = strtod(buf, NULL);

    return 0;
}


static int
ai_cache_raw_member_cmp(const ai_cache_raw_member_t *a,
    const ai_cache_raw_member_t *b)
{
    int  rc;

    rc = memcmp(a->key, b->key, a->klen < b->klen ? a->klen : b->klen);

    if (rc != 0) {
        return rc;
    }

    return (a->klen > b->klen) - (a->klen < b->klen);
}


/*
 * Members written in the body's order, then, when that is not the
 * canonical order, moved through r->tmp into it.  top: only allow-listed,
 * non-null members, in the allow-list's order.
 */

static int
ai_cache_raw_object(ai_cache_raw_t *r, int top, ai_cache_raw_member_t *m,
    size_t *count)
{
    int                     escaped, sorted, c;
    size_t                  n, i, j, obj, klen, mark, kept;
    const char *const      *a;
    const unsigned char    *key, *value;
    ai_cache_raw_cap_t     *cap;
    ai_cache_raw_member_t   t;

    obj = r->out ? r->out->len : 0;
    r->p++;                                     /* '{' */

    if (ai_cache_raw_put(r, "{", 1) != 0) {
        return -1;
    }

    ai_cache_raw_ws(r);

    n = 0;
    kept = 0;

    if (r->p < r->end && *r->p == '}') {
        r->p++;
        *count = 0;
        return ai_cache_raw_put(r, "}", 1);
    }

    for ( ;; ) {

        if (r->p == r->end || *r->p != '"'
            || ai_cache_raw_span(r, &key, &klen, &escaped) != 0 || escaped
            || n == AI_CACHE_RAW_MEMBERS)
        {
            return -1;
        }

        ai_cache_raw_ws(r);

        if (r->p == r->end || *r->p++ != ':') {
            return -1;
        }

        ai_cache_raw_ws(r);

        m[n].rank = 0;

        if (top) {
            m[n].rank = -1;

            for (a = ai_cache_key_members; *a; a++) {
                if ((*a)[0] == key[0]
                    && ai_cache_member_len(a - ai_cache_key_members) == klen
                    && memcmp(*a, key, klen) == 0)
                {
                    m[n].rank = (int) (a - ai_cache_key_members);
                    break;
                }
            }
        }

        mark = r->out ? r->out->len : 0;

        if ((top ? kept : n) && ai_cache_raw_put(r, ",", 1) != 0) {
            return -1;
        }

        m[n].key = key;
        m[n].klen = klen;
        m[n].start = r->out ? r->out->len : 0;
        value = r->p;

        if (ai_cache_raw_put(r, "\"", 1) != 0
            || ai_cache_raw_put(r, (const char *) key, klen) != 0
            || ai_cache_raw_put(r, "\":", 2) != 0
            || ai_cache_raw_value(r) != 0)
        {
            return -1;
        }

        if (r->depth == 1 && r->cap) {
            for (cap = r->cap; cap->name; cap++) {
                if (cap->name[0] == key[0]
                    && strncmp(cap->name, (const char *) key, klen) == 0
                    && cap->name[klen] == '\0')
                {
                    cap->start = value;
                    cap->end = r->p;
                }
            }
        }

        m[n].end = r->out ? r->out->len : 0;
        m[n].split = 0;

        if (top && r->out && *value == '['
            && r->elem > m[n].start
            && ((klen == 8 && memcmp(key, "messages", 8) == 0)
                || (klen == 6 && memcmp(key, "prompt", 6) == 0)
                || (klen == 5 && memcmp(key, "input", 5) == 0)))
        {
            m[n].split = r->elem - m[n].start;
        }

        if (top && r->out
            && (m[n].rank < 0
                || (m[n].end - m[n].start == klen + 7
                    && memcmp(r->out->data + m[n].end - 4, "null", 4) == 0)))
        {
            /* not part of the key: its value was read to be skipped */
            m[n].rank = -1;
            r->out->len = mark;

        } else {
            kept++;
        }

        n++;

        ai_cache_raw_ws(r);

        if (r->p == r->end) {
            return -1;
        }

        if (*r->p == ',') {
            r->p++;
            ai_cache_raw_ws(r);
            continue;
        }

        if (*r->p++ != '}') {
            return -1;
        }

        break;
    }

    *count = n;

    if (r->out == NULL) {
        /* only read: order and duplicates do not matter */
        return 0;
    }

    /* jansson keeps the last of duplicate keys; this reader gives up */

    sorted = 1;

    for (i = 1; i < n; i++) {
        for (j = 0; j < i; j++) {
            c = ai_cache_raw_member_cmp(&m[j], &m[i]);

            if (c == 0) {
                return -1;
            }
        }

        if (ai_cache_raw_member_cmp(&m[i - 1], &m[i]) > 0) {
            sorted = 0;
        }
    }

    if (top) {
        /* drop the skipped ones; the allow-list is in bytes order */
        for (i = 0, j = 0; i < n; i++) {
            if (m[i].rank >= 0) {
                m[j++] = m[i];
            }
        }

        n = j;
        sorted = 1;

        for (i = 1; i < n; i++) {
            if (m[i - 1].rank > m[i].rank) {
                sorted = 0;
            }
        }

        *count = n;
    }

    if (!sorted) {
        r->tmp->len = 0;

        if (ai_buf_append(r->tmp, r->out->data + obj, r->out->len - obj)
            != 0)
        {
            return -1;
        }

        for (i = 1; i < n; i++) {
            t = m[i];

            for (j = i; j > 0
                        && (top ? m[j - 1].rank > t.rank
                                : ai_cache_raw_member_cmp(&m[j - 1], &t) > 0);
                 j--)
            {
                m[j] = m[j - 1];
            }

            m[j] = t;
        }

        r->out->len = obj + 1;

        for (i = 0; i < n; i++) {
            if (i && ai_cache_raw_put(r, ",", 1) != 0) {
                return -1;
            }

            if (top && m[i].split) {
                r->split = r->out->len + m[i].split;
            }

            if (ai_buf_append(r->out, r->tmp->data + (m[i].start - obj),
                              m[i].end - m[i].start)
                != 0)
            {
                return -1;
            }
        }

    } else if (top) {
        for (i = 0; i < n; i++) {
            if (m[i].split) {
                r->split = m[i].start + m[i].split;
            }
        }
    }

    return ai_cache_raw_put(r, "}", 1);
}


static int
ai_cache_raw_value(ai_cache_raw_t *r)
{
    int                     rc, integer;
    size_t                  n, len;
    double                  x;
    const unsigned char    *tok;
    ai_cache_sink_t         k;
    ai_cache_raw_member_t   m[AI_CACHE_RAW_MEMBERS];

    if (r->p == r->end) {
        return -1;
    }

    switch (*r->p) {

    case '{':
        if (++r->depth > AI_CACHE_RAW_DEPTH) {
            return -1;
        }

        rc = ai_cache_raw_object(r, 0, m, &n);
        r->depth--;
        return rc;

    case '[':
        if (++r->depth > AI_CACHE_RAW_DEPTH) {
            return -1;
        }

        r->p++;

        if (ai_cache_raw_put(r, "[", 1) != 0) {
            return -1;
        }

        ai_cache_raw_ws(r);

        if (r->p < r->end && *r->p == ']') {
            r->p++;
            r->depth--;
            return ai_cache_raw_put(r, "]", 1);
        }

        for ( ;; ) {
            if (r->depth == 2 && r->out) {
                r->elem = r->out->len;
            }

            if (ai_cache_raw_value(r) != 0) {
                return -1;
            }

            ai_cache_raw_ws(r);

            if (r->p == r->end) {
                return -1;
            }

            if (*r->p == ',') {
                r->p++;
                ai_cache_raw_ws(r);

                if (ai_cache_raw_put(r, ",", 1) != 0) {
                    return -1;
                }

                continue;
            }

            if (*r->p++ != ']') {
                return -1;
            }

            r->depth--;
            return ai_cache_raw_put(r, "]", 1);
        }

    case '"':
        return ai_cache_raw_string(r);

    case 't':
        if (r->end - r->p < 4 || memcmp(r->p, "true", 4) != 0) {
            return -1;
        }

        r->p += 4;
        return ai_cache_raw_put(r, "true", 4);

    case 'f':
        if (r->end - r->p < 5 || memcmp(r->p, "false", 5) != 0) {
            return -1;
        }

        r->p += 5;
        return ai_cache_raw_put(r, "false", 5);

    case 'n':
        if (r->end - r->p < 4 || memcmp(r->p, "null", 4) != 0) {
            return -1;
        }

        r->p += 4;
        return ai_cache_raw_put(r, "null", 4);

    default:
        if (ai_cache_raw_number(r, &tok, &len, &integer) != 0) {
            return -1;
        }

        if (integer) {
            if (len == 2 && tok[0] == '-' && tok[1] == '0') {
                return ai_cache_raw_put(r, "0", 1);
            }

            return ai_cache_raw_put(r, (const char *) tok, len);
        }

        (void) ai_cache_raw_double(tok, len, &x);

        if (r->out == NULL) {
            /* as jansson: a real out of range is an error */
            return (x > 1.7976931348623157e308 || x < -1.7976931348623157e308)
                   ? -1 : 0;
        }

        k.write = ai_cache_buf_write;
        k.ctx = r->out;

        return ai_cache_put_real(&k, x);
    }
}


/* the policy's three members, as the top level's read left them */

static int
ai_cache_raw_policy(ai_cache_raw_cap_t *cap, int endpoint, int force)
{
    int                   integer;
    size_t                tlen;
    double                x;
    const unsigned char  *tok;
    ai_cache_raw_t        nr;

    if (ai_cache_endpoint_name(endpoint) == NULL) {
        return 0;
    }

    if (force || endpoint == AI_EP_EMBEDDINGS) {
        return 1;
    }

    /* cap: n, temperature, seed */

    memset(&nr, 0, sizeof(ai_cache_raw_t));

    /* n: absent, null or the number 1 */

    if (cap[0].start
        && !(cap[0].end - cap[0].start == 4
             && memcmp(cap[0].start, "null", 4) == 0))
    {
        nr.p = cap[0].start;
        nr.end = cap[0].end;

        if (ai_cache_raw_number(&nr, &tok, &tlen, &integer) != 0
            || nr.p != nr.end
            || ai_cache_raw_double(tok, tlen, &x) != 0 || x != 1.0)
        {
            return 0;
        }
    }

    if (cap[1].start) {
        nr.p = cap[1].start;
        nr.end = cap[1].end;

        if (ai_cache_raw_number(&nr, &tok, &tlen, &integer) == 0
            && nr.p == nr.end
            && ai_cache_raw_double(tok, tlen, &x) == 0 && x == 0.0)
        {
            return 1;
        }
    }

    if (cap[2].start) {
        nr.p = cap[2].start;
        nr.end = cap[2].end;

        if (ai_cache_raw_number(&nr, &tok, &tlen, &integer) == 0
            && nr.p == nr.end && integer)
        {
            return 1;
        }
    }

    return 0;
}


int
ai_cache_key_raw(const char *body, size_t len, int endpoint,
    int policy_endpoint, int force, const char *resolved_model,
    size_t mlen, const char *namespace, ai_buf_t *scratch, ai_buf_t *tmp,
    int *cacheable, unsigned char digest[AI_CACHE_KEY_LEN])
{
    size_t                  n;
    const char             *ep;
    ai_cache_sink_t         k;
    ai_cache_raw_t          r;
    ai_cache_raw_cap_t      cap[4];
    ai_cache_raw_member_t   m[AI_CACHE_RAW_MEMBERS];

    ep = ai_cache_endpoint_name(endpoint);

    memset(cap, 0, sizeof(cap));
    cap[0].name = "n";
    cap[1].name = "temperature";
    cap[2].name = "seed";

    if (ep == NULL || body == NULL || (resolved_model == NULL && mlen != 0)) {
        return -1;
    }

    scratch->len = 0;
    k.write = ai_cache_buf_write;
    k.ctx = scratch;

    if (ai_cache_put_str(&k, "{\"endpoint\":") != 0
        || ai_cache_put_string(&k, ep, strlen(ep)) != 0
        || ai_cache_put_str(&k, ",\"model\":") != 0
        || ai_cache_put_string(&k, resolved_model ? resolved_model : "",
                               mlen) != 0
        || ai_cache_put_str(&k, ",\"namespace\":") != 0
        || ai_cache_put_string(&k, namespace ? namespace : "",
                               namespace ? strlen(namespace) : 0) != 0
        || ai_cache_put_str(&k, ",\"request\":") != 0)
    {
        return -1;
    }

    r.p = (const unsigned char *) body;
    r.end = r.p + len;
    r.out = scratch;
    r.tmp = tmp;
    r.depth = 1;
    r.cap = cap;
    r.elem = 0;
    r.split = 0;

    ai_cache_raw_ws(&r);

    if (r.p == r.end || *r.p != '{'
        || ai_cache_raw_object(&r, 1, m, &n) != 0)
    {
        return -1;
    }

    ai_cache_raw_ws(&r);

    if (r.p != r.end
        || ai_cache_put_str(&k, ",\"v\":" AI_CACHE_KEY_VERSION_STR "}") != 0)
    {
        return -1;
    }

    *cacheable = ai_cache_raw_policy(cap, policy_endpoint, force);

    return ai_cache_digest((const unsigned char *) scratch->data,
                           scratch->len, r.split, digest);
}


/*
 * The SHA-256 of a canonical text, resumed where it can be.  Requests
 * that share all but their last message (one system prompt and many
 * user turns, an agent asking again with one more step) share the
 * canonical text up to that message, and SHA-256 reads its input in
 * order: the digest's state after that prefix is kept (per process, a
 * small direct-mapped table) with a copy of the prefix, and a text that
 * begins with exactly those bytes (compared in full) hashes only its
 * tail.  The digest is the same either way.  One digest context per
 * process, reused: not for concurrent threads.
 */

#define AI_CACHE_SNAPS     64
#define AI_CACHE_SNAP_MIN  512
#define AI_CACHE_SNAP_MAX  (64 * 1024)

typedef struct {
    EVP_MD_CTX     *md;
    unsigned char  *bytes;
    size_t          len;
    size_t          cap;
} ai_cache_snap_t;

static unsigned long  ai_cache_resumed, ai_cache_kept;


void
ai_cache_digest_stats(unsigned long *resumed, unsigned long *kept)
{
    *resumed = ai_cache_resumed;
    *kept = ai_cache_kept;
}


static uint64_t
ai_cache_load64(const unsigned char *p)
{
    uint64_t  w;

    memcpy(&w, p, 8);

    return w;
}


static int
ai_cache_digest(const unsigned char *t, size_t len, size_t split,
    unsigned char digest[AI_CACHE_KEY_LEN])
{
    uint64_t                h;
    unsigned int            dlen;
    unsigned char          *b;
    ai_cache_snap_t        *s;
    static EVP_MD_CTX      *md;
    static ai_cache_snap_t  snap[AI_CACHE_SNAPS];

    if (md == NULL) {
        md = EVP_MD_CTX_new();

        if (md == NULL) {
            return -1;
        }
    }

    if (split < AI_CACHE_SNAP_MIN || split > AI_CACHE_SNAP_MAX
        || split >= len)
    {
        split = 0;
    }

    s = NULL;

    if (split) {
        /* a few words of the prefix choose the slot; the bytes decide */
        h = (split ^ ai_cache_load64(t + 40)) * 0x9e3779b97f4a7c15ULL;
        h ^= ai_cache_load64(t + split / 4);
        h = (h ^ ai_cache_load64(t + split / 2)) * 0xbf58476d1ce4e5b9ULL;
        h ^= ai_cache_load64(t + split - 8);
        h *= 0x94d049bb133111ebULL;
        s = &snap[h >> 58];

        if (s->len == split && memcmp(s->bytes, t, split) == 0
            && EVP_MD_CTX_copy_ex(md, s->md) == 1)
        {
            ai_cache_resumed++;
            t += split;
            len -= split;
            goto tail;
        }
    }

    if (EVP_DigestInit_ex2(md, ai_cache_sha256(), NULL) != 1) {
        return -1;
    }

    if (s) {
        if (EVP_DigestUpdate(md, t, split) != 1) {
            return -1;
        }

        t += split;
        len -= split;

        /* this prefix replaces the slot's */

        s->len = 0;

        if (s->cap < split) {
            b = realloc(s->bytes, split);

            if (b) {
                s->bytes = b;
                s->cap = split;
            }
        }

        if (s->md == NULL) {
            s->md = EVP_MD_CTX_new();
        }

        if (s->cap >= split && s->md
            && EVP_MD_CTX_copy_ex(s->md, md) == 1)
        {
            memcpy(s->bytes, t - split, split);
            s->len = split;
            ai_cache_kept++;
        }
    }

tail:

    if (EVP_DigestUpdate(md, t, len) != 1
        || EVP_DigestFinal_ex(md, digest, &dlen) != 1)
    {
        return -1;
    }

    return 0;
}


/*
 * ai_cache_storable() for chat and completions answers without a tree:
 * the whole body is read by the raw reader (which checks its grammar),
 * then the members that decide are found by their spans.  Bodies that
 * reader leaves alone, and embeddings, go to the tree version.
 */

static int
ai_cache_raw_token_in(const unsigned char *p, size_t len, const char *const *set)
{
    size_t  n;

    if (len < 2 || p[0] != '"' || p[len - 1] != '"') {
        return 0;
    }

    for ( /* void */ ; *set; set++) {
        n = strlen(*set);

        if (n == len - 2 && memcmp(p + 1, *set, n) == 0) {
            return 1;
        }
    }

    return 0;
}


int
ai_cache_storable_raw(const char *body, size_t len, int endpoint)
{
    const unsigned char   *b;
    ai_cache_raw_t         r;
    ai_cache_raw_cap_t     cap[4];
    static const char     *const finish[] = {
        "stop", "length", "tool_calls", "function_call", NULL
    };
    static const char     *const chat[] = { "chat.completion", NULL };
    static const char     *const text[] = { "text_completion", NULL };

    if (endpoint != AI_EP_CHAT && endpoint != AI_EP_COMPLETIONS) {
        return ai_cache_storable(body, len, endpoint);
    }

    b = (const unsigned char *) body;

    memset(cap, 0, sizeof(cap));
    cap[0].name = "error";
    cap[1].name = "object";
    cap[2].name = "choices";

    r.p = b;
    r.end = b + len;
    r.out = NULL;
    r.tmp = NULL;
    r.depth = 0;
    r.cap = cap;
    r.elem = 0;
    r.split = 0;

    ai_cache_raw_ws(&r);

    if (r.p == r.end || *r.p != '{' || ai_cache_raw_value(&r) != 0) {
        return ai_cache_storable(body, len, endpoint);
    }

    ai_cache_raw_ws(&r);

    if (r.p != r.end) {
        return 0;
    }

    if (cap[0].start
        && !(cap[0].end - cap[0].start == 4
             && memcmp(cap[0].start, "null", 4) == 0))
    {
        return 0;
    }

    if (cap[1].start
        && !ai_cache_raw_token_in(cap[1].start, cap[1].end - cap[1].start,
                                  endpoint == AI_EP_CHAT ? chat : text))
    {
        return 0;
    }

    if (cap[2].start == NULL || cap[2].start[0] != '[') {
        return 0;
    }

    /* each choice, read again for its two members */

    r.p = cap[2].start + 1;
    r.end = cap[2].end;
    r.depth = 0;
    r.cap = cap;

    ai_cache_raw_ws(&r);

    if (r.p < r.end && *r.p == ']') {
        return 0;                               /* no choice */
    }

    for ( ;; ) {
        memset(cap, 0, sizeof(cap));
        cap[0].name = "finish_reason";
        cap[1].name = endpoint == AI_EP_CHAT ? "message" : "text";

        if (r.p == r.end || *r.p != '{' || ai_cache_raw_value(&r) != 0) {
            return 0;
        }

        if (cap[0].start == NULL
            || !ai_cache_raw_token_in(cap[0].start,
                                      cap[0].end - cap[0].start, finish)
            || cap[1].start == NULL
            || cap[1].start[0] != (endpoint == AI_EP_CHAT ? '{' : '"'))
        {
            return 0;
        }

        ai_cache_raw_ws(&r);

        if (r.p == r.end) {
            return 0;
        }

        if (*r.p == ',') {
            r.p++;
            ai_cache_raw_ws(&r);
            continue;
        }

        return *r.p == ']';
    }
}


/* ---- policy ---- */

int
ai_cache_cacheable(json_t *req, int endpoint, int force)
{
    json_t  *t, *seed, *n;

    if (!json_is_object(req) || ai_cache_endpoint_name(endpoint) == NULL) {
        return 0;
    }

    if (force || endpoint == AI_EP_EMBEDDINGS) {
        return 1;
    }

    n = json_object_get(req, "n");

    if (n != NULL && !json_is_null(n)
        && !(json_is_number(n) && json_number_value(n) == 1.0))
    {
        return 0;
    }

    /* OpenAI's default temperature is 1: absent is not deterministic */

    t = json_object_get(req, "temperature");

    if (json_is_number(t) && json_number_value(t) == 0.0) {
        return 1;
    }

    seed = json_object_get(req, "seed");

    return json_is_integer(seed);
}


ai_cache_control_t
ai_cache_parse_control(const char *h, size_t len)
{
    size_t               i, start, name_end, vs, ve;
    long                 age;
    ai_cache_control_t   cc;

    cc.max_age = -1;
    cc.no_cache = 0;
    cc.no_store = 0;

    if (h == NULL) {
        return cc;
    }

    i = 0;

    while (i < len) {

        /* one directive: name [ "=" ( token | quoted-string ) ] */

        while (i < len && (h[i] == ' ' || h[i] == '\t' || h[i] == ',')) {
            i++;
        }

        start = i;

        while (i < len && h[i] != '=' && h[i] != ',' && h[i] != ' '
               && h[i] != '\t')
        {
            i++;
        }

        name_end = i;

        while (i < len && (h[i] == ' ' || h[i] == '\t')) {
            i++;
        }

        vs = ve = i;

        if (i < len && h[i] == '=') {
            i++;

            while (i < len && (h[i] == ' ' || h[i] == '\t')) {
                i++;
            }

            if (i < len && h[i] == '"') {
                vs = ++i;

                while (i < len && h[i] != '"') {
                    i++;
                }

                ve = i;

                if (i < len) {
                    i++;
                }

            } else {
                vs = i;

                while (i < len && h[i] != ',' && h[i] != ' '
                       && h[i] != '\t')
                {
                    i++;
                }

                ve = i;
            }
        }

        while (i < len && h[i] != ',') {
            i++;
        }

        if (ai_cache_token_is(h + start, name_end - start, "no-cache")) {
            cc.no_cache = 1;

        } else if (ai_cache_token_is(h + start, name_end - start,
                                     "no-store"))
        {
            cc.no_store = 1;

        } else if (ai_cache_token_is(h + start, name_end - start, "max-age")
                   && ve > vs)
        {
            age = 0;

            for ( /* void */ ; vs < ve; vs++) {
                if (h[vs] < '0' || h[vs] > '9') {
                    age = -1;
                    break;
                }

                if (age < INT_MAX) {
                    age = age * 10 + (h[vs] - '0');
                }
            }

            if (age >= 0) {
                cc.max_age = age < INT_MAX ? age : INT_MAX;
            }
        }
    }

    return cc;
}


int
ai_cache_parse_force(const char *h, size_t len)
{
    while (len && (h[0] == ' ' || h[0] == '\t')) {
        h++;
        len--;
    }

    while (len && (h[len - 1] == ' ' || h[len - 1] == '\t')) {
        len--;
    }

    return ai_cache_token_is(h, len, "1")
           || ai_cache_token_is(h, len, "true")
           || ai_cache_token_is(h, len, "yes")
           || ai_cache_token_is(h, len, "on");
}


static int
ai_cache_token_is(const char *p, size_t n, const char *name)
{
    size_t  i;
    char    c;

    if (p == NULL || n != strlen(name)) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        c = p[i];

        if (c >= 'A' && c <= 'Z') {
            c = (char) (c - 'A' + 'a');
        }

        if (c != name[i]) {
            return 0;
        }
    }

    return 1;
}


/* ---- assembly of a streamed answer ---- */

typedef struct {
    long          index;
    char         *id;
    char         *type;
    ai_buf_t      name;
    ai_buf_t      args;
} ai_cache_tool_t;

struct ai_cache_choice_s {
    long               index;
    char              *role;
    char              *finish;
    ai_buf_t           content;     /* chat content, or completion text */
    ai_buf_t           refusal;
    ai_buf_t           fname;       /* legacy function_call */
    ai_buf_t           fargs;
    json_t            *logprobs;    /* arrays concatenated */
    ai_cache_tool_t   *tools;
    size_t             ntools;
    unsigned           has_content:1;
    unsigned           has_refusal:1;
    unsigned           has_fcall:1;
};

struct ai_cache_asm_s {
    int                  endpoint;
    ai_sse_t             sse;
    char                *id;
    char                *model;
    char                *fingerprint;
    json_int_t           created;
    json_t              *usage;
    ai_cache_choice_t   *choices;
    size_t               nchoices;
    size_t               bytes;      /* event data taken in */
    size_t               max;
    unsigned             has_created:1;
    unsigned             done:1;     /* "[DONE]" seen */
    unsigned             failed:1;
    unsigned             tree_only:1;
    ai_jdoc_t            doc;        /* the chunk read without a tree */
    ai_buf_t             tmp;
    ai_jlike_t           like;       /* the last chunk around its text */
    ai_cache_choice_t   *text_of;    /* whose text that was */
};


ai_cache_asm_t *
ai_cache_asm_new(int endpoint)
{
    ai_cache_asm_t  *a;

    if (endpoint != AI_EP_CHAT && endpoint != AI_EP_COMPLETIONS) {
        return NULL;
    }

    a = calloc(1, sizeof(ai_cache_asm_t));

    if (a == NULL) {
        return NULL;
    }

    a->endpoint = endpoint;
    a->max = AI_CACHE_ASM_MAX;
    ai_sse_init(&a->sse, AI_SSE_MAX_EVENT);

    return a;
}


void
ai_cache_asm_limit(ai_cache_asm_t *a, size_t max_bytes)
{
    a->max = max_bytes;
}


int
ai_cache_asm_feed(ai_cache_asm_t *a, const char *p, size_t n)
{
    if (a->failed) {
        return -1;
    }

    if (ai_sse_feed(&a->sse, p, n, ai_cache_on_event, a) != 0) {
        a->failed = 1;
    }

    if (a->failed) {
        /* what was gathered is useless now: give the memory back early */
        ai_sse_free(&a->sse);
        return -1;
    }

    return 0;
}


static int
ai_cache_on_event(void *ctx, const ai_sse_event_t *ev)
{
    int              rc;
    json_t          *root;
    ai_cache_asm_t  *a = ctx;

    if (a->failed) {
        return -1;
    }

    if (ev->event_len && strcmp(ev->event, "message") != 0) {
        if (strcmp(ev->event, "error") == 0) {
            a->failed = 1;
            return -1;
        }

        return 0;
    }

    if (a->done) {
        /* nothing may follow "[DONE]" */
        a->failed = 1;
        return -1;
    }

    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        a->done = 1;
        return 0;
    }

    a->bytes += ev->data_len;

    if (a->bytes > a->max) {
        a->failed = 1;
        return -1;
    }

    rc = a->tree_only ? 1 : ai_cache_asm_chunk_like(a, ev->data,
                                                     ev->data_len);

    if (rc == 1 && !a->tree_only) {
        rc = ai_cache_asm_chunk_raw(a, ev->data, ev->data_len);
    }

    if (rc == 1) {
        root = json_loadb(ev->data, ev->data_len, 0, NULL);

        if (!json_is_object(root)) {
            json_decref(root);
            a->failed = 1;
            return -1;
        }

        rc = ai_cache_asm_chunk(a, root);
        json_decref(root);
    }

    if (rc != 0) {
        a->failed = 1;
        return -1;
    }

    return 0;
}


static int
ai_cache_set_str(char **dst, json_t *v)
{
    char    *s;
    size_t   n;

    if (!json_is_string(v)) {
        return 0;
    }

    n = json_string_length(v);
    s = malloc(n + 1);

    if (s == NULL) {
        return -1;
    }

    memcpy(s, json_string_value(v), n + 1);

    free(*dst);
    *dst = s;

    return 0;
}


static int
ai_cache_append(ai_buf_t *b, json_t *v)
{
    if (json_string_length(v) == 0) {
        /* an empty string still allocates, so that data is never NULL */
        return ai_buf_append(b, "", 0);
    }

    return ai_buf_append(b, json_string_value(v), json_string_length(v));
}


static int
ai_cache_asm_chunk(ai_cache_asm_t *a, json_t *root)
{
    size_t   i;
    json_t  *v, *choices;

    v = json_object_get(root, "error");

    if (v != NULL && !json_is_null(v)) {
        return -1;
    }

    /* a chat stream is not a completions stream, nor the other way */

    v = json_object_get(root, "object");

    if (json_is_string(v)
        && strcmp(json_string_value(v),
                  a->endpoint == AI_EP_CHAT ? "chat.completion.chunk"
                                            : "text_completion") != 0)
    {
        return -1;
    }

    if (a->id == NULL && ai_cache_set_str(&a->id, json_object_get(root, "id"))
        != 0)
    {
        return -1;
    }

    if (ai_cache_set_str(&a->model, json_object_get(root, "model")) != 0
        || ai_cache_set_str(&a->fingerprint,
                            json_object_get(root, "system_fingerprint"))
           != 0)
    {
        return -1;
    }

    v = json_object_get(root, "created");

    if (json_is_integer(v)) {
        a->created = json_integer_value(v);
        a->has_created = 1;
    }

    v = json_object_get(root, "usage");

    if (json_is_object(v)) {
        json_decref(a->usage);
        a->usage = json_incref(v);
    }

    choices = json_object_get(root, "choices");

    if (choices == NULL || json_is_null(choices)) {
        return 0;
    }

    if (!json_is_array(choices)) {
        return -1;
    }

    for (i = 0; i < json_array_size(choices); i++) {
        if (ai_cache_asm_choice(a, json_array_get(choices, i)) != 0) {
            return -1;
        }
    }

    return 0;
}


/* the choice of that index, new or seen before; NULL: refused */

static ai_cache_choice_t *
ai_cache_asm_slot(ai_cache_asm_t *a, long index)
{
    size_t              i;
    ai_cache_choice_t  *ch;

    if (index < 0 || index >= AI_CACHE_MAX_CHOICES) {
        return NULL;
    }

    for (i = 0; i < a->nchoices; i++) {
        if (a->choices[i].index == index) {
            return &a->choices[i];
        }
    }

    ch = realloc(a->choices, (a->nchoices + 1) * sizeof(*ch));

    if (ch == NULL) {
        return NULL;
    }

    a->choices = ch;
    ch = &a->choices[a->nchoices++];
    memset(ch, 0, sizeof(*ch));
    ch->index = index;

    return ch;
}


/*
 * A chunk read from its bytes, no tree, for the common shapes (text
 * deltas, a role, a finish reason, the usage).  Returns 0 when taken, -1
 * when the stream cannot be stored, 1 for a chunk left to the tree
 * (escaped keys or an escaped "object", tool or function calls,
 * logprobs, anything the span index refuses): the same state either way.
 */

static int
ai_cache_asm_chunk_raw(ai_cache_asm_t *a, const char *data, size_t len)
{
    int                  rc;
    long                 index;
    json_t              *u;
    uint32_t             v, choices, c, d, k;
    ai_jdoc_t           *doc;
    ai_cache_choice_t   *ch;

    doc = &a->doc;
    ai_jlike_forget(&a->like);

    if (ai_jdoc_parse(doc, data, len, 0) != 0 || doc->key_escaped
        || ai_jdoc_type(doc, AI_JDOC_ROOT) != AI_JT_OBJECT)
    {
        return 1;
    }

    v = ai_jdoc_gets(doc, AI_JDOC_ROOT, "object");

    if (ai_jdoc_type(doc, v) == AI_JT_STRING && doc->tok[v].escaped) {
        return 1;
    }

    choices = ai_jdoc_gets(doc, AI_JDOC_ROOT, "choices");

    /* the shapes left to the tree, found before anything changes */

    if (ai_jdoc_type(doc, choices) == AI_JT_ARRAY) {
        for (k = 0, c = choices + 1; k < doc->tok[choices].count;
             k++, c = doc->tok[c].next)
        {
            if (ai_jdoc_type(doc, c) != AI_JT_OBJECT) {
                continue;
            }

            if (ai_jdoc_type(doc, ai_jdoc_gets(doc, c, "logprobs"))
                == AI_JT_OBJECT)
            {
                return 1;
            }

            d = ai_jdoc_gets(doc, c, "delta");

            if (a->endpoint == AI_EP_CHAT
                && ai_jdoc_type(doc, d) == AI_JT_OBJECT)
            {
                v = ai_jdoc_gets(doc, d, "tool_calls");

                if ((ai_jdoc_type(doc, v) != AI_JT_NONE
                     && ai_jdoc_type(doc, v) != AI_JT_NULL)
                    || ai_jdoc_type(doc, ai_jdoc_gets(doc, d,
                                                      "function_call"))
                       == AI_JT_OBJECT)
                {
                    return 1;
                }
            }
        }
    }

    /* then as ai_cache_asm_chunk() does with a tree */

    v = ai_jdoc_gets(doc, AI_JDOC_ROOT, "error");

    if (ai_jdoc_type(doc, v) != AI_JT_NONE
        && ai_jdoc_type(doc, v) != AI_JT_NULL)
    {
        return -1;
    }

    v = ai_jdoc_gets(doc, AI_JDOC_ROOT, "object");

    if (ai_jdoc_type(doc, v) == AI_JT_STRING
        && !(a->endpoint == AI_EP_CHAT
             ? ai_jdoc_iss(doc, v, "chat.completion.chunk")
             : ai_jdoc_iss(doc, v, "text_completion")))
    {
        return -1;
    }

    if ((a->id == NULL
         && ai_cache_set_raw(a, &a->id, ai_jdoc_gets(doc, AI_JDOC_ROOT, "id"))
            != 0)
        || ai_cache_set_raw(a, &a->model,
                            ai_jdoc_gets(doc, AI_JDOC_ROOT, "model")) != 0
        || ai_cache_set_raw(a, &a->fingerprint,
                            ai_jdoc_gets(doc, AI_JDOC_ROOT,
                                         "system_fingerprint")) != 0)
    {
        return -1;
    }

    v = ai_jdoc_gets(doc, AI_JDOC_ROOT, "created");

    if (ai_jdoc_type(doc, v) == AI_JT_INTEGER) {
        a->created = ai_jdoc_int(doc, v);
        a->has_created = 1;
    }

    v = ai_jdoc_gets(doc, AI_JDOC_ROOT, "usage");

    if (ai_jdoc_type(doc, v) == AI_JT_OBJECT) {
        /* once per stream: kept as a tree for the answer's build */
        u = json_loadb(data + doc->tok[v].start,
                       doc->tok[v].end - doc->tok[v].start, 0, NULL);

        if (u == NULL) {
            return -1;
        }

        json_decref(a->usage);
        a->usage = u;
    }

    if (ai_jdoc_type(doc, choices) == AI_JT_NONE
        || ai_jdoc_type(doc, choices) == AI_JT_NULL)
    {
        return 0;
    }

    if (ai_jdoc_type(doc, choices) != AI_JT_ARRAY) {
        return -1;
    }

    for (k = 0, c = choices + 1; k < doc->tok[choices].count;
         k++, c = doc->tok[c].next)
    {
        if (ai_jdoc_type(doc, c) != AI_JT_OBJECT) {
            return -1;
        }

        v = ai_jdoc_gets(doc, c, "index");
        index = ai_jdoc_type(doc, v) == AI_JT_INTEGER
                ? (long) ai_jdoc_int(doc, v) : 0;

        ch = ai_cache_asm_slot(a, index);

        if (ch == NULL) {
            return -1;
        }

        if (a->endpoint == AI_EP_CHAT) {
            d = ai_jdoc_gets(doc, c, "delta");

            if (ai_jdoc_type(doc, d) == AI_JT_OBJECT) {
                if (ai_cache_set_raw(a, &ch->role,
                                     ai_jdoc_gets(doc, d, "role")) != 0)
                {
                    return -1;
                }

                rc = ai_cache_append_raw(doc, ai_jdoc_gets(doc, d, "content"),
                                         &ch->content);
                if (rc < 0) {
                    return -1;
                }

                ch->has_content |= rc;

                rc = ai_cache_append_raw(doc, ai_jdoc_gets(doc, d, "refusal"),
                                         &ch->refusal);
                if (rc < 0) {
                    return -1;
                }

                ch->has_refusal |= rc;
            }

        } else {
            rc = ai_cache_append_raw(doc, ai_jdoc_gets(doc, c, "text"),
                                     &ch->content);
            if (rc < 0) {
                return -1;
            }

            ch->has_content |= rc;
        }

        if (ai_cache_set_raw(a, &ch->finish,
                             ai_jdoc_gets(doc, c, "finish_reason")) != 0)
        {
            return -1;
        }
    }

    /* one choice's text: the next chunk may differ only in that text */

    if (doc->tok[choices].count == 1) {
        c = choices + 1;
        d = ai_jdoc_gets(doc, c, "delta");
        v = a->endpoint == AI_EP_CHAT ? ai_jdoc_gets(doc, d, "content")
                                      : ai_jdoc_gets(doc, c, "text");

        /* (a refusal beside it would be appended again: not such a one) */

        if (ai_jdoc_type(doc, v) == AI_JT_STRING
            && (a->endpoint != AI_EP_CHAT
                || ai_jdoc_type(doc, ai_jdoc_gets(doc, d, "refusal"))
                   != AI_JT_STRING))
        {
            if (ai_jlike_keep(&a->like, doc, v) != 0) {
                return -1;
            }

            a->text_of = ch;
        }
    }

    return 0;
}


/*
 * A chunk that is the last one's bytes around another text (ai_jlike_t):
 * everything else it says was already taken (the same id, model,
 * finish, usage), so only its text is appended.  Returns 0 when taken, 1
 * when not such a chunk, -1 on memory exhaustion.
 */

static int
ai_cache_asm_chunk_like(ai_cache_asm_t *a, const char *data, size_t len)
{
    if (!ai_jlike_match(&a->like, &a->doc, data, len)) {
        return 1;
    }

    return ai_cache_append_raw(&a->doc, AI_JDOC_ROOT, &a->text_of->content)
           < 0 ? -1 : 0;
}


/* ai_cache_set_str() from string token v; the same string is kept */

static int
ai_cache_set_raw(ai_cache_asm_t *a, char **dst, uint32_t v)
{
    char  *s;

    if (ai_jdoc_type(&a->doc, v) != AI_JT_STRING) {
        return 0;
    }

    a->tmp.len = 0;

    if (ai_jdoc_decode(&a->doc, v, &a->tmp) != 0
        || ai_buf_append(&a->tmp, "", 1) != 0)
    {
        return -1;
    }

    if (*dst && strcmp(*dst, a->tmp.data) == 0) {
        return 0;
    }

    s = malloc(a->tmp.len);

    if (s == NULL) {
        return -1;
    }

    memcpy(s, a->tmp.data, a->tmp.len);

    free(*dst);
    *dst = s;

    return 0;
}


/* ai_cache_append() from string token v: 1, or 0 when v is not one */

static int
ai_cache_append_raw(ai_jdoc_t *doc, uint32_t v, ai_buf_t *b)
{
    if (ai_jdoc_type(doc, v) != AI_JT_STRING) {
        return 0;
    }

    /* an empty string still allocates, so that data is never NULL */

    if ((ai_jdoc_str_len(doc, v) == 0 ? ai_buf_append(b, "", 0)
                                      : ai_jdoc_decode(doc, v, b))
        != 0)
    {
        return -1;
    }

    return 1;
}


static int
ai_cache_asm_choice(ai_cache_asm_t *a, json_t *c)
{
    long                 index;
    json_t              *v;
    ai_cache_choice_t   *ch;

    if (!json_is_object(c)) {
        return -1;
    }

    v = json_object_get(c, "index");
    index = json_is_integer(v) ? (long) json_integer_value(v) : 0;

    ch = ai_cache_asm_slot(a, index);

    if (ch == NULL) {
        return -1;
    }

    if (a->endpoint == AI_EP_CHAT) {
        v = json_object_get(c, "delta");

        if (json_is_object(v) && ai_cache_asm_delta(ch, v) != 0) {
            return -1;
        }

    } else {
        v = json_object_get(c, "text");

        if (json_is_string(v)) {
            ch->has_content = 1;

            if (ai_cache_append(&ch->content, v) != 0) {
                return -1;
            }
        }
    }

    v = json_object_get(c, "logprobs");

    if (json_is_object(v) && ai_cache_merge_logprobs(ch, v) != 0) {
        return -1;
    }

    return ai_cache_set_str(&ch->finish, json_object_get(c, "finish_reason"));
}


static int
ai_cache_asm_delta(ai_cache_choice_t *ch, json_t *delta)
{
    size_t   i;
    json_t  *v, *f;

    if (ai_cache_set_str(&ch->role, json_object_get(delta, "role")) != 0) {
        return -1;
    }

    v = json_object_get(delta, "content");

    if (json_is_string(v)) {
        ch->has_content = 1;

        if (ai_cache_append(&ch->content, v) != 0) {
            return -1;
        }
    }

    v = json_object_get(delta, "refusal");

    if (json_is_string(v)) {
        ch->has_refusal = 1;

        if (ai_cache_append(&ch->refusal, v) != 0) {
            return -1;
        }
    }

    v = json_object_get(delta, "function_call");

    if (json_is_object(v)) {
        ch->has_fcall = 1;
        f = json_object_get(v, "name");

        if (json_is_string(f) && ai_cache_append(&ch->fname, f) != 0) {
            return -1;
        }

        f = json_object_get(v, "arguments");

        if (json_is_string(f) && ai_cache_append(&ch->fargs, f) != 0) {
            return -1;
        }
    }

    v = json_object_get(delta, "tool_calls");

    if (v == NULL || json_is_null(v)) {
        return 0;
    }

    if (!json_is_array(v)) {
        return -1;
    }

    for (i = 0; i < json_array_size(v); i++) {
        if (ai_cache_asm_tool(ch, json_array_get(v, i), i) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Tool calls merge by "index", as OpenAI's own SDKs do: the id and type
 * come once, the name and the arguments are concatenated.
 */

static int
ai_cache_asm_tool(ai_cache_choice_t *ch, json_t *tc, size_t pos)
{
    long              index;
    size_t            i;
    json_t           *v, *f;
    ai_cache_tool_t  *t, *nt;

    if (!json_is_object(tc)) {
        return -1;
    }

    v = json_object_get(tc, "index");
    index = json_is_integer(v) ? (long) json_integer_value(v) : (long) pos;

    if (index < 0 || index >= AI_CACHE_MAX_TOOLS) {
        return -1;
    }

    t = NULL;

    for (i = 0; i < ch->ntools; i++) {
        if (ch->tools[i].index == index) {
            t = &ch->tools[i];
            break;
        }
    }

    if (t == NULL) {
        nt = realloc(ch->tools, (ch->ntools + 1) * sizeof(*nt));

        if (nt == NULL) {
            return -1;
        }

        ch->tools = nt;
        t = &ch->tools[ch->ntools++];
        memset(t, 0, sizeof(*t));
        t->index = index;
    }

    if (t->id == NULL && ai_cache_set_str(&t->id, json_object_get(tc, "id"))
        != 0)
    {
        return -1;
    }

    if (ai_cache_set_str(&t->type, json_object_get(tc, "type")) != 0) {
        return -1;
    }

    f = json_object_get(tc, "function");

    if (!json_is_object(f)) {
        return 0;
    }

    v = json_object_get(f, "name");

    if (json_is_string(v) && ai_cache_append(&t->name, v) != 0) {
        return -1;
    }

    v = json_object_get(f, "arguments");

    if (json_is_string(v) && ai_cache_append(&t->args, v) != 0) {
        return -1;
    }

    return 0;
}


/*
 * Log probabilities come per chunk as objects of arrays (chat:
 * {"content":[...],"refusal":[...]}; completions: {"tokens":[...],
 * "token_logprobs":[...], ...}): the arrays are concatenated.
 */

static int
ai_cache_merge_logprobs(ai_cache_choice_t *ch, json_t *lp)
{
    json_t      *v, *acc;
    const char  *key;

    if (ch->logprobs == NULL) {
        ch->logprobs = json_deep_copy(lp);
        return ch->logprobs ? 0 : -1;
    }

    json_object_foreach(lp, key, v) {
        acc = json_object_get(ch->logprobs, key);

        if (json_is_array(acc) && json_is_array(v)) {
            if (json_array_extend(acc, v) != 0) {
                return -1;
            }

        } else if (acc == NULL || json_is_null(acc)) {
            if (json_object_set_new(ch->logprobs, key, json_deep_copy(v))
                != 0)
            {
                return -1;
            }
        }
    }

    return 0;
}


int
ai_cache_asm_finish(ai_cache_asm_t *a, ai_buf_t *out_json)
{
    int      rc;
    size_t   i;
    json_t  *root;

    /* an event the stream ended without a blank line after still counts */

    if (a->failed || ai_sse_end(&a->sse, ai_cache_on_event, a) != 0
        || a->failed || !a->done || a->nchoices == 0)
    {
        return 0;
    }

    for (i = 0; i < a->nchoices; i++) {
        if (!ai_cache_finish_ok(a->choices[i].finish)) {
            return 0;
        }
    }

    if (!a->tree_only) {
        rc = ai_cache_asm_write(a, out_json);

        if (rc != 1) {
            return rc == 0 ? 1 : -1;
        }
    }

    root = ai_cache_asm_build(a);

    if (root == NULL) {
        return -1;
    }

    rc = ai_buf_append_json(out_json, root);
    json_decref(root);

    return rc == 0 ? 1 : -1;
}


/* a string member, "name":"value" escaped as jansson dumps it */

static int
ai_cache_put_member(ai_buf_t *out, const char *name, const char *s,
    size_t len)
{
    return ai_buf_append_str(out, name) != 0
           || ai_buf_append(out, "\"", 1) != 0
           || ai_buf_append_jstr(out, s, len) != 0
           || ai_buf_append(out, "\"", 1) != 0 ? -1 : 0;
}


/*
 * The common answer (text, a role, a refusal; no tool or function call,
 * no logprobs) written as ai_cache_asm_build() and jansson's compact dump
 * would write it, without the tree: 0, -1 on memory exhaustion, 1 for an
 * answer left to the tree.  The unit tests compare the two.
 */

static int
ai_cache_asm_write(ai_cache_asm_t *a, ai_buf_t *out)
{
    int                 chat;
    size_t              i, start;
    ai_cache_choice_t  *ch;

    for (i = 0; i < a->nchoices; i++) {
        ch = &a->choices[i];

        if (ch->logprobs || ch->has_fcall || ch->ntools) {
            return 1;
        }
    }

    chat = (a->endpoint == AI_EP_CHAT);
    start = out->len;

    qsort(a->choices, a->nchoices, sizeof(ai_cache_choice_t),
          ai_cache_choice_cmp);

    if (ai_cache_put_member(out, "{\"id\":", a->id ? a->id : "",
                            a->id ? strlen(a->id) : 0) != 0
        || ai_buf_append_str(out, chat ? ",\"object\":\"chat.completion\""
                                       : ",\"object\":\"text_completion\"")
           != 0
        || ai_buf_append_str(out, ",\"created\":") != 0
        || ai_buf_append_int(out, a->has_created ? a->created : 0) != 0
        || ai_cache_put_member(out, ",\"model\":", a->model ? a->model : "",
                               a->model ? strlen(a->model) : 0) != 0
        || ai_buf_append_str(out, ",\"choices\":[") != 0)
    {
        goto failed;
    }

    for (i = 0; i < a->nchoices; i++) {
        ch = &a->choices[i];

        if (ai_buf_append_str(out, i ? ",{\"index\":" : "{\"index\":") != 0
            || ai_buf_append_int(out, ch->index) != 0)
        {
            goto failed;
        }

        if (chat) {
            if (ai_cache_put_member(out, ",\"message\":{\"role\":",
                                    ch->role ? ch->role : "assistant",
                                    strlen(ch->role ? ch->role
                                                    : "assistant")) != 0
                || (ch->has_content
                    ? ai_cache_put_member(out, ",\"content\":",
                                          ch->content.data
                                          ? ch->content.data : "",
                                          ch->content.len)
                    : ai_buf_append_str(out, ",\"content\":null")) != 0
                || (ch->has_refusal
                    && ai_cache_put_member(out, ",\"refusal\":",
                                           ch->refusal.data
                                           ? ch->refusal.data : "",
                                           ch->refusal.len) != 0)
                || ai_buf_append(out, "}", 1) != 0)
            {
                goto failed;
            }

        } else if (ai_cache_put_member(out, ",\"text\":",
                                       ch->content.data
                                       ? ch->content.data : "",
                                       ch->content.len) != 0)
        {
            goto failed;
        }

        if (ai_cache_put_member(out, ",\"logprobs\":null,\"finish_reason\":",
                                ch->finish, strlen(ch->finish)) != 0
            || ai_buf_append(out, "}", 1) != 0)
        {
            goto failed;
        }
    }

    if (ai_buf_append(out, "]", 1) != 0
        || (a->usage
            && (ai_buf_append_str(out, ",\"usage\":") != 0
                || ai_buf_append_json(out, a->usage) != 0))
        || (a->fingerprint
            && ai_cache_put_member(out, ",\"system_fingerprint\":",
                                   a->fingerprint, strlen(a->fingerprint))
               != 0)
        || ai_buf_append(out, "}", 1) != 0)
    {
        goto failed;
    }

    return 0;

failed:

    out->len = start;

    return -1;
}


static int
ai_cache_choice_cmp(const void *x, const void *y)
{
    const ai_cache_choice_t  *a = x, *b = y;

    return (a->index > b->index) - (a->index < b->index);
}


static int
ai_cache_tool_cmp(const void *x, const void *y)
{
    const ai_cache_tool_t  *a = x, *b = y;

    return (a->index > b->index) - (a->index < b->index);
}


static json_t *
ai_cache_bufstr(ai_buf_t *b)
{
    return json_stringn(b->data ? b->data : "", b->len);
}


static json_t *
ai_cache_asm_build(ai_cache_asm_t *a)
{
    int                 chat, rc;
    size_t              i;
    json_t             *root, *choices, *c;
    ai_cache_choice_t  *ch;

    chat = (a->endpoint == AI_EP_CHAT);

    root = json_object();
    choices = json_array();

    if (root == NULL || choices == NULL) {
        json_decref(root);
        json_decref(choices);
        return NULL;
    }

    rc = json_object_set_new(root, "id", json_string(a->id ? a->id : ""));
    rc |= json_object_set_new(root, "object", json_string(
                                  chat ? "chat.completion"
                                       : "text_completion"));
    rc |= json_object_set_new(root, "created",
                              json_integer(a->has_created ? a->created : 0));
    rc |= json_object_set_new(root, "model",
                              json_string(a->model ? a->model : ""));
    rc |= json_object_set_new(root, "choices", choices);

    qsort(a->choices, a->nchoices, sizeof(ai_cache_choice_t),
          ai_cache_choice_cmp);

    for (i = 0; i < a->nchoices && rc == 0; i++) {
        ch = &a->choices[i];
        c = json_object();

        if (c == NULL || json_array_append_new(choices, c) != 0) {
            rc = -1;
            break;
        }

        rc |= json_object_set_new(c, "index", json_integer(ch->index));

        if (chat) {
            rc |= json_object_set_new(c, "message", ai_cache_asm_message(ch));

        } else {
            rc |= json_object_set_new(c, "text", ai_cache_bufstr(&ch->content));
        }

        rc |= json_object_set(c, "logprobs",
                              ch->logprobs ? ch->logprobs : json_null());
        rc |= json_object_set_new(c, "finish_reason", json_string(ch->finish));
    }

    if (a->usage) {
        rc |= json_object_set(root, "usage", a->usage);
    }

    if (a->fingerprint) {
        rc |= json_object_set_new(root, "system_fingerprint",
                                  json_string(a->fingerprint));
    }

    if (rc != 0) {
        json_decref(root);
        return NULL;
    }

    return root;
}


static json_t *
ai_cache_asm_message(ai_cache_choice_t *ch)
{
    int               rc;
    size_t            j;
    json_t           *msg, *calls, *t;
    ai_cache_tool_t  *tool;

    msg = json_object();

    if (msg == NULL) {
        return NULL;
    }

    rc = json_object_set_new(msg, "role",
                             json_string(ch->role ? ch->role : "assistant"));
    rc |= json_object_set_new(msg, "content",
                              ch->has_content ? ai_cache_bufstr(&ch->content)
                                              : json_null());

    if (ch->has_refusal) {
        rc |= json_object_set_new(msg, "refusal",
                                  ai_cache_bufstr(&ch->refusal));
    }

    if (ch->has_fcall) {
        rc |= json_object_set_new(msg, "function_call",
                  json_pack("{s:o,s:o}",
                            "name", ai_cache_bufstr(&ch->fname),
                            "arguments", ai_cache_bufstr(&ch->fargs)));
    }

    if (ch->ntools) {
        calls = json_array();
        rc |= json_object_set_new(msg, "tool_calls", calls);

        qsort(ch->tools, ch->ntools, sizeof(ai_cache_tool_t),
              ai_cache_tool_cmp);

        for (j = 0; j < ch->ntools && calls; j++) {
            tool = &ch->tools[j];
            t = json_pack("{s:s,s:s,s:{s:o,s:o}}",
                          "id", tool->id ? tool->id : "",
                          "type", tool->type ? tool->type : "function",
                          "function",
                            "name", ai_cache_bufstr(&tool->name),
                            "arguments", ai_cache_bufstr(&tool->args));
            rc |= json_array_append_new(calls, t);
        }
    }

    if (rc != 0) {
        json_decref(msg);
        return NULL;
    }

    return msg;
}


void
ai_cache_asm_tree_only(ai_cache_asm_t *a)
{
    a->tree_only = 1;
}


void
ai_cache_asm_free(ai_cache_asm_t *a)
{
    size_t              i, j;
    ai_cache_choice_t  *ch;

    if (a == NULL) {
        return;
    }

    for (i = 0; i < a->nchoices; i++) {
        ch = &a->choices[i];
        free(ch->role);
        free(ch->finish);
        ai_buf_free(&ch->content);
        ai_buf_free(&ch->refusal);
        ai_buf_free(&ch->fname);
        ai_buf_free(&ch->fargs);
        json_decref(ch->logprobs);

        for (j = 0; j < ch->ntools; j++) {
            free(ch->tools[j].id);
            free(ch->tools[j].type);
            ai_buf_free(&ch->tools[j].name);
            ai_buf_free(&ch->tools[j].args);
        }

        free(ch->tools);
    }

    free(a->choices);
    ai_jdoc_free(&a->doc);
    ai_buf_free(&a->tmp);
    ai_jlike_free(&a->like);
    free(a->id);
    free(a->model);
    free(a->fingerprint);
    json_decref(a->usage);
    ai_sse_free(&a->sse);
    free(a);
}


/* ---- the check before storing ---- */

/*
 * "length" is stored: max_tokens is part of the key, so the same request
 * gets the same cut answer again.  "content_filter" is not: filters
 * change without notice.  A missing finish_reason means a cut answer.
 */

static int
ai_cache_finish_ok(const char *reason)
{
    return reason != NULL
           && (strcmp(reason, "stop") == 0
               || strcmp(reason, "length") == 0
               || strcmp(reason, "tool_calls") == 0
               || strcmp(reason, "function_call") == 0);
}


static int
ai_cache_choices_ok(json_t *choices, int endpoint)
{
    size_t   i;
    json_t  *c, *f;

    if (!json_is_array(choices) || json_array_size(choices) == 0) {
        return 0;
    }

    for (i = 0; i < json_array_size(choices); i++) {
        c = json_array_get(choices, i);
        f = json_object_get(c, "finish_reason");

        if (!json_is_object(c) || !ai_cache_finish_ok(json_string_value(f))) {
            return 0;
        }

        if (endpoint == AI_EP_CHAT
            ? !json_is_object(json_object_get(c, "message"))
            : !json_is_string(json_object_get(c, "text")))
        {
            return 0;
        }
    }

    return 1;
}


int
ai_cache_storable(const char *body, size_t len, int endpoint)
{
    int          ok;
    size_t       i;
    json_t      *root, *v, *e;
    const char  *object;

    root = ai_cache_load_object(body, len);

    if (root == NULL) {
        return 0;
    }

    ok = 0;
    v = json_object_get(root, "error");
    object = json_string_value(json_object_get(root, "object"));

    if (v != NULL && !json_is_null(v)) {
        goto done;
    }

    switch (endpoint) {

    case AI_EP_CHAT:
        ok = (object == NULL || strcmp(object, "chat.completion") == 0)
             && ai_cache_choices_ok(json_object_get(root, "choices"),
                                    endpoint);
        break;

    case AI_EP_COMPLETIONS:
        ok = (object == NULL || strcmp(object, "text_completion") == 0)
             && ai_cache_choices_ok(json_object_get(root, "choices"),
                                    endpoint);
        break;

    case AI_EP_EMBEDDINGS:
        v = json_object_get(root, "data");

        if (!json_is_array(v) || json_array_size(v) == 0) {
            break;
        }

        ok = 1;

        for (i = 0; i < json_array_size(v); i++) {
            e = json_object_get(json_array_get(v, i), "embedding");

            if (!(json_is_array(e) || json_is_string(e))) {
                ok = 0;
                break;
            }
        }

        break;

    default:
        break;
    }

done:

    json_decref(root);

    return ok;
}


static json_t *
ai_cache_load_object(const char *p, size_t len)
{
    json_t  *root;

    if (p == NULL) {
        return NULL;
    }

    root = json_loadb(p, len, 0, NULL);

    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }

    return root;
}


/* ---- replay ---- */

/*
 * A hit spent no provider tokens: the usage keeps the stored counts and
 * says the whole prompt was served from cache, the way OpenAI reports
 * its own prompt caching.
 */

static int
ai_cache_mark_cached(json_t *usage)
{
    json_t  *pt, *d;

    if (!json_is_object(usage)) {
        return 0;
    }

    pt = json_object_get(usage, "prompt_tokens");

    if (!json_is_integer(pt)) {
        return 0;
    }

    d = json_object_get(usage, "prompt_tokens_details");

    if (!json_is_object(d)) {
        d = json_object();

        if (json_object_set_new(usage, "prompt_tokens_details", d) != 0) {
            return -1;
        }
    }

    return json_object_set(d, "cached_tokens", pt);
}


static int
ai_cache_replay_common(json_t *root, const ai_cache_replay_opts_t *o)
{
    json_t      *m;
    const char  *object;

    if (o && o->model) {
        m = json_stringn(o->model, o->model_len);

        if (m == NULL || json_object_set_new(root, "model", m) != 0) {
            return -1;
        }
    }

    if (o && o->created) {
        if (json_object_set_new(root, "created", json_integer(o->created))
            != 0)
        {
            return -1;
        }
    }

    object = json_string_value(json_object_get(root, "object"));

    if (object && (strcmp(object, "chat.completion") == 0
                   || strcmp(object, "text_completion") == 0))
    {
        /* this changes a copy: the stored entry keeps the real counts */
        return ai_cache_mark_cached(json_object_get(root, "usage"));
    }

    return 0;
}


int
ai_cache_replay_json(const char *stored, size_t len,
    const ai_cache_replay_opts_t *o, ai_buf_t *out)
{
    int      rc;
    json_t  *root;

    root = ai_cache_load_object(stored, len);

    if (root == NULL) {
        return -1;
    }

    rc = ai_cache_replay_common(root, o);

    if (rc == 0) {
        rc = ai_buf_append_json(out, root);
    }

    json_decref(root);

    return rc ? -1 : 0;
}


int
ai_cache_render_hit(const char *stored, size_t len, ai_buf_t *out,
    ai_cache_hit_t *hit)
{
    int      rc;
    size_t   start, end;
    json_t  *root;

    memset(hit, 0, sizeof(ai_cache_hit_t));

    root = ai_cache_load_object(stored, len);

    if (root == NULL) {
        return -1;
    }

    rc = -1;

    if (!json_is_string(json_object_get(root, "model"))
        || ai_cache_replay_common(root, NULL) != 0
        || ai_buf_append_json(out, root) != 0)
    {
        goto done;
    }

    if (ai_json_member_span((const unsigned char *) out->data, out->len,
                            "model", &start, &end)
        != 1
        || end - start < 2 || out->data[start] != '"')
    {
        goto done;
    }

    hit->model_off = start;
    hit->model_len = end - start;

    ai_cache_hit_usage(root, hit);

    rc = 0;

done:

    json_decref(root);

    return rc;
}


/* the usage a hit reports (after ai_cache_replay_common() marked it) */

static void
ai_cache_hit_usage(json_t *root, ai_cache_hit_t *hit)
{
    json_t  *u;

    u = json_object_get(root, "usage");

    if (json_is_object(u)) {
        hit->prompt_tokens =
              (long) json_integer_value(json_object_get(u, "prompt_tokens"));
        hit->completion_tokens =
          (long) json_integer_value(json_object_get(u, "completion_tokens"));
        hit->cached_tokens = (long) json_integer_value(
            json_object_get(json_object_get(u, "prompt_tokens_details"),
                            "cached_tokens"));
        hit->usage_seen = 1;
    }
}


int
ai_cache_render_sse(const char *stored, size_t len, ai_buf_t *out,
    ai_cache_sse_t *sse)
{
    int                      has_usage;
    size_t                   start, end, ev, evend, n, i;
    void                    *grown;
    uint32_t                *offs, *nulls;
    json_t                  *root;
    const char              *p, *json;
    ai_cache_replay_opts_t   o;

    memset(sse, 0, sizeof(ai_cache_sse_t));

    root = ai_cache_load_object(stored, len);

    if (root == NULL) {
        return -1;
    }

    if (!json_is_string(json_object_get(root, "model"))
        || ai_cache_replay_common(root, NULL) != 0)
    {
        json_decref(root);
        return -1;
    }

    ai_cache_hit_usage(root, &sse->hit);
    has_usage = json_is_object(json_object_get(root, "usage"));
    json_decref(root);

    memset(&o, 0, sizeof(ai_cache_replay_opts_t));
    o.include_usage = 1;

    if (ai_cache_replay_sse(stored, len, &o, out) != 0
        || out->len >= AI_CACHE_SSE_NONE)
    {
        return -1;
    }

    /* every event: "data: {...}\n\n", then "data: [DONE]\n\n" */

    offs = NULL;
    nulls = NULL;
    n = 0;

    for (ev = 0; ev < out->len; ev = evend + 2) {
        p = memchr(out->data + ev, '\n', out->len - ev);

        if (p == NULL || (size_t) (p - out->data) + 1 >= out->len
            || p[1] != '\n' || memcmp(out->data + ev, "data: ", 6) != 0)
        {
            goto failed;
        }

        evend = p - out->data;
        json = out->data + ev + 6;

        if (*json != '{') {
            /* [DONE]: the last; the one before it is the usage event */
            if (evend + 2 != out->len || n == 0) {
                goto failed;
            }

            break;
        }

        if (ai_json_member_span((const unsigned char *) json, evend - ev - 6,
                                "model", &start, &end)
            != 1
            || json[start] != '"' || (n && end - start != sse->model_len))
        {
            goto failed;
        }

        if (n % 16 == 0) {
            grown = realloc(offs, (n + 16) * sizeof(uint32_t));

            if (grown == NULL) {
                goto failed;
            }

            offs = grown;
            grown = realloc(nulls, (n + 16) * sizeof(uint32_t));

            if (grown == NULL) {
                goto failed;
            }

            nulls = grown;
        }

        offs[n] = (uint32_t) (ev + 6 + start);
        sse->model_len = end - start;
        nulls[n] = AI_CACHE_SSE_NONE;

        /* what include_usage adds to every chunk: ,"usage":null */

        if (ai_json_member_span((const unsigned char *) json, evend - ev - 6,
                                "usage", &start, &end)
            == 1
            && end - start == 4 && memcmp(json + start, "null", 4) == 0)
        {
            if (start < 9 || start < offs[n] - ev - 6
                || memcmp(json + start - 9, ",\"usage\":", 9) != 0)
            {
                goto failed;
            }

            nulls[n] = (uint32_t) (ev + 6 + start - 9);
        }

        n++;

        if (has_usage) {
            sse->usage_off = ev;
            sse->usage_len = evend + 2 - ev;
        }
    }

    if (n == 0) {
        goto failed;
    }

    /* one array: the model strings, then the usage nulls */

    grown = realloc(offs, 2 * n * sizeof(uint32_t));

    if (grown == NULL) {
        goto failed;
    }

    offs = grown;

    for (i = 0; i < n; i++) {
        offs[n + i] = nulls[i];
    }

    free(nulls);

    sse->edits = offs;
    sse->nmodel = n;

    return 0;

failed:

    free(offs);
    free(nulls);
    memset(sse, 0, sizeof(ai_cache_sse_t));

    return -1;
}


/* ev[a, b) without the cut [c0, c1) */

static size_t
ai_cache_sse_copy(const char *ev, size_t a, size_t b, size_t c0, size_t c1,
    char *dst)
{
    size_t  n, e;

    n = 0;
    e = b < c0 ? b : c0;

    if (a < e) {
        if (dst) {
            memcpy(dst, ev + a, e - a);
        }

        n = e - a;
    }

    a = a > c1 ? a : c1;

    if (a < b) {
        if (dst) {
            memcpy(dst + n, ev + a, b - a);
        }

        n += b - a;
    }

    return n;
}


size_t
ai_cache_sse_hit(const char *ev, size_t len, const ai_cache_sse_t *sse,
    const unsigned char *model, size_t mlen, int include_usage, char *dst)
{
    size_t  k, pos, off, c0, c1, total, elen;

    c0 = len;
    c1 = len;

    if (!include_usage && sse->usage_len) {
        c0 = sse->usage_off;
        c1 = c0 + sse->usage_len;
    }

    elen = ai_json_escape_len(model, mlen) + 2;
    total = 0;
    pos = 0;

    for (k = 0; k < sse->nmodel; k++) {
        off = sse->edits[k];

        if (off >= c0 && off < c1) {
            continue;                   /* in the usage event left out */
        }

        total += ai_cache_sse_copy(ev, pos, off, c0, c1,
                                   dst ? dst + total : NULL);

        if (dst) {
            dst[total] = '"';
            ai_json_escape((unsigned char *) dst + total + 1, model, mlen);
            dst[total + elen - 1] = '"';
        }

        total += elen;
        pos = off + sse->model_len;
        off = sse->edits[sse->nmodel + k];

        if (!include_usage && off != AI_CACHE_SSE_NONE) {
            /* ,"usage":null comes after the model in its event */
            total += ai_cache_sse_copy(ev, pos, off, c0, c1,
                                       dst ? dst + total : NULL);
            pos = off + sizeof(",\"usage\":null") - 1;
        }
    }

    return total + ai_cache_sse_copy(ev, pos, len, c0, c1,
                                     dst ? dst + total : NULL);
}


void
ai_cache_sse_free(ai_cache_sse_t *sse)
{
    free(sse->edits);
    sse->edits = NULL;
    sse->nmodel = 0;
}


int
ai_cache_replay_sse(const char *stored, size_t len,
    const ai_cache_replay_opts_t *o, ai_buf_t *out)
{
    int                       rc, chat, include_usage;
    size_t                    i, chunk;
    json_t                   *root, *choices, *usage;
    ai_buf_t                  prefix = { NULL, 0, 0 };
    const char               *object;
    ai_cache_replay_opts_t    dflt;

    if (o == NULL) {
        memset(&dflt, 0, sizeof(dflt));
        o = &dflt;
    }

    root = ai_cache_load_object(stored, len);

    if (root == NULL) {
        return -1;
    }

    object = json_string_value(json_object_get(root, "object"));
    choices = json_object_get(root, "choices");

    if (object == NULL || !json_is_array(choices)
        || json_array_size(choices) == 0)
    {
        json_decref(root);
        return -1;
    }

    if (strcmp(object, "chat.completion") == 0) {
        chat = 1;

    } else if (strcmp(object, "text_completion") == 0) {
        chat = 0;

    } else {
        json_decref(root);
        return -1;
    }

    chunk = o->chunk_bytes ? o->chunk_bytes : AI_CACHE_CHUNK_BYTES;
    chunk = chunk < 4 ? 4 : chunk;     /* room for any UTF-8 character */
    include_usage = o->include_usage;

    rc = ai_cache_replay_common(root, o);
    rc |= ai_cache_prefix(&prefix, root,
                          chat ? "chat.completion.chunk" : "text_completion");

    for (i = 0; i < json_array_size(choices) && rc == 0; i++) {
        rc = chat ? ai_cache_replay_chat(json_array_get(choices, i), i, out,
                                         &prefix, chunk, include_usage)
                  : ai_cache_replay_text(json_array_get(choices, i), i, out,
                                         &prefix, chunk, include_usage);
    }

    usage = json_object_get(root, "usage");

    if (rc == 0 && include_usage && json_is_object(usage)) {
        rc |= ai_buf_append_str(out, "data: ");
        rc |= ai_buf_append(out, prefix.data, prefix.len);
        rc |= ai_buf_append_str(out, ",\"choices\":[],\"usage\":");
        rc |= ai_buf_append_json(out, usage);
        rc |= ai_buf_append_str(out, "}\n\n");
    }

    if (rc == 0) {
        rc = ai_buf_append_str(out, "data: [DONE]\n\n");
    }

    ai_buf_free(&prefix);
    json_decref(root);

    return rc ? -1 : 0;
}


/* what every chunk starts with: {"id":..,"object":..,"created":..,... */

static int
ai_cache_prefix(ai_buf_t *b, json_t *root, const char *object)
{
    int      rc;
    json_t  *v;

    v = json_object_get(root, "id");

    rc = ai_buf_append_str(b, "{\"id\":");
    rc |= json_is_string(v) ? ai_buf_append_json(b, v)
                            : ai_buf_append_str(b, "\"\"");
    rc |= ai_buf_append_str(b, ",\"object\":\"");
    rc |= ai_buf_append_str(b, object);
    rc |= ai_buf_append_str(b, "\",\"created\":");

    v = json_object_get(root, "created");
    rc |= json_is_integer(v) ? ai_buf_append_json(b, v)
                             : ai_buf_append_str(b, "0");
    rc |= ai_buf_append_str(b, ",\"model\":");

    v = json_object_get(root, "model");
    rc |= json_is_string(v) ? ai_buf_append_json(b, v)
                            : ai_buf_append_str(b, "\"\"");

    v = json_object_get(root, "system_fingerprint");

    if (json_is_string(v)) {
        rc |= ai_buf_append_str(b, ",\"system_fingerprint\":");
        rc |= ai_buf_append_json(b, v);
    }

    return rc ? -1 : 0;
}


static int
ai_cache_emit(ai_buf_t *out, ai_buf_t *prefix, const char *choice,
    size_t len, int include_usage)
{
    int  rc;

    rc = ai_buf_append_str(out, "data: ");
    rc |= ai_buf_append(out, prefix->data, prefix->len);
    rc |= ai_buf_append_str(out, ",\"choices\":[");
    rc |= ai_buf_append(out, choice, len);
    rc |= ai_buf_append_str(out, include_usage ? "],\"usage\":null}\n\n"
                                               : "]}\n\n");

    return rc ? -1 : 0;
}


static int
ai_cache_emit_json(ai_buf_t *out, ai_buf_t *prefix, json_t *choice,
    int include_usage)
{
    int       rc;
    ai_buf_t  tmp = { NULL, 0, 0 };

    if (choice == NULL) {
        return -1;
    }

    rc = ai_buf_append_json(&tmp, choice);

    if (rc == 0) {
        rc = ai_cache_emit(out, prefix, tmp.data, tmp.len, include_usage);
    }

    ai_buf_free(&tmp);
    json_decref(choice);

    return rc;
}


/*
 * A string sent in pieces of at most chunk bytes, each cut before a
 * UTF-8 lead byte so that every piece is valid UTF-8 on its own; every
 * piece is one chunk: head + escaped piece + tail is its choice.
 */

static int
ai_cache_emit_pieces(ai_buf_t *out, ai_buf_t *prefix, ai_buf_t *tmp,
    const char *head, const char *tail, const char *s, size_t len,
    size_t chunk, int include_usage)
{
    int             rc;
    size_t          n, off;
    unsigned char  *esc, *e;

    esc = malloc(6 * chunk);

    if (esc == NULL) {
        return -1;
    }

    rc = 0;

    for (off = 0; off < len && rc == 0; off += n) {
        n = len - off < chunk ? len - off : chunk;

        if (off + n < len) {
            while (n > 1 && ((unsigned char) s[off + n] & 0xc0) == 0x80) {
                n--;
            }
        }

        e = ai_json_escape(esc, (const unsigned char *) s + off, n);

        tmp->len = 0;
        rc = ai_buf_append_str(tmp, head);
        rc |= ai_buf_append(tmp, (char *) esc, e - esc);
        rc |= ai_buf_append_str(tmp, tail);

        if (rc == 0) {
            rc = ai_cache_emit(out, prefix, tmp->data, tmp->len,
                               include_usage);
        }
    }

    free(esc);

    return rc ? -1 : 0;
}


static int
ai_cache_replay_chat(json_t *choice, size_t pos, ai_buf_t *out,
    ai_buf_t *prefix, size_t chunk, int include_usage)
{
    int          rc;
    char         head[160], tail[96];
    size_t       k;
    json_t      *msg, *content, *v, *calls, *tc, *fn, *lp;
    long         index;
    ai_buf_t     tmp = { NULL, 0, 0 };
    const char  *role, *finish, *args;

    if (!json_is_object(choice)) {
        return -1;
    }

    v = json_object_get(choice, "index");
    index = json_is_integer(v) ? (long) json_integer_value(v) : (long) pos;
    msg = json_object_get(choice, "message");

    if (!json_is_object(msg)) {
        return -1;
    }

    role = json_string_value(json_object_get(msg, "role"));
    content = json_object_get(msg, "content");

    /* the role first, with empty content (null when there is none) */

    rc = ai_cache_emit_json(out, prefix,
             json_pack("{s:i,s:{s:s,s:o},s:n,s:n}",
                       "index", (int) index,
                       "delta",
                         "role", role ? role : "assistant",
                         "content", json_is_string(content)
                                    ? json_string("") : json_null(),
                       "logprobs", "finish_reason"),
             include_usage);

    if (rc == 0 && json_is_string(content)) {
        snprintf(head, sizeof(head),
                 "{\"index\":%ld,\"delta\":{\"content\":\"", index);
        snprintf(tail, sizeof(tail),
                 "\"},\"logprobs\":null,\"finish_reason\":null}");
        rc = ai_cache_emit_pieces(out, prefix, &tmp, head, tail,
                                  json_string_value(content),
                                  json_string_length(content), chunk,
                                  include_usage);
    }

    v = json_object_get(msg, "refusal");

    if (rc == 0 && json_is_string(v)) {
        snprintf(head, sizeof(head),
                 "{\"index\":%ld,\"delta\":{\"refusal\":\"", index);
        snprintf(tail, sizeof(tail),
                 "\"},\"logprobs\":null,\"finish_reason\":null}");

        if (json_string_length(v) == 0) {
            rc = ai_cache_emit_json(out, prefix,
                     json_pack("{s:i,s:{s:s},s:n,s:n}", "index", (int) index,
                               "delta", "refusal", "",
                               "logprobs", "finish_reason"),
                     include_usage);

        } else {
            rc = ai_cache_emit_pieces(out, prefix, &tmp, head, tail,
                                      json_string_value(v),
                                      json_string_length(v), chunk,
                                      include_usage);
        }
    }

    /* the legacy function_call: the name, then the arguments */

    v = json_object_get(msg, "function_call");

    if (rc == 0 && json_is_object(v)) {
        args = json_string_value(json_object_get(v, "arguments"));
        fn = json_object_get(v, "name");

        rc = ai_cache_emit_json(out, prefix,
                 json_pack("{s:i,s:{s:{s:O?,s:s}},s:n,s:n}",
                           "index", (int) index,
                           "delta", "function_call",
                             "name", json_is_string(fn) ? fn : NULL,
                             "arguments", "",
                           "logprobs", "finish_reason"),
                 include_usage);

        if (rc == 0 && args) {
            snprintf(head, sizeof(head), "{\"index\":%ld,\"delta\":"
                     "{\"function_call\":{\"arguments\":\"", index);
            snprintf(tail, sizeof(tail),
                     "\"}},\"logprobs\":null,\"finish_reason\":null}");
            rc = ai_cache_emit_pieces(out, prefix, &tmp, head, tail, args,
                                      strlen(args), chunk, include_usage);
        }
    }

    /* each tool call: index, id, type and name, then the arguments */

    calls = json_object_get(msg, "tool_calls");

    for (k = 0; rc == 0 && k < json_array_size(calls); k++) {
        tc = json_array_get(calls, k);
        fn = json_object_get(tc, "function");
        v = json_object_get(fn, "name");
        args = json_string_value(json_object_get(fn, "arguments"));

        rc = ai_cache_emit_json(out, prefix,
                 json_pack("{s:i,s:{s:[{s:i,s:O?,s:s,s:{s:O?,s:s}}]},s:n,s:n}",
                           "index", (int) index,
                           "delta", "tool_calls",
                             "index", (int) k,
                             "id", json_object_get(tc, "id"),
                             "type", json_is_string(json_object_get(tc,
                                         "type"))
                                     ? json_string_value(json_object_get(tc,
                                         "type"))
                                     : "function",
                             "function",
                               "name", json_is_string(v) ? v : NULL,
                               "arguments", "",
                           "logprobs", "finish_reason"),
                 include_usage);

        if (rc == 0 && args) {
            snprintf(head, sizeof(head), "{\"index\":%ld,\"delta\":"
                     "{\"tool_calls\":[{\"index\":%zu,\"function\":"
                     "{\"arguments\":\"", index, k);
            snprintf(tail, sizeof(tail),
                     "\"}}]},\"logprobs\":null,\"finish_reason\":null}");
            rc = ai_cache_emit_pieces(out, prefix, &tmp, head, tail, args,
                                      strlen(args), chunk, include_usage);
        }
    }

    /* the finish, with the log probabilities of the whole answer */

    finish = json_string_value(json_object_get(choice, "finish_reason"));
    lp = json_object_get(choice, "logprobs");

    if (rc == 0) {
        rc = ai_cache_emit_json(out, prefix,
                 json_pack("{s:i,s:{},s:O?,s:s?}",
                           "index", (int) index,
                           "delta",
                           "logprobs", json_is_object(lp) ? lp : NULL,
                           "finish_reason", finish),
                 include_usage);
    }

    ai_buf_free(&tmp);

    return rc;
}


static int
ai_cache_replay_text(json_t *choice, size_t pos, ai_buf_t *out,
    ai_buf_t *prefix, size_t chunk, int include_usage)
{
    int          rc;
    char         tail[96];
    long         index;
    json_t      *v, *lp;
    ai_buf_t     tmp = { NULL, 0, 0 };
    const char  *finish;

    if (!json_is_object(choice)) {
        return -1;
    }

    v = json_object_get(choice, "index");
    index = json_is_integer(v) ? (long) json_integer_value(v) : (long) pos;
    v = json_object_get(choice, "text");
    rc = 0;

    if (json_is_string(v)) {
        snprintf(tail, sizeof(tail), "\",\"index\":%ld,\"logprobs\":null,"
                 "\"finish_reason\":null}", index);
        rc = ai_cache_emit_pieces(out, prefix, &tmp, "{\"text\":\"", tail,
                                  json_string_value(v), json_string_length(v),
                                  chunk, include_usage);
    }

    ai_buf_free(&tmp);

    finish = json_string_value(json_object_get(choice, "finish_reason"));
    lp = json_object_get(choice, "logprobs");

    if (rc == 0) {
        rc = ai_cache_emit_json(out, prefix,
                 json_pack("{s:s,s:i,s:O?,s:s?}",
                           "text", "",
                           "index", (int) index,
                           "logprobs", json_is_object(lp) ? lp : NULL,
                           "finish_reason", finish),
                 include_usage);
    }

    return rc;
}
