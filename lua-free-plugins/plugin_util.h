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


#endif /* AIGW_PLUGIN_UTIL_H */
