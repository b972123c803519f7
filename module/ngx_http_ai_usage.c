
/*
 * aigw: what a request costs.  Before dispatch, an estimate (the prompt's
 * text over four, plus max_tokens or the configured reserve); after the
 * answer, the provider's own usage when it sent one, else what was seen on
 * the way (one token per streamed chunk).  Cost in micro-USD from the
 * ai_price table.
 */

#include "ngx_http_ai_gateway.h"


static ngx_http_ai_price_t *ngx_http_ai_price(ngx_http_request_t *r,
    ngx_str_t *model);
static void ngx_http_ai_charge(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    int64_t prompt, int64_t completion, ai_charge_t *out);


char *
ngx_http_ai_price_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    double               *d;
    u_char               *end;
    ngx_str_t            *value;
    ngx_uint_t            i;
    ngx_http_ai_price_t  *price;

    value = cf->args->elts;

    if (amcf->prices.elts == NULL
        && ngx_array_init(&amcf->prices, cf->pool, 8,
                          sizeof(ngx_http_ai_price_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    price = amcf->prices.elts;

    for (i = 0; i < amcf->prices.nelts; i++) {
        if (price[i].model.len == value[1].len
            && ngx_strncmp(price[i].model.data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate ai_price for \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    price = ngx_array_push(&amcf->prices);
    if (price == NULL) {
        return NGX_CONF_ERROR;
    }

    price->model = value[1];
    price->input = -1;
    price->output = -1;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "input=", 6) == 0) {
            d = &price->input;
            value[i].data += 6;
            value[i].len -= 6;

        } else if (ngx_strncmp(value[i].data, "output=", 7) == 0) {
            d = &price->output;
            value[i].data += 7;
            value[i].len -= 7;

        } else {
            goto invalid;
        }

        /* value[i] is NUL-terminated by the configuration parser */
        *d = strtod((char *) value[i].data, (char **) &end);

        if (end != value[i].data + value[i].len || *d < 0 || *d > 1e6) {
            goto invalid;
        }
    }

    if (price->input < 0 || price->output < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_price \"%V\": both input= and output= are "
                           "required (USD per million tokens)", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_price \"%V\": invalid parameter \"%V\"",
                       &value[1], &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_http_ai_price_t *
ngx_http_ai_price(ngx_http_request_t *r, ngx_str_t *model)
{
    ngx_uint_t                i;
    ngx_http_ai_price_t      *price;
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);

    price = amcf->prices.elts;

    for (i = 0; i < amcf->prices.nelts; i++) {
        if (price[i].model.len == model->len
            && ngx_strncmp(price[i].model.data, model->data, model->len) == 0)
        {
            return &price[i];
        }
    }

    return NULL;
}


static void
ngx_http_ai_charge(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    int64_t prompt, int64_t completion, ai_charge_t *out)
{
    double                cost;
    ngx_http_ai_price_t  *price;

    ngx_memzero(out, sizeof(ai_charge_t));

    out->amount[AI_CNT_REQ_MIN] = 1;
    out->amount[AI_CNT_TOK_MIN] = prompt + completion;
    out->amount[AI_CNT_TOK_DAY] = prompt + completion;
    out->amount[AI_CNT_TOK_MONTH] = prompt + completion;

    /* priced by the configured name: an alias costs what its model does */
    price = ngx_http_ai_price(r, ctx->model ? &ctx->model->name
                                            : &ctx->client_model);

    if (price) {
        /* USD per million tokens is micro-USD per token */
        cost = (double) prompt * price->input
               + (double) completion * price->output;

        out->amount[AI_CNT_COST_DAY] = (int64_t) (cost + 0.5);
        out->amount[AI_CNT_COST_MONTH] = (int64_t) (cost + 0.5);
    }
}


void
ngx_http_ai_usage_estimate(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_str_t *model)
{
    int                       c;
    int64_t                   prompt, completion;
    ngx_uint_t                i;
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);

    if (ctx->request && ctx->endpoint == NGX_HTTP_AI_EP_MESSAGES) {
        prompt = (int64_t) ctx->client_body.len / 4;

    } else {
        prompt = (int64_t) ctx->scan.text_bytes / 4
                 + 4 * (int64_t) ctx->scan.messages_count + 1;
    }

    if (ctx->cache_hit) {
        /* a hit is a request, but spends no provider tokens */
        prompt = 0;
        completion = 0;

    } else if (ctx->scan.max_tokens >= 0) {
        completion = ctx->scan.max_tokens;

    } else if (ctx->endpoint == NGX_HTTP_AI_EP_EMBEDDINGS) {
        completion = 0;

    } else {
        completion = amcf->reserve_tokens;
    }

    ctx->prompt_estimate = prompt;

    /*
     * The answer is read for its usage only when something counts tokens
     * or cost: a token or budget limit on one of the scopes (metrics turn
     * it on too).  Otherwise the request passes untouched, and the
     * tenant's token counters hold the prompt estimate only.
     */

    for (i = 0; i < ctx->nlimits; i++) {
        for (c = AI_CNT_TOK_MIN; c < AI_CNT_N; c++) {
            if (ctx->limits[i].quota.max[c] != AI_UNLIMITED) {
                ctx->account = 1;
            }
        }
    }

    ngx_http_ai_charge(r, ctx, prompt, completion, &ctx->charge);
}


/*
 * The usage of a whole OpenAI answer, from its top-level "usage" member;
 * only that member is parsed.
 */

void
ngx_http_ai_usage_from_body(ngx_http_ai_ctx_t *ctx, const char *body,
    size_t len)
{
    size_t   start, end;
    json_t  *u;

    if (ai_json_member_span((const u_char *) body, len, "usage", &start,
                            &end)
        != 1)
    {
        return;
    }

    u = json_loadb(body + start, end - start, 0, NULL);

    if (json_is_object(u)) {
        ctx->usage.prompt_tokens =
               (long) json_integer_value(json_object_get(u, "prompt_tokens"));
        ctx->usage.completion_tokens =
           (long) json_integer_value(json_object_get(u, "completion_tokens"));
        ctx->usage.cached_tokens = (long) json_integer_value(
            json_object_get(json_object_get(u, "prompt_tokens_details"),
                            "cached_tokens"));
        ctx->usage.seen = 1;
    }

    json_decref(u);
}


/*
 * What the request really used, as a charge: the provider's usage if it
 * reported one; else, for an answer that streamed, the prompt estimate and
 * one token per chunk that reached the client; nothing for a request that
 * failed before any answer.
 */

void
ngx_http_ai_usage_final(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ai_charge_t *out)
{
    int64_t               prompt, completion;
    const ai_usage_t     *su;
    ngx_http_upstream_t  *u;

    if (ctx->stream_out && !ctx->usage.seen) {
        su = ai_stream_usage(ctx->stream_out);

        if (su && su->seen) {
            ctx->usage = *su;
        }
    }

    if (ctx->cache_hit) {
        prompt = 0;
        completion = 0;

    } else if (ctx->usage.seen) {
        prompt = ctx->usage.prompt_tokens;
        completion = ctx->usage.completion_tokens;

    } else {
        u = r->upstream;

        if (u == NULL || !u->header_sent
            || u->headers_in.status_n >= NGX_HTTP_BAD_REQUEST)
        {
            prompt = 0;
            completion = 0;

        } else {
            prompt = ctx->prompt_estimate;
            completion = ctx->out_events > 2 ? ctx->out_events - 2 : 0;
        }
    }

    ngx_http_ai_charge(r, ctx, prompt, completion, out);
}


/*
 * GET /v1/usage: the calling key's tenant, its usage and what is left in
 * every window, from the shared-memory limiter.
 */

ngx_int_t
ngx_http_ai_usage_api(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    int                        c;
    char                      *dump;
    time_t                     now;
    json_t                    *root, *w, *windows;
    ngx_str_t                  scope, body;
    ai_quota_t                 q;
    ai_counters_t              cnt;
    const ai_limits_t         *l;
    ngx_http_ai_main_conf_t   *amcf;
    static const char         *names[] = {
        "requests_per_minute", "tokens_per_minute", "tokens_per_day",
        "tokens_per_month", "budget_per_day", "budget_per_month"
    };

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);

    if (r->method != NGX_HTTP_GET) {
        return ngx_http_ai_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                      "invalid_request_error",
                                      "method_not_allowed", NULL,
                                      "Method %V is not allowed for %V; "
                                      "use GET.", &r->method_name, &r->uri);
    }

    if (ctx->tenant == NULL) {
        return ngx_http_ai_send_error(r, NGX_HTTP_NOT_FOUND,
                                      "invalid_request_error", "no_tenant",
                                      NULL, "Usage is kept per tenant: this "
                                      "gateway has no tenants configured.");
    }

    scope.len = 2 + ngx_strlen(ai_tenant_name(ctx->tenant));
    scope.data = ngx_pnalloc(r->pool, scope.len);
    if (scope.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(scope.data, "t:%s", ai_tenant_name(ctx->tenant));

    ngx_memzero(&cnt, sizeof(ai_counters_t));
    (void) ngx_http_ai_limits_peek(amcf, &scope, &cnt);

    l = ai_tenant_limits(ctx->tenant);
    ai_quota_init(&q);
    q.max[AI_CNT_REQ_MIN] = l->requests_per_minute;
    q.max[AI_CNT_TOK_MIN] = l->tokens_per_minute;
    q.max[AI_CNT_TOK_DAY] = l->tokens_per_day;
    q.max[AI_CNT_TOK_MONTH] = l->tokens_per_month;
    q.max[AI_CNT_COST_DAY] = l->budget_per_day_micros;
    q.max[AI_CNT_COST_MONTH] = l->budget_per_month_micros;

    now = ngx_time();
    root = json_object();
    windows = json_object();

    if (root == NULL || windows == NULL) {
        json_decref(root);
        json_decref(windows);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_set_new(root, "object", json_string("usage"));
    json_object_set_new(root, "tenant",
                        json_string(ai_tenant_name(ctx->tenant)));
    json_object_set_new(root, "key_id", json_string(ai_key_id(ctx->key)));
    json_object_set_new(root, "limits_store",
                        json_string(amcf->limits ? "shared_memory" : "none"));

    for (c = 0; c < AI_CNT_N; c++) {
        w = json_object();
        if (w == NULL) {
            continue;
        }

        if (c >= AI_CNT_COST_DAY) {
            json_object_set_new(w, "used_usd",
                                json_real((double) cnt.used[c] / 1e6));
            json_object_set_new(w, "limit_usd", q.max[c] == AI_UNLIMITED
                                ? json_null()
                                : json_real((double) q.max[c] / 1e6));

        } else {
            json_object_set_new(w, "used", json_integer(cnt.used[c]));
            json_object_set_new(w, "limit", q.max[c] == AI_UNLIMITED
                                ? json_null() : json_integer(q.max[c]));
        }

        json_object_set_new(w, "remaining",
                            q.max[c] == AI_UNLIMITED ? json_null()
                            : json_integer(ai_counters_remaining(&cnt, &q,
                                                                 c)));
        json_object_set_new(w, "resets_in_seconds",
                            json_integer(ai_window_reset(c, now)));
        json_object_set_new(windows, names[c], w);
    }

    json_object_set_new(root, "windows", windows);
    json_object_set_new(root, "concurrent", json_integer(cnt.concurrent));

    dump = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    if (dump == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.len = ngx_strlen(dump);
    body.data = ngx_pnalloc(r->pool, body.len);

    if (body.data == NULL) {
        free(dump);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(body.data, dump, body.len);
    free(dump);

    return ngx_http_ai_send_json(r, NGX_HTTP_OK, &body);
}
