/*
 * aie-mkrandom: writes a GGUF v3 llama model with random weights, for
 * benchmarks that need a model of a given size (memory-bound decoding,
 * batching) and no trained weights.  The tokenizer is a synthetic
 * SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens,
 * then made-up pieces, so text always encodes (byte fallback).
 *
 *   aie-mkrandom -o model.gguf [--dim 768] [--layers 12] [--hidden 2048]
 *                [--heads 12] [--kv-heads 12] [--vocab 32000] [--ctx 1024]
 *                [--type q8_0|f32] [--seed N]
 *
 * The defaults make a ~110M-parameter llama (tied embeddings) in Q8_0,
 * about 117 MB.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "../quant.h"


typedef struct {
    int       dim, layers, hidden, heads, kv_heads, vocab, ctx;
    int       type;                 /* AIE_TYPE_Q8_0 or AIE_TYPE_F32 */
    uint64_t  seed;
} aie_mk_config_t;

typedef struct {
    char      name[64];
    int64_t   cols, rows;           /* ne[0], ne[1] */
    int       type;
    uint64_t  offset;
    size_t    size;
    float     scale;                /* weight magnitude */
} aie_mk_tensor_t;


static uint64_t  aie_mk_rng = 0x9E3779B97F4A7C15ull;

static uint64_t
aie_mk_next(void)
{
    aie_mk_rng ^= aie_mk_rng << 13;
    aie_mk_rng ^= aie_mk_rng >> 7;
    aie_mk_rng ^= aie_mk_rng << 17;
    return aie_mk_rng;
}


static void
w_u32(FILE *f, uint32_t v)
{
    fwrite(&v, 4, 1, f);
}


static void
w_u64(FILE *f, uint64_t v)
{
    fwrite(&v, 8, 1, f);
}


static void
w_str(FILE *f, const char *s, size_t len)
{
    w_u64(f, len);
    fwrite(s, 1, len, f);
}


static void
kv_str(FILE *f, const char *key, const char *val)
{
    w_str(f, key, strlen(key));
    w_u32(f, 8);                    /* string */
    w_str(f, val, strlen(val));
}


static void
kv_u32(FILE *f, const char *key, uint32_t val)
{
    w_str(f, key, strlen(key));
    w_u32(f, 4);                    /* uint32 */
    w_u32(f, val);
}


static void
kv_f32(FILE *f, const char *key, float val)
{
    w_str(f, key, strlen(key));
    w_u32(f, 6);                    /* float32 */
    fwrite(&val, 4, 1, f);
}


/* the made-up piece of token id: U+2581 and letters, unique per id */
static size_t
aie_mk_piece(int id, char *buf)
{
    size_t  n = 0;
    int     v = id - 259;

    if (v % 3 != 0) {
        memcpy(buf, "\xe2\x96\x81", 3);
        n = 3;
    }

    v /= 3;
    do {
        buf[n++] = (char) ('a' + v % 26);
        v /= 26;
    } while (v > 0);

    return n;
}


static void
aie_mk_usage(void)
{
    fprintf(stderr, "usage: aie-mkrandom -o FILE [--dim N] [--layers N] "
            "[--hidden N] [--heads N]\n"
            "                    [--kv-heads N] [--vocab N] [--ctx N] "
            "[--type q8_0|f32] [--seed N]\n");
}


int
main(int argc, char **argv)
{
    aie_mk_config_t   c = { 768, 12, 2048, 12, 12, 32000, 1024,
                            AIE_TYPE_Q8_0, 1 };
    aie_mk_tensor_t  *t;
    const char       *out = NULL;
    FILE             *f;
    char              piece[32], hex[8];
    int               i, l, n_t, nk, kv_dim, id;
    uint64_t          off, params = 0;
    size_t            len, b, j, nb, pad;
    float            *row, sc;
    aie_block_q8_0_t *blk;
    int32_t           ty;
    static const char zeros[64];

    for (i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            aie_mk_usage();
            return 2;
        }

        if (strcmp(argv[i], "-o") == 0) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--dim") == 0) {
            c.dim = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--layers") == 0) {
            c.layers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--hidden") == 0) {
            c.hidden = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--heads") == 0) {
            c.heads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--kv-heads") == 0) {
            c.kv_heads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--vocab") == 0) {
            c.vocab = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--ctx") == 0) {
            c.ctx = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--seed") == 0) {
            c.seed = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--type") == 0) {
            i++;
            c.type = strcmp(argv[i], "f32") == 0 ? AIE_TYPE_F32
                                                  : AIE_TYPE_Q8_0;
        } else {
            aie_mk_usage();
            return 2;
        }
    }

    if (out == NULL || c.dim <= 0 || c.dim % 32 || c.hidden % 32
        || c.heads <= 0 || c.dim % c.heads || c.kv_heads <= 0
        || c.heads % c.kv_heads || c.vocab < 260 || c.layers <= 0
        || c.ctx <= 0)
    {
        aie_mk_usage();
        return 2;
    }

    aie_mk_rng ^= c.seed * 0x2545F4914F6CDD1Dull;
    kv_dim = c.dim / c.heads * c.kv_heads;

    n_t = 2 + 9 * c.layers;
    t = calloc((size_t) n_t, sizeof(aie_mk_tensor_t));
    if (t == NULL) {
        return 1;
    }

#define aie_mk_add(nm, co, ro, ty_, sc_)                                    \
    do {                                                                    \
        snprintf(t[nk].name, sizeof(t[nk].name), "%s", nm);                 \
        t[nk].cols = (co);                                                  \
        t[nk].rows = (ro);                                                  \
        t[nk].type = (ty_);                                                 \
        t[nk].scale = (sc_);                                                \
        nk++;                                                               \
    } while (0)

    nk = 0;
    aie_mk_add("token_embd.weight", c.dim, c.vocab, c.type, 1.0f);
    aie_mk_add("output_norm.weight", c.dim, 1, AIE_TYPE_F32, 0.0f);

    for (l = 0; l < c.layers; l++) {
        char  nm[64];
        float ws = 1.0f / sqrtf((float) c.dim);
        float hs = 1.0f / sqrtf((float) c.hidden);

#define aie_mk_layer(sfx, co, ro, ty_, sc_)                                 \
        snprintf(nm, sizeof(nm), "blk.%d." sfx, l);                         \
        aie_mk_add(nm, co, ro, ty_, sc_)

        aie_mk_layer("attn_norm.weight", c.dim, 1, AIE_TYPE_F32, 0.0f);
        aie_mk_layer("attn_q.weight", c.dim, c.dim, c.type, ws);
        aie_mk_layer("attn_k.weight", c.dim, kv_dim, c.type, ws);
        aie_mk_layer("attn_v.weight", c.dim, kv_dim, c.type, ws);
        aie_mk_layer("attn_output.weight", c.dim, c.dim, c.type, ws);
        aie_mk_layer("ffn_norm.weight", c.dim, 1, AIE_TYPE_F32, 0.0f);
        aie_mk_layer("ffn_gate.weight", c.dim, c.hidden, c.type, ws);
        aie_mk_layer("ffn_up.weight", c.dim, c.hidden, c.type, ws);
        aie_mk_layer("ffn_down.weight", c.hidden, c.dim, c.type, hs);

#undef aie_mk_layer
    }

    off = 0;
    for (i = 0; i < nk; i++) {
        t[i].offset = off;
        t[i].size = aie_type_row_size(t[i].type, t[i].cols)
                    * (size_t) t[i].rows;
        off += (t[i].size + 31) & ~(uint64_t) 31;
        if (t[i].type != AIE_TYPE_F32 || t[i].rows > 1) {
            params += (uint64_t) t[i].cols * (uint64_t) t[i].rows;
        }
    }

    f = fopen(out, "wb");
    if (f == NULL) {
        perror(out);
        return 1;
    }

    fwrite("GGUF", 1, 4, f);
    w_u32(f, 3);
    w_u64(f, (uint64_t) nk);
    w_u64(f, 20);

    kv_str(f, "general.architecture", "llama");
    kv_str(f, "general.name", "random-llama");
    kv_u32(f, "general.file_type", c.type == AIE_TYPE_Q8_0 ? 7 : 0);
    kv_u32(f, "general.alignment", 32);
    kv_u32(f, "llama.context_length", (uint32_t) c.ctx);
    kv_u32(f, "llama.embedding_length", (uint32_t) c.dim);
    kv_u32(f, "llama.feed_forward_length", (uint32_t) c.hidden);
    kv_u32(f, "llama.block_count", (uint32_t) c.layers);
    kv_u32(f, "llama.attention.head_count", (uint32_t) c.heads);
    kv_u32(f, "llama.attention.head_count_kv", (uint32_t) c.kv_heads);
    kv_u32(f, "llama.rope.dimension_count", (uint32_t) (c.dim / c.heads));
    kv_f32(f, "llama.rope.freq_base", 10000.0f);
    kv_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_str(f, "tokenizer.ggml.model", "llama");
    kv_u32(f, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(f, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(f, "tokenizer.ggml.unknown_token_id", 0);

    /* tokens, scores, types */
    w_str(f, "tokenizer.ggml.tokens", 21);
    w_u32(f, 9);
    w_u32(f, 8);
    w_u64(f, (uint64_t) c.vocab);
    for (id = 0; id < c.vocab; id++) {
        if (id < 3) {
            const char  *sp[] = { "<unk>", "<s>", "</s>" };
            w_str(f, sp[id], strlen(sp[id]));
        } else if (id < 259) {
            snprintf(hex, sizeof(hex), "<0x%02X>", id - 3);
            w_str(f, hex, 6);
        } else {
            len = aie_mk_piece(id, piece);
            w_str(f, piece, len);
        }
    }

    w_str(f, "tokenizer.ggml.scores", 21);
    w_u32(f, 9);
    w_u32(f, 6);
    w_u64(f, (uint64_t) c.vocab);
    for (id = 0; id < c.vocab; id++) {
        sc = id < 259 ? 0.0f : -(float) (id - 259);
        fwrite(&sc, 4, 1, f);
    }

    w_str(f, "tokenizer.ggml.token_type", 25);
    w_u32(f, 9);
    w_u32(f, 5);
    w_u64(f, (uint64_t) c.vocab);
    for (id = 0; id < c.vocab; id++) {
        ty = id == 0 ? 2 : id < 3 ? 3 : id < 259 ? 6 : 1;
        fwrite(&ty, 4, 1, f);
    }

    for (i = 0; i < nk; i++) {
        w_str(f, t[i].name, strlen(t[i].name));
        w_u32(f, t[i].rows > 1 ? 2 : 1);
        w_u64(f, (uint64_t) t[i].cols);
        if (t[i].rows > 1) {
            w_u64(f, (uint64_t) t[i].rows);
        }
        w_u32(f, (uint32_t) t[i].type);
        w_u64(f, t[i].offset);
    }

    pad = (32 - (size_t) ftell(f) % 32) % 32;
    fwrite(zeros, 1, pad, f);

    row = malloc((size_t) (c.dim > c.hidden ? c.dim : c.hidden)
                 * sizeof(float));
    blk = malloc((size_t) (c.dim > c.hidden ? c.dim : c.hidden) / 32
                 * sizeof(aie_block_q8_0_t));
    if (row == NULL || blk == NULL) {
        return 1;
    }

    off = 0;
    for (i = 0; i < nk; i++) {
        for (int64_t r = 0; r < t[i].rows; r++) {
            if (t[i].scale == 0.0f) {
                for (j = 0; j < (size_t) t[i].cols; j++) {
                    row[j] = 1.0f;
                }
                fwrite(row, sizeof(float), (size_t) t[i].cols, f);
                continue;
            }

            if (t[i].type == AIE_TYPE_F32) {
                for (j = 0; j < (size_t) t[i].cols; j++) {
                    row[j] = ((float) (aie_mk_next() >> 40) / 16777216.0f
                              * 2.0f - 1.0f) * 1.7f * t[i].scale;
                }
                fwrite(row, sizeof(float), (size_t) t[i].cols, f);
                continue;
            }

            /* Q8_0: random bytes, one scale per block (uniform, std ~ scale) */
            nb = (size_t) t[i].cols / 32;
            for (b = 0; b < nb; b++) {
                uint64_t  v = 0;

                blk[b].d = aie_fp32_to_fp16(t[i].scale * 1.7f / 127.0f);
                for (j = 0; j < 32; j++) {
                    if (j % 8 == 0) {
                        v = aie_mk_next();
                    }
                    blk[b].qs[j] = (int8_t) ((int) (v & 0xFF) % 255 - 127);
                    v >>= 8;
                }
            }
            fwrite(blk, sizeof(aie_block_q8_0_t), nb, f);
        }

        pad = (32 - t[i].size % 32) % 32;
        fwrite(zeros, 1, pad, f);
    }

    free(row);
    free(blk);

    if (fclose(f) != 0) {
        perror(out);
        return 1;
    }

    printf("%s: llama dim %d, %d layers, hidden %d, %d/%d heads, vocab %d, "
           "%.1fM parameters, %s\n", out, c.dim, c.layers, c.hidden,
           c.heads, c.kv_heads, c.vocab, (double) params / 1e6,
           c.type == AIE_TYPE_Q8_0 ? "Q8_0" : "F32");

    free(t);
    return 0;
}
