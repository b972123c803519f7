
/*
 * The tenants file (ai_tenants_parse) on any bytes; when it loads, every
 * accessor is walked and a key is authenticated, then it is freed (a leak
 * is a failure).  The same bytes go to the smaller parsers the file and
 * tools/aigw-keys share: one "limits" object, an RFC 3339 time, a name,
 * a hex digest.  An error message is always NUL-terminated and non-empty.
 */

#include "ai_tenants.h"
#include "fuzz_common.h"


static void
fuzz_walk(const ai_tenants_t *t)
{
    size_t              i, j, n;
    const char         *s;
    ai_key_t const     *k, *got;
    const ai_tenant_t  *tn;
    const ai_limits_t  *l;
    char                prefix[13];

    n = ai_tenants_count(t);

    for (i = 0; i < n; i++) {
        tn = ai_tenants_at(t, i);
        s = ai_tenant_name(tn);
        FUZZ_CHECK(s != NULL && ai_name_valid(s, strlen(s)));
        FUZZ_CHECK(ai_tenants_find(t, s, strlen(s)) == tn);
        FUZZ_CHECK(ai_tenant_limits(tn) != NULL);

        for (j = 0; j < ai_tenant_models_count(tn); j++) {
            s = ai_tenant_model_at(tn, j);
            FUZZ_CHECK(s != NULL);
            FUZZ_CHECK(ai_tenant_model_allowed(tn, s, strlen(s)));
        }

        for (j = 0; j < ai_tenant_model_limits_count(tn); j++) {
            s = ai_tenant_model_limits_at(tn, j, &l);
            FUZZ_CHECK(s != NULL && l != NULL);
            FUZZ_CHECK(ai_tenant_model_limits(tn, s, strlen(s)) != NULL);
        }

        for (j = 0; j < ai_tenant_keys_count(tn); j++) {
            k = ai_tenant_key_at(tn, j);
            FUZZ_CHECK(ai_key_tenant(k) == tn);
            ai_key_digest_prefix(k, prefix);
            FUZZ_CHECK(strlen(prefix) == 12);

            got = NULL;
            ai_tenants_auth_digest(t, ai_key_digest(k), 1700000000, &got);
            FUZZ_CHECK(got == k);
        }
    }

    ai_tenants_auth(t, (const unsigned char *) "sk-test", 7, 1700000000,
                    &got);

    for (i = 0; i < ai_tenants_keys_count(t); i++) {
        FUZZ_CHECK(ai_tenants_key_at(t, i) != NULL);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           *s, err[512];
    time_t          when;
    ai_limits_t     limits;
    ai_tenants_t   *t;
    unsigned char   digest[AI_DIGEST_LEN];

    err[0] = '\0';
    t = ai_tenants_parse((const char *) data, size, err, sizeof(err));

    if (t == NULL) {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');

    } else {
        fuzz_walk(t);
        ai_tenants_free(t);
    }

    err[0] = '\0';

    if (ai_limits_parse((const char *) data, size, &limits, err, sizeof(err))
        != 0)
    {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    }

    s = fuzz_strdup(data, size);
    ai_time_parse(s, &when);
    free(s);

    ai_name_valid((const char *) data, size);

    if (size <= 2 * AI_DIGEST_LEN) {
        ai_unhex((const char *) data, size & ~(size_t) 1, digest);
    }

    return 0;
}
