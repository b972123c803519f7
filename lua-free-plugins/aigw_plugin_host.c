/*
 * aigw plugin host: dlopen, ABI check, option parsing, chain runner.
 */

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aigw_plugin_host.h"


struct aigw_instance_s {
    char                 *name;
    void                 *dl;
    const aigw_plugin_t  *plugin;
    void                 *conf;
};


enum {
    AIGW_CHOICE_IDLE = 0,
    AIGW_CHOICE_STREAMING,
    AIGW_CHOICE_FLUSHED
};


/* where a request text lives: its span in the client's bytes, or its
 * string in the tree */
typedef struct {
    size_t               start;       /* bytes: quotes excluded */
    size_t               end;
    json_t              *str;         /* tree */
    char                *own;         /* decoded or replaced text */
    size_t               out_len;     /* spliced, escaped */
    unsigned             changed:1;
} aigw_text_slot_t;


#define AIGW_RUN_TEXTS  8           /* held in the run, no allocation */


struct aigw_run_s {
    const aigw_chain_t  *chain;
    aigw_request_t      *req;
    void               **state;
    unsigned char       *choices;     /* AIGW_CHOICE_* per choice index */
    size_t               nchoices;

    aigw_text_t         *texts;
    aigw_text_slot_t    *slots;
    size_t               ntexts;
    size_t               textcap;
    int                  text_changed;

    aigw_text_t          texts_in[AIGW_RUN_TEXTS];
    aigw_text_slot_t     slots_in[AIGW_RUN_TEXTS];

    const char          *raw;         /* aigw_run_request_bytes() */
    size_t               raw_len;
    json_t              *tree;        /* parsed here from raw */
    char                *spliced;
    size_t               spliced_len;
};


typedef const aigw_plugin_t *(*aigw_entry_pt)(void);


/* ---- JSON without a tree -------------------------------------------- */

#define AIGW_JSON_MAX_DEPTH  64


static const char *
aigw_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    return p;
}


/* p at '"': returns just past the closing quote, NULL if there is none */
static const char *
aigw_json_string_end(const char *p, const char *end, int *escaped)
{
    const char  *q;

    *escaped = 0;

    for (p++; p < end; p = q + 1) {
        q = memchr(p, '"', (size_t) (end - p));
        if (q == NULL) {
            return NULL;
        }

        if (!*escaped && memchr(p, '\\', (size_t) (q - p)) != NULL) {
            *escaped = 1;
        }

        if (*escaped) {
            /* an odd run of backslashes before it escapes the quote */
            size_t  n = 0;

            while ((size_t) (q - p) > n && q[-1 - (ptrdiff_t) n] == '\\') {
                n++;
            }

            if (n % 2) {
                continue;
            }
        }

        return q + 1;
    }

    return NULL;
}


/* skips one value; NULL on malformed input */
static const char *
aigw_json_skip(const char *p, const char *end)
{
    int     esc;
    size_t  depth;

    depth = 0;

    while (p < end) {
        switch (*p) {
        case '"':
            p = aigw_json_string_end(p, end, &esc);
            if (p == NULL) {
                return NULL;
            }
            break;

        case '{':
        case '[':
            depth++;
            p++;
            break;

        case '}':
        case ']':
            if (depth == 0) {
                return NULL;
            }
            depth--;
            p++;
            break;

        default:
            if (depth == 0 && (*p == ',' || *p == ':')) {
                return NULL;
            }
            p++;
            if (depth == 0) {
                /* a scalar: up to its end */
                while (p < end && *p != ',' && *p != '}' && *p != ']'
                       && *p != ' ' && *p != '\n' && *p != '\r'
                       && *p != '\t')
                {
                    p++;
                }
                return p;
            }
            continue;
        }

        if (depth == 0) {
            return p;
        }
    }

    return NULL;
}


static int
aigw_hex4(const char *s, unsigned *v)
{
    int  i;

    *v = 0;
    for (i = 0; i < 4; i++) {
        *v <<= 4;
        if (s[i] >= '0' && s[i] <= '9') {
            *v |= (unsigned) (s[i] - '0');
        } else if ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f') {
            *v |= (unsigned) ((s[i] | 0x20) - 'a' + 10);
        } else {
            return -1;
        }
    }

    return 0;
}


int
aigw_json_unescape(const char *s, size_t len, char *dst, size_t *dlen)
{
    char        *d;
    unsigned     c, lo;
    const char  *end;

    d = dst;
    end = s + len;

    while (s < end) {
        if (*s != '\\') {
            *d++ = *s++;
            continue;
        }

        if (end - s < 2) {
            return -1;
        }

        switch (s[1]) {
        case '"': case '\\': case '/':
            *d++ = s[1];
            s += 2;
            continue;
        case 'b': *d++ = '\b'; s += 2; continue;
        case 'f': *d++ = '\f'; s += 2; continue;
        case 'n': *d++ = '\n'; s += 2; continue;
        case 'r': *d++ = '\r'; s += 2; continue;
        case 't': *d++ = '\t'; s += 2; continue;
        case 'u':
            break;
        default:
            return -1;
        }

        if (end - s < 6 || aigw_hex4(s + 2, &c) != 0 || c == 0) {
            return -1;
        }
        s += 6;

        if (c >= 0xdc00 && c <= 0xdfff) {
            return -1;
        }

        if (c >= 0xd800 && c <= 0xdbff) {
            if (end - s < 6 || s[0] != '\\' || s[1] != 'u'
                || aigw_hex4(s + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
            {
                return -1;
            }
            s += 6;
            c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
        }

        /* never longer than the escape it comes from */
        if (c < 0x80) {
            *d++ = (char) c;
        } else if (c < 0x800) {
            *d++ = (char) (0xc0 | (c >> 6));
            *d++ = (char) (0x80 | (c & 0x3f));
        } else if (c < 0x10000) {
            *d++ = (char) (0xe0 | (c >> 12));
            *d++ = (char) (0x80 | ((c >> 6) & 0x3f));
            *d++ = (char) (0x80 | (c & 0x3f));
        } else {
            *d++ = (char) (0xf0 | (c >> 18));
            *d++ = (char) (0x80 | ((c >> 12) & 0x3f));
            *d++ = (char) (0x80 | ((c >> 6) & 0x3f));
            *d++ = (char) (0x80 | (c & 0x3f));
        }
    }

    *dlen = (size_t) (d - dst);
    return 0;
}


#define AIGW_ONES   0x0101010101010101ULL
#define AIGW_HIGHS  0x8080808080808080ULL
#define AIGW_ZERO_BYTE(x)  (((x) - AIGW_ONES) & ~(x) & AIGW_HIGHS)


/* how many bytes from s on need no JSON escape, eight at a time */
static size_t
aigw_json_plain(const char *s, size_t len)
{
    size_t         i;
    uint64_t       w;
    unsigned char  c;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);

        /* a control byte (< 0x20), a quote or a backslash */
        if ((((w - 0x2020202020202020ULL) & ~w)
             | AIGW_ZERO_BYTE(w ^ 0x2222222222222222ULL)
             | AIGW_ZERO_BYTE(w ^ 0x5c5c5c5c5c5c5c5cULL)) & AIGW_HIGHS)
        {
            break;
        }
    }

    for ( ; i < len; i++) {
        c = (unsigned char) s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            break;
        }
    }

    return i;
}


size_t
aigw_json_escape(char *dst, const char *s, size_t len)
{
    size_t         i, n, run;
    unsigned char  c;
    static const char  hex[] = "0123456789abcdef";

    n = 0;

    for (i = 0; i < len; i++) {
        run = aigw_json_plain(s + i, len - i);

        if (run) {
            if (dst) {
                memcpy(dst + n, s + i, run);
            }
            n += run;
            i += run;

            if (i == len) {
                break;
            }
        }

        c = (unsigned char) s[i];

        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t'
            || c == '\b' || c == '\f')
        {
            if (dst) {
                dst[n] = '\\';
                dst[n + 1] = c == '\n' ? 'n' : c == '\r' ? 'r'
                             : c == '\t' ? 't' : c == '\b' ? 'b'
                             : c == '\f' ? 'f' : (char) c;
            }
            n += 2;
            continue;
        }

        if (dst) {
            memcpy(dst + n, "\\u00", 4);
            dst[n + 4] = hex[c >> 4];
            dst[n + 5] = hex[c & 15];
        }
        n += 6;
    }

    return n;
}


/*
 * An object member's key: p at '"'.  Sets *k to the decoded key (in buf
 * when it had escapes; "" when too long to be one we look for) and returns
 * just past the ':' and the blanks after it.
 */
static const char *
aigw_json_key(const char *p, const char *end, char *buf, size_t size,
    const char **k, size_t *klen)
{
    int          esc;
    const char  *q;

    if (p >= end || *p != '"') {
        return NULL;
    }

    q = aigw_json_string_end(p, end, &esc);
    if (q == NULL) {
        return NULL;
    }

    *k = p + 1;
    *klen = (size_t) (q - p - 2);

    if (esc) {
        if (*klen > size
            || aigw_json_unescape(p + 1, *klen, buf, klen) != 0)
        {
            *klen = 0;
        }
        *k = buf;
    }

    q = aigw_json_ws(q, end);
    if (q >= end || *q != ':') {
        return NULL;
    }

    return aigw_json_ws(q + 1, end);
}


/* after a value: ',' (returns past it, *more = 1) or the closing byte */
static const char *
aigw_json_next(const char *p, const char *end, char close, int *more)
{
    p = aigw_json_ws(p, end);

    if (p < end && *p == ',') {
        *more = 1;
        return aigw_json_ws(p + 1, end);
    }

    if (p < end && *p == close) {
        *more = 0;
        return p + 1;
    }

    return NULL;
}


#define AIGW_KEY_IS(k, n, lit)                                              \
    ((n) == sizeof(lit) - 1 && memcmp(k, lit, sizeof(lit) - 1) == 0)


/* ---- request texts from bytes ---------------------------------------- */

/* past the few texts the run holds itself */
static int
aigw_texts_grow(aigw_run_t *run)
{
    size_t             cap;
    aigw_text_t       *t;
    aigw_text_slot_t  *s;

    cap = run->textcap * 2;

    t = malloc(cap * sizeof(aigw_text_t));
    s = malloc(cap * sizeof(aigw_text_slot_t));
    if (t == NULL || s == NULL) {
        free(t);
        free(s);
        return -1;
    }

    memcpy(t, run->texts, run->ntexts * sizeof(aigw_text_t));
    memcpy(s, run->slots, run->ntexts * sizeof(aigw_text_slot_t));

    if (run->texts != run->texts_in) {
        free(run->texts);
        free(run->slots);
    }

    run->texts = t;
    run->slots = s;
    run->textcap = cap;

    return 0;
}


static int
aigw_text_add(aigw_run_t *run, const char *p, const char *q, int esc,
    const char *param)
{
    size_t             n, len;
    char              *own;

    if (run->ntexts == run->textcap && aigw_texts_grow(run) != 0) {
        return -1;
    }

    n = run->ntexts;
    len = (size_t) (q - p - 2);
    memset(&run->slots[n], 0, sizeof(aigw_text_slot_t));
    run->slots[n].start = (size_t) (p + 1 - run->raw);
    run->slots[n].end = run->slots[n].start + len;

    run->texts[n].param = param;
    run->texts[n].text = p + 1;
    run->texts[n].len = len;

    if (esc) {
        own = malloc(len ? len : 1);
        if (own == NULL) {
            return -1;
        }

        run->slots[n].own = own;
        run->ntexts++;

        if (aigw_json_unescape(p + 1, len, own, &run->texts[n].len) != 0) {
            return -1;
        }

        run->texts[n].text = own;
        return 0;
    }

    run->ntexts++;
    return 0;
}


/*
 * A prompt value: a string, or an array of strings and parts (an object's
 * "text" string and its "content", recursively), as aigw_tree_value()
 * reads a tree.  Returns the end of the value, NULL to fall back to the tree.
 */
static const char *
aigw_texts_value(aigw_run_t *run, const char *p, const char *end,
    const char *param, int depth)
{
    int          esc, more;
    char         kb[16];
    size_t       klen;
    const char  *q, *k;

    if (depth > AIGW_JSON_MAX_DEPTH || p >= end) {
        return NULL;
    }

    if (*p == '"') {
        q = aigw_json_string_end(p, end, &esc);
        if (q == NULL || aigw_text_add(run, p, q, esc, param) != 0) {
            return NULL;
        }
        return q;
    }

    if (*p != '[') {
        return aigw_json_skip(p, end);
    }

    p = aigw_json_ws(p + 1, end);
    if (p < end && *p == ']') {
        return p + 1;
    }

    for (more = 1; more; ) {
        if (p >= end) {
            return NULL;
        }

        if (*p == '"') {
            q = aigw_json_string_end(p, end, &esc);
            if (q == NULL || aigw_text_add(run, p, q, esc, param) != 0) {
                return NULL;
            }
            p = q;

        } else if (*p == '{') {
            p = aigw_json_ws(p + 1, end);
            if (p < end && *p == '}') {
                p++;

            } else {
                for (more = 1; more; ) {
                    p = aigw_json_key(p, end, kb, sizeof(kb), &k, &klen);
                    if (p == NULL) {
                        return NULL;
                    }

                    if (AIGW_KEY_IS(k, klen, "text") && p < end && *p == '"')
                    {
                        p = aigw_texts_value(run, p, end, param, depth + 1);

                    } else if (AIGW_KEY_IS(k, klen, "content")) {
                        p = aigw_texts_value(run, p, end, param, depth + 1);

                    } else {
                        p = aigw_json_skip(p, end);
                    }

                    if (p == NULL
                        || (p = aigw_json_next(p, end, '}', &more)) == NULL)
                    {
                        return NULL;
                    }
                }
            }

        } else {
            p = aigw_json_skip(p, end);
            if (p == NULL) {
                return NULL;
            }
        }

        p = aigw_json_next(p, end, ']', &more);
        if (p == NULL) {
            return NULL;
        }
    }

    return p;
}


/* one of messages[]: its "content" */
static const char *
aigw_texts_message(aigw_run_t *run, const char *p, const char *end)
{
    int          more;
    char         kb[16];
    size_t       klen;
    const char  *k;

    p = aigw_json_ws(p + 1, end);
    if (p < end && *p == '}') {
        return p + 1;
    }

    for (more = 1; more; ) {
        p = aigw_json_key(p, end, kb, sizeof(kb), &k, &klen);
        if (p == NULL) {
            return NULL;
        }

        p = AIGW_KEY_IS(k, klen, "content")
            ? aigw_texts_value(run, p, end, "messages", 0)
            : aigw_json_skip(p, end);

        if (p == NULL || (p = aigw_json_next(p, end, '}', &more)) == NULL) {
            return NULL;
        }
    }

    return p;
}


/* 0, or -1: not simple (or out of memory), use the tree */
static int
aigw_texts_from_bytes(aigw_run_t *run)
{
    int          more, more2;
    char         kb[16];
    size_t       klen;
    const char  *p, *end, *k, *param;

    p = aigw_json_ws(run->raw, run->raw + run->raw_len);
    end = run->raw + run->raw_len;

    if (p >= end || *p != '{') {
        return -1;
    }

    p = aigw_json_ws(p + 1, end);
    if (p < end && *p == '}') {
        return 0;
    }

    for (more = 1; more; ) {
        p = aigw_json_key(p, end, kb, sizeof(kb), &k, &klen);
        if (p == NULL) {
            return -1;
        }

        param = AIGW_KEY_IS(k, klen, "prompt") ? "prompt"
                : AIGW_KEY_IS(k, klen, "input") ? "input"
                : AIGW_KEY_IS(k, klen, "instructions") ? "instructions"
                : NULL;

        if (param != NULL) {
            p = aigw_texts_value(run, p, end, param, 0);

        } else if (AIGW_KEY_IS(k, klen, "messages") && p < end && *p == '[')
        {
            p = aigw_json_ws(p + 1, end);

            if (p < end && *p == ']') {
                p++;

            } else {
                for (more2 = 1; more2 && p != NULL; ) {
                    if (p < end && *p == '{') {
                        p = aigw_texts_message(run, p, end);
                    } else {
                        p = aigw_json_skip(p, end);
                    }

                    if (p != NULL) {
                        p = aigw_json_next(p, end, ']', &more2);
                    }
                }
            }

        } else {
            p = aigw_json_skip(p, end);
        }

        if (p == NULL || (p = aigw_json_next(p, end, '}', &more)) == NULL) {
            return -1;
        }
    }

    return aigw_json_ws(p, end) == end ? 0 : -1;
}


/* ---- request texts from the tree ------------------------------------- */

static int
aigw_tree_add(aigw_run_t *run, json_t *str, const char *param)
{
    size_t             n;

    if (run->ntexts == run->textcap && aigw_texts_grow(run) != 0) {
        return -1;
    }

    n = run->ntexts++;
    memset(&run->slots[n], 0, sizeof(aigw_text_slot_t));
    run->slots[n].str = str;
    run->texts[n].text = json_string_value(str);
    run->texts[n].len = json_string_length(str);
    run->texts[n].param = param;

    return 0;
}


static int
aigw_tree_value(aigw_run_t *run, json_t *v, const char *param, int depth)
{
    size_t   i;
    json_t  *e, *t;

    if (json_is_string(v)) {
        return aigw_tree_add(run, v, param);
    }

    if (!json_is_array(v) || depth > AIGW_JSON_MAX_DEPTH) {
        return 0;
    }

    json_array_foreach(v, i, e) {
        if (json_is_string(e)) {
            if (aigw_tree_add(run, e, param) != 0) {
                return -1;
            }

        } else if (json_is_object(e)) {
            t = json_object_get(e, "text");
            if (json_is_string(t) && aigw_tree_add(run, t, param) != 0) {
                return -1;
            }

            t = json_object_get(e, "content");
            if (t && aigw_tree_value(run, t, param, depth + 1) != 0) {
                return -1;
            }
        }
    }

    return 0;
}


static void
aigw_texts_clear(aigw_run_t *run)
{
    size_t  i;

    for (i = 0; i < run->ntexts; i++) {
        free(run->slots[i].own);
    }

    run->ntexts = 0;
}


static int
aigw_texts_from_tree(aigw_run_t *run, json_t *body)
{
    size_t   i;
    json_t  *msgs, *m;

    aigw_texts_clear(run);

    if (!json_is_object(body)) {
        return 0;
    }

    msgs = json_object_get(body, "messages");
    if (json_is_array(msgs)) {
        json_array_foreach(msgs, i, m) {
            if (aigw_tree_value(run, json_object_get(m, "content"),
                                "messages", 0) != 0)
            {
                return -1;
            }
        }
    }

    if (aigw_tree_value(run, json_object_get(body, "prompt"), "prompt", 0)
        || aigw_tree_value(run, json_object_get(body, "input"), "input", 0)
        || aigw_tree_value(run, json_object_get(body, "instructions"),
                           "instructions", 0))
    {
        return -1;
    }

    return 0;
}


static int
aigw_utf8_valid(const char *s, size_t len)
{
    size_t         i, n, k;
    unsigned       c, cp;

    for (i = 0; i < len; i += n) {
        c = (unsigned char) s[i];

        if (c < 0x80) {
            uint64_t  w;

            /* ASCII eight at a time */
            for (n = 1; i + n + 8 <= len; n += 8) {
                memcpy(&w, s + i + n, 8);
                if (w & AIGW_HIGHS) {
                    break;
                }
            }
            continue;
        }

        n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > len) {
            return 0;
        }

        cp = c & (0xff >> (n + 1));
        for (k = 1; k < n; k++) {
            if (((unsigned char) s[i + k] >> 6) != 2) {
                return 0;
            }
            cp = (cp << 6) | ((unsigned char) s[i + k] & 0x3f);
        }

        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800)
            || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
            || (cp >= 0xd800 && cp <= 0xdfff))
        {
            return 0;
        }
    }

    return 1;
}


static int
aigw_set_text(aigw_request_t *req, size_t i, const char *text, size_t len)
{
    char              *own;
    aigw_run_t        *run = req->runner;
    aigw_text_slot_t  *s;

    if (run == NULL || i >= run->ntexts || (text == NULL && len)
        || !aigw_utf8_valid(text, len) || memchr(text, '\0', len) != NULL)
    {
        return -1;
    }

    s = &run->slots[i];

    if (s->str != NULL) {
        if (json_string_setn(s->str, len ? text : "", len) != 0) {
            return -1;
        }

        run->texts[i].text = json_string_value(s->str);
        run->texts[i].len = json_string_length(s->str);
        run->text_changed = 1;
        return 0;
    }

    own = malloc(len ? len : 1);
    if (own == NULL) {
        return -1;
    }

    if (len) {
        memcpy(own, text, len);
    }

    free(s->own);
    s->own = own;
    s->changed = 1;
    run->texts[i].text = own;
    run->texts[i].len = len;
    run->text_changed = 1;

    return 0;
}


/* the client's bytes with every changed text, escaped, in its place */
static int
aigw_splice(aigw_run_t *run)
{
    char    *out, *o;
    size_t   i, len, at;

    len = run->raw_len;
    for (i = 0; i < run->ntexts; i++) {
        if (run->slots[i].changed) {
            run->slots[i].out_len = aigw_json_escape(NULL,
                                                     run->texts[i].text,
                                                     run->texts[i].len);
            len += run->slots[i].out_len;
            len -= run->slots[i].end - run->slots[i].start;
        }
    }

    out = malloc(len ? len : 1);
    if (out == NULL) {
        return -1;
    }

    o = out;
    at = 0;

    for (i = 0; i < run->ntexts; i++) {
        if (!run->slots[i].changed) {
            continue;
        }

        memcpy(o, run->raw + at, run->slots[i].start - at);
        o += run->slots[i].start - at;
        o += aigw_json_escape(o, run->texts[i].text, run->texts[i].len);
        at = run->slots[i].end;
    }

    memcpy(o, run->raw + at, run->raw_len - at);

    free(run->spliced);
    run->spliced = out;
    run->spliced_len = len;

    return 0;
}


/* ---- answers: choices[] without a tree ------------------------------- */

static const char *
aigw_choice_member(const char *p, const char *end, aigw_choice_span_t *c,
    const char *base)
{
    int          more, esc, seen_content;
    char         kb[16];
    size_t       klen;
    const char  *k, *q;

    c->obj = (size_t) (p + 1 - base);
    p = aigw_json_ws(p + 1, end);

    if (p < end && *p == '}') {
        c->obj_empty = 1;
        return p + 1;
    }

    seen_content = 0;

    for (more = 1; more; ) {
        p = aigw_json_key(p, end, kb, sizeof(kb), &k, &klen);
        if (p == NULL) {
            return NULL;
        }

        if (AIGW_KEY_IS(k, klen, "content")) {
            if (seen_content++) {
                return NULL;
            }

            c->vstart = (size_t) (p - base);

            if (p < end && *p == '"') {
                q = aigw_json_string_end(p, end, &esc);
                c->content_string = 1;
                c->content_escaped = esc;
            } else {
                q = aigw_json_skip(p, end);
            }

            if (q == NULL) {
                return NULL;
            }

            c->vend = (size_t) (q - base);
            p = q;

        } else {
            p = aigw_json_skip(p, end);
        }

        if (p == NULL || (p = aigw_json_next(p, end, '}', &more)) == NULL) {
            return NULL;
        }
    }

    return p;
}


static const char *
aigw_choice(const char *p, const char *end, const char *member,
    size_t mlen, aigw_choice_span_t *c, const char *base)
{
    int                 more, seen;
    char                kb[16];
    size_t              klen;
    const char         *k, *q;
    unsigned long long  idx;

    memset(c, 0, sizeof(aigw_choice_span_t));

    p = aigw_json_ws(p + 1, end);
    if (p < end && *p == '}') {
        return p + 1;
    }

    seen = 0;

    for (more = 1; more; ) {
        p = aigw_json_key(p, end, kb, sizeof(kb), &k, &klen);
        if (p == NULL) {
            return NULL;
        }

        if (AIGW_KEY_IS(k, klen, "index")) {
            if (seen & 1) {
                return NULL;
            }
            seen |= 1;

            q = aigw_json_skip(p, end);
            if (q == NULL) {
                return NULL;
            }

            /* json_integer_value(): 0 unless an integer (one beyond
             * long long does not parse at all) */
            idx = 0;
            if (*p == '-' || (*p >= '0' && *p <= '9')) {
                const char  *d = *p == '-' ? p + 1 : p;

                for ( ; d < q && *d >= '0' && *d <= '9'; d++) {
                    if (idx > (~0ULL >> 1) / 10) {
                        break;
                    }
                    idx = idx * 10 + (unsigned long long) (*d - '0');
                }

                if (d != q) {
                    idx = 0;
                } else if (*p == '-') {
                    idx = 0ULL - idx;
                }
            }

            c->index = idx;
            p = q;

        } else if (klen == mlen && memcmp(k, member, mlen) == 0) {
            if (seen & 2) {
                return NULL;
            }
            seen |= 2;

            p = (p < end && *p == '{') ? aigw_choice_member(p, end, c, base)
                                       : aigw_json_skip(p, end);

        } else if (AIGW_KEY_IS(k, klen, "finish_reason")) {
            if (seen & 4) {
                return NULL;
            }
            seen |= 4;

            c->finish = p < end && *p == '"';
            p = aigw_json_skip(p, end);

        } else {
            p = aigw_json_skip(p, end);
        }

        if (p == NULL || (p = aigw_json_next(p, end, '}', &more)) == NULL) {
            return NULL;
        }
    }

    return p;
}


int
aigw_json_choices(const char *p, size_t len, const char *member,
    aigw_choice_span_t *c, size_t max)
{
    int          more, more2, seen;
    char         kb[16];
    size_t       klen, n, mlen;
    const char  *k, *end, *base;

    base = p;
    end = p + len;
    mlen = strlen(member);
    n = 0;
    seen = 0;

    p = aigw_json_ws(p, end);
    if (p >= end || *p != '{') {
        return -1;
    }

    p = aigw_json_ws(p + 1, end);
    if (p < end && *p == '}') {
        return -1;
    }

    for (more = 1; more; ) {
        p = aigw_json_key(p, end, kb, sizeof(kb), &k, &klen);
        if (p == NULL) {
            return -1;
        }

        if (AIGW_KEY_IS(k, klen, "choices")) {
            if (seen++ || p >= end || *p != '[') {
                return -1;
            }

            p = aigw_json_ws(p + 1, end);

            if (p < end && *p == ']') {
                p++;

            } else {
                for (more2 = 1; more2 && p != NULL; ) {
                    if (p < end && *p == '{') {
                        if (n == max) {
                            return -1;
                        }
                        p = aigw_choice(p, end, member, mlen, &c[n++], base);

                    } else {
                        /* not an object: nothing to read, like the tree */
                        p = aigw_json_skip(p, end);
                    }

                    if (p != NULL) {
                        p = aigw_json_next(p, end, ']', &more2);
                    }
                }
            }

        } else {
            p = aigw_json_skip(p, end);
        }

        if (p == NULL || (p = aigw_json_next(p, end, '}', &more)) == NULL) {
            return -1;
        }
    }

    if (!seen || aigw_json_ws(p, end) != end) {
        return -1;
    }

    return (int) n;
}


static int
aigw_key_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}


int
aigw_kv_parse(const char *const *args, size_t nargs, aigw_kv_t **kv,
    char **store, char *err, size_t errlen)
{
    size_t      i, total, len;
    char       *p, *eq, *k;
    aigw_kv_t  *out;

    *kv = NULL;
    *store = NULL;

    total = 1;
    for (i = 0; i < nargs; i++) {
        total += strlen(args[i]) + 1;
    }

    out = calloc(nargs ? nargs : 1, sizeof(aigw_kv_t));
    p = malloc(total);
    if (out == NULL || p == NULL) {
        free(out);
        free(p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    *store = p;

    for (i = 0; i < nargs; i++) {
        len = strlen(args[i]);
        memcpy(p, args[i], len + 1);

        eq = strchr(p, '=');
        if (eq == NULL || eq == p) {
            snprintf(err, errlen, "bad argument \"%s\": expected key=value",
                     args[i]);
            goto failed;
        }

        for (k = p; k < eq; k++) {
            if (!aigw_key_char((unsigned char) *k)) {
                snprintf(err, errlen, "bad argument \"%s\": invalid character "
                         "in key", args[i]);
                goto failed;
            }
        }

        *eq = '\0';
        out[i].key = p;
        out[i].value = eq + 1;
        p += len + 1;
    }

    *kv = out;
    return 0;

failed:

    free(out);
    free(*store);
    *store = NULL;
    return -1;
}


aigw_instance_t *
aigw_instance_load(const char *name, const char *path,
    const char *const *args, size_t nargs, char *err, size_t errlen)
{
    char              msg[512], *store;
    const char       *dlmsg;
    aigw_kv_t        *kv;
    aigw_entry_pt     entry;
    aigw_instance_t  *inst;

    inst = calloc(1, sizeof(aigw_instance_t));
    if (inst == NULL || (inst->name = strdup(name)) == NULL) {
        free(inst);
        snprintf(err, errlen, "plugin \"%s\": out of memory", name);
        return NULL;
    }

    inst->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (inst->dl == NULL) {
        dlmsg = dlerror();
        snprintf(err, errlen, "plugin \"%s\": cannot load \"%s\": %s", name,
                 path, dlmsg ? dlmsg : "unknown error");
        goto failed;
    }

    /* ISO C forbids object-to-function pointer casts; POSIX allows this. */
    *(void **) &entry = dlsym(inst->dl, AIGW_PLUGIN_SYMBOL);
    if (entry == NULL) {
        snprintf(err, errlen, "plugin \"%s\": \"%s\" does not export %s() "
                 "(not an aigw plugin?)", name, path, AIGW_PLUGIN_SYMBOL);
        goto failed;
    }

    inst->plugin = entry();
    if (inst->plugin == NULL) {
        snprintf(err, errlen, "plugin \"%s\": %s() in \"%s\" returned NULL",
                 name, AIGW_PLUGIN_SYMBOL, path);
        goto failed;
    }

    if (inst->plugin->abi_version != AIGW_PLUGIN_ABI_VERSION) {
        snprintf(err, errlen, "plugin \"%s\": \"%s\" was built for plugin "
                 "ABI %u, this gateway speaks %u; rebuild it against this "
                 "aigw_plugin.h", name, path, inst->plugin->abi_version,
                 (unsigned) AIGW_PLUGIN_ABI_VERSION);
        goto failed;
    }

    if (aigw_kv_parse(args, nargs, &kv, &store, msg, sizeof(msg)) != 0) {
        snprintf(err, errlen, "plugin \"%s\" (%s): %s", name,
                 inst->plugin->name, msg);
        goto failed;
    }

    if (inst->plugin->configure != NULL) {
        msg[0] = '\0';
        if (inst->plugin->configure(kv, nargs, &inst->conf, msg, sizeof(msg))
            != 0)
        {
            msg[sizeof(msg) - 1] = '\0';
            snprintf(err, errlen, "plugin \"%s\" (%s): %s", name,
                     inst->plugin->name,
                     msg[0] ? msg : "invalid configuration");
            free(kv);
            free(store);
            inst->conf = NULL;
            goto failed;
        }

    } else if (nargs > 0) {
        snprintf(err, errlen, "plugin \"%s\" (%s): takes no options, got "
                 "\"%s\"", name, inst->plugin->name, kv[0].key);
        free(kv);
        free(store);
        goto failed;
    }

    free(kv);
    free(store);
    return inst;

failed:

    aigw_instance_free(inst);
    return NULL;
}


void
aigw_instance_free(aigw_instance_t *inst)
{
    if (inst == NULL) {
        return;
    }

    if (inst->conf != NULL && inst->plugin->conf_free != NULL) {
        inst->plugin->conf_free(inst->conf);
    }

    if (inst->dl != NULL) {
        dlclose(inst->dl);
    }

    free(inst->name);
    free(inst);
}


const char *
aigw_instance_name(const aigw_instance_t *inst)
{
    return inst->name;
}


const aigw_plugin_t *
aigw_instance_plugin(const aigw_instance_t *inst)
{
    return inst->plugin;
}


aigw_run_t *
aigw_run_start(const aigw_chain_t *chain, aigw_request_t *req,
    aigw_verdict_t *v)
{
    size_t            i;
    aigw_run_t       *run;
    aigw_instance_t  *inst;

    /* the run and the plugins' states in one allocation */
    run = calloc(1, sizeof(aigw_run_t)
                    + (chain->n ? chain->n : 1) * sizeof(void *));
    if (run == NULL) {
        goto nomem;
    }

    run->chain = chain;
    run->req = req;
    req->runner = run;
    req->set_text = aigw_set_text;
    run->state = (void **) (run + 1);
    run->texts = run->texts_in;
    run->slots = run->slots_in;
    run->textcap = AIGW_RUN_TEXTS;

    for (i = 0; i < chain->n; i++) {
        inst = chain->inst[i];
        if (inst->plugin->request_start != NULL
            && inst->plugin->request_start(inst->conf, req, &run->state[i])
               != 0)
        {
            while (i-- > 0) {
                inst = chain->inst[i];
                if (inst->plugin->request_end != NULL) {
                    inst->plugin->request_end(inst->conf, run->state[i]);
                }
            }

            free(run);
            goto nomem;
        }
    }

    return run;

nomem:

    memset(v, 0, sizeof(aigw_verdict_t));
    aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                        "the gateway could not start its request plugins");
    return NULL;
}


/* a verdict is 700 bytes: on the per-delta path, reset it, don't zero it */
static void
aigw_verdict_reset(aigw_verdict_t *v)
{
    v->action = AIGW_PASS;
    v->status = 0;
    v->type[0] = '\0';
    v->code[0] = '\0';
    v->param[0] = '\0';
    v->message[0] = '\0';
}


static void
aigw_verdict_defaults(aigw_verdict_t *v)
{
    if (v->status < 400 || v->status > 599) {
        v->status = 400;
    }

    if (v->type[0] == '\0') {
        snprintf(v->type, sizeof(v->type), "invalid_request_error");
    }

    v->message[sizeof(v->message) - 1] = '\0';
}


static aigw_action_t
aigw_run_chain(aigw_run_t *run, aigw_verdict_t *v)
{
    size_t            i;
    aigw_action_t     rc;
    aigw_instance_t  *inst;

    rc = AIGW_PASS;
    run->text_changed = 0;

    for (i = 0; i < run->chain->n; i++) {
        inst = run->chain->inst[i];
        if (inst->plugin->on_request == NULL) {
            continue;
        }

        /* with a tree, the plugins before may have changed it */
        if (run->req->body != NULL
            && aigw_texts_from_tree(run, run->req->body) != 0)
        {
            goto nomem;
        }

        run->req->texts = run->texts;
        run->req->ntexts = run->ntexts;

        aigw_verdict_reset(v);
        inst->plugin->on_request(inst->conf, run->state[i], run->req, v);

        if (v->action == AIGW_REJECT) {
            aigw_verdict_defaults(v);
            rc = AIGW_REJECT;
            goto done;
        }

        if (v->action == AIGW_MODIFIED) {
            rc = AIGW_MODIFIED;
        }
    }

    if (run->text_changed) {
        rc = AIGW_MODIFIED;

        if (run->req->body == NULL && aigw_splice(run) != 0) {
            goto nomem;
        }

    } else if (run->req->body == NULL) {
        /* nothing can have changed the bytes */
        rc = AIGW_PASS;
    }

    aigw_verdict_reset(v);

done:

    run->req->texts = NULL;
    run->req->ntexts = 0;
    return rc;

nomem:

    aigw_verdict_reset(v);
    aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                        "the gateway ran out of memory");
    rc = AIGW_REJECT;
    goto done;
}


aigw_action_t
aigw_run_request(aigw_run_t *run, aigw_verdict_t *v)
{
    return aigw_run_chain(run, v);
}


aigw_action_t
aigw_run_request_bytes(aigw_run_t *run, const char *body, size_t len,
    aigw_verdict_t *v)
{
    size_t            i;
    json_error_t      jerr;
    aigw_instance_t  *inst;

    run->raw = body;
    run->raw_len = len;
    run->req->body = NULL;

    for (i = 0; i < run->chain->n; i++) {
        inst = run->chain->inst[i];
        if (inst->plugin->on_request != NULL
            && !(inst->plugin->flags & AIGW_PLUGIN_TEXT_ONLY))
        {
            goto tree;
        }
    }

    if (aigw_texts_from_bytes(run) == 0) {
        return aigw_run_chain(run, v);
    }

    /* not simple enough for the byte reader: the tree decides */

tree:

    aigw_texts_clear(run);

    run->tree = json_loadb(body, len, 0, &jerr);
    if (run->tree == NULL) {
        aigw_verdict_reset(v);
        aigw_verdict_reject(v, 400, "invalid_request_error", "invalid_json",
                            NULL, "We could not parse the JSON body of your "
                            "request.");
        return AIGW_REJECT;
    }

    run->req->body = run->tree;

    return aigw_run_chain(run, v);
}


size_t
aigw_run_request_offset(const aigw_run_t *run, size_t off)
{
    size_t  i, out;

    out = off;

    for (i = 0; i < run->ntexts && run->slots[i].end <= off; i++) {
        if (run->slots[i].changed) {
            out = out + run->slots[i].out_len
                  - (run->slots[i].end - run->slots[i].start);
        }
    }

    return out;
}


int
aigw_run_request_output(const aigw_run_t *run, const char **body,
    size_t *len)
{
    if (run->spliced == NULL) {
        return -1;
    }

    *body = run->spliced;
    *len = run->spliced_len;
    return 0;
}


static int
aigw_run_mark(aigw_run_t *run, unsigned choice, unsigned char mark)
{
    size_t          n;
    unsigned char  *p;

    if (choice >= run->nchoices) {
        n = (size_t) choice + 8;
        p = realloc(run->choices, n);
        if (p == NULL) {
            return -1;
        }
        memset(p + run->nchoices, AIGW_CHOICE_IDLE, n - run->nchoices);
        run->choices = p;
        run->nchoices = n;
    }

    run->choices[choice] = mark;
    return 0;
}


static aigw_action_t
aigw_run_text(aigw_run_t *run, unsigned choice, int flush, const char *text,
    size_t len, const char **out, size_t *out_len, aigw_verdict_t *v)
{
    size_t               i;
    aigw_action_t        rc;
    aigw_delta_t         d;
    aigw_instance_t     *inst;
    const aigw_plugin_t *p;

    rc = AIGW_PASS;

    if (aigw_run_mark(run, choice,
                      flush ? AIGW_CHOICE_FLUSHED : AIGW_CHOICE_STREAMING)
        != 0)
    {
        aigw_verdict_reset(v);
        aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                            "the gateway ran out of memory");
        return AIGW_REJECT;
    }

    for (i = 0; i < run->chain->n; i++) {
        inst = run->chain->inst[i];
        p = inst->plugin;

        memset(&d, 0, sizeof(aigw_delta_t));
        d.req = run->req;
        d.choice = choice;
        d.streamed = run->req->stream;
        d.text = text;
        d.len = len;

        aigw_verdict_reset(v);

        if (flush && p->on_delta_flush != NULL) {
            p->on_delta_flush(inst->conf, run->state[i], &d, v);

        } else if (p->on_delta != NULL && len > 0) {
            /* nothing to pass on: a plugin that holds back text has had it,
             * and one without a flush hook holds nothing */
            p->on_delta(inst->conf, run->state[i], &d, v);

        } else {
            continue;
        }

        if (v->action == AIGW_REJECT) {
            aigw_verdict_defaults(v);
            *out = NULL;
            *out_len = 0;
            return AIGW_REJECT;
        }

        if (v->action == AIGW_MODIFIED) {
            text = d.out != NULL ? d.out : "";
            len = d.out != NULL ? d.out_len : 0;
            rc = AIGW_MODIFIED;
        }
    }

    aigw_verdict_reset(v);
    *out = text;
    *out_len = len;
    return rc;
}


aigw_action_t
aigw_run_delta(aigw_run_t *run, unsigned choice, const char *text,
    size_t len, const char **out, size_t *out_len, aigw_verdict_t *v)
{
    return aigw_run_text(run, choice, 0, text, len, out, out_len, v);
}


aigw_action_t
aigw_run_delta_flush(aigw_run_t *run, unsigned choice, const char *text,
    size_t len, const char **out, size_t *out_len, aigw_verdict_t *v)
{
    return aigw_run_text(run, choice, 1, text, len, out, out_len, v);
}


int
aigw_run_unflushed_choice(const aigw_run_t *run)
{
    size_t  i;

    for (i = 0; i < run->nchoices; i++) {
        if (run->choices[i] == AIGW_CHOICE_STREAMING) {
            return (int) i;
        }
    }

    return -1;
}


void
aigw_run_response(aigw_run_t *run, const aigw_response_info_t *info)
{
    size_t            i;
    aigw_instance_t  *inst;

    for (i = 0; i < run->chain->n; i++) {
        inst = run->chain->inst[i];
        if (inst->plugin->on_response != NULL) {
            inst->plugin->on_response(inst->conf, run->state[i], info);
        }
    }
}


void
aigw_run_end(aigw_run_t *run)
{
    size_t            i;
    aigw_instance_t  *inst;

    if (run == NULL) {
        return;
    }

    for (i = 0; i < run->chain->n; i++) {
        inst = run->chain->inst[i];
        if (inst->plugin->request_end != NULL) {
            inst->plugin->request_end(inst->conf, run->state[i]);
        }
    }

    aigw_texts_clear(run);
    if (run->texts != run->texts_in) {
        free(run->texts);
        free(run->slots);
    }

    free(run->spliced);

    if (run->tree != NULL) {
        if (run->req->body == run->tree) {
            run->req->body = NULL;
        }
        json_decref(run->tree);
    }

    run->req->runner = NULL;

    free(run->choices);
    free(run);
}


size_t
aigw_verdict_error_body(const aigw_verdict_t *v, char *buf, size_t buflen)
{
    char    *s;
    size_t   n;
    json_t  *body;

    body = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error",
                     "message", v->message,
                     "type", v->type[0] ? v->type : "invalid_request_error",
                     "param", v->param[0] ? json_string(v->param) : json_null(),
                     "code", v->code[0] ? json_string(v->code) : json_null());
    s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);

    if (s == NULL) {
        s = strdup("{\"error\":{\"message\":\"request rejected\","
                   "\"type\":\"invalid_request_error\",\"param\":null,"
                   "\"code\":null}}");
        if (s == NULL) {
            if (buflen) {
                buf[0] = '\0';
            }
            return 0;
        }
    }

    n = strlen(s);
    if (buflen) {
        snprintf(buf, buflen, "%s", s);
    }
    free(s);
    return n;
}
