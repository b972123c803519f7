/*
 * stream_client: many concurrent OpenAI-style SSE streams over libcurl's
 * multi interface (the multi_socket API on an epoll loop), for the load
 * proof (issue 11).
 *
 *   stream_client -u URL [-n total] [-c concurrency] [-r starts/s]
 *                 [-d seconds] [-k chunks] [-m model] [-K key] [-P procs]
 *                 [-a naddr] [-A first] [-t timeout_s] [-q progress_s]
 *
 * -n  streams to run in all (0: as many as -d allows; default 100)
 * -c  at most this many at once (default: -n)
 * -r  start at most this many streams per second, all processes together
 *     (the ramp; 0: no limit; default 1000)
 * -d  start no new stream after this many seconds (0: no limit)
 * -k  data events every stream must deliver before "data: [DONE]"
 * -m  model name in the request body (default "load")
 * -K  send "Authorization: Bearer KEY"
 * -P  processes (default 1): each runs its share of -n, -c and -r under its
 *     own descriptor limit, raised to the hard limit
 * -a  spread the source addresses over 127.0.0.<A> .. 127.0.0.<A+naddr-1>
 *     (default 8, from -A 10), each has its own ephemeral ports
 * -t  a stream that has not finished after this many seconds fails
 * -q  print a progress line every this many seconds on stderr (0: none)
 *
 * Measured per stream: time to first byte (the request's start to the
 * first body byte), the gap between two successive data events, the time
 * to completion; counted: every data event of every stream.  A stream
 * fails on a transport error, a status other than 200, a missing
 * "data: [DONE]" or a count of data events other than -k.  The summary
 * (stdout) ends with one line "RESULT {json}" for scripts.
 */

#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#define HIST_SIZE   2560
#define MAX_PROCS   64
#define NERR_KEEP   4


typedef struct {
    uint64_t  b[HIST_SIZE];
    uint64_t  n;
    uint64_t  max;
} hist_t;


typedef struct {
    uint64_t  started;
    uint64_t  finished;
    uint64_t  ok;
    uint64_t  failed;
    uint64_t  failed_transport;
    uint64_t  failed_status;
    uint64_t  failed_chunks;        /* wrong count or no [DONE] */
    uint64_t  chunks_expected;
    uint64_t  chunks_received;
    uint64_t  active;
    uint64_t  peak_active;
    int64_t   first_finish_us;      /* from the start of the run */
    int64_t   last_start_us;
    hist_t    ttfb;
    hist_t    gap;
    hist_t    total;
    char      errors[NERR_KEEP][300];
    int       nerrors;
    int       done;
} proc_stats_t;


typedef struct {
    CURL              *easy;
    struct curl_slist *headers;
    int64_t            start_us;
    int64_t            last_event_us;
    int                events;
    int                done_marker;
    int                got_byte;
    int                line_start;   /* at the start of an event line */
    char               head[8];      /* the line's first bytes */
    int                head_len;
    int                in_line;
    char               errbuf[CURL_ERROR_SIZE];
} stream_t;


static const char    *opt_url;
static long           opt_total = 100;
static long           opt_conc = -1;
static double         opt_rate = 1000;
static double         opt_duration;
static int            opt_chunks = 10;
static const char    *opt_model = "load";
static const char    *opt_key;
static int            opt_procs = 1;
static int            opt_naddr = 8;
static int            opt_addr_first = 10;
static long           opt_timeout = 600;
static double         opt_progress;

static proc_stats_t  *shared;
static proc_stats_t  *st;
static int            ep;
static CURLM         *multi;
static int64_t        timer_at = -1;
static int64_t        t0_us;
static char           body[1024];
static volatile sig_atomic_t  stopping;


static int64_t
now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* log-linear buckets: exact below 128 us, then 64 per power of two */

static int
hist_index(uint64_t v)
{
    int  e;

    if (v < 128) {
        return (int) v;
    }
    e = 63 - __builtin_clzll(v);
    v >>= (e - 6);
    e = 128 + (e - 7) * 64 + (int) (v - 64);
    return e < HIST_SIZE ? e : HIST_SIZE - 1;
}


static uint64_t
hist_value(int i)
{
    int  e;

    if (i < 128) {
        return i;
    }
    e = (i - 128) / 64 + 7;
    return ((uint64_t) (64 + (i - 128) % 64) << (e - 6))
           + ((uint64_t) 1 << (e - 7));      /* the bucket's middle */
}


static void
hist_add(hist_t *h, int64_t v)
{
    if (v < 0) {
        v = 0;
    }
    h->b[hist_index(v)]++;
    h->n++;
    if ((uint64_t) v > h->max) {
        h->max = v;
    }
}


static double
hist_pct(const hist_t *h, double p)
{
    uint64_t  want, seen;
    int       i;

    if (h->n == 0) {
        return 0;
    }
    want = (uint64_t) (p / 100.0 * h->n);
    if (want >= h->n) {
        want = h->n - 1;
    }
    seen = 0;
    for (i = 0; i < HIST_SIZE; i++) {
        seen += h->b[i];
        if (seen > want) {
            return (hist_value(i) < h->max ? hist_value(i) : h->max)
                   / 1000.0;                     /* ms */
        }
    }
    return h->max / 1000.0;
}


static void
note_error(const char *fmt, const char *a, long b)
{
    if (st->nerrors < NERR_KEEP) {
        snprintf(st->errors[st->nerrors], sizeof(st->errors[0]), fmt, a, b);
        st->nerrors++;
    }
}


/* SSE: count "data: " lines; "data: [DONE]" ends the stream */

static void
end_of_line(stream_t *s)
{
    int64_t  t;

    if (s->head_len >= 6 && memcmp(s->head, "data: ", 6) == 0) {
        if (s->head_len >= 7 && s->head[6] == '[') {
            s->done_marker = 1;
            return;
        }
        t = now_us();
        if (s->events > 0) {
            hist_add(&st->gap, t - s->last_event_us);
        }
        s->last_event_us = t;
        s->events++;
    }
}


static size_t
on_body(char *data, size_t size, size_t n, void *userp)
{
    stream_t  *s = userp;
    size_t     i, len;
    char       ch;

    len = size * n;
    if (!s->got_byte) {
        s->got_byte = 1;
        hist_add(&st->ttfb, now_us() - s->start_us);
    }
    for (i = 0; i < len; i++) {
        ch = data[i];
        if (ch == '\r') {
            continue;
        }
        if (ch == '\n') {
            if (s->in_line) {
                end_of_line(s);
            }
            s->in_line = 0;
            s->head_len = 0;
            continue;
        }
        s->in_line = 1;
        if (s->head_len < (int) sizeof(s->head)) {
            s->head[s->head_len++] = ch;
        }
    }
    return len;
}


static int
on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    struct epoll_event  ev;

    (void) e;
    (void) userp;
    if (what == CURL_POLL_REMOVE) {
        if (sockp != NULL) {
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            curl_multi_assign(multi, fd, NULL);
        }
        return 0;
    }
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0)
                | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (sockp == NULL) {
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        }
        curl_multi_assign(multi, fd, (void *) 1);
    } else {
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
    return 0;
}


static int
on_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void) m;
    (void) userp;
    timer_at = timeout_ms < 0 ? -1 : now_us() + timeout_ms * 1000;
    return 0;
}


static void
start_stream(long idx)
{
    stream_t  *s;
    char       iface[40];

    s = calloc(1, sizeof(stream_t));
    s->easy = curl_easy_init();
    if (s == NULL || s->easy == NULL) {
        fprintf(stderr, "stream_client: out of memory\n");
        exit(1);
    }
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    s->headers = curl_slist_append(s->headers, "Expect:");
    if (opt_key != NULL) {
        char  auth[300];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", opt_key);
        s->headers = curl_slist_append(s->headers, auth);
    }
    snprintf(iface, sizeof(iface), "host!127.0.0.%ld",
             opt_addr_first + idx % opt_naddr);

    curl_easy_setopt(s->easy, CURLOPT_URL, opt_url);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(s->easy, CURLOPT_INTERFACE, iface);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, opt_timeout);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);

    s->start_us = now_us();
    st->started++;
    st->active++;
    if (st->active > st->peak_active) {
        st->peak_active = st->active;
    }
    st->last_start_us = s->start_us - t0_us;
    curl_multi_add_handle(multi, s->easy);
}


static void
finish_streams(void)
{
    CURLMsg   *msg;
    stream_t  *s;
    long       status;
    int        left, bad;

    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
        status = 0;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
        if (s->in_line) {
            end_of_line(s);
        }

        st->finished++;
        st->active--;
        if (st->first_finish_us == 0) {
            st->first_finish_us = now_us() - t0_us;
        }
        st->chunks_expected += opt_chunks;
        st->chunks_received += s->events;
        bad = 1;
        if (msg->data.result != CURLE_OK) {
            st->failed_transport++;
            note_error("transport: %s (%ld)",
                       s->errbuf[0] ? s->errbuf
                                    : curl_easy_strerror(msg->data.result),
                       (long) msg->data.result);
        } else if (status != 200) {
            st->failed_status++;
            note_error("status %s%ld", "", status);
        } else if (s->events != opt_chunks || !s->done_marker) {
            st->failed_chunks++;
            note_error(s->done_marker ? "chunks: %s%ld received"
                                      : "no [DONE]%s, %ld events",
                       "", (long) s->events);
        } else {
            bad = 0;
        }
        if (bad) {
            st->failed++;
        } else {
            st->ok++;
            hist_add(&st->total, now_us() - s->start_us);
        }
        curl_multi_remove_handle(multi, s->easy);
        curl_easy_cleanup(s->easy);
        curl_slist_free_all(s->headers);
        free(s);
    }
}


static void
run_proc(int id, long total, long conc, double rate)
{
    struct epoll_event  evs[1024];
    struct rlimit       rl;
    int64_t             now, next_start, wait_us;
    long                idx;
    int                 i, n, running, timeout;

    (void) id;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conc);

    idx = id;
    next_start = now_us();
    running = 0;
    for ( ;; ) {
        now = now_us();
        /* ramp: start what the rate and the concurrency allow */
        while (!stopping && (total == 0 || (long) st->started < total)
               && (long) st->active < conc && now >= next_start
               && (opt_duration <= 0
                   || now - t0_us < (int64_t) (opt_duration * 1e6)))
        {
            start_stream(idx);
            idx += opt_procs;
            next_start = rate > 0 ? next_start + (int64_t) (1e6 / rate) : now;
            if (rate > 0 && next_start < now - 100000) {
                next_start = now - 100000;   /* no bursts after a stall */
            }
        }
        if (st->active == 0
            && (stopping || (total > 0 && (long) st->started >= total)
                || (opt_duration > 0
                    && now - t0_us >= (int64_t) (opt_duration * 1e6))))
        {
            break;
        }

        wait_us = 100000;
        if (timer_at >= 0) {
            wait_us = timer_at - now < wait_us ? timer_at - now : wait_us;
        }
        if ((long) st->active < conc && next_start - now < wait_us) {
            wait_us = next_start - now;
        }
        timeout = wait_us <= 0 ? 0 : (int) ((wait_us + 999) / 1000);
        n = epoll_wait(ep, evs, 1024, timeout);
        for (i = 0; i < n; i++) {
            curl_multi_socket_action(multi, evs[i].data.fd,
                ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0)
                | ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0)
                | ((evs[i].events & (EPOLLERR | EPOLLHUP))
                   ? CURL_CSELECT_ERR : 0),
                &running);
        }
        if (timer_at >= 0 && now_us() >= timer_at) {
            timer_at = -1;
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        finish_streams();
    }
    curl_multi_cleanup(multi);
    st->done = 1;
}


static void
hist_merge(hist_t *to, const hist_t *from)
{
    int  i;

    for (i = 0; i < HIST_SIZE; i++) {
        to->b[i] += from->b[i];
    }
    to->n += from->n;
    if (from->max > to->max) {
        to->max = from->max;
    }
}


static void
merge(proc_stats_t *t)
{
    int  p, i;

    memset(t, 0, sizeof(*t));
    for (p = 0; p < opt_procs; p++) {
        proc_stats_t *s = &shared[p];
        t->started += s->started;
        t->finished += s->finished;
        t->ok += s->ok;
        t->failed += s->failed;
        t->failed_transport += s->failed_transport;
        t->failed_status += s->failed_status;
        t->failed_chunks += s->failed_chunks;
        t->chunks_expected += s->chunks_expected;
        t->chunks_received += s->chunks_received;
        t->active += s->active;
        t->peak_active += s->peak_active;
        if (s->first_finish_us
            && (t->first_finish_us == 0
                || s->first_finish_us < t->first_finish_us))
        {
            t->first_finish_us = s->first_finish_us;
        }
        if (s->last_start_us > t->last_start_us) {
            t->last_start_us = s->last_start_us;
        }
        hist_merge(&t->ttfb, &s->ttfb);
        hist_merge(&t->gap, &s->gap);
        hist_merge(&t->total, &s->total);
        for (i = 0; i < s->nerrors && t->nerrors < NERR_KEEP; i++) {
            memcpy(t->errors[t->nerrors++], s->errors[i],
                   sizeof(t->errors[0]));
        }
    }
}


static void
on_stop(int sig)
{
    (void) sig;
    stopping = 1;
}


static void
usage(void)
{
    fprintf(stderr, "usage: stream_client -u URL [-n total] [-c conc] "
            "[-r starts/s] [-d s] [-k chunks] [-m model] [-K key] [-P procs] "
            "[-a naddr] [-A first] [-t s] [-q s]\n");
    exit(2);
}


int
main(int argc, char **argv)
{
    proc_stats_t  *t;
    pid_t          kids[MAX_PROCS];
    double         secs, last_progress;
    long           share_n, share_c;
    int            opt, p, all_done;

    while ((opt = getopt(argc, argv, "u:n:c:r:d:k:m:K:P:a:A:t:q:")) != -1) {
        switch (opt) {
        case 'u': opt_url = optarg; break;
        case 'n': opt_total = atol(optarg); break;
        case 'c': opt_conc = atol(optarg); break;
        case 'r': opt_rate = atof(optarg); break;
        case 'd': opt_duration = atof(optarg); break;
        case 'k': opt_chunks = atoi(optarg); break;
        case 'm': opt_model = optarg; break;
        case 'K': opt_key = optarg; break;
        case 'P': opt_procs = atoi(optarg); break;
        case 'a': opt_naddr = atoi(optarg); break;
        case 'A': opt_addr_first = atoi(optarg); break;
        case 't': opt_timeout = atol(optarg); break;
        case 'q': opt_progress = atof(optarg); break;
        default: usage();
        }
    }
    if (opt_url == NULL || opt_procs < 1 || opt_procs > MAX_PROCS
        || opt_naddr < 1 || opt_addr_first < 1
        || opt_addr_first + opt_naddr > 255
        || (opt_total == 0 && opt_duration <= 0))
    {
        usage();
    }
    if (opt_conc <= 0) {
        opt_conc = opt_total;
    }
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":"
             "\"Tell me a long story about load tests.\"}],\"stream\":true}",
             opt_model);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    shared = mmap(NULL, sizeof(proc_stats_t) * opt_procs,
                  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    t = calloc(1, sizeof(proc_stats_t));
    if (shared == MAP_FAILED || t == NULL) {
        perror("stream_client: mmap");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);

    t0_us = now_us();
    for (p = 0; p < opt_procs; p++) {
        share_n = opt_total / opt_procs + (p < opt_total % opt_procs);
        share_c = opt_conc / opt_procs + (p < opt_conc % opt_procs);
        kids[p] = fork();
        if (kids[p] == 0) {
            st = &shared[p];
            run_proc(p, share_n, share_c > 0 ? share_c : 1,
                     opt_rate / opt_procs);
            _exit(0);
        }
    }

    last_progress = 0;
    for ( ;; ) {
        all_done = 1;
        for (p = 0; p < opt_procs; p++) {
            if (kids[p] > 0 && waitpid(kids[p], NULL, WNOHANG) == kids[p]) {
                kids[p] = 0;
            }
            if (kids[p] > 0) {
                all_done = 0;
            }
        }
        if (all_done) {
            break;
        }
        if (stopping) {
            for (p = 0; p < opt_procs; p++) {
                if (kids[p] > 0) {
                    kill(kids[p], SIGTERM);
                }
            }
        }
        usleep(100000);
        secs = (now_us() - t0_us) / 1e6;
        if (opt_progress > 0 && secs - last_progress >= opt_progress) {
            last_progress = secs;
            merge(t);
            fprintf(stderr, "[%6.1f s] active %lu started %lu ok %lu "
                    "failed %lu chunks %lu\n", secs,
                    (unsigned long) t->active, (unsigned long) t->started,
                    (unsigned long) t->ok, (unsigned long) t->failed,
                    (unsigned long) t->chunks_received);
        }
    }

    secs = (now_us() - t0_us) / 1e6;
    merge(t);
    printf("streams: %lu started, %lu completed, %lu failed "
           "(transport %lu, status %lu, missing chunks/[DONE] %lu)\n",
           (unsigned long) t->started, (unsigned long) t->ok,
           (unsigned long) t->failed, (unsigned long) t->failed_transport,
           (unsigned long) t->failed_status,
           (unsigned long) t->failed_chunks);
    printf("chunks: %lu expected, %lu received\n",
           (unsigned long) t->chunks_expected,
           (unsigned long) t->chunks_received);
    printf("concurrency: peak %lu streams open at once (sum over processes);"
           " last start %.1f s, first finish %.1f s\n",
           (unsigned long) t->peak_active, t->last_start_us / 1e6,
           t->first_finish_us / 1e6);
    printf("TTFB ms: p50 %.2f p99 %.2f max %.2f\n",
           hist_pct(&t->ttfb, 50), hist_pct(&t->ttfb, 99),
           t->ttfb.max / 1000.0);
    printf("gap ms: p50 %.2f p99 %.2f max %.2f (%lu gaps)\n",
           hist_pct(&t->gap, 50), hist_pct(&t->gap, 99), t->gap.max / 1000.0,
           (unsigned long) t->gap.n);
    printf("completion ms: p50 %.1f p99 %.1f max %.1f\n",
           hist_pct(&t->total, 50), hist_pct(&t->total, 99),
           t->total.max / 1000.0);
    printf("elapsed %.1f s, %.1f streams/s completed\n", secs, t->ok / secs);
    for (p = 0; p < t->nerrors; p++) {
        printf("error: %s\n", t->errors[p]);
    }
    printf("RESULT {\"started\":%lu,\"ok\":%lu,\"failed\":%lu,"
           "\"failed_transport\":%lu,\"failed_status\":%lu,"
           "\"failed_chunks\":%lu,\"chunks_expected\":%lu,"
           "\"chunks_received\":%lu,\"peak_active\":%lu,"
           "\"last_start_s\":%.3f,\"first_finish_s\":%.3f,"
           "\"ttfb_p50_ms\":%.3f,\"ttfb_p99_ms\":%.3f,\"ttfb_max_ms\":%.3f,"
           "\"gap_p50_ms\":%.3f,\"gap_p99_ms\":%.3f,\"gap_max_ms\":%.3f,"
           "\"total_p50_ms\":%.1f,\"total_p99_ms\":%.1f,"
           "\"elapsed_s\":%.3f,\"rps\":%.1f}\n",
           (unsigned long) t->started, (unsigned long) t->ok,
           (unsigned long) t->failed, (unsigned long) t->failed_transport,
           (unsigned long) t->failed_status,
           (unsigned long) t->failed_chunks,
           (unsigned long) t->chunks_expected,
           (unsigned long) t->chunks_received,
           (unsigned long) t->peak_active,
           t->last_start_us / 1e6, t->first_finish_us / 1e6,
           hist_pct(&t->ttfb, 50), hist_pct(&t->ttfb, 99),
           t->ttfb.max / 1000.0,
           hist_pct(&t->gap, 50), hist_pct(&t->gap, 99), t->gap.max / 1000.0,
           hist_pct(&t->total, 50), hist_pct(&t->total, 99),
           secs, t->ok / secs);
    curl_global_cleanup();
    return t->failed == 0 && t->started > 0 ? 0 : 1;
}
