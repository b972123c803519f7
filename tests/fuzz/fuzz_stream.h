
/*
 * The body of the stream translator targets (fuzz_stream_*.c define
 * FUZZ_STREAM_FORMAT and include this).  The payload is a provider's
 * event stream; it is fed whole, split in two at the fuzzer's point and
 * byte by byte, then finished.  All three must give the same output and
 * the same usage, nothing may crash or leak, and the output must be a
 * well-formed event stream (nothing left pending when it is parsed back)
 * whose data lines are JSON (or "[DONE]"), so a client never sees a
 * broken frame (the OpenAI pass-through excepted: it forwards the
 * provider's data lines as they are).
 *
 * Flags (header byte 2): bit 0 include_usage, bit 1 the upstream body
 * ended cleanly (ai_stream_finish's complete), bit 2 the completions
 * endpoint instead of chat.
 */

#include <jansson.h>

#include "ai_translate.h"
#include "fuzz_common.h"


static ai_stream_t *
fuzz_stream_new(const ai_translate_opts_t *o)
{
#if (FUZZ_STREAM_FORMAT == AI_FORMAT_ANTHROPIC_IN)
    return ai_anthropic_in_stream_new(o);
#else
    return ai_stream_new(FUZZ_STREAM_FORMAT, o);
#endif
}


typedef struct {
    int   bad;
} fuzz_check_t;


static int
fuzz_check_event(void *ctx, const ai_sse_event_t *ev)
{
    json_t        *v;
    fuzz_check_t  *c = ctx;

    if (strcmp(ev->data, "[DONE]") == 0) {
        return 0;
    }

    v = json_loadb(ev->data, ev->data_len, JSON_DECODE_ANY, NULL);

    if (v == NULL) {
        fprintf(stderr, "fuzz: output event is not JSON: %.*s\n",
                (int) (ev->data_len > 300 ? 300 : ev->data_len), ev->data);
        c->bad++;
    }

    json_decref(v);

    return 0;
}


static int
fuzz_stream_run(const fuzz_input_t *in, const ai_translate_opts_t *o,
    int mode, ai_buf_t *out, ai_usage_t *usage)
{
    int           rc, complete;
    size_t        i;
    ai_stream_t  *s;

    memset(out, 0, sizeof(ai_buf_t));
    complete = (in->flags & 2) != 0;

    s = fuzz_stream_new(o);
    FUZZ_CHECK(s != NULL);

    rc = 0;

    if (mode == 0) {
        rc = ai_stream_feed(s, (const char *) in->data, in->len, out);

    } else if (mode == 1) {
        rc = ai_stream_feed(s, (const char *) in->data, in->split, out);

        if (rc == 0) {
            rc = ai_stream_feed(s, (const char *) in->data + in->split,
                                in->len - in->split, out);
        }

    } else {
        for (i = 0; i < in->len && rc == 0; i++) {
            rc = ai_stream_feed(s, (const char *) in->data + i, 1, out);
        }
    }

    if (ai_stream_finish(s, complete, out) != 0) {
        rc = rc ? rc : -2;
    }

    *usage = *ai_stream_usage(s);
    ai_stream_free(s);

    return rc;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  rc, rc2, mode;
    ai_sse_t             p;
    ai_buf_t             whole, other;
    ai_usage_t           u, u2;
    fuzz_input_t         in;
    fuzz_check_t         c;
    ai_translate_opts_t  o;

    if (fuzz_input(data, size, &in) != 0) {
        return 0;
    }

    memset(&o, 0, sizeof(o));
    o.endpoint = (in.flags & 4) ? AI_EP_COMPLETIONS : AI_EP_CHAT;
    o.model = "provider-model";
    o.model_len = 14;
    o.client_model = "client-model";
    o.client_model_len = 12;
    o.default_max_tokens = 1024;
    o.stream = 1;
    o.include_usage = in.flags & 1;
    o.created = 1700000000;

    rc = fuzz_stream_run(&in, &o, 0, &whole, &u);

    for (mode = 1; mode <= 2; mode++) {
        rc2 = fuzz_stream_run(&in, &o, mode, &other, &u2);

        if (rc2 != rc || other.len != whole.len
            || (whole.len && memcmp(other.data, whole.data, whole.len) != 0)
            || memcmp(&u, &u2, sizeof(u)) != 0)
        {
            fprintf(stderr, "fuzz: output differs when fed %s (split %zu, "
                    "rc %d/%d, len %zu/%zu)\n",
                    mode == 1 ? "split" : "byte by byte", in.split, rc, rc2,
                    whole.len, other.len);
            FUZZ_CHECK(!"same output however the bytes are split");
        }

        ai_buf_free(&other);
    }

#if (FUZZ_STREAM_FORMAT == AI_FORMAT_ANTHROPIC)
    {
        /* the fast readers of events and jansson alone agree exactly */

        ai_translate_opts_t  to;

        to = o;
        to.tree_only = 1;

        rc2 = fuzz_stream_run(&in, &to, 0, &other, &u2);

        if (rc2 != rc || other.len != whole.len
            || (whole.len && memcmp(other.data, whole.data, whole.len) != 0)
            || memcmp(&u, &u2, sizeof(u)) != 0)
        {
            fprintf(stderr, "fuzz: fast and jansson streams differ "
                    "(rc %d/%d):\n%.*s\n---\n%.*s\n", rc, rc2,
                    (int) whole.len, whole.data, (int) other.len,
                    other.data);
            FUZZ_CHECK(!"the fast path writes what jansson's does");
        }

        ai_buf_free(&other);
    }
#endif

    /* what the client receives is a well-formed stream of JSON events */

    c.bad = 0;
    ai_sse_init(&p, 0);

    if (whole.len) {
        FUZZ_CHECK(ai_sse_feed(&p, whole.data, whole.len, fuzz_check_event,
                               &c) == 0);
    }

    FUZZ_CHECK(p.line_len == 0 && !p.has_data);
    ai_sse_free(&p);

#if (FUZZ_STREAM_FORMAT != AI_FORMAT_OPENAI)
    /* (the OpenAI pass-through forwards the provider's data as it is) */
    FUZZ_CHECK(c.bad == 0);
#endif

    ai_buf_free(&whole);

    return 0;
}
