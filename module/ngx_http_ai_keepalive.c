
/*
 * aigw: connection reuse towards providers.  A provider named by host (not
 * by an upstream{} block) gets an implicit upstream, which stock NGINX never
 * keeps alive; this small cache gives those the behaviour of "keepalive N"
 * so that every request does not pay a TCP and TLS handshake.  Providers
 * that point at an upstream{} block use that block's own keepalive.
 */

#include "ngx_http_ai_gateway.h"


struct ngx_http_ai_keepalive_s {
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_uint_t                         max_cached;
    ngx_msec_t                         timeout;

    ngx_queue_t                        cache;
    ngx_queue_t                        free;

    ngx_http_upstream_init_peer_pt     original_init_peer;

#if (NGX_HTTP_SSL)
    ngx_ssl_session_t                 *ssl_session;
#endif
};


typedef struct {
    ngx_http_ai_keepalive_t           *pool;
    ngx_queue_t                        queue;
    ngx_connection_t                  *connection;

    socklen_t                          socklen;
    ngx_sockaddr_t                     sockaddr;
} ngx_http_ai_keepalive_item_t;


typedef struct {
    ngx_http_ai_keepalive_t           *pool;
    ngx_http_upstream_t               *upstream;
    void                              *data;

    ngx_event_get_peer_pt              original_get_peer;
    ngx_event_free_peer_pt             original_free_peer;

} ngx_http_ai_keepalive_peer_t;


static ngx_int_t ngx_http_ai_keepalive_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_ai_keepalive_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_ai_keepalive_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static void ngx_http_ai_keepalive_dummy_handler(ngx_event_t *ev);
static void ngx_http_ai_keepalive_close_handler(ngx_event_t *ev);
static void ngx_http_ai_keepalive_close(ngx_connection_t *c);
#if (NGX_HTTP_SSL)
static void ngx_http_ai_keepalive_cleanup(void *data);
static ngx_int_t ngx_http_ai_keepalive_set_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_ai_keepalive_save_session(ngx_peer_connection_t *pc,
    void *data);
#endif


ngx_int_t
ngx_http_ai_keepalive_add(ngx_conf_t *cf, ngx_http_ai_main_conf_t *amcf,
    ngx_http_ai_provider_t *p)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_ai_keepalive_t  **pools, *pool;

    /*
     * One pool per provider, even when two providers share an upstream
     * (same host and port): their TLS settings may differ, and a
     * connection verified for one must never serve the other.
     */

    pool = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_keepalive_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pool->uscf = p->upstream.upstream;
    pool->max_cached = p->keepalive;
    pool->timeout = p->keepalive_timeout;

#if (NGX_HTTP_SSL)
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_ai_keepalive_cleanup;
    cln->data = pool;
#endif

    pools = ngx_array_push(&amcf->keepalive_pools);
    if (pools == NULL) {
        return NGX_ERROR;
    }

    *pools = pool;

    p->keepalive_pool = pool;

    return NGX_OK;
}


/*
 * Called from init_main_conf, after the upstream module has initialised
 * every upstream (the round robin peers are in place to be wrapped).
 */

ngx_int_t
ngx_http_ai_keepalive_init(ngx_conf_t *cf, ngx_http_ai_main_conf_t *amcf)
{
    ngx_uint_t                     i, j;
    ngx_http_ai_keepalive_t      **pools, *pool;
    ngx_http_ai_keepalive_item_t  *items;

    pools = amcf->keepalive_pools.elts;

    for (i = 0; i < amcf->keepalive_pools.nelts; i++) {
        pool = pools[i];

        if (pool->uscf->flags & NGX_HTTP_UPSTREAM_CREATE) {
            /* an upstream{} block: its own "keepalive" decides */
            continue;
        }

        if (pool->uscf->peer.init == NULL) {
            continue;
        }

        if (pool->uscf->peer.init == ngx_http_ai_keepalive_init_peer) {
            /* wrapped already for another provider of this upstream */

            for (j = 0; j < i; j++) {
                if (pools[j]->uscf == pool->uscf) {
                    pool->original_init_peer = pools[j]->original_init_peer;
                    break;
                }
            }

        } else {
            pool->original_init_peer = pool->uscf->peer.init;
            pool->uscf->peer.init = ngx_http_ai_keepalive_init_peer;
        }

        items = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_keepalive_item_t)
                                      * pool->max_cached);
        if (items == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_init(&pool->cache);
        ngx_queue_init(&pool->free);

        for (j = 0; j < pool->max_cached; j++) {
            ngx_queue_insert_head(&pool->free, &items[j].queue);
            items[j].pool = pool;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_keepalive_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_ai_keepalive_t       *pool;
    ngx_http_ai_ctx_t             *ctx;
    ngx_http_ai_keepalive_peer_t  *kp;

    /* the request's provider owns the pool: no search on the hot path */

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx == NULL || ctx->target.provider == NULL) {
        return NGX_ERROR;
    }

    pool = ctx->target.provider->keepalive_pool;

    if (pool == NULL || pool->uscf != us) {
        return NGX_ERROR;
    }

    kp = ngx_palloc(r->pool, sizeof(ngx_http_ai_keepalive_peer_t));
    if (kp == NULL) {
        return NGX_ERROR;
    }

    if (pool->original_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    kp->pool = pool;
    kp->upstream = r->upstream;
    kp->data = r->upstream->peer.data;
    kp->original_get_peer = r->upstream->peer.get;
    kp->original_free_peer = r->upstream->peer.free;

    r->upstream->peer.data = kp;
    r->upstream->peer.get = ngx_http_ai_keepalive_get_peer;
    r->upstream->peer.free = ngx_http_ai_keepalive_free_peer;

#if (NGX_HTTP_SSL)
    r->upstream->peer.set_session = ngx_http_ai_keepalive_set_session;
    r->upstream->peer.save_session = ngx_http_ai_keepalive_save_session;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_keepalive_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ai_keepalive_peer_t  *kp = data;

    ngx_int_t                      rc;
    ngx_queue_t                   *q, *cache;
    ngx_connection_t              *c;
    ngx_http_ai_keepalive_item_t  *item;

    rc = kp->original_get_peer(pc, kp->data);

    if (rc != NGX_OK) {
        return rc;
    }

    cache = &kp->pool->cache;

    for (q = ngx_queue_head(cache);
         q != ngx_queue_sentinel(cache);
         q = ngx_queue_next(q))
    {
        item = ngx_queue_data(q, ngx_http_ai_keepalive_item_t, queue);
        c = item->connection;

        if (ngx_memn2cmp((u_char *) &item->sockaddr, (u_char *) pc->sockaddr,
                         item->socklen, pc->socklen)
            == 0)
        {
            ngx_queue_remove(q);
            ngx_queue_insert_head(&kp->pool->free, q);

            c->idle = 0;
            c->sent = 0;
            c->data = NULL;
            c->log = pc->log;
            c->read->log = pc->log;
            c->write->log = pc->log;
            c->pool->log = pc->log;

            if (c->read->timer_set) {
                ngx_del_timer(c->read);
            }

            pc->connection = c;
            pc->cached = 1;

            return NGX_DONE;
        }
    }

    return NGX_OK;
}


static void
ngx_http_ai_keepalive_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_ai_keepalive_peer_t  *kp = data;

    ngx_queue_t                   *q;
    ngx_connection_t              *c;
    ngx_http_upstream_t           *u;
    ngx_http_ai_keepalive_item_t  *item;

    u = kp->upstream;
    c = pc->connection;

    if (state & NGX_PEER_FAILED
        || c == NULL
        || c->read->eof
        || c->read->error
        || c->read->timedout
        || c->write->error
        || c->write->timedout
        || !u->keepalive
        || !u->request_body_sent
        || ngx_terminate
        || ngx_exiting)
    {
        goto invalid;
    }

    if (c->requests >= 1000 || kp->pool->max_cached == 0) {
        goto invalid;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        goto invalid;
    }

    if (ngx_queue_empty(&kp->pool->free)) {
        q = ngx_queue_last(&kp->pool->cache);
        ngx_queue_remove(q);

        item = ngx_queue_data(q, ngx_http_ai_keepalive_item_t, queue);
        ngx_http_ai_keepalive_close(item->connection);

    } else {
        q = ngx_queue_head(&kp->pool->free);
        ngx_queue_remove(q);

        item = ngx_queue_data(q, ngx_http_ai_keepalive_item_t, queue);
    }

    ngx_queue_insert_head(&kp->pool->cache, q);

    item->connection = c;
    pc->connection = NULL;

    c->read->delayed = 0;
    ngx_add_timer(c->read, kp->pool->timeout);

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->write->handler = ngx_http_ai_keepalive_dummy_handler;
    c->read->handler = ngx_http_ai_keepalive_close_handler;

    c->data = item;
    c->idle = 1;
    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->pool->log = ngx_cycle->log;

    item->socklen = pc->socklen;
    ngx_memcpy(&item->sockaddr, pc->sockaddr, pc->socklen);

    if (c->read->ready) {
        ngx_http_ai_keepalive_close_handler(c->read);
    }

invalid:

    kp->original_free_peer(pc, kp->data, state);
}


static void
ngx_http_ai_keepalive_dummy_handler(ngx_event_t *ev)
{
}


static void
ngx_http_ai_keepalive_close_handler(ngx_event_t *ev)
{
    int                            n;
    char                           buf[1];
    ngx_connection_t              *c;
    ngx_http_ai_keepalive_item_t  *item;

    c = ev->data;

    if (c->close || c->read->timedout) {
        goto close;
    }

    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
        ev->ready = 0;

        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            goto close;
        }

        return;
    }

close:

    item = c->data;

    ngx_http_ai_keepalive_close(c);

    ngx_queue_remove(&item->queue);
    ngx_queue_insert_head(&item->pool->free, &item->queue);
}


static void
ngx_http_ai_keepalive_close(ngx_connection_t *c)
{
#if (NGX_HTTP_SSL)

    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            c->ssl->handler = ngx_http_ai_keepalive_close;
            return;
        }
    }

#endif

    ngx_destroy_pool(c->pool);
    ngx_close_connection(c);
}


#if (NGX_HTTP_SSL)

static void
ngx_http_ai_keepalive_cleanup(void *data)
{
    ngx_http_ai_keepalive_t  *pool = data;

    if (pool->ssl_session) {
        ngx_ssl_free_session(pool->ssl_session);
        pool->ssl_session = NULL;
    }
}


/*
 * TLS sessions are kept per provider, not per peer as the round robin
 * balancer does: two providers on one host may trust different CAs, and a
 * session resumed from one would skip the other's verification.
 */

static ngx_int_t
ngx_http_ai_keepalive_set_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ai_keepalive_peer_t  *kp = data;

    if (kp->pool->ssl_session == NULL) {
        return NGX_OK;
    }

    return ngx_ssl_set_session(pc->connection, kp->pool->ssl_session);
}


static void
ngx_http_ai_keepalive_save_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ai_keepalive_peer_t  *kp = data;

    ngx_ssl_session_t  *session, *old;

    session = ngx_ssl_get_session(pc->connection);
    if (session == NULL) {
        return;
    }

    old = kp->pool->ssl_session;
    kp->pool->ssl_session = session;

    if (old) {
        ngx_ssl_free_session(old);
    }
}

#endif
