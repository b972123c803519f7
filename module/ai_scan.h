
/*
 * A single-pass, allocation-free JSON reader for the gateway's fast path.
 * It validates the whole document (RFC 8259: grammar, escapes, UTF-8,
 * nesting depth, duplicate top-level keys) and picks out what routing and
 * validation need, so that a request forwarded unchanged to an
 * OpenAI-compatible provider never builds a jansson tree.  Anything that
 * needs the tree (translation, cache keys, plugins) parses it with jansson
 * on demand.
 */

#ifndef _AI_SCAN_H_INCLUDED_
#define _AI_SCAN_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ai_json.h"


#define AI_JT_NONE      0          /* absent */
#define AI_JT_OBJECT    1
#define AI_JT_ARRAY     2
#define AI_JT_STRING    3
#define AI_JT_INTEGER   4
#define AI_JT_REAL      5
#define AI_JT_TRUE      6
#define AI_JT_FALSE     7
#define AI_JT_NULL      8

#define AI_SCAN_MAX_DEPTH  512

/* what is wrong with the first bad element of "messages" */
#define AI_MSG_OK               0
#define AI_MSG_NOT_OBJECT       1
#define AI_MSG_NO_ROLE          2
#define AI_MSG_ROLE_TYPE        3
#define AI_MSG_CONTENT_TYPE     4


typedef struct {
    int             root_type;

    int             model_type;
    const unsigned char *model;    /* the raw string, quotes excluded */
    size_t          model_len;
    unsigned        model_escaped:1;

    int             stream_type;
    int             stream_options_type;
    int             include_usage;    /* stream_options.include_usage */

    int             messages_type;
    size_t          messages_count;
    int             msg_error;        /* AI_MSG_*, of message msg_index */
    size_t          msg_index;
    int             msg_error_type;   /* the offending value's type */

    int             prompt_type;
    int             input_type;
    size_t          input_count;

    int64_t         max_tokens;       /* -1: not given */

    /* what the cache policy needs (ai_cache_cacheable() says the same) */
    unsigned        temperature_zero:1;
    unsigned        has_seed:1;
    unsigned        n_not_one:1;

    size_t          text_bytes;       /* in messages, prompt and input */
} ai_scan_t;


int ai_scan(const unsigned char *p, size_t len, ai_scan_t *out,
    char *err, size_t errlen);
int ai_scan_validate(const ai_scan_t *s, int endpoint, ai_json_error_t *err);


#endif /* _AI_SCAN_H_INCLUDED_ */
