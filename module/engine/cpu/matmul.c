/*
 * The CPU backend: batched matmul over the thread pool.  Each weight row is
 * read once and multiplied with every activation of the batch while it is
 * in cache, which is what makes batching several sequences pay.
 */

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "../backend.h"
#include "dot.h"
#include "pool.h"


/* below this many multiply-adds, waking threads costs more than it saves */
#define AIE_MATMUL_MIN_PARALLEL  (1 << 17)

/*
 * Tasks per thread and matrix: few long tasks, so each thread reads long
 * runs of weights (the prefetchers, ours and the hardware's, restart at
 * every task).  A single stream: 8 were ~5-10% slower than 2 on 2
 * threads.  A batch: on the Xeon benchmark VM, alternating runs of 16
 * streams gave 1 task per thread 1,730-1,850 tokens/s, 2 1,690-1,830, 4
 * 1,550-1,700, 8 1,490-1,570 (on an earlier EPYC VM 8 had beaten 2);
 * 2 keeps a little room to even out a thread that starts late.
 */
#define AIE_MATMUL_TASKS  2


typedef struct {
    aie_backend_t             base;
    aie_pool_t               *pool;
    const aie_dot_kernels_t  *kernels;
    aie_block_q8_0_t         *xq;      /* activations quantised to Q8_0 */
    size_t                    xq_cap;
    void                     *xp;      /* the same, in the mm kernel's form */
    size_t                    xp_cap;
    float                    *xd;      /* their block scales, for packed */
    int32_t                  *xc;      /* -128 x their block sums */
} aie_cpu_backend_t;

#define AIE_MATMUL_MAX_W  3


typedef struct {
    const aie_tensor_t  *ws[AIE_MATMUL_MAX_W];
    float               *outs[AIE_MATMUL_MAX_W];
    int64_t              rows_per_task[AIE_MATMUL_MAX_W];
    int                  tasks_per_w;
    const char          *x;
    size_t               x_stride;
    int                  n;
    aie_dot_pt           dot;
    aie_mm_pt            mm;
    aie_mm_packed_pt     mm_packed;
    const float         *xd;
    const int32_t       *xc;
} aie_matmul_job_t;


/* activations quantised for the packed kernel, one task per activation */
typedef struct {
    aie_cpu_backend_t  *cpu;
    const float        *x;
    int64_t             cols;
} aie_quant_job_t;

/* a batch this large quantises its activations on the pool */
#define AIE_QUANT_PARALLEL_MIN  4


static void
aie_cpu_quant_task(void *arg, int b, int thread)
{
    aie_quant_job_t    *job = arg;
    aie_cpu_backend_t  *cpu = job->cpu;
    size_t              blocks = (size_t) (job->cols / AIE_QK);

    (void) thread;

    cpu->kernels->q8_act(job->x + (size_t) b * job->cols, job->cols,
                         cpu->xq + (size_t) b * blocks,
                         cpu->xd + (size_t) b * blocks,
                         cpu->xc + (size_t) b * blocks);
}


static void
aie_cpu_matmul_task(void *arg, int task, int thread)
{
    aie_matmul_job_t    *job = arg;
    int                  i = task / job->tasks_per_w;
    const aie_tensor_t  *w = job->ws[i];
    float               *out = job->outs[i];
    const char          *row;
    int64_t              r, r0, r1, g1;
    int                  b;

    (void) thread;

    r0 = (int64_t) (task % job->tasks_per_w) * job->rows_per_task[i];
    r1 = r0 + job->rows_per_task[i];
    r1 = r1 < w->rows ? r1 : w->rows;

    if (r0 >= r1) {
        return;
    }

    if (job->mm_packed != NULL) {
        /* whole groups from the packed copy, the last rows as stored */
        g1 = (r1 < w->rows ? r1 : w->rows / 16 * 16) / 16;
        if (r0 / 16 < g1) {
            job->mm_packed(w->packed, r0 / 16, g1, w->cols,
                           (const aie_block_q8_0_t *) job->x,
                           job->x_stride / sizeof(aie_block_q8_0_t),
                           job->xd, job->xc, job->n, out,
                           (size_t) w->rows);
        }
        r0 = g1 * 16 > r0 ? g1 * 16 : r0;
    }

    if (job->mm != NULL) {
        job->mm(w->data, w->row_size, r0, r1, w->cols, job->x, job->x_stride,
                job->n, out, (size_t) w->rows);
        return;
    }

    for (r = r0; r < r1; r++) {
        row = (const char *) w->data + (size_t) r * w->row_size;

        for (b = 0; b < job->n; b++) {
            out[(size_t) b * w->rows + r] =
                job->dot(row, job->x + (size_t) b * job->x_stride, w->cols);
        }
    }
}


/*
 * Matrices that read the same activations (Q, K, V; gate, up) run as one
 * job: the activations are quantised once and the threads are woken once.
 */
static void
aie_cpu_matmul_many(aie_backend_t *be, int n_w, float **outs,
    const aie_tensor_t **ws, const float *x, int n)
{
    aie_cpu_backend_t   *cpu = (aie_cpu_backend_t *) be;
    const aie_tensor_t  *w = ws[0];
    aie_matmul_job_t     job;
    size_t               need, blocks, stride;
    int                  b, i, n_tasks;
    double               work;

    for (i = 1; i < n_w; i++) {
        if (ws[i]->type != w->type || ws[i]->cols != w->cols
            || (ws[i]->packed == NULL) != (w->packed == NULL))
        {
            for (i = 0; i < n_w; i++) {
                aie_cpu_matmul_many(be, 1, &outs[i], &ws[i], x, n);
            }
            return;
        }
    }

    for (i = 0; i < n_w; i++) {
        job.ws[i] = ws[i];
        job.outs[i] = outs[i];
    }

    job.n = n;
    job.x = (const char *) x;
    job.x_stride = (size_t) w->cols * sizeof(float);
    job.mm = NULL;
    job.mm_packed = NULL;

    switch (w->type) {
    case AIE_TYPE_F32:
        job.dot = cpu->kernels->dot_f32;
        job.mm = cpu->kernels->mm_f32;
        break;

    case AIE_TYPE_F16:
        job.dot = cpu->kernels->dot_f16;
        break;

    case AIE_TYPE_Q8_0:
    case AIE_TYPE_Q4_0:
        job.dot = w->type == AIE_TYPE_Q8_0 ? cpu->kernels->dot_q8_0
                                           : cpu->kernels->dot_q4_0;
        blocks = (size_t) (w->cols / AIE_QK);
        need = blocks * (size_t) n;

        if (need > cpu->xq_cap) {
            /* the caller broke its reserve() promise */
            abort();
        }

        if (w->packed != NULL && cpu->kernels->mm_q8_0_packed != NULL) {
            aie_quant_job_t  qj = { cpu, x, w->cols };

            if (n >= AIE_QUANT_PARALLEL_MIN) {
                aie_pool_run(cpu->pool, aie_cpu_quant_task, &qj, n);
            } else {
                for (b = 0; b < n; b++) {
                    aie_cpu_quant_task(&qj, b, 0);
                }
            }

            job.x = (const char *) cpu->xq;
            job.x_stride = blocks * sizeof(aie_block_q8_0_t);
            job.mm_packed = cpu->kernels->mm_q8_0_packed;
            job.xd = cpu->xd;
            job.xc = cpu->xc;
            break;
        }

        for (b = 0; b < n; b++) {
            aie_quantize_row_q8_0(x + (size_t) b * w->cols,
                                  cpu->xq + (size_t) b * blocks, w->cols);
        }

        job.x = (const char *) cpu->xq;
        job.x_stride = blocks * sizeof(aie_block_q8_0_t);

        if (w->type == AIE_TYPE_Q8_0 && cpu->kernels->mm_q8_0 != NULL
            && (cpu->kernels->q8_prep_size == NULL
                || cpu->kernels->q8_prep_size(w->cols) > 0))
        {
            job.mm = cpu->kernels->mm_q8_0;

            if (cpu->kernels->q8_prep != NULL) {
                stride = cpu->kernels->q8_prep_size(w->cols);
                if (stride * (size_t) n > cpu->xp_cap) {
                    abort();
                }

                for (b = 0; b < n; b++) {
                    cpu->kernels->q8_prep(cpu->xq + (size_t) b * blocks,
                                          w->cols,
                                          (char *) cpu->xp + b * stride);
                }

                job.x = cpu->xp;
                job.x_stride = stride;
            }
        }
        break;

    default:
        abort();
    }

    work = (double) w->rows * (double) w->cols * n;
    n_tasks = 1;

    if (work >= AIE_MATMUL_MIN_PARALLEL && cpu->base.n_threads > 1) {
        n_tasks = cpu->base.n_threads * AIE_MATMUL_TASKS;
        if (n_tasks > w->rows) {
            n_tasks = (int) w->rows;
        }
    }

    /*
     * whole strips of 16 rows, so no row changes kernel path with n; a
     * matrix with fewer strips than tasks leaves some tasks empty
     */
    job.tasks_per_w = n_tasks;
    for (i = 0; i < n_w; i++) {
        job.rows_per_task[i] = (ws[i]->rows + n_tasks - 1) / n_tasks;
        job.rows_per_task[i] = (job.rows_per_task[i] + 15) & ~(int64_t) 15;
    }

    if (n_tasks == 1) {
        /* too small to wake the pool for, even two or three of them */
        for (i = 0; i < n_w; i++) {
            aie_cpu_matmul_task(&job, i, 0);
        }
        return;
    }

    aie_pool_run(cpu->pool, aie_cpu_matmul_task, &job, n_tasks * n_w);
}


static void
aie_cpu_matmul(aie_backend_t *be, float *out, const aie_tensor_t *w,
    const float *x, int n)
{
    aie_cpu_matmul_many(be, 1, &out, &w, x, n);
}


static void
aie_cpu_matmul3(aie_backend_t *be, float *out0, const aie_tensor_t *w0,
    float *out1, const aie_tensor_t *w1, float *out2, const aie_tensor_t *w2,
    const float *x, int n)
{
    float               *outs[3] = { out0, out1, out2 };
    const aie_tensor_t  *ws[3] = { w0, w1, w2 };

    aie_cpu_matmul_many(be, w2 != NULL ? 3 : 2, outs, ws, x, n);
}


static int
aie_cpu_reserve(aie_backend_t *be, int n, int64_t cols)
{
    aie_cpu_backend_t  *cpu = (aie_cpu_backend_t *) be;
    aie_block_q8_0_t   *xq;
    float              *xd;
    int32_t            *xc;
    void               *xp;
    size_t              need;

    need = (size_t) n * (size_t) (cols / AIE_QK + 1);
    if (need > cpu->xq_cap) {
        xq = malloc(need * sizeof(aie_block_q8_0_t));
        xd = malloc(need * sizeof(float));
        xc = malloc(need * sizeof(int32_t));
        if (xq == NULL || xd == NULL || xc == NULL) {
            free(xq);
            free(xd);
            free(xc);
            return -1;
        }

        free(cpu->xq);
        free(cpu->xd);
        free(cpu->xc);
        cpu->xq = xq;
        cpu->xd = xd;
        cpu->xc = xc;
        cpu->xq_cap = need;
    }

    if (cpu->kernels->q8_prep_size != NULL) {
        need = (size_t) n * cpu->kernels->q8_prep_size(cols);
        if (need > cpu->xp_cap) {
            if (posix_memalign(&xp, 64, need) != 0) {
                return -1;
            }

            free(cpu->xp);
            cpu->xp = xp;
            cpu->xp_cap = need;
        }
    }

    return 0;
}


static void
aie_cpu_parallel(aie_backend_t *be, aie_task_pt fn, void *arg, int n_tasks)
{
    aie_cpu_backend_t  *cpu = (aie_cpu_backend_t *) be;

    aie_pool_run(cpu->pool, fn, arg, n_tasks);
}


static void
aie_cpu_free(aie_backend_t *be)
{
    aie_cpu_backend_t  *cpu = (aie_cpu_backend_t *) be;

    aie_pool_free(cpu->pool);
    free(cpu->xq);
    free(cpu->xd);
    free(cpu->xc);
    free(cpu->xp);
    free(cpu);
}


aie_backend_t *
aie_cpu_backend_new(int n_threads)
{
    aie_cpu_backend_t  *cpu;

    cpu = calloc(1, sizeof(aie_cpu_backend_t));
    if (cpu == NULL) {
        return NULL;
    }

    cpu->pool = aie_pool_new(n_threads);
    if (cpu->pool == NULL) {
        free(cpu);
        return NULL;
    }

    cpu->kernels = aie_dot_kernels_best();
    cpu->base.name = cpu->kernels->name;
    cpu->base.n_threads = aie_pool_threads(cpu->pool);
    cpu->base.matmul = aie_cpu_matmul;
    cpu->base.matmul3 = aie_cpu_matmul3;
    cpu->base.reserve = aie_cpu_reserve;
    cpu->base.parallel = aie_cpu_parallel;
    cpu->base.attention = cpu->kernels->attention;
    cpu->base.attention_f16 = cpu->kernels->attention_f16;
    cpu->base.silu_mul = cpu->kernels->silu_mul;
    cpu->base.free = aie_cpu_free;

    return &cpu->base;
}


size_t
aie_cpu_pack_size(const aie_tensor_t *t)
{
    const aie_dot_kernels_t  *k = aie_dot_kernels_best();

    if (t->type != AIE_TYPE_Q8_0 || k->q8_pack == NULL || t->rows < 16
        || t->cols % AIE_QK != 0)
    {
        return 0;
    }

    return (k->q8_pack_size(t->rows, t->cols) + 63) & ~(size_t) 63;
}


void
aie_cpu_pack_tensor(aie_tensor_t *t, void *dst)
{
    const aie_dot_kernels_t  *k = aie_dot_kernels_best();

    k->q8_pack(t->data, t->row_size, t->rows, t->cols, dst);
    t->packed = dst;
}


#define AIE_HUGE_PAGE  ((size_t) 2 << 20)


void *
aie_cpu_pack_alloc(size_t size)
{
    char    *p, *start;
    size_t   len = size + AIE_HUGE_PAGE;

    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }

    /* keep only the 2 MB aligned part, so every huge page is whole */
    start = (char *) (((uintptr_t) p + AIE_HUGE_PAGE - 1)
                      & ~(uintptr_t) (AIE_HUGE_PAGE - 1));
    if (start > p) {
        munmap(p, (size_t) (start - p));
    }
    if (start + size < p + len) {
        munmap(start + size, (size_t) (p + len - (start + size)));
    }

#ifdef MADV_HUGEPAGE
    /* a hint: without transparent huge pages it is plain memory */
    (void) madvise(start, size, MADV_HUGEPAGE);
#endif

    return start;
}


void
aie_cpu_pack_free(void *p, size_t size)
{
    if (p != NULL) {
        munmap(p, size);
    }
}
