/*
 * Element types: names, row sizes, (de)quantisation of whole rows.
 */

#include <math.h>

#include "quant.h"


const char *
aie_type_name(aie_type_t type)
{
    switch (type) {
    case AIE_TYPE_F32:  return "F32";
    case AIE_TYPE_F16:  return "F16";
    case AIE_TYPE_Q4_0: return "Q4_0";
    case AIE_TYPE_Q8_0: return "Q8_0";
    }

    return "?";
}


int
aie_type_known(uint32_t type)
{
    return type == AIE_TYPE_F32 || type == AIE_TYPE_F16
           || type == AIE_TYPE_Q4_0 || type == AIE_TYPE_Q8_0;
}


size_t
aie_type_row_size(aie_type_t type, int64_t n)
{
    if (n <= 0) {
        return 0;
    }

    switch (type) {
    case AIE_TYPE_F32:
        return (size_t) n * 4;
    case AIE_TYPE_F16:
        return (size_t) n * 2;
    case AIE_TYPE_Q4_0:
        return n % AIE_QK ? 0 : (size_t) (n / AIE_QK)
                                 * sizeof(aie_block_q4_0_t);
    case AIE_TYPE_Q8_0:
        return n % AIE_QK ? 0 : (size_t) (n / AIE_QK)
                                 * sizeof(aie_block_q8_0_t);
    }

    return 0;
}


void
aie_dequantize_row(aie_type_t type, const void *src, float *dst, int64_t n)
{
    int64_t                  i, j;
    const uint16_t          *h;
    const aie_block_q8_0_t  *q8;
    const aie_block_q4_0_t  *q4;
    float                    d;

    switch (type) {
    case AIE_TYPE_F32:
        memcpy(dst, src, (size_t) n * sizeof(float));
        return;

    case AIE_TYPE_F16:
        h = src;
        for (i = 0; i < n; i++) {
            dst[i] = aie_fp16_to_fp32(h[i]);
        }
        return;

    case AIE_TYPE_Q8_0:
        q8 = src;
        for (i = 0; i < n / AIE_QK; i++) {
            d = aie_fp16_to_fp32(q8[i].d);
            for (j = 0; j < AIE_QK; j++) {
                dst[i * AIE_QK + j] = d * q8[i].qs[j];
            }
        }
        return;

    case AIE_TYPE_Q4_0:
        q4 = src;
        for (i = 0; i < n / AIE_QK; i++) {
            d = aie_fp16_to_fp32(q4[i].d);
            for (j = 0; j < AIE_QK / 2; j++) {
                dst[i * AIE_QK + j] = d * ((q4[i].qs[j] & 0x0F) - 8);
                dst[i * AIE_QK + j + AIE_QK / 2] = d * ((q4[i].qs[j] >> 4) - 8);
            }
        }
        return;
    }
}


/* like ggml's quantize_row_q8_0: d = max|x| / 127, q = round(x / d) */
void
aie_quantize_row_q8_0(const float *x, aie_block_q8_0_t *y, int64_t n)
{
    int64_t  i, j;
    float    amax, d, id, v;

    for (i = 0; i < n / AIE_QK; i++) {
        amax = 0.0f;
        for (j = 0; j < AIE_QK; j++) {
            v = fabsf(x[i * AIE_QK + j]);
            amax = v > amax ? v : amax;
        }

        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = aie_fp32_to_fp16(d);

        for (j = 0; j < AIE_QK; j++) {
            y[i].qs[j] = (int8_t) roundf(x[i * AIE_QK + j] * id);
        }
    }
}
