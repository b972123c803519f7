
/*
 * Pure JSON helpers of aigw: request validation, locating a member's
 * bytes in a body, escaping, OpenAI-style error bodies.  No NGINX types
 * here, so unit tests and fuzzers drive these directly.
 */

#ifndef _AI_JSON_H_INCLUDED_
#define _AI_JSON_H_INCLUDED_


#include <stddef.h>
#include <jansson.h>


#define AI_EP_UNKNOWN      0
#define AI_EP_CHAT         1
#define AI_EP_COMPLETIONS  2
#define AI_EP_EMBEDDINGS   3
#define AI_EP_MODELS       4
#define AI_EP_MESSAGES     5      /* Anthropic-compatible inbound */


typedef struct {
    char          message[320];
    char          param[96];
    const char   *code;
} ai_json_error_t;


int ai_request_validate(json_t *root, int endpoint, ai_json_error_t *err);

int ai_json_member_span(const unsigned char *p, size_t len, const char *key,
    size_t *start, size_t *end);

/*
 * The end of the plain run of a JSON string's bytes at p: the first byte
 * that is '"', '\\', a control or not ASCII, or end.  16 bytes at a time
 * where SSE2 is there.
 */
const unsigned char *ai_json_plain(const unsigned char *p,
    const unsigned char *end);

/* the four hex digits at p as *v: 0, or -1 if one is not a hex digit */
int ai_json_hex4(const unsigned char *p, unsigned *v);

/*
 * The \uXXXX escape at p (at its backslash), a surrogate pair taken
 * whole: the bytes it spans (6 or 12) and its code point, or 0 when it is
 * not one jansson takes (\u0000, a lone or reversed surrogate, bad hex).
 */
size_t ai_json_unicode(const unsigned char *p, const unsigned char *end,
    unsigned *cp);

/*
 * The length (2 to 4) of the valid UTF-8 sequence at p, whose first byte
 * is 0x80 or more, or 0 when it is not one: jansson's rules (no overlong
 * forms, no surrogates, nothing past U+10FFFF, nothing past end).
 */
size_t ai_json_utf8_len(const unsigned char *p, const unsigned char *end);
/* code point cp (< 0x110000) written as UTF-8 at dst: its length, 1 to 4 */
size_t ai_json_utf8_put(char *dst, unsigned cp);

size_t ai_json_escape_len(const unsigned char *s, size_t len);
unsigned char *ai_json_escape(unsigned char *dst, const unsigned char *s,
    size_t len);

size_t ai_error_json(unsigned char *buf, size_t size, const char *message,
    const char *type, const char *param, const char *code);

const char *ai_json_type_name(const json_t *v);


#endif /* _AI_JSON_H_INCLUDED_ */
