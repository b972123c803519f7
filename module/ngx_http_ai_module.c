
/*
 * aigw: directives, configuration structs and the module definition.
 */

#include "ngx_http_ai_gateway.h"


static void *ngx_http_ai_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_ai_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_ai_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ai_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_ai_gateway(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ai_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_ai_init_process(ngx_cycle_t *cycle);
static void ngx_http_ai_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_ai_commands[] = {

    { ngx_string("ai_provider"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_ai_provider_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_model"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_ai_model_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_tenants"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_ai_tenants_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_limits"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_ai_limits_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_price"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_ai_price_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_ai_cache_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_plugin"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_ai_plugin_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_plugins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_ai_plugins_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ai_loc_conf_t, auth),
      NULL },

    { ngx_string("ai_admin_key_env"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ai_admin_key_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ai_admin_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ai_gateway"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ai_gateway,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ai_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_ai_postconfiguration,         /* postconfiguration */

    ngx_http_ai_create_main_conf,          /* create main configuration */
    ngx_http_ai_init_main_conf,            /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ai_create_loc_conf,           /* create location configuration */
    ngx_http_ai_merge_loc_conf             /* merge location configuration */
};


ngx_module_t  ngx_http_ai_gateway_module = {
    NGX_MODULE_V1,
    &ngx_http_ai_module_ctx,               /* module context */
    ngx_http_ai_commands,                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_ai_init_process,              /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_ai_exit_process,              /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_ai_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    amcf->reserve_tokens = 256;

    if (ngx_array_init(&amcf->providers, cf->pool, 4,
                       sizeof(ngx_http_ai_provider_t *))
        != NGX_OK
        || ngx_array_init(&amcf->models, cf->pool, 8,
                          sizeof(ngx_http_ai_model_t *))
           != NGX_OK
        || ngx_array_init(&amcf->keepalive_pools, cf->pool, 4,
                          sizeof(ngx_http_ai_keepalive_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return amcf;
}


static char *
ngx_http_ai_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    if (ngx_http_ai_config_finish(cf, amcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_ai_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_ai_loc_conf_t  *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    alcf->gateway = NGX_CONF_UNSET;
    alcf->auth = NGX_CONF_UNSET;
    alcf->plugins = NGX_CONF_UNSET_PTR;

    return alcf;
}


static char *
ngx_http_ai_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ai_loc_conf_t  *prev = parent;
    ngx_http_ai_loc_conf_t  *conf = child;

    /* the handler is per location, so the flag is not inherited */

    if (conf->gateway == NGX_CONF_UNSET) {
        conf->gateway = 0;
    }

    /* keys are required wherever tenants exist, unless turned off */
    ngx_conf_merge_value(conf->auth, prev->auth, 1);
    ngx_conf_merge_ptr_value(conf->plugins, prev->plugins, NULL);

    return NGX_CONF_OK;
}


static char *
ngx_http_ai_gateway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_loc_conf_t  *alcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (alcf->gateway != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    alcf->gateway = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ai_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ai_postconfiguration(ngx_conf_t *cf)
{
    return ngx_http_ai_error_filter_init(cf);
}


static ngx_int_t
ngx_http_ai_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_ai_limits_init_process(cycle) != NGX_OK
        || ngx_http_ai_keys_init_process(cycle) != NGX_OK
        || ngx_http_ai_cache_init_process(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_ai_engine_init_process(cycle);
}


static void
ngx_http_ai_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_ai_limits_exit_process(cycle);
    ngx_http_ai_keys_exit_process(cycle);
    ngx_http_ai_cache_exit_process(cycle);
    ngx_http_ai_engine_exit_process(cycle);
}
