
/*
 * Unit tests of module/ai_json.c: member spans, escaping, validation and
 * error bodies.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_json.h"
#include "ai_scan.h"


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


static void
test_utf8_hex(void)
{
    unsigned   v;
    size_t     i;
    static const struct { const char *s; size_t n; } u[] = {
        { "\xc3\xa9", 2 }, { "\xe2\x82\xac", 3 }, { "\xf0\x9f\x98\x80", 4 },
        { "\xf4\x8f\xbf\xbf", 4 },              /* U+10FFFF */
        { "\xf4\x90\x80\x80", 0 },              /* past U+10FFFF */
        { "\xc0\xaf", 0 }, { "\xe0\x80\xaf", 0 }, /* overlong */
        { "\xed\xa0\x80", 0 },                  /* a surrogate */
        { "\x80", 0 }, { "\xc3", 0 }, { "\xe2\x82", 0 }, { "\xc3\x28", 0 },
    };

    for (i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
        CHECK(ai_json_utf8_len((const unsigned char *) u[i].s,
                               (const unsigned char *) u[i].s
                               + strlen(u[i].s)) == u[i].n);
    }

    CHECK(ai_json_hex4((const unsigned char *) "00e9", &v) == 0 && v == 0xe9);
    CHECK(ai_json_hex4((const unsigned char *) "D83D", &v) == 0 && v == 0xd83d);
    CHECK(ai_json_hex4((const unsigned char *) "12g4", &v) == -1);

#define AI_T_UNI(s)  ai_json_unicode((const unsigned char *) s,             \
                         (const unsigned char *) s + strlen(s), &v)
    CHECK(AI_T_UNI("\\u00e9x") == 6 && v == 0xe9);
    CHECK(AI_T_UNI("\\ud83d\\ude00") == 12 && v == 0x1f600);
    CHECK(AI_T_UNI("\\u0000") == 0);
    CHECK(AI_T_UNI("\\ude00") == 0);                 /* a lone low half */
    CHECK(AI_T_UNI("\\ud83d") == 0);                 /* a lone high half */
    CHECK(AI_T_UNI("\\ud83d\\u0041") == 0);
    CHECK(AI_T_UNI("\\u00") == 0);
}


static void
test_member_span(void)
{
    size_t       s, e;
    const char  *doc;

    doc = "{\"model\":\"gpt-4o\",\"messages\":[]}";
    CHECK(ai_json_member_span((const unsigned char *) doc, strlen(doc),
                              "model", &s, &e) == 1);
    CHECK(e - s == 8 && memcmp(doc + s, "\"gpt-4o\"", 8) == 0);

    doc = " {\n \"messages\" : [{\"model\":\"inner\"}, \"}\"],\n"
          " \"modelx\": 1, \"model\" :\t\"a\\\"b\" , \"z\":{}}";
    CHECK(ai_json_member_span((const unsigned char *) doc, strlen(doc),
                              "model", &s, &e) == 1);
    CHECK(e - s == 6 && memcmp(doc + s, "\"a\\\"b\"", 6) == 0);

    doc = "{\"a\":{\"model\":1},\"b\":[\"model\"]}";
    CHECK(ai_json_member_span((const unsigned char *) doc, strlen(doc),
                              "model", &s, &e) == 0);

    doc = "{\"model\":123.5e3}";
    CHECK(ai_json_member_span((const unsigned char *) doc, strlen(doc),
                              "model", &s, &e) == 1);
    CHECK(memcmp(doc + s, "123.5e3", e - s) == 0 && e - s == 7);

    doc = "{\"mod\\u0065l\":\"x\"}";
    CHECK(ai_json_member_span((const unsigned char *) doc, strlen(doc),
                              "model", &s, &e) == 0);

    doc = "[1]";
    CHECK(ai_json_member_span((const unsigned char *) doc, strlen(doc),
                              "model", &s, &e) == -1);

    doc = "{\"model\":\"unterminated";
    CHECK(ai_json_member_span((const unsigned char *) doc, strlen(doc),
                              "model", &s, &e) == -1);
}


static void
test_escape(void)
{
    unsigned char        out[64], *p;
    const unsigned char  in[] = "a\"b\\c\n\x01\x7f";

    p = ai_json_escape(out, in, sizeof(in) - 1);
    *p = '\0';
    CHECK(strcmp((char *) out, "a\\\"b\\\\c\\n\\u0001\\u007f") == 0);
    CHECK(ai_json_escape_len(in, sizeof(in) - 1) == (size_t) (p - out));
}


static void
test_error_json(void)
{
    char     buf[512];
    size_t   n;
    json_t  *j;

    n = ai_error_json((unsigned char *) buf, sizeof(buf), "bad \"x\"",
                      "invalid_request_error", "messages[0].role", NULL);
    CHECK(n > 0);
    buf[n] = '\0';
    j = json_loads(buf, 0, NULL);
    CHECK(j != NULL);
    CHECK(strcmp(json_string_value(json_object_get(
              json_object_get(j, "error"), "message")), "bad \"x\"") == 0);
    CHECK(json_is_null(json_object_get(json_object_get(j, "error"),
                                       "code")));
    json_decref(j);

    CHECK(ai_error_json((unsigned char *) buf, 10, "m", "t", NULL, NULL)
          == 0);
}


static int
validate(const char *doc, int ep, ai_json_error_t *err)
{
    int      rc;
    json_t  *j;

    j = json_loads(doc, 0, NULL);
    if (j == NULL) {
        return -2;
    }

    rc = ai_request_validate(j, ep, err);
    json_decref(j);

    return rc;
}


static void
test_validate(void)
{
    ai_json_error_t  err;

    CHECK(validate("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                   "\"content\":\"x\"}]}", AI_EP_CHAT, &err) == 0);

    CHECK(validate("{\"messages\":[]}", AI_EP_CHAT, &err) == -1);
    CHECK(strcmp(err.param, "model") == 0);

    CHECK(validate("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"},"
                   "{\"role\":1}]}", AI_EP_CHAT, &err) == -1);
    CHECK(strcmp(err.param, "messages[1].role") == 0);
    CHECK(strcmp(err.code, "invalid_type") == 0);

    CHECK(validate("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                   "\"content\":5}]}", AI_EP_CHAT, &err) == -1);
    CHECK(strcmp(err.param, "messages[0].content") == 0);

    CHECK(validate("{\"model\":\"m\",\"input\":[]}", AI_EP_EMBEDDINGS,
                   &err) == -1);
    CHECK(strcmp(err.code, "empty_array") == 0);

    CHECK(validate("{\"model\":\"m\",\"prompt\":\"x\"}", AI_EP_COMPLETIONS,
                   &err) == 0);
    CHECK(validate("{\"model\":\"m\",\"prompt\":{}}", AI_EP_COMPLETIONS,
                   &err) == -1);

    CHECK(validate("{\"model\":\"\",\"messages\":[]}", AI_EP_CHAT, &err)
          == -1);
    CHECK(strcmp(err.code, "invalid_value") == 0);
}


static void
test_scan_numbers(void)
{
    char         err[128];
    ai_scan_t    sc;
    const char  *ok[] = {
        "{\"model\":\"m\",\"seed\":9223372036854775807}",
        "{\"model\":\"m\",\"seed\":-9223372036854775808}",
        "{\"model\":\"m\",\"temperature\":1e300}",
    };
    const char  *bad[] = {
        "{\"model\":\"m\",\"seed\":9223372036854775808}",
        "{\"model\":\"m\",\"seed\":-99999999999999999999}",
        "{\"model\":\"m\",\"temperature\":1e400}",
        "{\"model\":\"m\",\"temperature\":-1e400}",
        "{\"model\":\"m\",\"user\":\"a\\u0000b\"}",
    };
    size_t       i;

    {
        const char  *d1 = "{\"model\":\"m\",\"temperature\":0.0,\"n\":1}";
        const char  *d2 = "{\"model\":\"m\",\"temperature\":0.2,\"seed\":3}";
        const char  *d3 = "{\"model\":\"m\",\"temperature\":-0e5,\"n\":2}";

        CHECK(ai_scan((const unsigned char *) d1, strlen(d1), &sc, err,
                      sizeof(err)) == 0);
        CHECK(sc.temperature_zero && !sc.has_seed && !sc.n_not_one);
        CHECK(ai_scan((const unsigned char *) d2, strlen(d2), &sc, err,
                      sizeof(err)) == 0);
        CHECK(!sc.temperature_zero && sc.has_seed);
        CHECK(ai_scan((const unsigned char *) d3, strlen(d3), &sc, err,
                      sizeof(err)) == 0);
        CHECK(sc.temperature_zero && sc.n_not_one);
    }

    /* accepted exactly when jansson accepts: a tree can always follow */

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CHECK(ai_scan((const unsigned char *) ok[i], strlen(ok[i]), &sc, err,
                      sizeof(err)) == 0);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(ai_scan((const unsigned char *) bad[i], strlen(bad[i]), &sc,
                      err, sizeof(err)) == -1);
    }
}


int
main(void)
{
    test_scan_numbers();
    test_member_span();
    test_utf8_hex();
    test_escape();
    test_error_json();
    test_validate();

    printf("test_ai_json: %d checks, %d failures\n", checks, failures);

    return failures ? 1 : 0;
}
