/*
 * deny_patterns: rejects prompts (and/or stops responses) that match one of
 * a list of PCRE2 patterns.
 *
 *   file=/etc/nginx/aigw-deny.txt    (required)
 *   apply=request|response|both      (default: request)
 *   max_hold=256                     (stream: most bytes held back, 0..65536)
 *
 * The file has one pattern per line; blank lines and lines starting with #
 * are ignored; "name: pattern" names a rule (name: [A-Za-z0-9_.-]+),
 * otherwise the rule is called "line N".  Patterns are UTF-8 (PCRE2_UTF,
 * invalid input tolerated) and compiled once, with JIT, at configuration
 * time; a bad pattern is a configuration error naming file and line.
 *
 * A match rejects with 400 invalid_request_error/content_policy_violation
 * naming the rule, never the matched text.  On streams, text that may be
 * the beginning of a match (PCRE2_PARTIAL_HARD) is held back, at most
 * max_hold bytes, so a match split across deltas is caught before any of
 * it reaches the client; a match longer than max_hold still stops the
 * stream, but its beginning may already have been sent.
 */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "aigw_plugin.h"
#include "plugin_util.h"


#define DENY_CONTEXT  16           /* bytes kept before held text, for
                                      lookbehinds and \b */


typedef struct {
    char        *name;
    pcre2_code  *code;
    int          jit;
    pcre2_code  *ascii;         /* the same without UTF, for ASCII text */
    int          ascii_jit;
    char        *lit;           /* in every match (ASCII text, caseless if
                                   ci), lowercase when ci; NULL: none */
    size_t       lit_len;
    size_t       lit_anchor;    /* its rarest byte in English text */
    int          ci;
} deny_rule_t;


typedef struct {
    deny_rule_t  *rules;
    size_t        nrules;
    int           apply;
    size_t        max_hold;
} deny_conf_t;


typedef struct {
    unsigned   choice;
    size_t     ctx;                /* context bytes at the start of buf */
    pu_buf_t   buf;                /* context + held text */
} deny_stream_t;


typedef struct {
    pcre2_match_data  *md;
    deny_stream_t     *streams;
    size_t             nstreams;
    pu_buf_t           work;
    pu_buf_t           lower;       /* the text in lowercase */
} deny_state_t;


static void
deny_conf_free(void *conf)
{
    size_t        i;
    deny_conf_t  *cf = conf;

    for (i = 0; i < cf->nrules; i++) {
        free(cf->rules[i].name);
        pcre2_code_free(cf->rules[i].code);
        pcre2_code_free(cf->rules[i].ascii);
        free(cf->rules[i].lit);
    }

    free(cf->rules);
    free(cf);
}


static int
deny_ascii(const char *s)
{
    for ( ; *s; s++) {
        if ((unsigned char) *s >= 0x80) {
            return 0;
        }
    }

    return 1;
}


/*
 * A literal that every match of pat contains, to skip the rule on ASCII
 * text that lacks it (the JIT's own start optimisations do not reach past
 * "\b[a-z]+" or a caseless first letter).  Conservative: only the
 * top-level sequence is read, any top-level '|', verb, \Q or extended mode
 * gives up, groups, classes and escapes other than escaped punctuation
 * end a run, and an optional character is dropped.  Sets *ci when a
 * (?i) appears anywhere (the search is then caseless: a superset).
 * Returns the longest run of at least 3 bytes, starting at a letter or
 * digit, or 0.
 */
static size_t
deny_literal(const char *pat, char *lit, size_t size, int *ci)
{
    int          depth, cls;
    char         run[256];
    size_t       n, best;
    const char  *p, *q;

    *ci = 0;

    if (strstr(pat, "(*") || strstr(pat, "\\Q")) {
        return 0;
    }

    /* flags: any i makes the search caseless, any x gives up */
    for (p = strstr(pat, "(?"); p; p = strstr(p + 2, "(?")) {
        for (q = p + 2; *q && (*q == '-' || (*q >= 'a' && *q <= 'z')
                               || (*q >= 'A' && *q <= 'Z')); q++)
        {
            if (*q == 'x') {
                return 0;
            }
            if (*q == 'i') {
                *ci = 1;
            }
        }
    }

    n = 0;
    best = 0;
    depth = 0;
    cls = 0;

#define DENY_RUN_END()                                                      \
    do {                                                                    \
        size_t  k_ = 0;                                                     \
        while (k_ < n && !((run[k_] >= 'a' && run[k_] <= 'z')               \
                           || (run[k_] >= 'A' && run[k_] <= 'Z')            \
                           || (run[k_] >= '0' && run[k_] <= '9')))          \
        {                                                                   \
            k_++;                                                           \
        }                                                                   \
        if (n - k_ >= 3 && n - k_ > best && n - k_ < size) {                \
            best = n - k_;                                                  \
            memcpy(lit, run + k_, best);                                    \
        }                                                                   \
        n = 0;                                                              \
    } while (0)

    for (p = pat; *p; p++) {
        if (*p == '\\' && p[1] != '\0') {
            /* escapes with arguments: not worth reading */
            if (strchr("xocNpPgk0123456789", p[1])) {
                return 0;
            }

            if (depth == 0 && !cls && !((p[1] >= 'a' && p[1] <= 'z')
                                        || (p[1] >= 'A' && p[1] <= 'Z')
                                        || (p[1] >= '0' && p[1] <= '9'))
                && (unsigned char) p[1] < 0x80 && p[1] != '\n')
            {
                if (n < sizeof(run)) {
                    run[n++] = p[1];
                }

            } else if (depth == 0 && !cls) {
                DENY_RUN_END();
            }

            p++;
            goto quantifier;
        }

        if (cls) {
            if (*p == ']') {
                cls = 0;
            } else if (*p == '[' && p[1] == ':') {
                q = strstr(p, ":]");
                if (q == NULL) {
                    return 0;
                }
                p = q + 1;
            }
            continue;
        }

        switch (*p) {
        case '[':
            if (depth == 0) {
                DENY_RUN_END();
            }
            /* a ']' right after "[" or "[^" is a member */
            cls = 1;
            if (p[1] == '^') {
                p++;
            }
            if (p[1] == ']') {
                p++;
            }
            continue;

        case '(':
            if (depth++ == 0) {
                DENY_RUN_END();
            }
            continue;

        case ')':
            if (depth-- == 0) {
                return 0;
            }
            continue;

        case '|':
            if (depth == 0) {
                return 0;
            }
            continue;

        default:
            break;
        }

        if (depth > 0) {
            continue;
        }

        if (*p == '{') {
            /* {n}, {n,}, {n,m} after an item the run does not hold (or
             * already ended): skipped; anything else is a literal '{' */
            for (q = p + 1; (*q >= '0' && *q <= '9') || *q == ','; q++) {
                /* void */
            }

            if (*q != '}' || q == p + 1) {
                return 0;
            }

            DENY_RUN_END();
            p = q;
            continue;
        }

        if (strchr(".^$*+?}", *p) || (unsigned char) *p >= 0x80
            || *p == '\n' || *p == '\r')
        {
            DENY_RUN_END();
            continue;
        }

        if (n < sizeof(run)) {
            run[n++] = *p;
        }

    quantifier:

        if (depth > 0 || cls) {
            continue;
        }

        /* the last byte of the run is quantified */
        if (p[1] == '?' || p[1] == '*' || (p[1] == '{' && (p[2] == '0'
                                                           || p[2] == ',')))
        {
            if (n > 0) {
                n--;
            }
            DENY_RUN_END();

        } else if (p[1] == '+' || p[1] == '{') {
            DENY_RUN_END();
        }
    }

    if (depth != 0 || cls) {
        return 0;
    }

    DENY_RUN_END();

#undef DENY_RUN_END

    return best;
}


/* how common a byte is in English prose: lower is rarer */
static int
deny_byte_rank(unsigned char c)
{
    static const char  common[] = " etaoinshrdlcumwfgypbvkjxqz";
    const char        *p;

    if (c >= 'A' && c <= 'Z') {
        c |= 0x20;
    }

    p = c ? strchr(common, c) : NULL;

    return p ? (int) (sizeof(common) - (size_t) (p - common)) : 0;
}


/* lit in s: memchr for the literal's rarest byte, then compare */
static int
deny_has_literal(const char *s, size_t len, const deny_rule_t *r)
{
    size_t       a;
    const char  *p, *end;

    a = r->lit_anchor;

    if (len < r->lit_len) {
        return 0;
    }

    end = s + len - (r->lit_len - a);

    for (p = s + a; p <= end; p++) {
        p = memchr(p, r->lit[a], (size_t) (end - p) + 1);
        if (p == NULL) {
            return 0;
        }

        if (p[-(ptrdiff_t) a] == r->lit[0]
            && p[r->lit_len - 1 - a] == r->lit[r->lit_len - 1]
            && memcmp(p - a, r->lit, r->lit_len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* ASCII s in lowercase into d, eight bytes at a time */
static void
deny_lower(char *d, const char *s, size_t len)
{
    size_t    i;
    uint64_t  w, h, up;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        h = w & 0x7f7f7f7f7f7f7f7fULL;
        /* bit 7 of each byte: >= 'A', and not > 'Z' */
        up = (h + 0x3f3f3f3f3f3f3f3fULL) & ~(h + 0x2525252525252525ULL)
             & ~w & 0x8080808080808080ULL;
        w |= up >> 2;
        memcpy(d + i, &w, 8);
    }

    for ( ; i < len; i++) {
        d[i] = s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i];
    }
}


static int
deny_load(deny_conf_t *cf, const char *path, char *err, size_t errlen)
{
    int           rc, ec;
    FILE         *f;
    char         *line, *p, *pat, *name, nbuf[32];
    size_t        cap, len, lineno, n;
    PCRE2_SIZE    off;
    char          lbuf[256];
    size_t        k;
    deny_rule_t  *r;
    PCRE2_UCHAR   msg[160];

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open file \"%s\": %s", path,
                 strerror(errno));
        return -1;
    }

    line = NULL;
    cap = 0;
    lineno = 0;
    rc = -1;

    while (getline(&line, &cap, f) >= 0) {
        lineno++;

        len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }

        for (p = line; *p == ' ' || *p == '\t'; p++) { /* void */ }

        if (*p == '\0' || *p == '#') {
            continue;
        }

        /* "name: pattern" */
        pat = line;
        name = NULL;
        n = strspn(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789_.-");
        if (n > 0 && line[n] == ':' && (line[n + 1] == ' '
                                        || line[n + 1] == '\t'))
        {
            line[n] = '\0';
            name = line;
            for (pat = line + n + 1; *pat == ' ' || *pat == '\t'; pat++) {
                /* void */
            }
        }

        if (name == NULL) {
            snprintf(nbuf, sizeof(nbuf), "line %zu", lineno);
            name = nbuf;
        }

        if (*pat == '\0') {
            snprintf(err, errlen, "%s:%zu: rule \"%s\" has no pattern", path,
                     lineno, name);
            goto done;
        }

        r = realloc(cf->rules, (cf->nrules + 1) * sizeof(deny_rule_t));
        if (r == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        cf->rules = r;
        r = &cf->rules[cf->nrules];
        memset(r, 0, sizeof(deny_rule_t));

        r->code = pcre2_compile((PCRE2_SPTR) pat, PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec,
                                &off, NULL);
        if (r->code == NULL) {
            pcre2_get_error_message(ec, msg, sizeof(msg));
            snprintf(err, errlen, "%s:%zu: bad pattern for rule \"%s\" at "
                     "offset %zu: %s", path, lineno, name, (size_t) off,
                     (char *) msg);
            goto done;
        }

        r->jit = pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE
                                            | PCRE2_JIT_PARTIAL_HARD) == 0;

        /*
         * On ASCII text an ASCII pattern matches the same without UTF, and
         * about twice as fast (caseless matching decodes no UTF-8).  A
         * pattern that only UTF mode takes (\x{100}, \N{U+..}) keeps the
         * UTF code alone; a non-ASCII letter could fold to an ASCII one
         * (the Kelvin sign to k), so such patterns do too.
         */
        if (deny_ascii(pat)) {
            r->ascii = pcre2_compile((PCRE2_SPTR) pat, PCRE2_ZERO_TERMINATED,
                                     0, &ec, &off, NULL);
            if (r->ascii != NULL) {
                r->ascii_jit = pcre2_jit_compile(r->ascii,
                                                 PCRE2_JIT_COMPLETE
                                                 | PCRE2_JIT_PARTIAL_HARD)
                               == 0;

                n = deny_literal(pat, lbuf, sizeof(lbuf), &r->ci);
                if (n > 0 && (r->lit = malloc(n)) != NULL) {
                    for (k = 0; k < n; k++) {
                        r->lit[k] = r->ci && lbuf[k] >= 'A'
                                    && lbuf[k] <= 'Z' ? lbuf[k] | 0x20
                                                      : lbuf[k];
                    }
                    r->lit_len = n;

                    for (k = 1; k < n; k++) {
                        if (deny_byte_rank(r->lit[k])
                            < deny_byte_rank(r->lit[r->lit_anchor]))
                        {
                            r->lit_anchor = k;
                        }
                    }
                }
            }
        }

        r->name = strdup(name);
        cf->nrules++;

        if (r->name == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }

    if (cf->nrules == 0) {
        snprintf(err, errlen, "file \"%s\" has no patterns", path);
        goto done;
    }

    rc = 0;

done:

    free(line);
    fclose(f);
    return rc;
}


static int
deny_configure(const aigw_kv_t *kv, size_t n, void **conf, char *err,
    size_t errlen)
{
    char         *end;
    size_t        i;
    const char   *file;
    unsigned long v;
    deny_conf_t  *cf;

    cf = calloc(1, sizeof(deny_conf_t));
    if (cf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    cf->apply = PU_APPLY_REQUEST;
    cf->max_hold = 256;
    file = NULL;

    for (i = 0; i < n; i++) {
        if (strcmp(kv[i].key, "file") == 0) {
            file = kv[i].value;

        } else if (strcmp(kv[i].key, "apply") == 0) {
            if (pu_parse_apply(kv[i].value, &cf->apply) != 0) {
                snprintf(err, errlen, "invalid apply \"%s\" (expected "
                         "request, response or both)", kv[i].value);
                goto failed;
            }

        } else if (strcmp(kv[i].key, "max_hold") == 0) {
            errno = 0;
            v = strtoul(kv[i].value, &end, 10);
            if (errno || *end || end == kv[i].value || v > 65536) {
                snprintf(err, errlen, "invalid max_hold \"%s\" (bytes, "
                         "0..65536)", kv[i].value);
                goto failed;
            }
            cf->max_hold = v;

        } else {
            snprintf(err, errlen, "unknown option \"%s\" (expected file, "
                     "apply or max_hold)", kv[i].key);
            goto failed;
        }
    }

    if (file == NULL || file[0] == '\0') {
        snprintf(err, errlen, "file= is required");
        goto failed;
    }

    if (deny_load(cf, file, err, errlen) != 0) {
        goto failed;
    }

    *conf = cf;
    return 0;

failed:

    deny_conf_free(cf);
    return -1;
}


static int
deny_request_start(void *conf, aigw_request_t *req, void **state)
{
    deny_state_t  *s;

    (void) conf;
    (void) req;

    s = calloc(1, sizeof(deny_state_t));
    if (s == NULL) {
        return -1;
    }

    /* ovector size does not matter: only the whole match is read */
    s->md = pcre2_match_data_create(1, NULL);
    if (s->md == NULL) {
        free(s);
        return -1;
    }

    *state = s;
    return 0;
}


static void
deny_request_end(void *conf, void *state)
{
    size_t         i;
    deny_state_t  *s = state;

    (void) conf;

    for (i = 0; i < s->nstreams; i++) {
        pu_buf_free(&s->streams[i].buf);
    }

    free(s->streams);
    pu_buf_free(&s->work);
    pu_buf_free(&s->lower);
    pcre2_match_data_free(s->md);
    free(s);
}


/* whether s has only ASCII bytes, a word at a time */
static int
deny_text_ascii(const char *s, size_t len)
{
    size_t    i;
    uint64_t  w, acc;

    acc = 0;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        acc |= w;
    }

    for ( ; i < len; i++) {
        acc |= (unsigned char) s[i];
    }

    return (acc & 0x8080808080808080ULL) == 0;
}


static int
deny_match(const deny_rule_t *r, const char *s, size_t len, size_t start,
    uint32_t opts, pcre2_match_data *md, int ascii)
{
    if (ascii && r->ascii != NULL) {
        if (r->ascii_jit) {
            return pcre2_jit_match(r->ascii, (PCRE2_SPTR) s, len, start,
                                   opts, md, NULL);
        }

        return pcre2_match(r->ascii, (PCRE2_SPTR) s, len, start, opts, md,
                           NULL);
    }

    if (r->jit) {
        return pcre2_jit_match(r->code, (PCRE2_SPTR) s, len, start, opts, md,
                               NULL);
    }

    return pcre2_match(r->code, (PCRE2_SPTR) s, len, start, opts, md, NULL);
}


/* the first rule, in file order, that matches text (after start) */
static const deny_rule_t *
deny_first(const deny_conf_t *cf, deny_state_t *s, const char *text,
    size_t len, size_t start)
{
    int                 ascii;
    char               *lower;
    size_t              i;
    const deny_rule_t  *r;

    /*
     * Rule by rule: one alternation of them all is several times slower
     * with PCRE2's JIT, each rule alone keeping its start and required-byte
     * optimisations.  On ASCII text, a rule whose literal is absent (one
     * memchr for its rarest byte, over the text lowered once for caseless rules) is skipped.
     */

    ascii = deny_text_ascii(text, len);
    lower = NULL;

    for (i = 0; i < cf->nrules; i++) {
        r = &cf->rules[i];

        if (ascii && r->lit != NULL) {
            if (r->ci && lower == NULL) {
                s->lower.len = 0;
                if (pu_buf_reserve(&s->lower, len - start + 1) != 0) {
                    ascii = 0;
                    goto match;
                }
                lower = s->lower.data;
                deny_lower(lower, text + start, len - start);
            }

            if (!deny_has_literal(r->ci ? lower : text + start, len - start,
                                  r))
            {
                continue;
            }
        }

    match:

        if (deny_match(&cf->rules[i], text, len, start, 0, s->md, ascii)
            >= 0)
        {
            return &cf->rules[i];
        }
    }

    return NULL;
}


static void
deny_reject(aigw_verdict_t *v, const deny_rule_t *r, const char *what,
    const char *param)
{
    aigw_verdict_reject(v, 400, "invalid_request_error",
                        "content_policy_violation", param,
                        "the %s was rejected by content policy rule \"%s\"",
                        what, r->name);
}


static void
deny_on_request(void *conf, void *state, aigw_request_t *req,
    aigw_verdict_t *v)
{
    size_t               i;
    deny_state_t        *s = state;
    const deny_rule_t   *r;
    const deny_conf_t   *cf = conf;

    if (!(cf->apply & PU_APPLY_REQUEST)) {
        return;
    }

    for (i = 0; i < req->ntexts; i++) {
        r = deny_first(cf, s, req->texts[i].text, req->texts[i].len, 0);

        if (r != NULL) {
            deny_reject(v, r, "request", req->texts[i].param);
            return;
        }
    }
}


static deny_stream_t *
deny_stream(deny_state_t *s, unsigned choice)
{
    size_t          i;
    deny_stream_t  *p;

    for (i = 0; i < s->nstreams; i++) {
        if (s->streams[i].choice == choice) {
            return &s->streams[i];
        }
    }

    p = realloc(s->streams, (s->nstreams + 1) * sizeof(deny_stream_t));
    if (p == NULL) {
        return NULL;
    }

    s->streams = p;
    p = &s->streams[s->nstreams++];
    memset(p, 0, sizeof(deny_stream_t));
    p->choice = choice;
    return p;
}


static void
deny_text(const deny_conf_t *cf, deny_state_t *s, aigw_delta_t *d,
    aigw_verdict_t *v, int final)
{
    int             rc, ascii;
    size_t          i, len, hold, keep;
    const char     *w;
    PCRE2_SIZE     *ov;
    deny_stream_t  *st;
    const deny_rule_t  *r;

    if (!(cf->apply & PU_APPLY_RESPONSE)) {
        return;
    }

    st = deny_stream(s, d->choice);
    if (st == NULL) {
        goto nomem;
    }

    if (st->buf.len == 0) {
        /* nothing before it: the delta is read where it is */
        w = d->len ? d->text : "";
        len = d->len;

    } else {
        /* context + held text + the new delta */
        s->work.len = 0;
        if (pu_buf_append(&s->work, st->buf.data, st->buf.len) != 0
            || pu_buf_append(&s->work, d->text, d->len) != 0)
        {
            goto nomem;
        }

        w = s->work.data;
        len = s->work.len;
    }
    hold = final ? len : pu_utf8_complete(w, len);
    if (hold < st->ctx) {
        hold = st->ctx;
    }

    ov = pcre2_get_ovector_pointer(s->md);

    if (final) {
        r = deny_first(cf, s, w, len, st->ctx);

        if (r != NULL) {
            st->buf.len = 0;
            deny_reject(v, r, "response", NULL);
            return;
        }
    }

    ascii = deny_text_ascii(w, len);

    for (i = 0; i < cf->nrules && !final; i++) {
        rc = deny_match(&cf->rules[i], w, len, st->ctx,
                        final ? 0 : PCRE2_PARTIAL_HARD, s->md, ascii);

        if (rc >= 0) {
            st->buf.len = 0;
            deny_reject(v, &cf->rules[i], "response", NULL);
            return;
        }

        if (rc == PCRE2_ERROR_PARTIAL && ov[0] < hold) {
            hold = ov[0] < st->ctx ? st->ctx : ov[0];
        }
    }

    /* never hold more than max_hold: emit the oldest bytes */
    if (!final && len - hold > cf->max_hold) {
        hold = len - cf->max_hold;
        while (hold < len && ((unsigned char) w[hold] & 0xc0) == 0x80) {
            hold++;
        }
    }

    if (w != s->work.data && hold == len) {
        /* the delta read in place, nothing held: it goes on as it is */

    } else if (w != s->work.data) {
        /* what is emitted must be ours, not the caller's */
        s->work.len = 0;
        if (pu_buf_append(&s->work, w, hold) != 0) {
            goto nomem;
        }
        d->out = s->work.data ? s->work.data : "";
        d->out_len = hold;
        v->action = AIGW_MODIFIED;

    } else {
        d->out = w + st->ctx;
        d->out_len = hold - st->ctx;
        v->action = AIGW_MODIFIED;
    }

    /* keep a little context before the held text */
    keep = hold < DENY_CONTEXT ? hold : DENY_CONTEXT;
    st->buf.len = 0;
    if (pu_buf_append(&st->buf, w + hold - keep, len - hold + keep) != 0) {
        goto nomem;
    }
    st->ctx = keep;

    if (final) {
        st->buf.len = 0;
        st->ctx = 0;
    }

    return;

nomem:

    aigw_verdict_reject(v, 500, "server_error", NULL, NULL,
                        "deny_patterns ran out of memory");
}


static void
deny_on_delta(void *conf, void *state, aigw_delta_t *d, aigw_verdict_t *v)
{
    deny_text(conf, state, d, v, 0);
}


static void
deny_on_delta_flush(void *conf, void *state, aigw_delta_t *d,
    aigw_verdict_t *v)
{
    deny_text(conf, state, d, v, 1);
}


static const aigw_plugin_t  deny_patterns_plugin = {
    AIGW_PLUGIN_ABI_VERSION,
    "deny_patterns",
    "1.0",
    deny_configure,
    deny_conf_free,
    deny_request_start,
    deny_request_end,
    deny_on_request,
    deny_on_delta,
    deny_on_delta_flush,
    NULL,
    AIGW_PLUGIN_TEXT_ONLY
};

AIGW_PLUGIN_EXPORT(deny_patterns_plugin)
