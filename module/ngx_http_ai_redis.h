/*
 * aigw: the non-blocking Redis client of a worker.
 *
 * One pipelined connection per configured store per worker, driven by
 * NGINX's event loop: an NGINX peer connection (non-blocking connect,
 * NGINX timers) carrying RESP, parsed by hiredis' I/O-free reply reader.
 * See docs/redis.md.
 *
 * Contract of a command token (ngx_http_ai_redis_cmd_t):
 *   - it lives in the worker's memory, never in a request pool;
 *   - its handler runs exactly once, unless the token was cancelled first:
 *     with the reply, or with NULL (timeout, connection lost, shutdown);
 *   - after its handler has run, or after ngx_http_ai_redis_cancel(), the
 *     token belongs to the client again: forget the pointer (clear it in
 *     the handler, so that a later cleanup does not cancel a reused one);
 *   - the reply is freed when the handler returns: copy what you keep.
 */

#ifndef _NGX_HTTP_AI_REDIS_H_INCLUDED_
#define _NGX_HTTP_AI_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <hiredis/hiredis.h>


typedef struct ngx_http_ai_redis_s      ngx_http_ai_redis_t;
typedef struct ngx_http_ai_redis_cmd_s  ngx_http_ai_redis_cmd_t;

/* reply is NULL on timeout, connection loss or shutdown */
typedef void (*ngx_http_ai_redis_handler_pt)(ngx_http_ai_redis_cmd_t *cmd,
    redisReply *reply, void *data);


/* one command of a transaction */
typedef struct {
    int                             argc;
    const char                    **argv;
    const size_t                   *argvlen;
} ngx_http_ai_redis_argv_t;


#define NGX_HTTP_AI_REDIS_DEFAULT_PORT             6379
#define NGX_HTTP_AI_REDIS_DEFAULT_CONNECT_TIMEOUT  1000
#define NGX_HTTP_AI_REDIS_DEFAULT_TIMEOUT          500


/*
 * Configuration time: parses "redis://[[user]:password@]host[:port][/db]"
 * (the host is resolved now, like an upstream server's) or
 * "unix:/path/to/redis.sock", and returns the
 * store, allocated from cf->pool.  On error returns NULL and sets *err.
 * A timeout of 0 takes the default.
 */
ngx_http_ai_redis_t *ngx_http_ai_redis_conf(ngx_conf_t *cf, ngx_str_t *url,
    ngx_msec_t connect_timeout, ngx_msec_t command_timeout, char **err);

/* "host:port/db" without the password, for log lines and messages */
ngx_str_t *ngx_http_ai_redis_name(ngx_http_ai_redis_t *rds);

/* worker start (init_process): connects in the background */
ngx_int_t ngx_http_ai_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_ai_redis_t *rds);

/* worker exit (exit_process): closes, frees; handlers are not called */
void ngx_http_ai_redis_exit_process(ngx_cycle_t *cycle,
    ngx_http_ai_redis_t *rds);

/*
 * Queues one command, sent with the others of this event loop iteration
 * in one write.  Returns NULL at once when the store is down (the caller
 * fails open or closed).  h may be NULL: the reply is dropped.
 */
ngx_http_ai_redis_cmd_t *ngx_http_ai_redis_send(ngx_http_ai_redis_t *rds,
    ngx_http_ai_redis_handler_pt h, void *data, int argc, const char **argv,
    const size_t *argvlen);

/*
 * MULTI, the n commands, EXEC, queued all or none, as one token: the
 * handler gets EXEC's reply (an array, or an error such as EXECABORT).
 */
ngx_http_ai_redis_cmd_t *ngx_http_ai_redis_send_multi(
    ngx_http_ai_redis_t *rds, ngx_http_ai_redis_handler_pt h, void *data,
    ngx_uint_t n, ngx_http_ai_redis_argv_t *cmds);

/* the handler will not run; the reply, when it comes, is dropped */
void ngx_http_ai_redis_cancel(ngx_http_ai_redis_cmd_t *cmd);

ngx_uint_t ngx_http_ai_redis_is_up(ngx_http_ai_redis_t *rds);


#endif /* _NGX_HTTP_AI_REDIS_H_INCLUDED_ */
