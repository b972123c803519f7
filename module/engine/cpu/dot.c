/*
 * Dot-product kernels: a portable scalar reference, then AVX2+FMA+F16C and
 * AVX-512F versions compiled with function-level target attributes, so the
 * library builds with plain -O2 and picks the kernels the CPU supports.
 */

#include <math.h>
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


/* element i of a KV row: F32, or F16 (kv=f16) */
static inline float
aie_kv_get(const void *p, size_t i, int f16)
{
    return f16 ? aie_fp16_to_fp32(((const uint16_t *) p)[i])
               : ((const float *) p)[i];
}


/* the plain attention loop: scores, softmax, weighted sum of values */
static inline void
aie_attention_scalar_kv(float *out, const float *q, const void *k,
    const void *v, size_t kv_stride, int n, int hs, float scale, float *att,
    int f16)
{
    size_t  kt, vt;
    float   score, max, sum;
    int     t, d;

    for (t = 0; t < n; t++) {
        kt = (size_t) t * kv_stride;
        score = 0.0f;
        for (d = 0; d < hs; d++) {
            score += q[d] * aie_kv_get(k, kt + d, f16);
        }
        att[t] = score * scale;
    }

    max = att[0];
    for (t = 1; t < n; t++) {
        max = att[t] > max ? att[t] : max;
    }

    sum = 0.0f;
    for (t = 0; t < n; t++) {
        att[t] = expf(att[t] - max);
        sum += att[t];
    }

    for (t = 0; t < n; t++) {
        att[t] /= sum;
    }

    memset(out, 0, (size_t) hs * sizeof(float));

    for (t = 0; t < n; t++) {
        vt = (size_t) t * kv_stride;
        for (d = 0; d < hs; d++) {
            out[d] += att[t] * aie_kv_get(v, vt + d, f16);
        }
    }
}


static void
aie_attention_scalar(float *out, const float *q, const float *k,
    const float *v, size_t kv_stride, int n, int hs, float scale, float *att)
{
    aie_attention_scalar_kv(out, q, k, v, kv_stride, n, hs, scale, att, 0);
}


static void
aie_attention_f16_scalar(float *out, const float *q, const uint16_t *k,
    const uint16_t *v, size_t kv_stride, int n, int hs, float scale,
    float *att)
{
    aie_attention_scalar_kv(out, q, k, v, kv_stride, n, hs, scale, att, 1);
}


static void
aie_silu_mul_scalar(float *h, const float *h2, int64_t n)
{
    int64_t  i;
    float    g;

    for (i = 0; i < n; i++) {
        g = h[i];
        h[i] = g / (1.0f + expf(-g)) * h2[i];
    }
}


static const aie_dot_kernels_t  aie_dot_scalar = {
    "scalar",
    aie_dot_f32_scalar,
    aie_dot_f16_scalar,
    aie_dot_q8_0_scalar,
    aie_dot_q4_0_scalar,
    NULL, NULL, NULL, NULL,
    aie_attention_scalar,
    aie_attention_f16_scalar,
    aie_silu_mul_scalar,
    NULL, NULL, NULL, NULL
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
        d = _mm256_set1_ps(_cvtsh_ss(a[i].d) * _cvtsh_ss(b[i].d));
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
        d = _mm256_set1_ps(_cvtsh_ss(a[i].d) * _cvtsh_ss(b[i].d));

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

/*
 * The sums of eight vectors, as one vector: lane j is
 * ((p_j[0] + p_j[1]) + (p_j[2] + p_j[3])) + ((p_j[4] + p_j[5]) + ...),
 * the same order as aie_hsum8_avx2() below.
 */
AIE_AVX2 static inline __m256
aie_reduce8_avx2(__m256 p0, __m256 p1, __m256 p2, __m256 p3, __m256 p4,
    __m256 p5, __m256 p6, __m256 p7)
{
    __m256  h01 = _mm256_hadd_ps(p0, p1), h23 = _mm256_hadd_ps(p2, p3);
    __m256  h45 = _mm256_hadd_ps(p4, p5), h67 = _mm256_hadd_ps(p6, p7);
    __m256  a = _mm256_hadd_ps(h01, h23), b = _mm256_hadd_ps(h45, h67);

    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20),
                         _mm256_permute2f128_ps(a, b, 0x31));
}


AIE_AVX2 static inline float
aie_hsum8_avx2(__m256 p)
{
    __m256  h = _mm256_hadd_ps(p, p);

    h = _mm256_hadd_ps(h, h);

    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(h),
                                    _mm256_extractf128_ps(h, 1)));
}


AIE_AVX2 static inline __m256i
aie_tail_mask_avx2(int64_t rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int) rem),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}


/* eight F32 rows at a time, one reduction for all eight */
AIE_AVX2 static void
aie_mm_f32_avx2(const void *w, size_t row_size, int64_t r0, int64_t r1,
    int64_t cols, const void *x, size_t x_stride, int n, float *out,
    size_t out_stride)
{
    const char   *wb = w;
    const float  *w0, *w1, *w2, *w3, *w4, *w5, *w6, *w7, *xb;
    int64_t       r, c, c8 = cols & ~(int64_t) 7, rem = cols - c8;
    __m256i       mask = aie_tail_mask_avx2(rem);
    __m256        a0, a1, a2, a3, a4, a5, a6, a7, xv;
    int           b;

#define aie_row(i)  ((const float *) (wb + (size_t) (r + i) * row_size))

    for (r = r0; r + 8 <= r1; r += 8) {
        w0 = aie_row(0); w1 = aie_row(1); w2 = aie_row(2); w3 = aie_row(3);
        w4 = aie_row(4); w5 = aie_row(5); w6 = aie_row(6); w7 = aie_row(7);

        for (b = 0; b < n; b++) {
            xb = (const float *) ((const char *) x + (size_t) b * x_stride);
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = _mm256_setzero_ps();

#define aie_step(ld)                                                        \
            a0 = _mm256_fmadd_ps(ld(w0 + c), xv, a0);                       \
            a1 = _mm256_fmadd_ps(ld(w1 + c), xv, a1);                       \
            a2 = _mm256_fmadd_ps(ld(w2 + c), xv, a2);                       \
            a3 = _mm256_fmadd_ps(ld(w3 + c), xv, a3);                       \
            a4 = _mm256_fmadd_ps(ld(w4 + c), xv, a4);                       \
            a5 = _mm256_fmadd_ps(ld(w5 + c), xv, a5);                       \
            a6 = _mm256_fmadd_ps(ld(w6 + c), xv, a6);                       \
            a7 = _mm256_fmadd_ps(ld(w7 + c), xv, a7)

#define aie_ldm(p)  _mm256_maskload_ps(p, mask)

            for (c = 0; c < c8; c += 8) {
                xv = _mm256_loadu_ps(xb + c);
                aie_step(_mm256_loadu_ps);
            }

            if (rem) {
                xv = _mm256_maskload_ps(xb + c, mask);
                aie_step(aie_ldm);
            }

            _mm256_storeu_ps(out + (size_t) b * out_stride + r,
                             aie_reduce8_avx2(a0, a1, a2, a3, a4, a5, a6,
                                              a7));
        }
    }

    for ( /* void */ ; r < r1; r++) {
        w0 = aie_row(0);

        for (b = 0; b < n; b++) {
            xb = (const float *) ((const char *) x + (size_t) b * x_stride);
            a0 = _mm256_setzero_ps();

            for (c = 0; c < c8; c += 8) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + c),
                                     _mm256_loadu_ps(xb + c), a0);
            }

            if (rem) {
                a0 = _mm256_fmadd_ps(_mm256_maskload_ps(w0 + c, mask),
                                     _mm256_maskload_ps(xb + c, mask), a0);
            }

            out[(size_t) b * out_stride + r] = aie_hsum8_avx2(a0);
        }
    }

#undef aie_step
#undef aie_ldm
#undef aie_row
}


/* exp(x) to about 2 ulp (Cephes' polynomial); below -87.3 gives ~1e-38 */
AIE_AVX2 static inline __m256
aie_exp_avx2(__m256 x)
{
    __m256   fx, r, y;
    __m256i  e;

    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));

    fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);

    y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r),
                        _mm256_add_ps(r, _mm256_set1_ps(1.0f)));

    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx),
                                           _mm256_set1_epi32(127)), 23);

    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}


AIE_AVX2 static void
aie_silu_mul_avx2(float *h, const float *h2, int64_t n)
{
    __m256   g, one = _mm256_set1_ps(1.0f);
    int64_t  i;
    float    s;

    for (i = 0; i + 8 <= n; i += 8) {
        g = _mm256_loadu_ps(h + i);
        g = _mm256_div_ps(g, _mm256_add_ps(one,
                  aie_exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g))));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(g, _mm256_loadu_ps(h2 + i)));
    }

    for ( /* void */ ; i < n; i++) {
        s = h[i];
        h[i] = s / (1.0f + expf(-s)) * h2[i];
    }
}


/* eight elements of a KV row from element i: F32, or F16 (kv=f16) */
__attribute__((always_inline)) AIE_AVX2 static inline __m256
aie_kv_ld8(const void *p, size_t i, const int f16)
{
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)
                                                 ((const uint16_t *) p + i)))
               : _mm256_loadu_ps((const float *) p + i);
}


/*
 * One attention head with head sizes that are multiples of 8: eight keys'
 * scores per reduction, a vectorised softmax, and the values summed with
 * four accumulators per 8 dimensions; the 1 / sum comes last.
 */
__attribute__((always_inline)) AIE_AVX2 static inline void
aie_attention_avx2_kv(float *out, const float *q, const void *k,
    const void *v, size_t kv_stride, int n, int hs, float scale, float *att,
    const int f16)
{
    size_t        kt;
    __m256        p0, p1, p2, p3, p4, p5, p6, p7, qd, mv, sv, e;
    __m256i       mask;
    float         max, sum, inv;
    int           t, d;

    if (hs % 8 != 0) {
        aie_attention_scalar_kv(out, q, k, v, kv_stride, n, hs, scale, att,
                                f16);
        return;
    }

    for (t = 0; t + 8 <= n; t += 8) {
        kt = (size_t) t * kv_stride;
        p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = _mm256_setzero_ps();

        for (d = 0; d < hs; d += 8) {
            qd = _mm256_loadu_ps(q + d);
            p0 = _mm256_fmadd_ps(qd, aie_kv_ld8(k, kt + d, f16), p0);
            p1 = _mm256_fmadd_ps(qd, aie_kv_ld8(k, kt + kv_stride + d, f16),
                                 p1);
            p2 = _mm256_fmadd_ps(qd, aie_kv_ld8(k, kt + 2 * kv_stride + d, f16),
                                 p2);
            p3 = _mm256_fmadd_ps(qd, aie_kv_ld8(k, kt + 3 * kv_stride + d, f16),
                                 p3);
            p4 = _mm256_fmadd_ps(qd, aie_kv_ld8(k, kt + 4 * kv_stride + d, f16),
                                 p4);
            p5 = _mm256_fmadd_ps(qd, aie_kv_ld8(k, kt + 5 * kv_stride + d, f16),
                                 p5);
            p6 = _mm256_fmadd_ps(qd, aie_kv_ld8(k, kt + 6 * kv_stride + d, f16),
                                 p6);
            p7 = _mm256_fmadd_ps(qd, aie_kv_ld8(k, kt + 7 * kv_stride + d, f16),
                                 p7);
        }

        _mm256_storeu_ps(att + t,
                         _mm256_mul_ps(aie_reduce8_avx2(p0, p1, p2, p3, p4,
                                                        p5, p6, p7),
                                       _mm256_set1_ps(scale)));
    }

    for ( /* void */ ; t < n; t++) {
        kt = (size_t) t * kv_stride;
        p0 = _mm256_setzero_ps();
        for (d = 0; d < hs; d += 8) {
            p0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d),
                                 aie_kv_ld8(k, kt + d, f16), p0);
        }
        att[t] = aie_hsum8_avx2(p0) * scale;
    }

    /* softmax, unnormalised */
    mv = _mm256_set1_ps(att[0]);
    for (t = 0; t + 8 <= n; t += 8) {
        mv = _mm256_max_ps(mv, _mm256_loadu_ps(att + t));
    }
    max = att[0];
    for (d = 0; d < 8; d++) {
        max = mv[d] > max ? mv[d] : max;
    }
    for ( /* void */ ; t < n; t++) {
        max = att[t] > max ? att[t] : max;
    }

    mv = _mm256_set1_ps(max);
    sv = _mm256_setzero_ps();
    for (t = 0; t + 8 <= n; t += 8) {
        e = aie_exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(att + t), mv));
        _mm256_storeu_ps(att + t, e);
        sv = _mm256_add_ps(sv, e);
    }
    if (t < n) {
        mask = aie_tail_mask_avx2(n - t);
        e = aie_exp_avx2(_mm256_sub_ps(_mm256_maskload_ps(att + t, mask), mv));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(att + t, mask, e);
        sv = _mm256_add_ps(sv, e);
    }
    sum = aie_hsum8_avx2(sv);
    inv = 1.0f / sum;

    /*
     * out = inv * sum_t att[t] * v_t, 64 (or 32) dimensions per pass with
     * one accumulator each: every value row is read front to back once per
     * pass (the cache holds thousands of rows for a batch of sequences,
     * so reading them in order matters), and eight independent FMA chains
     * keep both FMA units busy where four waited on their latency
     */
    for (d = 0; d + 64 <= hs; d += 64) {
        size_t  vd = (size_t) d;

        p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = _mm256_setzero_ps();

        for (t = 0; t < n; t++) {
            size_t  vt = vd + (size_t) t * kv_stride;

            e = _mm256_broadcast_ss(att + t);
            p0 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt, f16), p0);
            p1 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 8, f16), p1);
            p2 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 16, f16), p2);
            p3 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 24, f16), p3);
            p4 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 32, f16), p4);
            p5 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 40, f16), p5);
            p6 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 48, f16), p6);
            p7 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 56, f16), p7);
        }

        mv = _mm256_set1_ps(inv);
        _mm256_storeu_ps(out + d, _mm256_mul_ps(p0, mv));
        _mm256_storeu_ps(out + d + 8, _mm256_mul_ps(p1, mv));
        _mm256_storeu_ps(out + d + 16, _mm256_mul_ps(p2, mv));
        _mm256_storeu_ps(out + d + 24, _mm256_mul_ps(p3, mv));
        _mm256_storeu_ps(out + d + 32, _mm256_mul_ps(p4, mv));
        _mm256_storeu_ps(out + d + 40, _mm256_mul_ps(p5, mv));
        _mm256_storeu_ps(out + d + 48, _mm256_mul_ps(p6, mv));
        _mm256_storeu_ps(out + d + 56, _mm256_mul_ps(p7, mv));
    }

    for ( /* void */ ; d + 32 <= hs; d += 32) {
        size_t  vd = (size_t) d;

        p0 = p1 = p2 = p3 = _mm256_setzero_ps();

        for (t = 0; t < n; t++) {
            size_t  vt = vd + (size_t) t * kv_stride;

            e = _mm256_broadcast_ss(att + t);
            p0 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt, f16), p0);
            p1 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 8, f16), p1);
            p2 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 16, f16), p2);
            p3 = _mm256_fmadd_ps(e, aie_kv_ld8(v, vt + 24, f16), p3);
        }

        mv = _mm256_set1_ps(inv);
        _mm256_storeu_ps(out + d, _mm256_mul_ps(p0, mv));
        _mm256_storeu_ps(out + d + 8, _mm256_mul_ps(p1, mv));
        _mm256_storeu_ps(out + d + 16, _mm256_mul_ps(p2, mv));
        _mm256_storeu_ps(out + d + 24, _mm256_mul_ps(p3, mv));
    }

    for ( /* void */ ; d < hs; d += 8) {
        size_t  vd = (size_t) d;

        p0 = _mm256_setzero_ps();

        for (t = 0; t < n; t++) {
            p0 = _mm256_fmadd_ps(_mm256_broadcast_ss(att + t),
                     aie_kv_ld8(v, vd + (size_t) t * kv_stride, f16), p0);
        }

        _mm256_storeu_ps(out + d, _mm256_mul_ps(p0, _mm256_set1_ps(inv)));
    }
}


AIE_AVX2 static void
aie_attention_avx2(float *out, const float *q, const float *k,
    const float *v, size_t kv_stride, int n, int hs, float scale, float *att)
{
    aie_attention_avx2_kv(out, q, k, v, kv_stride, n, hs, scale, att, 0);
}


AIE_AVX2 static void
aie_attention_f16_avx2(float *out, const float *q, const uint16_t *k,
    const uint16_t *v, size_t kv_stride, int n, int hs, float scale,
    float *att)
{
    aie_attention_avx2_kv(out, q, k, v, kv_stride, n, hs, scale, att, 1);
}


static const aie_dot_kernels_t  aie_dot_avx2 = {
    "avx2",
    aie_dot_f32_avx2,
    aie_dot_f16_avx2,
    aie_dot_q8_0_avx2,
    aie_dot_q4_0_avx2,
    aie_mm_f32_avx2,
    NULL, NULL, NULL,
    aie_attention_avx2,
    aie_attention_f16_avx2,
    aie_silu_mul_avx2,
    NULL, NULL, NULL, NULL
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
    aie_dot_q4_0_avx2,
    aie_mm_f32_avx2,
    NULL, NULL, NULL,
    aie_attention_avx2,
    aie_attention_f16_avx2,
    aie_silu_mul_avx2,
    NULL, NULL, NULL, NULL
};


/*
 * AVX-512 VNNI for Q8_0 weights.  vpdpbusd multiplies unsigned by signed
 * bytes, so the activations are stored once per matmul as x + 128 (x ^ 0x80)
 * and the weights stay signed: sum (x + 128) w = sum x w + 128 sum w; the
 * correction 128 sum w is computed once per weight block and serves every
 * activation, as the accumulator vpdpbusd starts from.  Two blocks fill a
 * 512-bit register; each activation's block scales are stored expanded
 * (8 lanes per block) next to its bytes.
 *
 * Layout of one activation row of nb blocks: nb * 32 bytes, each pair of
 * blocks interleaved in 4-byte groups (block 2p in the even 32-bit lanes,
 * 2p + 1 in the odd ones; a last odd block as is), then nb floats, the
 * block scales.  The weights are interleaved the same way once per pair,
 * so a pair's scales are one 64-bit broadcast.
 */

#define AIE_VNNI  __attribute__((target("avx512f,avx512bw,avx512vl," \
                                        "avx512vnni,avx2,fma,f16c")))


static size_t
aie_q8_prep_size_vnni(int64_t cols)
{
    size_t  nb = (size_t) (cols / AIE_QK);

    if (nb > 512) {
        return 0;       /* too long for the kernel: the dot path serves */
    }

    return (nb * 32 + nb * sizeof(float) + 63) & ~(size_t) 63;
}


AIE_VNNI static inline __m512i
aie_interleave_vnni(const void *a, const void *b)
{
    const __m512i  idx = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11,
                                           4, 12, 5, 13, 6, 14, 7, 15);

    return _mm512_permutexvar_epi32(idx, _mm512_inserti64x4(
               _mm512_castsi256_si512(_mm256_loadu_si256(a)),
               _mm256_loadu_si256(b), 1));
}


AIE_VNNI static void
aie_q8_prep_vnni(const aie_block_q8_0_t *xq, int64_t cols, void *dst)
{
    int64_t   nb = cols / AIE_QK, i;
    uint8_t  *u = dst;
    float    *sc = (float *) (u + nb * 32);

    for (i = 0; i + 2 <= nb; i += 2) {
        _mm512_storeu_si512(u + i * 32, _mm512_xor_si512(
            aie_interleave_vnni(xq[i].qs, xq[i + 1].qs),
            _mm512_set1_epi8((char) 0x80)));
    }

    if (nb & 1) {
        _mm256_storeu_si256((__m256i *) (u + (nb - 1) * 32),
            _mm256_xor_si256(
                _mm256_loadu_si256((const __m256i *) xq[nb - 1].qs),
                _mm256_set1_epi8((char) 0x80)));
    }

    for (i = 0; i < nb; i++) {
        sc[i] = _cvtsh_ss(xq[i].d);
    }
}


#define AIE_VNNI_MAX_BLOCKS  512     /* rows up to 16384 columns */


/*
 * Rows r0..r1 against NB activations (NB a constant after inlining).  Per
 * row the weight scales are converted once and multiplied by each
 * activation's scales 16 at a time, so a pair of blocks costs an activation
 * one vpdpbusd, one conversion and one FMA.
 */
__attribute__((always_inline)) AIE_VNNI static inline void
aie_mm_q8_0_vnni_rows(const char *wb, size_t row_size, int64_t r0,
    int64_t r1, int64_t nb, const uint8_t *x, size_t x_stride, const int NB,
    float *out, size_t out_stride)
{
    const aie_block_q8_0_t  *blk;
    const __m512i            c80 = _mm512_set1_epi8((char) 0x80);
    const __m512i            zero = _mm512_setzero_si512();
    __m512                   acc[8];
    __m512i                  wz, nc;
    __m256                   t1;
    __m256i                  wy, ncy;
    int64_t                  r, p, k, npair = nb / 2;
    int                      j;
    double                   s2;
    float                    dw[AIE_VNNI_MAX_BLOCKS + 16]
                                 __attribute__((aligned(64)));
    float                    dwdx[8][AIE_VNNI_MAX_BLOCKS + 16]
                                 __attribute__((aligned(64)));

    for (r = r0; r < r1; r++) {
        blk = (const aie_block_q8_0_t *) (wb + (size_t) r * row_size);

        for (k = 0; k < nb; k++) {
            dw[k] = _cvtsh_ss(blk[k].d);
        }

#pragma GCC unroll 8
        for (j = 0; j < NB; j++) {
            const float  *xs = (const float *) (x + (size_t) j * x_stride
                                                + nb * 32);

            for (k = 0; k + 16 <= nb; k += 16) {
                _mm512_store_ps(&dwdx[j][k], _mm512_mul_ps(
                    _mm512_load_ps(&dw[k]), _mm512_loadu_ps(xs + k)));
            }
            for ( /* void */ ; k < nb; k++) {
                dwdx[j][k] = dw[k] * xs[k];
            }

            acc[j] = _mm512_setzero_ps();
        }

        for (p = 0; p < npair; p++) {
            wz = aie_interleave_vnni(blk[2 * p].qs, blk[2 * p + 1].qs);
            nc = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, c80, wz));

#pragma GCC unroll 8
            for (j = 0; j < NB; j++) {
                const uint8_t  *xu = x + (size_t) j * x_stride;
                __m512i         dot;

                memcpy(&s2, &dwdx[j][2 * p], sizeof(s2));
                dot = _mm512_dpbusd_epi32(nc,
                          _mm512_loadu_si512(xu + p * 64), wz);
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                             _mm512_castpd_ps(_mm512_set1_pd(s2)), acc[j]);
            }
        }

        if (nb & 1) {
            wy = _mm256_loadu_si256((const __m256i *) blk[nb - 1].qs);
            ncy = _mm256_sub_epi32(_mm256_setzero_si256(),
                      _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                          _mm256_set1_epi8((char) 0x80), wy));

#pragma GCC unroll 8
            for (j = 0; j < NB; j++) {
                const uint8_t  *xu = x + (size_t) j * x_stride;

                t1 = _mm256_mul_ps(_mm256_cvtepi32_ps(
                         _mm256_dpbusd_epi32(ncy,
                             _mm256_loadu_si256((const __m256i *)
                                                (xu + (nb - 1) * 32)), wy)),
                         _mm256_set1_ps(dwdx[j][nb - 1]));
                acc[j] = _mm512_add_ps(acc[j], _mm512_zextps256_ps512(t1));
            }
        }

#pragma GCC unroll 8
        for (j = 0; j < NB; j++) {
            out[(size_t) j * out_stride + r] = _mm512_reduce_add_ps(acc[j]);
        }
    }
}


AIE_VNNI static void
aie_mm_q8_0_vnni(const void *w, size_t row_size, int64_t r0, int64_t r1,
    int64_t cols, const void *x, size_t x_stride, int n, float *out,
    size_t out_stride)
{
    const uint8_t  *xb = x;
    int64_t         nb = cols / AIE_QK, rb, re;
    int             b;

    if (nb > AIE_VNNI_MAX_BLOCKS) {
        abort();        /* q8_prep_size refuses such rows */
    }

    /* rows in strips, so a strip's weights stay in L1 for every group */
    for (rb = r0; rb < r1; rb = re) {
        re = rb + 4 < r1 ? rb + 4 : r1;

        for (b = 0; b + 8 <= n; b += 8) {
            aie_mm_q8_0_vnni_rows(w, row_size, rb, re, nb,
                                  xb + (size_t) b * x_stride, x_stride, 8,
                                  out + (size_t) b * out_stride, out_stride);
        }

        if (n - b >= 4) {
            aie_mm_q8_0_vnni_rows(w, row_size, rb, re, nb,
                                  xb + (size_t) b * x_stride, x_stride, 4,
                                  out + (size_t) b * out_stride, out_stride);
            b += 4;
        }

        if (n - b >= 2) {
            aie_mm_q8_0_vnni_rows(w, row_size, rb, re, nb,
                                  xb + (size_t) b * x_stride, x_stride, 2,
                                  out + (size_t) b * out_stride, out_stride);
            b += 2;
        }

        if (n - b >= 1) {
            aie_mm_q8_0_vnni_rows(w, row_size, rb, re, nb,
                                  xb + (size_t) b * x_stride, x_stride, 1,
                                  out + (size_t) b * out_stride, out_stride);
        }
    }
}


/*
 * Packed Q8_0 for VNNI: the weights are repacked once so that one vpdpbusd
 * does four multiply-adds for each of 16 rows, against four bytes of one
 * activation broadcast to every lane.  Eight of them sum a block for the 16
 * rows, then one conversion and one FMA scale it: per block and activation
 * 11 instructions for 16 rows, instead of a reduction per row.
 *
 * A group of 16 rows is a run of block pairs, 1088 bytes each: for each of
 * the two blocks 8 runs of 64 bytes (run k holds bytes 4k..4k+3 of the
 * block for rows 0..15, plus 128 to make them unsigned for vpdpbusd), then
 * the two blocks' fp16 scales, 16 each.  An odd last block is a 576-byte
 * pair (its runs, its scales, 32 bytes of padding).  The + 128 adds 128
 * times the sum of the activation's block, which aie_q8_act_vnni()
 * provides as cx.
 *
 * The scales sit beside their blocks so that the kernel reads one
 * sequential stream: with all the scales of a group after its blocks, a
 * second stream, one core read at most ~20 GB/s where a plain read loop
 * reads 30 (development VM, huge pages).
 */

#define AIE_Q8P_ROWS   16
#define AIE_Q8P_PAIR   1088
/*
 * A batch (4 or more activations) spends ~70 cycles of a 16-activation
 * block on arithmetic, and reads the stream at 8-11 GB/s a core; the
 * distance must still cover a miss to the last-level cache or DRAM.  On
 * the Xeon (Sapphire Rapids class) benchmark VM, 1 KB ahead gave 2.21 G
 * vpdpbusd/s on one core over a 100 MB matrix, 2 KB 2.64, 4 KB 2.81, 8 KB
 * 2.83 (16 KB fell back to 2.55); through the engine, 16 streams went from
 * ~1,350 to ~1,550 tokens/s with 4 KB (8 KB: ~1,450, two threads
 * competing).
 */
#ifndef AIE_Q8P_PREFETCH
#define AIE_Q8P_PREFETCH  4096
#endif
/*
 * One or two activations go through a block in a few cycles, faster than
 * the hardware prefetcher alone brings the stream in (~15 GB/s on one core
 * of the development VM, where a bare read loop does 30): prefetching into
 * L2 (T1; T0 would hold the L1 miss buffers) 2 KB ahead gets the read
 * loop's rate.  Past ~5 KB ahead it falls back to ~20 GB/s (prefetches
 * dropped, presumably, once the L2's miss queue is full).
 */
#ifndef AIE_Q8P_PREFETCH_FAR
#define AIE_Q8P_PREFETCH_FAR  2048
#endif


static size_t
aie_q8p_group_size(int64_t nb)
{
    return (size_t) (nb / 2) * AIE_Q8P_PAIR + (nb % 2 ? 576 : 0);
}


static size_t
aie_q8_pack_size_vnni(int64_t rows, int64_t cols)
{
    return (size_t) (rows / AIE_Q8P_ROWS) * aie_q8p_group_size(cols / AIE_QK);
}


static void
aie_q8_pack_vnni(const void *w, size_t row_size, int64_t rows, int64_t cols,
    void *dst)
{
    const aie_block_q8_0_t  *blk;
    int64_t                  nb = cols / AIE_QK, g, b;
    uint8_t                 *q, *p;
    uint16_t                *s;
    size_t                   gs = aie_q8p_group_size(nb);
    int                      i, k, in_pair;

    memset(dst, 0, (size_t) (rows / AIE_Q8P_ROWS) * gs);

    for (g = 0; g < rows / AIE_Q8P_ROWS; g++) {
        q = (uint8_t *) dst + (size_t) g * gs;

        for (b = 0; b < nb; b++) {
            p = q + (size_t) (b / 2) * AIE_Q8P_PAIR;
            in_pair = b / 2 * 2 + 1 < nb ? 2 : 1;
            s = (uint16_t *) (p + in_pair * 512) + (b % 2) * AIE_Q8P_ROWS;
            p += (b % 2) * 512;

            for (i = 0; i < AIE_Q8P_ROWS; i++) {
                blk = (const aie_block_q8_0_t *)
                      ((const char *) w + (size_t) (g * AIE_Q8P_ROWS + i)
                                          * row_size) + b;
                s[i] = blk->d;

                for (k = 0; k < AIE_QK; k++) {
                    p[(k / 4) * 64 + i * 4 + k % 4] =
                        (uint8_t) blk->qs[k] ^ 0x80;
                }
            }
        }
    }
}


/* roundf(), halves away from zero, as the scalar quantiser does */
AIE_VNNI static inline __m512i
aie_roundf_epi32_vnni(__m512 v)
{
    __m512     t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO
                                           | _MM_FROUND_NO_EXC);
    __m512     one = _mm512_set1_ps(1.0f);
    __mmask16  up = _mm512_cmp_ps_mask(
                        _mm512_abs_ps(_mm512_sub_ps(v, t)),
                        _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512     sgn = _mm512_castsi512_ps(_mm512_or_si512(
                         _mm512_castps_si512(one),
                         _mm512_and_si512(_mm512_castps_si512(v),
                                          _mm512_set1_epi32(
                                              (int) 0x80000000u))));

    return _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, sgn));
}


AIE_VNNI static void
aie_q8_act_vnni(const float *x, int64_t cols, aie_block_q8_0_t *y,
    float *dx, int32_t *cx)
{
    int64_t  b;
    __m512   v0, v1, m;
    __m512i  q0, q1;
    float    amax, d, id;

    for (b = 0; b < cols / AIE_QK; b++) {
        v0 = _mm512_loadu_ps(x + b * AIE_QK);
        v1 = _mm512_loadu_ps(x + b * AIE_QK + 16);
        m = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
        amax = _mm512_reduce_max_ps(m);

        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = aie_fp32_to_fp16(d);
        dx[b] = aie_fp16_to_fp32(y[b].d);

        q0 = aie_roundf_epi32_vnni(_mm512_mul_ps(v0, _mm512_set1_ps(id)));
        q1 = aie_roundf_epi32_vnni(_mm512_mul_ps(v1, _mm512_set1_ps(id)));
        _mm_storeu_si128((__m128i *) y[b].qs, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *) (y[b].qs + 16),
                         _mm512_cvtepi32_epi8(q1));
        cx[b] = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}


static inline int32_t
aie_load_i32(const void *p)
{
    int32_t  v;

    memcpy(&v, p, sizeof(v));
    return v;
}


/*
 * One block (qb: its runs, sp: its scales) for 16 rows against NB
 * activations (a constant after inlining).  With few activations the eight
 * dependent vpdpbusd run as two chains, so one block's latency does not
 * stall the stream.
 */
__attribute__((always_inline)) AIE_VNNI static inline void
aie_mm_q8p_vnni_block(const uint8_t *qb, const uint16_t *sp, int64_t b,
    int64_t nb, const aie_block_q8_0_t *x, size_t x_stride, const float *dx,
    const int32_t *cx, const int NB, __m512 *acc)
{
    __m512           sw;
    __m512i          w0, w1, w2, w3, w4, w5, w6, w7, a, a2;
    int              j;

    if (NB >= 4) {
        /* a batch spends long on a block: fetch the one after next */
        for (j = 0; j < 512; j += 64) {
            _mm_prefetch((const char *) qb + AIE_Q8P_PREFETCH + j,
                         _MM_HINT_T0);
        }

    } else {
        for (j = 0; j < 512; j += 64) {
            _mm_prefetch((const char *) qb + AIE_Q8P_PREFETCH_FAR + j,
                         _MM_HINT_T1);
        }
    }

    w0 = _mm512_loadu_si512(qb);
    w1 = _mm512_loadu_si512(qb + 64);
    w2 = _mm512_loadu_si512(qb + 128);
    w3 = _mm512_loadu_si512(qb + 192);
    w4 = _mm512_loadu_si512(qb + 256);
    w5 = _mm512_loadu_si512(qb + 320);
    w6 = _mm512_loadu_si512(qb + 384);
    w7 = _mm512_loadu_si512(qb + 448);
    sw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) sp));

#pragma GCC unroll 16
    for (j = 0; j < NB; j++) {
        const int8_t  *xs = x[(size_t) j * x_stride + b].qs;

#define aie_dp(acc, w, k)                                                   \
        acc = _mm512_dpbusd_epi32(acc, w,                                   \
                  _mm512_set1_epi32(aie_load_i32(xs + 4 * k)))

        a = _mm512_set1_epi32(cx[j * nb + b]);
        if (1) {
            a2 = _mm512_setzero_si512();
            aie_dp(a, w0, 0);
            aie_dp(a2, w4, 4);
            aie_dp(a, w1, 1);
            aie_dp(a2, w5, 5);
            aie_dp(a, w2, 2);
            aie_dp(a2, w6, 6);
            aie_dp(a, w3, 3);
            aie_dp(a2, w7, 7);
            a = _mm512_add_epi32(a, a2);

        } else {
            aie_dp(a, w0, 0);
            aie_dp(a, w1, 1);
            aie_dp(a, w2, 2);
            aie_dp(a, w3, 3);
            aie_dp(a, w4, 4);
            aie_dp(a, w5, 5);
            aie_dp(a, w6, 6);
            aie_dp(a, w7, 7);
        }
#undef aie_dp

        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a),
                     _mm512_mul_ps(sw, _mm512_set1_ps(dx[j * nb + b])),
                     acc[j]);
    }
}


/* one group of 16 rows (q) against NB activations */
__attribute__((always_inline)) AIE_VNNI static inline void
aie_mm_q8p_vnni_group(const uint8_t *q, int64_t nb,
    const aie_block_q8_0_t *x, size_t x_stride, const float *dx,
    const int32_t *cx, const int NB, float *out, size_t out_stride)
{
    const uint16_t  *sp;
    __m512           acc[16];
    int64_t          b;
    int              j;

#pragma GCC unroll 16
    for (j = 0; j < NB; j++) {
        acc[j] = _mm512_setzero_ps();
    }

    for (b = 0; b + 1 < nb; b += 2) {
        sp = (const uint16_t *) (q + 1024);
        /* the pair's scales line, which the blocks' prefetches miss */
        if (NB >= 4) {
            _mm_prefetch((const char *) q + AIE_Q8P_PREFETCH + 1024,
                         _MM_HINT_T0);
        } else {
            _mm_prefetch((const char *) q + AIE_Q8P_PREFETCH_FAR + 1024,
                         _MM_HINT_T1);
        }
        aie_mm_q8p_vnni_block(q, sp, b, nb, x, x_stride, dx, cx, NB, acc);
        aie_mm_q8p_vnni_block(q + 512, sp + AIE_Q8P_ROWS, b + 1, nb, x,
                              x_stride, dx, cx, NB, acc);
        q += AIE_Q8P_PAIR;
    }

    if (b < nb) {
        aie_mm_q8p_vnni_block(q, (const uint16_t *) (q + 512), b, nb, x,
                              x_stride, dx, cx, NB, acc);
    }

#pragma GCC unroll 16
    for (j = 0; j < NB; j++) {
        _mm512_storeu_ps(out + (size_t) j * out_stride, acc[j]);
    }
}


AIE_VNNI static void
aie_mm_q8_0_packed_vnni(const void *wp, int64_t g0, int64_t g1, int64_t cols,
    const aie_block_q8_0_t *x, size_t x_stride, const float *dx,
    const int32_t *cx, int n, float *out, size_t out_stride)
{
    const uint8_t  *q;
    int64_t         nb = cols / AIE_QK, g;
    size_t          o;
    int             b, m;

    for (g = g0; g < g1; g++) {
        q = (const uint8_t *) wp + (size_t) g * aie_q8p_group_size(nb);

        for (b = 0; b < n; b += m) {
            o = (size_t) b * out_stride + (size_t) g * AIE_Q8P_ROWS;
            m = n - b;

#define aie_group(NB)                                                       \
            aie_mm_q8p_vnni_group(q, nb, x + (size_t) b * x_stride,         \
                                  x_stride, dx + (size_t) b * nb,           \
                                  cx + (size_t) b * nb, NB, out + o,        \
                                  out_stride)

            if (m >= 16) {
                m = 16;
                aie_group(16);
            } else if (m >= 8) {
                m = 8;
                aie_group(8);
            } else if (m >= 4) {
                m = 4;
                aie_group(4);
            } else if (m >= 2) {
                m = 2;
                aie_group(2);
            } else {
                m = 1;
                aie_group(1);
            }
#undef aie_group
        }
    }
}


static const aie_dot_kernels_t  aie_dot_avx512_vnni = {
    "avx512-vnni",
    aie_dot_f32_avx512,
    aie_dot_f16_avx512,
    aie_dot_q8_0_avx2,
    aie_dot_q4_0_avx2,
    aie_mm_f32_avx2,
    aie_mm_q8_0_vnni,
    aie_q8_prep_size_vnni,
    aie_q8_prep_vnni,
    aie_attention_avx2,
    aie_attention_f16_avx2,
    aie_silu_mul_avx2,
    aie_q8_pack_size_vnni,
    aie_q8_pack_vnni,
    aie_q8_act_vnni,
    aie_mm_q8_0_packed_vnni
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
        if (__builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512vnni"))
        {
            return &aie_dot_avx512_vnni;
        }

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
    const char               *force = getenv("AIE_FORCE_SCALAR");
    const aie_dot_kernels_t  *k;

    if ((cap != NULL && strcmp(cap, "scalar") == 0)
        || (force != NULL && force[0] != '\0' && strcmp(force, "0") != 0))
    {
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
