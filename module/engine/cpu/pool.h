/*
 * A fixed set of worker threads that run one parallel job at a time; the
 * calling thread works too, so a pool of n threads starts n - 1.
 */

#ifndef AIE_CPU_POOL_H
#define AIE_CPU_POOL_H

#include "../backend.h"


typedef struct aie_pool_s  aie_pool_t;

aie_pool_t *aie_pool_new(int n_threads);
void aie_pool_free(aie_pool_t *pool);
int aie_pool_threads(const aie_pool_t *pool);
/* Runs the tasks and returns when all are done; callers are serialised. */
void aie_pool_run(aie_pool_t *pool, aie_task_pt fn, void *arg, int n_tasks);

#endif /* AIE_CPU_POOL_H */
