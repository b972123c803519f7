
/*
 * Tenants and virtual keys of aigw: the tenants file (JSON), its
 * validation, and key authentication.  Keys are held only as SHA-256
 * digests; a presented key is hashed, looked up by its digest in an
 * open-addressing table and confirmed with a constant-time comparison.
 * No NGINX types here: the module, the unit tests and tools/aigw-keys
 * all use this file.  The format is described in docs/tenants.md.
 */

#ifndef _AI_TENANTS_H_INCLUDED_
#define _AI_TENANTS_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>


#define AI_LIMIT_NONE        (-1)          /* unlimited */
#define AI_DIGEST_LEN        32            /* SHA-256 */
#define AI_DIGEST_HEX_LEN    64
#define AI_NAME_MAX          64            /* tenant names and key ids */
#define AI_MODEL_NAME_MAX    128
#define AI_KEY_MAX_LEN       512           /* longest key we hash */


/* every member is AI_LIMIT_NONE or >= 0; budgets are micro-USD */
typedef struct {
    int64_t   requests_per_minute;
    int64_t   tokens_per_minute;
    int64_t   concurrent;
    int64_t   tokens_per_day;
    int64_t   tokens_per_month;
    int64_t   budget_per_day_micros;
    int64_t   budget_per_month_micros;
} ai_limits_t;


typedef struct ai_tenant_s   ai_tenant_t;
typedef struct ai_key_s      ai_key_t;
typedef struct ai_tenants_s  ai_tenants_t;


typedef enum {
    AI_KEY_OK = 0,
    AI_KEY_UNKNOWN,
    AI_KEY_REVOKED,
    AI_KEY_EXPIRED
} ai_key_status_e;


/* loading; err gets a message that names the tenant, key and field */

ai_tenants_t *ai_tenants_parse(const char *json, size_t len, char *err,
    size_t errlen);
ai_tenants_t *ai_tenants_load(const char *path, char *err, size_t errlen);
void ai_tenants_free(ai_tenants_t *t);

/*
 * Adds one key that did not come from the file (the Redis key store).
 * The tenant must exist unless create_tenant is set, in which case a
 * tenant without limits is made.  limits may be NULL.  Returns 0, or -1
 * with err set (bad name, bad digest, duplicate digest or id, no memory).
 * Pointers returned earlier stay valid.
 */
int ai_tenants_add_key(ai_tenants_t *t, const char *tenant, const char *id,
    const char *sha256_hex, time_t created, time_t expires, int revoked,
    const ai_limits_t *limits, int create_tenant, char *err, size_t errlen);


/*
 * A key that lives outside the set (the gateway's Redis key store): it
 * points to tenant tn of a loaded set, which must outlive it, and is
 * freed with ai_key_free().  NULL on a bad id, a negative limit or no
 * memory.  A key id that is also an id of a key of the file is refused
 * by the caller (ai_tenant_key_id_used), since both would share usage
 * counters.
 */
ai_key_t *ai_key_new(const ai_tenant_t *tn, const char *id,
    const unsigned char digest[AI_DIGEST_LEN], time_t created,
    time_t expires, int revoked, const ai_limits_t *limits);
void ai_key_free(ai_key_t *k);
int ai_tenant_key_id_used(const ai_tenant_t *tn, const char *id);


/* authentication */

ai_key_status_e ai_tenants_auth(const ai_tenants_t *t,
    const unsigned char *key, size_t len, time_t now, const ai_key_t **out);
ai_key_status_e ai_tenants_auth_digest(const ai_tenants_t *t,
    const unsigned char digest[AI_DIGEST_LEN], time_t now,
    const ai_key_t **out);
const char *ai_key_status_text(ai_key_status_e status);
ai_key_status_e ai_key_check(const ai_key_t *k, time_t now); /* revoked... */


/* keys */

const char *ai_key_id(const ai_key_t *k);
const ai_tenant_t *ai_key_tenant(const ai_key_t *k);
const ai_limits_t *ai_key_limits(const ai_key_t *k);
time_t ai_key_created(const ai_key_t *k);          /* 0 = unknown */
time_t ai_key_expires(const ai_key_t *k);          /* 0 = never */
int ai_key_revoked(const ai_key_t *k);
const unsigned char *ai_key_digest(const ai_key_t *k);
void ai_key_digest_prefix(const ai_key_t *k, char out[13]);


/* tenants */

const char *ai_tenant_name(const ai_tenant_t *t);
const ai_limits_t *ai_tenant_limits(const ai_tenant_t *t);
int ai_tenant_model_allowed(const ai_tenant_t *t, const char *model,
    size_t len);
const ai_limits_t *ai_tenant_model_limits(const ai_tenant_t *t,
    const char *model, size_t len);
size_t ai_tenant_models_count(const ai_tenant_t *t);    /* 0 = all */
const char *ai_tenant_model_at(const ai_tenant_t *t, size_t i);
size_t ai_tenant_model_limits_count(const ai_tenant_t *t);
const char *ai_tenant_model_limits_at(const ai_tenant_t *t, size_t i,
    const ai_limits_t **limits);
size_t ai_tenant_keys_count(const ai_tenant_t *t);
const ai_key_t *ai_tenant_key_at(const ai_tenant_t *t, size_t i);


/* the whole set, for the admin API */

size_t ai_tenants_count(const ai_tenants_t *t);
const ai_tenant_t *ai_tenants_at(const ai_tenants_t *t, size_t i);
const ai_tenant_t *ai_tenants_find(const ai_tenants_t *t, const char *name,
    size_t len);
size_t ai_tenants_keys_count(const ai_tenants_t *t);
const ai_key_t *ai_tenants_key_at(const ai_tenants_t *t, size_t i);


/* helpers shared with tools/aigw-keys */

void ai_limits_init(ai_limits_t *l);                /* all AI_LIMIT_NONE */
int ai_limits_parse(const char *json, size_t len, ai_limits_t *out,
    char *err, size_t errlen);          /* one "limits" object, as text */
int ai_name_valid(const char *s, size_t len);     /* [A-Za-z0-9._-]{1,64} */
int ai_time_parse(const char *s, time_t *out);    /* RFC 3339, 0 or -1 */
void ai_time_format(time_t t, char out[21]);      /* YYYY-MM-DDTHH:MM:SSZ */
void ai_sha256(const unsigned char *data, size_t len,
    unsigned char out[AI_DIGEST_LEN]);
void ai_hex(const unsigned char *data, size_t len, char *out); /* 2*len+1 */
int ai_unhex(const char *hex, size_t hexlen, unsigned char *out);


#endif /* _AI_TENANTS_H_INCLUDED_ */
