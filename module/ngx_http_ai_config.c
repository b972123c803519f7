
/*
 * aigw: the ai_provider and ai_model directives, and what is built from
 * them once the http block is read (the model hash, the /v1/models body).
 */

#include "ngx_http_ai_gateway.h"


static char *ngx_http_ai_provider_option(ngx_conf_t *cf,
    ngx_http_ai_provider_t *p, ngx_str_t *name, ngx_str_t *value);
static ngx_int_t ngx_http_ai_provider_url(ngx_conf_t *cf,
    ngx_http_ai_provider_t *p);
static ngx_int_t ngx_http_ai_provider_headers(ngx_conf_t *cf,
    ngx_http_ai_provider_t *p);
static ngx_int_t ngx_http_ai_parse_flag(ngx_str_t *value, ngx_flag_t *flag);
static ngx_http_ai_provider_t *ngx_http_ai_find_provider(
    ngx_http_ai_main_conf_t *amcf, ngx_str_t *name);
static ngx_http_ai_model_t *ngx_http_ai_find_model(
    ngx_http_ai_main_conf_t *amcf, ngx_str_t *name);
static ngx_int_t ngx_http_ai_models_json(ngx_conf_t *cf,
    ngx_http_ai_main_conf_t *amcf);


static ngx_str_t  ngx_http_ai_formats[] = {
    ngx_string("openai"),
    ngx_string("azure"),
    ngx_string("anthropic"),
    ngx_string("gemini"),
    ngx_null_string
};


char *
ngx_http_ai_provider_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    char                     *rv;
    u_char                   *eq;
    ngx_str_t                *value, name, val;
    ngx_uint_t                i;
    ngx_http_ai_provider_t   *p, **pp;

    value = cf->args->elts;

    if (ngx_http_ai_find_provider(amcf, &value[1]) != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate ai_provider \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    p = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_provider_t));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    p->name = value[1];
    p->format = NGX_HTTP_AI_FORMAT_OPENAI;
    p->passthrough = 1;
    p->keepalive = 32;
    p->max_tokens = 4096;
    p->keepalive_timeout = 60000;
    p->conf_file = cf->conf_file->file.name;
    p->conf_line = cf->conf_file->line;

    p->upstream.connect_timeout = 10000;
    p->upstream.send_timeout = 60000;
    p->upstream.read_timeout = 300000;
    p->upstream.ssl_verify = 1;

    ngx_str_set(&p->ssl_trusted_certificate,
                "/etc/ssl/certs/ca-certificates.crt");

    if (cf->args->nelts > 2 && value[2].len == 6
        && ngx_strncmp(value[2].data, "engine", 6) == 0)
    {
        /* served in-process: see ngx_http_ai_engine.c */

        p->engine = 1;
        p->passthrough = 0;

        rv = ngx_http_ai_engine_provider(cf, p, &value[3],
                                         cf->args->nelts - 3);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        goto add;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        if (eq == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_provider \"%V\": invalid parameter \"%V\", "
                               "expected name=value", &p->name, &value[i]);
            return NGX_CONF_ERROR;
        }

        name.data = value[i].data;
        name.len = eq - value[i].data;
        val.data = eq + 1;
        val.len = value[i].data + value[i].len - val.data;

        rv = ngx_http_ai_provider_option(cf, p, &name, &val);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    if (p->url.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": missing url=", &p->name);
        return NGX_CONF_ERROR;
    }

    if (p->format == NGX_HTTP_AI_FORMAT_AZURE && p->api_version.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": format=azure needs "
                           "api_version=", &p->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ai_provider_url(cf, p) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ai_provider_headers(cf, p) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ai_upstream_init_conf(cf, p) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ai_keepalive_add(cf, amcf, p) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

add:

    pp = ngx_array_push(&amcf->providers);
    if (pp == NULL) {
        return NGX_CONF_ERROR;
    }

    *pp = p;

    return NGX_CONF_OK;
}


static char *
ngx_http_ai_provider_option(ngx_conf_t *cf, ngx_http_ai_provider_t *p,
    ngx_str_t *name, ngx_str_t *value)
{
    ngx_int_t    n;
    ngx_uint_t   i;
    ngx_msec_t  *msp;

    if (ngx_strncmp(name->data, "url", name->len) == 0 && name->len == 3) {
        p->url = *value;
        return NGX_CONF_OK;
    }

    if (name->len == 7 && ngx_strncmp(name->data, "key_env", 7) == 0) {
        if (value->len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_provider \"%V\": key_env= needs the name "
                               "of an environment variable", &p->name);
            return NGX_CONF_ERROR;
        }

        p->key_env = *value;
        return NGX_CONF_OK;
    }

    if (name->len == 3 && ngx_strncmp(name->data, "key", 3) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": keys are not written in the "
                           "configuration; use key_env=VARIABLE", &p->name);
        return NGX_CONF_ERROR;
    }

    if (name->len == 6 && ngx_strncmp(name->data, "format", 6) == 0) {
        for (i = 0; ngx_http_ai_formats[i].len; i++) {
            if (ngx_http_ai_formats[i].len == value->len
                && ngx_strncmp(ngx_http_ai_formats[i].data, value->data,
                               value->len) == 0)
            {
                p->format = i;
                return NGX_CONF_OK;
            }
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": unknown format \"%V\", "
                           "expected openai, azure, anthropic or gemini",
                           &p->name, value);
        return NGX_CONF_ERROR;
    }

    if (name->len == 11 && ngx_strncmp(name->data, "api_version", 11) == 0) {
        p->api_version = *value;
        return NGX_CONF_OK;
    }

    if (name->len == 10 && ngx_strncmp(name->data, "max_tokens", 10) == 0) {
        p->max_tokens = ngx_atoi(value->data, value->len);
        if (p->max_tokens == NGX_ERROR || p->max_tokens == 0) {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (name->len == 4 && ngx_strncmp(name->data, "host", 4) == 0) {
        p->host = *value;
        return NGX_CONF_OK;
    }

    if (name->len == 23
        && ngx_strncmp(name->data, "ssl_trusted_certificate", 23) == 0)
    {
        p->ssl_trusted_certificate = *value;
        return NGX_CONF_OK;
    }

    if (name->len == 10 && ngx_strncmp(name->data, "ssl_verify", 10) == 0) {
        if (ngx_http_ai_parse_flag(value, &p->upstream.ssl_verify) != NGX_OK) {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (name->len == 11 && ngx_strncmp(name->data, "passthrough", 11) == 0) {
        if (ngx_http_ai_parse_flag(value, &p->passthrough) != NGX_OK) {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (name->len == 11 && ngx_strncmp(name->data, "drop_params", 11) == 0) {
        if (ngx_http_ai_parse_flag(value, &p->drop_params) != NGX_OK) {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (name->len == 9 && ngx_strncmp(name->data, "keepalive", 9) == 0) {
        n = ngx_atoi(value->data, value->len);
        if (n == NGX_ERROR) {
            goto invalid;
        }

        p->keepalive = n;
        return NGX_CONF_OK;
    }

    msp = NULL;

    if (name->len == 15 && ngx_strncmp(name->data, "connect_timeout", 15) == 0)
    {
        msp = &p->upstream.connect_timeout;

    } else if (name->len == 12
               && ngx_strncmp(name->data, "send_timeout", 12) == 0)
    {
        msp = &p->upstream.send_timeout;

    } else if (name->len == 12
               && ngx_strncmp(name->data, "read_timeout", 12) == 0)
    {
        msp = &p->upstream.read_timeout;

    } else if (name->len == 17
               && ngx_strncmp(name->data, "keepalive_timeout", 17) == 0)
    {
        msp = &p->keepalive_timeout;

    } else if (name->len == 18
               && ngx_strncmp(name->data, "first_byte_timeout", 18) == 0)
    {
        msp = &p->first_byte_timeout;

    } else if (name->len == 12
               && ngx_strncmp(name->data, "idle_timeout", 12) == 0)
    {
        msp = &p->idle_timeout;

    } else if (name->len == 13
               && ngx_strncmp(name->data, "total_timeout", 13) == 0)
    {
        msp = &p->total_timeout;
    }

    if (msp) {
        *msp = ngx_parse_time(value, 0);

        if (*msp == (ngx_msec_t) NGX_ERROR || *msp == 0) {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_provider \"%V\": unknown parameter \"%V\"",
                       &p->name, name);
    return NGX_CONF_ERROR;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_provider \"%V\": invalid value \"%V\" for %V=",
                       &p->name, value, name);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_ai_parse_flag(ngx_str_t *value, ngx_flag_t *flag)
{
    if (value->len == 2 && ngx_strncasecmp(value->data, (u_char *) "on", 2)
                           == 0)
    {
        *flag = 1;
        return NGX_OK;
    }

    if (value->len == 3 && ngx_strncasecmp(value->data, (u_char *) "off", 3)
                           == 0)
    {
        *flag = 0;
        return NGX_OK;
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_ai_provider_url(ngx_conf_t *cf, ngx_http_ai_provider_t *p)
{
    size_t      add;
    in_port_t   port;
    ngx_url_t   u;

    if (p->url.len > 7
        && ngx_strncasecmp(p->url.data, (u_char *) "http://", 7) == 0)
    {
        add = 7;
        port = 80;

    } else if (p->url.len > 8
               && ngx_strncasecmp(p->url.data, (u_char *) "https://", 8) == 0)
    {
        add = 8;
        port = 443;
        p->ssl = 1;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": invalid url \"%V\", expected "
                           "http://host[:port][/path] or https://...",
                           &p->name, &p->url);
        return NGX_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.len = p->url.len - add;
    u.url.data = p->url.data + add;
    u.default_port = port;
    u.uri_part = 1;
    u.no_resolve = 1;

    /* ngx_http_upstream_add() parses the URL itself: once, not twice */

    p->upstream.upstream = ngx_http_upstream_add(cf, &u, 0);

    if (p->upstream.upstream == NULL || u.family == AF_UNIX
        || u.host.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": invalid url \"%V\"%s%s",
                           &p->name, &p->url, u.err ? ": " : "",
                           u.err ? u.err : "");
        return NGX_ERROR;
    }

    if (p->host.len == 0) {
        if (u.no_port || u.port == u.default_port) {
            p->host = u.host;

        } else {
            p->host.len = u.host.len + 1 + u.port_text.len;
            p->host.data = u.host.data;
        }
    }

    p->base_path = u.uri;

    while (p->base_path.len && p->base_path.data[p->base_path.len - 1] == '/')
    {
        p->base_path.len--;
    }

    if (ngx_strlchr(p->base_path.data, p->base_path.data + p->base_path.len,
                    '?')
        != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": invalid url \"%V\": a query "
                           "string is not allowed here", &p->name, &p->url);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The headers every request to this provider carries, built once.  The key
 * is read from the environment here and lives only in this string.
 */

static ngx_int_t
ngx_http_ai_provider_headers(ngx_conf_t *cf, ngx_http_ai_provider_t *p)
{
    char        *env;
    u_char      *name, *last;
    size_t       len, klen;
    const char  *auth;

    env = NULL;

    if (p->key_env.len) {
        name = ngx_pnalloc(cf->temp_pool, p->key_env.len + 1);
        if (name == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(name, p->key_env.data, p->key_env.len + 1);

        env = getenv((char *) name);

        if (env == NULL || env[0] == '\0') {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "ai_provider \"%V\": environment variable "
                               "\"%V\" is not set; requests are sent without "
                               "a key", &p->name, &p->key_env);
            env = NULL;
        }
    }

    switch (p->format) {
    case NGX_HTTP_AI_FORMAT_AZURE:
        auth = "api-key: ";
        break;
    case NGX_HTTP_AI_FORMAT_ANTHROPIC:
        auth = "x-api-key: ";
        break;
    case NGX_HTTP_AI_FORMAT_GEMINI:
        auth = "x-goog-api-key: ";
        break;
    default:
        auth = "Authorization: Bearer ";
    }

    klen = env ? ngx_strlen(env) : 0;

    len = sizeof("Host: \r\n") - 1 + p->host.len
          + (env ? ngx_strlen(auth) + klen + 2 : 0)
          + sizeof("anthropic-version: 2023-06-01\r\n") - 1;

    p->fixed_headers.data = ngx_pnalloc(cf->pool, len);
    if (p->fixed_headers.data == NULL) {
        return NGX_ERROR;
    }

    last = ngx_sprintf(p->fixed_headers.data, "Host: %V\r\n", &p->host);

    if (env) {
        last = ngx_cpymem(last, auth, ngx_strlen(auth));
        last = ngx_cpymem(last, env, klen);
        *last++ = CR;
        *last++ = LF;
    }

    if (p->format == NGX_HTTP_AI_FORMAT_ANTHROPIC) {
        last = ngx_cpymem(last, "anthropic-version: 2023-06-01\r\n",
                          sizeof("anthropic-version: 2023-06-01\r\n") - 1);
    }

    p->fixed_headers.len = last - p->fixed_headers.data;

    return NGX_OK;
}


static ngx_http_ai_provider_t *
ngx_http_ai_find_provider(ngx_http_ai_main_conf_t *amcf, ngx_str_t *name)
{
    ngx_uint_t               i;
    ngx_http_ai_provider_t **pp;

    pp = amcf->providers.elts;

    for (i = 0; i < amcf->providers.nelts; i++) {
        if (pp[i]->name.len == name->len
            && ngx_strncmp(pp[i]->name.data, name->data, name->len) == 0)
        {
            return pp[i];
        }
    }

    return NULL;
}


static ngx_http_ai_model_t *
ngx_http_ai_find_model(ngx_http_ai_main_conf_t *amcf, ngx_str_t *name)
{
    ngx_str_t             *alias;
    ngx_uint_t             i, j;
    ngx_http_ai_model_t  **mp;

    mp = amcf->models.elts;

    for (i = 0; i < amcf->models.nelts; i++) {
        if (mp[i]->name.len == name->len
            && ngx_strncmp(mp[i]->name.data, name->data, name->len) == 0)
        {
            return mp[i];
        }

        alias = mp[i]->aliases.elts;

        for (j = 0; j < mp[i]->aliases.nelts; j++) {
            if (alias[j].len == name->len
                && ngx_strncmp(alias[j].data, name->data, name->len) == 0)
            {
                return mp[i];
            }
        }
    }

    return NULL;
}


char *
ngx_http_ai_model_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    u_char                   *colon, *comma, *s, *end;
    ngx_int_t                 n;
    ngx_str_t                *value, pname, *alias;
    ngx_uint_t                i, j;
    ngx_int_t                 rc;
    ngx_http_ai_model_t      *m, *other, **mp;
    ngx_http_ai_target_t     *t;

    value = cf->args->elts;

    m = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_model_t));
    if (m == NULL) {
        return NGX_CONF_ERROR;
    }

    m->name = value[1];
    m->cache = 1;

    if (ngx_array_init(&m->targets, cf->pool, 2, sizeof(ngx_http_ai_target_t))
        != NGX_OK
        || ngx_array_init(&m->aliases, cf->pool, 1, sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    t = NULL;

    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len > 7 && ngx_strncmp(value[i].data, "weight=", 7) == 0)
        {
            if (t == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "ai_model \"%V\": weight= must follow a "
                                   "provider target", &m->name);
                return NGX_CONF_ERROR;
            }

            n = ngx_atoi(value[i].data + 7, value[i].len - 7);
            if (n == NGX_ERROR || n == 0 || n > 1000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "ai_model \"%V\": invalid \"%V\", expected "
                                   "a weight from 1 to 1000",
                                   &m->name, &value[i]);
                return NGX_CONF_ERROR;
            }

            t->weight = n;
            continue;
        }

        if (value[i].len > 6 && ngx_strncmp(value[i].data, "cache=", 6) == 0)
        {
            if (ngx_strcmp(value[i].data + 6, "on") == 0) {
                m->cache = 1;

            } else if (ngx_strcmp(value[i].data + 6, "off") == 0) {
                m->cache = 0;

            } else if (ngx_strcmp(value[i].data + 6, "shared") == 0) {
                m->cache = 2;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "ai_model \"%V\": invalid \"%V\", "
                                   "expected cache=on|off|shared",
                                   &m->name, &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (value[i].len > 10
            && ngx_strncmp(value[i].data, "cache_ttl=", 10) == 0)
        {
            ngx_str_t  ttl;

            ttl.data = value[i].data + 10;
            ttl.len = value[i].len - 10;
            m->cache_ttl = ngx_parse_time(&ttl, 1);

            if (m->cache_ttl == (time_t) NGX_ERROR || m->cache_ttl == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "ai_model \"%V\": invalid \"%V\"",
                                   &m->name, &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (value[i].len > 8
            && ngx_strncmp(value[i].data, "plugins=", 8) == 0)
        {
            ngx_array_t  *names;
            ngx_str_t    *nm;

            names = ngx_array_create(cf->temp_pool, 4, sizeof(ngx_str_t));
            if (names == NULL) {
                return NGX_CONF_ERROR;
            }

            s = value[i].data + 8;
            end = value[i].data + value[i].len;

            while (s < end) {
                comma = ngx_strlchr(s, end, ',');
                if (comma == NULL) {
                    comma = end;
                }

                nm = ngx_array_push(names);
                if (nm == NULL) {
                    return NGX_CONF_ERROR;
                }

                nm->data = s;
                nm->len = comma - s;
                s = comma + 1;
            }

            if (ngx_http_ai_plugin_list(cf, names->elts, names->nelts,
                                        &m->plugins)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (value[i].len > 6 && ngx_strncmp(value[i].data, "alias=", 6) == 0)
        {
            s = value[i].data + 6;
            end = value[i].data + value[i].len;

            while (s < end) {
                comma = ngx_strlchr(s, end, ',');
                if (comma == NULL) {
                    comma = end;
                }

                if (comma == s) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "ai_model \"%V\": empty name in "
                                       "\"%V\"", &m->name, &value[i]);
                    return NGX_CONF_ERROR;
                }

                alias = ngx_array_push(&m->aliases);
                if (alias == NULL) {
                    return NGX_CONF_ERROR;
                }

                alias->data = s;
                alias->len = comma - s;
                s = comma + 1;
            }

            continue;
        }

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            != NULL)
        {
            rc = ngx_http_ai_balancer_option(cf, m, &value[i]);

            if (rc == NGX_OK) {
                continue;
            }

            if (rc == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }
        }

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            != NULL
            && ngx_strlchr(value[i].data, value[i].data + value[i].len, ':')
               == NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_model \"%V\": unknown parameter \"%V\"",
                               &m->name, &value[i]);
            return NGX_CONF_ERROR;
        }

        t = ngx_array_push(&m->targets);
        if (t == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(t, sizeof(ngx_http_ai_target_t));
        t->weight = 1;

        colon = ngx_strlchr(value[i].data, value[i].data + value[i].len, ':');

        pname.data = value[i].data;

        if (colon) {
            pname.len = colon - value[i].data;
            t->model.data = colon + 1;
            t->model.len = value[i].data + value[i].len - t->model.data;

        } else {
            pname.len = value[i].len;
            t->model = m->name;
        }

        if (pname.len == 0 || t->model.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_model \"%V\": invalid target \"%V\", "
                               "expected provider[:model]",
                               &m->name, &value[i]);
            return NGX_CONF_ERROR;
        }

        t->provider = ngx_http_ai_find_provider(amcf, &pname);

        if (t->provider == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_model \"%V\": unknown provider \"%V\" "
                               "(declare it with ai_provider before this "
                               "line)", &m->name, &pname);
            return NGX_CONF_ERROR;
        }
    }

    if (m->targets.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_model \"%V\": no provider target", &m->name);
        return NGX_CONF_ERROR;
    }

    t = m->targets.elts;

    for (j = 0; j < m->targets.nelts; j++) {
        m->total_weight += t[j].weight;
    }

    alias = m->aliases.elts;

    for (j = 0; j <= m->aliases.nelts; j++) {
        other = ngx_http_ai_find_model(amcf, j ? &alias[j - 1] : &m->name);

        if (other == NULL) {
            continue;
        }

        if (j == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate ai_model \"%V\"%s", &m->name,
                               (other->name.len == m->name.len
                                && ngx_strncmp(other->name.data, m->name.data,
                                               m->name.len) == 0)
                               ? "" : " (already an alias of another model)");
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_model \"%V\": alias \"%V\" is already a "
                               "model or an alias", &m->name, &alias[j - 1]);
        }

        return NGX_CONF_ERROR;
    }

    mp = ngx_array_push(&amcf->models);
    if (mp == NULL) {
        return NGX_CONF_ERROR;
    }

    *mp = m;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_ai_config_finish(ngx_conf_t *cf, ngx_http_ai_main_conf_t *amcf)
{
    ngx_int_t               rc;
    ngx_str_t              *alias;
    ngx_uint_t              i, j;
    ngx_hash_init_t         hash;
    ngx_hash_keys_arrays_t  keys;
    ngx_http_ai_model_t   **mp;

    ngx_memzero(&keys, sizeof(ngx_hash_keys_arrays_t));

    keys.pool = cf->pool;
    keys.temp_pool = cf->temp_pool;

    if (ngx_hash_keys_array_init(&keys, NGX_HASH_SMALL) != NGX_OK) {
        return NGX_ERROR;
    }

    mp = amcf->models.elts;

    for (i = 0; i < amcf->models.nelts; i++) {

        rc = ngx_hash_add_key(&keys, &mp[i]->name, mp[i],
                              NGX_HASH_READONLY_KEY);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_BUSY) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "ai_model \"%V\" is also an alias of another "
                          "model", &mp[i]->name);
            return NGX_ERROR;
        }

        alias = mp[i]->aliases.elts;

        for (j = 0; j < mp[i]->aliases.nelts; j++) {
            rc = ngx_hash_add_key(&keys, &alias[j], mp[i],
                                  NGX_HASH_READONLY_KEY);

            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (rc == NGX_BUSY) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "ai_model \"%V\": alias \"%V\" is already a "
                              "model or an alias", &mp[i]->name, &alias[j]);
                return NGX_ERROR;
            }
        }
    }

    hash.hash = &amcf->model_hash;
    hash.key = ngx_hash_key;
    hash.max_size = 4096;
    hash.bucket_size = ngx_align(128, ngx_cacheline_size);
    hash.name = "ai_model_hash";
    hash.pool = cf->pool;
    hash.temp_pool = NULL;

    if (ngx_hash_init(&hash, keys.keys.elts, keys.keys.nelts) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_ai_keepalive_init(cf, amcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_ai_balancer_init(cf, amcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_ai_models_json(cf, amcf);
}


static ngx_int_t
ngx_http_ai_models_json(ngx_conf_t *cf, ngx_http_ai_main_conf_t *amcf)
{
    char                   *s;
    json_t                 *root, *data, *m;
    ngx_str_t              *alias;
    ngx_uint_t              i, j;
    ngx_http_ai_model_t   **mp;
    ngx_http_ai_target_t   *t;

    root = json_object();
    data = json_array();

    if (root == NULL || data == NULL) {
        return NGX_ERROR;
    }

    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);

    mp = amcf->models.elts;

    for (i = 0; i < amcf->models.nelts; i++) {
        t = mp[i]->targets.elts;
        alias = mp[i]->aliases.elts;

        for (j = 0; j <= mp[i]->aliases.nelts; j++) {
            m = json_object();
            if (m == NULL) {
                json_decref(root);
                return NGX_ERROR;
            }

            if (j == 0) {
                json_object_set_new(m, "id",
                                    json_stringn((char *) mp[i]->name.data,
                                                 mp[i]->name.len));
            } else {
                json_object_set_new(m, "id",
                                    json_stringn((char *) alias[j - 1].data,
                                                 alias[j - 1].len));
            }

            json_object_set_new(m, "object", json_string("model"));
            json_object_set_new(m, "created",
                                json_integer((json_int_t) ngx_time()));
            json_object_set_new(m, "owned_by",
                                json_stringn((char *) t[0].provider->name.data,
                                             t[0].provider->name.len));
            json_array_append_new(data, m);
        }
    }

    s = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    if (s == NULL) {
        return NGX_ERROR;
    }

    amcf->models_json.len = ngx_strlen(s);
    amcf->models_json.data = ngx_pnalloc(cf->pool, amcf->models_json.len);

    if (amcf->models_json.data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(amcf->models_json.data, s, amcf->models_json.len);
    free(s);

    return NGX_OK;
}
