/*
 * Sampling: OpenAI-style presence and frequency penalties over the tokens
 * generated so far, then greedy at temperature 0, else temperature, top-k,
 * top-p (nucleus) and a draw from a seeded xoshiro256** generator, so the
 * same seed gives the same tokens.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aigw_engine.h"


typedef struct {
    float  logit;
    int    id;
} aie_candidate_t;

struct aie_sampler_s {
    aie_sampler_params_t   params;
    int                    vocab_size;
    uint64_t               rng[4];
    int                   *counts;      /* generated occurrences per token */
    float                 *logits;
    aie_candidate_t       *cand;
};


static uint64_t
aie_splitmix64(uint64_t *x)
{
    uint64_t  z = (*x += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;

    return z ^ (z >> 31);
}


static uint64_t
aie_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}


static uint64_t
aie_rng_next(uint64_t *s)
{
    uint64_t  result = aie_rotl(s[1] * 5, 7) * 9;
    uint64_t  t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = aie_rotl(s[3], 45);

    return result;
}


/* uniform in [0, 1) */
static float
aie_rng_float(uint64_t *s)
{
    return (float) (aie_rng_next(s) >> 40) * (1.0f / 16777216.0f);
}


void
aie_sampler_params_default(aie_sampler_params_t *params)
{
    memset(params, 0, sizeof(aie_sampler_params_t));
    params->temperature = 1.0f;
    params->top_p = 1.0f;
}


aie_sampler_t *
aie_sampler_new(int vocab_size, const aie_sampler_params_t *params)
{
    aie_sampler_t  *s;

    if (vocab_size <= 0) {
        return NULL;
    }

    s = calloc(1, sizeof(aie_sampler_t));
    if (s == NULL) {
        return NULL;
    }

    s->params = *params;
    s->vocab_size = vocab_size;
    s->counts = calloc((size_t) vocab_size, sizeof(int));
    s->logits = malloc((size_t) vocab_size * sizeof(float));
    s->cand = malloc((size_t) vocab_size * sizeof(aie_candidate_t));

    if (s->counts == NULL || s->logits == NULL || s->cand == NULL) {
        aie_sampler_free(s);
        return NULL;
    }

    aie_sampler_reset(s);

    return s;
}


void
aie_sampler_free(aie_sampler_t *s)
{
    if (s == NULL) {
        return;
    }

    free(s->counts);
    free(s->logits);
    free(s->cand);
    free(s);
}


void
aie_sampler_reset(aie_sampler_t *s)
{
    uint64_t  x = s->params.seed;
    int       i;

    for (i = 0; i < 4; i++) {
        s->rng[i] = aie_splitmix64(&x);
    }

    memset(s->counts, 0, (size_t) s->vocab_size * sizeof(int));
}


void
aie_sampler_accept(aie_sampler_t *s, int token)
{
    if (token >= 0 && token < s->vocab_size) {
        s->counts[token]++;
    }
}


static int
aie_candidate_cmp(const void *a, const void *b)
{
    const aie_candidate_t  *x = a, *y = b;

    if (x->logit != y->logit) {
        return x->logit > y->logit ? -1 : 1;
    }

    return x->id - y->id;
}


/* moves the k best candidates to the front, best first (k small: heap) */
static void
aie_top_k(aie_candidate_t *c, int n, int k)
{
    aie_candidate_t  tmp;
    int              i, j, child;

    /* min-heap of the k best so far in c[0..k) */
    for (i = k / 2 - 1; i >= 0; i--) {
        for (j = i; (child = 2 * j + 1) < k; j = child) {
            if (child + 1 < k
                && aie_candidate_cmp(&c[child + 1], &c[child]) > 0)
            {
                child++;
            }
            if (aie_candidate_cmp(&c[child], &c[j]) <= 0) {
                break;
            }
            tmp = c[j]; c[j] = c[child]; c[child] = tmp;
        }
    }

    for (i = k; i < n; i++) {
        if (aie_candidate_cmp(&c[i], &c[0]) >= 0) {
            continue;
        }

        tmp = c[0]; c[0] = c[i]; c[i] = tmp;

        for (j = 0; (child = 2 * j + 1) < k; j = child) {
            if (child + 1 < k
                && aie_candidate_cmp(&c[child + 1], &c[child]) > 0)
            {
                child++;
            }
            if (aie_candidate_cmp(&c[child], &c[j]) <= 0) {
                break;
            }
            tmp = c[j]; c[j] = c[child]; c[child] = tmp;
        }
    }

    qsort(c, (size_t) k, sizeof(aie_candidate_t), aie_candidate_cmp);
}


/*
 * The first index of the largest value, as a scan with ">" finds it (NaN
 * never wins), with eight independent maxima instead of one long
 * dependency chain: greedy decoding does this over the vocabulary per
 * token and sequence.
 */
static int
aie_argmax(const float *l, int n)
{
    float  m[8], max;
    int    i, k;

    for (k = 0; k < 8; k++) {
        m[k] = l[0];
    }

    for (i = 0; i + 8 <= n; i += 8) {
        for (k = 0; k < 8; k++) {
            m[k] = l[i + k] > m[k] ? l[i + k] : m[k];
        }
    }

    max = m[0];
    for (k = 1; k < 8; k++) {
        max = m[k] > max ? m[k] : max;
    }

    for ( /* void */ ; i < n; i++) {
        max = l[i] > max ? l[i] : max;
    }

    for (i = 0; i < n; i++) {
        if (l[i] == max) {
            return i;
        }
    }

    return 0;
}


int
aie_sampler_sample(aie_sampler_t *s, const float *in)
{
    const aie_sampler_params_t  *p = &s->params;
    float                       *l = s->logits;
    aie_candidate_t             *c = s->cand;
    int                          i, n, best;
    float                        max, sum, cum, r;

    if ((p->temperature <= 0.0f || p->top_k == 1)
        && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f)
    {
        return aie_argmax(in, s->vocab_size);
    }

    for (i = 0; i < s->vocab_size; i++) {
        l[i] = in[i];
        if (s->counts[i] > 0) {
            l[i] -= p->presence_penalty + p->frequency_penalty
                                          * (float) s->counts[i];
        }
    }

    if (p->temperature <= 0.0f || p->top_k == 1) {
        best = 0;
        for (i = 1; i < s->vocab_size; i++) {
            if (l[i] > l[best]) {
                best = i;
            }
        }
        return best;
    }

    for (i = 0; i < s->vocab_size; i++) {
        c[i].logit = l[i];
        c[i].id = i;
    }

    n = s->vocab_size;

    if (p->top_k > 0 && p->top_k < n) {
        aie_top_k(c, n, p->top_k);
        n = p->top_k;

    } else if (p->top_p < 1.0f) {
        qsort(c, (size_t) n, sizeof(aie_candidate_t), aie_candidate_cmp);
    }

    /* softmax with temperature; c[] holds probabilities from here on */
    max = c[0].logit;
    for (i = 1; i < n; i++) {
        max = c[i].logit > max ? c[i].logit : max;
    }

    sum = 0.0f;
    for (i = 0; i < n; i++) {
        c[i].logit = expf((c[i].logit - max) / p->temperature);
        sum += c[i].logit;
    }

    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        /* keep the smallest sorted prefix whose mass reaches top_p */
        cum = 0.0f;
        for (i = 0; i < n; i++) {
            cum += c[i].logit;
            if (cum >= p->top_p * sum) {
                n = i + 1;
                break;
            }
        }
        sum = cum;
    }

    r = aie_rng_float(s->rng) * sum;
    cum = 0.0f;

    for (i = 0; i < n; i++) {
        cum += c[i].logit;
        if (r < cum) {
            return c[i].id;
        }
    }

    return c[n - 1].id;
}
