/*
 * Generation: from logits to tokens and text, and when to stop.
 */

#include <stdlib.h>
#include <string.h>

#include "generate.h"


void
aie_request_params_default(aie_request_params_t *params)
{
    memset(params, 0, sizeof(aie_request_params_t));
    params->add_bos = 1;
    params->max_tokens = 256;
    aie_sampler_params_default(&params->sampling);
}


const char *
aie_finish_reason_name(aie_finish_reason_t reason)
{
    switch (reason) {
    case AIE_FINISH_NONE:      return "none";
    case AIE_FINISH_STOP:      return "stop";
    case AIE_FINISH_LENGTH:    return "length";
    case AIE_FINISH_CANCELLED: return "cancelled";
    case AIE_FINISH_ERROR:     return "error";
    }

    return "unknown";
}


int
aie_gen_prompt(const aie_model_t *model, const aie_request_params_t *params,
    int **tokens, char *err, size_t errlen)
{
    int  n, i, *t;

    *tokens = NULL;

    if (params->prompt == NULL) {
        n = params->n_prompt_tokens;
        if (n <= 0 || params->prompt_tokens == NULL) {
            aie_model_err(err, errlen, "request: empty prompt");
            return -1;
        }

        for (i = 0; i < n; i++) {
            if (params->prompt_tokens[i] < 0
                || params->prompt_tokens[i] >= model->config.vocab_size)
            {
                aie_model_err(err, errlen, "request: prompt token %d is out "
                              "of range", params->prompt_tokens[i]);
                return -1;
            }
        }

        t = malloc((size_t) n * sizeof(int));
        if (t == NULL) {
            aie_model_err(err, errlen, "request: out of memory");
            return -1;
        }

        memcpy(t, params->prompt_tokens, (size_t) n * sizeof(int));
        *tokens = t;
        return n;
    }

    n = aie_tokenize(model, params->prompt, params->prompt_len,
                     params->add_bos, NULL, 0);
    if (n < 0) {
        aie_model_err(err, errlen, "request: the model has no tokenizer");
        return -1;
    }

    if (n == 0) {
        aie_model_err(err, errlen, "request: empty prompt");
        return -1;
    }

    t = malloc((size_t) n * sizeof(int));
    if (t == NULL) {
        aie_model_err(err, errlen, "request: out of memory");
        return -1;
    }

    aie_tokenize(model, params->prompt, params->prompt_len, params->add_bos,
                 t, n);
    *tokens = t;

    return n;
}


int
aie_gen_init(aie_gen_t *g, const aie_model_t *model,
    const aie_request_params_t *params, const int *prompt, int n_prompt,
    int n_ctx)
{
    int  limit;

    memset(g, 0, sizeof(aie_gen_t));
    g->model = model;
    g->n_prompt = n_prompt;
    g->ignore_eos = params->ignore_eos;

    /* the last token generated is never fed back, hence + 1 */
    limit = n_ctx - n_prompt + 1;
    g->max_tokens = params->max_tokens > 0 && params->max_tokens < limit
                    ? params->max_tokens : limit;

    g->sampler = aie_sampler_new(model->config.vocab_size,
                                 &params->sampling);
    g->detok = aie_detok_new(model);

    if (g->sampler == NULL || g->detok == NULL) {
        aie_gen_free(g);
        return -1;
    }

    aie_detok_reset(g->detok, prompt[n_prompt - 1]);
    aie_stopper_init(&g->stopper, params->stop);

    return 0;
}


void
aie_gen_free(aie_gen_t *g)
{
    aie_sampler_free(g->sampler);
    aie_detok_free(g->detok);
    aie_stopper_free(&g->stopper);
    free(g->text);
    g->sampler = NULL;
    g->detok = NULL;
    g->text = NULL;
}


static int
aie_gen_append(aie_gen_t *g, const char *s, size_t n)
{
    char    *p;
    size_t   cap;

    if (g->text_len + n > g->text_cap) {
        cap = (g->text_len + n) * 2 + 64;
        p = realloc(g->text, cap);
        if (p == NULL) {
            return -1;
        }
        g->text = p;
        g->text_cap = cap;
    }

    memcpy(g->text + g->text_len, s, n);
    g->text_len += n;

    return 0;
}


/* releases everything still held back, at the end */
static int
aie_gen_flush(aie_gen_t *g)
{
    const char  *s;
    size_t       n;
    int          rc;

    s = aie_detok_flush(g->detok, &n);
    rc = aie_stopper_push(&g->stopper, s, n, &s, &n);
    if (rc < 0 || aie_gen_append(g, s, n) != 0) {
        return -1;
    }

    if (rc == 0) {
        aie_stopper_flush(&g->stopper, &s, &n);
        if (aie_gen_append(g, s, n) != 0) {
            return -1;
        }
    }

    return 0;
}


int
aie_gen_next(aie_gen_t *g, const float *logits, int *emitted)
{
    const char  *s;
    size_t       n;
    int          token, rc;

    g->text_len = 0;
    *emitted = -1;

    token = aie_sampler_sample(g->sampler, logits);

    if (!g->ignore_eos && aie_token_is_eog(g->model, token)) {
        g->finish = AIE_FINISH_STOP;
        if (aie_gen_flush(g) != 0) {
            g->finish = AIE_FINISH_ERROR;
        }
        return -1;
    }

    aie_sampler_accept(g->sampler, token);
    g->n_completion++;
    *emitted = token;

    s = aie_detok_push(g->detok, token, &n);
    rc = aie_stopper_push(&g->stopper, s, n, &s, &n);

    if (rc < 0 || aie_gen_append(g, s, n) != 0) {
        g->finish = AIE_FINISH_ERROR;
        return -1;
    }

    if (rc == 1) {
        g->finish = AIE_FINISH_STOP;
        return -1;
    }

    if (g->n_completion >= g->max_tokens) {
        g->finish = AIE_FINISH_LENGTH;
        if (aie_gen_flush(g) != 0) {
            g->finish = AIE_FINISH_ERROR;
        }
        return -1;
    }

    return token;
}


aie_finish_reason_t
aie_generate(aie_seq_t *seq, const aie_request_params_t *params,
    aie_text_handler_pt handler, void *data, aie_usage_t *usage, char *err,
    size_t errlen)
{
    aie_model_t          *model = aie_seq_model(seq);
    aie_gen_t             g;
    aie_finish_reason_t   finish;
    float                *logits;
    int                  *prompt, n_prompt, token, emitted;

    if (usage != NULL) {
        usage->prompt_tokens = 0;
        usage->completion_tokens = 0;
    }

    aie_model_err(err, errlen, "");

    n_prompt = aie_gen_prompt(model, params, &prompt, err, errlen);
    if (n_prompt < 0) {
        return AIE_FINISH_ERROR;
    }

    if (n_prompt > aie_seq_n_ctx(seq)) {
        aie_model_err(err, errlen, "request: the prompt has %d tokens, the "
                      "context %d", n_prompt, aie_seq_n_ctx(seq));
        free(prompt);
        return AIE_FINISH_ERROR;
    }

    logits = malloc((size_t) model->config.vocab_size * sizeof(float));

    if (logits == NULL
        || aie_gen_init(&g, model, params, prompt, n_prompt,
                        aie_seq_n_ctx(seq)) != 0)
    {
        aie_model_err(err, errlen, "request: out of memory");
        free(prompt);
        free(logits);
        return AIE_FINISH_ERROR;
    }

    aie_seq_reset(seq);
    token = aie_eval(seq, prompt, n_prompt, logits) == 0 ? 0 : -1;

    if (token < 0) {
        g.finish = AIE_FINISH_ERROR;
        aie_model_err(err, errlen, "request: evaluation failed");
    }

    while (token >= 0) {
        token = aie_gen_next(&g, logits, &emitted);

        if (g.text_len > 0 && handler != NULL
            && handler(data, g.text, g.text_len) != 0)
        {
            g.finish = AIE_FINISH_CANCELLED;
            break;
        }

        if (token >= 0 && aie_eval(seq, &token, 1, logits) != 0) {
            g.finish = AIE_FINISH_ERROR;
            aie_model_err(err, errlen, "request: evaluation failed");
            break;
        }
    }

    if (usage != NULL) {
        usage->prompt_tokens = n_prompt;
        usage->completion_tokens = g.n_completion;
    }

    finish = g.finish;
    aie_gen_free(&g);
    free(prompt);
    free(logits);

    return finish;
}
