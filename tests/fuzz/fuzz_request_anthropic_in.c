
/*
 * The Anthropic-compatible inbound endpoint (POST /v1/messages): an
 * Anthropic request (arbitrary JSON) to an OpenAI one with
 * ai_anthropic_in_request(), then what the module does next with it:
 * ai_request_validate() for chat, the cache key, and the translation back
 * to an Anthropic provider's body.  A refusal must carry a message; an
 * accepted request becomes a JSON object.
 */

#include <jansson.h>

#include "ai_cache.h"
#include "ai_translate.h"
#include "fuzz_common.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t               *req, *openai;
    ai_buf_t              out, path;
    unsigned char         d[AI_CACHE_KEY_LEN];
    ai_json_error_t       err;
    ai_translate_opts_t   o;

    req = json_loadb((const char *) data, size, 0, NULL);
    if (req == NULL) {
        return 0;
    }

    memset(&err, 0, sizeof(err));
    openai = ai_anthropic_in_request(req, &err);

    if (openai == NULL) {
        FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
        json_decref(req);
        return 0;
    }

    FUZZ_CHECK(json_is_object(openai));

    memset(&err, 0, sizeof(err));

    if (ai_request_validate(openai, AI_EP_CHAT, &err) == 0) {
        ai_cache_cacheable(openai, AI_EP_CHAT, 0);
        ai_cache_key(openai, AI_EP_CHAT, "m", 1, NULL, d);

        memset(&o, 0, sizeof(o));
        o.endpoint = AI_EP_CHAT;
        o.model = "claude";
        o.model_len = 6;
        o.client_model = "client-model";
        o.client_model_len = 12;
        o.default_max_tokens = 1024;
        o.stream = json_is_true(json_object_get(openai, "stream"));
        o.created = 1700000000;

        memset(&out, 0, sizeof(out));
        memset(&path, 0, sizeof(path));
        ai_translate_request(AI_FORMAT_ANTHROPIC, openai, &o, &out, &path,
                             &err);
        ai_buf_free(&out);
        ai_buf_free(&path);
    }

    json_decref(openai);
    json_decref(req);

    return 0;
}
