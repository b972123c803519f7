
/*
 * aigw: a model served by several targets (provider + its model name),
 * with retries and fallbacks across them, on NGINX's own upstream retry
 * machinery: each model gets a balancer (a peer.init/get/free of its own)
 * that picks a target by the model's strategy, skips targets whose circuit
 * is open, points the request at the target's provider (its connection
 * pool, TLS, timeouts and body format), and lets ngx_http_upstream_next()
 * try the next one on connect errors, timeouts, 429 and 5xx, within the
 * model's attempt count and time budget, and only before anything reached
 * the client.  Breaker, in-flight and latency state is in shared memory,
 * so every worker sees it.
 *
 * Waits between attempts (backoff, Retry-After) never block: the next
 * attempt connects at once, and its request is held in the upstream's
 * output chain until a timer of the request lets it go.  Nothing is armed
 * while no retry waits.
 */

#include "ngx_http_ai_gateway.h"
#include "ai_prom.h"


#define NGX_HTTP_AI_BAL_MAX_TARGETS   64

#define NGX_HTTP_AI_JITTER_FULL        0
#define NGX_HTTP_AI_JITTER_EQUAL       1
#define NGX_HTTP_AI_JITTER_DECORR      2
#define NGX_HTTP_AI_JITTER_NONE        3


/* one target's health, shared by all workers */
typedef struct {
    ngx_atomic_t                inflight;
    ngx_atomic_t                probe;        /* a half-open probe is out */
    ngx_msec_t                  window_start;
    ngx_uint_t                  fails;
    ngx_msec_t                  open_until;   /* 0: closed */
    ngx_uint_t                  opened;       /* times the breaker opened */
    ngx_msec_t                  ewma_ttfb;    /* ms, x16 */
    ngx_atomic_t                requests;
} ngx_http_ai_bal_state_t;


typedef struct {
    ngx_uint_t                  nstates;
    ngx_atomic_t                rr;           /* round robin counter */
    ngx_http_ai_bal_state_t     states[1];
} ngx_http_ai_bal_sh_t;


typedef struct {
    ngx_http_ai_bal_sh_t       *sh;
    ngx_slab_pool_t            *shpool;
    ngx_uint_t                  nstates;
} ngx_http_ai_bal_zone_t;


/* per request */
typedef struct {
    ngx_http_request_t         *request;
    ngx_http_ai_ctx_t          *ctx;
    ngx_http_ai_model_t        *model;

    ngx_int_t                   current;      /* target index, -1: none */
    uint64_t                    tried;        /* bit per target */
    ngx_msec_t                  attempt_start;

    /* the next attempt, planned when the current one failed */
    ngx_msec_t                  wait;         /* 0: at once */
    ngx_int_t                   wait_target;  /* its cooldown ends first */
    ngx_uint_t                  backoffs;     /* backoff waits so far */
    ngx_msec_t                  prev_wait;    /* decorrelated jitter */
    ngx_event_t                 wait_ev;

    unsigned                    probing:1;
    unsigned                    recorded:1;   /* health updated */
    unsigned                    planned:1;
    unsigned                    waiting:1;    /* wait_ev armed */
    unsigned                    holding:1;    /* request held back */
    unsigned                    cleanup:1;

    /* the current target's own balancer (keepalive, round robin) */
    void                       *tdata;
    ngx_event_get_peer_pt       tget;
    ngx_event_free_peer_pt      tfree;
#if (NGX_HTTP_SSL)
    ngx_event_set_peer_session_pt   tset_session;
    ngx_event_save_peer_session_pt  tsave_session;
#endif
} ngx_http_ai_bal_peer_t;


static ngx_http_ai_bal_zone_t  *ngx_http_ai_bal_zone;


static ngx_int_t ngx_http_ai_bal_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_ai_bal_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_ai_bal_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_ai_bal_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
static void ngx_http_ai_bal_record(ngx_http_ai_bal_peer_t *bp,
    ngx_uint_t failed, ngx_msec_t retry_after, ngx_msec_t now);
static ngx_int_t ngx_http_ai_bal_plan(ngx_http_ai_bal_peer_t *bp,
    ngx_msec_t now, ngx_uint_t report);
static ngx_msec_t ngx_http_ai_bal_backoff(ngx_http_ai_bal_peer_t *bp);
static ngx_msec_t ngx_http_ai_bal_retry_after(ngx_http_upstream_t *u);
static ngx_int_t ngx_http_ai_bal_hold(ngx_http_ai_bal_peer_t *bp,
    ngx_msec_t wait);
static ngx_int_t ngx_http_ai_bal_held_writer(void *data, ngx_chain_t *in);
static void ngx_http_ai_bal_wait_done(ngx_event_t *ev);
static void ngx_http_ai_bal_unhold(ngx_http_ai_bal_peer_t *bp);
static void ngx_http_ai_bal_cleanup(void *data);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_ai_bal_set_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_ai_bal_save_session(ngx_peer_connection_t *pc,
    void *data);
#endif


static ngx_str_t  ngx_http_ai_strategies[] = {
    ngx_string("weighted"),
    ngx_string("round_robin"),
    ngx_string("least_inflight"),
    ngx_string("latency"),
    ngx_null_string
};


static ngx_str_t  ngx_http_ai_jitters[] = {
    ngx_string("full"),
    ngx_string("equal"),
    ngx_string("decorrelated"),
    ngx_string("none"),
    ngx_null_string
};


/* an ai_model option of the balancer; NGX_DECLINED: not one of ours */

ngx_int_t
ngx_http_ai_balancer_option(ngx_conf_t *cf, ngx_http_ai_model_t *m,
    ngx_str_t *opt)
{
    u_char      *eq, *slash;
    ngx_int_t    n;
    ngx_str_t    name, value, w;
    ngx_uint_t   i;
    ngx_msec_t   ms;

    eq = ngx_strlchr(opt->data, opt->data + opt->len, '=');
    if (eq == NULL) {
        return NGX_DECLINED;
    }

    name.data = opt->data;
    name.len = eq - opt->data;
    value.data = eq + 1;
    value.len = opt->data + opt->len - value.data;

#define is(s)  (name.len == sizeof(s) - 1                                  \
                && ngx_strncmp(name.data, s, sizeof(s) - 1) == 0)

    if (is("strategy")) {
        for (i = 0; ngx_http_ai_strategies[i].len; i++) {
            if (ngx_http_ai_strategies[i].len == value.len
                && ngx_strncmp(ngx_http_ai_strategies[i].data, value.data,
                               value.len) == 0)
            {
                m->strategy = i;
                m->balanced = 1;
                return NGX_OK;
            }
        }

        goto invalid;
    }

    if (is("jitter")) {
        for (i = 0; ngx_http_ai_jitters[i].len; i++) {
            if (ngx_http_ai_jitters[i].len == value.len
                && ngx_strncmp(ngx_http_ai_jitters[i].data, value.data,
                               value.len) == 0)
            {
                m->jitter = i;
                m->balanced = 1;
                return NGX_OK;
            }
        }

        goto invalid;
    }

    if (is("fallback")) {
        m->fallback = value;
        m->balanced = 1;
        return NGX_OK;
    }

    if (is("retries")) {
        n = ngx_atoi(value.data, value.len);
        if (n == NGX_ERROR || n < 1 || n > 16) {
            goto invalid;
        }

        m->attempts = n;
        m->balanced = 1;
        return NGX_OK;
    }

    if (is("retry_on")) {
        m->retry_on = 0;

        while (value.len) {
            w.data = value.data;
            slash = ngx_strlchr(value.data, value.data + value.len, ',');
            w.len = (slash ? slash : value.data + value.len) - value.data;

            if (w.len == 5 && ngx_strncmp(w.data, "error", 5) == 0) {
                m->retry_on |= NGX_HTTP_UPSTREAM_FT_ERROR
                               |NGX_HTTP_UPSTREAM_FT_INVALID_HEADER;
            } else if (w.len == 7 && ngx_strncmp(w.data, "timeout", 7) == 0) {
                m->retry_on |= NGX_HTTP_UPSTREAM_FT_TIMEOUT;
            } else if (w.len == 3 && ngx_strncmp(w.data, "429", 3) == 0) {
                m->retry_on |= NGX_HTTP_UPSTREAM_FT_HTTP_429;
            } else if (w.len == 3 && ngx_strncmp(w.data, "500", 3) == 0) {
                m->retry_on |= NGX_HTTP_UPSTREAM_FT_HTTP_500;
            } else if (w.len == 3 && ngx_strncmp(w.data, "502", 3) == 0) {
                m->retry_on |= NGX_HTTP_UPSTREAM_FT_HTTP_502;
            } else if (w.len == 3 && ngx_strncmp(w.data, "503", 3) == 0) {
                m->retry_on |= NGX_HTTP_UPSTREAM_FT_HTTP_503;
            } else if (w.len == 3 && ngx_strncmp(w.data, "504", 3) == 0) {
                m->retry_on |= NGX_HTTP_UPSTREAM_FT_HTTP_504;
            } else if (w.len == 3 && ngx_strncmp(w.data, "5xx", 3) == 0) {
                m->retry_on |= NGX_HTTP_UPSTREAM_FT_STATUS;
            } else {
                goto invalid;
            }

            if (slash == NULL) {
                break;
            }

            value.len -= slash + 1 - value.data;
            value.data = slash + 1;
        }

        m->balanced = 1;
        return NGX_OK;
    }

    if (is("budget") || is("cooldown") || is("connect_timeout")
        || is("read_timeout") || is("first_byte_timeout")
        || is("idle_timeout") || is("total_timeout") || is("backoff")
        || is("backoff_max") || is("retry_after_max"))
    {
        ms = ngx_parse_time(&value, 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            goto invalid;
        }

        if (is("budget")) {
            m->budget = ms;
        } else if (is("cooldown")) {
            m->cooldown = ms;
        } else if (is("connect_timeout")) {
            m->connect_timeout = ms;
        } else if (is("read_timeout")) {
            m->read_timeout = ms;
        } else if (is("first_byte_timeout")) {
            m->first_byte_timeout = ms;
        } else if (is("idle_timeout")) {
            m->idle_timeout = ms;
        } else if (is("total_timeout")) {
            m->total_timeout = ms;
        } else if (is("backoff")) {
            m->backoff = ms;
        } else if (is("backoff_max")) {
            m->backoff_max = ms;
        } else {
            m->retry_after_max = ms;
        }

        m->balanced = 1;
        return NGX_OK;
    }

    if (is("breaker")) {
        /* N/window: N failures within the window open the circuit */

        slash = ngx_strlchr(value.data, value.data + value.len, '/');
        if (slash == NULL) {
            goto invalid;
        }

        n = ngx_atoi(value.data, slash - value.data);
        w.data = slash + 1;
        w.len = value.data + value.len - w.data;
        ms = ngx_parse_time(&w, 0);

        if (n == NGX_ERROR || n < 1 || ms == (ngx_msec_t) NGX_ERROR
            || ms == 0)
        {
            goto invalid;
        }

        m->breaker_fails = n;
        m->breaker_window = ms;
        m->balanced = 1;
        return NGX_OK;
    }

#undef is

    return NGX_DECLINED;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_model \"%V\": invalid \"%V\"", &m->name, opt);
    return NGX_ERROR;
}


/*
 * At the end of the http block: fallbacks resolved into each model's
 * target list, an upstream conf per target (the provider's, with the
 * model's retry policy and timeouts), and the shared state zone.
 */

ngx_int_t
ngx_http_ai_balancer_init(ngx_conf_t *cf, ngx_http_ai_main_conf_t *amcf)
{
    u_char                        *comma, *s, *end;
    ngx_str_t                      name, zname;
    ngx_uint_t                     i, j, k, n, slot, nf;
    ngx_shm_zone_t                *shm_zone;
    ngx_http_ai_model_t          **mp, *fb;
    ngx_http_ai_provider_t       **pp, *p;
    ngx_http_ai_target_t          *t, *nt;
    ngx_http_upstream_conf_t      *uc;
    ngx_http_upstream_srv_conf_t  *uscf;

    /* a provider's first byte and idle timeouts default to read_timeout */

    pp = amcf->providers.elts;

    for (i = 0; i < amcf->providers.nelts; i++) {
        p = pp[i];

        if (p->engine) {
            continue;
        }

        if (p->idle_timeout == 0) {
            p->idle_timeout = p->upstream.read_timeout;
        }

        if (p->first_byte_timeout) {
            p->upstream.read_timeout = p->first_byte_timeout;
        }

        if (p->idle_timeout != p->upstream.read_timeout) {
            p->idle_conf = ngx_palloc(cf->pool,
                                      sizeof(ngx_http_upstream_conf_t));
            if (p->idle_conf == NULL) {
                return NGX_ERROR;
            }

            *p->idle_conf = p->upstream;
            p->idle_conf->read_timeout = p->idle_timeout;
        }
    }

    mp = amcf->models.elts;
    slot = 0;

    for (i = 0; i < amcf->models.nelts; i++) {

        if (mp[i]->targets.nelts > 1) {
            mp[i]->balanced = 1;
        }

        if (!mp[i]->balanced) {
            continue;
        }

        mp[i]->own_targets = mp[i]->targets.nelts;

        /* fallback models' targets come after the model's own */

        s = mp[i]->fallback.data;
        end = s + mp[i]->fallback.len;

        while (s && s < end) {
            comma = ngx_strlchr(s, end, ',');
            if (comma == NULL) {
                comma = end;
            }

            name.data = s;
            name.len = comma - s;
            s = comma + 1;

            fb = NULL;

            for (j = 0; j < amcf->models.nelts; j++) {
                if (mp[j]->name.len == name.len
                    && ngx_strncmp(mp[j]->name.data, name.data, name.len)
                       == 0)
                {
                    fb = mp[j];
                }
            }

            if (fb == NULL || fb == mp[i]) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "ai_model \"%V\": fallback \"%V\" is not a "
                              "model", &mp[i]->name, &name);
                return NGX_ERROR;
            }

            nf = fb->own_targets ? fb->own_targets : fb->targets.nelts;
            t = fb->targets.elts;

            for (k = 0; k < nf; k++) {
                nt = ngx_array_push(&mp[i]->targets);
                if (nt == NULL) {
                    return NGX_ERROR;
                }

                *nt = t[k];
            }
        }

        if (mp[i]->targets.nelts > NGX_HTTP_AI_BAL_MAX_TARGETS) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "ai_model \"%V\": more than %d targets",
                          &mp[i]->name, NGX_HTTP_AI_BAL_MAX_TARGETS);
            return NGX_ERROR;
        }

        if (mp[i]->attempts == 0) {
            /* each target once, by default; retries= to try more */
            mp[i]->attempts = ngx_min(mp[i]->targets.nelts, 8);
        }

        if (mp[i]->retry_on == 0) {
            mp[i]->retry_on = NGX_HTTP_UPSTREAM_FT_ERROR
                              |NGX_HTTP_UPSTREAM_FT_TIMEOUT
                              |NGX_HTTP_UPSTREAM_FT_INVALID_HEADER
                              |NGX_HTTP_UPSTREAM_FT_HTTP_429
                              |NGX_HTTP_UPSTREAM_FT_STATUS;
        }

        if (mp[i]->breaker_fails == 0) {
            mp[i]->breaker_fails = 5;
            mp[i]->breaker_window = 30000;
        }

        if (mp[i]->cooldown == 0) {
            mp[i]->cooldown = 30000;
        }

        if (mp[i]->backoff == 0) {
            mp[i]->backoff = 100;
        }

        if (mp[i]->backoff_max == 0) {
            mp[i]->backoff_max = ngx_max(2000, mp[i]->backoff);
        }

        if (mp[i]->retry_after_max == 0) {
            mp[i]->retry_after_max = 10000;
        }

        /* the model's own upstream: every request starts there */

        uscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_upstream_srv_conf_t));
        if (uscf == NULL) {
            return NGX_ERROR;
        }

        uscf->peer.init = ngx_http_ai_bal_init_peer;
        uscf->peer.data = mp[i];
        uscf->host = mp[i]->name;
        uscf->flags = NGX_HTTP_UPSTREAM_CREATE;

        t = mp[i]->targets.elts;

        n = mp[i]->targets.nelts;

        mp[i]->confs = ngx_pcalloc(cf->pool,
                                   2 * n * sizeof(ngx_http_upstream_conf_t));
        mp[i]->total_timeouts = ngx_pcalloc(cf->pool, n * sizeof(ngx_msec_t));

        if (mp[i]->confs == NULL || mp[i]->total_timeouts == NULL) {
            return NGX_ERROR;
        }

        mp[i]->idle_confs = mp[i]->confs + n;

        for (j = 0; j < mp[i]->targets.nelts; j++) {
            uc = &mp[i]->confs[j];
            *uc = t[j].provider->upstream;

            uc->upstream = uscf;
            uc->next_upstream = NGX_CONF_BITMASK_SET|mp[i]->retry_on
                                |NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT;
            uc->next_upstream_tries = mp[i]->attempts;
            uc->next_upstream_timeout = mp[i]->budget;

            if (mp[i]->connect_timeout) {
                uc->connect_timeout = mp[i]->connect_timeout;
            }

            /* uc->read_timeout: until the answer's header; then idle */

            if (mp[i]->first_byte_timeout) {
                uc->read_timeout = mp[i]->first_byte_timeout;
            } else if (mp[i]->read_timeout) {
                uc->read_timeout = mp[i]->read_timeout;
            }

            mp[i]->idle_confs[j] = *uc;

            if (mp[i]->idle_timeout) {
                mp[i]->idle_confs[j].read_timeout = mp[i]->idle_timeout;
            } else if (mp[i]->read_timeout) {
                mp[i]->idle_confs[j].read_timeout = mp[i]->read_timeout;
            } else {
                mp[i]->idle_confs[j].read_timeout = t[j].provider->idle_timeout;
            }

            mp[i]->total_timeouts[j] = mp[i]->total_timeout
                                       ? mp[i]->total_timeout
                                       : t[j].provider->total_timeout;
        }

        mp[i]->slot = slot;
        slot += mp[i]->targets.nelts;
    }

    if (slot == 0) {
        return NGX_OK;
    }

    ngx_str_set(&zname, "aigw_routing");

    shm_zone = ngx_shared_memory_add(cf, &zname, 128 * 1024,
                                     &ngx_http_ai_gateway_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    ngx_http_ai_bal_zone = ngx_pcalloc(cf->pool,
                                       sizeof(ngx_http_ai_bal_zone_t));
    if (ngx_http_ai_bal_zone == NULL) {
        return NGX_ERROR;
    }

    ngx_http_ai_bal_zone->nstates = slot;
    shm_zone->init = ngx_http_ai_bal_init_zone;
    shm_zone->data = ngx_http_ai_bal_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_bal_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ai_bal_zone_t  *oz = data;

    ngx_http_ai_bal_zone_t  *z;

    z = shm_zone->data;
    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (oz && oz->sh && oz->sh->nstates == z->nstates) {
        /* a reload with the same targets keeps their health */
        z->sh = oz->sh;
        return NGX_OK;
    }

    if (shm_zone->shm.exists && z->shpool->data) {
        z->sh = z->shpool->data;

        if (z->sh->nstates == z->nstates) {
            return NGX_OK;
        }
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    z->sh = ngx_slab_calloc_locked(z->shpool, sizeof(ngx_http_ai_bal_sh_t)
                                   + z->nstates
                                     * sizeof(ngx_http_ai_bal_state_t));

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->sh->nstates = z->nstates;
    z->shpool->data = z->sh;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_bal_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_ai_ctx_t       *ctx;
    ngx_http_ai_bal_peer_t  *bp;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    bp = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_bal_peer_t));
    if (bp == NULL) {
        return NGX_ERROR;
    }

    bp->request = r;
    bp->ctx = ctx;
    bp->model = us->peer.data;
    bp->current = -1;
    bp->wait_target = -1;

    r->upstream->peer.data = bp;
    r->upstream->peer.get = ngx_http_ai_bal_get_peer;
    r->upstream->peer.free = ngx_http_ai_bal_free_peer;
    r->upstream->peer.tries = bp->model->attempts;

#if (NGX_HTTP_SSL)
    r->upstream->peer.set_session = ngx_http_ai_bal_set_session;
    r->upstream->peer.save_session = ngx_http_ai_bal_save_session;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_bal_choose(ngx_http_ai_bal_peer_t *bp, ngx_msec_t now,
    ngx_uint_t *probe, ngx_msec_t *soonest)
{
    uint64_t                  bit;
    ngx_int_t                 best, cand[NGX_HTTP_AI_BAL_MAX_TARGETS];
    ngx_uint_t                i, n, pass, lo, hi, total, pick, p, nc;
    ngx_msec_t                score, best_score;
    ngx_http_ai_model_t      *m;
    ngx_http_ai_target_t     *t;
    ngx_http_ai_bal_state_t  *st;

    m = bp->model;
    t = m->targets.elts;
    st = ngx_http_ai_bal_zone->sh->states + m->slot;
    *soonest = 0;

    /*
     * Pass 0: the model's own targets not tried yet; pass 1: the
     * fallbacks not tried yet; pass 2: any target again.
     */

    for (pass = 0; pass < 3; pass++) {

        lo = (pass == 1) ? m->own_targets : 0;
        hi = (pass == 0) ? m->own_targets : m->targets.nelts;
        nc = 0;

        for (i = lo; i < hi; i++) {
            bit = (uint64_t) 1 << i;

            if (pass < 2 && (bp->tried & bit)) {
                continue;
            }

            if (st[i].open_until
                && (ngx_msec_int_t) (st[i].open_until - now) > 0)
            {
                if (*soonest == 0 || st[i].open_until - now < *soonest) {
                    *soonest = st[i].open_until - now;
                }

                continue;
            }

            cand[nc++] = i;
        }

        if (nc == 0) {
            continue;
        }

        best = -1;

        switch (m->strategy) {

        case 1:   /* round robin */
            pick = ngx_atomic_fetch_add(&ngx_http_ai_bal_zone->sh->rr, 1);
            best = cand[pick % nc];
            break;

        case 2:   /* least in flight, relative to weight */
            best_score = (ngx_msec_t) -1;

            for (n = 0; n < nc; n++) {
                score = (ngx_msec_t) (st[cand[n]].inflight * 1000
                                      / t[cand[n]].weight);

                if (score < best_score) {
                    best_score = score;
                    best = cand[n];
                }
            }

            break;

        case 3:   /* lowest latency, with a little exploration */
            if (nc > 1 && ngx_random() % 20 == 0) {
                best = cand[ngx_random() % nc];
                break;
            }

            best_score = (ngx_msec_t) -1;

            for (n = 0; n < nc; n++) {
                score = st[cand[n]].ewma_ttfb;

                if (score < best_score) {
                    best_score = score;
                    best = cand[n];
                }
            }

            break;

        default:  /* weighted random */
            total = 0;

            for (n = 0; n < nc; n++) {
                total += t[cand[n]].weight;
            }

            pick = (ngx_uint_t) ngx_random() % total;

            for (n = 0; n < nc; n++) {
                if (pick < t[cand[n]].weight) {
                    break;
                }

                pick -= t[cand[n]].weight;
            }

            best = cand[n < nc ? n : nc - 1];
        }

        /* a target whose cooldown just ended takes one probe at a time */

        if (st[best].open_until) {
            if (!ngx_atomic_cmp_set(&st[best].probe, 0, 1)) {
                for (p = 0; p < nc; p++) {
                    if (st[cand[p]].open_until == 0) {
                        best = cand[p];
                        break;
                    }
                }

                if (p == nc) {
                    continue;
                }

            } else {
                *probe = 1;
            }
        }

        return best;
    }

    return -1;
}


static ngx_int_t
ngx_http_ai_bal_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ai_bal_peer_t  *bp = data;

    ngx_int_t                 idx, rc;
    ngx_uint_t                tries, probe;
    ngx_msec_t                now, soonest, wait;
    ngx_http_request_t       *r;
    ngx_http_upstream_t      *u;
    ngx_http_ai_ctx_t        *ctx;
    ngx_http_ai_model_t      *m;
    ngx_http_ai_target_t     *t;
    ngx_http_ai_provider_t   *p;
    ngx_http_ai_bal_state_t  *st;

    r = bp->request;
    u = r->upstream;
    ctx = bp->ctx;
    m = bp->model;
    now = ngx_current_msec;
    probe = 0;

    wait = bp->wait;
    bp->wait = 0;
    bp->recorded = 0;
    bp->planned = 0;

    idx = ngx_http_ai_bal_choose(bp, now, &probe, &soonest);

    if (idx < 0 && bp->wait_target >= 0) {
        /* the retry planned to wait for this target's cooldown to end */
        idx = bp->wait_target;
    }

    bp->wait_target = -1;

    if (idx < 0) {
        /* every target is cooling down: 503 with Retry-After */
        ctx->all_cooling = 1;
        ctx->cooling_retry_after = soonest ? (soonest + 999) / 1000 : 1;
        return NGX_BUSY;
    }

    t = m->targets.elts;
    st = ngx_http_ai_bal_zone->sh->states + m->slot;
    p = t[idx].provider;

    bp->current = idx;
    bp->tried |= (uint64_t) 1 << idx;
    bp->probing = probe;
    bp->attempt_start = now + wait;

    (void) ngx_atomic_fetch_add(&st[idx].inflight, 1);
    (void) ngx_atomic_fetch_add(&st[idx].requests, 1);

    /* the request now goes to this target: its provider, format, body */

    if (ctx->target.provider != p
        || ctx->target.model.len != t[idx].model.len
        || ngx_strncmp(ctx->target.model.data, t[idx].model.data,
                       t[idx].model.len) != 0
        || ctx->upstream_body == NULL)
    {
        ctx->target = t[idx];

        rc = ngx_http_ai_retarget(r, ctx);
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        ctx->target = t[idx];
    }

    u->conf = &m->confs[idx];
    ctx->idle_conf = (m->idle_confs[idx].read_timeout
                      != m->confs[idx].read_timeout)
                     ? &m->idle_confs[idx] : NULL;
    ctx->total_timeout = m->total_timeouts[idx];
    ctx->attempts++;

#if (NGX_HTTP_SSL)
    u->ssl = p->ssl ? 1 : 0;
#endif

    /* the provider's own peer (keepalive pool, round robin of addresses) */

    tries = pc->tries;

    /* round robin reuses a peer.data it finds: it must not find ours */
    pc->data = NULL;

    if (p->upstream.upstream->peer.init(r, p->upstream.upstream) != NGX_OK) {
        return NGX_ERROR;
    }

    bp->tdata = pc->data;
    bp->tget = pc->get;
    bp->tfree = pc->free;
#if (NGX_HTTP_SSL)
    bp->tset_session = pc->set_session;
    bp->tsave_session = pc->save_session;
    pc->set_session = ngx_http_ai_bal_set_session;
    pc->save_session = ngx_http_ai_bal_save_session;
#endif

    pc->data = bp;
    pc->get = ngx_http_ai_bal_get_peer;
    pc->free = ngx_http_ai_bal_free_peer;
    pc->tries = tries;

    rc = bp->tget(pc, bp->tdata);

    pc->tries = tries;

    if (rc != NGX_OK && rc != NGX_DONE) {
        return rc;
    }

    if (wait == 0) {
        ngx_http_ai_upstream_attempt(r, ctx, 1);
        return rc;
    }

    /* connect now, send when the wait is over */

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "ai: model \"%V\" attempt %ui to target %i (provider "
                  "\"%V\") waits %M ms", &m->name, ctx->attempts, idx,
                  &p->name, wait);

    ngx_http_ai_upstream_attempt(r, ctx, 0);

    if (ngx_http_ai_bal_hold(bp, wait) != NGX_OK) {
        return NGX_ERROR;
    }

    return rc;
}


static void
ngx_http_ai_bal_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_ai_bal_peer_t  *bp = data;

    ngx_uint_t                tries;
    ngx_msec_t                now;
    ngx_http_ai_bal_state_t  *st;

    if (bp->current < 0) {
        return;
    }

    st = ngx_http_ai_bal_zone->sh->states + bp->model->slot + bp->current;
    now = ngx_current_msec;

    ngx_http_ai_bal_unhold(bp);

    tries = pc->tries;

    if (bp->tfree) {
        bp->tfree(pc, bp->tdata, state);
        bp->tfree = NULL;
    }

    /* one attempt used, whatever the provider's balancer counted */
    pc->tries = tries ? tries - 1 : 0;

    (void) ngx_atomic_fetch_add(&st->inflight, (ngx_atomic_int_t) -1);

    /*
     * A 429 or 5xx answer was recorded when it came (balancer_answer());
     * an attempt the client gave up before any answer says nothing.
     */

    if (!bp->recorded
        && ((state & NGX_PEER_FAILED)
            || bp->request->upstream->headers_in.status_n))
    {
        ngx_http_ai_bal_record(bp, state & NGX_PEER_FAILED, 0, now);
    }

    if (bp->probing) {
        (void) ngx_atomic_cmp_set(&st->probe, 1, 0);
    }

    if ((state & NGX_PEER_FAILED) && pc->tries && !bp->planned
        && ngx_http_ai_bal_plan(bp, now, 1) != NGX_OK)
    {
        /* no retry can happen in time: the error goes to the client */
        pc->tries = 0;
    }

    bp->current = -1;
}


/*
 * The provider answered with an error status: its health is recorded now,
 * and when no retry could happen in time (every target cooling down, or
 * the wait would not fit in the budget) the answer itself, with its
 * Retry-After, is what the client gets.
 */

void
ngx_http_ai_balancer_answer(ngx_http_request_t *r)
{
    ngx_uint_t               mask;
    ngx_http_upstream_t     *u;
    ngx_http_ai_bal_peer_t  *bp;

    u = r->upstream;
    bp = u->peer.data;

    if (bp == NULL || bp->current < 0 || bp->recorded) {
        return;
    }

    ngx_http_ai_bal_record(bp, 1, ngx_http_ai_bal_retry_after(u),
                           ngx_current_msec);

    switch (u->headers_in.status_n) {
    case 429:
        mask = NGX_HTTP_UPSTREAM_FT_HTTP_429;
        break;
    case 500:
        mask = NGX_HTTP_UPSTREAM_FT_HTTP_500;
        break;
    case 502:
        mask = NGX_HTTP_UPSTREAM_FT_HTTP_502;
        break;
    case 503:
        mask = NGX_HTTP_UPSTREAM_FT_HTTP_503;
        break;
    case 504:
        mask = NGX_HTTP_UPSTREAM_FT_HTTP_504;
        break;
    default:
        return;
    }

    if (u->peer.tries <= 1 || (u->conf->next_upstream & mask) != mask) {
        return;
    }

    if (ngx_http_ai_bal_plan(bp, ngx_current_msec, 0) != NGX_OK) {
        /* ngx_http_upstream_test_next() passes the answer on */
        u->peer.tries = 1;
    }
}


/* the outcome of an attempt, in the target's shared state */

static void
ngx_http_ai_bal_record(ngx_http_ai_bal_peer_t *bp, ngx_uint_t failed,
    ngx_msec_t retry_after, ngx_msec_t now)
{
    ngx_msec_t                ttfb, cool;
    ngx_http_ai_model_t      *m;
    ngx_http_ai_bal_state_t  *st;

    m = bp->model;
    st = ngx_http_ai_bal_zone->sh->states + m->slot + bp->current;

    bp->recorded = 1;

    if (!failed) {
        /* a success closes the circuit and teaches the latency EWMA */

        st->fails = 0;
        st->open_until = 0;

        if (bp->ctx->first_byte_msec
            && bp->ctx->first_byte_msec >= bp->attempt_start)
        {
            ttfb = (bp->ctx->first_byte_msec - bp->attempt_start) * 16;
            st->ewma_ttfb = st->ewma_ttfb
                            ? (st->ewma_ttfb * 7 + ttfb) / 8 : ttfb;
        }

        return;
    }

    if (now - st->window_start > m->breaker_window) {
        st->window_start = now;
        st->fails = 0;
    }

    st->fails++;

    /* a Retry-After cools the target for as long as it asked */

    cool = retry_after;

    if (bp->probing || st->fails >= m->breaker_fails || cool) {
        if (cool == 0) {
            cool = m->cooldown;
        }

        if (st->open_until == 0) {
            st->opened++;
            ngx_log_error(NGX_LOG_WARN, bp->request->connection->log, 0,
                          "ai: model \"%V\" target %i (provider \"%V\") "
                          "cooling down for %M ms", &m->name, bp->current,
                          &bp->ctx->target.provider->name, cool);
        }

        st->open_until = now + cool;
        if (st->open_until == 0) {
            st->open_until = 1;
        }
    }
}


/*
 * After a failure, with attempts left: an untried target that is not
 * cooling down is tried at once; otherwise a target is tried again after
 * a backoff, or after the cooldown (a Retry-After) that ends first, if
 * that wait ends within the budget and retry_after_max.  NGX_DECLINED:
 * no retry worth making.
 */

static ngx_int_t
ngx_http_ai_bal_plan(ngx_http_ai_bal_peer_t *bp, ngx_msec_t now,
    ngx_uint_t report)
{
    ngx_int_t                 soonest_i;
    ngx_uint_t                i, untried, tried;
    ngx_msec_t                cap, spent, left, soonest, wait;
    ngx_http_upstream_t      *u;
    ngx_http_ai_model_t      *m;
    ngx_http_ai_bal_state_t  *st;

    m = bp->model;
    u = bp->request->upstream;
    st = ngx_http_ai_bal_zone->sh->states + m->slot;

    bp->planned = 1;
    bp->wait = 0;
    bp->wait_target = -1;

    cap = m->retry_after_max;

    if (m->budget) {
        spent = now - u->peer.start_time;

        if (spent >= m->budget) {
            return NGX_DECLINED;
        }

        cap = ngx_min(cap, m->budget - spent - 1);
    }

    /* a request held longer than send_timeout would time out */
    if (cap >= u->conf->send_timeout) {
        cap = u->conf->send_timeout - 1;
    }

    untried = 0;
    tried = 0;
    soonest = 0;
    soonest_i = -1;

    for (i = 0; i < m->targets.nelts; i++) {

        if (st[i].open_until
            && (ngx_msec_int_t) (st[i].open_until - now) > 0)
        {
            left = st[i].open_until - now;

            if (soonest_i < 0 || left < soonest) {
                soonest = left;
                soonest_i = i;
            }

            continue;
        }

        if (bp->tried & ((uint64_t) 1 << i)) {
            tried = 1;

        } else {
            untried = 1;
        }
    }

    if (untried) {
        return NGX_OK;
    }

    if (tried) {
        wait = ngx_http_ai_bal_backoff(bp);

        if (wait > cap) {
            return NGX_DECLINED;
        }

        bp->wait = wait;
        return NGX_OK;
    }

    if (soonest_i >= 0 && soonest <= cap) {
        bp->wait = soonest;
        bp->wait_target = soonest_i;
        return NGX_OK;
    }

    if (report) {
        bp->ctx->all_cooling = 1;
        bp->ctx->cooling_retry_after = soonest ? (soonest + 999) / 1000 : 1;
    }

    return NGX_DECLINED;
}


/* backoff * 2^n, capped at backoff_max, with the model's jitter */

static ngx_msec_t
ngx_http_ai_bal_backoff(ngx_http_ai_bal_peer_t *bp)
{
    ngx_msec_t            d, lo, hi, w;
    ngx_http_ai_model_t  *m;

    m = bp->model;

    d = m->backoff << ngx_min(bp->backoffs, 16);

    if (d > m->backoff_max || d < m->backoff) {
        d = m->backoff_max;
    }

    bp->backoffs++;

    switch (m->jitter) {

    case NGX_HTTP_AI_JITTER_NONE:
        w = d;
        break;

    case NGX_HTTP_AI_JITTER_EQUAL:
        w = d / 2 + (ngx_msec_t) ngx_random() % (d / 2 + 1);
        break;

    case NGX_HTTP_AI_JITTER_DECORR:
        /* between backoff and three times the previous wait */
        lo = m->backoff;
        hi = ngx_min(m->backoff_max, (bp->prev_wait ? bp->prev_wait : lo) * 3);
        w = (hi > lo) ? lo + (ngx_msec_t) ngx_random() % (hi - lo + 1) : lo;
        break;

    default:  /* full */
        w = (ngx_msec_t) ngx_random() % (d + 1);
    }

    bp->prev_wait = w;

    return w;
}


/* Retry-After (seconds or an HTTP date) or retry-after-ms, in ms */

static ngx_msec_t
ngx_http_ai_bal_retry_after(ngx_http_upstream_t *u)
{
    u_char           *dot;
    time_t            t;
    ngx_int_t         n;
    ngx_uint_t        i;
    ngx_msec_t        ms, ms_header;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (u == NULL || u->headers_in.headers.part.elts == NULL) {
        return 0;
    }

    ms = 0;
    ms_header = 0;
    part = &u->headers_in.headers.part;
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

        if (h[i].key.len == 14
            && ngx_strncasecmp(h[i].key.data, (u_char *) "retry-after-ms",
                               14) == 0)
        {
            /* "300" or "300.5": the whole milliseconds */
            dot = ngx_strlchr(h[i].value.data,
                              h[i].value.data + h[i].value.len, '.');
            n = ngx_atoi(h[i].value.data,
                         dot ? (size_t) (dot - h[i].value.data)
                             : h[i].value.len);

            if (n > 0 && n <= 3600000) {
                ms_header = n;
            }

            continue;
        }

        if (h[i].key.len != 11
            || ngx_strncasecmp(h[i].key.data, (u_char *) "retry-after", 11)
               != 0)
        {
            continue;
        }

        n = ngx_atoi(h[i].value.data, h[i].value.len);

        if (n == NGX_ERROR) {
            t = ngx_parse_http_time(h[i].value.data, h[i].value.len);
            n = (t == NGX_ERROR) ? 0 : t - ngx_time();
        }

        if (n > 0 && n <= 3600) {
            ms = (ngx_msec_t) n * 1000;
        }
    }

    /* the finer of the two, when both came */
    return ms_header ? ms_header : ms;
}


/*
 * The wait before an attempt: the request is held in the upstream's
 * output chain (the connection is made meanwhile) until wait_ev fires.
 */

static ngx_int_t
ngx_http_ai_bal_hold(ngx_http_ai_bal_peer_t *bp, ngx_msec_t wait)
{
    ngx_http_request_t  *r;
    ngx_pool_cleanup_t  *cln;

    r = bp->request;

    if (!bp->cleanup) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_ai_bal_cleanup;
        cln->data = bp;
        bp->cleanup = 1;

        bp->wait_ev.handler = ngx_http_ai_bal_wait_done;
        bp->wait_ev.data = bp;
        bp->wait_ev.log = r->connection->log;
    }

    r->upstream->output.output_filter = ngx_http_ai_bal_held_writer;
    bp->waiting = 1;

    ngx_add_timer(&bp->wait_ev, wait);

    return NGX_OK;
}


/* the request's buffers wait in the chain writer's queue, unsent */

static ngx_int_t
ngx_http_ai_bal_held_writer(void *data, ngx_chain_t *in)
{
    ngx_chain_writer_ctx_t *wc = data;

    ngx_chain_t             *cl;
    ngx_http_request_t      *r;
    ngx_http_ai_bal_peer_t  *bp;

    for ( /* void */ ; in; in = in->next) {

        if (ngx_buf_size(in->buf) == 0 && !ngx_buf_special(in->buf)) {
            continue;
        }

        cl = ngx_alloc_chain_link(wc->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = in->buf;
        cl->next = NULL;
        *wc->last = cl;
        wc->last = &cl->next;
    }

    r = wc->connection->data;
    bp = r->upstream->peer.data;
    bp->holding = 1;

    return NGX_AGAIN;
}


static void
ngx_http_ai_bal_wait_done(ngx_event_t *ev)
{
    ngx_http_ai_bal_peer_t *bp = ev->data;

    ngx_uint_t            holding;
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_http_upstream_t  *u;

    r = bp->request;
    u = r->upstream;
    c = u->peer.connection;
    holding = bp->holding;

    ngx_http_ai_bal_unhold(bp);

    ngx_http_ai_upstream_attempt(r, bp->ctx, 1);

    if (holding && c) {
        /* the send resumes where NGINX left it: the write handler */
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


static void
ngx_http_ai_bal_unhold(ngx_http_ai_bal_peer_t *bp)
{
    if (!bp->waiting) {
        return;
    }

    if (bp->wait_ev.timer_set) {
        ngx_del_timer(&bp->wait_ev);
    }

    bp->request->upstream->output.output_filter = ngx_chain_writer;
    bp->waiting = 0;
    bp->holding = 0;
}


static void
ngx_http_ai_bal_cleanup(void *data)
{
    ngx_http_ai_bal_peer_t  *bp = data;

    if (bp->wait_ev.timer_set) {
        ngx_del_timer(&bp->wait_ev);
    }
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_ai_bal_set_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ai_bal_peer_t  *bp = data;

    return bp->tset_session ? bp->tset_session(pc, bp->tdata) : NGX_OK;
}


static void
ngx_http_ai_bal_save_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_ai_bal_peer_t  *bp = data;

    if (bp->tsave_session) {
        bp->tsave_session(pc, bp->tdata);
    }
}

#endif


/* the admin API's view of every balanced target */

json_t *
ngx_http_ai_balancer_status(void)
{
    json_t                   *root, *list, *t;
    ngx_uint_t                i, j;
    ngx_msec_t                now;
    ngx_http_ai_model_t     **mp, *m;
    ngx_http_ai_target_t     *tg;
    ngx_http_ai_main_conf_t  *amcf;
    ngx_http_ai_bal_state_t  *st;

    root = json_object();
    list = json_array();

    if (root == NULL || list == NULL) {
        json_decref(root);
        json_decref(list);
        return NULL;
    }

    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", list);

    amcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_ai_gateway_module);

    if (amcf == NULL || ngx_http_ai_bal_zone == NULL
        || ngx_http_ai_bal_zone->sh == NULL)
    {
        return root;
    }

    now = ngx_current_msec;
    mp = amcf->models.elts;

    for (i = 0; i < amcf->models.nelts; i++) {
        m = mp[i];

        if (!m->balanced) {
            continue;
        }

        tg = m->targets.elts;

        for (j = 0; j < m->targets.nelts; j++) {
            st = &ngx_http_ai_bal_zone->sh->states[m->slot + j];
            t = json_object();
            if (t == NULL) {
                continue;
            }

            json_object_set_new(t, "model",
                json_stringn((char *) m->name.data, m->name.len));
            json_object_set_new(t, "target", json_integer(j));
            json_object_set_new(t, "provider",
                json_stringn((char *) tg[j].provider->name.data,
                             tg[j].provider->name.len));
            json_object_set_new(t, "upstream_model",
                json_stringn((char *) tg[j].model.data, tg[j].model.len));
            json_object_set_new(t, "state", json_string(
                st->open_until == 0 ? "closed"
                : (ngx_msec_int_t) (st->open_until - now) > 0 ? "open"
                : "half_open"));
            json_object_set_new(t, "recent_failures",
                                json_integer(st->fails));
            json_object_set_new(t, "times_opened", json_integer(st->opened));
            json_object_set_new(t, "in_flight",
                                json_integer((json_int_t) st->inflight));
            json_object_set_new(t, "requests",
                                json_integer((json_int_t) st->requests));
            json_object_set_new(t, "ewma_ttfb_ms",
                                json_integer(st->ewma_ttfb / 16));
            json_array_append_new(list, t);
        }
    }

    return root;
}


/* Prometheus families for the balanced targets (appended by ai_metrics) */

ngx_int_t
ngx_http_ai_balancer_metrics(void *buf)
{
    ai_prom_buf_t *b = buf;

    char                      idx[NGX_INT_T_LEN + 1];
    ngx_uint_t                i, j, f;
    ngx_msec_t                now;
    ai_prom_label_t           l[4];
    ngx_http_ai_model_t     **mp, *m;
    ngx_http_ai_target_t     *tg;
    ngx_http_ai_main_conf_t  *amcf;
    ngx_http_ai_bal_state_t  *st;

    static const struct {
        const char  *name;
        const char  *type;
        const char  *help;
    }  fam[] = {
        { "aigw_target_requests_total", "counter",
          "Attempts sent to a target of a balanced model." },
        { "aigw_target_in_flight", "gauge",
          "Attempts in flight to a target." },
        { "aigw_target_breaker_open", "gauge",
          "1 while the target's circuit is open (cooling down)." },
        { "aigw_target_breaker_opened_total", "counter",
          "Times the target's circuit opened." },
        { "aigw_target_ttfb_ewma_seconds", "gauge",
          "Moving average of the target's time to first byte." }
    };

    amcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_ai_gateway_module);

    if (amcf == NULL || ngx_http_ai_bal_zone == NULL
        || ngx_http_ai_bal_zone->sh == NULL)
    {
        return NGX_OK;
    }

    now = ngx_current_msec;
    mp = amcf->models.elts;

    for (f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {

        ai_prom_family(b, fam[f].name, fam[f].type, fam[f].help);

        for (i = 0; i < amcf->models.nelts; i++) {
            m = mp[i];

            if (!m->balanced) {
                continue;
            }

            tg = m->targets.elts;

            for (j = 0; j < m->targets.nelts; j++) {
                st = &ngx_http_ai_bal_zone->sh->states[m->slot + j];

                ngx_sprintf((u_char *) idx, "%ui%Z", j);

                l[0].name = "model";
                l[0].value = (char *) m->name.data;
                l[0].len = m->name.len;
                l[1].name = "provider";
                l[1].value = (char *) tg[j].provider->name.data;
                l[1].len = tg[j].provider->name.len;
                l[2].name = "upstream_model";
                l[2].value = (char *) tg[j].model.data;
                l[2].len = tg[j].model.len;
                l[3].name = "target";
                l[3].value = idx;
                l[3].len = ngx_strlen(idx);

                switch (f) {
                case 0:
                    ai_prom_sample_u64(b, fam[f].name, l, 4, st->requests);
                    break;
                case 1:
                    ai_prom_sample_u64(b, fam[f].name, l, 4, st->inflight);
                    break;
                case 2:
                    ai_prom_sample_u64(b, fam[f].name, l, 4,
                        (st->open_until
                         && (ngx_msec_int_t) (st->open_until - now) > 0)
                        ? 1 : 0);
                    break;
                case 3:
                    ai_prom_sample_u64(b, fam[f].name, l, 4, st->opened);
                    break;
                default:
                    ai_prom_sample_micro(b, fam[f].name, l, 4,
                                         (uint64_t) st->ewma_ttfb * 1000
                                         / 16);
                }
            }
        }
    }

    return b->failed ? NGX_ERROR : NGX_OK;
}
