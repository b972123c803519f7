
/*
 * The JSON index of ai_jtok.h: recursive descent with the depth bounded,
 * each value one token.  Strings are checked as jansson checks them (no
 * raw control characters, valid escapes, no \u0000, paired surrogates,
 * UTF-8 without overlongs, surrogates or code points past U+10FFFF).
 */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ai_jtok.h"
#include "ai_translate.h"               /* ai_buf_t */


typedef struct {
    ai_jdoc_t            *doc;
    const unsigned char  *p;
    const unsigned char  *last;
    int                   depth;
} ai_jparser_t;


static int ai_jtok_value(ai_jparser_t *jp);
static int ai_jdoc_parse_top(ai_jdoc_t *doc, const char *p, size_t len,
    int flags, int string);

/* bytes a string holds as they are: printable ASCII but '"' and '\\' */
static const unsigned char  ai_jtok_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
static int ai_jtok_string(ai_jparser_t *jp, uint32_t t);
static int ai_jtok_number(ai_jparser_t *jp, uint32_t t);


static inline void
ai_jtok_ws(ai_jparser_t *jp)
{
    while (jp->p < jp->last
           && (*jp->p == ' ' || *jp->p == '\n' || *jp->p == '\r'
               || *jp->p == '\t'))
    {
        jp->p++;
    }
}


static uint32_t
ai_jtok_new(ai_jparser_t *jp, int type)
{
    uint32_t    cap;
    ai_jdoc_t  *doc;
    ai_jtok_t  *t;

    doc = jp->doc;

    if (doc->n == doc->cap) {
        if (doc->cap >= AI_JTOK_MAX) {
            return (uint32_t) -1;
        }

        cap = doc->cap * 2;

        if (doc->tok == doc->inline_tok) {
            t = malloc(cap * sizeof(ai_jtok_t));

            if (t != NULL) {
                memcpy(t, doc->inline_tok, doc->n * sizeof(ai_jtok_t));
            }

        } else {
            t = realloc(doc->tok, cap * sizeof(ai_jtok_t));
        }

        if (t == NULL) {
            return (uint32_t) -1;
        }

        doc->tok = t;
        doc->cap = cap;
    }

    t = &doc->tok[doc->n];
    t->type = (uint8_t) type;
    t->escaped = 0;
    t->start = (uint32_t) (jp->p - doc->data);
    t->count = 0;

    return doc->n++;
}


int
ai_jdoc_parse(ai_jdoc_t *doc, const char *p, size_t len, int flags)
{
    return ai_jdoc_parse_top(doc, p, len, flags, 0);
}


int
ai_jdoc_parse_string(ai_jdoc_t *doc, const char *p, size_t len)
{
    return ai_jdoc_parse_top(doc, p, len, 0, 1);
}


static int
ai_jdoc_parse_top(ai_jdoc_t *doc, const char *p, size_t len, int flags,
    int string)
{
    ai_jparser_t  jp;

    if (doc->tok == NULL) {
        doc->tok = doc->inline_tok;
        doc->cap = AI_JTOK_INLINE;
    }

    doc->data = (const unsigned char *) p;
    doc->len = len;
    doc->n = 1;
    doc->key_escaped = 0;
    doc->valid = (flags & AI_JDOC_VALID) != 0;

    memset(&doc->tok[0], 0, sizeof(ai_jtok_t));
    doc->tok[0].next = 1;

    if (len >= UINT32_MAX) {
        return -1;
    }

    jp.doc = doc;
    jp.p = doc->data;
    jp.last = jp.p + len;
    jp.depth = 0;

    if (string) {
        /* one string literal, nothing around it */
        return (len == 0 || *jp.p != '"' || ai_jtok_value(&jp) != 0
                || jp.p != jp.last) ? -1 : 0;
    }

    ai_jtok_ws(&jp);

    /* jansson takes only an object or an array at the top */

    if (jp.p == jp.last || (*jp.p != '{' && *jp.p != '[')) {
        return -1;
    }

    if (ai_jtok_value(&jp) != 0) {
        return -1;
    }

    ai_jtok_ws(&jp);

    return jp.p == jp.last ? 0 : -1;
}


void
ai_jdoc_free(ai_jdoc_t *doc)
{
    if (doc->tok && doc->tok != doc->inline_tok) {
        free(doc->tok);
    }

    doc->tok = NULL;
    doc->cap = 0;
    doc->n = 0;
}


static int
ai_jtok_lit(ai_jparser_t *jp, const char *lit, size_t n, int type)
{
    uint32_t  t;

    if ((size_t) (jp->last - jp->p) < n || memcmp(jp->p, lit, n) != 0) {
        return -1;
    }

    t = ai_jtok_new(jp, type);

    if (t == (uint32_t) -1) {
        return -1;
    }

    jp->p += n;
    jp->doc->tok[t].end = (uint32_t) (jp->p - jp->doc->data);
    jp->doc->tok[t].next = t + 1;

    return 0;
}


static int
ai_jtok_value(ai_jparser_t *jp)
{
    int        rc, obj;
    uint32_t   t, k, count;
    ai_jtok_t *tok;

    if (jp->p == jp->last) {
        return -1;
    }

    switch (*jp->p) {

    case '"':
        t = ai_jtok_new(jp, AI_JT_STRING);
        return t == (uint32_t) -1 ? -1 : ai_jtok_string(jp, t);

    case 't':
        return ai_jtok_lit(jp, "true", 4, AI_JT_TRUE);

    case 'f':
        return ai_jtok_lit(jp, "false", 5, AI_JT_FALSE);

    case 'n':
        return ai_jtok_lit(jp, "null", 4, AI_JT_NULL);

    case '{':
    case '[':
        break;

    default:
        t = ai_jtok_new(jp, AI_JT_INTEGER);
        return t == (uint32_t) -1 ? -1 : ai_jtok_number(jp, t);
    }

    obj = (*jp->p == '{');

    if (++jp->depth > AI_JTOK_MAX_DEPTH) {
        return -1;
    }

    t = ai_jtok_new(jp, obj ? AI_JT_OBJECT : AI_JT_ARRAY);

    if (t == (uint32_t) -1) {
        return -1;
    }

    jp->p++;
    count = 0;

    ai_jtok_ws(jp);

    if (jp->p < jp->last && *jp->p == (obj ? '}' : ']')) {
        jp->p++;
        goto done;
    }

    for ( ;; ) {
        ai_jtok_ws(jp);

        if (obj) {
            if (jp->p == jp->last || *jp->p != '"') {
                return -1;
            }

            k = ai_jtok_new(jp, AI_JT_STRING);

            if (k == (uint32_t) -1 || ai_jtok_string(jp, k) != 0) {
                return -1;
            }

            if (jp->doc->tok[k].escaped) {
                jp->doc->key_escaped = 1;
            }

            ai_jtok_ws(jp);

            if (jp->p == jp->last || *jp->p != ':') {
                return -1;
            }

            jp->p++;
            ai_jtok_ws(jp);
        }

        rc = ai_jtok_value(jp);

        if (rc != 0) {
            return -1;
        }

        count++;

        ai_jtok_ws(jp);

        if (jp->p == jp->last) {
            return -1;
        }

        if (*jp->p == ',') {
            jp->p++;
            continue;
        }

        if (*jp->p == (obj ? '}' : ']')) {
            jp->p++;
            break;
        }

        return -1;
    }

done:

    jp->depth--;

    tok = &jp->doc->tok[t];
    tok->count = count;
    tok->end = (uint32_t) (jp->p - jp->doc->data);
    tok->next = jp->doc->n;

    return 0;
}


static int
ai_jtok_string(ai_jparser_t *jp, uint32_t t)
{
    unsigned              c, v;
    size_t                n;
    const unsigned char  *p, *last;

    p = jp->p + 1;
    last = jp->last;

    if (jp->doc->valid) {
        /* known JSON: the first quote without a backslash before it */

        for ( ;; ) {
            const unsigned char  *q, *bs;

            q = memchr(p, '"', last - p);

            if (q == NULL) {
                return -1;
            }

            bs = memchr(p, '\\', q - p);

            if (bs == NULL) {
                p = q + 1;
                break;
            }

            jp->doc->tok[t].escaped = 1;
            p = bs + 2;

            if (p > last) {
                return -1;
            }
        }

        goto done;
    }

    for ( ;; ) {
        /* the common run of plain ASCII */

        while (p < last && ai_jtok_plain[*p]) {
            p++;
        }

        if (p == last) {
            return -1;
        }

        c = *p;

        if (c == '"') {
            p++;
            break;
        }

        if (c < 0x20) {
            return -1;
        }

        if (c == '\\') {
            jp->doc->tok[t].escaped = 1;

            if (last - p < 2) {
                return -1;
            }

            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                continue;
            case 'u':
                break;
            default:
                return -1;
            }

            n = ai_json_unicode(p, last, &v);

            if (n == 0) {
                return -1;
            }

            p += n;

            continue;
        }

        /* UTF-8 */

        n = ai_json_utf8_len(p, last);

        if (n == 0) {
            return -1;
        }

        p += n;
    }

done:

    jp->p = p;
    jp->doc->tok[t].end = (uint32_t) (p - jp->doc->data);
    jp->doc->tok[t].next = t + 1;

    return 0;
}


static int
ai_jtok_number(ai_jparser_t *jp, uint32_t t)
{
    size_t                digits;
    double                d;
    const unsigned char  *p, *start;
    char                  buf[64];

    start = jp->p;
    p = start;

    if (p < jp->last && *p == '-') {
        p++;
    }

    if (p == jp->last || *p < '0' || *p > '9') {
        return -1;
    }

    if (*p == '0') {
        p++;

    } else {
        while (p < jp->last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    digits = p - start;

    if (p < jp->last && *p == '.') {
        jp->doc->tok[t].type = AI_JT_REAL;
        p++;

        if (p == jp->last || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < jp->last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < jp->last && (*p == 'e' || *p == 'E')) {
        jp->doc->tok[t].type = AI_JT_REAL;
        p++;

        if (p < jp->last && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == jp->last || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < jp->last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (jp->doc->tok[t].type == AI_JT_INTEGER) {
        /* 18 digits always fit a long long: no overflow to mirror */
        if (digits > 18) {
            return -1;
        }

    } else {
        /* jansson refuses a real that overflows */
        if ((size_t) (p - start) >= sizeof(buf)) {
            return -1;
        }

        memcpy(buf, start, p - start);
        buf[p - start] = '\0';

        errno = 0;
        d = strtod(buf, NULL);

        if (isinf(d) || isnan(d)) {
            return -1;
        }
    }

    jp->p = p;
    jp->doc->tok[t].end = (uint32_t) (p - jp->doc->data);
    jp->doc->tok[t].next = t + 1;

    return 0;
}


uint32_t
ai_jdoc_get(const ai_jdoc_t *doc, uint32_t obj, const char *key,
    size_t key_len)
{
    uint32_t          i, k, found;
    const ai_jtok_t  *t;

    if (obj == 0 || doc->tok[obj].type != AI_JT_OBJECT) {
        return 0;
    }

    found = 0;
    i = obj + 1;

    for (k = 0; k < doc->tok[obj].count; k++) {
        t = &doc->tok[i];

        if (t->end - t->start - 2 == key_len
            && memcmp(doc->data + t->start + 1, key, key_len) == 0)
        {
            found = i + 1;
        }

        i = doc->tok[i + 1].next;
    }

    return found;
}


int
ai_jdoc_is(const ai_jdoc_t *doc, uint32_t i, const char *s, size_t len)
{
    const ai_jtok_t  *t;

    if (i == 0) {
        return 0;
    }

    t = &doc->tok[i];

    return t->type == AI_JT_STRING && !t->escaped
           && t->end - t->start - 2 == len
           && memcmp(doc->data + t->start + 1, s, len) == 0;
}


long long
ai_jdoc_int(const ai_jdoc_t *doc, uint32_t i)
{
    int                   neg;
    long long             v;
    const unsigned char  *p, *last;

    p = doc->data + doc->tok[i].start;
    last = doc->data + doc->tok[i].end;

    neg = (*p == '-');
    p += neg;

    for (v = 0; p < last; p++) {
        v = v * 10 + (*p - '0');
    }

    return neg ? -v : v;
}


int
ai_jdoc_decode(const ai_jdoc_t *doc, uint32_t i, ai_buf_t *out)
{
    char                  u[4];
    size_t                n;
    unsigned              v;
    const unsigned char  *p, *last, *run;

    p = doc->data + doc->tok[i].start + 1;
    last = doc->data + doc->tok[i].end - 1;

    if (!doc->tok[i].escaped) {
        return ai_buf_append(out, (const char *) p, last - p);
    }

    /* the index checked the escapes: only their meaning is left */

    while (p < last) {
        run = p;

        while (p < last && *p != '\\') {
            p++;
        }

        if (p > run && ai_buf_append(out, (const char *) run, p - run) != 0) {
            return -1;
        }

        if (p == last) {
            break;
        }

        switch (p[1]) {
        case 'b':  u[0] = '\b'; n = 1; break;
        case 'f':  u[0] = '\f'; n = 1; break;
        case 'n':  u[0] = '\n'; n = 1; break;
        case 'r':  u[0] = '\r'; n = 1; break;
        case 't':  u[0] = '\t'; n = 1; break;
        case 'u':  n = 0; break;
        default:   u[0] = (char) p[1]; n = 1; break;     /* " \\ / */
        }

        if (n) {
            p += 2;

        } else {
            n = ai_json_unicode(p, last, &v);

            if (n == 0) {
                return -1;      /* only an index made AI_JDOC_VALID */
            }

            p += n;
            n = ai_json_utf8_put(u, v);
        }

        if (ai_buf_append(out, u, n) != 0) {
            return -1;
        }
    }

    return 0;
}


int
ai_jlike_keep(ai_jlike_t *l, const ai_jdoc_t *doc, uint32_t i)
{
    char    *b;
    size_t   n;

    l->kept = 0;
    n = doc->len - (doc->tok[i].end - doc->tok[i].start);

    if (n > l->cap) {
        b = realloc(l->bytes, n);

        if (b == NULL) {
            return -1;
        }

        l->bytes = b;
        l->cap = n;
    }

    l->head = doc->tok[i].start;
    l->tail = doc->len - doc->tok[i].end;

    memcpy(l->bytes, doc->data, l->head);
    memcpy(l->bytes + l->head, doc->data + doc->tok[i].end, l->tail);
    l->kept = 1;

    return 0;
}


int
ai_jlike_match(const ai_jlike_t *l, ai_jdoc_t *doc, const char *data,
    size_t len)
{
    return l->kept && len >= l->head + l->tail + 2
           && memcmp(data, l->bytes, l->head) == 0
           && memcmp(data + len - l->tail, l->bytes + l->head, l->tail) == 0
           && ai_jdoc_parse_string(doc, data + l->head,
                                   len - l->head - l->tail) == 0;
}


void
ai_jlike_free(ai_jlike_t *l)
{
    free(l->bytes);
    l->bytes = NULL;
    l->cap = 0;
    l->kept = 0;
}
