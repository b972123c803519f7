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

typedef struct {
    const char  *name;
    aie_dot_pt   dot_f32;      /* x: float */
    aie_dot_pt   dot_f16;      /* x: float */
    aie_dot_pt   dot_q8_0;     /* x: aie_block_q8_0_t */
    aie_dot_pt   dot_q4_0;     /* x: aie_block_q8_0_t */
} aie_dot_kernels_t;


const aie_dot_kernels_t *aie_dot_kernels_scalar(void);
/* NULL when the CPU lacks the instructions */
const aie_dot_kernels_t *aie_dot_kernels_avx2(void);
const aie_dot_kernels_t *aie_dot_kernels_avx512(void);
/* the fastest the CPU runs; AIE_CPU=scalar|avx2 in the environment caps it */
const aie_dot_kernels_t *aie_dot_kernels_best(void);

#endif /* AIE_CPU_DOT_H */
