/*
 * aigw: the non-blocking Redis client of a worker (see docs/redis.md).
 *
 * The connection is an NGINX peer connection (ngx_event_connect_peer):
 * non-blocking connect to an address resolved at configuration time,
 * NGINX timers for the connect and command timeouts, NGINX's own
 * recv/send.  RESP is written by redisFormatCommandArgv() and read by
 * hiredis' I/O-free redisReader; hiredis never touches the socket.
 *
 * Commands are tokens kept in a FIFO in the order they were written;
 * Redis answers in that order, so the head of the FIFO owns the next
 * reply, and the head's deadline is the earliest one: one timer serves
 * all the pending commands.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_ai_redis.h"


#define NGX_HTTP_AI_REDIS_IDLE         0    /* not started, or exited */
#define NGX_HTTP_AI_REDIS_DOWN         1    /* waiting to reconnect */
#define NGX_HTTP_AI_REDIS_CONNECTING   2
#define NGX_HTTP_AI_REDIS_HANDSHAKE    3    /* AUTH, SELECT or PING sent */
#define NGX_HTTP_AI_REDIS_UP           4

#define NGX_HTTP_AI_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_AI_REDIS_BACKOFF_MAX  5000

/* a connection that lived this long may be reopened at once when the
 * server closes it cleanly (Redis' idle "timeout" setting) */
#define NGX_HTTP_AI_REDIS_STABLE       1000

#define NGX_HTTP_AI_REDIS_MAX_PENDING  65536
#define NGX_HTTP_AI_REDIS_MAX_FREE     1024
#define NGX_HTTP_AI_REDIS_READ_SIZE    16384
#define NGX_HTTP_AI_REDIS_KEEP_OUT     65536


struct ngx_http_ai_redis_s {
    /* configuration */
    ngx_str_t                       name;          /* no password */
    ngx_addr_t                     *addrs;
    ngx_uint_t                      naddrs;
    ngx_str_t                       user;
    ngx_str_t                       password;
    ngx_uint_t                      db;
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      command_timeout;

    /* the worker's state */
    ngx_uint_t                      state;
    ngx_uint_t                      current;       /* index in addrs */

    ngx_log_t                       log;
    ngx_log_t                       quiet_log;     /* connect(): we log */

    ngx_peer_connection_t           peer;
    ngx_connection_t               *connection;
    redisReader                    *reader;

    u_char                         *out;           /* formatted commands */
    size_t                          out_pos;
    size_t                          out_len;
    size_t                          out_size;

    ngx_queue_t                     pending;       /* in reply order */
    ngx_uint_t                      npending;
    ngx_queue_t                     free;
    ngx_uint_t                      nfree;
    ngx_uint_t                      handshake_left;

    ngx_event_t                     reconnect;
    ngx_event_t                     timer;         /* the head's deadline */
    ngx_msec_t                      backoff;

    unsigned                        outage:1;      /* "down" logged */
};


struct ngx_http_ai_redis_cmd_s {
    ngx_queue_t                     queue;
    ngx_http_ai_redis_handler_pt    handler;
    void                           *data;
    ngx_msec_t                      deadline;
    ngx_uint_t                      replies;       /* still to come */
    unsigned                        handshake:1;
    unsigned                        done:1;        /* no handler to run */
};


static ngx_int_t ngx_http_ai_redis_parse_url(ngx_conf_t *cf,
    ngx_http_ai_redis_t *rds, ngx_str_t *url, char **err);
static ngx_int_t ngx_http_ai_redis_unescape(ngx_pool_t *pool, ngx_str_t *s);
static void ngx_http_ai_redis_connect(ngx_http_ai_redis_t *rds);
static void ngx_http_ai_redis_connected(ngx_http_ai_redis_t *rds);
static ngx_int_t ngx_http_ai_redis_handshake(ngx_http_ai_redis_t *rds);
static void ngx_http_ai_redis_up(ngx_http_ai_redis_t *rds);
static void ngx_http_ai_redis_write_handler(ngx_event_t *wev);
static void ngx_http_ai_redis_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_ai_redis_process(ngx_http_ai_redis_t *rds);
static ngx_int_t ngx_http_ai_redis_flush(ngx_http_ai_redis_t *rds);
static void ngx_http_ai_redis_timer_handler(ngx_event_t *ev);
static void ngx_http_ai_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_ai_redis_fail(ngx_http_ai_redis_t *rds, ngx_err_t err,
    const char *reason, const char *detail);
static void ngx_http_ai_redis_lost(ngx_http_ai_redis_t *rds);
static void ngx_http_ai_redis_close(ngx_http_ai_redis_t *rds,
    ngx_uint_t notify);
static void ngx_http_ai_redis_schedule(ngx_http_ai_redis_t *rds,
    ngx_msec_t delay);
static ngx_http_ai_redis_cmd_t *ngx_http_ai_redis_queue(
    ngx_http_ai_redis_t *rds, ngx_http_ai_redis_handler_pt h, void *data,
    ngx_uint_t n, ngx_http_ai_redis_argv_t *cmds, ngx_uint_t multi,
    ngx_msec_t timeout);
static ngx_int_t ngx_http_ai_redis_append(ngx_http_ai_redis_t *rds,
    const char *data, size_t len);
static ngx_http_ai_redis_cmd_t *ngx_http_ai_redis_cmd_get(
    ngx_http_ai_redis_t *rds);
static void ngx_http_ai_redis_cmd_put(ngx_http_ai_redis_t *rds,
    ngx_http_ai_redis_cmd_t *cmd);


static const char  ngx_http_ai_redis_multi[] = "*1\r\n$5\r\nMULTI\r\n";
static const char  ngx_http_ai_redis_exec[] = "*1\r\n$4\r\nEXEC\r\n";


/* configuration time */

ngx_http_ai_redis_t *
ngx_http_ai_redis_conf(ngx_conf_t *cf, ngx_str_t *url,
    ngx_msec_t connect_timeout, ngx_msec_t command_timeout, char **err)
{
    ngx_http_ai_redis_t  *rds;

    rds = ngx_pcalloc(cf->pool, sizeof(ngx_http_ai_redis_t));
    if (rds == NULL) {
        *err = "out of memory";
        return NULL;
    }

    if (ngx_http_ai_redis_parse_url(cf, rds, url, err) != NGX_OK) {
        return NULL;
    }

    rds->connect_timeout = connect_timeout ? connect_timeout
                           : NGX_HTTP_AI_REDIS_DEFAULT_CONNECT_TIMEOUT;
    rds->command_timeout = command_timeout ? command_timeout
                           : NGX_HTTP_AI_REDIS_DEFAULT_TIMEOUT;

    return rds;
}


static ngx_int_t
ngx_http_ai_redis_parse_url(ngx_conf_t *cf, ngx_http_ai_redis_t *rds,
    ngx_str_t *url, char **err)
{
    u_char     *p, *q, *last, *at, *colon, *slash;
    ngx_int_t   db;
    ngx_url_t   u;

    if (url->len > sizeof("unix:") - 1
        && ngx_strncmp(url->data, "unix:", sizeof("unix:") - 1) == 0)
    {
        /* "unix:/path/to/redis.sock": no password, database 0 */
        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url = *url;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            *err = u.err ? u.err : "the store URL has an invalid path";
            return NGX_ERROR;
        }

        rds->addrs = u.addrs;
        rds->naddrs = u.naddrs;
        rds->name = *url;

        return NGX_OK;
    }

    if (url->len < sizeof("redis://") - 1
        || ngx_strncasecmp(url->data, (u_char *) "redis://",
                           sizeof("redis://") - 1)
           != 0)
    {
        *err = "the store URL must start with \"redis://\" or \"unix:\"";
        return NGX_ERROR;
    }

    p = url->data + sizeof("redis://") - 1;
    last = url->data + url->len;

    /* the password may hold '@' and '/' when escaped; the last '@' ends it */

    at = NULL;
    for (q = p; q < last; q++) {
        if (*q == '@') {
            at = q;
        }
    }

    if (at) {
        colon = ngx_strlchr(p, at, ':');

        if (colon) {
            rds->user.data = p;
            rds->user.len = colon - p;
            rds->password.data = colon + 1;
            rds->password.len = at - colon - 1;

        } else {
            rds->password.data = p;
            rds->password.len = at - p;
        }

        if (ngx_http_ai_redis_unescape(cf->pool, &rds->user) != NGX_OK
            || ngx_http_ai_redis_unescape(cf->pool, &rds->password) != NGX_OK)
        {
            *err = "out of memory";
            return NGX_ERROR;
        }

        if (rds->password.len == 0) {
            *err = "the store URL has an empty password";
            return NGX_ERROR;
        }

        p = at + 1;
    }

    slash = ngx_strlchr(p, last, '/');

    if (slash && slash + 1 < last) {
        db = ngx_atoi(slash + 1, last - slash - 1);
        if (db == NGX_ERROR) {
            *err = "the store URL has an invalid database number";
            return NGX_ERROR;
        }

        rds->db = db;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = p;
    u.url.len = (slash ? slash : last) - p;
    u.default_port = NGX_HTTP_AI_REDIS_DEFAULT_PORT;

    if (u.url.len == 0) {
        *err = "the store URL has no host";
        return NGX_ERROR;
    }

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        *err = u.err ? u.err : "the store URL has an invalid address";
        return NGX_ERROR;
    }

    if (u.naddrs == 0) {
        *err = "the store URL has no usable address";
        return NGX_ERROR;
    }

    rds->addrs = u.addrs;
    rds->naddrs = u.naddrs;

    rds->name.data = ngx_pnalloc(cf->pool, u.url.len + 1 + NGX_INT_T_LEN);
    if (rds->name.data == NULL) {
        *err = "out of memory";
        return NGX_ERROR;
    }

    rds->name.len = ngx_sprintf(rds->name.data, "%V/%ui", &u.url, rds->db)
                    - rds->name.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ai_redis_unescape(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *src, *dst, *data;

    if (s->len == 0 || ngx_strlchr(s->data, s->data + s->len, '%') == NULL) {
        return NGX_OK;
    }

    data = ngx_pnalloc(pool, s->len);
    if (data == NULL) {
        return NGX_ERROR;
    }

    src = s->data;
    dst = data;
    ngx_unescape_uri(&dst, &src, s->len, 0);

    s->data = data;
    s->len = dst - data;

    return NGX_OK;
}


ngx_str_t *
ngx_http_ai_redis_name(ngx_http_ai_redis_t *rds)
{
    return &rds->name;
}


/* worker start and exit */

ngx_int_t
ngx_http_ai_redis_init_process(ngx_cycle_t *cycle, ngx_http_ai_redis_t *rds)
{
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;     /* cache manager and loader: no Redis */
    }

    rds->log = *cycle->log;
    rds->log.handler = NULL;
    rds->log.data = NULL;
    rds->log.action = NULL;

    /* ngx_event_connect_peer() logs its own failures at "error"; an
     * outage gets one line of ours instead */
    rds->quiet_log = rds->log;
    if (rds->quiet_log.log_level > NGX_LOG_CRIT) {
        rds->quiet_log.log_level = NGX_LOG_CRIT;
    }

    ngx_queue_init(&rds->pending);
    ngx_queue_init(&rds->free);

    rds->reconnect.handler = ngx_http_ai_redis_reconnect_handler;
    rds->reconnect.data = rds;
    rds->reconnect.log = &rds->log;
    rds->reconnect.cancelable = 1;     /* never delays a graceful exit */

    /* pending commands do delay a graceful exit, by their timeout at most */
    rds->timer.handler = ngx_http_ai_redis_timer_handler;
    rds->timer.data = rds;
    rds->timer.log = &rds->log;

    rds->backoff = NGX_HTTP_AI_REDIS_BACKOFF_MIN;
    rds->current = ngx_random() % rds->naddrs;
    rds->state = NGX_HTTP_AI_REDIS_DOWN;

    ngx_http_ai_redis_connect(rds);

    return NGX_OK;
}


void
ngx_http_ai_redis_exit_process(ngx_cycle_t *cycle, ngx_http_ai_redis_t *rds)
{
    ngx_queue_t              *q;
    ngx_http_ai_redis_cmd_t  *cmd;

    if (rds->state == NGX_HTTP_AI_REDIS_IDLE) {
        return;
    }

    if (rds->reconnect.timer_set) {
        ngx_del_timer(&rds->reconnect);
    }

    ngx_http_ai_redis_close(rds, 0);

    rds->state = NGX_HTTP_AI_REDIS_IDLE;

    while (!ngx_queue_empty(&rds->free)) {
        q = ngx_queue_head(&rds->free);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_ai_redis_cmd_t, queue);
        ngx_free(cmd);
    }

    rds->nfree = 0;

    if (rds->out) {
        ngx_free(rds->out);
        rds->out = NULL;
        rds->out_size = 0;
    }
}


ngx_uint_t
ngx_http_ai_redis_is_up(ngx_http_ai_redis_t *rds)
{
    return rds->state == NGX_HTTP_AI_REDIS_UP;
}


/* connection */

static void
ngx_http_ai_redis_connect(ngx_http_ai_redis_t *rds)
{
    ngx_int_t          rc;
    ngx_addr_t        *addr;
    ngx_connection_t  *c;

    addr = &rds->addrs[rds->current];

    ngx_memzero(&rds->peer, sizeof(ngx_peer_connection_t));

    rds->peer.sockaddr = addr->sockaddr;
    rds->peer.socklen = addr->socklen;
    rds->peer.name = &addr->name;
    rds->peer.get = ngx_event_get_peer;
    rds->peer.log = &rds->quiet_log;
    rds->peer.log_error = NGX_ERROR_INFO;
    rds->peer.so_keepalive = 1;

    rds->state = NGX_HTTP_AI_REDIS_CONNECTING;

    rc = ngx_event_connect_peer(&rds->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        rds->peer.connection = NULL;
        ngx_http_ai_redis_fail(rds, 0, "connect() failed", NULL);
        return;
    }

    c = rds->peer.connection;
    rds->connection = c;

    c->data = rds;
    c->read->handler = ngx_http_ai_redis_read_handler;
    c->write->handler = ngx_http_ai_redis_write_handler;

    rds->reader = redisReaderCreate();
    if (rds->reader == NULL) {
        ngx_http_ai_redis_fail(rds, 0, "out of memory", NULL);
        return;
    }

    if (rc == NGX_AGAIN) {
        c->write->cancelable = 1;
        ngx_add_timer(c->write, rds->connect_timeout);
        return;
    }

    ngx_http_ai_redis_connected(rds);
}


static void
ngx_http_ai_redis_connected(ngx_http_ai_redis_t *rds)
{
    int                err, nodelay;
    socklen_t          len;
    ngx_connection_t  *c;

    c = rds->connection;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_http_ai_redis_fail(rds, err, "connect() failed", NULL);
        return;
    }

    /* from now on, ours is the log, and errors of recv()/send() are "info":
     * the outage line says the rest */

    c->log = &rds->log;
    c->read->log = &rds->log;
    c->write->log = &rds->log;
    c->write->cancelable = 0;
    c->log_error = NGX_ERROR_INFO;

    /* pipelined small writes must not wait for the previous ACK */

    if (c->tcp_nodelay == NGX_TCP_NODELAY_UNSET) {     /* not AF_UNIX */
        nodelay = 1;

        if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY,
                       (const void *) &nodelay, sizeof(int))
            == -1)
        {
            ngx_log_error(NGX_LOG_ALERT, &rds->log, ngx_socket_errno,
                          "aigw redis %V: setsockopt(TCP_NODELAY) failed",
                          &rds->name);
        }

        c->tcp_nodelay = NGX_TCP_NODELAY_SET;
    }

    rds->state = NGX_HTTP_AI_REDIS_HANDSHAKE;

    if (ngx_http_ai_redis_handshake(rds) != NGX_OK) {
        ngx_http_ai_redis_fail(rds, 0, "out of memory", NULL);
        return;
    }

    (void) ngx_http_ai_redis_flush(rds);
}


/*
 * AUTH and SELECT when the URL asks for them, else PING: either way the
 * store is "up" only once Redis itself has answered, not when the kernel
 * completed the handshake for a stopped server.
 */

static ngx_int_t
ngx_http_ai_redis_handshake(ngx_http_ai_redis_t *rds)
{
    u_char                     dbbuf[NGX_INT_T_LEN];
    size_t                     argvlen[3];
    const char                *argv[3];
    ngx_uint_t                 n;
    ngx_http_ai_redis_cmd_t   *cmd;
    ngx_http_ai_redis_argv_t   a;

    rds->handshake_left = 0;
    a.argv = argv;
    a.argvlen = argvlen;

    for (n = 0; n < 3; n++) {

        switch (n) {

        case 0:
            if (rds->password.len == 0) {
                continue;
            }

            argv[0] = "AUTH";
            argvlen[0] = 4;
            a.argc = 1;

            if (rds->user.len) {
                argv[a.argc] = (const char *) rds->user.data;
                argvlen[a.argc++] = rds->user.len;
            }

            argv[a.argc] = (const char *) rds->password.data;
            argvlen[a.argc++] = rds->password.len;
            break;

        case 1:
            if (rds->db == 0) {
                continue;
            }

            argv[0] = "SELECT";
            argvlen[0] = 6;
            argv[1] = (const char *) dbbuf;
            argvlen[1] = ngx_sprintf(dbbuf, "%ui", rds->db) - dbbuf;
            a.argc = 2;
            break;

        default:
            if (rds->handshake_left) {
                continue;
            }

            argv[0] = "PING";
            argvlen[0] = 4;
            a.argc = 1;
        }

        cmd = ngx_http_ai_redis_queue(rds, NULL, NULL, 1, &a, 0,
                                      rds->connect_timeout);
        if (cmd == NULL) {
            return NGX_ERROR;
        }

        cmd->handshake = 1;
        rds->handshake_left++;
    }

    return NGX_OK;
}


static void
ngx_http_ai_redis_up(ngx_http_ai_redis_t *rds)
{
    rds->state = NGX_HTTP_AI_REDIS_UP;
    rds->backoff = NGX_HTTP_AI_REDIS_BACKOFF_MIN;

    if (rds->outage) {
        ngx_log_error(NGX_LOG_NOTICE, &rds->log, 0,
                      "aigw redis %V is up again (%V)",
                      &rds->name, rds->peer.name);
        rds->outage = 0;
        return;
    }

    ngx_log_error(NGX_LOG_INFO, &rds->log, 0, "aigw redis %V connected (%V)",
                  &rds->name, rds->peer.name);
}


/* events */

static void
ngx_http_ai_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t     *c;
    ngx_http_ai_redis_t  *rds;

    c = wev->data;
    rds = c->data;

    if (rds->state == NGX_HTTP_AI_REDIS_CONNECTING) {

        if (wev->timedout) {
            ngx_http_ai_redis_fail(rds, NGX_ETIMEDOUT, "connect() timed out",
                                   NULL);
            return;
        }

        ngx_http_ai_redis_connected(rds);
        return;
    }

    (void) ngx_http_ai_redis_flush(rds);
}


static void
ngx_http_ai_redis_read_handler(ngx_event_t *rev)
{
    u_char                buf[NGX_HTTP_AI_REDIS_READ_SIZE];
    ssize_t               n;
    ngx_connection_t     *c;
    ngx_http_ai_redis_t  *rds;

    c = rev->data;
    rds = c->data;

    if (c->close) {
        /* worker_shutdown_timeout closes every connection: so do we */
        ngx_http_ai_redis_close(rds, 1);
        rds->state = NGX_HTTP_AI_REDIS_DOWN;
        return;
    }

    if (rds->state == NGX_HTTP_AI_REDIS_CONNECTING) {
        /* an error, or the end of the connect: both are in SO_ERROR */
        ngx_http_ai_redis_connected(rds);
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_ai_redis_lost(rds);
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_ai_redis_fail(rds, 0, "recv() failed", NULL);
            return;
        }

        if (redisReaderFeed(rds->reader, (const char *) buf, n) != REDIS_OK) {
            ngx_http_ai_redis_fail(rds, 0, "out of memory", NULL);
            return;
        }

        if (ngx_http_ai_redis_process(rds) != NGX_OK) {
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_ai_redis_fail(rds, 0, "event error", NULL);
    }
}


/* hands the replies parsed so far to their commands, in order */

static ngx_int_t
ngx_http_ai_redis_process(ngx_http_ai_redis_t *rds)
{
    void                     *obj;
    ngx_queue_t              *q;
    redisReply               *reply;
    ngx_connection_t         *c;
    ngx_http_ai_redis_cmd_t  *cmd;

    c = rds->connection;

    for ( ;; ) {

        if (redisReaderGetReply(rds->reader, &obj) != REDIS_OK) {
            ngx_http_ai_redis_fail(rds, 0, "protocol error: ",
                                   rds->reader->errstr);
            return NGX_ERROR;
        }

        if (obj == NULL) {
            return NGX_OK;
        }

        reply = obj;

        if (ngx_queue_empty(&rds->pending)) {
            freeReplyObject(reply);
            ngx_http_ai_redis_fail(rds, 0, "unexpected reply", NULL);
            return NGX_ERROR;
        }

        q = ngx_queue_head(&rds->pending);
        cmd = ngx_queue_data(q, ngx_http_ai_redis_cmd_t, queue);

        if (--cmd->replies) {
            /* MULTI's "OK" and the "QUEUED"s: EXEC's reply says it all */
            freeReplyObject(reply);
            continue;
        }

        ngx_queue_remove(q);
        rds->npending--;

        if (ngx_queue_empty(&rds->pending) && rds->timer.timer_set) {
            ngx_del_timer(&rds->timer);
        }

        if (cmd->handshake) {
            ngx_http_ai_redis_cmd_put(rds, cmd);

            if (reply->type == REDIS_REPLY_ERROR) {
                /* Redis' message never repeats the password */
                ngx_http_ai_redis_fail(rds, 0, "handshake refused: ",
                                       reply->str);
                freeReplyObject(reply);
                return NGX_ERROR;
            }

            freeReplyObject(reply);

            if (--rds->handshake_left == 0) {
                ngx_http_ai_redis_up(rds);
            }

            continue;
        }

        if (!cmd->done) {
            cmd->done = 1;    /* a cancel() from the handler is harmless */

            if (cmd->handler) {
                cmd->handler(cmd, reply, cmd->data);
            }
        }

        freeReplyObject(reply);
        ngx_http_ai_redis_cmd_put(rds, cmd);

        if (rds->connection != c) {
            return NGX_ERROR;
        }
    }
}


static ngx_int_t
ngx_http_ai_redis_flush(ngx_http_ai_redis_t *rds)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = rds->connection;

    while (rds->out_pos < rds->out_len) {

        n = c->send(c, rds->out + rds->out_pos, rds->out_len - rds->out_pos);

        if (n == NGX_ERROR) {
            ngx_http_ai_redis_fail(rds, 0, "send() failed", NULL);
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN) {
            break;
        }

        rds->out_pos += n;
    }

    if (rds->out_pos == rds->out_len) {
        rds->out_pos = 0;
        rds->out_len = 0;

        /* a burst does not keep its buffer */

        if (rds->out_size > NGX_HTTP_AI_REDIS_KEEP_OUT) {
            ngx_free(rds->out);
            rds->out = NULL;
            rds->out_size = 0;
        }
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_http_ai_redis_fail(rds, 0, "event error", NULL);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The head of the FIFO has the earliest deadline.  The timer is lazy: it
 * is not moved when a reply pops the head, it checks the new head when it
 * fires.
 */

static void
ngx_http_ai_redis_timer_handler(ngx_event_t *ev)
{
    ngx_msec_int_t            left;
    ngx_http_ai_redis_t      *rds;
    ngx_http_ai_redis_cmd_t  *cmd;

    rds = ev->data;

    if (ngx_queue_empty(&rds->pending)) {
        return;
    }

    cmd = ngx_queue_data(ngx_queue_head(&rds->pending),
                         ngx_http_ai_redis_cmd_t, queue);

    left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);

    if (left > 0) {
        ngx_add_timer(ev, (ngx_msec_t) left);
        return;
    }

    /* replies that come later would be taken for the next commands' */

    ngx_http_ai_redis_fail(rds, NGX_ETIMEDOUT,
                           cmd->handshake ? "handshake timed out"
                                          : "command timed out",
                           NULL);
}


static void
ngx_http_ai_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_ai_redis_t  *rds;

    rds = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate
        || rds->state != NGX_HTTP_AI_REDIS_DOWN)
    {
        return;
    }

    ngx_http_ai_redis_connect(rds);
}


/* failures */

static void
ngx_http_ai_redis_fail(ngx_http_ai_redis_t *rds, ngx_err_t err,
    const char *reason, const char *detail)
{
    ngx_uint_t  level;

    /* one "error" line per outage; the retries are "info" */

    level = rds->outage ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, &rds->log, err, "aigw redis %V is %s (%V): %s%s",
                  &rds->name, rds->outage ? "still down" : "down",
                  &rds->addrs[rds->current].name, reason,
                  detail ? detail : "");

    rds->outage = 1;

    ngx_http_ai_redis_close(rds, 1);

    if (rds->naddrs > 1) {
        rds->current = (rds->current + 1) % rds->naddrs;
    }

    ngx_http_ai_redis_schedule(rds, rds->backoff);

    rds->backoff *= 2;
    if (rds->backoff > NGX_HTTP_AI_REDIS_BACKOFF_MAX) {
        rds->backoff = NGX_HTTP_AI_REDIS_BACKOFF_MAX;
    }
}


/*
 * The server closed the connection.  With commands in flight, or soon
 * after connecting, that is an outage; an old idle connection (Redis'
 * "timeout" setting, CLIENT KILL) is reopened at once, quietly.
 */

static void
ngx_http_ai_redis_lost(ngx_http_ai_redis_t *rds)
{
    ngx_connection_t  *c;

    c = rds->connection;

    if (rds->state != NGX_HTTP_AI_REDIS_UP
        || rds->npending
        || ngx_current_msec - c->start_time < NGX_HTTP_AI_REDIS_STABLE)
    {
        ngx_http_ai_redis_fail(rds, 0, "connection closed by the server",
                               NULL);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, &rds->log, 0,
                  "aigw redis %V closed an idle connection, reconnecting",
                  &rds->name);

    ngx_http_ai_redis_close(rds, 1);
    ngx_http_ai_redis_schedule(rds, 0);
}


/*
 * Closes the connection and empties the FIFO.  With notify, every pending
 * handler gets NULL; the state is DOWN first, so a handler that sends
 * again gets NULL at once.
 */

static void
ngx_http_ai_redis_close(ngx_http_ai_redis_t *rds, ngx_uint_t notify)
{
    ngx_queue_t              *q;
    ngx_http_ai_redis_cmd_t  *cmd;

    if (rds->connection) {
        ngx_close_connection(rds->connection);
        rds->connection = NULL;
        rds->peer.connection = NULL;
    }

    if (rds->reader) {
        redisReaderFree(rds->reader);
        rds->reader = NULL;
    }

    rds->out_pos = 0;
    rds->out_len = 0;
    rds->handshake_left = 0;

    if (rds->timer.timer_set) {
        ngx_del_timer(&rds->timer);
    }

    rds->state = NGX_HTTP_AI_REDIS_DOWN;

    while (!ngx_queue_empty(&rds->pending)) {
        q = ngx_queue_head(&rds->pending);
        ngx_queue_remove(q);
        rds->npending--;

        cmd = ngx_queue_data(q, ngx_http_ai_redis_cmd_t, queue);

        if (notify && !cmd->done) {
            cmd->done = 1;

            if (cmd->handler) {
                cmd->handler(cmd, NULL, cmd->data);
            }
        }

        ngx_http_ai_redis_cmd_put(rds, cmd);
    }
}


static void
ngx_http_ai_redis_schedule(ngx_http_ai_redis_t *rds, ngx_msec_t delay)
{
    if (ngx_exiting || ngx_quit || ngx_terminate
        || rds->state != NGX_HTTP_AI_REDIS_DOWN)
    {
        return;
    }

    /* jitter: workers (and gateways) restarted together spread out */

    if (delay > 1) {
        delay = delay / 2 + (ngx_msec_t) ngx_random() % (delay / 2 + 1);
    }

    ngx_add_timer(&rds->reconnect, delay);
}


/* commands */

ngx_http_ai_redis_cmd_t *
ngx_http_ai_redis_send(ngx_http_ai_redis_t *rds,
    ngx_http_ai_redis_handler_pt h, void *data, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_http_ai_redis_argv_t  a;

    if (rds->state != NGX_HTTP_AI_REDIS_UP) {
        return NULL;
    }

    a.argc = argc;
    a.argv = argv;
    a.argvlen = argvlen;

    return ngx_http_ai_redis_queue(rds, h, data, 1, &a, 0,
                                   rds->command_timeout);
}


ngx_http_ai_redis_cmd_t *
ngx_http_ai_redis_send_multi(ngx_http_ai_redis_t *rds,
    ngx_http_ai_redis_handler_pt h, void *data, ngx_uint_t n,
    ngx_http_ai_redis_argv_t *cmds)
{
    if (rds->state != NGX_HTTP_AI_REDIS_UP) {
        return NULL;
    }

    return ngx_http_ai_redis_queue(rds, h, data, n, cmds, 1,
                                   rds->command_timeout);
}


void
ngx_http_ai_redis_cancel(ngx_http_ai_redis_cmd_t *cmd)
{
    /* the token stays in the FIFO until its reply (or the close) */

    cmd->done = 1;
    cmd->handler = NULL;
    cmd->data = NULL;
}


/*
 * Formats the commands into the output buffer, all or none (a MULTI
 * without its EXEC would swallow other requests' commands), and asks for
 * a write once this event loop iteration is over, so that the commands of
 * many requests leave in one send().
 */

static ngx_http_ai_redis_cmd_t *
ngx_http_ai_redis_queue(ngx_http_ai_redis_t *rds,
    ngx_http_ai_redis_handler_pt h, void *data, ngx_uint_t n,
    ngx_http_ai_redis_argv_t *cmds, ngx_uint_t multi, ngx_msec_t timeout)
{
    int                       len;
    char                     *s;
    size_t                    saved;
    ngx_uint_t                i;
    ngx_event_t              *wev;
    ngx_http_ai_redis_cmd_t  *cmd;

    if (n == 0 || rds->npending >= NGX_HTTP_AI_REDIS_MAX_PENDING) {
        return NULL;
    }

    saved = rds->out_len;

    if (multi
        && ngx_http_ai_redis_append(rds, ngx_http_ai_redis_multi,
                                    sizeof(ngx_http_ai_redis_multi) - 1)
           != NGX_OK)
    {
        goto failed;
    }

    for (i = 0; i < n; i++) {
        if (cmds[i].argc <= 0) {
            goto failed;
        }

        len = redisFormatCommandArgv(&s, cmds[i].argc, cmds[i].argv,
                                     cmds[i].argvlen);
        if (len < 0) {
            goto failed;
        }

        if (ngx_http_ai_redis_append(rds, s, len) != NGX_OK) {
            redisFreeCommand(s);
            goto failed;
        }

        redisFreeCommand(s);
    }

    if (multi
        && ngx_http_ai_redis_append(rds, ngx_http_ai_redis_exec,
                                    sizeof(ngx_http_ai_redis_exec) - 1)
           != NGX_OK)
    {
        goto failed;
    }

    cmd = ngx_http_ai_redis_cmd_get(rds);
    if (cmd == NULL) {
        goto failed;
    }

    cmd->handler = h;
    cmd->data = data;
    cmd->replies = multi ? n + 2 : n;
    cmd->deadline = ngx_current_msec + timeout;

    ngx_queue_insert_tail(&rds->pending, &cmd->queue);
    rds->npending++;

    if (!rds->timer.timer_set) {
        ngx_add_timer(&rds->timer, timeout);
    }

    wev = rds->connection->write;

    if (rds->state != NGX_HTTP_AI_REDIS_CONNECTING
        && wev->ready && !wev->posted)
    {
        ngx_post_event(wev, &ngx_posted_events);
    }

    return cmd;

failed:

    ngx_log_error(NGX_LOG_ALERT, &rds->log, 0,
                  "aigw redis %V: could not queue a command", &rds->name);

    rds->out_len = saved;
    return NULL;
}


static ngx_int_t
ngx_http_ai_redis_append(ngx_http_ai_redis_t *rds, const char *data,
    size_t len)
{
    u_char  *out;
    size_t   size;

    if (rds->out_size - rds->out_len < len && rds->out_pos) {
        ngx_memmove(rds->out, rds->out + rds->out_pos,
                    rds->out_len - rds->out_pos);
        rds->out_len -= rds->out_pos;
        rds->out_pos = 0;
    }

    if (rds->out_size - rds->out_len < len) {
        size = ngx_max(rds->out_size * 2, rds->out_len + len);
        size = ngx_max(size, 4096);

        out = ngx_alloc(size, &rds->log);
        if (out == NULL) {
            return NGX_ERROR;
        }

        if (rds->out) {
            ngx_memcpy(out, rds->out, rds->out_len);
            ngx_free(rds->out);
        }

        rds->out = out;
        rds->out_size = size;
    }

    ngx_memcpy(rds->out + rds->out_len, data, len);
    rds->out_len += len;

    return NGX_OK;
}


/* tokens come from the worker's heap, through a free list */

static ngx_http_ai_redis_cmd_t *
ngx_http_ai_redis_cmd_get(ngx_http_ai_redis_t *rds)
{
    ngx_queue_t              *q;
    ngx_http_ai_redis_cmd_t  *cmd;

    if (!ngx_queue_empty(&rds->free)) {
        q = ngx_queue_head(&rds->free);
        ngx_queue_remove(q);
        rds->nfree--;
        cmd = ngx_queue_data(q, ngx_http_ai_redis_cmd_t, queue);

    } else {
        cmd = ngx_alloc(sizeof(ngx_http_ai_redis_cmd_t), &rds->log);
        if (cmd == NULL) {
            return NULL;
        }
    }

    ngx_memzero(cmd, sizeof(ngx_http_ai_redis_cmd_t));

    return cmd;
}


static void
ngx_http_ai_redis_cmd_put(ngx_http_ai_redis_t *rds,
    ngx_http_ai_redis_cmd_t *cmd)
{
    cmd->handler = NULL;
    cmd->data = NULL;
    cmd->done = 1;

    if (rds->nfree >= NGX_HTTP_AI_REDIS_MAX_FREE) {
        ngx_free(cmd);
        return;
    }

    ngx_queue_insert_head(&rds->free, &cmd->queue);
    rds->nfree++;
}
