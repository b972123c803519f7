/*
 * Model loading: map the file read-only, hand it to the loader of its
 * format, check the result, and answer questions about the model.
 */

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "model.h"


void
aie_model_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
}


static int
aie_gguf_tensor(const aie_gguf_t *gguf, const char *name, aie_tensor_t *t,
    int optional, char *err, size_t errlen)
{
    const aie_gguf_tensor_t  *gt = aie_gguf_find_tensor(gguf, name);

    if (gt == NULL) {
        if (!optional) {
            aie_model_err(err, errlen, "gguf: tensor \"%s\" is missing",
                          name);
        }
        return -1;
    }

    if (gt->ne[2] != 1 || gt->ne[3] != 1) {
        aie_model_err(err, errlen, "gguf: tensor \"%s\" has more than two "
                      "dimensions", name);
        return -2;
    }

    t->type = (aie_type_t) gt->type;
    t->data = gt->data;
    t->cols = gt->ne[0];
    t->rows = gt->ne[1];
    t->row_size = aie_type_row_size(t->type, t->cols);

    return 0;
}


static int
aie_gguf_config_int(const aie_gguf_t *gguf, const char *arch,
    const char *key, int *out, int optional, char *err, size_t errlen)
{
    char     name[160];
    int64_t  v;
    int      rc;

    snprintf(name, sizeof(name), "%s.%s", arch, key);
    rc = aie_gguf_get_int(gguf, name, &v);

    if (rc == -1 && optional) {
        return 0;
    }

    if (rc != 0 || v <= 0 || v > (1 << 24)) {
        aie_model_err(err, errlen, "gguf: %s %s", name,
                      rc == -1 ? "is missing" : "is not a valid count");
        return -1;
    }

    *out = (int) v;
    return 0;
}


int
aie_model_load_gguf(aie_model_t *model, char *err, size_t errlen)
{
    aie_config_t  *c = &model->config;
    aie_gguf_t     gguf;
    const char    *s;
    size_t         len;
    char           arch[64], key[160], name[96];
    int            l, rc, ok;
    int64_t        file_type;

    if (aie_gguf_parse(&gguf, model->map, model->map_size, err, errlen)
        != 0)
    {
        return -1;
    }

    ok = 0;

    if (aie_gguf_get_str(&gguf, "general.architecture", &s, &len) != 0) {
        aie_model_err(err, errlen, "gguf: general.architecture is missing");
        goto done;
    }

    if (!(len == 5 && memcmp(s, "llama", 5) == 0)) {
        aie_model_err(err, errlen, "gguf: architecture \"%.*s\" is not "
                      "supported (llama is)", (int) (len < 32 ? len : 32), s);
        goto done;
    }

    snprintf(arch, sizeof(arch), "%.*s", (int) len, s);

    if (aie_gguf_get_str(&gguf, "general.name", &s, &len) == 0) {
        snprintf(model->name, sizeof(model->name), "%.*s",
                 (int) (len < sizeof(model->name) - 1
                        ? len : sizeof(model->name) - 1), s);
    }

    if (aie_gguf_config_int(&gguf, arch, "embedding_length", &c->dim, 0,
                            err, errlen) != 0
        || aie_gguf_config_int(&gguf, arch, "feed_forward_length",
                               &c->hidden_dim, 0, err, errlen) != 0
        || aie_gguf_config_int(&gguf, arch, "block_count", &c->n_layers, 0,
                               err, errlen) != 0
        || aie_gguf_config_int(&gguf, arch, "attention.head_count",
                               &c->n_heads, 0, err, errlen) != 0
        || aie_gguf_config_int(&gguf, arch, "context_length", &c->n_ctx, 0,
                               err, errlen) != 0)
    {
        goto done;
    }

    c->n_kv_heads = c->n_heads;
    c->vocab_size = 0;
    c->rope_dim = 0;
    c->rope_theta = 10000.0f;
    c->rms_eps = 1e-5f;

    if (aie_gguf_config_int(&gguf, arch, "attention.head_count_kv",
                            &c->n_kv_heads, 1, err, errlen) != 0
        || aie_gguf_config_int(&gguf, arch, "rope.dimension_count",
                               &c->rope_dim, 1, err, errlen) != 0
        || aie_gguf_config_int(&gguf, arch, "vocab_size", &c->vocab_size, 1,
                               err, errlen) != 0)
    {
        goto done;
    }

    snprintf(key, sizeof(key), "%s.rope.freq_base", arch);
    if (aie_gguf_get_float(&gguf, key, &c->rope_theta) == -2) {
        aie_model_err(err, errlen, "gguf: %s is not a float", key);
        goto done;
    }

    snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon", arch);
    if (aie_gguf_get_float(&gguf, key, &c->rms_eps) == -2) {
        aie_model_err(err, errlen, "gguf: %s is not a float", key);
        goto done;
    }

    if (c->n_layers > 4096) {
        aie_model_err(err, errlen, "gguf: %d layers", c->n_layers);
        goto done;
    }

    model->layers = calloc((size_t) c->n_layers, sizeof(aie_layer_t));
    if (model->layers == NULL) {
        aie_model_err(err, errlen, "gguf: out of memory");
        goto done;
    }

    if (aie_gguf_tensor(&gguf, "token_embd.weight", &model->token_embd, 0,
                        err, errlen) != 0
        || aie_gguf_tensor(&gguf, "output_norm.weight", &model->output_norm,
                           0, err, errlen) != 0)
    {
        goto done;
    }

    rc = aie_gguf_tensor(&gguf, "output.weight", &model->output, 1, err,
                         errlen);
    if (rc == -2) {
        goto done;
    }

    if (rc == -1) {
        /* tied embeddings: the classifier is the embedding table */
        model->output = model->token_embd;
    }

    if (c->vocab_size == 0) {
        c->vocab_size = (int) model->token_embd.rows;
    }

    for (l = 0; l < c->n_layers; l++) {
        aie_layer_t  *w = &model->layers[l];

#define aie_take(field, suffix)                                             \
        snprintf(name, sizeof(name), "blk.%d." suffix, l);                  \
        if (aie_gguf_tensor(&gguf, name, &w->field, 0, err, errlen) != 0) { \
            goto done;                                                      \
        }

        aie_take(attn_norm, "attn_norm.weight");
        aie_take(wq, "attn_q.weight");
        aie_take(wk, "attn_k.weight");
        aie_take(wv, "attn_v.weight");
        aie_take(wo, "attn_output.weight");
        aie_take(ffn_norm, "ffn_norm.weight");
        aie_take(w_gate, "ffn_gate.weight");
        aie_take(w_down, "ffn_down.weight");
        aie_take(w_up, "ffn_up.weight");

#undef aie_take
    }

    model->weight_bytes = model->map_size - gguf.data_offset;
    model->format = "gguf";
    model->weight_type = aie_type_name(model->layers[0].wq.type);

    if (aie_gguf_get_int(&gguf, "general.file_type", &file_type) == 0) {
        model->weight_type = file_type == 0 ? "F32" : file_type == 1 ? "F16"
                             : file_type == 2 ? "Q4_0"
                             : file_type == 7 ? "Q8_0" : "mixed";
    }

    model->tokenizer = aie_tokenizer_load_gguf(&gguf, err, errlen);
    if (model->tokenizer == NULL) {
        goto done;
    }

    ok = 1;

done:

    aie_gguf_free(&gguf);
    return ok ? 0 : -1;
}


static int
aie_check_tensor(const aie_tensor_t *t, const char *what, int64_t rows,
    int64_t cols, int f32_only, char *err, size_t errlen)
{
    if (t->rows != rows || t->cols != cols) {
        aie_model_err(err, errlen, "model: %s is %lldx%lld, expected "
                      "%lldx%lld", what, (long long) t->rows,
                      (long long) t->cols, (long long) rows,
                      (long long) cols);
        return -1;
    }

    if (f32_only && t->type != AIE_TYPE_F32) {
        aie_model_err(err, errlen, "model: %s must be F32", what);
        return -1;
    }

    return 0;
}


int
aie_model_validate(aie_model_t *model, char *err, size_t errlen)
{
    aie_config_t  *c = &model->config;
    aie_layer_t   *w;
    int            l;
    char           what[64];

    if (c->dim <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0
        || c->dim % c->n_heads != 0 || c->n_heads % c->n_kv_heads != 0
        || c->dim > (1 << 20) || c->hidden_dim > (1 << 20))
    {
        aie_model_err(err, errlen, "model: inconsistent dimensions (dim %d, "
                      "heads %d, kv heads %d)", c->dim, c->n_heads,
                      c->n_kv_heads);
        return -1;
    }

    c->head_size = c->dim / c->n_heads;
    c->kv_dim = c->head_size * c->n_kv_heads;

    if (c->rope_dim == 0) {
        c->rope_dim = c->head_size;
    }

    if (c->rope_dim > c->head_size || c->rope_dim % 2 != 0
        || c->head_size % 2 != 0 || !(c->rope_theta > 0.0f)
        || !(c->rms_eps >= 0.0f))
    {
        aie_model_err(err, errlen, "model: bad rotary or norm parameters");
        return -1;
    }

    if (aie_check_tensor(&model->token_embd, "token_embd", c->vocab_size,
                         c->dim, 0, err, errlen) != 0
        || aie_check_tensor(&model->output, "output", c->vocab_size, c->dim,
                            0, err, errlen) != 0
        || aie_check_tensor(&model->output_norm, "output_norm", 1, c->dim, 1,
                            err, errlen) != 0)
    {
        return -1;
    }

    for (l = 0; l < c->n_layers; l++) {
        w = &model->layers[l];

#define aie_check(field, rows, cols, f32)                                   \
        snprintf(what, sizeof(what), "layer %d " #field, l);                \
        if (aie_check_tensor(&w->field, what, rows, cols, f32, err, errlen) \
            != 0)                                                           \
        {                                                                   \
            return -1;                                                      \
        }

        aie_check(attn_norm, 1, c->dim, 1);
        aie_check(wq, c->dim, c->dim, 0);
        aie_check(wk, c->kv_dim, c->dim, 0);
        aie_check(wv, c->kv_dim, c->dim, 0);
        aie_check(wo, c->dim, c->dim, 0);
        aie_check(ffn_norm, 1, c->dim, 1);
        aie_check(w_gate, c->hidden_dim, c->dim, 0);
        aie_check(w_up, c->hidden_dim, c->dim, 0);
        aie_check(w_down, c->dim, c->hidden_dim, 0);

#undef aie_check
    }

    if (model->tokenizer != NULL
        && model->tokenizer->n_vocab != c->vocab_size)
    {
        aie_model_err(err, errlen, "model: tokenizer has %d tokens, the "
                      "model %d", model->tokenizer->n_vocab, c->vocab_size);
        return -1;
    }

    return 0;
}


/*
 * Repacks one matrix into the arena and lets its mapped pages go: the fast
 * kernels read the packed copy, and what still reads the mapping (the
 * scalar reference, embedding rows, the rows after the last group of 16)
 * faults the pages back in from the page cache.
 */
static void
aie_model_pack_tensor(aie_model_t *model, aie_tensor_t *t, size_t *off)
{
    uintptr_t  start, end, page = (uintptr_t) sysconf(_SC_PAGESIZE);
    size_t     size = aie_cpu_pack_size(t);

    t->packed = NULL;

    if (size == 0) {
        return;
    }

    if (model->packed != NULL) {
        aie_cpu_pack_tensor(t, (char *) model->packed + *off);

        start = ((uintptr_t) t->data + page - 1) & ~(page - 1);
        end = ((uintptr_t) t->data + (size_t) (t->rows / 16 * 16)
                                     * t->row_size) & ~(page - 1);
        if (end > start) {
            (void) madvise((void *) start, end - start, MADV_DONTNEED);
        }
    }

    *off += size;
}


/*
 * The matmul weights, in the layout the CPU kernels read fastest and in
 * the order a forward pass reads them: one pass sizes the arena, the
 * second fills it.
 */
static int
aie_model_pack(aie_model_t *model)
{
    aie_layer_t  *w;
    size_t        off;
    int           pass, l;

    for (pass = 0; pass < 2; pass++) {
        off = 0;

        for (l = 0; l < model->config.n_layers; l++) {
            w = &model->layers[l];
            aie_model_pack_tensor(model, &w->wq, &off);
            aie_model_pack_tensor(model, &w->wk, &off);
            aie_model_pack_tensor(model, &w->wv, &off);
            aie_model_pack_tensor(model, &w->wo, &off);
            aie_model_pack_tensor(model, &w->w_gate, &off);
            aie_model_pack_tensor(model, &w->w_up, &off);
            aie_model_pack_tensor(model, &w->w_down, &off);
        }

        aie_model_pack_tensor(model, &model->output, &off);

        if (pass == 0) {
            if (off == 0) {
                return 0;
            }

            model->packed = aie_cpu_pack_alloc(off);
            if (model->packed == NULL) {
                return -1;
            }
            model->packed_size = off;
        }
    }

    return 0;
}


static void
aie_model_unpack(aie_model_t *model)
{
    aie_layer_t  *w;
    int           l;

    for (l = 0; model->layers != NULL && l < model->config.n_layers; l++) {
        w = &model->layers[l];
        w->wq.packed = NULL;
        w->wk.packed = NULL;
        w->wv.packed = NULL;
        w->wo.packed = NULL;
        w->w_gate.packed = NULL;
        w->w_up.packed = NULL;
        w->w_down.packed = NULL;
    }

    model->output.packed = NULL;

    aie_cpu_pack_free(model->packed, model->packed_size);
    model->packed = NULL;
    model->packed_size = 0;
}


aie_model_t *
aie_model_load(const char *path, const char *tokenizer_path, char *err,
    size_t errlen)
{
    aie_model_t  *model;
    struct stat   sb;
    const char   *base;
    int           fd, rc;

    aie_model_err(err, errlen, "model: no error");

    model = calloc(1, sizeof(aie_model_t));
    if (model == NULL) {
        aie_model_err(err, errlen, "model: out of memory");
        return NULL;
    }

    pthread_mutex_init(&model->backend_lock, NULL);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        aie_model_err(err, errlen, "model: cannot open \"%s\"", path);
        free(model);
        return NULL;
    }

    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 8) {
        aie_model_err(err, errlen, "model: \"%s\" is not a model file",
                      path);
        close(fd);
        free(model);
        return NULL;
    }

    model->map_size = (size_t) sb.st_size;
    model->map = mmap(NULL, model->map_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);

    if (model->map == MAP_FAILED) {
        aie_model_err(err, errlen, "model: cannot map \"%s\"", path);
        free(model);
        return NULL;
    }

    base = strrchr(path, '/');
    snprintf(model->name, sizeof(model->name), "%s",
             base != NULL ? base + 1 : path);

    if (memcmp(model->map, "GGUF", 4) == 0) {
        rc = aie_model_load_gguf(model, err, errlen);
    } else {
        rc = aie_model_load_llama2c(model, tokenizer_path, err, errlen);
    }

    if (rc == 0) {
        rc = aie_model_validate(model, err, errlen);
    }

    if (rc == 0 && aie_model_pack(model) != 0) {
        aie_model_err(err, errlen, "model: out of memory");
        rc = -1;
    }

    if (rc == 0) {
        model->backend = aie_cpu_backend_new(1);
        if (model->backend == NULL) {
            aie_model_err(err, errlen, "model: out of memory");
            rc = -1;
        }
    }

    if (rc != 0) {
        aie_model_free(model);
        return NULL;
    }

    return model;
}


void
aie_model_free(aie_model_t *model)
{
    if (model == NULL) {
        return;
    }

    if (model->backend != NULL) {
        model->backend->free(model->backend);
    }

    aie_model_unpack(model);
    aie_tokenizer_free(model->tokenizer);
    free(model->layers);

    if (model->map != NULL && model->map != MAP_FAILED) {
        munmap(model->map, model->map_size);
    }

    pthread_mutex_destroy(&model->backend_lock);
    free(model);
}


void
aie_model_info(const aie_model_t *model, aie_model_info_t *info)
{
    const aie_config_t  *c = &model->config;

    memset(info, 0, sizeof(aie_model_info_t));
    info->name = model->name;
    info->format = model->format;
    info->weight_type = model->weight_type;
    info->n_ctx = c->n_ctx;
    info->vocab_size = c->vocab_size;
    info->dim = c->dim;
    info->hidden_dim = c->hidden_dim;
    info->n_layers = c->n_layers;
    info->n_heads = c->n_heads;
    info->n_kv_heads = c->n_kv_heads;
    info->has_tokenizer = model->tokenizer != NULL;
    info->bos_id = model->tokenizer ? model->tokenizer->bos_id : -1;
    info->eos_id = model->tokenizer ? model->tokenizer->eos_id : -1;
    info->weight_bytes = model->weight_bytes;
}


int
aie_model_set_threads(aie_model_t *model, int n_threads)
{
    aie_backend_t  *be;

    be = aie_cpu_backend_new(n_threads);
    if (be == NULL) {
        return -1;
    }

    pthread_mutex_lock(&model->backend_lock);
    model->backend->free(model->backend);
    model->backend = be;
    pthread_mutex_unlock(&model->backend_lock);

    return 0;
}


const char *
aie_model_kernels(const aie_model_t *model)
{
    return model->backend != NULL ? model->backend->name : "none";
}


int
aie_tokenize(const aie_model_t *model, const char *text, size_t len,
    int add_bos, int *out, int max)
{
    if (model->tokenizer == NULL) {
        return -1;
    }

    return aie_tokenizer_encode(model->tokenizer, text, len, add_bos, out,
                                max);
}


const char *
aie_token_text(const aie_model_t *model, int token, size_t *len)
{
    if (model->tokenizer == NULL) {
        *len = 0;
        return "";
    }

    return aie_tokenizer_text(model->tokenizer, token, len);
}


int
aie_token_is_eog(const aie_model_t *model, int token)
{
    return model->tokenizer != NULL && token == model->tokenizer->eos_id;
}
