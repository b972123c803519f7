
/*
 * aigw: observability (ngx_http_ai_metrics.c), a second NGINX module in the
 * gateway's shared object: Prometheus metrics from shared memory, $ai_*
 * log variables and request ids.
 */

#ifndef _NGX_HTTP_AI_METRICS_H_INCLUDED_
#define _NGX_HTTP_AI_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


extern ngx_module_t  ngx_http_ai_metrics_module;


/*
 * The request's id: the client's x-request-id when well-formed, else one
 * generated (32 hex digits).  NULL outside ai_gateway locations.  The value
 * is [A-Za-z0-9._:-]{1,128}, safe to put in a header line as it is.
 */
ngx_str_t *ngx_http_ai_request_id(ngx_http_request_t *r);
void ngx_http_ai_metrics_gap(ngx_http_ai_ctx_t *ctx);


#endif /* _NGX_HTTP_AI_METRICS_H_INCLUDED_ */
