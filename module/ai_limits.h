
/*
 * Pure limiter arithmetic: fixed windows (minute, day, calendar month, UTC)
 * of requests, tokens and cost, and a concurrency gauge.  The caller holds
 * whatever lock protects the counters; nothing here allocates.
 */

#ifndef _AI_LIMITS_H_INCLUDED_
#define _AI_LIMITS_H_INCLUDED_


#include <stdint.h>
#include <time.h>


#define AI_CNT_REQ_MIN      0
#define AI_CNT_TOK_MIN      1
#define AI_CNT_TOK_DAY      2
#define AI_CNT_TOK_MONTH    3
#define AI_CNT_COST_DAY     4
#define AI_CNT_COST_MONTH   5
#define AI_CNT_N            6
#define AI_CNT_CONCURRENT   AI_CNT_N      /* in "which" only */

#define AI_UNLIMITED        (-1)


typedef struct {
    int64_t     window[AI_CNT_N];
    int64_t     used[AI_CNT_N];
    int64_t     concurrent;
} ai_counters_t;


typedef struct {
    int64_t     max[AI_CNT_N];           /* AI_UNLIMITED: no limit */
    int64_t     concurrent;
} ai_quota_t;


typedef struct {
    int64_t     amount[AI_CNT_N];
} ai_charge_t;


void ai_quota_init(ai_quota_t *q);
int ai_quota_any(const ai_quota_t *q);
int64_t ai_window_of(int counter, time_t now);
time_t ai_window_reset(int counter, time_t now);
void ai_counters_roll(ai_counters_t *c, time_t now);
int ai_counters_check(const ai_counters_t *c, const ai_quota_t *q,
    const ai_charge_t *ch, int *which);
void ai_counters_apply(ai_counters_t *c, const ai_charge_t *ch);
int64_t ai_counters_remaining(const ai_counters_t *c, const ai_quota_t *q,
    int counter);
const char *ai_counter_name(int which);
size_t ai_duration_text(char *buf, size_t size, time_t seconds);


#endif /* _AI_LIMITS_H_INCLUDED_ */
