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

/*
 * Q8_0 weights repacked once at load for the kernel below (see dot.c): rows
 * in groups of 16, rows beyond the last whole group are not packed.
 */
typedef size_t (*aie_q8_pack_size_pt)(int64_t rows, int64_t cols);
typedef void (*aie_q8_pack_pt)(const void *w, size_t row_size, int64_t rows,
    int64_t cols, void *dst);

/*
 * One activation row to Q8_0 blocks, bit for bit as aie_quantize_row_q8_0(),
 * with each block's scale as a float (dx) and -128 times the sum of its
 * quants (cx), what the packed kernel needs per block.
 */
typedef void (*aie_q8_act_pt)(const float *x, int64_t cols,
    aie_block_q8_0_t *y, float *dx, int32_t *cx);

/*
 * Row groups g0..g1 of packed weights against n activations:
 * out[b * out_stride + r] for 16 g0 <= r < 16 g1; activation b's blocks at
 * x + b * x_stride, its dx and cx at b * nb.  As with aie_mm_pt, one
 * (row, activation) pair gives the same bits whatever n is.
 */
typedef void (*aie_mm_packed_pt)(const void *wp, int64_t g0, int64_t g1,
    int64_t cols, const aie_block_q8_0_t *x, size_t x_stride,
    const float *dx, const int32_t *cx, int n, float *out,
    size_t out_stride);

/* one attention head: out = softmax(q.K^T * scale) . V over n positions */
typedef void (*aie_attn_pt)(float *out, const float *q, const float *k,
    const float *v, size_t kv_stride, int n, int hs, float scale,
    float *att);

/* the same over F16 keys and values (kv=f16), float arithmetic */
typedef void (*aie_attn_f16_pt)(float *out, const float *q,
    const uint16_t *k, const uint16_t *v, size_t kv_stride, int n, int hs,
    float scale, float *att);

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
    aie_attn_f16_pt      attention_f16;
    aie_silu_mul_pt      silu_mul;

    /* optional: packed Q8_0 weights (all four or none) */
    aie_q8_pack_size_pt  q8_pack_size;
    aie_q8_pack_pt       q8_pack;
    aie_q8_act_pt        q8_act;
    aie_mm_packed_pt     mm_q8_0_packed;
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
