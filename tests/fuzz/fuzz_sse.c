
/*
 * The SSE parser: the payload fed whole, split at a point the fuzzer
 * chooses (header byte 0-1), and byte by byte must give the same events
 * and the same status.  Flag bit 0 picks a small event limit (64 bytes)
 * so the "event too large" path is reached too.  ai_sse_end() after each.
 *
 * Known open bug (tests/fuzz/regressions/fuzz_sse/): a line that arrives
 * in one read is not held against the limit, the same line split across
 * reads is (it is buffered), so a line near or over the limit passes or
 * fails depending on where the reads fall.  While it is open, fuzzing
 * runs with AIGW_FUZZ_TOLERATE_KNOWN=1 (tools/fuzz.sh), which keeps the
 * default 4 MiB limit (no input comes near it) and looks past it; the
 * regression inputs are replayed without it and fail until it is fixed.
 */

#include "ai_sse.h"
#include "fuzz_common.h"


static int  fuzz_tolerate_known;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char  *v;

    (void) argc;
    (void) argv;

    v = getenv("AIGW_FUZZ_TOLERATE_KNOWN");
    fuzz_tolerate_known = v != NULL && strcmp(v, "1") == 0;

    return 0;
}


typedef struct {
    char    *buf;
    size_t   len;
    size_t   cap;
} fuzz_log_t;


static void
fuzz_log_put(fuzz_log_t *l, const char *p, size_t n)
{
    char  *nb;

    if (l->len + n + 1 > l->cap) {
        l->cap = (l->len + n + 1) * 2;
        nb = realloc(l->buf, l->cap);
        FUZZ_CHECK(nb != NULL);
        l->buf = nb;
    }

    memcpy(l->buf + l->len, p, n);
    l->len += n;
}


static void
fuzz_log_field(fuzz_log_t *l, const char *p, size_t n)
{
    /* length-prefixed, so that no two event lists serialise alike */
    fuzz_log_put(l, (const char *) &n, sizeof(n));
    fuzz_log_put(l, p, n);
}


static int
fuzz_on_event(void *ctx, const ai_sse_event_t *ev)
{
    fuzz_log_t  *l = ctx;

    FUZZ_CHECK(ev->event != NULL && ev->data != NULL && ev->id != NULL);
    FUZZ_CHECK(ev->event[ev->event_len] == '\0');
    FUZZ_CHECK(ev->data[ev->data_len] == '\0');
    FUZZ_CHECK(ev->id[ev->id_len] == '\0');

    fuzz_log_field(l, ev->event, ev->event_len);
    fuzz_log_field(l, ev->data, ev->data_len);
    fuzz_log_field(l, ev->id, ev->id_len);

    return 0;
}


static void
fuzz_run(const fuzz_input_t *in, size_t max, int mode, fuzz_log_t *l)
{
    int       rc, end;
    size_t    i;
    ai_sse_t  p;

    memset(l, 0, sizeof(fuzz_log_t));
    ai_sse_init(&p, max);

    rc = 0;

    if (mode == 0) {
        rc = ai_sse_feed(&p, (const char *) in->data, in->len,
                         fuzz_on_event, l);

    } else if (mode == 1) {
        rc = ai_sse_feed(&p, (const char *) in->data, in->split,
                         fuzz_on_event, l);
        if (rc == 0) {
            rc = ai_sse_feed(&p, (const char *) in->data + in->split,
                             in->len - in->split, fuzz_on_event, l);
        }

    } else {
        for (i = 0; i < in->len && rc == 0; i++) {
            rc = ai_sse_feed(&p, (const char *) in->data + i, 1,
                             fuzz_on_event, l);
        }
    }

    end = rc == 0 ? ai_sse_end(&p, fuzz_on_event, l) : -1;

    fuzz_log_put(l, (const char *) &rc, sizeof(rc));
    fuzz_log_put(l, (const char *) &end, sizeof(end));

    ai_sse_free(&p);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int           mode;
    size_t        max;
    fuzz_input_t  in;
    fuzz_log_t    whole, other;

    if (fuzz_input(data, size, &in) != 0) {
        return 0;
    }

    max = (in.flags & 1) && !fuzz_tolerate_known ? 64 : 0;

    fuzz_run(&in, max, 0, &whole);

    for (mode = 1; mode <= 2; mode++) {
        fuzz_run(&in, max, mode, &other);

        if (other.len != whole.len
            || memcmp(other.buf, whole.buf, whole.len) != 0)
        {
            fprintf(stderr, "fuzz: events differ when fed %s (split %zu)\n",
                    mode == 1 ? "split" : "byte by byte", in.split);
            FUZZ_CHECK(!"same events however the bytes are split");
        }

        free(other.buf);
    }

    free(whole.buf);

    return 0;
}
