/*
 * The engine: a scheduler thread (plus the backend's pool) that runs all
 * admitted requests as one continuous batch.  Between two forward passes
 * requests join (queued ones take free slots) and leave (finished,
 * cancelled); each pass carries one decode token per running sequence plus
 * prompt chunks of those still reading their prompt, within a token budget.
 *
 * Output goes into the request's pending buffer under the request's lock;
 * the consumer swaps it out with aie_request_poll() and never blocks on the
 * engine.  After each pass that produced output the engine writes to the
 * notify eventfd once.  A request whose unread output reaches max_unread is
 * paused (left out of the batch) until the consumer reads.
 *
 * Lifetime: a request has two references, the consumer's and the engine's;
 * whoever drops the last frees it, so neither side ever touches freed
 * memory.  Lock order: request lock, then engine lock; the scheduler never
 * takes a request lock while holding the engine lock.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "generate.h"


#define AIE_DEFAULT_MAX_UNREAD        (64 * 1024)
#define AIE_DEFAULT_MAX_BATCH_TOKENS  128


typedef struct {
    char    *text;
    size_t   len;
    size_t   cap;
    int     *tokens;
    int      n;
    int      cap_tokens;
} aie_outbuf_t;

typedef struct aie_slot_s  aie_slot_t;

struct aie_request_s {
    int                    refs;          /* atomic */
    int                    cancelled;     /* atomic */

    pthread_mutex_t        lock;
    aie_engine_t          *engine;        /* NULL once the engine let go */
    aie_outbuf_t           pending;       /* written by the engine */
    aie_outbuf_t           reading;       /* the consumer's last delta */
    aie_finish_reason_t    finish;
    int                    finish_delivered;
    int                    paused;
    size_t                 max_unread;
    aie_usage_t            usage;
    char                   error[160];

    /* the scheduler thread's alone */
    aie_request_params_t   params;
    char                  *prompt_copy;
    int                   *prompt_tokens_copy;
    char                  *stop_copy[AIE_MAX_STOP];
    int                   *prompt;
    int                    n_prompt;
    int                    n_fed;
    int                    next_token;
    int                    gen_ready;
    aie_gen_t              gen;
    aie_request_t         *next;
};

struct aie_slot_s {
    aie_kv_cache_t   kv;
    aie_request_t   *req;
    float           *logits;
    int              in_batch;
};

struct aie_engine_s {
    aie_model_t           *model;
    aie_backend_t         *be;
    aie_forward_state_t   *state;
    aie_engine_params_t    params;

    pthread_t              thread;
    pthread_mutex_t        lock;
    pthread_cond_t         cond;
    aie_request_t         *queue_head;
    aie_request_t         *queue_tail;
    int                    n_queued;
    int                    n_running;
    int                    kick;
    int                    stop;

    aie_slot_t            *slots;
    aie_batch_entry_t     *batch;
    aie_slot_t           **batch_slot;
    int                    max_tokens;
    aie_engine_stats_t     stats;
};


static void aie_request_unref(aie_request_t *req);


void
aie_engine_params_default(aie_engine_params_t *params)
{
    memset(params, 0, sizeof(aie_engine_params_t));
    params->n_threads = 1;
    params->max_batch = 8;
    params->max_batch_tokens = AIE_DEFAULT_MAX_BATCH_TOKENS;
    params->notify_fd = -1;
    params->max_unread = AIE_DEFAULT_MAX_UNREAD;
}


static int
aie_outbuf_add(aie_outbuf_t *b, const char *text, size_t len, int token)
{
    char    *t;
    int     *k;
    size_t   cap;

    if (b->len + len > b->cap) {
        cap = (b->len + len) * 2 + 256;
        t = realloc(b->text, cap);
        if (t == NULL) {
            return -1;
        }
        b->text = t;
        b->cap = cap;
    }

    if (token >= 0 && b->n == b->cap_tokens) {
        k = realloc(b->tokens, (size_t) (b->cap_tokens * 2 + 16)
                               * sizeof(int));
        if (k == NULL) {
            return -1;
        }
        b->tokens = k;
        b->cap_tokens = b->cap_tokens * 2 + 16;
    }

    memcpy(b->text + b->len, text, len);
    b->len += len;

    if (token >= 0) {
        b->tokens[b->n++] = token;
    }

    return 0;
}


static void
aie_engine_kick(aie_engine_t *engine)
{
    pthread_mutex_lock(&engine->lock);
    engine->kick = 1;
    pthread_cond_signal(&engine->cond);
    pthread_mutex_unlock(&engine->lock);
}


static void
aie_engine_notify(aie_engine_t *engine)
{
    uint64_t  one = 1;
    ssize_t   n;

    if (engine->params.notify_fd < 0) {
        return;
    }

    do {
        n = write(engine->params.notify_fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
}


/* the engine is done with req: publish the end and drop its reference */
static void
aie_engine_finish(aie_engine_t *engine, aie_slot_t *slot, aie_request_t *req,
    aie_finish_reason_t reason, const char *error)
{
    pthread_mutex_lock(&req->lock);
    req->finish = reason;
    req->usage.prompt_tokens = req->n_prompt;
    req->usage.completion_tokens = req->gen_ready ? req->gen.n_completion : 0;
    req->engine = NULL;
    if (error != NULL) {
        snprintf(req->error, sizeof(req->error), "%s", error);
    }
    pthread_mutex_unlock(&req->lock);

    if (req->gen_ready) {
        aie_gen_free(&req->gen);
        req->gen_ready = 0;
    }

    if (slot != NULL) {
        slot->req = NULL;
        engine->n_running--;
    }

    aie_request_unref(req);
}


/* tokenizes the prompt and prepares generation when a slot is taken */
static void
aie_engine_admit(aie_engine_t *engine, aie_slot_t *slot, aie_request_t *req)
{
    char  err[160];

    slot->req = req;
    engine->n_running++;

    if (__atomic_load_n(&req->cancelled, __ATOMIC_ACQUIRE)) {
        aie_engine_finish(engine, slot, req, AIE_FINISH_CANCELLED, NULL);
        return;
    }

    req->n_prompt = aie_gen_prompt(engine->model, &req->params, &req->prompt,
                                   err, sizeof(err));
    if (req->n_prompt < 0) {
        req->n_prompt = 0;
        aie_engine_finish(engine, slot, req, AIE_FINISH_ERROR, err);
        return;
    }

    if (req->n_prompt > slot->kv.n_ctx) {
        snprintf(err, sizeof(err), "the prompt has %d tokens, the context "
                 "%d", req->n_prompt, slot->kv.n_ctx);
        aie_engine_finish(engine, slot, req, AIE_FINISH_ERROR, err);
        return;
    }

    if (aie_gen_init(&req->gen, engine->model, &req->params, req->prompt,
                     req->n_prompt, slot->kv.n_ctx) != 0)
    {
        aie_engine_finish(engine, slot, req, AIE_FINISH_ERROR,
                          "out of memory");
        return;
    }

    req->gen_ready = 1;
    req->n_fed = 0;
    engine->stats.prompt_tokens += (uint64_t) req->n_prompt;
}


/* admits queued requests into free slots; called with the engine lock */
static aie_request_t *
aie_engine_take_queued(aie_engine_t *engine)
{
    aie_request_t  *req = engine->queue_head;

    if (req != NULL) {
        engine->queue_head = req->next;
        if (engine->queue_head == NULL) {
            engine->queue_tail = NULL;
        }
        engine->n_queued--;
        req->next = NULL;
    }

    return req;
}


static int
aie_engine_build_batch(aie_engine_t *engine)
{
    aie_slot_t     *slot;
    aie_request_t  *req;
    int             i, j, n = 0, chunk, paused;

    /* decode tokens first: latency of running streams matters most */
    for (i = 0; i < engine->params.max_batch; i++) {
        slot = &engine->slots[i];
        req = slot->req;
        slot->in_batch = 0;

        if (req == NULL || req->n_fed < req->n_prompt) {
            continue;
        }

        pthread_mutex_lock(&req->lock);
        paused = req->pending.len >= req->max_unread;
        req->paused = paused;
        pthread_mutex_unlock(&req->lock);

        if (paused) {
            continue;
        }

        engine->batch[n].kv = &slot->kv;
        engine->batch[n].token = req->next_token;
        engine->batch[n].pos = req->n_prompt + req->gen.n_completion - 1;
        engine->batch[n].logits = slot->logits;
        engine->batch_slot[n] = slot;
        slot->in_batch = 1;
        n++;
    }

    /* then prompt chunks, within the budget */
    for (i = 0; i < engine->params.max_batch && n < engine->max_tokens; i++) {
        slot = &engine->slots[i];
        req = slot->req;

        if (req == NULL || req->n_fed >= req->n_prompt) {
            continue;
        }

        chunk = req->n_prompt - req->n_fed;
        if (chunk > engine->max_tokens - n) {
            chunk = engine->max_tokens - n;
        }

        for (j = 0; j < chunk; j++) {
            engine->batch[n].kv = &slot->kv;
            engine->batch[n].token = req->prompt[req->n_fed + j];
            engine->batch[n].pos = req->n_fed + j;
            engine->batch[n].logits = NULL;
            engine->batch_slot[n] = NULL;
            n++;
        }

        req->n_fed += chunk;

        if (req->n_fed == req->n_prompt) {
            engine->batch[n - 1].logits = slot->logits;
            engine->batch_slot[n - 1] = slot;
            slot->in_batch = 1;
        }
    }

    return n;
}


/* samples for every sequence that got logits and publishes the output */
static int
aie_engine_sample(aie_engine_t *engine, int n)
{
    aie_slot_t     *slot;
    aie_request_t  *req;
    int             i, token, emitted, wrote = 0, rc;

    for (i = 0; i < n; i++) {
        slot = engine->batch_slot[i];
        if (slot == NULL) {
            continue;
        }

        req = slot->req;
        token = aie_gen_next(&req->gen, slot->logits, &emitted);

        if (emitted >= 0) {
            engine->stats.generated_tokens++;
        }

        if (req->gen.text_len > 0 || emitted >= 0) {
            pthread_mutex_lock(&req->lock);
            rc = aie_outbuf_add(&req->pending, req->gen.text,
                                req->gen.text_len, emitted);
            pthread_mutex_unlock(&req->lock);

            wrote = 1;

            if (rc != 0) {
                aie_engine_finish(engine, slot, req, AIE_FINISH_ERROR,
                                  "out of memory");
                continue;
            }
        }

        if (token < 0) {
            aie_engine_finish(engine, slot, req, req->gen.finish,
                              req->gen.finish == AIE_FINISH_ERROR
                              ? "generation failed" : NULL);
            wrote = 1;
            continue;
        }

        req->next_token = token;
    }

    return wrote;
}


static void *
aie_engine_loop(void *data)
{
    aie_engine_t   *engine = data;
    aie_request_t  *req;
    aie_slot_t     *slot;
    int             i, n, wrote, rc;
    uint64_t        kv;

    pthread_mutex_lock(&engine->lock);

    while (!engine->stop) {
        engine->kick = 0;

        /* join: queued requests take free slots */
        for (i = 0; i < engine->params.max_batch; i++) {
            if (engine->slots[i].req != NULL || engine->queue_head == NULL) {
                continue;
            }

            req = aie_engine_take_queued(engine);
            pthread_mutex_unlock(&engine->lock);
            aie_engine_admit(engine, &engine->slots[i], req);
            pthread_mutex_lock(&engine->lock);
        }

        pthread_mutex_unlock(&engine->lock);

        /* leave: cancelled requests */
        wrote = 0;
        for (i = 0; i < engine->params.max_batch; i++) {
            slot = &engine->slots[i];
            if (slot->req != NULL
                && __atomic_load_n(&slot->req->cancelled, __ATOMIC_ACQUIRE))
            {
                aie_engine_finish(engine, slot, slot->req,
                                  AIE_FINISH_CANCELLED, NULL);
                wrote = 1;
            }
        }

        n = aie_engine_build_batch(engine);

        if (n > 0) {
            rc = aie_forward(engine->model, engine->be, engine->state,
                             engine->batch, n);
            engine->stats.steps++;

            /* the KV cache the running sequences hold, for the metrics */
            kv = 0;
            for (i = 0; i < engine->params.max_batch; i++) {
                if (engine->slots[i].req != NULL) {
                    kv += (uint64_t) engine->slots[i].req->n_fed
                          + (uint64_t) engine->slots[i].req->gen.n_completion;
                }
            }
            engine->stats.kv_used_tokens = kv;

            if (rc != 0) {
                for (i = 0; i < engine->params.max_batch; i++) {
                    if (engine->slots[i].in_batch) {
                        aie_engine_finish(engine, &engine->slots[i],
                                          engine->slots[i].req,
                                          AIE_FINISH_ERROR,
                                          "evaluation failed");
                    }
                }
                wrote = 1;

            } else {
                wrote |= aie_engine_sample(engine, n);
            }
        }

        if (wrote) {
            aie_engine_notify(engine);
        }

        pthread_mutex_lock(&engine->lock);

        while (n == 0 && !engine->stop && !engine->kick
               && (engine->queue_head == NULL
                   || engine->n_running == engine->params.max_batch))
        {
            pthread_cond_wait(&engine->cond, &engine->lock);
        }
    }

    pthread_mutex_unlock(&engine->lock);

    /* stopping: everything still here ends as cancelled */
    for (i = 0; i < engine->params.max_batch; i++) {
        if (engine->slots[i].req != NULL) {
            aie_engine_finish(engine, &engine->slots[i],
                              engine->slots[i].req, AIE_FINISH_CANCELLED,
                              NULL);
        }
    }

    while ((req = aie_engine_take_queued(engine)) != NULL) {
        aie_engine_finish(engine, NULL, req, AIE_FINISH_CANCELLED, NULL);
    }

    aie_engine_notify(engine);

    return NULL;
}


static void
aie_engine_free(aie_engine_t *engine)
{
    int  i;

    if (engine->slots != NULL) {
        for (i = 0; i < engine->params.max_batch; i++) {
            aie_kv_cache_free(&engine->slots[i].kv);
            free(engine->slots[i].logits);
        }
    }

    free(engine->slots);
    free(engine->batch);
    free(engine->batch_slot);
    aie_forward_state_free(engine->state);

    if (engine->be != NULL) {
        engine->be->free(engine->be);
    }

    pthread_cond_destroy(&engine->cond);
    pthread_mutex_destroy(&engine->lock);
    free(engine);
}


aie_engine_t *
aie_engine_start(aie_model_t *model, const aie_engine_params_t *params,
    char *err, size_t errlen)
{
    aie_engine_t  *engine;
    int            i;

    engine = calloc(1, sizeof(aie_engine_t));
    if (engine == NULL) {
        aie_model_err(err, errlen, "engine: out of memory");
        return NULL;
    }

    engine->model = model;
    engine->params = *params;
    pthread_mutex_init(&engine->lock, NULL);
    pthread_cond_init(&engine->cond, NULL);

    if (engine->params.n_threads < 1) {
        engine->params.n_threads = 1;
    }

    if (engine->params.max_batch < 1) {
        engine->params.max_batch = 1;
    }

    if (engine->params.n_ctx <= 0) {
        engine->params.n_ctx = model->config.n_ctx;
    }

    if (engine->params.max_batch_tokens <= 0) {
        engine->params.max_batch_tokens = AIE_DEFAULT_MAX_BATCH_TOKENS;
    }

    if (engine->params.max_unread == 0) {
        engine->params.max_unread = AIE_DEFAULT_MAX_UNREAD;
    }

    engine->max_tokens = engine->params.max_batch_tokens;
    if (engine->max_tokens < engine->params.max_batch) {
        engine->max_tokens = engine->params.max_batch;
    }

    engine->be = aie_cpu_backend_new(engine->params.n_threads);
    engine->slots = calloc((size_t) engine->params.max_batch,
                           sizeof(aie_slot_t));
    engine->batch = calloc((size_t) engine->max_tokens,
                           sizeof(aie_batch_entry_t));
    engine->batch_slot = calloc((size_t) engine->max_tokens,
                                sizeof(aie_slot_t *));

    if (engine->be == NULL || engine->slots == NULL || engine->batch == NULL
        || engine->batch_slot == NULL)
    {
        aie_model_err(err, errlen, "engine: out of memory");
        aie_engine_free(engine);
        return NULL;
    }

    engine->state = aie_forward_state_new(model, engine->be,
                                          engine->max_tokens,
                                          engine->params.n_ctx);
    if (engine->state == NULL) {
        aie_model_err(err, errlen, "engine: out of memory");
        aie_engine_free(engine);
        return NULL;
    }

    for (i = 0; i < engine->params.max_batch; i++) {
        engine->slots[i].logits = malloc((size_t) model->config.vocab_size
                                         * sizeof(float));
        if (engine->slots[i].logits == NULL
            || aie_kv_cache_init(&engine->slots[i].kv, model,
                                 engine->params.n_ctx,
                                 engine->params.kv_f16) != 0)
        {
            aie_model_err(err, errlen, "engine: out of memory for %d "
                          "sequences of %d tokens", engine->params.max_batch,
                          engine->params.n_ctx);
            aie_engine_free(engine);
            return NULL;
        }
    }

    if (pthread_create(&engine->thread, NULL, aie_engine_loop, engine) != 0)
    {
        aie_model_err(err, errlen, "engine: cannot start a thread");
        aie_engine_free(engine);
        return NULL;
    }

    return engine;
}


void
aie_engine_stop(aie_engine_t *engine)
{
    if (engine == NULL) {
        return;
    }

    pthread_mutex_lock(&engine->lock);
    engine->stop = 1;
    pthread_cond_signal(&engine->cond);
    pthread_mutex_unlock(&engine->lock);

    pthread_join(engine->thread, NULL);
    aie_engine_free(engine);
}


void
aie_engine_stats(aie_engine_t *engine, aie_engine_stats_t *stats)
{
    pthread_mutex_lock(&engine->lock);
    *stats = engine->stats;
    stats->kv_capacity_tokens = (uint64_t) engine->params.max_batch
                                * (uint64_t) engine->params.n_ctx;
    stats->queued = engine->n_queued;
    stats->running = engine->n_running;
    pthread_mutex_unlock(&engine->lock);
}


static void
aie_request_free(aie_request_t *req)
{
    int  i;

    free(req->pending.text);
    free(req->pending.tokens);
    free(req->reading.text);
    free(req->reading.tokens);
    free(req->prompt_copy);
    free(req->prompt_tokens_copy);
    free(req->prompt);

    for (i = 0; i < AIE_MAX_STOP; i++) {
        free(req->stop_copy[i]);
    }

    pthread_mutex_destroy(&req->lock);
    free(req);
}


static void
aie_request_unref(aie_request_t *req)
{
    if (__atomic_sub_fetch(&req->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        aie_request_free(req);
    }
}


aie_request_t *
aie_engine_submit(aie_engine_t *engine, const aie_request_params_t *params)
{
    aie_request_t  *req;
    size_t          n;
    int             i;

    req = calloc(1, sizeof(aie_request_t));
    if (req == NULL) {
        return NULL;
    }

    pthread_mutex_init(&req->lock, NULL);
    req->refs = 2;
    req->engine = engine;
    req->params = *params;
    req->max_unread = params->max_unread ? params->max_unread
                                         : engine->params.max_unread;

    /* the caller's buffers may go away as soon as we return */
    if (params->prompt != NULL) {
        req->prompt_copy = malloc(params->prompt_len + 1);
        if (req->prompt_copy == NULL) {
            goto failed;
        }
        memcpy(req->prompt_copy, params->prompt, params->prompt_len);
        req->prompt_copy[params->prompt_len] = '\0';
        req->params.prompt = req->prompt_copy;

    } else if (params->prompt_tokens != NULL && params->n_prompt_tokens > 0) {
        n = (size_t) params->n_prompt_tokens * sizeof(int);
        req->prompt_tokens_copy = malloc(n);
        if (req->prompt_tokens_copy == NULL) {
            goto failed;
        }
        memcpy(req->prompt_tokens_copy, params->prompt_tokens, n);
        req->params.prompt_tokens = req->prompt_tokens_copy;
    }

    for (i = 0; i < AIE_MAX_STOP; i++) {
        if (params->stop[i] != NULL) {
            req->stop_copy[i] = strdup(params->stop[i]);
            if (req->stop_copy[i] == NULL) {
                goto failed;
            }
        }
        req->params.stop[i] = req->stop_copy[i];
    }

    pthread_mutex_lock(&engine->lock);

    if (engine->stop) {
        pthread_mutex_unlock(&engine->lock);
        goto failed;
    }

    if (engine->queue_tail != NULL) {
        engine->queue_tail->next = req;
    } else {
        engine->queue_head = req;
    }

    engine->queue_tail = req;
    engine->n_queued++;
    pthread_cond_signal(&engine->cond);
    pthread_mutex_unlock(&engine->lock);

    return req;

failed:

    aie_request_free(req);
    return NULL;
}


int
aie_request_poll(aie_request_t *req, aie_delta_t *delta)
{
    aie_outbuf_t  tmp;
    int           rc = 0;

    memset(delta, 0, sizeof(aie_delta_t));

    pthread_mutex_lock(&req->lock);

    if (req->pending.len > 0 || req->pending.n > 0
        || (req->finish != AIE_FINISH_NONE && !req->finish_delivered))
    {
        tmp = req->reading;
        req->reading = req->pending;
        req->pending = tmp;
        req->pending.len = 0;
        req->pending.n = 0;

        delta->text = req->reading.text != NULL ? req->reading.text : "";
        delta->text_len = req->reading.len;
        delta->tokens = req->reading.tokens;
        delta->n_tokens = req->reading.n;

        if (req->finish != AIE_FINISH_NONE) {
            delta->finish = req->finish;
            req->finish_delivered = 1;
        }

        rc = 1;

        /* room again: let the scheduler take the sequence back */
        if (req->paused && req->engine != NULL) {
            req->paused = 0;
            aie_engine_kick(req->engine);
        }

    } else if (req->finish != AIE_FINISH_NONE) {
        delta->text = "";
        delta->finish = req->finish;
    }

    pthread_mutex_unlock(&req->lock);

    return rc;
}


void
aie_request_cancel(aie_request_t *req)
{
    __atomic_store_n(&req->cancelled, 1, __ATOMIC_RELEASE);

    pthread_mutex_lock(&req->lock);
    if (req->engine != NULL) {
        aie_engine_kick(req->engine);
    }
    pthread_mutex_unlock(&req->lock);
}


void
aie_request_release(aie_request_t *req)
{
    if (req == NULL) {
        return;
    }

    aie_request_cancel(req);
    aie_request_unref(req);
}


void
aie_request_usage(aie_request_t *req, aie_usage_t *usage)
{
    pthread_mutex_lock(&req->lock);
    *usage = req->usage;
    pthread_mutex_unlock(&req->lock);
}


const char *
aie_request_error(aie_request_t *req)
{
    const char  *e;

    pthread_mutex_lock(&req->lock);
    e = req->finish == AIE_FINISH_ERROR ? req->error : "";
    pthread_mutex_unlock(&req->lock);

    return e;
}
