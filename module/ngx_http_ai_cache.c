
/*
 * aigw: the response cache.  Exact match on a SHA-256 of the canonical
 * request (ai_cache.c), entries in a shared-memory zone with a byte limit
 * and LRU eviction, shared by all workers and kept across reloads.  A
 * streamed miss is stored as the assembled whole answer, so either shape
 * of request can be served from either shape of miss.  Concurrent
 * identical misses are coalesced: one goes to the provider, the others
 * wait (bounded) for its answer, and go themselves if it fails.
 */

#include "ngx_http_ai_gateway.h"
#include "ai_cache.h"

#include <openssl/evp.h>


#define NGX_HTTP_AI_CACHE_READY     0
#define NGX_HTTP_AI_CACHE_PENDING   1

/* how often a coalesced request looks again, and for how long at most */
#define NGX_HTTP_AI_CACHE_POLL      20
#define NGX_HTTP_AI_CACHE_WAIT      30000


typedef struct ngx_http_ai_cache_node_s  ngx_http_ai_cache_node_t;

struct ngx_http_ai_cache_node_s {
    ngx_http_ai_cache_node_t   *next;         /* in its hash bucket */
    ngx_queue_t                 queue;
    u_char                      digest[AI_CACHE_KEY_LEN];
    time_t                      expires;
    ngx_msec_t                  pending_since;
    ngx_uint_t                  state;
    size_t                      len;          /* the stored answer */
    size_t                      hit_len;      /* then the rendered hit */
    size_t                      sse_len;      /* then the rendered stream */
    ai_cache_hit_t              hit;
    ai_cache_sse_t              sse;          /* edits: after the stream */
    u_char                      data[1];
};

/* the rendered stream's edits: 4-aligned after the bytes of the entry */
#define ngx_http_ai_cache_edits_off(cn)                                     \
    ngx_align((cn)->len + (cn)->hit_len + (cn)->sse_len, sizeof(uint32_t))


/*
 * Entries are found through a hash table (the digest is the hash): one
 * or two memory reads per lookup, where a tree over a large zone took a
 * cache and TLB miss per level.
 */

typedef struct {
    ngx_http_ai_cache_node_t  **buckets;
    ngx_uint_t                  mask;
    ngx_queue_t                 queue;
    ngx_atomic_t                hits;
    ngx_atomic_t                misses;
} ngx_http_ai_cache_sh_t;


struct ngx_http_ai_cache_zone_s {
    ngx_http_ai_cache_sh_t     *sh;
    ngx_slab_pool_t            *shpool;
    ngx_shm_zone_t             *shm_zone;
    time_t                      ttl;
    size_t                      max_entry;

    ngx_http_ai_redis_t        *redis;        /* the shared second tier */
};


/*
 * Per worker: the key of a request body seen before.  The key is a pure
 * function of the body, the endpoint, the force header, the namespace and
 * the resolved model, so a body seen again skips the canonical form.  A
 * slot is found by a cheap 64-bit hash of all of those; a body is taken
 * for the slot's only when it is the same: its bytes are compared with
 * the slot's copy of them (a memcmp, where a SHA-256 of the body cost
 * 0.6 us per KB on every hit).  Copies are kept for bodies up to
 * NGX_HTTP_AI_CACHE_MEMO_BODY while the worker's copies stay within
 * NGX_HTTP_AI_CACHE_MEMO_BYTES; beyond that a slot holds a SHA-256 of the
 * body instead, computed from its second sight (the third uses it).
 */

#define NGX_HTTP_AI_CACHE_MEMO        1024
#define NGX_HTTP_AI_CACHE_MEMO_BODY   (64 * 1024)
#define NGX_HTTP_AI_CACHE_MEMO_BYTES  (8 * 1024 * 1024)
#define NGX_HTTP_AI_CACHE_SCRATCH     (256 * 1024)

typedef struct {
    uint64_t                    cheap;
    u_char                     *copy;         /* tag, ns\0, model\0, body */
    size_t                      copy_len;
    size_t                      copy_cap;
    u_char                      raw[AI_CACHE_KEY_LEN];
    u_char                      key[AI_CACHE_KEY_LEN];
    unsigned                    used:1;
    unsigned                    has_raw:1;
    unsigned                    cacheable:1;
} ngx_http_ai_cache_memo_t;

typedef struct {
    uint64_t                    cheap;
    u_char                      tag[2];
    const char                 *ns;
    size_t                      nslen;        /* with its NUL */
    ngx_str_t                   model;
    ngx_str_t                   body;
    u_char                      raw[AI_CACHE_KEY_LEN];
    unsigned                    has_raw:1;
    unsigned                    skip:1;
} ngx_http_ai_cache_probe_t;

static ngx_http_ai_cache_memo_t  ngx_http_ai_cache_memo[NGX_HTTP_AI_CACHE_MEMO];
static size_t                    ngx_http_ai_cache_memo_bytes;

/* the canonical text is written here, per worker, reused */
static ai_buf_t  ngx_http_ai_cache_scratch[2];


/*
 * A coalesced request waits on a timer that looks at the entry every
 * NGX_HTTP_AI_CACHE_POLL ms (the leader may be in another worker); a
 * leader in the same worker wakes its waiters at once when it stores or
 * gives up, through this worker's list of them.
 */

typedef struct {
    ngx_http_request_t         *request;
    ngx_event_t                 wait;
    ngx_msec_t                  wait_start;
    ngx_queue_t                 queue;        /* this worker's waiters */
} ngx_http_ai_cache_wait_t;

static ngx_queue_t  ngx_http_ai_cache_waiters;


static ngx_int_t ngx_http_ai_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_ai_cache_insert(ngx_http_ai_cache_zone_t *z,
    ngx_http_ai_cache_node_t *cn);
static ngx_http_ai_cache_node_t *ngx_http_ai_cache_find(
    ngx_http_ai_cache_zone_t *z, u_char *digest);
static ngx_http_ai_cache_memo_t *ngx_http_ai_cache_memo_find(
    ngx_http_ai_ctx_t *ctx, int force, const char *ns,
    ngx_http_ai_cache_probe_t *pr);
static void ngx_http_ai_cache_memo_add(ngx_http_ai_cache_probe_t *pr,
    int cacheable, u_char *key);
static void ngx_http_ai_cache_render(ngx_http_ai_cache_zone_t *z,
    u_char *key, u_char *data, size_t len, ngx_uint_t stream);
static ngx_int_t ngx_http_ai_cache_send_rendered_sse(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_http_ai_cache_zone_t *z,
    ngx_http_ai_cache_node_t *cn);
static ngx_int_t ngx_http_ai_cache_send_sse(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_ai_cache_send_rendered(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_http_ai_cache_zone_t *z,
    ngx_http_ai_cache_node_t *cn);
static ngx_int_t ngx_http_ai_cache_serve(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, u_char *data, size_t len);
static void ngx_http_ai_cache_wait_handler(ngx_event_t *ev);
static void ngx_http_ai_cache_cleanup(void *data);
static ngx_int_t ngx_http_ai_cache_header(ngx_http_request_t *r,
    const char *value);
static void ngx_http_ai_cache_remote_set(ngx_http_ai_cache_zone_t *z,
    ngx_http_ai_ctx_t *ctx, const char *body, size_t len);


char *
ngx_http_ai_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    u_char                    *p;
    ssize_t                    size, n;
    ngx_str_t                 *value, name, s;
    ngx_uint_t                 i;
    ngx_http_ai_cache_zone_t  *z;

    if (amcf->cache) {
        return "is duplicate";
    }

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_cache_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    z->ttl = 600;
    z->max_entry = 1024 * 1024;
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

            if (name.len == 0 || size == NGX_ERROR
                || size < (ssize_t) (8 * ngx_pagesize))
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;
            n = ngx_parse_time(&s, 1);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            z->ttl = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "store=", 6) == 0) {
            char  *err = NULL;

            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            z->redis = ngx_http_ai_redis_conf(cf, &s, 0, 0, &err);
            if (z->redis == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "ai_cache: invalid store \"%V\": %s", &s,
                                   err ? err : "error");
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_entry=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;
            n = ngx_parse_size(&s);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            z->max_entry = n;
            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_cache: zone=name:size is required");
        return NGX_CONF_ERROR;
    }

    z->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                        &ngx_http_ai_gateway_module);
    if (z->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (z->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_cache: zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    z->shm_zone->init = ngx_http_ai_cache_init_zone;
    z->shm_zone->data = z;

    amcf->cache = z;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_cache: invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_ai_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ai_cache_zone_t  *oz = data;

    ngx_uint_t                 n;
    ngx_http_ai_cache_zone_t  *z;

    z = shm_zone->data;

    if (oz) {
        z->sh = oz->sh;
        z->shpool = oz->shpool;
        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
    }

    z->sh = ngx_slab_alloc(z->shpool, sizeof(ngx_http_ai_cache_sh_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;

    /*
     * About one bucket per 512 bytes of zone, a power of two (1/64 of the
     * zone): entries take 1 KB or more, so most chains hold at most one
     * node, and a lookup that finds nothing mostly reads one empty bucket
     * (each node visited is a cache miss in a large zone).
     */

    n = 1024;

    while (n < 16 * 1024 * 1024 && n * 512 < shm_zone->shm.size) {
        n *= 2;
    }

    z->sh->buckets = ngx_slab_calloc(z->shpool,
                                     n * sizeof(ngx_http_ai_cache_node_t *));
    if (z->sh->buckets == NULL) {
        return NGX_ERROR;
    }

    z->sh->mask = n - 1;
    ngx_queue_init(&z->sh->queue);

    z->shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_http_ai_cache_node_t **
ngx_http_ai_cache_bucket(ngx_http_ai_cache_zone_t *z, u_char *digest)
{
    uint64_t  h;

    ngx_memcpy(&h, digest, sizeof(uint64_t));

    return &z->sh->buckets[h & z->sh->mask];
}


static void
ngx_http_ai_cache_insert(ngx_http_ai_cache_zone_t *z,
    ngx_http_ai_cache_node_t *cn)
{
    ngx_http_ai_cache_node_t  **b;

    b = ngx_http_ai_cache_bucket(z, cn->digest);
    cn->next = *b;
    *b = cn;
    ngx_queue_insert_head(&z->sh->queue, &cn->queue);
}


static ngx_http_ai_cache_node_t *
ngx_http_ai_cache_find(ngx_http_ai_cache_zone_t *z, u_char *digest)
{
    ngx_http_ai_cache_node_t  *cn;

    for (cn = *ngx_http_ai_cache_bucket(z, digest); cn; cn = cn->next) {
        if (ngx_memcmp(cn->digest, digest, AI_CACHE_KEY_LEN) == 0) {
            return cn;
        }
    }

    return NULL;
}


static void
ngx_http_ai_cache_delete(ngx_http_ai_cache_zone_t *z,
    ngx_http_ai_cache_node_t *cn)
{
    ngx_http_ai_cache_node_t  **p;

    for (p = ngx_http_ai_cache_bucket(z, cn->digest); *p; p = &(*p)->next) {
        if (*p == cn) {
            *p = cn->next;
            break;
        }
    }

    ngx_queue_remove(&cn->queue);
    ngx_slab_free_locked(z->shpool, cn);
}


/* under the mutex: a node, evicting the least recently used as needed */

static ngx_http_ai_cache_node_t *
ngx_http_ai_cache_alloc(ngx_http_ai_cache_zone_t *z, size_t len)
{
    ngx_queue_t               *q;
    ngx_http_ai_cache_node_t  *cn, *old;

    for ( ;; ) {
        cn = ngx_slab_alloc_locked(z->shpool,
                                   offsetof(ngx_http_ai_cache_node_t, data)
                                   + len);
        if (cn) {
            return cn;
        }

        for (q = ngx_queue_last(&z->sh->queue);
             q != ngx_queue_sentinel(&z->sh->queue);
             q = ngx_queue_prev(q))
        {
            old = ngx_queue_data(q, ngx_http_ai_cache_node_t, queue);

            if (old->state == NGX_HTTP_AI_CACHE_READY) {
                break;
            }
        }

        if (q == ngx_queue_sentinel(&z->sh->queue)) {
            return NULL;
        }

        ngx_http_ai_cache_delete(z, old);
    }
}


/*
 * Before dispatch.  NGX_OK: a miss (the request goes on, ctx->cache_store
 * says whether to store its answer); NGX_DONE: served from the cache or
 * waiting for an identical request's answer; or an error status.
 */

ngx_int_t
ngx_http_ai_cache_lookup(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    int                        force, cacheable;
    json_t                    *root;
    time_t                     now;
    ngx_http_ai_cache_memo_t  *memo;
    ngx_http_ai_cache_probe_t  probe;
    ngx_uint_t                 i;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *h;
    ai_cache_control_t         cc;
    const char                *ns;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_cache_zone_t  *z;
    ngx_http_ai_cache_node_t  *cn;
    ngx_pool_cleanup_t        *cln;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    z = amcf->cache;

    if (z == NULL || (ctx->model && ctx->model->cache == 0)
        || ctx->endpoint == NGX_HTTP_AI_EP_MODELS)
    {
        return NGX_OK;
    }

    /* the request's own say: Cache-Control and x-aigw-cache-force */

    ngx_memzero(&cc, sizeof(ai_cache_control_t));
    cc.max_age = -1;
    force = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == 13
            && ngx_strncasecmp(h[i].key.data, (u_char *) "cache-control", 13)
               == 0)
        {
            cc = ai_cache_parse_control((char *) h[i].value.data,
                                        h[i].value.len);

        } else if (h[i].key.len == 18
                   && ngx_strncasecmp(h[i].key.data,
                                      (u_char *) "x-aigw-cache-force", 18)
                      == 0)
        {
            force = ai_cache_parse_force((char *) h[i].value.data,
                                         h[i].value.len);
        }
    }

    if (cc.no_store) {
        ctx->cache_status = "BYPASS";
        return NGX_OK;
    }

    /*
     * The scanner already knows when a request is not deterministic: no
     * tree is built just to learn that it is not cached.
     */

    if (!force && ctx->request == NULL
        && ctx->endpoint != NGX_HTTP_AI_EP_EMBEDDINGS
        && (!(ctx->scan.temperature_zero || ctx->scan.has_seed)
            || ctx->scan.n_not_one))
    {
        ctx->cache_status = "BYPASS";
        return NGX_OK;
    }

    /* per tenant, unless the model shares its entries */

    ns = (ctx->tenant && !(ctx->model && ctx->model->cache == 2))
         ? ai_tenant_name(ctx->tenant) : "";

    memo = ngx_http_ai_cache_memo_find(ctx, force, ns, &probe);

    if (memo == NULL && ctx->request == NULL
        && ai_cache_key_raw((char *) ctx->client_body.data,
                            ctx->client_body.len,
                            ctx->endpoint == NGX_HTTP_AI_EP_MESSAGES
                            ? AI_EP_CHAT : (int) ctx->endpoint,
                            ctx->opts.endpoint ? ctx->opts.endpoint
                            : (ctx->endpoint == NGX_HTTP_AI_EP_MESSAGES
                               ? AI_EP_CHAT : (int) ctx->endpoint),
                            force, (char *) ctx->target.model.data,
                            ctx->target.model.len, ns,
                            &ngx_http_ai_cache_scratch[0],
                            &ngx_http_ai_cache_scratch[1], &cacheable,
                            ctx->cache_key)
           == 0)
    {
        /* the common case: the key read from the bytes, no tree */
        ngx_http_ai_cache_memo_add(&probe, cacheable, ctx->cache_key);

    } else if (memo == NULL) {
        cacheable = 0;
        root = ngx_http_ai_request_json(r, ctx);
        if (root == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ai_cache_cacheable(root, ctx->opts.endpoint ? ctx->opts.endpoint
                                   : (ctx->endpoint == NGX_HTTP_AI_EP_MESSAGES
                                      ? AI_EP_CHAT : (int) ctx->endpoint),
                               force)
            && ai_cache_key(root, ctx->endpoint == NGX_HTTP_AI_EP_MESSAGES
                                  ? AI_EP_CHAT : (int) ctx->endpoint,
                            (char *) ctx->target.model.data,
                            ctx->target.model.len, ns, ctx->cache_key)
               == 0)
        {
            cacheable = 1;
        }

        ngx_http_ai_cache_memo_add(&probe, cacheable, ctx->cache_key);

    } else {
        cacheable = memo->cacheable;
        ngx_memcpy(ctx->cache_key, memo->key, AI_CACHE_KEY_LEN);
    }

    if (ngx_http_ai_cache_scratch[0].cap > NGX_HTTP_AI_CACHE_SCRATCH) {
        /* a huge body once does not keep its memory in the worker */
        ai_buf_free(&ngx_http_ai_cache_scratch[0]);
        ai_buf_free(&ngx_http_ai_cache_scratch[1]);
    }

    if (!cacheable) {
        ctx->cache_status = "BYPASS";
        return NGX_OK;
    }

    ctx->cache_ttl = (ctx->model && ctx->model->cache_ttl)
                     ? ctx->model->cache_ttl : z->ttl;

    now = ngx_time();

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_ai_cache_find(z, ctx->cache_key);

    if (cn && cn->state == NGX_HTTP_AI_CACHE_READY
        && (cn->expires <= now
            || (cc.max_age >= 0
                && cn->expires - (time_t) ctx->cache_ttl + cc.max_age < now)))
    {
        ngx_http_ai_cache_delete(z, cn);
        cn = NULL;
    }

    if (cn && cn->state == NGX_HTTP_AI_CACHE_PENDING
        && ngx_current_msec - cn->pending_since > NGX_HTTP_AI_CACHE_WAIT)
    {
        /* a leader that never came back */
        ngx_http_ai_cache_delete(z, cn);
        cn = NULL;
    }

    if (cn && cn->state == NGX_HTTP_AI_CACHE_READY && !cc.no_cache) {

        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&z->sh->queue, &cn->queue);

        (void) ngx_atomic_fetch_add(&z->sh->hits, 1);

        ngx_shmtx_unlock(&z->shpool->mutex);

        /* served by ngx_http_ai_dispatch(), after admission */
        ctx->cache_status = "HIT";
        ctx->cache_hit = 1;

        return NGX_OK;
    }

    if (cn && cn->state == NGX_HTTP_AI_CACHE_PENDING && !cc.no_cache) {
        ngx_shmtx_unlock(&z->shpool->mutex);

        /* an identical request is at the provider: wait for its answer */
        ctx->cache_status = "MISS";
        ctx->cache_pending = 1;

        return NGX_OK;
    }

    /* a miss: this request leads; the others will wait for it */

    if (cn == NULL) {
        cn = ngx_http_ai_cache_alloc(z, 0);

        if (cn) {
            ngx_memzero(cn, offsetof(ngx_http_ai_cache_node_t, data));
            ngx_memcpy(cn->digest, ctx->cache_key, AI_CACHE_KEY_LEN);
            cn->state = NGX_HTTP_AI_CACHE_PENDING;
            cn->pending_since = ngx_current_msec;
            ngx_http_ai_cache_insert(z, cn);
            ctx->cache_leader = 1;
        }
    }

    (void) ngx_atomic_fetch_add(&z->sh->misses, 1);

    ngx_shmtx_unlock(&z->shpool->mutex);

    ctx->cache_status = cc.no_cache ? "REFRESH" : "MISS";
    ctx->cache_store = 1;
    ctx->process = 1;

    /* the shared tier is asked before the provider (not on a refresh) */
    ctx->cache_remote = (z->redis != NULL && !cc.no_cache);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_ai_cache_cleanup;
    cln->data = r;

    if (ctx->stream) {
        ctx->cache_asm = ai_cache_asm_new(
                             ctx->endpoint == NGX_HTTP_AI_EP_COMPLETIONS
                             ? AI_EP_COMPLETIONS : AI_EP_CHAT);
        if (ctx->cache_asm) {
            ai_cache_asm_limit(ctx->cache_asm, z->max_entry);
        }
    }

    return NGX_OK;
}


/*
 * Not for security (the slot's bytes are compared): four independent
 * multiply-and-fold lanes over 32 bytes a step, so that a 1 KB body
 * costs tens of nanoseconds, not one long chain of dependent multiplies.
 */

static uint64_t
ngx_http_ai_cache_cheap(uint64_t h, const u_char *p, size_t n)
{
    uint64_t  w[4], a, b, c, d;

    a = h;
    b = h ^ 0x9e3779b97f4a7c15ULL;
    c = h ^ 0xbf58476d1ce4e5b9ULL;
    d = h ^ 0x94d049bb133111ebULL;

    while (n >= 32) {
        ngx_memcpy(w, p, 32);
        a = (a ^ w[0]) * 0x9e3779b97f4a7c15ULL;
        b = (b ^ w[1]) * 0xbf58476d1ce4e5b9ULL;
        c = (c ^ w[2]) * 0x94d049bb133111ebULL;
        d = (d ^ w[3]) * 0xff51afd7ed558ccdULL;
        a ^= a >> 29;
        b ^= b >> 31;
        c ^= c >> 27;
        d ^= d >> 33;
        p += 32;
        n -= 32;
    }

    h = a ^ (b << 17 | b >> 47) ^ (c << 31 | c >> 33) ^ (d << 47 | d >> 17);

    while (n >= 8) {
        ngx_memcpy(w, p, 8);
        h = (h ^ w[0]) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }

    w[0] = 0;
    ngx_memcpy(w, p, n);
    h = (h ^ w[0] ^ n) * 0xbf58476d1ce4e5b9ULL;

    return h ^ (h >> 32);
}


/* the probe's request is the one the slot's copy was taken from */

static ngx_uint_t
ngx_http_ai_cache_memo_same(ngx_http_ai_cache_memo_t *m,
    ngx_http_ai_cache_probe_t *pr)
{
    u_char  *c;

    if (m->copy_len != 2 + pr->nslen + pr->model.len + 1 + pr->body.len) {
        return 0;
    }

    c = m->copy;

    if (ngx_memcmp(c, pr->tag, 2) != 0
        || ngx_memcmp(c + 2, pr->ns, pr->nslen) != 0)
    {
        return 0;
    }

    c += 2 + pr->nslen;

    if (ngx_memcmp(c, pr->model.data, pr->model.len) != 0
        || c[pr->model.len] != '\0')
    {
        return 0;
    }

    c += pr->model.len + 1;

    return ngx_memcmp(c, pr->body.data, pr->body.len) == 0;
}


/*
 * The memo is asked only while the body is the client's own bytes (no
 * tree yet, which a plugin's change or an escaped model would have
 * built).
 */

static ngx_http_ai_cache_memo_t *
ngx_http_ai_cache_memo_find(ngx_http_ai_ctx_t *ctx, int force, const char *ns,
    ngx_http_ai_cache_probe_t *pr)
{
    uint64_t                   h;
    unsigned int               dlen;
    ngx_http_ai_cache_memo_t  *m;
    static EVP_MD             *sha256;
    static EVP_MD_CTX         *md;

    ngx_memzero(pr, sizeof(ngx_http_ai_cache_probe_t));

    if (ctx->request) {
        pr->skip = 1;
        return NULL;
    }

    pr->tag[0] = (u_char) ctx->endpoint;
    pr->tag[1] = (u_char) (force | (ctx->opts.endpoint << 1));
    pr->ns = ns;
    pr->nslen = ngx_strlen(ns) + 1;
    pr->model = ctx->target.model;
    pr->body = ctx->client_body;

    h = ngx_http_ai_cache_cheap(0x243f6a8885a308d3ULL, pr->tag, 2);
    h = ngx_http_ai_cache_cheap(h, (u_char *) ns, pr->nslen);
    h = ngx_http_ai_cache_cheap(h, pr->model.data, pr->model.len);
    h = ngx_http_ai_cache_cheap(h, pr->body.data, pr->body.len);
    pr->cheap = h;

    m = &ngx_http_ai_cache_memo[h % NGX_HTTP_AI_CACHE_MEMO];

    if (!m->used || m->cheap != h) {
        return NULL;
    }

    if (m->copy) {
        return ngx_http_ai_cache_memo_same(m, pr) ? m : NULL;
    }

    /* a body too large to copy: its digest, fetched once per process */

    if (md == NULL) {
        md = EVP_MD_CTX_new();
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    }

    if (md == NULL || sha256 == NULL
        || EVP_DigestInit_ex2(md, sha256, NULL) != 1
        || EVP_DigestUpdate(md, pr->tag, 2) != 1
        || EVP_DigestUpdate(md, ns, pr->nslen) != 1
        || EVP_DigestUpdate(md, pr->model.data, pr->model.len) != 1
        || EVP_DigestUpdate(md, "", 1) != 1
        || EVP_DigestUpdate(md, pr->body.data, pr->body.len) != 1
        || EVP_DigestFinal_ex(md, pr->raw, &dlen) != 1)
    {
        pr->skip = 1;
        return NULL;
    }

    pr->has_raw = 1;

    if (m->has_raw && ngx_memcmp(m->raw, pr->raw, AI_CACHE_KEY_LEN) == 0) {
        return m;
    }

    return NULL;
}


static void
ngx_http_ai_cache_memo_add(ngx_http_ai_cache_probe_t *pr, int cacheable,
    u_char *key)
{
    u_char                    *c;
    size_t                     len;
    ngx_http_ai_cache_memo_t  *m;

    if (pr->skip) {
        return;
    }

    m = &ngx_http_ai_cache_memo[pr->cheap % NGX_HTTP_AI_CACHE_MEMO];

    len = 2 + pr->nslen + pr->model.len + 1 + pr->body.len;

    if (len > m->copy_cap
        && (pr->body.len > NGX_HTTP_AI_CACHE_MEMO_BODY
            || ngx_http_ai_cache_memo_bytes - m->copy_cap + len
               > NGX_HTTP_AI_CACHE_MEMO_BYTES))
    {
        /* no copy: the digest stands for the body (from its 2nd sight) */
        ngx_http_ai_cache_memo_bytes -= m->copy_cap;
        ngx_free(m->copy);
        m->copy = NULL;
        m->copy_cap = 0;

    } else if (len > m->copy_cap) {
        c = ngx_alloc(len, ngx_cycle->log);

        ngx_http_ai_cache_memo_bytes -= m->copy_cap;
        ngx_free(m->copy);
        m->copy = c;
        m->copy_cap = c ? len : 0;
        ngx_http_ai_cache_memo_bytes += m->copy_cap;
    }

    if (m->copy) {
        c = ngx_cpymem(m->copy, pr->tag, 2);
        c = ngx_cpymem(c, pr->ns, pr->nslen);
        c = ngx_cpymem(c, pr->model.data, pr->model.len);
        *c++ = '\0';
        ngx_memcpy(c, pr->body.data, pr->body.len);
        m->copy_len = len;
    }

    m->cheap = pr->cheap;
    m->has_raw = pr->has_raw;

    if (pr->has_raw) {
        ngx_memcpy(m->raw, pr->raw, AI_CACHE_KEY_LEN);
    }

    ngx_memcpy(m->key, key, AI_CACHE_KEY_LEN);
    m->cacheable = cacheable;
    m->used = 1;
}


/* a hit: the stored answer, in the shape this request wants */

ngx_int_t
ngx_http_ai_cache_send_hit(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    u_char                    *data;
    size_t                     len;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_cache_zone_t  *z;
    ngx_http_ai_cache_node_t  *cn;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    z = amcf->cache;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_ai_cache_find(z, ctx->cache_key);

    if (cn == NULL || cn->state != NGX_HTTP_AI_CACHE_READY) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_DECLINED;
    }

    if (cn->hit_len && !ctx->stream && ctx->in_format != AI_FORMAT_ANTHROPIC)
    {
        return ngx_http_ai_cache_send_rendered(r, ctx, z, cn);
    }

    if (cn->sse_len && ctx->stream && ctx->in_format != AI_FORMAT_ANTHROPIC) {
        return ngx_http_ai_cache_send_rendered_sse(r, ctx, z, cn);
    }

    len = cn->len;
    data = ngx_pnalloc(r->pool, len);

    if (data) {
        ngx_memcpy(data, cn->data, len);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->in_format != AI_FORMAT_ANTHROPIC
        && ctx->endpoint != NGX_HTTP_AI_EP_EMBEDDINGS)
    {
        ngx_http_ai_cache_render(z, ctx->cache_key, data, len, ctx->stream);
    }

    return ngx_http_ai_cache_serve(r, ctx, data, len);
}


/*
 * The first hit of an entry renders what the next hits of its shape send
 * with only the model string swapped: the chat.completion body for a
 * whole answer, the events for a stream.  Entries that are never hit
 * (most misses) cost no rendering, and a shape never asked for is never
 * rendered.  The entry is replaced by one that holds the stored answer,
 * the renderings it had and the new one, if it is still the same entry.
 */

static void
ngx_http_ai_cache_render(ngx_http_ai_cache_zone_t *z, u_char *key,
    u_char *data, size_t len, ngx_uint_t stream)
{
    size_t                     size, edits;
    ai_buf_t                   out;
    ai_cache_hit_t             hit;
    ai_cache_sse_t             sse;
    ngx_http_ai_cache_node_t  *cn, *nn;

    ngx_memzero(&out, sizeof(ai_buf_t));
    ngx_memzero(&sse, sizeof(ai_cache_sse_t));

    if ((stream ? ai_cache_render_sse((char *) data, len, &out, &sse)
                : ai_cache_render_hit((char *) data, len, &out, &hit))
        != 0
        || len + out.len > z->max_entry)
    {
        ai_cache_sse_free(&sse);
        ai_buf_free(&out);
        return;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_ai_cache_find(z, key);

    if (cn && cn->state == NGX_HTTP_AI_CACHE_READY
        && (stream ? cn->sse_len : cn->hit_len) == 0
        && cn->len == len && ngx_memcmp(cn->data, data, len) == 0)
    {
        edits = 2 * sizeof(uint32_t) * (stream ? sse.nmodel
                                               : cn->sse.nmodel);
        size = ngx_align(len + (stream ? cn->hit_len + out.len
                                       : out.len + cn->sse_len),
                         sizeof(uint32_t))
               + edits;

        nn = ngx_http_ai_cache_alloc(z, size);

        /* the allocation may have evicted the entry itself */
        cn = nn ? ngx_http_ai_cache_find(z, key) : NULL;

        if (nn && cn) {
            ngx_memcpy(nn, cn, offsetof(ngx_http_ai_cache_node_t, data));
            ngx_memcpy(nn->data, cn->data, len + cn->hit_len);

            if (stream) {
                ngx_memcpy(nn->data + len + cn->hit_len, out.data, out.len);
                nn->sse_len = out.len;
                nn->sse = sse;
                nn->sse.edits = NULL;
                ngx_memcpy(nn->data + ngx_http_ai_cache_edits_off(nn),
                           sse.edits, edits);

            } else {
                ngx_memcpy(nn->data + len, out.data, out.len);
                nn->hit_len = out.len;
                nn->hit = hit;
                ngx_memcpy(nn->data + len + out.len,
                           cn->data + len + cn->hit_len,
                           cn->sse_len);
                ngx_memcpy(nn->data + ngx_http_ai_cache_edits_off(nn),
                           cn->data + ngx_http_ai_cache_edits_off(cn),
                           edits);
            }

            ngx_http_ai_cache_delete(z, cn);
            ngx_http_ai_cache_insert(z, nn);

        } else if (nn) {
            ngx_slab_free_locked(z->shpool, nn);
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    ai_cache_sse_free(&sse);
    ai_buf_free(&out);
}


/* stream_options.include_usage of this request */

static ngx_uint_t
ngx_http_ai_cache_include_usage(ngx_http_ai_ctx_t *ctx)
{
    return ctx->request
           ? json_is_true(json_object_get(json_object_get(
                 ctx->request, "stream_options"), "include_usage"))
           : (ngx_uint_t) ctx->scan.include_usage;
}


/* a rendered hit's usage is the request's */

static void
ngx_http_ai_cache_hit_usage(ngx_http_ai_ctx_t *ctx, ai_cache_hit_t *hit)
{
    if (hit->usage_seen) {
        ctx->usage.prompt_tokens = hit->prompt_tokens;
        ctx->usage.completion_tokens = hit->completion_tokens;
        ctx->usage.cached_tokens = hit->cached_tokens;
        ctx->usage.seen = 1;
    }
}


/*
 * A streamed hit for an OpenAI client from the rendered events.  Called
 * with the zone locked; unlocks it.
 */

static ngx_int_t
ngx_http_ai_cache_send_rendered_sse(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_http_ai_cache_zone_t *z,
    ngx_http_ai_cache_node_t *cn)
{
    int              include_usage;
    char            *ev;
    ngx_str_t        body;
    ai_cache_sse_t   sse;

    include_usage = (int) ngx_http_ai_cache_include_usage(ctx);

    ev = (char *) cn->data + cn->len + cn->hit_len;
    sse = cn->sse;
    sse.edits = (uint32_t *) (cn->data + ngx_http_ai_cache_edits_off(cn));

    body.len = ai_cache_sse_hit(ev, cn->sse_len, &sse,
                                ctx->client_model.data, ctx->client_model.len,
                                include_usage, NULL);
    body.data = ngx_pnalloc(r->pool, body.len);

    if (body.data == NULL) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) ai_cache_sse_hit(ev, cn->sse_len, &sse, ctx->client_model.data,
                            ctx->client_model.len, include_usage,
                            (char *) body.data);

    ngx_shmtx_unlock(&z->shpool->mutex);

    ngx_http_ai_cache_hit_usage(ctx, &sse.hit);

    if (ngx_http_ai_cache_header(r, "HIT") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_ai_cache_send_sse(r, &body);
}


/*
 * The common hit, a chat.completion for an OpenAI client: the answer was
 * rendered when it was stored; only the model string changes.  Called
 * with the zone locked; unlocks it.
 */

static ngx_int_t
ngx_http_ai_cache_send_rendered(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_http_ai_cache_zone_t *z, ngx_http_ai_cache_node_t *cn)
{
    u_char          *p, *src;
    size_t           mlen;
    ngx_str_t        body;
    ai_cache_hit_t   hit;

    hit = cn->hit;
    src = cn->data + cn->len;

    mlen = ai_json_escape_len(ctx->client_model.data, ctx->client_model.len);

    body.len = cn->hit_len - hit.model_len + mlen + 2;
    body.data = ngx_pnalloc(r->pool, body.len);

    if (body.data == NULL) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body.data, src, hit.model_off);
    *p++ = '"';
    p = ai_json_escape(p, ctx->client_model.data, ctx->client_model.len);
    *p++ = '"';
    ngx_memcpy(p, src + hit.model_off + hit.model_len,
               cn->hit_len - hit.model_off - hit.model_len);

    ngx_shmtx_unlock(&z->shpool->mutex);

    ngx_http_ai_cache_hit_usage(ctx, &hit);

    if (ngx_http_ai_cache_header(r, "HIT") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_ai_send_json(r, NGX_HTTP_OK, &body);
}


static ngx_int_t
ngx_http_ai_cache_serve(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    u_char *data, size_t len)
{
    int                     rc;
    ngx_str_t               body;
    ai_buf_t                out, in;
    ai_stream_t            *st;
    ai_cache_replay_opts_t  o;

    ngx_memzero(&o, sizeof(ai_cache_replay_opts_t));
    ngx_memzero(&out, sizeof(ai_buf_t));
    ngx_memzero(&in, sizeof(ai_buf_t));

    o.model = (char *) ctx->client_model.data;
    o.model_len = ctx->client_model.len;
    o.include_usage = ctx->stream
                      && ngx_http_ai_cache_include_usage(ctx);

    if (ctx->stream) {
        rc = ai_cache_replay_sse((char *) data, len, &o, &out);

        if (rc == 0 && ctx->in_format == AI_FORMAT_ANTHROPIC) {
            st = ai_anthropic_in_stream_new(&ctx->opts);
            rc = (st == NULL
                  || ai_stream_feed(st, out.data, out.len, &in) != 0
                  || ai_stream_finish(st, 1, &in) != 0) ? -1 : 0;
            if (st) {
                ai_stream_free(st);
            }

            ai_buf_free(&out);
            out = in;
        }

    } else {
        rc = ai_cache_replay_json((char *) data, len, &o, &out);

        if (rc == 0 && ctx->in_format == AI_FORMAT_ANTHROPIC) {
            rc = ai_anthropic_in_response(200, out.data, out.len,
                                          &ctx->opts, &in);
            ai_buf_free(&out);
            out = in;
        }
    }

    if (rc != 0) {
        ai_buf_free(&out);
        return NGX_DECLINED;
    }

    ngx_http_ai_usage_from_body(ctx, out.data ? out.data : "", out.len);

    body.len = out.len;
    body.data = ngx_pnalloc(r->pool, out.len + 1);

    if (body.data == NULL) {
        ai_buf_free(&out);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(body.data, out.data, out.len);
    ai_buf_free(&out);

    if (ngx_http_ai_cache_header(r, "HIT") != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->stream) {
        return ngx_http_ai_cache_send_sse(r, &body);
    }

    return ngx_http_ai_send_json(r, NGX_HTTP_OK, &body);
}


/* a replayed stream goes out whole, with its length */

static ngx_int_t
ngx_http_ai_cache_send_sse(ngx_http_request_t *r, ngx_str_t *body)
{
    static ngx_str_t  sse = ngx_string("text/event-stream");

    return ngx_http_ai_send_typed(r, NGX_HTTP_OK, &sse, body);
}


static ngx_int_t
ngx_http_ai_cache_header(ngx_http_request_t *r, const char *value)
{
    ngx_str_t  v;

    v.data = (u_char *) value;
    v.len = ngx_strlen(value);

    return ngx_http_ai_header_out(r, "x-aigw-cache", &v);
}


ngx_int_t
ngx_http_ai_cache_status_header(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    if (ctx->cache_status == NULL || ctx->cache_hit) {
        return NGX_OK;
    }

    return ngx_http_ai_cache_header(r, ctx->cache_status);
}


/*
 * Coalescing: wait for the leader's answer, looking again every few
 * milliseconds; when it is stored, serve it; when the leader failed (the
 * entry is gone), go to the provider like any miss.
 */

ngx_int_t
ngx_http_ai_cache_wait(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_ai_cache_wait_t  *w;

    w = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_cache_wait_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (w == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w->request = r;
    w->wait_start = ngx_current_msec;
    w->wait.handler = ngx_http_ai_cache_wait_handler;
    w->wait.data = w;
    w->wait.log = r->connection->log;

    cln->handler = ngx_http_ai_cache_cleanup;
    cln->data = r;

    ctx->cache_wait = w;

    if (ngx_http_ai_cache_waiters.next == NULL) {
        ngx_queue_init(&ngx_http_ai_cache_waiters);
    }

    ngx_queue_insert_tail(&ngx_http_ai_cache_waiters, &w->queue);

    ngx_add_timer(&w->wait, NGX_HTTP_AI_CACHE_POLL);

    /* a client that goes away while waiting ends its request at once */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


/* the leader is done with key: its waiters in this worker look now */

static void
ngx_http_ai_cache_wake(u_char *key)
{
    ngx_queue_t               *q;
    ngx_http_ai_ctx_t         *wctx;
    ngx_http_ai_cache_wait_t  *w;

    if (ngx_http_ai_cache_waiters.next == NULL) {
        return;
    }

    for (q = ngx_queue_head(&ngx_http_ai_cache_waiters);
         q != ngx_queue_sentinel(&ngx_http_ai_cache_waiters);
         q = ngx_queue_next(q))
    {
        w = ngx_queue_data(q, ngx_http_ai_cache_wait_t, queue);
        wctx = ngx_http_get_module_ctx(w->request,
                                       ngx_http_ai_gateway_module);

        if (ngx_memcmp(wctx->cache_key, key, AI_CACHE_KEY_LEN) != 0
            || w->wait.posted)
        {
            continue;
        }

        if (w->wait.timer_set) {
            ngx_del_timer(&w->wait);
        }

        ngx_post_event(&w->wait, &ngx_posted_events);
    }
}


static void
ngx_http_ai_cache_wait_handler(ngx_event_t *ev)
{
    ngx_http_ai_cache_wait_t *w = ev->data;

    ngx_int_t                  rc;
    ngx_uint_t                 state;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_ai_ctx_t         *ctx;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_cache_zone_t  *z;
    ngx_http_ai_cache_node_t  *cn;

    r = w->request;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);
    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    z = amcf->cache;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_ai_cache_find(z, ctx->cache_key);
    state = cn ? cn->state : (ngx_uint_t) -1;

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (state == NGX_HTTP_AI_CACHE_PENDING
        && ngx_current_msec - w->wait_start < NGX_HTTP_AI_CACHE_WAIT)
    {
        ngx_add_timer(&w->wait, NGX_HTTP_AI_CACHE_POLL);
        return;
    }

    ngx_queue_remove(&w->queue);
    ctx->cache_wait = NULL;
    r->read_event_handler = ngx_http_block_reading;

    if (state == NGX_HTTP_AI_CACHE_READY) {
        ctx->cache_status = "HIT";
        ctx->cache_hit = 1;

        rc = ngx_http_ai_cache_send_hit(r, ctx);

        if (rc != NGX_DECLINED) {
            ngx_http_finalize_request(r, rc);
            ngx_http_run_posted_requests(c);
            return;
        }
    }

    /* the leader failed or took too long: this one goes itself */

    ctx->cache_status = "MISS";
    ctx->cache_hit = 0;

    rc = ngx_http_ai_dispatch(r, ctx);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/*
 * The end of an answer this request led: stored when complete and
 * storable, else the pending entry is dropped so that waiters go on.
 */

void
ngx_http_ai_cache_store(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    const char *body, size_t len)
{
    int                        ok;
    time_t                     now;
    ai_buf_t                   assembled;
    ngx_http_ai_main_conf_t   *amcf;
    ngx_http_ai_cache_zone_t  *z;
    ngx_http_ai_cache_node_t  *cn;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    z = amcf->cache;

    if (z == NULL || !ctx->cache_store) {
        return;
    }

    ctx->cache_store = 0;
    ngx_memzero(&assembled, sizeof(ai_buf_t));

    if (ctx->cache_asm) {
        ok = (ai_cache_asm_finish(ctx->cache_asm, &assembled) == 1);
        body = assembled.data;
        len = assembled.len;

    } else {
        ok = body
             && (ctx->cache_from_remote
                 || (r->upstream
                     && r->upstream->headers_in.status_n == NGX_HTTP_OK)
                 || (ctx->target.provider && ctx->target.provider->engine))
             && ai_cache_storable_raw(body, len,
                                      ctx->endpoint == NGX_HTTP_AI_EP_MESSAGES
                                      ? AI_EP_CHAT : (int) ctx->endpoint);
    }

    if (len > z->max_entry) {
        ok = 0;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "ai cache: store ok:%d len:%uz", ok, len);

    now = ngx_time();

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_ai_cache_find(z, ctx->cache_key);

    if (cn) {
        ngx_http_ai_cache_delete(z, cn);
    }

    if (ok) {
        cn = ngx_http_ai_cache_alloc(z, len);

        if (cn) {
            ngx_memzero(cn, offsetof(ngx_http_ai_cache_node_t, data));
            ngx_memcpy(cn->digest, ctx->cache_key, AI_CACHE_KEY_LEN);
            cn->state = NGX_HTTP_AI_CACHE_READY;
            cn->expires = now + ctx->cache_ttl;
            cn->len = len;
            ngx_memcpy(cn->data, body, len);
            ngx_http_ai_cache_insert(z, cn);
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (ok && z->redis && !ctx->cache_from_remote) {
        ngx_http_ai_cache_remote_set(z, ctx, body, len);
    }

    if (ctx->cache_leader) {
        ngx_http_ai_cache_wake(ctx->cache_key);
    }

    ctx->cache_leader = 0;
    ai_buf_free(&assembled);
}


/*
 * A passed-through answer: a whole one is copied for the store at its
 * end, a stream goes to the assembler as it comes.
 */

void
ngx_http_ai_cache_tee(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    u_char *p, size_t len)
{
    ngx_http_ai_main_conf_t  *amcf;

    if (ctx->cache_asm) {
        if (r->upstream && r->upstream->headers_in.status_n == NGX_HTTP_OK) {
            (void) ngx_http_ai_cache_feed(ctx, (char *) p, len);
        }

        return;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);

    if (amcf->cache && ctx->acc.cap == 0 && r->upstream
        && r->upstream->headers_in.content_length_n > 0
        && r->upstream->headers_in.content_length_n
           <= (off_t) amcf->cache->max_entry)
    {
        /* one allocation for the whole answer */
        (void) ai_buf_reserve(&ctx->acc,
                            (size_t) r->upstream->headers_in.content_length_n);
    }

    if (amcf->cache == NULL || ctx->acc.len + len > amcf->cache->max_entry
        || ai_buf_append(&ctx->acc, (char *) p, len) != 0)
    {
        /* too large to store: the waiting requests go on without it */
        ctx->cache_tee = 0;
        ai_buf_free(&ctx->acc);
    }
}


ngx_int_t
ngx_http_ai_cache_feed(ngx_http_ai_ctx_t *ctx, const char *p, size_t len)
{
    if (ctx->cache_asm && ctx->cache_store) {
        (void) ai_cache_asm_feed(ctx->cache_asm, p, len);
    }

    return NGX_OK;
}


/*
 * The Redis tier: GET before the provider (ngx_http_ai_dispatch() calls
 * this once); SET after a store.  A reply that comes late finds a
 * cancelled token.  Redis down or slow: an ordinary miss.
 */

static void
ngx_http_ai_cache_remote_reply(ngx_http_ai_redis_cmd_t *cmd,
    redisReply *reply, void *data)
{
    ngx_http_request_t *r = data;

    ngx_int_t           rc;
    ngx_connection_t   *c;
    ngx_http_ai_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);
    ctx->cache_cmd = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "ai cache: redis reply type %d len %d",
                   reply ? reply->type : -1, reply ? (int) reply->len : -1);

    if (reply && reply->type == REDIS_REPLY_STRING && reply->len > 0) {

        /* a hit in the shared tier: kept locally too, then served */

        ctx->cache_from_remote = 1;
        ngx_http_ai_cache_store(r, ctx, reply->str, reply->len);
        ctx->cache_store = 0;

        ctx->cache_status = "HIT";
        ctx->cache_hit = 1;

        rc = ngx_http_ai_cache_send_hit(r, ctx);

        if (rc != NGX_DECLINED) {
            ngx_http_finalize_request(r, rc);
            ngx_http_run_posted_requests(c);
            return;
        }

        ctx->cache_status = "MISS";
        ctx->cache_hit = 0;
        ctx->cache_store = 1;
    }

    rc = ngx_http_ai_dispatch(r, ctx);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_http_ai_cache_remote_get(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    char                       key[128];
    size_t                     klen;
    const char                *argv[2];
    size_t                     argvlen[2];
    ngx_http_ai_main_conf_t   *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);

    ctx->cache_remote = 0;

    ngx_memcpy(key, "aigw:cache:", 11);
    ai_cache_key_hex(ctx->cache_key, key + 11);
    klen = 11 + 64;

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = key;
    argvlen[1] = klen;

    ctx->cache_cmd = ngx_http_ai_redis_send(amcf->cache->redis,
                                            ngx_http_ai_cache_remote_reply,
                                            r, 2, argv, argvlen);

    return ctx->cache_cmd ? NGX_DONE : NGX_DECLINED;
}


static void
ngx_http_ai_cache_remote_set(ngx_http_ai_cache_zone_t *z,
    ngx_http_ai_ctx_t *ctx, const char *body, size_t len)
{
    char         key[128], ttl[32];
    const char  *argv[5];
    size_t       argvlen[5];

    ngx_memcpy(key, "aigw:cache:", 11);
    ai_cache_key_hex(ctx->cache_key, key + 11);

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = key;
    argvlen[1] = 11 + 64;
    argv[2] = body;
    argvlen[2] = len;
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = ttl;
    argvlen[4] = ngx_sprintf((u_char *) ttl, "%T", ctx->cache_ttl)
                 - (u_char *) ttl;

    (void) ngx_http_ai_redis_send(z->redis, NULL, NULL, 5, argv, argvlen);
}


ngx_int_t
ngx_http_ai_cache_init_process(ngx_cycle_t *cycle)
{
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_gateway_module);

    if (amcf && amcf->cache && amcf->cache->redis) {
        return ngx_http_ai_redis_init_process(cycle, amcf->cache->redis);
    }

    return NGX_OK;
}


void
ngx_http_ai_cache_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                i;
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_gateway_module);

    if (amcf && amcf->cache && amcf->cache->redis) {
        ngx_http_ai_redis_exit_process(cycle, amcf->cache->redis);
    }

    ai_buf_free(&ngx_http_ai_cache_scratch[0]);
    ai_buf_free(&ngx_http_ai_cache_scratch[1]);

    for (i = 0; i < NGX_HTTP_AI_CACHE_MEMO; i++) {
        ngx_free(ngx_http_ai_cache_memo[i].copy);
        ngx_http_ai_cache_memo[i].copy = NULL;
    }
}


static void
ngx_http_ai_cache_cleanup(void *data)
{
    ngx_http_request_t *r = data;

    ngx_http_ai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx == NULL) {
        return;
    }

    if (ctx->cache_cmd) {
        ngx_http_ai_redis_cancel(ctx->cache_cmd);
        ctx->cache_cmd = NULL;
    }

    if (ctx->cache_wait) {
        ngx_http_ai_cache_wait_t  *w = ctx->cache_wait;

        if (w->wait.timer_set) {
            ngx_del_timer(&w->wait);
        }

        if (w->wait.posted) {
            ngx_delete_posted_event(&w->wait);
        }

        ngx_queue_remove(&w->queue);
        ctx->cache_wait = NULL;
    }

    if (ctx->cache_store) {
        /* never answered in full: forget the pending entry */
        ngx_http_ai_cache_store(r, ctx, NULL, 0);
    }

    if (ctx->cache_asm) {
        ai_cache_asm_free(ctx->cache_asm);
        ctx->cache_asm = NULL;
    }
}
