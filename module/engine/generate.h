/*
 * One request's generation state, shared by aie_generate() and the engine:
 * sampling, detokenizing, stop sequences, limits and usage.
 */

#ifndef AIE_GENERATE_H
#define AIE_GENERATE_H

#include "model.h"
#include "stream.h"


typedef struct {
    const aie_model_t    *model;
    aie_sampler_t        *sampler;
    aie_detok_t          *detok;
    aie_stopper_t         stopper;
    int                   max_tokens;
    int                   ignore_eos;
    int                   n_prompt;
    int                   n_completion;
    aie_finish_reason_t   finish;
    char                 *text;       /* text of the last step */
    size_t                text_len;
    size_t                text_cap;
} aie_gen_t;


/*
 * Tokenizes the request's prompt (or copies its tokens) into a malloc'ed
 * array.  Returns the count, or -1 with a message.
 */
int aie_gen_prompt(const aie_model_t *model,
    const aie_request_params_t *params, int **tokens, char *err,
    size_t errlen);

/* n_ctx bounds the completion: prompt plus generated tokens must fit */
int aie_gen_init(aie_gen_t *g, const aie_model_t *model,
    const aie_request_params_t *params, const int *prompt, int n_prompt,
    int n_ctx);
void aie_gen_free(aie_gen_t *g);

/*
 * Samples from logits.  Returns the token to feed next, or -1 once
 * g->finish is set.  g->text holds the text this step releases; *emitted
 * is the token to report (-1 for EOS).
 */
int aie_gen_next(aie_gen_t *g, const float *logits, int *emitted);

#endif /* AIE_GENERATE_H */
