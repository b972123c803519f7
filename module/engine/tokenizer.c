/*
 * Tokenizer.  Encoding follows llama.cpp's SentencePiece BPE: the text (with
 * a dummy prefix space) is split into UTF-8 characters kept in a linked
 * list; every adjacent pair whose concatenation is a token goes into a
 * priority queue keyed by the token's score; the best pair is merged and its
 * neighbours' pairs queued, stale entries being skipped when popped.  That
 * is O(n log n) instead of llama2.c's rescan of all pairs after each merge.
 * Characters left without a token fall back to <0xXX> byte tokens.
 */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"


typedef struct {
    int          prev;
    int          next;
    const char  *text;
    int          n;          /* 0 once merged into its left neighbour */
    int          id;         /* the token with this text, or -1 */
} aie_symbol_t;

typedef struct {
    int    left;
    int    right;
    float  score;
    int    size;
    int    id;
} aie_bigram_t;

typedef struct {
    aie_bigram_t  *items;
    int            n;
} aie_bigram_heap_t;

/* for spans longer than AIE_SMALL_SPAN only, allocated on the first */
typedef struct {
    aie_symbol_t       *sym;
    aie_bigram_heap_t   heap;
    size_t              cap;    /* bytes of span they hold */
} aie_scratch_t;

/*
 * Words seen earlier in the same text, with their tokens: English repeats
 * its words, and a hit costs a hash and a memcmp instead of the merges.
 */
typedef struct {
    uint32_t     hash;
    uint32_t     pos;       /* where the word is in the text */
    uint32_t     first;     /* its tokens, in the cache's tokens */
    uint16_t     len;       /* 0: an empty slot */
    uint16_t     n;
} aie_word_t;

typedef struct {
    const char  *text;
    aie_word_t  *words;     /* open addressing */
    uint32_t     mask;      /* slots - 1 */
    int         *tokens;
    int          n_tokens;
    int          cap_tokens;
} aie_word_cache_t;

#define AIE_WORD_MAX_SLOTS  65536   /* one per 16 bytes of text, up to this */
#define AIE_WORD_MAX_LEN    48      /* longer words are not cached */
#define AIE_WORD_MIN_TEXT   1024    /* shorter texts go without a cache */
#define AIE_WORD_PROBES     8


static void
aie_tok_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
}


static uint32_t
aie_tok_hash(const char *s, size_t len)
{
    uint32_t  h = 2166136261u;
    size_t    i;

    for (i = 0; i < len; i++) {
        h = (h ^ (uint8_t) s[i]) * 16777619u;
    }

    return h;
}


static inline uint64_t
aie_load64(const char *s)
{
    uint64_t  w;

    memcpy(&w, s, 8);
    return w;
}


/*
 * The last n (< 8) bytes of a word as one number, by loads that stay in
 * it (overlapping ones): no byte-wise copy through the stack, which would
 * stall the load that reads it back.
 */
static inline uint64_t
aie_load_tail(const char *s, size_t n)
{
    uint32_t  lo, hi;

    if (n >= 4) {
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        return (uint64_t) hi << 32 | lo;
    }

    if (n > 0) {
        return (uint64_t) (uint8_t) s[0] | (uint64_t) (uint8_t) s[n / 2] << 8
               | (uint64_t) (uint8_t) s[n - 1] << 16;
    }

    return 0;
}


/* a word's hash for the cache: eight bytes at a time */
static uint32_t
aie_word_hash(const char *s, size_t len)
{
    uint64_t  h = len * 0x9e3779b97f4a7c15ull;
    size_t    i;

    for (i = 0; i + 8 <= len; i += 8) {
        h = (h ^ aie_load64(s + i)) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }

    h = (h ^ aie_load_tail(s + i, len - i)) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
    h *= 0xc4ceb9fe1a85ec53ull;
    return (uint32_t) (h >> 32);
}


/* memcmp(a, b, len) == 0 for a short word, without a call */
static inline int
aie_word_eq(const char *a, const char *b, size_t len)
{
    size_t  i;

    for (i = 0; i + 8 <= len; i += 8) {
        if (aie_load64(a + i) != aie_load64(b + i)) {
            return 0;
        }
    }

    return aie_load_tail(a + i, len - i) == aie_load_tail(b + i, len - i);
}


static aie_tokenizer_t *
aie_tokenizer_alloc(int n_vocab, size_t text_cap)
{
    aie_tokenizer_t  *tok;
    int               i;

    tok = calloc(1, sizeof(aie_tokenizer_t));
    if (tok == NULL) {
        return NULL;
    }

    tok->n_vocab = n_vocab;
    tok->text = malloc(text_cap + 1);
    tok->text_off = calloc((size_t) n_vocab, sizeof(uint32_t));
    tok->text_len = calloc((size_t) n_vocab, sizeof(uint32_t));
    tok->scores = calloc((size_t) n_vocab, sizeof(float));
    tok->types = calloc((size_t) n_vocab, 1);

    if (tok->text == NULL || tok->text_off == NULL || tok->text_len == NULL
        || tok->scores == NULL || tok->types == NULL)
    {
        aie_tokenizer_free(tok);
        return NULL;
    }

    for (i = 0; i < 256; i++) {
        tok->byte_token[i] = -1;
    }

    tok->bos_id = 1;
    tok->eos_id = 2;
    tok->unk_id = 0;
    tok->add_space_prefix = 1;

    return tok;
}


static int
aie_tok_parse_byte(const char *s, size_t len)
{
    int  hi, lo;

    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') {
        return -1;
    }

#define aie_hexval(c)                                                       \
    ((c) >= '0' && (c) <= '9' ? (c) - '0'                                   \
     : (c) >= 'A' && (c) <= 'F' ? (c) - 'A' + 10                            \
     : (c) >= 'a' && (c) <= 'f' ? (c) - 'a' + 10 : -1)

    hi = aie_hexval(s[3]);
    lo = aie_hexval(s[4]);

#undef aie_hexval

    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}


/*
 * Stores token id's text at *used in tok->text.  Byte tokens become their
 * byte, U+2581 becomes a space, control and unknown tokens decode to "".
 */
static void
aie_tokenizer_set(aie_tokenizer_t *tok, int id, const char *piece,
    size_t len, float score, int type, size_t *used)
{
    char    *dst = tok->text + *used;
    size_t   i, n = 0;
    int      byte;

    byte = aie_tok_parse_byte(piece, len);

    if (type == 0) {
        /* no types in the file: guess them the way llama2.c's ids are laid */
        type = byte >= 0 ? AIE_TOKEN_BYTE
               : id == tok->unk_id ? AIE_TOKEN_UNKNOWN
               : id == tok->bos_id || id == tok->eos_id ? AIE_TOKEN_CONTROL
               : AIE_TOKEN_NORMAL;
    }

    if (type == AIE_TOKEN_BYTE && byte < 0) {
        type = AIE_TOKEN_NORMAL;
    }

    tok->types[id] = (uint8_t) type;
    tok->scores[id] = score == score ? score : -INFINITY;  /* NaN: never */
    tok->text_off[id] = (uint32_t) *used;

    switch (type) {
    case AIE_TOKEN_BYTE:
        dst[n++] = (char) byte;
        if (tok->byte_token[byte] < 0) {
            tok->byte_token[byte] = id;
        }
        break;

    case AIE_TOKEN_NORMAL:
    case AIE_TOKEN_USER_DEFINED:
        for (i = 0; i < len; i++) {
            if (i + 2 < len && memcmp(piece + i, "\xe2\x96\x81", 3) == 0) {
                dst[n++] = ' ';
                i += 2;
            } else {
                dst[n++] = piece[i];
            }
        }
        break;

    default:
        break;
    }

    tok->text_len[id] = (uint32_t) n;
    *used += n;
}


static int
aie_tokenizer_build_map(aie_tokenizer_t *tok)
{
    uint32_t     size = 16, h, hash;
    int          id;
    const char  *s;

    while (size < (uint32_t) tok->n_vocab * 2) {
        size <<= 1;
    }

    tok->map = calloc(size, sizeof(int32_t));
    tok->map_hash = calloc(size, sizeof(uint32_t));
    if (tok->map == NULL || tok->map_hash == NULL) {
        return -1;
    }

    tok->map_mask = size - 1;

    /*
     * A merge can never join two bytes that no token holds side by side,
     * so the text can be cut there and merged span by span with the same
     * result (small merges that stay in L1, and spans that repeat).  Cuts
     * go only before ASCII bytes, which never continue a character.  With
     * llama's vocabularies a space after a non-space is such a cut
     * (split_words): words; so are most punctuation marks and new lines.
     */
    tok->split_words = 1;
    memset(tok->joined, 0, sizeof(tok->joined));

    for (id = 0; id < tok->n_vocab; id++) {
        uint32_t  i, n = tok->text_len[id];
        uint8_t   a, b;

        if (tok->types[id] != AIE_TOKEN_NORMAL
            && tok->types[id] != AIE_TOKEN_USER_DEFINED)
        {
            continue;
        }

        s = tok->text + tok->text_off[id];
        for (i = 1; i < n; i++) {
            a = (uint8_t) s[i - 1];
            b = (uint8_t) s[i];

            if (b == ' ' && a != ' ') {
                tok->split_words = 0;
            }

            if (b < 128) {
                tok->joined[a][b >> 3] |= (uint8_t) (1u << (b & 7));
            }
        }
    }

    /* only text tokens: a user typing "</s>" must not produce EOS */
    for (id = 0; id < tok->n_vocab; id++) {
        if ((tok->types[id] != AIE_TOKEN_NORMAL
             && tok->types[id] != AIE_TOKEN_USER_DEFINED)
            || tok->text_len[id] == 0
            || aie_tokenizer_find(tok, tok->text + tok->text_off[id],
                                  tok->text_len[id]) >= 0)
        {
            continue;
        }

        s = tok->text + tok->text_off[id];
        hash = aie_tok_hash(s, tok->text_len[id]);
        h = hash & tok->map_mask;

        while (tok->map[h] != 0) {
            h = (h + 1) & tok->map_mask;
        }

        tok->map[h] = id + 1;
        tok->map_hash[h] = hash;
    }

    return 0;
}


/*
 * Every way to write a token as two symbols, keyed by their ids: a merge
 * during encoding is then one probe on two integers instead of hashing and
 * comparing the joined text.  A symbol is a token (the id find() returns)
 * or a single character that is no token: an ASCII one has the id
 * n_vocab + its code, others none (their pairs are looked up by text), so
 * the pair gives what find() on the joined text gives.  Vocabularies over
 * 65535 - 128 tokens (keys past 32 bits) go without it.
 */
static inline uint32_t
aie_pair_slot(uint32_t key, uint32_t mask)
{
    return (key * 2654435761u) >> 7 & mask;
}


static int
aie_tokenizer_build_pairs(aie_tokenizer_t *tok)
{
    uint32_t     size = 1024, n = 0, key, h, k, len;
    int          id, a, b, c;
    const char  *t;

    for (c = 0; c < 128; c++) {
        char  ch = (char) c;

        tok->ascii_id[c] = aie_tokenizer_find(tok, &ch, 1);
        if (tok->ascii_id[c] < 0) {
            tok->ascii_id[c] = tok->n_vocab + c;
        }
    }

    if (tok->n_vocab > 65535 - 128) {
        return 0;
    }

    for (id = 0; id < tok->n_vocab; id++) {
        n += tok->text_len[id] > 1 ? tok->text_len[id] - 1 : 0;
    }

    while (size < n * 2) {
        size <<= 1;
    }

    tok->pairs = calloc(size, sizeof(uint64_t));
    if (tok->pairs == NULL) {
        return -1;
    }

    tok->pairs_mask = size - 1;

    for (id = 0; id < tok->n_vocab; id++) {
        t = tok->text + tok->text_off[id];
        len = tok->text_len[id];

        if (len < 2 || aie_tokenizer_find(tok, t, len) != id) {
            continue;
        }

        for (k = 1; k < len; k++) {
            a = k == 1 && (unsigned char) t[0] < 128
                ? tok->ascii_id[(unsigned char) t[0]]
                : aie_tokenizer_find(tok, t, k);
            b = len - k == 1 && (unsigned char) t[k] < 128
                ? tok->ascii_id[(unsigned char) t[k]]
                : aie_tokenizer_find(tok, t + k, len - k);
            if (a < 0 || b < 0) {
                continue;
            }

            key = (uint32_t) a * (uint32_t) (tok->n_vocab + 128)
                  + (uint32_t) b + 1;
            h = aie_pair_slot(key, tok->pairs_mask);

            while (tok->pairs[h] != 0 && tok->pairs[h] >> 32 != key) {
                h = (h + 1) & tok->pairs_mask;
            }

            tok->pairs[h] = (uint64_t) key << 32 | (uint32_t) id;
        }
    }

    return 0;
}


/* the token that joins tokens a and b, or -1 */
static inline int
aie_tokenizer_pair(const aie_tokenizer_t *tok, int a, int b)
{
    uint32_t  key, h;

    key = (uint32_t) a * (uint32_t) (tok->n_vocab + 128) + (uint32_t) b + 1;
    h = aie_pair_slot(key, tok->pairs_mask);

    while (tok->pairs[h] != 0) {
        if (tok->pairs[h] >> 32 == key) {
            return (int) (uint32_t) tok->pairs[h];
        }
        h = (h + 1) & tok->pairs_mask;
    }

    return -1;
}


int
aie_tokenizer_find(const aie_tokenizer_t *tok, const char *text,
    size_t len)
{
    uint32_t  h, hash;
    int       id;

    if (tok->map == NULL) {
        return -1;
    }

    hash = aie_tok_hash(text, len);
    h = hash & tok->map_mask;

    while (tok->map[h] != 0) {
        if (tok->map_hash[h] == hash) {
            id = tok->map[h] - 1;
            if (tok->text_len[id] == len
                && memcmp(tok->text + tok->text_off[id], text, len) == 0)
            {
                return id;
            }
        }
        h = (h + 1) & tok->map_mask;
    }

    return -1;
}


aie_tokenizer_t *
aie_tokenizer_load_llama2c(const char *path, int n_vocab, char *err,
    size_t errlen)
{
    FILE             *f;
    long              size;
    unsigned char    *buf = NULL;
    size_t            off, used = 0;
    aie_tokenizer_t  *tok = NULL;
    int               id;
    int32_t           len;
    float             score;

    f = fopen(path, "rb");
    if (f == NULL) {
        aie_tok_err(err, errlen, "tokenizer: cannot open \"%s\"", path);
        return NULL;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        aie_tok_err(err, errlen, "tokenizer: cannot read \"%s\"", path);
        fclose(f);
        return NULL;
    }

    buf = malloc((size_t) size + 1);
    if (buf == NULL || fread(buf, 1, (size_t) size, f) != (size_t) size) {
        aie_tok_err(err, errlen, "tokenizer: cannot read \"%s\"", path);
        goto failed;
    }

    /* int32 max_token_length, then per token: f32 score, i32 len, bytes */
    tok = aie_tokenizer_alloc(n_vocab, (size_t) size);
    if (tok == NULL) {
        aie_tok_err(err, errlen, "tokenizer: out of memory");
        goto failed;
    }

    off = 4;

    for (id = 0; id < n_vocab; id++) {
        if ((size_t) size - off < 8 || off > (size_t) size) {
            aie_tok_err(err, errlen, "tokenizer: \"%s\" is truncated at "
                        "token %d of %d", path, id, n_vocab);
            goto failed;
        }

        memcpy(&score, buf + off, 4);
        memcpy(&len, buf + off + 4, 4);
        off += 8;

        if (len < 0 || (size_t) len > (size_t) size - off) {
            aie_tok_err(err, errlen, "tokenizer: token %d of \"%s\" has a "
                        "bad length", id, path);
            goto failed;
        }

        aie_tokenizer_set(tok, id, (const char *) buf + off, (size_t) len,
                          score, 0, &used);
        off += (size_t) len;
    }

    if (aie_tokenizer_build_map(tok) != 0
        || aie_tokenizer_build_pairs(tok) != 0)
    {
        aie_tok_err(err, errlen, "tokenizer: out of memory");
        goto failed;
    }

    free(buf);
    fclose(f);
    return tok;

failed:

    aie_tokenizer_free(tok);
    free(buf);
    fclose(f);
    return NULL;
}


aie_tokenizer_t *
aie_tokenizer_load_gguf(const aie_gguf_t *gguf, char *err, size_t errlen)
{
    const aie_gguf_kv_t  *tokens, *scores, *types;
    const uint8_t        *p;
    const char           *model;
    size_t                model_len, len, used = 0;
    aie_tokenizer_t      *tok;
    int64_t               v;
    uint64_t              n, i;
    float                 score;
    int32_t               type;

    if (aie_gguf_get_str(gguf, "tokenizer.ggml.model", &model, &model_len)
        == 0
        && !(model_len == 5 && memcmp(model, "llama", 5) == 0))
    {
        aie_tok_err(err, errlen, "gguf: tokenizer \"%.*s\" is not supported "
                    "(llama's SentencePiece BPE is)",
                    (int) (model_len < 32 ? model_len : 32), model);
        return NULL;
    }

    tokens = aie_gguf_find(gguf, "tokenizer.ggml.tokens");
    if (tokens == NULL || tokens->type != AIE_GGUF_ARRAY
        || tokens->array_type != AIE_GGUF_STRING || tokens->array_n == 0
        || tokens->array_n > (1 << 24))
    {
        aie_tok_err(err, errlen, "gguf: no usable tokenizer.ggml.tokens");
        return NULL;
    }

    n = tokens->array_n;

    scores = aie_gguf_find(gguf, "tokenizer.ggml.scores");
    if (scores != NULL && (scores->type != AIE_GGUF_ARRAY
                           || scores->array_type != AIE_GGUF_FLOAT32
                           || scores->array_n != n))
    {
        aie_tok_err(err, errlen, "gguf: tokenizer.ggml.scores does not "
                    "match the tokens");
        return NULL;
    }

    types = aie_gguf_find(gguf, "tokenizer.ggml.token_type");
    if (types != NULL && (types->type != AIE_GGUF_ARRAY
                          || types->array_type != AIE_GGUF_INT32
                          || types->array_n != n))
    {
        aie_tok_err(err, errlen, "gguf: tokenizer.ggml.token_type does not "
                    "match the tokens");
        return NULL;
    }

    /* the parser validated the array, so walking it stays in the file */
    p = tokens->array_data;
    len = 0;
    for (i = 0; i < n; i++) {
        len += aie_gguf_u64(p);
        p += 8 + aie_gguf_u64(p);
    }

    tok = aie_tokenizer_alloc((int) n, len);
    if (tok == NULL) {
        aie_tok_err(err, errlen, "tokenizer: out of memory");
        return NULL;
    }

    if (aie_gguf_get_int(gguf, "tokenizer.ggml.bos_token_id", &v) == 0) {
        tok->bos_id = v >= 0 && (uint64_t) v < n ? (int) v : -1;
    }

    if (aie_gguf_get_int(gguf, "tokenizer.ggml.eos_token_id", &v) == 0) {
        tok->eos_id = v >= 0 && (uint64_t) v < n ? (int) v : -1;
    }

    if (aie_gguf_get_int(gguf, "tokenizer.ggml.unknown_token_id", &v) == 0) {
        tok->unk_id = v >= 0 && (uint64_t) v < n ? (int) v : -1;
    }

    if (aie_gguf_find(gguf, "tokenizer.ggml.add_space_prefix") != NULL) {
        tok->add_space_prefix =
            *aie_gguf_find(gguf, "tokenizer.ggml.add_space_prefix")->value;
    }

    p = tokens->array_data;

    for (i = 0; i < n; i++) {
        score = 0.0f;
        type = 0;

        if (scores != NULL) {
            memcpy(&score, scores->array_data + i * 4, 4);
        }

        if (types != NULL) {
            memcpy(&type, types->array_data + i * 4, 4);
            if (type < AIE_TOKEN_NORMAL || type > AIE_TOKEN_BYTE) {
                type = AIE_TOKEN_NORMAL;
            }
        }

        len = (size_t) aie_gguf_u64(p);
        aie_tokenizer_set(tok, (int) i, (const char *) p + 8, len, score,
                          type, &used);
        p += 8 + len;
    }

    if (aie_tokenizer_build_map(tok) != 0
        || aie_tokenizer_build_pairs(tok) != 0)
    {
        aie_tokenizer_free(tok);
        aie_tok_err(err, errlen, "tokenizer: out of memory");
        return NULL;
    }

    return tok;
}


void
aie_tokenizer_free(aie_tokenizer_t *tok)
{
    if (tok == NULL) {
        return;
    }

    free(tok->text);
    free(tok->text_off);
    free(tok->text_len);
    free(tok->scores);
    free(tok->types);
    free(tok->map);
    free(tok->map_hash);
    free(tok->pairs);
    free(tok);
}


const char *
aie_tokenizer_text(const aie_tokenizer_t *tok, int id, size_t *len)
{
    if (id < 0 || id >= tok->n_vocab) {
        *len = 0;
        return "";
    }

    *len = tok->text_len[id];
    return tok->text + tok->text_off[id];
}


/* better pair first: higher score, then the leftmost */
static int
aie_bigram_before(const aie_bigram_t *a, const aie_bigram_t *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}


static void
aie_bigram_push(aie_bigram_heap_t *heap, aie_bigram_t bg)
{
    int           i = heap->n++, parent;
    aie_bigram_t  tmp;

    heap->items[i] = bg;

    while (i > 0) {
        parent = (i - 1) / 2;
        if (!aie_bigram_before(&heap->items[i], &heap->items[parent])) {
            break;
        }
        tmp = heap->items[i];
        heap->items[i] = heap->items[parent];
        heap->items[parent] = tmp;
        i = parent;
    }
}


static aie_bigram_t
aie_bigram_pop(aie_bigram_heap_t *heap)
{
    aie_bigram_t  top = heap->items[0], tmp;
    int           i = 0, l, r, best;

    heap->items[0] = heap->items[--heap->n];

    for ( ;; ) {
        l = 2 * i + 1;
        r = l + 1;
        best = i;

        if (l < heap->n
            && aie_bigram_before(&heap->items[l], &heap->items[best]))
        {
            best = l;
        }

        if (r < heap->n
            && aie_bigram_before(&heap->items[r], &heap->items[best]))
        {
            best = r;
        }

        if (best == i) {
            break;
        }

        tmp = heap->items[i];
        heap->items[i] = heap->items[best];
        heap->items[best] = tmp;
        i = best;
    }

    return top;
}


/* the token that joins symbols left and right, or -1 */
static inline int
aie_symbol_pair(const aie_tokenizer_t *tok, const aie_symbol_t *sym,
    int left, int right)
{
    if (tok->pairs == NULL || sym[left].id < 0 || sym[right].id < 0) {
        return aie_tokenizer_find(tok, sym[left].text,
                                  (size_t) (sym[left].n + sym[right].n));
    }

    return aie_tokenizer_pair(tok, sym[left].id, sym[right].id);
}


static void
aie_bigram_try(const aie_tokenizer_t *tok, aie_bigram_heap_t *heap,
    const aie_symbol_t *sym, int left, int right)
{
    aie_bigram_t  bg;
    int           id;

    if (left < 0 || right < 0) {
        return;
    }

    bg.size = sym[left].n + sym[right].n;
    id = aie_symbol_pair(tok, sym, left, right);
    if (id < 0) {
        return;
    }

    bg.left = left;
    bg.right = right;
    bg.score = tok->scores[id];
    bg.id = id;
    aie_bigram_push(heap, bg);
}


static int
aie_utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3
           : (c >> 3) == 0x1E ? 4 : 1;
}


#define AIE_SMALL_SPAN  64          /* bytes */


/* the length of the UTF-8 character at s (n bytes left): 1 if broken */
static inline int
aie_utf8_char(const char *s, size_t n)
{
    int  clen, i;

    clen = aie_utf8_len((unsigned char) s[0]);

    if ((size_t) clen > n) {
        return 1;
    }

    for (i = 1; i < clen; i++) {
        if (((unsigned char) s[i] & 0xC0) != 0x80) {
            return 1;
        }
    }

    return clen;
}


/* the token joining symbols i and i + 1 of a small span and its score */
static inline int
aie_small_pair(const aie_tokenizer_t *tok, const char *buf,
    const uint8_t *off, const int *id, int i, float *score)
{
    int  r;

    if (tok->pairs != NULL && id[i] >= 0 && id[i + 1] >= 0) {
        r = aie_tokenizer_pair(tok, id[i], id[i + 1]);
    } else {
        r = aie_tokenizer_find(tok, buf + off[i],
                               (size_t) (off[i + 2] - off[i]));
    }

    *score = r >= 0 ? tok->scores[r] : -INFINITY;
    return r;
}


/*
 * The heap's merges for a short span (a word), in arrays on the stack: the
 * best pair by score, leftmost on ties, is found by a scan of the pairs'
 * scores (no pair: -inf), the arrays are closed up after a merge and only
 * the two pairs beside it are looked up again.  Emits the tokens.
 */
static int
aie_tokenizer_encode_small(const aie_tokenizer_t *tok, const char *buf,
    size_t n, int *out, int max, int count)
{
    int       id[AIE_SMALL_SPAN + 1], pid[AIE_SMALL_SPAN];
    uint8_t   off[AIE_SMALL_SPAN + 2];
    float     sc[AIE_SMALL_SPAN], bs;
    size_t    o;
    int       n_sym, i, best, clen, t;
    unsigned  c;

    n_sym = 0;
    for (o = 0; o < n; o += (size_t) clen) {
        c = (unsigned char) buf[o];
        off[n_sym] = (uint8_t) o;

        if (c < 0x80) {
            clen = 1;
            id[n_sym] = tok->ascii_id[c];
        } else {
            clen = aie_utf8_char(buf + o, n - o);
            id[n_sym] = aie_tokenizer_find(tok, buf + o, (size_t) clen);
        }

        n_sym++;
    }
    off[n_sym] = (uint8_t) n;

    for (i = 0; i + 1 < n_sym; i++) {
        pid[i] = aie_small_pair(tok, buf, off, id, i, &sc[i]);
    }

    while (n_sym > 1) {
        best = -1;
        bs = -INFINITY;
        for (i = 0; i + 1 < n_sym; i++) {
            if (sc[i] > bs) {
                bs = sc[i];
                best = i;
            }
        }

        if (best < 0) {
            /* only pairs scored -inf (or none): the first pair that is one */
            for (i = 0; i + 1 < n_sym && pid[i] < 0; i++) {
                /* void */
            }
            if (i + 1 == n_sym) {
                break;
            }
            best = i;
        }

        /* symbol best + 1 and pair best + 1 go; the arrays close up */
        id[best] = pid[best];
        for (i = best + 1; i + 1 < n_sym; i++) {
            id[i] = id[i + 1];
            off[i] = off[i + 1];
            pid[i] = pid[i + 1];
            sc[i] = sc[i + 1];
        }
        off[n_sym - 1] = off[n_sym];
        n_sym--;

        if (best + 1 < n_sym) {
            pid[best] = aie_small_pair(tok, buf, off, id, best, &sc[best]);
        }
        if (best > 0) {
            pid[best - 1] = aie_small_pair(tok, buf, off, id, best - 1,
                                           &sc[best - 1]);
        }
    }

    for (i = 0; i < n_sym; i++) {
        t = id[i] < tok->n_vocab ? id[i] : -1;

        if (t >= 0) {
            if (count < max) {
                out[count] = t;
            }
            count++;
            continue;
        }

        for (o = off[i]; o < off[i + 1]; o++) {
            t = tok->byte_token[(unsigned char) buf[o]];
            t = t >= 0 ? t : tok->unk_id;
            if (t >= 0) {
                if (count < max) {
                    out[count] = t;
                }
                count++;
            }
        }
    }

    return count;
}


/* merges one span of buf (whole characters) and emits its tokens */
static int
aie_tokenizer_encode_span(const aie_tokenizer_t *tok, const char *buf,
    size_t n, aie_scratch_t *scr, int *out, int max, int count)
{
    aie_bigram_heap_t  *heap = &scr->heap;
    aie_symbol_t       *sym;
    aie_bigram_t        bg;
    size_t              off;
    int                 n_sym, i, id, b, clen;

    if (n <= AIE_SMALL_SPAN) {
        return aie_tokenizer_encode_small(tok, buf, n, out, max, count);
    }

    if (n > scr->cap) {
        free(scr->sym);
        free(scr->heap.items);
        scr->sym = malloc(n * sizeof(aie_symbol_t));
        scr->heap.items = malloc((3 * n + 1) * sizeof(aie_bigram_t));
        scr->cap = n;

        if (scr->sym == NULL || scr->heap.items == NULL) {
            scr->cap = 0;
            return -1;
        }
    }

    sym = scr->sym;
    heap->n = 0;

    /* one symbol per UTF-8 character; broken sequences split into bytes */
    n_sym = 0;
    for (off = 0; off < n; off += (size_t) sym[n_sym - 1].n) {
        clen = aie_utf8_char(buf + off, n - off);

        sym[n_sym].text = buf + off;
        sym[n_sym].n = clen;
        sym[n_sym].id = clen == 1 && (unsigned char) buf[off] < 128
                        ? tok->ascii_id[(unsigned char) buf[off]]
                        : aie_tokenizer_find(tok, buf + off, (size_t) clen);
        sym[n_sym].prev = n_sym - 1;
        sym[n_sym].next = (off + (size_t) clen < n) ? n_sym + 1 : -1;
        n_sym++;
    }

    for (i = 1; i < n_sym; i++) {
        aie_bigram_try(tok, heap, sym, i - 1, i);
    }

    while (heap->n > 0) {
        bg = aie_bigram_pop(heap);

        /* one side was merged away since the pair was queued */
        if (sym[bg.left].n == 0 || sym[bg.right].n == 0
            || sym[bg.left].n + sym[bg.right].n != bg.size
            || sym[bg.left].next != bg.right)
        {
            continue;
        }

        sym[bg.left].n += sym[bg.right].n;
        sym[bg.left].id = bg.id;
        sym[bg.right].n = 0;
        sym[bg.left].next = sym[bg.right].next;
        if (sym[bg.right].next >= 0) {
            sym[sym[bg.right].next].prev = bg.left;
        }

        aie_bigram_try(tok, heap, sym, sym[bg.left].prev, bg.left);
        aie_bigram_try(tok, heap, sym, bg.left, sym[bg.left].next);
    }

#define aie_emit(tid)                                                       \
    do {                                                                    \
        if (count < max) {                                                  \
            out[count] = (tid);                                             \
        }                                                                   \
        count++;                                                            \
    } while (0)

    for (i = 0; i >= 0; i = sym[i].next) {
        id = sym[i].id < tok->n_vocab ? sym[i].id : -1;

        if (id >= 0) {
            aie_emit(id);
            continue;
        }

        for (b = 0; b < sym[i].n; b++) {
            id = tok->byte_token[(unsigned char) sym[i].text[b]];
            id = id >= 0 ? id : tok->unk_id;
            if (id >= 0) {
                aie_emit(id);
            }
        }
    }

#undef aie_emit

    return count;
}


/* the word's tokens from the cache, or merged and remembered */
static int
aie_tokenizer_encode_word(const aie_tokenizer_t *tok, aie_word_cache_t *wc,
    const char *word, size_t len, aie_scratch_t *scr, int *out, int max,
    int count)
{
    aie_word_t  *w, *free_slot = NULL;
    uint32_t     hash, h;
    int          i, done, n, *t;

    if (wc == NULL || len > AIE_WORD_MAX_LEN) {
        return aie_tokenizer_encode_span(tok, word, len, scr, out, max,
                                         count);
    }

    hash = aie_word_hash(word, len);

    for (i = 0; i < AIE_WORD_PROBES; i++) {
        h = (hash + (uint32_t) i) & wc->mask;
        w = &wc->words[h];

        if (w->len == 0) {
            free_slot = w;
            break;
        }

        if (w->hash == hash && w->len == len
            && aie_word_eq(wc->text + w->pos, word, len))
        {
            t = wc->tokens + w->first;
            for (n = 0; n < w->n; n++, count++) {
                if (count < max) {
                    out[count] = t[n];
                }
            }
            return count;
        }
    }

    done = aie_tokenizer_encode_span(tok, word, len, scr, out, max, count);
    n = done - count;

    if (free_slot == NULL || done < 0 || done > max) {
        return done;
    }

    if (wc->n_tokens + n > wc->cap_tokens) {
        t = realloc(wc->tokens, (size_t) (wc->cap_tokens * 2 + n + 64)
                                * sizeof(int));
        if (t == NULL) {
            return done;
        }
        wc->tokens = t;
        wc->cap_tokens = wc->cap_tokens * 2 + n + 64;
    }

    memcpy(wc->tokens + wc->n_tokens, out + count, (size_t) n * sizeof(int));
    free_slot->hash = hash;
    free_slot->pos = (uint32_t) (word - wc->text);
    free_slot->first = (uint32_t) wc->n_tokens;
    free_slot->len = (uint16_t) len;
    free_slot->n = (uint16_t) n;
    wc->n_tokens += n;

    return done;
}


/* whether the text may be cut between bytes a and b (see build_map) */
static inline int
aie_tok_cut(const aie_tokenizer_t *tok, unsigned char a, unsigned char b)
{
    return b < 128 && !(tok->joined[a][b >> 3] >> (b & 7) & 1);
}


/* where the span starting at start ends: at the next cut */
static inline size_t
aie_word_end(const aie_tokenizer_t *tok, const char *s, size_t start,
    size_t n)
{
    size_t  end = start + 1;

    while (end < n && !aie_tok_cut(tok, (unsigned char) s[end - 1],
                                   (unsigned char) s[end]))
    {
        end++;
    }

    return end;
}


/*
 * Span by span (words, mostly).  The dummy prefix space belongs to the
 * first span only, so that span is merged from a copy and the rest
 * straight from the text; the word cache (texts of AIE_WORD_MIN_TEXT and
 * more) remembers the others by their place in the text.
 */
static int
aie_tokenizer_encode_words(const aie_tokenizer_t *tok, const char *text,
    size_t len, aie_scratch_t *scr, int *out, int max, int count)
{
    aie_word_cache_t   cache, *wc;
    size_t             start, end;
    char              *first;

    start = 0;

    if (tok->add_space_prefix) {
        end = aie_tok_cut(tok, ' ', (unsigned char) text[0])
              ? 0 : aie_word_end(tok, text, 0, len);
        first = malloc(end + 1);
        if (first == NULL) {
            return -1;
        }

        first[0] = ' ';
        memcpy(first + 1, text, end);
        count = aie_tokenizer_encode_span(tok, first, end + 1, scr, out, max,
                                          count);
        free(first);
        start = end;
    }

    wc = NULL;
    memset(&cache, 0, sizeof(cache));

    if (len >= AIE_WORD_MIN_TEXT && len <= UINT32_MAX) {
        cache.mask = 127;
        while (cache.mask < AIE_WORD_MAX_SLOTS - 1 && cache.mask < len / 16) {
            cache.mask = cache.mask * 2 + 1;
        }

        cache.text = text;
        cache.words = calloc(cache.mask + 1, sizeof(aie_word_t));
        wc = cache.words != NULL ? &cache : NULL;
    }

    for ( /* void */ ; start < len && count >= 0; start = end) {
        end = aie_word_end(tok, text, start, len);
        count = aie_tokenizer_encode_word(tok, wc, text + start, end - start,
                                          scr, out, max, count);
    }

    free(cache.words);
    free(cache.tokens);

    return count;
}


static int
aie_tokenizer_encode_impl(const aie_tokenizer_t *tok, const char *text,
    size_t len, int add_bos, int *out, int max, int split)
{
    aie_scratch_t   scr;
    char           *buf;
    size_t          n;
    int             count;

    count = 0;

    if (add_bos && tok->bos_id >= 0) {
        if (count < max) {
            out[count] = tok->bos_id;
        }
        count++;
    }

    if (len == 0) {
        return count;
    }

    memset(&scr, 0, sizeof(scr));

    if (split) {
        count = aie_tokenizer_encode_words(tok, text, len, &scr, out, max,
                                           count);

    } else {
        n = len + (tok->add_space_prefix ? 1 : 0);
        buf = malloc(n);
        if (buf == NULL) {
            return -1;
        }

        if (tok->add_space_prefix) {
            buf[0] = ' ';
        }

        memcpy(buf + n - len, text, len);
        count = aie_tokenizer_encode_span(tok, buf, n, &scr, out, max, count);
        free(buf);
    }

    free(scr.sym);
    free(scr.heap.items);

    return count;
}


int
aie_tokenizer_encode(const aie_tokenizer_t *tok, const char *text,
    size_t len, int add_bos, int *out, int max)
{
    return aie_tokenizer_encode_impl(tok, text, len, add_bos, out, max, 1);
}


int
aie_tokenizer_encode_ref(const aie_tokenizer_t *tok, const char *text,
    size_t len, int add_bos, int *out, int max)
{
    return aie_tokenizer_encode_impl(tok, text, len, add_bos, out, max, 0);
}
