/*
 * The llama forward pass, in the order of the paper and of llama2.c's run.c:
 * token embedding, then per layer RMSNorm, Q/K/V projections, RoPE on
 * adjacent pairs within each head, grouped-query attention over the KV
 * cache, output projection and residual, RMSNorm, SwiGLU feed-forward and
 * residual; at the end the final RMSNorm and the classifier.  Matmuls go to
 * the backend; everything accumulates in float32.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"


struct aie_forward_state_s {
    int     max_tokens;
    int     max_ctx;
    int     n_threads;
    float  *x;          /* [n][dim] residual stream */
    float  *xb;         /* [n][dim] */
    float  *xb2;        /* [n][dim] */
    float  *q;          /* [n][dim] */
    float  *k;          /* [n][kv_dim] */
    float  *v;          /* [n][kv_dim] */
    float  *hb;         /* [n][hidden_dim] */
    float  *hb2;        /* [n][hidden_dim] */
    float  *att;        /* [threads][max_ctx] attention scores */
    float  *logits;     /* [n][vocab] */
    float  *rope;       /* [n][rope_dim] cos, sin pairs */
    float  *inv_freq;   /* [rope_dim / 2] theta^(-j / rope_dim) */
};

typedef struct {
    const aie_model_t        *model;
    aie_backend_t            *be;
    aie_forward_state_t      *st;
    const aie_batch_entry_t  *batch;
    int                       layer;
    int                       step;     /* aie_step_e, for per-token tasks */
} aie_attention_job_t;

/* the small steps between the matmuls, each done token by token */
typedef enum {
    AIE_STEP_ATTN_NORM,     /* x += xb (the last FFN's output), norm */
    AIE_STEP_ROPE,          /* rotate q and k, store k and v */
    AIE_STEP_FFN_NORM,      /* x += xb2 (attention's output), norm */
    AIE_STEP_SILU,          /* hb = silu(hb) * hb2 */
    AIE_STEP_RESIDUAL       /* x += xb */
} aie_step_e;

/*
 * A batch this large runs the steps between matmuls on the pool too, one
 * task per token: on one thread they were ~8 % of a 16-sequence step, the
 * other threads waiting.  Fewer tokens are not worth a wake-up.
 */
#define AIE_PARALLEL_STEPS_MIN  4


/*
 * Where a KV head's row for a position starts.  The cache is head-major,
 * [layer][kv head][position][head size], so attention reads one head's
 * keys and values as two contiguous runs: with [position][kv_dim] rows a
 * head read 256 bytes of every 3 KB row (the 110M model).  A test at 128
 * positions on the EPYC VM streamed the contiguous runs ~1.5x faster; on
 * the Xeon VM the two layouts measured within noise.
 */
static size_t
aie_kv_offset(const aie_config_t *c, const aie_kv_cache_t *kv, int layer,
    int kvh, int pos)
{
    return (((size_t) layer * c->n_kv_heads + (size_t) kvh)
            * (size_t) kv->n_ctx + (size_t) pos) * (size_t) c->head_size;
}


/* one head's key and value at off: copied, or rounded to F16 (kv=f16) */
static void
aie_kv_store(const aie_kv_cache_t *kv, size_t off, const float *k,
    const float *v, int hs)
{
    uint16_t  *kh, *vh;
    int        d;

    if (!kv->f16) {
        memcpy((float *) kv->k + off, k, (size_t) hs * sizeof(float));
        memcpy((float *) kv->v + off, v, (size_t) hs * sizeof(float));
        return;
    }

    kh = (uint16_t *) kv->k + off;
    vh = (uint16_t *) kv->v + off;
    for (d = 0; d < hs; d++) {
        kh[d] = aie_fp32_to_fp16(k[d]);
        vh[d] = aie_fp32_to_fp16(v[d]);
    }
}


int
aie_kv_cache_init(aie_kv_cache_t *kv, const aie_model_t *model, int n_ctx,
    int f16)
{
    size_t  n, elt = f16 ? sizeof(uint16_t) : sizeof(float);

    n = (size_t) model->config.n_layers * (size_t) n_ctx
        * (size_t) model->config.kv_dim;

    kv->n_ctx = n_ctx;
    kv->f16 = f16;
    kv->k = calloc(n, elt);
    kv->v = calloc(n, elt);

    if (kv->k == NULL || kv->v == NULL) {
        aie_kv_cache_free(kv);
        return -1;
    }

    return 0;
}


void
aie_kv_cache_free(aie_kv_cache_t *kv)
{
    free(kv->k);
    free(kv->v);
    kv->k = NULL;
    kv->v = NULL;
}


aie_forward_state_t *
aie_forward_state_new(const aie_model_t *model, aie_backend_t *be,
    int max_tokens, int max_ctx)
{
    const aie_config_t   *c = &model->config;
    aie_forward_state_t  *st;
    size_t                n = (size_t) max_tokens;
    int                   i;

    st = calloc(1, sizeof(aie_forward_state_t));
    if (st == NULL) {
        return NULL;
    }

    st->max_tokens = max_tokens;
    st->max_ctx = max_ctx;
    st->n_threads = be->n_threads;
    st->x = malloc(n * c->dim * sizeof(float));
    st->xb = malloc(n * c->dim * sizeof(float));
    st->xb2 = malloc(n * c->dim * sizeof(float));
    st->q = malloc(n * c->dim * sizeof(float));
    st->k = malloc(n * c->kv_dim * sizeof(float));
    st->v = malloc(n * c->kv_dim * sizeof(float));
    st->hb = malloc(n * c->hidden_dim * sizeof(float));
    st->hb2 = malloc(n * c->hidden_dim * sizeof(float));
    st->att = malloc((size_t) st->n_threads * max_ctx * sizeof(float));
    st->logits = malloc(n * c->vocab_size * sizeof(float));
    st->rope = malloc(n * c->rope_dim * sizeof(float));
    st->inv_freq = malloc((c->rope_dim / 2 + 1) * sizeof(float));

    if (st->x == NULL || st->xb == NULL || st->xb2 == NULL || st->q == NULL
        || st->k == NULL || st->v == NULL || st->hb == NULL
        || st->hb2 == NULL || st->att == NULL || st->logits == NULL
        || st->rope == NULL || st->inv_freq == NULL)
    {
        aie_forward_state_free(st);
        return NULL;
    }

    for (i = 0; i < c->rope_dim; i += 2) {
        st->inv_freq[i / 2] = 1.0f / powf(c->rope_theta,
                                          i / (float) c->rope_dim);
    }

    return st;
}


void
aie_forward_state_free(aie_forward_state_t *st)
{
    if (st == NULL) {
        return;
    }

    free(st->x);
    free(st->xb);
    free(st->xb2);
    free(st->q);
    free(st->k);
    free(st->v);
    free(st->hb);
    free(st->hb2);
    free(st->att);
    free(st->logits);
    free(st->rope);
    free(st->inv_freq);
    free(st);
}


int
aie_forward_state_max_tokens(const aie_forward_state_t *st)
{
    return st->max_tokens;
}


/* eight partial sums: a loop the compiler vectorises, the same for every n */
static void
aie_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    float  part[8] = { 0 }, ss;
    int    i, k;

    for (i = 0; i + 8 <= n; i += 8) {
        for (k = 0; k < 8; k++) {
            part[k] += x[i + k] * x[i + k];
        }
    }

    for ( /* void */ ; i < n; i++) {
        part[0] += x[i] * x[i];
    }

    ss = ((part[0] + part[4]) + (part[1] + part[5]))
         + ((part[2] + part[6]) + (part[3] + part[7]));
    ss = 1.0f / sqrtf(ss / n + eps);

    for (i = 0; i < n; i++) {
        out[i] = w[i] * (ss * x[i]);
    }
}


/* rotates adjacent pairs (v[i], v[i+1]) of the first rope_dim of a head */
static void
aie_rope(float *v, int n_heads, int head_size, const float *cs, int rope_dim)
{
    float  *h, a, b;
    int     hd, i;

    for (hd = 0; hd < n_heads; hd++) {
        h = v + hd * head_size;

        for (i = 0; i < rope_dim; i += 2) {
            a = h[i];
            b = h[i + 1];
            h[i] = a * cs[i] - b * cs[i + 1];
            h[i + 1] = a * cs[i + 1] + b * cs[i];
        }
    }
}


/* one head of one entry: softmax(q.K / sqrt(d)) . V over the cache */
static void
aie_attention_head(void *arg, int task, int thread)
{
    aie_attention_job_t      *job = arg;
    const aie_config_t       *c = &job->model->config;
    aie_forward_state_t      *st = job->st;
    const aie_batch_entry_t  *e = &job->batch[task / c->n_heads];
    int                       i = task / c->n_heads;
    int                       h = task % c->n_heads;
    int                       kvh = h / (c->n_heads / c->n_kv_heads);
    int                       hs = c->head_size;
    size_t                    off;
    float                    *out, *att, scale;
    const float              *q;

    off = aie_kv_offset(c, e->kv, job->layer, kvh, 0);
    out = st->xb + (size_t) i * c->dim + h * hs;
    q = st->q + (size_t) i * c->dim + h * hs;
    att = st->att + (size_t) thread * st->max_ctx;
    scale = 1.0f / sqrtf((float) hs);

    if (e->kv->f16) {
        job->be->attention_f16(out, q, (const uint16_t *) e->kv->k + off,
                               (const uint16_t *) e->kv->v + off, (size_t) hs,
                               e->pos + 1, hs, scale, att);
    } else {
        job->be->attention(out, q, (const float *) e->kv->k + off,
                           (const float *) e->kv->v + off, (size_t) hs,
                           e->pos + 1, hs, scale, att);
    }
}


/*
 * A batch's attention goes a token per task (all its heads): 192 tasks of
 * one head for 16 tokens of 12 heads spent ~2 % of a step claiming tasks
 * on a shared counter.  A single stream's goes a head per task.
 */
static void
aie_attention_token(void *arg, int i, int thread)
{
    aie_attention_job_t  *job = arg;
    int                   h, n_heads = job->model->config.n_heads;

    for (h = 0; h < n_heads; h++) {
        aie_attention_head(arg, i * n_heads + h, thread);
    }
}


static void
aie_add(float *x, const float *y, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        x[i] += y[i];
    }
}


/* one token's share of a step between matmuls (job->step) */
static void
aie_step_task(void *arg, int i, int thread)
{
    aie_attention_job_t      *job = arg;
    const aie_config_t       *c = &job->model->config;
    const aie_layer_t        *w = &job->model->layers[job->layer];
    aie_forward_state_t      *st = job->st;
    const aie_batch_entry_t  *e = &job->batch[i];
    int                       dim = c->dim, kv_dim = c->kv_dim;
    float                    *x = st->x + (size_t) i * dim;
    float                    *cs;
    size_t                    off;
    int                       h;

    (void) thread;

    switch (job->step) {

    case AIE_STEP_ATTN_NORM:
        if (job->layer > 0) {
            aie_add(x, st->xb + (size_t) i * dim, dim);
        }
        aie_rmsnorm(st->xb + (size_t) i * dim, x, w->attn_norm.data, dim,
                    c->rms_eps);
        break;

    case AIE_STEP_ROPE:
        cs = st->rope + (size_t) i * c->rope_dim;
        aie_rope(st->q + (size_t) i * dim, c->n_heads, c->head_size, cs,
                 c->rope_dim);
        aie_rope(st->k + (size_t) i * kv_dim, c->n_kv_heads, c->head_size,
                 cs, c->rope_dim);

        for (h = 0; h < c->n_kv_heads; h++) {
            off = aie_kv_offset(c, e->kv, job->layer, h, e->pos);
            aie_kv_store(e->kv, off,
                         st->k + (size_t) i * kv_dim
                         + (size_t) h * c->head_size,
                         st->v + (size_t) i * kv_dim
                         + (size_t) h * c->head_size, c->head_size);
        }
        break;

    case AIE_STEP_FFN_NORM:
        aie_add(x, st->xb2 + (size_t) i * dim, dim);
        aie_rmsnorm(st->xb + (size_t) i * dim, x, w->ffn_norm.data, dim,
                    c->rms_eps);
        break;

    case AIE_STEP_SILU:
        job->be->silu_mul(st->hb + (size_t) i * c->hidden_dim,
                          st->hb2 + (size_t) i * c->hidden_dim,
                          c->hidden_dim);
        break;

    default:
        aie_add(x, st->xb + (size_t) i * dim, dim);
        break;
    }
}


static void
aie_steps(aie_backend_t *be, aie_attention_job_t *job, int step, int n)
{
    int  i;

    job->step = step;

    if (n >= AIE_PARALLEL_STEPS_MIN && be->n_threads > 1) {
        be->parallel(be, aie_step_task, job, n);
        return;
    }

    for (i = 0; i < n; i++) {
        aie_step_task(job, i, 0);
    }
}


int
aie_forward(const aie_model_t *model, aie_backend_t *be,
    aie_forward_state_t *st, const aie_batch_entry_t *batch, int n)
{
    const aie_config_t   *c = &model->config;
    const aie_layer_t    *w;
    aie_attention_job_t   job;
    int                   dim = c->dim, hidden = c->hidden_dim;
    int                   i, j, l, n_out, inline_attn;
    float                *cs, val;
    double                attn_work;

    if (n <= 0 || n > st->max_tokens
        || be->reserve(be, n, c->dim > hidden ? c->dim : hidden) != 0)
    {
        return -1;
    }

    if (be->n_threads > st->n_threads) {
        cs = realloc(st->att, (size_t) be->n_threads * st->max_ctx
                              * sizeof(float));
        if (cs == NULL) {
            return -1;
        }
        st->att = cs;
        st->n_threads = be->n_threads;
    }

    for (i = 0; i < n; i++) {
        if (batch[i].token < 0 || batch[i].token >= c->vocab_size
            || batch[i].pos < 0 || batch[i].pos >= batch[i].kv->n_ctx
            || batch[i].pos >= st->max_ctx)
        {
            return -1;
        }
    }

    /* token embeddings, and each entry's rotation angles */
    for (i = 0; i < n; i++) {
        aie_dequantize_row(model->token_embd.type,
                           (const char *) model->token_embd.data
                           + (size_t) batch[i].token
                             * model->token_embd.row_size,
                           st->x + (size_t) i * dim, dim);

        cs = st->rope + (size_t) i * c->rope_dim;
        for (j = 0; j < c->rope_dim; j += 2) {
            val = batch[i].pos * st->inv_freq[j / 2];
            cs[j] = cosf(val);
            cs[j + 1] = sinf(val);
        }
    }

    /*
     * tiny attention work is not worth waking the pool for; past a few
     * positions it is: the pool's threads spin between matmuls anyway, and
     * with attention inline they waited for it (a single-stream decode of
     * the 110M model on 2 threads: 2-13 % faster with it split from the
     * 5th position on than from the 85th)
     */
    attn_work = 0;
    for (i = 0; i < n; i++) {
        attn_work += (double) (batch[i].pos + 1) * c->dim;
    }
    inline_attn = be->n_threads == 1 || attn_work < 4096;

    job.model = model;
    job.be = be;
    job.st = st;
    job.batch = batch;

    for (l = 0; l < c->n_layers; l++) {
        w = &model->layers[l];
        job.layer = l;

        /* attention (x += the previous layer's feed-forward first) */
        aie_steps(be, &job, AIE_STEP_ATTN_NORM, n);

        be->matmul3(be, st->q, &w->wq, st->k, &w->wk, st->v, &w->wv, st->xb,
                    n);

        aie_steps(be, &job, AIE_STEP_ROPE, n);

        if (inline_attn) {
            for (j = 0; j < n * c->n_heads; j++) {
                aie_attention_head(&job, j, 0);
            }

        } else if (n >= AIE_PARALLEL_STEPS_MIN) {
            be->parallel(be, aie_attention_token, &job, n);

        } else {
            be->parallel(be, aie_attention_head, &job, n * c->n_heads);
        }

        be->matmul(be, st->xb2, &w->wo, st->xb, n);

        /* feed-forward: w_down(silu(w_gate x) * w_up x), x += wo's first */
        aie_steps(be, &job, AIE_STEP_FFN_NORM, n);

        be->matmul3(be, st->hb, &w->w_gate, st->hb2, &w->w_up, NULL, NULL,
                    st->xb, n);

        /* token by token: an element's path (vector or tail) as alone */
        aie_steps(be, &job, AIE_STEP_SILU, n);

        be->matmul(be, st->xb, &w->w_down, st->hb, n);
    }

    aie_steps(be, &job, AIE_STEP_RESIDUAL, n);

    /* final norm and classifier, only for the entries that want logits */
    n_out = 0;
    for (i = 0; i < n; i++) {
        if (batch[i].logits != NULL) {
            aie_rmsnorm(st->xb + (size_t) n_out * dim,
                        st->x + (size_t) i * dim, model->output_norm.data,
                        dim, c->rms_eps);
            n_out++;
        }
    }

    if (n_out == 0) {
        return 0;
    }

    be->matmul(be, st->logits, &model->output, st->xb, n_out);

    n_out = 0;
    for (i = 0; i < n; i++) {
        if (batch[i].logits != NULL) {
            memcpy(batch[i].logits,
                   st->logits + (size_t) n_out * c->vocab_size,
                   (size_t) c->vocab_size * sizeof(float));
            n_out++;
        }
    }

    return 0;
}
