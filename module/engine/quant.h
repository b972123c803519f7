/*
 * Tensor element types and quantised block layouts, defined once for every
 * backend.  The layouts and type ids are ggml's, so GGUF data is used in
 * place.
 */

#ifndef AIE_QUANT_H
#define AIE_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>


typedef enum {
    AIE_TYPE_F32  = 0,
    AIE_TYPE_F16  = 1,
    AIE_TYPE_Q4_0 = 2,
    AIE_TYPE_Q8_0 = 8
} aie_type_t;

#define AIE_QK  32      /* elements per quantised block */

/* 32 weights = d * q, q in [-127, 127] */
typedef struct {
    uint16_t  d;        /* fp16 scale */
    int8_t    qs[AIE_QK];
} aie_block_q8_0_t;

/* 32 weights = d * (q - 8); low nibbles hold 0..15, high 16..31 */
typedef struct {
    uint16_t  d;
    uint8_t   qs[AIE_QK / 2];
} aie_block_q4_0_t;

_Static_assert(sizeof(aie_block_q8_0_t) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(aie_block_q4_0_t) == 18, "q4_0 block is 18 bytes");


static inline uint32_t
aie_f32_bits(float f)
{
    uint32_t  u;

    memcpy(&u, &f, sizeof(u));
    return u;
}


static inline float
aie_f32_from_bits(uint32_t u)
{
    float  f;

    memcpy(&f, &u, sizeof(f));
    return f;
}


/* IEEE half to float, subnormals and NaN included (after FP16 by Dukhan) */
static inline float
aie_fp16_to_fp32(uint16_t h)
{
    uint32_t  w = (uint32_t) h << 16;
    uint32_t  sign = w & 0x80000000u;
    uint32_t  two_w = w + w;
    float     normalized, denormalized;

    normalized = aie_f32_from_bits((two_w >> 4) + (0xE0u << 23))
                 * 0x1.0p-112f;
    denormalized = aie_f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;

    return aie_f32_from_bits(sign | (two_w < (1u << 27)
                                     ? aie_f32_bits(denormalized)
                                     : aie_f32_bits(normalized)));
}


/* float to IEEE half, round to nearest even */
static inline uint16_t
aie_fp32_to_fp16(float f)
{
    float     base = (f < 0 ? -f : f) * 0x1.0p+112f * 0x1.0p-110f;
    uint32_t  w = aie_f32_bits(f);
    uint32_t  shl1_w = w + w;
    uint32_t  sign = w & 0x80000000u;
    uint32_t  bias = shl1_w & 0xFF000000u;
    uint32_t  bits;

    if (bias < 0x71000000u) {
        bias = 0x71000000u;
    }

    base = aie_f32_from_bits((bias >> 1) + 0x07800000u) + base;
    bits = aie_f32_bits(base);

    return (uint16_t) ((sign >> 16)
                       | (shl1_w > 0xFF000000u
                          ? 0x7E00u
                          : ((bits >> 13) & 0x7C00u) + (bits & 0x0FFFu)));
}


const char *aie_type_name(aie_type_t type);
int aie_type_known(uint32_t type);
/* Bytes of a row of n elements; 0 when n does not fit the type's blocks. */
size_t aie_type_row_size(aie_type_t type, int64_t n);
void aie_dequantize_row(aie_type_t type, const void *src, float *dst,
    int64_t n);
/* n must be a multiple of AIE_QK */
void aie_quantize_row_q8_0(const float *x, aie_block_q8_0_t *y, int64_t n);

#endif /* AIE_QUANT_H */
