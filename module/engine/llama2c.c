/*
 * llama2.c checkpoints: seven int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate
 * classifier follows), then float32 weights in run.c's order.  Its weights
 * already rotate adjacent pairs like GGUF's llama, so they are used as is.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"


static void
aie_llama2c_tensor(aie_tensor_t *t, const float **p, int64_t rows,
    int64_t cols)
{
    t->type = AIE_TYPE_F32;
    t->data = *p;
    t->rows = rows;
    t->cols = cols;
    t->row_size = (size_t) cols * sizeof(float);
    *p += rows * cols;
}


int
aie_model_load_llama2c(aie_model_t *model, const char *tokenizer_path,
    char *err, size_t errlen)
{
    aie_config_t  *c = &model->config;
    int32_t        hdr[7];
    int            i, shared, l;
    int64_t        dim, hidden, kv_dim, L, vocab, floats, need;
    const float   *p, *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm;
    const float   *w1, *w2, *w3;

    if (model->map_size < sizeof(hdr)) {
        aie_model_err(err, errlen, "llama2.c: file too small for a header");
        return -1;
    }

    memcpy(hdr, model->map, sizeof(hdr));

    for (i = 0; i < 7; i++) {
        /* sizes below 2^20 (vocab and context 2^24) keep the byte count
         * below 2^63 */
        if (hdr[i] == 0 || (i != 5 && hdr[i] < 0) || hdr[i] < -(1 << 24)
            || hdr[i] > (i >= 5 ? (1 << 24) : (1 << 20)))
        {
            aie_model_err(err, errlen, "llama2.c: bad header (not a model "
                          "file?)");
            return -1;
        }
    }

    shared = hdr[5] > 0;
    c->dim = hdr[0];
    c->hidden_dim = hdr[1];
    c->n_layers = hdr[2];
    c->n_heads = hdr[3];
    c->n_kv_heads = hdr[4];
    c->vocab_size = shared ? hdr[5] : -hdr[5];
    c->n_ctx = hdr[6];
    c->rope_theta = 10000.0f;
    c->rms_eps = 1e-5f;

    if (c->dim % c->n_heads != 0 || c->n_heads % c->n_kv_heads != 0
        || c->n_layers > 4096)
    {
        aie_model_err(err, errlen, "llama2.c: inconsistent header");
        return -1;
    }

    c->head_size = c->dim / c->n_heads;
    c->kv_dim = c->head_size * c->n_kv_heads;
    c->rope_dim = c->head_size;

    dim = c->dim;
    hidden = c->hidden_dim;
    kv_dim = c->kv_dim;
    L = c->n_layers;
    vocab = c->vocab_size;

    floats = vocab * dim
             + L * (dim + dim * dim + 2 * dim * kv_dim + dim * dim + dim
                    + 3 * dim * hidden)
             + dim
             + (int64_t) c->n_ctx * c->head_size
             + (shared ? 0 : vocab * dim);
    need = (int64_t) sizeof(hdr) + floats * (int64_t) sizeof(float);

    if ((uint64_t) need > model->map_size) {
        aie_model_err(err, errlen, "llama2.c: file has %zu bytes, the header "
                      "promises %lld (truncated?)", model->map_size,
                      (long long) need);
        return -1;
    }

    p = (const float *) ((const char *) model->map + sizeof(hdr));

    aie_llama2c_tensor(&model->token_embd, &p, vocab, dim);
    attn_norm = p;  p += L * dim;
    wq = p;         p += L * dim * dim;
    wk = p;         p += L * dim * kv_dim;
    wv = p;         p += L * dim * kv_dim;
    wo = p;         p += L * dim * dim;
    ffn_norm = p;   p += L * dim;
    w1 = p;         p += L * dim * hidden;
    w2 = p;         p += L * dim * hidden;
    w3 = p;         p += L * dim * hidden;
    aie_llama2c_tensor(&model->output_norm, &p, 1, dim);
    p += (int64_t) c->n_ctx * c->head_size;    /* freq_cis_real, _imag */

    if (shared) {
        model->output = model->token_embd;
    } else {
        aie_llama2c_tensor(&model->output, &p, vocab, dim);
    }

    model->layers = calloc((size_t) L, sizeof(aie_layer_t));
    if (model->layers == NULL) {
        aie_model_err(err, errlen, "llama2.c: out of memory");
        return -1;
    }

    for (l = 0; l < L; l++) {
        aie_layer_t  *w = &model->layers[l];
        const float  *q;

#define aie_take(t, base, rows, cols)                                       \
        q = (base) + (int64_t) l * (rows) * (cols);                         \
        aie_llama2c_tensor(&w->t, &q, rows, cols)

        aie_take(attn_norm, attn_norm, 1, dim);
        aie_take(wq, wq, dim, dim);
        aie_take(wk, wk, kv_dim, dim);
        aie_take(wv, wv, kv_dim, dim);
        aie_take(wo, wo, dim, dim);
        aie_take(ffn_norm, ffn_norm, 1, dim);
        aie_take(w_gate, w1, hidden, dim);
        aie_take(w_down, w2, dim, hidden);
        aie_take(w_up, w3, hidden, dim);

#undef aie_take
    }

    model->weight_bytes = (size_t) need - sizeof(hdr);
    model->format = "llama2c";
    model->weight_type = "F32";

    if (tokenizer_path != NULL) {
        model->tokenizer = aie_tokenizer_load_llama2c(tokenizer_path,
                                                      c->vocab_size, err,
                                                      errlen);
        if (model->tokenizer == NULL) {
            return -1;
        }
    }

    return 0;
}
