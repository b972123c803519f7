
/*
 * Unit tests of the Prometheus text writer (ai_prom.c): escaping of label
 * values and help text, name checks, samples, cumulative histograms and
 * six-place decimals without floating point.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_prom.h"


static int  ai_checks, ai_failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        ai_checks++;                                                       \
        if (!(cond)) {                                                     \
            ai_failures++;                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)

#define CHECK_TEXT(b, want)                                                \
    do {                                                                   \
        ai_checks++;                                                       \
        if ((b)->len != strlen(want)                                       \
            || memcmp((b)->data, want, (b)->len) != 0)                     \
        {                                                                  \
            ai_failures++;                                                 \
            fprintf(stderr, "%s:%d: got\n%.*s\nwant\n%s\n", __FILE__,      \
                    __LINE__, (int) (b)->len, (b)->data, want);            \
        }                                                                  \
    } while (0)


static void
test_escape(void)
{
    char    out[64];
    size_t  n;

    n = ai_prom_escape_label(out, "a\"b\\c\nd", 7);
    CHECK(n == 10);
    CHECK(memcmp(out, "a\\\"b\\\\c\\nd", 10) == 0);
    CHECK(ai_prom_escape_label(NULL, "a\"b\\c\nd", 7) == 10);

    /* bytes that need no escaping pass as they are, UTF-8 and tabs too */
    n = ai_prom_escape_label(out, "\xc3\xa9\t", 3);
    CHECK(n == 3 && memcmp(out, "\xc3\xa9\t", 3) == 0);

    /* help text keeps its quotes */
    n = ai_prom_escape_help(out, "say \"hi\"\\\n", 10);
    CHECK(n == 12);
    CHECK(memcmp(out, "say \"hi\"\\\\\\n", 12) == 0);
}


static void
test_names(void)
{
    CHECK(ai_prom_metric_name_valid("aigw_requests_total", 19));
    CHECK(ai_prom_metric_name_valid("a:b", 3));
    CHECK(!ai_prom_metric_name_valid("1abc", 4));
    CHECK(!ai_prom_metric_name_valid("a-b", 3));
    CHECK(!ai_prom_metric_name_valid("", 0));
    CHECK(ai_prom_label_name_valid("model", 5));
    CHECK(!ai_prom_label_name_valid("a:b", 3));
    CHECK(!ai_prom_label_name_valid("__name__", 8));
}


static void
test_samples(void)
{
    ai_prom_buf_t    b;
    ai_prom_label_t  l[2] = {
        { "model", "gpt\"4o", 6 },
        { "tenant", "a\nb", 3 },
    };

    ai_prom_buf_init(&b);

    ai_prom_family(&b, "aigw_x_total", "counter", "Line one\nback\\slash.");
    ai_prom_sample_u64(&b, "aigw_x_total", l, 2, 18446744073709551615ULL);
    ai_prom_sample_i64(&b, "aigw_g", NULL, 0, -3);
    ai_prom_sample_micro(&b, "aigw_cost_usd_total", l, 1, 1234567);
    ai_prom_sample_micro(&b, "aigw_cost_usd_total", NULL, 0, 5);

    CHECK(!b.failed);
    CHECK_TEXT(&b,
        "# HELP aigw_x_total Line one\\nback\\\\slash.\n"
        "# TYPE aigw_x_total counter\n"
        "aigw_x_total{model=\"gpt\\\"4o\",tenant=\"a\\nb\"} "
        "18446744073709551615\n"
        "aigw_g -3\n"
        "aigw_cost_usd_total{model=\"gpt\\\"4o\"} 1.234567\n"
        "aigw_cost_usd_total 0.000005\n");

    ai_prom_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
}


static void
test_histogram(void)
{
    ai_prom_buf_t     b;
    const char       *le[2] = { "0.1", "1" };
    const uint64_t    counts[3] = { 2, 0, 1 };
    ai_prom_label_t   l[1] = { { "model", "m", 1 } };

    ai_prom_buf_init(&b);

    ai_prom_histogram(&b, "aigw_d_seconds", l, 1, le, 2, counts, 2050);

    CHECK(!b.failed);
    CHECK_TEXT(&b,
        "aigw_d_seconds_bucket{model=\"m\",le=\"0.1\"} 2\n"
        "aigw_d_seconds_bucket{model=\"m\",le=\"1\"} 2\n"
        "aigw_d_seconds_bucket{model=\"m\",le=\"+Inf\"} 3\n"
        "aigw_d_seconds_sum{model=\"m\"} 2.050\n"
        "aigw_d_seconds_count{model=\"m\"} 3\n");

    ai_prom_buf_free(&b);

    /* no labels: le is the only one */
    ai_prom_histogram(&b, "h", NULL, 0, le, 0, counts, 7);
    CHECK_TEXT(&b,
        "h_bucket{le=\"+Inf\"} 2\n"
        "h_sum 0.007\n"
        "h_count 2\n");

    ai_prom_buf_free(&b);
}


static void
test_growth(void)
{
    int            i;
    char           name[32];
    ai_prom_buf_t  b;

    ai_prom_buf_init(&b);

    for (i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "m_%d", i);
        ai_prom_sample_u64(&b, name, NULL, 0, (uint64_t) i);
    }

    CHECK(!b.failed);
    CHECK(b.len > 4096 && b.cap >= b.len);
    CHECK(memcmp(b.data + b.len - 10, "m_4999 4999\n" + 2, 10) == 0);

    ai_prom_buf_free(&b);
}


int
main(void)
{
    test_escape();
    test_names();
    test_samples();
    test_histogram();
    test_growth();

    printf("test_prom: %d checks, %d failures\n", ai_checks, ai_failures);

    return ai_failures ? 1 : 0;
}
