
/*
 * aigw: what the provider is sent and what the client gets back, when the
 * two speak different formats.  The client speaks OpenAI (or Anthropic on
 * /v1/messages); the provider speaks OpenAI, Azure OpenAI, Anthropic or
 * Gemini.  Same format both ways: the client's bytes go out with only the
 * model replaced, and the answer comes back untouched.  Otherwise the pure
 * translators of ai_translate.h rebuild the body once and convert the
 * answer as it streams.
 */

#include "ngx_http_ai_gateway.h"


static ngx_int_t ngx_http_ai_splice_model(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_str_t *body, ngx_str_t *model);
static ngx_int_t ngx_http_ai_body_chain(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_str_t *parts, ngx_uint_t n);
static ngx_int_t ngx_http_ai_upstream_path(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_str_t *rel);
static ngx_int_t ngx_http_ai_emit(ngx_http_request_t *r, ngx_chain_t ***ll,
    const char *p, size_t len);
static void ngx_http_ai_translate_cleanup(void *data);


/*
 * SSE events in a run of OpenAI output (whole events, as the translators
 * write them): each is about one token.  A line that starts "data: " is
 * one.
 */

static ngx_uint_t
ngx_http_ai_count_events(const char *p, size_t len)
{
    ngx_uint_t   n;
    const char  *q, *last;

    n = 0;
    last = p + len;

    for (q = p; q < last; q++) {
        if (last - q >= 6 && ngx_strncmp(q, "data: ", 6) == 0) {
            n++;
        }

        q = memchr(q, '\n', last - q);

        if (q == NULL) {
            break;
        }
    }

    return n;
}


static ngx_str_t  ngx_http_ai_unreadable = ngx_string(
    "{\"error\":{\"message\":\"The provider's answer could not be "
    "understood.\",\"type\":\"server_error\",\"param\":null,"
    "\"code\":\"bad_gateway\"}}\n");


static ngx_str_t  ngx_http_ai_endpoint_paths[] = {
    ngx_null_string,
    ngx_string("/chat/completions"),
    ngx_string("/completions"),
    ngx_string("/embeddings"),
    ngx_null_string,
    ngx_string("/chat/completions"),
};


ngx_int_t
ngx_http_ai_translate_request(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_str_t *body)
{
    char                    *name;
    size_t                   nlen;
    json_t                  *root, *so;
    ngx_int_t                rc;
    ngx_uint_t               tries;
    ngx_str_t                part, rel;
    ai_buf_t                 out, path;
    ai_json_error_t          err;
    ngx_pool_cleanup_t      *cln;
    ngx_http_ai_provider_t  *p;

    p = ctx->target.provider;

    ctx->opts.endpoint = (ctx->endpoint == NGX_HTTP_AI_EP_MESSAGES)
                         ? AI_EP_CHAT : (int) ctx->endpoint;
    ctx->opts.model = (const char *) ctx->target.model.data;
    ctx->opts.model_len = ctx->target.model.len;
    ctx->opts.client_model = (const char *) ctx->client_model.data;
    ctx->opts.client_model_len = ctx->client_model.len;
    ctx->opts.default_max_tokens = p->max_tokens;
    ctx->opts.stream = ctx->stream;

    if (ctx->request) {
        so = json_object_get(ctx->request, "stream_options");
        ctx->opts.include_usage =
                       json_is_true(json_object_get(so, "include_usage"));

    } else {
        ctx->opts.include_usage = ctx->scan.include_usage;
    }

    if (!ctx->translate_cleanup) {
        /* once per request, though a balancer calls this per target */

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_ai_translate_cleanup;
        cln->data = ctx;
        ctx->translate_cleanup = 1;
    }

    /*
     * The same format on both sides: the client's bytes, model replaced.
     * When usage must be counted the answer is still read on its way
     * through; a stream then needs the provider to send its usage, which
     * only a rebuilt body can ask for if the client did not.
     */

    if ((p->format == NGX_HTTP_AI_FORMAT_OPENAI
         || p->format == NGX_HTTP_AI_FORMAT_AZURE)
        && ctx->in_format == AI_FORMAT_OPENAI
        && !ctx->body_modified
        && !(ctx->account && ctx->stream && !ctx->opts.include_usage))
    {
        /*
         * An answer that only the cache wants to see passes through
         * untouched (a whole one with its Content-Length), and is copied
         * on its way, or, a stream, read by the cache's assembler.
         */
        ctx->cache_tee = ctx->cache_store && !ctx->plugins_text
                         && !ctx->account;
        ctx->process = (ctx->process && !ctx->cache_tee) || ctx->account;
        ctx->hold_headers = ctx->plugins_text && !ctx->stream;

        rel = ngx_http_ai_endpoint_paths[ctx->endpoint];

        rc = ngx_http_ai_upstream_path(r, ctx, &rel);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_ai_splice_model(r, ctx, body, &ctx->client_model);
    }

    if (p->format == NGX_HTTP_AI_FORMAT_ANTHROPIC
        && ctx->in_format == AI_FORMAT_ANTHROPIC
        && !ctx->body_modified && !ctx->plugins_text)
    {
        ngx_str_set(&rel, "/messages");

        rc = ngx_http_ai_upstream_path(r, ctx, &rel);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_ai_splice_model(r, ctx, &ctx->client_body,
                                        &ctx->client_model);
    }

    /* a new body: translated, or with the usage asked for */

    ctx->process = 1;
    ctx->hold_headers = ctx->plugins_text && !ctx->stream;

    ngx_memzero(&out, sizeof(ai_buf_t));
    ngx_memzero(&path, sizeof(ai_buf_t));

    if (ctx->in_format == AI_FORMAT_OPENAI && !ctx->body_modified
        && ai_translate_request_raw((int) p->format, (char *) body->data,
                                    body->len, &ctx->opts, &out, &path)
           == 0)
    {
        /* the common shapes, straight from the client's bytes */
        goto translated;
    }

    ai_buf_free(&out);
    ai_buf_free(&path);

    root = ngx_http_ai_request_json(r, ctx);
    if (root == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->account && ctx->stream
        && (p->format == NGX_HTTP_AI_FORMAT_OPENAI
            || p->format == NGX_HTTP_AI_FORMAT_AZURE))
    {
        so = json_object();
        if (so == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        json_object_set_new(so, "include_usage", json_true());
        json_object_set_new(root, "stream_options", so);
    }

    ngx_memzero(&out, sizeof(ai_buf_t));
    ngx_memzero(&path, sizeof(ai_buf_t));

    for (tries = 0; ; tries++) {
        ngx_memzero(&err, sizeof(ai_json_error_t));

        rc = ai_translate_request((int) p->format, root, &ctx->opts, &out,
                                  &path, &err);

        if (rc == 0 || !p->drop_params || err.param[0] == '\0'
            || tries == 8)
        {
            break;
        }

        /*
         * drop_params=on: a top-level parameter this provider cannot take
         * is removed (logged once per request) and the translation tried
         * again.
         */

        name = err.param;
        nlen = strcspn(name, ".[");

        if (nlen == 0 || nlen >= sizeof(err.param)) {
            break;
        }

        name[nlen] = '\0';

        if (json_object_del(root, name) != 0) {
            break;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ai: provider \"%V\" takes no \"%s\": dropped",
                      &p->name, name);

        ctx->body_modified = 1;
        ai_buf_free(&out);
        ai_buf_free(&path);
        ngx_memzero(&out, sizeof(ai_buf_t));
        ngx_memzero(&path, sizeof(ai_buf_t));
    }

    if (rc != 0) {
        ai_buf_free(&out);
        ai_buf_free(&path);

        if (ctx->retargeting) {
            /* this target cannot take the request: the balancer goes on */
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "ai: provider \"%V\" cannot take this request: %s",
                          &p->name, err.message);
            return NGX_ERROR;
        }

        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      err.code ? err.code : "invalid_request",
                                      err.param[0] ? err.param : NULL,
                                      "%s", err.message[0] ? err.message
                                      : "The request cannot be sent to "
                                        "this provider.");
    }

translated:

    if (p->format == NGX_HTTP_AI_FORMAT_OPENAI
        || p->format == NGX_HTTP_AI_FORMAT_AZURE)
    {
        rel = ngx_http_ai_endpoint_paths[ctx->endpoint];

    } else {
        rel.data = (u_char *) path.data;
        rel.len = path.len;
    }

    rc = ngx_http_ai_upstream_path(r, ctx, &rel);

    part.len = out.len;
    part.data = ngx_pnalloc(r->pool, out.len + 1);

    if (part.data != NULL) {
        ngx_memcpy(part.data, out.data, out.len);
    }

    ai_buf_free(&out);
    ai_buf_free(&path);

    if (rc != NGX_OK) {
        return rc;
    }

    if (part.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_ai_body_chain(r, ctx, &part, 1);
}


static ngx_int_t
ngx_http_ai_upstream_path(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_str_t *rel)
{
    u_char                  *q;
    size_t                   len;
    ngx_http_ai_provider_t  *p;

    p = ctx->target.provider;

    if (p->format != NGX_HTTP_AI_FORMAT_AZURE) {
        len = p->base_path.len + rel->len;

        ctx->upstream_path.data = ngx_pnalloc(r->pool, len);
        if (ctx->upstream_path.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        q = ngx_cpymem(ctx->upstream_path.data, p->base_path.data,
                       p->base_path.len);
        q = ngx_cpymem(q, rel->data, rel->len);
        ctx->upstream_path.len = q - ctx->upstream_path.data;

        return NGX_OK;
    }

    /* Azure: the deployment is in the path, the version in the query */

    len = p->base_path.len + sizeof("/openai/deployments/") - 1
          + ctx->target.model.len * 3 + rel->len
          + sizeof("?api-version=") - 1 + p->api_version.len;

    ctx->upstream_path.data = ngx_pnalloc(r->pool, len);
    if (ctx->upstream_path.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    q = ngx_cpymem(ctx->upstream_path.data, p->base_path.data,
                   p->base_path.len);
    q = ngx_cpymem(q, "/openai/deployments/",
                   sizeof("/openai/deployments/") - 1);
    q = (u_char *) ngx_escape_uri(q, ctx->target.model.data,
                                  ctx->target.model.len, NGX_ESCAPE_URI);
    q = ngx_cpymem(q, rel->data, rel->len);
    q = ngx_cpymem(q, "?api-version=", sizeof("?api-version=") - 1);
    q = ngx_cpymem(q, p->api_version.data, p->api_version.len);

    ctx->upstream_path.len = q - ctx->upstream_path.data;

    return NGX_OK;
}


/*
 * The upstream body is the client's body with the model's value replaced:
 * buffers pointing into memory we already hold, rather than a second
 * serialisation of the whole document.
 */

static ngx_int_t
ngx_http_ai_splice_model(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_str_t *body, ngx_str_t *model)
{
    char        *dump;
    u_char      *p;
    size_t       start, end, len;
    ngx_int_t    rc;
    ngx_str_t   *name, parts[3];
    json_t      *doc;

    name = &ctx->target.model;

    if (model->len == name->len
        && ngx_strncmp(model->data, name->data, name->len) == 0
        && !ctx->scan.model_escaped)
    {
        return ngx_http_ai_body_chain(r, ctx, body, 1);
    }

    if (ctx->in_format == AI_FORMAT_OPENAI && !ctx->scan.model_escaped) {
        /* the scanner found the value: no second look at the bytes */
        start = ctx->scan.model - body->data - 1;
        end = start + ctx->scan.model_len + 2;
        rc = 1;

    } else {
        rc = ai_json_member_span(body->data, body->len, "model", &start,
                                 &end);
    }

    if (rc == 1) {
        len = ai_json_escape_len(name->data, name->len) + 2;

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        parts[1].data = p;
        *p++ = '"';
        p = ai_json_escape(p, name->data, name->len);
        *p++ = '"';
        parts[1].len = p - parts[1].data;

        parts[0].data = body->data;
        parts[0].len = start;
        parts[2].data = body->data + end;
        parts[2].len = body->len - end;

        return ngx_http_ai_body_chain(r, ctx, parts, 3);
    }

    /* the key was written with escapes: serialise instead */

    doc = ctx->client_request ? ctx->client_request
                              : ngx_http_ai_request_json(r, ctx);
    if (doc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_set_new(doc, "model",
                        json_stringn((char *) name->data, name->len));

    dump = json_dumps(doc, JSON_COMPACT);
    if (dump == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_strlen(dump);
    parts[0].data = ngx_pnalloc(r->pool, len);

    if (parts[0].data == NULL) {
        free(dump);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(parts[0].data, dump, len);
    parts[0].len = len;
    free(dump);

    return ngx_http_ai_body_chain(r, ctx, parts, 1);
}


static ngx_int_t
ngx_http_ai_body_chain(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_str_t *parts, ngx_uint_t n)
{
    ngx_uint_t    i;
    ngx_buf_t    *b;
    ngx_chain_t  *cl, **ll;

    ll = &ctx->upstream_body;
    ctx->upstream_body_len = 0;

    for (i = 0; i < n; i++) {
        if (parts[i].len == 0) {
            continue;
        }

        b = ngx_calloc_buf(r->pool);
        cl = ngx_alloc_chain_link(r->pool);

        if (b == NULL || cl == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* start and end too: a retry rewinds pos to start */

        b->start = parts[i].data;
        b->pos = parts[i].data;
        b->last = parts[i].data + parts[i].len;
        b->end = b->last;
        b->memory = 1;

        cl->buf = b;
        *ll = cl;
        ll = &cl->next;

        ctx->upstream_body_len += parts[i].len;
    }

    *ll = NULL;

    return NGX_OK;
}


/*
 * Called once the provider's headers are in: a translated answer has no
 * known length, and a stream gets its converters.
 */

ngx_int_t
ngx_http_ai_translate_response_init(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx)
{
    ngx_http_upstream_t  *u;

    u = r->upstream;

    if (!ctx->process) {
        return NGX_OK;
    }

    /* the provider's length frames its body; the client's is unknown */

    ctx->upstream_length = u->headers_in.content_length_n;
    u->headers_in.content_length_n = -1;

    if (!ctx->stream || u->headers_in.status_n != NGX_HTTP_OK) {
        return NGX_OK;
    }

    if (ctx->target.provider->format == NGX_HTTP_AI_FORMAT_ANTHROPIC
        || ctx->target.provider->format == NGX_HTTP_AI_FORMAT_GEMINI
        || ctx->account || ctx->plugins_text || ctx->cache_store)
    {
        /* an OpenAI stream passes through, read for its usage */
        ctx->stream_out = ai_stream_new(
                     ctx->target.provider->format == NGX_HTTP_AI_FORMAT_AZURE
                     ? AI_FORMAT_OPENAI : (int) ctx->target.provider->format,
                     &ctx->opts);
        if (ctx->stream_out == NULL) {
            return NGX_ERROR;
        }
    }

    if (ctx->in_format == AI_FORMAT_ANTHROPIC) {
        ctx->stream_in = ai_anthropic_in_stream_new(&ctx->opts);
        if (ctx->stream_in == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_ai_translate_data(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    u_char *p, size_t len)
{
    int            rc;
    ai_buf_t       out, in;
    ngx_chain_t   *cl, **ll;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    if (!ctx->stream || (ctx->stream_out == NULL && ctx->stream_in == NULL))
    {
        /* a whole answer is converted at its end */

        if (ctx->acc.len + len > 64 * 1024 * 1024) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "ai: provider \"%V\" answer too large to convert",
                          &ctx->target.provider->name);
            return NGX_ERROR;
        }

        return ai_buf_append(&ctx->acc, (char *) p, len) == 0
               ? NGX_OK : NGX_ERROR;
    }

    ngx_memzero(&out, sizeof(ai_buf_t));
    ngx_memzero(&in, sizeof(ai_buf_t));

    rc = 0;

    if (ctx->stream_out) {
        /* room for what comes out, about as long as what went in */
        rc = ai_buf_reserve(&out, len + len / 2 + 1024);

        if (rc == 0) {
            rc = ai_stream_feed(ctx->stream_out, (char *) p, len, &out);
        }

    } else {
        rc = ai_buf_append(&out, (char *) p, len);
    }

    if (rc == 0 && out.len) {
        ctx->out_events += ngx_http_ai_count_events(out.data, out.len);
    }

    if (rc == 0 && ctx->plugins_text && out.len) {
        if (ngx_http_ai_plugins_stream(r, ctx, out.data, out.len, &in)
            != NGX_OK)
        {
            rc = -1;
        }

        ai_buf_free(&out);
        out = in;
        ngx_memzero(&in, sizeof(ai_buf_t));
    }

    if (rc == 0 && ctx->cache_store && out.len) {
        (void) ngx_http_ai_cache_feed(ctx, out.data, out.len);
    }

    if (rc == 0 && ctx->stream_in && out.len) {
        rc = ai_stream_feed(ctx->stream_in, out.data, out.len, &in);
        ai_buf_free(&out);
        out = in;
    }

    for (cl = u->out_bufs, ll = &u->out_bufs; cl; cl = cl->next) {
        ll = &cl->next;
    }

    if (out.len && ngx_http_ai_emit(r, &ll, out.data, out.len) != NGX_OK) {
        rc = -1;
    }

    ai_buf_free(&out);

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai: cannot convert the stream of provider \"%V\"",
                      &ctx->target.provider->name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The end of the provider's answer (complete or cut): a whole answer is
 * converted now, a stream gets what closes it.  Called before NGINX sends
 * the last buffer.
 */

void
ngx_http_ai_translate_end(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_int_t complete)
{
    int                   rc;
    ai_buf_t              out, in;
    ngx_chain_t          *head, **ll;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    if (!ctx->process || !u->header_sent || r->connection->error) {
        return;
    }

    ngx_memzero(&out, sizeof(ai_buf_t));
    ngx_memzero(&in, sizeof(ai_buf_t));

    rc = 0;

    if (ctx->stream_out || ctx->stream_in) {
        if (ctx->stream_out) {
            rc = ai_stream_finish(ctx->stream_out, (int) complete, &out);
        }

        if (rc == 0 && ctx->plugins_text && out.len) {
            if (ngx_http_ai_plugins_stream(r, ctx, out.data, out.len, &in)
                != NGX_OK)
            {
                rc = -1;
            }

            ai_buf_free(&out);
            out = in;
            ngx_memzero(&in, sizeof(ai_buf_t));
        }

        if (rc == 0 && ctx->cache_store) {
            if (out.len) {
                (void) ngx_http_ai_cache_feed(ctx, out.data, out.len);
            }

            if (complete) {
                ngx_http_ai_cache_store(r, ctx, NULL, 0);
            }
        }

        if (ctx->stream_in) {
            if (rc == 0 && out.len) {
                rc = ai_stream_feed(ctx->stream_in, out.data, out.len, &in);
            }

            if (rc == 0) {
                rc = ai_stream_finish(ctx->stream_in, (int) complete, &in);
            }

            ai_buf_free(&out);
            out = in;
        }

    } else {
        if (!complete) {
            if (ctx->headers_held && !ctx->headers_released) {
                /* nothing was sent yet: a proper error instead */
                r->headers_out.status = NGX_HTTP_BAD_GATEWAY;
                ai_buf_append(&out, (char *) ngx_http_ai_unreadable.data,
                              ngx_http_ai_unreadable.len);
                goto send;
            }

            return;
        }

        if (ctx->target.provider->format == NGX_HTTP_AI_FORMAT_ANTHROPIC
            || ctx->target.provider->format == NGX_HTTP_AI_FORMAT_GEMINI)
        {
            rc = ai_translate_response((int) ctx->target.provider->format,
                                       (int) u->headers_in.status_n,
                                       ctx->acc.data ? ctx->acc.data : "",
                                       ctx->acc.len, &ctx->opts, &out);

        } else {
            rc = ai_buf_append(&out, ctx->acc.data ? ctx->acc.data : "",
                               ctx->acc.len);
        }

        if (rc == 0 && ctx->account && out.len) {
            ngx_http_ai_usage_from_body(ctx, out.data, out.len);
        }

        if (rc == 0 && ctx->plugins_text
            && u->headers_in.status_n == NGX_HTTP_OK)
        {
            if (ngx_http_ai_plugins_body(r, ctx, &out) == NGX_DECLINED) {
                r->headers_out.status = ctx->plugin_status;
                r->headers_out.status_line.len = 0;
            }
        }

        if (rc == 0 && ctx->cache_store) {
            ngx_http_ai_cache_store(r, ctx, out.data, out.len);
        }

        if (rc == 0 && ctx->in_format == AI_FORMAT_ANTHROPIC) {
            rc = ai_anthropic_in_response((int) u->headers_in.status_n,
                                          out.data ? out.data : "", out.len,
                                          &ctx->opts, &in);
            ai_buf_free(&out);
            out = in;
        }

        if (rc != 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "ai: cannot convert the answer of provider \"%V\"",
                          &ctx->target.provider->name);
            ai_buf_free(&out);
            ngx_memzero(&out, sizeof(ai_buf_t));
            ai_buf_append(&out, (char *) ngx_http_ai_unreadable.data,
                          ngx_http_ai_unreadable.len);
        }
    }

send:

    if (ctx->headers_held && !ctx->headers_released) {
        /* the status could still change: the headers go out now */
        ctx->headers_released = 1;
        r->headers_out.content_length_n = out.len;

        if (r->headers_out.content_length) {
            r->headers_out.content_length->hash = 0;
            r->headers_out.content_length = NULL;
        }

        if (ngx_http_send_header(r) == NGX_ERROR) {
            ai_buf_free(&out);
            return;
        }
    }

    head = NULL;
    ll = &head;

    if (out.len && ngx_http_ai_emit(r, &ll, out.data, out.len) == NGX_OK) {
        if (ctx->stream && !complete) {
            /* the error event ends the body cleanly; the connection closes */
            head->buf->last_buf = 1;

        } else if (complete) {
            /* the last buffer follows at once: one write for both */
            head->buf->flush = 0;
        }

        (void) ngx_http_output_filter(r, head);
    }

    ai_buf_free(&out);
}


static ngx_int_t
ngx_http_ai_emit(ngx_http_request_t *r, ngx_chain_t ***ll, const char *p,
    size_t len)
{
    size_t                size;
    ngx_buf_t            *b;
    ngx_chain_t          *cl;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    cl = ngx_chain_get_free_buf(r->pool, &u->free_bufs);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;

    /* a recycled buffer keeps its memory when it is large enough */

    if (b->start == NULL || (size_t) (b->end - b->start) < len) {
        size = ngx_max(len, 4096);

        b->start = ngx_palloc(r->pool, size);
        if (b->start == NULL) {
            return NGX_ERROR;
        }

        b->end = b->start + size;
    }

    b->pos = b->start;
    b->last = ngx_cpymem(b->start, p, len);
    b->temporary = 1;
    b->memory = 0;
    b->flush = 1;
    b->tag = u->output.tag;

    **ll = cl;
    *ll = &cl->next;

    return NGX_OK;
}


static void
ngx_http_ai_translate_cleanup(void *data)
{
    ngx_http_ai_ctx_t  *ctx = data;

    const ai_usage_t  *su;

    if (ctx->stream_out && !ctx->usage.seen) {
        /* cleanups run last-registered first: keep the usage for the
         * limiter's and the metrics' which run after this one */
        su = ai_stream_usage(ctx->stream_out);

        if (su && su->seen) {
            ctx->usage = *su;
        }
    }

    if (ctx->stream_out) {
        ai_stream_free(ctx->stream_out);
        ctx->stream_out = NULL;
    }

    if (ctx->stream_in) {
        ai_stream_free(ctx->stream_in);
        ctx->stream_in = NULL;
    }

    ai_buf_free(&ctx->acc);
}
