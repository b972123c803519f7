/*
 * Engine tests: kernels, sampler and stop sequences on synthetic data, then
 * the test models from AIGW_MODELS_DIR (skipped when absent): formats,
 * tokenizer, forward pass, quantised weights, corrupt files and the batch
 * scheduler.  Exits non-zero on any failure.
 */

#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../aigw_engine.h"
#include "../cpu/dot.h"
#include "../cpu/pool.h"
#include "../forward.h"
#include "../gguf.h"
#include "../model.h"
#include "../quant.h"
#include "../stream.h"


static int          aie_failures;
static int          aie_checks;
static const char  *aie_dir;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        aie_checks++;                                                       \
        if (!(cond)) {                                                      \
            aie_failures++;                                                 \
            printf("  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            printf(__VA_ARGS__);                                            \
            printf("\n");                                                   \
        }                                                                   \
    } while (0)

#define LILY  "Once upon a time, there was a little girl named Lily"


static const char *
path_of(const char *file)
{
    static char  buf[8][1024];
    static int   i;

    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", aie_dir, file);
    return buf[i];
}


static uint64_t  rng_state = 88172645463325252ull;

static float
frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float) (rng_state >> 40) / 16777216.0f * 2.0f - 1.0f;
}


/* kernels */

static void
test_kernels_one(const aie_dot_kernels_t *k)
{
    const aie_dot_kernels_t  *s = aie_dot_kernels_scalar();
    static const int          sizes[] = { 1, 7, 32, 64, 100, 172, 256, 4096 };
    float                    *w, *x, ref, got;
    uint16_t                 *h;
    aie_block_q8_0_t         *wq8, *xq8;
    aie_block_q4_0_t         *wq4;
    size_t                    i, j, n, b;

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        n = (size_t) sizes[i];
        w = malloc(n * sizeof(float));
        x = malloc(n * sizeof(float));
        h = malloc(n * sizeof(uint16_t));
        wq8 = malloc((n / 32 + 1) * sizeof(aie_block_q8_0_t));
        xq8 = malloc((n / 32 + 1) * sizeof(aie_block_q8_0_t));
        wq4 = malloc((n / 32 + 1) * sizeof(aie_block_q4_0_t));

        for (j = 0; j < n; j++) {
            w[j] = frand();
            x[j] = frand();
            h[j] = aie_fp32_to_fp16(w[j]);
        }

        ref = s->dot_f32(w, x, (int64_t) n);
        got = k->dot_f32(w, x, (int64_t) n);
        CHECK(fabsf(ref - got) <= 1e-4f * (1 + fabsf(ref)),
              "%s f32 n=%zu %g vs %g", k->name, n, got, ref);

        ref = s->dot_f16(h, x, (int64_t) n);
        got = k->dot_f16(h, x, (int64_t) n);
        CHECK(fabsf(ref - got) <= 1e-4f * (1 + fabsf(ref)),
              "%s f16 n=%zu %g vs %g", k->name, n, got, ref);

        if (n % 32 == 0) {
            aie_quantize_row_q8_0(w, wq8, (int64_t) n);
            aie_quantize_row_q8_0(x, xq8, (int64_t) n);

            for (b = 0; b < n / 32; b++) {
                wq4[b].d = aie_fp32_to_fp16(0.1f + 0.01f * (float) b);
                for (j = 0; j < 16; j++) {
                    wq4[b].qs[j] = (uint8_t) (rng_state >> (j % 8 * 8));
                    frand();
                }
            }

            ref = s->dot_q8_0(wq8, xq8, (int64_t) n);
            got = k->dot_q8_0(wq8, xq8, (int64_t) n);
            CHECK(fabsf(ref - got) <= 1e-4f * (1 + fabsf(ref)),
                  "%s q8_0 n=%zu %g vs %g", k->name, n, got, ref);

            ref = s->dot_q4_0(wq4, xq8, (int64_t) n);
            got = k->dot_q4_0(wq4, xq8, (int64_t) n);
            CHECK(fabsf(ref - got) <= 1e-4f * (1 + fabsf(ref)),
                  "%s q4_0 n=%zu %g vs %g", k->name, n, got, ref);

            /* and the quantised dot stays near the float one */
            ref = s->dot_f32(w, x, (int64_t) n);
            got = s->dot_q8_0(wq8, xq8, (int64_t) n);
            CHECK(fabsf(ref - got) <= 0.02f * sqrtf((float) n),
                  "q8_0 vs f32 n=%zu %g vs %g", n, got, ref);
        }

        free(w);
        free(x);
        free(h);
        free(wq8);
        free(xq8);
        free(wq4);
    }
}


static void
test_kernels(void)
{
    const aie_dot_kernels_t  *k;
    float                     f;
    uint16_t                  hv;

    printf("SIMD kernels against the scalar reference\n");

    /* fp16 conversions: exact for representable values, subnormals too */
    for (hv = 0; hv < 0x7C00; hv += 7) {
        f = aie_fp16_to_fp32(hv);
        CHECK(aie_fp32_to_fp16(f) == hv, "fp16 round trip %04x", hv);
    }
    CHECK(aie_fp16_to_fp32(0x3C00) == 1.0f, "fp16 1.0");
    CHECK(aie_fp16_to_fp32(0xC000) == -2.0f, "fp16 -2.0");

    k = aie_dot_kernels_avx2();
    if (k != NULL) {
        test_kernels_one(k);
    } else {
        printf("  (no AVX2 on this CPU)\n");
    }

    k = aie_dot_kernels_avx512();
    if (k != NULL) {
        test_kernels_one(k);
    } else {
        printf("  (no AVX-512 on this CPU)\n");
    }

    test_kernels_one(aie_dot_kernels_scalar());
}


/*
 * The packed Q8_0 kernel: activations quantised as the scalar quantiser
 * does, whole groups of 16 rows against the scalar dot, batch == one by one
 */
static void
test_mm_packed(const aie_dot_kernels_t *k, const aie_block_q8_0_t *wq,
    int rows, int cols, const float *x, float *out, float *out1)
{
    const aie_dot_kernels_t  *s = aie_dot_kernels_scalar();
    static const int          ns[] = { 1, 3, 16 };
    int                       nb = cols / 32, b, r, ni, n, same, act_same;
    int                       groups = rows / 16;
    aie_block_q8_0_t         *xq, *ref_q;
    float                    *dx, ref, d, worst;
    int32_t                  *cx;
    void                     *wp;
    int64_t                   sum;

    wp = malloc(k->q8_pack_size(rows, cols) + 64);
    xq = malloc((size_t) 16 * nb * sizeof(*xq));
    ref_q = malloc((size_t) nb * sizeof(*ref_q));
    dx = malloc((size_t) 16 * nb * sizeof(float));
    cx = malloc((size_t) 16 * nb * sizeof(int32_t));

    k->q8_pack(wq, (size_t) nb * sizeof(*wq), rows, cols, wp);

    act_same = 1;
    for (b = 0; b < 16; b++) {
        k->q8_act(x + (size_t) b * cols, cols, xq + (size_t) b * nb,
                  dx + (size_t) b * nb, cx + (size_t) b * nb);
        aie_quantize_row_q8_0(x + (size_t) b * cols, ref_q, cols);
        act_same &= memcmp(ref_q, xq + (size_t) b * nb,
                           (size_t) nb * sizeof(*xq)) == 0;
        for (r = 0; r < nb; r++) {
            sum = 0;
            for (ni = 0; ni < 32; ni++) {
                sum += ref_q[r].qs[ni];
            }
            act_same &= cx[b * nb + r] == -128 * sum
                        && dx[b * nb + r] == aie_fp16_to_fp32(ref_q[r].d);
        }
    }
    CHECK(act_same, "%s q8_act cols %d: the scalar quantiser's blocks",
          k->name, cols);

    for (ni = 0; ni < 3; ni++) {
        n = ns[ni];
        k->mm_q8_0_packed(wp, 0, groups, cols, xq, (size_t) nb, dx, cx, n,
                          out, (size_t) rows);
        worst = 0;
        same = 1;
        for (b = 0; b < n; b++) {
            k->mm_q8_0_packed(wp, 1, groups, cols, xq + (size_t) b * nb,
                              (size_t) nb, dx + (size_t) b * nb,
                              cx + (size_t) b * nb, 1, out1, (size_t) rows);
            for (r = 0; r < groups * 16; r++) {
                ref = s->dot_q8_0(wq + (size_t) r * nb, xq + (size_t) b * nb,
                                  cols);
                d = fabsf(ref - out[b * rows + r]) / (1 + fabsf(ref));
                worst = d > worst ? d : worst;
                same &= r < 16 || out1[r] == out[b * rows + r];
            }
        }
        CHECK(worst < 1e-5f, "%s mm_q8_0_packed cols %d n %d: %g", k->name,
              cols, n, worst);
        CHECK(same, "%s mm_q8_0_packed cols %d n %d: batch == one by one",
              k->name, cols, n);
    }

    free(wp);
    free(xq);
    free(ref_q);
    free(dx);
    free(cx);
}


/* the multi-row kernels against the scalar dot, and batch == one by one */
static void
test_mm_one(const aie_dot_kernels_t *k)
{
    const aie_dot_kernels_t  *s = aie_dot_kernels_scalar();
    static const int          cols_list[] = { 64, 96, 172, 768, 2048 };
    static const int          ns[] = { 1, 3, 16 };
    float                    *w, *x, *out, *out1, ref, d, worst;
    aie_block_q8_0_t         *wq, *xq;
    char                     *xp;
    size_t                    ps;
    int                       ci, ni, r, b, c, rows = 37, cols, n, same;

    for (ci = 0; ci < 5; ci++) {
        cols = cols_list[ci];
        w = malloc((size_t) rows * cols * sizeof(float));
        x = malloc((size_t) 16 * cols * sizeof(float));
        out = malloc((size_t) 16 * rows * sizeof(float));
        out1 = malloc((size_t) rows * sizeof(float));
        wq = malloc((size_t) rows * (cols / 32 + 1) * sizeof(*wq));
        xq = malloc((size_t) 16 * (cols / 32 + 1) * sizeof(*xq));
        xp = malloc(16 * (k->q8_prep_size ? k->q8_prep_size(cols) : 1)
                    + 64);
        for (c = 0; c < rows * cols; c++) {
            w[c] = frand();
        }
        for (c = 0; c < 16 * cols; c++) {
            x[c] = frand();
        }

        for (ni = 0; ni < 3 && k->mm_f32 != NULL; ni++) {
            n = ns[ni];
            k->mm_f32(w, (size_t) cols * 4, 0, rows, cols, x,
                      (size_t) cols * 4, n, out, rows);
            worst = 0;
            same = 1;
            for (b = 0; b < n; b++) {
                k->mm_f32(w, (size_t) cols * 4, 0, rows, cols,
                          x + (size_t) b * cols, (size_t) cols * 4, 1, out1,
                          rows);
                for (r = 0; r < rows; r++) {
                    ref = s->dot_f32(w + (size_t) r * cols,
                                     x + (size_t) b * cols, cols);
                    d = fabsf(ref - out[b * rows + r]) / (1 + fabsf(ref));
                    worst = d > worst ? d : worst;
                    same &= out1[r] == out[b * rows + r];
                }
            }
            CHECK(worst < 1e-4f, "%s mm_f32 cols %d n %d: %g", k->name,
                  cols, n, worst);
            CHECK(same, "%s mm_f32 cols %d n %d: batch == one by one",
                  k->name, cols, n);
        }

        if (k->mm_q8_0 != NULL && cols % 32 == 0) {
            ps = k->q8_prep_size ? k->q8_prep_size(cols)
                                 : (size_t) cols / 32 * sizeof(*xq);
            for (r = 0; r < rows; r++) {
                aie_quantize_row_q8_0(w + (size_t) r * cols,
                                      wq + (size_t) r * (cols / 32), cols);
            }
            for (b = 0; b < 16; b++) {
                aie_quantize_row_q8_0(x + (size_t) b * cols,
                                      xq + (size_t) b * (cols / 32), cols);
                if (k->q8_prep) {
                    k->q8_prep(xq + (size_t) b * (cols / 32), cols,
                               xp + b * ps);
                } else {
                    memcpy(xp + b * ps, xq + (size_t) b * (cols / 32), ps);
                }
            }

            for (ni = 0; ni < 3; ni++) {
                n = ns[ni];
                k->mm_q8_0(wq, (size_t) cols / 32 * sizeof(*wq), 0, rows,
                           cols, xp, ps, n, out, rows);
                worst = 0;
                same = 1;
                for (b = 0; b < n; b++) {
                    k->mm_q8_0(wq, (size_t) cols / 32 * sizeof(*wq), 3, rows,
                               cols, xp + b * ps, ps, 1, out1, rows);
                    for (r = 0; r < rows; r++) {
                        ref = s->dot_q8_0(wq + (size_t) r * (cols / 32),
                                          xq + (size_t) b * (cols / 32),
                                          cols);
                        d = fabsf(ref - out[b * rows + r]) / (1 + fabsf(ref));
                        worst = d > worst ? d : worst;
                        same &= r < 3 || out1[r] == out[b * rows + r];
                    }
                }
                CHECK(worst < 1e-5f, "%s mm_q8_0 cols %d n %d: %g",
                      k->name, cols, n, worst);
                CHECK(same, "%s mm_q8_0 cols %d n %d: batch == one by one",
                      k->name, cols, n);
            }
        }

        if (k->mm_q8_0_packed != NULL && cols % 32 == 0) {
            test_mm_packed(k, wq, rows, cols, x, out, out1);
        }

        free(w);
        free(x);
        free(out);
        free(out1);
        free(wq);
        free(xq);
        free(xp);
    }
}


static void
test_attention_one(const aie_dot_kernels_t *k)
{
    const aie_dot_kernels_t  *s = aie_dot_kernels_scalar();
    static const int          hss[] = { 8, 12, 64, 96, 128 };
    static const int          lens[] = { 1, 7, 8, 9, 100 };
    float                     kc[100 * 128], vc[100 * 128], q[128];
    static uint16_t           kh[100 * 128], vh[100 * 128];
    float                     o1[128], o2[128], o3[128], att[128], h[37],
                              h2[37], g[37], worst;
    int                       hi, li, i, hs;

    for (i = 0; i < 100 * 128; i++) {
        kc[i] = frand() * 2;
        vc[i] = frand();
    }

    for (hi = 0; hi < 5; hi++) {
        hs = hss[hi];
        for (i = 0; i < hs; i++) {
            q[i] = frand() * 2;
        }
        for (li = 0; li < 5; li++) {
            s->attention(o1, q, kc, vc, 128, lens[li], hs, 0.3f, att);
            k->attention(o2, q, kc, vc, 128, lens[li], hs, 0.3f, att);
            worst = 0;
            for (i = 0; i < hs; i++) {
                worst = fabsf(o1[i] - o2[i]) > worst ? fabsf(o1[i] - o2[i])
                                                      : worst;
            }
            CHECK(worst < 1e-5f, "%s attention hs %d n %d: %g", k->name, hs,
                  lens[li], worst);
        }
    }

    /*
     * F16 keys and values (kv=f16): the kernel against the scalar F16 one,
     * and both against F32 attention over the same values rounded to F16
     * (the storage is the only difference: the arithmetic is float)
     */
    for (i = 0; i < 100 * 128; i++) {
        kh[i] = aie_fp32_to_fp16(kc[i]);
        vh[i] = aie_fp32_to_fp16(vc[i]);
        kc[i] = aie_fp16_to_fp32(kh[i]);
        vc[i] = aie_fp16_to_fp32(vh[i]);
    }
    for (hi = 0; hi < 5; hi++) {
        hs = hss[hi];
        for (li = 0; li < 5; li++) {
            s->attention(o1, q, kc, vc, 128, lens[li], hs, 0.3f, att);
            k->attention_f16(o2, q, kh, vh, 128, lens[li], hs, 0.3f, att);
            s->attention_f16(o3, q, kh, vh, 128, lens[li], hs, 0.3f, att);
            worst = 0;
            for (i = 0; i < hs; i++) {
                worst = fabsf(o1[i] - o2[i]) > worst ? fabsf(o1[i] - o2[i])
                                                      : worst;
                worst = fabsf(o1[i] - o3[i]) > worst ? fabsf(o1[i] - o3[i])
                                                      : worst;
            }
            CHECK(worst < 1e-5f, "%s attention_f16 hs %d n %d: %g", k->name,
                  hs, lens[li], worst);
        }
    }

    for (i = 0; i < 37; i++) {
        h[i] = g[i] = frand() * 20;
        h2[i] = frand();
    }
    s->silu_mul(h, h2, 37);
    k->silu_mul(g, h2, 37);
    worst = 0;
    for (i = 0; i < 37; i++) {
        worst = fabsf(h[i] - g[i]) > worst ? fabsf(h[i] - g[i]) : worst;
    }
    CHECK(worst < 1e-5f, "%s silu_mul: %g", k->name, worst);
}


static void
test_mm(void)
{
    const aie_dot_kernels_t  *k;

    printf("multi-row matmul, attention and SwiGLU kernels against the "
           "scalar reference\n");

    k = aie_dot_kernels_avx2();
    if (k != NULL) {
        test_mm_one(k);
        test_attention_one(k);
    }

    k = aie_dot_kernels_avx512();
    if (k != NULL) {
        printf("  %s\n", k->name);
        test_mm_one(k);
        test_attention_one(k);
    }

    setenv("AIE_FORCE_SCALAR", "1", 1);
    k = aie_dot_kernels_best();
    CHECK(strcmp(k->name, "scalar") == 0, "AIE_FORCE_SCALAR=1 gives %s",
          k->name);
    unsetenv("AIE_FORCE_SCALAR");
}


/* thread pool: many short jobs back to back, as the forward pass posts */

typedef struct {
    int  *hits;
    int   job;
} aie_pool_job_t;


static void
pool_task(void *arg, int task, int thread)
{
    aie_pool_job_t  *j = arg;

    (void) thread;
    __atomic_add_fetch(&j->hits[task], j->job, __ATOMIC_RELAXED);
}


static void
test_pool(void)
{
    aie_pool_t      *pool;
    aie_pool_job_t   job;
    int              hits[64], threads, i, k, n, ok;

    printf("thread pool: 20000 jobs, each task run exactly once\n");

    for (threads = 2; threads <= 3; threads++) {
        pool = aie_pool_new(threads);
        ok = 1;

        for (i = 0; i < 10000; i++) {
            n = 1 + i % 64;
            memset(hits, 0, sizeof(hits));
            job.hits = hits;
            job.job = 1 + i % 5;
            aie_pool_run(pool, pool_task, &job, n);

            for (k = 0; k < 64; k++) {
                ok &= hits[k] == (k < n ? job.job : 0);
            }
        }

        CHECK(ok, "pool of %d threads ran every task once", threads);
        aie_pool_free(pool);
    }
}


/* sampler */

static void
test_sampler(void)
{
    aie_sampler_params_t  p;
    aie_sampler_t        *s1, *s2;
    float                 logits[10];
    int                   i, a, b, same, seen[10];

    printf("sampler: greedy, seeds, top-k, top-p, penalties\n");

    for (i = 0; i < 10; i++) {
        logits[i] = (float) i * 0.1f;
    }
    logits[3] = 5.0f;

    aie_sampler_params_default(&p);
    p.temperature = 0.0f;
    s1 = aie_sampler_new(10, &p);
    CHECK(aie_sampler_sample(s1, logits) == 3, "greedy picks the maximum");

    /* presence penalty pushes a used token down */
    aie_sampler_free(s1);
    p.presence_penalty = 10.0f;
    s1 = aie_sampler_new(10, &p);
    aie_sampler_accept(s1, 3);
    CHECK(aie_sampler_sample(s1, logits) == 9, "presence penalty");
    aie_sampler_free(s1);

    p.presence_penalty = 0.0f;
    p.frequency_penalty = 3.0f;
    s1 = aie_sampler_new(10, &p);
    aie_sampler_accept(s1, 3);
    CHECK(aie_sampler_sample(s1, logits) == 3, "one use: 5 - 3 still wins");
    aie_sampler_accept(s1, 3);
    CHECK(aie_sampler_sample(s1, logits) == 9, "two uses: 5 - 6 loses");
    aie_sampler_free(s1);

    /* same seed, same draws; another seed, other draws */
    aie_sampler_params_default(&p);
    p.seed = 1234;
    s1 = aie_sampler_new(10, &p);
    s2 = aie_sampler_new(10, &p);
    for (i = 0; i < 10; i++) {
        logits[i] = 0.0f;
    }
    same = 1;
    for (i = 0; i < 200; i++) {
        a = aie_sampler_sample(s1, logits);
        b = aie_sampler_sample(s2, logits);
        same &= a == b;
    }
    CHECK(same, "same seed gives the same tokens");
    aie_sampler_free(s2);
    p.seed = 99;
    s2 = aie_sampler_new(10, &p);
    aie_sampler_reset(s1);
    same = 1;
    for (i = 0; i < 200; i++) {
        same &= aie_sampler_sample(s1, logits) == aie_sampler_sample(s2,
                                                                    logits);
    }
    CHECK(!same, "another seed gives other tokens");
    aie_sampler_free(s1);
    aie_sampler_free(s2);

    /* top-k 3 over distinct logits: only the three best ever come out */
    for (i = 0; i < 10; i++) {
        logits[i] = (float) ((i * 7) % 10) * 0.1f;    /* best: 7, 4, 1 */
    }
    aie_sampler_params_default(&p);
    p.top_k = 3;
    s1 = aie_sampler_new(10, &p);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < 3000; i++) {
        seen[aie_sampler_sample(s1, logits)]++;
    }
    CHECK(seen[7] > 0 && seen[4] > 0 && seen[1] > 0, "top-k keeps three");
    CHECK(seen[7] + seen[4] + seen[1] == 3000, "top-k drops the rest");
    CHECK(seen[7] > seen[4] && seen[4] > seen[1], "top-k keeps the order");
    aie_sampler_free(s1);

    /* top-p: probabilities 0.5, 0.3, 0.15, 0.05 */
    for (i = 0; i < 10; i++) {
        logits[i] = -1e9f;
    }
    logits[2] = logf(0.5f);
    logits[5] = logf(0.3f);
    logits[8] = logf(0.15f);
    logits[0] = logf(0.05f);

    aie_sampler_params_default(&p);
    p.top_p = 0.7f;
    s1 = aie_sampler_new(10, &p);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < 3000; i++) {
        seen[aie_sampler_sample(s1, logits)]++;
    }
    CHECK(seen[2] + seen[5] == 3000 && seen[5] > 0, "top-p 0.7 keeps 2");
    CHECK(seen[2] > 1600 && seen[2] < 2100, "top-p renormalises: %d of "
          "3000 (expect 1875)", seen[2]);
    aie_sampler_free(s1);

    p.top_p = 0.9f;
    s1 = aie_sampler_new(10, &p);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < 3000; i++) {
        seen[aie_sampler_sample(s1, logits)]++;
    }
    CHECK(seen[8] > 0 && seen[0] == 0, "top-p 0.9 keeps 3");
    aie_sampler_free(s1);

    p.top_p = 1.0f;
    s1 = aie_sampler_new(10, &p);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < 5000; i++) {
        seen[aie_sampler_sample(s1, logits)]++;
    }
    CHECK(seen[0] > 150 && seen[0] < 350, "no truncation: token 0 drawn %d "
          "of 5000 (expect 250)", seen[0]);
    aie_sampler_free(s1);
}


/* stop sequences */

static void
test_stopper(void)
{
    aie_stopper_t  st;
    const char    *stops[AIE_MAX_STOP] = { "o W", "\n\n" };
    const char    *out;
    size_t         len;
    char           all[256];
    size_t         n = 0;
    int            rc;

    printf("stop sequences are held back, never emitted\n");

    aie_stopper_init(&st, stops);
    rc = aie_stopper_push(&st, "Hel", 3, &out, &len);
    memcpy(all + n, out, len); n += len;
    CHECK(rc == 0, "no stop yet");
    rc = aie_stopper_push(&st, "lo", 2, &out, &len);
    memcpy(all + n, out, len); n += len;
    CHECK(rc == 0 && n == 4, "\"o\" may start a stop: held (%zu)", n);
    rc = aie_stopper_push(&st, " Wor", 4, &out, &len);
    memcpy(all + n, out, len); n += len;
    CHECK(rc == 1, "stop found across pieces");
    CHECK(n == 4 && memcmp(all, "Hell", 4) == 0, "text before the stop");
    aie_stopper_free(&st);

    aie_stopper_init(&st, stops);
    n = 0;
    aie_stopper_push(&st, "a\n", 2, &out, &len);
    memcpy(all + n, out, len); n += len;
    aie_stopper_push(&st, "b", 1, &out, &len);
    memcpy(all + n, out, len); n += len;
    aie_stopper_flush(&st, &out, &len);
    memcpy(all + n, out, len); n += len;
    CHECK(n == 3 && memcmp(all, "a\nb", 3) == 0, "false alarm released");
    aie_stopper_free(&st);
}


/* models */

static int
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}


typedef struct {
    char    buf[4096];
    size_t  len;
    int     bad_utf8;
} aie_text_sink_t;


/* whether s[0..n) is whole UTF-8 characters */
static int
utf8_complete(const char *s, size_t n)
{
    size_t  i = 0, k, need;

    while (i < n) {
        unsigned char  c = (unsigned char) s[i];

        need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3
               : (c >> 3) == 30 ? 4 : 0;
        if (need == 0 || i + need > n) {
            return 0;
        }
        for (k = 1; k < need; k++) {
            if (((unsigned char) s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += need;
    }

    return 1;
}


static int
sink_text(void *data, const char *text, size_t len)
{
    aie_text_sink_t  *sink = data;

    if (!utf8_complete(text, len)) {
        sink->bad_utf8 = 1;
    }

    if (sink->len + len < sizeof(sink->buf)) {
        memcpy(sink->buf + sink->len, text, len);
        sink->len += len;
        sink->buf[sink->len] = '\0';
    }

    return 0;
}


static void
generate_greedy(aie_model_t *model, const char *prompt, int n, char *out,
    size_t cap)
{
    aie_request_params_t  rp;
    aie_text_sink_t       sink;
    aie_seq_t            *seq;
    char                  err[256];

    memset(&sink, 0, sizeof(sink));
    aie_request_params_default(&rp);
    rp.prompt = prompt;
    rp.prompt_len = strlen(prompt);
    rp.max_tokens = n;
    rp.sampling.temperature = 0.0f;

    seq = aie_seq_new(model, 0);
    aie_generate(seq, &rp, sink_text, &sink, NULL, err, sizeof(err));
    aie_seq_free(seq);

    snprintf(out, cap, "%s", sink.buf);
}


static void
test_gguf_parse(void)
{
    static const char  *files[] = {
        "stories260K.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"
    };
    static const uint32_t  embd_type[] = { 0, 8, 2 };
    aie_gguf_t                gguf;
    const aie_gguf_tensor_t  *t;
    struct stat               sb;
    uint8_t                  *data;
    char                      err[256];
    int64_t                   v;
    size_t                    i;
    FILE                     *f;

    printf("GGUF: parse the three files\n");

    for (i = 0; i < 3; i++) {
        f = fopen(path_of(files[i]), "rb");
        CHECK(f != NULL, "open %s", files[i]);
        if (f == NULL) {
            continue;
        }
        fstat(fileno(f), &sb);
        data = malloc((size_t) sb.st_size);
        CHECK(fread(data, 1, (size_t) sb.st_size, f) == (size_t) sb.st_size,
              "read");
        fclose(f);

        CHECK(aie_gguf_parse(&gguf, data, (size_t) sb.st_size, err,
                             sizeof(err)) == 0, "%s: %s", files[i], err);
        CHECK(gguf.version == 3, "version %u", gguf.version);
        CHECK(gguf.n_tensors == 48, "%llu tensors",
              (unsigned long long) gguf.n_tensors);
        CHECK(aie_gguf_get_int(&gguf, "llama.context_length", &v) == 0
              && v == 128, "context_length");
        CHECK(aie_gguf_get_int(&gguf, "llama.attention.head_count_kv", &v)
              == 0 && v == 4, "head_count_kv");
        t = aie_gguf_find_tensor(&gguf, "token_embd.weight");
        CHECK(t != NULL && t->ne[0] == 64 && t->ne[1] == 512
              && t->type == embd_type[i], "token_embd.weight");
        t = aie_gguf_find_tensor(&gguf, "blk.0.ffn_down.weight");
        CHECK(t != NULL && t->type == (i == 0 ? 0u : 1u),
              "ffn_down stays F16 in quantised files");

        aie_gguf_free(&gguf);
        free(data);
    }
}


static void
test_tokenizer(aie_model_t *bin, aie_model_t *gguf)
{
    static const char  *texts[] = {
        "Once upon a time, there was a little girl named Lily.",
        "  two leading spaces and\ttabs\nand newlines  ",
        "h\xC3\xA9llo w\xC3\xB6rld \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC "
            "\xF0\x9F\x99\x82 ok",
        "</s><s> are text here",
        "x"
    };
    int           a[512], b[512], na, nb, i, k, split, bad, n;
    size_t        len, total;
    char          out[2048], streamed[2048];
    const char   *s;
    aie_detok_t  *d;

    printf("tokenizer: encode/decode round trips, byte fallback, "
           "streaming UTF-8\n");

    for (i = 0; i < (int) (sizeof(texts) / sizeof(texts[0])); i++) {
        na = aie_tokenize(bin, texts[i], strlen(texts[i]), 1, a, 512);
        nb = aie_tokenize(gguf, texts[i], strlen(texts[i]), 1, b, 512);
        CHECK(na > 1 && na == nb && memcmp(a, b, na * sizeof(int)) == 0,
              "tok512.bin and GGUF vocabularies agree on text %d", i);

        for (k = 1; k < na; k++) {
            CHECK(a[k] != 1 && a[k] != 2, "control token from text %d", i);
        }

        aie_detokenize(bin, a, na, out, sizeof(out));
        CHECK(strcmp(out, texts[i]) == 0, "round trip %d: \"%s\"", i, out);
        aie_detokenize(gguf, b, nb, out, sizeof(out));
        CHECK(strcmp(out, texts[i]) == 0, "gguf round trip %d", i);

        /* streaming: every piece is whole characters */
        d = aie_detok_new(gguf);
        total = 0;
        bad = 0;
        split = 0;
        for (k = 0; k <= nb; k++) {
            s = k < nb ? aie_detok_push(d, b[k], &len)
                       : aie_detok_flush(d, &len);
            bad |= !utf8_complete(s, len);
            split |= k < nb && len == 0 && b[k] >= 3 && b[k] <= 258;
            memcpy(streamed + total, s, len);
            total += len;
        }
        streamed[total] = '\0';
        CHECK(!bad, "streamed pieces are whole UTF-8 characters (%d)", i);
        CHECK(strcmp(streamed, texts[i]) == 0, "streamed text %d", i);
        if (i == 2) {
            CHECK(split, "multi-byte characters went through byte tokens");
        }
        aie_detok_free(d);
    }

    /* "é" as byte tokens: nothing after the first byte, both after the 2nd */
    d = aie_detok_new(gguf);
    aie_detok_reset(d, -1);
    aie_detok_push(d, 3 + 0xC3, &len);
    CHECK(len == 0, "half a character is held back");
    s = aie_detok_push(d, 3 + 0xA9, &len);
    CHECK(len == 2 && memcmp(s, "\xC3\xA9", 2) == 0, "then released");
    aie_detok_push(d, 3 + 0xE6, &len);
    s = aie_detok_push(d, 3 + 'a', &len);
    CHECK(len == 4 && memcmp(s, "\xEF\xBF\xBD" "a", 4) == 0,
          "a broken character becomes U+FFFD");
    aie_detok_free(d);

    n = aie_tokenize(gguf, "hello", 5, 0, a, 2);
    CHECK(n > 0, "count returned even when max is small (%d)", n);
}


static void
test_generation(aie_model_t *bin, aie_model_t *gguf, aie_model_t *q8,
    aie_model_t *q4)
{
    char  out[4096];

    printf("greedy generation from BOS\n");

    generate_greedy(bin, "", 40, out, sizeof(out));
    printf("  .bin:  %.70s...\n", out);
    CHECK(starts_with(out, LILY), ".bin story: %s", out);

    generate_greedy(gguf, "", 40, out, sizeof(out));
    printf("  gguf:  %.70s...\n", out);
    CHECK(starts_with(out, LILY), ".gguf story: %s", out);

    generate_greedy(q8, "", 40, out, sizeof(out));
    printf("  q8_0:  %.70s...\n", out);
    CHECK(starts_with(out, "Once upon a time"), "q8_0 story: %s", out);

    generate_greedy(q4, "", 40, out, sizeof(out));
    printf("  q4_0:  %.70s...\n", out);
    CHECK(starts_with(out, "Once upon a time"), "q4_0 story: %s", out);
}


/* feeds the same tokens to two models; returns the worst logit difference */
static float
compare_logits(aie_model_t *ma, aie_model_t *mb, int *argmax_agree, int *n)
{
    static const char  *text = "Once upon a time, there was a little girl "
                               "named Lily. She loved to play outside in "
                               "the park with her friends.";
    aie_seq_t          *sa, *sb;
    float              *la, *lb, worst = 0.0f, d;
    int                 tokens[128], nt, i, v, ba, bb;

    nt = aie_tokenize(ma, text, strlen(text), 1, tokens, 128);
    sa = aie_seq_new(ma, 0);
    sb = aie_seq_new(mb, 0);
    la = malloc(512 * sizeof(float));
    lb = malloc(512 * sizeof(float));
    *argmax_agree = 0;

    for (i = 0; i < nt; i++) {
        aie_eval(sa, &tokens[i], 1, la);
        aie_eval(sb, &tokens[i], 1, lb);

        ba = bb = 0;
        for (v = 0; v < 512; v++) {
            d = fabsf(la[v] - lb[v]);
            worst = d > worst ? d : worst;
            ba = la[v] > la[ba] ? v : ba;
            bb = lb[v] > lb[bb] ? v : bb;
        }
        *argmax_agree += ba == bb;
    }

    *n = nt;
    free(la);
    free(lb);
    aie_seq_free(sa);
    aie_seq_free(sb);

    return worst;
}


/*
 * kv=f16 against F32 keys and values: the same tokens (a greedy story from
 * BOS, then fed back) through two caches, logits compared at each of 200
 * positions.  F16 keeps 11 significant bits, so the scores and the
 * weighted values move by ~1e-3 relative: with F32 weights the logits
 * (spanning ~30) stay within 0.1 (0.025 seen).  With Q8_0 weights the
 * activations are quantised before each matmul, and a value moved across
 * a rounding step moves the logits further (0.33 seen): within Q8_0's own
 * tolerance against F32, 0.5.  The argmax agrees nearly everywhere.
 */
static void
test_kv_f16(aie_model_t *model, float tol)
{
    enum { N = 200 };
    aie_kv_cache_t        kv[2];
    aie_forward_state_t  *st;
    aie_batch_entry_t     e;
    float                *l[2], worst = 0, dd;
    int                   i, v, c, token = 1, agree = 0, best[2];

    printf("kv=f16: logits against F32 keys and values\n");

    st = aie_forward_state_new(model, model->backend, 1, N);
    l[0] = malloc((size_t) model->config.vocab_size * sizeof(float));
    l[1] = malloc((size_t) model->config.vocab_size * sizeof(float));
    CHECK(st != NULL && l[0] != NULL && l[1] != NULL
          && aie_kv_cache_init(&kv[0], model, N, 0) == 0
          && aie_kv_cache_init(&kv[1], model, N, 1) == 0, "kv=f16 set-up");

    for (i = 0; i < N; i++) {
        for (c = 0; c < 2; c++) {
            e.kv = &kv[c];
            e.token = token;
            e.pos = i;
            e.logits = l[c];
            CHECK(aie_forward(model, model->backend, st, &e, 1) == 0,
                  "forward");
            best[c] = 0;
            for (v = 1; v < model->config.vocab_size; v++) {
                best[c] = l[c][v] > l[c][best[c]] ? v : best[c];
            }
        }
        for (v = 0; v < model->config.vocab_size; v++) {
            dd = fabsf(l[0][v] - l[1][v]);
            worst = dd > worst ? dd : worst;
        }
        agree += best[0] == best[1];
        token = best[0];            /* the F32 story, fed to both */
    }

    printf("  max |diff| %.4f, argmax agrees %d/%d\n", worst, agree, N);
    CHECK(worst < tol, "kv=f16 logits off by %g", worst);
    CHECK(agree >= N * 95 / 100, "kv=f16 argmax agrees %d/%d", agree, N);
    CHECK(kv[1].f16 == 1 && kv[0].f16 == 0, "cache types");

    aie_kv_cache_free(&kv[0]);
    aie_kv_cache_free(&kv[1]);
    aie_forward_state_free(st);
    free(l[0]);
    free(l[1]);
}


static void
test_logits(aie_model_t *bin, aie_model_t *gguf, aie_model_t *q8,
    aie_model_t *q4)
{
    float       worst;
    int         agree, n, tokens[64], nt;
    float      *l1, *l2, d = 0.0f;
    aie_seq_t  *s1, *s2;
    int         v;

    printf("logits: .bin vs .gguf, quantised vs F32, batched vs one by "
           "one\n");

    worst = compare_logits(bin, gguf, &agree, &n);
    printf("  .bin vs .gguf F32: max |diff| %.2e over %d positions\n",
           worst, n);
    CHECK(worst < 1e-4f, ".bin and .gguf logits differ by %g", worst);
    CHECK(agree == n, "argmax agrees %d/%d", agree, n);

    /*
     * Tolerances: the logits span about 30.  Q8_0 weights carry ~0.5% RMS
     * error and keep logits within 0.5; Q4_0 weights carry ~8.5% on a model
     * this small and move single logits by up to ~7.5, yet rarely the
     * argmax.
     */
    worst = compare_logits(gguf, q8, &agree, &n);
    printf("  Q8_0 vs F32: max |diff| %.3f, argmax agrees %d/%d\n", worst,
           agree, n);
    CHECK(worst < 0.5f, "q8_0 logits off by %g", worst);
    CHECK(agree >= n * 8 / 10, "q8_0 argmax agrees %d/%d", agree, n);

    worst = compare_logits(gguf, q4, &agree, &n);
    printf("  Q4_0 vs F32: max |diff| %.3f, argmax agrees %d/%d\n", worst,
           agree, n);
    CHECK(worst < 10.0f, "q4_0 logits off by %g", worst);
    CHECK(agree >= n * 6 / 10, "q4_0 argmax agrees %d/%d", agree, n);

    /* a prompt in one batched call equals token-by-token evaluation */
    nt = aie_tokenize(gguf, "The cat sat on the mat and looked at the big "
                      "red ball", 52, 1, tokens, 64);
    s1 = aie_seq_new(gguf, 0);
    s2 = aie_seq_new(gguf, 0);
    l1 = malloc(512 * sizeof(float));
    l2 = malloc(512 * sizeof(float));
    aie_eval(s1, tokens, nt, l1);
    for (v = 0; v < nt; v++) {
        aie_eval(s2, &tokens[v], 1, l2);
    }
    for (v = 0; v < 512; v++) {
        d = fabsf(l1[v] - l2[v]) > d ? fabsf(l1[v] - l2[v]) : d;
    }
    CHECK(d < 1e-5f, "batched prompt differs by %g", d);
    CHECK(aie_seq_pos(s1) == nt, "position after the prompt");
    CHECK(aie_eval(s1, tokens, 128, l1) == -1, "context overflow refused");
    v = 512;
    CHECK(aie_eval(s1, &v, 1, l1) == -1, "bad token refused");
    free(l1);
    free(l2);
    aie_seq_free(s1);
    aie_seq_free(s2);
}


static int
write_file(const char *path, const uint8_t *data, size_t n)
{
    FILE  *f = fopen(path, "wb");
    int    ok;

    if (f == NULL) {
        return -1;
    }

    ok = fwrite(data, 1, n, f) == n;
    fclose(f);

    return ok ? 0 : -1;
}


static void
test_corrupt(void)
{
    static const char  *files[] = {
        "stories260K.gguf", "stories260K-q4_0.gguf"
    };
    char               tmp[] = "/tmp/aie_test_XXXXXX";
    uint8_t           *data, *copy;
    size_t             size, off, i, f, data_offset;
    struct stat        sb;
    aie_model_t       *m;
    aie_gguf_t         gguf;
    char               err[256];
    int                fd, failed, loaded, bad_msg;
    int                token = 1;
    float             *logits;
    aie_seq_t         *seq;
    FILE              *fp;
    uint64_t           big = 0xFFFFFFFFFFFFull;

    printf("corrupt files: truncated at every header offset, flipped bytes, "
           "huge counts\n");

    fd = mkstemp(tmp);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    logits = malloc(512 * sizeof(float));

    for (f = 0; f < 2; f++) {
        fp = fopen(path_of(files[f]), "rb");
        fstat(fileno(fp), &sb);
        size = (size_t) sb.st_size;
        data = malloc(size);
        copy = malloc(size);
        if (fread(data, 1, size, fp) != size) {
            CHECK(0, "read %s", files[f]);
        }
        fclose(fp);

        aie_gguf_parse(&gguf, data, size, err, sizeof(err));
        data_offset = gguf.data_offset;
        aie_gguf_free(&gguf);

        /* truncation: every offset through the metadata, then strides;
         * write once and shrink, so each step costs one ftruncate */
        write_file(tmp, data, size);
        failed = 0;
        bad_msg = 0;
        for (off = size - 1; off + 1 > 0; off--) {
            if (off > data_offset + 64 && off % 997 != 0) {
                continue;
            }
            if (truncate(tmp, (off_t) off) != 0) {
                break;
            }
            err[0] = '\0';
            m = aie_model_load(tmp, NULL, err, sizeof(err));
            if (m == NULL) {
                failed++;
                bad_msg += err[0] == '\0';
            } else {
                aie_model_free(m);
            }
        }
        CHECK(failed > 0 && bad_msg == 0, "truncations rejected with a "
              "message (%d, %d without)", failed, bad_msg);
        printf("  %s: %d truncated copies rejected, e.g. \"%s\"\n",
               files[f], failed, err);

        /* huge counts and lengths in the header */
        for (i = 0; i < 3; i++) {
            memcpy(copy, data, size);
            memcpy(copy + 8 + 8 * (i % 2), &big, 8);
            if (i == 2) {
                memcpy(copy, data, size);
                memcpy(copy + 24, &big, 8);     /* first key's length */
            }
            write_file(tmp, copy, size);
            m = aie_model_load(tmp, NULL, err, sizeof(err));
            CHECK(m == NULL && err[0] != '\0', "huge field %zu", i);
            aie_model_free(m);
        }

        /* random byte flips in the metadata: never a crash */
        loaded = 0;
        failed = 0;
        for (i = 0; i < 600; i++) {
            memcpy(copy, data, size);
            off = (size_t) ((frand() + 1.0f) * 0.5f * (float) data_offset);
            copy[off % data_offset] ^= (uint8_t) (1u + (rng_state & 0xFE));
            write_file(tmp, copy, size);
            m = aie_model_load(tmp, NULL, err, sizeof(err));
            if (m == NULL) {
                failed++;
                continue;
            }
            loaded++;
            seq = aie_seq_new(m, 8);
            if (seq != NULL) {
                aie_eval(seq, &token, 1, logits);
                aie_seq_free(seq);
            }
            aie_model_free(m);
        }
        printf("  %s: 600 flipped copies: %d rejected, %d still loadable\n",
               files[f], failed, loaded);
        CHECK(failed > 0, "some flips are caught");

        free(data);
        free(copy);
    }

    /* a truncated llama2.c checkpoint */
    fp = fopen(path_of("stories260K.bin"), "rb");
    fstat(fileno(fp), &sb);
    data = malloc((size_t) sb.st_size);
    if (fread(data, 1, (size_t) sb.st_size, fp) != (size_t) sb.st_size) {
        CHECK(0, "read .bin");
    }
    fclose(fp);
    write_file(tmp, data, (size_t) sb.st_size / 2);
    m = aie_model_load(tmp, NULL, err, sizeof(err));
    CHECK(m == NULL && strstr(err, "truncated") != NULL, "truncated .bin: "
          "%s", err);
    aie_model_free(m);
    free(data);
    free(logits);

    unlink(tmp);
}


/* the batch scheduler */

typedef struct {
    aie_request_t        *req;
    char                  text[4096];
    size_t                len;
    aie_finish_reason_t   finish;
    int                   n_tokens;
} aie_stream_t;


static void
drain(aie_stream_t *s)
{
    aie_delta_t  d;

    while (s->req != NULL && s->finish == AIE_FINISH_NONE
           && aie_request_poll(s->req, &d) == 1)
    {
        if (s->len + d.text_len < sizeof(s->text)) {
            memcpy(s->text + s->len, d.text, d.text_len);
            s->len += d.text_len;
            s->text[s->len] = '\0';
        }
        s->n_tokens += d.n_tokens;
        s->finish = d.finish;
    }
}


static int
wait_all(int efd, aie_stream_t *s, int n, double seconds)
{
    struct pollfd  pfd = { efd, POLLIN, 0 };
    uint64_t       c;
    int            i, left;
    time_t         end = time(NULL) + (time_t) seconds;

    for ( ;; ) {
        left = 0;
        for (i = 0; i < n; i++) {
            drain(&s[i]);
            left += s[i].req != NULL && s[i].finish == AIE_FINISH_NONE;
        }
        if (left == 0 || time(NULL) > end) {
            return left;
        }
        poll(&pfd, 1, 100);
        if (read(efd, &c, sizeof(c)) < 0) {
            /* nothing new yet */
        }
    }
}


/* each prompt as a greedy request of 48 tokens, s[i] its stream */
static void
submit_greedy(aie_engine_t *engine, const char *const *prompts,
    aie_stream_t *s, int n)
{
    aie_request_params_t  rp;
    int                   i;

    memset(s, 0, (size_t) n * sizeof(aie_stream_t));
    for (i = 0; i < n; i++) {
        aie_request_params_default(&rp);
        rp.prompt = prompts[i];
        rp.prompt_len = strlen(prompts[i]);
        rp.max_tokens = 48;
        rp.sampling.temperature = 0.0f;
        s[i].req = aie_engine_submit(engine, &rp);
    }
}


static void
test_scheduler(aie_model_t *model)
{
    static const char    *prompts[] = {
        "", "Once upon a time", "The cat", "Tom and Sue went to the park.",
        "She was very", "One day, a big dog", "Lily", "The sun was hot and"
    };
    enum { N = 8 };
    aie_engine_params_t   ep;
    aie_request_params_t  rp;
    aie_engine_t         *engine;
    aie_stream_t          s[N];
    aie_usage_t           usage;
    aie_engine_stats_t    stats;
    aie_delta_t           d;
    char                  expect[N][4096], alone[N][4096], err[256];
    int                   efd, i, round;
    struct timespec       ts = { 0, 100 * 1000 * 1000 };

    printf("scheduler: concurrent requests equal sequential runs, stop "
           "sequences, back-pressure, cancellation\n");

    for (i = 0; i < N; i++) {
        generate_greedy(model, prompts[i], 48, expect[i], sizeof(expect[i]));
    }

    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    for (round = 0; round < 2; round++) {
        aie_engine_params_default(&ep);
        ep.n_threads = round + 1;
        ep.max_batch = round == 0 ? 4 : 8;    /* 4: some wait in the queue */
        ep.max_batch_tokens = 16;             /* prompts take several steps */
        ep.notify_fd = efd;
        engine = aie_engine_start(model, &ep, err, sizeof(err));
        CHECK(engine != NULL, "engine: %s", err);

        submit_greedy(engine, prompts, s, N);

        CHECK(wait_all(efd, s, N, 30) == 0, "all requests finished");

        for (i = 0; i < N; i++) {
            CHECK(strcmp(s[i].text, expect[i]) == 0, "threads %d request %d:"
                  "\n    got    \"%s\"\n    wanted \"%s\"", ep.n_threads, i,
                  s[i].text, expect[i]);
            aie_request_usage(s[i].req, &usage);
            CHECK(usage.completion_tokens == s[i].n_tokens
                  && usage.prompt_tokens > 0, "usage %d/%d",
                  usage.prompt_tokens, usage.completion_tokens);
            CHECK(s[i].finish == AIE_FINISH_STOP
                  || s[i].finish == AIE_FINISH_LENGTH, "finish %s",
                  aie_finish_reason_name(s[i].finish));
            aie_request_release(s[i].req);
        }

        aie_engine_stats(engine, &stats);
        CHECK(stats.running == 0 && stats.queued == 0, "engine idle");
        aie_engine_stop(engine);
    }

    /* kv=f16: each prompt alone (max_batch 1), then all in one batch */
    for (round = 0; round < 2; round++) {
        aie_engine_params_default(&ep);
        ep.n_threads = 2;
        ep.max_batch = round == 0 ? 1 : N;
        ep.max_batch_tokens = 16;
        ep.notify_fd = efd;
        ep.kv_f16 = 1;
        engine = aie_engine_start(model, &ep, err, sizeof(err));
        CHECK(engine != NULL, "engine kv=f16: %s", err);

        submit_greedy(engine, prompts, s, N);
        CHECK(wait_all(efd, s, N, 60) == 0, "kv=f16 requests finished");

        for (i = 0; i < N; i++) {
            if (round == 0) {
                snprintf(alone[i], sizeof(alone[i]), "%s", s[i].text);
                CHECK(s[i].n_tokens > 0, "kv=f16 request %d: no tokens", i);
            } else {
                CHECK(strcmp(s[i].text, alone[i]) == 0, "kv=f16 request %d "
                      "in a batch:\n    got    \"%s\"\n    alone  \"%s\"",
                      i, s[i].text, alone[i]);
            }
            aie_request_release(s[i].req);
        }
        aie_engine_stop(engine);
    }

    aie_engine_params_default(&ep);
    ep.max_batch = 4;
    ep.notify_fd = efd;
    engine = aie_engine_start(model, &ep, err, sizeof(err));

    /* stop sequence */
    memset(s, 0, sizeof(s));
    aie_request_params_default(&rp);
    rp.prompt = "";
    rp.max_tokens = 64;
    rp.sampling.temperature = 0.0f;
    rp.stop[0] = " named";
    s[0].req = aie_engine_submit(engine, &rp);
    wait_all(efd, s, 1, 30);
    CHECK(strcmp(s[0].text, "Once upon a time, there was a little girl")
          == 0 && s[0].finish == AIE_FINISH_STOP, "stop sequence: \"%s\" %s",
          s[0].text, aie_finish_reason_name(s[0].finish));
    aie_request_release(s[0].req);

    /* back-pressure: a reader that does not read gets paused */
    memset(s, 0, sizeof(s));
    rp.stop[0] = NULL;
    rp.max_tokens = 100;
    rp.ignore_eos = 1;
    rp.max_unread = 16;
    s[0].req = aie_engine_submit(engine, &rp);
    nanosleep(&ts, NULL);
    CHECK(aie_request_poll(s[0].req, &d) == 1 && d.text_len < 64
          && d.finish == AIE_FINISH_NONE, "paused at %zu unread bytes",
          d.text_len);
    memcpy(s[0].text, d.text, d.text_len);
    s[0].len = d.text_len;
    CHECK(wait_all(efd, s, 1, 30) == 0, "resumes when read");
    aie_request_usage(s[0].req, &usage);
    CHECK(usage.completion_tokens == 100, "all 100 tokens after pauses");
    aie_request_release(s[0].req);

    /* cancellation mid-generation, and release while running */
    memset(s, 0, sizeof(s));
    rp.max_unread = 0;
    rp.max_tokens = 127;
    for (i = 0; i < 6; i++) {
        s[i].req = aie_engine_submit(engine, &rp);
    }
    while (s[0].len == 0) {
        drain(&s[0]);
    }
    aie_request_cancel(s[0].req);
    aie_request_release(s[1].req);          /* consumer gone, engine owns */
    s[1].req = NULL;
    aie_request_cancel(s[5].req);           /* probably still queued */
    wait_all(efd, s, 6, 30);
    CHECK(s[0].finish == AIE_FINISH_CANCELLED, "cancelled: %s",
          aie_finish_reason_name(s[0].finish));
    CHECK(s[5].finish == AIE_FINISH_CANCELLED, "cancelled in the queue");
    CHECK(s[2].finish == AIE_FINISH_LENGTH, "others unaffected");
    for (i = 0; i < 6; i++) {
        aie_request_release(s[i].req);
    }

    /* stopping the engine under load: handles stay valid */
    memset(s, 0, sizeof(s));
    for (i = 0; i < 6; i++) {
        s[i].req = aie_engine_submit(engine, &rp);
    }
    aie_engine_stop(engine);
    for (i = 0; i < 6; i++) {
        drain(&s[i]);
        CHECK(s[i].finish == AIE_FINISH_CANCELLED
              || s[i].finish == AIE_FINISH_LENGTH, "after stop: %s",
              aie_finish_reason_name(s[i].finish));
        aie_request_release(s[i].req);
    }

    /* errors surface as finish "error" with a message */
    aie_engine_params_default(&ep);
    ep.n_ctx = 16;
    engine = aie_engine_start(model, &ep, err, sizeof(err));
    memset(s, 0, sizeof(s));
    aie_request_params_default(&rp);
    rp.prompt = "Once upon a time, there was a little girl named Lily. She";
    rp.prompt_len = strlen(rp.prompt);
    s[0].req = aie_engine_submit(engine, &rp);
    wait_all(efd, s, 1, 30);
    CHECK(s[0].finish == AIE_FINISH_ERROR
          && strstr(aie_request_error(s[0].req), "context") != NULL,
          "prompt longer than the context: %s",
          aie_request_error(s[0].req));
    aie_request_release(s[0].req);
    aie_engine_stop(engine);

    close(efd);
}


/* the fast path against the engine's scalar reference, same file */
static void
test_scalar_reference(void)
{
    static const char  *files[] = { "stories260K.gguf", "stories260K.bin",
                                    "stories260K-q8_0.gguf" };
    aie_model_t        *fast, *ref;
    char                out[4096], out2[4096], err[256];
    float               worst, rel;
    int                 agree, n, f;

    printf("fast kernels vs the scalar reference (AIE_FORCE_SCALAR=1)\n");

    for (f = 0; f < 3; f++) {
        fast = aie_model_load(path_of(files[f]),
                              f == 1 ? path_of("tok512.bin") : NULL, err,
                              sizeof(err));
        setenv("AIE_FORCE_SCALAR", "1", 1);
        ref = aie_model_load(path_of(files[f]),
                             f == 1 ? path_of("tok512.bin") : NULL, err,
                             sizeof(err));
        unsetenv("AIE_FORCE_SCALAR");
        CHECK(fast != NULL && ref != NULL, "%s: %s", files[f], err);
        if (fast == NULL || ref == NULL) {
            continue;
        }
        CHECK(strcmp(aie_model_kernels(ref), "scalar") == 0,
              "reference kernels %s", aie_model_kernels(ref));

        worst = compare_logits(fast, ref, &agree, &n);
        rel = worst / 30.0f;     /* the logits span about 30 */
        printf("  %s: %s vs scalar: max |diff| %.2e, argmax %d/%d\n",
               files[f], aie_model_kernels(fast), worst, agree, n);
        CHECK(rel < 1e-4f, "%s: logits differ by %g", files[f], worst);
        CHECK(agree == n, "%s: argmax %d/%d", files[f], agree, n);

        generate_greedy(fast, "", 200, out, sizeof(out));
        generate_greedy(ref, "", 200, out2, sizeof(out2));
        CHECK(strcmp(out, out2) == 0, "%s: 200 greedy tokens differ:\n"
              "    %s\n    %s", files[f], out, out2);
        if (f < 2) {
            CHECK(starts_with(out, LILY "."), "%s: %s", files[f], out);
        }

        aie_model_free(fast);
        aie_model_free(ref);
    }
}


/*
 * Long texts go through the word cache: repeated words, thousands of
 * distinct ones (more than its probes hold), words too long for it, and an
 * output buffer too small, all as the whole-text merge gives them.
 */
static void
test_tokenizer_long(aie_model_t **m, int n_models, const char **texts,
    int n_texts)
{
    size_t        cap = 200000, len = 0, k;
    char         *text = malloc(cap);
    int          *a = malloc(cap * sizeof(int)), *b = malloc(cap * sizeof(int));
    int           i, j, na, nb, same = 1, same_pairs = 1;
    unsigned      r = 12345;
    uint64_t     *pairs;

    printf("tokenizer: long texts through the word cache equal the "
           "whole-text merge\n");

    while (len + 200 < cap) {
        i = (int) (r % (unsigned) (n_texts + 2));
        r = r * 1103515245u + 12345u;
        if (i < n_texts) {
            k = strlen(texts[i]);
            memcpy(text + len, texts[i], k);
            len += k;
        } else if (i == n_texts) {
            /* a fresh word of 1..12 letters */
            text[len++] = ' ';
            for (k = 0; k < 1 + (r >> 8) % 12; k++) {
                text[len++] = (char) ('a' + (r >> (k + 3)) % 26);
            }
        } else {
            /* a word longer than the cache takes */
            text[len++] = ' ';
            for (k = 0; k < 60; k++) {
                text[len++] = (char) ('a' + k % 7);
            }
        }
    }

    for (j = 0; j < n_models; j++) {
        na = aie_tokenize(m[j], text, len, 1, a, (int) cap);
        nb = aie_tokenizer_encode_ref(m[j]->tokenizer, text, len, 1, b,
                                      (int) cap);
        same &= na > 0 && na == nb
                && memcmp(a, b, (size_t) na * sizeof(int)) == 0;

        na = aie_tokenize(m[j], text, len, 1, a, 1000);
        same &= na == nb && memcmp(a, b, 1000 * sizeof(int)) == 0;

        /* merges found by token-id pairs == by looking up the joined text */
        pairs = m[j]->tokenizer->pairs;
        CHECK(pairs != NULL, "the vocabulary has a pair table");
        m[j]->tokenizer->pairs = NULL;
        na = aie_tokenize(m[j], text, len, 1, a, (int) cap);
        m[j]->tokenizer->pairs = pairs;
        same_pairs &= na == nb && memcmp(a, b, (size_t) na * sizeof(int)) == 0;
    }
    CHECK(same, "long text: word cache == whole text");
    CHECK(same_pairs, "long text: pair table == text lookups");

    free(text);
    free(a);
    free(b);
}


/*
 * Varied, real text (this file's source: code, comments, punctuation, runs
 * of spaces and new lines), cut into spans where no token joins two bytes,
 * equals the whole-text merge; from several starting points (mid-word, at
 * a space, at punctuation), with and without the pair table.  Also spans
 * either side of the small-span limit with multi-byte characters.
 */
static void
test_tokenizer_varied(aie_model_t **m, int n_models)
{
    FILE      *f = fopen(__FILE__, "rb");
    char      *text, edge[256];
    size_t     len = 0, cap = 1 << 20, k, e;
    int       *a, *b, na, nb, j, start, same = 1, same_pairs = 1;
    int        same_edge = 1;
    uint64_t  *pairs;

    if (f == NULL) {
        printf("SKIP tokenizer on varied text: cannot read %s\n", __FILE__);
        return;
    }

    text = malloc(cap);
    len = fread(text, 1, cap, f);
    fclose(f);
    a = malloc((len + 2) * sizeof(int));
    b = malloc((len + 2) * sizeof(int));

    printf("tokenizer: varied text (%zu bytes of this test's source) "
           "equals the whole-text merge\n", len);

    for (j = 0; j < n_models; j++) {
        for (start = 0; start < 48; start += 7) {
            na = aie_tokenize(m[j], text + start, len - start, 1, a,
                              (int) len + 2);
            nb = aie_tokenizer_encode_ref(m[j]->tokenizer, text + start,
                                          len - start, 1, b, (int) len + 2);
            same &= na > 0 && na == nb
                    && memcmp(a, b, (size_t) na * sizeof(int)) == 0;
        }

        pairs = m[j]->tokenizer->pairs;
        m[j]->tokenizer->pairs = NULL;
        na = aie_tokenize(m[j], text, len, 1, a, (int) len + 2);
        m[j]->tokenizer->pairs = pairs;
        nb = aie_tokenizer_encode_ref(m[j]->tokenizer, text, len, 1, b,
                                      (int) len + 2);
        same_pairs &= na == nb
                      && memcmp(a, b, (size_t) na * sizeof(int)) == 0;

        /* words of 60..70 bytes: letters, then a 2- or 3-byte character,
           a broken one, at the end; after spaces, and alone */
        for (e = 60; e <= 70; e++) {
            for (k = 0; k < 3; k++) {
                size_t  n = 0, i;

                memcpy(edge, "  x ", 4);
                n = k == 2 ? 0 : 4;
                for (i = 0; i < e; i++) {
                    edge[n++] = (char) ('a' + (i * 7 + e) % 26);
                }
                if (k == 0) {
                    memcpy(edge + n, "\xc3\xa9", 2);
                    n += 2;
                } else if (k == 1) {
                    memcpy(edge + n, "\xe6\x97\xa5\xe6", 4);
                    n += 4;
                }
                memcpy(edge + n, ".\n  y", 5);
                n += 5;

                na = aie_tokenize(m[j], edge, n, 1, a, (int) len);
                nb = aie_tokenizer_encode_ref(m[j]->tokenizer, edge, n, 1,
                                              b, (int) len);
                same_edge &= na > 0 && na == nb
                             && memcmp(a, b, (size_t) na * sizeof(int)) == 0;
            }
        }
    }

    CHECK(same, "varied text: spans == whole text");
    CHECK(same_pairs, "varied text: pair table == text lookups");
    CHECK(same_edge, "words at the small-span limit: spans == whole text");

    free(text);
    free(a);
    free(b);
}


/*
 * A synthetic vocabulary (aie-mkrandom's, path in AIE_MKRANDOM) where most
 * ASCII characters, the space among them, are no token but start tokens
 * (" a"): the pair table's stand-in ids for such characters.
 */
static void
test_tokenizer_random(const char **texts, int n_texts)
{
    const char   *tool = getenv("AIE_MKRANDOM");
    char          path[] = "/tmp/aie_test_vocab_XXXXXX", cmd[1024], err[256];
    aie_model_t  *m;
    int           fd;

    if (tool == NULL) {
        printf("SKIP tokenizer on a synthetic vocabulary: no AIE_MKRANDOM\n");
        return;
    }

    fd = mkstemp(path);
    CHECK(fd >= 0, "temporary file");
    if (fd < 0) {
        return;
    }
    close(fd);

    snprintf(cmd, sizeof(cmd), "%s -o %s --dim 64 --layers 1 --hidden 128 "
             "--heads 4 --kv-heads 4 --vocab 4000 --ctx 64 >/dev/null",
             tool, path);
    CHECK(system(cmd) == 0, "aie-mkrandom");

    m = aie_model_load(path, NULL, err, sizeof(err));
    CHECK(m != NULL, "synthetic model: %s", err);
    if (m != NULL) {
        CHECK(m->tokenizer->ascii_id[' '] >= m->tokenizer->n_vocab,
              "the synthetic vocabulary has no space token");
        test_tokenizer_long(&m, 1, texts, n_texts);
        test_tokenizer_varied(&m, 1);
        aie_model_free(m);
    }

    unlink(path);
}


static void
test_tokenizer_words(aie_model_t *bin, aie_model_t *gguf)
{
    static const char  *texts[] = {
        "Once upon a time, there was a little girl named Lily.",
        "  two  spaces   and\ttabs\nnew lines,, punctuation!!! 3.14159",
        "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
        "\xf0\x9f\x98\x80 \xff\xfe broken",
        "a", " ", "", "       leading",
    };
    aie_model_t        *m[2] = { bin, gguf };
    int                 a[512], b[512], na, nb, i, j, same = 1;

    printf("tokenizer: word-by-word encode equals the whole-text merge\n");

    for (j = 0; j < 2; j++) {
        CHECK(m[j]->tokenizer->split_words, "vocabulary splits by words");
        for (i = 0; i < 7; i++) {
            na = aie_tokenize(m[j], texts[i], strlen(texts[i]), 1, a, 512);
            nb = aie_tokenizer_encode_ref(m[j]->tokenizer, texts[i],
                                          strlen(texts[i]), 1, b, 512);
            same &= na == nb && memcmp(a, b, (size_t) na * sizeof(int)) == 0;
        }
    }
    CHECK(same, "word-by-word == whole text");

    test_tokenizer_long(m, 2, texts, 7);
    test_tokenizer_varied(m, 2);
    test_tokenizer_random(texts, 7);
}


int
main(void)
{
    aie_model_t  *bin, *gguf, *q8, *q4;
    char          err[256];
    struct stat   sb;

    aie_dir = getenv("AIGW_MODELS_DIR");
    if (aie_dir == NULL) {
        aie_dir = "../../../shared/models";
    }

    test_kernels();
    test_mm();
    test_pool();
    test_sampler();
    test_stopper();

    if (stat(path_of("stories260K.gguf"), &sb) != 0) {
        printf("SKIP model tests: no test models in %s "
               "(set AIGW_MODELS_DIR)\n", aie_dir);
        printf("%d checks, %d failures\n", aie_checks, aie_failures);
        return aie_failures ? 1 : 0;
    }

    test_gguf_parse();

    printf("loading the models from %s\n", aie_dir);
    bin = aie_model_load(path_of("stories260K.bin"), path_of("tok512.bin"),
                         err, sizeof(err));
    CHECK(bin != NULL, "stories260K.bin: %s", err);
    gguf = aie_model_load(path_of("stories260K.gguf"), NULL, err,
                          sizeof(err));
    CHECK(gguf != NULL, "stories260K.gguf: %s", err);
    q8 = aie_model_load(path_of("stories260K-q8_0.gguf"), NULL, err,
                        sizeof(err));
    CHECK(q8 != NULL, "q8_0: %s", err);
    q4 = aie_model_load(path_of("stories260K-q4_0.gguf"), NULL, err,
                        sizeof(err));
    CHECK(q4 != NULL, "q4_0: %s", err);

    if (bin == NULL || gguf == NULL || q8 == NULL || q4 == NULL) {
        printf("%d checks, %d failures\n", aie_checks, aie_failures);
        return 1;
    }

    test_tokenizer(bin, gguf);
    test_tokenizer_words(bin, gguf);
    test_generation(bin, gguf, q8, q4);
    test_scalar_reference();
    test_logits(bin, gguf, q8, q4);
    test_kv_f16(gguf, 0.1f);
    test_kv_f16(q8, 0.5f);
    test_corrupt();
    test_scheduler(gguf);
    test_scheduler(q8);     /* the packed kernel, where the CPU has it */
    test_scheduler(q4);

    aie_model_free(bin);
    aie_model_free(gguf);
    aie_model_free(q8);
    aie_model_free(q4);

    printf("%d checks, %d failures\n", aie_checks, aie_failures);

    return aie_failures ? 1 : 0;
}
