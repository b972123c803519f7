
/*
 * aigw: Lua-free plugins in the request path.  Instances are declared with
 * ai_plugin (dlopen at configuration time, so nginx -t reports a missing
 * symbol, an ABI mismatch or a bad option), ordered per location with
 * ai_plugins and per model with plugins=.  They see the parsed request
 * (inspect, modify, reject), every content delta of the answer as it
 * streams (pass, rewrite, hold back, stop) and its end.
 */

#include "ngx_http_ai_gateway.h"
#include "aigw_plugin_host.h"


/* choices of one answer read without a tree; more: the tree reads them */
#define NGX_HTTP_AI_PLUGIN_CHOICES  16


typedef struct {
    ngx_str_t                   name;
    aigw_instance_t            *inst;
} ngx_http_ai_plugin_decl_t;


typedef struct {
    aigw_run_t                 *run;
    aigw_request_t              req;
    aigw_chain_t                chain;
    aigw_verdict_t              verdict;
    ai_sse_t                    sse;
    ai_buf_t                   *out;          /* during a feed */
    ai_buf_t                    dec;          /* an escaped content */
    ngx_http_request_t         *request;
    unsigned                    stopped:1;
    unsigned                    sse_init:1;
} ngx_http_ai_plugin_run_t;


static void ngx_http_ai_plugin_free(void *data);
static void ngx_http_ai_plugin_run_cleanup(void *data);
static int ngx_http_ai_plugin_add_header(aigw_request_t *req,
    const char *name, const char *value);
static int ngx_http_ai_plugin_event(void *data, const ai_sse_event_t *ev);
static ngx_uint_t ngx_http_ai_plugin_wants_text(const aigw_chain_t *chain);
static ngx_int_t ngx_http_ai_plugin_keep_tree(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, json_t *root);
static void ngx_http_ai_plugin_json_cleanup(void *data);
static ngx_int_t ngx_http_ai_plugin_spliced(ngx_http_request_t *r,
    ngx_http_ai_ctx_t *ctx, ngx_http_ai_plugin_run_t *pr);


static ngx_http_ai_plugin_decl_t *
ngx_http_ai_plugin_find(ngx_http_ai_main_conf_t *amcf, ngx_str_t *name)
{
    ngx_uint_t                  i;
    ngx_http_ai_plugin_decl_t  *d;

    if (amcf->plugins.elts == NULL) {
        return NULL;
    }

    d = amcf->plugins.elts;

    for (i = 0; i < amcf->plugins.nelts; i++) {
        if (d[i].name.len == name->len
            && ngx_strncmp(d[i].name.data, name->data, name->len) == 0)
        {
            return &d[i];
        }
    }

    return NULL;
}


/* ai_plugin NAME /path/plugin.so [key=value ...]; */

char *
ngx_http_ai_plugin_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_main_conf_t  *amcf = conf;

    char                        err[512];
    const char                **args;
    ngx_str_t                  *value, path;
    ngx_uint_t                  i;
    ngx_pool_cleanup_t         *cln;
    ngx_http_ai_plugin_decl_t  *d;

    value = cf->args->elts;

    if (amcf->plugins.elts == NULL
        && ngx_array_init(&amcf->plugins, cf->pool, 4,
                          sizeof(ngx_http_ai_plugin_decl_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ai_plugin_find(amcf, &value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate ai_plugin \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    path = value[2];

    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    args = ngx_palloc(cf->pool, sizeof(char *) * (cf->args->nelts + 1));
    if (args == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the configuration parser leaves every argument NUL-terminated */

    for (i = 3; i < cf->args->nelts; i++) {
        args[i - 3] = (const char *) value[i].data;
    }

    d = ngx_array_push(&amcf->plugins);
    if (d == NULL) {
        return NGX_CONF_ERROR;
    }

    d->name = value[1];
    err[0] = '\0';

    d->inst = aigw_instance_load((char *) value[1].data, (char *) path.data,
                                 args, cf->args->nelts - 3, err, sizeof(err));

    if (d->inst == NULL) {
        amcf->plugins.nelts--;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "ai_plugin \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        aigw_instance_free(d->inst);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_ai_plugin_free;
    cln->data = d->inst;

    return NGX_CONF_OK;
}


static void
ngx_http_ai_plugin_free(void *data)
{
    aigw_instance_free(data);
}


/* a list of declared instances: ai_plugins in a location, plugins= */

char *
ngx_http_ai_plugin_list(ngx_conf_t *cf, ngx_str_t *names, ngx_uint_t n,
    ngx_array_t **out)
{
    ngx_uint_t                  i;
    aigw_instance_t           **ip;
    ngx_http_ai_main_conf_t    *amcf;
    ngx_http_ai_plugin_decl_t  *d;

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ai_gateway_module);

    *out = ngx_array_create(cf->pool, n, sizeof(aigw_instance_t *));
    if (*out == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < n; i++) {
        d = ngx_http_ai_plugin_find(amcf, &names[i]);

        if (d == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown plugin \"%V\" (declare it with "
                               "ai_plugin first)", &names[i]);
            return NGX_CONF_ERROR;
        }

        ip = ngx_array_push(*out);
        if (ip == NULL) {
            return NGX_CONF_ERROR;
        }

        *ip = d->inst;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_ai_plugins_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_loc_conf_t  *alcf = conf;

    ngx_str_t  *value;

    if (alcf->plugins != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && value[1].len == 3
        && ngx_strncmp(value[1].data, "off", 3) == 0)
    {
        alcf->plugins = NULL;
        return NGX_CONF_OK;
    }

    return ngx_http_ai_plugin_list(cf, &value[1], cf->args->nelts - 1,
                                   &alcf->plugins);
}


/*
 * Runs the request hooks.  NGX_OK to go on (the body may have been
 * modified: ctx->body_modified), or an error was sent (ctx->responded).
 */

ngx_int_t
ngx_http_ai_plugins_request(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    json_t                    *root, *v;
    ngx_uint_t                 n;
    aigw_action_t              act;
    aigw_instance_t          **inst, **ip;
    ngx_pool_cleanup_t        *cln;
    ngx_http_ai_loc_conf_t    *alcf;
    ngx_http_ai_plugin_run_t  *pr;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_ai_gateway_module);

    n = (alcf->plugins ? alcf->plugins->nelts : 0)
        + (ctx->model && ctx->model->plugins ? ctx->model->plugins->nelts : 0);

    if (n == 0) {
        return NGX_OK;
    }

    pr = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_plugin_run_t));
    inst = ngx_palloc(r->pool, n * sizeof(aigw_instance_t *));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (pr == NULL || inst == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the location's first, then the model's */

    ip = inst;

    if (alcf->plugins) {
        ngx_memcpy(ip, alcf->plugins->elts,
                   alcf->plugins->nelts * sizeof(aigw_instance_t *));
        ip += alcf->plugins->nelts;
    }

    if (ctx->model && ctx->model->plugins) {
        ngx_memcpy(ip, ctx->model->plugins->elts,
                   ctx->model->plugins->nelts * sizeof(aigw_instance_t *));
    }

    pr->chain.inst = inst;
    pr->chain.n = n;
    pr->request = r;

    pr->req.tenant = ctx->tenant ? ai_tenant_name(ctx->tenant) : "";
    pr->req.model = (char *) ngx_pnalloc(r->pool, ctx->client_model.len + 1);
    if (pr->req.model == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_cpystrn((u_char *) pr->req.model, ctx->client_model.data,
                ctx->client_model.len + 1);

    switch (ctx->endpoint) {
    case NGX_HTTP_AI_EP_COMPLETIONS:
        pr->req.endpoint = "completions";
        break;
    case NGX_HTTP_AI_EP_EMBEDDINGS:
        pr->req.endpoint = "embeddings";
        break;
    default:
        pr->req.endpoint = "chat/completions";
    }

    pr->req.stream = ctx->stream;
    pr->req.add_header = ngx_http_ai_plugin_add_header;
    pr->req.host = r;

    pr->run = aigw_run_start(&pr->chain, &pr->req, &pr->verdict);

    cln->handler = ngx_http_ai_plugin_run_cleanup;
    cln->data = pr;
    ctx->plugins = pr;

    /*
     * A tree only if the request already has one (another input format)
     * or a plugin of the chain reads it: texts are found in the bytes.
     */

    if (pr->run == NULL) {
        act = AIGW_REJECT;

    } else if (ctx->request) {
        pr->req.body = ctx->request;
        act = aigw_run_request(pr->run, &pr->verdict);

    } else {
        act = aigw_run_request_bytes(pr->run,
                                     (char *) ctx->client_body.data,
                                     ctx->client_body.len, &pr->verdict);

        if (pr->req.body != NULL
            && ngx_http_ai_plugin_keep_tree(r, ctx, pr->req.body) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    root = pr->req.body;
    pr->req.body = NULL;

    if (act == AIGW_REJECT) {
        return ngx_http_ai_send_error(r, pr->verdict.status
                                         ? (ngx_uint_t) pr->verdict.status
                                         : NGX_HTTP_BAD_REQUEST,
                                      pr->verdict.type[0] ? pr->verdict.type
                                      : "invalid_request_error",
                                      pr->verdict.code[0] ? pr->verdict.code
                                      : NULL,
                                      pr->verdict.param[0]
                                      ? pr->verdict.param : NULL,
                                      "%s", pr->verdict.message);
    }

    if (act == AIGW_MODIFIED && root == NULL) {
        /* texts changed in the bytes: still the client's document */

        if (ngx_http_ai_plugin_spliced(r, ctx, pr) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (act == AIGW_MODIFIED) {
        /* rebuilt from the tree; what the limits estimate may change */

        ctx->body_modified = 1;
        ctx->stream = json_is_true(json_object_get(root, "stream"));

        v = json_object_get(root, "max_completion_tokens");
        if (!json_is_integer(v)) {
            v = json_object_get(root, "max_tokens");
        }

        if (json_is_integer(v)) {
            ctx->scan.max_tokens = json_integer_value(v);
        }
    }

    if (ngx_http_ai_plugin_wants_text(&pr->chain)) {
        ctx->plugins_text = 1;
        ctx->process = 1;
    }

    return NGX_OK;
}


/* the tree the host parsed becomes the request's: nobody parses twice */

static ngx_int_t
ngx_http_ai_plugin_keep_tree(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    json_t *root)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_ai_plugin_json_cleanup;
    cln->data = json_incref(root);
    ctx->request = root;

    return NGX_OK;
}


static void
ngx_http_ai_plugin_json_cleanup(void *data)
{
    json_decref(data);
}


/* the client's bytes with the plugins' texts spliced in become the body */

static ngx_int_t
ngx_http_ai_plugin_spliced(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ngx_http_ai_plugin_run_t *pr)
{
    size_t      len;
    u_char     *p;
    const char *body;

    if (aigw_run_request_output(pr->run, &body, &len) != 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, body, len);

    /*
     * Only prompt strings changed: what the scan found (model, stream,
     * max_tokens, ...) still holds, the model name moved; the prompt's
     * size, for the limits' estimate, moves by the difference.
     */

    if (ctx->scan.model != NULL) {
        ctx->scan.model = p + aigw_run_request_offset(pr->run,
                                  ctx->scan.model - ctx->client_body.data);
    }

    if (len >= ctx->client_body.len) {
        ctx->scan.text_bytes += len - ctx->client_body.len;

    } else {
        ctx->scan.text_bytes -= ngx_min(ctx->scan.text_bytes,
                                        ctx->client_body.len - len);
    }

    ctx->client_body.data = p;
    ctx->client_body.len = len;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_ai_plugin_wants_text(const aigw_chain_t *chain)
{
    size_t                 i;
    const aigw_plugin_t   *p;

    for (i = 0; i < chain->n; i++) {
        p = aigw_instance_plugin(chain->inst[i]);

        if (p->on_delta || p->on_delta_flush) {
            return 1;
        }
    }

    return 0;
}


static int
ngx_http_ai_plugin_add_header(aigw_request_t *req, const char *name,
    const char *value)
{
    ngx_http_request_t *r = req->host;

    u_char             *p;
    size_t              nlen, vlen, i;
    ngx_http_ai_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    nlen = ngx_strlen(name);
    vlen = ngx_strlen(value);

    if (nlen == 0 || nlen > 256 || vlen > 4096) {
        return -1;
    }

    for (i = 0; i < nlen; i++) {
        if (name[i] <= ' ' || name[i] == ':' || name[i] >= 0x7f) {
            return -1;
        }
    }

    for (i = 0; i < vlen; i++) {
        if (value[i] == '\r' || value[i] == '\n') {
            return -1;
        }
    }

    p = ngx_pnalloc(r->pool, ctx->extra_headers.len + nlen + vlen + 4);
    if (p == NULL) {
        return -1;
    }

    ngx_memcpy(p, ctx->extra_headers.data, ctx->extra_headers.len);
    ctx->extra_headers.data = p;
    p += ctx->extra_headers.len;
    p = ngx_sprintf(p, "%s: %s\r\n", name, value);
    ctx->extra_headers.len = p - ctx->extra_headers.data;

    return 0;
}


static void
ngx_http_ai_plugin_run_cleanup(void *data)
{
    ngx_http_ai_plugin_run_t *pr = data;

    ngx_http_request_t    *r;
    ngx_http_ai_ctx_t     *ctx;
    aigw_response_info_t   info;

    r = pr->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);

    if (pr->run) {
        /* ctx->usage is final: the translators' cleanup, registered
         * after this one, ran first and kept what the stream reported */
        ngx_memzero(&info, sizeof(aigw_response_info_t));

        info.req = &pr->req;
        info.status = (int) r->headers_out.status;
        info.streamed = ctx->stream;
        info.prompt_tokens = ctx->usage.seen ? ctx->usage.prompt_tokens : -1;
        info.completion_tokens = ctx->usage.seen
                                 ? ctx->usage.completion_tokens : -1;
        info.provider = ctx->target.provider
                        ? (char *) ctx->target.provider->name.data : "";

        aigw_run_response(pr->run, &info);
        aigw_run_end(pr->run);
        pr->run = NULL;
    }

    if (pr->sse_init) {
        ai_sse_free(&pr->sse);
        pr->sse_init = 0;
    }

    ai_buf_free(&pr->dec);
    ngx_memzero(&pr->dec, sizeof(ai_buf_t));
}


/*
 * A run of OpenAI SSE output: each content delta goes through the plugins;
 * a choice's held-back text is flushed into its finish chunk; a rejection
 * ends the stream with an error event.
 */

ngx_int_t
ngx_http_ai_plugins_stream(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    const char *p, size_t len, ai_buf_t *out)
{
    ngx_http_ai_plugin_run_t  *pr = ctx->plugins;

    if (pr == NULL || pr->run == NULL) {
        return ai_buf_append(out, p, len) == 0 ? NGX_OK : NGX_ERROR;
    }

    if (pr->stopped) {
        return NGX_OK;
    }

    if (!pr->sse_init) {
        ai_sse_init(&pr->sse, AI_SSE_MAX_EVENT);
        pr->sse_init = 1;
    }

    pr->out = out;

    if (ai_sse_feed(&pr->sse, p, len, ngx_http_ai_plugin_event, pr) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* -1: rejected; 0: unchanged; 1: *o, *olen replace the text */

static int
ngx_http_ai_plugin_run_text(ngx_http_ai_plugin_run_t *pr, unsigned idx,
    int flush, const char *text, size_t len, const char **o, size_t *olen)
{
    aigw_action_t  act;

    *o = NULL;
    *olen = 0;

    act = flush ? aigw_run_delta_flush(pr->run, idx, text, len, o, olen,
                                       &pr->verdict)
                : aigw_run_delta(pr->run, idx, text, len, o, olen,
                                 &pr->verdict);

    if (act == AIGW_REJECT) {
        return -1;
    }

    if (act == AIGW_PASS
        || (*olen == len && (len == 0 || ngx_memcmp(*o, text, len) == 0)))
    {
        /* nothing changed: the original bytes can go out as they are */
        return 0;
    }

    if (*o == NULL) {
        *o = "";
    }

    return 1;
}


static int
ngx_http_ai_plugin_text(ngx_http_ai_plugin_run_t *pr, unsigned idx,
    int flush, const char *text, size_t len, json_t *delta)
{
    int          rc;
    size_t       olen;
    const char  *o;

    rc = ngx_http_ai_plugin_run_text(pr, idx, flush, text, len, &o, &olen);

    if (rc == 1) {
        json_object_set_new(delta, "content", json_stringn(o, olen));
    }

    return rc;
}


/*
 * The choices of one OpenAI document without a tree: an answer (each
 * message.content, flushed) or a chunk (each delta.content; flushed at
 * finish_reason), written to out with the changed contents spliced into
 * the original bytes.  NGX_OK; NGX_DECLINED: a plugin rejected (out as it
 * was); NGX_AGAIN: not simple, the caller parses it; NGX_ERROR.
 */

static ngx_int_t
ngx_http_ai_plugin_choices(ngx_http_ai_plugin_run_t *pr, const char *p,
    size_t len, int answer, ai_buf_t *out)
{
    int                  rc, n, i, flush;
    size_t               at, start, tlen, olen;
    const char          *text, *o;
    aigw_choice_span_t   c[NGX_HTTP_AI_PLUGIN_CHOICES], *ch;

    n = aigw_json_choices(p, len, answer ? "message" : "delta", c,
                          NGX_HTTP_AI_PLUGIN_CHOICES);
    if (n < 0) {
        return NGX_AGAIN;
    }

    start = out->len;
    at = 0;

    for (i = 0; i < n; i++) {
        ch = &c[i];

        if (ch->obj == 0 || (!ch->content_string && (answer || !ch->finish)))
        {
            continue;
        }

        flush = answer || ch->finish;
        text = "";
        tlen = 0;

        if (ch->content_string) {
            text = p + ch->vstart + 1;
            tlen = ch->vend - ch->vstart - 2;

            if (ch->content_escaped) {
                pr->dec.len = 0;
                if (ai_buf_reserve(&pr->dec, tlen) != 0
                    || aigw_json_unescape(text, tlen, pr->dec.data, &tlen)
                       != 0)
                {
                    /* not JSON to jansson either: the tree's way */
                    out->len = start;
                    return NGX_AGAIN;
                }
                text = pr->dec.data;
            }
        }

        rc = ngx_http_ai_plugin_run_text(pr, (unsigned) ch->index, flush,
                                         text, tlen, &o, &olen);
        if (rc < 0) {
            out->len = start;
            return NGX_DECLINED;
        }

        if (rc == 0) {
            continue;
        }

        if (ch->vstart != ch->vend) {
            rc = ai_buf_append(out, p + at, ch->vstart - at) != 0
                 || ai_buf_append(out, "\"", 1) != 0
                 || ai_buf_append_jstr(out, o, olen) != 0
                 || ai_buf_append(out, "\"", 1) != 0;
            at = ch->vend;

        } else {
            rc = ai_buf_append(out, p + at, ch->obj - at) != 0
                 || ai_buf_append(out, "\"content\":\"", 11) != 0
                 || ai_buf_append_jstr(out, o, olen) != 0
                 || ai_buf_append(out, ch->obj_empty ? "\"" : "\",", 
                                  ch->obj_empty ? 1 : 2) != 0;
            at = ch->obj;
        }

        if (rc) {
            goto failed;
        }
    }

    if (ai_buf_append(out, p + at, len - at) != 0) {
        goto failed;
    }

    return NGX_OK;

failed:

    out->len = start;
    return NGX_ERROR;
}


static int
ngx_http_ai_plugin_reject(ngx_http_ai_plugin_run_t *pr, ai_buf_t *out,
    int stream)
{
    char    body[1024];
    size_t  n;

    pr->stopped = 1;

    n = aigw_verdict_error_body(&pr->verdict, body, sizeof(body));

    while (n && (body[n - 1] == '\n' || body[n - 1] == '\r')) {
        n--;
    }

    if (stream) {
        return (ai_buf_append(out, "data: ", 6) != 0
                || ai_buf_append(out, body, n) != 0
                || ai_buf_append(out, "\n\n", 2) != 0) ? -1 : 0;
    }

    return ai_buf_append(out, body, n);
}


static int
ngx_http_ai_plugin_event(void *data, const ai_sse_event_t *ev)
{
    ngx_http_ai_plugin_run_t *pr = data;

    int          rc, changed;
    char        *s;
    size_t       i;
    json_t      *root, *choices, *c, *delta, *content, *fin;
    unsigned     idx;

    if (pr->stopped) {
        return 0;
    }

    if (ev->data_len == 6 && ngx_strncmp(ev->data, "[DONE]", 6) == 0) {
        return ai_buf_append(pr->out, "data: [DONE]\n\n", 14);
    }

    if (ai_buf_append(pr->out, "data: ", 6) != 0) {
        return -1;
    }

    switch (ngx_http_ai_plugin_choices(pr, ev->data, ev->data_len, 0,
                                       pr->out))
    {
    case NGX_OK:
        return ai_buf_append(pr->out, "\n\n", 2);

    case NGX_DECLINED:
        pr->out->len -= 6;
        return ngx_http_ai_plugin_reject(pr, pr->out, 1);

    case NGX_AGAIN:
        pr->out->len -= 6;
        break;

    default:
        return -1;
    }

    root = json_loadb(ev->data, ev->data_len, 0, NULL);
    choices = json_object_get(root, "choices");

    if (!json_is_array(choices)) {
        json_decref(root);
        goto raw;
    }

    changed = 0;

    json_array_foreach(choices, i, c) {
        idx = (unsigned) json_integer_value(json_object_get(c, "index"));
        delta = json_object_get(c, "delta");
        fin = json_object_get(c, "finish_reason");

        if (!json_is_object(delta)) {
            continue;
        }

        content = json_object_get(delta, "content");

        if (json_is_string(content) || json_is_string(fin)) {
            rc = ngx_http_ai_plugin_text(pr, idx, json_is_string(fin),
                                      json_is_string(content)
                                      ? json_string_value(content) : "",
                                      json_is_string(content)
                                      ? json_string_length(content) : 0,
                                      delta);
            if (rc < 0) {
                json_decref(root);
                return ngx_http_ai_plugin_reject(pr, pr->out, 1);
            }

            changed |= rc;
        }
    }

    if (!changed) {
        json_decref(root);
        goto raw;
    }

    s = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    if (s == NULL) {
        return -1;
    }

    rc = (ai_buf_append(pr->out, "data: ", 6) != 0
          || ai_buf_append(pr->out, s, ngx_strlen(s)) != 0
          || ai_buf_append(pr->out, "\n\n", 2) != 0) ? -1 : 0;

    free(s);

    return rc;

raw:

    return (ai_buf_append(pr->out, "data: ", 6) != 0
            || ai_buf_append(pr->out, ev->data, ev->data_len) != 0
            || ai_buf_append(pr->out, "\n\n", 2) != 0) ? -1 : 0;
}


/*
 * A whole OpenAI answer: each choice's content through the plugins, once.
 * Returns NGX_OK (out holds the answer, maybe rewritten) or NGX_DECLINED
 * (a plugin refused it: out holds the error body, ctx->plugin_status the
 * status).
 */

ngx_int_t
ngx_http_ai_plugins_body(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx,
    ai_buf_t *out)
{
    ngx_http_ai_plugin_run_t  *pr = ctx->plugins;

    int        rc, changed;
    char      *s;
    size_t     i;
    json_t    *root, *choices, *c, *msg, *content;
    ai_buf_t   res;
    unsigned   idx;

    if (pr == NULL || pr->run == NULL || out->len == 0) {
        return NGX_OK;
    }

    ngx_memzero(&res, sizeof(ai_buf_t));

    if (ai_buf_reserve(&res, out->len + 64) != 0) {
        return NGX_ERROR;
    }

    switch (ngx_http_ai_plugin_choices(pr, out->data, out->len, 1, &res)) {
    case NGX_OK:
        ai_buf_free(out);
        *out = res;
        return NGX_OK;

    case NGX_DECLINED:
        ai_buf_free(&res);
        goto rejected;

    case NGX_AGAIN:
        ai_buf_free(&res);
        break;

    default:
        ai_buf_free(&res);
        return NGX_ERROR;
    }

    root = json_loadb(out->data, out->len, 0, NULL);
    choices = json_object_get(root, "choices");

    if (!json_is_array(choices)) {
        json_decref(root);
        return NGX_OK;
    }

    changed = 0;

    json_array_foreach(choices, i, c) {
        idx = (unsigned) json_integer_value(json_object_get(c, "index"));
        msg = json_object_get(c, "message");
        content = json_object_get(msg, "content");

        if (!json_is_string(content)) {
            continue;
        }

        rc = ngx_http_ai_plugin_text(pr, idx, 1, json_string_value(content),
                                     json_string_length(content), msg);
        changed |= (rc > 0);

        if (rc < 0) {
            json_decref(root);
            goto rejected;
        }
    }

    if (!changed) {
        json_decref(root);
        return NGX_OK;
    }

    s = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    if (s == NULL) {
        return NGX_ERROR;
    }

    ai_buf_free(out);
    ngx_memzero(out, sizeof(ai_buf_t));
    ai_buf_append(out, s, ngx_strlen(s));
    ai_buf_append(out, "\n", 1);
    free(s);

    return NGX_OK;

rejected:

    ai_buf_free(out);
    ngx_memzero(out, sizeof(ai_buf_t));
    ngx_http_ai_plugin_reject(pr, out, 0);
    ctx->plugin_status = pr->verdict.status ? pr->verdict.status
                                            : NGX_HTTP_BAD_REQUEST;
    return NGX_DECLINED;
}
