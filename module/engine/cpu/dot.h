/*
 * Dot products between one weight row and one activation row, the inner
 * loop of every matmul.  F32 and F16 weights meet float activations;
 * Q8_0 and Q4_0 weights meet activations quantised to Q8_0 blocks, as in
 * ggml.  Each instruction set gets its own table, chosen at run time.
 */

#ifndef AIE_CPU_DOT_H
#define AIE_CPU_DOT_H

#include <stdint.h>

#include "../quant.h"


typedef float (*aie_dot_pt)(const void *w, const void *x, int64_t n);

/*
 * Several rows against several activations at once:
 * out[b * out_stride + r] = dot(row r, x_b) for r0 <= r < r1, b < n.
 * The arithmetic for one (row, activation) pair does not depend on n or on
 * the row range, so a batch gives bit for bit the results of one by one.
 */
typedef void (*aie_mm_pt)(const void *w, size_t row_size, int64_t r0,
    int64_t r1, int64_t cols, const void *x, size_t x_stride, int n,
    float *out, size_t out_stride);

/* repacks n rows of Q8_0 activations (cols each) for mm_q8_0 */
typedef size_t (*aie_q8_prep_size_pt)(int64_t cols);
typedef void (*aie_q8_prep_pt)(const aie_block_q8_0_t *xq, int64_t cols,
    void *dst);

/* one attention head: out = softmax(q.K^T * scale) . V over n positions */
typedef void (*aie_attn_pt)(float *out, const float *q, const float *k,
    const float *v, size_t kv_stride, int n, int hs, float scale,
    float *att);

/* h[i] = silu(h[i]) * h2[i] */
typedef void (*aie_silu_mul_pt)(float *h, const float *h2, int64_t n);

typedef struct {
    const char  *name;
    aie_dot_pt   dot_f32;      /* x: float */
    aie_dot_pt   dot_f16;      /* x: float */
    aie_dot_pt   dot_q8_0;     /* x: aie_block_q8_0_t */
    aie_dot_pt   dot_q4_0;     /* x: aie_block_q8_0_t */

    /* optional (NULL: the matmul falls back to one dot per row) */
    aie_mm_pt            mm_f32;
    aie_mm_pt            mm_q8_0;     /* x: q8_prep's layout, or blocks */
    aie_q8_prep_size_pt  q8_prep_size;
    aie_q8_prep_pt       q8_prep;
    aie_attn_pt          attention;
    aie_silu_mul_pt      silu_mul;
} aie_dot_kernels_t;


const aie_dot_kernels_t *aie_dot_kernels_scalar(void);
/* NULL when the CPU lacks the instructions */
const aie_dot_kernels_t *aie_dot_kernels_avx2(void);
const aie_dot_kernels_t *aie_dot_kernels_avx512(void);
/*
 * the fastest the CPU runs; AIE_CPU=scalar|avx2 in the environment caps it,
 * AIE_FORCE_SCALAR=1 (read each time) forces the scalar reference
 */
const aie_dot_kernels_t *aie_dot_kernels_best(void);

#endif /* AIE_CPU_DOT_H */
