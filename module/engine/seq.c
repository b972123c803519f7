/*
 * Sequences for the synchronous API: a KV cache, a position, and scratch
 * for the forward pass, evaluated on the model's own backend.
 */

#include <stdlib.h>

#include "forward.h"


#define AIE_SEQ_CHUNK  64      /* prompt tokens per forward pass */


struct aie_seq_s {
    aie_model_t          *model;
    aie_kv_cache_t        kv;
    int                   pos;
    aie_forward_state_t  *state;
    aie_batch_entry_t     batch[AIE_SEQ_CHUNK];
};


aie_seq_t *
aie_seq_new(aie_model_t *model, int n_ctx)
{
    aie_seq_t  *seq;

    if (n_ctx <= 0) {
        n_ctx = model->config.n_ctx;
    }

    seq = calloc(1, sizeof(aie_seq_t));
    if (seq == NULL) {
        return NULL;
    }

    seq->model = model;

    if (aie_kv_cache_init(&seq->kv, model, n_ctx, 0) != 0) {
        free(seq);
        return NULL;
    }

    seq->state = aie_forward_state_new(model, model->backend, AIE_SEQ_CHUNK,
                                       n_ctx);
    if (seq->state == NULL) {
        aie_seq_free(seq);
        return NULL;
    }

    return seq;
}


void
aie_seq_free(aie_seq_t *seq)
{
    if (seq == NULL) {
        return;
    }

    aie_kv_cache_free(&seq->kv);
    aie_forward_state_free(seq->state);
    free(seq);
}


void
aie_seq_reset(aie_seq_t *seq)
{
    seq->pos = 0;
}


int
aie_seq_pos(const aie_seq_t *seq)
{
    return seq->pos;
}


int
aie_seq_n_ctx(const aie_seq_t *seq)
{
    return seq->kv.n_ctx;
}


aie_model_t *
aie_seq_model(const aie_seq_t *seq)
{
    return seq->model;
}


int
aie_eval(aie_seq_t *seq, const int *tokens, int n, float *logits)
{
    aie_model_t  *model = seq->model;
    int           i, done, chunk, rc;

    if (n <= 0 || n > seq->kv.n_ctx - seq->pos) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= model->config.vocab_size) {
            return -1;
        }
    }

    for (done = 0; done < n; done += chunk) {
        chunk = n - done < AIE_SEQ_CHUNK ? n - done : AIE_SEQ_CHUNK;

        for (i = 0; i < chunk; i++) {
            seq->batch[i].kv = &seq->kv;
            seq->batch[i].token = tokens[done + i];
            seq->batch[i].pos = seq->pos + done + i;
            seq->batch[i].logits = NULL;
        }

        if (done + chunk == n) {
            seq->batch[chunk - 1].logits = logits;
        }

        pthread_mutex_lock(&model->backend_lock);
        rc = aie_forward(model, model->backend, seq->state, seq->batch,
                         chunk);
        pthread_mutex_unlock(&model->backend_lock);

        if (rc != 0) {
            return -1;
        }
    }

    seq->pos += n;

    return 0;
}
