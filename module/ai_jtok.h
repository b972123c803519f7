
/*
 * A flat index of a JSON document, made in one validating pass and
 * pointing into the caller's bytes: what the translators' fast paths read
 * instead of a jansson tree (no allocation per value, no copy of a
 * string).  It is at least as strict as jansson's json_loadb(): whatever
 * it accepts, jansson parses to the values the index describes.  It is
 * stricter in places (nesting past AI_JTOK_MAX_DEPTH, integers of more
 * than 18 digits, long reals); callers then take jansson's way.
 */

#ifndef _AI_JTOK_H_INCLUDED_
#define _AI_JTOK_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ai_scan.h"                    /* AI_JT_* */


#define AI_JTOK_MAX_DEPTH   64
#define AI_JTOK_MAX         (1u << 20)  /* values in one document */
#define AI_JTOK_INLINE      48


typedef struct {
    uint8_t        type;       /* AI_JT_* */
    uint8_t        escaped;    /* a string with backslash escapes */
    uint32_t       start;      /* its first byte (quote, bracket, digit) */
    uint32_t       end;        /* one past its last byte */
    uint32_t       next;       /* the index after it and all it holds */
    uint32_t       count;      /* an object's members, an array's elements */
} ai_jtok_t;


/*
 * Token 1 is the root; index 0 means "absent" (its type is AI_JT_NONE,
 * and looking into it finds nothing).  An object's members follow it as
 * key, value, key, value...; each value's "next" leads to the next key.
 */
typedef struct {
    const unsigned char  *data;
    size_t                len;
    ai_jtok_t            *tok;
    uint32_t              n;
    uint32_t              cap;
    unsigned              key_escaped:1;    /* some key holds an escape */
    unsigned              valid:1;          /* AI_JDOC_VALID */
    ai_jtok_t             inline_tok[AI_JTOK_INLINE];
} ai_jdoc_t;


/*
 * doc must be zeroed (or freed) first; it may be parsed into again.
 * AI_JDOC_VALID: the bytes are known to be JSON (ai_scan() or jansson
 * accepted them), and strings are only looked through for their end.
 */
#define AI_JDOC_VALID  1

int ai_jdoc_parse(ai_jdoc_t *doc, const char *p, size_t len, int flags);
/* exactly one string literal, checked as a member's string is: token 1 */
int ai_jdoc_parse_string(ai_jdoc_t *doc, const char *p, size_t len);
void ai_jdoc_free(ai_jdoc_t *doc);

/* the value of key in object obj (the last one, as jansson keeps); 0: none */
uint32_t ai_jdoc_get(const ai_jdoc_t *doc, uint32_t obj, const char *key,
    size_t key_len);

#define ai_jdoc_gets(doc, obj, key)                                         \
    ai_jdoc_get(doc, obj, key, sizeof(key) - 1)

#define AI_JDOC_ROOT  1

#define ai_jdoc_type(doc, i)  ((doc)->tok[i].type)

/* string token i is exactly s (a string written without escapes) */
int ai_jdoc_is(const ai_jdoc_t *doc, uint32_t i, const char *s, size_t len);

#define ai_jdoc_iss(doc, i, s)  ai_jdoc_is(doc, i, s, sizeof(s) - 1)

/* the raw bytes of string token i, quotes excluded */
#define ai_jdoc_str(doc, i)  ((const char *) (doc)->data                   \
                              + (doc)->tok[i].start + 1)
#define ai_jdoc_str_len(doc, i)  ((size_t) ((doc)->tok[i].end              \
                                            - (doc)->tok[i].start - 2))

/*
 * The bytes jansson decodes string token i to (escapes resolved, UTF-8),
 * appended to out (an ai_buf_t, ai_translate.h).  Returns 0, or -1 on
 * memory exhaustion.
 */
struct ai_buf_s;
int ai_jdoc_decode(const ai_jdoc_t *doc, uint32_t i, struct ai_buf_s *out);

/*
 * A stream repeats one chunk with only its text changed.  ai_jlike_keep()
 * keeps a chunk's bytes around one of its string tokens; ai_jlike_match()
 * is 1 when data is those bytes around one valid string literal (which
 * becomes token 1 of doc): the chunk then means what the kept one meant
 * with that string in place (JSON is read token by token), 0 when it is
 * not, and then data may be anything.
 */
typedef struct {
    char     *bytes;           /* the head, then the tail */
    size_t    head;
    size_t    tail;
    size_t    cap;
    int       kept;
} ai_jlike_t;

int ai_jlike_keep(ai_jlike_t *l, const ai_jdoc_t *doc, uint32_t i);
int ai_jlike_match(const ai_jlike_t *l, ai_jdoc_t *doc, const char *data,
    size_t len);
#define ai_jlike_forget(l)  ((l)->kept = 0)
void ai_jlike_free(ai_jlike_t *l);

/* an integer token's value (the index holds only those that fit) */
long long ai_jdoc_int(const ai_jdoc_t *doc, uint32_t i);


#endif /* _AI_JTOK_H_INCLUDED_ */
