
/*
 * aigw: providers served by the in-process inference engine
 * (module/engine).
 *
 *   ai_provider local engine model=/path/model.gguf threads=2 max_batch=8;
 *
 * The model is loaded (and validated) while the configuration is read, in
 * the master: `nginx -t` reports a missing or corrupt file, and the forked
 * workers inherit the read-only mapping, so every worker shares one copy of
 * the weights in the page cache.  Each worker starts an engine of its own
 * (threads, KV caches) for each engine provider; the engine wakes the
 * worker's event loop through an eventfd registered as an NGINX connection
 * (ngx_notify has one global handler that the thread pools own).  On each
 * wake-up every active request of that engine is polled; a request whose
 * client is slow is not polled until its connection drains, and the engine
 * pauses its sequence once max_unread bytes are waiting (back-pressure).
 *
 * Answers have the OpenAI shapes (chat.completion, text_completion, their
 * SSE chunks), converted to Anthropic's on /v1/messages.
 */

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

#include "ngx_http_ai_gateway.h"
#include "ai_prom.h"
#include "aigw_engine.h"


#define NGX_HTTP_AI_ENGINE_TPL_TEXT     0
#define NGX_HTTP_AI_ENGINE_TPL_PLAIN    1
#define NGX_HTTP_AI_ENGINE_TPL_CHATML   2
#define NGX_HTTP_AI_ENGINE_TPL_LLAMA2   3

/* a safety net and a hold on graceful shutdown while requests run */
#define NGX_HTTP_AI_ENGINE_WATCHDOG     1000


typedef struct ngx_http_ai_engine_worker_s  ngx_http_ai_engine_worker_t;


typedef struct {
    ngx_http_ai_provider_t         *provider;
    ngx_str_t                       model_path;     /* NUL-terminated */
    ngx_str_t                       tokenizer_path; /* NUL-terminated */
    ngx_int_t                       threads;
    ngx_int_t                       max_batch;
    ngx_int_t                       n_ctx;          /* 0: the model's */
    ngx_int_t                       max_tokens;     /* 0: the context */
    size_t                          max_unread;     /* 0: the engine's */
    ngx_uint_t                      template;
    ngx_uint_t                      kv_f16;         /* kv=f16 */

    aie_model_t                    *model;          /* mapped read-only */
    aie_model_info_t                info;

    ngx_http_ai_engine_worker_t    *worker;         /* this process's */
} ngx_http_ai_engine_conf_t;


struct ngx_http_ai_engine_worker_s {
    ngx_http_ai_engine_conf_t      *conf;
    aie_engine_t                   *engine;
    ngx_connection_t               *notify;         /* the eventfd */
    ngx_queue_t                     requests;       /* active, polled */
    ngx_event_t                     watchdog;
};


typedef struct {
    ngx_http_request_t             *request;
    ngx_http_ai_ctx_t              *ctx;
    ngx_http_ai_engine_worker_t    *worker;
    aie_request_t                  *req;
    ngx_queue_t                     queue;

    ngx_str_t                       head;     /* every chunk's beginning */
    ai_buf_t                        text;     /* a whole answer */
    ai_buf_t                        sse;      /* output being built */
    ai_stream_t                    *stream_in;    /* to Anthropic */
    ngx_chain_t                    *free;
    ngx_chain_t                    *busy;

    ngx_int_t                       n_prompt;
    u_char                          id[48];
    time_t                          created;

    unsigned                        completions:1;
    unsigned                        stream:1;
    unsigned                        include_usage:1;
    unsigned                        queued:1;
    unsigned                        blocked:1;
    unsigned                        done:1;
} ngx_http_ai_engine_req_t;


typedef struct {
    int                            *tokens;
    size_t                          n;
    size_t                          cap;
} ngx_http_ai_engine_tokens_t;


static char *ngx_http_ai_engine_option(ngx_conf_t *cf,
    ngx_http_ai_engine_conf_t *ec, ngx_str_t *name, ngx_str_t *value,
    ngx_str_t *device, ngx_flag_t *fallback);
static ngx_int_t ngx_http_ai_engine_number(ngx_conf_t *cf,
    ngx_http_ai_engine_conf_t *ec, ngx_str_t *name, ngx_str_t *value,
    ngx_int_t min, ngx_int_t max, ngx_int_t *out);
static void ngx_http_ai_engine_model_cleanup(void *data);
static ngx_int_t ngx_http_ai_engine_worker_start(ngx_cycle_t *cycle,
    ngx_http_ai_engine_conf_t *ec);
static void ngx_http_ai_engine_notify_handler(ngx_event_t *rev);
static void ngx_http_ai_engine_watchdog_handler(ngx_event_t *ev);
static void ngx_http_ai_engine_poll_all(ngx_http_ai_engine_worker_t *w);

static ngx_int_t ngx_http_ai_engine_params(ngx_http_request_t *r,
    ngx_http_ai_engine_req_t *er, json_t *root, aie_request_params_t *rp);
static ngx_int_t ngx_http_ai_engine_prompt(ngx_http_request_t *r,
    ngx_http_ai_engine_req_t *er, json_t *root,
    ngx_http_ai_engine_tokens_t *tk, const char **stop);
static ngx_int_t ngx_http_ai_engine_chat_prompt(ngx_http_request_t *r,
    ngx_http_ai_engine_conf_t *ec, json_t *messages,
    ngx_http_ai_engine_tokens_t *tk);
static ngx_int_t ngx_http_ai_engine_content(ngx_http_request_t *r,
    json_t *content, size_t i, ai_buf_t *out);
static int ngx_http_ai_engine_tokenize(ngx_http_ai_engine_conf_t *ec,
    ngx_http_ai_engine_tokens_t *tk, const char *text, size_t len,
    int add_bos);
static int ngx_http_ai_engine_push_token(ngx_http_ai_engine_tokens_t *tk,
    int token);

static ngx_int_t ngx_http_ai_engine_stream_start(ngx_http_request_t *r,
    ngx_http_ai_engine_req_t *er);
static void ngx_http_ai_engine_pump(ngx_http_ai_engine_req_t *er);
static void ngx_http_ai_engine_finish(ngx_http_ai_engine_req_t *er,
    aie_finish_reason_t finish);
static ngx_int_t ngx_http_ai_engine_whole(ngx_http_ai_engine_req_t *er,
    aie_finish_reason_t finish);
static ngx_int_t ngx_http_ai_engine_send(ngx_http_ai_engine_req_t *er,
    ngx_uint_t last);
static ngx_int_t ngx_http_ai_engine_write(ngx_http_ai_engine_req_t *er,
    const char *p, size_t len, ngx_uint_t last);
static ngx_int_t ngx_http_ai_engine_block(ngx_http_ai_engine_req_t *er);
static void ngx_http_ai_engine_write_handler(ngx_http_request_t *r);
static void ngx_http_ai_engine_read_handler(ngx_http_request_t *r);
static void ngx_http_ai_engine_abort(ngx_http_ai_engine_req_t *er,
    ngx_int_t rc);
static void ngx_http_ai_engine_done(ngx_http_ai_engine_req_t *er);
static void ngx_http_ai_engine_cleanup(void *data);

static int ngx_http_ai_engine_chunk(ngx_http_ai_engine_req_t *er,
    const char *text, size_t len, const char *finish);
static int ngx_http_ai_engine_usage_chunk(ngx_http_ai_engine_req_t *er);
static int ngx_http_ai_engine_append_str(ai_buf_t *b, const char *s,
    size_t len);
static const char *ngx_http_ai_engine_finish_name(aie_finish_reason_t f);


static ngx_str_t  ngx_http_ai_engine_templates[] = {
    ngx_string("text"),
    ngx_string("plain"),
    ngx_string("chatml"),
    ngx_string("llama2"),
    ngx_null_string
};


/* configuration */

char *
ngx_http_ai_engine_provider(ngx_conf_t *cf, ngx_http_ai_provider_t *p,
    ngx_str_t *args, ngx_uint_t nargs)
{
    u_char                     *eq;
    char                       *rv;
    ngx_str_t                   name, value, device;
    ngx_uint_t                  i;
    ngx_flag_t                  fallback;
    ngx_pool_cleanup_t         *cln;
    ngx_http_ai_engine_conf_t  *ec;
    char                        err[512];

    ec = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_engine_conf_t));
    if (ec == NULL) {
        return NGX_CONF_ERROR;
    }

    ec->provider = p;
    ec->threads = 1;
    ec->max_batch = 8;
    ec->template = NGX_HTTP_AI_ENGINE_TPL_TEXT;

    ngx_str_set(&device, "cpu");
    fallback = 0;

    for (i = 0; i < nargs; i++) {

        eq = ngx_strlchr(args[i].data, args[i].data + args[i].len, '=');

        if (eq == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_provider \"%V\": invalid engine parameter "
                               "\"%V\", expected name=value", &p->name,
                               &args[i]);
            return NGX_CONF_ERROR;
        }

        name.data = args[i].data;
        name.len = eq - args[i].data;
        value.data = eq + 1;
        value.len = args[i].data + args[i].len - value.data;

        rv = ngx_http_ai_engine_option(cf, ec, &name, &value, &device,
                                       &fallback);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    if (ec->model_path.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": engine needs model=",
                           &p->name);
        return NGX_CONF_ERROR;
    }

    if (device.len != 3 || ngx_strncmp(device.data, "cpu", 3) != 0) {

        if (!(device.len == 4 && ngx_strncmp(device.data, "cuda", 4) == 0)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_provider \"%V\": invalid device \"%V\", "
                               "expected cpu or cuda", &p->name, &device);
            return NGX_CONF_ERROR;
        }

        if (!fallback) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_provider \"%V\": device=cuda: the CUDA "
                               "backend is not available in this build "
                               "(use device=cpu, or add fallback=cpu)",
                               &p->name);
            return NGX_CONF_ERROR;
        }

        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "ai_provider \"%V\": device=cuda: the CUDA "
                           "backend is not available in this build, "
                           "running on the CPU (fallback=cpu)", &p->name);
    }

    /*
     * Loaded here, in the master: a missing or corrupt file fails the
     * configuration with the loader's own message, and the workers inherit
     * the read-only mapping.  The handle lives as long as this cycle.
     */

    err[0] = '\0';

    ec->model = aie_model_load((char *) ec->model_path.data,
                               ec->tokenizer_path.len
                               ? (char *) ec->tokenizer_path.data : NULL,
                               err, sizeof(err));

    if (ec->model == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": cannot load model \"%V\": %s",
                           &p->name, &ec->model_path, err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        aie_model_free(ec->model);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_ai_engine_model_cleanup;
    cln->data = ec;

    aie_model_info(ec->model, &ec->info);

    if (!ec->info.has_tokenizer) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": model \"%V\" has no "
                           "tokenizer; name one with tokenizer=", &p->name,
                           &ec->model_path);
        return NGX_CONF_ERROR;
    }

    if (ec->n_ctx > ec->info.n_ctx) {
        /* some converted files understate it (stories260K says 128) */
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "ai_provider \"%V\": ctx=%i is beyond the "
                           "context length the model declares (%d)",
                           &p->name, ec->n_ctx, ec->info.n_ctx);
    }

    p->engine_conf = ec;

    return NGX_CONF_OK;
}


static char *
ngx_http_ai_engine_option(ngx_conf_t *cf, ngx_http_ai_engine_conf_t *ec,
    ngx_str_t *name, ngx_str_t *value, ngx_str_t *device,
    ngx_flag_t *fallback)
{
    u_char      *p;
    ssize_t      size;
    ngx_str_t   *path, *t;
    ngx_uint_t   i;

#define ngx_http_ai_engine_is(s)                                             \
    (name->len == sizeof(s) - 1 && ngx_strncmp(name->data, s, name->len) == 0)

    if (ngx_http_ai_engine_is("model") || ngx_http_ai_engine_is("tokenizer"))
    {
        path = ngx_http_ai_engine_is("model") ? &ec->model_path
                                              : &ec->tokenizer_path;

        if (value->len == 0) {
            goto invalid;
        }

        *path = *value;

        if (ngx_conf_full_name(cf->cycle, path, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        /* the loader wants a C string */
        p = ngx_pnalloc(cf->pool, path->len + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(p, path->data, path->len);
        p[path->len] = '\0';
        path->data = p;

        return NGX_CONF_OK;
    }

    if (ngx_http_ai_engine_is("threads")) {
        return ngx_http_ai_engine_number(cf, ec, name, value, 1, 256,
                                         &ec->threads) == NGX_OK
               ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

    if (ngx_http_ai_engine_is("max_batch")) {
        return ngx_http_ai_engine_number(cf, ec, name, value, 1, 1024,
                                         &ec->max_batch) == NGX_OK
               ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

    if (ngx_http_ai_engine_is("ctx")) {
        return ngx_http_ai_engine_number(cf, ec, name, value, 16, 1 << 20,
                                         &ec->n_ctx) == NGX_OK
               ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

    if (ngx_http_ai_engine_is("max_tokens")) {
        return ngx_http_ai_engine_number(cf, ec, name, value, 1, 1 << 20,
                                         &ec->max_tokens) == NGX_OK
               ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

    if (ngx_http_ai_engine_is("max_unread")) {
        size = ngx_parse_size(value);

        if (size == NGX_ERROR || size < 1024) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ai_provider \"%V\": invalid max_unread "
                               "\"%V\", expected a size of at least 1k",
                               &ec->provider->name, value);
            return NGX_CONF_ERROR;
        }

        ec->max_unread = (size_t) size;
        return NGX_CONF_OK;
    }

    if (ngx_http_ai_engine_is("kv")) {
        if (value->len == 3
            && (ngx_strncmp(value->data, "f16", 3) == 0
                || ngx_strncmp(value->data, "f32", 3) == 0))
        {
            ec->kv_f16 = value->data[1] == '1';
            return NGX_CONF_OK;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": invalid kv \"%V\", "
                           "expected f32 or f16",
                           &ec->provider->name, value);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ai_engine_is("template")) {
        t = ngx_http_ai_engine_templates;

        for (i = 0; t[i].len; i++) {
            if (t[i].len == value->len
                && ngx_strncmp(t[i].data, value->data, value->len) == 0)
            {
                ec->template = i;
                return NGX_CONF_OK;
            }
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": invalid template \"%V\", "
                           "expected text, plain, chatml or llama2",
                           &ec->provider->name, value);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ai_engine_is("device")) {
        *device = *value;
        return NGX_CONF_OK;
    }

    if (ngx_http_ai_engine_is("fallback")) {
        if (value->len != 3 || ngx_strncmp(value->data, "cpu", 3) != 0) {
            goto invalid;
        }

        *fallback = 1;
        return NGX_CONF_OK;
    }

#undef ngx_http_ai_engine_is

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_provider \"%V\": unknown engine parameter \"%V\" "
                       "(known: model, tokenizer, threads, max_batch, ctx, "
                       "max_tokens, max_unread, kv, template, device, "
                       "fallback)",
                       &ec->provider->name, name);
    return NGX_CONF_ERROR;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "ai_provider \"%V\": invalid %V \"%V\"",
                       &ec->provider->name, name, value);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_ai_engine_number(ngx_conf_t *cf, ngx_http_ai_engine_conf_t *ec,
    ngx_str_t *name, ngx_str_t *value, ngx_int_t min, ngx_int_t max,
    ngx_int_t *out)
{
    ngx_int_t  n;

    n = ngx_atoi(value->data, value->len);

    if (n == NGX_ERROR || n < min || n > max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ai_provider \"%V\": invalid %V \"%V\", expected "
                           "a number from %i to %i", &ec->provider->name,
                           name, value, min, max);
        return NGX_ERROR;
    }

    *out = n;

    return NGX_OK;
}


static void
ngx_http_ai_engine_model_cleanup(void *data)
{
    ngx_http_ai_engine_conf_t  *ec = data;

    if (ec->model) {
        aie_model_free(ec->model);
        ec->model = NULL;
    }
}


/* per worker: one engine per engine provider, woken through an eventfd */

ngx_int_t
ngx_http_ai_engine_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i;
    ngx_http_ai_provider_t    **pp;
    ngx_http_ai_main_conf_t    *amcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        /* the cache manager and loader serve no requests */
        return NGX_OK;
    }

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_gateway_module);
    if (amcf == NULL) {
        return NGX_OK;
    }

    pp = amcf->providers.elts;

    for (i = 0; i < amcf->providers.nelts; i++) {
        if (pp[i]->engine && pp[i]->engine_conf) {
            /* a failure leaves this provider answering 503 */
            (void) ngx_http_ai_engine_worker_start(cycle,
                                                   pp[i]->engine_conf);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_engine_worker_start(ngx_cycle_t *cycle,
    ngx_http_ai_engine_conf_t *ec)
{
    int                           fd;
    sigset_t                      set, old;
    ngx_event_t                  *rev;
    ngx_connection_t             *c;
    aie_engine_params_t           ep;
    ngx_http_ai_engine_worker_t  *w;
    char                          err[256];

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_ai_engine_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->conf = ec;
    ngx_queue_init(&w->requests);

    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                      "ai_provider \"%V\": eventfd() failed",
                      &ec->provider->name);
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        close(fd);
        return NGX_ERROR;
    }

    c->data = w;
    c->log = cycle->log;

    rev = c->read;
    rev->handler = ngx_http_ai_engine_notify_handler;
    rev->log = cycle->log;
    c->write->log = cycle->log;

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    w->notify = c;

    w->watchdog.handler = ngx_http_ai_engine_watchdog_handler;
    w->watchdog.data = w;
    w->watchdog.log = cycle->log;

    aie_engine_params_default(&ep);
    ep.n_threads = (int) ec->threads;
    ep.max_batch = (int) ec->max_batch;
    ep.n_ctx = (int) ec->n_ctx;
    ep.notify_fd = fd;
    ep.max_unread = ec->max_unread;
    ep.kv_f16 = (int) ec->kv_f16;

    /* the engine's threads take no signals: they are the worker's */

    sigfillset(&set);
    pthread_sigmask(SIG_SETMASK, &set, &old);

    err[0] = '\0';
    w->engine = aie_engine_start(ec->model, &ep, err, sizeof(err));

    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (w->engine == NULL) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "ai_provider \"%V\": the engine did not start: %s",
                      &ec->provider->name, err);
        ngx_close_connection(c);
        w->notify = NULL;
        return NGX_ERROR;
    }

    ec->worker = w;

    ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                  "ai_provider \"%V\": engine started (%s, %s, %d threads, "
                  "batch %d, ctx %d, kv %s)", &ec->provider->name,
                  ec->info.name, ec->info.weight_type, ep.n_threads,
                  ep.max_batch, ep.n_ctx ? ep.n_ctx : ec->info.n_ctx,
                  ep.kv_f16 ? "f16" : "f32");

    return NGX_OK;
}


void
ngx_http_ai_engine_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i;
    ngx_queue_t                  *q;
    ngx_http_ai_provider_t      **pp;
    ngx_http_ai_main_conf_t      *amcf;
    ngx_http_ai_engine_conf_t    *ec;
    ngx_http_ai_engine_worker_t  *w;
    ngx_http_ai_engine_req_t     *er;

    amcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ai_gateway_module);
    if (amcf == NULL) {
        return;
    }

    pp = amcf->providers.elts;

    for (i = 0; i < amcf->providers.nelts; i++) {
        if (!pp[i]->engine || pp[i]->engine_conf == NULL) {
            continue;
        }

        ec = pp[i]->engine_conf;
        w = ec->worker;

        if (w == NULL) {
            continue;
        }

        for (q = ngx_queue_head(&w->requests);
             q != ngx_queue_sentinel(&w->requests);
             q = ngx_queue_next(q))
        {
            er = ngx_queue_data(q, ngx_http_ai_engine_req_t, queue);
            aie_request_cancel(er->req);
        }

        /* joins the threads; handles stay valid until released */
        aie_engine_stop(w->engine);
        w->engine = NULL;

        if (w->watchdog.timer_set) {
            ngx_del_timer(&w->watchdog);
        }

        if (w->notify) {
            ngx_close_connection(w->notify);
            w->notify = NULL;
        }

        ec->worker = NULL;
    }
}


static void
ngx_http_ai_engine_notify_handler(ngx_event_t *rev)
{
    uint64_t                      n;
    ngx_connection_t             *c;
    ngx_http_ai_engine_worker_t  *w;

    c = rev->data;
    w = c->data;

    if (c->close) {
        /* worker shutdown: exit_process closes it */
        return;
    }

    while (read(c->fd, &n, sizeof(n)) == (ssize_t) sizeof(n)) {
        /* drained: one read resets the counter */
    }

    rev->ready = 0;

    ngx_http_ai_engine_poll_all(w);
}


static void
ngx_http_ai_engine_watchdog_handler(ngx_event_t *ev)
{
    ngx_http_ai_engine_worker_t  *w = ev->data;

    ngx_http_ai_engine_poll_all(w);

    if (!ngx_queue_empty(&w->requests) && !w->watchdog.timer_set) {
        ngx_add_timer(&w->watchdog, NGX_HTTP_AI_ENGINE_WATCHDOG);
    }
}


/*
 * Every active request is polled once.  A request may finish (and be
 * freed) while it is handled, so the list is first moved aside and each
 * request goes back to the list just before its turn.
 */

static void
ngx_http_ai_engine_poll_all(ngx_http_ai_engine_worker_t *w)
{
    ngx_queue_t                pending, *q;
    ngx_connection_t          *c;
    ngx_http_ai_engine_req_t  *er;

    if (ngx_queue_empty(&w->requests)) {
        return;
    }

    ngx_queue_init(&pending);
    ngx_queue_add(&pending, &w->requests);
    ngx_queue_init(&w->requests);

    while (!ngx_queue_empty(&pending)) {
        q = ngx_queue_head(&pending);
        ngx_queue_remove(q);
        ngx_queue_insert_tail(&w->requests, q);

        er = ngx_queue_data(q, ngx_http_ai_engine_req_t, queue);
        c = er->request->connection;

        ngx_http_ai_engine_pump(er);

        ngx_http_run_posted_requests(c);
    }
}


/* a request */

ngx_int_t
ngx_http_ai_engine_start(ngx_http_request_t *r, ngx_http_ai_ctx_t *ctx)
{
    json_t                       *root, *so;
    ngx_int_t                     rc;
    ngx_uint_t                    i;
    ngx_pool_cleanup_t           *cln;
    aie_request_params_t          rp;
    ngx_http_ai_engine_req_t     *er;
    ngx_http_ai_engine_conf_t    *ec;
    ngx_http_ai_engine_worker_t  *w;
    ngx_http_ai_engine_tokens_t   tk;
    const char                   *template_stop;

    ec = ctx->target.provider->engine_conf;
    w = ec ? ec->worker : NULL;

    if (w == NULL || w->engine == NULL) {
        ctx->status_reason = "engine_down";
        return ngx_http_ai_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "server_error", "engine_unavailable",
                                      NULL, "The in-process engine of "
                                      "provider \"%V\" is not running.",
                                      &ctx->target.provider->name);
    }

    if (ctx->endpoint != NGX_HTTP_AI_EP_CHAT
        && ctx->endpoint != NGX_HTTP_AI_EP_MESSAGES
        && ctx->endpoint != NGX_HTTP_AI_EP_COMPLETIONS)
    {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "unsupported_endpoint", "model",
                                      "The model '%V' is served by the "
                                      "in-process engine, which answers "
                                      "chat completions and completions "
                                      "only.", &ctx->client_model);
    }

    root = ngx_http_ai_request_json(r, ctx);
    if (root == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    er = ngx_pcalloc(r->pool, sizeof(ngx_http_ai_engine_req_t));
    if (er == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    er->request = r;
    er->ctx = ctx;
    er->worker = w;
    er->completions = (ctx->endpoint == NGX_HTTP_AI_EP_COMPLETIONS);
    er->stream = ctx->stream;
    er->created = ngx_time();

    so = json_object_get(root, "stream_options");
    er->include_usage = json_is_true(json_object_get(so, "include_usage"));

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_ai_engine_cleanup;
    cln->data = er;

    aie_request_params_default(&rp);

    rc = ngx_http_ai_engine_params(r, er, root, &rp);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_memzero(&tk, sizeof(ngx_http_ai_engine_tokens_t));
    template_stop = NULL;

    rc = ngx_http_ai_engine_prompt(r, er, root, &tk, &template_stop);
    if (rc != NGX_OK) {
        ngx_free(tk.tokens);
        return rc;
    }

    if (template_stop) {
        for (i = 0; i < AIE_MAX_STOP; i++) {
            if (rp.stop[i] == NULL) {
                rp.stop[i] = template_stop;
                break;
            }
        }
    }

    er->n_prompt = (ngx_int_t) tk.n;
    rp.prompt = NULL;
    rp.prompt_tokens = tk.tokens;
    rp.n_prompt_tokens = (int) tk.n;

    er->req = aie_engine_submit(w->engine, &rp);

    ngx_free(tk.tokens);

    if (er->req == NULL) {
        ctx->status_reason = "engine_busy";
        return ngx_http_ai_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "server_error", "engine_unavailable",
                                      NULL, "The in-process engine of "
                                      "provider \"%V\" cannot take the "
                                      "request.",
                                      &ctx->target.provider->name);
    }

    ngx_queue_insert_tail(&w->requests, &er->queue);
    er->queued = 1;

    if (!w->watchdog.timer_set) {
        ngx_add_timer(&w->watchdog, NGX_HTTP_AI_ENGINE_WATCHDOG);
    }

    /* a client that goes away cancels its sequence at once */
    r->read_event_handler = ngx_http_ai_engine_read_handler;
    r->write_event_handler = ngx_http_request_empty_handler;

    if (er->stream) {
        rc = ngx_http_ai_engine_stream_start(r, er);

        if (rc == NGX_ERROR || rc > NGX_OK) {
            ngx_http_ai_engine_done(er);
            return rc;
        }
    }

    /* output may be there already; the rest comes through the eventfd */
    ngx_http_ai_engine_pump(er);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_ai_engine_params(ngx_http_request_t *r, ngx_http_ai_engine_req_t *er,
    json_t *root, aie_request_params_t *rp)
{
    json_t                     *v, *s;
    size_t                      i, n;
    double                      d;
    ngx_http_ai_engine_conf_t  *ec;

    ec = er->worker->conf;

#define ngx_http_ai_engine_bad(param, fmt, ...)                              \
    ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST, "invalid_request_error", \
                           "invalid_value", param, fmt, __VA_ARGS__)

    /* what the engine cannot do is refused, never silently ignored */

    v = json_object_get(root, "tools");
    if (json_is_array(v) && json_array_size(v) > 0) {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "unsupported_parameter", "tools",
                                      "The in-process engine does not "
                                      "support tools.");
    }

    v = json_object_get(root, "functions");
    if (json_is_array(v) && json_array_size(v) > 0) {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "unsupported_parameter", "functions",
                                      "The in-process engine does not "
                                      "support functions.");
    }

    v = json_object_get(root, "n");
    if (v && !json_is_null(v)
        && (!json_is_integer(v) || json_integer_value(v) != 1))
    {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "unsupported_parameter", "n",
                                      "The in-process engine generates one "
                                      "choice per request (n must be 1).");
    }

    v = json_object_get(root, "best_of");
    if (v && !json_is_null(v)
        && (!json_is_integer(v) || json_integer_value(v) != 1))
    {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "unsupported_parameter", "best_of",
                                      "The in-process engine does not "
                                      "support best_of.");
    }

    v = json_object_get(root, "logprobs");
    if (json_is_true(v) || json_is_integer(v)) {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "unsupported_parameter", "logprobs",
                                      "The in-process engine does not "
                                      "return logprobs.");
    }

    if (json_is_true(json_object_get(root, "echo"))) {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "unsupported_parameter", "echo",
                                      "The in-process engine does not "
                                      "support echo.");
    }

    v = json_object_get(json_object_get(root, "response_format"), "type");
    if (json_is_string(v) && ngx_strcmp(json_string_value(v), "text") != 0) {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "unsupported_parameter",
                                      "response_format",
                                      "The in-process engine supports "
                                      "response_format \"text\" only.");
    }

    /* sampling: OpenAI's defaults (temperature 1, top_p 1) */

    rp->sampling.temperature = 1.0f;
    rp->sampling.top_p = 1.0f;
    rp->sampling.top_k = 0;
    rp->sampling.seed = ((uint64_t) ngx_random() << 32)
                        ^ (uint64_t) ngx_random()
                        ^ (uint64_t) ngx_current_msec;

    v = json_object_get(root, "temperature");
    if (v && !json_is_null(v)) {
        d = json_number_value(v);
        if (!json_is_number(v) || d < 0 || d > 2) {
            return ngx_http_ai_engine_bad("temperature", "%s",
                       "Invalid 'temperature': expected a number from 0 "
                       "to 2.");
        }
        rp->sampling.temperature = (float) d;
    }

    v = json_object_get(root, "top_p");
    if (v && !json_is_null(v)) {
        d = json_number_value(v);
        if (!json_is_number(v) || d <= 0 || d > 1) {
            return ngx_http_ai_engine_bad("top_p", "%s",
                       "Invalid 'top_p': expected a number above 0 and at "
                       "most 1.");
        }
        rp->sampling.top_p = (float) d;
    }

    v = json_object_get(root, "top_k");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            return ngx_http_ai_engine_bad("top_k", "%s",
                       "Invalid 'top_k': expected a non-negative integer.");
        }
        rp->sampling.top_k = (int) ngx_min(json_integer_value(v),
                                           ec->info.vocab_size);
    }

    v = json_object_get(root, "seed");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v)) {
            return ngx_http_ai_engine_bad("seed", "%s",
                       "Invalid 'seed': expected an integer.");
        }
        rp->sampling.seed = (uint64_t) json_integer_value(v);
    }

    v = json_object_get(root, "presence_penalty");
    if (v && !json_is_null(v)) {
        d = json_number_value(v);
        if (!json_is_number(v) || d < -2 || d > 2) {
            return ngx_http_ai_engine_bad("presence_penalty", "%s",
                       "Invalid 'presence_penalty': expected a number from "
                       "-2 to 2.");
        }
        rp->sampling.presence_penalty = (float) d;
    }

    v = json_object_get(root, "frequency_penalty");
    if (v && !json_is_null(v)) {
        d = json_number_value(v);
        if (!json_is_number(v) || d < -2 || d > 2) {
            return ngx_http_ai_engine_bad("frequency_penalty", "%s",
                       "Invalid 'frequency_penalty': expected a number "
                       "from -2 to 2.");
        }
        rp->sampling.frequency_penalty = (float) d;
    }

    /* max_completion_tokens is the newer name; either may be sent */

    rp->max_tokens = (int) ec->max_tokens;

    v = json_object_get(root, "max_completion_tokens");
    if (v == NULL || json_is_null(v)) {
        v = json_object_get(root, "max_tokens");
    }

    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            return ngx_http_ai_engine_bad("max_tokens", "%s",
                       "Invalid 'max_tokens': expected a positive integer.");
        }
        rp->max_tokens = (int) ngx_min(json_integer_value(v), 1 << 30);
    }

    /* stop: a string or up to four strings; one slot left for templates */

    v = json_object_get(root, "stop");

    if (json_is_string(v)) {
        if (json_string_length(v)) {
            rp->stop[0] = json_string_value(v);
        }

    } else if (json_is_array(v)) {
        n = 0;

        json_array_foreach(v, i, s) {
            if (!json_is_string(s) || n >= 4) {
                return ngx_http_ai_engine_bad("stop", "%s",
                           "Invalid 'stop': expected a string or an array "
                           "of up to 4 strings.");
            }

            if (json_string_length(s)) {
                rp->stop[n++] = json_string_value(s);
            }
        }

    } else if (v && !json_is_null(v)) {
        return ngx_http_ai_engine_bad("stop", "%s",
                   "Invalid 'stop': expected a string or an array of up to "
                   "4 strings.");
    }

#undef ngx_http_ai_engine_bad

    rp->max_unread = ec->max_unread;

    return NGX_OK;
}


/*
 * The prompt as tokens, counted here so that an over-long prompt is a 400
 * before anything is sent, like OpenAI's context_length_exceeded.
 */

static ngx_int_t
ngx_http_ai_engine_prompt(ngx_http_request_t *r, ngx_http_ai_engine_req_t *er,
    json_t *root, ngx_http_ai_engine_tokens_t *tk, const char **stop)
{
    int                         n_ctx;
    json_t                     *prompt, *v;
    size_t                      i;
    ngx_int_t                   rc;
    const char                 *param;
    ngx_http_ai_engine_conf_t  *ec;

    ec = er->worker->conf;

    if (!er->completions) {
        param = "messages";

        rc = ngx_http_ai_engine_chat_prompt(r, ec,
                                            json_object_get(root, "messages"),
                                            tk);
        if (rc != NGX_OK) {
            return rc;
        }

        if (ec->template == NGX_HTTP_AI_ENGINE_TPL_TEXT) {
            *stop = "\nUser:";

        } else if (ec->template == NGX_HTTP_AI_ENGINE_TPL_CHATML) {
            *stop = "<|im_end|>";
        }

        goto counted;
    }

    /* /v1/completions: the prompt as is (text, [text] or token ids) */

    param = "prompt";
    prompt = json_object_get(root, "prompt");

    if (json_is_array(prompt) && json_array_size(prompt) == 1
        && json_is_string(json_array_get(prompt, 0)))
    {
        prompt = json_array_get(prompt, 0);
    }

    if (prompt == NULL || json_is_null(prompt)) {
        rc = ngx_http_ai_engine_tokenize(ec, tk, "", 0, 1);

    } else if (json_is_string(prompt)) {
        rc = ngx_http_ai_engine_tokenize(ec, tk, json_string_value(prompt),
                                         json_string_length(prompt), 1);

    } else if (json_is_array(prompt) && json_array_size(prompt) > 0
               && json_is_integer(json_array_get(prompt, 0)))
    {
        rc = 0;

        json_array_foreach(prompt, i, v) {
            if (!json_is_integer(v) || json_integer_value(v) < 0
                || json_integer_value(v) >= ec->info.vocab_size)
            {
                return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                              "invalid_request_error",
                                              "invalid_value", "prompt",
                                              "Invalid 'prompt': token ids "
                                              "must be integers from 0 to "
                                              "%d.", ec->info.vocab_size - 1);
            }

            if (ngx_http_ai_engine_push_token(tk, (int) json_integer_value(v))
                != 0)
            {
                rc = -1;
                break;
            }
        }

    } else {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "unsupported_parameter", "prompt",
                                      "The in-process engine takes one "
                                      "prompt per request: a string or an "
                                      "array of token ids.");
    }

    if (rc != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

counted:

    n_ctx = ec->n_ctx ? (int) ec->n_ctx : ec->info.n_ctx;

    if (tk->n >= (size_t) n_ctx) {
        return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_request_error",
                                      "context_length_exceeded", param,
                                      "This model's maximum context length "
                                      "is %d tokens. However, your %s "
                                      "resulted in %uz tokens.", n_ctx,
                                      param, tk->n);
    }

    return NGX_OK;
}


/*
 * Chat templates (template=):
 *   text    "System: ..\n\nUser: ..\n\nAssistant: ..\n\n" .. "Assistant:"
 *           (stops at "\nUser:"), for plain llama models;
 *   plain   the contents, one per line;
 *   chatml  "<|im_start|>role\n..<|im_end|>\n" .. "<|im_start|>assistant\n";
 *   llama2  "<s>[INST] <<SYS>>\n..\n<</SYS>>\n\n.. [/INST] ..</s>" with
 *           real BOS/EOS tokens between turns.
 */

static ngx_int_t
ngx_http_ai_engine_chat_prompt(ngx_http_request_t *r,
    ngx_http_ai_engine_conf_t *ec, json_t *messages,
    ngx_http_ai_engine_tokens_t *tk)
{
    int          rc;
    json_t      *m;
    size_t       i;
    ngx_int_t    nrc;
    ngx_uint_t   tpl;
    ai_buf_t     b, content, system;
    const char  *role;

    tpl = ec->template;

    ngx_memzero(&b, sizeof(ai_buf_t));
    ngx_memzero(&content, sizeof(ai_buf_t));
    ngx_memzero(&system, sizeof(ai_buf_t));

    nrc = NGX_OK;
    rc = 0;

    json_array_foreach(messages, i, m) {
        role = json_string_value(json_object_get(m, "role"));

        if (role == NULL) {
            role = "user";
        }

        if (ngx_strcmp(role, "developer") == 0) {
            role = "system";
        }

        if (ngx_strcmp(role, "system") != 0
            && ngx_strcmp(role, "user") != 0
            && ngx_strcmp(role, "assistant") != 0)
        {
            nrc = ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request_error",
                                         "unsupported_parameter", "messages",
                                         "Invalid 'messages[%uz].role': the "
                                         "in-process engine does not "
                                         "support the role '%s'.", i, role);
            goto done;
        }

        if (json_object_get(m, "tool_calls") != NULL
            && json_array_size(json_object_get(m, "tool_calls")) > 0)
        {
            nrc = ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request_error",
                                         "unsupported_parameter", "messages",
                                         "Invalid 'messages[%uz]': the "
                                         "in-process engine does not "
                                         "support tool calls.", i);
            goto done;
        }

        content.len = 0;

        nrc = ngx_http_ai_engine_content(r, json_object_get(m, "content"), i,
                                         &content);
        if (nrc != NGX_OK) {
            goto done;
        }

        switch (tpl) {

        case NGX_HTTP_AI_ENGINE_TPL_PLAIN:
            if (content.len) {
                if (b.len) {
                    rc |= ai_buf_append(&b, "\n", 1);
                }

                rc |= ai_buf_append(&b, content.data, content.len);
            }

            break;

        case NGX_HTTP_AI_ENGINE_TPL_CHATML:
            rc |= ai_buf_append_str(&b, "<|im_start|>");
            rc |= ai_buf_append_str(&b, role);
            rc |= ai_buf_append(&b, "\n", 1);
            rc |= ai_buf_append(&b, content.data ? content.data : "",
                                content.len);
            rc |= ai_buf_append_str(&b, "<|im_end|>\n");
            break;

        case NGX_HTTP_AI_ENGINE_TPL_LLAMA2:
            if (role[0] == 's') {
                rc |= ai_buf_append(&system, content.data ? content.data : "",
                                    content.len);
                break;
            }

            if (role[0] == 'a') {
                rc |= ngx_http_ai_engine_tokenize(ec, tk,
                                                  content.data ? content.data
                                                               : "",
                                                  content.len, 0);
                rc |= ngx_http_ai_engine_push_token(tk, ec->info.eos_id);
                break;
            }

            b.len = 0;
            rc |= ai_buf_append_str(&b, "[INST] ");

            if (system.len) {
                rc |= ai_buf_append_str(&b, "<<SYS>>\n");
                rc |= ai_buf_append(&b, system.data, system.len);
                rc |= ai_buf_append_str(&b, "\n<</SYS>>\n\n");
                system.len = 0;
            }

            rc |= ai_buf_append(&b, content.data ? content.data : "",
                                content.len);
            rc |= ai_buf_append_str(&b, " [/INST]");
            rc |= ngx_http_ai_engine_tokenize(ec, tk, b.data, b.len, 1);
            break;

        default: /* text */
            rc |= ai_buf_append_str(&b, role[0] == 's' ? "System: "
                                        : role[0] == 'u' ? "User: "
                                                         : "Assistant: ");
            rc |= ai_buf_append(&b, content.data ? content.data : "",
                                content.len);
            rc |= ai_buf_append(&b, "\n\n", 2);
        }
    }

    switch (tpl) {

    case NGX_HTTP_AI_ENGINE_TPL_LLAMA2:
        if (tk->n == 0) {
            /* only a system message, or none */
            b.len = 0;
            rc |= ai_buf_append_str(&b, "[INST] ");
            if (system.len) {
                rc |= ai_buf_append_str(&b, "<<SYS>>\n");
                rc |= ai_buf_append(&b, system.data, system.len);
                rc |= ai_buf_append_str(&b, "\n<</SYS>>\n\n");
            }
            rc |= ai_buf_append_str(&b, " [/INST]");
            rc |= ngx_http_ai_engine_tokenize(ec, tk, b.data, b.len, 1);
        }

        break;

    case NGX_HTTP_AI_ENGINE_TPL_CHATML:
        rc |= ai_buf_append_str(&b, "<|im_start|>assistant\n");
        rc |= ngx_http_ai_engine_tokenize(ec, tk, b.data, b.len, 1);
        break;

    case NGX_HTTP_AI_ENGINE_TPL_PLAIN:
        rc |= ngx_http_ai_engine_tokenize(ec, tk, b.data ? b.data : "", b.len,
                                          1);
        break;

    default:
        rc |= ai_buf_append_str(&b, "Assistant:");
        rc |= ngx_http_ai_engine_tokenize(ec, tk, b.data, b.len, 1);
    }

    if (rc != 0) {
        nrc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

done:

    ai_buf_free(&b);
    ai_buf_free(&content);
    ai_buf_free(&system);

    return nrc;
}


/* a message's content: a string, or text parts */

static ngx_int_t
ngx_http_ai_engine_content(ngx_http_request_t *r, json_t *content, size_t i,
    ai_buf_t *out)
{
    json_t      *part, *text;
    size_t       j;
    const char  *type;

    if (content == NULL || json_is_null(content)) {
        return NGX_OK;
    }

    if (json_is_string(content)) {
        return ai_buf_append(out, json_string_value(content),
                             json_string_length(content)) == 0
               ? NGX_OK : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_is_array(content)) {
        json_array_foreach(content, j, part) {
            type = json_string_value(json_object_get(part, "type"));
            text = json_object_get(part, "text");

            if (type == NULL || ngx_strcmp(type, "text") != 0
                || !json_is_string(text))
            {
                return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                              "invalid_request_error",
                                              "unsupported_parameter",
                                              "messages",
                                              "Invalid 'messages[%uz]."
                                              "content[%uz]': the in-process "
                                              "engine takes text parts "
                                              "only.", i, j);
            }

            if (ai_buf_append(out, json_string_value(text),
                              json_string_length(text))
                != 0)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        return NGX_OK;
    }

    return ngx_http_ai_send_error(r, NGX_HTTP_BAD_REQUEST,
                                  "invalid_request_error", "invalid_type",
                                  "messages", "Invalid 'messages[%uz]."
                                  "content': expected a string or an array "
                                  "of text parts.", i);
}


static int
ngx_http_ai_engine_tokenize(ngx_http_ai_engine_conf_t *ec,
    ngx_http_ai_engine_tokens_t *tk, const char *text, size_t len,
    int add_bos)
{
    int     n, *p;
    size_t  need;

    /* each byte is at most one token, plus BOS and the prefix space */
    need = tk->n + len + 4;

    for ( ;; ) {
        if (need > tk->cap) {
            p = realloc(tk->tokens, need * sizeof(int));
            if (p == NULL) {
                return -1;
            }

            tk->tokens = p;
            tk->cap = need;
        }

        n = aie_tokenize(ec->model, text, len, add_bos, tk->tokens + tk->n,
                         (int) (tk->cap - tk->n));
        if (n < 0) {
            return -1;
        }

        if ((size_t) n <= tk->cap - tk->n) {
            tk->n += n;
            return 0;
        }

        need = tk->n + n;
    }
}


static int
ngx_http_ai_engine_push_token(ngx_http_ai_engine_tokens_t *tk, int token)
{
    int  *p;

    if (token < 0) {
        return 0;
    }

    if (tk->n == tk->cap) {
        p = realloc(tk->tokens, (tk->cap * 2 + 16) * sizeof(int));
        if (p == NULL) {
            return -1;
        }

        tk->tokens = p;
        tk->cap = tk->cap * 2 + 16;
    }

    tk->tokens[tk->n++] = token;

    return 0;
}


/* streaming: the headers at once, then chunks as the engine makes them */

static ngx_int_t
ngx_http_ai_engine_stream_start(ngx_http_request_t *r,
    ngx_http_ai_engine_req_t *er)
{
    u_char             *p;
    size_t              len;
    ngx_int_t           rc;
    static ngx_str_t    no_cache = ngx_string("no-cache");
    ngx_http_ai_ctx_t  *ctx;

    ctx = er->ctx;

    p = ngx_sprintf(er->id, "%s%08xD%08xD%08xD",
                    er->completions ? "cmpl-" : "chatcmpl-",
                    (uint32_t) ngx_random(), (uint32_t) ngx_random(),
                    (uint32_t) ngx_random());
    *p = '\0';

    len = sizeof("{\"id\":\"\",\"object\":\"chat.completion.chunk\","
                 "\"created\":,\"model\":\"\",\"choices\":[") - 1
          + ngx_strlen(er->id) + NGX_TIME_T_LEN
          + ai_json_escape_len(ctx->client_model.data, ctx->client_model.len);

    er->head.data = ngx_pnalloc(r->pool, len);
    if (er->head.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(er->head.data, "{\"id\":\"%s\",\"object\":\"%s\","
                    "\"created\":%T,\"model\":\"", er->id,
                    er->completions ? "text_completion"
                                    : "chat.completion.chunk",
                    er->created);
    p = ai_json_escape(p, ctx->client_model.data, ctx->client_model.len);
    p = ngx_cpymem(p, "\",\"choices\":[", sizeof("\",\"choices\":[") - 1);
    er->head.len = p - er->head.data;

    if (ctx->in_format == AI_FORMAT_ANTHROPIC) {
        ctx->opts.endpoint = AI_EP_CHAT;
        ctx->opts.model = (const char *) ctx->target.model.data;
        ctx->opts.model_len = ctx->target.model.len;
        ctx->opts.client_model = (const char *) ctx->client_model.data;
        ctx->opts.client_model_len = ctx->client_model.len;
        ctx->opts.stream = 1;
        ctx->opts.include_usage = 1;
        ctx->opts.created = (long) er->created;

        er->stream_in = ai_anthropic_in_stream_new(&ctx->opts);
        if (er->stream_in == NULL) {
            return NGX_ERROR;
        }
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_ai_header_out(r, "Cache-Control", &no_cache) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->responded = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    /* the role first, like OpenAI */

    if (!er->completions) {
        er->sse.len = 0;

        if (ai_buf_append(&er->sse, "data: ", 6) != 0
            || ai_buf_append(&er->sse, (char *) er->head.data, er->head.len)
               != 0
            || ai_buf_append_str(&er->sse, "{\"index\":0,\"delta\":{\"role\":"
                                 "\"assistant\",\"content\":\"\"},"
                                 "\"logprobs\":null,\"finish_reason\":null}"
                                 "]}\n\n") != 0)
        {
            return NGX_ERROR;
        }

        rc = ngx_http_ai_engine_send(er, 0);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* what the engine has for this request, as long as the client keeps up */

static void
ngx_http_ai_engine_pump(ngx_http_ai_engine_req_t *er)
{
    int                   rc;
    ngx_int_t             src;
    aie_delta_t           d;
    ngx_http_request_t   *r;
    aie_finish_reason_t   finish;

    r = er->request;

    if (er->done || er->blocked) {
        return;
    }

    if (r->connection->error) {
        ngx_http_ai_engine_abort(er, NGX_ERROR);
        return;
    }

    er->sse.len = 0;
    finish = AIE_FINISH_NONE;
    rc = 0;

    while (aie_request_poll(er->req, &d) == 1) {

        if (d.text_len) {
            if (er->stream) {
                rc |= ngx_http_ai_engine_chunk(er, d.text, d.text_len, NULL);

            } else {
                rc |= ai_buf_append(&er->text, d.text, d.text_len);
            }
        }

        if (d.finish != AIE_FINISH_NONE) {
            finish = d.finish;
            break;
        }
    }

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai: engine answer: out of memory");
        ngx_http_ai_engine_abort(er, er->stream
                                     ? NGX_ERROR
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (finish != AIE_FINISH_NONE) {
        ngx_http_ai_engine_finish(er, finish);
        return;
    }

    if (er->stream && er->sse.len) {
        src = ngx_http_ai_engine_send(er, 0);

        if (src == NGX_ERROR) {
            ngx_http_ai_engine_abort(er, NGX_ERROR);
        }
    }
}


static void
ngx_http_ai_engine_finish(ngx_http_ai_engine_req_t *er,
    aie_finish_reason_t finish)
{
    int                  rc;
    u_char              *p;
    ngx_int_t            src;
    aie_usage_t          usage;
    ngx_http_ai_ctx_t   *ctx;
    ngx_http_request_t  *r;
    u_char               err[512];

    r = er->request;
    ctx = er->ctx;

    aie_request_usage(er->req, &usage);

    ctx->usage.prompt_tokens = usage.prompt_tokens;
    ctx->usage.completion_tokens = usage.completion_tokens;
    ctx->usage.seen = 1;

    ngx_http_ai_engine_done(er);

    if (!er->stream) {
        src = ngx_http_ai_engine_whole(er, finish);
        ngx_http_finalize_request(r, src);
        return;
    }

    rc = 0;

    if (finish == AIE_FINISH_STOP || finish == AIE_FINISH_LENGTH) {
        rc |= ngx_http_ai_engine_chunk(er, NULL, 0,
                                       ngx_http_ai_engine_finish_name(finish));

        if (er->include_usage || er->stream_in) {
            rc |= ngx_http_ai_engine_usage_chunk(er);
        }

    } else {
        /* the stream cannot be taken back: it ends with an error event */

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai: provider \"%V\": the engine failed: %s",
                      &ctx->target.provider->name,
                      finish == AIE_FINISH_ERROR ? aie_request_error(er->req)
                                                 : "cancelled");

        p = ngx_snprintf(err, sizeof(err) - 1,
                         "data: {\"error\":{\"message\":\"The in-process "
                         "engine could not finish the answer.\",\"type\":"
                         "\"server_error\",\"param\":null,\"code\":"
                         "\"engine_error\"}}\n\n");
        rc |= ai_buf_append(&er->sse, (char *) err, p - err);
    }

    rc |= ai_buf_append_str(&er->sse, "data: [DONE]\n\n");

    if (rc != 0) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    src = ngx_http_ai_engine_send(er, 1);

    if (src == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    /* what is still buffered is NGINX's to send (ngx_http_writer) */
    ngx_http_finalize_request(r, NGX_OK);
}


/* a whole answer: chat.completion or text_completion, with usage */

static ngx_int_t
ngx_http_ai_engine_whole(ngx_http_ai_engine_req_t *er,
    aie_finish_reason_t finish)
{
    int                  rc;
    u_char              *p;
    ngx_str_t            body;
    ngx_uint_t           status;
    ai_buf_t             out, in;
    ngx_http_ai_ctx_t   *ctx;
    ngx_http_request_t  *r;
    u_char               head[512];

    r = er->request;
    ctx = er->ctx;

    if (finish != AIE_FINISH_STOP && finish != AIE_FINISH_LENGTH) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai: provider \"%V\": the engine failed: %s",
                      &ctx->target.provider->name,
                      finish == AIE_FINISH_ERROR ? aie_request_error(er->req)
                                                 : "cancelled");
        ctx->status_reason = "engine_error";

        return ngx_http_ai_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "server_error", "engine_error", NULL,
                                      "The in-process engine could not "
                                      "finish the answer.");
    }

    p = ngx_sprintf(head, "{\"id\":\"%s%08xD%08xD%08xD\",\"object\":\"%s\","
                    "\"created\":%T,\"model\":\"",
                    er->completions ? "cmpl-" : "chatcmpl-",
                    (uint32_t) ngx_random(), (uint32_t) ngx_random(),
                    (uint32_t) ngx_random(),
                    er->completions ? "text_completion" : "chat.completion",
                    er->created);

    p--;    /* the model is appended with its quotes */

    ngx_memzero(&out, sizeof(ai_buf_t));
    ngx_memzero(&in, sizeof(ai_buf_t));

    rc = ai_buf_append(&out, (char *) head, p - head);
    rc |= ngx_http_ai_engine_append_str(&out,
                                        (char *) ctx->client_model.data,
                                        ctx->client_model.len);

    if (er->completions) {
        rc |= ai_buf_append_str(&out, ",\"choices\":[{\"index\":0,"
                                "\"text\":");
        rc |= ngx_http_ai_engine_append_str(&out,
                                            er->text.data ? er->text.data
                                                          : "",
                                            er->text.len);

    } else {
        rc |= ai_buf_append_str(&out, ",\"choices\":[{\"index\":0,"
                                "\"message\":{\"role\":\"assistant\","
                                "\"content\":");
        rc |= ngx_http_ai_engine_append_str(&out,
                                            er->text.data ? er->text.data
                                                          : "",
                                            er->text.len);
        rc |= ai_buf_append_str(&out, ",\"refusal\":null}");
    }

    p = ngx_sprintf(head, ",\"logprobs\":null,\"finish_reason\":\"%s\"}],"
                    "\"usage\":{\"prompt_tokens\":%l,\"completion_tokens\":"
                    "%l,\"total_tokens\":%l}}",
                    ngx_http_ai_engine_finish_name(finish),
                    ctx->usage.prompt_tokens, ctx->usage.completion_tokens,
                    ctx->usage.prompt_tokens + ctx->usage.completion_tokens);

    rc |= ai_buf_append(&out, (char *) head, p - head);

    if (rc != 0) {
        ai_buf_free(&out);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = NGX_HTTP_OK;

    if (ctx->plugins_text
        && ngx_http_ai_plugins_body(r, ctx, &out) == NGX_DECLINED)
    {
        status = ctx->plugin_status;
    }

    if (ctx->cache_store) {
        /* the cache keeps OpenAI shapes; it decides what it stores */
        ngx_http_ai_cache_store(r, ctx, status == NGX_HTTP_OK ? out.data
                                                              : NULL,
                                status == NGX_HTTP_OK ? out.len : 0);
    }

    if (ctx->in_format == AI_FORMAT_ANTHROPIC) {
        ctx->opts.endpoint = AI_EP_CHAT;
        ctx->opts.model = (const char *) ctx->target.model.data;
        ctx->opts.model_len = ctx->target.model.len;
        ctx->opts.client_model = (const char *) ctx->client_model.data;
        ctx->opts.client_model_len = ctx->client_model.len;
        ctx->opts.stream = 0;
        ctx->opts.created = (long) er->created;

        rc = ai_anthropic_in_response((int) status, out.data, out.len,
                                      &ctx->opts, &in);
        ai_buf_free(&out);
        out = in;

        if (rc != 0) {
            ai_buf_free(&out);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    body.len = out.len;
    body.data = ngx_pnalloc(r->pool, out.len ? out.len : 1);

    if (body.data == NULL) {
        ai_buf_free(&out);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(body.data, out.data, out.len);
    ai_buf_free(&out);

    if (ctx->first_byte_msec == 0) {
        ctx->first_byte_msec = ngx_current_msec;
    }

    return ngx_http_ai_send_json(r, status, &body);
}


/*
 * OpenAI SSE built in er->sse goes the way a provider's stream goes:
 * plugins, the cache, the Anthropic converter, then the client.
 */

static ngx_int_t
ngx_http_ai_engine_send(ngx_http_ai_engine_req_t *er, ngx_uint_t last)
{
    int                  rc;
    ngx_int_t            wrc;
    ai_buf_t             out, in, *send;
    ngx_http_ai_ctx_t   *ctx;
    ngx_http_request_t  *r;

    r = er->request;
    ctx = er->ctx;

    ngx_memzero(&out, sizeof(ai_buf_t));
    ngx_memzero(&in, sizeof(ai_buf_t));

    send = &er->sse;
    rc = 0;

    if (ctx->plugins_text && send->len) {
        if (ngx_http_ai_plugins_stream(r, ctx, send->data, send->len, &out)
            != NGX_OK)
        {
            rc = -1;
        }

        send = &out;
    }

    if (rc == 0 && ctx->cache_store && send->len) {
        (void) ngx_http_ai_cache_feed(ctx, send->data, send->len);
    }

    if (rc == 0 && last && ctx->cache_store) {
        ngx_http_ai_cache_store(r, ctx, NULL, 0);
    }

    if (rc == 0 && er->stream_in) {
        if (send->len) {
            rc = ai_stream_feed(er->stream_in, send->data, send->len, &in);
        }

        if (rc == 0 && last) {
            rc = ai_stream_finish(er->stream_in, 1, &in);
        }

        send = &in;
    }

    if (rc != 0) {
        ai_buf_free(&out);
        ai_buf_free(&in);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ai: cannot convert the engine's stream");
        return NGX_ERROR;
    }

    if (send->len && ctx->first_byte_msec == 0) {
        ctx->first_byte_msec = ngx_current_msec;
    }

    ctx->out_events++;

    wrc = ngx_http_ai_engine_write(er, send->data, send->len, last);

    ai_buf_free(&out);
    ai_buf_free(&in);
    er->sse.len = 0;

    return wrc;
}


static ngx_int_t
ngx_http_ai_engine_write(ngx_http_ai_engine_req_t *er, const char *p,
    size_t len, ngx_uint_t last)
{
    size_t               size;
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    r = er->request;

    if (len == 0 && !last) {
        return NGX_OK;
    }

    cl = ngx_chain_get_free_buf(r->pool, &er->free);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;

    /* buffers come back through er->free and keep their memory */

    if (b->start == NULL || (size_t) (b->end - b->start) < len) {
        size = ngx_max(len, 1024);

        b->start = ngx_palloc(r->pool, size);
        if (b->start == NULL) {
            return NGX_ERROR;
        }

        b->end = b->start + size;
    }

    b->pos = b->start;
    b->last = ngx_cpymem(b->start, p, len);
    b->temporary = len ? 1 : 0;
    b->memory = 0;
    b->flush = 1;
    b->last_buf = (last && r == r->main) ? 1 : 0;
    b->last_in_chain = last ? 1 : 0;
    b->tag = (ngx_buf_tag_t) &ngx_http_ai_engine_start;

    rc = ngx_http_output_filter(r, cl);

    ngx_chain_update_chains(r->pool, &er->free, &er->busy, &cl,
                            (ngx_buf_tag_t) &ngx_http_ai_engine_start);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (!last && (rc == NGX_AGAIN || r->connection->buffered || r->buffered))
    {
        /* a slow client: no more polling until its connection drains */
        return ngx_http_ai_engine_block(er);
    }

    return rc;
}


static ngx_int_t
ngx_http_ai_engine_block(ngx_http_ai_engine_req_t *er)
{
    ngx_event_t               *wev;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = er->request;
    wev = r->connection->write;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    er->blocked = 1;
    r->write_event_handler = ngx_http_ai_engine_write_handler;

    if (!wev->delayed) {
        ngx_add_timer(wev, clcf->send_timeout);
    }

    if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


static void
ngx_http_ai_engine_write_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_event_t               *wev;
    ngx_chain_t               *out;
    ngx_connection_t          *c;
    ngx_http_ai_ctx_t         *ctx;
    ngx_http_ai_engine_req_t  *er;
    ngx_pool_cleanup_t        *cln;

    c = r->connection;
    wev = c->write;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ai_gateway_module);
    er = NULL;

    /* the request's engine state is found through its cleanup */

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_ai_engine_cleanup) {
            er = cln->data;
            break;
        }
    }

    if (er == NULL || ctx == NULL) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_ai_engine_abort(er, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (wev->delayed) {
        /* limit_rate */
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_ai_engine_abort(er, NGX_ERROR);
        }

        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    out = NULL;
    ngx_chain_update_chains(r->pool, &er->free, &er->busy, &out,
                            (ngx_buf_tag_t) &ngx_http_ai_engine_start);

    if (rc == NGX_ERROR) {
        ngx_http_ai_engine_abort(er, NGX_ERROR);
        return;
    }

    if (rc == NGX_AGAIN || c->buffered || r->buffered) {
        if (ngx_http_ai_engine_block(er) == NGX_ERROR) {
            ngx_http_ai_engine_abort(er, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    er->blocked = 0;
    r->write_event_handler = ngx_http_request_empty_handler;

    /* catch up with what the engine made meanwhile */
    ngx_http_ai_engine_pump(er);
}


/* the client closed its connection: NGINX finalises, the cleanup cancels */

static void
ngx_http_ai_engine_read_handler(ngx_http_request_t *r)
{
    ngx_http_test_reading(r);
}


static void
ngx_http_ai_engine_abort(ngx_http_ai_engine_req_t *er, ngx_int_t rc)
{
    aie_usage_t          usage;
    ngx_http_request_t  *r;

    r = er->request;

    if (!er->done && er->req) {
        aie_request_cancel(er->req);
        aie_request_usage(er->req, &usage);

        er->ctx->usage.prompt_tokens = usage.prompt_tokens;
        er->ctx->usage.completion_tokens = usage.completion_tokens;
        er->ctx->usage.seen = 1;
    }

    ngx_http_ai_engine_done(er);

    ngx_http_finalize_request(r, rc);
}


/* no more polling for this request */

static void
ngx_http_ai_engine_done(ngx_http_ai_engine_req_t *er)
{
    ngx_http_ai_engine_worker_t  *w;

    er->done = 1;

    if (!er->queued) {
        return;
    }

    er->queued = 0;
    ngx_queue_remove(&er->queue);

    w = er->worker;

    if (ngx_queue_empty(&w->requests) && w->watchdog.timer_set) {
        ngx_del_timer(&w->watchdog);
    }
}


static void
ngx_http_ai_engine_cleanup(void *data)
{
    ngx_http_ai_engine_req_t  *er = data;

    aie_usage_t  usage;

    if (er->req) {
        if (!er->done) {
            /* the request died first (client gone, shutdown) */
            aie_request_cancel(er->req);

            if (!er->ctx->usage.seen) {
                aie_request_usage(er->req, &usage);

                er->ctx->usage.prompt_tokens = usage.prompt_tokens;
                er->ctx->usage.completion_tokens = usage.completion_tokens;
                er->ctx->usage.seen = 1;
            }
        }

        /* the engine frees it once its last step let go too */
        aie_request_release(er->req);
        er->req = NULL;
    }

    ngx_http_ai_engine_done(er);

    if (er->stream_in) {
        ai_stream_free(er->stream_in);
        er->stream_in = NULL;
    }

    ai_buf_free(&er->text);
    ai_buf_free(&er->sse);
}


/* chunks */

static int
ngx_http_ai_engine_chunk(ngx_http_ai_engine_req_t *er, const char *text,
    size_t len, const char *finish)
{
    int  rc;

    rc = ai_buf_append(&er->sse, "data: ", 6);
    rc |= ai_buf_append(&er->sse, (char *) er->head.data, er->head.len);

    if (er->completions) {
        rc |= ai_buf_append_str(&er->sse, "{\"index\":0,\"text\":");
        rc |= ngx_http_ai_engine_append_str(&er->sse, text ? text : "", len);

    } else if (finish) {
        rc |= ai_buf_append_str(&er->sse, "{\"index\":0,\"delta\":{}");

    } else {
        rc |= ai_buf_append_str(&er->sse, "{\"index\":0,\"delta\":"
                                "{\"content\":");
        rc |= ngx_http_ai_engine_append_str(&er->sse, text, len);
        rc |= ai_buf_append(&er->sse, "}", 1);
    }

    rc |= ai_buf_append_str(&er->sse, ",\"logprobs\":null,\"finish_reason\":");

    if (finish) {
        rc |= ai_buf_append(&er->sse, "\"", 1);
        rc |= ai_buf_append_str(&er->sse, finish);
        rc |= ai_buf_append(&er->sse, "\"", 1);

    } else {
        rc |= ai_buf_append_str(&er->sse, "null");
    }

    rc |= ai_buf_append_str(&er->sse, "}]}\n\n");

    return rc;
}


static int
ngx_http_ai_engine_usage_chunk(ngx_http_ai_engine_req_t *er)
{
    int                 rc;
    u_char             *p;
    ngx_http_ai_ctx_t  *ctx;
    u_char              buf[256];

    ctx = er->ctx;

    p = ngx_sprintf(buf, "],\"usage\":{\"prompt_tokens\":%l,"
                    "\"completion_tokens\":%l,\"total_tokens\":%l}}\n\n",
                    ctx->usage.prompt_tokens, ctx->usage.completion_tokens,
                    ctx->usage.prompt_tokens + ctx->usage.completion_tokens);

    rc = ai_buf_append(&er->sse, "data: ", 6);
    rc |= ai_buf_append(&er->sse, (char *) er->head.data, er->head.len);
    rc |= ai_buf_append(&er->sse, (char *) buf, p - buf);

    return rc;
}


/* a JSON string: quotes and escapes */

static int
ngx_http_ai_engine_append_str(ai_buf_t *b, const char *s, size_t len)
{
    char    *p;
    size_t   need, cap;

    need = b->len + ai_json_escape_len((const u_char *) s, len) + 2;

    if (need > b->cap) {
        cap = ngx_max(need, b->cap * 2);

        p = realloc(b->data, cap);
        if (p == NULL) {
            return -1;
        }

        b->data = p;
        b->cap = cap;
    }

    p = b->data + b->len;
    *p++ = '"';
    p = (char *) ai_json_escape((u_char *) p, (const u_char *) s, len);
    *p++ = '"';

    b->len = p - b->data;

    return 0;
}


static const char *
ngx_http_ai_engine_finish_name(aie_finish_reason_t f)
{
    return f == AIE_FINISH_LENGTH ? "length" : "stop";
}


/*
 * Prometheus families for the engines of this worker (each worker runs its
 * own engine: the scrape shows the worker that answered it, labelled by
 * pid; sum over scrapes of every worker for totals).
 */

ngx_int_t
ngx_http_ai_engine_metrics(void *buf)
{
    ai_prom_buf_t *b = buf;

    char                        pid[NGX_INT64_LEN + 1];
    uint64_t                    v;
    ngx_uint_t                  i, f, any;
    ai_prom_label_t             l[2];
    aie_engine_stats_t          st;
    ngx_http_ai_provider_t    **pp;
    ngx_http_ai_main_conf_t    *amcf;
    ngx_http_ai_engine_conf_t  *ec;

    static const struct {
        const char  *name;
        const char  *type;
        const char  *help;
    }  fam[] = {
        { "aigw_engine_queued_requests", "gauge",
          "Requests waiting for a place in the engine's batch." },
        { "aigw_engine_batch_size", "gauge",
          "Sequences decoded together right now." },
        { "aigw_engine_steps_total", "counter",
          "Forward steps the engine ran." },
        { "aigw_engine_prompt_tokens_total", "counter",
          "Prompt tokens the engine evaluated." },
        { "aigw_engine_generated_tokens_total", "counter",
          "Tokens the engine generated." },
        { "aigw_engine_kv_used_tokens", "gauge",
          "KV cache positions held by the running sequences." },
        { "aigw_engine_kv_capacity_tokens", "gauge",
          "KV cache positions allocated (max_batch x ctx)." }
    };

    amcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_ai_gateway_module);
    if (amcf == NULL) {
        return NGX_OK;
    }

    ngx_sprintf((u_char *) pid, "%P%Z", ngx_pid);
    pp = amcf->providers.elts;

    for (f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {

        any = 0;

        for (i = 0; i < amcf->providers.nelts; i++) {
            ec = pp[i]->engine ? pp[i]->engine_conf : NULL;

            if (ec == NULL || ec->worker == NULL
                || ec->worker->engine == NULL)
            {
                continue;
            }

            if (!any) {
                ai_prom_family(b, fam[f].name, fam[f].type, fam[f].help);
                any = 1;
            }

            aie_engine_stats(ec->worker->engine, &st);

            l[0].name = "provider";
            l[0].value = (char *) pp[i]->name.data;
            l[0].len = pp[i]->name.len;
            l[1].name = "worker";
            l[1].value = pid;
            l[1].len = ngx_strlen(pid);

            v = (f == 0) ? (uint64_t) st.queued
                : (f == 1) ? (uint64_t) st.running
                : (f == 2) ? st.steps
                : (f == 3) ? st.prompt_tokens
                : (f == 4) ? st.generated_tokens
                : (f == 5) ? st.kv_used_tokens : st.kv_capacity_tokens;

            ai_prom_sample_u64(b, fam[f].name, l, 2, v);
        }
    }

    return b->failed ? NGX_ERROR : NGX_OK;
}
