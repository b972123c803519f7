
/*
 * aigw: routing by model.  An exact configured name or alias, else
 * "provider/model" for a provider that allows passthrough.
 */

#include "ngx_http_ai_gateway.h"


ngx_int_t
ngx_http_ai_route(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_str_t *name)
{
    u_char                   *slash, *p;
    ngx_uint_t                i, pick;
    ngx_str_t                 pname;
    ngx_http_ai_model_t      *m;
    ngx_http_ai_target_t     *t;
    ngx_http_ai_provider_t  **pp;
    ngx_http_ai_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_ai_gateway_module);

    m = ngx_hash_find(&amcf->model_hash, ngx_hash_key(name->data, name->len),
                      name->data, name->len);

    if (m != NULL) {
        t = m->targets.elts;

        if (m->targets.nelts > 1) {
            pick = (ngx_uint_t) ngx_random() % m->total_weight;

            for (i = 0; pick >= t->weight; i++) {
                pick -= t->weight;
                t++;
            }
        }

        ctx->model = m;
        ctx->target = *t;

        return NGX_OK;
    }

    slash = ngx_strlchr(name->data, name->data + name->len, '/');

    if (slash == NULL || slash + 1 == name->data + name->len) {
        return NGX_DECLINED;
    }

    pname.data = name->data;
    pname.len = slash - name->data;

    /*
     * The rest goes to the provider as a model name, and into a URL path
     * for Azure and Gemini: nothing that could leave the path segment or
     * the request line (control bytes, spaces, '?', '#', '%', '\', "..").
     */

    for (p = slash + 1; p < name->data + name->len; p++) {
        if (*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#' || *p == '%'
            || *p == '\\'
            || (*p == '.' && p + 1 < name->data + name->len && p[1] == '.'))
        {
            return NGX_DECLINED;
        }
    }

    pp = amcf->providers.elts;

    for (i = 0; i < amcf->providers.nelts; i++) {
        if (pp[i]->passthrough
            && pp[i]->name.len == pname.len
            && ngx_strncmp(pp[i]->name.data, pname.data, pname.len) == 0)
        {
            ctx->model = NULL;
            ctx->target.provider = pp[i];
            ctx->target.model.data = slash + 1;
            ctx->target.model.len = name->data + name->len - (slash + 1);
            ctx->target.weight = 1;

            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}
