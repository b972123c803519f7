
/*
 * aigw: the Redis key store (docs/tenants.md, "The Redis key store").
 *
 * A key whose digest is not in the tenants file is looked up in Redis,
 * HGETALL <prefix>:key:<sha256hex>, through the worker's non-blocking
 * client (ngx_http_ai_redis.c); the request waits for the answer, never
 * the worker.  Answers, found or not, are kept per worker for keys_ttl in
 * a bounded table (a red-black tree by digest plus an LRU queue), so a
 * known key costs Redis one command per worker per keys_ttl and a flood of
 * random keys cannot grow memory.  Concurrent requests with the same
 * digest share one command.  Only the digest ever reaches Redis.
 *
 * An entry's key may be in use by requests (ctx->key) when the entry
 * leaves the table (expired, evicted): it is unlinked then, and freed when
 * the last of those requests is freed.
 */

#include "ngx_http_ai_gateway.h"


#define NGX_HTTP_AI_KEYS_PENDING         0    /* Redis was asked */
#define NGX_HTTP_AI_KEYS_FOUND           1    /* key set */
#define NGX_HTTP_AI_KEYS_REFUSED         2    /* unknown or unusable */
#define NGX_HTTP_AI_KEYS_FAILED          3    /* no answer: never cached */

#define NGX_HTTP_AI_KEYS_DEFAULT_TTL     10000
#define NGX_HTTP_AI_KEYS_DEFAULT_MAX     10000


struct ngx_http_ai_keys_s {
    ngx_http_ai_redis_t            *redis;
    ngx_str_t                       prefix;
    ngx_msec_t                      ttl;
    ngx_uint_t                      max;
    ai_tenants_t                   *tenants;

    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     lru;           /* answered, newest first */
    ngx_uint_t                      count;         /* entries in the tree */
};


typedef struct {
    ngx_rbtree_node_t               node;          /* key: digest's start */
    ngx_queue_t                     lru;
    ngx_queue_t                     waiters;       /* while PENDING */
    u_char                          digest[AI_DIGEST_LEN];
    ngx_uint_t                      state;
    ngx_msec_t                      expires;       /* of the answer */
    ngx_uint_t                      refs;          /* requests holding key */
    ai_key_t                       *key;
    ngx_http_ai_keys_t             *keys;
    unsigned                        linked:1;      /* in the tree */
    unsigned                        in_lru:1;
} ngx_http_ai_keys_entry_t;


/* a request's part, in its pool */
typedef struct {
    ngx_queue_t                     queue;         /* in entry->waiters */
    ngx_http_request_t             *request;
    ngx_http_ai_keys_entry_t       *entry;
    unsigned                        waiting:1;
    unsigned                        held:1;        /* a reference */
} ngx_http_ai_keys_req_t;


static ngx_http_ai_keys_entry_t *ngx_http_ai_keys_find(ngx_http_ai_keys_t *keys,
    const u_char *digest);
static void ngx_http_ai_keys_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_ai_keys_entry_t *ngx_http_ai_keys_add(
    ngx_http_ai_keys_t *keys, const u_char *digest, ngx_log_t *log);
static void ngx_http_ai_keys_unlink(ngx_http_ai_keys_t *keys,
    ngx_http_ai_keys_entry_t *e);
static void ngx_http_ai_keys_unref(ngx_http_ai_keys_entry_t *e);
static void ngx_http_ai_keys_free(ngx_http_ai_keys_entry_t *e);
static void ngx_http_ai_keys_reply(ngx_http_ai_redis_cmd_t *cmd,
    redisReply *reply, void *data);
static void ngx_http_ai_keys_parse(ngx_http_ai_keys_t *keys,
    ngx_http_ai_keys_entry_t *e, redisReply *reply);
static ngx_int_t ngx_http_ai_keys_answer(ngx_http_ai_keys_req_t *kr,
    ai_key_status_e *st, const ai_key_t **k);
static void ngx_http_ai_keys_cleanup(void *data);


/*
 * ai_tenants FILE [keys=URL] [keys_prefix=STR] [keys_ttl=TIME]
 *            [keys_cache=N] [keys_timeout=TIME] [keys_connect_timeout=TIME]
 * from argument "first" on; called by the ai_tenants directive.
 */

char *
ngx_http_ai_keys_conf(ngx_conf_t *cf, ngx_http_ai_main_conf_t *amcf,
    ngx_uint_t first)
{
    char                *err;
    ngx_int_t            n;
    ngx_str_t           *value, url, s;
    ngx_uint_t           i, any;
    ngx_msec_t           ms, timeout, connect_timeout;
    ngx_http_ai_keys_t  *keys;

    value = cf->args->elts;

    if (cf->args->nelts <= first) {
        return NGX_CONF_OK;
    }

    keys = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_keys_t));
    if (keys == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_null(&url);
    ngx_str_set(&keys->prefix, "aigw");
    keys->ttl = NGX_HTTP_AI_KEYS_DEFAULT_TTL;
    keys->max = NGX_HTTP_AI_KEYS_DEFAULT_MAX;
    timeout = 0;
    connect_timeout = 0;
    any = 0;

    for (i = first; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "keys=", 5) == 0) {
            url.data = value[i].data + 5;
            url.len = value[i].len - 5;
            continue;
        }

        any = 1;

        if (ngx_strncmp(value[i].data, "keys_prefix=", 12) == 0) {
            keys->prefix.data = value[i].data + 12;
            keys->prefix.len = value[i].len - 12;

            if (keys->prefix.len == 0 || keys->prefix.len > 128
                || ngx_strlchr(keys->prefix.data,
                               keys->prefix.data + keys->prefix.len, ' '))
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "keys_ttl=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            /* 0: every request asks Redis (requests in flight together
             * still share one command) */
            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR) {
                goto invalid;
            }

            keys->ttl = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "keys_cache=", 11) == 0) {
            n = ngx_atoi(value[i].data + 11, value[i].len - 11);
            if (n == NGX_ERROR || n < 1) {
                goto invalid;
            }

            keys->max = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "keys_timeout=", 13) == 0
            || ngx_strncmp(value[i].data, "keys_connect_timeout=", 21) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            if (value[i].data[5] == 't') {
                timeout = ms;

            } else {
                connect_timeout = ms;
            }

            continue;
        }

        goto invalid;
    }

    if (url.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           any ? "ai_tenants: keys_* parameters need "
                                 "keys=redis://..."
                               : "ai_tenants: keys= needs a store URL");
        return NGX_CONF_ERROR;
    }

    err = NULL;
    keys->redis = ngx_http_ai_redis_conf(cf, &url, connect_timeout, timeout,
                                         &err);
    if (keys->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_tenants: invalid key store \"%V\": %s",
                           &url, err ? err : "error");
        return NGX_CONF_ERROR;
    }

    keys->tenants = amcf->tenants;

    ngx_rbtree_init(&keys->rbtree, &keys->sentinel,
                    ngx_http_ai_keys_insert_value);
    ngx_queue_init(&keys->lru);

    amcf->keys = keys;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_tenants: invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


/*
 * A key that is not in the file.  NGX_OK: *st (and *k when the store knows
 * the key) are set.  NGX_AGAIN: Redis is being asked;
 * ngx_http_ai_auth_resume() is called with the answer.  NGX_BUSY: the
 * store cannot be asked now.  NGX_ERROR: no memory.
 */

ngx_int_t
ngx_http_ai_keys_lookup(ngx_http_request_t *r, const u_char *digest,
    ai_key_status_e *st, const ai_key_t **k)
{
    u_char                     name[256], *p;
    size_t                     argvlen[2];
    const char                *argv[2];
    ngx_pool_cleanup_t        *cln;
    ngx_http_ai_keys_t        *keys;
    ngx_http_ai_keys_req_t    *kr;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_keys_entry_t  *e;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    keys = amcf->keys;

    *st = AI_KEY_UNKNOWN;
    *k = NULL;

    e = ngx_http_ai_keys_find(keys, digest);

    if (e && e->state != NGX_HTTP_AI_KEYS_PENDING
        && (ngx_msec_int_t) (e->expires - ngx_current_msec) <= 0)
    {
        /* an old answer: ask again (requests holding its key keep it) */
        ngx_http_ai_keys_unlink(keys, e);
        e = NULL;
    }

    if (e && e->in_lru) {
        /* used: the last to go */
        ngx_queue_remove(&e->lru);
        ngx_queue_insert_head(&keys->lru, &e->lru);
    }

    if (e == NULL) {
        e = ngx_http_ai_keys_add(keys, digest, r->connection->log);
        if (e == NULL) {
            return NGX_BUSY;
        }

        /* keys_prefix is at most 128 bytes */
        p = ngx_cpymem(name, keys->prefix.data, keys->prefix.len);
        p = ngx_cpymem(p, ":key:", 5);
        ai_hex(digest, AI_DIGEST_LEN, (char *) p);
        p += AI_DIGEST_HEX_LEN;

        argv[0] = "HGETALL";
        argvlen[0] = 7;
        argv[1] = (char *) name;
        argvlen[1] = p - name;

        if (ngx_http_ai_redis_send(keys->redis, ngx_http_ai_keys_reply, e,
                                   2, argv, argvlen)
            == NULL)
        {
            /* down: the client logs the outage once */
            ngx_http_ai_keys_unlink(keys, e);
            return NGX_BUSY;
        }
    }

    kr = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_keys_req_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (kr == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    kr->request = r;
    kr->entry = e;

    cln->handler = ngx_http_ai_keys_cleanup;
    cln->data = kr;

    if (e->state == NGX_HTTP_AI_KEYS_PENDING) {
        kr->waiting = 1;
        ngx_queue_insert_tail(&e->waiters, &kr->queue);
        return NGX_AGAIN;
    }

    return ngx_http_ai_keys_answer(kr, st, k);
}


static ngx_http_ai_keys_entry_t *
ngx_http_ai_keys_find(ngx_http_ai_keys_t *keys, const u_char *digest)
{
    ngx_int_t                  rc;
    ngx_rbtree_key_t           key;
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_http_ai_keys_entry_t  *e;

    /* a digest is uniformly distributed: its first bytes are a hash */
    ngx_memcpy(&key, digest, sizeof(ngx_rbtree_key_t));

    node = keys->rbtree.root;
    sentinel = keys->rbtree.sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        e = (ngx_http_ai_keys_entry_t *) node;
        rc = ngx_memcmp(digest, e->digest, AI_DIGEST_LEN);

        if (rc == 0) {
            return e;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_ai_keys_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t         **p;
    ngx_http_ai_keys_entry_t   *e, *t;

    e = (ngx_http_ai_keys_entry_t *) node;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            t = (ngx_http_ai_keys_entry_t *) temp;
            p = (ngx_memcmp(e->digest, t->digest, AI_DIGEST_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* a PENDING entry; the least recently used answer makes room */

static ngx_http_ai_keys_entry_t *
ngx_http_ai_keys_add(ngx_http_ai_keys_t *keys, const u_char *digest,
    ngx_log_t *log)
{
    ngx_queue_t               *q;
    ngx_http_ai_keys_entry_t  *e;

    if (keys->count >= keys->max) {

        if (ngx_queue_empty(&keys->lru)) {
            /* every entry is a question in flight */
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "ai: key store: %ui lookups in flight, the "
                          "keys_cache size: a key is refused", keys->count);
            return NULL;
        }

        q = ngx_queue_last(&keys->lru);
        e = ngx_queue_data(q, ngx_http_ai_keys_entry_t, lru);
        ngx_http_ai_keys_unlink(keys, e);
    }

    e = ngx_alloc(sizeof(ngx_http_ai_keys_entry_t), log);
    if (e == NULL) {
        return NULL;
    }

    ngx_memzero(e, sizeof(ngx_http_ai_keys_entry_t));

    ngx_memcpy(e->digest, digest, AI_DIGEST_LEN);
    ngx_memcpy(&e->node.key, digest, sizeof(ngx_rbtree_key_t));
    ngx_queue_init(&e->waiters);
    e->state = NGX_HTTP_AI_KEYS_PENDING;
    e->keys = keys;
    e->linked = 1;

    ngx_rbtree_insert(&keys->rbtree, &e->node);
    keys->count++;

    return e;
}


static void
ngx_http_ai_keys_unlink(ngx_http_ai_keys_t *keys, ngx_http_ai_keys_entry_t *e)
{
    if (!e->linked) {
        return;
    }

    ngx_rbtree_delete(&keys->rbtree, &e->node);
    keys->count--;
    e->linked = 0;

    if (e->in_lru) {
        ngx_queue_remove(&e->lru);
        e->in_lru = 0;
    }

    if (e->refs == 0) {
        ngx_http_ai_keys_free(e);
    }
}


static void
ngx_http_ai_keys_unref(ngx_http_ai_keys_entry_t *e)
{
    if (--e->refs == 0 && !e->linked) {
        ngx_http_ai_keys_free(e);
    }
}


static void
ngx_http_ai_keys_free(ngx_http_ai_keys_entry_t *e)
{
    if (e->key) {
        ai_key_free(e->key);
    }

    ngx_explicit_memzero(e->digest, AI_DIGEST_LEN);
    ngx_free(e);
}


/* Redis answered (or the command failed): every waiting request goes on */

static void
ngx_http_ai_keys_reply(ngx_http_ai_redis_cmd_t *cmd, redisReply *reply,
    void *data)
{
    ngx_http_ai_keys_entry_t *e = data;

    ngx_int_t                rc;
    ngx_queue_t             *q;
    const ai_key_t          *k;
    ai_key_status_e          st;
    ngx_http_ai_keys_t      *keys;
    ngx_http_ai_keys_req_t  *kr;

    keys = e->keys;

    /* the requests resumed below may not free it under us */
    e->refs++;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {

        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "ai: key store %V: HGETALL failed: %s",
                          ngx_http_ai_redis_name(keys->redis), reply->str);
        }

        e->state = NGX_HTTP_AI_KEYS_FAILED;
        ngx_http_ai_keys_unlink(keys, e);

    } else {
        ngx_http_ai_keys_parse(keys, e, reply);

        e->expires = ngx_current_msec + keys->ttl;

        if (e->linked) {
            ngx_queue_insert_head(&keys->lru, &e->lru);
            e->in_lru = 1;
        }
    }

    while (!ngx_queue_empty(&e->waiters)) {
        q = ngx_queue_head(&e->waiters);
        ngx_queue_remove(q);

        kr = ngx_queue_data(q, ngx_http_ai_keys_req_t, queue);
        kr->waiting = 0;

        rc = ngx_http_ai_keys_answer(kr, &st, &k);

        ngx_http_ai_auth_resume(kr->request, rc, st, k, e->digest);
    }

    ngx_http_ai_keys_unref(e);
}


/*
 * The hash as aigw-keys writes it: tenant, id, created, expires (Unix
 * seconds, 0 = never), revoked (0 or 1), and optionally limits (JSON),
 * description, revoked_at.  Anything unusable refuses the key, with a
 * line that names the digest's prefix, never the key.
 */

static void
ngx_http_ai_keys_parse(ngx_http_ai_keys_t *keys, ngx_http_ai_keys_entry_t *e,
    redisReply *reply)
{
    char                 hex[AI_DIGEST_HEX_LEN + 1], err[256];
    size_t               i;
    time_t               created, expires;
    ngx_int_t            revoked;
    ai_limits_t          limits;
    redisReply          *f, *v, *tenant, *id, *lim;
    const char          *why;
    const ai_tenant_t   *tn;

    e->state = NGX_HTTP_AI_KEYS_REFUSED;

    if (reply->elements == 0) {
        return;                                   /* no such key */
    }

    tenant = NULL;
    id = NULL;
    lim = NULL;
    created = 0;
    expires = 0;
    revoked = -1;
    why = NULL;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        f = reply->element[i];
        v = reply->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            why = "not a hash of strings";
            goto refused;
        }

        if (ngx_strcmp(f->str, "tenant") == 0) {
            tenant = v;

        } else if (ngx_strcmp(f->str, "id") == 0) {
            id = v;

        } else if (ngx_strcmp(f->str, "limits") == 0) {
            lim = v;

        } else if (ngx_strcmp(f->str, "created") == 0) {
            created = ngx_atotm((u_char *) v->str, v->len);
            if (created == NGX_ERROR) {
                why = "created: not a Unix time";
                goto refused;
            }

        } else if (ngx_strcmp(f->str, "expires") == 0) {
            expires = ngx_atotm((u_char *) v->str, v->len);
            if (expires == NGX_ERROR) {
                why = "expires: not a Unix time";
                goto refused;
            }

        } else if (ngx_strcmp(f->str, "revoked") == 0) {
            revoked = (v->len == 1 && (v->str[0] == '0' || v->str[0] == '1'))
                      ? v->str[0] - '0' : -2;
        }
    }

    if (tenant == NULL || id == NULL) {
        why = "no tenant or no id";
        goto refused;
    }

    if (tenant->len != ngx_strlen(tenant->str)
        || !ai_name_valid(tenant->str, tenant->len))
    {
        why = "tenant: not 1-64 of A-Z a-z 0-9 . _ -";
        goto refused;
    }

    if (id->len != ngx_strlen(id->str)
        || !ai_name_valid(id->str, id->len))
    {
        why = "id: not 1-64 of A-Z a-z 0-9 . _ -";
        goto refused;
    }

    if (revoked < 0) {
        why = "revoked: missing, or not 0 or 1";
        goto refused;
    }

    tn = ai_tenants_find(keys->tenants, tenant->str, tenant->len);

    if (tn == NULL) {
        ai_hex(e->digest, 6, hex);
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "ai: key store: key \"%s\" (sha256 %s) names tenant "
                      "\"%s\", which is not in the tenants file: refused",
                      id->str, hex, tenant->str);
        return;
    }

    if (ai_tenant_key_id_used(tn, id->str)) {
        /* both would count in one key scope of the limits */
        why = "id: a key of the tenants file has that id";
        goto refused;
    }

    ai_limits_init(&limits);

    if (lim && ai_limits_parse(lim->str, lim->len, &limits, err, sizeof(err))
               != 0)
    {
        ai_hex(e->digest, 6, hex);
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "ai: key store: key \"%s\" of tenant \"%s\" "
                      "(sha256 %s): %s: refused",
                      id->str, ai_tenant_name(tn), hex, err);
        return;
    }

    e->key = ai_key_new(tn, id->str, e->digest, created, expires,
                        (int) revoked, &limits);

    if (e->key == NULL) {
        why = "out of memory";
        goto refused;
    }

    e->state = NGX_HTTP_AI_KEYS_FOUND;
    return;

refused:

    ai_hex(e->digest, 6, hex);
    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "ai: key store: key with sha256 %s: %s: refused", hex, why);
}


/* what a request learns from an answered entry */

static ngx_int_t
ngx_http_ai_keys_answer(ngx_http_ai_keys_req_t *kr, ai_key_status_e *st,
    const ai_key_t **k)
{
    ngx_http_ai_keys_entry_t  *e;

    e = kr->entry;

    *st = AI_KEY_UNKNOWN;
    *k = NULL;

    switch (e->state) {

    case NGX_HTTP_AI_KEYS_FOUND:
        /* revoked and expired are checked now, not when it was cached */
        *st = ai_key_check(e->key, ngx_time());
        *k = e->key;

        e->refs++;
        kr->held = 1;

        return NGX_OK;

    case NGX_HTTP_AI_KEYS_REFUSED:
        return NGX_OK;

    default:
        return NGX_BUSY;
    }
}


static void
ngx_http_ai_keys_cleanup(void *data)
{
    ngx_http_ai_keys_req_t *kr = data;

    if (kr->waiting) {
        /* the request died before Redis answered */
        ngx_queue_remove(&kr->queue);
        kr->waiting = 0;
    }

    if (kr->held) {
        kr->held = 0;
        ngx_http_ai_keys_unref(kr->entry);
    }
}


ngx_int_t
ngx_http_ai_keys_init_process(ngx_cycle_t *cycle)
{
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_gateway_module);

    if (amcf == NULL || amcf->keys == NULL) {
        return NGX_OK;
    }

    return ngx_http_ai_redis_init_process(cycle, amcf->keys->redis);
}


void
ngx_http_ai_keys_exit_process(ngx_cycle_t *cycle)
{
    ngx_rbtree_node_t         *node;
    ngx_http_ai_keys_t        *keys;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_keys_entry_t  *e;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_gateway_module);

    if (amcf == NULL || amcf->keys == NULL) {
        return;
    }

    keys = amcf->keys;

    /* handlers are not called: no entry is touched after this */
    ngx_http_ai_redis_exit_process(cycle, keys->redis);

    while (keys->rbtree.root != keys->rbtree.sentinel) {
        node = ngx_rbtree_min(keys->rbtree.root, keys->rbtree.sentinel);
        e = (ngx_http_ai_keys_entry_t *) node;

        /* requests still holding it are gone with the process */
        e->refs = 0;
        ngx_http_ai_keys_unlink(keys, e);
    }
}
