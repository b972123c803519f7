
/*
 * The whole-response translators: a provider's body (any bytes) with a
 * status to an OpenAI body (Anthropic, Gemini, the OpenAI/Azure
 * pass-through), and an OpenAI body to an Anthropic one (the inbound
 * /v1/messages endpoint).  Header byte 2 picks the translator (bits 0-1),
 * the endpoint (bit 2) and the status (bits 4-7, from a table).  On
 * success the output must be one JSON object.
 */

#include <jansson.h>

#include "ai_translate.h"
#include "fuzz_common.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  rc, format, status;
    json_t              *v;
    ai_buf_t             out;
    fuzz_input_t         in;
    ai_translate_opts_t  o;

    static const int  formats[] = { AI_FORMAT_ANTHROPIC, AI_FORMAT_GEMINI,
                                    AI_FORMAT_OPENAI, -1 };
    static const int  statuses[] = { 200, 200, 200, 200, 200, 201, 400, 401,
                                     403, 404, 413, 429, 500, 502, 503, 529 };

    if (fuzz_input(data, size, &in) != 0) {
        return 0;
    }

    format = formats[in.flags & 3];
    status = statuses[(in.flags >> 4) & 15];

    memset(&o, 0, sizeof(o));
    o.endpoint = (in.flags & 4) ? AI_EP_COMPLETIONS : AI_EP_CHAT;
    o.model = "provider-model";
    o.model_len = 14;
    o.client_model = "client-model";
    o.client_model_len = 12;
    o.default_max_tokens = 1024;
    o.created = 1700000000;

    memset(&out, 0, sizeof(out));

    if (format == -1) {
        rc = ai_anthropic_in_response(status, (const char *) in.data, in.len,
                                      &o, &out);
    } else {
        rc = ai_translate_response(format, status, (const char *) in.data,
                                   in.len, &o, &out);
    }

    if (rc == 0 && format != AI_FORMAT_OPENAI) {
        v = json_loadb(out.data, out.len, 0, NULL);

        if (!json_is_object(v)) {
            fprintf(stderr, "fuzz: output is not a JSON object: %.*s\n",
                    (int) (out.len > 300 ? 300 : out.len), out.data);
            FUZZ_CHECK(!"a translated body is a JSON object");
        }

        json_decref(v);
    }

    if (format == AI_FORMAT_ANTHROPIC) {
        /* the fast reader of answers and jansson alone agree exactly */

        int       rc2;
        ai_buf_t  other;

        memset(&other, 0, sizeof(other));
        o.tree_only = 1;

        rc2 = ai_translate_response(format, status, (const char *) in.data,
                                    in.len, &o, &other);

        if (rc2 != rc || other.len != out.len
            || (out.len && memcmp(other.data, out.data, out.len) != 0))
        {
            fprintf(stderr, "fuzz: fast and jansson answers differ "
                    "(rc %d/%d):\n%.*s\n---\n%.*s\n", rc, rc2,
                    (int) out.len, out.data, (int) other.len, other.data);
            FUZZ_CHECK(!"the fast path writes what jansson's does");
        }

        ai_buf_free(&other);
    }

    ai_buf_free(&out);

    return 0;
}
