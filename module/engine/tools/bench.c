/*
 * aie-bench: the engine's benchmark (make bench, bench/engine/run.sh).
 * Every figure is measured twice in the same run: with the fastest kernels
 * the CPU has and with the scalar reference (AIE_FORCE_SCALAR=1, read when
 * a backend is created), and the outputs of both are checked.
 *
 *   aie-bench --models DIR --random FILE [--out RESULTS.md] [--threads N]
 *             [--quick]
 *
 *   1. stories260K F32 and Q8_0: one stream, greedy, 256 tokens from BOS,
 *      one thread;
 *   2. a memory-bound random ~100M Q8_0 model (aie-mkrandom): single-stream
 *      decode against the read roofline of its working set (a buffer the
 *      size of the weights, read between decode passes), decode bandwidth
 *      = weight bytes per token x tokens/s; DRAM's rate for information;
 *   3. the same model, 16 concurrent streams through the engine;
 *   4. tokenizer encode MB/s on one core: the figure checked is one cold
 *      pass over varied text (--corpus FILE, up to two: the repository's
 *      prose and its whole text), the word cache starting empty; one
 *      paragraph repeated is kept for information.
 *
 *   aie-bench ... --only-tokenizer   just part 4, to stderr
 */

#include <errno.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../aigw_engine.h"


#define LILY  "Once upon a time, there was a little girl named Lily."


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}


static void
force_scalar(int on)
{
    if (on) {
        setenv("AIE_FORCE_SCALAR", "1", 1);
    } else {
        unsetenv("AIE_FORCE_SCALAR");
    }
}


typedef struct {
    char    *buf;
    size_t   len;
    size_t   cap;
} text_t;


static int
collect(void *data, const char *s, size_t n)
{
    text_t  *t = data;

    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';

    return 0;
}


/*
 * Single-stream greedy generation of n tokens after the prompt tokens,
 * repeated for at least `seconds`; returns the best tokens/s and leaves
 * the text of the last run in text.
 */
static double
gen_rate(aie_model_t *model, int threads, const int *prompt, int n_prompt,
    int n, int n_ctx, double seconds, int min_runs, text_t *text)
{
    aie_request_params_t  rp;
    aie_seq_t            *seq;
    aie_usage_t           usage;
    char                  err[256];
    double                t0, t1, best = 0, start;
    int                   runs = 0;

    aie_model_set_threads(model, threads);
    seq = aie_seq_new(model, n_ctx);
    if (seq == NULL) {
        return 0;
    }

    aie_request_params_default(&rp);
    rp.prompt_tokens = prompt;
    rp.n_prompt_tokens = n_prompt;
    rp.max_tokens = n;
    rp.ignore_eos = 1;
    rp.sampling.temperature = 0.0f;

    start = now();
    do {
        text->len = 0;
        t0 = now();
        aie_generate(seq, &rp, collect, text, &usage, err, sizeof(err));
        t1 = now();
        if (usage.completion_tokens / (t1 - t0) > best) {
            best = usage.completion_tokens / (t1 - t0);
        }
        runs++;
    } while (runs < min_runs || now() - start < seconds);

    aie_seq_free(seq);

    return best;
}


/* read bandwidth: threads sum disjoint parts of a large buffer */

typedef struct {
    const char  *p;
    size_t       n;
    size_t       pf;        /* software prefetch this far ahead; 0: none */
    double       sink;
} bw_part_t;


#if defined(__x86_64__)

__attribute__((target("avx2")))
static void *
bw_read(void *arg)
{
    bw_part_t  *b = arg;
    __m256i     a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t      i;

    for (i = 0; i + 128 <= b->n; i += 128) {
        if (b->pf) {
            _mm_prefetch(b->p + i + b->pf, _MM_HINT_T1);
            _mm_prefetch(b->p + i + b->pf + 64, _MM_HINT_T1);
        }
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)
                                                    (b->p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)
                                                    (b->p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)
                                                    (b->p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)
                                                    (b->p + i + 96)));
    }

    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    b->sink = (double) _mm256_extract_epi64(a0, 0);

    return NULL;
}

#else

static void *
bw_read(void *arg)
{
    bw_part_t       *b = arg;
    const uint64_t  *p = (const uint64_t *) b->p;
    uint64_t         a = 0;
    size_t           i;

    for (i = 0; i < b->n / 8; i++) {
        a ^= p[i];
    }

    b->sink = (double) a;

    return NULL;
}

#endif


/* size bytes aligned to 2 MB, on huge pages when asked and available */
static char *
bw_alloc(size_t size, int huge)
{
    char    *m, *p;
    size_t   align = (size_t) 2 << 20;

    m = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        return NULL;
    }

    /* keep exactly [p, p + size) mapped */
    p = (char *) (((uintptr_t) m + align - 1) & ~(uintptr_t) (align - 1));
    if (p > m) {
        munmap(m, (size_t) (p - m));
    }
    munmap(p + size, (size_t) (m + size + align - (p + size)));
#ifdef MADV_HUGEPAGE
    if (huge) {
        (void) madvise(p, size, MADV_HUGEPAGE);
    }
#else
    (void) huge;
#endif

    return p;
}


static void
bw_free(char *p, size_t size)
{
    if (p != NULL) {
        munmap(p, size);
    }
}


/*
 * The best of several passes of `threads` threads reading disjoint parts
 * of a buffer on 4 KB pages (huge = 0) or transparent huge pages (1, what
 * the engine's packed weights get).
 */
static double bw_pass(const char *buf, size_t size, int threads, size_t pf);


static double
bandwidth(int threads, size_t size, int reps, int huge, double *copy_gbs)
{
    char       *buf, *dst;
    double      t0, t1, g, best = 0, cbest = 0;
    int         r;

    *copy_gbs = 0;

    buf = bw_alloc(size, huge);
    dst = bw_alloc(size, huge);
    if (buf == NULL || dst == NULL) {
        bw_free(buf, size);
        bw_free(dst, size);
        return 0;
    }
    memset(buf, 1, size);
    memset(dst, 2, size);

    for (r = 0; r < reps; r++) {
        g = bw_pass(buf, size, threads, 0) * 1e9;
        best = g > best ? g : best;

        t0 = now();
        memcpy(dst, buf, size);
        t1 = now();
        cbest = 2.0 * size / (t1 - t0) > cbest ? 2.0 * size / (t1 - t0)
                                                 : cbest;
    }

    bw_free(buf, size);
    bw_free(dst, size);
    *copy_gbs = cbest / 1e9;

    return best / 1e9;
}


/* one pass of `threads` threads reading buf: GB/s */
static double
bw_pass(const char *buf, size_t size, int threads, size_t pf)
{
    bw_part_t   part[64];
    pthread_t   th[64];
    double      t0, t1;
    int         i;

    t0 = now();
    for (i = 0; i < threads; i++) {
        part[i].p = buf + size / threads * i;
        part[i].n = size / threads & ~(size_t) 127;
        part[i].pf = pf;
        pthread_create(&th[i], NULL, bw_read, &part[i]);
    }
    for (i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    t1 = now();

    return size / (t1 - t0) / 1e9;
}


/*
 * The read roofline of the decode's working set: the best of a plain read
 * loop and two with software prefetch (the decode prefetches), each pass
 * of `threads` threads over a buffer as large as the weights read per
 * token.  Where the last-level cache holds that much (260 MiB on the
 * benchmark VM against 116 MB of weights), the weights are read from the
 * cache and so is this buffer: the roofline is where the bytes come from,
 * not only DRAM.
 */
static double
roof_pass(const char *buf, size_t size, int threads)
{
    static const size_t  pf[] = { 0, 2048, 8192 };
    double               g, best = 0;
    size_t               i;

    for (i = 0; i < sizeof(pf) / sizeof(pf[0]); i++) {
        g = bw_pass(buf, size, threads, pf[i]);
        best = g > best ? g : best;
    }

    return best;
}


typedef struct {
    int     pairs;
    double  ratio_med, ratio_min, ratio_max;    /* decode / roofline */
    double  dec_med, roof_med;                  /* tok/s, GB/s */
    double  size_mb;                            /* the roofline's buffer */
} interleaved_t;


/*
 * The VM's read bandwidth flips between states within seconds, so a
 * roofline measured once before and once after a long decode may not be
 * the one the decode saw.  Here short decode passes alternate with short
 * roofline passes (R D R D ... R, the best of two roof_pass() over a
 * buffer the size of the weights, on huge pages as the packed weights
 * are), and each decode pass is compared with the higher of the two
 * rooflines around it (never the lower: that would flatter it).
 */
static void
interleaved(aie_model_t *m, int threads, double bytes_tok, int pairs,
    int tokens, interleaved_t *res)
{
    size_t   align = (size_t) 2 << 20;
    size_t   size = ((size_t) bytes_tok + align - 1) & ~(align - 1);
    char    *buf;
    double   roof[65], ratio[64], dec[64], r, d, s;
    int      bos = 1, k, a, b;
    text_t   text = { NULL, 0, 0 };

    memset(res, 0, sizeof(*res));
    pairs = pairs > 64 ? 64 : pairs;

    buf = bw_alloc(size, 1);
    if (buf == NULL) {
        return;
    }
    memset(buf, 1, size);

    for (k = 0; k <= pairs; k++) {
        r = roof_pass(buf, size, threads);
        s = roof_pass(buf, size, threads);
        roof[k] = r > s ? r : s;

        if (k == pairs) {
            break;
        }

        dec[k] = gen_rate(m, threads, &bos, 1, tokens, 256, 0, 1, &text);
    }

    for (k = 0; k < pairs; k++) {
        r = roof[k] > roof[k + 1] ? roof[k] : roof[k + 1];
        ratio[k] = dec[k] * bytes_tok / 1e9 / r;
    }

    /* medians by sorting copies */
    for (a = 0; a < pairs; a++) {
        for (b = a + 1; b < pairs; b++) {
            if (ratio[b] < ratio[a]) {
                d = ratio[a]; ratio[a] = ratio[b]; ratio[b] = d;
            }
            if (dec[b] < dec[a]) {
                d = dec[a]; dec[a] = dec[b]; dec[b] = d;
            }
        }
    }
    for (a = 0; a <= pairs; a++) {
        for (b = a + 1; b <= pairs; b++) {
            if (roof[b] < roof[a]) {
                d = roof[a]; roof[a] = roof[b]; roof[b] = d;
            }
        }
    }

    res->pairs = pairs;
    res->ratio_med = pairs % 2 ? ratio[pairs / 2]
                     : (ratio[pairs / 2 - 1] + ratio[pairs / 2]) / 2;
    res->ratio_min = ratio[0];
    res->ratio_max = ratio[pairs - 1];
    res->dec_med = pairs % 2 ? dec[pairs / 2]
                   : (dec[pairs / 2 - 1] + dec[pairs / 2]) / 2;
    res->roof_med = roof[pairs / 2];
    res->size_mb = size / 1e6;

    bw_free(buf, size);
    free(text.buf);
}


/* 16 concurrent streams through the engine: aggregate tokens/s */
static double
engine_rate(aie_model_t *model, int threads, int streams, int n,
    int check_tokens, int **tokens_out, int kv_f16)
{
    aie_engine_params_t   ep;
    aie_request_params_t  rp;
    aie_engine_t         *engine;
    aie_request_t       **req;
    aie_delta_t           d;
    aie_usage_t           usage;
    struct pollfd         pfd;
    uint64_t              cnt;
    char                  err[256];
    int                   efd, i, left, total = 0, prompt[64], k;
    double                t0, t1;

    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    aie_engine_params_default(&ep);
    ep.n_threads = threads;
    ep.max_batch = streams;
    ep.n_ctx = n + 8;
    ep.kv_f16 = kv_f16;
    ep.notify_fd = efd;
    ep.max_unread = 1 << 20;

    engine = aie_engine_start(model, &ep, err, sizeof(err));
    if (engine == NULL) {
        fprintf(stderr, "aie-bench: %s\n", err);
        return 0;
    }

    req = calloc((size_t) streams, sizeof(*req));

    t0 = now();
    for (i = 0; i < streams; i++) {
        aie_request_params_default(&rp);
        prompt[0] = 1;
        prompt[1] = 300 + i * 17;      /* a different prompt per stream */
        rp.prompt_tokens = prompt;
        rp.n_prompt_tokens = 2;
        rp.max_tokens = n;
        rp.ignore_eos = 1;
        rp.sampling.temperature = 0.0f;
        req[i] = aie_engine_submit(engine, &rp);
    }

    left = streams;
    pfd.fd = efd;
    pfd.events = POLLIN;
    while (left > 0) {
        poll(&pfd, 1, 100);
        if (read(efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN) {
            break;
        }
        for (i = 0; i < streams; i++) {
            while (req[i] != NULL && aie_request_poll(req[i], &d) == 1) {
                if (tokens_out != NULL) {
                    for (k = 0; k < d.n_tokens; k++) {
                        int  *tk = tokens_out[i];

                        if (tk[0] < check_tokens) {
                            tk[1 + tk[0]++] = d.tokens[k];
                        }
                    }
                }
                if (d.finish != AIE_FINISH_NONE) {
                    aie_request_usage(req[i], &usage);
                    total += usage.completion_tokens;
                    aie_request_release(req[i]);
                    req[i] = NULL;
                    left--;
                    break;
                }
            }
        }
    }
    t1 = now();

    aie_engine_stop(engine);
    close(efd);
    free(req);

    return total / (t1 - t0);
}


static const char  *paragraph =
    "Once upon a time, there was a little girl named Lily. She loved to "
    "play outside in the park with her friends. One day, she saw a big red "
    "ball under a tree. \"Can I play with it?\" she asked her mom. Her mom "
    "smiled and said, \"Yes, but be careful and share it with the other "
    "children.\" Lily ran to the ball and kicked it high into the sky. The "
    "ball flew over the fence and landed in Mr. Brown's garden, next to his "
    "vegetables and 42 yellow flowers. Lily felt sad, but Mr. Brown came "
    "out, laughed, and threw the ball back. \"Thank you!\" said Lily. From "
    "that day on, they were good friends, and every Sunday at 3:15 p.m. "
    "they drank lemonade together while the birds sang in the trees.\n";


static double
tok_rate(aie_model_t *model, const char *text, size_t len, int *out,
    int max, int *n_tokens)
{
    double  t0, t1, best = 0, start = now();
    int     n = 0, runs = 0;

    do {
        t0 = now();
        n = aie_tokenize(model, text, len, 1, out, max);
        t1 = now();
        if (len / (t1 - t0) > best) {
            best = len / (t1 - t0);
        }
        runs++;
    } while (runs < 3 || now() - start < 1.0);

    *n_tokens = n;
    return best / 1e6;
}


static double
cpu_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}


typedef struct {
    const char  *name;
    char        *text;
    size_t       len;
    double       first_cpu;     /* MB/s: the first pass, CPU time */
    double       first_wall;    /* MB/s: the same pass, wall-clock time */
    double       med_cpu[2];    /* MB/s: median of 5 more passes, per vocab */
    double       first[2];
    double       wall[2];
    int          n_tokens[2];
} corpus_t;


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


/*
 * Encode MB/s over varied text: the first pass (CPU time of this thread,
 * and wall-clock time) and the median CPU-time rate of five more.  Every
 * call starts with an empty word cache; only the CPU's caches are warmer
 * in the later passes.
 */
static void
tok_cold(aie_model_t *model, corpus_t *c, int v, int *out, int max)
{
    double  c0, w0, r[5];
    int     i;

    c0 = cpu_now();
    w0 = now();
    c->n_tokens[v] = aie_tokenize(model, c->text, c->len, 1, out, max);
    c->first[v] = c->len / (cpu_now() - c0) / 1e6;
    c->wall[v] = c->len / (now() - w0) / 1e6;

    for (i = 0; i < 5; i++) {
        c0 = cpu_now();
        aie_tokenize(model, c->text, c->len, 1, out, max);
        r[i] = c->len / (cpu_now() - c0) / 1e6;
    }
    qsort(r, 5, sizeof(double), cmp_double);
    c->med_cpu[v] = r[2];
}


static char *
read_file(const char *path, size_t *len)
{
    FILE    *f = fopen(path, "rb");
    char    *buf = NULL;
    long     n;

    if (f == NULL) {
        return NULL;
    }

    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0
        && fseek(f, 0, SEEK_SET) == 0)
    {
        buf = malloc((size_t) n + 1);
        if (buf != NULL && fread(buf, 1, (size_t) n, f) != (size_t) n) {
            free(buf);
            buf = NULL;
        }
        if (buf != NULL) {
            buf[n] = '\0';
            *len = (size_t) n;
        }
    }

    fclose(f);
    return buf;
}


/*
 * Part 4: encode MB/s on one core, with the stories vocabulary (512) and
 * the random model's (32000): varied text (the corpora, one cold pass
 * each, the figure checked) and one paragraph repeated (best of several
 * passes; the word cache makes that easy).  Returns the repeated text's
 * length.
 */
static size_t
tokenizer_bench(const char *stories, const char *random_path, int quick,
    corpus_t *corp, int n_corp, double tok_mb[2], int n_toks[2])
{
    const char   *paths[2] = { stories, random_path };
    aie_model_t  *m;
    char          err[256], *big;
    size_t        big_len, plen, max_len, i;
    int           v, c, *toks;

    plen = strlen(paragraph);
    big_len = (size_t) (quick ? 1 : 4) << 20;
    big = malloc(big_len + 1);
    for (i = 0; i < big_len; i += plen) {
        memcpy(big + i, paragraph, big_len - i < plen ? big_len - i : plen);
    }
    big[big_len] = '\0';

    max_len = big_len;
    for (c = 0; c < n_corp; c++) {
        max_len = corp[c].len > max_len ? corp[c].len : max_len;
    }
    toks = malloc((max_len + 2) * sizeof(int));

    for (v = 0; v < 2; v++) {
        m = aie_model_load(paths[v], NULL, err, sizeof(err));
        if (m == NULL) {
            fprintf(stderr, "aie-bench: %s\n", err);
            exit(1);
        }

        /* varied text first, while nothing has run through the tokenizer */
        for (c = 0; c < n_corp; c++) {
            tok_cold(m, &corp[c], v, toks, (int) corp[c].len + 2);
            fprintf(stderr, "tokenizer, %s vocab, %s (%.2f MB, %d tokens): "
                    "first pass %.1f MB/s CPU (%.1f wall), median of 5 "
                    "more %.1f MB/s\n", v ? "32000" : "512", corp[c].name,
                    corp[c].len / 1e6, corp[c].n_tokens[v], corp[c].first[v],
                    corp[c].wall[v], corp[c].med_cpu[v]);
        }

        tok_mb[v] = tok_rate(m, big, big_len, toks, (int) big_len + 2,
                             &n_toks[v]);
        fprintf(stderr, "tokenizer, %s vocab, a paragraph repeated: "
                "%.1f MB/s (%d tokens)\n", v ? "32000" : "512", tok_mb[v],
                n_toks[v]);
        aie_model_free(m);
    }

    free(big);
    free(toks);

    return big_len;
}


/* the 1-minute load average: other work on the machine skews every figure */
static double
load_avg(void)
{
    FILE    *f = fopen("/proc/loadavg", "r");
    double   l = -1;

    if (f != NULL) {
        if (fscanf(f, "%lf", &l) != 1) {
            l = -1;
        }
        fclose(f);
    }

    return l;
}


static void
cpu_info(char *model, size_t cap, char *flags, size_t fcap)
{
    FILE   *f = fopen("/proc/cpuinfo", "r");
    char    line[8192], *p;
    size_t  used = 0;
    static const char  *want[] = {
        "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
        "avx512_vnni", NULL
    };
    int     i;
    char    tok[64];

    snprintf(model, cap, "unknown");
    flags[0] = '\0';
    if (f == NULL) {
        return;
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "model name", 10) == 0
            && (p = strchr(line, ':')) != NULL)
        {
            snprintf(model, cap, "%s", p + 2);
            model[strcspn(model, "\n")] = '\0';
        }
        if (strncmp(line, "flags", 5) == 0 && flags[0] == '\0') {
            line[strcspn(line, "\n")] = ' ';
            for (i = 0; want[i] != NULL; i++) {
                snprintf(tok, sizeof(tok), " %s ", want[i]);
                if (strstr(line, tok) != NULL) {
                    used += (size_t) snprintf(flags + used, fcap - used,
                                              "%s%s", used ? " " : "",
                                              want[i]);
                }
            }
        }
    }

    fclose(f);
}


int
main(int argc, char **argv)
{
    const char        *dir = NULL, *random_path = NULL, *out_path = NULL;
    int                threads = (int) sysconf(_SC_NPROCESSORS_ONLN);
    int                quick = 0, i, j, ok_story[2][2], bos = 1;
    int                streams = 16, agree, **seqtok, n_check = 16;
    int                only_tok = 0, n_corp = 0;
    corpus_t           corp[2];
    interleaved_t      il;
    double             ones[8], aggs[8], ratios[8], ratio_med;
    int                n_rounds;
    char               path[1024], err[256], cpu[256], flags[512];
    aie_model_t       *m;
    aie_model_info_t   info;
    text_t             text = { NULL, 0, 0 };
    double             story[2][2], bw, copy_bw = 0, dec[2], agg, one_engine;
    double             kvr[4];
    double             bytes_tok, tok_mb[2], t_ms, load0, load1;
    double             bw_4k, bw_huge, bw1, bw_after, dec1, copy2;
    size_t             big_len;
    int                n_toks[2];
    FILE              *out = stdout;
    time_t             tt = time(NULL);
    char               when[64];
    const char        *kern[2];
    static const char  *files[2] = {
        "stories260K.gguf", "stories260K-q8_0.gguf"
    };

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--models") == 0) {
            dir = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--random") == 0) {
            random_path = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--out") == 0) {
            out_path = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) {
            threads = atoi(argv[++i]);
        } else if (i + 1 < argc && strcmp(argv[i], "--corpus") == 0
                   && n_corp < 2)
        {
            corp[n_corp].name = argv[++i];
            corp[n_corp].text = read_file(argv[i], &corp[n_corp].len);
            if (corp[n_corp].text == NULL) {
                fprintf(stderr, "aie-bench: cannot read \"%s\"\n", argv[i]);
                return 1;
            }
            corp[n_corp].name = strrchr(argv[i], '/') != NULL
                                ? strrchr(argv[i], '/') + 1 : argv[i];
            n_corp++;
        } else if (strcmp(argv[i], "--only-tokenizer") == 0) {
            only_tok = 1;
        } else {
            fprintf(stderr, "usage: aie-bench --models DIR --random FILE "
                    "[--out FILE] [--threads N] [--corpus FILE]... [--quick] "
                    "[--only-tokenizer]\n");
            return 2;
        }
    }

    if (dir == NULL || random_path == NULL || threads < 1) {
        fprintf(stderr, "aie-bench: --models and --random are needed\n");
        return 2;
    }

    cpu_info(cpu, sizeof(cpu), flags, sizeof(flags));
    load0 = load_avg();

    if (only_tok) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[0]);
        tokenizer_bench(path, random_path, quick, corp, n_corp, tok_mb,
                        n_toks);
        return 0;
    }

    /* 1. stories260K, one stream, one thread */
    for (i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);

        for (j = 0; j < 2; j++) {          /* 0: fast, 1: scalar */
            force_scalar(j);
            m = aie_model_load(path, NULL, err, sizeof(err));
            if (m == NULL) {
                fprintf(stderr, "aie-bench: %s\n", err);
                return 1;
            }
            story[i][j] = gen_rate(m, 1, &bos, 1, 256, 512,
                                   quick ? 0.3 : 1.5, 3, &text);
            kern[j] = aie_model_kernels(m);
            ok_story[i][j] = text.buf != NULL
                             && strncmp(text.buf, LILY, strlen(LILY)) == 0;
            fprintf(stderr, "%s [%s]: %.0f tokens/s, %s: %.60s...\n",
                    files[i], kern[j], story[i][j],
                    ok_story[i][j] ? "Lily" : "DIFFERENT", text.buf);
            aie_model_free(m);
        }
    }
    force_scalar(0);

    /* 2. memory-bound model: bandwidth and single-stream decode */
    bw_4k = bandwidth(threads, (size_t) 512 << 20, quick ? 3 : 6, 0,
                      &copy_bw);
    bw_huge = bandwidth(threads, (size_t) 512 << 20, quick ? 3 : 6, 1,
                        &copy2);
    copy_bw = copy2 > copy_bw ? copy2 : copy_bw;
    bw1 = bandwidth(1, (size_t) 512 << 20, quick ? 2 : 3, 1, &copy2);
    bw = bw_huge > bw_4k ? bw_huge : bw_4k;
    fprintf(stderr, "read bandwidth, %d threads: %.1f GB/s on 4 KB pages, "
            "%.1f on huge pages (memcpy %.1f); 1 thread %.1f\n",
            threads, bw_4k, bw_huge, copy_bw, bw1);

    m = aie_model_load(random_path, NULL, err, sizeof(err));
    if (m == NULL) {
        fprintf(stderr, "aie-bench: %s\n", err);
        return 1;
    }
    aie_model_info(m, &info);
    bytes_tok = (double) info.weight_bytes;

    dec[0] = gen_rate(m, threads, &bos, 1, quick ? 32 : 64, 256,
                      quick ? 0.5 : 2.0, 2, &text);
    fprintf(stderr, "random %s [%s], %d threads: %.1f tokens/s, %.1f GB/s "
            "(%.0f%% of %.1f)\n", info.weight_type, aie_model_kernels(m),
            threads, dec[0], dec[0] * bytes_tok / 1e9,
            100 * dec[0] * bytes_tok / 1e9 / bw, bw);
    dec1 = gen_rate(m, 1, &bos, 1, quick ? 32 : 64, 256, quick ? 0.3 : 1.0,
                    2, &text);
    interleaved(m, threads, bytes_tok, quick ? 5 : 15, 32, &il);
    fprintf(stderr, "interleaved, %d pairs: decode %.1f tok/s (median), "
            "roofline %.1f GB/s (median, %.0f MB buffer); decode / roofline "
            "around it: median %.0f%%, %.0f-%.0f%%\n", il.pairs, il.dec_med,
            il.roof_med, il.size_mb, 100 * il.ratio_med, 100 * il.ratio_min,
            100 * il.ratio_max);
    aie_model_free(m);

    /* the roofline after the decode too: the VM's bandwidth drifts */
    bw_after = bandwidth(threads, (size_t) 512 << 20, quick ? 3 : 6, 1,
                         &copy2);
    fprintf(stderr, "read bandwidth after the decode: %.1f GB/s; 1 thread "
            "decode %.1f tokens/s\n", bw_after, dec1);
    bw = bw_after > bw ? bw_after : bw;

    force_scalar(1);
    m = aie_model_load(random_path, NULL, err, sizeof(err));
    dec[1] = gen_rate(m, threads, &bos, 1, quick ? 4 : 8, 256, 0, 1, &text);
    fprintf(stderr, "random [%s]: %.1f tokens/s\n", aie_model_kernels(m),
            dec[1]);
    aie_model_free(m);
    force_scalar(0);

    /* 3. 16 streams through the engine, and batched == sequential */
    m = aie_model_load(random_path, NULL, err, sizeof(err));
    seqtok = calloc((size_t) streams, sizeof(int *));
    for (i = 0; i < streams; i++) {
        seqtok[i] = calloc((size_t) n_check + 1, sizeof(int));
    }
    engine_rate(m, threads, streams, quick ? 16 : 64, n_check, seqtok, 0);

    /*
     * rounds of one stream then 16, each round's ratio on its own (the
     * one stream follows the bandwidth's state, the batch hardly): the
     * medians are the figures, the range goes with them
     */
    n_rounds = quick ? 2 : 5;
    for (i = 0; i < n_rounds; i++) {
        ones[i] = engine_rate(m, threads, 1, quick ? 32 : 64, 0, NULL, 0);
        aggs[i] = engine_rate(m, threads, streams, quick ? 32 : 64, 0, NULL,
                              0);
        ratios[i] = aggs[i] / ones[i];
        fprintf(stderr, "engine round %d: 1 stream %.1f tokens/s, %d "
                "streams %.1f tokens/s (%.2fx)\n", i + 1, ones[i], streams,
                aggs[i], ratios[i]);
    }
    qsort(ones, (size_t) n_rounds, sizeof(double), cmp_double);
    qsort(aggs, (size_t) n_rounds, sizeof(double), cmp_double);
    qsort(ratios, (size_t) n_rounds, sizeof(double), cmp_double);
    one_engine = (ones[(n_rounds - 1) / 2] + ones[n_rounds / 2]) / 2;
    agg = (aggs[(n_rounds - 1) / 2] + aggs[n_rounds / 2]) / 2;
    ratio_med = (ratios[(n_rounds - 1) / 2] + ratios[n_rounds / 2]) / 2;

    /* each stream alone must give the tokens it gave in the batch */
    agree = 0;
    for (i = 0; i < streams; i++) {
        aie_seq_t  *s = aie_seq_new(m, 64);
        float      *lg = malloc((size_t) info.vocab_size * sizeof(float));
        int         tk[2] = { 1, 300 + i * 17 }, ok = 1, k, v, best;

        aie_eval(s, tk, 2, lg);
        for (k = 0; k < n_check && k < seqtok[i][0]; k++) {
            best = 0;
            for (v = 1; v < info.vocab_size; v++) {
                best = lg[v] > lg[best] ? v : best;
            }
            ok &= best == seqtok[i][1 + k];
            aie_eval(s, &best, 1, lg);
        }
        agree += ok && seqtok[i][0] == n_check;
        free(lg);
        aie_seq_free(s);
    }
    fprintf(stderr, "engine, medians of %d rounds: 1 stream %.1f tokens/s, "
            "%d streams %.1f tokens/s; ratio %.2fx (%.2f-%.2f); batched == "
            "alone for %d/%d streams\n", n_rounds, one_engine, streams, agg,
            ratio_med, ratios[0], ratios[n_rounds - 1], agree, streams);

    /*
     * for information: 16 streams of 256 tokens, where attention reads
     * long caches, with F32 and F16 keys and values (kv=f16), alternating
     */
    for (i = 0; i < 4; i++) {
        kvr[i] = engine_rate(m, threads, streams, quick ? 64 : 256, 0, NULL,
                             i % 2);
    }
    fprintf(stderr, "engine, %d streams of %d tokens: kv=f32 %.1f, %.1f "
            "tokens/s; kv=f16 %.1f, %.1f\n", streams, quick ? 64 : 256,
            kvr[0], kvr[2], kvr[1], kvr[3]);
    aie_model_free(m);

    /* 4. tokenizer */
    snprintf(path, sizeof(path), "%s/%s", dir, files[0]);
    big_len = tokenizer_bench(path, random_path, quick, corp, n_corp,
                              tok_mb, n_toks);

    load1 = load_avg();

    /* the report */
    if (out_path != NULL) {
        out = fopen(out_path, "w");
        if (out == NULL) {
            perror(out_path);
            return 1;
        }
    }

    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&tt));
    t_ms = 1000.0 / dec[0];

    fprintf(out,
        "# aigw engine benchmark: results\n\n"
        "Written by `bench/engine/run.sh` (`make -C module/engine bench`); "
        "edits are lost.\n\n"
        "Run: %s%s. Machine: %s, %ld cores online, flags: %s. "
        "Load average (1 min) at the start and at the end of the run: "
        "%.2f, %.2f. "
        "Fast kernels: `%s`; reference: the engine's scalar path "
        "(`AIE_FORCE_SCALAR=1`), measured in the same run.\n\n",
        when, quick ? " (--quick)" : "", cpu,
        sysconf(_SC_NPROCESSORS_ONLN), flags, load0, load1, kern[0]);

    fprintf(out,
        "| benchmark | scalar reference | fast | speed-up | target | |\n"
        "| --- | ---: | ---: | ---: | --- | --- |\n");
    for (i = 0; i < 2; i++) {
        fprintf(out, "| stories260K %s, 1 stream, greedy, 256 tokens from "
                "BOS, 1 thread | %.0f tok/s | %.0f tok/s | %.2fx | "
                "≥ 25 000 tok/s | %s |\n", i == 0 ? "F32" : "Q8_0",
                story[i][1], story[i][0], story[i][0] / story[i][1],
                story[i][0] >= 25000 ? "PASS" : "MISS");
    }
    fprintf(out, "| random %.0fM Q8_0 (dim %d, %d layers, hidden %d, vocab "
            "%d), 1 stream, %d threads: decode | %.1f tok/s | %.1f tok/s "
            "| %.1fx | | |\n", (double) info.weight_bytes / 1.0625 / 1e6,
            info.dim, info.n_layers, info.hidden_dim, info.vocab_size,
            threads, dec[1], dec[0], dec[0] / dec[1]);
    fprintf(out, "| same: decode bandwidth vs the read roofline of its "
            "working set, measured around it (%d short decode passes of 32 "
            "tokens alternating with passes reading a %.0f MB buffer, the "
            "weights' size; each against the higher roofline beside it): "
            "median, range | | %.0f%%, %.0f-%.0f%% (decode %.1f tok/s, "
            "roofline %.1f GB/s, medians) | | ≥ 70%% | %s |\n", il.pairs,
            il.size_mb, 100 * il.ratio_med, 100 * il.ratio_min,
            100 * il.ratio_max, il.dec_med, il.roof_med,
            il.ratio_med >= 0.70 ? "PASS" : "MISS");
    fprintf(out, "| for information: decode bandwidth (%.1f MB of weights "
            "per token) vs a 512 MiB buffer's read rate, %.1f GB/s (DRAM "
            "where the last-level cache is smaller) | %.1f GB/s (%.0f%%) | "
            "%.1f GB/s (%.0f%%) | | | |\n", bytes_tok / 1e6, bw,
            dec[1] * bytes_tok / 1e9, 100 * dec[1] * bytes_tok / 1e9 / bw,
            dec[0] * bytes_tok / 1e9, 100 * dec[0] * bytes_tok / 1e9 / bw);
    fprintf(out, "| same: %d concurrent streams through the engine, "
            "aggregate, %d rounds of (1 stream, then %d) | | %.1f tok/s "
            "vs %.1f: %.2fx (median of the rounds' ratios; range "
            "%.2f-%.2fx) | | ≥ 4x | %s |\n", streams, n_rounds, streams, agg,
            one_engine, ratio_med, ratios[0], ratios[n_rounds - 1],
            ratio_med >= 4.0 ? "PASS" : "MISS");
    fprintf(out, "| for information: %d streams of %d tokens (attention "
            "over long caches), F32 keys and values vs `kv=f16`, two "
            "alternating runs each | | %.0f, %.0f vs %.0f, %.0f tok/s "
            "(%.2fx) | | | |\n", streams, quick ? 64 : 256, kvr[0], kvr[2],
            kvr[1], kvr[3], (kvr[1] + kvr[3]) / (kvr[0] + kvr[2]));
    /* the figure checked: varied text, one cold pass, both vocabularies */
    for (i = 0; i < n_corp; i++) {
        fprintf(out, "| tokenizer encode, varied text `%s` (%.2f MB), one "
                "cold pass (CPU time, 1 core; stories 512 vocab / 32000 "
                "vocab) | | %.1f / %.1f MB/s | | ≥ 50 MB/s | %s |\n", corp[i].name,
                corp[i].len / 1e6, corp[i].first[0], corp[i].first[1],
                corp[i].first[0] >= 50 && corp[i].first[1] >= 50
                ? "PASS" : "MISS");
    }
    if (n_corp == 0) {
        fprintf(out, "| tokenizer encode, varied text | | not measured "
                "(no --corpus) | | ≥ 50 MB/s | MISS |\n");
    }
    fprintf(out, "| for information: tokenizer encode, %.0f MB of one "
            "paragraph repeated (the word cache hits), 1 core | | "
            "%.1f / %.1f MB/s | | | |\n\n", (double) big_len / (1 << 20),
            tok_mb[0], tok_mb[1]);

    if (n_corp > 0) {
        fprintf(out, "Tokenizer on varied text: each pass starts with an "
                "empty word cache; the first pass right after loading the "
                "vocabulary is the figure checked (CPU time of the thread; "
                "wall-clock time and the median of five more passes in "
                "brackets):");
        for (i = 0; i < n_corp; i++) {
            fprintf(out, " %s: %d / %d tokens, wall %.1f / %.1f MB/s, "
                    "median %.1f / %.1f MB/s%s", corp[i].name,
                    corp[i].n_tokens[0], corp[i].n_tokens[1],
                    corp[i].wall[0], corp[i].wall[1], corp[i].med_cpu[0],
                    corp[i].med_cpu[1], i + 1 < n_corp ? ";" : ".\n\n");
        }
    }

    if (il.ratio_med > 1.0) {
        fprintf(out, "The interleaved decode read more than the read loop "
                "did around it (median %.0f%%): the roofline passes saw "
                "less bandwidth than the machine gave the decode (a VM "
                "whose bandwidth changes state), so this run says nothing "
                "about how close the decode comes to the machine's best.\n\n",
                100 * il.ratio_med);
    }

    fprintf(out,
        "Checks: greedy stories260K text starts \"%s\": F32 fast %s, "
        "scalar %s; Q8_0 fast %s, scalar %s. Batched == alone (first %d "
        "greedy tokens of each of the %d streams vs that stream alone): "
        "%d/%d.\n\n",
        LILY, ok_story[0][0] ? "yes" : "NO", ok_story[0][1] ? "yes" : "NO",
        ok_story[1][0] ? "yes" : "NO", ok_story[1][1] ? "yes" : "NO",
        n_check, streams, agree, streams);
    fprintf(out,
        "Roofline checked: the interleaved passes above, %d threads "
        "reading disjoint halves of a buffer the size of the weights (the "
        "best of a plain read loop and two that prefetch 2 and 8 KB "
        "ahead); where the last-level cache holds the weights, so it does "
        "this buffer. For information, %d threads reading a 512 MiB "
        "buffer (best of several passes), the best of: 4 KB pages before the "
        "decode %.1f GB/s, transparent huge pages (as the packed weights) "
        "before %.1f and after %.1f GB/s (memcpy, read + write: "
        "%.1f GB/s). Decode bandwidth = weight bytes read per token (all "
        "tensor data: the classifier is the tied embedding table) x "
        "tokens/s; %.2f ms per token. One thread: decode %.1f tok/s = "
        "%.1f GB/s, against %.1f GB/s for one thread's read loop (huge "
        "pages).\n",
        threads, threads, bw_4k, bw_huge, bw_after, copy_bw, t_ms, dec1,
        dec1 * bytes_tok / 1e9, bw1);

    if (out != stdout) {
        fclose(out);
    }

    free(text.buf);
    for (i = 0; i < n_corp; i++) {
        free(corp[i].text);
    }
    for (i = 0; i < streams; i++) {
        free(seqtok[i]);
    }
    free(seqtok);

    return ok_story[0][0] && ok_story[0][1] && agree == streams ? 0 : 1;
}
