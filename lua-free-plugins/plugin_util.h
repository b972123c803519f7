/*
 * Small helpers shared by the plugins shipped with aigw (static, compiled
 * into each plugin: plugins stay self-contained shared objects).
 */

#ifndef AIGW_PLUGIN_UTIL_H
#define AIGW_PLUGIN_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "aigw_plugin.h"


#define PU_APPLY_REQUEST   1
#define PU_APPLY_RESPONSE  2


typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
} pu_buf_t;


static inline int
pu_buf_reserve(pu_buf_t *b, size_t more)
{
    size_t  cap;
    char   *p;

    if (b->len + more <= b->cap) {
        return 0;
    }

    cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        return -1;
    }

    b->data = p;
    b->cap = cap;
    return 0;
}


static inline int
pu_buf_append(pu_buf_t *b, const char *s, size_t n)
{
    if (n == 0) {
        return 0;
    }

    if (pu_buf_reserve(b, n) != 0) {
        return -1;
    }

    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}


static inline void
pu_buf_free(pu_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}


/* apply=request|response|both */
static inline int
pu_parse_apply(const char *v, int *apply)
{
    if (strcmp(v, "request") == 0) {
        *apply = PU_APPLY_REQUEST;
    } else if (strcmp(v, "response") == 0) {
        *apply = PU_APPLY_RESPONSE;
    } else if (strcmp(v, "both") == 0) {
        *apply = PU_APPLY_REQUEST | PU_APPLY_RESPONSE;
    } else {
        return -1;
    }

    return 0;
}


/* on|off|yes|no|true|false|1|0 */
static inline int
pu_parse_bool(const char *v, int *b)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "yes") == 0
        || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
    {
        *b = 1;
    } else if (strcmp(v, "off") == 0 || strcmp(v, "no") == 0
               || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
    {
        *b = 0;
    } else {
        return -1;
    }

    return 0;
}


/*
 * Length of s[0..len) without a trailing incomplete UTF-8 sequence, so that
 * text emitted mid-stream never ends inside a character.
 */
static inline size_t
pu_utf8_complete(const char *s, size_t len)
{
    size_t         i, need;
    unsigned char  c;

    for (i = 1; i <= 4 && i <= len; i++) {
        c = (unsigned char) s[len - i];

        if (c < 0x80) {
            return len;                       /* ASCII: complete */
        }

        if (c >= 0xc0) {                      /* lead byte */
            need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            return i >= need ? len : len - i;
        }
    }

    return len;                               /* not UTF-8: leave as is */
}


/*
 * Calls fn(ctx, str, param) for every string of prompt text in an OpenAI
 * request: messages[].content (a string or text parts), prompt, input,
 * instructions.  fn may replace the string in place (json_string_setn) and
 * returns 0 to go on, or non-zero to stop the walk (returned as is).
 */
typedef int (*pu_text_fn)(void *ctx, json_t *str, const char *param);


static inline int
pu_walk_value(json_t *v, const char *param, pu_text_fn fn, void *ctx)
{
    int      rc;
    size_t   i;
    json_t  *e, *t;

    if (json_is_string(v)) {
        return fn(ctx, v, param);
    }

    if (!json_is_array(v)) {
        return 0;
    }

    json_array_foreach(v, i, e) {
        if (json_is_string(e)) {
            rc = fn(ctx, e, param);

        } else if (json_is_object(e)) {
            t = json_object_get(e, "text");
            rc = json_is_string(t) ? fn(ctx, t, param) : 0;

            if (rc == 0) {
                /* Responses API input items carry their own content */
                t = json_object_get(e, "content");
                rc = t ? pu_walk_value(t, param, fn, ctx) : 0;
            }

        } else {
            rc = 0;
        }

        if (rc != 0) {
            return rc;
        }
    }

    return 0;
}


static inline int
pu_walk_request_text(json_t *body, pu_text_fn fn, void *ctx)
{
    int      rc;
    size_t   i;
    json_t  *msgs, *m, *c;

    if (!json_is_object(body)) {
        return 0;
    }

    msgs = json_object_get(body, "messages");
    if (json_is_array(msgs)) {
        json_array_foreach(msgs, i, m) {
            c = json_object_get(m, "content");
            if (c != NULL) {
                rc = pu_walk_value(c, "messages", fn, ctx);
                if (rc != 0) {
                    return rc;
                }
            }
        }
    }

    rc = pu_walk_value(json_object_get(body, "prompt"), "prompt", fn, ctx);
    if (rc == 0) {
        rc = pu_walk_value(json_object_get(body, "input"), "input", fn, ctx);
    }
    if (rc == 0) {
        rc = pu_walk_value(json_object_get(body, "instructions"),
                           "instructions", fn, ctx);
    }

    return rc;
}

#endif /* AIGW_PLUGIN_UTIL_H */
