/*
 * aigw inference engine: public API.
 *
 * A plain C11 library with no NGINX dependency.  It loads llama-architecture
 * models (GGUF v2/v3 with F32, F16, Q8_0 and Q4_0 tensors, or llama2.c
 * checkpoints), tokenizes, runs the forward pass on the CPU and samples.
 *
 * Two ways to run a model:
 *
 *   - synchronously on the caller's thread: aie_seq_new() + aie_eval() +
 *     aie_sampler_*(), or aie_generate() for a whole request;
 *   - through an engine (aie_engine_start()) that owns worker threads and
 *     batches many requests continuously; the caller submits requests and
 *     polls their output without ever blocking, woken by an eventfd.
 *
 * Thread safety: a model is read-only after loading and may be shared.  A
 * sequence, sampler or detokenizer belongs to one thread at a time.  The
 * engine's functions may be called from one consumer thread (an event loop).
 */

#ifndef AIGW_ENGINE_H
#define AIGW_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AIE_API_VERSION  1


typedef struct aie_model_s    aie_model_t;
typedef struct aie_seq_s      aie_seq_t;
typedef struct aie_detok_s    aie_detok_t;
typedef struct aie_sampler_s  aie_sampler_t;
typedef struct aie_engine_s   aie_engine_t;
typedef struct aie_request_s  aie_request_t;


/* models */

typedef struct {
    const char  *name;          /* general.name, or the file's base name */
    const char  *format;        /* "gguf" or "llama2c" */
    const char  *weight_type;   /* "F32", "F16", "Q8_0", "Q4_0" or "mixed" */
    int          n_ctx;         /* context length the model declares */
    int          vocab_size;
    int          dim;
    int          hidden_dim;
    int          n_layers;
    int          n_heads;
    int          n_kv_heads;
    int          bos_id;        /* -1 when the model has no tokenizer */
    int          eos_id;
    int          has_tokenizer;
    size_t       weight_bytes;  /* bytes of tensor data mapped */
} aie_model_info_t;

/*
 * Loads a model.  GGUF files carry their tokenizer; a llama2.c checkpoint
 * needs tokenizer_path (else the model loads without one and only token
 * ids can be used).  On failure returns NULL and writes a message to err.
 */
aie_model_t *aie_model_load(const char *path, const char *tokenizer_path,
    char *err, size_t errlen);
void aie_model_free(aie_model_t *model);
void aie_model_info(const aie_model_t *model, aie_model_info_t *info);

/* Threads aie_eval() and aie_generate() may use (default 1). */
int aie_model_set_threads(aie_model_t *model, int n_threads);

/*
 * The kernels aie_eval() runs with: "avx512-vnni", "avx512", "avx2" or
 * "scalar".  They are chosen when the model is loaded or its threads set:
 * the fastest the CPU supports, or the scalar reference when the
 * environment has AIE_FORCE_SCALAR=1 (AIE_CPU=avx2 caps at AVX2).
 */
const char *aie_model_kernels(const aie_model_t *model);


/* tokenizer */

/*
 * Encodes text (len bytes, need not be NUL-terminated) the way llama's
 * SentencePiece BPE does: a dummy prefix space, merges by score, unknown
 * bytes as <0xXX> tokens.  Control tokens are never produced from text.
 * Returns the number of tokens; when it is larger than max only max were
 * written.  Returns -1 when the model has no tokenizer.
 */
int aie_tokenize(const aie_model_t *model, const char *text, size_t len,
    int add_bos, int *out, int max);

/* The bytes a token stands for (byte tokens resolved, control tokens ""). */
const char *aie_token_text(const aie_model_t *model, int token, size_t *len);

/* Whether token ends generation (EOS). */
int aie_token_is_eog(const aie_model_t *model, int token);

/*
 * Streaming detokenizer: turns tokens into text one at a time and never
 * emits part of a UTF-8 character (byte tokens may split one); invalid
 * sequences become U+FFFD.  Like SentencePiece, the space a token carries
 * is dropped when the token directly follows BOS.
 */
aie_detok_t *aie_detok_new(const aie_model_t *model);
void aie_detok_free(aie_detok_t *detok);
/* Starts over; prev_token is the token before the first pushed, or -1. */
void aie_detok_reset(aie_detok_t *detok, int prev_token);
/* Returns text now complete; valid until the next call on detok. */
const char *aie_detok_push(aie_detok_t *detok, int token, size_t *len);
/* Returns what is still held (an incomplete character as U+FFFD). */
const char *aie_detok_flush(aie_detok_t *detok, size_t *len);

/* Whole-sequence decode into out (NUL-terminated); returns bytes needed. */
size_t aie_detokenize(const aie_model_t *model, const int *tokens, int n,
    char *out, size_t cap);


/* sequences: one conversation's KV cache */

/* n_ctx 0 means the model's context length. */
aie_seq_t *aie_seq_new(aie_model_t *model, int n_ctx);
void aie_seq_free(aie_seq_t *seq);
void aie_seq_reset(aie_seq_t *seq);
int aie_seq_pos(const aie_seq_t *seq);
int aie_seq_n_ctx(const aie_seq_t *seq);

/*
 * Feeds n tokens at the sequence's current position.  When logits is not
 * NULL it receives vocab_size floats: the next-token logits after the last
 * token.  Returns 0, or -1 when a token is out of range or the context is
 * full (the sequence is then unchanged).
 */
int aie_eval(aie_seq_t *seq, const int *tokens, int n, float *logits);


/* sampling */

typedef struct {
    float     temperature;        /* 0: greedy (argmax) */
    float     top_p;              /* 1: off */
    int       top_k;              /* 0: off */
    uint64_t  seed;               /* same seed, same tokens */
    float     presence_penalty;   /* OpenAI semantics, over generated tokens */
    float     frequency_penalty;
} aie_sampler_params_t;

void aie_sampler_params_default(aie_sampler_params_t *params);
aie_sampler_t *aie_sampler_new(int vocab_size,
    const aie_sampler_params_t *params);
void aie_sampler_free(aie_sampler_t *sampler);
/* Picks a token from logits (not modified). */
int aie_sampler_sample(aie_sampler_t *sampler, const float *logits);
/* Records a generated token for the penalties. */
void aie_sampler_accept(aie_sampler_t *sampler, int token);
void aie_sampler_reset(aie_sampler_t *sampler);


/* requests: a prompt and how to continue it */

#define AIE_MAX_STOP  8

typedef enum {
    AIE_FINISH_NONE = 0,        /* still running */
    AIE_FINISH_STOP,            /* EOS or a stop sequence */
    AIE_FINISH_LENGTH,          /* max_tokens or the context is full */
    AIE_FINISH_CANCELLED,
    AIE_FINISH_ERROR
} aie_finish_reason_t;

typedef struct {
    int  prompt_tokens;
    int  completion_tokens;
} aie_usage_t;

typedef struct {
    const char           *prompt;          /* text, or NULL to use tokens */
    size_t                prompt_len;
    const int            *prompt_tokens;
    int                   n_prompt_tokens;
    int                   add_bos;         /* with text prompts */
    int                   max_tokens;      /* <= 0: until the context ends */
    const char           *stop[AIE_MAX_STOP];  /* NUL-terminated, or NULL */
    int                   ignore_eos;      /* benchmarks only */
    aie_sampler_params_t  sampling;
    size_t                max_unread;      /* engine: unread output bytes
                                              before the sequence pauses;
                                              0: engine default */
} aie_request_params_t;

void aie_request_params_default(aie_request_params_t *params);
const char *aie_finish_reason_name(aie_finish_reason_t reason);

/* Returns nonzero to stop generation (finish reason "cancelled"). */
typedef int (*aie_text_handler_pt)(void *data, const char *text, size_t len);

/*
 * Runs one request synchronously on seq (reset first): text goes to
 * handler as it is produced, stop sequences never reach it.
 */
aie_finish_reason_t aie_generate(aie_seq_t *seq,
    const aie_request_params_t *params, aie_text_handler_pt handler,
    void *data, aie_usage_t *usage, char *err, size_t errlen);


/* the engine: worker threads and continuous batching */

typedef struct {
    int     n_threads;        /* compute threads, the scheduler's included */
    int     max_batch;        /* sequences decoded together */
    int     n_ctx;            /* per sequence; 0: the model's */
    int     max_batch_tokens; /* prompt tokens per step; 0: 128 */
    int     notify_fd;        /* eventfd written on new output, or -1 */
    size_t  max_unread;       /* default back-pressure cap, bytes */
    int     kv_f16;           /* keys and values stored as F16: half the
                                 KV memory and bandwidth; 0: F32 */
} aie_engine_params_t;

typedef struct {
    int       queued;
    int       running;
    uint64_t  steps;
    uint64_t  prompt_tokens;
    uint64_t  generated_tokens;
    uint64_t  kv_used_tokens;      /* positions held by running sequences */
    uint64_t  kv_capacity_tokens;  /* max_batch x n_ctx */
} aie_engine_stats_t;

void aie_engine_params_default(aie_engine_params_t *params);
aie_engine_t *aie_engine_start(aie_model_t *model,
    const aie_engine_params_t *params, char *err, size_t errlen);
/*
 * Cancels whatever still runs and joins the threads.  Request handles the
 * consumer holds stay valid (finished, "cancelled") until released.
 */
void aie_engine_stop(aie_engine_t *engine);
void aie_engine_stats(aie_engine_t *engine, aie_engine_stats_t *stats);

/*
 * Queues a request; the parameters are copied.  Returns a handle the
 * consumer must release, or NULL when out of memory or stopping.
 */
aie_request_t *aie_engine_submit(aie_engine_t *engine,
    const aie_request_params_t *params);

typedef struct {
    const char           *text;        /* new text since the last poll */
    size_t                text_len;
    const int            *tokens;      /* new token ids since the last poll */
    int                   n_tokens;
    aie_finish_reason_t   finish;      /* set in the last delta */
} aie_delta_t;

/*
 * Never blocks.  Returns 1 and fills delta when there is new output or the
 * request has just finished (finish != AIE_FINISH_NONE: the last delta),
 * 0 when nothing is new.  The delta's memory stays valid until the next
 * poll or the release.
 */
int aie_request_poll(aie_request_t *req, aie_delta_t *delta);
/* Asks the engine to stop the request; the consumer still polls/releases. */
void aie_request_cancel(aie_request_t *req);
/* Drops the consumer's reference; cancels the request if still running. */
void aie_request_release(aie_request_t *req);
void aie_request_usage(aie_request_t *req, aie_usage_t *usage);
/* The error message once finished with AIE_FINISH_ERROR, else "". */
const char *aie_request_error(aie_request_t *req);


#ifdef __cplusplus
}
#endif

#endif /* AIGW_ENGINE_H */
