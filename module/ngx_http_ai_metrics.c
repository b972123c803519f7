
/*
 * aigw: observability, as a second NGINX module in the gateway's shared
 * object.  It reads the gateway's per-request state (ngx_http_ai_ctx_t) and
 * changes none of its decisions:
 *
 *   ai_metrics_zone   counters of all workers in shared memory (a slab
 *                     zone, reused across reloads): one series per model,
 *                     provider and tenant, one set of histograms per model
 *                     and provider, in a red-black tree like limit_req's;
 *   ai_metrics        serves them in the Prometheus text format (a copy is
 *                     taken under the zone's mutex, rendered outside it);
 *   $ai_*             variables for log_format;
 *   x-request-id      accepted or generated, returned and logged.
 *
 * A request is counted in flight from the preaccess phase of an ai_gateway
 * location until its pool is freed, and recorded once, in the log phase.
 */

#include <openssl/rand.h>

#include "ngx_http_ai_gateway.h"
#include "ngx_http_ai_metrics.h"
#include "ai_prom.h"


#define NGX_HTTP_AI_MX_SERIES       0      /* model, provider, tenant */
#define NGX_HTTP_AI_MX_HIST         1      /* model, provider */

#define NGX_HTTP_AI_MX_CLASS_N      6      /* 2xx 3xx 4xx 5xx 499 other */
#define NGX_HTTP_AI_MX_CACHE_N      5      /* hit miss bypass refresh other */
#define NGX_HTTP_AI_MX_LIMIT_N      (AI_CNT_N + 1)
#define NGX_HTTP_AI_MX_BUCKETS      15     /* and +Inf */

#define NGX_HTTP_AI_MX_ID_MAX       128


typedef struct {
    uint64_t                        requests[NGX_HTTP_AI_MX_CLASS_N];
    uint64_t                        prompt_tokens;
    uint64_t                        completion_tokens;
    uint64_t                        cached_tokens;
    uint64_t                        cost;          /* micro-USD */
    uint64_t                        cache[NGX_HTTP_AI_MX_CACHE_N];
    uint64_t                        attempts;
    uint64_t                        retries;
    uint64_t                        rejected[NGX_HTTP_AI_MX_LIMIT_N];
} ngx_http_ai_mx_counters_t;


typedef struct {
    uint64_t                        bucket[NGX_HTTP_AI_MX_BUCKETS + 1];
    uint64_t                        sum;           /* milliseconds */
} ngx_http_ai_mx_hist_t;


typedef struct {
    ngx_http_ai_mx_hist_t           total;
    ngx_http_ai_mx_hist_t           ttfb;
    ngx_http_ai_mx_hist_t           upstream;
    ngx_http_ai_mx_hist_t           gap;
} ngx_http_ai_mx_hists_t;


/*
 * A node is followed by the values of its kind (counters or histograms),
 * then by its key: kind, model, '\0', provider, '\0', tenant.
 */
typedef struct {
    ngx_str_node_t                  sn;
    ngx_queue_t                     queue;
    ngx_uint_t                      kind;
    u_short                         len[3];        /* of the labels */
} ngx_http_ai_mx_node_t;

#define ngx_http_ai_mx_values(node)                                          \
    ((u_char *) (node) + sizeof(ngx_http_ai_mx_node_t))


typedef struct {
    ngx_str_node_t                  sn;
    u_char                          data[1];
} ngx_http_ai_mx_tenant_t;


typedef struct {
    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_rbtree_t                    tenants;
    ngx_rbtree_node_t               tenants_sentinel;
    ngx_queue_t                     queue;         /* every node */
    ngx_uint_t                      nnodes;
    size_t                          key_bytes;
    ngx_uint_t                      ntenants;
    uint64_t                        dropped;       /* the zone was full */
    ngx_atomic_t                    in_flight;
    ngx_atomic_t                    streams;
} ngx_http_ai_mx_shctx_t;


typedef struct {
    ngx_http_ai_mx_shctx_t         *sh;
    ngx_slab_pool_t                *shpool;
    ngx_shm_zone_t                 *shm_zone;
    ngx_uint_t                      max_tenants;
} ngx_http_ai_mx_zone_t;


typedef struct {
    ngx_http_ai_mx_zone_t          *zone;
    ngx_flag_t                      served;        /* an ai_metrics exists */
} ngx_http_ai_metrics_main_conf_t;


typedef struct {
    ngx_str_t                       request_id;
    ngx_http_ai_mx_zone_t          *zone;          /* counted in flight */
    unsigned                        in_flight:1;
    unsigned                        streaming:1;
    unsigned                        header_done:1;
    unsigned                        logged:1;
} ngx_http_ai_metrics_ctx_t;


typedef struct {
    int64_t                         prompt;
    int64_t                         completion;
    int64_t                         cached;
    int64_t                         cost;          /* micro-USD */
} ngx_http_ai_mx_usage_t;


typedef struct {
    ngx_uint_t                      kind;
    ngx_str_t                       label[3];
    union {
        ngx_http_ai_mx_counters_t   c;
        ngx_http_ai_mx_hists_t      h;
    } u;
} ngx_http_ai_mx_snap_t;


typedef struct {
    ngx_http_ai_mx_snap_t          *nodes;
    ngx_uint_t                      n;
    ngx_uint_t                      ntenants;
    uint64_t                        dropped;
    ngx_atomic_int_t                in_flight;
    ngx_atomic_int_t                streams;
} ngx_http_ai_mx_snapshot_t;


enum {
    NGX_HTTP_AI_VAR_TENANT = 0,
    NGX_HTTP_AI_VAR_KEY_ID,
    NGX_HTTP_AI_VAR_KEY_SHA256,
    NGX_HTTP_AI_VAR_MODEL,
    NGX_HTTP_AI_VAR_PROVIDER,
    NGX_HTTP_AI_VAR_UPSTREAM_MODEL,
    NGX_HTTP_AI_VAR_STREAM,
    NGX_HTTP_AI_VAR_PROMPT_TOKENS,
    NGX_HTTP_AI_VAR_COMPLETION_TOKENS,
    NGX_HTTP_AI_VAR_CACHED_TOKENS,
    NGX_HTTP_AI_VAR_COST,
    NGX_HTTP_AI_VAR_CACHE,
    NGX_HTTP_AI_VAR_ATTEMPTS,
    NGX_HTTP_AI_VAR_TTFB,
    NGX_HTTP_AI_VAR_STATUS_REASON,
    NGX_HTTP_AI_VAR_REQUEST_ID
};


static void ngx_http_ai_request_id_bytes(u_char *bytes);
static ngx_int_t ngx_http_ai_metrics_add_variables(ngx_conf_t *cf);
static void *ngx_http_ai_metrics_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_ai_metrics_init_main_conf(ngx_conf_t *cf, void *conf);
static char *ngx_http_ai_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ai_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ai_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_ai_metrics_postconfiguration(ngx_conf_t *cf);

static ngx_http_ai_metrics_ctx_t *ngx_http_ai_metrics_get_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_ai_metrics_preaccess(ngx_http_request_t *r);
static ngx_int_t ngx_http_ai_metrics_set_id(ngx_http_request_t *r,
    ngx_http_ai_metrics_ctx_t *mctx);
static void ngx_http_ai_metrics_cleanup(void *data);
static ngx_int_t ngx_http_ai_metrics_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_ai_metrics_log(ngx_http_request_t *r);
static void ngx_http_ai_metrics_usage(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_http_ai_mx_usage_t *mu);
static ngx_uint_t ngx_http_ai_metrics_attempts(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
static void ngx_http_ai_metrics_labels(ngx_http_ai_ctx_t *ctx,
    ngx_str_t *label);
static ngx_http_ai_mx_node_t *ngx_http_ai_metrics_node(
    ngx_http_ai_mx_zone_t *z, ngx_uint_t kind, ngx_str_t *label, u_char *key);
static ngx_int_t ngx_http_ai_metrics_tenant(ngx_http_ai_mx_zone_t *z,
    ngx_str_t *name);
static void ngx_http_ai_metrics_observe(ngx_http_ai_mx_hist_t *h,
    ngx_msec_int_t ms);

static ngx_int_t ngx_http_ai_metrics_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ai_metrics_snapshot(ngx_http_request_t *r,
    ngx_http_ai_mx_zone_t *z, ngx_http_ai_mx_snapshot_t *snap);
static int ngx_libc_cdecl ngx_http_ai_metrics_cmp(const void *one,
    const void *two);
static ngx_int_t ngx_http_ai_metrics_render(ngx_http_ai_mx_snapshot_t *snap,
    ai_prom_buf_t *b);
static void ngx_http_ai_metrics_free_buf(void *data);

static ngx_int_t ngx_http_ai_metrics_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_command_t  ngx_http_ai_metrics_commands[] = {

    { ngx_string("ai_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_ai_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ai_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ai_metrics_module_ctx = {
    ngx_http_ai_metrics_add_variables,     /* preconfiguration */
    ngx_http_ai_metrics_postconfiguration, /* postconfiguration */

    ngx_http_ai_metrics_create_main_conf,  /* create main configuration */
    ngx_http_ai_metrics_init_main_conf,    /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_ai_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_ai_metrics_module_ctx,       /* module context */
    ngx_http_ai_metrics_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_ai_metrics_vars[] = {

    { ngx_string("ai_tenant"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_TENANT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_key_id"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_KEY_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_key_sha256"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_KEY_SHA256, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_model"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_MODEL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_provider"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_PROVIDER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_upstream_model"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_UPSTREAM_MODEL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_stream"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_STREAM, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_prompt_tokens"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_PROMPT_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_completion_tokens"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_COMPLETION_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_cached_tokens"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_CACHED_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_cost"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_COST, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_cache"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_CACHE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_attempts"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_ATTEMPTS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_ttfb"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_TTFB, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_status_reason"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_STATUS_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ai_request_id"), NULL, ngx_http_ai_metrics_variable,
      NGX_HTTP_AI_VAR_REQUEST_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static const char  *ngx_http_ai_mx_classes[NGX_HTTP_AI_MX_CLASS_N] = {
    "2xx", "3xx", "4xx", "5xx", "499", "other"
};


static const char  *ngx_http_ai_mx_cache[NGX_HTTP_AI_MX_CACHE_N] = {
    "hit", "miss", "bypass", "refresh", "other"
};


/* AI_CNT_* and AI_CNT_CONCURRENT, as the tenants file names them */
static const char  *ngx_http_ai_mx_limits[NGX_HTTP_AI_MX_LIMIT_N] = {
    "requests_per_minute", "tokens_per_minute", "tokens_per_day",
    "tokens_per_month", "budget_per_day", "budget_per_month", "concurrent"
};


/* histogram bounds, milliseconds and as Prometheus shows them (seconds) */
static const ngx_msec_int_t  ngx_http_ai_mx_bounds[NGX_HTTP_AI_MX_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    120000, 300000
};

static const char  *ngx_http_ai_mx_le[NGX_HTTP_AI_MX_BUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "30", "60", "120", "300"
};


static const size_t  ngx_http_ai_mx_values_size[2] = {
    sizeof(ngx_http_ai_mx_counters_t), sizeof(ngx_http_ai_mx_hists_t)
};


static ngx_str_t  ngx_http_ai_mx_other = ngx_string("other");
static ngx_str_t  ngx_http_ai_mx_none = ngx_string("none");


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/* ---- configuration ---- */

static ngx_int_t
ngx_http_ai_metrics_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_ai_metrics_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_ai_metrics_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ai_metrics_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_metrics_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    return mmcf;
}


static char *
ngx_http_ai_metrics_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_ai_metrics_main_conf_t  *mmcf = conf;

    if (mmcf->served && mmcf->zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ai_metrics\" needs an \"ai_metrics_zone\" in "
                           "the http block");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_ai_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_metrics_main_conf_t  *mmcf = conf;

    u_char                 *p;
    ssize_t                 size;
    ngx_int_t               n;
    ngx_str_t              *value, name, s;
    ngx_uint_t              i, max_tenants;
    ngx_http_ai_mx_zone_t  *z;

    if (mmcf->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;
    size = 0;
    ngx_str_null(&name);
    max_tenants = 100;

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
                                   "ai_metrics_zone: zone \"%V\" is too "
                                   "small, at least %uz bytes", &name,
                                   8 * ngx_pagesize);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_tenants=", 12) == 0) {
            n = ngx_atoi(value[i].data + 12, value[i].len - 12);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            max_tenants = (ngx_uint_t) n;
            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_metrics_zone: zone=name:size is required");
        return NGX_CONF_ERROR;
    }

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_mx_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    z->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                        &ngx_http_ai_metrics_module);
    if (z->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (z->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_metrics_zone: zone \"%V\" is already used",
                           &name);
        return NGX_CONF_ERROR;
    }

    z->shm_zone->init = ngx_http_ai_metrics_init_zone;
    z->shm_zone->data = z;
    z->max_tenants = max_tenants;

    mmcf->zone = z;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_metrics_zone: invalid parameter \"%V\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_ai_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_ai_metrics_main_conf_t  *mmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_ai_metrics_handler) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_ai_metrics_handler;

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ai_metrics_module);
    mmcf->served = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ai_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ai_mx_zone_t  *oz = data;

    size_t                  len;
    ngx_http_ai_mx_zone_t  *z;

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

    z->sh = ngx_slab_alloc(z->shpool, sizeof(ngx_http_ai_mx_shctx_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(z->sh, sizeof(ngx_http_ai_mx_shctx_t));
    z->shpool->data = z->sh;

    ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_rbtree_init(&z->sh->tenants, &z->sh->tenants_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&z->sh->queue);

    len = sizeof(" in ai_metrics_zone \"\"") + shm_zone->shm.name.len;

    z->shpool->log_ctx = ngx_slab_alloc(z->shpool, len);
    if (z->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(z->shpool->log_ctx, " in ai_metrics_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is counted in aigw_metrics_dropped_total, not logged */
    z->shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_metrics_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_ai_metrics_preaccess;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_ai_metrics_log;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_ai_metrics_header_filter;

    return NGX_OK;
}


/* ---- a request's way: preaccess, response header, log, pool cleanup ---- */

/*
 * The context survives an internal redirect (which clears r->ctx) through
 * its pool cleanup, as the realip module's does.
 */

static ngx_http_ai_metrics_ctx_t *
ngx_http_ai_metrics_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_ai_metrics_ctx_t  *mctx;

    mctx = ngx_http_get_module_ctx(r, ngx_http_ai_metrics_module);

    if (mctx || !(r->internal || r->filter_finalize)) {
        return mctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_ai_metrics_cleanup) {
            mctx = cln->data;
            ngx_http_set_ctx(r, mctx, ngx_http_ai_metrics_module);
            return mctx;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_ai_metrics_preaccess(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t               *cln;
    ngx_http_ai_ctx_t                *ctx;
    ngx_http_ai_loc_conf_t           *alcf;
    ngx_http_ai_metrics_ctx_t        *mctx;
    ngx_http_ai_metrics_main_conf_t  *mmcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_ai_gateway_module);

    if (alcf == NULL || !alcf->gateway) {
        return NGX_DECLINED;
    }

    if (ngx_http_ai_metrics_get_ctx(r) != NULL) {
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_ai_metrics_ctx_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    mctx = cln->data;
    ngx_memzero(mctx, sizeof(ngx_http_ai_metrics_ctx_t));

    cln->handler = ngx_http_ai_metrics_cleanup;
    ngx_http_set_ctx(r, mctx, ngx_http_ai_metrics_module);

    if (ngx_http_ai_metrics_set_id(r, mctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_ai_metrics_module);

    if (mmcf->zone == NULL) {
        return NGX_DECLINED;
    }

    mctx->zone = mmcf->zone;
    mctx->in_flight = 1;
    (void) ngx_atomic_fetch_add(&mmcf->zone->sh->in_flight, 1);

    /*
     * With metrics on, every answer's usage is read, tenants or not: the
     * gateway counts it for requests whose context says "account" (set
     * otherwise only when a tenant's limits apply).
     */

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_ai_gateway_module);
    }

    ctx->account = 1;

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_ai_metrics_set_id(ngx_http_request_t *r,
    ngx_http_ai_metrics_ctx_t *mctx)
{
    u_char            *p, bytes[16];
    ngx_uint_t         i, ok;
    ngx_list_part_t   *part;
    ngx_table_elt_t   *h;

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

        if (h[i].key.len != sizeof("x-request-id") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "x-request-id",
                               sizeof("x-request-id") - 1)
               != 0)
        {
            continue;
        }

        ok = h[i].value.len > 0
             && h[i].value.len <= NGX_HTTP_AI_MX_ID_MAX;

        for (p = h[i].value.data; ok && p < h[i].value.data + h[i].value.len;
             p++)
        {
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                 || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'
                 || *p == ':' || *p == '-';
        }

        if (ok) {
            mctx->request_id = h[i].value;
            return NGX_OK;
        }

        /* a malformed id is replaced, never echoed */
        break;
    }

    ngx_http_ai_request_id_bytes(bytes);

    p = ngx_pnalloc(r->pool, 2 * sizeof(bytes));
    if (p == NULL) {
        return NGX_ERROR;
    }

    mctx->request_id.data = p;
    mctx->request_id.len = ngx_hex_dump(p, bytes, sizeof(bytes)) - p;

    return NGX_OK;
}


/*
 * 16 bytes no other request of this worker gets: a random half drawn once
 * per process, and a counter mixed through splitmix64 (a bijection, so
 * distinct counters give distinct ids) with a random key.  RAND_bytes()
 * per request cost a getpid() each (OpenSSL's fork check).
 */

static void
ngx_http_ai_request_id_bytes(u_char *bytes)
{
    uint64_t         z;
    ngx_uint_t       i;
    static ngx_pid_t pid;
    static uint64_t  seed[3], counter;

    if (pid != ngx_pid) {
        if (RAND_bytes((u_char *) seed, sizeof(seed)) != 1) {
            for (i = 0; i < sizeof(seed); i++) {
                ((u_char *) seed)[i] = (u_char) ngx_random();
            }
        }

        pid = ngx_pid;
        counter = 0;
    }

    z = (++counter ^ seed[1]) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    z ^= seed[2];

    ngx_memcpy(bytes, &seed[0], 8);
    ngx_memcpy(bytes + 8, &z, 8);
}


ngx_str_t *
ngx_http_ai_request_id(ngx_http_request_t *r)
{
    ngx_http_ai_metrics_ctx_t  *mctx;

    mctx = ngx_http_ai_metrics_get_ctx(r->main);

    if (mctx == NULL || mctx->request_id.len == 0) {
        return NULL;
    }

    return &mctx->request_id;
}


static void
ngx_http_ai_metrics_cleanup(void *data)
{
    ngx_http_ai_metrics_ctx_t  *mctx = data;

    if (mctx->in_flight) {
        mctx->in_flight = 0;
        (void) ngx_atomic_fetch_add(&mctx->zone->sh->in_flight, -1);
    }

    if (mctx->streaming) {
        mctx->streaming = 0;
        (void) ngx_atomic_fetch_add(&mctx->zone->sh->streams, -1);
    }
}


/*
 * Ours is the x-request-id the client sees: a provider's own id (OpenAI
 * sends one) is passed on as x-provider-request-id.
 */

static ngx_int_t
ngx_http_ai_metrics_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                  i;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h;
    ngx_http_ai_ctx_t          *ctx;
    ngx_http_ai_metrics_ctx_t  *mctx;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    mctx = ngx_http_ai_metrics_get_ctx(r);

    if (mctx == NULL) {
        return ngx_http_next_header_filter(r);
    }

    if (!mctx->header_done) {
        mctx->header_done = 1;

        part = &r->headers_out.headers.part;
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

            if (h[i].hash != 0
                && h[i].key.len == sizeof("x-request-id") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "x-request-id",
                                   sizeof("x-request-id") - 1)
                   == 0)
            {
                ngx_str_set(&h[i].key, "x-provider-request-id");
                h[i].lowcase_key = (u_char *) "x-provider-request-id";
            }
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "x-request-id");
        h->lowcase_key = (u_char *) "x-request-id";
        h->value = mctx->request_id;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (mctx->zone && !mctx->streaming && ctx && ctx->stream
        && r->headers_out.status == NGX_HTTP_OK)
    {
        mctx->streaming = 1;
        (void) ngx_atomic_fetch_add(&mctx->zone->sh->streams, 1);
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_ai_metrics_log(ngx_http_request_t *r)
{
    u_char                           *key;
    ngx_int_t                         attempts;
    ngx_str_t                         label[3];
    ngx_uint_t                        i, status, cls, cache;
    ngx_time_t                       *tp;
    ngx_msec_int_t                    total, ttfb, upstream;
    ngx_http_ai_ctx_t                *ctx;
    ngx_http_ai_mx_zone_t            *z;
    ngx_http_ai_mx_node_t            *node, *hnode;
    ngx_http_ai_mx_usage_t            mu;
    ngx_http_upstream_state_t        *state;
    ngx_http_ai_mx_hists_t           *hs;
    ngx_http_ai_mx_counters_t        *c;
    ngx_http_ai_metrics_ctx_t        *mctx;
    ngx_http_ai_metrics_main_conf_t  *mmcf;

    if (r != r->main) {
        return NGX_OK;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_ai_metrics_module);
    z = mmcf->zone;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (z == NULL || ctx == NULL) {
        return NGX_OK;
    }

    mctx = ngx_http_ai_metrics_get_ctx(r);

    if (mctx) {
        if (mctx->logged) {
            return NGX_OK;
        }

        mctx->logged = 1;
    }

    /* everything that needs no lock first */

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status == NGX_HTTP_CLIENT_CLOSED_REQUEST) {
        cls = 4;

    } else if (status >= 200 && status < 600) {
        cls = status / 100 - 2;

    } else {
        cls = 5;
    }

    cache = NGX_HTTP_AI_MX_CACHE_N;

    if (ctx->cache_status) {
        for (cache = 0; cache < NGX_HTTP_AI_MX_CACHE_N - 1; cache++) {
            if (ngx_strcasecmp((u_char *) ctx->cache_status,
                               (u_char *) ngx_http_ai_mx_cache[cache])
                == 0)
            {
                break;
            }
        }
    }

    ngx_http_ai_metrics_usage(r, ctx, &mu);

    tp = ngx_timeofday();
    total = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                              + (tp->msec - r->start_msec));

    ttfb = -1;

    if (ctx->first_byte_msec && ctx->start_msec) {
        ttfb = (ngx_msec_int_t) (ctx->first_byte_msec - ctx->start_msec);
    }

    upstream = -1;

    if (r->upstream_states && r->upstream_states->nelts) {
        upstream = 0;
        state = r->upstream_states->elts;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].peer && state[i].response_time != (ngx_msec_t) -1) {
                upstream += (ngx_msec_int_t) state[i].response_time;
            }
        }
    }

    attempts = (ngx_int_t) ngx_http_ai_metrics_attempts(r, ctx);

    ngx_http_ai_metrics_labels(ctx, label);

    key = ngx_pnalloc(r->pool, 3 + label[0].len + label[1].len
                               + ngx_max(label[2].len,
                                         ngx_http_ai_mx_other.len));
    if (key == NULL) {
        return NGX_OK;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    if (ctx->tenant
        && ngx_http_ai_metrics_tenant(z, &label[2]) != NGX_OK)
    {
        label[2] = ngx_http_ai_mx_other;
    }

    node = ngx_http_ai_metrics_node(z, NGX_HTTP_AI_MX_SERIES, label, key);

    if (node) {
        c = (ngx_http_ai_mx_counters_t *) ngx_http_ai_mx_values(node);

        c->requests[cls]++;
        c->prompt_tokens += (uint64_t) mu.prompt;
        c->completion_tokens += (uint64_t) mu.completion;
        c->cached_tokens += (uint64_t) mu.cached;
        c->cost += (uint64_t) mu.cost;

        if (cache < NGX_HTTP_AI_MX_CACHE_N) {
            c->cache[cache]++;
        }

        c->attempts += attempts;

        if (attempts > 1) {
            c->retries += attempts - 1;
        }

        if (ctx->limited && ctx->limit_which >= 0
            && ctx->limit_which < NGX_HTTP_AI_MX_LIMIT_N)
        {
            c->rejected[ctx->limit_which]++;
        }

    } else {
        z->sh->dropped++;
    }

    label[2].len = 0;

    hnode = ngx_http_ai_metrics_node(z, NGX_HTTP_AI_MX_HIST, label, key);

    if (hnode) {
        hs = (ngx_http_ai_mx_hists_t *) ngx_http_ai_mx_values(hnode);

        ngx_http_ai_metrics_observe(&hs->total, total);

        if (ttfb >= 0) {
            ngx_http_ai_metrics_observe(&hs->ttfb, ttfb);
        }

        if (upstream >= 0) {
            ngx_http_ai_metrics_observe(&hs->upstream, upstream);
        }

        /* the stream's inter-chunk gaps, bucketed on the way */

        for (i = 0; i <= NGX_HTTP_AI_MX_BUCKETS; i++) {
            hs->gap.bucket[i] += ctx->gap_bucket[i];
        }

        hs->gap.sum += ctx->gap_sum;

    } else {
        z->sh->dropped++;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;
}


/*
 * What the request used, as the limiter settles it (ngx_http_ai_usage_final):
 * the provider's usage when it sent one, else the estimate; nothing for a
 * cache hit.
 */

static void
ngx_http_ai_metrics_usage(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_http_ai_mx_usage_t *mu)
{
    int64_t      total;
    ai_charge_t  charge;

    ngx_memzero(mu, sizeof(ngx_http_ai_mx_usage_t));

    ngx_http_ai_usage_final(r, ctx, &charge);

    if (ctx->cache_hit) {
        return;
    }

    mu->cost = ngx_max(charge.amount[AI_CNT_COST_DAY], 0);

    if (ctx->usage.seen) {
        mu->prompt = ngx_max(ctx->usage.prompt_tokens, 0);
        mu->completion = ngx_max(ctx->usage.completion_tokens, 0);
        mu->cached = ngx_max(ctx->usage.cached_tokens, 0);
        return;
    }

    total = ngx_max(charge.amount[AI_CNT_TOK_DAY], 0);

    mu->prompt = ngx_min(ctx->prompt_estimate, total);
    mu->completion = total - mu->prompt;
}


/*
 * Connections tried: NGINX's upstream retries another address of a provider
 * (proxy_next_upstream's error and timeout) without the gateway knowing, so
 * its states are counted, one per peer tried.
 */

static ngx_uint_t
ngx_http_ai_metrics_attempts(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    ngx_uint_t                  i, n;
    ngx_http_upstream_state_t  *state;

    n = 0;

    if (r->upstream_states) {
        state = r->upstream_states->elts;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].peer) {
                n++;
            }
        }
    }

    return ngx_max(n, ctx->attempts);
}


/*
 * Labels come from the configuration, never from what a client sent: the
 * configured model's name, "passthrough" for provider/model routes,
 * "unknown" when nothing was routed.
 */

static void
ngx_http_ai_metrics_labels(ngx_http_ai_ctx_t *ctx, ngx_str_t *label)
{
    const char  *name;

    if (ctx->model) {
        label[0] = ctx->model->name;

    } else if (ctx->target.provider) {
        ngx_str_set(&label[0], "passthrough");

    } else {
        ngx_str_set(&label[0], "unknown");
    }

    if (ctx->target.provider) {
        label[1] = ctx->target.provider->name;

    } else {
        label[1] = ngx_http_ai_mx_none;
    }

    if (ctx->tenant) {
        name = ai_tenant_name(ctx->tenant);
        label[2].data = (u_char *) name;
        label[2].len = ngx_strlen(name);

    } else {
        label[2] = ngx_http_ai_mx_none;
    }
}


/* under the zone's mutex; key: room for the whole key */

static ngx_http_ai_mx_node_t *
ngx_http_ai_metrics_node(ngx_http_ai_mx_zone_t *z, ngx_uint_t kind,
    ngx_str_t *label, u_char *key)
{
    u_char                 *p;
    size_t                  size;
    uint32_t                hash;
    ngx_str_t               k;
    ngx_uint_t              i;
    ngx_str_node_t         *sn;
    ngx_http_ai_mx_node_t  *node;

    p = key;
    *p++ = (u_char) ('0' + kind);

    for (i = 0; i < 3; i++) {
        if (label[i].len > 0xffff) {
            return NULL;
        }

        if (i) {
            *p++ = '\0';
        }

        p = ngx_cpymem(p, label[i].data, label[i].len);
    }

    k.data = key;
    k.len = p - key;

    hash = ngx_crc32_short(k.data, k.len);

    sn = ngx_str_rbtree_lookup(&z->sh->rbtree, &k, hash);

    if (sn) {
        return (ngx_http_ai_mx_node_t *) sn;
    }

    size = sizeof(ngx_http_ai_mx_node_t) + ngx_http_ai_mx_values_size[kind];

    node = ngx_slab_alloc_locked(z->shpool, size + k.len);
    if (node == NULL) {
        return NULL;
    }

    ngx_memzero(node, size);

    p = (u_char *) node + size;
    ngx_memcpy(p, k.data, k.len);

    node->sn.node.key = hash;
    node->sn.str.data = p;
    node->sn.str.len = k.len;

    node->kind = kind;

    for (i = 0; i < 3; i++) {
        node->len[i] = (u_short) label[i].len;
    }

    ngx_rbtree_insert(&z->sh->rbtree, &node->sn.node);
    ngx_queue_insert_tail(&z->sh->queue, &node->queue);

    z->sh->nnodes++;
    z->sh->key_bytes += k.len;

    return node;
}


/*
 * Under the zone's mutex: NGX_OK when the tenant has its own label, known
 * or admitted now while fewer than max_tenants are; NGX_DECLINED for
 * "other".  Tenants admitted stay so across reloads.
 */

static ngx_int_t
ngx_http_ai_metrics_tenant(ngx_http_ai_mx_zone_t *z, ngx_str_t *name)
{
    uint32_t                  hash;
    ngx_http_ai_mx_tenant_t  *t;

    hash = ngx_crc32_short(name->data, name->len);

    if (ngx_str_rbtree_lookup(&z->sh->tenants, name, hash)) {
        return NGX_OK;
    }

    if (z->sh->ntenants >= z->max_tenants) {
        return NGX_DECLINED;
    }

    t = ngx_slab_alloc_locked(z->shpool,
                              offsetof(ngx_http_ai_mx_tenant_t, data)
                              + name->len);
    if (t == NULL) {
        return NGX_DECLINED;
    }

    ngx_memcpy(t->data, name->data, name->len);

    t->sn.node.key = hash;
    t->sn.str.data = t->data;
    t->sn.str.len = name->len;

    ngx_rbtree_insert(&z->sh->tenants, &t->sn.node);
    z->sh->ntenants++;

    return NGX_OK;
}


/* a streamed answer's next piece: the gap since the previous one */

void
ngx_http_ai_metrics_gap(ngx_http_ai_ctx_t *ctx)
{
    ngx_uint_t      i;
    ngx_msec_int_t  ms;

    if (ctx->last_data_msec) {
        ms = (ngx_msec_int_t) (ngx_current_msec - ctx->last_data_msec);

        for (i = 0; i < NGX_HTTP_AI_MX_BUCKETS; i++) {
            if (ms <= ngx_http_ai_mx_bounds[i]) {
                break;
            }
        }

        ctx->gap_bucket[i]++;
        ctx->gap_sum += (uint64_t) ms;
    }

    ctx->last_data_msec = ngx_current_msec;
}


static void
ngx_http_ai_metrics_observe(ngx_http_ai_mx_hist_t *h, ngx_msec_int_t ms)
{
    ngx_uint_t  i;

    if (ms < 0) {
        ms = 0;
    }

    for (i = 0; i < NGX_HTTP_AI_MX_BUCKETS; i++) {
        if (ms <= ngx_http_ai_mx_bounds[i]) {
            break;
        }
    }

    h->bucket[i]++;
    h->sum += (uint64_t) ms;
}


/* ---- ai_metrics: the Prometheus text format ---- */

static ngx_int_t
ngx_http_ai_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    ngx_chain_t                       out;
    ai_prom_buf_t                     pb;
    ngx_pool_cleanup_t               *cln;
    ngx_http_ai_mx_snapshot_t         snap;
    ngx_http_ai_metrics_main_conf_t  *mmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_ai_metrics_module);

    if (ngx_http_ai_metrics_snapshot(r, mmcf->zone, &snap) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ai_prom_buf_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ai_prom_buf_init(&pb);

    if (ngx_http_ai_metrics_render(&snap, &pb) != NGX_OK
        || ngx_http_ai_balancer_metrics(&pb) != NGX_OK
        || ngx_http_ai_engine_metrics(&pb) != NGX_OK)
    {
        ai_prom_buf_free(&pb);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai_metrics: out of memory while rendering");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(cln->data, &pb, sizeof(ai_prom_buf_t));
    cln->handler = ngx_http_ai_metrics_free_buf;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = pb.len;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = (u_char *) pb.data;
    b->last = (u_char *) pb.data + pb.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    if (pb.len == 0) {
        b->memory = 0;
        b->sync = 1;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void
ngx_http_ai_metrics_free_buf(void *data)
{
    ai_prom_buf_free(data);
}


/*
 * A copy of every node, taken under the mutex in one pass; the rest of the
 * work (sorting, text) is done outside it.
 */

static ngx_int_t
ngx_http_ai_metrics_snapshot(ngx_http_request_t *r, ngx_http_ai_mx_zone_t *z,
    ngx_http_ai_mx_snapshot_t *snap)
{
    u_char                 *arena, *p;
    size_t                  bytes;
    ngx_uint_t              n, i, k, tries;
    ngx_queue_t            *q;
    ngx_http_ai_mx_node_t  *node;
    ngx_http_ai_mx_snap_t  *s;

    ngx_memzero(snap, sizeof(ngx_http_ai_mx_snapshot_t));

    for (tries = 0; tries < 8; tries++) {

        /* sized from a read without the lock; checked under it */
        n = z->sh->nnodes + 16;
        bytes = z->sh->key_bytes + 16 * 256;

        snap->nodes = ngx_palloc(r->pool,
                                 n * sizeof(ngx_http_ai_mx_snap_t) + bytes);
        if (snap->nodes == NULL) {
            return NGX_ERROR;
        }

        arena = (u_char *) (snap->nodes + n);

        ngx_shmtx_lock(&z->shpool->mutex);

        if (z->sh->nnodes > n || z->sh->key_bytes > bytes) {
            ngx_shmtx_unlock(&z->shpool->mutex);
            ngx_pfree(r->pool, snap->nodes);
            continue;
        }

        i = 0;
        p = arena;

        for (q = ngx_queue_head(&z->sh->queue);
             q != ngx_queue_sentinel(&z->sh->queue);
             q = ngx_queue_next(q))
        {
            node = ngx_queue_data(q, ngx_http_ai_mx_node_t, queue);
            s = &snap->nodes[i++];

            s->kind = node->kind;
            ngx_memcpy(&s->u, ngx_http_ai_mx_values(node),
                       ngx_http_ai_mx_values_size[node->kind]);

            ngx_memcpy(p, node->sn.str.data, node->sn.str.len);

            /* skip the kind; labels are separated by one byte each */
            p++;

            for (k = 0; k < 3; k++) {
                s->label[k].data = p;
                s->label[k].len = node->len[k];
                p += node->len[k] + 1;
            }

            p--;
        }

        snap->n = i;
        snap->ntenants = z->sh->ntenants;
        snap->dropped = z->sh->dropped;
        snap->in_flight = (ngx_atomic_int_t) z->sh->in_flight;
        snap->streams = (ngx_atomic_int_t) z->sh->streams;

        ngx_shmtx_unlock(&z->shpool->mutex);

        ngx_qsort(snap->nodes, snap->n, sizeof(ngx_http_ai_mx_snap_t),
                  ngx_http_ai_metrics_cmp);

        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "ai_metrics: the zone kept growing while being copied");

    return NGX_ERROR;
}


static int ngx_libc_cdecl
ngx_http_ai_metrics_cmp(const void *one, const void *two)
{
    const ngx_http_ai_mx_snap_t  *a = one;
    const ngx_http_ai_mx_snap_t  *b = two;

    ngx_int_t   rc;
    ngx_uint_t  k;

    if (a->kind != b->kind) {
        return a->kind < b->kind ? -1 : 1;
    }

    for (k = 0; k < 3; k++) {
        rc = ngx_memn2cmp(a->label[k].data, b->label[k].data,
                          a->label[k].len, b->label[k].len);
        if (rc) {
            return rc < 0 ? -1 : 1;
        }
    }

    return 0;
}


#define ngx_http_ai_mx_label(l, n, s)                                        \
    (l).name = n;                                                            \
    (l).value = (const char *) (s).data;                                     \
    (l).len = (s).len


static ngx_int_t
ngx_http_ai_metrics_render(ngx_http_ai_mx_snapshot_t *snap, ai_prom_buf_t *b)
{
    ngx_uint_t                  i, j, f;
    ai_prom_label_t             l[4];
    ngx_http_ai_mx_snap_t      *s;
    ngx_http_ai_mx_hist_t      *h;
    ngx_http_ai_mx_counters_t  *c;

    static const struct {
        const char  *name;
        const char  *help;
        size_t       offset;
    }  counters[] = {
        { "aigw_prompt_tokens_total",
          "Prompt tokens spent at providers (the provider's usage, else an "
          "estimate); none for cache hits.",
          offsetof(ngx_http_ai_mx_counters_t, prompt_tokens) },
        { "aigw_completion_tokens_total",
          "Completion tokens spent at providers.",
          offsetof(ngx_http_ai_mx_counters_t, completion_tokens) },
        { "aigw_cached_tokens_total",
          "Prompt tokens the provider reported as served from its own "
          "prompt cache.",
          offsetof(ngx_http_ai_mx_counters_t, cached_tokens) },
        { "aigw_upstream_attempts_total",
          "Requests sent to providers, retries included.",
          offsetof(ngx_http_ai_mx_counters_t, attempts) },
        { "aigw_upstream_retries_total",
          "Attempts after the first one of a request.",
          offsetof(ngx_http_ai_mx_counters_t, retries) },
    };

    static const struct {
        const char  *name;
        const char  *help;
        size_t       offset;
    }  hists[] = {
        { "aigw_request_duration_seconds",
          "Time from the request's first byte to its log line.",
          offsetof(ngx_http_ai_mx_hists_t, total) },
        { "aigw_ttfb_seconds",
          "Time from the gateway's handler to the provider's first "
          "response byte.",
          offsetof(ngx_http_ai_mx_hists_t, ttfb) },
        { "aigw_upstream_duration_seconds",
          "Time spent on provider connections, all attempts together.",
          offsetof(ngx_http_ai_mx_hists_t, upstream) },
        { "aigw_stream_gap_seconds",
          "Gaps between successive pieces of a streamed answer from the "
          "provider (about the inter-token time).",
          offsetof(ngx_http_ai_mx_hists_t, gap) },
    };

    /* requests by status class */

    ai_prom_family(b, "aigw_requests_total", "counter",
                   "Requests handled by ai_gateway locations, by configured "
                   "model, provider, tenant and status class.");

    for (i = 0; i < snap->n; i++) {
        s = &snap->nodes[i];

        if (s->kind != NGX_HTTP_AI_MX_SERIES) {
            continue;
        }

        ngx_http_ai_mx_label(l[0], "model", s->label[0]);
        ngx_http_ai_mx_label(l[1], "provider", s->label[1]);
        ngx_http_ai_mx_label(l[2], "tenant", s->label[2]);
        l[3].name = "status_class";

        for (j = 0; j < NGX_HTTP_AI_MX_CLASS_N; j++) {
            if (s->u.c.requests[j] == 0) {
                continue;
            }

            l[3].value = ngx_http_ai_mx_classes[j];
            l[3].len = ngx_strlen(l[3].value);
            ai_prom_sample_u64(b, "aigw_requests_total", l, 4,
                               s->u.c.requests[j]);
        }
    }

    /* plain counters of a series */

    for (f = 0; f < sizeof(counters) / sizeof(counters[0]); f++) {

        ai_prom_family(b, counters[f].name, "counter", counters[f].help);

        for (i = 0; i < snap->n; i++) {
            s = &snap->nodes[i];

            if (s->kind != NGX_HTTP_AI_MX_SERIES) {
                continue;
            }

            ngx_http_ai_mx_label(l[0], "model", s->label[0]);
            ngx_http_ai_mx_label(l[1], "provider", s->label[1]);
            ngx_http_ai_mx_label(l[2], "tenant", s->label[2]);

            ai_prom_sample_u64(b, counters[f].name, l, 3,
                               *(uint64_t *) ((u_char *) &s->u.c
                                              + counters[f].offset));
        }
    }

    ai_prom_family(b, "aigw_cost_usd_total", "counter",
                   "What requests cost at the ai_price table, in US "
                   "dollars.");

    for (i = 0; i < snap->n; i++) {
        s = &snap->nodes[i];

        if (s->kind != NGX_HTTP_AI_MX_SERIES) {
            continue;
        }

        ngx_http_ai_mx_label(l[0], "model", s->label[0]);
        ngx_http_ai_mx_label(l[1], "provider", s->label[1]);
        ngx_http_ai_mx_label(l[2], "tenant", s->label[2]);

        ai_prom_sample_micro(b, "aigw_cost_usd_total", l, 3, s->u.c.cost);
    }

    ai_prom_family(b, "aigw_cache_requests_total", "counter",
                   "Response cache lookups by result (hit, miss, bypass, "
                   "refresh).");

    for (i = 0; i < snap->n; i++) {
        s = &snap->nodes[i];

        if (s->kind != NGX_HTTP_AI_MX_SERIES) {
            continue;
        }

        c = &s->u.c;

        ngx_http_ai_mx_label(l[0], "model", s->label[0]);
        ngx_http_ai_mx_label(l[1], "provider", s->label[1]);
        ngx_http_ai_mx_label(l[2], "tenant", s->label[2]);
        l[3].name = "result";

        for (j = 0; j < NGX_HTTP_AI_MX_CACHE_N; j++) {
            if (c->cache[j] == 0) {
                continue;
            }

            l[3].value = ngx_http_ai_mx_cache[j];
            l[3].len = ngx_strlen(l[3].value);
            ai_prom_sample_u64(b, "aigw_cache_requests_total", l, 4,
                               c->cache[j]);
        }
    }

    ai_prom_family(b, "aigw_limit_rejections_total", "counter",
                   "Requests refused with 429 by a tenant's limit, by the "
                   "limit that was reached.");

    for (i = 0; i < snap->n; i++) {
        s = &snap->nodes[i];

        if (s->kind != NGX_HTTP_AI_MX_SERIES) {
            continue;
        }

        c = &s->u.c;

        ngx_http_ai_mx_label(l[0], "model", s->label[0]);
        ngx_http_ai_mx_label(l[1], "provider", s->label[1]);
        ngx_http_ai_mx_label(l[2], "tenant", s->label[2]);
        l[3].name = "reason";

        for (j = 0; j < NGX_HTTP_AI_MX_LIMIT_N; j++) {
            if (c->rejected[j] == 0) {
                continue;
            }

            l[3].value = ngx_http_ai_mx_limits[j];
            l[3].len = ngx_strlen(l[3].value);
            ai_prom_sample_u64(b, "aigw_limit_rejections_total", l, 4,
                               c->rejected[j]);
        }
    }

    /* histograms by model and provider */

    for (f = 0; f < sizeof(hists) / sizeof(hists[0]); f++) {

        ai_prom_family(b, hists[f].name, "histogram", hists[f].help);

        for (i = 0; i < snap->n; i++) {
            s = &snap->nodes[i];

            if (s->kind != NGX_HTTP_AI_MX_HIST) {
                continue;
            }

            h = (ngx_http_ai_mx_hist_t *) ((u_char *) &s->u.h
                                           + hists[f].offset);

            ngx_http_ai_mx_label(l[0], "model", s->label[0]);
            ngx_http_ai_mx_label(l[1], "provider", s->label[1]);

            ai_prom_histogram(b, hists[f].name, l, 2, ngx_http_ai_mx_le,
                              NGX_HTTP_AI_MX_BUCKETS, h->bucket, h->sum);
        }
    }

    /* gauges and the zone's own health */

    ai_prom_family(b, "aigw_requests_in_flight", "gauge",
                   "Requests in ai_gateway locations not yet finished.");
    ai_prom_sample_i64(b, "aigw_requests_in_flight", NULL, 0,
                       ngx_max(snap->in_flight, 0));

    ai_prom_family(b, "aigw_streams_in_flight", "gauge",
                   "Streamed answers being sent to clients.");
    ai_prom_sample_i64(b, "aigw_streams_in_flight", NULL, 0,
                       ngx_max(snap->streams, 0));

    ai_prom_family(b, "aigw_metrics_tenants", "gauge",
                   "Tenants with a label of their own (at most max_tenants; "
                   "the rest are \"other\").");
    ai_prom_sample_u64(b, "aigw_metrics_tenants", NULL, 0, snap->ntenants);

    ai_prom_family(b, "aigw_metrics_dropped_total", "counter",
                   "Observations lost because ai_metrics_zone was full.");
    ai_prom_sample_u64(b, "aigw_metrics_dropped_total", NULL, 0,
                       snap->dropped);

    return b->failed ? NGX_ERROR : NGX_OK;
}


/* ---- $ai_* variables ---- */

static ngx_int_t
ngx_http_ai_metrics_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                     *p;
    size_t                      len;
    ngx_str_t                   s;
    ngx_int_t                   n;
    const char                 *cs;
    ngx_http_ai_ctx_t          *ctx;
    ngx_http_ai_mx_usage_t      mu;
    ngx_http_ai_metrics_ctx_t  *mctx;
    char                        prefix[13];

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_ai_gateway_module);
    ngx_str_null(&s);
    n = -1;

    if (data == NGX_HTTP_AI_VAR_REQUEST_ID) {
        mctx = ngx_http_ai_metrics_get_ctx(r->main);

        if (mctx == NULL || mctx->request_id.len == 0) {
            goto not_found;
        }

        s = mctx->request_id;
        goto found;
    }

    if (ctx == NULL) {
        goto not_found;
    }

    switch (data) {

    case NGX_HTTP_AI_VAR_TENANT:
        if (ctx->tenant == NULL) {
            goto not_found;
        }

        cs = ai_tenant_name(ctx->tenant);
        s.data = (u_char *) cs;
        s.len = ngx_strlen(cs);
        break;

    case NGX_HTTP_AI_VAR_KEY_ID:
        if (ctx->key == NULL) {
            goto not_found;
        }

        cs = ai_key_id(ctx->key);
        s.data = (u_char *) cs;
        s.len = ngx_strlen(cs);
        break;

    case NGX_HTTP_AI_VAR_KEY_SHA256:
        if (ctx->key == NULL) {
            goto not_found;
        }

        ai_key_digest_prefix(ctx->key, prefix);

        s.len = ngx_strlen(prefix);
        s.data = ngx_pnalloc(r->pool, s.len);
        if (s.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(s.data, prefix, s.len);
        break;

    case NGX_HTTP_AI_VAR_MODEL:
        s = ctx->client_model;
        break;

    case NGX_HTTP_AI_VAR_PROVIDER:
        if (ctx->target.provider == NULL) {
            goto not_found;
        }

        s = ctx->target.provider->name;
        break;

    case NGX_HTTP_AI_VAR_UPSTREAM_MODEL:
        if (ctx->target.provider == NULL) {
            goto not_found;
        }

        s = ctx->target.model;
        break;

    case NGX_HTTP_AI_VAR_STREAM:
        if (ctx->client_model.len == 0) {
            goto not_found;
        }

        n = ctx->stream ? 1 : 0;
        break;

    case NGX_HTTP_AI_VAR_PROMPT_TOKENS:
    case NGX_HTTP_AI_VAR_COMPLETION_TOKENS:
    case NGX_HTTP_AI_VAR_CACHED_TOKENS:
    case NGX_HTTP_AI_VAR_COST:
        if (ctx->client_model.len == 0) {
            goto not_found;
        }

        ngx_http_ai_metrics_usage(r->main, ctx, &mu);

        if (data == NGX_HTTP_AI_VAR_COST) {
            p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 8);
            if (p == NULL) {
                return NGX_ERROR;
            }

            s.data = p;
            s.len = ngx_sprintf(p, "%L.%06L", mu.cost / 1000000,
                                mu.cost % 1000000)
                    - p;
            break;
        }

        n = (data == NGX_HTTP_AI_VAR_PROMPT_TOKENS) ? mu.prompt
            : (data == NGX_HTTP_AI_VAR_COMPLETION_TOKENS) ? mu.completion
            : mu.cached;
        break;

    case NGX_HTTP_AI_VAR_CACHE:
        if (ctx->cache_status == NULL) {
            goto not_found;
        }

        s.data = (u_char *) ctx->cache_status;
        s.len = ngx_strlen(ctx->cache_status);
        break;

    case NGX_HTTP_AI_VAR_ATTEMPTS:
        n = (ngx_int_t) ngx_http_ai_metrics_attempts(r->main, ctx);
        break;

    case NGX_HTTP_AI_VAR_TTFB:
        if (ctx->first_byte_msec == 0 || ctx->start_msec == 0) {
            goto not_found;
        }

        n = (ngx_msec_int_t) (ctx->first_byte_msec - ctx->start_msec);
        n = ngx_max(n, 0);
        break;

    case NGX_HTTP_AI_VAR_STATUS_REASON:
        if (ctx->status_reason) {
            s.data = (u_char *) ctx->status_reason;
            s.len = ngx_strlen(ctx->status_reason);
            break;
        }

        if (ctx->limited && ctx->limit_which >= 0
            && ctx->limit_which < NGX_HTTP_AI_MX_LIMIT_N)
        {
            cs = ngx_http_ai_mx_limits[ctx->limit_which];
            len = sizeof("limit:") - 1 + ngx_strlen(cs);

            s.data = ngx_pnalloc(r->pool, len);
            if (s.data == NULL) {
                return NGX_ERROR;
            }

            s.len = ngx_sprintf(s.data, "limit:%s", cs) - s.data;
            break;
        }

        goto not_found;

    default:
        goto not_found;
    }

    if (n >= 0) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        s.data = p;
        s.len = ngx_sprintf(p, "%i", n) - p;
    }

    if (s.len == 0) {
        goto not_found;
    }

found:

    v->data = s.data;
    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;

not_found:

    v->not_found = 1;

    return NGX_OK;
}
