
/*
 * Format translation: the buffer, the dispatch on the provider's format,
 * what every stream shares (one id, role first, usage chunk, "[DONE]",
 * error events) and the OpenAI pass-through stream.  The providers' own
 * shapes live in ai_anthropic.c, ai_gemini.c and ai_anthropic_in.c.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <time.h>

#include "ai_translate.h"


static int ai_buf_dump(const char *p, size_t len, void *data);
static int ai_stream_on_sse(void *ctx, const ai_sse_event_t *ev);
static int ai_openai_stream_read(ai_stream_t *s, const ai_sse_event_t *ev);
static long ai_jdoc_long(const ai_jdoc_t *doc, uint32_t obj, const char *key);
static int ai_openai_stream_event(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out);
static int ai_openai_stream_finish(ai_stream_t *s, int complete,
    ai_buf_t *out);
static int ai_passthrough_request(json_t *req, const ai_translate_opts_t *o,
    ai_buf_t *out, ai_buf_t *path);


int
ai_buf_reserve(ai_buf_t *b, size_t len)
{
    char    *nd;
    size_t   ncap;

    if (len > (size_t) -1 / 2 - b->len) {
        return -1;
    }

    if (b->len + len + 1 > b->cap) {
        ncap = b->cap ? b->cap : 512;

        while (ncap < b->len + len + 1) {
            ncap *= 2;
        }

        nd = realloc(b->data, ncap);

        if (nd == NULL) {
            return -1;
        }

        b->data = nd;
        b->cap = ncap;
    }

    return 0;
}


int
ai_buf_append(ai_buf_t *b, const char *p, size_t len)
{
    if (ai_buf_reserve(b, len) != 0) {
        return -1;
    }

    if (len) {
        memcpy(b->data + b->len, p, len);
    }

    b->len += len;

    /* always NUL-terminated, for printf-style debugging and tests */
    b->data[b->len] = '\0';

    return 0;
}


int
ai_buf_append_str(ai_buf_t *b, const char *s)
{
    return ai_buf_append(b, s, strlen(s));
}


int
ai_buf_append_int(ai_buf_t *b, long long v)
{
    char                 num[24], *p;
    unsigned long long   u;

    p = num + sizeof(num);
    u = v < 0 ? 0ULL - (unsigned long long) v : (unsigned long long) v;

    do {
        *--p = (char) ('0' + u % 10);
        u /= 10;
    } while (u);

    if (v < 0) {
        *--p = '-';
    }

    return ai_buf_append(b, p, num + sizeof(num) - p);
}


int
ai_buf_append_json(ai_buf_t *b, json_t *v)
{
    if (v == NULL) {
        return -1;
    }

    return json_dump_callback(v, ai_buf_dump, b,
                              JSON_COMPACT | JSON_ENCODE_ANY);
}


/*
 * jansson's escaping (dump.c): '"', '\\' and control characters only,
 * the short forms where JSON has them, else \u00XX in capitals; DEL,
 * '/' and non-ASCII go as they are.
 */

int
ai_buf_append_jstr(ai_buf_t *b, const char *s, size_t len)
{
    size_t                i, n;
    unsigned              c;
    char                 *d;
    const unsigned char  *u;
    static const char     hex[] = "0123456789ABCDEF";

    if (len > ((size_t) -1 / 2 - b->len) / 6
        || ai_buf_reserve(b, len * 6) != 0)
    {
        return -1;
    }

    u = (const unsigned char *) s;
    d = b->data + b->len;

    for (i = 0; i < len; /* void */) {
        c = u[i];

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *d++ = (char) c;
            i++;
            continue;
        }

        if (c >= 0x80) {
            /* jansson's utf8_check_first() and utf8_check_full() */

            n = ai_json_utf8_len(u + i, u + len);

            if (n == 0) {
                return -1;
            }

            memcpy(d, u + i, n);
            d += n;
            i += n;
            continue;
        }

        if (c == 0) {
            return -1;
        }

        *d++ = '\\';

        switch (c) {
        case '"':
        case '\\':
            *d++ = (char) c;
            break;
        case '\b':
            *d++ = 'b';
            break;
        case '\f':
            *d++ = 'f';
            break;
        case '\n':
            *d++ = 'n';
            break;
        case '\r':
            *d++ = 'r';
            break;
        case '\t':
            *d++ = 't';
            break;
        default:
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 0xf];
        }

        i++;
    }

    b->len = d - b->data;
    b->data[b->len] = '\0';

    return 0;
}


static int
ai_buf_dump(const char *p, size_t len, void *data)
{
    return ai_buf_append(data, p, len);
}


void
ai_buf_free(ai_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


int
ai_translate_request(int format, json_t *openai,
    const ai_translate_opts_t *o, ai_buf_t *out, ai_buf_t *path,
    ai_json_error_t *err)
{
    if (!json_is_object(openai)) {
        ai_translate_err(err, "invalid_type", NULL,
                         "The request body must be a JSON object.");
        return -1;
    }

    switch (format) {

    case AI_FORMAT_ANTHROPIC:
        return ai_anthropic_request(openai, o, out, path, err);

    case AI_FORMAT_GEMINI:
        return ai_gemini_request(openai, o, out, path, err);

    default:
        if (ai_passthrough_request(openai, o, out, path) != 0) {
            ai_translate_err(err, "internal_error", NULL,
                             "Out of memory.");
            return -1;
        }

        return 0;
    }
}


int
ai_translate_request_raw(int format, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out, ai_buf_t *path)
{
    if (format == AI_FORMAT_ANTHROPIC && o->endpoint == AI_EP_CHAT
        && !o->tree_only)
    {
        return ai_anthropic_request_raw(body, len, o, out, path);
    }

    return 1;
}


static int
ai_passthrough_request(json_t *req, const ai_translate_opts_t *o,
    ai_buf_t *out, ai_buf_t *path)
{
    int          rc;
    json_t      *copy;
    const char  *p;

    copy = json_copy(req);

    if (copy == NULL) {
        return -1;
    }

    if (o->model && o->model_len
        && json_object_set_new(copy, "model",
                               json_stringn(o->model, o->model_len)) != 0)
    {
        json_decref(copy);
        return -1;
    }

    rc = ai_buf_append_json(out, copy);
    json_decref(copy);

    switch (o->endpoint) {
    case AI_EP_COMPLETIONS:
        p = "/completions";
        break;
    case AI_EP_EMBEDDINGS:
        p = "/embeddings";
        break;
    case AI_EP_MODELS:
        p = "/models";
        break;
    default:
        p = "/chat/completions";
    }

    if (rc != 0 || ai_buf_append_str(path, p) != 0) {
        return -1;
    }

    return 0;
}


int
ai_translate_response(int format, int status, const char *body,
    size_t len, const ai_translate_opts_t *o, ai_buf_t *out)
{
    switch (format) {

    case AI_FORMAT_ANTHROPIC:
        return ai_anthropic_response(status, body, len, o, out);

    case AI_FORMAT_GEMINI:
        return ai_gemini_response(status, body, len, o, out);

    default:
        return ai_buf_append(out, body, len);
    }
}


ai_stream_t *
ai_stream_new(int format, const ai_translate_opts_t *o)
{
    int           rc;
    ai_stream_t  *s;

    s = ai_stream_alloc(format, o);

    if (s == NULL) {
        return NULL;
    }

    switch (format) {

    case AI_FORMAT_ANTHROPIC:
        rc = ai_anthropic_stream_init(s);
        break;

    case AI_FORMAT_GEMINI:
        rc = ai_gemini_stream_init(s);
        break;

    default:
        s->on_event = ai_openai_stream_event;
        s->on_finish = ai_openai_stream_finish;
        rc = 0;
    }

    if (rc != 0) {
        ai_stream_free(s);
        return NULL;
    }

    return s;
}


ai_stream_t *
ai_stream_alloc(int format, const ai_translate_opts_t *o)
{
    ai_stream_t  *s;

    s = calloc(1, sizeof(ai_stream_t));

    if (s == NULL) {
        return NULL;
    }

    s->format = format;
    s->include_usage = o->include_usage;
    s->tree_only = o->tree_only;
    s->created = ai_created(o);

    s->client_model = malloc(o->client_model_len + 1);

    if (s->client_model == NULL) {
        free(s);
        return NULL;
    }

    if (o->client_model_len) {
        memcpy(s->client_model, o->client_model, o->client_model_len);
    }

    s->client_model[o->client_model_len] = '\0';

    ai_sse_init(&s->sse, AI_SSE_MAX_EVENT);

    return s;
}


int
ai_stream_feed(ai_stream_t *s, const char *p, size_t len, ai_buf_t *out)
{
    if (s->failed) {
        return -1;
    }

    s->out = out;

    if (ai_sse_feed(&s->sse, p, len, ai_stream_on_sse, s) != 0) {
        s->failed = 1;
        return -1;
    }

    return 0;
}


/*
 * The end of the upstream body.  A stream that reached its provider's
 * final event ends as OpenAI's does ("[DONE]" after the usage chunk).
 * One cut short ends with an OpenAI error event and no "[DONE]", so that
 * clients (the official SDKs raise on an "error" event) see a failure
 * rather than a silently short answer.
 */

int
ai_stream_finish(ai_stream_t *s, int complete, ai_buf_t *out)
{
    s->out = out;

    if (!s->failed && complete
        && ai_sse_end(&s->sse, ai_stream_on_sse, s) != 0)
    {
        s->failed = 1;
    }

    if (s->done) {
        return 0;
    }

    if (s->failed) {
        return ai_stream_error(s, "The upstream stream could not be "
                               "understood.", "server_error",
                               "bad_upstream_stream", out);
    }

    return s->on_finish(s, complete, out);
}


static int
ai_stream_on_sse(void *ctx, const ai_sse_event_t *ev)
{
    ai_stream_t  *s = ctx;

    if (s->done) {
        return 0;
    }

    return s->on_event(s, ev, s->out);
}


const ai_usage_t *
ai_stream_usage(ai_stream_t *s)
{
    return &s->usage;
}


void
ai_stream_free(ai_stream_t *s)
{
    if (s == NULL) {
        return;
    }

    ai_sse_free(&s->sse);
    ai_jdoc_free(&s->doc);
    ai_jlike_free(&s->like);
    free(s->chunk_pre);
    free(s->block_tool);
    free(s->client_model);
    free(s);
}


/*
 * data: {"id":...,"object":"chat.completion.chunk",...}; the first chunk
 * of each choice carries the role, as OpenAI's do.  delta is stolen.
 */

int
ai_chunk(ai_stream_t *s, int index, json_t *delta, const char *finish,
    ai_buf_t *out)
{
    json_t  *d, *chunk;

    if (delta == NULL) {
        delta = json_object();

        if (delta == NULL) {
            return -1;
        }
    }

    if (index >= 0 && index < 32 && !(s->roles & (1u << index))) {
        s->roles |= 1u << index;

        d = json_pack("{s:s}", "role", "assistant");

        if (d == NULL || json_object_update(d, delta) != 0) {
            json_decref(d);
            json_decref(delta);
            return -1;
        }

        json_decref(delta);
        delta = d;
    }

    s->started = 1;

    chunk = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s?}]}",
                      "id", s->id,
                      "object", "chat.completion.chunk",
                      "created", (json_int_t) s->created,
                      "model", s->client_model,
                      "choices",
                        "index", index,
                        "delta", delta,
                        "logprobs",
                        "finish_reason", finish);

    return ai_sse_emit(out, NULL, chunk);
}


/*
 * What every chunk starts with, written as json_pack() and a compact dump
 * would write it: data: {"id":...,"object":...,"created":...,
 * "model":...,"choices":[
 */

int
ai_chunk_head(ai_stream_t *s, ai_buf_t *out)
{
    if (ai_buf_append_str(out, "data: {\"id\":\"") != 0
        || ai_buf_append_jstr(out, s->id, strlen(s->id)) != 0
        || ai_buf_append_str(out, "\",\"object\":\"chat.completion.chunk\","
                             "\"created\":") != 0
        || ai_buf_append_int(out, s->created) != 0
        || ai_buf_append_str(out, ",\"model\":\"") != 0
        || ai_buf_append_jstr(out, s->client_model, strlen(s->client_model))
           != 0
        || ai_buf_append_str(out, "\",\"choices\":[") != 0)
    {
        return -1;
    }

    return 0;
}


/* the usage chunk (when asked for) and "[DONE]" */

int
ai_stream_close(ai_stream_t *s, ai_buf_t *out)
{
    size_t  mark;

    if (s->done) {
        return 0;
    }

    s->done = 1;

    if (s->include_usage) {
        mark = out->len;

        if (ai_chunk_head(s, out) != 0
            || ai_buf_append_str(out, "],\"usage\":{\"prompt_tokens\":") != 0
            || ai_buf_append_int(out, s->usage.prompt_tokens) != 0
            || ai_buf_append_str(out, ",\"completion_tokens\":") != 0
            || ai_buf_append_int(out, s->usage.completion_tokens) != 0
            || ai_buf_append_str(out, ",\"total_tokens\":") != 0
            || ai_buf_append_int(out, (long long) s->usage.prompt_tokens
                                      + s->usage.completion_tokens) != 0
            || ai_buf_append_str(out, ",\"prompt_tokens_details\":"
                                 "{\"cached_tokens\":") != 0
            || ai_buf_append_int(out, s->usage.cached_tokens) != 0
            || ai_buf_append_str(out, "}}}\n\n") != 0)
        {
            if (out->data) {
                out->len = mark;
                out->data[mark] = '\0';
            }

            return -1;
        }
    }

    return ai_buf_append_str(out, "data: [DONE]\n\n");
}


/* an OpenAI error event ends the stream: no "[DONE]" follows it */

int
ai_stream_error(ai_stream_t *s, const char *message, const char *type,
    const char *code, ai_buf_t *out)
{
    s->done = 1;

    if (ai_buf_append_str(out, "data: ") != 0
        || ai_openai_error(out, message, type, code) != 0
        || ai_buf_append_str(out, "\n\n") != 0)
    {
        return -1;
    }

    return 0;
}


/* "event: x\ndata: {...}\n\n"; v is stolen */

int
ai_sse_emit(ai_buf_t *out, const char *event, json_t *v)
{
    int  rc;

    if (v == NULL) {
        return -1;
    }

    rc = 0;

    if (event) {
        rc = ai_buf_append_str(out, "event: ") != 0
             || ai_buf_append_str(out, event) != 0
             || ai_buf_append_str(out, "\n") != 0;
    }

    if (rc == 0) {
        rc = ai_buf_append_str(out, "data: ") != 0
             || ai_buf_append_json(out, v) != 0
             || ai_buf_append_str(out, "\n\n") != 0;
    }

    json_decref(v);

    return rc ? -1 : 0;
}


int
ai_openai_error(ai_buf_t *out, const char *message, const char *type,
    const char *code)
{
    int      rc;
    json_t  *e;

    e = json_pack("{s:{s:s,s:s,s:n,s:s?}}",
                  "error",
                    "message", message ? message : "",
                    "type", type ? type : "server_error",
                    "param",
                    "code", code);

    rc = ai_buf_append_json(out, e);
    json_decref(e);

    return rc;
}


json_t *
ai_openai_usage(long prompt, long completion, long cached)
{
    return json_pack("{s:I,s:I,s:I,s:{s:I}}",
                     "prompt_tokens", (json_int_t) prompt,
                     "completion_tokens", (json_int_t) completion,
                     "total_tokens", (json_int_t) (prompt + completion),
                     "prompt_tokens_details",
                       "cached_tokens", (json_int_t) cached);
}


long
ai_created(const ai_translate_opts_t *o)
{
    return o->created ? o->created : (long) time(NULL);
}


void
ai_translate_err(ai_json_error_t *err, const char *code, const char *param,
    const char *fmt, ...)
{
    va_list  args;

    if (err == NULL) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);

    err->code = code;
    snprintf(err->param, sizeof(err->param), "%s", param ? param : "");
}


const char *
ai_json_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}


long
ai_json_long(json_t *obj, const char *key, long dflt)
{
    json_t  *v;

    v = json_object_get(obj, key);

    if (json_is_integer(v)) {
        return (long) json_integer_value(v);
    }

    if (json_is_real(v)) {
        return (long) json_real_value(v);
    }

    return dflt;
}


/*
 * "data:image/png;base64,AAAA": returns 1 with the media type and the
 * payload, 0 when url is not a data URL, -1 when it is one we cannot
 * carry (not base64).
 */

int
ai_data_url(const char *url, const char **mime, size_t *mime_len,
    const char **data)
{
    const char  *comma, *semi;

    if (strncmp(url, "data:", 5) != 0) {
        return 0;
    }

    url += 5;
    comma = strchr(url, ',');

    if (comma == NULL || comma - url < 7
        || memcmp(comma - 7, ";base64", 7) != 0)
    {
        return -1;
    }

    semi = memchr(url, ';', comma - url);

    *mime = url;
    *mime_len = semi - url;
    *data = comma + 1;

    if (*mime_len == 0) {
        *mime = "application/octet-stream";
        *mime_len = sizeof("application/octet-stream") - 1;
    }

    return 1;
}


/*
 * The text of a content that is a string or an array of text parts,
 * joined with sep; NULL when it holds anything else.
 */

json_t *
ai_text_of(json_t *content, const char *sep)
{
    size_t       i;
    json_t      *part, *res;
    ai_buf_t     b;
    const char  *type, *text;

    if (json_is_string(content)) {
        return json_incref(content);
    }

    if (content == NULL || json_is_null(content)) {
        return json_string("");
    }

    if (!json_is_array(content)) {
        return NULL;
    }

    memset(&b, 0, sizeof(ai_buf_t));

    if (ai_buf_append(&b, "", 0) != 0) {
        return NULL;
    }

    json_array_foreach(content, i, part) {
        type = ai_json_str(part, "type");
        text = ai_json_str(part, "text");

        if (text == NULL || (type && strcmp(type, "text") != 0)) {
            ai_buf_free(&b);
            return NULL;
        }

        if ((i && ai_buf_append_str(&b, sep) != 0)
            || ai_buf_append_str(&b, text) != 0)
        {
            ai_buf_free(&b);
            return NULL;
        }
    }

    res = json_stringn(b.data, b.len);
    ai_buf_free(&b);

    return res;
}


/*
 * The OpenAI stream passes through as events; it is parsed only to keep
 * the usage for accounting, to drop a usage chunk the client did not ask
 * for (the gateway may ask for one on its behalf) and to end well.
 */

/*
 * What an OpenAI chunk says that a passed-through stream needs (its
 * usage, finished choices, an error, whether a usage-only chunk is left
 * out), read without a tree: 1 to leave the chunk out, 0 to pass it on,
 * -1 for a chunk left to jansson (escaped keys, what the index refuses).
 * A chunk that repeats the last one around another text says what that
 * one said (ai_jlike_t).
 */

static int
ai_openai_stream_read(ai_stream_t *s, const ai_sse_event_t *ev)
{
    uint32_t    usage, choices, c, k, v, t;
    ai_jdoc_t  *doc;

    doc = &s->doc;

    if (ai_jlike_match(&s->like, doc, ev->data, ev->data_len)) {
        return s->like_drop;
    }

    ai_jlike_forget(&s->like);

    if (ai_jdoc_parse(doc, ev->data, ev->data_len, 0) != 0
        || doc->key_escaped)
    {
        return -1;
    }

    if (ai_jdoc_type(doc, AI_JDOC_ROOT) != AI_JT_OBJECT) {
        return 0;
    }

    s->like_drop = 0;
    usage = ai_jdoc_gets(doc, AI_JDOC_ROOT, "usage");
    choices = ai_jdoc_gets(doc, AI_JDOC_ROOT, "choices");

    if (ai_jdoc_type(doc, usage) == AI_JT_OBJECT) {
        s->usage.prompt_tokens = ai_jdoc_long(doc, usage, "prompt_tokens");
        s->usage.completion_tokens = ai_jdoc_long(doc, usage,
                                                  "completion_tokens");
        v = ai_jdoc_gets(doc, usage, "prompt_tokens_details");
        s->usage.cached_tokens = ai_jdoc_type(doc, v) == AI_JT_OBJECT
                                 ? ai_jdoc_long(doc, v, "cached_tokens") : 0;
        s->usage.seen = 1;

        s->like_drop = !s->include_usage
                       && ai_jdoc_type(doc, choices) == AI_JT_ARRAY
                       && doc->tok[choices].count == 0;
    }

    t = 0;

    if (ai_jdoc_type(doc, choices) == AI_JT_ARRAY) {
        for (k = 0, c = choices + 1; k < doc->tok[choices].count;
             k++, c = doc->tok[c].next)
        {
            if (ai_jdoc_type(doc, c) != AI_JT_OBJECT) {
                continue;
            }

            if (ai_jdoc_type(doc, ai_jdoc_gets(doc, c, "finish_reason"))
                == AI_JT_STRING)
            {
                s->finished |= 1;
            }

            /* one choice's text: the next chunk may differ only in it */
            v = ai_jdoc_gets(doc, ai_jdoc_gets(doc, c, "delta"), "content");
            t = (doc->tok[choices].count == 1
                 && ai_jdoc_type(doc, v) == AI_JT_STRING) ? v : 0;
        }
    }

    if (ai_jdoc_gets(doc, AI_JDOC_ROOT, "error")) {
        s->done = 1;
    }

    if (t && ai_jlike_keep(&s->like, doc, t) != 0) {
        ai_jlike_forget(&s->like);
    }

    return s->like_drop;
}


/* ai_json_long() on an index: an integer, a real cut to one, else 0 */

static long
ai_jdoc_long(const ai_jdoc_t *doc, uint32_t obj, const char *key)
{
    uint32_t  v;

    v = ai_jdoc_get(doc, obj, key, strlen(key));

    if (ai_jdoc_type(doc, v) == AI_JT_INTEGER) {
        return (long) ai_jdoc_int(doc, v);
    }

    if (ai_jdoc_type(doc, v) == AI_JT_REAL) {
        return (long) strtod((const char *) doc->data + doc->tok[v].start,
                             NULL);
    }

    return 0;
}


static int
ai_openai_stream_event(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out)
{
    int           drop;
    size_t        i;
    json_t       *root, *usage, *choices, *c;
    const char   *p, *last, *nl;

    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        s->done = 1;
        return ai_buf_append_str(out, "data: [DONE]\n\n");
    }

    drop = s->tree_only ? -1 : ai_openai_stream_read(s, ev);
    root = NULL;

    if (drop == -1) {
        drop = 0;
        root = json_loadb(ev->data, ev->data_len, 0, NULL);
    }

    if (json_is_object(root)) {
        usage = json_object_get(root, "usage");
        choices = json_object_get(root, "choices");

        if (json_is_object(usage)) {
            s->usage.prompt_tokens = ai_json_long(usage, "prompt_tokens", 0);
            s->usage.completion_tokens =
                ai_json_long(usage, "completion_tokens", 0);
            s->usage.cached_tokens =
                ai_json_long(json_object_get(usage, "prompt_tokens_details"),
                             "cached_tokens", 0);
            s->usage.seen = 1;

            drop = !s->include_usage && json_is_array(choices)
                   && json_array_size(choices) == 0;
        }

        json_array_foreach(choices, i, c) {
            if (json_is_string(json_object_get(c, "finish_reason"))) {
                s->finished |= 1;
            }
        }

        if (json_object_get(root, "error")) {
            s->done = 1;
        }
    }

    json_decref(root);

    if (drop) {
        return 0;
    }

    if (ev->event_len
        && (ai_buf_append_str(out, "event: ") != 0
            || ai_buf_append(out, ev->event, ev->event_len) != 0
            || ai_buf_append_str(out, "\n") != 0))
    {
        return -1;
    }

    p = ev->data;
    last = ev->data + ev->data_len;

    for ( ;; ) {
        nl = memchr(p, '\n', last - p);

        if (ai_buf_append_str(out, "data: ") != 0
            || ai_buf_append(out, p, nl ? (size_t) (nl - p)
                                        : (size_t) (last - p)) != 0
            || ai_buf_append_str(out, "\n") != 0)
        {
            return -1;
        }

        if (nl == NULL) {
            break;
        }

        p = nl + 1;
    }

    return ai_buf_append_str(out, "\n");
}


static int
ai_openai_stream_finish(ai_stream_t *s, int complete, ai_buf_t *out)
{
    if (complete || s->finished) {
        s->done = 1;
        return ai_buf_append_str(out, "data: [DONE]\n\n");
    }

    return ai_stream_error(s, "The upstream stream ended before it was "
                           "complete.", "server_error", "upstream_incomplete",
                           out);
}


/* an error body the provider sent in a shape we cannot read */

int
ai_status_error(ai_buf_t *out, int status)
{
    char         msg[96];
    const char  *type;

    switch (status) {
    case 401:
        type = "authentication_error";
        break;
    case 403:
        type = "permission_error";
        break;
    case 404:
        type = "not_found_error";
        break;
    case 429:
        type = "rate_limit_error";
        break;
    default:
        type = status >= 500 ? "server_error" : "invalid_request_error";
    }

    snprintf(msg, sizeof(msg), "The provider answered with HTTP status %d.",
             status);

    return ai_openai_error(out, msg, type, NULL);
}
