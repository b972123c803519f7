/*
 * llama's SentencePiece-style BPE tokenizer: vocabulary, encode, and the
 * bytes each token stands for.  Pieces are kept with plain spaces: GGUF's
 * "\xe2\x96\x81" (U+2581) is turned into ' ' on load, so GGUF and llama2.c
 * vocabularies work the same way.
 */

#ifndef AIE_TOKENIZER_H
#define AIE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"


/* token types, as in GGUF's tokenizer.ggml.token_type */
enum {
    AIE_TOKEN_NORMAL = 1,
    AIE_TOKEN_UNKNOWN = 2,
    AIE_TOKEN_CONTROL = 3,
    AIE_TOKEN_USER_DEFINED = 4,
    AIE_TOKEN_UNUSED = 5,
    AIE_TOKEN_BYTE = 6
};

typedef struct {
    int        n_vocab;
    char      *text;          /* the bytes of every token, back to back */
    uint32_t  *text_off;
    uint32_t  *text_len;
    float     *scores;
    uint8_t   *types;
    int        byte_token[256];
    int32_t   *map;           /* open addressing: token id + 1, 0 empty */
    uint32_t  *map_hash;      /* the full hash of each slot's text */
    uint32_t   map_mask;
    uint64_t  *pairs;         /* (left id, right id) -> their merge: key in
                                 the high half (0 empty), token id low */
    uint32_t   pairs_mask;
    int32_t    ascii_id[128]; /* the token of each ASCII character, or
                                 n_vocab + the character when none */
    int        bos_id;
    int        eos_id;
    int        unk_id;
    int        add_space_prefix;
    int        split_words;   /* no token has a space after a non-space */
    uint8_t    joined[256][16];  /* bit b of joined[a]: some token holds
                                    byte a right before ASCII byte b */
} aie_tokenizer_t;


aie_tokenizer_t *aie_tokenizer_load_llama2c(const char *path, int n_vocab,
    char *err, size_t errlen);
aie_tokenizer_t *aie_tokenizer_load_gguf(const aie_gguf_t *gguf,
    char *err, size_t errlen);
void aie_tokenizer_free(aie_tokenizer_t *tok);

int aie_tokenizer_encode(const aie_tokenizer_t *tok, const char *text,
    size_t len, int add_bos, int *out, int max);
/* the same, always merging over the whole text at once (the reference) */
int aie_tokenizer_encode_ref(const aie_tokenizer_t *tok, const char *text,
    size_t len, int add_bos, int *out, int max);
/* bytes of a token: byte tokens resolved, control tokens empty */
const char *aie_tokenizer_text(const aie_tokenizer_t *tok, int id,
    size_t *len);
/* id of a normal token with exactly this text, or -1 */
int aie_tokenizer_find(const aie_tokenizer_t *tok, const char *text,
    size_t len);

#endif /* AIE_TOKENIZER_H */
