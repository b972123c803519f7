
/*
 * The fast-path JSON reader: see ai_scan.h.  Recursive descent over the
 * bytes, with the depth bounded; strings are checked for escapes, control
 * characters and UTF-8 (overlongs, surrogates and code points past
 * U+10FFFF refused) without being copied.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_scan.h"


#define AI_IN_NONE       0
#define AI_IN_TOP        1       /* the root object's members */
#define AI_IN_MESSAGES   2       /* elements of "messages" */
#define AI_IN_MESSAGE    3       /* members of one message */
#define AI_IN_TEXT       4       /* text counted for estimates */
#define AI_IN_INPUT      5       /* elements of "input" */
#define AI_IN_STREAM_OPT 6       /* members of "stream_options" */


typedef struct {
    const unsigned char  *start;
    const unsigned char  *p;
    const unsigned char  *end;
    ai_scan_t            *out;
    const char           *error;
    int                   depth;
    int                   count_text;
} ai_scanner_t;


static int ai_scan_value(ai_scanner_t *s, int in);
static int ai_scan_object(ai_scanner_t *s, int in);
static int ai_scan_array(ai_scanner_t *s, int in);
static int ai_scan_string(ai_scanner_t *s, const unsigned char **str,
    size_t *len, int *escaped);
static int ai_scan_number(ai_scanner_t *s);
static int ai_scan_literal(ai_scanner_t *s, const char *lit, size_t n,
    int type);


static inline void
ai_ws(ai_scanner_t *s)
{
    while (s->p < s->end
           && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r'
               || *s->p == '\t'))
    {
        s->p++;
    }
}


int
ai_scan(const unsigned char *p, size_t len, ai_scan_t *out, char *err,
    size_t errlen)
{
    int                   line, col;
    ai_scanner_t          s;
    const unsigned char  *q;

    memset(out, 0, sizeof(ai_scan_t));
    out->max_tokens = -1;

    s.start = p;
    s.p = p;
    s.end = p + len;
    s.out = out;
    s.error = NULL;
    s.depth = 0;
    s.count_text = 0;

    ai_ws(&s);

    out->root_type = ai_scan_value(&s, AI_IN_TOP);

    if (out->root_type > 0) {
        ai_ws(&s);

        if (s.p != s.end) {
            s.error = "end of file expected";
            out->root_type = -1;
        }
    }

    if (out->root_type > 0) {
        return 0;
    }

    line = 1;
    col = 1;

    for (q = p; q < s.p && q < s.end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;

        } else {
            col++;
        }
    }

    snprintf(err, errlen, "%s (line %d, column %d)",
             s.error ? s.error : "invalid JSON", line, col);

    return -1;
}


static int
ai_scan_value(ai_scanner_t *s, int in)
{
    if (s->p == s->end) {
        s->error = "unexpected end of input";
        return -1;
    }

    switch (*s->p) {

    case '{':
        return ai_scan_object(s, in);

    case '[':
        return ai_scan_array(s, in);

    case '"':
        {
            const unsigned char  *str;
            size_t                len;
            int                   esc;

            if (ai_scan_string(s, &str, &len, &esc) != 0) {
                return -1;
            }

            if (s->count_text) {
                s->out->text_bytes += len;
            }

            return AI_JT_STRING;
        }

    case 't':
        return ai_scan_literal(s, "true", 4, AI_JT_TRUE);

    case 'f':
        return ai_scan_literal(s, "false", 5, AI_JT_FALSE);

    case 'n':
        return ai_scan_literal(s, "null", 4, AI_JT_NULL);

    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
            return ai_scan_number(s);
        }

        s->error = "invalid token";
        return -1;
    }
}


static int
ai_key_is(const unsigned char *k, size_t len, const char *name)
{
    size_t  n = strlen(name);

    return len == n && memcmp(k, name, n) == 0;
}


/* top-level keys kept to refuse duplicates; more are compared by hashing */
#define AI_TOP_KEYS  64


static int
ai_scan_object(ai_scanner_t *s, int in)
{
    int                   type, esc, child, saved, has_role;
    size_t                klen, i, nkeys;
    const unsigned char  *k, *vstart;
    struct {
        const unsigned char  *k;
        size_t                len;
    } keys[AI_TOP_KEYS];

    if (++s->depth > AI_SCAN_MAX_DEPTH) {
        s->error = "maximum nesting depth reached";
        return -1;
    }

    s->p++;                                      /* '{' */
    ai_ws(s);

    nkeys = 0;
    has_role = 0;

    if (s->p < s->end && *s->p == '}') {
        s->p++;
        goto done;
    }

    for ( ;; ) {

        if (s->p == s->end || *s->p != '"') {
            s->error = "string or '}' expected";
            return -1;
        }

        if (ai_scan_string(s, &k, &klen, &esc) != 0) {
            return -1;
        }

        if (in == AI_IN_TOP && s->depth == 1) {

            /*
             * Two values for one top-level key would let the gateway and
             * the provider read different requests: refused.
             */

            for (i = 0; i < nkeys; i++) {
                if (keys[i].len == klen && memcmp(keys[i].k, k, klen) == 0)
                {
                    s->error = "duplicate object key";
                    return -1;
                }
            }

            if (nkeys < AI_TOP_KEYS) {
                keys[nkeys].k = k;
                keys[nkeys].len = klen;
                nkeys++;

            } else {
                s->error = "too many top-level keys";
                return -1;
            }

            if (esc) {
                /* a key written with escapes is not trusted to route */
                s->out->model_escaped = 1;
            }
        }

        ai_ws(s);

        if (s->p == s->end || *s->p != ':') {
            s->error = "':' expected";
            return -1;
        }

        s->p++;
        ai_ws(s);

        child = AI_IN_NONE;
        saved = s->count_text;
        vstart = s->p;

        if (in == AI_IN_TOP && s->depth == 1) {
            if (ai_key_is(k, klen, "messages")) {
                child = AI_IN_MESSAGES;
                s->count_text = 1;

            } else if (ai_key_is(k, klen, "prompt")) {
                s->count_text = 1;

            } else if (ai_key_is(k, klen, "input")) {
                child = AI_IN_INPUT;
                s->count_text = 1;

            } else if (ai_key_is(k, klen, "stream_options")) {
                child = AI_IN_STREAM_OPT;
            }
        }

        type = ai_scan_value(s, child);
        s->count_text = saved;

        if (type < 0) {
            return -1;
        }

        if (in == AI_IN_TOP && s->depth == 1) {
            ai_scan_t  *o = s->out;

            if (ai_key_is(k, klen, "model")) {
                o->model_type = type;

                if (type == AI_JT_STRING) {
                    o->model = vstart + 1;
                    o->model_len = s->p - vstart - 2;

                    if (memchr(o->model, '\\', o->model_len)) {
                        o->model_escaped = 1;
                    }
                }

            } else if (ai_key_is(k, klen, "stream")) {
                o->stream_type = type;

            } else if (ai_key_is(k, klen, "stream_options")) {
                o->stream_options_type = type;

            } else if (ai_key_is(k, klen, "messages")) {
                o->messages_type = type;

            } else if (ai_key_is(k, klen, "prompt")) {
                o->prompt_type = type;

            } else if (ai_key_is(k, klen, "input")) {
                o->input_type = type;

            } else if (ai_key_is(k, klen, "temperature")) {
                if (type == AI_JT_INTEGER || type == AI_JT_REAL) {
                    char  num[64];
                    size_t  n = s->p - vstart;

                    if (n < sizeof(num)) {
                        memcpy(num, vstart, n);
                        num[n] = '\0';
                        o->temperature_zero = (strtod(num, NULL) == 0.0);
                    }
                }

            } else if (ai_key_is(k, klen, "seed")) {
                o->has_seed = (type != AI_JT_NULL);

            } else if (ai_key_is(k, klen, "n")) {
                o->n_not_one = !(type == AI_JT_NULL
                                 || (type == AI_JT_INTEGER
                                     && s->p - vstart == 1 && *vstart == '1'));

            } else if ((ai_key_is(k, klen, "max_tokens")
                        || ai_key_is(k, klen, "max_completion_tokens"))
                       && type == AI_JT_INTEGER)
            {
                int64_t  v = 0;

                for (i = 0; vstart + i < s->p && i < 18; i++) {
                    if (vstart[i] < '0' || vstart[i] > '9') {
                        break;
                    }

                    v = v * 10 + (vstart[i] - '0');
                }

                if (vstart[0] != '-') {
                    o->max_tokens = v;
                }
            }

        } else if (in == AI_IN_MESSAGE && s->depth == 3) {
            ai_scan_t  *o = s->out;

            if (ai_key_is(k, klen, "role")) {
                has_role = 1;

                if (type != AI_JT_STRING && o->msg_error == AI_MSG_OK) {
                    o->msg_error = AI_MSG_ROLE_TYPE;
                    o->msg_index = o->messages_count - 1;
                    o->msg_error_type = type;
                }

            } else if (ai_key_is(k, klen, "content")
                       && type != AI_JT_STRING && type != AI_JT_ARRAY
                       && type != AI_JT_NULL && o->msg_error == AI_MSG_OK)
            {
                o->msg_error = AI_MSG_CONTENT_TYPE;
                o->msg_index = o->messages_count - 1;
                o->msg_error_type = type;
            }

        } else if (in == AI_IN_STREAM_OPT && s->depth == 2
                   && ai_key_is(k, klen, "include_usage"))
        {
            s->out->include_usage = (type == AI_JT_TRUE);
        }

        ai_ws(s);

        if (s->p == s->end) {
            s->error = "unexpected end of input";
            return -1;
        }

        if (*s->p == ',') {
            s->p++;
            ai_ws(s);
            continue;
        }

        if (*s->p == '}') {
            s->p++;
            break;
        }

        s->error = "',' or '}' expected";
        return -1;
    }

done:

    if (in == AI_IN_MESSAGE && !has_role
        && s->out->msg_error == AI_MSG_OK)
    {
        s->out->msg_error = AI_MSG_NO_ROLE;
        s->out->msg_index = s->out->messages_count - 1;
    }

    s->depth--;

    return AI_JT_OBJECT;
}


static int
ai_scan_array(ai_scanner_t *s, int in)
{
    int  type, child;

    if (++s->depth > AI_SCAN_MAX_DEPTH) {
        s->error = "maximum nesting depth reached";
        return -1;
    }

    s->p++;                                      /* '[' */
    ai_ws(s);

    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return AI_JT_ARRAY;
    }

    child = (in == AI_IN_MESSAGES) ? AI_IN_MESSAGE : AI_IN_NONE;

    for ( ;; ) {

        if (in == AI_IN_MESSAGES) {
            s->out->messages_count++;

        } else if (in == AI_IN_INPUT) {
            s->out->input_count++;
        }

        type = ai_scan_value(s, child);

        if (type < 0) {
            return -1;
        }

        if (in == AI_IN_MESSAGES && type != AI_JT_OBJECT
            && s->out->msg_error == AI_MSG_OK)
        {
            s->out->msg_error = AI_MSG_NOT_OBJECT;
            s->out->msg_index = s->out->messages_count - 1;
            s->out->msg_error_type = type;
        }

        ai_ws(s);

        if (s->p == s->end) {
            s->error = "unexpected end of input";
            return -1;
        }

        if (*s->p == ',') {
            s->p++;
            ai_ws(s);
            continue;
        }

        if (*s->p == ']') {
            s->p++;
            break;
        }

        s->error = "',' or ']' expected";
        return -1;
    }

    s->depth--;

    return AI_JT_ARRAY;
}


static int
ai_scan_string(ai_scanner_t *s, const unsigned char **str, size_t *len,
    int *escaped)
{
    unsigned              c, u, u2;
    const unsigned char  *p, *end;

    p = s->p + 1;
    end = s->end;
    *str = p;
    *escaped = 0;

    for ( ;; ) {

        /* the common case: plain ASCII */

        p = ai_json_plain(p, end);

        if (p == end) {
            s->p = p;
            s->error = "premature end of input in a string";
            return -1;
        }

        c = *p;

        if (c == '"') {
            *len = p - *str;
            s->p = p + 1;
            return 0;
        }

        if (c == '\\') {
            *escaped = 1;

            if (p + 1 == end) {
                s->p = p;
                s->error = "premature end of input in a string";
                return -1;
            }

            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n':
            case 'r': case 't':
                p += 2;
                continue;

            case 'u':
                if (end - p < 6 || ai_json_hex4(p + 2, &u) != 0) {
                    s->p = p;
                    s->error = "invalid \\u escape";
                    return -1;
                }

                p += 6;

                if (u == 0) {
                    /* as jansson: a NUL would cut C strings downstream */
                    s->p = p - 6;
                    s->error = "\\u0000 is not allowed";
                    return -1;
                }

                if (u >= 0xd800 && u <= 0xdbff) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u'
                        || ai_json_hex4(p + 2, &u2) != 0
                        || u2 < 0xdc00 || u2 > 0xdfff)
                    {
                        s->p = p;
                        s->error = "invalid Unicode surrogate pair";
                        return -1;
                    }

                    p += 6;

                } else if (u >= 0xdc00 && u <= 0xdfff) {
                    s->p = p;
                    s->error = "invalid Unicode surrogate";
                    return -1;
                }

                continue;

            default:
                s->p = p;
                s->error = "invalid escape";
                return -1;
            }
        }

        if (c < 0x20) {
            s->p = p;
            s->error = "control character in a string";
            return -1;
        }

        /* UTF-8: the shortest form only, no surrogates, up to U+10FFFF */

        if (c >= 0xc2 && c <= 0xdf) {
            if (end - p < 2 || (p[1] & 0xc0) != 0x80) {
                goto bad_utf8;
            }

            p += 2;

        } else if (c >= 0xe0 && c <= 0xef) {
            if (end - p < 3 || (p[1] & 0xc0) != 0x80
                || (p[2] & 0xc0) != 0x80
                || (c == 0xe0 && p[1] < 0xa0)
                || (c == 0xed && p[1] > 0x9f))
            {
                goto bad_utf8;
            }

            p += 3;

        } else if (c >= 0xf0 && c <= 0xf4) {
            if (end - p < 4 || (p[1] & 0xc0) != 0x80
                || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80
                || (c == 0xf0 && p[1] < 0x90)
                || (c == 0xf4 && p[1] > 0x8f))
            {
                goto bad_utf8;
            }

            p += 4;

        } else {
            goto bad_utf8;
        }
    }

bad_utf8:

    s->p = p;
    s->error = "invalid UTF-8 in a string";
    return -1;
}


/* strtod's verdict on a real the grammar accepted: past double is refused */

static int
ai_scan_real_overflows(const unsigned char *p, size_t n)
{
    int      over;
    char     num[64], *copy;
    double   d;

    copy = (n < sizeof(num)) ? num : malloc(n + 1);

    if (copy == NULL) {
        return 1;
    }

    memcpy(copy, p, n);
    copy[n] = '\0';

    d = strtod(copy, NULL);
    over = (d == HUGE_VAL || d == -HUGE_VAL);

    if (copy != num) {
        free(copy);
    }

    return over;
}


static int
ai_scan_number(ai_scanner_t *s)
{
    int                   real;
    const unsigned char  *p, *end;

    p = s->p;
    end = s->end;
    real = 0;

    if (*p == '-') {
        p++;
    }

    if (p == end) {
        goto invalid;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        goto invalid;
    }

    if (p < end && *p == '.') {
        real = 1;
        p++;

        if (p == end || *p < '0' || *p > '9') {
            goto invalid;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            goto invalid;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    /*
     * Numbers jansson would refuse are refused here too, so that a tree
     * built later from an accepted body never fails: integers past int64,
     * reals past double.
     */

    if (!real && p - s->p > 18) {
        const unsigned char  *q = s->p;
        int                   neg = (*q == '-');
        uint64_t              v = 0, lim;

        q += neg;
        lim = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;

        for ( /* void */ ; q < p; q++) {
            if (v > (lim - (*q - '0')) / 10) {
                s->error = "too big integer";
                return -1;
            }

            v = v * 10 + (*q - '0');
        }
    }

    if (real && p - s->p > 3 && ai_scan_real_overflows(s->p, p - s->p)) {
        s->error = "real number overflow";
        return -1;
    }

    s->p = p;

    return real ? AI_JT_REAL : AI_JT_INTEGER;

invalid:

    s->p = p;
    s->error = "invalid number";
    return -1;
}


static int
ai_scan_literal(ai_scanner_t *s, const char *lit, size_t n, int type)
{
    if ((size_t) (s->end - s->p) < n || memcmp(s->p, lit, n) != 0) {
        s->error = "invalid token";
        return -1;
    }

    s->p += n;

    return type;
}


static const char *
ai_jt_name(int type)
{
    switch (type) {
    case AI_JT_OBJECT:
        return "an object";
    case AI_JT_ARRAY:
        return "an array";
    case AI_JT_STRING:
        return "a string";
    case AI_JT_INTEGER:
        return "an integer";
    case AI_JT_REAL:
        return "a decimal";
    case AI_JT_TRUE:
    case AI_JT_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}


static void
ai_scan_err(ai_json_error_t *err, const char *code, const char *param,
    const char *msg)
{
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", msg);

    if (param) {
        snprintf(err->param, sizeof(err->param), "%s", param);

    } else {
        err->param[0] = '\0';
    }
}


/* the same rules, codes and messages as ai_request_validate() */

int
ai_scan_validate(const ai_scan_t *s, int endpoint, ai_json_error_t *err)
{
    char  msg[320], param[64];

    if (s->root_type != AI_JT_OBJECT) {
        snprintf(msg, sizeof(msg), "The request body must be a JSON object, "
                 "but got %s.", ai_jt_name(s->root_type));
        ai_scan_err(err, "invalid_type", NULL, msg);
        return -1;
    }

    if (s->model_type == AI_JT_NONE) {
        ai_scan_err(err, "missing_required_parameter", "model",
                    "Missing required parameter: 'model'.");
        return -1;
    }

    if (s->model_type != AI_JT_STRING) {
        snprintf(msg, sizeof(msg), "Invalid type for 'model': expected a "
                 "string, but got %s instead.", ai_jt_name(s->model_type));
        ai_scan_err(err, "invalid_type", "model", msg);
        return -1;
    }

    if (s->model_len == 0) {
        ai_scan_err(err, "invalid_value", "model",
                    "Invalid 'model': empty string.");
        return -1;
    }

    if (s->stream_type != AI_JT_NONE && s->stream_type != AI_JT_TRUE
        && s->stream_type != AI_JT_FALSE && s->stream_type != AI_JT_NULL)
    {
        snprintf(msg, sizeof(msg), "Invalid type for 'stream': expected a "
                 "boolean, but got %s instead.", ai_jt_name(s->stream_type));
        ai_scan_err(err, "invalid_type", "stream", msg);
        return -1;
    }

    if (s->stream_options_type != AI_JT_NONE
        && s->stream_options_type != AI_JT_NULL)
    {
        if (s->stream_type != AI_JT_TRUE) {
            ai_scan_err(err, "invalid_value", "stream_options",
                        "The 'stream_options' parameter is only allowed "
                        "when 'stream' is enabled.");
            return -1;
        }

        if (s->stream_options_type != AI_JT_OBJECT) {
            snprintf(msg, sizeof(msg), "Invalid type for 'stream_options': "
                     "expected an object, but got %s instead.",
                     ai_jt_name(s->stream_options_type));
            ai_scan_err(err, "invalid_type", "stream_options", msg);
            return -1;
        }
    }

    switch (endpoint) {

    case AI_EP_CHAT:
        if (s->messages_type == AI_JT_NONE) {
            ai_scan_err(err, "missing_required_parameter", "messages",
                        "Missing required parameter: 'messages'.");
            return -1;
        }

        if (s->messages_type != AI_JT_ARRAY) {
            snprintf(msg, sizeof(msg), "Invalid type for 'messages': "
                     "expected an array of objects, but got %s instead.",
                     ai_jt_name(s->messages_type));
            ai_scan_err(err, "invalid_type", "messages", msg);
            return -1;
        }

        if (s->messages_count == 0) {
            ai_scan_err(err, "empty_array", "messages",
                        "Invalid 'messages': empty array. Expected an array "
                        "with minimum length 1, but got an empty array "
                        "instead.");
            return -1;
        }

        switch (s->msg_error) {

        case AI_MSG_NOT_OBJECT:
            snprintf(param, sizeof(param), "messages[%zu]", s->msg_index);
            snprintf(msg, sizeof(msg), "Invalid type for '%s': expected an "
                     "object, but got %s instead.", param,
                     ai_jt_name(s->msg_error_type));
            ai_scan_err(err, "invalid_type", param, msg);
            return -1;

        case AI_MSG_NO_ROLE:
            snprintf(param, sizeof(param), "messages[%zu].role",
                     s->msg_index);
            snprintf(msg, sizeof(msg), "Missing required parameter: '%s'.",
                     param);
            ai_scan_err(err, "missing_required_parameter", param, msg);
            return -1;

        case AI_MSG_ROLE_TYPE:
            snprintf(param, sizeof(param), "messages[%zu].role",
                     s->msg_index);
            snprintf(msg, sizeof(msg), "Invalid type for '%s': expected a "
                     "string, but got %s instead.", param,
                     ai_jt_name(s->msg_error_type));
            ai_scan_err(err, "invalid_type", param, msg);
            return -1;

        case AI_MSG_CONTENT_TYPE:
            snprintf(param, sizeof(param), "messages[%zu].content",
                     s->msg_index);
            snprintf(msg, sizeof(msg), "Invalid type for '%s': expected a "
                     "string or an array of content parts, but got %s "
                     "instead.", param, ai_jt_name(s->msg_error_type));
            ai_scan_err(err, "invalid_type", param, msg);
            return -1;
        }

        return 0;

    case AI_EP_COMPLETIONS:
        if (s->prompt_type != AI_JT_NONE && s->prompt_type != AI_JT_STRING
            && s->prompt_type != AI_JT_ARRAY && s->prompt_type != AI_JT_NULL)
        {
            snprintf(msg, sizeof(msg), "Invalid type for 'prompt': expected "
                     "a string or an array, but got %s instead.",
                     ai_jt_name(s->prompt_type));
            ai_scan_err(err, "invalid_type", "prompt", msg);
            return -1;
        }

        return 0;

    case AI_EP_EMBEDDINGS:
        if (s->stream_type == AI_JT_TRUE) {
            ai_scan_err(err, "invalid_value", "stream",
                        "Streaming is not supported for embeddings.");
            return -1;
        }

        if (s->input_type == AI_JT_NONE) {
            ai_scan_err(err, "missing_required_parameter", "input",
                        "Missing required parameter: 'input'.");
            return -1;
        }

        if (s->input_type != AI_JT_STRING && s->input_type != AI_JT_ARRAY) {
            snprintf(msg, sizeof(msg), "Invalid type for 'input': expected "
                     "a string or an array, but got %s instead.",
                     ai_jt_name(s->input_type));
            ai_scan_err(err, "invalid_type", "input", msg);
            return -1;
        }

        if (s->input_type == AI_JT_ARRAY && s->input_count == 0) {
            ai_scan_err(err, "empty_array", "input",
                        "Invalid 'input': empty array. Expected an array "
                        "with minimum length 1, but got an empty array "
                        "instead.");
            return -1;
        }

        return 0;

    default:
        return 0;
    }
}
