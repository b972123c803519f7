
/*
 * aigw: tenants' limits in shared memory, exact across all workers.
 *
 * One node per scope ("t:<tenant>", "k:<tenant>:<key>", "m:<tenant>:<model>")
 * in a red-black tree with an LRU queue, like limit_req.  A request reserves
 * on every scope that applies, all or nothing, under the zone's mutex:
 * one request, an estimate of its tokens and of its cost.  When it ends the
 * estimate is replaced by the provider's real usage.
 */

#include "ngx_http_ai_gateway.h"


typedef struct {
    ngx_str_node_t              sn;
    ngx_queue_t                 queue;
    ai_counters_t               counters;

    /* counted here while Redis was unreachable, not yet pushed there */
    ai_counters_t               unsynced;
    ngx_uint_t                  unsynced_any;

    u_char                      data[1];
} ngx_http_ai_limit_node_t;


typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;
} ngx_http_ai_limits_shctx_t;


struct ngx_http_ai_limits_zone_s {
    ngx_http_ai_limits_shctx_t *sh;
    ngx_slab_pool_t            *shpool;
    ngx_shm_zone_t             *shm_zone;

    ngx_http_ai_redis_t        *redis;        /* store=redis://... */
    ngx_str_t                   prefix;
    ngx_flag_t                  fail_open;
    ngx_msec_t                  sync;         /* 0: a round trip each */
};


/* what one sync pushed, to read the global totals back into the zone */
typedef struct {
    ngx_uint_t                  n;
    struct {
        u_char                  scope[256];
        size_t                  scope_len;
        int                     counter;
        int64_t                 window;
    }                           item[1];
} ngx_http_ai_limits_pushed_t;


/* one counter of one scope, as a Redis key */
typedef struct {
    ngx_str_t                   key;
    ngx_uint_t                  scope;
    int                         counter;      /* AI_CNT_*, or CONCURRENT */
    int64_t                     amount;
} ngx_http_ai_redis_key_t;


typedef struct {
    ngx_http_request_t         *request;
    ngx_http_ai_redis_key_t    *keys;
    ngx_uint_t                  nkeys;
} ngx_http_ai_limits_redis_t;


static ngx_int_t ngx_http_ai_limits_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_ai_limit_node_t *ngx_http_ai_limits_node(
    ngx_http_ai_limits_zone_t *z, ngx_str_t *scope);
static void ngx_http_ai_limits_cleanup(void *data);
static ngx_int_t ngx_http_ai_limits_local(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
static ngx_int_t ngx_http_ai_limits_redis_send(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_http_ai_limits_zone_t *z);
static void ngx_http_ai_limits_redis_reply(ngx_http_ai_redis_cmd_t *cmd,
    redisReply *reply, void *data);
static void ngx_http_ai_limits_redis_adjust(ngx_http_ai_limits_zone_t *z,
    ngx_http_ai_limits_redis_t *lr, ai_charge_t *delta, ngx_uint_t release,
    ngx_log_t *log);
static void ngx_http_ai_limits_unsynced(ngx_http_ai_limit_node_t *node,
    ai_charge_t *ch, time_t now);
static void ngx_http_ai_limits_sync(ngx_event_t *ev);
static void ngx_http_ai_limits_synced(ngx_http_ai_redis_cmd_t *cmd,
    redisReply *reply, void *data);
static void ngx_http_ai_note_left(ngx_http_ai_ctx_t *ctx,
    ngx_http_ai_limit_scope_t *sc, int counter, int64_t used);


char *
ngx_http_ai_limits_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    char                       *err;
    u_char                     *p;
    ssize_t                     size;
    ngx_int_t                   n;
    ngx_str_t                  *value, name, s, store, prefix;
    ngx_uint_t                  i;
    ngx_flag_t                  fail_open;
    ngx_msec_t                  ms, store_timeout, store_connect_timeout, sync;
    ngx_http_ai_limits_zone_t  *z;

    if (amcf->limits) {
        return "is duplicate";
    }

    value = cf->args->elts;
    size = 0;
    ngx_str_null(&name);
    ngx_str_null(&store);
    ngx_str_set(&prefix, "aigw");
    fail_open = 1;
    store_timeout = 0;
    store_connect_timeout = 0;
    sync = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                goto invalid;
            }

            name.len = p - name.data;
            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (name.len == 0 || size == NGX_ERROR) {
                goto invalid;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "ai_limits: zone \"%V\" is too small, "
                                   "at least %uz bytes", &name,
                                   8 * ngx_pagesize);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "store=", 6) == 0) {
            store.data = value[i].data + 6;
            store.len = value[i].len - 6;
            continue;
        }

        if (ngx_strncmp(value[i].data, "failure=", 8) == 0) {
            if (ngx_strcmp(value[i].data + 8, "open") == 0) {
                fail_open = 1;

            } else if (ngx_strcmp(value[i].data + 8, "closed") == 0) {
                fail_open = 0;

            } else {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "prefix=", 7) == 0) {
            prefix.data = value[i].data + 7;
            prefix.len = value[i].len - 7;

            if (prefix.len == 0 || ngx_strlchr(prefix.data,
                                               prefix.data + prefix.len, ' '))
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "store_timeout=", 14) == 0
            || ngx_strncmp(value[i].data, "store_connect_timeout=", 22) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            if (value[i].data[6] == 't') {
                store_timeout = ms;

            } else {
                store_connect_timeout = ms;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "sync=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            sync = ngx_parse_time(&s, 0);
            if (sync == (ngx_msec_t) NGX_ERROR || sync < 10) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "reserve=", 8) == 0) {
            n = ngx_atoi(value[i].data + 8, value[i].len - 8);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            amcf->reserve_tokens = n;
            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_limits: zone=name:size is required");
        return NGX_CONF_ERROR;
    }

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_limits_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    z->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                        &ngx_http_ai_gateway_module);
    if (z->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (z->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_limits: zone \"%V\" is already used",
                           &name);
        return NGX_CONF_ERROR;
    }

    z->shm_zone->init = ngx_http_ai_limits_init_zone;
    z->shm_zone->data = z;

    z->prefix = prefix;
    z->fail_open = fail_open;
    z->sync = sync;

    if (sync && store.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_limits: sync= needs store=redis://...");
        return NGX_CONF_ERROR;
    }

    if (store.len) {
        err = NULL;
        z->redis = ngx_http_ai_redis_conf(cf, &store, store_connect_timeout,
                                          store_timeout, &err);
        if (z->redis == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_limits: invalid store \"%V\": %s",
                               &store, err ? err : "error");
            return NGX_CONF_ERROR;
        }
    }

    amcf->limits = z;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_limits: invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_ai_limits_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ai_limits_zone_t  *oz = data;

    size_t                      len;
    ngx_http_ai_limits_zone_t  *z;

    z = shm_zone->data;

    if (oz) {
        /* a reload: the counters carry on */
        z->sh = oz->sh;
        z->shpool = oz->shpool;
        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
    }

    z->sh = ngx_slab_alloc(z->shpool, sizeof(ngx_http_ai_limits_shctx_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;

    ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&z->sh->queue);

    len = sizeof(" in ai_limits zone \"\"") + shm_zone->shm.name.len;

    z->shpool->log_ctx = ngx_slab_alloc(z->shpool, len);
    if (z->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(z->shpool->log_ctx, " in ai_limits zone \"%V\"%Z",
                &shm_zone->shm.name);

    z->shpool->log_nomem = 0;

    return NGX_OK;
}


/* under the zone's mutex */

static ngx_http_ai_limit_node_t *
ngx_http_ai_limits_node(ngx_http_ai_limits_zone_t *z, ngx_str_t *scope)
{
    uint32_t                   hash;
    ngx_uint_t                 tries;
    ngx_queue_t               *q;
    ngx_str_node_t            *sn;
    ngx_http_ai_limit_node_t  *node, *old;

    hash = ngx_crc32_short(scope->data, scope->len);

    sn = ngx_str_rbtree_lookup(&z->sh->rbtree, scope, hash);

    if (sn) {
        node = (ngx_http_ai_limit_node_t *) sn;
        ngx_queue_remove(&node->queue);
        ngx_queue_insert_head(&z->sh->queue, &node->queue);
        return node;
    }

    for (tries = 0; ; tries++) {
        node = ngx_slab_alloc_locked(z->shpool,
                                     offsetof(ngx_http_ai_limit_node_t, data)
                                     + scope->len);
        if (node) {
            break;
        }

        /*
         * Full: forget the least recently used scope that has nothing in
         * flight.  Its windows start again from zero, so the zone must be
         * sized for every scope that matters (see docs/limits.md).
         */

        if (tries > 16 || ngx_queue_empty(&z->sh->queue)) {
            return NULL;
        }

        for (q = ngx_queue_last(&z->sh->queue);
             q != ngx_queue_sentinel(&z->sh->queue);
             q = ngx_queue_prev(q))
        {
            old = ngx_queue_data(q, ngx_http_ai_limit_node_t, queue);

            if (old->counters.concurrent == 0) {
                ngx_queue_remove(q);
                ngx_rbtree_delete(&z->sh->rbtree, &old->sn.node);
                ngx_slab_free_locked(z->shpool, old);
                break;
            }
        }

        if (q == ngx_queue_sentinel(&z->sh->queue)) {
            return NULL;
        }
    }

    ngx_memzero(node, offsetof(ngx_http_ai_limit_node_t, data));
    ngx_memcpy(node->data, scope->data, scope->len);

    node->sn.node.key = hash;
    node->sn.str.data = node->data;
    node->sn.str.len = scope->len;

    ngx_rbtree_insert(&z->sh->rbtree, &node->sn.node);
    ngx_queue_insert_head(&z->sh->queue, &node->queue);

    return node;
}


/*
 * Reserves the request on every scope in ctx->limits; all or nothing.
 * NGX_OK, NGX_DECLINED (ctx->limit_which, ctx->limit_retry_after say why),
 * or NGX_ERROR.
 */

ngx_int_t
ngx_http_ai_limits_reserve(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_limits_zone_t *z;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    z = amcf->limits;

    ctx->rl_limit[0] = AI_UNLIMITED;
    ctx->rl_limit[1] = AI_UNLIMITED;
    ctx->rl_left[0] = AI_UNLIMITED;
    ctx->rl_left[1] = AI_UNLIMITED;

    if (z == NULL || ctx->nlimits == 0) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_ai_limits_cleanup;
    cln->data = r;

    if (z->redis && !z->sync) {
        return ngx_http_ai_limits_redis_send(r, ctx, z);
    }

    /*
     * sync=: checked against the zone, which holds the global totals as
     * of the last sync plus this gateway's own since; the deltas go to
     * Redis every sync interval (ngx_http_ai_limits_sync()).
     */

    return ngx_http_ai_limits_local(r, ctx);
}


/* the shared-memory limiter: this gateway's workers only */

static ngx_int_t
ngx_http_ai_limits_local(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    int                        which;
    time_t                     now;
    ngx_uint_t                 i, j;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_limit_scope_t *sc;
    ngx_http_ai_limits_zone_t *z;
    ngx_http_ai_limit_node_t  *node;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    z = amcf->limits;

    now = ngx_time();

    ngx_shmtx_lock(&z->shpool->mutex);

    for (i = 0; i < ctx->nlimits; i++) {
        sc = &ctx->limits[i];

        node = ngx_http_ai_limits_node(z, &sc->scope);

        if (node == NULL) {
            ngx_shmtx_unlock(&z->shpool->mutex);
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "ai: ai_limits zone \"%V\" is full",
                          &z->shm_zone->shm.name);
            return NGX_ERROR;
        }

        sc->node = node;

        ai_counters_roll(&node->counters, now);

        if (ai_counters_check(&node->counters, &sc->quota, &ctx->charge,
                              &which)
            != 0)
        {
            ngx_shmtx_unlock(&z->shpool->mutex);

            ctx->limit_which = which;
            ctx->limit_scope = i;
            ctx->limit_retry_after = (which == AI_CNT_CONCURRENT)
                                     ? 1 : ai_window_reset(which, now);
            return NGX_DECLINED;
        }
    }

    for (i = 0; i < ctx->nlimits; i++) {
        node = ctx->limits[i].node;

        ai_counters_apply(&node->counters, &ctx->charge);
        node->counters.concurrent++;

        if (z->redis) {
            /* Redis is unreachable: what is counted here goes there later */
            ngx_http_ai_limits_unsynced(node, &ctx->charge, now);
        }

        for (j = 0; j < AI_CNT_N; j++) {
            ctx->limits[i].window[j] = node->counters.window[j];
        }

        ctx->limits[i].snapshot = node->counters;

        ngx_http_ai_note_left(ctx, &ctx->limits[i], AI_CNT_REQ_MIN,
                              node->counters.used[AI_CNT_REQ_MIN]);
        ngx_http_ai_note_left(ctx, &ctx->limits[i], AI_CNT_TOK_MIN,
                              node->counters.used[AI_CNT_TOK_MIN]);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    ctx->limits_reserved = 1;

    return NGX_OK;
}


/* the most constraining scope sets the x-ratelimit-* headers */

static void
ngx_http_ai_note_left(ngx_http_ai_ctx_t *ctx, ngx_http_ai_limit_scope_t *sc,
    int counter, int64_t used)
{
    int      k;
    int64_t  max, left;

    max = sc->quota.max[counter];

    if (max == AI_UNLIMITED) {
        return;
    }

    k = (counter == AI_CNT_REQ_MIN) ? 0 : 1;
    left = max - used;

    if (left < 0) {
        left = 0;
    }

    if (ctx->rl_left[k] == AI_UNLIMITED || left < ctx->rl_left[k]) {
        ctx->rl_left[k] = left;
        ctx->rl_limit[k] = max;
    }
}


/*
 * Redis: exact across gateways.  One MULTI/EXEC on the way in: INCRBY on
 * every window key that applies (and INCR of the concurrency gauge), each
 * with its expiry; the new values say whether the request fits.  If it
 * does not, the increments are taken back with DECRBY.  No scripts.
 */

static void
ngx_http_ai_window_key(ngx_pool_t *pool, ngx_http_ai_limits_zone_t *z,
    ngx_str_t *scope, int counter, int64_t window, ngx_str_t *out)
{
    u_char  *p;

    p = ngx_pnalloc(pool, z->prefix.len + scope->len + 64);
    if (p == NULL) {
        out->len = 0;
        return;
    }

    out->data = p;
    p = ngx_sprintf(p, "%V:u:%V:", &z->prefix, scope);

    switch (counter) {
    case AI_CNT_REQ_MIN:
        p = ngx_sprintf(p, "rq:m%L", window);
        break;
    case AI_CNT_TOK_MIN:
        p = ngx_sprintf(p, "tk:m%L", window);
        break;
    case AI_CNT_TOK_DAY:
        p = ngx_sprintf(p, "tk:d%L", window);
        break;
    case AI_CNT_TOK_MONTH:
        p = ngx_sprintf(p, "tk:M%04L%02L", window / 12, window % 12 + 1);
        break;
    case AI_CNT_COST_DAY:
        p = ngx_sprintf(p, "cost:d%L", window);
        break;
    case AI_CNT_COST_MONTH:
        p = ngx_sprintf(p, "cost:M%04L%02L", window / 12, window % 12 + 1);
        break;
    default:
        p = ngx_sprintf(out->data, "%V:c:%V", &z->prefix, scope);
    }

    out->len = p - out->data;
}


static ngx_msec_t
ngx_http_ai_window_ttl(int counter)
{
    switch (counter) {
    case AI_CNT_REQ_MIN:
    case AI_CNT_TOK_MIN:
        return 120000;
    case AI_CNT_TOK_DAY:
    case AI_CNT_COST_DAY:
        return 2 * 86400000;
    case AI_CNT_TOK_MONTH:
    case AI_CNT_COST_MONTH:
        return (ngx_msec_t) 35 * 86400000;
    default:
        /* a gauge a crashed gateway cannot leave stuck forever */
        return 600000;
    }
}


static ngx_int_t
ngx_http_ai_limits_redis_send(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_http_ai_limits_zone_t *z)
{
    int                          c;
    time_t                       now;
    u_char                      *p;
    ngx_uint_t                   i, n, k;
    ngx_http_ai_redis_key_t     *keys;
    ngx_http_ai_redis_argv_t    *cmds;
    ngx_http_ai_limits_redis_t  *lr;
    ngx_http_ai_limit_scope_t   *sc;
    const char                 **argv;
    size_t                      *argvlen;

    now = ngx_time();

    lr = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_limits_redis_t));
    keys = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_redis_key_t)
                                * ctx->nlimits * (AI_CNT_N + 1));
    if (lr == NULL || keys == NULL) {
        return NGX_ERROR;
    }

    lr->request = r;
    lr->keys = keys;
    n = 0;

    for (i = 0; i < ctx->nlimits; i++) {
        sc = &ctx->limits[i];

        for (c = 0; c <= AI_CNT_N; c++) {

            if (c < AI_CNT_N) {
                sc->window[c] = ai_window_of(c, now);

                /* the tenant's own scope counts everything, for usage */
                if (sc->quota.max[c] == AI_UNLIMITED
                    && sc->scope.data[0] != 't')
                {
                    continue;
                }

            } else if (sc->quota.concurrent == AI_UNLIMITED) {
                continue;
            }

            keys[n].scope = i;
            keys[n].counter = c;
            keys[n].amount = (c < AI_CNT_N) ? ctx->charge.amount[c] : 1;
            ngx_http_ai_window_key(r->pool, z, &sc->scope, c,
                                   c < AI_CNT_N ? sc->window[c] : 0,
                                   &keys[n].key);

            if (keys[n].key.len == 0) {
                return NGX_ERROR;
            }

            n++;
        }
    }

    lr->nkeys = n;

    /* INCRBY key amount, PEXPIRE key ttl: two commands a key */

    cmds = ngx_palloc(r->pool, 2 * n * sizeof(ngx_http_ai_redis_argv_t));
    argv = ngx_palloc(r->pool, 6 * n * sizeof(char *));
    argvlen = ngx_palloc(r->pool, 6 * n * sizeof(size_t));
    p = ngx_pnalloc(r->pool, 2 * n * NGX_INT64_LEN);

    if (cmds == NULL || argv == NULL || argvlen == NULL || p == NULL) {
        return NGX_ERROR;
    }

    for (k = 0; k < n; k++) {
        argv[6 * k] = "INCRBY";
        argvlen[6 * k] = 6;
        argv[6 * k + 1] = (char *) keys[k].key.data;
        argvlen[6 * k + 1] = keys[k].key.len;
        argv[6 * k + 2] = (char *) p;
        argvlen[6 * k + 2] = ngx_sprintf(p, "%L", keys[k].amount) - p;
        p += argvlen[6 * k + 2];

        argv[6 * k + 3] = "PEXPIRE";
        argvlen[6 * k + 3] = 7;
        argv[6 * k + 4] = (char *) keys[k].key.data;
        argvlen[6 * k + 4] = keys[k].key.len;
        argv[6 * k + 5] = (char *) p;
        argvlen[6 * k + 5] = ngx_sprintf(p, "%M",
                                 ngx_http_ai_window_ttl(keys[k].counter))
                             - p;
        p += argvlen[6 * k + 5];

        cmds[2 * k].argc = 3;
        cmds[2 * k].argv = &argv[6 * k];
        cmds[2 * k].argvlen = &argvlen[6 * k];
        cmds[2 * k + 1].argc = 3;
        cmds[2 * k + 1].argv = &argv[6 * k + 3];
        cmds[2 * k + 1].argvlen = &argvlen[6 * k + 3];
    }

    ctx->redis_state = lr;

    if (n == 0) {
        ctx->limits_reserved = 1;
        ctx->limits_redis = 1;
        return NGX_OK;
    }

    ctx->redis_cmd = ngx_http_ai_redis_send_multi(z->redis,
                                 ngx_http_ai_limits_redis_reply, lr, 2 * n,
                                 cmds);

    if (ctx->redis_cmd == NULL) {
        /* the store is down: the client logs the outage once */

        if (z->fail_open) {
            return ngx_http_ai_limits_local(r, ctx);
        }

        return NGX_BUSY;
    }

    return NGX_AGAIN;
}


static void
ngx_http_ai_limits_redis_reply(ngx_http_ai_redis_cmd_t *cmd,
    redisReply *reply, void *data)
{
    ngx_http_ai_limits_redis_t *lr = data;

    int                         which;
    time_t                      now;
    int64_t                     v;
    ngx_int_t                   rc;
    ngx_uint_t                  k;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_ai_ctx_t          *ctx;
    ngx_http_ai_main_conf_t    *amcf;
    ngx_http_ai_limits_zone_t  *z;
    ngx_http_ai_limit_scope_t  *sc;
    ngx_http_ai_redis_key_t    *key;

    r = lr->request;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    z = amcf->limits;

    ctx->redis_cmd = NULL;
    now = ngx_time();

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2 * lr->nkeys)
    {
        /* timeout, connection lost, or EXEC aborted */

        if (z->fail_open) {
            rc = ngx_http_ai_limits_local(r, ctx);

            if (rc == NGX_OK) {
                rc = NGX_DECLINED - 1;       /* dispatch below */

            } else if (rc == NGX_DECLINED) {
                rc = ngx_http_ai_limit_error(r, ctx);

            } else {
                rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

        } else {
            rc = ngx_http_ai_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "server_error", "limits_unavailable",
                                        NULL,
                                        "The rate limit store is "
                                        "unavailable; please retry "
                                        "shortly.");
        }

        goto done;
    }

    ctx->limits_reserved = 1;
    ctx->limits_redis = 1;

    which = -1;

    for (k = 0; k < lr->nkeys; k++) {
        key = &lr->keys[k];
        sc = &ctx->limits[key->scope];

        if (reply->element[2 * k]->type != REDIS_REPLY_INTEGER) {
            continue;
        }

        v = reply->element[2 * k]->integer;

        if (key->counter == AI_CNT_N) {
            if (which < 0 && v > sc->quota.concurrent) {
                which = AI_CNT_CONCURRENT;
                ctx->limit_scope = key->scope;
            }

            continue;
        }

        if (which < 0 && sc->quota.max[key->counter] != AI_UNLIMITED
            && v > sc->quota.max[key->counter])
        {
            which = key->counter;
            ctx->limit_scope = key->scope;
        }

        if (key->counter == AI_CNT_REQ_MIN || key->counter == AI_CNT_TOK_MIN)
        {
            ngx_http_ai_note_left(ctx, sc, key->counter, v);
        }
    }

    if (which >= 0) {
        /* over a limit: give every increment back, then refuse */

        ngx_http_ai_limits_redis_adjust(z, lr, NULL, 1, c->log);

        ctx->limits_reserved = 0;
        ctx->limits_redis = 0;
        ctx->limit_which = which;
        ctx->limit_retry_after = (which == AI_CNT_CONCURRENT)
                                 ? 1 : ai_window_reset(which, now);

        rc = ngx_http_ai_limit_error(r, ctx);
        goto done;
    }

    rc = NGX_DECLINED - 1;

done:

    if (rc == NGX_DECLINED - 1) {
        rc = ngx_http_ai_dispatch(r, ctx);
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/*
 * Takes back (release) or corrects (delta) what a request put in Redis,
 * in the same windows; no answer is awaited.
 */

static void
ngx_http_ai_limits_redis_adjust(ngx_http_ai_limits_zone_t *z,
    ngx_http_ai_limits_redis_t *lr, ai_charge_t *delta, ngx_uint_t release,
    ngx_log_t *log)
{
    u_char                    *p;
    int64_t                    amount;
    ngx_uint_t                 k, n;
    const char                *argv[3 * 24];
    size_t                     argvlen[3 * 24];
    u_char                     nums[24 * NGX_INT64_LEN];
    ngx_http_ai_redis_argv_t   cmds[24];

    n = 0;
    p = nums;

    for (k = 0; k < lr->nkeys && n < 24; k++) {

        if (lr->keys[k].counter == AI_CNT_N) {
            amount = -1;                          /* the gauge, always */

        } else if (release) {
            amount = -lr->keys[k].amount;

        } else {
            amount = delta->amount[lr->keys[k].counter];
        }

        if (amount == 0) {
            continue;
        }

        argv[3 * n] = "INCRBY";
        argvlen[3 * n] = 6;
        argv[3 * n + 1] = (char *) lr->keys[k].key.data;
        argvlen[3 * n + 1] = lr->keys[k].key.len;
        argv[3 * n + 2] = (char *) p;
        argvlen[3 * n + 2] = ngx_sprintf(p, "%L", amount) - p;
        p += argvlen[3 * n + 2];

        cmds[n].argc = 3;
        cmds[n].argv = &argv[3 * n];
        cmds[n].argvlen = &argvlen[3 * n];
        n++;
    }

    if (n == 0) {
        return;
    }

    if (ngx_http_ai_redis_send_multi(z->redis, NULL, NULL, n, cmds) == NULL) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "ai: limits store down: a request's final usage was "
                      "not recorded");
    }
}


/*
 * The request is over: the estimate becomes the real usage (the provider's
 * when it reported one, else what was counted on the way), in the windows
 * the estimate went to; the concurrency slot is given back.
 */

static void
ngx_http_ai_limits_cleanup(void *data)
{
    ngx_http_request_t *r = data;

    ngx_uint_t                 i, j;
    ai_charge_t                delta;
    ngx_http_ai_ctx_t         *ctx;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_limits_zone_t *z;
    ngx_http_ai_limit_node_t  *node;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    z = amcf->limits;

    if (ctx == NULL) {
        return;
    }

    if (ctx->redis_cmd) {
        /* the request died before Redis answered: the reply is dropped */
        ngx_http_ai_redis_cancel(ctx->redis_cmd);
        ctx->redis_cmd = NULL;
    }

    if (!ctx->limits_reserved) {
        return;
    }

    ctx->limits_reserved = 0;

    ngx_http_ai_usage_final(r, ctx, &delta);

    for (j = 0; j < AI_CNT_N; j++) {
        delta.amount[j] -= ctx->charge.amount[j];
    }

    if (ctx->limits_redis) {
        ngx_http_ai_limits_redis_adjust(z, ctx->redis_state, &delta, 0,
                                        r->connection->log);
        return;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    for (i = 0; i < ctx->nlimits; i++) {
        node = ctx->limits[i].node;

        node->counters.concurrent--;

        if (z->redis) {
            ngx_http_ai_limits_unsynced(node, &delta, ngx_time());
        }

        for (j = 0; j < AI_CNT_N; j++) {
            if (node->counters.window[j] == ctx->limits[i].window[j]) {
                node->counters.used[j] += delta.amount[j];

                if (node->counters.used[j] < 0) {
                    node->counters.used[j] = 0;
                }
            }
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/* a scope's counters, for the usage API and the rate limit headers */

ngx_int_t
ngx_http_ai_limits_peek(ngx_http_ai_main_conf_t *amcf, ngx_str_t *scope,
    ai_counters_t *out)
{
    uint32_t                   hash;
    ngx_str_node_t            *sn;
    ngx_http_ai_limits_zone_t *z;

    z = amcf->limits;

    if (z == NULL) {
        return NGX_DECLINED;
    }

    hash = ngx_crc32_short(scope->data, scope->len);

    ngx_shmtx_lock(&z->shpool->mutex);

    sn = ngx_str_rbtree_lookup(&z->sh->rbtree, scope, hash);

    if (sn) {
        *out = ((ngx_http_ai_limit_node_t *) sn)->counters;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (sn == NULL) {
        ngx_memzero(out, sizeof(ai_counters_t));
        return NGX_DECLINED;
    }

    ai_counters_roll(out, ngx_time());

    return NGX_OK;
}


/* under the mutex */

static void
ngx_http_ai_limits_unsynced(ngx_http_ai_limit_node_t *node, ai_charge_t *ch,
    time_t now)
{
    int      c;
    int64_t  w;

    for (c = 0; c < AI_CNT_N; c++) {
        if (ch->amount[c] == 0) {
            continue;
        }

        w = ai_window_of(c, now);

        if (node->unsynced.window[c] != w) {
            /* an older window's delta no longer matters there */
            node->unsynced.window[c] = w;
            node->unsynced.used[c] = 0;
        }

        node->unsynced.used[c] += ch->amount[c];
        node->unsynced_any = 1;
    }
}


/*
 * Once a second, in every worker: what was counted locally during an
 * outage is pushed to Redis as soon as it is reachable again (the first
 * worker to look takes it all), so the shared counters catch up.
 */

static ngx_event_t  ngx_http_ai_limits_sync_ev;


static void
ngx_http_ai_limits_sync(ngx_event_t *ev)
{
    int                         c;
    u_char                     *p;
    size_t                      n;
    ngx_pool_t                 *pool;
    ngx_queue_t                *q;
    ngx_str_t                   scope, key;
    const char                **argv;
    size_t                     *argvlen;
    ngx_http_ai_redis_argv_t   *cmds;
    ngx_http_ai_main_conf_t    *amcf;
    ngx_http_ai_limits_zone_t  *z;
    ngx_http_ai_limit_node_t   *node;
    ngx_http_ai_limits_pushed_t *pushed;

    amcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_ai_gateway_module);
    z = amcf->limits;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    ngx_add_timer(ev, z->sync ? z->sync : 1000);

    if (!ngx_http_ai_redis_is_up(z->redis)) {
        return;
    }

    pushed = ngx_alloc(sizeof(ngx_http_ai_limits_pushed_t)
                       + 250 * sizeof(pushed->item[0]), ev->log);
    if (pushed == NULL) {
        return;
    }

    pushed->n = 0;

    pool = ngx_create_pool(4096, ev->log);
    if (pool == NULL) {
        ngx_free(pushed);
        return;
    }

    cmds = ngx_palloc(pool, 2 * 256 * sizeof(ngx_http_ai_redis_argv_t));
    argv = ngx_palloc(pool, 6 * 256 * sizeof(char *));
    argvlen = ngx_palloc(pool, 6 * 256 * sizeof(size_t));

    if (cmds == NULL || argv == NULL || argvlen == NULL) {
        ngx_destroy_pool(pool);
        ngx_free(pushed);
        return;
    }

    n = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    for (q = ngx_queue_head(&z->sh->queue);
         q != ngx_queue_sentinel(&z->sh->queue) && n < 250;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_ai_limit_node_t, queue);

        if (!node->unsynced_any) {
            continue;
        }

        scope.data = node->data;
        scope.len = node->sn.str.len;

        for (c = 0; c < AI_CNT_N && n < 250; c++) {
            if (node->unsynced.used[c] == 0) {
                continue;
            }

            ngx_http_ai_window_key(pool, z, &scope, c,
                                   node->unsynced.window[c], &key);
            p = ngx_pnalloc(pool, 2 * NGX_INT64_LEN);

            if (key.len == 0 || p == NULL) {
                continue;
            }

            argv[6 * n] = "INCRBY";
            argvlen[6 * n] = 6;
            argv[6 * n + 1] = (char *) key.data;
            argvlen[6 * n + 1] = key.len;
            argv[6 * n + 2] = (char *) p;
            argvlen[6 * n + 2] = ngx_sprintf(p, "%L",
                                             node->unsynced.used[c]) - p;
            p += argvlen[6 * n + 2];

            argv[6 * n + 3] = "PEXPIRE";
            argvlen[6 * n + 3] = 7;
            argv[6 * n + 4] = (char *) key.data;
            argvlen[6 * n + 4] = key.len;
            argv[6 * n + 5] = (char *) p;
            argvlen[6 * n + 5] = ngx_sprintf(p, "%M",
                                             ngx_http_ai_window_ttl(c)) - p;

            cmds[2 * n].argc = 3;
            cmds[2 * n].argv = &argv[6 * n];
            cmds[2 * n].argvlen = &argvlen[6 * n];
            cmds[2 * n + 1].argc = 3;
            cmds[2 * n + 1].argv = &argv[6 * n + 3];
            cmds[2 * n + 1].argvlen = &argvlen[6 * n + 3];

            if (scope.len <= sizeof(pushed->item[0].scope)) {
                ngx_memcpy(pushed->item[n].scope, scope.data, scope.len);
            }

            pushed->item[n].scope_len = scope.len;
            pushed->item[n].counter = c;
            pushed->item[n].window = node->unsynced.window[c];
            pushed->n = n + 1;

            n++;
            node->unsynced.used[c] = 0;
        }

        node->unsynced_any = 0;

        for (c = 0; c < AI_CNT_N; c++) {
            if (node->unsynced.used[c]) {
                node->unsynced_any = 1;
            }
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (n == 0) {
        ngx_free(pushed);

    } else if (ngx_http_ai_redis_send_multi(z->redis,
                                            ngx_http_ai_limits_synced,
                                            pushed, 2 * n, cmds)
               == NULL)
    {
        ngx_free(pushed);
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "ai: limits store: %uz counters could not be pushed",
                      n);

    } else if (!z->sync) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "ai: limits store: %uz counters counted during an "
                      "outage pushed to Redis", n);
    }

    ngx_destroy_pool(pool);
}


/*
 * The totals Redis answered: every gateway's counts.  The zone's counter
 * becomes that total plus what this gateway counted since the push.
 */

static void
ngx_http_ai_limits_synced(ngx_http_ai_redis_cmd_t *cmd, redisReply *reply,
    void *data)
{
    ngx_http_ai_limits_pushed_t *pushed = data;

    int                         c;
    uint32_t                    hash;
    ngx_str_t                   scope;
    ngx_uint_t                  k;
    ngx_str_node_t             *sn;
    redisReply                 *v;
    ngx_http_ai_main_conf_t    *amcf;
    ngx_http_ai_limits_zone_t  *z;
    ngx_http_ai_limit_node_t   *node;

    amcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_ai_gateway_module);
    z = amcf ? amcf->limits : NULL;

    if (z == NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2 * pushed->n)
    {
        ngx_free(pushed);
        return;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    for (k = 0; k < pushed->n; k++) {
        v = reply->element[2 * k];

        if (v->type != REDIS_REPLY_INTEGER
            || pushed->item[k].scope_len > sizeof(pushed->item[k].scope))
        {
            continue;
        }

        scope.data = pushed->item[k].scope;
        scope.len = pushed->item[k].scope_len;
        hash = ngx_crc32_short(scope.data, scope.len);

        sn = ngx_str_rbtree_lookup(&z->sh->rbtree, &scope, hash);
        if (sn == NULL) {
            continue;
        }

        node = (ngx_http_ai_limit_node_t *) sn;
        c = pushed->item[k].counter;

        if (node->counters.window[c] == pushed->item[k].window) {
            node->counters.used[c] = v->integer
                                     + (node->unsynced.window[c]
                                        == pushed->item[k].window
                                        ? node->unsynced.used[c] : 0);
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    ngx_free(pushed);
}


ngx_int_t
ngx_http_ai_limits_init_process(ngx_cycle_t *cycle)
{
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_gateway_module);

    if (amcf == NULL || amcf->limits == NULL || amcf->limits->redis == NULL)
    {
        return NGX_OK;
    }

    ngx_http_ai_limits_sync_ev.handler = ngx_http_ai_limits_sync;
    ngx_http_ai_limits_sync_ev.log = cycle->log;
    ngx_http_ai_limits_sync_ev.data = amcf;
    ngx_http_ai_limits_sync_ev.cancelable = 1;
    ngx_add_timer(&ngx_http_ai_limits_sync_ev,
                  amcf->limits->sync ? amcf->limits->sync : 1000);

    return ngx_http_ai_redis_init_process(cycle, amcf->limits->redis);
}


void
ngx_http_ai_limits_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_gateway_module);

    if (amcf && amcf->limits && amcf->limits->redis) {
        ngx_http_ai_redis_exit_process(cycle, amcf->limits->redis);
    }
}
