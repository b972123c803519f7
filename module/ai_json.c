
/*
 * Pure JSON helpers: see ai_json.h.
 */

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <string.h>
#include <stdarg.h>

#include "ai_json.h"


static int ai_json_skip_string(const unsigned char **pp,
    const unsigned char *end);
static int ai_json_skip_value(const unsigned char **pp,
    const unsigned char *end);
static void ai_err(ai_json_error_t *err, const char *code, const char *param,
    const char *fmt, ...);
static int ai_validate_messages(json_t *messages, ai_json_error_t *err);


const char *
ai_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a decimal";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}


int
ai_request_validate(json_t *root, int endpoint, ai_json_error_t *err)
{
    json_t  *v, *stream;

    if (!json_is_object(root)) {
        ai_err(err, "invalid_type", NULL,
               "The request body must be a JSON object, but got %s.",
               ai_json_type_name(root));
        return -1;
    }

    v = json_object_get(root, "model");

    if (v == NULL) {
        ai_err(err, "missing_required_parameter", "model",
               "Missing required parameter: 'model'.");
        return -1;
    }

    if (!json_is_string(v)) {
        ai_err(err, "invalid_type", "model",
               "Invalid type for 'model': expected a string, but got %s "
               "instead.", ai_json_type_name(v));
        return -1;
    }

    if (json_string_length(v) == 0) {
        ai_err(err, "invalid_value", "model",
               "Invalid 'model': empty string.");
        return -1;
    }

    stream = json_object_get(root, "stream");

    if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream)) {
        ai_err(err, "invalid_type", "stream",
               "Invalid type for 'stream': expected a boolean, but got %s "
               "instead.", ai_json_type_name(stream));
        return -1;
    }

    v = json_object_get(root, "stream_options");

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_true(stream)) {
            ai_err(err, "invalid_value", "stream_options",
                   "The 'stream_options' parameter is only allowed when "
                   "'stream' is enabled.");
            return -1;
        }

        if (!json_is_object(v)) {
            ai_err(err, "invalid_type", "stream_options",
                   "Invalid type for 'stream_options': expected an object, "
                   "but got %s instead.", ai_json_type_name(v));
            return -1;
        }
    }

    switch (endpoint) {

    case AI_EP_CHAT:
        v = json_object_get(root, "messages");

        if (v == NULL) {
            ai_err(err, "missing_required_parameter", "messages",
                   "Missing required parameter: 'messages'.");
            return -1;
        }

        return ai_validate_messages(v, err);

    case AI_EP_COMPLETIONS:
        v = json_object_get(root, "prompt");

        if (v != NULL && !json_is_string(v) && !json_is_array(v)
            && !json_is_null(v))
        {
            ai_err(err, "invalid_type", "prompt",
                   "Invalid type for 'prompt': expected a string or an "
                   "array, but got %s instead.", ai_json_type_name(v));
            return -1;
        }

        return 0;

    case AI_EP_EMBEDDINGS:
        if (stream != NULL && json_is_true(stream)) {
            ai_err(err, "invalid_value", "stream",
                   "Streaming is not supported for embeddings.");
            return -1;
        }

        v = json_object_get(root, "input");

        if (v == NULL) {
            ai_err(err, "missing_required_parameter", "input",
                   "Missing required parameter: 'input'.");
            return -1;
        }

        if (!json_is_string(v) && !json_is_array(v)) {
            ai_err(err, "invalid_type", "input",
                   "Invalid type for 'input': expected a string or an "
                   "array, but got %s instead.", ai_json_type_name(v));
            return -1;
        }

        if (json_is_array(v) && json_array_size(v) == 0) {
            ai_err(err, "empty_array", "input",
                   "Invalid 'input': empty array. Expected an array with "
                   "minimum length 1, but got an empty array instead.");
            return -1;
        }

        return 0;

    default:
        return 0;
    }
}


static int
ai_validate_messages(json_t *messages, ai_json_error_t *err)
{
    size_t   i;
    json_t  *m, *role, *content;
    char     param[64];

    if (!json_is_array(messages)) {
        ai_err(err, "invalid_type", "messages",
               "Invalid type for 'messages': expected an array of objects, "
               "but got %s instead.", ai_json_type_name(messages));
        return -1;
    }

    if (json_array_size(messages) == 0) {
        ai_err(err, "empty_array", "messages",
               "Invalid 'messages': empty array. Expected an array with "
               "minimum length 1, but got an empty array instead.");
        return -1;
    }

    json_array_foreach(messages, i, m) {

        if (!json_is_object(m)) {
            snprintf(param, sizeof(param), "messages[%zu]", i);
            ai_err(err, "invalid_type", param,
                   "Invalid type for '%s': expected an object, but got %s "
                   "instead.", param, ai_json_type_name(m));
            return -1;
        }

        role = json_object_get(m, "role");

        if (role == NULL) {
            snprintf(param, sizeof(param), "messages[%zu].role", i);
            ai_err(err, "missing_required_parameter", param,
                   "Missing required parameter: '%s'.", param);
            return -1;
        }

        if (!json_is_string(role)) {
            snprintf(param, sizeof(param), "messages[%zu].role", i);
            ai_err(err, "invalid_type", param,
                   "Invalid type for '%s': expected a string, but got %s "
                   "instead.", param, ai_json_type_name(role));
            return -1;
        }

        content = json_object_get(m, "content");

        if (content != NULL && !json_is_string(content)
            && !json_is_array(content) && !json_is_null(content))
        {
            snprintf(param, sizeof(param), "messages[%zu].content", i);
            ai_err(err, "invalid_type", param,
                   "Invalid type for '%s': expected a string or an array "
                   "of content parts, but got %s instead.", param,
                   ai_json_type_name(content));
            return -1;
        }
    }

    return 0;
}


static void
ai_err(ai_json_error_t *err, const char *code, const char *param,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);

    err->code = code;

    if (param) {
        snprintf(err->param, sizeof(err->param), "%s", param);

    } else {
        err->param[0] = '\0';
    }
}


/*
 * Finds the bytes of a top-level member's value, so that the upstream body
 * is the client's body with one span replaced rather than a re-serialised
 * document.  The body has already been validated by jansson; a key written
 * with escapes is not matched, and the caller then falls back to
 * serialising.  Returns 1 when found, 0 when absent, -1 on malformed input.
 */

int
ai_json_member_span(const unsigned char *p, size_t len, const char *key,
    size_t *start, size_t *end)
{
    int                   match;
    size_t                klen;
    const unsigned char  *begin, *last, *k;

    begin = p;
    last = p + len;
    klen = strlen(key);

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }

    if (p == last || *p++ != '{') {
        return -1;
    }

    for ( ;; ) {

        while (p < last
               && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'
                   || *p == ','))
        {
            p++;
        }

        if (p == last) {
            return -1;
        }

        if (*p == '}') {
            return 0;
        }

        if (*p != '"') {
            return -1;
        }

        k = p + 1;

        if (ai_json_skip_string(&p, last) != 0) {
            return -1;
        }

        /* the key's bytes are k .. p - 2; p is past the closing quote */

        match = ((size_t) (p - 1 - k) == klen && memcmp(k, key, klen) == 0);

        while (p < last && (*p == ' ' || *p == '\t' || *p == '\r'
                            || *p == '\n'))
        {
            p++;
        }

        if (p == last || *p++ != ':') {
            return -1;
        }

        while (p < last && (*p == ' ' || *p == '\t' || *p == '\r'
                            || *p == '\n'))
        {
            p++;
        }

        if (match) {
            *start = p - begin;

            if (ai_json_skip_value(&p, last) != 0) {
                return -1;
            }

            *end = p - begin;
            return 1;
        }

        if (ai_json_skip_value(&p, last) != 0) {
            return -1;
        }
    }
}


static int
ai_json_skip_string(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char  *p = *pp;

    p++;

    while (p < end) {
        if (*p == '\\') {
            p += 2;
            continue;
        }

        if (*p == '"') {
            *pp = p + 1;
            return 0;
        }

        p++;
    }

    return -1;
}


static int
ai_json_skip_value(const unsigned char **pp, const unsigned char *end)
{
    int                   depth;
    const unsigned char  *p = *pp;

    if (p == end) {
        return -1;
    }

    if (*p == '"') {
        return ai_json_skip_string(pp, end);
    }

    if (*p != '{' && *p != '[') {
        while (p < end && *p != ',' && *p != '}' && *p != ']'
               && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
        {
            p++;
        }

        *pp = p;
        return 0;
    }

    depth = 0;

    while (p < end) {
        switch (*p) {
        case '"':
            if (ai_json_skip_string(&p, end) != 0) {
                return -1;
            }
            continue;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (--depth == 0) {
                *pp = p + 1;
                return 0;
            }
            break;
        }

        p++;
    }

    return -1;
}


const unsigned char *
ai_json_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    int      mask;
    __m128i  v, x;

    while (end - p >= 16) {
        v = _mm_loadu_si128((const __m128i *) p);

        /* signed: below 0x20 and from 0x80 up are both "less" */
        x = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));

        mask = _mm_movemask_epi8(x);

        if (mask) {
            return p + __builtin_ctz(mask);
        }

        p += 16;
    }
#endif

    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
        p++;
    }

    return p;
}


int
ai_json_hex4(const unsigned char *p, unsigned *v)
{
    int       i;
    unsigned  c, d;

    d = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return -1;
        }

        d = d << 4 | c;
    }

    *v = d;

    return 0;
}


size_t
ai_json_unicode(const unsigned char *p, const unsigned char *end,
    unsigned *cp)
{
    unsigned  u, lo;

    if (end - p < 6 || ai_json_hex4(p + 2, &u) != 0 || u == 0
        || (u >= 0xdc00 && u <= 0xdfff))
    {
        return 0;
    }

    if (u < 0xd800 || u > 0xdbff) {
        *cp = u;
        return 6;
    }

    if (end - p < 12 || p[6] != '\\' || p[7] != 'u'
        || ai_json_hex4(p + 8, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
    {
        return 0;
    }

    *cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);

    return 12;
}


size_t
ai_json_utf8_len(const unsigned char *p, const unsigned char *end)
{
    size_t    n, i;
    unsigned  c, min;

    c = p[0];

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        c &= 0x1f;
        min = 0x80;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        c &= 0x0f;
        min = 0x800;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        c &= 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if ((size_t) (end - p) < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        c = (c << 6) | (p[i] & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }

    return n;
}


size_t
ai_json_escape_len(const unsigned char *s, size_t len)
{
    size_t  n, i;

    n = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\' || s[i] == '\n' || s[i] == '\r'
            || s[i] == '\t' || s[i] == '\b' || s[i] == '\f')
        {
            n += 2;

        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            n += 6;

        } else {
            n++;
        }
    }

    return n;
}


unsigned char *
ai_json_escape(unsigned char *dst, const unsigned char *s, size_t len)
{
    size_t                i;
    static const char     hex[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        switch (s[i]) {
        case '"':
        case '\\':
            *dst++ = '\\';
            *dst++ = s[i];
            break;
        case '\n':
            *dst++ = '\\';
            *dst++ = 'n';
            break;
        case '\r':
            *dst++ = '\\';
            *dst++ = 'r';
            break;
        case '\t':
            *dst++ = '\\';
            *dst++ = 't';
            break;
        case '\b':
            *dst++ = '\\';
            *dst++ = 'b';
            break;
        case '\f':
            *dst++ = '\\';
            *dst++ = 'f';
            break;
        default:
            if (s[i] < 0x20 || s[i] == 0x7f) {
                *dst++ = '\\';
                *dst++ = 'u';
                *dst++ = '0';
                *dst++ = '0';
                *dst++ = hex[s[i] >> 4];
                *dst++ = hex[s[i] & 0xf];

            } else {
                *dst++ = s[i];
            }
        }
    }

    return dst;
}


/*
 * {"error":{"message":...,"type":...,"param":...,"code":...}}
 * Returns the length written, or 0 if it does not fit.
 */

size_t
ai_error_json(unsigned char *buf, size_t size, const char *message,
    const char *type, const char *param, const char *code)
{
    size_t          need;
    unsigned char  *p;

    need = sizeof("{\"error\":{\"message\":\"\",\"type\":\"\",\"param\":,"
                  "\"code\":}}\n") - 1
           + ai_json_escape_len((const unsigned char *) message,
                                strlen(message))
           + ai_json_escape_len((const unsigned char *) type, strlen(type))
           + (param ? ai_json_escape_len((const unsigned char *) param,
                                         strlen(param)) + 2 : 4)
           + (code ? ai_json_escape_len((const unsigned char *) code,
                                        strlen(code)) + 2 : 4);

    if (need > size) {
        return 0;
    }

    p = buf;

#define ai_cpy(s)  do { memcpy(p, s, sizeof(s) - 1); p += sizeof(s) - 1; } \
                   while (0)

    ai_cpy("{\"error\":{\"message\":\"");
    p = ai_json_escape(p, (const unsigned char *) message, strlen(message));
    ai_cpy("\",\"type\":\"");
    p = ai_json_escape(p, (const unsigned char *) type, strlen(type));
    ai_cpy("\",\"param\":");

    if (param) {
        *p++ = '"';
        p = ai_json_escape(p, (const unsigned char *) param, strlen(param));
        *p++ = '"';

    } else {
        ai_cpy("null");
    }

    ai_cpy(",\"code\":");

    if (code) {
        *p++ = '"';
        p = ai_json_escape(p, (const unsigned char *) code, strlen(code));
        *p++ = '"';

    } else {
        ai_cpy("null");
    }

    ai_cpy("}}\n");

#undef ai_cpy

    return p - buf;
}


size_t
ai_json_utf8_put(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char) cp;
        return 1;
    }

    if (cp < 0x800) {
        dst[0] = (char) (0xc0 | (cp >> 6));
        dst[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        dst[0] = (char) (0xe0 | (cp >> 12));
        dst[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }

    dst[0] = (char) (0xf0 | (cp >> 18));
    dst[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}
