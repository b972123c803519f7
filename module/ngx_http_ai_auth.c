
/*
 * aigw: tenants and virtual keys.  The key (Authorization: Bearer, or
 * x-api-key as the Anthropic SDK sends it) is hashed with SHA-256 and looked
 * up by digest in the tenants file (ai_tenants.c), then, when it is not
 * there and a key store is configured, in Redis (ngx_http_ai_keys.c); the
 * key itself is never stored, logged or echoed.  Then the tenant's model
 * allow-list, and its limits: every scope that applies is reserved at once
 * in shared memory (ngx_http_ai_limits.c).
 */

#include "ngx_http_ai_gateway.h"


static ngx_int_t ngx_http_ai_key(ngx_http_request_t *r, ngx_str_t *key);
static void ngx_http_ai_tenants_cleanup(void *data);
static ngx_int_t ngx_http_ai_auth_outcome(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_int_t rc, ai_key_status_e st,
    const ai_key_t *k, const u_char *digest);
static void ngx_http_ai_quota(ai_quota_t *q, const ai_limits_t *l);
static ngx_int_t ngx_http_ai_add_scope(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, const char *kind, const char *a, const char *b,
    size_t blen, const ai_limits_t *l);


char *
ngx_http_ai_tenants_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    char                 err[512];
    ngx_str_t           *value, file;
    ngx_pool_cleanup_t  *cln;

    if (amcf->tenants) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    err[0] = '\0';
    amcf->tenants = ai_tenants_load((char *) file.data, err, sizeof(err));

    if (amcf->tenants == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_tenants \"%V\": %s", &file, err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ai_tenants_free(amcf->tenants);
        amcf->tenants = NULL;
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_ai_tenants_cleanup;
    cln->data = amcf->tenants;

    /* keys=redis://... and its options: the Redis key store */
    return ngx_http_ai_keys_conf(cf, amcf, 2);
}


static void
ngx_http_ai_tenants_cleanup(void *data)
{
    ai_tenants_free(data);
}


/*
 * 401 unless the request carries a valid key; called before the body.
 * NGX_DONE: the key store is being asked, and ngx_http_ai_auth_resume()
 * goes on when it answers.
 */

ngx_int_t
ngx_http_ai_authenticate(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    u_char                    digest[AI_DIGEST_LEN];
    ngx_int_t                 rc;
    ngx_str_t                 key;
    ai_key_status_e           st;
    const ai_key_t           *k;
    ngx_http_ai_loc_conf_t   *alcf;
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);
    alcf = ngx_http_get_module_loc_conf(r, ngx_http_ai_gateway_module);

    if (amcf->tenants == NULL || alcf->auth == 0) {
        return NGX_OK;
    }

    if (ngx_http_ai_key(r, &key) != NGX_OK) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_ai_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                      "invalid_request_error",
                                      "missing_api_key", NULL,
                                      "You didn't provide an API key. You "
                                      "need to provide your API key in an "
                                      "Authorization header using Bearer "
                                      "auth (i.e. Authorization: Bearer "
                                      "YOUR_KEY).");
    }

    if (key.len > AI_KEY_MAX_LEN) {
        return ngx_http_ai_auth_outcome(r, ctx, NGX_OK, AI_KEY_UNKNOWN, NULL,
                                        NULL);
    }

    ai_sha256(key.data, key.len, digest);

    /* the file first: a constant-time comparison of the whole digest */
    st = ai_tenants_auth_digest(amcf->tenants, digest, ngx_time(), &k);
    rc = NGX_OK;

    if (k == NULL && amcf->keys) {
        /*
         * Redis is asked by the digest, never by the key: which digests
         * exist tells nothing about the keys behind them.
         */
        rc = ngx_http_ai_keys_lookup(r, digest, &st, &k);

        if (rc == NGX_AGAIN) {
            ngx_explicit_memzero(digest, sizeof(digest));
            r->main->count++;
            return NGX_DONE;
        }
    }

    rc = ngx_http_ai_auth_outcome(r, ctx, rc, st, k, digest);
    ngx_explicit_memzero(digest, sizeof(digest));

    return rc;
}


/* the key store answered: the rest of the content handler */

void
ngx_http_ai_auth_resume(ngx_http_request_t *r, ngx_int_t rc,
    ai_key_status_e st, const ai_key_t *k, const u_char *digest)
{
    ngx_connection_t   *c;
    ngx_http_ai_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    rc = ngx_http_ai_auth_outcome(r, ctx, rc, st, k, digest);

    if (rc == NGX_OK && !ctx->responded) {
        rc = ngx_http_ai_handle_authenticated(r, ctx);
    }

    /* NGX_DONE gives back the reference taken while waiting */
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * The answer of the file or the key store: NGX_OK with ctx->key set, or
 * the status of the error sent.  A refusal is logged at "info" with the
 * digest's prefix (from the key, or from the digest when no key matched):
 * a flood of bad keys must not flood the log at a higher level.
 */

static ngx_int_t
ngx_http_ai_auth_outcome(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_int_t rc, ai_key_status_e st, const ai_key_t *k, const u_char *digest)
{
    char       prefix[13];
    ngx_int_t  drc;

    if (rc == NGX_OK && st == AI_KEY_OK) {
        ctx->key = k;
        ctx->tenant = ai_key_tenant(k);
        return NGX_OK;
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (k) {
        ai_key_digest_prefix(k, prefix);

    } else if (digest) {
        ai_hex(digest, 6, prefix);

    } else {
        ngx_cpystrn((u_char *) prefix, (u_char *) "-", sizeof(prefix));
    }

    rc = (rc == NGX_BUSY) ? NGX_BUSY : NGX_OK;

    if (rc == NGX_BUSY) {
        /* the outage itself is logged once, by the Redis client */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ai: key with sha256 %s refused: the key store is "
                      "unavailable", prefix);

    } else if (k) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ai: key \"%s\" of tenant \"%s\" (sha256 %s) "
                      "refused: %s", ai_key_id(k),
                      ai_tenant_name(ai_key_tenant(k)), prefix,
                      ai_key_status_text(st));

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ai: key with sha256 %s refused: unknown", prefix);
    }

    drc = ngx_http_discard_request_body(r);
    if (drc != NGX_OK) {
        return drc;
    }

    if (rc == NGX_BUSY) {
        return ngx_http_ai_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "server_error", "key_store_unavailable",
                                      NULL,
                                      "The API key store is unavailable; "
                                      "please retry shortly.");
    }

    return ngx_http_ai_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                  "invalid_request_error",
                                  "invalid_api_key", NULL,
                                  st == AI_KEY_REVOKED
                                  ? "This API key has been revoked."
                                  : st == AI_KEY_EXPIRED
                                  ? "This API key has expired."
                                  : "Incorrect API key provided.");
}


static ngx_int_t
ngx_http_ai_key(ngx_http_request_t *r, ngx_str_t *key)
{
    ngx_str_t         *v;
    ngx_uint_t         i;
    ngx_list_part_t   *part;
    ngx_table_elt_t   *h;

    if (r->headers_in.authorization) {
        v = &r->headers_in.authorization->value;

        if (v->len > 7
            && ngx_strncasecmp(v->data, (u_char *) "Bearer ", 7) == 0)
        {
            key->data = v->data + 7;
            key->len = v->len - 7;

            while (key->len && key->data[0] == ' ') {
                key->data++;
                key->len--;
            }

            return key->len ? NGX_OK : NGX_DECLINED;
        }
    }

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

        if ((h[i].key.len == 9
             && ngx_strncasecmp(h[i].key.data, (u_char *) "x-api-key", 9)
                == 0)
            || (h[i].key.len == 7
                && ngx_strncasecmp(h[i].key.data, (u_char *) "api-key", 7)
                   == 0))
        {
            if (h[i].value.len == 0) {
                return NGX_DECLINED;
            }

            *key = h[i].value;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * After routing: the tenant's model allow-list, then its limits.  Returns
 * NGX_OK to go on, or the status of the error already sent.
 */

ngx_int_t
ngx_http_ai_tenant_admit(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_str_t *model)
{
    ngx_int_t           rc;
    const char         *tname, *kid;
    const ai_limits_t  *ml;

    if (ctx->tenant == NULL) {
        return NGX_OK;
    }

    if (!ai_tenant_model_allowed(ctx->tenant, (char *) model->data,
                                 model->len))
    {
        return ngx_http_ai_send_error(r, NGX_HTTP_FORBIDDEN,
                                      "invalid_request_error",
                                      "model_not_allowed", "model",
                                      "The model '%V' is not allowed for "
                                      "this API key.", model);
    }

    tname = ai_tenant_name(ctx->tenant);
    kid = ai_key_id(ctx->key);

    ctx->nlimits = 0;

    rc = ngx_http_ai_add_scope(r, ctx, "t", tname, NULL, 0,
                               ai_tenant_limits(ctx->tenant));
    if (rc == NGX_OK) {
        rc = ngx_http_ai_add_scope(r, ctx, "k", tname, kid, ngx_strlen(kid),
                                   ai_key_limits(ctx->key));
    }

    ml = ai_tenant_model_limits(ctx->tenant, (char *) model->data,
                                model->len);

    if (rc == NGX_OK && ml) {
        rc = ngx_http_ai_add_scope(r, ctx, "m", tname, (char *) model->data,
                                   model->len, ml);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_ai_usage_estimate(r, ctx, model);

    rc = ngx_http_ai_limits_reserve(r, ctx);

    switch (rc) {

    case NGX_OK:
        return NGX_OK;

    case NGX_AGAIN:
        /* Redis answers later: ngx_http_ai_limits.c dispatches then */
        return NGX_DONE;

    case NGX_DECLINED:
        return ngx_http_ai_limit_error(r, ctx);

    case NGX_BUSY:
        return ngx_http_ai_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "server_error", "limits_unavailable",
                                      NULL,
                                      "The rate limit store is unavailable; "
                                      "please retry shortly.");

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


static void
ngx_http_ai_quota(ai_quota_t *q, const ai_limits_t *l)
{
    ai_quota_init(q);

    if (l == NULL) {
        return;
    }

    q->max[AI_CNT_REQ_MIN] = l->requests_per_minute;
    q->max[AI_CNT_TOK_MIN] = l->tokens_per_minute;
    q->max[AI_CNT_TOK_DAY] = l->tokens_per_day;
    q->max[AI_CNT_TOK_MONTH] = l->tokens_per_month;
    q->max[AI_CNT_COST_DAY] = l->budget_per_day_micros;
    q->max[AI_CNT_COST_MONTH] = l->budget_per_month_micros;
    q->concurrent = l->concurrent;
}


static ngx_int_t
ngx_http_ai_add_scope(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    const char *kind, const char *a, const char *b, size_t blen,
    const ai_limits_t *l)
{
    u_char                     *p;
    size_t                      len;
    ngx_http_ai_limit_scope_t  *sc;

    sc = &ctx->limits[ctx->nlimits];

    ngx_http_ai_quota(&sc->quota, l);

    /* the tenant's own scope is always counted: the usage API reads it */

    if (!ai_quota_any(&sc->quota) && kind[0] != 't') {
        return NGX_OK;
    }

    len = ngx_strlen(kind) + 1 + ngx_strlen(a) + (b ? 1 + blen : 0);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    sc->scope.data = p;
    p = ngx_sprintf(p, "%s:%s", kind, a);

    if (b) {
        *p++ = ':';
        p = ngx_cpymem(p, b, blen);
    }

    sc->scope.len = p - sc->scope.data;
    ctx->nlimits++;

    return NGX_OK;
}


ngx_int_t
ngx_http_ai_limit_error(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    char                        dur[32];
    int                         which;
    const char                 *code, *type;
    ngx_http_ai_limit_scope_t  *sc;

    which = ctx->limit_which;
    sc = &ctx->limits[ctx->limit_scope];

    if (ngx_http_ai_header_out_num(r, "Retry-After", ctx->limit_retry_after)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->limited = 1;

    ai_duration_text(dur, sizeof(dur), ctx->limit_retry_after);

    if (which == AI_CNT_TOK_DAY || which == AI_CNT_TOK_MONTH
        || which == AI_CNT_COST_DAY || which == AI_CNT_COST_MONTH)
    {
        code = "insufficient_quota";
        type = "insufficient_quota";

    } else {
        code = "rate_limit_exceeded";
        type = (which == AI_CNT_REQ_MIN || which == AI_CNT_CONCURRENT)
               ? "requests" : "tokens";
    }

    return ngx_http_ai_send_error(r, 429, type, code, NULL,
                                  "Rate limit reached for %s on %V: the "
                                  "limit is %L. Please try again in %s.",
                                  ai_counter_name(which), &sc->scope,
                                  which == AI_CNT_CONCURRENT
                                  ? sc->quota.concurrent
                                  : sc->quota.max[which],
                                  dur);
}
