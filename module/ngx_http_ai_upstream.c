
/*
 * aigw: the provider leg, through NGINX's own upstream machinery (like the
 * proxy module): keepalive pools, TLS with verification and SNI, timeouts.
 * Responses are never buffered: SSE chunks go out as they arrive.
 *
 * Timeouts of an attempt: connect_timeout, then read_timeout of the conf
 * in use, which is first_byte_timeout until the answer's header and
 * idle_timeout after it (the conf is swapped for its idle twin), and
 * total_timeout over the whole attempt, a timer of the request's own.
 */

#include "ngx_http_ai_gateway.h"
#include "ngx_http_ai_metrics.h"


static void ngx_http_ai_stream_error(ngx_http_request_t *r,
    ngx_http_upstream_t *u);
static void ngx_http_ai_total_timeout(ngx_event_t *ev);
static void ngx_http_ai_total_cleanup(void *data);
static ngx_int_t ngx_http_ai_reinit_request(ngx_http_request_t *r);
static ngx_int_t ngx_http_ai_process_status_line(ngx_http_request_t *r);
static ngx_int_t ngx_http_ai_process_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_ai_input_filter_init(void *data);
static ngx_int_t ngx_http_ai_copy_filter(void *data, ssize_t bytes);
static ngx_int_t ngx_http_ai_chunked_filter(void *data, ssize_t bytes);
static void ngx_http_ai_abort_request(ngx_http_request_t *r);
static void ngx_http_ai_finalize_request(ngx_http_request_t *r,
    ngx_int_t rc);


static ngx_str_t  ngx_http_ai_hide_headers[] = {
    ngx_string("Date"),
    ngx_string("Server"),
    ngx_string("X-Pad"),
    ngx_string("X-Accel-Expires"),
    ngx_string("X-Accel-Redirect"),
    ngx_string("X-Accel-Limit-Rate"),
    ngx_string("X-Accel-Buffering"),
    ngx_string("X-Accel-Charset"),
    ngx_string("Set-Cookie"),
    ngx_string("OpenAI-Organization"),
    ngx_string("OpenAI-Project"),
    ngx_string("Alt-Svc"),
    ngx_string("Strict-Transport-Security"),
    ngx_string("CF-RAY"),
    ngx_string("CF-Cache-Status"),
    ngx_null_string
};


ngx_int_t
ngx_http_ai_upstream_init_conf(ngx_conf_t *cf, ngx_http_ai_provider_t *p)
{
    ngx_hash_init_t             hash;
    ngx_http_upstream_conf_t   *conf, prev;
    ngx_pool_cleanup_t         *cln;
    ngx_http_complex_value_t   *cv;

    conf = &p->upstream;

    conf->buffering = 0;
    conf->request_buffering = 1;
    conf->ignore_client_abort = 0;
    conf->pass_request_headers = 0;
    conf->pass_request_body = 0;
    conf->intercept_errors = 0;
    conf->next_upstream = NGX_CONF_BITMASK_SET
                          |NGX_HTTP_UPSTREAM_FT_ERROR
                          |NGX_HTTP_UPSTREAM_FT_TIMEOUT;
    conf->next_upstream_tries = 0;
    conf->next_upstream_timeout = 0;
    conf->buffer_size = 16384;
    conf->bufs.num = 8;
    conf->bufs.size = ngx_pagesize;
    conf->busy_buffers_size = 2 * conf->buffer_size;
    conf->local = NULL;
    conf->socket_keepalive = 0;
    conf->limit_rate = 0;
    conf->send_lowat = 0;
    conf->hide_headers = NGX_CONF_UNSET_PTR;
    conf->pass_headers = NGX_CONF_UNSET_PTR;
    ngx_str_set(&conf->module, "ai_gateway");

    ngx_memzero(&prev, sizeof(ngx_http_upstream_conf_t));
    prev.hide_headers = NGX_CONF_UNSET_PTR;
    prev.pass_headers = NGX_CONF_UNSET_PTR;

    hash.max_size = 512;
    hash.bucket_size = ngx_align(64, ngx_cacheline_size);
    hash.name = "ai_provider_hide_headers_hash";

    if (ngx_http_upstream_hide_headers_hash(cf, conf, &prev,
                                            ngx_http_ai_hide_headers, &hash)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!p->ssl) {
        return NGX_OK;
    }

    conf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (conf->ssl == NULL) {
        return NGX_ERROR;
    }

    conf->ssl->log = cf->log;

    if (ngx_ssl_create(conf->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(conf->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = conf->ssl;

    if (conf->ssl_verify) {
        if (ngx_ssl_trusted_certificate(cf, conf->ssl,
                                        &p->ssl_trusted_certificate, 4)
            != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_provider \"%V\": cannot load "
                               "ssl_trusted_certificate \"%V\"",
                               &p->name, &p->ssl_trusted_certificate);
            return NGX_ERROR;
        }
    }

    if (ngx_ssl_client_session_cache(cf, conf->ssl, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    conf->ssl_session_reuse = 1;
    conf->ssl_server_name = 1;

    /* SNI and the name checked against the certificate: the Host */

    cv = ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NGX_ERROR;
    }

    cv->value = p->host;

    if (ngx_strlchr(p->host.data, p->host.data + p->host.len, ':') != NULL
        && p->host.data[0] != '[')
    {
        cv->value.len = ngx_strlchr(p->host.data, p->host.data + p->host.len,
                                    ':')
                        - p->host.data;
    }

    conf->ssl_name = cv;

    return NGX_OK;
}


ngx_int_t
ngx_http_ai_upstream_start(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    ngx_http_upstream_t  *u;

    if (ngx_http_upstream_create(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    u = r->upstream;

    /* a balanced model starts at its own upstream: ngx_http_ai_balancer.c */

    u->conf = (ctx->model && ctx->model->balanced)
              ? &ctx->model->confs[0] : &ctx->target.provider->upstream;

    ngx_str_set(&u->schema, "http://");

#if (NGX_HTTP_SSL)
    if (ctx->target.provider->ssl) {
        ngx_str_set(&u->schema, "https://");
        u->ssl = 1;
    }
#endif

    u->output.tag = (ngx_buf_tag_t) &ngx_http_ai_gateway_module;

    u->create_request = ngx_http_ai_create_request;
    u->reinit_request = ngx_http_ai_reinit_request;
    u->process_header = ngx_http_ai_process_status_line;
    u->abort_request = ngx_http_ai_abort_request;
    u->finalize_request = ngx_http_ai_finalize_request;
    r->state = 0;

    u->buffering = 0;

    u->input_filter_init = ngx_http_ai_input_filter_init;
    u->input_filter = ngx_http_ai_copy_filter;
    u->input_filter_ctx = r;

    u->accel = 1;

    if (!(ctx->model && ctx->model->balanced)) {
        /* a balanced model's attempts are counted and timed by its peer */
        ctx->attempts++;
        ctx->idle_conf = ctx->target.provider->idle_conf;
        ctx->total_timeout = ctx->target.provider->total_timeout;
        ngx_http_ai_upstream_attempt(r, ctx, 1);
    }

    /*
     * Called from the body handler: the reference that reading the body
     * took is the one the upstream finalizes, as with proxy_pass.
     */

    ngx_http_upstream_init(r);

    return NGX_DONE;
}


ngx_int_t
ngx_http_ai_create_request(ngx_http_request_t *r)
{
    size_t                   len;
    ngx_buf_t               *b;
    ngx_str_t               *rid;
    ngx_chain_t             *cl;
    ngx_http_ai_ctx_t       *ctx;
    ngx_http_ai_provider_t  *p;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);
    p = ctx->target.provider;

    /* the request id goes to the provider too, for its logs and ours */
    rid = ngx_http_ai_request_id(r);

    len = sizeof("POST  HTTP/1.1" CRLF) - 1 + ctx->upstream_path.len
          + p->fixed_headers.len
          + sizeof("Content-Type: application/json" CRLF) - 1
          + sizeof("Content-Length: " CRLF) - 1 + NGX_OFF_T_LEN
          + sizeof("Accept: text/event-stream" CRLF) - 1
          + ctx->extra_headers.len
          + (rid ? sizeof("X-Request-Id: " CRLF) - 1 + rid->len : 0)
          + sizeof(CRLF) - 1;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, "POST ", 5);
    b->last = ngx_cpymem(b->last, ctx->upstream_path.data,
                         ctx->upstream_path.len);
    b->last = ngx_cpymem(b->last, " HTTP/1.1" CRLF,
                         sizeof(" HTTP/1.1" CRLF) - 1);
    b->last = ngx_cpymem(b->last, p->fixed_headers.data,
                         p->fixed_headers.len);
    b->last = ngx_cpymem(b->last, "Content-Type: application/json" CRLF,
                         sizeof("Content-Type: application/json" CRLF) - 1);
    b->last = ngx_sprintf(b->last, "Content-Length: %O" CRLF,
                          ctx->upstream_body_len);

    if (ctx->stream) {
        b->last = ngx_cpymem(b->last, "Accept: text/event-stream" CRLF,
                             sizeof("Accept: text/event-stream" CRLF) - 1);
    }

    b->last = ngx_cpymem(b->last, ctx->extra_headers.data,
                         ctx->extra_headers.len);

    if (rid) {
        b->last = ngx_sprintf(b->last, "X-Request-Id: %V" CRLF, rid);
    }

    *b->last++ = CR;
    *b->last++ = LF;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = ctx->upstream_body;

    r->upstream->request_bufs = cl;

    /*
     * TLS buffers what it is given until a flush: on a kept-alive
     * connection no other write event would come to send the request.
     */
    while (cl->next) {
        cl = cl->next;
    }

    cl->buf->flush = 1;

    return NGX_OK;
}


/*
 * Another attempt (or another target) after a failure: what the failed
 * answer left is dropped.  Called by the balancer when the target changes,
 * so that the provider gets a body in its own format.
 */

ngx_int_t
ngx_http_ai_retarget(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->process = ctx->plugins_text || ctx->cache_store;
    ctx->hold_headers = 0;
    ctx->upstream_body = NULL;
    ctx->retargeting = 1;

    rc = ngx_http_ai_translate_request(r, ctx, &ctx->client_body);

    ctx->retargeting = 0;

    if (rc != NGX_OK || ctx->upstream_body == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_ai_create_request(r);
}


static ngx_int_t
ngx_http_ai_reinit_request(ngx_http_request_t *r)
{
    ngx_http_ai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx->stream_out) {
        ai_stream_free(ctx->stream_out);
        ctx->stream_out = NULL;
    }

    if (ctx->stream_in) {
        ai_stream_free(ctx->stream_in);
        ctx->stream_in = NULL;
    }

    ai_buf_free(&ctx->acc);
    ngx_memzero(&ctx->acc, sizeof(ai_buf_t));
    ctx->first_byte_msec = 0;

    ctx->status.code = 0;
    ctx->status.count = 0;
    ctx->status.start = NULL;
    ctx->status.end = NULL;
    ngx_memzero(&ctx->chunked, sizeof(ngx_http_chunked_t));

    r->upstream->process_header = ngx_http_ai_process_status_line;
    r->upstream->input_filter = ngx_http_ai_copy_filter;
    r->state = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_process_status_line(ngx_http_request_t *r)
{
    size_t                len;
    ngx_int_t             rc;
    ngx_http_upstream_t  *u;
    ngx_http_ai_ctx_t    *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);
    u = r->upstream;

    rc = ngx_http_parse_status_line(r, &u->buffer, &ctx->status);

    if (rc == NGX_AGAIN) {
        return rc;
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai: provider \"%V\" sent no valid HTTP/1.x status line",
                      &ctx->target.provider->name);
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    if (u->state && u->state->status == 0) {
        u->state->status = ctx->status.code;
    }

    u->headers_in.status_n = ctx->status.code;

    if (ctx->first_byte_msec == 0) {
        ctx->first_byte_msec = ngx_current_msec;
    }

    len = ctx->status.end - ctx->status.start;
    u->headers_in.status_line.len = len;
    u->headers_in.status_line.data = ngx_pnalloc(r->pool, len);

    if (u->headers_in.status_line.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(u->headers_in.status_line.data, ctx->status.start, len);

    if (ctx->status.http_version < NGX_HTTP_VERSION_11) {
        u->headers_in.connection_close = 1;
    }

    u->process_header = ngx_http_ai_process_header;

    return ngx_http_ai_process_header(r);
}


static ngx_int_t
ngx_http_ai_process_header(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_table_elt_t                *h;
    ngx_http_ai_ctx_t              *ctx;
    ngx_http_upstream_t            *u;
    ngx_http_upstream_header_t     *hh;
    ngx_http_upstream_main_conf_t  *umcf;

    umcf = ngx_http_get_module_main_conf(r, ngx_http_upstream_module);
    u = r->upstream;

    for ( ;; ) {

        rc = ngx_http_parse_header_line(r, &u->buffer, 1);

        if (rc == NGX_OK) {

            h = ngx_list_push(&u->headers_in.headers);
            if (h == NULL) {
                return NGX_ERROR;
            }

            h->hash = r->header_hash;

            h->key.len = r->header_name_end - r->header_name_start;
            h->value.len = r->header_end - r->header_start;

            h->key.data = ngx_pnalloc(r->pool,
                               h->key.len + 1 + h->value.len + 1 + h->key.len);
            if (h->key.data == NULL) {
                h->hash = 0;
                return NGX_ERROR;
            }

            h->value.data = h->key.data + h->key.len + 1;
            h->lowcase_key = h->key.data + h->key.len + 1 + h->value.len + 1;

            ngx_memcpy(h->key.data, r->header_name_start, h->key.len);
            h->key.data[h->key.len] = '\0';
            ngx_memcpy(h->value.data, r->header_start, h->value.len);
            h->value.data[h->value.len] = '\0';

            if (h->key.len == r->lowcase_index) {
                ngx_memcpy(h->lowcase_key, r->lowcase_header, h->key.len);

            } else {
                ngx_strlow(h->lowcase_key, h->key.data, h->key.len);
            }

            hh = ngx_hash_find(&umcf->headers_in_hash, h->hash,
                               h->lowcase_key, h->key.len);

            if (hh && hh->handler(r, h, hh->offset) != NGX_OK) {
                return NGX_ERROR;
            }

            continue;
        }

        if (rc == NGX_HTTP_PARSE_HEADER_DONE) {

            if (u->headers_in.chunked) {
                u->headers_in.content_length_n = -1;
            }

            ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

            if ((u->headers_in.status_n == 429
                 || u->headers_in.status_n >= 500)
                && ctx->model && ctx->model->balanced)
            {
                /* retried at once, later, or passed on: the balancer says */
                ngx_http_ai_balancer_answer(r);
            }

            if (ngx_http_ai_translate_response_init(r, ctx) != NGX_OK) {
                return NGX_ERROR;
            }

            if (u->headers_in.status_n == NGX_HTTP_NO_CONTENT
                || u->headers_in.status_n == NGX_HTTP_NOT_MODIFIED
                || (!u->headers_in.chunked
                    && u->headers_in.content_length_n == 0))
            {
                u->keepalive = !u->headers_in.connection_close;
            }

            return NGX_OK;
        }

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai: provider sent an invalid header line");

        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }
}


static ngx_int_t
ngx_http_ai_input_filter_init(void *data)
{
    ngx_http_request_t   *r = data;
    ngx_connection_t     *c;
    ngx_http_ai_ctx_t    *ctx;
    ngx_http_upstream_t  *u;

    u = r->upstream;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx->idle_conf && u->conf != ctx->idle_conf) {
        /* the answer started: from now on, idle_timeout between reads */
        u->conf = ctx->idle_conf;

        c = u->peer.connection;

        if (c && c->read->timer_set) {
            ngx_add_timer(c->read, u->conf->read_timeout);
        }
    }

    if (ctx->process && !u->headers_in.chunked) {
        /* hidden from the client, still what frames the provider's body */
        u->headers_in.content_length_n = ctx->upstream_length;
    }

    if (u->headers_in.status_n == NGX_HTTP_NO_CONTENT
        || u->headers_in.status_n == NGX_HTTP_NOT_MODIFIED)
    {
        u->length = 0;
        u->keepalive = !u->headers_in.connection_close;

    } else if (u->headers_in.chunked) {
        u->input_filter = ngx_http_ai_chunked_filter;
        u->length = 1;

    } else if (u->headers_in.content_length_n == 0) {
        u->length = 0;
        u->keepalive = !u->headers_in.connection_close;

    } else {
        /* a length, or -1: until the provider closes */
        u->length = u->headers_in.content_length_n;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_copy_filter(void *data, ssize_t bytes)
{
    ngx_http_request_t   *r = data;

    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_chain_t          *cl, **ll;
    ngx_http_ai_ctx_t    *ctx;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    if (u->length == 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ai: provider sent more data than its Content-Length");
        u->keepalive = 0;
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (ctx->process) {
        b = &u->buffer;

        if (u->length != -1 && bytes > u->length) {
            bytes = u->length;
        }

        rc = ngx_http_ai_translate_data(r, ctx, b->last, bytes);
        b->last += bytes;

        if (u->length != -1) {
            u->length -= bytes;

            if (u->length == 0) {
                u->keepalive = !u->headers_in.connection_close;
            }
        }

        return rc;
    }

    for (cl = u->out_bufs, ll = &u->out_bufs; cl; cl = cl->next) {
        ll = &cl->next;
    }

    cl = ngx_chain_get_free_buf(r->pool, &u->free_bufs);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    *ll = cl;

    cl->buf->flush = 1;
    cl->buf->memory = 1;

    b = &u->buffer;

    cl->buf->pos = b->last;
    b->last += bytes;
    cl->buf->last = b->last;
    cl->buf->tag = u->output.tag;

    if (ctx->cache_tee) {
        ngx_http_ai_cache_tee(r, ctx, cl->buf->pos,
                              u->length == -1 ? (size_t) bytes
                              : (size_t) ngx_min(bytes, u->length));
    }

    if (u->length == -1) {
        return NGX_OK;
    }

    if (bytes > u->length) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ai: provider sent more data than its Content-Length");

        cl->buf->last = cl->buf->pos + u->length;
        u->length = 0;

        return NGX_OK;
    }

    u->length -= bytes;

    if (u->length == 0) {
        u->keepalive = !u->headers_in.connection_close;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_chunked_filter(void *data, ssize_t bytes)
{
    ngx_http_request_t   *r = data;

    ngx_int_t             rc;
    ngx_buf_t            *b, *buf;
    ngx_chain_t          *cl, **ll;
    ngx_http_ai_ctx_t    *ctx;
    ngx_http_upstream_t  *u;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    u = r->upstream;
    buf = &u->buffer;

    buf->pos = buf->last;
    buf->last += bytes;

    if (ctx->stream) {
        ngx_http_ai_metrics_gap(ctx);
    }

    for (cl = u->out_bufs, ll = &u->out_bufs; cl; cl = cl->next) {
        ll = &cl->next;
    }

    for ( ;; ) {

        rc = ngx_http_parse_chunked(r, buf, &ctx->chunked);

        if (rc == NGX_OK && ctx->process) {
            size_t  n;

            n = ngx_min((off_t) (buf->last - buf->pos), ctx->chunked.size);

            if (ngx_http_ai_translate_data(r, ctx, buf->pos, n) != NGX_OK) {
                return NGX_ERROR;
            }

            buf->pos += n;
            ctx->chunked.size -= n;

            continue;
        }

        if (rc == NGX_OK) {

            cl = ngx_chain_get_free_buf(r->pool, &u->free_bufs);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            *ll = cl;
            ll = &cl->next;

            b = cl->buf;

            b->flush = 1;
            b->memory = 1;

            b->pos = buf->pos;
            b->tag = u->output.tag;

            if (buf->last - buf->pos >= ctx->chunked.size) {
                buf->pos += (size_t) ctx->chunked.size;
                b->last = buf->pos;
                ctx->chunked.size = 0;

            } else {
                ctx->chunked.size -= buf->last - buf->pos;
                buf->pos = buf->last;
                b->last = buf->last;
            }

            if (ctx->cache_tee) {
                ngx_http_ai_cache_tee(r, ctx, b->pos, b->last - b->pos);
            }

            continue;
        }

        if (rc == NGX_DONE) {

            u->keepalive = !u->headers_in.connection_close;
            u->length = 0;

            if (buf->pos != buf->last) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "ai: provider sent data after the final chunk");
                u->keepalive = 0;
            }

            break;
        }

        if (rc == NGX_AGAIN) {
            break;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai: provider sent an invalid chunked response");

        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_ai_abort_request(ngx_http_request_t *r)
{
    return;
}


static void
ngx_http_ai_finalize_request(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_ai_ctx_t    *ctx;
    ngx_http_upstream_t  *u;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);
    u = r->upstream;

    if (ctx && ctx->total_timer && ctx->total_timer->timer_set) {
        ngx_del_timer(ctx->total_timer);
    }

    if (ctx == NULL || rc == NGX_HTTP_CLIENT_CLOSED_REQUEST) {
        return;
    }

    if (ctx->process) {
        ngx_http_ai_translate_end(r, ctx,
                                  rc == 0
                                  && (u->length == 0 || u->length == -1));
        return;
    }

    if (ctx->cache_tee && rc == 0 && (u->length == 0 || u->length == -1)) {
        ngx_http_ai_cache_store(r, ctx, ctx->acc.data,
                                ctx->acc.len);
    }

    if (ctx->stream && u->header_sent && rc != 0 && !r->connection->error
        && u->headers_in.status_n == NGX_HTTP_OK)
    {
        /* the provider broke off mid-stream: say so, never fake an end */
        ngx_http_ai_stream_error(r, u);
    }
}


static void
ngx_http_ai_stream_error(ngx_http_request_t *r, ngx_http_upstream_t *u)
{
    ngx_buf_t    *b;
    ngx_chain_t   out;

    static u_char  event[] =
        "data: {\"error\":{\"message\":\"The provider's stream ended "
        "before the answer was complete.\",\"type\":\"server_error\","
        "\"param\":null,\"code\":\"upstream_incomplete\"}}\n\n";

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return;
    }

    b->pos = event;
    b->last = event + sizeof(event) - 1;
    b->memory = 1;
    b->flush = 1;

    /* and a clean end of the chunked body, the connection closes after */
    b->last_buf = 1;

    out.buf = b;
    out.next = NULL;

    (void) ngx_http_output_filter(r, &out);
}


/*
 * An attempt starts (start = 1: its total_timeout runs from now) or waits
 * before it starts (start = 0).  No timer unless total_timeout is set.
 */

void
ngx_http_ai_upstream_attempt(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_uint_t start)
{
    ngx_event_t         *ev;
    ngx_pool_cleanup_t  *cln;

    ev = ctx->total_timer;

    if (!start || ctx->total_timeout == 0) {
        if (ev && ev->timer_set) {
            ngx_del_timer(ev);
        }

        return;
    }

    if (ev == NULL) {
        ev = ngx_pcalloc(r->pool, sizeof(ngx_event_t));
        cln = ngx_pool_cleanup_add(r->pool, 0);

        if (ev == NULL || cln == NULL) {
            /* no total timer: the other timeouts still hold */
            return;
        }

        ev->handler = ngx_http_ai_total_timeout;
        ev->data = r;
        ev->log = r->connection->log;

        cln->handler = ngx_http_ai_total_cleanup;
        cln->data = ev;

        ctx->total_timer = ev;
    }

    ngx_add_timer(ev, ctx->total_timeout);
}


/*
 * total_timeout expired: the upstream's own timeout path runs, as if its
 * connection's timer had fired.  Before the answer's header that is the
 * next attempt or a 504; once it streams, the stream ends with an error
 * event (ngx_http_ai_finalize_request).
 */

static void
ngx_http_ai_total_timeout(ngx_event_t *ev)
{
    ngx_http_request_t *r = ev->data;

    ngx_event_t          *cev;
    ngx_connection_t     *c;
    ngx_http_ai_ctx_t    *ctx;
    ngx_http_upstream_t  *u;

    u = r->upstream;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (u == NULL || u->cleanup == NULL || u->peer.connection == NULL) {
        return;
    }

    c = u->peer.connection;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "ai: provider \"%V\" exceeded total_timeout (%M ms)",
                  &ctx->target.provider->name, ctx->total_timeout);

    /* the request is still being sent (or connected): the write side */
    cev = u->request_body_sent ? c->read : c->write;

    if (cev->timer_set) {
        ngx_del_timer(cev);
    }

    cev->timedout = 1;
    cev->handler(cev);
}


static void
ngx_http_ai_total_cleanup(void *data)
{
    ngx_event_t  *ev = data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }
}
