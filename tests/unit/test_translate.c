
/*
 * Unit tests of the format translations (ai_translate.c, ai_sse.c,
 * ai_anthropic.c, ai_gemini.c, ai_anthropic_in.c).  The stream fixtures
 * under data/ were captured from tests/mocks/mock_provider.py.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_translate.h"


static int  ai_checks, ai_failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        ai_checks++;                                                       \
        if (!(cond)) {                                                     \
            ai_failures++;                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)


/* ---- helpers ---- */

static char *
ai_t_load(const char *name, size_t *len)
{
    FILE    *f;
    char     path[512], *p, *data;
    long     n;

    snprintf(path, sizeof(path), "%s", __FILE__);
    p = strrchr(path, '/');
    snprintf(p ? p + 1 : path, sizeof(path) - (p ? p + 1 - path : 0),
             "data/%s", name);

    f = fopen(path, "rb");

    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc(n + 1);

    if (data == NULL || fread(data, 1, n, f) != (size_t) n) {
        exit(2);
    }

    data[n] = '\0';
    fclose(f);
    *len = n;

    return data;
}


static int
ai_t_json_eq(const char *got, size_t len, const char *expect)
{
    int           eq;
    json_t       *a, *b;
    json_error_t  e;

    a = json_loadb(got, len, 0, &e);
    b = json_loads(expect, 0, &e);

    if (b == NULL) {
        fprintf(stderr, "bad expectation: %s: %s\n", e.text, expect);
    }

    eq = a && b && json_equal(a, b);

    if (!eq) {
        fprintf(stderr, "  got:    %.*s\n  expect: %s\n", (int) len, got,
                expect);
    }

    json_decref(a);
    json_decref(b);

    return eq;
}


static ai_translate_opts_t
ai_t_opts(int endpoint, const char *model, int include_usage)
{
    ai_translate_opts_t  o;

    memset(&o, 0, sizeof(o));
    o.endpoint = endpoint;
    o.model = model;
    o.model_len = strlen(model);
    o.client_model = "my-model";
    o.client_model_len = 8;
    o.default_max_tokens = 1024;
    o.include_usage = include_usage;
    o.created = 1700000000;

    return o;
}


/*
 * The fast path from the request's bytes (ai_translate_request_raw())
 * against the tree path's result: when it takes the request, the same
 * bytes; it never takes one the tree path refuses.
 */

static int  ai_t_raw_taken, ai_t_raw_declined;

static int
ai_t_raw_same(int format, const char *in, size_t len,
    const ai_translate_opts_t *o, int tree_rc, const ai_buf_t *tree_out,
    const ai_buf_t *tree_path)
{
    int       rc, same;
    ai_buf_t  out, path;

    memset(&out, 0, sizeof(ai_buf_t));
    memset(&path, 0, sizeof(ai_buf_t));

    rc = ai_translate_request_raw(format, in, len, o, &out, &path);

    if (rc != 0) {
        CHECK(rc == 1 && out.len == 0 && path.len == 0);
        ai_t_raw_declined++;
        ai_buf_free(&out);
        ai_buf_free(&path);
        return 0;
    }

    ai_t_raw_taken++;

    same = tree_rc == 0 && out.len == tree_out->len
           && memcmp(out.data, tree_out->data, out.len) == 0
           && path.len == tree_path->len
           && memcmp(path.data, tree_path->data, path.len) == 0;

    if (!same) {
        fprintf(stderr, "raw and tree differ for %.*s\n  raw:  %.*s\n"
                "  tree: %.*s\n", (int) len, in, (int) out.len, out.data,
                tree_rc == 0 ? (int) tree_out->len : 5,
                tree_rc == 0 ? tree_out->data : "error");
    }

    CHECK(same);

    ai_buf_free(&out);
    ai_buf_free(&path);

    return 1;
}


static int
ai_t_request(int format, const char *in, const ai_translate_opts_t *o,
    ai_buf_t *out, ai_buf_t *path, ai_json_error_t *err)
{
    int           rc;
    json_t       *req;
    json_error_t  e;

    req = json_loads(in, 0, &e);

    if (req == NULL) {
        fprintf(stderr, "bad request fixture: %s\n", e.text);
        exit(2);
    }

    memset(out, 0, sizeof(ai_buf_t));
    memset(path, 0, sizeof(ai_buf_t));
    memset(err, 0, sizeof(ai_json_error_t));

    rc = ai_translate_request(format, req, o, out, path, err);
    json_decref(req);

    ai_t_raw_same(format, in, strlen(in), o, rc, out, path);

    return rc;
}


/*
 * Runs a stream fed in pieces of `step` bytes (0: whole), or split once at
 * `split`; returns the feed status, -2 on a finish failure.
 */

typedef ai_stream_t *(*ai_t_new_pt)(int format, const ai_translate_opts_t *o);

static ai_stream_t *
ai_t_new_in(int format, const ai_translate_opts_t *o)
{
    (void) format;
    return ai_anthropic_in_stream_new(o);
}


static int ai_t_stream(ai_t_new_pt mk, int format,
    const ai_translate_opts_t *o, const char *in, size_t len, size_t step,
    size_t split, int complete, ai_buf_t *out, ai_usage_t *usage);


/* an Anthropic stream read by jansson alone gives the same bytes */

static void
ai_t_stream_same(const ai_translate_opts_t *o, const char *in, size_t len,
    size_t step, size_t split, int complete, int rc, const ai_buf_t *out,
    const ai_usage_t *usage)
{
    int                  trc;
    ai_buf_t             tout;
    ai_usage_t           tu;
    ai_translate_opts_t  to;

    to = *o;
    to.tree_only = 1;

    trc = ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &to, in, len, step,
                      split, complete, &tout, &tu);

    if (trc != rc || tout.len != out->len
        || memcmp(tout.data, out->data, out->len) != 0
        || tu.prompt_tokens != usage->prompt_tokens
        || tu.completion_tokens != usage->completion_tokens
        || tu.cached_tokens != usage->cached_tokens
        || tu.seen != usage->seen)
    {
        fprintf(stderr, "fast and tree streams differ (%d, %d) for:\n%.*s\n"
                "  fast: %.*s\n  tree: %.*s\n", rc, trc, (int) len, in,
                (int) out->len, out->data, (int) tout.len, tout.data);
        CHECK(0);
    }

    ai_buf_free(&tout);
}


static int
ai_t_stream(ai_t_new_pt mk, int format, const ai_translate_opts_t *o,
    const char *in, size_t len, size_t step, size_t split, int complete,
    ai_buf_t *out, ai_usage_t *usage)
{
    int           rc;
    size_t        pos, n;
    ai_stream_t  *s;

    memset(out, 0, sizeof(ai_buf_t));
    ai_buf_append(out, "", 0);

    s = mk(format, o);

    if (s == NULL) {
        return -3;
    }

    rc = 0;

    if (split) {
        rc = ai_stream_feed(s, in, split, out);

        if (rc == 0) {
            rc = ai_stream_feed(s, in + split, len - split, out);
        }

    } else {
        for (pos = 0; pos < len && rc == 0; pos += n) {
            n = step ? step : len;

            if (n > len - pos) {
                n = len - pos;
            }

            rc = ai_stream_feed(s, in + pos, n, out);
        }
    }

    if (ai_stream_finish(s, complete, out) != 0) {
        rc = -2;
    }

    if (usage) {
        *usage = *ai_stream_usage(s);
    }

    if (format == AI_FORMAT_ANTHROPIC && mk == ai_stream_new
        && !o->tree_only)
    {
        ai_t_stream_same(o, in, len, step, split, complete, rc, out,
                         ai_stream_usage(s));
    }

    ai_stream_free(s);

    return rc;
}


/* the events of an output stream: parsed JSON, or the string "[DONE]" */

typedef struct {
    json_t  *events;
    int      bad;
} ai_t_events_t;


static int
ai_t_collect(void *ctx, const ai_sse_event_t *ev)
{
    json_t         *v, *item;
    ai_t_events_t  *c = ctx;

    if (strcmp(ev->data, "[DONE]") == 0) {
        v = json_string("[DONE]");

    } else {
        v = json_loadb(ev->data, ev->data_len, 0, NULL);

        if (v == NULL) {
            c->bad++;
            return 0;
        }
    }

    item = json_pack("{s:s,s:o}", "event", ev->event, "data", v);
    json_array_append_new(c->events, item);

    return 0;
}


static json_t *
ai_t_events(const ai_buf_t *out, int *bad)
{
    ai_sse_t       p;
    ai_t_events_t  c;

    c.events = json_array();
    c.bad = 0;
    ai_sse_init(&p, 0);
    ai_sse_feed(&p, out->data, out->len, ai_t_collect, &c);

    /* a well-formed stream leaves nothing pending */

    if (p.line_len || p.has_data) {
        c.bad++;
    }

    ai_sse_free(&p);
    *bad = c.bad;

    return c.events;
}


static json_t *
ai_t_data(json_t *events, size_t i)
{
    return json_object_get(json_array_get(events, i), "data");
}


/* the same bytes, fed whole, byte by byte and split anywhere, same output */

static void
ai_t_split_invariant(ai_t_new_pt mk, int format,
    const ai_translate_opts_t *o, const char *in, size_t len)
{
    int       rc;
    size_t    k;
    ai_buf_t  whole, part;

    CHECK(ai_t_stream(mk, format, o, in, len, 0, 0, 1, &whole, NULL) == 0);
    CHECK(ai_t_stream(mk, format, o, in, len, 1, 0, 1, &part, NULL) == 0);
    CHECK(part.len == whole.len && memcmp(part.data, whole.data,
                                          whole.len) == 0);
    ai_buf_free(&part);

    for (k = 1; k < len; k++) {
        rc = ai_t_stream(mk, format, o, in, len, 0, k, 1, &part, NULL);

        if (rc != 0 || part.len != whole.len
            || memcmp(part.data, whole.data, whole.len) != 0)
        {
            fprintf(stderr, "split at %zu differs\n", k);
            CHECK(0);
            ai_buf_free(&part);
            break;
        }

        ai_buf_free(&part);
    }

    ai_buf_free(&whole);
}


/* ---- SSE parser ---- */

typedef struct {
    ai_buf_t  log;
    int       n;
} ai_t_sse_log_t;


static int
ai_t_sse_log(void *ctx, const ai_sse_event_t *ev)
{
    char             hdr[64];
    ai_t_sse_log_t  *l = ctx;

    l->n++;
    snprintf(hdr, sizeof(hdr), "[%zu|%zu|%zu]", ev->event_len, ev->data_len,
             ev->id_len);
    ai_buf_append_str(&l->log, hdr);
    ai_buf_append(&l->log, ev->event, ev->event_len);
    ai_buf_append_str(&l->log, "|");
    ai_buf_append(&l->log, ev->data, ev->data_len);
    ai_buf_append_str(&l->log, "|");
    ai_buf_append(&l->log, ev->id, ev->id_len);
    ai_buf_append_str(&l->log, "\n");

    return 0;
}


static void
ai_t_sse(void)
{
    size_t          i, k, len;
    ai_sse_t        p;
    ai_t_sse_log_t  whole, part;
    char           *big;

    static const char  in[] =
        "\xef\xbb\xbf: a comment\r\n"
        "event: one\r\n"
        "data: first\r\n"
        "data:second\r\n"
        "id: 7\r\n"
        "retry: 100\r\n"
        "\r\n"
        "data: cr only\r"
        "\r"
        "event: three\n"
        "data\n"
        "\n"
        "event: ignored without data\n"
        "\n"
        "data:  two spaces\n"
        "unknown: field\n"
        "\n"
        "data: tail without blank line";

    static const char  expect[] =
        "[3|12|1]one|first\nsecond|7\n"
        "[0|7|1]|cr only|7\n"
        "[5|0|1]three||7\n"
        "[0|11|1]| two spaces|7\n"
        "[0|23|1]|tail without blank line|7\n";

    len = sizeof(in) - 1;

    memset(&whole, 0, sizeof(whole));
    ai_sse_init(&p, 0);
    CHECK(ai_sse_feed(&p, in, len, ai_t_sse_log, &whole) == 0);
    CHECK(whole.n == 4);
    CHECK(ai_sse_end(&p, ai_t_sse_log, &whole) == 0);
    ai_sse_free(&p);
    CHECK(whole.n == 5);
    CHECK(whole.log.data && strcmp(whole.log.data, expect) == 0);

    if (whole.log.data && strcmp(whole.log.data, expect) != 0) {
        fprintf(stderr, "%s", whole.log.data);
    }

    for (k = 0; k <= len; k++) {
        memset(&part, 0, sizeof(part));
        ai_sse_init(&p, 0);

        /* byte by byte for k == 0, else one split at k */

        if (k == 0) {
            for (i = 0; i < len; i++) {
                ai_sse_feed(&p, in + i, 1, ai_t_sse_log, &part);
            }

        } else {
            ai_sse_feed(&p, in, k, ai_t_sse_log, &part);
            ai_sse_feed(&p, in + k, len - k, ai_t_sse_log, &part);
        }

        ai_sse_end(&p, ai_t_sse_log, &part);
        ai_sse_free(&p);

        CHECK(part.log.data && strcmp(part.log.data, whole.log.data) == 0);
        ai_buf_free(&part.log);
    }

    ai_buf_free(&whole.log);

    /* "\r" then "\n" in the next read is one line end, not two */

    memset(&part, 0, sizeof(part));
    ai_sse_init(&p, 0);
    ai_sse_feed(&p, "data: a\r", 8, ai_t_sse_log, &part);
    ai_sse_feed(&p, "\n", 1, ai_t_sse_log, &part);
    CHECK(part.n == 0);
    ai_sse_feed(&p, "\r\n", 2, ai_t_sse_log, &part);
    CHECK(part.n == 1);
    ai_sse_free(&p);
    ai_buf_free(&part.log);

    /* an event over the limit is an error, and stays one */

    memset(&part, 0, sizeof(part));
    ai_sse_init(&p, 1024);
    big = malloc(4096);
    memset(big, 'x', 4096);
    CHECK(ai_sse_feed(&p, "data: ", 6, ai_t_sse_log, &part) == 0);
    CHECK(ai_sse_feed(&p, big, 4096, ai_t_sse_log, &part) == -1);
    CHECK(ai_sse_feed(&p, "\n\n", 2, ai_t_sse_log, &part) == -1);
    ai_sse_free(&p);

    /* many short data lines add up to the limit too */

    ai_sse_init(&p, 1024);

    for (i = 0; i < 600; i++) {
        if (ai_sse_feed(&p, "data: x\n", 8, ai_t_sse_log, &part) != 0) {
            break;
        }
    }

    CHECK(i < 600);
    CHECK(part.n == 0);
    ai_sse_free(&p);
    free(big);
    ai_buf_free(&part.log);
}


/* ---- Anthropic: requests ---- */

static void
ai_t_anthropic_request(void)
{
    ai_buf_t             out, path;
    ai_json_error_t      err;
    ai_translate_opts_t  o;

    o = ai_t_opts(AI_EP_CHAT, "claude-sonnet-4", 0);

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"gpt-4o\",\"stream\":true,\"temperature\":0.5,"
        "\"top_p\":1,\"max_completion_tokens\":77,\"stop\":\"END\","
        "\"user\":\"u-1\",\"parallel_tool_calls\":false,"
        "\"tool_choice\":\"required\","
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"description\":\"d\",\"parameters\":{\"type\":\"object\"}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"g\"}}],"
        "\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\","
        "\"text\":\"Be kind.\"}]},"
        "{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look"
        "\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64,AAAA\"}},{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"https://x.test/a.jpg\"}}]},"
        "{\"role\":\"assistant\",\"content\":\"calling\",\"tool_calls\":["
        "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"f\",\"arguments\":\"{\\\"a\\\":1}\"}},"
        "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":"
        "\"g\",\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"r1\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":"
        "[{\"type\":\"text\",\"text\":\"r2\"}]},"
        "{\"role\":\"user\",\"content\":\"thanks\"}]}",
        &o, &out, &path, &err) == 0);

    CHECK(path.data && strcmp(path.data, "/messages") == 0);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"model\":\"claude-sonnet-4\","
        "\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\"},"
        "{\"type\":\"text\",\"text\":\"Be kind.\"}],"
        "\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
        "{\"type\":\"text\",\"text\":\"look\"},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\","
        "\"media_type\":\"image/png\",\"data\":\"AAAA\"}},"
        "{\"type\":\"image\",\"source\":{\"type\":\"url\","
        "\"url\":\"https://x.test/a.jpg\"}}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
        "\"text\":\"calling\"},"
        "{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"f\","
        "\"input\":{\"a\":1}},"
        "{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":\"g\","
        "\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":["
        "{\"type\":\"tool_result\",\"tool_use_id\":\"call_1\","
        "\"content\":\"r1\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"call_2\","
        "\"content\":[{\"type\":\"text\",\"text\":\"r2\"}]},"
        "{\"type\":\"text\",\"text\":\"thanks\"}]}],"
        "\"max_tokens\":77,\"stop_sequences\":[\"END\"],"
        "\"temperature\":0.5,\"top_p\":1,"
        "\"metadata\":{\"user_id\":\"u-1\"},\"stream\":true,"
        "\"tools\":[{\"name\":\"f\",\"description\":\"d\","
        "\"input_schema\":{\"type\":\"object\"}},"
        "{\"name\":\"g\",\"input_schema\":{\"type\":\"object\","
        "\"properties\":{}}}],"
        "\"tool_choice\":{\"type\":\"any\","
        "\"disable_parallel_tool_use\":true}}"));
    ai_buf_free(&out);
    ai_buf_free(&path);

    /* defaults: one system text as a string, max_tokens from the conf */

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"m\",\"max_tokens\":null,\"stop\":[\"a\",\"b\"],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":"
        "{\"name\":\"f\"}},"
        "\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
        "{\"role\":\"user\",\"content\":\"hi\"}]}",
        &o, &out, &path, &err) == 0);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"model\":\"claude-sonnet-4\",\"system\":\"S\","
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"max_tokens\":1024,\"stop_sequences\":[\"a\",\"b\"],"
        "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\","
        "\"properties\":{}}}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"f\"}}"));
    ai_buf_free(&out);
    ai_buf_free(&path);

    /* tool_choice auto and none */

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"m\",\"tool_choice\":\"none\","
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        &o, &out, &path, &err) == 0);
    CHECK(strstr(out.data, "\"tool_choice\":{\"type\":\"none\"}") != NULL);
    ai_buf_free(&out);
    ai_buf_free(&path);

    /* errors name the parameter */

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
        "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"{not json\"}}]}]}",
        &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "messages[0].tool_calls[0].function.arguments")
          == 0);
    CHECK(strstr(err.message, "not valid JSON") != NULL);
    ai_buf_free(&out);
    ai_buf_free(&path);

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"m\",\"n\":2,\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}]}", &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "n") == 0);

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x\"}}]}]}",
        &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "messages[0].content[0]") == 0);

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":"
        "\"only system\"}]}", &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "messages") == 0);

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\","
        "\"content\":\"x\"}]}", &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "messages[0].tool_call_id") == 0);

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\","
        "\"content\":\"x\"}]}", &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "max_tokens") == 0);

    CHECK(ai_t_request(AI_FORMAT_ANTHROPIC,
        "{\"model\":\"m\",\"response_format\":{\"type\":\"json_object\"},"
        "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "response_format") == 0);

    ai_buf_free(&out);
    ai_buf_free(&path);
}


/* ---- Anthropic: whole responses ---- */

static void
ai_t_anthropic_response(void)
{
    char                *body;
    size_t               len;
    ai_buf_t             out;
    ai_translate_opts_t  o;

    o = ai_t_opts(AI_EP_CHAT, "claude", 0);

    body = ai_t_load("anthropic_claude.json", &len);
    memset(&out, 0, sizeof(out));
    CHECK(ai_translate_response(AI_FORMAT_ANTHROPIC, 200, body, len, &o,
                                &out) == 0);
    free(body);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"id\":\"chatcmpl-msg_01khhdkBmdEbtyMk3YCoeQ9q\","
        "\"object\":\"chat.completion\",\"created\":1700000000,"
        "\"model\":\"my-model\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":\"Hello from mock! You said: "
        "hi there\",\"refusal\":null},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4,"
        "\"completion_tokens\":7,\"total_tokens\":11,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0}}}"));
    ai_buf_free(&out);

    body = ai_t_load("anthropic_claude-tools.json", &len);
    CHECK(ai_translate_response(AI_FORMAT_ANTHROPIC, 200, body, len, &o,
                                &out) == 0);
    free(body);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"id\":\"chatcmpl-msg_01Dl82plh1ZkJCh9guQJyaCS\","
        "\"object\":\"chat.completion\",\"created\":1700000000,"
        "\"model\":\"my-model\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":null,\"refusal\":null,"
        "\"tool_calls\":[{\"id\":\"toolu_011H2t0t5kFVr98eu5rw5KPw\","
        "\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"location\\\":\\\"Paris, France\\\","
        "\\\"unit\\\":\\\"celsius\\\"}\"}}]},\"logprobs\":null,"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":4,"
        "\"completion_tokens\":12,\"total_tokens\":16,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0}}}"));
    ai_buf_free(&out);

    /* cache tokens count as prompt tokens, reads also as cached */

    {
        static const char  b[] =
            "{\"id\":\"msg_1\",\"type\":\"message\",\"content\":[{\"type\":"
            "\"text\",\"text\":\"a\"},{\"type\":\"thinking\",\"thinking\":"
            "\"x\"},{\"type\":\"text\",\"text\":\"b\"}],\"stop_reason\":"
            "\"max_tokens\",\"usage\":{\"input_tokens\":10,"
            "\"cache_creation_input_tokens\":5,"
            "\"cache_read_input_tokens\":3,\"output_tokens\":2}}";

        CHECK(ai_translate_response(AI_FORMAT_ANTHROPIC, 200, b,
                                    sizeof(b) - 1, &o, &out) == 0);
        CHECK(ai_t_json_eq(out.data, out.len,
            "{\"id\":\"chatcmpl-msg_1\",\"object\":\"chat.completion\","
            "\"created\":1700000000,\"model\":\"my-model\",\"choices\":"
            "[{\"index\":0,\"message\":{\"role\":\"assistant\","
            "\"content\":\"ab\",\"refusal\":null},\"logprobs\":null,"
            "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":18,"
            "\"completion_tokens\":2,\"total_tokens\":20,"
            "\"prompt_tokens_details\":{\"cached_tokens\":3}}}"));
        ai_buf_free(&out);
    }

    /* errors */

    body = ai_t_load("anthropic_error529.json", &len);
    CHECK(ai_translate_response(AI_FORMAT_ANTHROPIC, 529, body, len, &o,
                                &out) == 0);
    free(body);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\","
        "\"param\":null,\"code\":\"overloaded\"}}"));
    ai_buf_free(&out);

    {
        static const struct {
            const char  *atype;
            const char  *type;
            const char  *code;
        } map[] = {
            { "invalid_request_error", "invalid_request_error", NULL },
            { "authentication_error", "authentication_error",
              "invalid_api_key" },
            { "permission_error", "permission_error", "permission_denied" },
            { "not_found_error", "not_found_error", "not_found" },
            { "rate_limit_error", "rate_limit_error",
              "rate_limit_exceeded" },
            { "api_error", "server_error", NULL },
        };

        size_t   i;
        char     b[256];
        json_t  *root, *e;

        for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
            snprintf(b, sizeof(b), "{\"type\":\"error\",\"error\":{\"type\":"
                     "\"%s\",\"message\":\"m\"}}", map[i].atype);
            CHECK(ai_translate_response(AI_FORMAT_ANTHROPIC, 400, b,
                                        strlen(b), &o, &out) == 0);
            root = json_loadb(out.data, out.len, 0, NULL);
            e = json_object_get(root, "error");
            CHECK(strcmp(ai_json_str(e, "type"), map[i].type) == 0);
            CHECK(map[i].code ? strcmp(ai_json_str(e, "code"), map[i].code)
                                == 0
                              : json_is_null(json_object_get(e, "code")));
            CHECK(json_is_null(json_object_get(e, "param")));
            CHECK(strcmp(ai_json_str(e, "message"), "m") == 0);
            json_decref(root);
            ai_buf_free(&out);
        }
    }

    /* an unreadable error body still becomes an OpenAI error */

    CHECK(ai_translate_response(AI_FORMAT_ANTHROPIC, 502, "<html>", 6, &o,
                                &out) == 0);
    CHECK(strstr(out.data, "\"type\":\"server_error\"") != NULL);
    ai_buf_free(&out);

    /* an unreadable success is the gateway's 502 */

    CHECK(ai_translate_response(AI_FORMAT_ANTHROPIC, 200, "{\"x\":", 5, &o,
                                &out) == -1);
    CHECK(ai_translate_response(AI_FORMAT_ANTHROPIC, 200, "[]", 2, &o,
                                &out) == -1);
    ai_buf_free(&out);
}


/* ---- Anthropic: streams ---- */

static void
ai_t_check_chunks(json_t *ev, size_t n, const char *id)
{
    size_t   i;
    json_t  *d;

    /* every chunk has the one id, created and the client's model */

    for (i = 0; i < n; i++) {
        d = ai_t_data(ev, i);

        if (json_is_string(d) || json_object_get(d, "error")) {
            continue;
        }

        CHECK(strcmp(ai_json_str(d, "id"), id) == 0);
        CHECK(ai_json_long(d, "created", 0) == 1700000000);
        CHECK(strcmp(ai_json_str(d, "model"), "my-model") == 0);
        CHECK(strcmp(ai_json_str(d, "object"), "chat.completion.chunk")
              == 0);
    }
}


static void
ai_t_anthropic_stream(void)
{
    int                  bad;
    char                *in;
    size_t               len, n, i;
    json_t              *ev, *d, *tc;
    ai_buf_t             out, args;
    ai_usage_t           u;
    ai_translate_opts_t  o;

    o = ai_t_opts(AI_EP_CHAT, "claude", 1);

    /* text */

    in = ai_t_load("anthropic_claude.sse", &len);
    ai_t_split_invariant(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in, len);
    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in, len, 0, 0,
                      1, &out, &u) == 0);
    ev = ai_t_events(&out, &bad);
    n = json_array_size(ev);
    CHECK(bad == 0);
    CHECK(n == 11);
    ai_t_check_chunks(ev, n, "chatcmpl-msg_01VzCpquKy09Zckca7ueBPvM");

    CHECK(strncmp(out.data, "data: ", 6) == 0);
    CHECK(ai_t_json_eq(out.data + 6, strcspn(out.data + 6, "\n"),
        "{\"id\":\"chatcmpl-msg_01VzCpquKy09Zckca7ueBPvM\","
        "\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
        "\"model\":\"my-model\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
        "\"finish_reason\":null}]}"));

    memset(&args, 0, sizeof(args));
    ai_buf_append(&args, "", 0);

    for (i = 1; i < n - 3; i++) {
        d = json_object_get(json_array_get(json_object_get(ai_t_data(ev, i),
                                                           "choices"), 0),
                            "delta");
        CHECK(json_object_get(d, "role") == NULL);
        ai_buf_append_str(&args, ai_json_str(d, "content"));
    }

    CHECK(strcmp(args.data, "Hello from mock! You said: hi there") == 0);
    ai_buf_free(&args);

    d = json_array_get(json_object_get(ai_t_data(ev, n - 3), "choices"), 0);
    CHECK(strcmp(ai_json_str(d, "finish_reason"), "stop") == 0);
    d = ai_t_data(ev, n - 2);
    CHECK(json_array_size(json_object_get(d, "choices")) == 0);
    CHECK(ai_json_long(json_object_get(d, "usage"), "prompt_tokens", 0)
          == 4);
    CHECK(ai_json_long(json_object_get(d, "usage"), "completion_tokens", 0)
          == 7);
    CHECK(ai_json_long(json_object_get(d, "usage"), "total_tokens", 0)
          == 11);
    CHECK(strcmp(json_string_value(ai_t_data(ev, n - 1)), "[DONE]") == 0);
    CHECK(u.seen && u.prompt_tokens == 4 && u.completion_tokens == 7);
    json_decref(ev);
    ai_buf_free(&out);

    /* no usage chunk unless asked for */

    o.include_usage = 0;
    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in, len, 0, 0,
                      1, &out, &u) == 0);
    CHECK(strstr(out.data, "\"usage\"") == NULL);
    CHECK(u.completion_tokens == 7);
    ai_buf_free(&out);
    o.include_usage = 1;

    /* cut short of the stop reason: an error event, no [DONE] */

    for (i = 0; i < (size_t) (strstr(in, "event: message_delta") - in);
         i += 37)
    {
        CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in, i, 0,
                          0, 0, &out, NULL) == 0);
        ev = ai_t_events(&out, &bad);
        n = json_array_size(ev);
        CHECK(bad == 0);
        CHECK(n >= 1);
        CHECK(json_object_get(ai_t_data(ev, n - 1), "error") != NULL);
        CHECK(strstr(out.data, "[DONE]") == NULL);
        json_decref(ev);
        ai_buf_free(&out);
    }

    free(in);

    /* tool calls: the first delta has id, type, name and "" arguments */

    in = ai_t_load("anthropic_claude-tools.sse", &len);
    ai_t_split_invariant(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in, len);
    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in, len, 0, 0,
                      1, &out, &u) == 0);
    ev = ai_t_events(&out, &bad);
    n = json_array_size(ev);
    CHECK(bad == 0);
    CHECK(n == 8);

    d = json_object_get(json_array_get(json_object_get(ai_t_data(ev, 1),
                                                       "choices"), 0),
                        "delta");
    tc = json_array_get(json_object_get(d, "tool_calls"), 0);
    CHECK(ai_json_long(tc, "index", -1) == 0);
    CHECK(strcmp(ai_json_str(tc, "id"), "toolu_01SUqb4bxtJCmUOYYSvIIx2Q")
          == 0);
    CHECK(strcmp(ai_json_str(tc, "type"), "function") == 0);
    CHECK(strcmp(ai_json_str(json_object_get(tc, "function"), "name"),
                 "get_weather") == 0);
    CHECK(strcmp(ai_json_str(json_object_get(tc, "function"), "arguments"),
                 "") == 0);

    memset(&args, 0, sizeof(args));
    ai_buf_append(&args, "", 0);

    for (i = 2; i < 5; i++) {
        d = json_object_get(json_array_get(json_object_get(ai_t_data(ev, i),
                                                           "choices"), 0),
                            "delta");
        tc = json_array_get(json_object_get(d, "tool_calls"), 0);
        CHECK(ai_json_long(tc, "index", -1) == 0);
        CHECK(json_object_get(tc, "id") == NULL);
        ai_buf_append_str(&args, ai_json_str(json_object_get(tc, "function"),
                                             "arguments"));
    }

    CHECK(strcmp(args.data,
                 "{\"location\": \"Paris, France\", \"unit\": \"celsius\"}")
          == 0);
    ai_buf_free(&args);

    d = json_array_get(json_object_get(ai_t_data(ev, 5), "choices"), 0);
    CHECK(strcmp(ai_json_str(d, "finish_reason"), "tool_calls") == 0);
    CHECK(u.prompt_tokens == 4 && u.completion_tokens == 12);
    json_decref(ev);
    ai_buf_free(&out);
    free(in);

    /* the provider's error event ends the stream with an OpenAI error */

    in = ai_t_load("anthropic_claude-stream-error.sse", &len);
    ai_t_split_invariant(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in, len);
    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in, len, 0, 0,
                      1, &out, NULL) == 0);
    ev = ai_t_events(&out, &bad);
    n = json_array_size(ev);
    CHECK(bad == 0);
    d = json_object_get(ai_t_data(ev, n - 1), "error");
    CHECK(strcmp(ai_json_str(d, "message"), "Overloaded") == 0);
    CHECK(strcmp(ai_json_str(d, "type"), "server_error") == 0);
    CHECK(strcmp(ai_json_str(d, "code"), "overloaded") == 0);
    CHECK(strstr(out.data, "[DONE]") == NULL);
    json_decref(ev);
    ai_buf_free(&out);
    free(in);

    /* usage: input and cache tokens once, output cumulative; two tools */

    {
        static const char  s[] =
            "event: message_start\n"
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\","
            "\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\""
            ":5,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n"
            "event: content_block_start\n"
            "data: {\"type\":\"content_block_start\",\"index\":0,"
            "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
            "data: {\"type\":\"content_block_delta\",\"index\":0,"
            "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            "data: {\"type\":\"content_block_start\",\"index\":1,"
            "\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\","
            "\"name\":\"a\",\"input\":{}}}\n\n"
            "data: {\"type\":\"content_block_delta\",\"index\":1,"
            "\"delta\":{\"type\":\"input_json_delta\","
            "\"partial_json\":\"{}\"}}\n\n"
            "data: {\"type\":\"content_block_start\",\"index\":2,"
            "\"content_block\":{\"type\":\"tool_use\",\"id\":\"t2\","
            "\"name\":\"b\",\"input\":{}}}\n\n"
            "data: {\"type\":\"content_block_delta\",\"index\":2,"
            "\"delta\":{\"type\":\"input_json_delta\","
            "\"partial_json\":\"{\\\"x\\\":1}\"}}\n\n"
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
            "\"tool_use\"},\"usage\":{\"output_tokens\":20}}\n\n"
            "data: {\"type\":\"message_delta\",\"delta\":{},"
            "\"usage\":{\"output_tokens\":25}}\n\n"
            "data: {\"type\":\"message_stop\"}\n\n";

        CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, s,
                          sizeof(s) - 1, 0, 0, 1, &out, &u) == 0);
        CHECK(u.prompt_tokens == 18 && u.completion_tokens == 25
              && u.cached_tokens == 3);
        ev = ai_t_events(&out, &bad);
        n = json_array_size(ev);
        CHECK(n == 9);
        d = ai_t_data(ev, n - 2);
        CHECK(ai_json_long(json_object_get(d, "usage"), "prompt_tokens", 0)
              == 18);
        CHECK(ai_json_long(json_object_get(json_object_get(d, "usage"),
                                           "prompt_tokens_details"),
                           "cached_tokens", 0) == 3);
        d = json_object_get(json_array_get(json_object_get(ai_t_data(ev, 4),
                                                           "choices"), 0),
                            "delta");
        tc = json_array_get(json_object_get(d, "tool_calls"), 0);
        CHECK(ai_json_long(tc, "index", -1) == 1);
        CHECK(strcmp(ai_json_str(tc, "id"), "t2") == 0);
        d = json_object_get(json_array_get(json_object_get(ai_t_data(ev, 5),
                                                           "choices"), 0),
                            "delta");
        tc = json_array_get(json_object_get(d, "tool_calls"), 0);
        CHECK(ai_json_long(tc, "index", -1) == 1);
        json_decref(ev);
        ai_buf_free(&out);
    }

    /* malformed data never crashes; the stream still ends well-formed */

    {
        static const char  *bad_inputs[] = {
            "data: {not json\n\n",
            "data: [1,2]\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":9,"
            "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":"
            "\"x\"}}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":-1,"
            "\"content_block\":{\"type\":\"tool_use\"}}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":99999999,"
            "\"content_block\":{\"type\":\"tool_use\"}}\n\n",
        };

        for (i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++) {
            CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o,
                              bad_inputs[i], strlen(bad_inputs[i]), 0, 0, 1,
                              &out, NULL) == -1);
            ev = ai_t_events(&out, &bad);
            CHECK(bad == 0);
            CHECK(json_object_get(ai_t_data(ev, json_array_size(ev) - 1),
                                  "error") != NULL);
            json_decref(ev);
            ai_buf_free(&out);
        }
    }

    /* unknown event types and odd values are skipped, not fatal */

    {
        static const char  s[] =
            "event: future_event\ndata: {\"type\":\"future_event\"}\n\n"
            "data: {\"type\":\"content_block_delta\",\"index\":0,"
            "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"x\"}}\n\n"
            "data: {\"type\":\"ping\"}\n\n";

        CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, s,
                          sizeof(s) - 1, 0, 0, 1, &out, NULL) == 0);
        ai_buf_free(&out);
    }

    /* deeply nested data: jansson's depth limit, no crash */

    {
        ai_buf_t  deep;

        memset(&deep, 0, sizeof(deep));
        ai_buf_append_str(&deep, "data: ");

        for (i = 0; i < 100000; i++) {
            ai_buf_append_str(&deep, "[");
        }

        ai_buf_append_str(&deep, "\n\n");
        CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, deep.data,
                          deep.len, 0, 0, 1, &out, NULL) == -1);
        ai_buf_free(&out);
        ai_buf_free(&deep);
    }

    /* an event over 4 MB is refused */

    {
        char  *huge;

        n = AI_SSE_MAX_EVENT + 16;
        huge = malloc(n);
        memset(huge, 'a', n);
        memcpy(huge, "data: ", 6);
        CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, huge, n,
                          65536, 0, 1, &out, NULL) == -1);
        ai_buf_free(&out);
        free(huge);
    }
}


/* ---- Gemini ---- */

static void
ai_t_gemini_request(void)
{
    ai_buf_t             out, path;
    ai_json_error_t      err;
    ai_translate_opts_t  o;

    o = ai_t_opts(AI_EP_CHAT, "gemini-2.0-flash", 0);

    CHECK(ai_t_request(AI_FORMAT_GEMINI,
        "{\"model\":\"gpt-4o\",\"temperature\":0.5,\"top_p\":0.25,"
        "\"max_tokens\":50,\"stop\":\"X\",\"n\":2,\"seed\":7,"
        "\"presence_penalty\":0.5,\"frequency_penalty\":0.25,"
        "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
        "{\"name\":\"s\",\"schema\":{\"type\":\"object\","
        "\"additionalProperties\":false,\"properties\":{\"additionalProperties"
        "\":{\"type\":\"string\"}}}}},"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"description\":\"d\",\"parameters\":{\"$schema\":\"x\","
        "\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"object\","
        "\"additionalProperties\":true}}}}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":"
        "{\"name\":\"f\"}},"
        "\"messages\":["
        "{\"role\":\"system\",\"content\":\"S\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/jpeg;base64,BBBB\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"https://x.test/p.png?s=1\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":"
        "\"f\",\"arguments\":\"{\\\"q\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_0\",\"content\":"
        "\"{\\\"ok\\\":true}\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_0\",\"content\":"
        "\"plain\"},"
        "{\"role\":\"assistant\",\"content\":\"done\"}]}",
        &o, &out, &path, &err) == 0);

    CHECK(path.data && strcmp(path.data,
                              "/models/gemini-2.0-flash:generateContent")
          == 0);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"contents\":["
        "{\"role\":\"user\",\"parts\":[{\"text\":\"a\"},"
        "{\"inlineData\":{\"mimeType\":\"image/jpeg\",\"data\":\"BBBB\"}},"
        "{\"fileData\":{\"mimeType\":\"image/png\","
        "\"fileUri\":\"https://x.test/p.png?s=1\"}}]},"
        "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\","
        "\"args\":{\"q\":1}}}]},"
        "{\"role\":\"user\",\"parts\":["
        "{\"functionResponse\":{\"name\":\"f\",\"response\":{\"ok\":true}}},"
        "{\"functionResponse\":{\"name\":\"f\",\"response\":"
        "{\"content\":\"plain\"}}}]},"
        "{\"role\":\"model\",\"parts\":[{\"text\":\"done\"}]}],"
        "\"systemInstruction\":{\"parts\":[{\"text\":\"S\"}]},"
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"f\","
        "\"description\":\"d\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"a\":{\"type\":\"object\"}}}}]}],"
        "\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"ANY\","
        "\"allowedFunctionNames\":[\"f\"]}},"
        "\"generationConfig\":{\"temperature\":0.5,\"topP\":0.25,"
        "\"presencePenalty\":0.5,\"frequencyPenalty\":0.25,\"seed\":7,"
        "\"maxOutputTokens\":50,\"candidateCount\":2,"
        "\"stopSequences\":[\"X\"],"
        "\"responseMimeType\":\"application/json\","
        "\"responseSchema\":{\"type\":\"object\",\"properties\":"
        "{\"additionalProperties\":{\"type\":\"string\"}}}}}"));
    ai_buf_free(&out);
    ai_buf_free(&path);

    CHECK(ai_t_request(AI_FORMAT_GEMINI,
        "{\"model\":\"m\",\"stream\":true,\"tool_choice\":\"none\","
        "\"response_format\":{\"type\":\"json_object\"},"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"user\",\"content\":\"again\"}]}",
        &o, &out, &path, &err) == 0);
    CHECK(strcmp(path.data, "/models/gemini-2.0-flash:streamGenerateContent"
                 "?alt=sse") == 0);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"},"
        "{\"text\":\"again\"}]}],"
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"f\"}]}],"
        "\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"NONE\"}},"
        "\"generationConfig\":{\"responseMimeType\":\"application/json\"}}"));
    ai_buf_free(&out);
    ai_buf_free(&path);

    /* a tool result must answer an earlier call */

    CHECK(ai_t_request(AI_FORMAT_GEMINI,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"hi\"},{\"role\":\"tool\",\"tool_call_id\":\"nope\",\"content\":"
        "\"x\"}]}", &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "messages[1].tool_call_id") == 0);

    CHECK(ai_t_request(AI_FORMAT_GEMINI,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\","
        "\"tool_calls\":[{\"id\":\"c\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"[1]\"}}]}]}", &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "messages[0].tool_calls[0].function.arguments")
          == 0);

    /* embeddings */

    o = ai_t_opts(AI_EP_EMBEDDINGS, "models/text-embedding-004", 0);

    CHECK(ai_t_request(AI_FORMAT_GEMINI,
        "{\"model\":\"e\",\"input\":[\"a\",\"b\"],\"dimensions\":4}",
        &o, &out, &path, &err) == 0);
    CHECK(strcmp(path.data,
                 "/models/text-embedding-004:batchEmbedContents") == 0);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"requests\":[{\"model\":\"models/text-embedding-004\","
        "\"content\":{\"parts\":[{\"text\":\"a\"}]},"
        "\"outputDimensionality\":4},"
        "{\"model\":\"models/text-embedding-004\","
        "\"content\":{\"parts\":[{\"text\":\"b\"}]},"
        "\"outputDimensionality\":4}]}"));
    ai_buf_free(&out);
    ai_buf_free(&path);

    CHECK(ai_t_request(AI_FORMAT_GEMINI, "{\"model\":\"e\",\"input\":\"a\"}",
                       &o, &out, &path, &err) == 0);
    CHECK(strstr(out.data, "\"requests\":[{") != NULL);
    ai_buf_free(&out);
    ai_buf_free(&path);

    CHECK(ai_t_request(AI_FORMAT_GEMINI, "{\"model\":\"e\",\"input\":[[1]]}",
                       &o, &out, &path, &err) == -1);
    CHECK(strcmp(err.param, "input") == 0);
    ai_buf_free(&out);
    ai_buf_free(&path);
}


static void
ai_t_gemini_response(void)
{
    int                  bad;
    char                *body;
    size_t               len, n;
    json_t              *ev, *d, *tc;
    ai_buf_t             out;
    ai_usage_t           u;
    ai_translate_opts_t  o;

    o = ai_t_opts(AI_EP_CHAT, "gemini", 1);
    memset(&out, 0, sizeof(out));

    body = ai_t_load("gemini_gemini.json", &len);
    CHECK(ai_translate_response(AI_FORMAT_GEMINI, 200, body, len, &o, &out)
          == 0);
    free(body);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"id\":\"chatcmpl-gej9OQGNSmhIt-YxNfrWiW\","
        "\"object\":\"chat.completion\",\"created\":1700000000,"
        "\"model\":\"my-model\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":\"Hello from mock! You said: "
        "hi there\",\"refusal\":null},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4,"
        "\"completion_tokens\":7,\"total_tokens\":11,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0}}}"));
    ai_buf_free(&out);

    body = ai_t_load("gemini_gemini-tools.json", &len);
    CHECK(ai_translate_response(AI_FORMAT_GEMINI, 200, body, len, &o, &out)
          == 0);
    free(body);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"id\":\"chatcmpl-xSOtjxpJd8AKl40cy4fZ_W\","
        "\"object\":\"chat.completion\",\"created\":1700000000,"
        "\"model\":\"my-model\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":null,\"refusal\":null,"
        "\"tool_calls\":[{\"id\":\"call_0\",\"type\":\"function\","
        "\"function\":{\"name\":\"get_weather\",\"arguments\":"
        "\"{\\\"location\\\":\\\"Paris, France\\\",\\\"unit\\\":"
        "\\\"celsius\\\"}\"}}]},\"logprobs\":null,"
        "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":4,"
        "\"completion_tokens\":12,\"total_tokens\":16,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0}}}"));
    ai_buf_free(&out);

    {
        static const char  b[] =
            "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"t\","
            "\"thought\":true},{\"text\":\"x\"}]},\"finishReason\":"
            "\"SAFETY\"},{\"index\":1,\"content\":{\"parts\":[{\"text\":"
            "\"y\"}]},\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":"
            "{\"promptTokenCount\":9,\"candidatesTokenCount\":2,"
            "\"thoughtsTokenCount\":3,\"cachedContentTokenCount\":4}}";

        CHECK(ai_translate_response(AI_FORMAT_GEMINI, 200, b, sizeof(b) - 1,
                                    &o, &out) == 0);
        CHECK(ai_t_json_eq(out.data, out.len,
            "{\"id\":\"chatcmpl-gemini\",\"object\":\"chat.completion\","
            "\"created\":1700000000,\"model\":\"my-model\",\"choices\":["
            "{\"index\":0,\"message\":{\"role\":\"assistant\","
            "\"content\":\"x\",\"refusal\":null},\"logprobs\":null,"
            "\"finish_reason\":\"content_filter\"},"
            "{\"index\":1,\"message\":{\"role\":\"assistant\","
            "\"content\":\"y\",\"refusal\":null},\"logprobs\":null,"
            "\"finish_reason\":\"length\"}],"
            "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5,"
            "\"total_tokens\":14,\"prompt_tokens_details\":"
            "{\"cached_tokens\":4}}}"));
        ai_buf_free(&out);
    }

    body = ai_t_load("gemini_error429.json", &len);
    CHECK(ai_translate_response(AI_FORMAT_GEMINI, 429, body, len, &o, &out)
          == 0);
    free(body);
    CHECK(strstr(out.data, "\"type\":\"rate_limit_error\"") != NULL);
    CHECK(strstr(out.data, "\"code\":\"rate_limit_exceeded\"") != NULL);
    CHECK(strstr(out.data, "You exceeded your current quota") != NULL);
    ai_buf_free(&out);

    CHECK(ai_translate_response(AI_FORMAT_GEMINI, 200, "nope", 4, &o, &out)
          == -1);
    ai_buf_free(&out);

    /* embeddings */

    o.endpoint = AI_EP_EMBEDDINGS;
    body = ai_t_load("gemini_embed.json", &len);
    CHECK(ai_translate_response(AI_FORMAT_GEMINI, 200, body, len, &o, &out)
          == 0);
    free(body);
    d = json_loadb(out.data, out.len, 0, NULL);
    CHECK(strcmp(ai_json_str(d, "object"), "list") == 0);
    CHECK(strcmp(ai_json_str(d, "model"), "my-model") == 0);
    CHECK(json_array_size(json_object_get(d, "data")) == 2);
    tc = json_array_get(json_object_get(d, "data"), 1);
    CHECK(ai_json_long(tc, "index", -1) == 1);
    CHECK(strcmp(ai_json_str(tc, "object"), "embedding") == 0);
    CHECK(json_array_size(json_object_get(tc, "embedding")) == 4);
    CHECK(json_real_value(json_array_get(json_object_get(
              json_array_get(json_object_get(d, "data"), 0), "embedding"),
              0)) == 0.6557393670082092);
    json_decref(d);
    ai_buf_free(&out);
    o.endpoint = AI_EP_CHAT;

    /* streams */

    body = ai_t_load("gemini_gemini.sse", &len);
    ai_t_split_invariant(ai_stream_new, AI_FORMAT_GEMINI, &o, body, len);
    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_GEMINI, &o, body, len, 0, 0,
                      1, &out, &u) == 0);
    ev = ai_t_events(&out, &bad);
    n = json_array_size(ev);
    CHECK(bad == 0);
    CHECK(n == 10);
    ai_t_check_chunks(ev, n, "chatcmpl-1JnA7jXxnXTJdGVojOZWJC");
    d = json_object_get(json_array_get(json_object_get(ai_t_data(ev, 0),
                                                       "choices"), 0),
                        "delta");
    CHECK(strcmp(ai_json_str(d, "role"), "assistant") == 0);
    CHECK(strcmp(ai_json_str(d, "content"), "Hello") == 0);
    d = json_object_get(json_array_get(json_object_get(ai_t_data(ev, 1),
                                                       "choices"), 0),
                        "delta");
    CHECK(json_object_get(d, "role") == NULL);
    d = json_array_get(json_object_get(ai_t_data(ev, n - 3), "choices"), 0);
    CHECK(strcmp(ai_json_str(d, "finish_reason"), "stop") == 0);
    CHECK(u.prompt_tokens == 4 && u.completion_tokens == 7);
    CHECK(ai_json_long(json_object_get(ai_t_data(ev, n - 2), "usage"),
                       "completion_tokens", 0) == 7);
    CHECK(strcmp(json_string_value(ai_t_data(ev, n - 1)), "[DONE]") == 0);
    json_decref(ev);
    ai_buf_free(&out);

    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_GEMINI, &o, body, len / 2, 0,
                      0, 0, &out, NULL) == 0);
    CHECK(strstr(out.data, "upstream_incomplete") != NULL);
    CHECK(strstr(out.data, "[DONE]") == NULL);
    ai_buf_free(&out);
    free(body);

    body = ai_t_load("gemini_gemini-tools.sse", &len);
    ai_t_split_invariant(ai_stream_new, AI_FORMAT_GEMINI, &o, body, len);
    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_GEMINI, &o, body, len, 0, 0,
                      1, &out, NULL) == 0);
    ev = ai_t_events(&out, &bad);
    CHECK(json_array_size(ev) == 4);
    d = json_object_get(json_array_get(json_object_get(ai_t_data(ev, 0),
                                                       "choices"), 0),
                        "delta");
    tc = json_array_get(json_object_get(d, "tool_calls"), 0);
    CHECK(ai_json_long(tc, "index", -1) == 0);
    CHECK(strcmp(ai_json_str(tc, "id"), "call_0") == 0);
    CHECK(strcmp(ai_json_str(json_object_get(tc, "function"), "arguments"),
                 "{\"location\":\"Paris, France\",\"unit\":\"celsius\"}")
          == 0);
    d = json_array_get(json_object_get(ai_t_data(ev, 1), "choices"), 0);
    CHECK(strcmp(ai_json_str(d, "finish_reason"), "tool_calls") == 0);
    json_decref(ev);
    ai_buf_free(&out);
    free(body);

    body = ai_t_load("gemini_gemini-stream-error.sse", &len);
    ai_t_split_invariant(ai_stream_new, AI_FORMAT_GEMINI, &o, body, len);
    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_GEMINI, &o, body, len, 0, 0,
                      1, &out, NULL) == 0);
    ev = ai_t_events(&out, &bad);
    n = json_array_size(ev);
    d = json_object_get(ai_t_data(ev, n - 1), "error");
    CHECK(strcmp(ai_json_str(d, "code"), "unavailable") == 0);
    CHECK(strcmp(ai_json_str(d, "type"), "server_error") == 0);
    CHECK(strstr(out.data, "[DONE]") == NULL);
    json_decref(ev);
    ai_buf_free(&out);
    free(body);
}


/* ---- Anthropic-compatible inbound ---- */

static void
ai_t_anthropic_in(void)
{
    int                  bad;
    char                *in, *s;
    size_t               len, n, i;
    json_t              *req, *got, *ev;
    ai_buf_t             out;
    ai_usage_t           u;
    ai_json_error_t      err;
    ai_translate_opts_t  o;

    req = json_loads(
        "{\"model\":\"claude-x\",\"max_tokens\":100,\"system\":[{\"type\":"
        "\"text\",\"text\":\"S1\"},{\"type\":\"text\",\"text\":\"S2\"}],"
        "\"stop_sequences\":[\"Z\"],\"temperature\":0.5,\"top_p\":0.5,"
        "\"top_k\":5,\"metadata\":{\"user_id\":\"u\"},\"stream\":true,"
        "\"tools\":[{\"name\":\"f\",\"description\":\"d\",\"input_schema\":"
        "{\"type\":\"object\"}}],\"tool_choice\":{\"type\":\"any\","
        "\"disable_parallel_tool_use\":true},"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\","
        "\"thinking\":\"hm\"},{\"type\":\"text\",\"text\":\"ok\"},"
        "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":"
        "{\"a\":1}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
        "\"tool_use_id\":\"t1\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"r\"}]},{\"type\":\"text\",\"text\":\"next\"},{\"type\":\"image\","
        "\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
        "\"data\":\"QQ\"}}]}]}", 0, NULL);
    got = ai_anthropic_in_request(req, &err);
    CHECK(got != NULL);
    s = json_dumps(got, JSON_COMPACT);
    CHECK(ai_t_json_eq(s, strlen(s),
        "{\"model\":\"claude-x\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"S1\\nS2\"},"
        "{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"assistant\",\"content\":\"ok\",\"tool_calls\":[{\"id\":"
        "\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{\\\"a\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"r\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"next\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64,QQ\"}}]}],"
        "\"max_tokens\":100,\"stop\":[\"Z\"],\"temperature\":0.5,"
        "\"top_p\":0.5,\"user\":\"u\","
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"description\":\"d\",\"parameters\":{\"type\":\"object\"}}}],"
        "\"tool_choice\":\"required\",\"parallel_tool_calls\":false,"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true}}"));
    free(s);
    json_decref(got);
    json_decref(req);

    req = json_loads("{\"model\":\"m\",\"messages\":[{\"role\":\"system\","
                     "\"content\":\"x\"}]}", 0, NULL);
    CHECK(ai_anthropic_in_request(req, &err) == NULL);
    CHECK(strcmp(err.param, "messages.0.role") == 0);
    json_decref(req);

    req = json_loads("{\"messages\":[]}", 0, NULL);
    CHECK(ai_anthropic_in_request(req, &err) == NULL);
    CHECK(strcmp(err.param, "model") == 0);
    json_decref(req);

    /* whole answers */

    o = ai_t_opts(AI_EP_CHAT, "gpt", 0);
    memset(&out, 0, sizeof(out));

    {
        static const char  b[] =
            "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\","
            "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
            "\"content\":\"hi\",\"tool_calls\":[{\"id\":\"call_1\","
            "\"type\":\"function\",\"function\":{\"name\":\"f\","
            "\"arguments\":\"{\\\"a\\\":1}\"}}]},\"finish_reason\":"
            "\"tool_calls\"}],\"usage\":{\"prompt_tokens\":10,"
            "\"completion_tokens\":3,\"prompt_tokens_details\":"
            "{\"cached_tokens\":4}}}";

        CHECK(ai_anthropic_in_response(200, b, sizeof(b) - 1, &o, &out)
              == 0);
        CHECK(ai_t_json_eq(out.data, out.len,
            "{\"id\":\"msg_abc\",\"type\":\"message\",\"role\":\"assistant\","
            "\"model\":\"my-model\",\"content\":[{\"type\":\"text\","
            "\"text\":\"hi\"},{\"type\":\"tool_use\",\"id\":\"call_1\","
            "\"name\":\"f\",\"input\":{\"a\":1}}],\"stop_reason\":"
            "\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":"
            "6,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":"
            "4,\"output_tokens\":3}}"));
        ai_buf_free(&out);
    }

    s = "{\"error\":{\"message\":\"slow\",\"type\":\"requests\"}}";
    CHECK(ai_anthropic_in_response(429, s, strlen(s), &o, &out) == 0);
    CHECK(ai_t_json_eq(out.data, out.len,
        "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
        "\"message\":\"slow\"}}"));
    ai_buf_free(&out);

    CHECK(ai_anthropic_in_response(200, "{}", 2, &o, &out) == -1);
    ai_buf_free(&out);

    /* streams: OpenAI chunks in, Anthropic events out */

    in = ai_t_load("openai_gpt-tools.sse", &len);
    ai_t_split_invariant(ai_t_new_in, 0, &o, in, len);
    CHECK(ai_t_stream(ai_t_new_in, 0, &o, in, len, 0, 0, 1, &out, &u) == 0);
    ev = ai_t_events(&out, &bad);
    n = json_array_size(ev);
    CHECK(bad == 0);

    {
        static const char  *names[] = {
            "message_start", "content_block_start", "content_block_delta",
        };

        for (i = 0; i < 3; i++) {
            CHECK(strcmp(ai_json_str(json_array_get(ev, i), "event"),
                         names[i]) == 0);
        }
    }

    CHECK(strcmp(ai_json_str(json_array_get(ev, n - 1), "event"),
                 "message_stop") == 0);
    CHECK(strcmp(ai_json_str(json_array_get(ev, n - 2), "event"),
                 "message_delta") == 0);
    CHECK(strcmp(ai_json_str(json_array_get(ev, n - 3), "event"),
                 "content_block_stop") == 0);
    CHECK(strcmp(ai_json_str(json_object_get(ai_t_data(ev, n - 2), "delta"),
                             "stop_reason"), "tool_use") == 0);
    CHECK(ai_json_long(json_object_get(ai_t_data(ev, n - 2), "usage"),
                       "output_tokens", 0) == 12);
    CHECK(strcmp(ai_json_str(json_object_get(ai_t_data(ev, 1),
                                             "content_block"), "id"),
                 "call_2cqPIodftRjZnaaBDwx5yk6z") == 0);
    CHECK(strcmp(ai_json_str(json_object_get(ai_t_data(ev, 0), "message"),
                             "id"), "msg_IZNJZbDwHJLUQQyIwR2MQrDyfAY7e")
          == 0);
    CHECK(u.prompt_tokens == 4 && u.completion_tokens == 12);
    json_decref(ev);
    ai_buf_free(&out);

    /* cut before any finish_reason: an Anthropic error event */

    CHECK(ai_t_stream(ai_t_new_in, 0, &o, in, len / 2, 0, 0, 0, &out, NULL)
          == 0);
    ev = ai_t_events(&out, &bad);
    n = json_array_size(ev);
    CHECK(bad == 0);
    CHECK(strcmp(ai_json_str(json_array_get(ev, n - 1), "event"), "error")
          == 0);
    json_decref(ev);
    ai_buf_free(&out);
    free(in);

    in = ai_t_load("openai_gpt.sse", &len);
    ai_t_split_invariant(ai_t_new_in, 0, &o, in, len);
    CHECK(ai_t_stream(ai_t_new_in, 0, &o, in, len, 0, 0, 1, &out, NULL)
          == 0);
    CHECK(strstr(out.data, "\"text_delta\"") != NULL);
    CHECK(strstr(out.data, "\"stop_reason\":\"end_turn\"") != NULL);
    ai_buf_free(&out);
    free(in);
}


/* ---- OpenAI pass-through ---- */

static void
ai_t_openai(void)
{
    char                *in;
    size_t               len;
    ai_buf_t             out;
    ai_usage_t           u;
    ai_translate_opts_t  o;

    o = ai_t_opts(AI_EP_CHAT, "gpt", 1);
    in = ai_t_load("openai_gpt.sse", &len);

    ai_t_split_invariant(ai_stream_new, AI_FORMAT_OPENAI, &o, in, len);
    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_OPENAI, &o, in, len, 0, 0, 1,
                      &out, &u) == 0);
    CHECK(out.len == len && memcmp(out.data, in, len) == 0);
    CHECK(u.seen && u.prompt_tokens == 4 && u.completion_tokens == 7);
    ai_buf_free(&out);

    /* a usage chunk the client did not ask for is dropped */

    o.include_usage = 0;
    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_OPENAI, &o, in, len, 0, 0, 1,
                      &out, &u) == 0);
    CHECK(strstr(out.data, "\"choices\":[]") == NULL);
    CHECK(u.seen && u.completion_tokens == 7);
    ai_buf_free(&out);

    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_OPENAI, &o, in, 300, 0, 0, 0,
                      &out, NULL) == 0);
    CHECK(strstr(out.data, "upstream_incomplete") != NULL);
    ai_buf_free(&out);
    free(in);
}


/* flipped bytes in every fixture: any result but a crash or a leak */

static void
ai_t_mutations(void)
{
    int                  rc;
    char                *in, *m;
    size_t               len, i, k;
    ai_buf_t             out;
    ai_translate_opts_t  o;

    static const struct {
        const char  *file;
        int          format;
    } fx[] = {
        { "anthropic_claude-tools.sse", AI_FORMAT_ANTHROPIC },
        { "anthropic_claude.sse", AI_FORMAT_ANTHROPIC },
        { "gemini_gemini.sse", AI_FORMAT_GEMINI },
        { "gemini_gemini-tools.sse", AI_FORMAT_GEMINI },
        { "openai_gpt-tools.sse", AI_FORMAT_ANTHROPIC_IN },
        { "openai_gpt.sse", AI_FORMAT_OPENAI },
        { "anthropic_claude-tools.json", AI_FORMAT_ANTHROPIC },
        { "gemini_gemini-tools.json", AI_FORMAT_GEMINI },
    };

    o = ai_t_opts(AI_EP_CHAT, "m", 1);
    srand(7);

    for (i = 0; i < sizeof(fx) / sizeof(fx[0]); i++) {
        in = ai_t_load(fx[i].file, &len);
        m = malloc(len);

        for (k = 0; k < 300; k++) {
            memcpy(m, in, len);
            m[rand() % len] = (char) rand();
            m[rand() % len] = "{}[]\":,\n"[rand() % 8];

            if (strstr(fx[i].file, ".json")) {
                memset(&out, 0, sizeof(out));
                rc = ai_translate_response(fx[i].format, 200, m, len, &o,
                                           &out);
                CHECK(rc == 0 || rc == -1);
                ai_buf_free(&out);
                continue;
            }

            rc = ai_t_stream(fx[i].format == AI_FORMAT_ANTHROPIC_IN
                             ? ai_t_new_in : ai_stream_new, fx[i].format,
                             &o, m, len, 0, 0, 1, &out, NULL);
            CHECK(rc == 0 || rc == -1);
            ai_buf_free(&out);
        }

        free(m);
        free(in);
    }
}

/*
 * The text-delta shortcut and the text-only response template write what
 * jansson would: escapes decoded and re-escaped its way, and a delta the
 * shortcut does not take (other member order, bad UTF-8) still handled.
 */

static void
ai_t_anthropic_fast(void)
{
    ai_buf_t             out;
    ai_translate_opts_t  o;

    static const char  in[] =
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\"}}\n\n"
        "data: { \"type\" : \"content_block_delta\", \"index\": 0,"
        " \"delta\": {\"type\": \"text_delta\","
        " \"text\": \"\\u00e9\\ud83d\\ude00\\/\\u0001\\u0022\\n\x7f\"}}\n\n"
        "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":"
        "\"text_delta\",\"text\":\"b\"},\"index\":0}\n\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"text_delta\",\"text\":\"\"}}\n\n"
        "data: {\"type\": \"ping\"}\n\n"
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "data: {\"type\":\"message_stop\"}\n\n";

    static const char  bad[] =
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\"}}\n\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"text_delta\",\"text\":\"\xc0\xaf\"}}\n\n";

    static const char  body[] =
        "{\"id\":\"m\\u00e9\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"a\\u0001\\\"\\/\x7f\"}],\"stop_reason\":\"max_tokens\","
        "\"usage\":{\"input_tokens\":3,\"output_tokens\":2}}";

    o = ai_t_opts(AI_EP_CHAT, "claude", 0);

    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in,
                      sizeof(in) - 1, 0, 0, 1, &out, NULL) == 0);
    CHECK(out.data && strstr(out.data, "\"delta\":{\"content\":"
                             "\"\xc3\xa9\xf0\x9f\x98\x80/\\u0001\\\"\\n\x7f\"},"
                             "\"logprobs\":null,\"finish_reason\":null}]}\n\n")
                      != NULL);
    CHECK(out.data && strstr(out.data, "\"delta\":{\"content\":\"b\"}")
                      != NULL);
    CHECK(out.data && strstr(out.data, "\"content\":\"\"}") != NULL);
    CHECK(out.data && strstr(out.data, "\"content\":\"\"},\"logprobs\":null,"
                             "\"finish_reason\":null}]}\n\ndata: {\"id\"")
                      != NULL);
    ai_buf_free(&out);
    ai_t_split_invariant(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, in,
                         sizeof(in) - 1);

    CHECK(ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o, bad,
                      sizeof(bad) - 1, 0, 0, 1, &out, NULL) == -1);
    ai_buf_free(&out);

    memset(&out, 0, sizeof(out));
    CHECK(ai_translate_response(AI_FORMAT_ANTHROPIC, 200, body,
                                sizeof(body) - 1, &o, &out) == 0);
    CHECK(out.data && strcmp(out.data,
              "{\"id\":\"chatcmpl-m\xc3\xa9\",\"object\":\"chat.completion\","
              "\"created\":1700000000,\"model\":\"my-model\",\"choices\":"
              "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
              "\"a\\u0001\\\"/\x7f\",\"refusal\":null},\"logprobs\":null,"
              "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":3,"
              "\"completion_tokens\":2,\"total_tokens\":5,"
              "\"prompt_tokens_details\":{\"cached_tokens\":0}}}") == 0);
    ai_buf_free(&out);
}


/* ---- fast paths against the jansson paths, on many random shapes ---- */

static unsigned long long  ai_t_seed = 0x9e3779b97f4a7c15ULL;

static unsigned
ai_t_rand(unsigned n)
{
    ai_t_seed ^= ai_t_seed << 13;
    ai_t_seed ^= ai_t_seed >> 7;
    ai_t_seed ^= ai_t_seed << 17;

    return (unsigned) (ai_t_seed % n);
}


static void
ai_t_ws(ai_buf_t *b)
{
    static const char  *ws[] = { "", "", "", " ", "\n  ", "\t" };

    ai_buf_append_str(b, ws[ai_t_rand(6)]);
}


/* a JSON string (quotes included) of escapes, UTF-8 and plain text */

static void
ai_t_rstr(ai_buf_t *b, int allow_empty)
{
    int  i, n;

    static const char  *frag[] = {
        "hello", "Hi there", " ", "é", "\\u00e9", "\\n", "\\\"", "\\/",
        "\xf0\x9f\x98\x80", "\\ud83d\\ude00", "a\\tb", "\\u001f", "\\\\",
        "\\u2028", "\x7f", "line\\r\\n", "{\\\"k\\\":1}", "tab\\b\\f",
        "Northwind Outdoor Supply", "\\u0041"
    };

    ai_buf_append(b, "\"", 1);
    n = ai_t_rand(allow_empty ? 4 : 3) + (allow_empty ? 0 : 1);

    for (i = 0; i < n; i++) {
        ai_buf_append_str(b, frag[ai_t_rand(sizeof(frag) / sizeof(frag[0]))]);
    }

    ai_buf_append(b, "\"", 1);
}


static void
ai_t_rnum(ai_buf_t *b)
{
    static const char  *num[] = {
        "0", "1", "0.7", "1e-3", "2.5E+2", "-0.0", "0.1", "-0", "1.0",
        "123456789", "1E400", "0.30000000000000004", "5e-324", "-12",
        "99999999999999999999"
    };

    ai_buf_append_str(b, num[ai_t_rand(sizeof(num) / sizeof(num[0]))]);
}


/* any JSON value, for tool schemas and the members nobody reads */

static void
ai_t_rvalue(ai_buf_t *b, int depth)
{
    int  i, n;

    switch (ai_t_rand(depth > 3 ? 5 : 7)) {
    case 0:
        ai_t_rstr(b, 1);
        break;
    case 1:
        ai_t_rnum(b);
        break;
    case 2:
        ai_buf_append_str(b, ai_t_rand(2) ? "true" : "null");
        break;
    case 3:
        ai_buf_append_str(b, "false");
        break;
    case 4:
        ai_buf_append_str(b, "\"string\"");
        break;
    case 5:
        ai_buf_append(b, "[", 1);
        n = ai_t_rand(4);

        for (i = 0; i < n; i++) {
            if (i) {
                ai_buf_append(b, ",", 1);
            }

            ai_t_ws(b);
            ai_t_rvalue(b, depth + 1);
        }

        ai_buf_append(b, "]", 1);
        break;
    default:
        ai_buf_append(b, "{", 1);
        n = ai_t_rand(5);

        for (i = 0; i < n; i++) {
            static const char  *keys[] = {
                "\"type\"", "\"properties\"", "\"required\"",
                "\"description\"", "\"items\"", "\"enum\"", "\"k\\u0065y\""
            };

            if (i) {
                ai_buf_append(b, ",", 1);
            }

            ai_t_ws(b);
            ai_buf_append_str(b, keys[ai_t_rand(ai_t_rand(20) ? 6 : 7)]);
            ai_t_ws(b);
            ai_buf_append(b, ":", 1);
            ai_t_rvalue(b, depth + 1);
        }

        ai_buf_append(b, "}", 1);
    }
}


static void
ai_t_rcontent(ai_buf_t *b, int errors, int system)
{
    int  i, n;

    switch (ai_t_rand(4)) {
    case 0:
        ai_t_rstr(b, 1);
        return;
    case 1:
        ai_buf_append_str(b, "null");
        return;
    default:
        break;
    }

    ai_buf_append(b, "[", 1);
    n = ai_t_rand(4);

    for (i = 0; i < n; i++) {
        if (i) {
            ai_buf_append(b, ",", 1);
        }

        switch (errors ? ai_t_rand(8) : ai_t_rand(system ? 2 : 3)) {
        case 0:
            ai_buf_append_str(b, "{\"type\":\"text\",\"text\":");
            ai_t_rstr(b, 1);
            ai_buf_append(b, "}", 1);
            break;
        case 1:
            ai_buf_append_str(b, "{\"text\":");
            ai_t_rstr(b, 1);
            ai_buf_append_str(b, system ? ",\"type\":\"text\"}"
                                        : ",\"type\":\"text\",\"x\":1}");
            break;
        case 2:
            ai_buf_append_str(b, "{\"type\":\"refusal\",\"refusal\":");
            ai_t_rstr(b, 1);
            ai_buf_append(b, "}", 1);
            break;
        case 3:
            ai_buf_append_str(b, "{\"type\":\"image_url\",\"image_url\":"
                              "{\"url\":\"https://example.com/a.png\"}}");
            break;
        case 4:
            ai_buf_append_str(b, "{\"text\":\"no type\"}");
            break;
        case 5:
            ai_buf_append_str(b, "{\"type\":\"audio\"}");
            break;
        case 6:
            ai_buf_append_str(b, "{\"type\":\"text\",\"text\":5}");
            break;
        default:
            ai_buf_append_str(b, "\"bare\"");
        }
    }

    ai_buf_append(b, "]", 1);
}


static void
ai_t_rmessages(ai_buf_t *b, int errors)
{
    int  i, n, role;

    static const char  *roles[] = { "system", "developer", "user",
                                    "assistant", "tool", "bogus" };

    ai_buf_append(b, "[", 1);
    n = ai_t_rand(6) + (errors ? 0 : 1);

    for (i = 0; i < n; i++) {
        role = errors ? (int) ai_t_rand(6) : (int) ai_t_rand(4);

        if (!errors && i == n - 1) {
            role = 2;
        }

        if (i) {
            ai_buf_append(b, ",", 1);
        }

        ai_t_ws(b);
        ai_buf_append_str(b, "{\"role\":\"");
        ai_buf_append_str(b, roles[role]);
        ai_buf_append_str(b, "\"");

        if (role == 4) {
            ai_buf_append_str(b, ",\"tool_call_id\":\"call_1\"");
        }

        if (role == 3 && ai_t_rand(4) == 0) {
            ai_buf_append_str(b, errors && ai_t_rand(2)
                              ? ",\"tool_calls\":[{\"id\":\"c\",\"type\":"
                                "\"function\",\"function\":{\"name\":\"f\","
                                "\"arguments\":\"{}\"}}]"
                              : ",\"tool_calls\":null");
        }

        if (ai_t_rand(5)) {
            ai_buf_append_str(b, ",");
            ai_t_ws(b);
            ai_buf_append_str(b, "\"content\":");
            ai_t_ws(b);
            ai_t_rcontent(b, errors, role < 2);

        } else if (!errors && i == n - 1) {
            ai_buf_append_str(b, ",\"content\":\"last\"");
        }

        if (ai_t_rand(6) == 0) {
            ai_buf_append_str(b, ",\"name\":\"jane\"");
        }

        ai_buf_append(b, "}", 1);
    }

    ai_buf_append(b, "]", 1);
}


static void
ai_t_rtools(ai_buf_t *b, int errors)
{
    int  i, n;

    ai_buf_append(b, "[", 1);
    n = ai_t_rand(4);

    for (i = 0; i < n; i++) {
        if (i) {
            ai_buf_append(b, ",", 1);
        }

        ai_buf_append_str(b, errors && ai_t_rand(6) == 0
                             ? "{\"type\":\"retrieval\",\"function\":{"
                             : "{\"type\":\"function\",\"function\":{");
        ai_buf_append_str(b, "\"name\":");
        ai_t_rstr(b, 0);

        if (ai_t_rand(2)) {
            ai_buf_append_str(b, ",\"description\":");
            ai_t_rstr(b, 1);
        }

        if (ai_t_rand(4)) {
            ai_buf_append_str(b, ",\"parameters\":{\"type\":\"object\","
                              "\"properties\":");
            ai_t_rvalue(b, 1);
            ai_buf_append(b, "}", 1);

        } else if (ai_t_rand(2)) {
            ai_buf_append_str(b, ",\"parameters\":");
            ai_t_rvalue(b, 1);
        }

        ai_buf_append_str(b, ai_t_rand(5) ? "}}" : "},\"strict\":true}");
    }

    ai_buf_append(b, "]", 1);
}


/* a random OpenAI request; errors: shapes the fast path must decline */

static void
ai_t_rrequest(ai_buf_t *b, int errors)
{
    int        i, n, k, order[16];
    ai_buf_t   m[16];

    static const char  *keys[] = {
        "model", "messages", "temperature", "top_p", "max_tokens",
        "max_completion_tokens", "stop", "user", "stream", "n", "logprobs",
        "response_format", "tools", "tool_choice", "parallel_tool_calls",
        "seed"
    };

    memset(m, 0, sizeof(m));
    n = 0;

    for (k = 0; k < 16; k++) {
        if (k > 1 && ai_t_rand(3) == 0) {
            continue;
        }

        ai_buf_append(&m[n], "\"", 1);
        ai_buf_append_str(&m[n], keys[k]);
        ai_buf_append(&m[n], "\":", 2);
        ai_t_ws(&m[n]);

        switch (k) {
        case 0:
            ai_buf_append_str(&m[n], "\"claude\"");
            break;
        case 1:
            ai_t_rmessages(&m[n], errors);
            break;
        case 2:
        case 3:
            if (ai_t_rand(6) == 0) {
                ai_buf_append_str(&m[n], "null");

            } else {
                ai_t_rnum(&m[n]);
            }

            break;
        case 4:
        case 5:
            ai_buf_append_str(&m[n], errors
                              ? (ai_t_rand(3) == 0 ? "0"
                                 : ai_t_rand(2) ? "null" : "\"x\"")
                              : (ai_t_rand(2) ? "256" : "null"));
            break;
        case 6:
            switch (ai_t_rand(errors ? 5 : 4)) {
            case 0:
                ai_t_rstr(&m[n], 1);
                break;
            case 1:
                ai_buf_append_str(&m[n], "[]");
                break;
            case 2:
                ai_buf_append(&m[n], "[", 1);
                ai_t_rstr(&m[n], 1);
                ai_buf_append(&m[n], ",", 1);
                ai_t_rstr(&m[n], 1);
                ai_buf_append(&m[n], "]", 1);
                break;
            case 3:
                ai_buf_append_str(&m[n], "null");
                break;
            default:
                ai_buf_append_str(&m[n], ai_t_rand(2) ? "5" : "[\"a\",1]");
            }

            break;
        case 7:
            ai_t_rstr(&m[n], 1);
            break;
        case 8:
            ai_buf_append_str(&m[n], ai_t_rand(2) ? "true" : "false");
            break;
        case 9:
            ai_buf_append_str(&m[n], errors && ai_t_rand(2) ? "2" : "1");
            break;
        case 10:
            ai_buf_append_str(&m[n], errors && ai_t_rand(2) ? "true"
                                                            : "false");
            break;
        case 11:
            ai_buf_append_str(&m[n], errors && ai_t_rand(2)
                              ? "{\"type\":\"json_object\"}"
                              : ai_t_rand(2) ? "{\"type\":\"text\"}"
                                             : "null");
            break;
        case 12:
            if (errors && ai_t_rand(8) == 0) {
                ai_buf_append_str(&m[n], "{}");

            } else {
                ai_t_rtools(&m[n], errors);
            }

            break;
        case 13:
            switch (ai_t_rand(errors ? 7 : 6)) {
            case 0:
                ai_buf_append_str(&m[n], "\"auto\"");
                break;
            case 1:
                ai_buf_append_str(&m[n], "\"none\"");
                break;
            case 2:
                ai_buf_append_str(&m[n], "\"required\"");
                break;
            case 3:
                ai_buf_append_str(&m[n], "null");
                break;
            case 4:
            case 5:
                ai_buf_append_str(&m[n], "{\"type\":\"function\","
                                  "\"function\":{\"name\":");
                ai_t_rstr(&m[n], 0);
                ai_buf_append_str(&m[n], "}}");
                break;
            default:
                ai_buf_append_str(&m[n], ai_t_rand(2) ? "\"sometimes\""
                                                      : "{\"type\":\"x\"}");
            }

            break;
        case 14:
            ai_buf_append_str(&m[n], ai_t_rand(2) ? "false" : "true");
            break;
        default:
            ai_t_rvalue(&m[n], 0);
        }

        order[n] = n;
        n++;
    }

    /* members in any order */

    for (i = n - 1; i > 0; i--) {
        k = (int) ai_t_rand(i + 1);
        int t = order[i];
        order[i] = order[k];
        order[k] = t;
    }

    ai_buf_append(b, "{", 1);

    for (i = 0; i < n; i++) {
        if (i) {
            ai_buf_append(b, ",", 1);
        }

        ai_t_ws(b);
        ai_buf_append(b, m[order[i]].data, m[order[i]].len);
        ai_buf_free(&m[order[i]]);
    }

    ai_t_ws(b);
    ai_buf_append(b, "}", 1);
}


static void
ai_t_fast_requests(void)
{
    int                  i, rc, errors, taken, loaded;
    json_t              *req;
    ai_buf_t             in, out, path;
    ai_json_error_t      err;
    ai_translate_opts_t  o;

    for (errors = 0; errors < 2; errors++) {
        taken = 0;
        loaded = 0;

        for (i = 0; i < 4000; i++) {
            memset(&in, 0, sizeof(ai_buf_t));
            ai_t_rrequest(&in, errors);

            o = ai_t_opts(AI_EP_CHAT, i % 7 ? "claude-sonnet-4" : "", 0);
            o.model_len = strlen(o.model);
            o.default_max_tokens = i % 3 ? 1024 : 0;

            req = json_loadb(in.data, in.len, 0, NULL);

            if (req == NULL) {
                /* a big number: the gateway refuses the body first */
                ai_buf_free(&in);
                continue;
            }

            loaded++;

            memset(&out, 0, sizeof(ai_buf_t));
            memset(&path, 0, sizeof(ai_buf_t));
            memset(&err, 0, sizeof(ai_json_error_t));

            rc = ai_translate_request(AI_FORMAT_ANTHROPIC, req, &o, &out,
                                      &path, &err);
            json_decref(req);

            taken += ai_t_raw_same(AI_FORMAT_ANTHROPIC, in.data, in.len, &o,
                                   rc, &out, &path);

            ai_buf_free(&out);
            ai_buf_free(&path);
            ai_buf_free(&in);
        }

        /* the common shapes go the fast way (reals that overflow and
         * repeated keys in schemas aside) */

        if (!errors) {
            CHECK(taken > loaded * 6 / 10);
        }

        CHECK(taken > 0);
    }
}


/* a random Anthropic answer, and the same through jansson alone */

static void
ai_t_rresponse(ai_buf_t *b)
{
    int  i, n;

    static const char  *stops[] = {
        "\"end_turn\"", "\"max_tokens\"", "\"stop_sequence\"",
        "\"tool_use\"", "\"refusal\"", "null", "\"pause_turn\"",
        "\"end_\\u0074urn\"", "\"model_context_window_exceeded\"", "7"
    };

    ai_buf_append_str(b, "{");
    ai_t_ws(b);

    if (ai_t_rand(8)) {
        ai_buf_append_str(b, "\"id\":");
        ai_t_rstr(b, 1);
        ai_buf_append(b, ",", 1);
    }

    ai_buf_append_str(b, ai_t_rand(10) ? "\"type\":\"message\","
                                       : "\"type\":\"mess\\u0061ge\",");
    ai_buf_append_str(b, "\"role\":\"assistant\",\"model\":\"claude\","
                      "\"content\":[");
    n = ai_t_rand(4);

    for (i = 0; i < n; i++) {
        if (i) {
            ai_buf_append(b, ",", 1);
        }

        ai_t_ws(b);

        switch (ai_t_rand(12)) {
        case 0:
            ai_buf_append_str(b, "{\"type\":\"thinking\",\"thinking\":\"hm\","
                              "\"signature\":\"x\"}");
            break;
        case 1:
            ai_buf_append_str(b, "{\"type\":\"tool_use\",\"id\":\"toolu_1\","
                              "\"name\":\"f\",\"input\":{\"a\":1}}");
            break;
        case 2:
            ai_buf_append_str(b, "{\"text\":\"no type\"}");
            break;
        case 3:
            ai_buf_append_str(b, "{\"type\":\"text\",\"text\":3}");
            break;
        case 4:
            ai_buf_append_str(b, "5");
            break;
        default:
            ai_buf_append_str(b, ai_t_rand(2) ? "{\"type\":\"text\","
                                                "\"text\":"
                                              : "{\"text\":");
            ai_t_rstr(b, 1);

            if (ai_t_rand(2)) {
                ai_buf_append_str(b, ",\"type\":\"text\"");
            }

            ai_buf_append(b, "}", 1);
        }
    }

    ai_buf_append_str(b, "],\"stop_reason\":");
    ai_buf_append_str(b, stops[ai_t_rand(10)]);

    if (ai_t_rand(6)) {
        ai_buf_append_str(b, ",\"usage\":{");

        switch (ai_t_rand(5)) {
        case 0:
            ai_buf_append_str(b, "\"output_tokens\":3");
            break;
        case 1:
            ai_buf_append_str(b, "\"input_tokens\":null,"
                              "\"output_tokens\":2.5");
            break;
        default:
            ai_buf_append_str(b, "\"input_tokens\":12,"
                              "\"cache_creation_input_tokens\":3,"
                              "\"cache_read_input_tokens\":4,"
                              "\"output_tokens\":7,"
                              "\"service_tier\":\"standard\"");
        }

        ai_buf_append(b, "}", 1);
    }

    ai_t_ws(b);
    ai_buf_append(b, "}", 1);
}


static void
ai_t_fast_responses(void)
{
    int                  i, rc, trc;
    ai_buf_t             in, out, tout;
    ai_translate_opts_t  o, to;

    o = ai_t_opts(AI_EP_CHAT, "claude", 0);
    to = o;
    to.tree_only = 1;

    for (i = 0; i < 3000; i++) {
        memset(&in, 0, sizeof(ai_buf_t));
        memset(&out, 0, sizeof(ai_buf_t));
        memset(&tout, 0, sizeof(ai_buf_t));

        ai_t_rresponse(&in);

        rc = ai_translate_response(AI_FORMAT_ANTHROPIC, i % 50 ? 200 : 400,
                                   in.data, in.len, &o, &out);
        trc = ai_translate_response(AI_FORMAT_ANTHROPIC, i % 50 ? 200 : 400,
                                    in.data, in.len, &to, &tout);

        if (rc != trc || out.len != tout.len
            || memcmp(out.data, tout.data, out.len) != 0)
        {
            fprintf(stderr, "fast and tree answers differ for %.*s\n"
                    "  fast: %.*s\n  tree: %.*s\n", (int) in.len, in.data,
                    (int) out.len, out.data, (int) tout.len, tout.data);
            CHECK(0);
        }

        ai_buf_free(&in);
        ai_buf_free(&out);
        ai_buf_free(&tout);
    }
}


/* random Anthropic event streams: the fast reader and jansson agree */

static void
ai_t_revent(ai_buf_t *b, int i)
{
    static const char  *ev[] = {
        "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\","
        "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"
        "\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}",
        "{\"message\":{\"usage\":{\"input_tokens\":5,"
        "\"cache_read_input_tokens\":2},\"id\":\"msg_\\u00e9\"},"
        "\"type\":\"message_start\"}",
        "{\"type\": \"message_start\", \"message\": {\"id\": \"msg_2\", "
        "\"usage\": {\"input_tokens\": 1.5}}}",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
        "{\"type\":\"text\",\"text\":\"\"}}",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
        "{\"type\":\"text\",\"text\":\"Pre\\u00e9\"}}",
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_\\u0077\","
        "\"input\":{}}}",
        "{\"type\":\"content_block_start\",\"index\":\"1\",\"content_block\":"
        "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"f\"}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"text_delta\",\"text\":\"Hello\"}}",
        "{\"index\":0,\"type\":\"content_block_delta\",\"delta\":{\"text\":"
        "\" w\\u00f6rld\\n\",\"type\":\"text_delta\"}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"{\\\"loc\"}}",
        "{\"type\":\"content_block_delta\",\"index\":7,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"x\"}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"thinking_delta\",\"thinking\":\"hm\"}}",
        "{\"type\":\"content_block_stop\",\"index\":0}",
        "{\"type\": \"ping\"}",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":"
        "15}}",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"tool_use\"},\"usage\":{\"output_tokens\":3,\"input_tokens\":9}}",
        "{\"type\":\"message_delta\",\"delta\":{},\"usage\":{}}",
        "{\"type\":\"message_stop\"}",
        "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
        "\"message\":\"Overloaded\"}}",
        "{\"type\":\"some_new_event\",\"x\":[1,2,{\"y\":null}]}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"text_delta\",\"text\":\"bad \\ud800\"}}",
        "[1,2]",
        "{\"type\":\"message_st\\u0061rt\",\"message\":{}}",
        "not json",
    };

    int  k;

    k = (int) ai_t_rand(sizeof(ev) / sizeof(ev[0]));

    if (i == 0 && ai_t_rand(4)) {
        k = 0;
    }

    ai_buf_append_str(b, "event: x\ndata: ");
    ai_buf_append_str(b, ev[k]);
    ai_buf_append_str(b, "\n\n");
}


static void
ai_t_fast_streams(void)
{
    int                  i, j, n;
    ai_buf_t             in, out;
    ai_translate_opts_t  o;

    for (i = 0; i < 1500; i++) {
        memset(&in, 0, sizeof(ai_buf_t));
        n = ai_t_rand(12);

        for (j = 0; j < n; j++) {
            ai_t_revent(&in, j);
        }

        o = ai_t_opts(AI_EP_CHAT, "claude", i % 2);

        /* ai_t_stream() compares with the jansson-only stream itself */
        (void) ai_t_stream(ai_stream_new, AI_FORMAT_ANTHROPIC, &o,
                           in.data ? in.data : "", in.len, i % 3 ? 0 : 7, 0,
                           i % 5 != 0, &out, NULL);

        ai_buf_free(&out);
        ai_buf_free(&in);
    }
}


/* the fast request path takes the bench's request, byte for byte */

static void
ai_t_fast_request_shapes(void)
{
    size_t               i;
    ai_buf_t             out, path;
    ai_json_error_t      err;
    ai_translate_opts_t  o;

    static const char  *taken[] = {
        "{\"model\":\"claude\",\"messages\":[{\"role\":\"system\",\"content\":"
        "\"You are Aria.\"},{\"role\":\"user\",\"content\":\"Hi!\"}],"
        "\"temperature\":0.7,\"max_tokens\":256,\"user\":\"bench-user-42\"}",
        "{\"model\":\"claude\",\"stream\":true,\"messages\":[{\"role\":"
        "\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"system\","
        "\"content\":\"c\"},{\"role\":\"user\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"x\"}]},{\"role\":\"user\",\"content\":\"y\"},"
        "{\"role\":\"assistant\",\"content\":\"z\"},{\"role\":\"user\","
        "\"content\":\"w\"}],\"stop\":[\"END\",\"\\u00e9\"],\"top_p\":1,"
        "\"max_completion_tokens\":9}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"}],"
        "\"model\":\"claude\",\"tools\":[{\"type\":\"function\",\"function\":"
        "{\"name\":\"get_weather\",\"description\":\"Weather\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"location\":"
        "{\"type\":\"string\"},\"days\":{\"type\":\"integer\",\"minimum\":"
        "1.5e0}},\"required\":[\"location\"]}}}],\"tool_choice\":{\"type\":"
        "\"function\",\"function\":{\"name\":\"get_weather\"}},"
        "\"parallel_tool_calls\":false,\"stop\":\"\\n\\n\"}",
    };

    static const char  *declined[] = {
        "{\"model\":\"claude\",\"messages\":[{\"role\":\"tool\","
        "\"tool_call_id\":\"c\",\"content\":\"r\"}]}",
        "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"https://a/b.png\"}}]}]}",
        "{\"model\":\"claude\",\"messages\":[{\"role\":\"system\","
        "\"content\":\"only\"}]}",
        "{\"model\":\"claude\",\"messages\":[{\"r\\u006fle\":\"user\","
        "\"content\":\"x\"}]}",
        "{\"model\":\"claude\",\"n\":2,\"messages\":[{\"role\":\"user\","
        "\"content\":\"x\"}]}",
        "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
        "\"f\",\"parameters\":{\"a\":1,\"a\":2}}}]}",
        "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"x\"}],\"max_tokens\":0}",
    };

    o = ai_t_opts(AI_EP_CHAT, "claude-sonnet-4", 0);

    for (i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
        ai_t_raw_taken = 0;
        (void) ai_t_request(AI_FORMAT_ANTHROPIC, taken[i], &o, &out, &path,
                            &err);
        CHECK(ai_t_raw_taken == 1);
        ai_buf_free(&out);
        ai_buf_free(&path);
    }

    for (i = 0; i < sizeof(declined) / sizeof(declined[0]); i++) {
        ai_t_raw_taken = 0;
        (void) ai_t_request(AI_FORMAT_ANTHROPIC, declined[i], &o, &out,
                            &path, &err);
        CHECK(ai_t_raw_taken == 0);
        ai_buf_free(&out);
        ai_buf_free(&path);
    }

    /* Gemini, and the other endpoints, have no fast path */

    memset(&out, 0, sizeof(ai_buf_t));
    memset(&path, 0, sizeof(ai_buf_t));
    CHECK(ai_translate_request_raw(AI_FORMAT_GEMINI, taken[0],
                                   strlen(taken[0]), &o, &out, &path) == 1);
    o.endpoint = AI_EP_COMPLETIONS;
    CHECK(ai_translate_request_raw(AI_FORMAT_ANTHROPIC, taken[0],
                                   strlen(taken[0]), &o, &out, &path) == 1);
}


/*
 * OpenAI streams passed through and read for their usage, finish and
 * errors: the tree-free reader (with its repeated-chunk shortcut) and
 * jansson give the same bytes and the same counts.
 */

static void
ai_t_fast_openai_streams(void)
{
    int                  i, k, m, j, n;
    ai_buf_t             sse, out, tout;
    ai_stream_t         *a, *b;
    ai_translate_opts_t  o, to;
    static const char   *texts[] = {
        "\"Hel\"", "\"lo\"", "\"\"", "\"caf\\u00e9 \\ud83d\\ude00\"",
        "\"q\\\"\\\\\\n\"", "\"bad \\x\"", "\"caf\xc3\xa9\"", "null", "7",
    };
    static const char   *fins[] = {
        "null", "null", "null", "\"stop\"", "\"length\"", "3",
    };
    static const char   *tops[] = {
        "", "", "", "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":"
        "4.9,\"prompt_tokens_details\":{\"cached_tokens\":2}},",
        "\"usage\":null,", "\"error\":null,", "\"error\":{\"message\":\"x\"},",
        "\"us\\u0061ge\":{\"prompt_tokens\":3},",
    };

    o = ai_t_opts(AI_EP_CHAT, "gpt", 0);

    for (i = 0; i < 2000; i++) {
        memset(&sse, 0, sizeof(ai_buf_t));
        memset(&out, 0, sizeof(ai_buf_t));
        memset(&tout, 0, sizeof(ai_buf_t));

        o.include_usage = (int) ai_t_rand(2);
        to = o;
        to.tree_only = 1;
        m = 1 + (int) ai_t_rand(10);

        for (k = 0; k < m; k++) {
            ai_buf_append_str(&sse, "data: {\"id\":\"c1\",");
            ai_buf_append_str(&sse, tops[ai_t_rand(8)]);

            if (ai_t_rand(6) == 0) {
                ai_buf_append_str(&sse, "\"choices\":[]}\n\n");
                continue;
            }

            ai_buf_append_str(&sse, "\"choices\":[");
            n = 1 + (ai_t_rand(8) == 0);

            for (j = 0; j < n; j++) {
                ai_buf_append_str(&sse, j ? ",{\"index\":1," : "{\"index\":0,");
                ai_buf_append_str(&sse, "\"delta\":{\"content\":");
                ai_buf_append_str(&sse, texts[ai_t_rand(9)]);
                ai_buf_append_str(&sse, "},\"finish_reason\":");
                ai_buf_append_str(&sse, fins[ai_t_rand(6)]);
                ai_buf_append_str(&sse, "}");
            }

            ai_buf_append_str(&sse, "]}\n\n");
        }

        if (ai_t_rand(5)) {
            ai_buf_append_str(&sse, "data: [DONE]\n\n");
        }

        a = ai_stream_new(AI_FORMAT_OPENAI, &o);
        b = ai_stream_new(AI_FORMAT_OPENAI, &to);
        CHECK(a != NULL && b != NULL);

        if (a == NULL || b == NULL) {
            return;
        }

        CHECK((ai_stream_feed(a, sse.data, sse.len, &out) == 0)
              == (ai_stream_feed(b, sse.data, sse.len, &tout) == 0));
        CHECK((ai_stream_finish(a, 1, &out) == 0)
              == (ai_stream_finish(b, 1, &tout) == 0));

        CHECK(out.len == tout.len
              && (out.len == 0 || memcmp(out.data, tout.data, out.len) == 0));
        CHECK(a->usage.seen == b->usage.seen
              && a->usage.prompt_tokens == b->usage.prompt_tokens
              && a->usage.completion_tokens == b->usage.completion_tokens
              && a->usage.cached_tokens == b->usage.cached_tokens);
        CHECK(a->finished == b->finished && a->done == b->done);

        ai_stream_free(a);
        ai_stream_free(b);
        ai_buf_free(&sse);
        ai_buf_free(&out);
        ai_buf_free(&tout);
    }
}


int
main(void)
{
    ai_t_sse();
    ai_t_anthropic_request();
    ai_t_anthropic_response();
    ai_t_anthropic_stream();
    ai_t_anthropic_fast();
    ai_t_fast_request_shapes();
    ai_t_fast_requests();
    ai_t_fast_responses();
    ai_t_fast_streams();
    ai_t_fast_openai_streams();
    ai_t_gemini_request();
    ai_t_gemini_response();
    ai_t_anthropic_in();
    ai_t_openai();
    ai_t_mutations();

    printf("test_translate: %d checks, %d failed\n", ai_checks, ai_failures);

    return ai_failures ? 1 : 0;
}
