
/*
 * Pure Prometheus text exposition, format 0.0.4: see ai_prom.h.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_prom.h"


#define AI_PROM_MAX_LABELS  8


static int ai_prom_reserve(ai_prom_buf_t *b, size_t more);
static int ai_prom_labels(ai_prom_buf_t *b, const ai_prom_label_t *labels,
    size_t n);


void
ai_prom_buf_init(ai_prom_buf_t *b)
{
    memset(b, 0, sizeof(ai_prom_buf_t));
}


void
ai_prom_buf_free(ai_prom_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(ai_prom_buf_t));
}


static int
ai_prom_reserve(ai_prom_buf_t *b, size_t more)
{
    char    *p;
    size_t   cap;

    if (b->failed) {
        return -1;
    }

    if (b->len + more <= b->cap) {
        return 0;
    }

    cap = b->cap ? b->cap : 4096;

    while (cap < b->len + more) {
        if (cap > ((size_t) -1) / 2) {
            b->failed = 1;
            return -1;
        }

        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }

    b->data = p;
    b->cap = cap;

    return 0;
}


int
ai_prom_append(ai_prom_buf_t *b, const char *p, size_t len)
{
    if (ai_prom_reserve(b, len) != 0) {
        return -1;
    }

    memcpy(b->data + b->len, p, len);
    b->len += len;

    return 0;
}


/* label values: backslash, double quote and line feed are escaped */

size_t
ai_prom_escape_label(char *out, const char *s, size_t len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        switch (s[i]) {

        case '\\':
        case '"':
            if (out) {
                out[n] = '\\';
                out[n + 1] = s[i];
            }
            n += 2;
            break;

        case '\n':
            if (out) {
                out[n] = '\\';
                out[n + 1] = 'n';
            }
            n += 2;
            break;

        default:
            if (out) {
                out[n] = s[i];
            }
            n++;
        }
    }

    return n;
}


/* help text: only backslash and line feed */

size_t
ai_prom_escape_help(char *out, const char *s, size_t len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == '\\' || s[i] == '\n') {
            if (out) {
                out[n] = '\\';
                out[n + 1] = (s[i] == '\n') ? 'n' : '\\';
            }
            n += 2;

        } else {
            if (out) {
                out[n] = s[i];
            }
            n++;
        }
    }

    return n;
}


static int
ai_prom_name_valid(const char *s, size_t len, int colon)
{
    size_t  i;
    char    c;

    if (len == 0) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = s[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
            || (colon && c == ':') || (i > 0 && c >= '0' && c <= '9'))
        {
            continue;
        }

        return 0;
    }

    return 1;
}


int
ai_prom_metric_name_valid(const char *s, size_t len)
{
    return ai_prom_name_valid(s, len, 1);
}


int
ai_prom_label_name_valid(const char *s, size_t len)
{
    return ai_prom_name_valid(s, len, 0)
           && !(len >= 2 && s[0] == '_' && s[1] == '_');
}


int
ai_prom_family(ai_prom_buf_t *b, const char *name, const char *type,
    const char *help)
{
    size_t  nlen, hlen, tlen;

    nlen = strlen(name);
    tlen = strlen(type);
    hlen = ai_prom_escape_help(NULL, help, strlen(help));

    if (ai_prom_reserve(b, 2 * nlen + hlen + tlen + 20) != 0) {
        return -1;
    }

    ai_prom_append(b, "# HELP ", 7);
    ai_prom_append(b, name, nlen);
    ai_prom_append(b, " ", 1);
    b->len += ai_prom_escape_help(b->data + b->len, help, strlen(help));
    ai_prom_append(b, "\n# TYPE ", 8);
    ai_prom_append(b, name, nlen);
    ai_prom_append(b, " ", 1);
    ai_prom_append(b, type, tlen);

    return ai_prom_append(b, "\n", 1);
}


static int
ai_prom_labels(ai_prom_buf_t *b, const ai_prom_label_t *labels, size_t n)
{
    size_t  i, len;

    if (n == 0) {
        return 0;
    }

    ai_prom_append(b, "{", 1);

    for (i = 0; i < n; i++) {
        if (i) {
            ai_prom_append(b, ",", 1);
        }

        ai_prom_append(b, labels[i].name, strlen(labels[i].name));
        ai_prom_append(b, "=\"", 2);

        len = ai_prom_escape_label(NULL, labels[i].value, labels[i].len);

        if (ai_prom_reserve(b, len) != 0) {
            return -1;
        }

        b->len += ai_prom_escape_label(b->data + b->len, labels[i].value,
                                       labels[i].len);
        ai_prom_append(b, "\"", 1);
    }

    return ai_prom_append(b, "}", 1);
}


int
ai_prom_sample(ai_prom_buf_t *b, const char *name, const char *suffix,
    const ai_prom_label_t *labels, size_t n, const char *value)
{
    ai_prom_append(b, name, strlen(name));

    if (suffix) {
        ai_prom_append(b, suffix, strlen(suffix));
    }

    ai_prom_labels(b, labels, n);
    ai_prom_append(b, " ", 1);
    ai_prom_append(b, value, strlen(value));

    return ai_prom_append(b, "\n", 1);
}


int
ai_prom_sample_u64(ai_prom_buf_t *b, const char *name,
    const ai_prom_label_t *labels, size_t n, uint64_t v)
{
    char  text[24];

    snprintf(text, sizeof(text), "%llu", (unsigned long long) v);

    return ai_prom_sample(b, name, NULL, labels, n, text);
}


int
ai_prom_sample_i64(ai_prom_buf_t *b, const char *name,
    const ai_prom_label_t *labels, size_t n, int64_t v)
{
    char  text[24];

    snprintf(text, sizeof(text), "%lld", (long long) v);

    return ai_prom_sample(b, name, NULL, labels, n, text);
}


/* integers all the way: no rounding of a running total through a double */

static void
ai_prom_fixed(char *text, size_t size, uint64_t v, uint64_t scale,
    int digits)
{
    snprintf(text, size, "%llu.%0*llu", (unsigned long long) (v / scale),
             digits, (unsigned long long) (v % scale));
}


int
ai_prom_sample_micro(ai_prom_buf_t *b, const char *name,
    const ai_prom_label_t *labels, size_t n, uint64_t micro)
{
    char  text[32];

    ai_prom_fixed(text, sizeof(text), micro, 1000000, 6);

    return ai_prom_sample(b, name, NULL, labels, n, text);
}


int
ai_prom_histogram(ai_prom_buf_t *b, const char *name,
    const ai_prom_label_t *labels, size_t n, const char *const *le,
    size_t nle, const uint64_t *counts, uint64_t sum_milli)
{
    char             text[32];
    size_t           i;
    uint64_t         total;
    ai_prom_label_t  l[AI_PROM_MAX_LABELS + 1];

    if (n > AI_PROM_MAX_LABELS) {
        b->failed = 1;
        return -1;
    }

    if (n) {
        memcpy(l, labels, n * sizeof(ai_prom_label_t));
    }

    l[n].name = "le";

    total = 0;

    for (i = 0; i <= nle; i++) {
        total += counts[i];

        l[n].value = (i < nle) ? le[i] : "+Inf";
        l[n].len = strlen(l[n].value);

        snprintf(text, sizeof(text), "%llu", (unsigned long long) total);
        ai_prom_sample(b, name, "_bucket", l, n + 1, text);
    }

    ai_prom_fixed(text, sizeof(text), sum_milli, 1000, 3);
    ai_prom_sample(b, name, "_sum", labels, n, text);

    snprintf(text, sizeof(text), "%llu", (unsigned long long) total);

    return ai_prom_sample(b, name, "_count", labels, n, text);
}
