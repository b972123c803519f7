
/*
 * OpenAI requests to the providers' bodies (Anthropic Messages, and
 * Gemini beside it) on arbitrary JSON.  The module translates a body once
 * one of its validators has accepted it: ai_scan() + ai_scan_validate()
 * on the fast path, ai_request_validate() on the jansson tree otherwise;
 * the target does the same, then asks for the translation with streaming
 * on and off.  A translated body must be one JSON object and the path
 * must be set; a refusal must carry a message.
 */

#include <jansson.h>

#include "ai_scan.h"
#include "ai_translate.h"
#include "fuzz_common.h"


static const uint8_t  *fuzz_body;
static size_t          fuzz_body_len;


static void
fuzz_translate(int format, json_t *req, int stream)
{
    int                  rc;
    json_t              *v;
    ai_buf_t             out, path;
    ai_json_error_t      err;
    ai_translate_opts_t  o;

    memset(&o, 0, sizeof(o));
    o.endpoint = AI_EP_CHAT;
    o.model = "provider-model";
    o.model_len = 14;
    o.client_model = "client-model";
    o.client_model_len = 12;
    o.default_max_tokens = 1024;
    o.stream = stream;
    o.include_usage = stream;
    o.created = 1700000000;

    memset(&out, 0, sizeof(out));
    memset(&path, 0, sizeof(path));
    memset(&err, 0, sizeof(err));

    rc = ai_translate_request(format, req, &o, &out, &path, &err);

    {
        /* the fast path from the bytes, when it takes them, agrees */

        int       raw;
        ai_buf_t  rout, rpath;

        memset(&rout, 0, sizeof(rout));
        memset(&rpath, 0, sizeof(rpath));

        raw = ai_translate_request_raw(format, (const char *) fuzz_body,
                                       fuzz_body_len, &o, &rout, &rpath);

        FUZZ_CHECK(raw == 0 || raw == 1);

        if (raw == 0
            && (rc != 0 || rout.len != out.len
                || memcmp(rout.data, out.data, out.len) != 0
                || rpath.len != path.len
                || memcmp(rpath.data, path.data, path.len) != 0))
        {
            fprintf(stderr, "fuzz: fast and jansson requests differ:\n"
                    "%.*s\n---\n%.*s\n", (int) rout.len, rout.data,
                    rc == 0 ? (int) out.len : 0, rc == 0 ? out.data : "");
            FUZZ_CHECK(!"the fast path writes what jansson's does");
        }

        ai_buf_free(&rout);
        ai_buf_free(&rpath);
    }

    if (rc == 0) {
        v = json_loadb(out.data, out.len, 0, NULL);
        FUZZ_CHECK(json_is_object(v));
        json_decref(v);
        FUZZ_CHECK(path.len > 0);

    } else {
        FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
        FUZZ_CHECK(err.message[0] != '\0');
    }

    ai_buf_free(&out);
    ai_buf_free(&path);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               fast, tree;
    char              serr[256];
    json_t           *req;
    ai_scan_t         s;
    ai_json_error_t   err;

    fast = ai_scan(data, size, &s, serr, sizeof(serr)) == 0
           && ai_scan_validate(&s, AI_EP_CHAT, &err) == 0;

    req = json_loadb((const char *) data, size, 0, NULL);
    if (req == NULL) {
        return 0;
    }

    memset(&err, 0, sizeof(err));
    tree = ai_request_validate(req, AI_EP_CHAT, &err) == 0;

    fuzz_body = data;
    fuzz_body_len = size;

    if (fast || tree) {
        fuzz_translate(AI_FORMAT_ANTHROPIC, req, 0);
        fuzz_translate(AI_FORMAT_ANTHROPIC, req, 1);
        fuzz_translate(AI_FORMAT_GEMINI, req, 0);
        fuzz_translate(AI_FORMAT_GEMINI, req, 1);
    }

    json_decref(req);

    return 0;
}
