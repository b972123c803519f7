
/* The gemini stream translator: see fuzz_stream.h. */

#include "ai_translate.h"

#define FUZZ_STREAM_FORMAT  AI_FORMAT_GEMINI

#include "fuzz_stream.h"
