
/*
 * An incremental Server-Sent Events parser (the WHATWG event stream
 * format): bytes may be split anywhere, lines end in "\n", "\r\n" or "\r",
 * "data:" lines of one event are joined with "\n", comments are skipped
 * and a blank line dispatches the event.  Memory is bounded: an event
 * larger than the limit is an error, never a reallocation without end.
 */

#ifndef _AI_SSE_H_INCLUDED_
#define _AI_SSE_H_INCLUDED_


#include <stddef.h>


#define AI_SSE_MAX_EVENT  (4 * 1024 * 1024)


typedef struct {
    /* all three are NUL-terminated as a courtesy */
    const char   *event;       /* "" when the event had no "event:" line */
    size_t        event_len;
    const char   *data;
    size_t        data_len;
    const char   *id;          /* the last event id seen, as the spec says */
    size_t        id_len;
} ai_sse_event_t;

/* returns 0 to go on, -1 to stop parsing with an error */
typedef int (*ai_sse_handler_pt)(void *ctx, const ai_sse_event_t *ev);


typedef struct {
    char         *line;        /* a line not yet terminated */
    size_t        line_len;
    size_t        line_cap;
    char         *data;
    size_t        data_len;
    size_t        data_cap;
    char         *event;
    size_t        event_len;
    size_t        event_cap;
    char         *id;
    size_t        id_len;
    size_t        id_cap;
    size_t        max;         /* bytes an event may take */
    unsigned      has_data:1;
    unsigned      after_cr:1;  /* a "\n" right now ends no new line */
    unsigned      started:1;   /* the byte order mark check is done */
    unsigned      failed:1;
} ai_sse_t;


void ai_sse_init(ai_sse_t *p, size_t max_event);
int ai_sse_feed(ai_sse_t *p, const char *buf, size_t len,
    ai_sse_handler_pt handler, void *ctx);
int ai_sse_end(ai_sse_t *p, ai_sse_handler_pt handler, void *ctx);
void ai_sse_free(ai_sse_t *p);


#endif /* _AI_SSE_H_INCLUDED_ */
