
/*
 * The pure half of the response cache: the canonical key of a request,
 * the policy (what may be cached, Cache-Control), the assembly of a
 * streamed answer into the whole response to store, the check of a whole
 * response before it is stored, and the replay of a stored response as a
 * chat.completion / text_completion body or as OpenAI SSE chunks.
 * No NGINX types: ngx_http_ai_cache.c owns the zone, the LRU, Redis and
 * coalescing; unit tests and fuzzers drive these directly.
 * docs/cache.md describes the behaviour users see.
 */

#ifndef _AI_CACHE_H_INCLUDED_
#define _AI_CACHE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "ai_json.h"
#include "ai_translate.h"


#define AI_CACHE_KEY_LEN      32          /* SHA-256 */
#define AI_CACHE_KEY_VERSION  1           /* bumped when the form changes */
#define AI_CACHE_KEY_VERSION_STR  "1"   /* the same, as written in the key */
#define AI_CACHE_CHUNK_BYTES  64          /* replayed content per chunk */
#define AI_CACHE_ASM_MAX      (16 * 1024 * 1024)
#define AI_CACHE_MAX_CHOICES  128
#define AI_CACHE_MAX_TOOLS    128         /* tool calls in one choice */


/*
 * The key: SHA-256 over the canonical JSON (sorted keys, no whitespace,
 * canonical strings and numbers) of
 *   {"endpoint":E,"model":M,"namespace":N,"request":R,"v":1}
 * where R holds only the request members on the allow-list that change
 * the answer (ai_cache_key_members).  Returns 0, or -1 when the request
 * is not a JSON object, holds a number that has no JSON form, or on
 * memory exhaustion.  namespace may be NULL (same as "").
 */
int ai_cache_key(json_t *openai_request, int endpoint,
    const char *resolved_model, size_t len, const char *namespace,
    unsigned char digest[AI_CACHE_KEY_LEN]);
/*
 * The same key and the same policy answer, read from the request's JSON
 * bytes without a tree (what the gateway does on every cacheable
 * request).  scratch and tmp are the caller's buffers, reused.  Returns
 * 0, or -1 for input this reader leaves to the tree path (escaped or
 * duplicate keys, long integers, deep nesting, wide objects, bad JSON).
 * policy_endpoint is what ai_cache_cacheable() would be given.  Keeps
 * one digest context per process: not for concurrent threads.
 */
int ai_cache_key_raw(const char *body, size_t len, int endpoint,
    int policy_endpoint, int force, const char *resolved_model, size_t mlen,
    const char *namespace, ai_buf_t *scratch, ai_buf_t *tmp, int *cacheable,
    unsigned char digest[AI_CACHE_KEY_LEN]);
/*
 * How often ai_cache_key_raw() resumed a digest from a kept prefix (the
 * canonical text up to the last message), and how many it kept.
 */
void ai_cache_digest_stats(unsigned long *resumed, unsigned long *kept);
void ai_cache_key_hex(const unsigned char d[AI_CACHE_KEY_LEN], char out[65]);

/* the canonical JSON of any value (what the key hashes), for tests, logs */
int ai_cache_canonical(json_t *v, ai_buf_t *out);

/* the allow-list, sorted, NULL-terminated */
extern const char *const ai_cache_key_members[];


/*
 * Policy.  1 when the request may be served from and stored in the
 * cache: embeddings always; chat and completions when deterministic
 * (temperature 0, or an integer seed) and n is absent or 1; any of the
 * three endpoints when force is set.  0 otherwise.
 */
int ai_cache_cacheable(json_t *req, int endpoint, int force);

typedef struct {
    long          max_age;     /* seconds; -1 when not given */
    unsigned      no_cache:1;  /* look up nothing, store the new answer */
    unsigned      no_store:1;  /* look up nothing, store nothing */
} ai_cache_control_t;

/* the request's Cache-Control header (NULL or "" gives the defaults) */
ai_cache_control_t ai_cache_parse_control(const char *header, size_t len);

/* the x-aigw-cache-force header: "1", "true", "yes" or "on" */
int ai_cache_parse_force(const char *header, size_t len);


/*
 * Assembly of a streamed answer (OpenAI SSE, chat.completion.chunk or
 * text_completion events) into the whole response, fed as the bytes pass
 * to the client, split anywhere.
 *
 * ai_cache_asm_feed() returns 0, or -1 once the stream cannot be stored
 * (an error event, a chunk that is not JSON, more than the limit); later
 * calls then return -1 at once and cost nothing, so the caller may stop
 * feeding.  ai_cache_asm_finish() returns 1 and sets out_json to the
 * whole response when the stream was complete ("[DONE]" seen and every
 * choice finished) and ai_cache_storable() would accept it; 0 when it
 * must not be stored (out_json untouched); -1 on memory exhaustion.
 */
typedef struct ai_cache_asm_s  ai_cache_asm_t;

ai_cache_asm_t *ai_cache_asm_new(int endpoint);
void ai_cache_asm_limit(ai_cache_asm_t *a, size_t max_bytes);
int ai_cache_asm_feed(ai_cache_asm_t *a, const char *p, size_t n);
int ai_cache_asm_finish(ai_cache_asm_t *a, ai_buf_t *out_json);
void ai_cache_asm_free(ai_cache_asm_t *a);
/* every chunk read through a jansson tree (tests compare the two readers) */
void ai_cache_asm_tree_only(ai_cache_asm_t *a);


/*
 * A whole (non-streamed) answer, status 200, before it is stored: 1 when
 * it is valid JSON, has no "error", and is complete: for chat and
 * completions every choice has a finish_reason of "stop", "length",
 * "tool_calls" or "function_call" (never "content_filter" nor null);
 * for embeddings a non-empty "data" list of embeddings.
 */
int ai_cache_storable(const char *body, size_t len, int endpoint);

/* the same answer, chat and completions read without a tree (other
   endpoints and bodies that reader leaves alone: the above) */
int ai_cache_storable_raw(const char *body, size_t len, int endpoint);


/*
 * Replay of a stored whole response on a hit.  The model becomes the one
 * the client asked for; usage is kept and marked as cached
 * (prompt_tokens_details.cached_tokens = prompt_tokens).  Returns 0, or
 * -1 when the stored body is not understood (the caller then treats the
 * hit as a miss).
 */
typedef struct {
    const char   *model;          /* the client's model; NULL: stored one */
    size_t        model_len;
    long          created;        /* 0: keep the stored "created" */
    int           include_usage;  /* SSE: stream_options.include_usage */
    size_t        chunk_bytes;    /* SSE: content per chunk; 0: default */
} ai_cache_replay_opts_t;

int ai_cache_replay_json(const char *stored, size_t len,
    const ai_cache_replay_opts_t *o, ai_buf_t *out);
int ai_cache_replay_sse(const char *stored, size_t len,
    const ai_cache_replay_opts_t *o, ai_buf_t *out);


/*
 * The non-streamed hit rendered once, when the entry is stored:
 * ai_cache_replay_json() of the stored body with its own model, plus
 * where the model's JSON string (quotes included) lies in it, and the
 * usage the client will see.  A hit then only swaps the model string:
 * out[0, model_off) + "client model" + out[model_off + model_len, ...)
 * is byte for byte what ai_cache_replay_json() gives for that model.
 * Returns 0, or -1 when the body has no string "model" at the top level
 * or is not understood (the hit is then replayed the slow way).
 */
typedef struct {
    size_t        model_off;
    size_t        model_len;
    long          prompt_tokens;
    long          completion_tokens;
    long          cached_tokens;
    int           usage_seen;
} ai_cache_hit_t;

int ai_cache_render_hit(const char *stored, size_t len, ai_buf_t *out,
    ai_cache_hit_t *hit);

/*
 * The streamed hit rendered once, at the entry's first streamed hit:
 * ai_cache_replay_sse() of the stored body with its own model and
 * stream_options.include_usage, plus where each event's model string lies
 * (edits[k], every one model_len bytes, quotes included), where its
 * ',"usage":null' lies (edits[nmodel + k]; AI_CACHE_SSE_NONE where it has
 * none) and where the usage event lies (usage_len 0: none).  A hit then
 * copies the events, swaps each model string and, unless include_usage
 * asked for them, leaves out the usage nulls and the usage event: byte
 * for byte what ai_cache_replay_sse() gives for that model and option.
 * edits is malloc'd (2 x nmodel); hit.model_off is unused, the usage
 * counts are the client's.  Returns 0, or -1 as ai_cache_render_hit()
 * does.  ai_cache_sse_free() frees edits.
 */
#define AI_CACHE_SSE_NONE  0xffffffffu

typedef struct {
    size_t           usage_off;
    size_t           usage_len;
    size_t           model_len;
    size_t           nmodel;
    uint32_t        *edits;
    ai_cache_hit_t   hit;
} ai_cache_sse_t;

int ai_cache_render_sse(const char *stored, size_t len, ai_buf_t *out,
    ai_cache_sse_t *sse);
void ai_cache_sse_free(ai_cache_sse_t *sse);

/*
 * A streamed hit from the rendered events (ev, len) for the client's
 * model, with or without the usage event: written to dst when dst is not
 * NULL; returns the length either way.
 */
size_t ai_cache_sse_hit(const char *ev, size_t len, const ai_cache_sse_t *sse,
    const unsigned char *model, size_t mlen, int include_usage, char *dst);


#endif /* _AI_CACHE_H_INCLUDED_ */
