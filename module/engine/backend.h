/*
 * The interface between the model code, which says what to compute, and a
 * backend (cpu/, later cuda/), which says how to compute it fast.
 */

#ifndef AIE_BACKEND_H
#define AIE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"


/* a weight matrix as stored: rows of cols elements, row-major */
typedef struct {
    aie_type_t   type;
    const void  *data;
    int64_t      rows;
    int64_t      cols;
    size_t       row_size;
    const void  *packed;    /* the same, repacked for the CPU kernels */
} aie_tensor_t;

typedef void (*aie_task_pt)(void *arg, int task, int thread);

typedef struct aie_backend_s  aie_backend_t;

struct aie_backend_s {
    const char  *name;
    int          n_threads;

    /*
     * out[b][r] = dot(W row r, x[b]) for b < n: one pass over the weights
     * serves the n activations (tokens of one or several sequences).
     */
    void  (*matmul)(aie_backend_t *be, float *out, const aie_tensor_t *w,
                    const float *x, int n);

    /*
     * the same for two or three matrices of the same input (w2 NULL: two),
     * in one pass over the threads
     */
    void  (*matmul3)(aie_backend_t *be, float *out0, const aie_tensor_t *w0,
                     float *out1, const aie_tensor_t *w1, float *out2,
                     const aie_tensor_t *w2, const float *x, int n);

    /* sizes scratch for matmuls of up to n activations of cols each */
    int   (*reserve)(aie_backend_t *be, int n, int64_t cols);

    /* one attention head over n cached positions (see cpu/dot.h) */
    void  (*attention)(float *out, const float *q, const float *k,
                       const float *v, size_t kv_stride, int n, int hs,
                       float scale, float *att);

    /* the same over F16 keys and values (kv=f16) */
    void  (*attention_f16)(float *out, const float *q, const uint16_t *k,
                           const uint16_t *v, size_t kv_stride, int n,
                           int hs, float scale, float *att);

    /* h[i] = silu(h[i]) * h2[i] */
    void  (*silu_mul)(float *h, const float *h2, int64_t n);

    /* runs fn(arg, task, thread) for task 0..n_tasks-1 on the threads */
    void  (*parallel)(aie_backend_t *be, aie_task_pt fn, void *arg,
                      int n_tasks);

    void  (*free)(aie_backend_t *be);
};


aie_backend_t *aie_cpu_backend_new(int n_threads);

/*
 * Weight matrices repacked for the fastest CPU kernels, all in one arena:
 * aie_cpu_pack_size() says how many bytes t's packed copy needs (a
 * multiple of 64; 0 when the kernels read t as stored), and
 * aie_cpu_pack_tensor() writes it at dst (64-byte aligned) and points
 * t->packed there.  The arena comes from aie_cpu_pack_alloc(): aligned to
 * 2 MB and asking for transparent huge pages, because streaming a model
 * through 4 KB pages costs a TLB miss every 4 KB (a third of one core's
 * read rate on the development VM).
 */
size_t aie_cpu_pack_size(const aie_tensor_t *t);
void aie_cpu_pack_tensor(aie_tensor_t *t, void *dst);
void *aie_cpu_pack_alloc(size_t size);
void aie_cpu_pack_free(void *p, size_t size);

#endif /* AIE_BACKEND_H */
