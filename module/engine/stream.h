/*
 * Text streaming helpers shared by aie_generate() and the engine: the stop
 * sequence matcher holds back text that may be the start of a stop
 * sequence, so a client never sees part of one.
 */

#ifndef AIE_STREAM_H
#define AIE_STREAM_H

#include <stddef.h>

#include "aigw_engine.h"


typedef struct {
    const char  *stop[AIE_MAX_STOP];
    size_t       stop_len[AIE_MAX_STOP];
    int          n_stop;
    char        *held;
    size_t       n_held;
    size_t       held_cap;
    char        *out;
    size_t       out_cap;
} aie_stopper_t;


/* stop strings are referenced, not copied */
void aie_stopper_init(aie_stopper_t *st, const char *const *stop);
void aie_stopper_free(aie_stopper_t *st);
/*
 * Adds text; *out receives what may now be emitted (valid until the next
 * call).  Returns 1 when a stop sequence was found: *out is the text before
 * it and the rest is dropped.  Returns -1 when out of memory.
 */
int aie_stopper_push(aie_stopper_t *st, const char *text, size_t len,
    const char **out, size_t *out_len);
/* emits whatever is held */
void aie_stopper_flush(aie_stopper_t *st, const char **out,
    size_t *out_len);

#endif /* AIE_STREAM_H */
