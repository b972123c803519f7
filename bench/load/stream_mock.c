/*
 * stream_mock: an OpenAI-compatible streaming provider for the load proof
 * (issue 11).  One epoll loop per worker process, non-blocking sockets, one
 * binary heap of stream deadlines per worker whose head sets the epoll_wait
 * timeout; tens of thousands of concurrent streams cost a few hundred bytes
 * each.
 *
 *   stream_mock [-p port] [-l naddr] [-w workers] [-k chunks] [-i ms]
 *
 * -p  port (0: pick a free one; default 0); "READY <port>" is printed on
 *     stdout once every socket listens
 * -l  listen on 127.0.0.1 .. 127.0.0.<naddr> (default 1), so that a proxy
 *     in front can spread its upstream connections over several addresses
 * -w  worker processes sharing the listening sockets (default 2); each has
 *     its own descriptor limit, raised to the hard limit
 * -k  content chunks per stream (default 10)
 * -i  interval between two chunks, in milliseconds (default 1000)
 *
 * POST .../chat/completions with "stream":true in the body answers
 * "HTTP/1.1 200", text/event-stream, chunked transfer encoding: K
 * chat.completion.chunk events, the first one at once, then one every
 * interval; the last one carries finish_reason "stop"; then "data: [DONE]".
 * Without "stream":true: a chat.completion JSON.  Connections are kept
 * alive (HTTP/1.1) unless the request says "Connection: close".
 *
 * Keywords in the request's model name (as tests/mocks/mock_provider.py):
 *   -chunks<N>      N chunks instead of -k
 *   -interval<MS>   MS milliseconds instead of -i
 *   -error-<CODE>   an OpenAI error JSON with that status (429: retry-after)
 *   -reset          RST before any byte of the answer
 *   -reset-headers  RST in the middle of the status line and headers
 *   -reset-mid      RST after two chunks of the stream
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#define MAX_LISTEN     16
#define MAX_WORKERS    16
#define MAX_REQUEST    (1024 * 1024)
#define MODEL_MAX      96


typedef enum {
    CONN_READING = 0,
    CONN_STREAMING,
    CONN_CLOSING_AFTER_WRITE
} conn_state_t;


typedef struct {
    int            fd;
    conn_state_t   state;
    int            keepalive;
    int            reset_mid;
    int            want_out;        /* EPOLLOUT armed */

    char          *in;
    size_t         in_len;
    size_t         in_cap;

    char          *out;
    size_t         out_len;
    size_t         out_pos;
    size_t         out_cap;

    long           heap_idx;        /* -1: not in the heap */
    int64_t        deadline;        /* ms, CLOCK_MONOTONIC */
    int            sent;            /* chunks sent */
    int            chunks;
    int            interval;
    unsigned long  id;
    char           model[MODEL_MAX];
} mock_conn_t;


static int            opt_port;
static int            opt_naddr = 1;
static int            opt_workers = 2;
static int            opt_chunks = 10;
static int            opt_interval = 1000;

static int            listen_fds[MAX_LISTEN];
static int            nlisten;

static mock_conn_t  **heap;
static long           heap_len;
static long           heap_cap;

static int            ep;
static unsigned long  next_id;
static volatile sig_atomic_t  stop;


static int64_t
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* the deadline heap */

static void
heap_swap(long a, long b)
{
    mock_conn_t  *t;

    t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->heap_idx = a;
    heap[b]->heap_idx = b;
}


static void
heap_up(long i)
{
    while (i > 0 && heap[(i - 1) / 2]->deadline > heap[i]->deadline) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}


static void
heap_down(long i)
{
    long  l, r, m;

    for ( ;; ) {
        l = 2 * i + 1;
        r = l + 1;
        m = i;
        if (l < heap_len && heap[l]->deadline < heap[m]->deadline) {
            m = l;
        }
        if (r < heap_len && heap[r]->deadline < heap[m]->deadline) {
            m = r;
        }
        if (m == i) {
            return;
        }
        heap_swap(i, m);
        i = m;
    }
}


static void
heap_push(mock_conn_t *c, int64_t deadline)
{
    if (heap_len == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 1024;
        heap = realloc(heap, heap_cap * sizeof(mock_conn_t *));
        if (heap == NULL) {
            perror("stream_mock: realloc");
            exit(1);
        }
    }
    c->deadline = deadline;
    c->heap_idx = heap_len;
    heap[heap_len++] = c;
    heap_up(c->heap_idx);
}


static void
heap_remove(mock_conn_t *c)
{
    long  i;

    i = c->heap_idx;
    if (i < 0) {
        return;
    }
    c->heap_idx = -1;
    heap_len--;
    if (i == heap_len) {
        return;
    }
    heap[i] = heap[heap_len];
    heap[i]->heap_idx = i;
    heap_down(i);
    heap_up(heap[i]->heap_idx);
}


/* connections */

static void
conn_free(mock_conn_t *c, int rst)
{
    struct linger  lg = { 1, 0 };

    heap_remove(c);
    if (rst) {
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd);              /* also leaves the epoll set */
    free(c->in);
    free(c->out);
    free(c);
}


static int
out_append(mock_conn_t *c, const char *data, size_t len)
{
    size_t  cap;
    char   *p;

    if (c->out_pos == c->out_len) {
        c->out_pos = c->out_len = 0;
    }
    if (c->out_len + len > c->out_cap) {
        cap = c->out_cap ? c->out_cap : 512;
        while (cap < c->out_len + len) {
            cap *= 2;
        }
        p = realloc(c->out, cap);
        if (p == NULL) {
            return -1;
        }
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}


static void
set_out_interest(mock_conn_t *c, int want)
{
    struct epoll_event  ev;

    if (c->want_out == want) {
        return;
    }
    ev.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}


/* 0: all written or waiting for EPOLLOUT; -1: the connection is gone */
static int
flush_out(mock_conn_t *c)
{
    ssize_t  n;

    while (c->out_pos < c->out_len) {
        n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
                 MSG_NOSIGNAL);
        if (n > 0) {
            c->out_pos += n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out_interest(c, 1);
            return 0;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return -1;
    }
    c->out_pos = c->out_len = 0;
    set_out_interest(c, 0);
    return 0;
}


static int
out_chunk(mock_conn_t *c, const char *data, size_t len)
{
    char  head[16];
    int   n;

    n = snprintf(head, sizeof(head), "%zx\r\n", len);
    if (out_append(c, head, n) != 0 || out_append(c, data, len) != 0
        || out_append(c, "\r\n", 2) != 0)
    {
        return -1;
    }
    return 0;
}


static int
send_chunk_event(mock_conn_t *c)
{
    char  buf[512];
    int   n, last;

    last = (c->sent + 1 == c->chunks);
    n = snprintf(buf, sizeof(buf),
        "data: {\"id\":\"chatcmpl-load%lu\",\"object\":\"chat.completion.chunk\","
        "\"created\":1741569952,\"model\":\"%s\","
        "\"system_fingerprint\":\"fp_load\",\"choices\":[{\"index\":0,"
        "\"delta\":{%s\"content\":\"tok%d \"},\"logprobs\":null,"
        "\"finish_reason\":%s}]}\n\n%s",
        c->id, c->model,
        c->sent == 0 ? "\"role\":\"assistant\"," : "",
        c->sent, last ? "\"stop\"" : "null",
        last ? "data: [DONE]\n\n" : "");
    if (out_chunk(c, buf, n) != 0) {
        return -1;
    }
    c->sent++;
    if (last && out_append(c, "0\r\n\r\n", 5) != 0) {
        return -1;
    }
    return 0;
}


static int
send_simple(mock_conn_t *c, int status, const char *reason,
    const char *extra, const char *body)
{
    char  head[512];
    int   n;

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nx-request-id: req_load%lu\r\n"
                 "%s%s\r\n",
                 status, reason, strlen(body), c->id, extra,
                 c->keepalive ? "" : "Connection: close\r\n");
    if (out_append(c, head, n) != 0 || out_append(c, body, strlen(body)) != 0) {
        return -1;
    }
    return 0;
}


static int
keyword_int(const char *model, const char *kw, int def)
{
    const char  *p;

    p = strstr(model, kw);
    if (p == NULL) {
        return def;
    }
    p += strlen(kw);
    if (*p < '0' || *p > '9') {
        return def;
    }
    return atoi(p);
}


static void
extract_model(const char *body, size_t len, char *model)
{
    const char  *p, *end, *q;
    size_t       n;

    model[0] = '\0';
    end = body + len;
    p = memmem(body, len, "\"model\"", 7);
    if (p == NULL) {
        return;
    }
    p += 7;
    while (p < end && (*p == ' ' || *p == ':' || *p == '\t')) {
        p++;
    }
    if (p >= end || *p != '"') {
        return;
    }
    p++;
    q = memchr(p, '"', end - p);
    if (q == NULL) {
        return;
    }
    n = q - p;
    if (n >= MODEL_MAX) {
        n = MODEL_MAX - 1;
    }
    memcpy(model, p, n);
    model[n] = '\0';
}


static int
header_has(const char *head, size_t len, const char *name, const char *value)
{
    const char  *p, *end, *eol;
    size_t       nl;

    nl = strlen(name);
    end = head + len;
    for (p = head; p < end; p = eol + 1) {
        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            return 0;
        }
        if ((size_t) (eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0
            && p[nl] == ':')
        {
            if (value == NULL) {
                return 1;
            }
            if (memmem(p + nl + 1, eol - p - nl - 1, value, strlen(value))
                != NULL)
            {
                return 1;
            }
        }
    }
    return 0;
}


static long
content_length(const char *head, size_t len)
{
    const char  *p, *end, *eol;

    end = head + len;
    for (p = head; p < end; p = eol + 1) {
        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            return 0;
        }
        if (eol - p > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            return strtol(p + 15, NULL, 10);
        }
    }
    return 0;
}


/* a complete request is in c->in[0 .. hlen + blen); -1: close at once */
static int
handle_request(mock_conn_t *c, size_t hlen, size_t blen)
{
    const char  *body;
    char         err[512];
    int          code, stream;

    body = c->in + hlen;
    c->id = ++next_id;
    c->keepalive = !header_has(c->in, hlen, "connection", "close");
    extract_model(body, blen, c->model);
    stream = memmem(body, blen, "\"stream\":true", 13) != NULL
             || memmem(body, blen, "\"stream\": true", 14) != NULL;

    if (strncmp(c->in, "POST ", 5) != 0
        || memmem(c->in, hlen, "/chat/completions ", 18) == NULL)
    {
        c->keepalive = 0;
        return send_simple(c, 404, "Not Found", "",
            "{\"error\":{\"message\":\"Unknown request URL\","
            "\"type\":\"invalid_request_error\",\"param\":null,"
            "\"code\":\"unknown_url\"}}");
    }

    if (strstr(c->model, "-reset-headers") != NULL) {
        out_append(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-", 43);
        flush_out(c);
        return -2;
    }
    if (strstr(c->model, "-reset-mid") == NULL
        && strstr(c->model, "-reset") != NULL)
    {
        return -2;
    }

    code = keyword_int(c->model, "-error-", 0);
    if (code >= 400 && code <= 599) {
        snprintf(err, sizeof(err),
                 "{\"error\":{\"message\":\"mock error %d for %s\","
                 "\"type\":\"%s\",\"param\":null,\"code\":\"%s\"}}",
                 code, c->model,
                 code == 429 ? "requests" : "server_error",
                 code == 429 ? "rate_limit_exceeded" : "mock_error");
        return send_simple(c, code, code == 429 ? "Too Many Requests"
                                                : "Error",
                           code == 429 ? "retry-after: 1\r\n"
                                         "retry-after-ms: 1000\r\n" : "",
                           err);
    }

    c->chunks = keyword_int(c->model, "-chunks", opt_chunks);
    c->interval = keyword_int(c->model, "-interval", opt_interval);
    c->reset_mid = strstr(c->model, "-reset-mid") != NULL;
    if (c->chunks < 1) {
        c->chunks = 1;
    }

    if (!stream) {
        snprintf(err, sizeof(err),
            "{\"id\":\"chatcmpl-load%lu\",\"object\":\"chat.completion\","
            "\"created\":1741569952,\"model\":\"%s\",\"choices\":[{\"index\":0,"
            "\"message\":{\"role\":\"assistant\",\"content\":\"Hello from the "
            "load mock.\",\"refusal\":null},\"logprobs\":null,"
            "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,"
            "\"completion_tokens\":5,\"total_tokens\":14}}",
            c->id, c->model);
        return send_simple(c, 200, "OK", "", err);
    }

    snprintf(err, sizeof(err),
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
             "x-request-id: req_load%lu\r\n%s\r\n",
             c->id, c->keepalive ? "" : "Connection: close\r\n");
    c->sent = 0;
    if (out_append(c, err, strlen(err)) != 0 || send_chunk_event(c) != 0) {
        return -1;
    }
    if (c->sent < c->chunks) {
        c->state = CONN_STREAMING;
        heap_push(c, now_ms() + c->interval);
    }
    return 0;
}


/* after a response is queued: back to reading, or close once written */
static void
response_queued(mock_conn_t *c, size_t consumed)
{
    memmove(c->in, c->in + consumed, c->in_len - consumed);
    c->in_len -= consumed;
    if (c->state != CONN_STREAMING) {
        c->state = c->keepalive ? CONN_READING : CONN_CLOSING_AFTER_WRITE;
    }
}


static int process_input(mock_conn_t *c);


static void
on_readable(mock_conn_t *c)
{
    ssize_t  n;
    size_t   cap;
    char    *p;
    char     sink[4096];

    for ( ;; ) {
        if (c->state != CONN_READING) {
            /* a stream is running: only notice the peer going away */
            n = recv(c->fd, sink, sizeof(sink), 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                conn_free(c, 0);
            }
            return;
        }
        if (c->in_cap - c->in_len < 2048) {
            cap = c->in_cap ? c->in_cap * 2 : 4096;
            if (cap > MAX_REQUEST + 4096) {
                conn_free(c, 1);
                return;
            }
            p = realloc(c->in, cap);
            if (p == NULL) {
                conn_free(c, 1);
                return;
            }
            c->in = p;
            c->in_cap = cap;
        }
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1, 0);
        if (n > 0) {
            c->in_len += n;
            if (process_input(c) != 0) {
                return;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        conn_free(c, 0);
        return;
    }
}


/* 0: carry on reading; -1: the connection was freed */
static int
process_input(mock_conn_t *c)
{
    char    *end;
    size_t   hlen;
    long     blen;
    int      rc;

    while (c->state == CONN_READING) {
        c->in[c->in_len] = '\0';
        end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end == NULL) {
            return 0;
        }
        hlen = end + 4 - c->in;
        blen = content_length(c->in, hlen);
        if (blen < 0 || blen > MAX_REQUEST) {
            conn_free(c, 1);
            return -1;
        }
        if (c->in_len < hlen + blen) {
            return 0;
        }
        rc = handle_request(c, hlen, blen);
        if (rc == -2) {
            conn_free(c, 1);
            return -1;
        }
        if (rc != 0) {
            conn_free(c, 0);
            return -1;
        }
        response_queued(c, hlen + blen);
        if (flush_out(c) != 0) {
            conn_free(c, 0);
            return -1;
        }
        if (c->state == CONN_CLOSING_AFTER_WRITE && c->out_len == 0) {
            conn_free(c, 0);
            return -1;
        }
    }
    return 0;
}


static void
on_timer(mock_conn_t *c)
{
    heap_remove(c);
    if (c->reset_mid && c->sent >= 2) {
        conn_free(c, 1);
        return;
    }
    if (send_chunk_event(c) != 0) {
        conn_free(c, 0);
        return;
    }
    if (c->sent < c->chunks) {
        heap_push(c, c->deadline + c->interval);
    } else {
        c->state = c->keepalive ? CONN_READING : CONN_CLOSING_AFTER_WRITE;
    }
    if (flush_out(c) != 0) {
        conn_free(c, 0);
        return;
    }
    if (c->state == CONN_CLOSING_AFTER_WRITE && c->out_len == 0) {
        conn_free(c, 0);
        return;
    }
    if (c->state == CONN_READING && c->in_len > 0) {
        process_input(c);       /* a pipelined request */
    }
}


static void
on_writable(mock_conn_t *c)
{
    if (flush_out(c) != 0) {
        conn_free(c, 0);
        return;
    }
    if (c->state == CONN_CLOSING_AFTER_WRITE && c->out_len == 0) {
        conn_free(c, 0);
    }
}


static void
accept_all(int lfd)
{
    struct epoll_event   ev;
    mock_conn_t         *c;
    int                  fd, one;

    for ( ;; ) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                static int64_t  warned;
                if (now_ms() - warned > 1000) {
                    fprintf(stderr, "stream_mock[%d]: accept: %s\n",
                            (int) getpid(), strerror(errno));
                    warned = now_ms();
                }
            }
            return;
        }
        one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(mock_conn_t));
        if (c == NULL) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->heap_idx = -1;
        c->state = CONN_READING;
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
        }
    }
}


static void
worker_loop(void)
{
    struct epoll_event   evs[512];
    struct epoll_event   ev;
    mock_conn_t         *c;
    int64_t              now;
    int                  i, n, timeout;
    uintptr_t            tag;

    ep = epoll_create1(EPOLL_CLOEXEC);
    for (i = 0; i < nlisten; i++) {
        ev.events = EPOLLIN | EPOLLEXCLUSIVE;
        ev.data.ptr = (void *) (uintptr_t) (i + 1);   /* small tags */
        epoll_ctl(ep, EPOLL_CTL_ADD, listen_fds[i], &ev);
    }

    while (!stop) {
        timeout = 1000;
        if (heap_len > 0) {
            now = now_ms();
            timeout = heap[0]->deadline > now
                      ? (int) (heap[0]->deadline - now) : 0;
        }
        n = epoll_wait(ep, evs, 512, timeout);
        for (i = 0; i < n; i++) {
            tag = (uintptr_t) evs[i].data.ptr;
            if (tag >= 1 && tag <= MAX_LISTEN) {
                accept_all(listen_fds[tag - 1]);
                continue;
            }
            c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                conn_free(c, 0);
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                on_writable(c);
                /* freed? on_writable frees only when closing; then no
                 * EPOLLIN handling is needed, but we cannot know: skip */
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP)) {
                on_readable(c);
            }
        }
        now = now_ms();
        while (heap_len > 0 && heap[0]->deadline <= now) {
            on_timer(heap[0]);
        }
    }
}


static void
on_signal(int sig)
{
    (void) sig;
    stop = 1;
}


/* every worker binds its own sockets with SO_REUSEPORT: the kernel spreads
 * the connections evenly over the workers */
static int
open_listeners(int port)
{
    struct sockaddr_in  sa;
    int                 i, fd, one;
    char                addr[32];

    for (i = 0; i < opt_naddr; i++) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        snprintf(addr, sizeof(addr), "127.0.0.%d", i + 1);
        inet_pton(AF_INET, addr, &sa.sin_addr);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0
            || listen(fd, 65535) != 0)
        {
            close(fd);
            while (--i >= 0) {
                close(listen_fds[i]);
            }
            return -1;
        }
        listen_fds[i] = fd;
    }
    nlisten = opt_naddr;
    return 0;
}


/* a port that is free on 127.0.0.1 .. 127.0.0.<naddr> right now */
static int
pick_port(void)
{
    struct sockaddr_in  sa;
    socklen_t           sl;
    int                 fd, port;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *) &sa, &sl);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}


int
main(int argc, char **argv)
{
    struct rlimit  rl;
    pid_t          kids[MAX_WORKERS];
    int            opt, i, port, tries, pfd[2];
    char           ok;

    while ((opt = getopt(argc, argv, "p:l:w:k:i:")) != -1) {
        switch (opt) {
        case 'p': opt_port = atoi(optarg); break;
        case 'l': opt_naddr = atoi(optarg); break;
        case 'w': opt_workers = atoi(optarg); break;
        case 'k': opt_chunks = atoi(optarg); break;
        case 'i': opt_interval = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: stream_mock [-p port] [-l naddr] "
                            "[-w workers] [-k chunks] [-i ms]\n");
            return 2;
        }
    }
    if (opt_naddr < 1 || opt_naddr > MAX_LISTEN || opt_workers < 1
        || opt_workers > MAX_WORKERS || opt_chunks < 1 || opt_interval < 0)
    {
        fprintf(stderr, "stream_mock: bad option value\n");
        return 2;
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    /* the first worker binds (retrying another port if 0 was asked);
     * the others join its port; each says "ok" through a pipe */
    port = opt_port;
    for (tries = 0; tries < 50; tries++) {
        if (opt_port == 0) {
            port = pick_port();
        }
        if (port > 0 && open_listeners(port) == 0) {
            for (i = 0; i < nlisten; i++) {
                close(listen_fds[i]);
            }
            break;
        }
        port = -1;
        if (opt_port != 0) {
            break;
        }
    }
    if (port < 0 || pipe(pfd) != 0) {
        perror("stream_mock: listen");
        return 1;
    }
    /* the probe above closed its sockets: a worker that cannot bind
     * the same port now reports it */
    for (i = 0; i < opt_workers; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            close(pfd[0]);
            ok = open_listeners(port) == 0 ? 'y' : 'n';
            if (write(pfd[1], &ok, 1) != 1 || ok != 'y') {
                _exit(1);
            }
            close(pfd[1]);
            worker_loop();
            _exit(0);
        }
    }
    close(pfd[1]);
    for (i = 0; i < opt_workers; i++) {
        if (read(pfd[0], &ok, 1) != 1 || ok != 'y') {
            fprintf(stderr, "stream_mock: a worker could not listen on "
                            "port %d\n", port);
            stop = 1;
            break;
        }
    }
    close(pfd[0]);
    if (!stop) {
        printf("READY %d\n", port);
        fflush(stdout);
    }

    while (!stop) {
        pause();
    }
    for (i = 0; i < opt_workers; i++) {
        if (kids[i] > 0) {
            kill(kids[i], SIGTERM);
        }
    }
    for (i = 0; i < opt_workers; i++) {
        if (kids[i] > 0) {
            waitpid(kids[i], NULL, 0);
        }
    }
    return 0;
}
