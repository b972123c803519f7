/*
 * The streaming detokenizer and the stop sequence matcher.
 *
 * Byte-fallback tokens can split a UTF-8 character over several tokens, so
 * the detokenizer keeps an incomplete character until its last byte arrives;
 * bytes that cannot form a character become U+FFFD.
 */

#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "stream.h"


#define AIE_REPLACEMENT  "\xEF\xBF\xBD"


struct aie_detok_s {
    const aie_model_t  *model;
    int                 prev;
    unsigned char       pending[4];
    int                 n_pending;
    int                 need;         /* bytes the pending character has */
    char               *out;
    size_t              cap;
    size_t              len;
};


aie_detok_t *
aie_detok_new(const aie_model_t *model)
{
    aie_detok_t  *d;

    d = calloc(1, sizeof(aie_detok_t));
    if (d == NULL) {
        return NULL;
    }

    d->model = model;
    d->prev = -1;

    return d;
}


void
aie_detok_free(aie_detok_t *d)
{
    if (d != NULL) {
        free(d->out);
        free(d);
    }
}


void
aie_detok_reset(aie_detok_t *d, int prev_token)
{
    d->prev = prev_token;
    d->n_pending = 0;
    d->len = 0;
}


static int
aie_detok_reserve(aie_detok_t *d, size_t n)
{
    char    *p;
    size_t   cap;

    if (d->len + n <= d->cap) {
        return 0;
    }

    cap = (d->len + n) * 2 + 64;
    p = realloc(d->out, cap);
    if (p == NULL) {
        return -1;
    }

    d->out = p;
    d->cap = cap;

    return 0;
}


static void
aie_detok_put(aie_detok_t *d, const void *s, size_t n)
{
    memcpy(d->out + d->len, s, n);
    d->len += n;
}


static void
aie_detok_byte(aie_detok_t *d, unsigned char b)
{
    for ( ;; ) {
        if (d->n_pending == 0) {
            if (b < 0x80) {
                aie_detok_put(d, &b, 1);
            } else if (b >= 0xC2 && b <= 0xF4) {
                d->pending[0] = b;
                d->n_pending = 1;
                d->need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            } else {
                aie_detok_put(d, AIE_REPLACEMENT, 3);
            }
            return;
        }

        /*
         * A continuation byte; the second one of a sequence also has a
         * narrower range, or the character is overlong (E0, F0), a
         * surrogate (ED) or past U+10FFFF (F4).
         */

        if ((b & 0xC0) == 0x80
            && !(d->n_pending == 1
                 && ((d->pending[0] == 0xE0 && b < 0xA0)
                     || (d->pending[0] == 0xED && b > 0x9F)
                     || (d->pending[0] == 0xF0 && b < 0x90)
                     || (d->pending[0] == 0xF4 && b > 0x8F))))
        {
            d->pending[d->n_pending++] = b;
            if (d->n_pending == d->need) {
                aie_detok_put(d, d->pending, (size_t) d->need);
                d->n_pending = 0;
            }
            return;
        }

        /* the character broke off: replace it, then look at b afresh */
        aie_detok_put(d, AIE_REPLACEMENT, 3);
        d->n_pending = 0;
    }
}


const char *
aie_detok_push(aie_detok_t *d, int token, size_t *len)
{
    const char  *text;
    size_t       n, i;
    int          bos;

    d->len = 0;
    text = aie_token_text(d->model, token, &n);

    bos = d->model->tokenizer != NULL && d->prev >= 0
          && d->prev == d->model->tokenizer->bos_id;

    /* SentencePiece drops the dummy prefix space at the start of text */
    if (bos && n > 0 && text[0] == ' ') {
        text++;
        n--;
    }

    d->prev = token;

    /* each byte may become a 3-byte U+FFFD, plus a broken pending one */
    if (aie_detok_reserve(d, 3 * n + 8) != 0) {
        *len = 0;
        return "";
    }

    for (i = 0; i < n; i++) {
        aie_detok_byte(d, (unsigned char) text[i]);
    }

    *len = d->len;
    return d->out;
}


const char *
aie_detok_flush(aie_detok_t *d, size_t *len)
{
    d->len = 0;

    if (d->n_pending > 0 && aie_detok_reserve(d, 3) == 0) {
        aie_detok_put(d, AIE_REPLACEMENT, 3);
    }

    d->n_pending = 0;
    *len = d->len;

    return d->out != NULL ? d->out : "";
}


size_t
aie_detokenize(const aie_model_t *model, const int *tokens, int n,
    char *out, size_t cap)
{
    aie_detok_t  *d;
    const char   *s;
    size_t        len, total = 0;
    int           i;

    d = aie_detok_new(model);
    if (d == NULL) {
        return 0;
    }

    for (i = 0; i <= n; i++) {
        s = i < n ? aie_detok_push(d, tokens[i], &len)
                  : aie_detok_flush(d, &len);

        if (total < cap) {
            memcpy(out + total, s, len < cap - total ? len : cap - total);
        }

        total += len;
    }

    if (cap > 0) {
        out[total < cap ? total : cap - 1] = '\0';
    }

    aie_detok_free(d);

    return total + 1;
}


void
aie_stopper_init(aie_stopper_t *st, const char *const *stop)
{
    int  i;

    memset(st, 0, sizeof(aie_stopper_t));

    for (i = 0; i < AIE_MAX_STOP; i++) {
        if (stop != NULL && stop[i] != NULL && stop[i][0] != '\0') {
            st->stop[st->n_stop] = stop[i];
            st->stop_len[st->n_stop] = strlen(stop[i]);
            st->n_stop++;
        }
    }
}


void
aie_stopper_free(aie_stopper_t *st)
{
    free(st->held);
    free(st->out);
    st->held = NULL;
    st->out = NULL;
}


static int
aie_grow(char **buf, size_t *cap, size_t need)
{
    char  *p;

    if (need <= *cap) {
        return 0;
    }

    p = realloc(*buf, need * 2 + 64);
    if (p == NULL) {
        return -1;
    }

    *buf = p;
    *cap = need * 2 + 64;

    return 0;
}


/* moves the first n held bytes to out */
static void
aie_stopper_emit(aie_stopper_t *st, size_t n, size_t drop,
    const char **out, size_t *out_len)
{
    memcpy(st->out, st->held, n);
    memmove(st->held, st->held + n + drop, st->n_held - n - drop);
    st->n_held -= n + drop;
    *out = st->out;
    *out_len = n;
}


int
aie_stopper_push(aie_stopper_t *st, const char *text, size_t len,
    const char **out, size_t *out_len)
{
    size_t  keep, k, first, max;
    char   *hit;
    int     i;

    *out = "";
    *out_len = 0;

    if (aie_grow(&st->held, &st->held_cap, st->n_held + len) != 0
        || aie_grow(&st->out, &st->out_cap, st->n_held + len) != 0)
    {
        return -1;
    }

    memcpy(st->held + st->n_held, text, len);
    st->n_held += len;

    if (st->n_stop == 0) {
        aie_stopper_emit(st, st->n_held, 0, out, out_len);
        return 0;
    }

    first = st->n_held;

    for (i = 0; i < st->n_stop; i++) {
        hit = memmem(st->held, st->n_held, st->stop[i], st->stop_len[i]);
        if (hit != NULL && (size_t) (hit - st->held) < first) {
            first = (size_t) (hit - st->held);
        }
    }

    if (first < st->n_held) {
        aie_stopper_emit(st, first, st->n_held - first, out, out_len);
        return 1;
    }

    /* hold back the longest tail that a stop sequence starts with */
    keep = 0;

    for (i = 0; i < st->n_stop; i++) {
        max = st->stop_len[i] - 1;
        max = max < st->n_held ? max : st->n_held;

        for (k = max; k > keep; k--) {
            if (memcmp(st->held + st->n_held - k, st->stop[i], k) == 0) {
                keep = k;
                break;
            }
        }
    }

    aie_stopper_emit(st, st->n_held - keep, 0, out, out_len);

    return 0;
}


void
aie_stopper_flush(aie_stopper_t *st, const char **out, size_t *out_len)
{
    if (st->n_held == 0) {
        *out = "";
        *out_len = 0;
        return;
    }

    aie_stopper_emit(st, st->n_held, 0, out, out_len);
}
