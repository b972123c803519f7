
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
};


static ngx_int_t ngx_http_ai_limits_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_ai_limit_node_t *ngx_http_ai_limits_node(
    ngx_http_ai_limits_zone_t *z, ngx_str_t *scope);
static void ngx_http_ai_limits_cleanup(void *data);


char *
ngx_http_ai_limits_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    u_char                     *p;
    ssize_t                     size;
    ngx_int_t                   n;
    ngx_str_t                  *value, name, s;
    ngx_uint_t                  i;
    ngx_http_ai_limits_zone_t  *z;

    if (amcf->limits) {
        return "is duplicate";
    }

    value = cf->args->elts;
    size = 0;
    ngx_str_null(&name);

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
    int                        which;
    time_t                     now;
    ngx_uint_t                 i, j;
    ngx_pool_cleanup_t        *cln;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_limit_scope_t *sc;
    ngx_http_ai_limits_zone_t *z;
    ngx_http_ai_limit_node_t  *node;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    z = amcf->limits;

    if (z == NULL || ctx->nlimits == 0) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

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

        for (j = 0; j < AI_CNT_N; j++) {
            ctx->limits[i].window[j] = node->counters.window[j];
        }

        ctx->limits[i].snapshot = node->counters;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    ctx->limits_reserved = 1;
    cln->handler = ngx_http_ai_limits_cleanup;
    cln->data = r;

    return NGX_OK;
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

    if (ctx == NULL || !ctx->limits_reserved) {
        return;
    }

    ctx->limits_reserved = 0;

    ngx_http_ai_usage_final(r, ctx, &delta);

    for (j = 0; j < AI_CNT_N; j++) {
        delta.amount[j] -= ctx->charge.amount[j];
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    for (i = 0; i < ctx->nlimits; i++) {
        node = ctx->limits[i].node;

        node->counters.concurrent--;

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
