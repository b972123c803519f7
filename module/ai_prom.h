
/*
 * Pure Prometheus text exposition (format 0.0.4): family headers, samples
 * with escaped label values, histograms.  No NGINX types, so the unit tests
 * drive it directly.  Every writer appends to a growable buffer and returns
 * 0, or -1 once memory ran out (the buffer then stays failed).
 */

#ifndef _AI_PROM_H_INCLUDED_
#define _AI_PROM_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef struct {
    char        *data;
    size_t       len;
    size_t       cap;
    int          failed;
} ai_prom_buf_t;


typedef struct {
    const char  *name;           /* a valid label name, NUL-terminated */
    const char  *value;          /* any bytes; escaped on output */
    size_t       len;
} ai_prom_label_t;


void ai_prom_buf_init(ai_prom_buf_t *b);
void ai_prom_buf_free(ai_prom_buf_t *b);
int ai_prom_append(ai_prom_buf_t *b, const char *p, size_t len);

/* the escaped length; writes when out is not NULL */
size_t ai_prom_escape_label(char *out, const char *s, size_t len);
size_t ai_prom_escape_help(char *out, const char *s, size_t len);

/* [a-zA-Z_:][a-zA-Z0-9_:]*, and no ':' for a label name */
int ai_prom_metric_name_valid(const char *s, size_t len);
int ai_prom_label_name_valid(const char *s, size_t len);

/* "# HELP name help\n# TYPE name type\n" */
int ai_prom_family(ai_prom_buf_t *b, const char *name, const char *type,
    const char *help);

/* name{labels} value\n; suffix ("_bucket", "_sum"...) may be NULL */
int ai_prom_sample(ai_prom_buf_t *b, const char *name, const char *suffix,
    const ai_prom_label_t *labels, size_t n, const char *value);
int ai_prom_sample_u64(ai_prom_buf_t *b, const char *name,
    const ai_prom_label_t *labels, size_t n, uint64_t v);
int ai_prom_sample_i64(ai_prom_buf_t *b, const char *name,
    const ai_prom_label_t *labels, size_t n, int64_t v);

/* micro-units (micro-USD, say) as a decimal with six places */
int ai_prom_sample_micro(ai_prom_buf_t *b, const char *name,
    const ai_prom_label_t *labels, size_t n, uint64_t micro);

/*
 * One histogram series: counts[i] observations fell in bucket i (not
 * cumulative; the last one is +Inf, so nb == nle + 1), le[] the upper bounds
 * as text, sum_milli the sum of observations in thousandths.  Writes the
 * cumulative _bucket lines, _sum and _count.
 */
int ai_prom_histogram(ai_prom_buf_t *b, const char *name,
    const ai_prom_label_t *labels, size_t n, const char *const *le,
    size_t nle, const uint64_t *counts, uint64_t sum_milli);


#endif /* _AI_PROM_H_INCLUDED_ */
