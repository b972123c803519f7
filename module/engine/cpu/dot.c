/*
 * Dot-product kernels: a portable scalar reference, then AVX2+FMA+F16C and
 * AVX-512F versions compiled with function-level target attributes, so the
 * library builds with plain -O2 and picks the kernels the CPU supports.
 */

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AIE_X86  1
#endif

#include "dot.h"


/* scalar reference */

static float
aie_dot_f32_scalar(const void *w, const void *x, int64_t n)
{
    const float  *a = w, *b = x;
    float         sum[4] = { 0, 0, 0, 0 };
    int64_t       i;

    for (i = 0; i + 4 <= n; i += 4) {
        sum[0] += a[i] * b[i];
        sum[1] += a[i + 1] * b[i + 1];
        sum[2] += a[i + 2] * b[i + 2];
        sum[3] += a[i + 3] * b[i + 3];
    }

    for ( /* void */ ; i < n; i++) {
        sum[0] += a[i] * b[i];
    }

    return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}


static float
aie_dot_f16_scalar(const void *w, const void *x, int64_t n)
{
    const uint16_t  *a = w;
    const float     *b = x;
    float            sum = 0.0f;
    int64_t          i;

    for (i = 0; i < n; i++) {
        sum += aie_fp16_to_fp32(a[i]) * b[i];
    }

    return sum;
}


static float
aie_dot_q8_0_scalar(const void *w, const void *x, int64_t n)
{
    const aie_block_q8_0_t  *a = w, *b = x;
    float                    sum = 0.0f;
    int64_t                  i;
    int                      j, isum;

    for (i = 0; i < n / AIE_QK; i++) {
        isum = 0;
        for (j = 0; j < AIE_QK; j++) {
            isum += a[i].qs[j] * b[i].qs[j];
        }

        sum += (float) isum * aie_fp16_to_fp32(a[i].d)
               * aie_fp16_to_fp32(b[i].d);
    }

    return sum;
}


static float
aie_dot_q4_0_scalar(const void *w, const void *x, int64_t n)
{
    const aie_block_q4_0_t  *a = w;
    const aie_block_q8_0_t  *b = x;
    float                    sum = 0.0f;
    int64_t                  i;
    int                      j, isum;

    for (i = 0; i < n / AIE_QK; i++) {
        isum = 0;
        for (j = 0; j < AIE_QK / 2; j++) {
            isum += ((a[i].qs[j] & 0x0F) - 8) * b[i].qs[j];
            isum += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + AIE_QK / 2];
        }

        sum += (float) isum * aie_fp16_to_fp32(a[i].d)
               * aie_fp16_to_fp32(b[i].d);
    }

    return sum;
}


static const aie_dot_kernels_t  aie_dot_scalar = {
    "scalar",
    aie_dot_f32_scalar,
    aie_dot_f16_scalar,
    aie_dot_q8_0_scalar,
    aie_dot_q4_0_scalar
};


const aie_dot_kernels_t *
aie_dot_kernels_scalar(void)
{
    return &aie_dot_scalar;
}


#ifdef AIE_X86

/* AVX2 + FMA + F16C */

#define AIE_AVX2  __attribute__((target("avx2,fma,f16c")))


AIE_AVX2 static inline float
aie_hsum256(__m256 v)
{
    __m128  lo = _mm256_castps256_ps128(v);
    __m128  hi = _mm256_extractf128_ps(v, 1);

    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));

    return _mm_cvtss_f32(lo);
}


AIE_AVX2 static float
aie_dot_f32_avx2(const void *w, const void *x, int64_t n)
{
    const float  *a = w, *b = x;
    __m256        s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256        s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t       i;
    float         sum;

    for (i = 0; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i),
                             s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                             _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16),
                             _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24),
                             _mm256_loadu_ps(b + i + 24), s3);
    }

    for ( /* void */ ; i + 8 <= n; i += 8) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i),
                             s0);
    }

    sum = aie_hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1),
                                    _mm256_add_ps(s2, s3)));

    for ( /* void */ ; i < n; i++) {
        sum += a[i] * b[i];
    }

    return sum;
}


AIE_AVX2 static float
aie_dot_f16_avx2(const void *w, const void *x, int64_t n)
{
    const uint16_t  *a = w;
    const float     *b = x;
    __m256           s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t          i;
    float            sum;

    for (i = 0; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(
                 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (a + i))),
                 _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(
                 _mm256_cvtph_ps(
                     _mm_loadu_si128((const __m128i *) (a + i + 8))),
                 _mm256_loadu_ps(b + i + 8), s1);
    }

    for ( /* void */ ; i + 8 <= n; i += 8) {
        s0 = _mm256_fmadd_ps(
                 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (a + i))),
                 _mm256_loadu_ps(b + i), s0);
    }

    sum = aie_hsum256(_mm256_add_ps(s0, s1));

    for ( /* void */ ; i < n; i++) {
        sum += aie_fp16_to_fp32(a[i]) * b[i];
    }

    return sum;
}


/*
 * Sum of x[i] * y[i] for 32 signed bytes as 8 floats: maddubs wants one
 * unsigned operand, so move x's sign onto y.  Values stay within
 * [-127, 127], so the pairwise int16 sums cannot saturate.
 */
AIE_AVX2 static inline __m256
aie_mul_sum_i8_avx2(__m256i x, __m256i y)
{
    __m256i  ax = _mm256_sign_epi8(x, x);
    __m256i  sy = _mm256_sign_epi8(y, x);
    __m256i  dot = _mm256_maddubs_epi16(ax, sy);

    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot));
}


AIE_AVX2 static float
aie_dot_q8_0_avx2(const void *w, const void *x, int64_t n)
{
    const aie_block_q8_0_t  *a = w, *b = x;
    __m256                   acc = _mm256_setzero_ps();
    __m256                   d, q;
    int64_t                  i;

    for (i = 0; i < n / AIE_QK; i++) {
        d = _mm256_set1_ps(aie_fp16_to_fp32(a[i].d)
                           * aie_fp16_to_fp32(b[i].d));
        q = aie_mul_sum_i8_avx2(
                _mm256_loadu_si256((const __m256i *) a[i].qs),
                _mm256_loadu_si256((const __m256i *) b[i].qs));
        acc = _mm256_fmadd_ps(d, q, acc);
    }

    return aie_hsum256(acc);
}


AIE_AVX2 static float
aie_dot_q4_0_avx2(const void *w, const void *x, int64_t n)
{
    const aie_block_q4_0_t  *a = w;
    const aie_block_q8_0_t  *b = x;
    __m256                   acc = _mm256_setzero_ps();
    __m256                   d, q;
    __m256i                  qa;
    __m128i                  nib;
    int64_t                  i;

    for (i = 0; i < n / AIE_QK; i++) {
        d = _mm256_set1_ps(aie_fp16_to_fp32(a[i].d)
                           * aie_fp16_to_fp32(b[i].d));

        /* low nibbles are elements 0..15, high nibbles 16..31 */
        nib = _mm_loadu_si128((const __m128i *) a[i].qs);
        qa = _mm256_set_m128i(_mm_srli_epi16(nib, 4), nib);
        qa = _mm256_and_si256(qa, _mm256_set1_epi8(0x0F));
        qa = _mm256_sub_epi8(qa, _mm256_set1_epi8(8));

        q = aie_mul_sum_i8_avx2(qa,
                _mm256_loadu_si256((const __m256i *) b[i].qs));
        acc = _mm256_fmadd_ps(d, q, acc);
    }

    return aie_hsum256(acc);
}


static const aie_dot_kernels_t  aie_dot_avx2 = {
    "avx2",
    aie_dot_f32_avx2,
    aie_dot_f16_avx2,
    aie_dot_q8_0_avx2,
    aie_dot_q4_0_avx2
};


/* AVX-512F: wider float kernels; the integer ones stay AVX2 */

#define AIE_AVX512  __attribute__((target("avx512f,avx2,fma,f16c")))


AIE_AVX512 static float
aie_dot_f32_avx512(const void *w, const void *x, int64_t n)
{
    const float  *a = w, *b = x;
    __m512        s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t       i;
    float         sum;

    for (i = 0; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i),
                             s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16),
                             _mm512_loadu_ps(b + i + 16), s1);
    }

    for ( /* void */ ; i + 16 <= n; i += 16) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i),
                             s0);
    }

    sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));

    for ( /* void */ ; i < n; i++) {
        sum += a[i] * b[i];
    }

    return sum;
}


AIE_AVX512 static float
aie_dot_f16_avx512(const void *w, const void *x, int64_t n)
{
    const uint16_t  *a = w;
    const float     *b = x;
    __m512           s0 = _mm512_setzero_ps();
    int64_t          i;
    float            sum;

    for (i = 0; i + 16 <= n; i += 16) {
        s0 = _mm512_fmadd_ps(
                 _mm512_cvtph_ps(
                     _mm256_loadu_si256((const __m256i *) (a + i))),
                 _mm512_loadu_ps(b + i), s0);
    }

    sum = _mm512_reduce_add_ps(s0);

    for ( /* void */ ; i < n; i++) {
        sum += aie_fp16_to_fp32(a[i]) * b[i];
    }

    return sum;
}


static const aie_dot_kernels_t  aie_dot_avx512 = {
    "avx512",
    aie_dot_f32_avx512,
    aie_dot_f16_avx512,
    aie_dot_q8_0_avx2,
    aie_dot_q4_0_avx2
};


const aie_dot_kernels_t *
aie_dot_kernels_avx2(void)
{
    __builtin_cpu_init();

    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
        && __builtin_cpu_supports("f16c"))
    {
        return &aie_dot_avx2;
    }

    return NULL;
}


const aie_dot_kernels_t *
aie_dot_kernels_avx512(void)
{
    if (aie_dot_kernels_avx2() != NULL
        && __builtin_cpu_supports("avx512f"))
    {
        return &aie_dot_avx512;
    }

    return NULL;
}

#else

const aie_dot_kernels_t *
aie_dot_kernels_avx2(void)
{
    return NULL;
}


const aie_dot_kernels_t *
aie_dot_kernels_avx512(void)
{
    return NULL;
}

#endif


const aie_dot_kernels_t *
aie_dot_kernels_best(void)
{
    const char               *cap = getenv("AIE_CPU");
    const aie_dot_kernels_t  *k;

    if (cap != NULL && strcmp(cap, "scalar") == 0) {
        return &aie_dot_scalar;
    }

    if (cap == NULL || strcmp(cap, "avx2") != 0) {
        k = aie_dot_kernels_avx512();
        if (k != NULL) {
            return k;
        }
    }

    k = aie_dot_kernels_avx2();

    return k != NULL ? k : &aie_dot_scalar;
}
