
/*
 * aigw: the content handler.  A request's path: endpoint and method ->
 * body (read once) -> JSON (parsed once) -> validation -> route ->
 * upstream body (the client's bytes with the model replaced) -> upstream.
 */

#include "ngx_http_ai_gateway.h"


static ngx_uint_t ngx_http_ai_endpoint(ngx_http_request_t *r,
    ngx_str_t *model_id);
static ngx_int_t ngx_http_ai_models(ngx_http_request_t *r,
    ngx_str_t *model_id);
static void ngx_http_ai_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ai_process(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx);
static ngx_int_t ngx_http_ai_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_ai_anthropic_in(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, json_t **root);
static void ngx_http_ai_json_cleanup(void *data);


static ngx_str_t  ngx_http_ai_endpoint_names[] = {
    ngx_null_string,
    ngx_string("/chat/completions"),
    ngx_string("/completions"),
    ngx_string("/embeddings"),
    ngx_string("/models"),
    ngx_string("/messages"),
    ngx_string("/usage"),
};


ngx_int_t
ngx_http_ai_handler(ngx_http_request_t *r)
{
    ngx_int_t           rc;
    ngx_str_t           model_id;
    ngx_http_ai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_ai_gateway_module);
    }

    ctx->start_msec = ngx_current_msec;
    ctx->endpoint = ngx_http_ai_endpoint(r, &model_id);

    rc = ngx_http_ai_authenticate(r, ctx);
    if (rc != NGX_OK || ctx->responded) {
        /* NGX_DONE: the key store is being asked; it goes on below */
        return rc;
    }

    return ngx_http_ai_handle_authenticated(r, ctx);
}


/* the key is good (or not needed): the endpoint, then the body */

ngx_int_t
ngx_http_ai_handle_authenticated(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx)
{
    ngx_int_t  rc;
    ngx_str_t  model_id;

    (void) ngx_http_ai_endpoint(r, &model_id);

    if (ctx->endpoint == NGX_HTTP_AI_EP_USAGE) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_ai_usage_api(r, ctx);
    }

    if (ctx->endpoint == NGX_HTTP_AI_EP_UNKNOWN
        || ctx->endpoint == NGX_HTTP_AI_EP_MODELS)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (ctx->endpoint == NGX_HTTP_AI_EP_MODELS) {
            return ngx_http_ai_models(r, &model_id);
        }

        return ngx_http_ai_send_error(r, NGX_HTTP_NOT_FOUND,
                                      "invalid_request_error", "unknown_url",
                                      NULL, "Unknown request URL: %V %V.",
                                      &r->method_name, &r->uri);
    }

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_ai_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                      "invalid_request_error",
                                      "method_not_allowed", NULL,
                                      "Method %V is not allowed for %V; "
                                      "use POST.", &r->method_name, &r->uri);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_ai_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_uint_t
ngx_http_ai_endpoint(ngx_http_request_t *r, ngx_str_t *model_id)
{
    u_char      *p, *last;
    ngx_str_t   *ep;
    ngx_uint_t   i;

    ngx_str_null(model_id);

    for (i = 1; i <= NGX_HTTP_AI_EP_USAGE; i++) {
        ep = &ngx_http_ai_endpoint_names[i];

        if (r->uri.len >= ep->len
            && ngx_strncmp(r->uri.data + r->uri.len - ep->len, ep->data,
                           ep->len)
               == 0)
        {
            return i;
        }
    }

    /* /v1/models/{id}: ids may hold "/", as in "provider/model" */

    last = r->uri.data + r->uri.len;
    p = ngx_strlcasestrn(r->uri.data, last, (u_char *) "/models/",
                         sizeof("/models/") - 2);

    if (p != NULL && p + sizeof("/models/") - 1 < last) {
        model_id->data = p + sizeof("/models/") - 1;
        model_id->len = last - model_id->data;
        return NGX_HTTP_AI_EP_MODELS;
    }

    return NGX_HTTP_AI_EP_UNKNOWN;
}


static ngx_int_t
ngx_http_ai_models(ngx_http_request_t *r, ngx_str_t *model_id)
{
    u_char                   *p;
    size_t                    len;
    ngx_str_t                 body;
    ngx_http_ai_ctx_t        *ctx;
    ngx_http_ai_main_conf_t  *amcf;

    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
        return ngx_http_ai_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                      "invalid_request_error",
                                      "method_not_allowed", NULL,
                                      "Method %V is not allowed for %V; "
                                      "use GET.", &r->method_name, &r->uri);
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);

    if (model_id->len == 0) {
        return ngx_http_ai_send_json(r, NGX_HTTP_OK, &amcf->models_json);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ngx_http_ai_route(r, ctx, model_id) != NGX_OK) {
        return ngx_http_ai_send_error(r, NGX_HTTP_NOT_FOUND,
                                      "invalid_request_error",
                                      "model_not_found", "model",
                                      "The model '%V' does not exist or you "
                                      "do not have access to it.", model_id);
    }

    len = sizeof("{\"id\":\"\",\"object\":\"model\",\"created\":,"
                 "\"owned_by\":\"\"}") - 1
          + ai_json_escape_len(model_id->data, model_id->len)
          + NGX_TIME_T_LEN
          + ai_json_escape_len(ctx->target.provider->name.data,
                               ctx->target.provider->name.len);

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body.data, "{\"id\":\"", 7);
    p = ai_json_escape(p, model_id->data, model_id->len);
    p = ngx_sprintf(p, "\",\"object\":\"model\",\"created\":%T,\"owned_by\":\"",
                    ngx_time());
    p = ai_json_escape(p, ctx->target.provider->name.data,
                       ctx->target.provider->name.len);
    p = ngx_cpymem(p, "\"}", 2);

    body.len = p - body.data;

    return ngx_http_ai_send_json(r, NGX_HTTP_OK, &body);
}


static void
ngx_http_ai_body_handler(ngx_http_request_t *r)
{
    ngx_int_t           rc;
    ngx_http_ai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    rc = ngx_http_ai_process(r, ctx);

    if (rc == NGX_DONE) {
        /* the upstream owns the request now */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_ai_process(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    json_t           *root, *model;
    ngx_str_t         body;
    ngx_int_t         rc;
    ai_json_error_t   verr;
    char              err[256];

    rc = ngx_http_ai_read_body(r, &body);
    if (rc != NGX_OK) {
        return rc;
    }

    if (body.len == 0) {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error", "invalid_json",
                                      NULL,
                                      "We could not parse the JSON body of "
                                      "your request: the body is empty.");
    }

    /*
     * One pass over the bytes validates the document and finds what the
     * route needs; a jansson tree is built only when something needs one.
     */

    if (ai_scan(body.data, body.len, &ctx->scan, err, sizeof(err)) != 0) {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error", "invalid_json",
                                      NULL,
                                      "We could not parse the JSON body of "
                                      "your request: %s.", err);
    }

    ctx->client_body = body;
    ctx->in_format = AI_FORMAT_OPENAI;

    if (ctx->endpoint == NGX_HTTP_AI_EP_MESSAGES) {
        root = ngx_http_ai_request_json(r, ctx);
        if (root == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_ai_anthropic_in(r, ctx, &root);
        if (rc != NGX_OK || ctx->responded) {
            return rc;
        }

        if (ai_request_validate(root, AI_EP_CHAT, &verr) != 0) {
            return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_request_error", verr.code,
                                          verr.param[0] ? verr.param : NULL,
                                          "%s", verr.message);
        }

        model = json_object_get(root, "model");
        ctx->client_model.data = (u_char *) json_string_value(model);
        ctx->client_model.len = json_string_length(model);
        ctx->stream = json_is_true(json_object_get(root, "stream"));

    } else if (ctx->scan.model_escaped) {

        /* escapes in a top-level key or in the name: jansson decodes them */

        root = ngx_http_ai_request_json(r, ctx);
        if (root == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ai_request_validate(root, (int) ctx->endpoint, &verr) != 0) {
            return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_request_error", verr.code,
                                          verr.param[0] ? verr.param : NULL,
                                          "%s", verr.message);
        }

        model = json_object_get(root, "model");
        ctx->client_model.data = (u_char *) json_string_value(model);
        ctx->client_model.len = json_string_length(model);
        ctx->stream = json_is_true(json_object_get(root, "stream"));

    } else {
        if (ai_scan_validate(&ctx->scan, (int) ctx->endpoint, &verr) != 0) {
            return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_request_error", verr.code,
                                          verr.param[0] ? verr.param : NULL,
                                          "%s", verr.message);
        }

        ctx->client_model.data = (u_char *) ctx->scan.model;
        ctx->client_model.len = ctx->scan.model_len;
        ctx->stream = (ctx->scan.stream_type == AI_JT_TRUE);
    }

    if (ngx_http_ai_route(r, ctx, &ctx->client_model) != NGX_OK) {
        return ngx_http_ai_send_error(r, NGX_HTTP_NOT_FOUND,
                                      "invalid_request_error",
                                      "model_not_found", "model",
                                      "The model '%V' does not exist or you "
                                      "do not have access to it.",
                                      &ctx->client_model);
    }

    rc = ngx_http_ai_plugins_request(r, ctx);
    if (rc != NGX_OK || ctx->responded) {
        return rc;
    }

    rc = ngx_http_ai_cache_lookup(r, ctx);
    if (rc != NGX_OK || ctx->responded) {
        return rc;
    }

    rc = ngx_http_ai_tenant_admit(r, ctx, &ctx->client_model);
    if (rc != NGX_OK || ctx->responded) {
        /* NGX_DONE: the limits are being asked; dispatch comes after */
        return rc;
    }

    return ngx_http_ai_dispatch(r, ctx);
}


/* to the engine or to the provider, once the request is admitted */

ngx_int_t
ngx_http_ai_dispatch(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (ctx->cache_hit) {
        rc = ngx_http_ai_cache_send_hit(r, ctx);

        if (rc != NGX_DECLINED) {
            return rc;
        }

        /* evicted since the lookup: an ordinary miss */
        ctx->cache_hit = 0;
        ctx->cache_status = "MISS";
    }

    if (ctx->cache_pending) {
        ctx->cache_pending = 0;
        return ngx_http_ai_cache_wait(r, ctx);
    }

    if (ctx->cache_remote
        && ngx_http_ai_cache_remote_get(r, ctx) == NGX_DONE)
    {
        /* the shared tier answers first: ngx_http_ai_cache.c goes on */
        return NGX_DONE;
    }

    if (ctx->target.provider->engine) {
        return ngx_http_ai_engine_start(r, ctx);
    }

    rc = ngx_http_ai_translate_request(r, ctx, &ctx->client_body);
    if (rc != NGX_OK || ctx->responded) {
        return rc;
    }

    return ngx_http_ai_upstream_start(r, ctx);
}


/*
 * The request as a jansson tree, parsed once, on first need (translation,
 * escaped names, /v1/messages).  NULL only when out of memory: the body
 * has been validated already.
 */

json_t *
ngx_http_ai_request_json(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    json_t              *root;
    json_error_t         jerr;
    ngx_pool_cleanup_t  *cln;

    if (ctx->request) {
        return ctx->request;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    root = json_loadb((char *) ctx->client_body.data, ctx->client_body.len,
                      0, &jerr);

    if (root == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai: a validated body did not parse: %s", jerr.text);
        return NULL;
    }

    cln->handler = ngx_http_ai_json_cleanup;
    cln->data = root;
    ctx->request = root;

    return root;
}


static ngx_int_t
ngx_http_ai_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    off_t         len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    body->data = ngx_pnalloc(r->pool, len);
    if (body->data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = body->data;

    /*
     * A body larger than client_body_buffer_size was spilled to a temp
     * file by NGINX; it is read back once, from the page cache.
     */

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "ai: cannot read the request body back from "
                              "\"%V\"", &b->file->name);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * POST /v1/messages: the Anthropic request becomes an OpenAI one, which the
 * rest of the gateway routes; the original is kept for Anthropic providers,
 * which get it natively.
 */

static ngx_int_t
ngx_http_ai_anthropic_in(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    json_t **root)
{
    json_t              *oa;
    ai_json_error_t      err;
    ngx_pool_cleanup_t  *cln;

    ctx->in_format = AI_FORMAT_ANTHROPIC;
    ctx->client_request = *root;

    ngx_memzero(&err, sizeof(ai_json_error_t));

    oa = ai_anthropic_in_request(*root, &err);

    if (oa == NULL) {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      err.code ? err.code : "invalid_request",
                                      err.param[0] ? err.param : NULL,
                                      "%s", err.message[0] ? err.message
                                      : "Invalid request.");
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        json_decref(oa);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_ai_json_cleanup;
    cln->data = oa;

    ctx->request = oa;
    *root = oa;

    return NGX_OK;
}


static void
ngx_http_ai_json_cleanup(void *data)
{
    json_decref(data);
}
