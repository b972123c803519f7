
/*
 * aigw: every error the gateway produces is an OpenAI-style JSON body.
 * Our own errors are sent directly; NGINX's own (413 from the body reader,
 * 502 and 504 from the upstream, 500) are rewritten by a header and body
 * filter in gateway locations, so no HTML error page ever reaches a client.
 */

#include "ngx_http_ai_gateway.h"


static ngx_int_t ngx_http_ai_error_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_ai_error_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_ai_error_body(ngx_http_request_t *r,
    ngx_uint_t status, const char *type, const char *code,
    const char *param, const char *message, ngx_str_t *out);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_ai_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *code, const char *param,
    const char *fmt, ...)
{
    u_char     *p;
    va_list     args;
    ngx_str_t   body;
    u_char      message[1024];

    va_start(args, fmt);
    p = ngx_vslprintf(message, message + sizeof(message) - 1, fmt, args);
    va_end(args);

    {
        ngx_http_ai_ctx_t  *ctx;

        /* for $ai_status_reason: why the gateway answered by itself */
        ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

        if (ctx && ctx->status_reason == NULL && !ctx->limited) {
            ctx->status_reason = code ? code : type;
        }
    }

    *p = '\0';

    if (ngx_http_ai_error_body(r, status, type, code, param,
                               (const char *) message, &body)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        static ngx_str_t  get = ngx_string("GET, HEAD");
        static ngx_str_t  post = ngx_string("POST");

        if (ngx_http_ai_header_out(r, "Allow",
                                   (r->uri.len >= 7
                                    && ngx_strncmp(r->uri.data + r->uri.len
                                                   - 7, "/models", 7) == 0)
                                   ? &get : &post)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_ai_send_json(r, status, &body);
}


static ngx_int_t
ngx_http_ai_error_body(ngx_http_request_t *r, ngx_uint_t status,
    const char *type, const char *code, const char *param,
    const char *message, ngx_str_t *out)
{
    u_char             *p;
    size_t              size;
    const char         *atype;
    ngx_http_ai_ctx_t  *ctx;

    size = ngx_strlen(message) * 6 + 256 + (param ? ngx_strlen(param) * 6 : 0)
           + (code ? ngx_strlen(code) * 6 : 0) + ngx_strlen(type) * 6;

    out->data = ngx_pnalloc(r->pool, size);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx == NULL || ctx->endpoint != NGX_HTTP_AI_EP_MESSAGES) {
        out->len = ai_error_json(out->data, size, message, type, param,
                                 code);

        return out->len ? NGX_OK : NGX_ERROR;
    }

    /* the Anthropic-compatible endpoint answers in Anthropic's shape */

    switch (status) {
    case NGX_HTTP_UNAUTHORIZED:
        atype = "authentication_error";
        break;
    case NGX_HTTP_FORBIDDEN:
        atype = "permission_error";
        break;
    case NGX_HTTP_NOT_FOUND:
        atype = "not_found_error";
        break;
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        atype = "request_too_large";
        break;
    case 429:
        atype = "rate_limit_error";
        break;
    default:
        atype = status >= NGX_HTTP_INTERNAL_SERVER_ERROR
                ? "api_error" : "invalid_request_error";
    }

    p = ngx_cpymem(out->data, "{\"type\":\"error\",\"error\":{\"type\":\"",
                   sizeof("{\"type\":\"error\",\"error\":{\"type\":\"") - 1);
    p = ngx_cpymem(p, atype, ngx_strlen(atype));
    p = ngx_cpymem(p, "\",\"message\":\"", sizeof("\",\"message\":\"") - 1);
    p = ai_json_escape(p, (const u_char *) message, ngx_strlen(message));
    p = ngx_cpymem(p, "\"}}\n", sizeof("\"}}\n") - 1);

    out->len = p - out->data;

    return out->len ? NGX_OK : NGX_ERROR;
}


/* a body whose status and headers are already set */

ngx_int_t
ngx_http_ai_send_body(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_ai_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    static ngx_str_t  json = ngx_string("application/json");

    return ngx_http_ai_send_typed(r, status, &json, body);
}


/* a whole answer of the given type, with its length */

ngx_int_t
ngx_http_ai_send_typed(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body)
{
    ngx_http_ai_ctx_t  *ctx;

    /* stages that answered by themselves return to callers that check */

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);
    if (ctx) {
        ctx->responded = 1;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = body->len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    return ngx_http_ai_send_body(r, body);
}


ngx_int_t
ngx_http_ai_error_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_ai_error_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_ai_error_body_filter;

    return NGX_OK;
}


/*
 * x-ratelimit-* as OpenAI sends them, for the most constraining scope of
 * the tenant; the provider's own (its organisation's limits) are dropped.
 */

static ngx_int_t
ngx_http_ai_ratelimit_headers(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    int                       c, k;
    char                      dur[32];
    u_char                   *p;
    int64_t                   limit[2], left[2];
    ngx_uint_t                i;
    ngx_list_part_t          *part;
    ngx_table_elt_t          *h;
    static const char        *names[2] = { "requests", "tokens" };

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

        if (h[i].key.len > 12
            && ngx_strncasecmp(h[i].key.data, (u_char *) "x-ratelimit-", 12)
               == 0)
        {
            h[i].hash = 0;
        }
    }

    for (k = 0; k < 2; k++) {
        c = k ? AI_CNT_TOK_MIN : AI_CNT_REQ_MIN;
        limit[k] = ctx->rl_limit[k];
        left[k] = ctx->rl_left[k];

        if (limit[k] == AI_UNLIMITED && ctx->limited
            && ctx->limit_which == c)
        {
            limit[k] = ctx->limits[ctx->limit_scope].quota.max[c];
            left[k] = 0;
        }

        if (limit[k] == AI_UNLIMITED) {
            continue;
        }

        ai_duration_text(dur, sizeof(dur), ai_window_reset(c, ngx_time()));

        p = ngx_pnalloc(r->pool, 3 * NGX_INT64_LEN + 3 * 40);
        h = ngx_list_push(&r->headers_out.headers);
        if (p == NULL || h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key.data = p;
        h->key.len = ngx_sprintf(p, "x-ratelimit-limit-%s", names[k]) - p;
        p += h->key.len;
        h->value.data = p;
        h->value.len = ngx_sprintf(p, "%L", limit[k]) - p;
        p += h->value.len;

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key.data = p;
        h->key.len = ngx_sprintf(p, "x-ratelimit-remaining-%s", names[k])
                     - p;
        p += h->key.len;
        h->value.data = p;
        h->value.len = ngx_sprintf(p, "%L", left[k]) - p;
        p += h->value.len;

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key.data = p;
        h->key.len = ngx_sprintf(p, "x-ratelimit-reset-%s", names[k]) - p;
        p += h->key.len;
        h->value.data = p;
        h->value.len = ngx_sprintf(p, "%s", dur) - p;
    }

    return NGX_OK;
}


/* one more response header; key is a literal, value is not copied */

ngx_int_t
ngx_http_ai_header_out(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;

    return NGX_OK;
}


ngx_int_t
ngx_http_ai_header_out_num(ngx_http_request_t *r, const char *key,
    int64_t n)
{
    ngx_str_t  v;

    v.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    v.len = ngx_sprintf(v.data, "%L", n) - v.data;

    return ngx_http_ai_header_out(r, key, &v);
}


/* which provider and model answered, after how many attempts */

static ngx_int_t
ngx_http_ai_visibility_headers(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    if (ngx_http_ai_header_out(r, "x-aigw-provider",
                               &ctx->target.provider->name)
        != NGX_OK
        || ngx_http_ai_header_out(r, "x-aigw-upstream-model",
                                  &ctx->target.model)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_ai_header_out_num(r, "x-aigw-attempts",
                                      (int64_t) ctx->attempts);
}


static ngx_int_t
ngx_http_ai_error_header_filter(ngx_http_request_t *r)
{
    u_char                     msg[512], *p;
    ngx_str_t                  provider;
    const char                *type, *code;
    ngx_http_ai_ctx_t         *ctx;
    ngx_http_ai_loc_conf_t    *alcf;
    ngx_http_core_loc_conf_t  *clcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx && ctx->hold_headers && !ctx->headers_released
        && r->err_status == 0)
    {
        /* sent by ngx_http_ai_translate_end() once the answer is known */
        ctx->headers_held = 1;
        return NGX_OK;
    }

    if (ctx && ctx->target.provider && !ctx->vis_done
        && !ctx->cache_hit && ctx->attempts)
    {
        ctx->vis_done = 1;

        if (ngx_http_ai_visibility_headers(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx && ctx->cache_status && !ctx->cache_header_done) {
        ctx->cache_header_done = 1;

        if (ngx_http_ai_cache_status_header(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx && ctx->nlimits && !ctx->headers_done) {
        ctx->headers_done = 1;

        if (ngx_http_ai_ratelimit_headers(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (r->err_status < NGX_HTTP_BAD_REQUEST) {
        return ngx_http_next_header_filter(r);
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_ai_gateway_module);

    if (alcf == NULL || !alcf->gateway) {
        return ngx_http_next_header_filter(r);
    }

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_ai_gateway_module);
    }

    if (ctx->target.provider) {
        provider = ctx->target.provider->name;

    } else {
        ngx_str_set(&provider, "unknown");
    }

    type = "server_error";
    code = NULL;

    switch (r->err_status) {

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        p = ngx_snprintf(msg, sizeof(msg) - 1,
                         "Request body too large: the limit is %O bytes.",
                         clcf->client_max_body_size);
        type = "invalid_request_error";
        code = "request_too_large";
        break;

    case NGX_HTTP_REQUEST_TIME_OUT:
        p = ngx_snprintf(msg, sizeof(msg) - 1,
                         "The request was not received in time.");
        type = "invalid_request_error";
        code = "request_timeout";
        break;

    case NGX_HTTP_BAD_GATEWAY:
        if (ctx->all_cooling && ctx->model) {
            /* every target is cooling down: try again later, not broken */
            r->err_status = NGX_HTTP_SERVICE_UNAVAILABLE;
            r->headers_out.status = NGX_HTTP_SERVICE_UNAVAILABLE;
            r->headers_out.status_line.len = 0;

            if (ngx_http_ai_header_out_num(r, "Retry-After",
                                           ctx->cooling_retry_after)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            p = ngx_snprintf(msg, sizeof(msg) - 1,
                             "Every provider of model \"%V\" is cooling "
                             "down after failures; retry later.",
                             &ctx->model->name);
            code = "providers_unavailable";
            break;
        }

        p = ngx_snprintf(msg, sizeof(msg) - 1,
                         "The provider \"%V\" could not be reached or sent an "
                         "invalid response (connection, TLS or protocol "
                         "error).", &provider);
        code = "bad_gateway";
        break;

    case NGX_HTTP_GATEWAY_TIME_OUT:
        p = ngx_snprintf(msg, sizeof(msg) - 1,
                         "The provider \"%V\" did not answer in time.",
                         &provider);
        code = "gateway_timeout";
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        p = ngx_snprintf(msg, sizeof(msg) - 1,
                         "The service is temporarily unavailable.");
        code = "service_unavailable";
        break;

    case NGX_HTTP_INTERNAL_SERVER_ERROR:
        p = ngx_snprintf(msg, sizeof(msg) - 1,
                         "The gateway had an internal error while processing "
                         "your request.");
        code = "internal_error";
        break;

    default:
        if (r->err_status < NGX_HTTP_INTERNAL_SERVER_ERROR) {
            type = "invalid_request_error";
        }

        p = ngx_snprintf(msg, sizeof(msg) - 1,
                         "The request failed with HTTP status %ui.",
                         r->err_status);
    }

    *p = '\0';

    if (ctx->status_reason == NULL) {
        ctx->status_reason = code ? code : type;
    }

    if (ngx_http_ai_error_body(r, r->err_status, type, code, NULL,
                               (const char *) msg, &ctx->error_body)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->error_replace = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = ctx->error_body.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_ai_error_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t          *b;
    ngx_chain_t        *cl, out;
    ngx_http_ai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx == NULL || !ctx->error_replace) {
        return ngx_http_next_body_filter(r, in);
    }

    /* NGINX's HTML page is consumed and replaced */

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (ctx->error_sent) {
        return NGX_OK;
    }

    ctx->error_sent = 1;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->error_body.data;
    b->last = ctx->error_body.data + ctx->error_body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}
