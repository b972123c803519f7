/*
 * Tokenizer.  Encoding follows llama.cpp's SentencePiece BPE: the text (with
 * a dummy prefix space) is split into UTF-8 characters kept in a linked
 * list; every adjacent pair whose concatenation is a token goes into a
 * priority queue keyed by the token's score; the best pair is merged and its
 * neighbours' pairs queued, stale entries being skipped when popped.  That
 * is O(n log n) instead of llama2.c's rescan of all pairs after each merge.
 * Characters left without a token fall back to <0xXX> byte tokens.
 */

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

/*
 * Words seen earlier in the same text, with their tokens: English repeats
 * its words, and a hit costs a hash and a memcmp instead of the merges.
 */
typedef struct {
    const char  *word;
    uint32_t     len;
    uint32_t     hash;
    int          first;     /* in tokens */
    int          n;
} aie_word_t;

typedef struct {
    aie_word_t  *words;     /* open addressing */
    uint32_t     mask;      /* slots - 1 */
    int         *tokens;
    int          n_tokens;
    int          cap_tokens;
} aie_word_cache_t;

#define AIE_WORD_MAX_SLOTS  65536   /* one per 8 bytes of text, up to this */
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
    tok->scores[id] = score;
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
     * Where no token holds a space right after another character, no merge
     * can cross the start of a word (" word"), and text can be encoded word
     * by word with the same result: small heaps that stay in L1.
     */
    tok->split_words = 1;
    for (id = 0; id < tok->n_vocab; id++) {
        uint32_t  i, n = tok->text_len[id];

        if (tok->types[id] != AIE_TOKEN_NORMAL
            && tok->types[id] != AIE_TOKEN_USER_DEFINED)
        {
            continue;
        }

        s = tok->text + tok->text_off[id];
        for (i = 1; i < n; i++) {
            if (s[i] == ' ' && s[i - 1] != ' ') {
                tok->split_words = 0;
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


#define AIE_SMALL_SPAN  64


/* the token of the pair (i, its next) and its score, or -1 */
static int
aie_pair_score(const aie_tokenizer_t *tok, const aie_symbol_t *sym, int i,
    float *score)
{
    int  id;

    if (i < 0 || sym[i].next < 0) {
        return -1;
    }

    id = aie_symbol_pair(tok, sym, i, sym[i].next);
    if (id >= 0) {
        *score = tok->scores[id];
    }

    return id;
}


/*
 * The same merges as the heap for a short span (a word): the best pair by
 * score, leftmost on ties, found by a scan of the cached pair scores; only
 * the two pairs beside a merge are looked up again.
 */
static void
aie_tokenizer_merge_small(const aie_tokenizer_t *tok, aie_symbol_t *sym,
    int n_sym)
{
    float  sc[AIE_SMALL_SPAN];
    int    pid[AIE_SMALL_SPAN];
    int    i, best, r;

    for (i = 0; i < n_sym; i++) {
        pid[i] = aie_pair_score(tok, sym, i, &sc[i]);
    }

    for ( ;; ) {
        best = -1;
        for (i = 0; i >= 0; i = sym[i].next) {
            if (pid[i] >= 0 && (best < 0 || sc[i] > sc[best])) {
                best = i;
            }
        }

        if (best < 0) {
            return;
        }

        r = sym[best].next;
        sym[best].n += sym[r].n;
        sym[best].id = pid[best];
        sym[r].n = 0;
        sym[best].next = sym[r].next;
        if (sym[r].next >= 0) {
            sym[sym[r].next].prev = best;
        }

        pid[best] = aie_pair_score(tok, sym, best, &sc[best]);
        if (sym[best].prev >= 0) {
            pid[sym[best].prev] = aie_pair_score(tok, sym, sym[best].prev,
                                                 &sc[sym[best].prev]);
        }
    }
}


/* merges one span of buf (whole characters) and emits its tokens */
static int
aie_tokenizer_encode_span(const aie_tokenizer_t *tok, const char *buf,
    size_t n, aie_symbol_t *sym, aie_bigram_heap_t *heap, int *out, int max,
    int count)
{
    aie_bigram_t  bg;
    size_t        off;
    int           n_sym, i, id, b, clen;

    heap->n = 0;

    /* one symbol per UTF-8 character; broken sequences split into bytes */
    n_sym = 0;
    for (off = 0; off < n; off += (size_t) sym[n_sym - 1].n) {
        clen = aie_utf8_len((unsigned char) buf[off]);

        if ((size_t) clen > n - off) {
            clen = 1;
        }

        for (i = 1; i < clen; i++) {
            if (((unsigned char) buf[off + i] & 0xC0) != 0x80) {
                clen = 1;
                break;
            }
        }

        sym[n_sym].text = buf + off;
        sym[n_sym].n = clen;
        sym[n_sym].id = clen == 1 && (unsigned char) buf[off] < 128
                        ? tok->ascii_id[(unsigned char) buf[off]]
                        : aie_tokenizer_find(tok, buf + off, (size_t) clen);
        sym[n_sym].prev = n_sym - 1;
        sym[n_sym].next = (off + (size_t) clen < n) ? n_sym + 1 : -1;
        n_sym++;
    }

    if (n_sym <= AIE_SMALL_SPAN) {
        aie_tokenizer_merge_small(tok, sym, n_sym);
        goto emit;
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

emit:

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
    const char *word, size_t len, aie_symbol_t *sym, aie_bigram_heap_t *heap,
    int *out, int max, int count)
{
    aie_word_t  *w, *free_slot = NULL;
    uint32_t     hash, h;
    int          i, done, n, *t;

    if (wc == NULL || len > AIE_WORD_MAX_LEN) {
        return aie_tokenizer_encode_span(tok, word, len, sym, heap, out, max,
                                         count);
    }

    hash = aie_tok_hash(word, len);

    for (i = 0; i < AIE_WORD_PROBES; i++) {
        h = (hash + (uint32_t) i) & wc->mask;
        w = &wc->words[h];

        if (w->word == NULL) {
            free_slot = w;
            break;
        }

        if (w->hash == hash && w->len == len
            && memcmp(w->word, word, len) == 0)
        {
            for (n = 0; n < w->n; n++, count++) {
                if (count < max) {
                    out[count] = wc->tokens[w->first + n];
                }
            }
            return count;
        }
    }

    done = aie_tokenizer_encode_span(tok, word, len, sym, heap, out, max,
                                     count);
    n = done - count;

    if (free_slot == NULL || done > max) {
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
    free_slot->word = word;
    free_slot->len = (uint32_t) len;
    free_slot->hash = hash;
    free_slot->first = wc->n_tokens;
    free_slot->n = n;
    wc->n_tokens += n;

    return done;
}


static int
aie_tokenizer_encode_impl(const aie_tokenizer_t *tok, const char *text,
    size_t len, int add_bos, int *out, int max, int split)
{
    char               *buf;
    aie_symbol_t       *sym;
    aie_bigram_heap_t   heap;
    aie_word_cache_t    cache, *wc;
    size_t              n, start, end, span;
    int                 count;

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

    n = len + (tok->add_space_prefix ? 1 : 0);
    split = split && tok->split_words;

    buf = malloc(n);
    if (buf == NULL) {
        return -1;
    }

    if (tok->add_space_prefix) {
        buf[0] = ' ';
    }

    memcpy(buf + n - len, text, len);

    /* scratch for the longest span only */
    span = n;
    if (split) {
        span = 0;
        for (start = 0; start < n; start = end) {
            end = start + 1;
            while (end < n && !(buf[end] == ' ' && buf[end - 1] != ' ')) {
                end++;
            }
            span = end - start > span ? end - start : span;
        }
    }

    sym = malloc(span * sizeof(aie_symbol_t));
    heap.items = malloc((3 * span + 1) * sizeof(aie_bigram_t));
    heap.n = 0;

    if (sym == NULL || heap.items == NULL) {
        free(buf);
        free(sym);
        free(heap.items);
        return -1;
    }

    if (!split) {
        count = aie_tokenizer_encode_span(tok, buf, n, sym, &heap, out, max,
                                          count);

    } else {
        wc = NULL;
        memset(&cache, 0, sizeof(cache));

        if (n >= AIE_WORD_MIN_TEXT) {
            cache.mask = 127;
            while (cache.mask < AIE_WORD_MAX_SLOTS - 1 && cache.mask < n / 8) {
                cache.mask = cache.mask * 2 + 1;
            }

            cache.words = calloc(cache.mask + 1, sizeof(aie_word_t));
            wc = cache.words != NULL ? &cache : NULL;
        }

        /* words: a span ends before a space that follows a non-space */
        for (start = 0; start < n; start = end) {
            end = start + 1;
            while (end < n && !(buf[end] == ' ' && buf[end - 1] != ' ')) {
                end++;
            }

            count = aie_tokenizer_encode_word(tok, wc, buf + start,
                                              end - start, sym, &heap, out,
                                              max, count);
        }

        free(cache.words);
        free(cache.tokens);
    }

    free(buf);
    free(sym);
    free(heap.items);

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
