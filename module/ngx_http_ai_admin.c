
/*
 * aigw: the admin API, behind an admin key of its own (read from the
 * environment, compared in constant time): tenants and their keys (ids and
 * digest prefixes, never keys), usage by tenant, and the routing breakers.
 *
 *     location /admin/ { ai_admin; }      GET .../tenants, .../usage,
 *                                         .../breakers
 */

#include <openssl/crypto.h>

#include "ngx_http_ai_gateway.h"


static ngx_int_t ngx_http_ai_admin_handler(ngx_http_request_t *r);
static json_t *ngx_http_ai_admin_tenants(ngx_http_request_t *r,
    ngx_http_ai_main_conf_t *amcf, ngx_uint_t usage);


char *
ngx_http_ai_admin_key_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    char       *env;
    ngx_str_t  *value;

    value = cf->args->elts;

    env = getenv((char *) value[1].data);

    if (env == NULL || ngx_strlen(env) < 16) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_admin_key_env: \"%V\" must hold an admin key "
                           "of at least 16 characters", &value[1]);
        return NGX_CONF_ERROR;
    }

    amcf->admin_key.len = ngx_strlen(env);
    amcf->admin_key.data = ngx_pnalloc(cf->pool, amcf->admin_key.len);
    if (amcf->admin_key.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(amcf->admin_key.data, env, amcf->admin_key.len);

    return NGX_CONF_OK;
}


char *
ngx_http_ai_admin_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ai_admin_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ai_admin_handler(ngx_http_request_t *r)
{
    char                     *dump;
    json_t                   *root;
    ngx_int_t                 rc;
    ngx_str_t                *v, body;
    unsigned char             a[32], b[32];
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* compared as digests: the time taken says nothing about the key */

    v = r->headers_in.authorization ? &r->headers_in.authorization->value
                                    : NULL;

    if (amcf->admin_key.len == 0 || v == NULL || v->len <= 7
        || ngx_strncasecmp(v->data, (u_char *) "Bearer ", 7) != 0)
    {
        return ngx_http_ai_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                      "invalid_request_error",
                                      "invalid_api_key", NULL,
                                      "The admin API needs the admin key.");
    }

    ai_sha256(v->data + 7, v->len - 7, a);
    ai_sha256(amcf->admin_key.data, amcf->admin_key.len, b);

    if (CRYPTO_memcmp(a, b, 32) != 0) {
        return ngx_http_ai_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                      "invalid_request_error",
                                      "invalid_api_key", NULL,
                                      "Incorrect admin key provided.");
    }

    if (r->method != NGX_HTTP_GET) {
        return ngx_http_ai_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                      "invalid_request_error",
                                      "method_not_allowed", NULL,
                                      "Use GET.");
    }

#define ends(s)  (r->uri.len >= sizeof(s) - 1                               \
                  && ngx_strncmp(r->uri.data + r->uri.len - sizeof(s) + 1,   \
                                 s, sizeof(s) - 1) == 0)

    if (ends("/tenants")) {
        root = ngx_http_ai_admin_tenants(r, amcf, 0);

    } else if (ends("/usage")) {
        root = ngx_http_ai_admin_tenants(r, amcf, 1);

    } else if (ends("/breakers")) {
        root = ngx_http_ai_balancer_status();

    } else {
        return ngx_http_ai_send_error(r, NGX_HTTP_NOT_FOUND,
                                      "invalid_request_error", "unknown_url",
                                      NULL, "Unknown admin URL: %V.", &r->uri);
    }

#undef ends

    if (root == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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


static json_t *
ngx_http_ai_admin_tenants(ngx_http_request_t *r, ngx_http_ai_main_conf_t *amcf,
    ngx_uint_t usage)
{
    char                prefix[13];
    size_t              i, j, n;
    json_t             *root, *list, *t, *keys, *k, *u;
    ngx_str_t           scope;
    ai_counters_t       cnt;
    const ai_key_t     *key;
    const ai_tenant_t  *tenant;

    root = json_object();
    list = json_array();

    if (root == NULL || list == NULL) {
        json_decref(root);
        json_decref(list);
        return NULL;
    }

    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", list);

    n = amcf->tenants ? ai_tenants_count(amcf->tenants) : 0;

    for (i = 0; i < n; i++) {
        tenant = ai_tenants_at(amcf->tenants, i);
        t = json_object();
        if (t == NULL) {
            continue;
        }

        json_object_set_new(t, "tenant", json_string(ai_tenant_name(tenant)));

        if (usage) {
            scope.len = 2 + ngx_strlen(ai_tenant_name(tenant));
            scope.data = ngx_pnalloc(r->pool, scope.len);

            if (scope.data) {
                ngx_sprintf(scope.data, "t:%s", ai_tenant_name(tenant));
                ngx_memzero(&cnt, sizeof(ai_counters_t));
                (void) ngx_http_ai_limits_peek(amcf, &scope, &cnt);

                u = json_object();
                json_object_set_new(u, "requests_this_minute",
                                    json_integer(cnt.used[AI_CNT_REQ_MIN]));
                json_object_set_new(u, "tokens_this_minute",
                                    json_integer(cnt.used[AI_CNT_TOK_MIN]));
                json_object_set_new(u, "tokens_today",
                                    json_integer(cnt.used[AI_CNT_TOK_DAY]));
                json_object_set_new(u, "tokens_this_month",
                                    json_integer(cnt.used[AI_CNT_TOK_MONTH]));
                json_object_set_new(u, "cost_today_usd",
                    json_real((double) cnt.used[AI_CNT_COST_DAY] / 1e6));
                json_object_set_new(u, "cost_this_month_usd",
                    json_real((double) cnt.used[AI_CNT_COST_MONTH] / 1e6));
                json_object_set_new(u, "in_flight",
                                    json_integer(cnt.concurrent));
                json_object_set_new(t, "usage", u);
            }

        } else {
            keys = json_array();

            for (j = 0; j < ai_tenant_keys_count(tenant); j++) {
                key = ai_tenant_key_at(tenant, j);
                k = json_object();
                if (k == NULL) {
                    continue;
                }

                ai_key_digest_prefix(key, prefix);
                json_object_set_new(k, "id", json_string(ai_key_id(key)));
                json_object_set_new(k, "sha256_prefix", json_string(prefix));
                json_object_set_new(k, "revoked",
                                    json_boolean(ai_key_revoked(key)));
                json_object_set_new(k, "expires",
                                    json_integer(ai_key_expires(key)));
                json_array_append_new(keys, k);
            }

            json_object_set_new(t, "keys", keys);
        }

        json_array_append_new(list, t);
    }

    return root;
}
