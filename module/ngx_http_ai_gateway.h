
/*
 * aigw: an AI gateway as an NGINX module.
 *
 * Shared types of the module's files.  The request meets them in this
 * order: ngx_http_ai_handler.c (body, parse, validate) ->
 * ngx_http_ai_route.c (model -> provider target) ->
 * ngx_http_ai_upstream.c (NGINX upstream: request, headers, stream) ->
 * ngx_http_ai_error.c (OpenAI-style errors, including NGINX's own).
 */

#ifndef _NGX_HTTP_AI_GATEWAY_H_INCLUDED_
#define _NGX_HTTP_AI_GATEWAY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ai_json.h"
#include "ai_translate.h"
#include "ai_scan.h"
#include "ai_limits.h"
#include "ai_tenants.h"
#include "ngx_http_ai_redis.h"


#define NGX_HTTP_AI_FORMAT_OPENAI      0
#define NGX_HTTP_AI_FORMAT_AZURE       1
#define NGX_HTTP_AI_FORMAT_ANTHROPIC   2
#define NGX_HTTP_AI_FORMAT_GEMINI      3


typedef struct ngx_http_ai_keepalive_s  ngx_http_ai_keepalive_t;
typedef struct ngx_http_ai_limits_zone_s  ngx_http_ai_limits_zone_t;
typedef struct ngx_http_ai_cache_zone_s  ngx_http_ai_cache_zone_t;
typedef struct ngx_http_ai_keys_s  ngx_http_ai_keys_t;


typedef struct {
    ngx_str_t                       scope;
    ai_quota_t                      quota;
    void                           *node;         /* in shared memory */
    int64_t                         window[AI_CNT_N];
    ai_counters_t                   snapshot;     /* after reserving */
} ngx_http_ai_limit_scope_t;


typedef struct {
    ngx_str_t                       model;
    double                          input;        /* USD per 1M tokens */
    double                          output;
} ngx_http_ai_price_t;


typedef struct {
    ngx_str_t                       name;
    ngx_uint_t                      format;

    ngx_str_t                       url;          /* as configured */
    ngx_str_t                       host;         /* Host header, SNI */
    ngx_str_t                       base_path;    /* "/v1", no trailing / */
    ngx_str_t                       key_env;      /* variable name only */

    /* "Host: ..\r\nAuthorization: ..\r\n", built once at start-up */
    ngx_str_t                       fixed_headers;

    ngx_str_t                       api_version;  /* azure */
    ngx_int_t                       max_tokens;   /* anthropic default */

    ngx_flag_t                      passthrough;
    ngx_flag_t                      drop_params;  /* drop what it lacks */
    ngx_flag_t                      engine;       /* in-process engine */
    void                           *engine_conf;  /* ngx_http_ai_engine.c */
    ngx_uint_t                      keepalive;
    ngx_msec_t                      keepalive_timeout;

    ngx_flag_t                      ssl;
    ngx_str_t                       ssl_trusted_certificate;

    ngx_http_upstream_conf_t        upstream;     /* read: first byte */
    ngx_http_ai_keepalive_t        *keepalive_pool;

    /* timeouts of an answer: 0 is read_timeout (first two) or none */
    ngx_msec_t                      first_byte_timeout;
    ngx_msec_t                      idle_timeout;
    ngx_msec_t                      total_timeout;
    ngx_http_upstream_conf_t       *idle_conf;    /* NULL: as upstream */

    ngx_str_t                       conf_file;    /* for error messages */
    ngx_uint_t                      conf_line;
} ngx_http_ai_provider_t;


typedef struct {
    ngx_http_ai_provider_t         *provider;
    ngx_str_t                       model;        /* provider's name */
    ngx_uint_t                      weight;
} ngx_http_ai_target_t;


typedef struct {
    ngx_str_t                       name;
    ngx_array_t                     targets;      /* ngx_http_ai_target_t */
    ngx_uint_t                      total_weight;
    ngx_array_t                     aliases;      /* ngx_str_t */
    ngx_array_t                    *plugins;      /* aigw_instance_t * */
    ngx_int_t                       cache;        /* 0 off, 1 on, 2 shared */
    time_t                          cache_ttl;    /* 0: the zone's */

    /* several targets, retries, fallbacks: ngx_http_ai_balancer.c */
    ngx_uint_t                      balanced;
    ngx_uint_t                      strategy;
    ngx_str_t                       fallback;
    ngx_uint_t                      attempts;
    ngx_uint_t                      retry_on;
    ngx_msec_t                      budget;
    ngx_msec_t                      cooldown;
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      read_timeout;
    ngx_msec_t                      first_byte_timeout;
    ngx_msec_t                      idle_timeout;
    ngx_msec_t                      total_timeout;
    ngx_msec_t                      backoff;
    ngx_msec_t                      backoff_max;
    ngx_msec_t                      retry_after_max;
    ngx_uint_t                      jitter;
    ngx_uint_t                      breaker_fails;
    ngx_msec_t                      breaker_window;
    ngx_uint_t                      own_targets;
    ngx_uint_t                      slot;
    ngx_http_upstream_conf_t       *confs;        /* one per target */
    ngx_http_upstream_conf_t       *idle_confs;   /* same, idle_timeout */
    ngx_msec_t                     *total_timeouts;
} ngx_http_ai_model_t;


typedef struct {
    ngx_array_t                     providers;    /* ngx_http_ai_provider_t * */
    ngx_array_t                     models;       /* ngx_http_ai_model_t * */

    ngx_hash_t                      model_hash;   /* name, alias -> model */
    ngx_str_t                       models_json;  /* GET /v1/models body */

    ngx_array_t                     keepalive_pools;

    ai_tenants_t                   *tenants;
    ngx_http_ai_keys_t             *keys;         /* Redis key store */
    ngx_http_ai_limits_zone_t      *limits;
    ngx_int_t                       reserve_tokens;
    ngx_array_t                     prices;       /* ngx_http_ai_price_t */
    ngx_array_t                     plugins;      /* ai_plugin instances */
    ngx_http_ai_cache_zone_t       *cache;
    ngx_str_t                       admin_key;
} ngx_http_ai_main_conf_t;


typedef struct {
    ngx_flag_t                      gateway;
    ngx_flag_t                      auth;
    ngx_array_t                    *plugins;      /* aigw_instance_t * */
} ngx_http_ai_loc_conf_t;


#define NGX_HTTP_AI_EP_UNKNOWN         0
#define NGX_HTTP_AI_EP_CHAT            1
#define NGX_HTTP_AI_EP_COMPLETIONS     2
#define NGX_HTTP_AI_EP_EMBEDDINGS      3
#define NGX_HTTP_AI_EP_MODELS          4
#define NGX_HTTP_AI_EP_MESSAGES        5
#define NGX_HTTP_AI_EP_USAGE           6


typedef struct {
    ngx_uint_t                      endpoint;
    json_t                         *request;      /* OpenAI shape */
    json_t                         *client_request; /* as sent, if not */
    ngx_str_t                       client_body;
    ngx_str_t                       client_model;
    ai_scan_t                       scan;

    /* tenant and limits: ngx_http_ai_auth.c, ngx_http_ai_limits.c */
    const ai_key_t                 *key;
    const ai_tenant_t              *tenant;
    ngx_http_ai_limit_scope_t       limits[3];
    ngx_uint_t                      nlimits;
    ai_charge_t                     charge;
    int64_t                         prompt_estimate;
    int                             limit_which;
    ngx_uint_t                      limit_scope;
    time_t                          limit_retry_after;
    int64_t                         rl_limit[2];  /* requests, tokens */
    int64_t                         rl_left[2];
    ngx_http_ai_redis_cmd_t        *redis_cmd;    /* a pending reserve */
    void                           *redis_state;

    /* for logs and metrics: ngx_http_ai_metrics.c reads these */
    ngx_msec_t                      start_msec;
    ngx_msec_t                      first_byte_msec;  /* 0: none yet */
    ngx_uint_t                      attempts;
    const char                     *cache_status;     /* NULL: no cache */
    const char                     *status_reason;    /* why we failed */

    /* gaps between a stream's pieces, bucketed as the metrics' histograms */
    ngx_msec_t                      last_data_msec;
    uint32_t                        gap_bucket[16];
    uint64_t                        gap_sum;
    time_t                          cooling_retry_after;

    /* cache: ngx_http_ai_cache.c */
    u_char                          cache_key[32];
    time_t                          cache_ttl;
    void                           *cache_asm;
    void                           *cache_wait;
    ngx_http_ai_redis_cmd_t        *cache_cmd;

    /* plugins: ngx_http_ai_plugins.c */
    void                           *plugins;
    ngx_str_t                       extra_headers; /* to the provider */
    ngx_uint_t                      plugin_status;

    /* what the answer used: ngx_http_ai_usage.c */
    ai_usage_t                      usage;
    ngx_uint_t                      out_events;

    ngx_http_ai_model_t            *model;        /* NULL for passthrough */
    ngx_http_ai_target_t            target;

    /* the attempt's timeouts once the answer started, and in all */
    ngx_http_upstream_conf_t       *idle_conf;    /* NULL: no change */
    ngx_msec_t                      total_timeout;
    ngx_event_t                    *total_timer;  /* allocated when used */

    ngx_chain_t                    *upstream_body;
    off_t                           upstream_body_len;
    ngx_str_t                       upstream_path;

    /* format translation: see ngx_http_ai_translate.c */
    ngx_uint_t                      in_format;    /* the client's */
    ai_translate_opts_t             opts;
    ai_stream_t                    *stream_out;   /* provider -> OpenAI */
    ai_stream_t                    *stream_in;    /* OpenAI -> client */
    ai_buf_t                        acc;          /* a whole response */
    off_t                           upstream_length;

    ngx_http_status_t               status;
    ngx_http_chunked_t              chunked;

    ngx_str_t                       error_body;

    unsigned                        stream:1;
    unsigned                        process:1;    /* we own the output */
    unsigned                        account:1;    /* usage is needed */
    unsigned                        limits_reserved:1;
    unsigned                        limits_redis:1; /* reserved in Redis */
    unsigned                        limited:1;
    unsigned                        headers_done:1;
    unsigned                        responded:1;  /* an answer was sent */
    unsigned                        translate_cleanup:1;
    unsigned                        body_modified:1;
    unsigned                        plugins_text:1;
    unsigned                        hold_headers:1;
    unsigned                        headers_held:1;
    unsigned                        headers_released:1;
    unsigned                        cache_hit:1;
    unsigned                        cache_pending:1;  /* wait for a leader */
    unsigned                        cache_store:1;
    unsigned                        cache_tee:1;   /* passthrough, copied */
    unsigned                        cache_leader:1;
    unsigned                        cache_header_done:1;
    unsigned                        cache_remote:1;   /* ask Redis first */
    unsigned                        cache_from_remote:1;
    unsigned                        all_cooling:1;
    unsigned                        retargeting:1;
    unsigned                        vis_done:1;
    unsigned                        error_replace:1;
    unsigned                        error_sent:1;
} ngx_http_ai_ctx_t;


extern ngx_module_t  ngx_http_ai_gateway_module;


/* ngx_http_ai_config.c */
char *ngx_http_ai_provider_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_ai_model_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_ai_config_finish(ngx_conf_t *cf,
    ngx_http_ai_main_conf_t *amcf);

/* ngx_http_ai_handler.c */
ngx_int_t ngx_http_ai_handler(ngx_http_request_t *r);
json_t *ngx_http_ai_request_json(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_dispatch(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_handle_authenticated(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);

/* ngx_http_ai_auth.c */
char *ngx_http_ai_tenants_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_ai_authenticate(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_tenant_admit(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_str_t *model);
ngx_int_t ngx_http_ai_limit_error(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
void ngx_http_ai_auth_resume(ngx_http_request_t *r, ngx_int_t rc,
    ai_key_status_e st, const ai_key_t *k, const u_char *digest);

/* ngx_http_ai_keys.c: the Redis key store */
char *ngx_http_ai_keys_conf(ngx_conf_t *cf, ngx_http_ai_main_conf_t *amcf,
    ngx_uint_t first);
ngx_int_t ngx_http_ai_keys_lookup(ngx_http_request_t *r,
    const u_char *digest, ai_key_status_e *st, const ai_key_t **k);
ngx_int_t ngx_http_ai_keys_init_process(ngx_cycle_t *cycle);
void ngx_http_ai_keys_exit_process(ngx_cycle_t *cycle);

/* ngx_http_ai_limits.c */
char *ngx_http_ai_limits_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_ai_limits_reserve(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_limits_peek(ngx_http_ai_main_conf_t *amcf,
    ngx_str_t *scope, ai_counters_t *out);
ngx_int_t ngx_http_ai_limits_init_process(ngx_cycle_t *cycle);
void ngx_http_ai_limits_exit_process(ngx_cycle_t *cycle);

/* ngx_http_ai_usage.c */
char *ngx_http_ai_price_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_ai_usage_estimate(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_str_t *model);
void ngx_http_ai_usage_final(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ai_charge_t *out);
void ngx_http_ai_usage_from_body(ngx_http_ai_ctx_t *ctx, const char *body,
    size_t len);
ngx_int_t ngx_http_ai_usage_api(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);

/* ngx_http_ai_route.c */
ngx_int_t ngx_http_ai_route(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_str_t *model);

/* ngx_http_ai_upstream.c */
ngx_int_t ngx_http_ai_upstream_start(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_upstream_init_conf(ngx_conf_t *cf,
    ngx_http_ai_provider_t *p);
ngx_int_t ngx_http_ai_retarget(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_create_request(ngx_http_request_t *r);
void ngx_http_ai_upstream_attempt(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_uint_t start);

/* ngx_http_ai_translate.c */
ngx_int_t ngx_http_ai_translate_request(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_str_t *body);
ngx_int_t ngx_http_ai_translate_response_init(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_translate_data(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, u_char *p, size_t len);
void ngx_http_ai_translate_end(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_int_t complete);

/* ngx_http_ai_engine.c: providers served by the in-process engine */
char *ngx_http_ai_engine_provider(ngx_conf_t *cf, ngx_http_ai_provider_t *p,
    ngx_str_t *args, ngx_uint_t nargs);
ngx_int_t ngx_http_ai_engine_init_process(ngx_cycle_t *cycle);
void ngx_http_ai_engine_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_ai_engine_start(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_engine_metrics(void *prom_buf);

/* ngx_http_ai_plugins.c */
char *ngx_http_ai_plugin_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_ai_plugins_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_ai_plugin_list(ngx_conf_t *cf, ngx_str_t *names,
    ngx_uint_t n, ngx_array_t **out);
ngx_int_t ngx_http_ai_plugins_request(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_plugins_stream(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, const char *p, size_t len, ai_buf_t *out);
ngx_int_t ngx_http_ai_plugins_body(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ai_buf_t *out);

/* ngx_http_ai_cache.c */
char *ngx_http_ai_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_ai_cache_lookup(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_cache_send_hit(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_cache_wait(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
void ngx_http_ai_cache_tee(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    u_char *p, size_t len);
void ngx_http_ai_cache_store(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    const char *body, size_t len);
ngx_int_t ngx_http_ai_cache_feed(ngx_http_ai_ctx_t *ctx, const char *p,
    size_t len);
ngx_int_t ngx_http_ai_cache_status_header(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_cache_remote_get(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
ngx_int_t ngx_http_ai_cache_init_process(ngx_cycle_t *cycle);
void ngx_http_ai_cache_exit_process(ngx_cycle_t *cycle);

/* ngx_http_ai_balancer.c */
ngx_int_t ngx_http_ai_balancer_option(ngx_conf_t *cf,
    ngx_http_ai_model_t *m, ngx_str_t *opt);
ngx_int_t ngx_http_ai_balancer_init(ngx_conf_t *cf,
    ngx_http_ai_main_conf_t *amcf);
void ngx_http_ai_balancer_answer(ngx_http_request_t *r);
json_t *ngx_http_ai_balancer_status(void);
ngx_int_t ngx_http_ai_balancer_metrics(void *prom_buf);

/* ngx_http_ai_admin.c */
char *ngx_http_ai_admin_key_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_ai_admin_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_ai_keepalive.c */
ngx_int_t ngx_http_ai_keepalive_add(ngx_conf_t *cf,
    ngx_http_ai_main_conf_t *amcf, ngx_http_ai_provider_t *p);
ngx_int_t ngx_http_ai_keepalive_init(ngx_conf_t *cf,
    ngx_http_ai_main_conf_t *amcf);

/* ngx_http_ai_error.c */
ngx_int_t ngx_http_ai_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *code, const char *param,
    const char *fmt, ...);
ngx_int_t ngx_http_ai_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body);
ngx_int_t ngx_http_ai_send_typed(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body);
ngx_int_t ngx_http_ai_send_body(ngx_http_request_t *r, ngx_str_t *body);
ngx_int_t ngx_http_ai_header_out(ngx_http_request_t *r, const char *key,
    ngx_str_t *value);
ngx_int_t ngx_http_ai_header_out_num(ngx_http_request_t *r, const char *key,
    int64_t n);
ngx_int_t ngx_http_ai_error_filter_init(ngx_conf_t *cf);


#endif /* _NGX_HTTP_AI_GATEWAY_H_INCLUDED_ */
