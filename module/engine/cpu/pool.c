/*
 * Thread pool.  Tasks are claimed with an atomic counter.  A worker takes a
 * snapshot of the job and registers itself as active under the lock; the
 * caller neither returns nor posts a new job while any worker is active, so
 * a late worker never runs one job's function on another job's tasks.
 */

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"


/*
 * Jobs come in bursts (a forward pass posts a few per layer, hundreds per
 * token, a few microseconds apart), so a thread spins this long for the
 * next job, or for the last task of its own, before it sleeps: a futex
 * wake-up per matmul (tens of microseconds in a VM) costs more than a small
 * matmul.  AIE_POOL_SPIN_US in the environment changes it (0: never spin).
 */
#define AIE_POOL_SPIN_US_DEFAULT  50

static long  aie_pool_spin_ns = AIE_POOL_SPIN_US_DEFAULT * 1000L;


static inline long
aie_pool_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}


/*
 * Whether a spin that ends at `until` is over; after its first couple of
 * microseconds (back-to-back jobs) it yields the core at each check, so
 * spinning costs little when other processes want the core (NGINX
 * workers, builds) and a wake-up is still a cache-line read when not.
 */
static int
aie_pool_spin_over(long until)
{
    long  now = aie_pool_now_ns();

    if (now > until) {
        return 1;
    }

    if (until - now < aie_pool_spin_ns - 2000) {
        sched_yield();
    }

    return 0;
}


static inline void
aie_pool_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}


struct aie_pool_s {
    int              n_threads;
    pthread_t       *threads;
    int              n_started;

    pthread_mutex_t  run_lock;      /* one job at a time */
    pthread_mutex_t  lock;
    pthread_cond_t   work_cond;
    pthread_cond_t   done_cond;

    aie_task_pt      fn;
    void            *arg;
    int              n_tasks;
    int              active;

    /*
     * What spinning workers poll, and the counters every task bumps, each
     * on a cache line of its own: sharing one, every claimed task took the
     * line away from the spinning threads and back.
     */
    unsigned         generation __attribute__((aligned(64)));
    int              stop;
    int              next_task __attribute__((aligned(64)));    /* atomic */
    int              done_tasks __attribute__((aligned(64)));   /* atomic */
    char             pad[60];
};

typedef struct {
    aie_pool_t  *pool;
    int          index;
} aie_pool_worker_arg_t;


static void
aie_pool_work(aie_pool_t *pool, aie_task_pt fn, void *arg, int n_tasks,
    int thread)
{
    int  task, done;

    for ( ;; ) {
        task = __atomic_fetch_add(&pool->next_task, 1, __ATOMIC_ACQ_REL);
        if (task >= n_tasks) {
            return;
        }

        fn(arg, task, thread);

        done = __atomic_add_fetch(&pool->done_tasks, 1, __ATOMIC_ACQ_REL);
        if (done == n_tasks) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done_cond);
            pthread_mutex_unlock(&pool->lock);
        }
    }
}


static void *
aie_pool_worker(void *data)
{
    aie_pool_worker_arg_t  *wa = data;
    aie_pool_t             *pool = wa->pool;
    int                     index = wa->index;
    unsigned                seen = 0;
    aie_task_pt             fn;
    void                   *arg;
    int                     n_tasks;

    free(wa);

    pthread_mutex_lock(&pool->lock);

    for ( ;; ) {
        if (!pool->stop && pool->generation == seen && aie_pool_spin_ns) {
            long      until = aie_pool_now_ns() + aie_pool_spin_ns;
            unsigned  spin;

            pthread_mutex_unlock(&pool->lock);

            for (spin = 1; ; spin++) {
                if (__atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE)
                    != seen
                    || __atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE)
                    || (spin % 32 == 0 && aie_pool_spin_over(until)))
                {
                    break;
                }
                aie_pool_pause();
            }

            pthread_mutex_lock(&pool->lock);
        }

        while (!pool->stop && pool->generation == seen) {
            pthread_cond_wait(&pool->work_cond, &pool->lock);
        }

        if (pool->stop) {
            break;
        }

        seen = pool->generation;
        fn = pool->fn;
        arg = pool->arg;
        n_tasks = pool->n_tasks;
        __atomic_store_n(&pool->active, pool->active + 1, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&pool->lock);

        aie_pool_work(pool, fn, arg, n_tasks, index);

        pthread_mutex_lock(&pool->lock);
        __atomic_store_n(&pool->active, pool->active - 1, __ATOMIC_RELEASE);
        if (pool->active == 0) {
            pthread_cond_signal(&pool->done_cond);
        }
    }

    pthread_mutex_unlock(&pool->lock);
    return NULL;
}


aie_pool_t *
aie_pool_new(int n_threads)
{
    int                     i;
    aie_pool_t             *pool;
    aie_pool_worker_arg_t  *wa;

    if (posix_memalign((void **) &pool, 64, sizeof(aie_pool_t)) != 0) {
        return NULL;
    }
    memset(pool, 0, sizeof(aie_pool_t));

    pool->n_threads = n_threads < 1 ? 1 : n_threads;

    if (getenv("AIE_POOL_SPIN_US") != NULL) {
        aie_pool_spin_ns = atol(getenv("AIE_POOL_SPIN_US")) * 1000L;
    }
    pthread_mutex_init(&pool->run_lock, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_cond, NULL);
    pthread_cond_init(&pool->done_cond, NULL);

    if (pool->n_threads == 1) {
        return pool;
    }

    pool->threads = calloc((size_t) pool->n_threads, sizeof(pthread_t));
    if (pool->threads == NULL) {
        aie_pool_free(pool);
        return NULL;
    }

    for (i = 1; i < pool->n_threads; i++) {
        wa = malloc(sizeof(aie_pool_worker_arg_t));
        if (wa == NULL) {
            break;
        }

        wa->pool = pool;
        wa->index = i;

        if (pthread_create(&pool->threads[i], NULL, aie_pool_worker, wa)
            != 0)
        {
            free(wa);
            break;
        }

        pool->n_started = i;
    }

    if (pool->n_started != pool->n_threads - 1) {
        aie_pool_free(pool);
        return NULL;
    }

    return pool;
}


void
aie_pool_free(aie_pool_t *pool)
{
    int  i;

    if (pool == NULL) {
        return;
    }

    pthread_mutex_lock(&pool->lock);
    __atomic_store_n(&pool->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->work_cond);
    pthread_mutex_unlock(&pool->lock);

    for (i = 1; i <= pool->n_started; i++) {
        pthread_join(pool->threads[i], NULL);
    }

    free(pool->threads);
    pthread_cond_destroy(&pool->work_cond);
    pthread_cond_destroy(&pool->done_cond);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->run_lock);
    free(pool);
}


int
aie_pool_threads(const aie_pool_t *pool)
{
    return pool->n_threads;
}


void
aie_pool_run(aie_pool_t *pool, aie_task_pt fn, void *arg, int n_tasks)
{
    int  i;

    if (n_tasks <= 0) {
        return;
    }

    if (pool->n_threads == 1 || n_tasks == 1) {
        for (i = 0; i < n_tasks; i++) {
            fn(arg, i, 0);
        }
        return;
    }

    pthread_mutex_lock(&pool->run_lock);

    pthread_mutex_lock(&pool->lock);

    /* a worker that woke late may have joined the previous, finished job */
    while (pool->active > 0) {
        pthread_cond_wait(&pool->done_cond, &pool->lock);
    }

    pool->fn = fn;
    pool->arg = arg;
    pool->n_tasks = n_tasks;
    __atomic_store_n(&pool->next_task, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pool->done_tasks, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pool->generation, pool->generation + 1,
                     __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->work_cond);
    pthread_mutex_unlock(&pool->lock);

    aie_pool_work(pool, fn, arg, n_tasks, 0);

    if (aie_pool_spin_ns) {
        long  until = aie_pool_now_ns() + aie_pool_spin_ns;

        for (i = 1; ; i++) {
            if ((__atomic_load_n(&pool->done_tasks, __ATOMIC_ACQUIRE)
                 >= n_tasks
                 && __atomic_load_n(&pool->active, __ATOMIC_ACQUIRE) == 0)
                || (i % 32 == 0 && aie_pool_spin_over(until)))
            {
                break;
            }
            aie_pool_pause();
        }
    }

    pthread_mutex_lock(&pool->lock);
    while (__atomic_load_n(&pool->done_tasks, __ATOMIC_ACQUIRE) < n_tasks
           || pool->active > 0)
    {
        pthread_cond_wait(&pool->done_cond, &pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);

    pthread_mutex_unlock(&pool->run_lock);
}
