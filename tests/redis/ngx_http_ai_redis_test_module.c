/*
 * A test module that drives module/ngx_http_ai_redis.c from HTTP requests,
 * so that tests/redis/test_redis.py can exercise the client inside the
 * stock nginx:
 *
 *     location / { ai_redis_test redis://127.0.0.1:6379 timeout=300; }
 *
 *     GET /incr?key=k   MULTI, INCRBY k 1, PEXPIRE k 60000, EXEC
 *     GET /get?key=k    GET k
 *     GET /slow?sec=s   BLPOP on a key nobody pushes: holds the pipeline
 *     GET /status       is the store up (sends nothing)
 *
 * Answers {"value":...}; 503 with an OpenAI-style error when the store is
 * down, the command timed out or the connection was lost.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ai_redis.h"


typedef struct {
    ngx_str_t                   url;
    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  timeout;
    ngx_http_ai_redis_t        *rds;
} ngx_http_ai_redis_test_store_t;


typedef struct {
    ngx_array_t                 stores;   /* ngx_http_ai_redis_test_store_t */
} ngx_http_ai_redis_test_main_conf_t;


typedef struct {
    ngx_http_ai_redis_t        *rds;
} ngx_http_ai_redis_test_loc_conf_t;


#define NGX_HTTP_AI_REDIS_TEST_INCR  0
#define NGX_HTTP_AI_REDIS_TEST_GET   1
#define NGX_HTTP_AI_REDIS_TEST_SLOW  2


typedef struct {
    ngx_http_request_t         *request;
    ngx_http_ai_redis_cmd_t    *cmd;
    ngx_uint_t                  op;
} ngx_http_ai_redis_test_ctx_t;


static char *ngx_http_ai_redis_test(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_ai_redis_test_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_ai_redis_test_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ai_redis_test_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_ai_redis_test_init_process(ngx_cycle_t *cycle);
static void ngx_http_ai_redis_test_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_ai_redis_test_handler(ngx_http_request_t *r);
static void ngx_http_ai_redis_test_reply(ngx_http_ai_redis_cmd_t *cmd,
    redisReply *reply, void *data);
static void ngx_http_ai_redis_test_cleanup(void *data);
static ngx_int_t ngx_http_ai_redis_test_send(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
static ngx_int_t ngx_http_ai_redis_test_unavailable(ngx_http_request_t *r);


static ngx_command_t  ngx_http_ai_redis_test_commands[] = {

    { ngx_string("ai_redis_test"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_ai_redis_test,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ai_redis_test_module_ctx = {
    NULL,                                    /* preconfiguration */
    NULL,                                    /* postconfiguration */

    ngx_http_ai_redis_test_create_main_conf, /* create main configuration */
    NULL,                                    /* init main configuration */

    NULL,                                    /* create server configuration */
    NULL,                                    /* merge server configuration */

    ngx_http_ai_redis_test_create_loc_conf,  /* create location configuration */
    ngx_http_ai_redis_test_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_ai_redis_test_module = {
    NGX_MODULE_V1,
    &ngx_http_ai_redis_test_module_ctx,      /* module context */
    ngx_http_ai_redis_test_commands,         /* module directives */
    NGX_HTTP_MODULE,                         /* module type */
    NULL,                                    /* init master */
    NULL,                                    /* init module */
    ngx_http_ai_redis_test_init_process,     /* init process */
    NULL,                                    /* init thread */
    NULL,                                    /* exit thread */
    ngx_http_ai_redis_test_exit_process,     /* exit process */
    NULL,                                    /* exit master */
    NGX_MODULE_V1_PADDING
};


static char *
ngx_http_ai_redis_test(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ai_redis_test_loc_conf_t *rlcf = conf;

    char                                *err;
    ngx_str_t                           *value, s;
    ngx_int_t                            ms;
    ngx_uint_t                           i;
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_ai_redis_test_store_t      *st;
    ngx_http_ai_redis_test_main_conf_t  *rmcf;

    if (rlcf->rds != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_ai_redis_test_module);

    st = ngx_array_push(&rmcf->stores);
    if (st == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(st, sizeof(ngx_http_ai_redis_test_store_t));
    st->url = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;
            ms = ngx_parse_time(&s, 0);
            if (ms == NGX_ERROR || ms == 0) {
                goto invalid;
            }

            st->connect_timeout = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            ms = ngx_parse_time(&s, 0);
            if (ms == NGX_ERROR || ms == 0) {
                goto invalid;
            }

            st->timeout = ms;
            continue;
        }

        goto invalid;
    }

    st->rds = ngx_http_ai_redis_conf(cf, &st->url, st->connect_timeout,
                                     st->timeout, &err);
    if (st->rds == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "ai_redis_test: %s", err);
        return NGX_CONF_ERROR;
    }

    rlcf->rds = st->rds;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ai_redis_test_handler;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_redis_test: invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static void *
ngx_http_ai_redis_test_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ai_redis_test_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_redis_test_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&rmcf->stores, cf->pool, 2,
                       sizeof(ngx_http_ai_redis_test_store_t))
        != NGX_OK)
    {
        return NULL;
    }

    return rmcf;
}


static void *
ngx_http_ai_redis_test_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_ai_redis_test_loc_conf_t  *rlcf;

    rlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_redis_test_loc_conf_t));
    if (rlcf == NULL) {
        return NULL;
    }

    rlcf->rds = NGX_CONF_UNSET_PTR;

    return rlcf;
}


static char *
ngx_http_ai_redis_test_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_ai_redis_test_loc_conf_t *prev = parent;
    ngx_http_ai_redis_test_loc_conf_t *conf = child;

    ngx_conf_merge_ptr_value(conf->rds, prev->rds, NULL);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ai_redis_test_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                           i;
    ngx_http_ai_redis_test_store_t      *st;
    ngx_http_ai_redis_test_main_conf_t  *rmcf;

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_redis_test_module);
    if (rmcf == NULL) {
        return NGX_OK;
    }

    st = rmcf->stores.elts;

    for (i = 0; i < rmcf->stores.nelts; i++) {
        if (ngx_http_ai_redis_init_process(cycle, st[i].rds) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_ai_redis_test_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                           i;
    ngx_http_ai_redis_test_store_t      *st;
    ngx_http_ai_redis_test_main_conf_t  *rmcf;

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_redis_test_module);
    if (rmcf == NULL) {
        return;
    }

    st = rmcf->stores.elts;

    for (i = 0; i < rmcf->stores.nelts; i++) {
        ngx_http_ai_redis_exit_process(cycle, st[i].rds);
    }
}


static ngx_int_t
ngx_http_ai_redis_test_handler(ngx_http_request_t *r)
{
    u_char                             *p;
    ngx_int_t                           rc;
    ngx_str_t                           key, sec, name;
    ngx_pool_cleanup_t                 *cln;
    ngx_http_ai_redis_t                *rds;
    ngx_http_ai_redis_test_ctx_t       *ctx;
    ngx_http_ai_redis_argv_t            tx[2];
    ngx_http_ai_redis_test_loc_conf_t  *rlcf;

    const char  *incrby[] = { "INCRBY", NULL, "1" };
    size_t       incrbylen[] = { 6, 0, 1 };
    const char  *pexpire[] = { "PEXPIRE", NULL, "60000" };
    size_t       pexpirelen[] = { 7, 0, 5 };
    const char  *get[] = { "GET", NULL };
    size_t       getlen[] = { 3, 0 };
    const char  *blpop[] = { "BLPOP", "aigw:test:never", NULL };
    size_t       blpoplen[] = { 5, 15, 0 };

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_ai_redis_test_module);
    rds = rlcf->rds;

    p = r->uri.data + r->uri.len;
    while (p > r->uri.data && p[-1] != '/') {
        p--;
    }

    name.data = p;
    name.len = r->uri.data + r->uri.len - p;

    if (name.len == 6 && ngx_strncmp(name.data, "status", 6) == 0) {
        if (ngx_http_ai_redis_is_up(rds)) {
            return ngx_http_ai_redis_test_send(r, NGX_HTTP_OK,
                                               (u_char *) "{\"up\":true}",
                                               11);
        }

        return ngx_http_ai_redis_test_send(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           (u_char *) "{\"up\":false}", 12);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_redis_test_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    /* whatever frees the request frees its claim on the reply first */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_ai_redis_test_cleanup;
    cln->data = ctx;

    if (name.len == 4 && ngx_strncmp(name.data, "incr", 4) == 0) {
        if (ngx_http_arg(r, (u_char *) "key", 3, &key) != NGX_OK) {
            return NGX_HTTP_BAD_REQUEST;
        }

        incrby[1] = (const char *) key.data;
        incrbylen[1] = key.len;
        pexpire[1] = (const char *) key.data;
        pexpirelen[1] = key.len;

        tx[0].argc = 3;
        tx[0].argv = incrby;
        tx[0].argvlen = incrbylen;
        tx[1].argc = 3;
        tx[1].argv = pexpire;
        tx[1].argvlen = pexpirelen;

        ctx->op = NGX_HTTP_AI_REDIS_TEST_INCR;
        ctx->cmd = ngx_http_ai_redis_send_multi(rds,
                                                ngx_http_ai_redis_test_reply,
                                                ctx, 2, tx);

    } else if (name.len == 3 && ngx_strncmp(name.data, "get", 3) == 0) {
        if (ngx_http_arg(r, (u_char *) "key", 3, &key) != NGX_OK) {
            return NGX_HTTP_BAD_REQUEST;
        }

        get[1] = (const char *) key.data;
        getlen[1] = key.len;

        ctx->op = NGX_HTTP_AI_REDIS_TEST_GET;
        ctx->cmd = ngx_http_ai_redis_send(rds, ngx_http_ai_redis_test_reply,
                                          ctx, 2, get, getlen);

    } else if (name.len == 4 && ngx_strncmp(name.data, "slow", 4) == 0) {
        if (ngx_http_arg(r, (u_char *) "sec", 3, &sec) != NGX_OK) {
            ngx_str_set(&sec, "1");
        }

        blpop[2] = (const char *) sec.data;
        blpoplen[2] = sec.len;

        ctx->op = NGX_HTTP_AI_REDIS_TEST_SLOW;
        ctx->cmd = ngx_http_ai_redis_send(rds, ngx_http_ai_redis_test_reply,
                                          ctx, 3, blpop, blpoplen);

    } else {
        return NGX_HTTP_NOT_FOUND;
    }

    if (ctx->cmd == NULL) {
        return ngx_http_ai_redis_test_unavailable(r);
    }

    /* notice a client that goes away while the command is pending */

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;
    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_ai_redis_test_reply(ngx_http_ai_redis_cmd_t *cmd, redisReply *reply,
    void *data)
{
    ngx_http_ai_redis_test_ctx_t *ctx = data;

    u_char              *p, *body;
    size_t               len;
    ngx_int_t            rc;
    redisReply          *value;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ctx->cmd = NULL;    /* the token is no longer ours */

    if (reply == NULL) {
        rc = ngx_http_ai_redis_test_unavailable(r);
        goto done;
    }

    value = reply;

    if (ctx->op == NGX_HTTP_AI_REDIS_TEST_INCR
        && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2)
    {
        value = reply->element[0];
    }

    len = sizeof("{\"value\":\"\"}") - 1 + NGX_INT64_LEN;

    if (value->type == REDIS_REPLY_STRING
        || value->type == REDIS_REPLY_STATUS
        || value->type == REDIS_REPLY_ERROR)
    {
        len += value->len * 6;
    }

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    switch (value->type) {

    case REDIS_REPLY_INTEGER:
        p = ngx_sprintf(body, "{\"value\":%L}", value->integer);
        break;

    case REDIS_REPLY_NIL:
        p = ngx_sprintf(body, "{\"value\":null}");
        break;

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        p = ngx_sprintf(body, "{\"%s\":\"",
                        value->type == REDIS_REPLY_ERROR ? "error" : "value");
        p = (u_char *) ngx_escape_json(p, (u_char *) value->str, value->len);
        p = ngx_sprintf(p, "\"}");
        break;

    default:
        p = ngx_sprintf(body, "{\"value\":\"array of %uz\"}",
                        value->elements);
    }

    rc = ngx_http_ai_redis_test_send(r,
                                     value->type == REDIS_REPLY_ERROR
                                     ? NGX_HTTP_BAD_GATEWAY : NGX_HTTP_OK,
                                     body, p - body);

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_ai_redis_test_cleanup(void *data)
{
    ngx_http_ai_redis_test_ctx_t *ctx = data;

    if (ctx->cmd) {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "ai_redis_test: request gone, command cancelled");
        ngx_http_ai_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }
}


static ngx_int_t
ngx_http_ai_redis_test_unavailable(ngx_http_request_t *r)
{
    static u_char  body[] =
        "{\"error\":{\"message\":\"the Redis store is unavailable\","
        "\"type\":\"server_error\",\"param\":null,"
        "\"code\":\"store_unavailable\"}}";

    return ngx_http_ai_redis_test_send(r, NGX_HTTP_SERVICE_UNAVAILABLE, body,
                                       sizeof(body) - 1);
}


static ngx_int_t
ngx_http_ai_redis_test_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->pos, body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
