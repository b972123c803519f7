/*
 * aigw-engine: run a prompt or benchmark a model through the engine's
 * public API, the same one the NGINX module uses.
 *
 *   aigw-engine run -m model [-z tokenizer] -p "prompt" -n 64 [-t temp]
 *                   [--top-p P] [--top-k K] [--seed N] [--threads N]
 *   aigw-engine bench -m model [-z tokenizer] -b BATCH -n N [-P PROMPT_LEN]
 *                   [--threads N] [--kv f32|f16]
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "aigw_engine.h"


typedef struct {
    const char  *cmd;
    const char  *model;
    const char  *tokenizer;
    const char  *prompt;
    int          n;
    int          batch;
    int          prompt_len;
    int          threads;
    int          kv_f16;
    float        temperature;
    float        top_p;
    int          top_k;
    uint64_t     seed;
} aie_cli_args_t;


static double
aie_cli_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}


static void
aie_cli_usage(void)
{
    fprintf(stderr,
        "usage: aigw-engine run -m MODEL [-z TOKENIZER] [-p PROMPT] [-n N]\n"
        "                       [-t TEMP] [--top-p P] [--top-k K]\n"
        "                       [--seed N] [--threads N]\n"
        "       aigw-engine bench -m MODEL [-z TOKENIZER] [-b BATCH] [-n N]\n"
        "                       [-P PROMPT_TOKENS] [--threads N]\n"
        "                       [--kv f32|f16]\n"
        "       aigw-engine info -m MODEL [-z TOKENIZER]\n");
}


static int
aie_cli_parse(int argc, char **argv, aie_cli_args_t *a)
{
    int          i;
    const char  *opt, *val;

    memset(a, 0, sizeof(aie_cli_args_t));
    a->prompt = "";
    a->n = 64;
    a->batch = 1;
    a->prompt_len = 64;
    a->threads = 1;
    a->top_p = 1.0f;

    if (argc < 2) {
        return -1;
    }

    a->cmd = argv[1];

    for (i = 2; i < argc; i++) {
        opt = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "aigw-engine: %s needs a value\n", opt);
            return -1;
        }
        val = argv[++i];

        if (strcmp(opt, "-m") == 0) {
            a->model = val;
        } else if (strcmp(opt, "-z") == 0) {
            a->tokenizer = val;
        } else if (strcmp(opt, "-p") == 0) {
            a->prompt = val;
        } else if (strcmp(opt, "-n") == 0) {
            a->n = atoi(val);
        } else if (strcmp(opt, "-b") == 0) {
            a->batch = atoi(val);
        } else if (strcmp(opt, "-P") == 0) {
            a->prompt_len = atoi(val);
        } else if (strcmp(opt, "-t") == 0) {
            a->temperature = strtof(val, NULL);
        } else if (strcmp(opt, "--top-p") == 0) {
            a->top_p = strtof(val, NULL);
        } else if (strcmp(opt, "--top-k") == 0) {
            a->top_k = atoi(val);
        } else if (strcmp(opt, "--seed") == 0) {
            a->seed = strtoull(val, NULL, 10);
        } else if (strcmp(opt, "--threads") == 0) {
            a->threads = atoi(val);
        } else if (strcmp(opt, "--kv") == 0) {
            if (strcmp(val, "f16") != 0 && strcmp(val, "f32") != 0) {
                fprintf(stderr, "aigw-engine: --kv is f32 or f16\n");
                return -1;
            }
            a->kv_f16 = strcmp(val, "f16") == 0;
        } else {
            fprintf(stderr, "aigw-engine: unknown option %s\n", opt);
            return -1;
        }
    }

    if (a->model == NULL || a->n < 1 || a->batch < 1 || a->threads < 1
        || a->prompt_len < 1)
    {
        return -1;
    }

    return 0;
}


static int
aie_cli_print(void *data, const char *text, size_t len)
{
    (void) data;

    fwrite(text, 1, len, stdout);
    fflush(stdout);

    return 0;
}


static int
aie_cli_run(aie_model_t *model, const aie_cli_args_t *a)
{
    aie_request_params_t  rp;
    aie_seq_t            *seq;
    aie_usage_t           usage;
    aie_finish_reason_t   finish;
    char                  err[256];
    double                t0, t1;

    if (aie_model_set_threads(model, a->threads) != 0) {
        fprintf(stderr, "aigw-engine: cannot start threads\n");
        return 1;
    }

    seq = aie_seq_new(model, 0);
    if (seq == NULL) {
        fprintf(stderr, "aigw-engine: out of memory\n");
        return 1;
    }

    aie_request_params_default(&rp);
    rp.prompt = a->prompt;
    rp.prompt_len = strlen(a->prompt);
    rp.max_tokens = a->n;
    rp.sampling.temperature = a->temperature;
    rp.sampling.top_p = a->top_p;
    rp.sampling.top_k = a->top_k;
    rp.sampling.seed = a->seed;

    fputs(a->prompt, stdout);

    t0 = aie_cli_now();
    finish = aie_generate(seq, &rp, aie_cli_print, NULL, &usage, err,
                          sizeof(err));
    t1 = aie_cli_now();

    printf("\n");

    if (finish == AIE_FINISH_ERROR) {
        fprintf(stderr, "aigw-engine: %s\n", err);
        aie_seq_free(seq);
        return 1;
    }

    fprintf(stderr, "finish: %s, prompt tokens: %d, completion tokens: %d, "
            "%.1f tokens/s\n", aie_finish_reason_name(finish),
            usage.prompt_tokens, usage.completion_tokens,
            (usage.prompt_tokens + usage.completion_tokens) / (t1 - t0));

    aie_seq_free(seq);

    return 0;
}


/* submits batch requests and waits, on the eventfd, until all are done */
static int
aie_cli_wave(aie_engine_t *engine, int efd, aie_request_params_t *rp,
    int batch, int *tokens_out)
{
    aie_request_t  **req;
    aie_delta_t      d;
    aie_usage_t      usage;
    struct pollfd    pfd;
    uint64_t         count;
    int              i, left, total = 0, rc = 0;

    req = calloc((size_t) batch, sizeof(aie_request_t *));
    if (req == NULL) {
        return -1;
    }

    for (i = 0; i < batch; i++) {
        req[i] = aie_engine_submit(engine, rp);
        if (req[i] == NULL) {
            rc = -1;
        }
    }

    left = batch;
    pfd.fd = efd;
    pfd.events = POLLIN;

    while (left > 0 && rc == 0) {
        if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
            rc = -1;
            break;
        }

        if (read(efd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
            rc = -1;
            break;
        }

        for (i = 0; i < batch; i++) {
            if (req[i] == NULL) {
                continue;
            }

            while (aie_request_poll(req[i], &d) == 1) {
                if (d.finish == AIE_FINISH_NONE) {
                    continue;
                }

                if (d.finish == AIE_FINISH_ERROR) {
                    fprintf(stderr, "aigw-engine: %s\n",
                            aie_request_error(req[i]));
                    rc = -1;
                }

                aie_request_usage(req[i], &usage);
                total += usage.completion_tokens;
                aie_request_release(req[i]);
                req[i] = NULL;
                left--;
                break;
            }
        }
    }

    for (i = 0; i < batch; i++) {
        if (req[i] != NULL) {
            aie_request_release(req[i]);
        }
    }

    free(req);
    *tokens_out = total;

    return rc;
}


static int
aie_cli_bench(aie_model_t *model, const aie_cli_args_t *a)
{
    aie_engine_params_t   ep;
    aie_request_params_t  rp;
    aie_model_info_t      info;
    aie_engine_t         *engine;
    char                  err[256];
    int                   efd, *prompt, i, n_prompt, generated, rc, waves;
    long                  total;
    double                t0, t1, t2, prompt_rate;

    aie_model_info(model, &info);

    n_prompt = a->prompt_len;
    if (n_prompt + 1 > info.n_ctx) {
        n_prompt = info.n_ctx - 1;
    }

    prompt = malloc((size_t) n_prompt * sizeof(int));
    if (prompt == NULL) {
        return 1;
    }

    /* a fixed pseudo-random prompt: benchmarks need no meaning */
    for (i = 0; i < n_prompt; i++) {
        prompt[i] = (int) ((1103515245u * (unsigned) (i + 1) + 12345u)
                           % (unsigned) info.vocab_size);
    }

    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd == -1) {
        free(prompt);
        return 1;
    }

    aie_engine_params_default(&ep);
    ep.n_threads = a->threads;
    ep.max_batch = a->batch;
    ep.kv_f16 = a->kv_f16;
    ep.notify_fd = efd;

    engine = aie_engine_start(model, &ep, err, sizeof(err));
    if (engine == NULL) {
        fprintf(stderr, "aigw-engine: %s\n", err);
        close(efd);
        free(prompt);
        return 1;
    }

    aie_request_params_default(&rp);
    rp.sampling.temperature = 0.0f;
    rp.ignore_eos = 1;

    /* prompt processing: each request stops after its first token */
    rp.prompt_tokens = prompt;
    rp.n_prompt_tokens = n_prompt;
    rp.max_tokens = 1;

    /* warm up (threads, caches, page faults) before measuring */
    rc = aie_cli_wave(engine, efd, &rp, a->batch, &generated);

    /* repeat each phase for half a second: one wave is only milliseconds */
    waves = 0;
    t0 = aie_cli_now();
    do {
        rc |= aie_cli_wave(engine, efd, &rp, a->batch, &generated);
        waves++;
        t1 = aie_cli_now();
    } while (rc == 0 && t1 - t0 < 0.5);

    prompt_rate = (double) waves * a->batch * n_prompt / (t1 - t0);

    /* generation: one prompt token, then n tokens each */
    rp.n_prompt_tokens = 1;
    rp.max_tokens = a->n < info.n_ctx ? a->n : info.n_ctx;

    total = 0;
    do {
        rc |= aie_cli_wave(engine, efd, &rp, a->batch, &generated);
        total += generated;
        t2 = aie_cli_now();
    } while (rc == 0 && t2 - t1 < 0.5);

    if (rc == 0) {
        printf("model %s (%s, %s), batch %d, threads %d\n", info.name,
               info.format, info.weight_type, a->batch, a->threads);
        printf("prompt:     %d x %d tokens, %.0f tokens/s\n", a->batch,
               n_prompt, prompt_rate);
        printf("generation: %d x %d tokens, %.0f tokens/s\n", a->batch,
               rp.max_tokens, total / (t2 - t1));
    }

    aie_engine_stop(engine);
    close(efd);
    free(prompt);

    return rc == 0 ? 0 : 1;
}


int
main(int argc, char **argv)
{
    aie_cli_args_t     a;
    aie_model_t       *model;
    aie_model_info_t   info;
    char               err[256];
    int                rc;

    if (aie_cli_parse(argc, argv, &a) != 0) {
        aie_cli_usage();
        return 2;
    }

    model = aie_model_load(a.model, a.tokenizer, err, sizeof(err));
    if (model == NULL) {
        fprintf(stderr, "aigw-engine: %s\n", err);
        return 1;
    }

    if (strcmp(a.cmd, "run") == 0) {
        rc = aie_cli_run(model, &a);

    } else if (strcmp(a.cmd, "bench") == 0) {
        rc = aie_cli_bench(model, &a);

    } else if (strcmp(a.cmd, "info") == 0) {
        aie_model_info(model, &info);
        printf("name %s\nformat %s\nweights %s\nn_ctx %d\nvocab %d\n"
               "dim %d\nhidden %d\nlayers %d\nheads %d\nkv_heads %d\n",
               info.name, info.format, info.weight_type, info.n_ctx,
               info.vocab_size, info.dim, info.hidden_dim, info.n_layers,
               info.n_heads, info.n_kv_heads);
        rc = 0;

    } else {
        aie_cli_usage();
        rc = 2;
    }

    aie_model_free(model);

    return rc;
}
