/*
 * Unit tests of the plugin ABI, the plugin host (lua-free-plugins/
 * aigw_plugin_host.c) and the plugins shipped with aigw.  Built and run by
 * `make -C lua-free-plugins test`; PLUGIN_DIR names the folder of the built
 * .so files.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "aigw_plugin_host.h"

#ifndef PLUGIN_DIR
#error "build with -DPLUGIN_DIR=\"/path/to/lua-free-plugins/build\""
#endif

#ifndef PLUGIN_SRC_DIR
#define PLUGIN_SRC_DIR  PLUGIN_DIR "/.."
#endif

#ifndef CC_CMD
#define CC_CMD  "cc"
#endif


static int  failures;
static int  checks;

#define CHECK(cond)                                                         \
    do {                                                                    \
        checks++;                                                           \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,          \
                    __LINE__, #cond);                                       \
        }                                                                   \
    } while (0)

#define CHECK_MSG(cond, ...)                                                \
    do {                                                                    \
        checks++;                                                           \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__,          \
                    __LINE__, #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)


/* test harness: instances, chains, requests ---------------------------- */

static aigw_instance_t *
load(const char *so, const char *const *args, size_t nargs, char *err,
    size_t errlen)
{
    char  path[1024];

    if (strchr(so, '/') != NULL) {
        snprintf(path, sizeof(path), "%s", so);
    } else {
        snprintf(path, sizeof(path), "%s/%s.so", PLUGIN_DIR, so);
    }

    return aigw_instance_load(so, path, args, nargs, err, errlen);
}


static aigw_instance_t *
load_ok(const char *so, const char *const *args, size_t nargs)
{
    char              err[512];
    aigw_instance_t  *inst;

    inst = load(so, args, nargs, err, sizeof(err));
    if (inst == NULL) {
        fprintf(stderr, "cannot load %s: %s\n", so, err);
        exit(2);
    }

    return inst;
}

#define NARGS(a)  (sizeof(a) / sizeof((a)[0]))


typedef struct {
    aigw_request_t  req;
    char            headers[16][2][128];
    size_t          nheaders;
} test_req_t;


static int
test_add_header(aigw_request_t *req, const char *name, const char *value)
{
    test_req_t  *t = (test_req_t *) req;

    if (t->nheaders == 16 || strpbrk(value, "\r\n") || name[0] == '\0') {
        return -1;
    }

    snprintf(t->headers[t->nheaders][0], 128, "%s", name);
    snprintf(t->headers[t->nheaders][1], 128, "%s", value);
    t->nheaders++;
    return 0;
}


static void
req_init(test_req_t *t, const char *body, const char *tenant)
{
    json_error_t  e;

    memset(t, 0, sizeof(test_req_t));
    t->req.body = json_loads(body, 0, &e);
    if (t->req.body == NULL) {
        fprintf(stderr, "bad test body: %s: %s\n", e.text, body);
        exit(2);
    }

    t->req.tenant = tenant ? tenant : "";
    t->req.model = json_string_value(json_object_get(t->req.body, "model"));
    if (t->req.model == NULL) {
        t->req.model = "";
    }
    t->req.endpoint = "chat/completions";
    t->req.stream = json_is_true(json_object_get(t->req.body, "stream"));
    t->req.add_header = test_add_header;
}


static const char *
req_header(const test_req_t *t, const char *name)
{
    size_t  i;

    for (i = 0; i < t->nheaders; i++) {
        if (strcmp(t->headers[i][0], name) == 0) {
            return t->headers[i][1];
        }
    }

    return NULL;
}


/* First user message's content after the chain ran on it. */
static const char *
req_content(const test_req_t *t, size_t i)
{
    return json_string_value(json_object_get(
        json_array_get(json_object_get(t->req.body, "messages"), i),
        "content"));
}


/*
 * Runs the chain again from the body's bytes, as the gateway does, and
 * checks that the outcome is the tree's: the same action and verdict, and
 * a body that parses to the same document.
 */
static void
check_bytes_mode(aigw_instance_t *const *inst, size_t n, const test_req_t *t,
    const char *body, const char *tenant, aigw_action_t want,
    const aigw_verdict_t *wv)
{
    size_t          len;
    json_t         *got;
    test_req_t      b;
    aigw_run_t     *run;
    const char     *out;
    aigw_chain_t    chain = { inst, n };
    aigw_action_t   rc;
    aigw_verdict_t  v;

    req_init(&b, body, tenant);
    b.req.model = t->req.model;         /* the tree it points into goes */
    json_decref(b.req.body);
    b.req.body = NULL;

    run = aigw_run_start(&chain, &b.req, &v);
    CHECK(run != NULL);
    if (run == NULL) {
        return;
    }

    rc = aigw_run_request_bytes(run, body, strlen(body), &v);
    CHECK_MSG(rc == want, "%d %d %s: %s", rc, want, v.message, body);
    if (rc == AIGW_REJECT) {
        CHECK(v.status == wv->status);
        CHECK(strcmp(v.code, wv->code) == 0);
        CHECK(strcmp(v.param, wv->param) == 0);
        CHECK(strcmp(v.message, wv->message) == 0);

    } else if (rc == AIGW_MODIFIED) {
        if (b.req.body != NULL) {
            got = json_incref(b.req.body);
        } else {
            CHECK(aigw_run_request_output(run, &out, &len) == 0);
            got = json_loadb(out, len, 0, NULL);
        }
        CHECK_MSG(got != NULL && json_equal(got, t->req.body), "%s", body);
        json_decref(got);
    }

    CHECK(b.nheaders == t->nheaders);
    aigw_run_end(run);
}


/* Runs a chain of instances on a request body; returns the action. */
static aigw_action_t
run_request(aigw_instance_t *const *inst, size_t n, test_req_t *t,
    const char *body, const char *tenant, aigw_verdict_t *v)
{
    aigw_run_t     *run;
    aigw_chain_t    chain = { inst, n };
    aigw_action_t   rc;

    req_init(t, body, tenant);
    run = aigw_run_start(&chain, &t->req, v);
    if (run == NULL) {
        return AIGW_REJECT;
    }

    rc = aigw_run_request(run, v);
    aigw_run_end(run);

    /* the same from the bytes (no tree when every plugin reads texts) */
    check_bytes_mode(inst, n, t, body, tenant, rc, v);

    return rc;
}


/*
 * Streams pieces through a chain (choice 0) and collects what the client
 * would get; *rejected is set when the chain stopped the stream.  Checks
 * that every emitted piece is valid UTF-8 on its own.
 */
static int
utf8_valid(const char *s, size_t len)
{
    size_t         i, n, k;
    unsigned char  c;

    for (i = 0; i < len; i += n) {
        c = (unsigned char) s[i];
        n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3
            : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > len) {
            return 0;
        }
        for (k = 1; k < n; k++) {
            if (((unsigned char) s[i + k] >> 6) != 2) {
                return 0;
            }
        }
    }

    return 1;
}


typedef struct {
    char            out[65536];
    size_t          len;
    int             rejected;
    int             bad_utf8;
    size_t          max_held;       /* input bytes fed minus bytes emitted */
    aigw_verdict_t  v;
} stream_result_t;


static void
run_stream(aigw_instance_t *const *inst, size_t n, const char *const *pieces,
    const size_t *lens, size_t npieces, stream_result_t *r)
{
    size_t          i, olen, fed;
    aigw_run_t     *run;
    test_req_t      t;
    const char     *out;
    aigw_chain_t    chain = { inst, n };
    aigw_action_t   rc;

    memset(r, 0, sizeof(stream_result_t));
    req_init(&t, "{\"model\":\"m\",\"stream\":true,\"messages\":[]}", NULL);

    run = aigw_run_start(&chain, &t.req, &r->v);
    if (run == NULL) {
        r->rejected = 1;
        json_decref(t.req.body);
        return;
    }

    fed = 0;
    for (i = 0; i <= npieces; i++) {
        if (i < npieces) {
            fed += lens[i];
            rc = aigw_run_delta(run, 0, pieces[i], lens[i], &out, &olen,
                                &r->v);
        } else {
            CHECK(aigw_run_unflushed_choice(run) == 0);
            rc = aigw_run_delta_flush(run, 0, "", 0, &out, &olen, &r->v);
            CHECK(aigw_run_unflushed_choice(run) == -1);
        }

        if (rc == AIGW_REJECT) {
            r->rejected = 1;
            break;
        }

        if (!utf8_valid(out, olen)) {
            r->bad_utf8 = 1;
        }

        if (r->len + olen < sizeof(r->out)) {
            memcpy(r->out + r->len, out, olen);
            r->len += olen;
        }

        /* only meaningful for text without masks */
        if (fed > r->len && fed - r->len > r->max_held) {
            r->max_held = fed - r->len;
        }
    }

    r->out[r->len] = '\0';
    aigw_run_end(run);
    json_decref(t.req.body);
}


static void
run_split(aigw_instance_t *const *inst, size_t n, const char *text, size_t at,
    stream_result_t *r)
{
    const char  *pieces[2];
    size_t       lens[2], len;

    len = strlen(text);
    pieces[0] = text;
    lens[0] = at;
    pieces[1] = text + at;
    lens[1] = len - at;
    run_stream(inst, n, pieces, lens, 2, r);
}


/* masks text at once (non-streamed) */
static void
run_whole(aigw_instance_t *const *inst, size_t n, const char *text,
    stream_result_t *r)
{
    size_t       olen;
    aigw_run_t  *run;
    test_req_t   t;
    const char  *out;
    aigw_chain_t chain = { inst, n };

    memset(r, 0, sizeof(stream_result_t));
    req_init(&t, "{\"model\":\"m\",\"messages\":[]}", NULL);
    run = aigw_run_start(&chain, &t.req, &r->v);
    CHECK(run != NULL);
    if (aigw_run_delta_flush(run, 0, text, strlen(text), &out, &olen, &r->v)
        == AIGW_REJECT)
    {
        r->rejected = 1;
    } else {
        memcpy(r->out, out, olen);
        r->len = olen;
        r->out[olen] = '\0';
    }
    aigw_run_end(run);
    json_decref(t.req.body);
}


/*
 * The core stream property: splitting text in two at every byte, and
 * feeding it one byte at a time, gives exactly the non-streamed result.
 */
static void
check_every_split(aigw_instance_t *const *inst, size_t n, const char *text,
    const char *expect)
{
    size_t            at, len, i;
    const char       *pieces[4096];
    size_t            lens[4096];
    stream_result_t  *r;

    r = malloc(sizeof(stream_result_t));
    len = strlen(text);

    run_whole(inst, n, text, r);
    CHECK_MSG(strcmp(r->out, expect) == 0, "whole: got \"%s\" want \"%s\"",
              r->out, expect);

    for (at = 0; at <= len; at++) {
        run_split(inst, n, text, at, r);
        CHECK_MSG(!r->rejected && strcmp(r->out, expect) == 0,
                  "split at %zu of \"%s\": got \"%s\"", at, text, r->out);
        CHECK_MSG(!r->bad_utf8, "split at %zu: invalid UTF-8 emitted", at);
    }

    if (len <= 4096) {
        for (i = 0; i < len; i++) {
            pieces[i] = text + i;
            lens[i] = 1;
        }
        run_stream(inst, n, pieces, lens, len, r);
        CHECK_MSG(strcmp(r->out, expect) == 0, "bytewise: got \"%s\"",
                  r->out);
        CHECK_MSG(!r->bad_utf8, "bytewise: invalid UTF-8 emitted");
    }

    free(r);
}


/* pii_redact ------------------------------------------------------------ */

static void
test_pii_stream_splits(void)
{
    size_t            i;
    aigw_instance_t  *inst;
    const char       *args[] = { "apply=both" };

    static const char *cases[][2] = {
        { "Mail me at john.doe+x@example.co.uk, thanks.",
          "Mail me at [EMAIL], thanks." },
        { "a@b.co", "[EMAIL]" },
        { "end: mary@example.com.", "end: [EMAIL]." },
        { "Card 4111 1111 1111 1111 expires; 5500-0000-0000-0004 too",
          "Card [CARD] expires; [CARD] too" },
        { "not a card 4111 1111 1111 1112 here",
          "not a card 4111 1111 1111 1112 here" },
        { "IBAN DE89 3704 0044 0532 0130 00 ok, GB82WEST12345698765432",
          "IBAN [IBAN] ok, [IBAN]" },
        { "bad DE89 3704 0044 0532 0130 01 x",
          "bad DE89 3704 0044 0532 0130 01 x" },
        { "server 192.168.1.20 and fe80::1ff:fe23:4567:890a. Also ::1",
          "server [IP] and [IP]. Also [IP]" },
        { "call +1 (555) 123-4567 or 555-123-4567 now",
          "call [PHONE] or [PHONE] now" },
        { "key sk-proj-abcdefghijklmnopqrstuvwxyz0123 end",
          "key [SECRET] end" },
        { "aws AKIAIOSFODNN7EXAMPLE, gh ghp_abcdefghijklmnopqrstuvwxyz0123456789"
          " slack xoxb-1234567890-abcdef",
          "aws [SECRET], gh [SECRET] slack [SECRET]" },
        { "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.sig_xyz\n",
          "Authorization: [SECRET]\n" },
        { "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\nabcd==\n"
          "-----END RSA PRIVATE KEY-----\ny",
          "x\n[PRIVATE_KEY]\ny" },
        { "trunc -----BEGIN PRIVATE KEY-----\nMIIEabc",
          "trunc [PRIVATE_KEY]" },
        { "Gr\xc3\xbc\xc3\x9f" "e an jane@example.org \xf0\x9f\x98\x80 und "
          "\xe6\x97\xa5\xe6\x9c\xac +49 30 1234567 \xe2\x9c\x93",
          "Gr\xc3\xbc\xc3\x9f" "e an [EMAIL] \xf0\x9f\x98\x80 und "
          "\xe6\x97\xa5\xe6\x9c\xac [PHONE] \xe2\x9c\x93" },
        { "In 2024, 3 of 10 people paid $1,234.56 on 2024-01-15 at 10:30, "
          "v1.2.3, std::cout, user@host, 12:30:45.",
          "In 2024, 3 of 10 people paid $1,234.56 on 2024-01-15 at 10:30, "
          "v1.2.3, std::cout, user@host, 12:30:45." },
        { "\xc3\xa9t\xc3\xa9@ 9.9.9.9\xc3\xa9", "\xc3\xa9t\xc3\xa9@ [IP]\xc3\xa9" },
    };

    inst = load_ok("pii_redact", args, NARGS(args));

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_every_split(&inst, 1, cases[i][0], cases[i][1]);
    }

    aigw_instance_free(inst);
}


static void
test_pii_types_and_request(void)
{
    test_req_t        t;
    aigw_verdict_t    v;
    aigw_instance_t  *inst;
    char              body[1024];
    const char       *args[] = { "types=email,card" };
    const char       *block[] = { "mode=block", "types=secret,email" };

    inst = load_ok("pii_redact", args, NARGS(args));

    CHECK(run_request(&inst, 1, &t,
        "{\"model\":\"m\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"be nice\"},"
        "{\"role\":\"user\",\"content\":\"me: a@b.com 4111111111111111 "
        "10.0.0.1\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"x@y.org\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"http://a@b.com\"}}]}]}", NULL, &v) == AIGW_MODIFIED);
    CHECK(strcmp(req_content(&t, 0), "be nice") == 0);
    CHECK_MSG(strcmp(req_content(&t, 1), "me: [EMAIL] [CARD] 10.0.0.1") == 0,
              "%s", req_content(&t, 1));
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(
        json_object_get(json_array_get(json_object_get(t.req.body,
        "messages"), 2), "content"), 0), "text")), "[EMAIL]") == 0);
    json_decref(t.req.body);

    CHECK(run_request(&inst, 1, &t,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"nothing here\"}]}", NULL, &v) == AIGW_PASS);
    json_decref(t.req.body);

    /* legacy prompt= and Responses input= */
    CHECK(run_request(&inst, 1, &t,
        "{\"model\":\"m\",\"prompt\":\"a@b.com\",\"input\":[{\"role\":\"user\","
        "\"content\":[{\"type\":\"input_text\",\"text\":\"c@d.com\"}]}]}",
        NULL, &v) == AIGW_MODIFIED);
    CHECK(strcmp(json_string_value(json_object_get(t.req.body, "prompt")),
                 "[EMAIL]") == 0);
    {
        char *dump = json_dumps(json_object_get(t.req.body, "input"), 0);
        CHECK(dump != NULL && strstr(dump, "c@d.com") == NULL);
        free(dump);
    }
    json_decref(t.req.body);

    aigw_instance_free(inst);

    /* block mode: 400, names the type, never the text */
    inst = load_ok("pii_redact", block, NARGS(block));
    CHECK(run_request(&inst, 1, &t,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"my key is sk-abcdefghijklmnopqrstuvwxyz\"}]}", NULL, &v)
        == AIGW_REJECT);
    CHECK(v.status == 400);
    CHECK(strcmp(v.code, "pii_detected") == 0);
    CHECK(strstr(v.message, "secret") != NULL);
    aigw_verdict_error_body(&v, body, sizeof(body));
    CHECK(strstr(body, "sk-abc") == NULL);
    CHECK(strstr(body, "\"type\":\"invalid_request_error\"") != NULL);
    json_decref(t.req.body);

    /* apply=request (the default) leaves responses alone */
    {
        stream_result_t  *r = malloc(sizeof(stream_result_t));
        run_whole(&inst, 1, "a@b.com", r);
        CHECK(!r->rejected && strcmp(r->out, "a@b.com") == 0);
        free(r);
    }
    aigw_instance_free(inst);
}


static void
test_pii_block_stream(void)
{
    size_t            at;
    const char       *text = "so the address is bob@example.net, ok";
    const char       *args[] = { "mode=block", "apply=response" };
    aigw_instance_t  *inst;
    stream_result_t  *r;

    r = malloc(sizeof(stream_result_t));
    inst = load_ok("pii_redact", args, NARGS(args));

    for (at = 0; at <= strlen(text); at++) {
        run_split(&inst, 1, text, at, r);
        CHECK_MSG(r->rejected, "split at %zu not stopped", at);
        CHECK_MSG(strstr(r->out, "bob") == NULL, "leaked at %zu: %s", at,
                  r->out);
        CHECK(strcmp(r->v.code, "pii_detected") == 0);
    }

    aigw_instance_free(inst);
    free(r);
}


/*
 * pii_redact's SSE2 scan against its byte loop (pii_redact_scalar.so, built
 * with -DPII_SCALAR): random texts of PII, near-misses, words, punctuation
 * and UTF-8, whole and as streams cut at random, under several type sets
 * and both modes; output, verdict and status must be the same.
 */

typedef struct {
    char    out[16384];
    size_t  len;
    int     rejected, status;
} pii_diff_t;


static void
pii_diff_run(aigw_instance_t *inst, const char *t, size_t len,
    unsigned cuts, int stream, pii_diff_t *r)
{
    aigw_chain_t     chain = { &inst, 1 };
    aigw_request_t   req;
    aigw_verdict_t   v;
    aigw_run_t      *run;
    aigw_action_t    a;
    const char      *o;
    size_t           ol, at, m;

    memset(&req, 0, sizeof(req));
    req.tenant = "";
    req.model = "m";
    req.endpoint = "chat/completions";
    req.stream = stream;
    req.add_header = test_add_header;
    r->len = 0;
    r->rejected = 0;
    r->status = 0;

    run = aigw_run_start(&chain, &req, &v);

    for (at = 0; stream && at < len; at += m) {
        m = (size_t) rand_r(&cuts) % 40;
        m = m > len - at ? len - at : m;
        memset(&v, 0, sizeof(v));
        a = aigw_run_delta(run, 0, t + at, m, &o, &ol, &v);
        if (a == AIGW_REJECT) {
            r->rejected = 1;
            r->status = v.status;
            break;
        }
        memcpy(r->out + r->len, o, ol);
        r->len += ol;
    }

    if (!r->rejected) {
        memset(&v, 0, sizeof(v));
        a = aigw_run_delta_flush(run, 0, stream ? "" : t, stream ? 0 : len,
                                 &o, &ol, &v);
        if (a == AIGW_REJECT) {
            r->rejected = 1;
            r->status = v.status;
        } else {
            memcpy(r->out + r->len, o, ol);
            r->len += ol;
        }
    }

    aigw_run_end(run);
}


static void
test_pii_simd_matches_scalar(void)
{
    static const char  *frag[] = {
        "alice.smith@example.com", " ", "  ", "\n", ".", ",", "(", ":",
        "+1 (415) 555-0132", "+44 20 7946 0958", "(020) 7946-0958",
        "10.20.30.40", "fe80::1ff:fe23:4567:890a", "::1", "a:b",
        "2001:db8::8a2e:370:7334", "abc:def:1234",
        "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
        "CH93 0076 2011 6238 5295 7", "4111 1111 1111 1111",
        "4111111111111111", "sk-proj-Abcdefghijklmnopqrstuvwx",
        "AKIAIOSFODNN7EXAMPLE", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "Bearer abcdefghijklmnop1234", "xoxb-1234567890-abc",
        "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
        "2024-05-14", "$12,500.00", "3.2.1", "the", "budget", "Smith", "bob",
        "gx", "a@b", "x@", "@", "user_name+tag%1", "B", "A", "s", "g", "x",
        "-", "\xc3\xbc", "\xe2\x80\x94", "_", "%"
    };
    static const char  *sets[][2] = {
        { "apply=both", NULL }, { "apply=both", "types=email" },
        { "apply=both", "types=ip,secret" }, { "apply=both", "types=iban,phone" },
        { "apply=both", "mode=block" }, { "apply=both", "types=card,ip,email" }
    };
    aigw_instance_t    *simd, *scalar;
    static pii_diff_t   r1, r2;
    char                t[4096];
    size_t              k, len, f;
    unsigned            seed, cuts;
    int                 n, i, words, stream, differ = 0;

    for (k = 0; k < NARGS(sets); k++) {
        n = sets[k][1] ? 2 : 1;
        simd = load_ok("pii_redact", sets[k], (size_t) n);
        scalar = load_ok("pii_redact_scalar", sets[k], (size_t) n);
        seed = 1234 + (unsigned) k;

        for (i = 0; i < 3000; i++) {
            len = 0;
            words = rand_r(&seed) % 60 + 1;
            while (words-- > 0) {
                f = (size_t) rand_r(&seed) % NARGS(frag);
                if (len + strlen(frag[f]) + 1 >= sizeof(t)) {
                    break;
                }
                memcpy(t + len, frag[f], strlen(frag[f]));
                len += strlen(frag[f]);
                if (rand_r(&seed) % 3 == 0) {
                    t[len++] = ' ';
                }
            }
            cuts = (unsigned) rand_r(&seed);

            for (stream = 0; stream < 2; stream++) {
                pii_diff_run(simd, t, len, cuts, stream, &r1);
                pii_diff_run(scalar, t, len, cuts, stream, &r2);
                if (r1.len != r2.len || r1.rejected != r2.rejected
                    || r1.status != r2.status
                    || memcmp(r1.out, r2.out, r1.len) != 0)
                {
                    if (differ++ < 3) {
                        fprintf(stderr, "pii simd vs scalar, %s %s, "
                                "stream %d: \"%.*s\"\n  simd   \"%.*s\"\n"
                                "  scalar \"%.*s\"\n", sets[k][0],
                                sets[k][1] ? sets[k][1] : "", stream,
                                (int) len, t, (int) r1.len, r1.out,
                                (int) r2.len, r2.out);
                    }
                }
                checks++;
            }
        }

        aigw_instance_free(simd);
        aigw_instance_free(scalar);
    }

    CHECK_MSG(differ == 0, "%d texts differ", differ);
}


static void
test_pii_hold_bound(void)
{
    size_t            i, n;
    char             *text;
    const char       *pieces[2048];
    size_t            lens[2048];
    const char       *args[] = { "apply=response" };
    aigw_instance_t  *inst;
    stream_result_t  *r;

    r = malloc(sizeof(stream_result_t));
    text = malloc(16384);
    inst = load_ok("pii_redact", args, NARGS(args));

    /* prose: only a trailing word (a possible email local part) is held */
    n = 0;
    for (i = 0; i < 200; i++) {
        n += sprintf(text + n, "The quick brown fox %zu jumps. ", i);
    }
    for (i = 0; i * 7 < n; i++) {
        pieces[i] = text + i * 7;
        lens[i] = n - i * 7 < 7 ? n - i * 7 : 7;
    }
    run_stream(&inst, 1, pieces, lens, i, r);
    CHECK(strcmp(r->out, text) == 0);
    CHECK_MSG(r->max_held <= 7 + 6, "prose held %zu bytes", r->max_held);

    /* adversarial: the longest email prefix, digits, local-part runs */
    {
        static const char *adv[] = {
            "x@", "1 ", "a.", "ab:", "DE89 ", "-----BEGIN ", "Bearer ",
        };
        static const size_t bound[] = { 345, 52, 65, 46, 43, 66, 30 };
        size_t k;

        for (k = 0; k < sizeof(adv) / sizeof(adv[0]); k++) {
            n = 0;
            n += sprintf(text, "%s", adv[k]);
            for (i = 0; i < 600; i++) {
                text[n++] = k == 0 ? (i % 64 == 63 ? '.' : 'a')
                            : adv[k][i % strlen(adv[k])];
            }
            text[n] = '\0';
            for (i = 0; i < n; i++) {
                pieces[i] = text + i;
                lens[i] = 1;
            }
            run_stream(&inst, 1, pieces, lens, n, r);
            CHECK_MSG(r->max_held <= bound[k], "\"%s...\" held %zu > %zu",
                      adv[k], r->max_held, bound[k]);
        }
    }

    aigw_instance_free(inst);
    free(text);
    free(r);
}


static void
test_pii_bad_config(void)
{
    char        err[512];
    const char *a1[] = { "types=email,ssn" };
    const char *a2[] = { "mode=redact" };
    const char *a3[] = { "colour=blue" };
    const char *a4[] = { "apply" };

    CHECK(load("pii_redact", a1, 1, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "unknown type \"ssn\"") != NULL, "%s", err);
    CHECK(load("pii_redact", a2, 1, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "invalid mode \"redact\"") != NULL, "%s", err);
    CHECK(load("pii_redact", a3, 1, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "unknown option \"colour\"") != NULL, "%s", err);
    CHECK(load("pii_redact", a4, 1, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "expected key=value") != NULL, "%s", err);
    CHECK_MSG(strncmp(err, "plugin \"pii_redact\" (pii_redact): ", 34) == 0,
              "%s", err);
}


/* plugin host: loading errors --------------------------------------------- */

static int
build_plugin(const char *name, const char *src, char *so, size_t solen)
{
    char   c[1024], cmd[4096];
    FILE  *f;

    snprintf(c, sizeof(c), "%s/test_%s.c", PLUGIN_DIR, name);
    snprintf(so, solen, "%s/test_%s.so", PLUGIN_DIR, name);

    f = fopen(c, "w");
    if (f == NULL) {
        return -1;
    }
    fputs(src, f);
    fclose(f);

    /* no sanitizer flags: the test binary already carries their runtime */
    snprintf(cmd, sizeof(cmd), "%s -std=c11 -fPIC -shared -I%s -o %s %s",
             CC_CMD, PLUGIN_SRC_DIR, so, c);
    return system(cmd) == 0 ? 0 : -1;
}


static void
test_host_load_errors(void)
{
    char              err[1024], so[1024];
    aigw_instance_t  *inst;
    const char       *args[] = { "a=1" };

    inst = load("/nonexistent/plugin.so", NULL, 0, err, sizeof(err));
    CHECK(inst == NULL);
    CHECK_MSG(strstr(err, "cannot load \"/nonexistent/plugin.so\"") != NULL,
              "%s", err);

    CHECK(build_plugin("nosym", "int not_a_plugin(void) { return 1; }\n",
                       so, sizeof(so)) == 0);
    inst = load(so, NULL, 0, err, sizeof(err));
    CHECK(inst == NULL);
    CHECK_MSG(strstr(err, "does not export aigw_plugin_entry()") != NULL,
              "%s", err);

    CHECK(build_plugin("abi",
        "#include \"aigw_plugin.h\"\n"
        "static const aigw_plugin_t p = { .abi_version = 999, .name = \"x\" };\n"
        "AIGW_PLUGIN_EXPORT(p)\n", so, sizeof(so)) == 0);
    inst = load(so, NULL, 0, err, sizeof(err));
    CHECK(inst == NULL);
    CHECK_MSG(strstr(err, "was built for plugin ABI 999, this gateway "
                     "speaks 2") != NULL, "%s", err);

    CHECK(build_plugin("noconf",
        "#include \"aigw_plugin.h\"\n"
        "static const aigw_plugin_t p = { .abi_version = AIGW_PLUGIN_ABI_VERSION,"
        " .name = \"noconf\" };\n"
        "AIGW_PLUGIN_EXPORT(p)\n", so, sizeof(so)) == 0);
    inst = load(so, NULL, 0, err, sizeof(err));
    CHECK(inst != NULL);
    CHECK(strcmp(aigw_instance_plugin(inst)->name, "noconf") == 0);
    aigw_instance_free(inst);
    inst = load(so, args, 1, err, sizeof(err));
    CHECK(inst == NULL);
    CHECK_MSG(strstr(err, "takes no options") != NULL, "%s", err);
}


static void
test_kv_parse(void)
{
    char        err[256], *store;
    aigw_kv_t  *kv;
    const char *ok[] = { "a=1", "header=X-Team:ml", "empty=", "a=2=3" };
    const char *bad1[] = { "=x" };
    const char *bad2[] = { "k y=1" };

    CHECK(aigw_kv_parse(ok, 4, &kv, &store, err, sizeof(err)) == 0);
    CHECK(strcmp(kv[0].key, "a") == 0 && strcmp(kv[0].value, "1") == 0);
    CHECK(strcmp(kv[1].key, "header") == 0
          && strcmp(kv[1].value, "X-Team:ml") == 0);
    CHECK(strcmp(kv[2].key, "empty") == 0 && kv[2].value[0] == '\0');
    CHECK(strcmp(kv[3].key, "a") == 0 && strcmp(kv[3].value, "2=3") == 0);
    free(kv);
    free(store);

    CHECK(aigw_kv_parse(bad1, 1, &kv, &store, err, sizeof(err)) == -1);
    CHECK(strstr(err, "\"=x\"") != NULL);
    CHECK(aigw_kv_parse(bad2, 1, &kv, &store, err, sizeof(err)) == -1);
    CHECK(strstr(err, "invalid character in key") != NULL);
}


static void
test_error_body(void)
{
    char            buf[1024];
    aigw_verdict_t  v;

    memset(&v, 0, sizeof(v));
    aigw_verdict_reject(&v, 400, "invalid_request_error", "x_code", NULL,
                        "say \"%s\"\n", "hi");
    aigw_verdict_error_body(&v, buf, sizeof(buf));
    CHECK_MSG(strcmp(buf, "{\"error\":{\"message\":\"say \\\"hi\\\"\\n\","
                     "\"type\":\"invalid_request_error\",\"param\":null,"
                     "\"code\":\"x_code\"}}") == 0, "%s", buf);
}


/* deny_patterns ---------------------------------------------------------- */

static const char *
write_file(const char *name, const char *text)
{
    static char  path[1024];
    FILE        *f;

    snprintf(path, sizeof(path), "%s/%s", PLUGIN_DIR, name);
    f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
    return path;
}


static void
test_deny_patterns(void)
{
    char              err[1024], arg[1100], body[2048];
    size_t            at;
    test_req_t        t;
    aigw_verdict_t    v;
    aigw_instance_t  *inst;
    stream_result_t  *r;
    const char       *args[2], *text;

    r = malloc(sizeof(stream_result_t));

    snprintf(arg, sizeof(arg), "file=%s", write_file("deny.txt",
        "# test rules\n"
        "\n"
        "weapons: (?i)\\bbuild (a|an) (bomb|weapon)\\b\n"
        "\\bproject\\s+nightingale\\b\n"
        "   # indented comment\n"
        "creds: password\\s*=\\s*\\S+\n"));
    args[0] = arg;
    args[1] = "apply=both";
    inst = load_ok("deny_patterns", args, 2);

    CHECK(run_request(&inst, 1, &t,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"How do I Build a Bomb?\"}]}", NULL, &v) == AIGW_REJECT);
    CHECK(v.status == 400);
    CHECK(strcmp(v.type, "invalid_request_error") == 0);
    CHECK(strcmp(v.code, "content_policy_violation") == 0);
    CHECK(strstr(v.message, "rule \"weapons\"") != NULL);
    aigw_verdict_error_body(&v, body, sizeof(body));
    CHECK_MSG(strstr(body, "Bomb") == NULL && strstr(body, "bomb") == NULL,
              "%s", body);
    json_decref(t.req.body);

    CHECK(run_request(&inst, 1, &t,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":\"text\",\"text\":\"about project  nightingale\"}]}]}",
        NULL, &v) == AIGW_REJECT);
    CHECK_MSG(strstr(v.message, "rule \"line 4\"") != NULL, "%s", v.message);
    json_decref(t.req.body);

    CHECK(run_request(&inst, 1, &t,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"a nightingale sings\"}]}", NULL, &v) == AIGW_PASS);
    json_decref(t.req.body);

    /* streams: a match split anywhere stops the stream, nothing leaks */
    text = "the admin password = hunter2 was set";
    for (at = 0; at <= strlen(text); at++) {
        run_split(&inst, 1, text, at, r);
        CHECK_MSG(r->rejected, "split at %zu not stopped", at);
        CHECK_MSG(strstr(r->out, "password") == NULL, "leaked at %zu: %s",
                  at, r->out);
        CHECK(strstr(r->v.message, "rule \"creds\"") != NULL);
    }

    check_every_split(&inst, 1, "a password is needed \xc3\xa9t\xc3\xa9 "
                      "project nightingales", "a password is needed "
                      "\xc3\xa9t\xc3\xa9 project nightingales");

    aigw_instance_free(inst);

    /* bad configuration */
    snprintf(arg, sizeof(arg), "file=%s", write_file("deny_bad.txt",
        "ok: fine\n# c\nbroken: (unclosed\n"));
    args[0] = arg;
    CHECK(load("deny_patterns", args, 1, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "deny_bad.txt:3: bad pattern for rule \"broken\"")
              != NULL, "%s", err);

    args[0] = "file=/nonexistent/deny.txt";
    CHECK(load("deny_patterns", args, 1, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "cannot open file") != NULL, "%s", err);

    CHECK(load("deny_patterns", NULL, 0, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "file= is required") != NULL, "%s", err);

    free(r);
}


/* param_policy ------------------------------------------------------------ */

static void
test_param_policy(void)
{
    char              err[512];
    test_req_t        t;
    aigw_verdict_t    v;
    aigw_instance_t  *inst[2];
    const char       *clamp[] = { "max_tokens=100", "temperature=0..1",
                                  "models=gpt-4o-mini,llama*",
                                  "tools=get_weather,web_search" };
    const char       *reject[] = { "max_tokens=100", "max_tokens_action=reject",
                                   "temperature=0..1.5",
                                   "temperature_action=reject",
                                   "tenant=acme" };
    const char       *bad[] = { "temperature=2..1" };

    inst[0] = load_ok("param_policy", clamp, NARGS(clamp));

    CHECK(run_request(inst, 1, &t,
        "{\"model\":\"gpt-4o-mini\",\"max_tokens\":5000,"
        "\"max_completion_tokens\":50,\"temperature\":1.7,\"messages\":[]}",
        NULL, &v) == AIGW_MODIFIED);
    CHECK(json_integer_value(json_object_get(t.req.body, "max_tokens")) == 100);
    CHECK(json_integer_value(json_object_get(t.req.body,
                                             "max_completion_tokens")) == 50);
    CHECK(json_number_value(json_object_get(t.req.body, "temperature"))
          == 1.0);
    json_decref(t.req.body);

    CHECK(run_request(inst, 1, &t,
        "{\"model\":\"llama-3-8b\",\"max_tokens\":10,\"messages\":[]}",
        NULL, &v) == AIGW_PASS);
    json_decref(t.req.body);

    CHECK(run_request(inst, 1, &t,
        "{\"model\":\"gpt-4o\",\"messages\":[]}", NULL, &v) == AIGW_REJECT);
    CHECK(v.status == 403 && strcmp(v.code, "model_not_allowed") == 0);
    CHECK(strcmp(v.param, "model") == 0);
    json_decref(t.req.body);

    CHECK(run_request(inst, 1, &t,
        "{\"model\":\"gpt-4o-mini\",\"messages\":[],\"tools\":["
        "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"rm_rf\"}}]}",
        NULL, &v) == AIGW_REJECT);
    CHECK(v.status == 400 && strcmp(v.code, "tool_not_allowed") == 0);
    CHECK(strstr(v.message, "\"rm_rf\"") != NULL);
    json_decref(t.req.body);

    CHECK(run_request(inst, 1, &t,
        "{\"model\":\"gpt-4o-mini\",\"messages\":[],\"tools\":["
        "{\"type\":\"web_search\"}]}", NULL, &v) == AIGW_PASS);
    json_decref(t.req.body);

    /* a second instance, for one tenant only, rejecting */
    inst[1] = load_ok("param_policy", reject, NARGS(reject));

    CHECK(run_request(&inst[1], 1, &t,
        "{\"model\":\"x\",\"max_tokens\":5000,\"messages\":[]}", "other", &v)
        == AIGW_PASS);
    json_decref(t.req.body);

    CHECK(run_request(&inst[1], 1, &t,
        "{\"model\":\"x\",\"max_tokens\":5000,\"messages\":[]}", "acme", &v)
        == AIGW_REJECT);
    CHECK(v.status == 400 && strcmp(v.code, "max_tokens_exceeded") == 0);
    CHECK(strcmp(v.param, "max_tokens") == 0);
    json_decref(t.req.body);

    CHECK(run_request(&inst[1], 1, &t,
        "{\"model\":\"x\",\"temperature\":2,\"messages\":[]}", "acme", &v)
        == AIGW_REJECT);
    CHECK(strcmp(v.param, "temperature") == 0);
    json_decref(t.req.body);

    /* both in a chain: the location policy clamps, then acme's rejects */
    CHECK(run_request(inst, 2, &t,
        "{\"model\":\"gpt-4o-mini\",\"max_tokens\":5000,\"messages\":[]}",
        "acme", &v) == AIGW_MODIFIED);
    json_decref(t.req.body);

    aigw_instance_free(inst[0]);
    aigw_instance_free(inst[1]);

    CHECK(load("param_policy", bad, 1, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "invalid temperature \"2..1\"") != NULL, "%s", err);
}


/* tag_request ------------------------------------------------------------- */

static void
test_tag_request(void)
{
    char              err[512];
    test_req_t        t;
    aigw_verdict_t    v;
    aigw_instance_t  *inst;
    const char       *args[] = { "header=X-Team: ml", "header=X-Tenant:$tenant",
                                 "metadata=tenant:$tenant",
                                 "metadata=route:$model/v1", "user=$tenant" };
    const char       *keep[] = { "user=gw", "metadata=a:gw", "override=off" };
    const char       *bad[] = { "header=X Bad:1" };

    inst = load_ok("tag_request", args, NARGS(args));
    CHECK(run_request(&inst, 1, &t,
        "{\"model\":\"gpt-4o\",\"user\":\"client\",\"metadata\":{\"a\":\"b\"},"
        "\"messages\":[]}", "acme", &v) == AIGW_MODIFIED);
    CHECK(t.nheaders == 2);
    CHECK(req_header(&t, "X-Team") && strcmp(req_header(&t, "X-Team"), "ml")
          == 0);
    CHECK(req_header(&t, "X-Tenant")
          && strcmp(req_header(&t, "X-Tenant"), "acme") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(
        t.req.body, "metadata"), "route")), "gpt-4o/v1") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(
        t.req.body, "metadata"), "a")), "b") == 0);
    CHECK(strcmp(json_string_value(json_object_get(t.req.body, "user")),
                 "acme") == 0);
    json_decref(t.req.body);
    aigw_instance_free(inst);

    inst = load_ok("tag_request", keep, NARGS(keep));
    CHECK(run_request(&inst, 1, &t,
        "{\"model\":\"m\",\"user\":\"client\",\"metadata\":{\"a\":\"b\"},"
        "\"messages\":[]}", NULL, &v) == AIGW_PASS);
    CHECK(strcmp(json_string_value(json_object_get(t.req.body, "user")),
                 "client") == 0);
    json_decref(t.req.body);
    aigw_instance_free(inst);

    CHECK(load("tag_request", bad, 1, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "invalid header name") != NULL, "%s", err);
    CHECK(load("tag_request", NULL, 0, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "nothing to add") != NULL, "%s", err);
}


/* chains: order, hello plugin, several choices ---------------------------- */

static void
test_chain_order(void)
{
    char              arg[1100];
    test_req_t        t;
    aigw_verdict_t    v;
    aigw_instance_t  *pii, *deny, *chain[2];
    stream_result_t  *r;
    const char       *pii_args[] = { "apply=both", "types=email" };
    const char       *deny_args[] = { arg, "apply=both" };
    const char       *body = "{\"model\":\"m\",\"messages\":[{\"role\":"
                             "\"user\",\"content\":\"mail x@y.com\"}]}";

    r = malloc(sizeof(stream_result_t));
    snprintf(arg, sizeof(arg), "file=%s", write_file("deny_mask.txt",
        "masked: \\[EMAIL\\]\n"));

    pii = load_ok("pii_redact", pii_args, NARGS(pii_args));
    deny = load_ok("deny_patterns", deny_args, NARGS(deny_args));

    /* pii first: deny sees the placeholder and rejects */
    chain[0] = pii;
    chain[1] = deny;
    CHECK(run_request(chain, 2, &t, body, NULL, &v) == AIGW_REJECT);
    CHECK(strstr(v.message, "\"masked\"") != NULL);
    json_decref(t.req.body);

    run_split(chain, 2, "mail x@y.com now", 8, r);
    CHECK(r->rejected);

    /* deny first: nothing to see, then pii masks */
    chain[0] = deny;
    chain[1] = pii;
    CHECK(run_request(chain, 2, &t, body, NULL, &v) == AIGW_MODIFIED);
    CHECK(strcmp(req_content(&t, 0), "mail [EMAIL]") == 0);
    json_decref(t.req.body);

    check_every_split(chain, 2, "mail x@y.com now", "mail [EMAIL] now");

    aigw_instance_free(pii);
    aigw_instance_free(deny);
    free(r);
}


static void
test_two_pii_instances_and_choices(void)
{
    size_t            olen;
    char              got[2][256];
    size_t            glen[2];
    test_req_t        t;
    aigw_run_t       *run;
    aigw_verdict_t    v;
    aigw_instance_t  *inst[2];
    aigw_chain_t      chain;
    const char       *out;
    const char       *a1[] = { "types=email", "apply=response" };
    const char       *a2[] = { "types=ip", "apply=response" };
    unsigned          c;
    int               k;
    static const char *pieces[][2] = {
        { "to a@b.c", "om from 10.0.0.1 ok" },
        { "ip 192.168", ".0.1 and c@d.org" },
    };

    inst[0] = load_ok("pii_redact", a1, 2);
    inst[1] = load_ok("pii_redact", a2, 2);
    chain.inst = inst;
    chain.n = 2;

    req_init(&t, "{\"model\":\"m\",\"stream\":true,\"messages\":[]}", NULL);
    run = aigw_run_start(&chain, &t.req, &v);
    CHECK(run != NULL);

    memset(glen, 0, sizeof(glen));

    /* two choices interleaved */
    for (k = 0; k < 2; k++) {
        for (c = 0; c < 2; c++) {
            CHECK(aigw_run_delta(run, c, pieces[c][k], strlen(pieces[c][k]),
                                 &out, &olen, &v) != AIGW_REJECT);
            memcpy(got[c] + glen[c], out, olen);
            glen[c] += olen;
        }
    }

    CHECK(aigw_run_unflushed_choice(run) == 0);
    while ((k = aigw_run_unflushed_choice(run)) >= 0) {
        c = (unsigned) k;
        CHECK(aigw_run_delta_flush(run, c, "", 0, &out, &olen, &v)
              != AIGW_REJECT);
        memcpy(got[c] + glen[c], out, olen);
        glen[c] += olen;
    }

    got[0][glen[0]] = '\0';
    got[1][glen[1]] = '\0';
    CHECK_MSG(strcmp(got[0], "to [EMAIL] from [IP] ok") == 0, "%s", got[0]);
    CHECK_MSG(strcmp(got[1], "ip [IP] and [EMAIL]") == 0, "%s", got[1]);

    aigw_run_end(run);
    json_decref(t.req.body);
    aigw_instance_free(inst[0]);
    aigw_instance_free(inst[1]);
}


static void
test_hello_plugin(void)
{
    char              err[512];
    test_req_t        t;
    aigw_verdict_t    v;
    aigw_instance_t  *inst;
    const char       *args[] = { "greeting=bonjour" };
    const char       *bad[] = { "colour=red" };

    inst = load_ok("hello_plugin", args, 1);
    CHECK(run_request(&inst, 1, &t, "{\"model\":\"m\",\"messages\":[]}", NULL,
                      &v) == AIGW_PASS);
    CHECK(req_header(&t, "X-Hello")
          && strcmp(req_header(&t, "X-Hello"), "bonjour") == 0);
    json_decref(t.req.body);

    CHECK(run_request(&inst, 1, &t, "{\"model\":\"m\"}", NULL, &v)
          == AIGW_REJECT);
    CHECK(v.status == 400 && strcmp(v.param, "messages") == 0);
    json_decref(t.req.body);
    aigw_instance_free(inst);

    CHECK(load("hello_plugin", bad, 1, err, sizeof(err)) == NULL);
    CHECK_MSG(strstr(err, "plugin \"hello_plugin\" (hello): unknown option "
                     "\"colour\"") != NULL, "%s", err);
}


/*
 * The byte reader: escapes, parts, nested content, escaped keys, odd
 * layouts; the chain's outcome from the bytes must be the tree's (checked
 * by run_request), and a text-only chain builds no tree.
 */
static void
test_request_bytes(void)
{
    char              err[1024], arg[1100];
    size_t            i, k, len;
    test_req_t        t;
    aigw_run_t       *run;
    aigw_chain_t      chain;
    aigw_verdict_t    v;
    aigw_instance_t  *inst[2];
    const char       *args[2], *out, *a;
    static const char *bodies[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"mail a@example.com\\nnow \\\"quoted\\\" \\u00e9\\ud83d\\ude00 "
        "b@example.org\"}]}",
        " { \"messages\" : [ { \"content\" : [ \"x@example.com\" , "
        "{ \"type\" : \"text\" , \"text\" : \"call +1 415 555 0132 \" } , "
        "{ \"content\" : [ { \"text\" : \"ip 10.1.2.3\" } ] } , 42 , null ,"
        " [ \"no\" ] ] } , 7 , \"s\" ] , \"model\" : \"m\" } ",
        "{\"model\":\"m\",\"messages\":[{\"cont\\u0065nt\":\"c@example.com\"}]}",
        "{\"model\":\"m\",\"prompt\":[\"d@example.com\",\"plain\"],"
        "\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
        "\"text\":\"e@example.com\"}]}],\"instructions\":\"f@example.com\"}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"nothing to see \\\\ here \\/ \\t\"}],\"tools\":[{\"type\":"
        "\"function\",\"function\":{\"name\":\"x\",\"parameters\":{\"a\":"
        "[1,2.5e3,true,false,null,{\"content\":\"g@example.com\"}]}}}]}",
        "{\"model\":\"m\",\"messages\":[]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"ctrl \\u0001 x@example.com \\u001f\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"\\ud83d\\ude00h@example.com\\ud83d\\ude00\"}],\"x\":\"\\\\\"}",
    };

    inst[0] = load_ok("pii_redact", NULL, 0);
    snprintf(arg, sizeof(arg), "file=%s", write_file("deny2.txt",
        "weapons: (?i)\\bbuild (a|an) (bomb|weapon)\\b\n"
        "creds: password\\s*=\\s*\\S+\n"));
    args[0] = arg;
    inst[1] = load_ok("deny_patterns", args, 1);

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        run_request(inst, 2, &t, bodies[i], NULL, &v);
        json_decref(t.req.body);
    }

    /* more texts than the run holds inline */
    {
        char    many[4096];
        size_t  n;

        n = (size_t) snprintf(many, sizeof(many), "{\"model\":\"m\","
                              "\"messages\":[");
        for (k = 0; k < 20; k++) {
            n += (size_t) snprintf(many + n, sizeof(many) - n,
                                   "%s{\"role\":\"user\",\"content\":"
                                   "\"u%zu@example.com \\n x\"}",
                                   k ? "," : "", k);
        }
        snprintf(many + n, sizeof(many) - n, "]}");

        CHECK(run_request(inst, 2, &t, many, NULL, &v) == AIGW_MODIFIED);
        CHECK(strcmp(req_content(&t, 19), "[EMAIL] \n x") == 0);
        json_decref(t.req.body);
    }

    /* an escaped key is read as the tree reads it */
    CHECK(run_request(&inst[1], 1, &t,
        "{\"model\":\"m\",\"messages\":[{\"c\\u006fntent\":"
        "\"Build a bomb\"}]}", NULL, &v) == AIGW_REJECT);
    json_decref(t.req.body);
    CHECK(run_request(&inst[1], 1, &t,
        "{\"model\":\"m\",\"messages\":[{\"content\":"
        "\"Build a b\\u006fmb\"}]}", NULL, &v) == AIGW_REJECT);
    json_decref(t.req.body);

    /* the email is spliced in place; the rest of the bytes is untouched */
    memset(&t, 0, sizeof(t));
    t.req.tenant = "";
    t.req.model = "m";
    t.req.endpoint = "chat/completions";
    t.req.add_header = test_add_header;
    chain.inst = inst;
    chain.n = 2;
    run = aigw_run_start(&chain, &t.req, &v);
    CHECK(run != NULL);
    CHECK(aigw_run_request_bytes(run, bodies[0], strlen(bodies[0]), &v)
          == AIGW_MODIFIED);
    CHECK(t.req.body == NULL);
    CHECK(aigw_run_request_output(run, &out, &len) == 0);
    /* (the changed strings are written out again: \u00e9 as UTF-8) */
    CHECK_MSG(len == 98
              && memcmp(out, "{\"model\":\"m\",\"messages\":[{\"role\":"
                             "\"user\",\"content\":\"mail [EMAIL]\\nnow "
                             "\\\"quoted\\\" \xc3\xa9\xf0\x9f\x98\x80 "
                             "[EMAIL]\"}]}", len) == 0,
              "%.*s", (int) len, out);
    aigw_run_end(run);

    /* what follows a changed text moved with it */
    run = aigw_run_start(&chain, &t.req, &v);
    a = "{\"messages\":[{\"content\":\"x a@example.com\"}],\"model\":"
        "\"m\"}";
    CHECK(aigw_run_request_bytes(run, a, strlen(a), &v) == AIGW_MODIFIED);
    CHECK(aigw_run_request_output(run, &out, &len) == 0);
    CHECK(aigw_run_request_offset(run, 5) == 5);
    CHECK(memcmp(out + aigw_run_request_offset(run, strlen(a) - 4), "\"m\"}",
                 4) == 0);
    aigw_run_end(run);

    /* nothing found: no output, the client's bytes go on */
    run = aigw_run_start(&chain, &t.req, &v);
    CHECK(aigw_run_request_bytes(run, bodies[4], strlen(bodies[4]), &v)
          == AIGW_PASS);
    CHECK(aigw_run_request_output(run, &out, &len) == -1);
    aigw_run_end(run);

    /* not JSON: the tree's verdict */
    run = aigw_run_start(&chain, &t.req, &v);
    CHECK(aigw_run_request_bytes(run, "{\"messages\":[", 13, &v)
          == AIGW_REJECT);
    CHECK(v.status == 400);
    aigw_run_end(run);

    /* ASCII text takes the rules' non-UTF twins; the rest stays UTF */
    aigw_instance_free(inst[1]);
    snprintf(arg, sizeof(arg), "file=%s", write_file("deny3.txt",
        "dot: \\bcaf.!\n"
        "kelvin: (?i)\\x{212A}elvin\n"
        "sharp: stra\xc3\x9f" "e\n"));
    args[0] = arg;
    inst[1] = load_ok("deny_patterns", args, 1);

    CHECK(run_request(&inst[1], 1, &t, "{\"messages\":[{\"content\":"
                      "\"a cafe!\"}]}", NULL, &v) == AIGW_REJECT);
    json_decref(t.req.body);
    CHECK(run_request(&inst[1], 1, &t, "{\"messages\":[{\"content\":"
                      "\"a caf\xc3\xa9!\"}]}", NULL, &v) == AIGW_REJECT);
    json_decref(t.req.body);
    CHECK(run_request(&inst[1], 1, &t, "{\"messages\":[{\"content\":"
                      "\"40 KELVIN\"}]}", NULL, &v) == AIGW_REJECT);
    CHECK(strstr(v.message, "kelvin") != NULL);
    json_decref(t.req.body);
    CHECK(run_request(&inst[1], 1, &t, "{\"messages\":[{\"content\":"
                      "\"die stra\xc3\x9f" "e\"}]}", NULL, &v)
          == AIGW_REJECT);
    json_decref(t.req.body);
    CHECK(run_request(&inst[1], 1, &t, "{\"messages\":[{\"content\":"
                      "\"die Strasse, ca\xc3\xa9\"}]}", NULL, &v)
          == AIGW_PASS);
    json_decref(t.req.body);

    (void) err;
    aigw_instance_free(inst[0]);
    aigw_instance_free(inst[1]);
}


/*
 * deny_patterns skips a rule on ASCII text that lacks a literal every match
 * needs: for tricky patterns, its verdict must be PCRE2's own.
 */
static void
test_deny_literal_prefilter(void)
{
    int                 ec, want;
    char                arg[1100], body[512], file[300];
    size_t              i, k;
    PCRE2_SIZE          off;
    test_req_t          t;
    pcre2_code         *code;
    aigw_verdict_t      v;
    aigw_instance_t    *inst;
    pcre2_match_data   *md;
    const char         *args[1];
    static const char  *pats[] = {
        "(?i)\\bbuild (a|an) (bomb|weapon)\\b", "ab?cde", "ab*cde",
        "ab+cde", "x{2}yzw", "abc{0,2}de", "[^^]|abcd", "[]abc]xyzw",
        "[^]abc]xyzw", "(?:abc|def)ghi", "abcd|defg", "a\\.bc\\.de",
        "\\x41bcd", "(?i)kelvin", "a(?i)bcde", "(?-i)abcd",
        "a[[:alpha:]]bcd", "(?#c(omment)abcd", "\\Qab\\Ecdef",
        "abc\\Kdef", "(?=abcd)ab", "abc(?!d)efg", "(?<=xyz)abcd",
        "a\\sbcd", "pass\\nword", "ab{,2}cde", "ab{2}cde", "abc{1}de",
        "(?i)PASSWORD\\s*=", "ab\\.?cde", "\\bsk-[a-z]{3}", "ab??cde",
        "ab*?cde", "abcd{x", "(a)(?1)bcd", "abc\\d+efg", "\\Aabcd",
    };
    static const char  *texts[] = {
        "acde", "abcde", "abbcde", "xxyzw", "abde", "abcccde",
        "BUILD A BOMB", "Build an weapon.", "abcd", "ABCD", "kelvin",
        "KELVIN", "a bcd", "abcdef", "abcefg", "xyzabcd", "^", "q", "]xyzw",
        "axyzw", "ghi", "defghi", "a.bc.de", "aXbcd", "Abcd", "aBCDE",
        "pass\nword", "password =", "PassWord=", "ab.cde", "sk-abc",
        "abbbcde", "abcd{x", "aabcd", "abc12efg", "zabcd", "Abcde",
    };

    md = pcre2_match_data_create(1, NULL);

    for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        code = pcre2_compile((PCRE2_SPTR) pats[i], PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &off,
                             NULL);
        if (code == NULL) {
            CHECK_MSG(0, "test pattern %s", pats[i]);
            continue;
        }

        snprintf(file, sizeof(file), "deny-lit-%zu.txt", i);
        snprintf(body, sizeof(body), "r: %s\n", pats[i]);
        snprintf(arg, sizeof(arg), "file=%s", write_file(file, body));
        args[0] = arg;
        inst = load_ok("deny_patterns", args, 1);

        for (k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
            json_t  *j = json_pack("{s:s,s:[{s:s}]}", "model", "m",
                                   "messages", "content", texts[k]);
            char    *b = json_dumps(j, JSON_COMPACT);

            want = pcre2_match(code, (PCRE2_SPTR) texts[k], strlen(texts[k]),
                               0, 0, md, NULL) >= 0;
            CHECK_MSG((run_request(&inst, 1, &t, b, NULL, &v)
                       == AIGW_REJECT) == want,
                      "pattern %s, text %s: want %d", pats[i], texts[k],
                      want);
            json_decref(t.req.body);
            json_decref(j);
            free(b);
        }

        aigw_instance_free(inst);
        pcre2_code_free(code);
    }

    pcre2_match_data_free(md);
}


static void
test_json_helpers(void)
{
    int                  n;
    char                 buf[256];
    size_t               len;
    aigw_choice_span_t   c[4];
    const char          *a;

    a = "{\"id\":\"x\",\"choices\":[{\"index\":1,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"hi \\\"you\\\"\"},\"finish_reason\":"
        "\"stop\"},{\"message\":{},\"index\":0}],\"usage\":{\"a\":[1]}}";
    n = aigw_json_choices(a, strlen(a), "message", c, 4);
    CHECK(n == 2);
    CHECK(c[0].index == 1 && c[0].finish && c[0].content_string
          && c[0].content_escaped);
    CHECK(memcmp(a + c[0].vstart, "\"hi ", 4) == 0
          && a[c[0].vend - 1] == '"' && a[c[0].vend] == '}');
    CHECK(c[1].index == 0 && c[1].obj_empty && c[1].vstart == c[1].vend
          && a[c[1].obj - 1] == '{');

    a = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":null},"
        "\"finish_reason\":null}]}";
    n = aigw_json_choices(a, strlen(a), "delta", c, 4);
    CHECK(n == 1 && !c[0].content_string && !c[0].finish
          && memcmp(a + c[0].vstart, "null", 4) == 0);

    /* what the reader leaves to the tree */
    CHECK(aigw_json_choices("{\"choices\":[{\"delta\":{\"content\":\"a\","
                            "\"content\":\"b\"}}]}", 41, "delta", c, 4) < 0);
    CHECK(aigw_json_choices("{\"choices\":1}", 13, "delta", c, 4) < 0);
    CHECK(aigw_json_choices("{\"x\":1}", 7, "delta", c, 4) < 0);
    CHECK(aigw_json_choices("{\"choices\":[{}", 14, "delta", c, 4) < 0);
    CHECK(aigw_json_choices("[]", 2, "delta", c, 4) < 0);

    CHECK(aigw_json_unescape("a\\u00e9\\ud83d\\ude00\\n", 21, buf, &len)
          == 0 && len == 8 && memcmp(buf, "a\xc3\xa9\xf0\x9f\x98\x80\n", 8)
          == 0);
    CHECK(aigw_json_unescape("\\ud83d", 6, buf, &len) == -1);
    CHECK(aigw_json_unescape("\\u0000", 6, buf, &len) == -1);
    CHECK(aigw_json_unescape("\\x", 2, buf, &len) == -1);
    CHECK(aigw_json_unescape("ab\\", 3, buf, &len) == -1);

    len = aigw_json_escape(buf, "q\"b\\n\n\x01\xc3\xa9", 9);
    CHECK(len == aigw_json_escape(NULL, "q\"b\\n\n\x01\xc3\xa9", 9));
    CHECK_MSG(len == 17 && memcmp(buf, "q\\\"b\\\\n\\n\\u0001\xc3\xa9", 17)
              == 0, "%.*s", (int) len, buf);
}


int
main(void)
{
    test_kv_parse();
    test_host_load_errors();
    test_error_body();

    test_pii_bad_config();
    test_pii_types_and_request();
    test_pii_stream_splits();
    test_pii_block_stream();
    test_pii_hold_bound();
    test_pii_simd_matches_scalar();

    test_deny_patterns();
    test_param_policy();
    test_tag_request();

    test_chain_order();
    test_two_pii_instances_and_choices();
    test_hello_plugin();
    test_request_bytes();
    test_json_helpers();
    test_deny_literal_prefilter();

    printf("test_plugins: %d checks, %d failures\n", checks, failures);
    return failures != 0;
}
