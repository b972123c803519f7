
/*
 * The plugin host's tree-free JSON readers against jansson, on any bytes:
 *
 * - aigw_json_choices() on the payload, as an answer ("message") and as a
 *   chunk ("delta"): every span lies inside the payload, and when jansson
 *   parses it too, each object of choices[] gives the same index, the same
 *   content string (decoded from the span) and the same finish_reason
 *   kind;
 * - aigw_json_unescape() of a string's contents is jansson's string, and
 *   aigw_json_escape() of it reads back the same;
 * - aigw_run_request_bytes() with an empty chain reads any payload without
 *   a fault.
 */

#include <jansson.h>

#include "aigw_plugin_host.h"
#include "fuzz_common.h"


#define FUZZ_CHOICES  16


static void
fuzz_choices(const char *p, size_t len, json_t *root, const char *member)
{
    int                  n, k;
    char                *dec, *enc, *q;
    size_t               i, dlen, elen, qlen;
    json_t              *choices, *c, *m, *content, *idx, *fin, *back;
    aigw_choice_span_t   cs[FUZZ_CHOICES];

    n = aigw_json_choices(p, len, member, cs, FUZZ_CHOICES);

    for (k = 0; k < n; k++) {
        FUZZ_CHECK(cs[k].obj <= len && cs[k].vstart <= cs[k].vend
                   && cs[k].vend <= len);
        FUZZ_CHECK(!cs[k].content_string
                   || (cs[k].vend - cs[k].vstart >= 2
                       && p[cs[k].vstart] == '"' && p[cs[k].vend - 1] == '"'));
    }

    if (n < 0 || root == NULL) {
        return;
    }

    choices = json_object_get(root, "choices");
    FUZZ_CHECK(json_is_array(choices));

    k = 0;

    json_array_foreach(choices, i, c) {
        if (!json_is_object(c)) {
            continue;
        }

        FUZZ_CHECK(k < n);

        idx = json_object_get(c, "index");
        FUZZ_CHECK(cs[k].index
                   == (unsigned long long) json_integer_value(idx));

        fin = json_object_get(c, "finish_reason");
        FUZZ_CHECK(cs[k].finish == json_is_string(fin));

        m = json_object_get(c, member);
        FUZZ_CHECK((cs[k].obj != 0) == json_is_object(m));

        content = json_object_get(m, "content");
        FUZZ_CHECK(cs[k].content_string == json_is_string(content));

        if (cs[k].content_string) {
            q = (char *) p + cs[k].vstart + 1;
            qlen = cs[k].vend - cs[k].vstart - 2;

            dec = malloc(qlen + 1);
            FUZZ_CHECK(dec != NULL);
            FUZZ_CHECK(aigw_json_unescape(q, qlen, dec, &dlen) == 0);
            FUZZ_CHECK(dlen == json_string_length(content)
                       && memcmp(dec, json_string_value(content), dlen)
                          == 0);

            /* written out again, it reads back the same */
            elen = aigw_json_escape(NULL, dec, dlen);
            enc = malloc(elen + 3);
            FUZZ_CHECK(enc != NULL);
            enc[0] = '"';
            FUZZ_CHECK(aigw_json_escape(enc + 1, dec, dlen) == elen);
            enc[elen + 1] = '"';
            back = json_loadb(enc, elen + 2, JSON_DECODE_ANY, NULL);
            FUZZ_CHECK(json_is_string(back)
                       && json_string_length(back) == dlen
                       && memcmp(json_string_value(back), dec, dlen) == 0);
            json_decref(back);
            free(enc);
            free(dec);
        }

        k++;
    }

    FUZZ_CHECK(k == n);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t          *root;
    aigw_run_t      *run;
    aigw_chain_t     chain = { NULL, 0 };
    aigw_request_t   req;
    aigw_verdict_t   v;
    const char      *p = (const char *) data;

    root = json_loadb(p, size, 0, NULL);

    fuzz_choices(p, size, root, "message");
    fuzz_choices(p, size, root, "delta");

    json_decref(root);

    memset(&req, 0, sizeof(aigw_request_t));
    req.tenant = "";
    req.model = "m";
    req.endpoint = "chat/completions";

    run = aigw_run_start(&chain, &req, &v);
    FUZZ_CHECK(run != NULL);
    (void) aigw_run_request_bytes(run, p, size, &v);
    aigw_run_end(run);

    return 0;
}
