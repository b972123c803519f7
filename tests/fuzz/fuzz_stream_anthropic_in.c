
/* The anthropic_in stream translator: see fuzz_stream.h. */

#include "ai_translate.h"

#define FUZZ_STREAM_FORMAT  AI_FORMAT_ANTHROPIC_IN

#include "fuzz_stream.h"
