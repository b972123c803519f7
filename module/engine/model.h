/*
 * A loaded llama model: its hyperparameters, its weights (pointers into the
 * read-only mapping of the file) and its tokenizer.
 */

#ifndef AIE_MODEL_H
#define AIE_MODEL_H

#include <pthread.h>

#include "aigw_engine.h"
#include "backend.h"
#include "tokenizer.h"


typedef struct {
    int    dim;
    int    hidden_dim;
    int    n_layers;
    int    n_heads;
    int    n_kv_heads;
    int    vocab_size;
    int    n_ctx;
    int    head_size;
    int    kv_dim;
    int    rope_dim;        /* leading dimensions of a head that rotate */
    float  rope_theta;
    float  rms_eps;
} aie_config_t;

typedef struct {
    aie_tensor_t  attn_norm;
    aie_tensor_t  wq;
    aie_tensor_t  wk;
    aie_tensor_t  wv;
    aie_tensor_t  wo;
    aie_tensor_t  ffn_norm;
    aie_tensor_t  w_gate;
    aie_tensor_t  w_down;
    aie_tensor_t  w_up;
} aie_layer_t;

struct aie_model_s {
    aie_config_t      config;
    aie_tensor_t      token_embd;
    aie_tensor_t      output_norm;
    aie_tensor_t      output;       /* the classifier, maybe token_embd */
    aie_layer_t      *layers;
    aie_tokenizer_t  *tokenizer;

    void             *map;
    size_t            map_size;
    void             *packed;       /* the arena of the tensors' packed */
    size_t            packed_size;
    size_t            weight_bytes;
    char              name[128];
    const char       *format;
    const char       *weight_type;

    /* what aie_eval() runs on; one caller at a time */
    aie_backend_t    *backend;
    pthread_mutex_t   backend_lock;
};


/* format loaders fill config, tensors and tokenizer from the mapping */
int aie_model_load_gguf(aie_model_t *model, char *err, size_t errlen);
int aie_model_load_llama2c(aie_model_t *model, const char *tokenizer_path,
    char *err, size_t errlen);
/* checks shapes and derived sizes once a loader is done */
int aie_model_validate(aie_model_t *model, char *err, size_t errlen);

aie_model_t *aie_seq_model(const aie_seq_t *seq);

void aie_model_err(char *err, size_t errlen, const char *fmt, ...);

#endif /* AIE_MODEL_H */
