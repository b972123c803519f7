
/*
 * Pure format translation between the OpenAI shapes the gateway speaks and
 * the providers' own (Anthropic Messages, Gemini), both ways, streaming
 * included.  No NGINX types: ngx_http_ai_upstream.c feeds bytes in and
 * sends what comes out; unit tests and fuzzers drive these directly.
 */

#ifndef _AI_TRANSLATE_H_INCLUDED_
#define _AI_TRANSLATE_H_INCLUDED_


#include <stddef.h>
#include <jansson.h>

#include "ai_json.h"


#define AI_FORMAT_OPENAI     0
#define AI_FORMAT_AZURE      1
#define AI_FORMAT_ANTHROPIC  2
#define AI_FORMAT_GEMINI     3


typedef struct {
    int           endpoint;            /* AI_EP_* */
    const char   *model;               /* the provider's model name */
    size_t        model_len;
    const char   *client_model;        /* what the client asked for */
    size_t        client_model_len;
    long          default_max_tokens;  /* Anthropic needs one */
    int           stream;
    int           include_usage;       /* stream_options.include_usage */
    long          created;             /* "created" to send; 0: now */
    int           tree_only;           /* tests: jansson's way only */
} ai_translate_opts_t;


/* a growing output buffer; data is malloc'd, the caller frees it */
typedef struct ai_buf_s {
    char         *data;
    size_t        len;
    size_t        cap;
} ai_buf_t;

int ai_buf_append(ai_buf_t *b, const char *p, size_t len);
int ai_buf_append_str(ai_buf_t *b, const char *s);
int ai_buf_append_json(ai_buf_t *b, json_t *v);
int ai_buf_append_int(ai_buf_t *b, long long v);      /* as "%lld" */
void ai_buf_free(ai_buf_t *b);

/* room for len more bytes (and the NUL) without changing b->len */
int ai_buf_reserve(ai_buf_t *b, size_t len);

/*
 * s (len bytes of UTF-8) as the inside of a JSON string, escaped byte
 * for byte as jansson's json_dumps() escapes it.  Returns -1 (b->len
 * unchanged) if s is not valid UTF-8 or holds a NUL, or on no memory.
 */
int ai_buf_append_jstr(ai_buf_t *b, const char *s, size_t len);


/*
 * Requests: an OpenAI request (already validated by ai_request_validate)
 * to the provider's body.  Returns 0 and fills out, or -1 and fills err
 * (then the client gets a 400 with err's message and param).
 * path receives the provider-relative path to call, e.g.
 * "/messages" or "/models/gemini-2.0-flash:streamGenerateContent?alt=sse".
 */
int ai_translate_request(int format, json_t *openai,
    const ai_translate_opts_t *o, ai_buf_t *out, ai_buf_t *path,
    ai_json_error_t *err);

/*
 * The same from the request's bytes (a body ai_scan() or jansson accepted:
 * they are not checked again), without
 * a jansson tree, for the common shapes: returns 0 with out and path
 * filled exactly as ai_translate_request() fills them, or 1 (out and path
 * unchanged) for anything else, errors included; then the caller builds
 * the tree and calls ai_translate_request().
 */
int ai_translate_request_raw(int format, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out, ai_buf_t *path);


/*
 * Whole responses: the provider's body (status is its HTTP status) to an
 * OpenAI body; a provider error body becomes an OpenAI error body.
 * Returns 0, or -1 if the body cannot be understood (the gateway then
 * answers 502).
 */
int ai_translate_response(int format, int status, const char *body,
    size_t len, const ai_translate_opts_t *o, ai_buf_t *out);


/*
 * Streams: bytes of the provider's event stream in, OpenAI SSE
 * ("data: {chat.completion.chunk}\n\n" ... "data: [DONE]\n\n") out.
 * Bytes may be split anywhere.  ai_stream_finish() is called once at the
 * end of the upstream body (complete or not) and emits what closes the
 * stream.  Usage seen in the stream is available for accounting.
 */
typedef struct ai_stream_s  ai_stream_t;

typedef struct {
    long          prompt_tokens;
    long          completion_tokens;
    long          cached_tokens;
    int           seen;                 /* a usage block was received */
} ai_usage_t;

ai_stream_t *ai_stream_new(int format, const ai_translate_opts_t *o);
int ai_stream_feed(ai_stream_t *s, const char *p, size_t len, ai_buf_t *out);
int ai_stream_finish(ai_stream_t *s, int complete, ai_buf_t *out);
const ai_usage_t *ai_stream_usage(ai_stream_t *s);
void ai_stream_free(ai_stream_t *s);


/*
 * The Anthropic-compatible inbound endpoint (POST /v1/messages): an
 * Anthropic request to an OpenAI one, and OpenAI answers (whole or
 * streamed) back to Anthropic's shapes.
 */
json_t *ai_anthropic_in_request(json_t *anthropic, ai_json_error_t *err);
int ai_anthropic_in_response(int status, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out);
ai_stream_t *ai_anthropic_in_stream_new(const ai_translate_opts_t *o);


/*
 * What follows is shared by the translators (ai_translate.c,
 * ai_anthropic.c, ai_gemini.c, ai_anthropic_in.c); callers use only the
 * functions above.
 */

#include "ai_sse.h"
#include "ai_jtok.h"

#define AI_FORMAT_ANTHROPIC_IN  100     /* OpenAI SSE in, Anthropic out */

#define AI_MAX_CHOICES  8               /* streamed choices we track */
#define AI_MAX_BLOCKS   4096            /* content blocks in one message */


typedef int (*ai_stream_event_pt)(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out);
typedef int (*ai_stream_finish_pt)(ai_stream_t *s, int complete,
    ai_buf_t *out);

struct ai_stream_s {
    int                   format;
    ai_sse_t              sse;
    ai_stream_event_pt    on_event;
    ai_stream_finish_pt   on_finish;
    ai_buf_t             *out;          /* during ai_stream_feed() */
    char                 *client_model;
    long                  created;
    char                  id[128];      /* one id for every chunk */
    ai_usage_t            usage;
    int                   include_usage;

    unsigned              roles;        /* choices whose role was sent */
    unsigned              tool_choices; /* choices that called a tool */
    unsigned              finished;     /* choices with a finish_reason */
    int                   tools;        /* tool calls so far */
    int                  *block_tool;   /* content block -> tool index */
    size_t                nblocks;

    const char           *stop_reason;  /* Anthropic-in: to send */
    int                   block_open;   /* Anthropic-in: 0, 1 text, 2 tool */
    int                   block_index;  /* Anthropic-in: the open block */
    int                   tool_index;   /* Anthropic-in: its OpenAI index */
    long                  cached_in;    /* Anthropic-in: cache reads */

    char                 *chunk_pre;    /* "data: {...\"content\":\"" */
    size_t                chunk_pre_len;
    size_t                chunk_head_len;   /* "data: {...\"choices\":[" */

    ai_jdoc_t             doc;          /* events read without jansson */
    int                   tree_only;
    ai_jlike_t            like;         /* OpenAI: the last chunk */
    int                   like_drop;    /* OpenAI: it was left out */

    unsigned              started:1;    /* the first chunk went out */
    unsigned              done:1;       /* the stream was closed */
    unsigned              failed:1;
};


ai_stream_t *ai_stream_alloc(int format, const ai_translate_opts_t *o);
int ai_chunk(ai_stream_t *s, int index, json_t *delta, const char *finish,
    ai_buf_t *out);
int ai_chunk_head(ai_stream_t *s, ai_buf_t *out);
int ai_stream_close(ai_stream_t *s, ai_buf_t *out);
int ai_stream_error(ai_stream_t *s, const char *message, const char *type,
    const char *code, ai_buf_t *out);
int ai_sse_emit(ai_buf_t *out, const char *event, json_t *v);

int ai_openai_error(ai_buf_t *out, const char *message, const char *type,
    const char *code);
int ai_status_error(ai_buf_t *out, int status);
json_t *ai_openai_usage(long prompt, long completion, long cached);
long ai_created(const ai_translate_opts_t *o);
void ai_translate_err(ai_json_error_t *err, const char *code,
    const char *param, const char *fmt, ...);
const char *ai_json_str(json_t *obj, const char *key);
long ai_json_long(json_t *obj, const char *key, long dflt);
int ai_data_url(const char *url, const char **mime, size_t *mime_len,
    const char **data);
json_t *ai_text_of(json_t *content, const char *sep);

int ai_anthropic_request(json_t *req, const ai_translate_opts_t *o,
    ai_buf_t *out, ai_buf_t *path, ai_json_error_t *err);
int ai_anthropic_request_raw(const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out, ai_buf_t *path);
int ai_anthropic_response(int status, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out);
int ai_anthropic_stream_init(ai_stream_t *s);
int ai_gemini_request(json_t *req, const ai_translate_opts_t *o,
    ai_buf_t *out, ai_buf_t *path, ai_json_error_t *err);
int ai_gemini_response(int status, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out);
int ai_gemini_stream_init(ai_stream_t *s);


#endif /* _AI_TRANSLATE_H_INCLUDED_ */
