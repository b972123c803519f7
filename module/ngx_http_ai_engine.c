
/*
 * aigw: providers served by the in-process inference engine
 * (module/engine).  Placeholder until the engine is wired in: an engine
 * provider is refused at configuration time.
 */

#include "ngx_http_ai_gateway.h"


char *
ngx_http_ai_engine_provider(ngx_conf_t *cf, ngx_http_ai_provider_t *p,
    ngx_str_t *args, ngx_uint_t nargs)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_provider \"%V\": the engine is not built in",
                       &p->name);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_http_ai_engine_init_process(ngx_cycle_t *cycle)
{
    return NGX_OK;
}


void
ngx_http_ai_engine_exit_process(ngx_cycle_t *cycle)
{
}


ngx_int_t
ngx_http_ai_engine_start(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}
