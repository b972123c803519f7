
/*
 * Tenants and virtual keys: see ai_tenants.h and docs/tenants.md.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "ai_json.h"
#include "ai_tenants.h"


#define AI_TN_MAX_KEYS      (1u << 28)
#define AI_TN_MAX_COUNT     1000000000000000LL     /* 1e15 */
#define AI_TN_MAX_BUDGET    1000000000.0           /* USD */
#define AI_TN_MAX_FILE      (256u << 20)


typedef struct {
    char         *model;
    ai_limits_t   limits;
} ai_model_limits_t;


struct ai_key_s {
    unsigned char        digest[AI_DIGEST_LEN];
    char                *id;
    ai_tenant_t         *tenant;
    time_t               created;
    time_t               expires;
    int                  revoked;
    ai_limits_t          limits;
};


struct ai_tenant_s {
    char                *name;
    char               **models;
    size_t               nmodels;
    ai_limits_t          limits;
    ai_model_limits_t   *model_limits;
    size_t               nmodel_limits;
    ai_key_t           **keys;
    size_t               nkeys;
    size_t               keys_cap;
};


struct ai_tenants_s {
    ai_tenant_t        **tenants;
    size_t               ntenants;
    size_t               tenants_cap;
    ai_key_t           **keys;
    size_t               nkeys;
    size_t               keys_cap;
    uint32_t            *slots;         /* index into keys + 1; 0 = empty */
    size_t               nslots;        /* a power of two, >= 2 * nkeys */
};


typedef struct {
    const char   *name;
    size_t        offset;
    int           money;
} ai_limit_field_t;


static const ai_limit_field_t  ai_limit_fields[] = {
    { "requests_per_minute",
      offsetof(ai_limits_t, requests_per_minute), 0 },
    { "tokens_per_minute",
      offsetof(ai_limits_t, tokens_per_minute), 0 },
    { "concurrent",
      offsetof(ai_limits_t, concurrent), 0 },
    { "tokens_per_day",
      offsetof(ai_limits_t, tokens_per_day), 0 },
    { "tokens_per_month",
      offsetof(ai_limits_t, tokens_per_month), 0 },
    { "budget_per_day",
      offsetof(ai_limits_t, budget_per_day_micros), 1 },
    { "budget_per_month",
      offsetof(ai_limits_t, budget_per_month_micros), 1 },
    { NULL, 0, 0 }
};


static void ai_tn_err(char *err, size_t errlen, const char *fmt, ...);
static char *ai_tn_strdup(const char *s);
static int ai_tn_check_fields(json_t *obj, const char *const *allowed,
    const char *where, char *err, size_t errlen);
static int ai_tn_parse_limits_obj(json_t *obj, ai_limits_t *l,
    const char *where, char *err, size_t errlen);
static int ai_tn_model_name_valid(const char *s, size_t len, int pattern);
static int ai_tn_parse_tenant(ai_tenants_t *ts, const char *name,
    json_t *obj, char *err, size_t errlen);
static int ai_tn_parse_key(ai_tenants_t *ts, ai_tenant_t *tn, size_t index,
    json_t *obj, char *err, size_t errlen);
static ai_tenant_t *ai_tn_new_tenant(ai_tenants_t *ts, const char *name);
static int ai_tn_insert_key(ai_tenants_t *ts, ai_key_t *k, char *err,
    size_t errlen);
static int ai_tn_rehash(ai_tenants_t *ts, size_t nslots);
static void ai_tn_free_key(ai_key_t *k);
static void ai_tn_free_tenant(ai_tenant_t *tn);


/* loading */


ai_tenants_t *
ai_tenants_parse(const char *json, size_t len, char *err, size_t errlen)
{
    const char     *name;
    json_t         *root, *v, *tenants, *tobj;
    json_error_t    jerr;
    ai_tenants_t   *ts;

    static const char *const  top_fields[] = { "version", "tenants", NULL };

    ai_tn_err(err, errlen, "%s", "");

    if (json == NULL) {
        ai_tn_err(err, errlen, "no tenants data");
        return NULL;
    }

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        ai_tn_err(err, errlen, "invalid JSON at line %d column %d: %s",
                  jerr.line, jerr.column, jerr.text);
        return NULL;
    }

    ts = calloc(1, sizeof(ai_tenants_t));
    if (ts == NULL) {
        ai_tn_err(err, errlen, "out of memory");
        json_decref(root);
        return NULL;
    }

    if (ai_tn_rehash(ts, 16) != 0) {
        ai_tn_err(err, errlen, "out of memory");
        goto failed;
    }

    if (!json_is_object(root)) {
        ai_tn_err(err, errlen, "the tenants file must be a JSON object");
        goto failed;
    }

    if (ai_tn_check_fields(root, top_fields, "top level", err, errlen)
        != 0)
    {
        goto failed;
    }

    v = json_object_get(root, "version");

    if (v != NULL
        && (!json_is_integer(v) || json_integer_value(v) != 1))
    {
        ai_tn_err(err, errlen, "\"version\": must be 1");
        goto failed;
    }

    tenants = json_object_get(root, "tenants");

    if (tenants == NULL) {
        ai_tn_err(err, errlen, "\"tenants\": missing");
        goto failed;
    }

    if (!json_is_object(tenants)) {
        ai_tn_err(err, errlen, "\"tenants\": must be an object mapping "
                  "tenant names to tenants");
        goto failed;
    }

    json_object_foreach(tenants, name, tobj) {
        if (ai_tn_parse_tenant(ts, name, tobj, err, errlen) != 0) {
            goto failed;
        }
    }

    json_decref(root);
    return ts;

failed:

    json_decref(root);
    ai_tenants_free(ts);
    return NULL;
}


ai_tenants_t *
ai_tenants_load(const char *path, char *err, size_t errlen)
{
    FILE          *f;
    char          *buf, *p;
    size_t         n, size, cap;
    ai_tenants_t  *ts;

    f = fopen(path, "rb");
    if (f == NULL) {
        ai_tn_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }

    cap = 65536;
    size = 0;
    buf = malloc(cap);

    while (buf != NULL) {
        n = fread(buf + size, 1, cap - size, f);
        size += n;

        if (size < cap) {
            break;
        }

        if (cap >= AI_TN_MAX_FILE) {
            free(buf);
            fclose(f);
            ai_tn_err(err, errlen, "%s: larger than %u MiB", path,
                      AI_TN_MAX_FILE >> 20);
            return NULL;
        }

        cap *= 2;
        p = realloc(buf, cap);
        if (p == NULL) {
            free(buf);
        }
        buf = p;
    }

    if (buf == NULL) {
        fclose(f);
        ai_tn_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }

    if (ferror(f)) {
        free(buf);
        fclose(f);
        ai_tn_err(err, errlen, "%s: read error", path);
        return NULL;
    }

    fclose(f);

    ts = ai_tenants_parse(buf, size, err, errlen);
    free(buf);

    if (ts == NULL && err != NULL && errlen > 0) {
        size_t  plen = strlen(path);
        size_t  elen = strlen(err);

        if (plen + 2 + elen + 1 <= errlen) {
            memmove(err + plen + 2, err, elen + 1);
            memcpy(err, path, plen);
            memcpy(err + plen, ": ", 2);
        }
    }

    return ts;
}


void
ai_tenants_free(ai_tenants_t *ts)
{
    size_t  i;

    if (ts == NULL) {
        return;
    }

    for (i = 0; i < ts->nkeys; i++) {
        ai_tn_free_key(ts->keys[i]);
    }

    for (i = 0; i < ts->ntenants; i++) {
        ai_tn_free_tenant(ts->tenants[i]);
    }

    free(ts->keys);
    free(ts->tenants);
    free(ts->slots);
    free(ts);
}


int
ai_tenants_add_key(ai_tenants_t *ts, const char *tenant, const char *id,
    const char *sha256_hex, time_t created, time_t expires, int revoked,
    const ai_limits_t *limits, int create_tenant, char *err, size_t errlen)
{
    size_t        i;
    ai_key_t     *k;
    ai_tenant_t  *tn;

    if (tenant == NULL || !ai_name_valid(tenant, strlen(tenant))) {
        ai_tn_err(err, errlen, "invalid tenant name (use 1-%d of "
                  "A-Z a-z 0-9 . _ -)", AI_NAME_MAX);
        return -1;
    }

    if (id == NULL || !ai_name_valid(id, strlen(id))) {
        ai_tn_err(err, errlen, "tenant \"%s\": invalid key id (use 1-%d "
                  "of A-Z a-z 0-9 . _ -)", tenant, AI_NAME_MAX);
        return -1;
    }

    if (limits != NULL) {
        const int64_t  *f = (const int64_t *) limits;

        for (i = 0; i < sizeof(ai_limits_t) / sizeof(int64_t); i++) {
            if (f[i] < AI_LIMIT_NONE) {
                ai_tn_err(err, errlen, "tenant \"%s\" key \"%s\": negative "
                          "limit", tenant, id);
                return -1;
            }
        }
    }

    tn = (ai_tenant_t *) ai_tenants_find(ts, tenant, strlen(tenant));

    if (tn == NULL) {
        if (!create_tenant) {
            ai_tn_err(err, errlen, "tenant \"%s\" key \"%s\": no such "
                      "tenant", tenant, id);
            return -1;
        }

        tn = ai_tn_new_tenant(ts, tenant);
        if (tn == NULL) {
            ai_tn_err(err, errlen, "out of memory");
            return -1;
        }
    }

    for (i = 0; i < tn->nkeys; i++) {
        if (strcmp(tn->keys[i]->id, id) == 0) {
            ai_tn_err(err, errlen, "tenant \"%s\" key \"%s\": duplicate "
                      "key id", tenant, id);
            return -1;
        }
    }

    k = calloc(1, sizeof(ai_key_t));
    if (k == NULL) {
        ai_tn_err(err, errlen, "out of memory");
        return -1;
    }

    if (sha256_hex == NULL || strlen(sha256_hex) != AI_DIGEST_HEX_LEN
        || ai_unhex(sha256_hex, AI_DIGEST_HEX_LEN, k->digest) != 0)
    {
        free(k);
        ai_tn_err(err, errlen, "tenant \"%s\" key \"%s\": sha256: must be "
                  "%d hexadecimal digits", tenant, id, AI_DIGEST_HEX_LEN);
        return -1;
    }

    k->id = ai_tn_strdup(id);
    k->tenant = tn;
    k->created = created;
    k->expires = expires;
    k->revoked = revoked ? 1 : 0;

    if (limits != NULL) {
        k->limits = *limits;

    } else {
        ai_limits_init(&k->limits);
    }

    if (k->id == NULL) {
        ai_tn_free_key(k);
        ai_tn_err(err, errlen, "out of memory");
        return -1;
    }

    return ai_tn_insert_key(ts, k, err, errlen);
}


/* authentication */


ai_key_status_e
ai_tenants_auth(const ai_tenants_t *ts, const unsigned char *key, size_t len,
    time_t now, const ai_key_t **out)
{
    unsigned char    digest[AI_DIGEST_LEN];
    ai_key_status_e  rc;

    if (out != NULL) {
        *out = NULL;
    }

    if (ts == NULL || key == NULL || len == 0 || len > AI_KEY_MAX_LEN) {
        return AI_KEY_UNKNOWN;
    }

    ai_sha256(key, len, digest);
    rc = ai_tenants_auth_digest(ts, digest, now, out);
    OPENSSL_cleanse(digest, sizeof(digest));

    return rc;
}


ai_key_status_e
ai_tenants_auth_digest(const ai_tenants_t *ts,
    const unsigned char digest[AI_DIGEST_LEN], time_t now,
    const ai_key_t **out)
{
    size_t     i, mask;
    uint32_t   slot;
    uint64_t   h;
    ai_key_t  *k;

    if (out != NULL) {
        *out = NULL;
    }

    if (ts == NULL || ts->slots == NULL) {
        return AI_KEY_UNKNOWN;
    }

    /* a digest is uniformly distributed: its first 8 bytes are the hash */
    memcpy(&h, digest, sizeof(h));
    mask = ts->nslots - 1;

    for (i = (size_t) h & mask; /* void */; i = (i + 1) & mask) {
        slot = ts->slots[i];

        if (slot == 0) {
            return AI_KEY_UNKNOWN;
        }

        k = ts->keys[slot - 1];

        if (CRYPTO_memcmp(k->digest, digest, AI_DIGEST_LEN) == 0) {
            break;
        }
    }

    if (out != NULL) {
        *out = k;
    }

    return ai_key_check(k, now);
}


ai_key_status_e
ai_key_check(const ai_key_t *k, time_t now)
{
    if (k->revoked) {
        return AI_KEY_REVOKED;
    }

    if (k->expires != 0 && now >= k->expires) {
        return AI_KEY_EXPIRED;
    }

    return AI_KEY_OK;
}


const char *
ai_key_status_text(ai_key_status_e status)
{
    switch (status) {
    case AI_KEY_OK:
        return "ok";
    case AI_KEY_REVOKED:
        return "revoked";
    case AI_KEY_EXPIRED:
        return "expired";
    default:
        return "unknown";
    }
}


/* keys */


ai_key_t *
ai_key_new(const ai_tenant_t *tn, const char *id,
    const unsigned char digest[AI_DIGEST_LEN], time_t created,
    time_t expires, int revoked, const ai_limits_t *limits)
{
    size_t          i;
    ai_key_t       *k;
    const int64_t  *f;

    if (tn == NULL || id == NULL || !ai_name_valid(id, strlen(id))) {
        return NULL;
    }

    if (limits != NULL) {
        f = (const int64_t *) limits;

        for (i = 0; i < sizeof(ai_limits_t) / sizeof(int64_t); i++) {
            if (f[i] < AI_LIMIT_NONE) {
                return NULL;
            }
        }
    }

    k = calloc(1, sizeof(ai_key_t));
    if (k == NULL) {
        return NULL;
    }

    k->id = ai_tn_strdup(id);
    if (k->id == NULL) {
        free(k);
        return NULL;
    }

    memcpy(k->digest, digest, AI_DIGEST_LEN);
    k->tenant = (ai_tenant_t *) tn;
    k->created = created;
    k->expires = expires;
    k->revoked = revoked ? 1 : 0;

    if (limits != NULL) {
        k->limits = *limits;

    } else {
        ai_limits_init(&k->limits);
    }

    return k;
}


void
ai_key_free(ai_key_t *k)
{
    ai_tn_free_key(k);
}


int
ai_tenant_key_id_used(const ai_tenant_t *tn, const char *id)
{
    size_t  i;

    for (i = 0; i < tn->nkeys; i++) {
        if (strcmp(tn->keys[i]->id, id) == 0) {
            return 1;
        }
    }

    return 0;
}


const char *
ai_key_id(const ai_key_t *k)
{
    return k->id;
}


const ai_tenant_t *
ai_key_tenant(const ai_key_t *k)
{
    return k->tenant;
}


const ai_limits_t *
ai_key_limits(const ai_key_t *k)
{
    return &k->limits;
}


time_t
ai_key_created(const ai_key_t *k)
{
    return k->created;
}


time_t
ai_key_expires(const ai_key_t *k)
{
    return k->expires;
}


int
ai_key_revoked(const ai_key_t *k)
{
    return k->revoked;
}


const unsigned char *
ai_key_digest(const ai_key_t *k)
{
    return k->digest;
}


void
ai_key_digest_prefix(const ai_key_t *k, char out[13])
{
    ai_hex(k->digest, 6, out);
}


/* tenants */


const char *
ai_tenant_name(const ai_tenant_t *tn)
{
    return tn->name;
}


const ai_limits_t *
ai_tenant_limits(const ai_tenant_t *tn)
{
    return &tn->limits;
}


int
ai_tenant_model_allowed(const ai_tenant_t *tn, const char *model, size_t len)
{
    size_t       i, n;
    const char  *m;

    if (tn->nmodels == 0) {
        return 1;
    }

    for (i = 0; i < tn->nmodels; i++) {
        m = tn->models[i];
        n = strlen(m);

        if (n > 0 && m[n - 1] == '*') {
            /* a pattern: "gpt-4o*" allows every name that starts so */
            if (len >= n - 1 && memcmp(m, model, n - 1) == 0) {
                return 1;
            }

            continue;
        }

        if (n == len && memcmp(m, model, len) == 0) {
            return 1;
        }
    }

    return 0;
}


const ai_limits_t *
ai_tenant_model_limits(const ai_tenant_t *tn, const char *model, size_t len)
{
    size_t  i;

    for (i = 0; i < tn->nmodel_limits; i++) {
        if (strlen(tn->model_limits[i].model) == len
            && memcmp(tn->model_limits[i].model, model, len) == 0)
        {
            return &tn->model_limits[i].limits;
        }
    }

    return NULL;
}


size_t
ai_tenant_models_count(const ai_tenant_t *tn)
{
    return tn->nmodels;
}


const char *
ai_tenant_model_at(const ai_tenant_t *tn, size_t i)
{
    return i < tn->nmodels ? tn->models[i] : NULL;
}


size_t
ai_tenant_model_limits_count(const ai_tenant_t *tn)
{
    return tn->nmodel_limits;
}


const char *
ai_tenant_model_limits_at(const ai_tenant_t *tn, size_t i,
    const ai_limits_t **limits)
{
    if (i >= tn->nmodel_limits) {
        return NULL;
    }

    if (limits != NULL) {
        *limits = &tn->model_limits[i].limits;
    }

    return tn->model_limits[i].model;
}


size_t
ai_tenant_keys_count(const ai_tenant_t *tn)
{
    return tn->nkeys;
}


const ai_key_t *
ai_tenant_key_at(const ai_tenant_t *tn, size_t i)
{
    return i < tn->nkeys ? tn->keys[i] : NULL;
}


/* the whole set */


size_t
ai_tenants_count(const ai_tenants_t *ts)
{
    return ts->ntenants;
}


const ai_tenant_t *
ai_tenants_at(const ai_tenants_t *ts, size_t i)
{
    return i < ts->ntenants ? ts->tenants[i] : NULL;
}


const ai_tenant_t *
ai_tenants_find(const ai_tenants_t *ts, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < ts->ntenants; i++) {
        if (strlen(ts->tenants[i]->name) == len
            && memcmp(ts->tenants[i]->name, name, len) == 0)
        {
            return ts->tenants[i];
        }
    }

    return NULL;
}


size_t
ai_tenants_keys_count(const ai_tenants_t *ts)
{
    return ts->nkeys;
}


const ai_key_t *
ai_tenants_key_at(const ai_tenants_t *ts, size_t i)
{
    return i < ts->nkeys ? ts->keys[i] : NULL;
}


/* helpers */


void
ai_limits_init(ai_limits_t *l)
{
    l->requests_per_minute = AI_LIMIT_NONE;
    l->tokens_per_minute = AI_LIMIT_NONE;
    l->concurrent = AI_LIMIT_NONE;
    l->tokens_per_day = AI_LIMIT_NONE;
    l->tokens_per_month = AI_LIMIT_NONE;
    l->budget_per_day_micros = AI_LIMIT_NONE;
    l->budget_per_month_micros = AI_LIMIT_NONE;
}


int
ai_limits_parse(const char *json, size_t len, ai_limits_t *out, char *err,
    size_t errlen)
{
    int            rc;
    json_t        *root;
    json_error_t   jerr;

    ai_limits_init(out);

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        ai_tn_err(err, errlen, "limits: invalid JSON at column %d: %s",
                  jerr.column, jerr.text);
        return -1;
    }

    rc = ai_tn_parse_limits_obj(root, out, "limits", err, errlen);
    json_decref(root);

    return rc;
}


int
ai_name_valid(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > AI_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9')
              || s[i] == '.' || s[i] == '_' || s[i] == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static int
ai_tn_digits(const char *s, int n, int *out)
{
    int  i, v;

    v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }

    *out = v;
    return 0;
}


/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant) */

static int64_t
ai_tn_days_from_civil(int64_t y, int m, int d)
{
    int64_t   era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


int
ai_time_parse(const char *s, time_t *out)
{
    int          y, mo, d, h, mi, sec, oh, om, mdays;
    size_t       i, len;
    int64_t      t;
    const char  *p;

    static const int  days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                 30, 31 };

    len = strlen(s);

    if (len < 20
        || ai_tn_digits(s, 4, &y) != 0 || s[4] != '-'
        || ai_tn_digits(s + 5, 2, &mo) != 0 || s[7] != '-'
        || ai_tn_digits(s + 8, 2, &d) != 0
        || (s[10] != 'T' && s[10] != 't')
        || ai_tn_digits(s + 11, 2, &h) != 0 || s[13] != ':'
        || ai_tn_digits(s + 14, 2, &mi) != 0 || s[16] != ':'
        || ai_tn_digits(s + 17, 2, &sec) != 0)
    {
        return -1;
    }

    if (y < 1970 || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 60) {
        return -1;
    }

    mdays = days[mo - 1];

    if (mo == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        mdays = 29;
    }

    if (d < 1 || d > mdays) {
        return -1;
    }

    if (sec == 60) {
        sec = 59;                      /* a leap second: close enough */
    }

    p = s + 19;

    if (*p == '.') {
        for (p++, i = 0; *p >= '0' && *p <= '9'; p++, i++) { /* void */ }

        if (i == 0) {
            return -1;
        }
    }

    t = ai_tn_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;

    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        /* UTC */

    } else if ((*p == '+' || *p == '-') && strlen(p) == 6
               && ai_tn_digits(p + 1, 2, &oh) == 0 && p[3] == ':'
               && ai_tn_digits(p + 4, 2, &om) == 0 && oh <= 23 && om <= 59)
    {
        t += (*p == '+' ? -1 : 1) * (int64_t) (oh * 3600 + om * 60);

    } else {
        return -1;
    }

    if (t <= 0 || (sizeof(time_t) < 8 && t > INT32_MAX)) {
        return -1;
    }

    *out = (time_t) t;
    return 0;
}


static void
ai_tn_put_digits(char *p, int64_t v, int n)
{
    while (n-- > 0) {
        p[n] = (char) ('0' + v % 10);
        v /= 10;
    }
}


void
ai_time_format(time_t t, char out[21])
{
    int64_t  z, era, doe, yoe, doy, mp, y, m, d, secs;

    secs = (int64_t) t;
    z = (secs >= 0 ? secs : secs - 86399) / 86400;
    secs -= z * 86400;

    /* civil_from_days (H. Hinnant) */
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;

    y %= 10000;
    ai_tn_put_digits(out, y, 4);
    out[4] = '-';
    ai_tn_put_digits(out + 5, m, 2);
    out[7] = '-';
    ai_tn_put_digits(out + 8, d, 2);
    out[10] = 'T';
    ai_tn_put_digits(out + 11, secs / 3600, 2);
    out[13] = ':';
    ai_tn_put_digits(out + 14, secs / 60 % 60, 2);
    out[16] = ':';
    ai_tn_put_digits(out + 17, secs % 60, 2);
    out[19] = 'Z';
    out[20] = '\0';
}


void
ai_sha256(const unsigned char *data, size_t len,
    unsigned char out[AI_DIGEST_LEN])
{
    SHA256(data, len, out);
}


void
ai_hex(const unsigned char *data, size_t len, char *out)
{
    size_t  i;

    static const char  digits[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 0x0f];
    }

    out[2 * len] = '\0';
}


static int
ai_tn_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


int
ai_unhex(const char *hex, size_t hexlen, unsigned char *out)
{
    int     hi, lo;
    size_t  i;

    if (hexlen % 2 != 0) {
        return -1;
    }

    for (i = 0; i < hexlen; i += 2) {
        hi = ai_tn_hexval(hex[i]);
        lo = ai_tn_hexval(hex[i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        out[i / 2] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


/* parsing internals */


static void
ai_tn_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  args;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
}


static char *
ai_tn_strdup(const char *s)
{
    char    *p;
    size_t   n;

    n = strlen(s) + 1;
    p = malloc(n);

    if (p != NULL) {
        memcpy(p, s, n);
    }

    return p;
}


static int
ai_tn_check_fields(json_t *obj, const char *const *allowed,
    const char *where, char *err, size_t errlen)
{
    size_t       i;
    json_t      *v;
    const char  *name;

    json_object_foreach(obj, name, v) {
        for (i = 0; allowed[i] != NULL; i++) {
            if (strcmp(name, allowed[i]) == 0) {
                break;
            }
        }

        if (allowed[i] == NULL) {
            ai_tn_err(err, errlen, "%s: unknown field \"%.64s\"", where,
                      name);
            return -1;
        }
    }

    return 0;
}


static int
ai_tn_parse_limits_obj(json_t *obj, ai_limits_t *l, const char *where,
    char *err, size_t errlen)
{
    double                   d;
    json_t                  *v;
    int64_t                 *dst, n;
    const char              *name;
    const ai_limit_field_t  *f;

    if (!json_is_object(obj)) {
        ai_tn_err(err, errlen, "%s: must be an object, not %s", where,
                  ai_json_type_name(obj));
        return -1;
    }

    json_object_foreach(obj, name, v) {
        for (f = ai_limit_fields; f->name != NULL; f++) {
            if (strcmp(name, f->name) == 0) {
                break;
            }
        }

        if (f->name == NULL) {
            ai_tn_err(err, errlen, "%s: unknown field \"%.64s\" (known: "
                      "requests_per_minute, tokens_per_minute, concurrent, "
                      "tokens_per_day, tokens_per_month, budget_per_day, "
                      "budget_per_month)", where, name);
            return -1;
        }

        dst = (int64_t *) ((char *) l + f->offset);

        if (f->money) {
            if (!json_is_number(v)) {
                ai_tn_err(err, errlen, "%s.%s: must be a number of US "
                          "dollars, not %s", where, f->name,
                          ai_json_type_name(v));
                return -1;
            }

            d = json_number_value(v);

            if (!(d >= 0.0)) {
                ai_tn_err(err, errlen, "%s.%s: must not be negative "
                          "(omit it for no limit)", where, f->name);
                return -1;
            }

            if (d > AI_TN_MAX_BUDGET) {
                ai_tn_err(err, errlen, "%s.%s: too large", where, f->name);
                return -1;
            }

            *dst = (int64_t) (d * 1000000.0 + 0.5);
            continue;
        }

        if (!json_is_integer(v)) {
            ai_tn_err(err, errlen, "%s.%s: must be an integer, not %s",
                      where, f->name, ai_json_type_name(v));
            return -1;
        }

        n = json_integer_value(v);

        if (n < 0) {
            ai_tn_err(err, errlen, "%s.%s: must not be negative (omit it "
                      "for no limit)", where, f->name);
            return -1;
        }

        if (n > AI_TN_MAX_COUNT) {
            ai_tn_err(err, errlen, "%s.%s: too large", where, f->name);
            return -1;
        }

        *dst = n;
    }

    return 0;
}


static int
ai_tn_model_name_valid(const char *s, size_t len, int pattern)
{
    size_t  i;

    if (len == 0 || len > AI_MODEL_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f) {
            return 0;
        }

        if (s[i] == '*' && !(pattern && i == len - 1)) {
            return 0;
        }
    }

    return 1;
}


static int
ai_tn_parse_tenant(ai_tenants_t *ts, const char *name, json_t *obj,
    char *err, size_t errlen)
{
    char          where[AI_NAME_MAX + 160];
    size_t        i, j, n;
    json_t       *v, *m;
    const char   *s, *model;
    ai_tenant_t  *tn;

    static const char *const  fields[] = { "description", "models", "limits",
                                           "model_limits", "keys", NULL };

    if (!ai_name_valid(name, strlen(name))) {
        ai_tn_err(err, errlen, "tenant \"%.64s\": invalid name (use 1-%d of "
                  "A-Z a-z 0-9 . _ -)", name, AI_NAME_MAX);
        return -1;
    }

    snprintf(where, sizeof(where), "tenant \"%s\"", name);

    if (!json_is_object(obj)) {
        ai_tn_err(err, errlen, "%s: must be an object, not %s", where,
                  ai_json_type_name(obj));
        return -1;
    }

    if (ai_tn_check_fields(obj, fields, where, err, errlen) != 0) {
        return -1;
    }

    tn = ai_tn_new_tenant(ts, name);
    if (tn == NULL) {
        ai_tn_err(err, errlen, "out of memory");
        return -1;
    }

    v = json_object_get(obj, "description");

    if (v != NULL && !json_is_string(v)) {
        ai_tn_err(err, errlen, "%s: description: must be a string", where);
        return -1;
    }

    v = json_object_get(obj, "models");

    if (v != NULL) {
        if (!json_is_array(v)) {
            ai_tn_err(err, errlen, "%s: models: must be an array of model "
                      "names, not %s", where, ai_json_type_name(v));
            return -1;
        }

        n = json_array_size(v);

        if (n == 0) {
            ai_tn_err(err, errlen, "%s: models: empty list (omit \"models\" "
                      "to allow every model)", where);
            return -1;
        }

        tn->models = calloc(n, sizeof(char *));
        if (tn->models == NULL) {
            ai_tn_err(err, errlen, "out of memory");
            return -1;
        }

        json_array_foreach(v, i, m) {
            if (!json_is_string(m)) {
                ai_tn_err(err, errlen, "%s: models[%zu]: must be a string, "
                          "not %s", where, i, ai_json_type_name(m));
                return -1;
            }

            s = json_string_value(m);

            if (!ai_tn_model_name_valid(s, json_string_length(m), 1)) {
                ai_tn_err(err, errlen, "%s: models[%zu]: invalid model name "
                          "\"%.128s\"", where, i, s);
                return -1;
            }

            for (j = 0; j < tn->nmodels; j++) {
                if (strcmp(tn->models[j], s) == 0) {
                    ai_tn_err(err, errlen, "%s: models[%zu]: duplicate "
                              "model \"%s\"", where, i, s);
                    return -1;
                }
            }

            tn->models[tn->nmodels] = ai_tn_strdup(s);
            if (tn->models[tn->nmodels] == NULL) {
                ai_tn_err(err, errlen, "out of memory");
                return -1;
            }

            tn->nmodels++;
        }
    }

    v = json_object_get(obj, "limits");

    if (v != NULL) {
        snprintf(where, sizeof(where), "tenant \"%s\": limits", name);

        if (ai_tn_parse_limits_obj(v, &tn->limits, where, err, errlen)
            != 0)
        {
            return -1;
        }
    }

    v = json_object_get(obj, "model_limits");

    if (v != NULL) {
        if (!json_is_object(v)) {
            ai_tn_err(err, errlen, "tenant \"%s\": model_limits: must be an "
                      "object mapping model names to limits, not %s", name,
                      ai_json_type_name(v));
            return -1;
        }

        n = json_object_size(v);

        tn->model_limits = calloc(n ? n : 1, sizeof(ai_model_limits_t));
        if (tn->model_limits == NULL) {
            ai_tn_err(err, errlen, "out of memory");
            return -1;
        }

        json_object_foreach(v, model, m) {
            if (!ai_tn_model_name_valid(model, strlen(model), 0)) {
                ai_tn_err(err, errlen, "tenant \"%s\": model_limits: invalid "
                          "model name \"%.128s\"", name, model);
                return -1;
            }

            if (!ai_tenant_model_allowed(tn, model, strlen(model))) {
                ai_tn_err(err, errlen, "tenant \"%s\": model_limits: model "
                          "\"%s\" is not in the tenant's \"models\"", name,
                          model);
                return -1;
            }

            snprintf(where, sizeof(where), "tenant \"%s\": model_limits."
                     "%.128s", name, model);

            ai_limits_init(&tn->model_limits[tn->nmodel_limits].limits);

            if (ai_tn_parse_limits_obj(m,
                    &tn->model_limits[tn->nmodel_limits].limits, where,
                    err, errlen) != 0)
            {
                return -1;
            }

            tn->model_limits[tn->nmodel_limits].model = ai_tn_strdup(model);
            if (tn->model_limits[tn->nmodel_limits].model == NULL) {
                ai_tn_err(err, errlen, "out of memory");
                return -1;
            }

            tn->nmodel_limits++;
        }
    }

    v = json_object_get(obj, "keys");

    if (v != NULL) {
        if (!json_is_array(v)) {
            ai_tn_err(err, errlen, "tenant \"%s\": keys: must be an array, "
                      "not %s", name, ai_json_type_name(v));
            return -1;
        }

        json_array_foreach(v, i, m) {
            if (ai_tn_parse_key(ts, tn, i, m, err, errlen) != 0) {
                return -1;
            }
        }
    }

    return 0;
}


static int
ai_tn_parse_key(ai_tenants_t *ts, ai_tenant_t *tn, size_t index,
    json_t *obj, char *err, size_t errlen)
{
    char         where[2 * AI_NAME_MAX + 64], lwhere[sizeof(where) + 16];
    size_t       i;
    json_t      *v;
    ai_key_t    *k;
    const char  *s;

    static const char *const  fields[] = { "id", "sha256", "description",
                                           "created", "expires", "revoked",
                                           "limits", NULL };

    snprintf(where, sizeof(where), "tenant \"%s\": keys[%zu]", tn->name,
             index);

    if (!json_is_object(obj)) {
        ai_tn_err(err, errlen, "%s: must be an object, not %s", where,
                  ai_json_type_name(obj));
        return -1;
    }

    v = json_object_get(obj, "id");

    if (v == NULL) {
        ai_tn_err(err, errlen, "%s: id: missing", where);
        return -1;
    }

    if (!json_is_string(v)
        || !ai_name_valid(json_string_value(v), json_string_length(v)))
    {
        ai_tn_err(err, errlen, "%s: id: must be a string of 1-%d of "
                  "A-Z a-z 0-9 . _ -", where, AI_NAME_MAX);
        return -1;
    }

    s = json_string_value(v);

    snprintf(where, sizeof(where), "tenant \"%s\" key \"%s\"", tn->name, s);

    if (ai_tn_check_fields(obj, fields, where, err, errlen) != 0) {
        return -1;
    }

    for (i = 0; i < tn->nkeys; i++) {
        if (strcmp(tn->keys[i]->id, s) == 0) {
            ai_tn_err(err, errlen, "%s: id: duplicate key id in this tenant",
                      where);
            return -1;
        }
    }

    k = calloc(1, sizeof(ai_key_t));
    if (k == NULL) {
        ai_tn_err(err, errlen, "out of memory");
        return -1;
    }

    k->tenant = tn;
    k->id = ai_tn_strdup(s);
    ai_limits_init(&k->limits);

    if (k->id == NULL) {
        ai_tn_err(err, errlen, "out of memory");
        goto failed;
    }

    v = json_object_get(obj, "sha256");

    if (v == NULL) {
        ai_tn_err(err, errlen, "%s: sha256: missing", where);
        goto failed;
    }

    if (!json_is_string(v) || json_string_length(v) != AI_DIGEST_HEX_LEN
        || ai_unhex(json_string_value(v), AI_DIGEST_HEX_LEN, k->digest) != 0)
    {
        ai_tn_err(err, errlen, "%s: sha256: must be a string of %d "
                  "hexadecimal digits (the SHA-256 of the key, never the key "
                  "itself)", where, AI_DIGEST_HEX_LEN);
        goto failed;
    }

    v = json_object_get(obj, "description");

    if (v != NULL && !json_is_string(v)) {
        ai_tn_err(err, errlen, "%s: description: must be a string", where);
        goto failed;
    }

    v = json_object_get(obj, "created");

    if (v != NULL && !json_is_null(v)
        && (!json_is_string(v)
            || ai_time_parse(json_string_value(v), &k->created) != 0))
    {
        ai_tn_err(err, errlen, "%s: created: must be an RFC 3339 time such "
                  "as \"2026-11-01T00:00:00Z\"", where);
        goto failed;
    }

    v = json_object_get(obj, "expires");

    if (v != NULL && !json_is_null(v)
        && (!json_is_string(v)
            || ai_time_parse(json_string_value(v), &k->expires) != 0))
    {
        ai_tn_err(err, errlen, "%s: expires: must be an RFC 3339 time such "
                  "as \"2027-01-01T00:00:00Z\", or null for never", where);
        goto failed;
    }

    if (k->created != 0 && k->expires != 0 && k->expires <= k->created) {
        ai_tn_err(err, errlen, "%s: expires: not after \"created\"", where);
        goto failed;
    }

    v = json_object_get(obj, "revoked");

    if (v != NULL) {
        if (!json_is_boolean(v)) {
            ai_tn_err(err, errlen, "%s: revoked: must be true or false, "
                      "not %s", where, ai_json_type_name(v));
            goto failed;
        }

        k->revoked = json_is_true(v);
    }

    v = json_object_get(obj, "limits");

    if (v != NULL) {
        snprintf(lwhere, sizeof(lwhere), "%s: limits", where);

        if (ai_tn_parse_limits_obj(v, &k->limits, lwhere, err, errlen) != 0)
        {
            goto failed;
        }
    }

    return ai_tn_insert_key(ts, k, err, errlen);

failed:

    ai_tn_free_key(k);
    return -1;
}


static ai_tenant_t *
ai_tn_new_tenant(ai_tenants_t *ts, const char *name)
{
    size_t         cap;
    ai_tenant_t   *tn, **p;

    if (ts->ntenants == ts->tenants_cap) {
        cap = ts->tenants_cap ? 2 * ts->tenants_cap : 8;
        p = realloc(ts->tenants, cap * sizeof(ai_tenant_t *));
        if (p == NULL) {
            return NULL;
        }

        ts->tenants = p;
        ts->tenants_cap = cap;
    }

    tn = calloc(1, sizeof(ai_tenant_t));
    if (tn == NULL) {
        return NULL;
    }

    tn->name = ai_tn_strdup(name);
    if (tn->name == NULL) {
        free(tn);
        return NULL;
    }

    ai_limits_init(&tn->limits);
    ts->tenants[ts->ntenants++] = tn;

    return tn;
}


/* takes k: on failure it is freed */

static int
ai_tn_insert_key(ai_tenants_t *ts, ai_key_t *k, char *err, size_t errlen)
{
    size_t         i, mask, cap;
    uint64_t       h;
    ai_key_t     **p, *other;
    ai_tenant_t   *tn;

    tn = k->tenant;

    if (ts->nkeys >= AI_TN_MAX_KEYS) {
        ai_tn_err(err, errlen, "more than %u keys", AI_TN_MAX_KEYS);
        goto failed;
    }

    if (2 * (ts->nkeys + 1) > ts->nslots
        && ai_tn_rehash(ts, 2 * ts->nslots) != 0)
    {
        ai_tn_err(err, errlen, "out of memory");
        goto failed;
    }

    memcpy(&h, k->digest, sizeof(h));
    mask = ts->nslots - 1;

    for (i = (size_t) h & mask; ts->slots[i] != 0; i = (i + 1) & mask) {
        other = ts->keys[ts->slots[i] - 1];

        if (memcmp(other->digest, k->digest, AI_DIGEST_LEN) == 0) {
            ai_tn_err(err, errlen, "tenant \"%s\" key \"%s\": sha256: the "
                      "same digest as tenant \"%s\" key \"%s\"", tn->name,
                      k->id, other->tenant->name, other->id);
            goto failed;
        }
    }

    if (ts->nkeys == ts->keys_cap) {
        cap = ts->keys_cap ? 2 * ts->keys_cap : 16;
        p = realloc(ts->keys, cap * sizeof(ai_key_t *));
        if (p == NULL) {
            ai_tn_err(err, errlen, "out of memory");
            goto failed;
        }

        ts->keys = p;
        ts->keys_cap = cap;
    }

    if (tn->nkeys == tn->keys_cap) {
        cap = tn->keys_cap ? 2 * tn->keys_cap : 4;
        p = realloc(tn->keys, cap * sizeof(ai_key_t *));
        if (p == NULL) {
            ai_tn_err(err, errlen, "out of memory");
            goto failed;
        }

        tn->keys = p;
        tn->keys_cap = cap;
    }

    ts->keys[ts->nkeys++] = k;
    ts->slots[i] = (uint32_t) ts->nkeys;
    tn->keys[tn->nkeys++] = k;

    return 0;

failed:

    ai_tn_free_key(k);
    return -1;
}


static int
ai_tn_rehash(ai_tenants_t *ts, size_t nslots)
{
    size_t     i, j, mask;
    uint32_t  *slots;
    uint64_t   h;

    slots = calloc(nslots, sizeof(uint32_t));
    if (slots == NULL) {
        return -1;
    }

    mask = nslots - 1;

    for (i = 0; i < ts->nkeys; i++) {
        memcpy(&h, ts->keys[i]->digest, sizeof(h));

        for (j = (size_t) h & mask; slots[j] != 0; j = (j + 1) & mask) {
            /* void */
        }

        slots[j] = (uint32_t) (i + 1);
    }

    free(ts->slots);
    ts->slots = slots;
    ts->nslots = nslots;

    return 0;
}


static void
ai_tn_free_key(ai_key_t *k)
{
    if (k == NULL) {
        return;
    }

    free(k->id);
    OPENSSL_cleanse(k->digest, sizeof(k->digest));
    free(k);
}


static void
ai_tn_free_tenant(ai_tenant_t *tn)
{
    size_t  i;

    for (i = 0; i < tn->nmodels; i++) {
        free(tn->models[i]);
    }

    for (i = 0; i < tn->nmodel_limits; i++) {
        free(tn->model_limits[i].model);
    }

    free(tn->models);
    free(tn->model_limits);
    free(tn->keys);
    free(tn->name);
    free(tn);
}
