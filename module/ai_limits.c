
/*
 * Pure limiter arithmetic: see ai_limits.h.
 *
 * Fixed windows are exact (a window never admits more than its limit) and
 * need one counter each; the price is a burst of up to twice the limit
 * across a window boundary, the behaviour OpenAI's own headers describe
 * with their reset times.
 */

#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE        /* timegm, gmtime_r */
#endif

#include <stdio.h>
#include <string.h>

#include "ai_limits.h"


void
ai_quota_init(ai_quota_t *q)
{
    int  i;

    for (i = 0; i < AI_CNT_N; i++) {
        q->max[i] = AI_UNLIMITED;
    }

    q->concurrent = AI_UNLIMITED;
}


int
ai_quota_any(const ai_quota_t *q)
{
    int  i;

    for (i = 0; i < AI_CNT_N; i++) {
        if (q->max[i] != AI_UNLIMITED) {
            return 1;
        }
    }

    return q->concurrent != AI_UNLIMITED;
}


static int64_t
ai_month_of(time_t now)
{
    struct tm  tm;

    gmtime_r(&now, &tm);

    return (int64_t) (tm.tm_year + 1900) * 12 + tm.tm_mon;
}


int64_t
ai_window_of(int counter, time_t now)
{
    switch (counter) {
    case AI_CNT_REQ_MIN:
    case AI_CNT_TOK_MIN:
        return (int64_t) now / 60;
    case AI_CNT_TOK_DAY:
    case AI_CNT_COST_DAY:
        return (int64_t) now / 86400;
    default:
        return ai_month_of(now);
    }
}


time_t
ai_window_reset(int counter, time_t now)
{
    struct tm  tm;
    time_t     next;

    switch (counter) {
    case AI_CNT_REQ_MIN:
    case AI_CNT_TOK_MIN:
        return 60 - now % 60;
    case AI_CNT_TOK_DAY:
    case AI_CNT_COST_DAY:
        return 86400 - now % 86400;
    default:
        gmtime_r(&now, &tm);
        tm.tm_mday = 1;
        tm.tm_hour = 0;
        tm.tm_min = 0;
        tm.tm_sec = 0;
        tm.tm_mon++;
        if (tm.tm_mon == 12) {
            tm.tm_mon = 0;
            tm.tm_year++;
        }
        next = timegm(&tm);
        return next - now;
    }
}


void
ai_counters_roll(ai_counters_t *c, time_t now)
{
    int      i;
    int64_t  w;

    for (i = 0; i < AI_CNT_N; i++) {
        w = ai_window_of(i, now);

        if (c->window[i] != w) {
            c->window[i] = w;
            c->used[i] = 0;
        }
    }
}


/* 0: the charge fits; -1: it does not, and *which says what is exhausted */

int
ai_counters_check(const ai_counters_t *c, const ai_quota_t *q,
    const ai_charge_t *ch, int *which)
{
    int  i;

    if (q->concurrent != AI_UNLIMITED && c->concurrent + 1 > q->concurrent) {
        *which = AI_CNT_CONCURRENT;
        return -1;
    }

    for (i = 0; i < AI_CNT_N; i++) {
        if (q->max[i] == AI_UNLIMITED) {
            continue;
        }

        /* a request larger than a whole token window can never fit */

        if (c->used[i] + ch->amount[i] > q->max[i]) {
            *which = i;
            return -1;
        }
    }

    return 0;
}


void
ai_counters_apply(ai_counters_t *c, const ai_charge_t *ch)
{
    int  i;

    for (i = 0; i < AI_CNT_N; i++) {
        c->used[i] += ch->amount[i];

        if (c->used[i] < 0) {
            c->used[i] = 0;
        }
    }
}


int64_t
ai_counters_remaining(const ai_counters_t *c, const ai_quota_t *q,
    int counter)
{
    int64_t  left;

    if (counter == AI_CNT_CONCURRENT) {
        if (q->concurrent == AI_UNLIMITED) {
            return AI_UNLIMITED;
        }

        left = q->concurrent - c->concurrent;

    } else {
        if (q->max[counter] == AI_UNLIMITED) {
            return AI_UNLIMITED;
        }

        left = q->max[counter] - c->used[counter];
    }

    return left < 0 ? 0 : left;
}


const char *
ai_counter_name(int which)
{
    static const char  *names[] = {
        "requests per minute",
        "tokens per minute",
        "tokens per day",
        "tokens per month",
        "budget per day",
        "budget per month",
        "concurrent requests"
    };

    if (which < 0 || which > AI_CNT_CONCURRENT) {
        return "limit";
    }

    return names[which];
}


/* OpenAI's reset format: "1s", "6m0s", "2h3m4s" */

size_t
ai_duration_text(char *buf, size_t size, time_t seconds)
{
    int  n;

    if (seconds < 0) {
        seconds = 0;
    }

    if (seconds >= 3600) {
        n = snprintf(buf, size, "%ldh%ldm%lds", (long) (seconds / 3600),
                     (long) (seconds % 3600 / 60), (long) (seconds % 60));

    } else if (seconds >= 60) {
        n = snprintf(buf, size, "%ldm%lds", (long) (seconds / 60),
                     (long) (seconds % 60));

    } else {
        n = snprintf(buf, size, "%lds", (long) seconds);
    }

    return (n < 0 || (size_t) n >= size) ? 0 : (size_t) n;
}
