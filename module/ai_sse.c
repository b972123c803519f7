
/*
 * Incremental SSE parser: see ai_sse.h.
 */

#include <stdlib.h>
#include <string.h>

#include "ai_sse.h"


static int ai_sse_line(ai_sse_t *p, const char *line, size_t len,
    ai_sse_handler_pt handler, void *ctx);
static int ai_sse_dispatch(ai_sse_t *p, ai_sse_handler_pt handler,
    void *ctx);
static int ai_sse_put(char **buf, size_t *len, size_t *cap, size_t max,
    const char *s, size_t n);


void
ai_sse_init(ai_sse_t *p, size_t max_event)
{
    memset(p, 0, sizeof(ai_sse_t));
    p->max = max_event ? max_event : AI_SSE_MAX_EVENT;
}


void
ai_sse_free(ai_sse_t *p)
{
    free(p->line);
    free(p->data);
    free(p->event);
    free(p->id);
    memset(p, 0, sizeof(ai_sse_t));
}


int
ai_sse_feed(ai_sse_t *p, const char *buf, size_t len,
    ai_sse_handler_pt handler, void *ctx)
{
    const char  *pos, *last, *eol, *cr;

    if (p->failed) {
        return -1;
    }

    pos = buf;
    last = buf + len;

    while (pos < last) {

        if (!p->started) {
            /* a UTF-8 byte order mark may open the stream; it may be split */
            static const char  bom[] = "\xef\xbb\xbf";

            if (p->line_len < 3 && (unsigned char) *pos
                == (unsigned char) bom[p->line_len])
            {
                if (ai_sse_put(&p->line, &p->line_len, &p->line_cap, p->max,
                               pos, 1) != 0)
                {
                    goto failed;
                }

                pos++;

                if (p->line_len == 3) {
                    p->line_len = 0;
                    p->started = 1;
                }

                continue;
            }

            p->started = 1;
        }

        if (p->after_cr) {
            p->after_cr = 0;

            if (*pos == '\n') {
                pos++;
                continue;
            }
        }

        /* the first CR or LF, found with memchr(), which is quicker */

        eol = memchr(pos, '\n', last - pos);
        cr = memchr(pos, '\r', (eol ? eol : last) - pos);

        if (cr) {
            eol = cr;

        } else if (eol == NULL) {
            eol = last;
        }

        if (eol == last) {
            if (ai_sse_put(&p->line, &p->line_len, &p->line_cap, p->max,
                           pos, last - pos) != 0)
            {
                goto failed;
            }

            break;
        }

        if (p->line_len) {
            if (ai_sse_put(&p->line, &p->line_len, &p->line_cap, p->max,
                           pos, eol - pos) != 0)
            {
                goto failed;
            }

            if (ai_sse_line(p, p->line, p->line_len, handler, ctx) != 0) {
                goto failed;
            }

            p->line_len = 0;

        } else if ((size_t) (eol - pos) > p->max
                   || ai_sse_line(p, pos, eol - pos, handler, ctx) != 0)
        {
            /* the same limit as a line that came in several reads */
            goto failed;
        }

        p->after_cr = (*eol == '\r');
        pos = eol + 1;
    }

    return 0;

failed:

    p->failed = 1;
    return -1;
}


/*
 * The end of the stream: the spec drops an event with no blank line after
 * it, but a provider that closes right after its last "data:" line still
 * meant it, so a pending line and event are dispatched.
 */

int
ai_sse_end(ai_sse_t *p, ai_sse_handler_pt handler, void *ctx)
{
    if (p->failed) {
        return -1;
    }

    if (p->line_len) {
        if (!p->started) {
            p->line_len = 0;
            return 0;
        }

        if (ai_sse_line(p, p->line, p->line_len, handler, ctx) != 0) {
            p->failed = 1;
            return -1;
        }

        p->line_len = 0;
    }

    if (ai_sse_dispatch(p, handler, ctx) != 0) {
        p->failed = 1;
        return -1;
    }

    return 0;
}


static int
ai_sse_line(ai_sse_t *p, const char *line, size_t len,
    ai_sse_handler_pt handler, void *ctx)
{
    size_t       nlen, vlen;
    const char  *colon, *value;

    if (len == 0) {
        return ai_sse_dispatch(p, handler, ctx);
    }

    if (line[0] == ':') {
        return 0;
    }

    colon = memchr(line, ':', len);

    if (colon) {
        nlen = colon - line;
        value = colon + 1;
        vlen = len - nlen - 1;

        if (vlen && *value == ' ') {
            value++;
            vlen--;
        }

    } else {
        nlen = len;
        value = "";
        vlen = 0;
    }

    if (nlen == 4 && memcmp(line, "data", 4) == 0) {
        if (p->has_data
            && ai_sse_put(&p->data, &p->data_len, &p->data_cap, p->max,
                          "\n", 1) != 0)
        {
            return -1;
        }

        p->has_data = 1;

        return ai_sse_put(&p->data, &p->data_len, &p->data_cap, p->max,
                          value, vlen);
    }

    if (nlen == 5 && memcmp(line, "event", 5) == 0) {
        p->event_len = 0;
        return ai_sse_put(&p->event, &p->event_len, &p->event_cap, 256,
                          value, vlen);
    }

    if (nlen == 2 && memcmp(line, "id", 2) == 0) {
        if (memchr(value, '\0', vlen)) {
            return 0;
        }

        p->id_len = 0;
        return ai_sse_put(&p->id, &p->id_len, &p->id_cap, 1024, value, vlen);
    }

    /* "retry:" and unknown fields are of no use to a proxy */

    return 0;
}


static int
ai_sse_dispatch(ai_sse_t *p, ai_sse_handler_pt handler, void *ctx)
{
    int             rc;
    ai_sse_event_t  ev;

    if (!p->has_data) {
        p->event_len = 0;
        return 0;
    }

    /* room for the terminating NUL was reserved by ai_sse_put() */

    if (p->data == NULL) {
        ev.data = "";

    } else {
        p->data[p->data_len] = '\0';
        ev.data = p->data;
    }

    if (p->event_len) {
        p->event[p->event_len] = '\0';
    }

    if (p->id_len) {
        p->id[p->id_len] = '\0';
    }

    ev.data_len = p->data_len;
    ev.event = p->event_len ? p->event : "";
    ev.event_len = p->event_len;
    ev.id = p->id_len ? p->id : "";
    ev.id_len = p->id_len;

    rc = handler(ctx, &ev);

    p->data_len = 0;
    p->event_len = 0;
    p->has_data = 0;

    return rc;
}


static int
ai_sse_put(char **buf, size_t *len, size_t *cap, size_t max, const char *s,
    size_t n)
{
    char    *nb;
    size_t   ncap;

    if (n > max || *len > max - n) {
        return -1;
    }

    if (*len + n + 1 > *cap) {
        ncap = *cap ? *cap : 256;

        while (ncap < *len + n + 1) {
            ncap *= 2;
        }

        nb = realloc(*buf, ncap);

        if (nb == NULL) {
            return -1;
        }

        *buf = nb;
        *cap = ncap;
    }

    memcpy(*buf + *len, s, n);
    *len += n;

    return 0;
}
