/*
 * The llama forward pass over a batch: any mix of tokens from any number of
 * sequences, each with its own KV cache and position.  Prompt chunks and
 * single decode tokens of many sequences go through the same code, so every
 * weight row read serves the whole batch.
 */

#ifndef AIE_FORWARD_H
#define AIE_FORWARD_H

#include "model.h"


typedef struct {
    int     n_ctx;
    int     f16;    /* keys and values stored as F16 (kv=f16), else F32 */
    void   *k;      /* [n_layers][n_kv_heads][n_ctx][head_size] */
    void   *v;
} aie_kv_cache_t;

typedef struct {
    aie_kv_cache_t  *kv;
    int              token;
    int              pos;
    float           *logits;    /* vocab_size floats out, or NULL */
} aie_batch_entry_t;

typedef struct aie_forward_state_s  aie_forward_state_t;


int aie_kv_cache_init(aie_kv_cache_t *kv, const aie_model_t *model,
    int n_ctx, int f16);
void aie_kv_cache_free(aie_kv_cache_t *kv);

/* scratch for batches of up to max_tokens over contexts up to max_ctx */
aie_forward_state_t *aie_forward_state_new(const aie_model_t *model,
    aie_backend_t *be, int max_tokens, int max_ctx);
void aie_forward_state_free(aie_forward_state_t *st);
int aie_forward_state_max_tokens(const aie_forward_state_t *st);

/*
 * Runs the batch: writes each entry's K and V at its position and fills the
 * logits asked for.  Several entries may share a cache when their positions
 * differ (a prompt chunk).  Returns -1 on a bad token or position.
 */
int aie_forward(const aie_model_t *model, aie_backend_t *be,
    aie_forward_state_t *st, const aie_batch_entry_t *batch, int n);

#endif /* AIE_FORWARD_H */
