
/*
 * Unit tests of module/ai_tenants.c: the tenants file, its validation,
 * key authentication and the lookup table.
 */

#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ai_tenants.h"


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

#define DATA "tests/unit/data/"

#define KEY_CI       "aigw-teamAciBotKey0000000000000000000000000"
#define KEY_OLD      "aigw-teamAoldKey000000000000000000000000000"
#define KEY_LEAKED   "aigw-teamArevokedKey0000000000000000000000"
#define KEY_B        "aigw-teamBkey00000000000000000000000000000"

#define HEX_A  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


static time_t
ts_at(const char *s)
{
    time_t  t = 0;

    if (ai_time_parse(s, &t) != 0) {
        fprintf(stderr, "bad test time %s\n", s);
        exit(2);
    }

    return t;
}


static ai_key_status_e
auth(const ai_tenants_t *ts, const char *key, const char *now,
    const ai_key_t **k)
{
    return ai_tenants_auth(ts, (const unsigned char *) key, strlen(key),
                           ts_at(now), k);
}


static void
test_valid_file(void)
{
    char                err[512], prefix[13], hex[65];
    unsigned char       d[AI_DIGEST_LEN];
    const ai_key_t     *k;
    const ai_tenant_t  *a, *b;
    const ai_limits_t  *l;
    ai_tenants_t       *ts;

    ts = ai_tenants_load(DATA "tenants_valid.json", err, sizeof(err));
    CHECK(ts != NULL);
    if (ts == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }

    CHECK(ai_tenants_count(ts) == 3);
    CHECK(ai_tenants_keys_count(ts) == 4);

    a = ai_tenants_at(ts, 0);
    CHECK(strcmp(ai_tenant_name(a), "team-a") == 0);
    CHECK(ai_tenants_find(ts, "team-a", 6) == a);
    CHECK(ai_tenants_find(ts, "team-", 5) == NULL);
    CHECK(ai_tenants_find(ts, "team-c", 6) == NULL);
    CHECK(ai_tenant_keys_count(a) == 3);
    CHECK(ai_tenant_models_count(a) == 3);

    l = ai_tenant_limits(a);
    CHECK(l->requests_per_minute == 60);
    CHECK(l->tokens_per_minute == 100000);
    CHECK(l->concurrent == 10);
    CHECK(l->tokens_per_day == 1000000);
    CHECK(l->tokens_per_month == 20000000);
    CHECK(l->budget_per_day_micros == 5000000);
    CHECK(l->budget_per_month_micros == 100250000);

    /* the model allow-list, "claude-*" a prefix pattern */
    CHECK(ai_tenant_model_allowed(a, "gpt-4o", 6));
    CHECK(ai_tenant_model_allowed(a, "gpt-4o-mini", 11));
    CHECK(!ai_tenant_model_allowed(a, "gpt-4", 5));
    CHECK(!ai_tenant_model_allowed(a, "gpt-4o-", 7));
    CHECK(!ai_tenant_model_allowed(a, "gpt-4o-minix", 12));
    CHECK(ai_tenant_model_allowed(a, "claude-sonnet-4", 15));
    CHECK(ai_tenant_model_allowed(a, "claude-", 7));
    CHECK(!ai_tenant_model_allowed(a, "claude", 6));
    CHECK(!ai_tenant_model_allowed(a, "", 0));
    /* not NUL-terminated: only len bytes count */
    CHECK(ai_tenant_model_allowed(a, "gpt-4oXYZ", 6));

    /* per-model limits */
    l = ai_tenant_model_limits(a, "gpt-4o", 6);
    CHECK(l != NULL && l->requests_per_minute == 10
          && l->tokens_per_minute == 20000 && l->concurrent == AI_LIMIT_NONE);
    l = ai_tenant_model_limits(a, "claude-sonnet-4", 15);
    CHECK(l != NULL && l->budget_per_day_micros == 1000000
          && l->requests_per_minute == AI_LIMIT_NONE);
    CHECK(ai_tenant_model_limits(a, "gpt-4o-mini", 11) == NULL);
    CHECK(ai_tenant_model_limits(a, "gpt-4", 5) == NULL);
    CHECK(ai_tenant_model_limits_count(a) == 2);
    CHECK(strcmp(ai_tenant_model_limits_at(a, 0, &l), "gpt-4o") == 0);

    b = ai_tenants_find(ts, "team-b", 6);
    CHECK(b != NULL && ai_tenant_models_count(b) == 0);
    CHECK(b != NULL && ai_tenant_model_allowed(b, "anything", 8));
    CHECK(b != NULL && ai_tenant_limits(b)->requests_per_minute
                       == AI_LIMIT_NONE);
    CHECK(ai_tenant_keys_count(ai_tenants_find(ts, "no-keys-yet", 11)) == 0);

    /* keys */
    CHECK(auth(ts, KEY_CI, "2026-12-01T00:00:00Z", &k) == AI_KEY_OK);
    CHECK(k != NULL && strcmp(ai_key_id(k), "ci-bot") == 0);
    CHECK(k != NULL && ai_key_tenant(k) == a);
    CHECK(k != NULL && ai_key_limits(k)->requests_per_minute == 30);
    CHECK(k != NULL && ai_key_limits(k)->tokens_per_minute == AI_LIMIT_NONE);
    CHECK(k != NULL && ai_key_created(k) == ts_at("2026-11-01T00:00:00Z"));
    CHECK(k != NULL && ai_key_expires(k) == 1798761600);
    CHECK(k != NULL && !ai_key_revoked(k));

    /* expiry is exclusive: valid until the second before "expires" */
    CHECK(auth(ts, KEY_CI, "2026-12-31T23:59:59Z", &k) == AI_KEY_OK);
    CHECK(auth(ts, KEY_CI, "2027-01-01T00:00:00Z", &k) == AI_KEY_EXPIRED);
    CHECK(k != NULL && strcmp(ai_key_id(k), "ci-bot") == 0);

    /* an upper-case digest in the file, and a +01:00 offset */
    CHECK(auth(ts, KEY_OLD, "2025-06-01T00:00:00Z", &k) == AI_KEY_OK);
    CHECK(k != NULL && ai_key_created(k) == ts_at("2024-12-31T23:00:00Z"));
    CHECK(auth(ts, KEY_OLD, "2026-06-01T00:00:00Z", &k) == AI_KEY_EXPIRED);

    CHECK(auth(ts, KEY_LEAKED, "2026-06-01T00:00:00Z", &k)
          == AI_KEY_REVOKED);
    CHECK(k != NULL && strcmp(ai_key_id(k), "leaked") == 0);

    CHECK(auth(ts, KEY_B, "2099-06-01T00:00:00Z", &k) == AI_KEY_OK);
    CHECK(k != NULL && ai_key_expires(k) == 0 && ai_key_tenant(k) == b);

    /* unknown keys: near misses, empty, too long, the digest itself */
    CHECK(auth(ts, "aigw-teamAciBotKey000000000000000000000000",
               "2026-12-01T00:00:00Z", &k) == AI_KEY_UNKNOWN);
    CHECK(k == NULL);
    CHECK(auth(ts, KEY_CI "0", "2026-12-01T00:00:00Z", &k)
          == AI_KEY_UNKNOWN);
    CHECK(auth(ts, "", "2026-12-01T00:00:00Z", &k) == AI_KEY_UNKNOWN);
    CHECK(auth(ts, "f7117972dfe4b5e446b2cb9a55691c43e0e518c820944044935cbe0"
               "88ca1d162", "2026-12-01T00:00:00Z", &k) == AI_KEY_UNKNOWN);
    CHECK(ai_tenants_auth(ts, NULL, 0, 0, &k) == AI_KEY_UNKNOWN);
    CHECK(ai_tenants_auth(NULL, (const unsigned char *) KEY_CI,
                          strlen(KEY_CI), 0, &k) == AI_KEY_UNKNOWN);
    CHECK(strcmp(ai_key_status_text(AI_KEY_EXPIRED), "expired") == 0);

    /* by digest, as a Redis-backed path would call it */
    ai_sha256((const unsigned char *) KEY_CI, strlen(KEY_CI), d);
    CHECK(ai_tenants_auth_digest(ts, d, ts_at("2026-12-01T00:00:00Z"), &k)
          == AI_KEY_OK);

    /* the digest prefix: 12 hex digits of the digest, nothing of the key */
    auth(ts, KEY_CI, "2026-12-01T00:00:00Z", &k);
    ai_key_digest_prefix(k, prefix);
    ai_hex(d, AI_DIGEST_LEN, hex);
    CHECK(strlen(prefix) == 12);
    CHECK(strncmp(prefix, hex, 12) == 0);
    CHECK(strcmp(prefix, "f7117972dfe4") == 0);
    CHECK(strstr(KEY_CI, prefix) == NULL);
    CHECK(strncmp(prefix, KEY_CI, 12) != 0);
    CHECK(memcmp(ai_key_digest(k), d, AI_DIGEST_LEN) == 0);

    ai_tenants_free(ts);
}


/* each case: a file and the words its error must contain */

typedef struct {
    const char  *json;
    const char  *expect;
} bad_case_t;

#define KEYS(x)  "{\"tenants\":{\"t1\":{\"keys\":[" x "]}}}"
#define KEY1(x)  KEYS("{\"id\":\"k1\",\"sha256\":\"" HEX_A "\"" x "}")
#define TEN(x)   "{\"tenants\":{\"t1\":{" x "}}}"

static const bad_case_t  bad_cases[] = {
    { "", "invalid JSON" },
    { "[]", "must be a JSON object" },
    { "{}", "\"tenants\": missing" },
    { "{\"tenants\":[]}", "\"tenants\": must be an object" },
    { "{\"tenants\":{},\"extra\":1}", "top level: unknown field \"extra\"" },
    { "{\"version\":2,\"tenants\":{}}", "\"version\": must be 1" },
    { "{\"tenants\":{\"a\":{},\"a\":{}}}", "duplicate" },
    { "{\"tenants\":{\"a b\":{}}}", "tenant \"a b\": invalid name" },
    { "{\"tenants\":{\"a:b\":{}}}", "tenant \"a:b\": invalid name" },
    { "{\"tenants\":{\"\":{}}}", "invalid name" },
    { "{\"tenants\":{\"t1\":[]}}", "tenant \"t1\": must be an object" },
    { TEN("\"keyz\":[]"), "tenant \"t1\": unknown field \"keyz\"" },
    { TEN("\"description\":1"), "tenant \"t1\": description" },
    { TEN("\"models\":\"gpt-4o\""), "tenant \"t1\": models: must be an array" },
    { TEN("\"models\":[]"), "tenant \"t1\": models: empty list" },
    { TEN("\"models\":[1]"), "tenant \"t1\": models[0]: must be a string" },
    { TEN("\"models\":[\"a b\"]"), "models[0]: invalid model name" },
    { TEN("\"models\":[\"a*b\"]"), "models[0]: invalid model name" },
    { TEN("\"models\":[\"a\",\"a\"]"), "models[1]: duplicate model \"a\"" },
    { TEN("\"limits\":[]"), "tenant \"t1\": limits: must be an object" },
    { TEN("\"limits\":{\"rpm\":1}"),
      "tenant \"t1\": limits: unknown field \"rpm\"" },
    { TEN("\"limits\":{\"requests_per_minute\":-1}"),
      "tenant \"t1\": limits.requests_per_minute: must not be negative" },
    { TEN("\"limits\":{\"tokens_per_minute\":1.5}"),
      "tenant \"t1\": limits.tokens_per_minute: must be an integer" },
    { TEN("\"limits\":{\"concurrent\":\"10\"}"),
      "limits.concurrent: must be an integer, not a string" },
    { TEN("\"limits\":{\"tokens_per_day\":null}"),
      "limits.tokens_per_day: must be an integer, not null" },
    { TEN("\"limits\":{\"tokens_per_month\":10000000000000000}"),
      "limits.tokens_per_month: too large" },
    { TEN("\"limits\":{\"budget_per_day\":-0.01}"),
      "limits.budget_per_day: must not be negative" },
    { TEN("\"limits\":{\"budget_per_month\":\"5\"}"),
      "limits.budget_per_month: must be a number" },
    { TEN("\"model_limits\":[]"), "tenant \"t1\": model_limits: must be an" },
    { TEN("\"model_limits\":{\"m\":{\"rpm\":1}}"),
      "tenant \"t1\": model_limits.m: unknown field \"rpm\"" },
    { TEN("\"model_limits\":{\"m\":{\"requests_per_minute\":-5}}"),
      "tenant \"t1\": model_limits.m.requests_per_minute: must not be" },
    { TEN("\"model_limits\":{\"m\":3}"), "model_limits.m: must be an object" },
    { TEN("\"model_limits\":{\"m*\":{}}"), "invalid model name \"m*\"" },
    { TEN("\"models\":[\"a\"],\"model_limits\":{\"b\":{}}"),
      "model \"b\" is not in the tenant's \"models\"" },
    { TEN("\"keys\":{}"), "tenant \"t1\": keys: must be an array" },
    { KEYS("1"), "tenant \"t1\": keys[0]: must be an object" },
    { KEYS("{\"sha256\":\"" HEX_A "\"}"), "tenant \"t1\": keys[0]: id: missing" },
    { KEYS("{\"id\":7}"), "keys[0]: id: must be a string" },
    { KEYS("{\"id\":\"a/b\"}"), "keys[0]: id: must be a string" },
    { KEYS("{\"id\":\"k1\"}"), "tenant \"t1\" key \"k1\": sha256: missing" },
    { KEYS("{\"id\":\"k1\",\"sha256\":\"abc\"}"),
      "tenant \"t1\" key \"k1\": sha256: must be a string of 64" },
    { KEYS("{\"id\":\"k1\",\"sha256\":\"" "g" HEX_A "\"}"), "sha256: must be" },
    { KEYS("{\"id\":\"k1\",\"sha256\":\"" "g" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}"),
      "tenant \"t1\" key \"k1\": sha256: must be" },
    { KEYS("{\"id\":\"k1\",\"sha256\":1}"), "key \"k1\": sha256: must be" },
    { KEY1(",\"key\":\"secret\""), "key \"k1\": unknown field \"key\"" },
    { KEY1(",\"revoked\":\"no\""), "key \"k1\": revoked: must be true or" },
    { KEY1(",\"revoked\":0"), "key \"k1\": revoked: must be true or false" },
    { KEY1(",\"expires\":\"2027-01-01\""), "key \"k1\": expires: must be an" },
    { KEY1(",\"expires\":1798761600"), "key \"k1\": expires: must be an" },
    { KEY1(",\"expires\":\"2027-02-29T00:00:00Z\""), "key \"k1\": expires" },
    { KEY1(",\"expires\":\"2027-13-01T00:00:00Z\""), "key \"k1\": expires" },
    { KEY1(",\"expires\":\"2027-01-01T24:00:00Z\""), "key \"k1\": expires" },
    { KEY1(",\"expires\":\"2027-01-01T00:00:00\""), "key \"k1\": expires" },
    { KEY1(",\"expires\":\"2027-01-01T00:00:00Zjunk\""), "expires" },
    { KEY1(",\"created\":\"yesterday\""), "key \"k1\": created: must be" },
    { KEY1(",\"created\":\"2027-01-01T00:00:00Z\","
           "\"expires\":\"2026-01-01T00:00:00Z\""),
      "key \"k1\": expires: not after \"created\"" },
    { KEY1(",\"limits\":{\"requests_per_minute\":-1}"),
      "tenant \"t1\" key \"k1\": limits.requests_per_minute: must not be" },
    { KEY1(",\"limits\":{\"budget\":1}"),
      "tenant \"t1\" key \"k1\": limits: unknown field \"budget\"" },
    { KEY1(",\"description\":false"), "key \"k1\": description" },
    { KEYS("{\"id\":\"k1\",\"sha256\":\"" HEX_A "\"},"
           "{\"id\":\"k1\",\"sha256\":\"" HEX_B "\"}"),
      "tenant \"t1\" key \"k1\": id: duplicate key id" },
    { KEYS("{\"id\":\"k1\",\"sha256\":\"" HEX_A "\"},"
           "{\"id\":\"k2\",\"sha256\":\"" HEX_A "\"}"),
      "tenant \"t1\" key \"k2\": sha256: the same digest as tenant \"t1\" "
      "key \"k1\"" },
    { "{\"tenants\":{\"t1\":{\"keys\":[{\"id\":\"k1\",\"sha256\":\"" HEX_A
      "\"}]},\"t2\":{\"keys\":[{\"id\":\"k9\",\"sha256\":\"" HEX_A "\"}]}}}",
      "tenant \"t2\" key \"k9\": sha256: the same digest as tenant \"t1\"" },
    { "{\"tenants\":{\"t1\":{\"keys\":[{\"id\":\"k1\",\"sha256\":\"" HEX_A
      "\",\"id\":\"k2\"}]}}}", "duplicate" },
    { NULL, NULL }
};


static void
test_validation_errors(void)
{
    char                 err[512];
    ai_tenants_t        *ts;
    const bad_case_t    *c;

    for (c = bad_cases; c->json != NULL; c++) {
        err[0] = '\0';
        ts = ai_tenants_parse(c->json, strlen(c->json), err, sizeof(err));
        checks++;

        if (ts != NULL) {
            failures++;
            fprintf(stderr, "%s:%d: accepted: %s\n", __FILE__, __LINE__,
                    c->json);
            ai_tenants_free(ts);
            continue;
        }

        if (strstr(err, c->expect) == NULL) {
            failures++;
            fprintf(stderr, "%s:%d: for %s\n  error:  %s\n  wanted: %s\n",
                    __FILE__, __LINE__, c->json, err, c->expect);
        }
    }

    /* a few that must be accepted */
    ts = ai_tenants_parse("{\"tenants\":{}}", 14, err, sizeof(err));
    CHECK(ts != NULL && ai_tenants_count(ts) == 0);
    CHECK(ts != NULL && auth(ts, "x", "2026-01-01T00:00:00Z", NULL)
                        == AI_KEY_UNKNOWN);
    ai_tenants_free(ts);

    ts = ai_tenants_parse(KEY1(",\"limits\":{\"requests_per_minute\":0,"
                               "\"budget_per_day\":0}"),
                          strlen(KEY1(",\"limits\":{\"requests_per_minute\""
                                      ":0,\"budget_per_day\":0}")),
                          err, sizeof(err));
    CHECK(ts != NULL);
    if (ts != NULL) {
        const ai_limits_t  *l = ai_key_limits(ai_tenants_key_at(ts, 0));

        CHECK(l->requests_per_minute == 0 && l->budget_per_day_micros == 0);
        ai_tenants_free(ts);
    }

    /* errors never echo a digest */
    ts = ai_tenants_parse(KEYS("{\"id\":\"k1\",\"sha256\":\"" HEX_A "\"},"
                               "{\"id\":\"k2\",\"sha256\":\"" HEX_A "\"}"),
                          strlen(KEYS("{\"id\":\"k1\",\"sha256\":\"" HEX_A
                                      "\"},{\"id\":\"k2\",\"sha256\":\""
                                      HEX_A "\"}")), err, sizeof(err));
    CHECK(ts == NULL && strstr(err, "aaaaaaaa") == NULL);

    /* NULL err buffers are allowed */
    CHECK(ai_tenants_parse("{", 1, NULL, 0) == NULL);

    ts = ai_tenants_load(DATA "no-such-file.json", err, sizeof(err));
    CHECK(ts == NULL && strstr(err, "no-such-file.json") != NULL);
}


static char *
read_file(const char *path, size_t *len)
{
    FILE  *f;
    char  *buf;
    long   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(n + 1);

    if (buf == NULL || fread(buf, 1, n, f) != (size_t) n) {
        free(buf);
        fclose(f);
        return NULL;
    }

    buf[n] = '\0';
    fclose(f);
    *len = n;

    return buf;
}


static void
test_corrupt(void)
{
    char           err[512], *buf, *copy;
    size_t         len, i, ok, end;
    unsigned int   seed;
    ai_tenants_t  *ts;

    buf = read_file(DATA "tenants_valid.json", &len);
    CHECK(buf != NULL);
    if (buf == NULL) {
        return;
    }

    /* every truncation before the closing brace is an error, not a crash */
    end = strrchr(buf, '}') - buf;
    ok = 0;
    for (i = 0; i < end; i++) {
        ts = ai_tenants_parse(buf, i, err, sizeof(err));
        if (ts == NULL && err[0] != '\0') {
            ok++;

        } else {
            fprintf(stderr, "  truncated at %zu: %s\n", i, err);
        }
        ai_tenants_free(ts);
    }
    CHECK(ok == end);

    ts = ai_tenants_load(DATA "tenants_truncated.json", err, sizeof(err));
    CHECK(ts == NULL && strstr(err, "tenants_truncated.json: invalid JSON")
                        != NULL);

    /* random byte damage: either an error or a valid set */
    copy = malloc(len);
    seed = 12345;

    for (i = 0; copy != NULL && i < 20000; i++) {
        memcpy(copy, buf, len);
        seed = seed * 1103515245 + 12345;
        copy[(seed >> 8) % len] = (char) (seed >> 20);
        seed = seed * 1103515245 + 12345;
        copy[(seed >> 8) % len] = (char) (seed >> 20);

        ts = ai_tenants_parse(copy, len, err, sizeof(err));
        if (ts != NULL) {
            auth(ts, KEY_CI, "2026-12-01T00:00:00Z", NULL);
        }
        ai_tenants_free(ts);
    }

    /* embedded NUL */
    if (copy != NULL) {
        memcpy(copy, buf, len);
        copy[len / 2] = '\0';
        ts = ai_tenants_parse(copy, len, err, sizeof(err));
        CHECK(ts == NULL);
    }

    free(copy);
    free(buf);
}


static void
test_add_key(void)
{
    char                err[512];
    const char         *json;
    const ai_key_t     *k, *first;
    ai_limits_t         lim;
    ai_tenants_t       *ts;

    json = "{\"tenants\":{\"t1\":{\"keys\":[{\"id\":\"k1\",\"sha256\":\""
           HEX_A "\"}]}}}";
    ts = ai_tenants_parse(json, strlen(json), err, sizeof(err));
    CHECK(ts != NULL);
    if (ts == NULL) {
        return;
    }

    first = ai_tenants_key_at(ts, 0);

    ai_limits_init(&lim);
    lim.tokens_per_day = 500;

    CHECK(ai_tenants_add_key(ts, "t1", "k2", HEX_B, 0, 0, 0, &lim, 0, err,
                             sizeof(err)) == 0);
    CHECK(ai_tenants_add_key(ts, "t1", "k3", HEX_A, 0, 0, 0, NULL, 0, err,
                             sizeof(err)) == -1
          && strstr(err, "same digest as tenant \"t1\" key \"k1\"") != NULL);
    CHECK(ai_tenants_add_key(ts, "t1", "k2",
                             "cccccccccccccccccccccccccccccccc"
                             "cccccccccccccccccccccccccccccccc", 0, 0, 0,
                             NULL, 0, err, sizeof(err)) == -1
          && strstr(err, "duplicate key id") != NULL);
    CHECK(ai_tenants_add_key(ts, "t9", "k1",
                             "dddddddddddddddddddddddddddddddd"
                             "dddddddddddddddddddddddddddddddd", 0, 0, 0,
                             NULL, 0, err, sizeof(err)) == -1
          && strstr(err, "tenant \"t9\" key \"k1\": no such tenant") != NULL);
    CHECK(ai_tenants_add_key(ts, "t9", "k1", "xyz", 0, 0, 0, NULL, 1, err,
                             sizeof(err)) == -1
          && strstr(err, "sha256") != NULL);
    CHECK(ai_tenants_add_key(ts, "t9", "k1",
                             "dddddddddddddddddddddddddddddddd"
                             "dddddddddddddddddddddddddddddddd", 0, 100, 1,
                             NULL, 1, err, sizeof(err)) == 0);
    CHECK(ai_tenants_add_key(ts, "bad name", "k1", HEX_A, 0, 0, 0, NULL, 1,
                             err, sizeof(err)) == -1);
    lim.concurrent = -7;
    CHECK(ai_tenants_add_key(ts, "t1", "k7",
                             "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
                             "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", 0, 0, 0,
                             &lim, 0, err, sizeof(err)) == -1);

    CHECK(ai_tenants_count(ts) == 2 && ai_tenants_keys_count(ts) == 3);
    CHECK(ai_tenants_key_at(ts, 0) == first);

    k = ai_tenants_key_at(ts, 1);
    CHECK(strcmp(ai_key_id(k), "k2") == 0
          && ai_key_limits(k)->tokens_per_day == 500);

    k = ai_tenants_key_at(ts, 2);
    CHECK(ai_key_revoked(k) && ai_key_expires(k) == 100
          && strcmp(ai_tenant_name(ai_key_tenant(k)), "t9") == 0
          && ai_tenant_limits(ai_key_tenant(k))->concurrent
             == AI_LIMIT_NONE);

    ai_tenants_free(ts);
}


static void
test_helpers(void)
{
    char         buf[21], err[256];
    time_t       t;
    const char  *lj;
    ai_limits_t  l;

    CHECK(ai_time_parse("1970-01-01T00:00:01Z", &t) == 0 && t == 1);
    CHECK(ai_time_parse("2027-01-01T00:00:00Z", &t) == 0 && t == 1798761600);
    CHECK(ai_time_parse("2024-02-29T12:00:00Z", &t) == 0);
    CHECK(ai_time_parse("2100-02-29T12:00:00Z", &t) == -1);
    CHECK(ai_time_parse("2000-02-29T12:00:00Z", &t) == 0);
    CHECK(ai_time_parse("2026-11-01T00:00:00.123456Z", &t) == 0
          && t == ts_at("2026-11-01T00:00:00Z"));
    CHECK(ai_time_parse("2026-11-01T02:30:00+02:30", &t) == 0
          && t == ts_at("2026-11-01T00:00:00Z"));
    CHECK(ai_time_parse("2026-11-01T00:00:00-05:00", &t) == 0
          && t == ts_at("2026-11-01T05:00:00Z"));
    CHECK(ai_time_parse("2026-11-01 00:00:00Z", &t) == -1);
    CHECK(ai_time_parse("2026-11-01T00:00:00.Z", &t) == -1);
    CHECK(ai_time_parse("1969-12-31T23:59:59Z", &t) == -1);
    CHECK(ai_time_parse("", &t) == -1);

    ai_time_format(1798761600, buf);
    CHECK(strcmp(buf, "2027-01-01T00:00:00Z") == 0);
    ai_time_format(951825600, buf);
    CHECK(strcmp(buf, "2000-02-29T12:00:00Z") == 0);
    CHECK(ai_time_parse(buf, &t) == 0 && t == 951825600);

    CHECK(ai_name_valid("team-a.B_9", 10));
    CHECK(!ai_name_valid("team a", 6));
    CHECK(!ai_name_valid("a:b", 3));
    CHECK(!ai_name_valid("", 0));

    lj = "{\"requests_per_minute\":5,\"budget_per_month\":0.000001}";
    CHECK(ai_limits_parse(lj, strlen(lj), &l, err, sizeof(err)) == 0);
    CHECK(l.requests_per_minute == 5 && l.budget_per_month_micros == 1
          && l.tokens_per_minute == AI_LIMIT_NONE);
    CHECK(ai_limits_parse("{\"x\":1}", 7, &l, err, sizeof(err)) == -1
          && strstr(err, "limits: unknown field \"x\"") != NULL);
    CHECK(ai_limits_parse("{", 1, &l, err, sizeof(err)) == -1);
}


static double
now_sec(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
test_many_keys(void)
{
    char             err[512], key[64], hex[65], *json, *p;
    size_t           i, n, ok, size;
    double           t0, t1, t2;
    unsigned char    d[AI_DIGEST_LEN];
    const ai_key_t  *k;
    ai_tenants_t    *ts;

    n = 10000;
    size = 64 + n * 160;
    json = malloc(size);
    CHECK(json != NULL);
    if (json == NULL) {
        return;
    }

    p = json;
    p += sprintf(p, "{\"tenants\":{");

    for (i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "aigw-key-%zu", i);
        ai_sha256((unsigned char *) key, strlen(key), d);
        ai_hex(d, AI_DIGEST_LEN, hex);

        if (i % 100 == 0) {
            p += sprintf(p, "%s\"t%zu\":{\"keys\":[", i ? "]}," : "",
                         i / 100);
        }

        p += sprintf(p, "%s{\"id\":\"k%zu\",\"sha256\":\"%s\"}",
                     i % 100 ? "," : "", i, hex);
    }

    p += sprintf(p, "]}}}");

    t0 = now_sec();
    ts = ai_tenants_parse(json, p - json, err, sizeof(err));
    t1 = now_sec();
    free(json);

    CHECK(ts != NULL);
    if (ts == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }

    CHECK(ai_tenants_keys_count(ts) == n && ai_tenants_count(ts) == n / 100);

    ok = 0;
    t2 = now_sec();

    for (i = 0; i < 10 * n; i++) {
        snprintf(key, sizeof(key), "aigw-key-%zu", i % (2 * n));

        if (ai_tenants_auth(ts, (unsigned char *) key, strlen(key), 0, &k)
            == AI_KEY_OK)
        {
            if ((size_t) atol(ai_key_id(k) + 1) == i % (2 * n)) {
                ok++;
            }
        }
    }

    t2 = now_sec() - t2;

    CHECK(ok == 5 * n);

    printf("test_tenants: %zu keys parsed in %.1f ms; %.0f ns per lookup "
           "(SHA-256 included)\n", n, (t1 - t0) * 1e3, t2 / (10 * n) * 1e9);

    ai_tenants_free(ts);
}


/* keys of the Redis key store: outside the set, pointing to its tenant */

static void
test_key_new(void)
{
    char                err[512];
    const char         *json;
    ai_key_t           *k;
    ai_limits_t         l;
    ai_tenants_t       *ts;
    unsigned char       d[AI_DIGEST_LEN];
    const ai_tenant_t  *tn;

    json = "{\"tenants\":{\"a\":{\"keys\":[{\"id\":\"file\","
           "\"sha256\":\"" HEX_A "\"}]}}}";

    ts = ai_tenants_parse(json, strlen(json), err, sizeof(err));
    CHECK(ts != NULL);
    if (ts == NULL) {
        return;
    }

    tn = ai_tenants_find(ts, "a", 1);
    CHECK(tn != NULL);
    CHECK(ai_tenant_key_id_used(tn, "file"));
    CHECK(!ai_tenant_key_id_used(tn, "redis"));

    memset(d, 0xbb, sizeof(d));
    ai_limits_init(&l);
    l.requests_per_minute = 5;

    k = ai_key_new(tn, "redis", d, 100, 200, 0, &l);
    CHECK(k != NULL);
    if (k != NULL) {
        CHECK(ai_key_tenant(k) == tn);
        CHECK(strcmp(ai_key_id(k), "redis") == 0);
        CHECK(ai_key_limits(k)->requests_per_minute == 5);
        CHECK(memcmp(ai_key_digest(k), d, AI_DIGEST_LEN) == 0);
        CHECK(ai_key_check(k, 199) == AI_KEY_OK);
        CHECK(ai_key_check(k, 200) == AI_KEY_EXPIRED);
        ai_key_free(k);
    }

    /* not in the set: the file's lookup does not find it */
    CHECK(ai_tenants_auth_digest(ts, d, 0, NULL) == AI_KEY_UNKNOWN);

    k = ai_key_new(tn, "r", d, 0, 0, 1, NULL);
    CHECK(k != NULL && ai_key_check(k, 0) == AI_KEY_REVOKED);
    CHECK(k != NULL && ai_key_limits(k)->concurrent == AI_LIMIT_NONE);
    ai_key_free(k);

    CHECK(ai_key_new(tn, "bad id", d, 0, 0, 0, NULL) == NULL);
    CHECK(ai_key_new(tn, "", d, 0, 0, 0, NULL) == NULL);
    l.concurrent = -2;
    CHECK(ai_key_new(tn, "x", d, 0, 0, 0, &l) == NULL);

    ai_tenants_free(ts);
}


int
main(void)
{
    test_valid_file();
    test_validation_errors();
    test_corrupt();
    test_add_key();
    test_helpers();
    test_key_new();
    test_many_keys();

    if (failures) {
        fprintf(stderr, "test_tenants: %d of %d checks failed\n", failures,
                checks);
        return 1;
    }

    printf("test_tenants: %d checks passed\n", checks);
    return 0;
}
