
/*
 * The Anthropic-compatible inbound endpoint: an Anthropic Messages request
 * becomes an OpenAI chat request for the gateway's usual path, and the
 * OpenAI answer (whole, error or SSE chunks) goes back in Anthropic's
 * shapes.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_translate.h"


static int ai_ain_system(json_t *msgs, json_t *system, ai_json_error_t *err);
static int ai_ain_message(json_t *msgs, json_t *m, size_t i,
    ai_json_error_t *err);
static json_t *ai_ain_image(json_t *block);
static json_t *ai_ain_tool_result(json_t *block, const char *where,
    ai_json_error_t *err);
static int ai_ain_tools(json_t *req, json_t *body, ai_json_error_t *err);
static const char *ai_ain_stop_reason(const char *finish);
static const char *ai_ain_error_type(int status, const char *type);
static int ai_ain_error(ai_buf_t *out, const char *type, const char *msg);
static int ai_ain_stream_event(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out);
static int ai_ain_stream_finish(ai_stream_t *s, int complete,
    ai_buf_t *out);
static int ai_ain_open(ai_stream_t *s, ai_buf_t *out);
static int ai_ain_close_block(ai_stream_t *s, ai_buf_t *out);
static int ai_ain_end(ai_stream_t *s, ai_buf_t *out);


json_t *
ai_anthropic_in_request(json_t *req, ai_json_error_t *err)
{
    size_t       i;
    json_t      *body, *msgs, *v, *m;
    const char  *model;

    if (!json_is_object(req)) {
        ai_translate_err(err, "invalid_type", NULL,
                         "The request body must be a JSON object.");
        return NULL;
    }

    model = ai_json_str(req, "model");

    if (model == NULL || *model == '\0') {
        ai_translate_err(err, "missing_required_parameter", "model",
                         "model: Field required");
        return NULL;
    }

    v = json_object_get(req, "messages");

    if (!json_is_array(v)) {
        ai_translate_err(err, "missing_required_parameter", "messages",
                         "messages: Field required");
        return NULL;
    }

    body = json_pack("{s:s}", "model", model);
    msgs = json_array();

    if (body == NULL || msgs == NULL
        || json_object_set_new(body, "messages", msgs) != 0)
    {
        json_decref(body);
        ai_translate_err(err, "internal_error", NULL, "Out of memory.");
        return NULL;
    }

    if (ai_ain_system(msgs, json_object_get(req, "system"), err) != 0) {
        goto failed;
    }

    json_array_foreach(v, i, m) {
        if (ai_ain_message(msgs, m, i, err) != 0) {
            goto failed;
        }
    }

    v = json_object_get(req, "max_tokens");

    if (v && !json_is_integer(v)) {
        ai_translate_err(err, "invalid_type", "max_tokens",
                         "max_tokens: Input should be a valid integer");
        goto failed;
    }

    if (v) {
        json_object_set(body, "max_tokens", v);
    }

    v = json_object_get(req, "stop_sequences");

    if (json_is_array(v) && json_array_size(v)) {
        json_object_set(body, "stop", v);
    }

    v = json_object_get(req, "temperature");

    if (json_is_number(v)) {
        json_object_set(body, "temperature", v);
    }

    v = json_object_get(req, "top_p");

    if (json_is_number(v)) {
        json_object_set(body, "top_p", v);
    }

    /* top_k has no OpenAI equivalent and is dropped */

    v = json_object_get(json_object_get(req, "metadata"), "user_id");

    if (json_is_string(v)) {
        json_object_set(body, "user", v);
    }

    if (ai_ain_tools(req, body, err) != 0) {
        goto failed;
    }

    if (json_is_true(json_object_get(req, "stream"))) {
        json_object_set_new(body, "stream", json_true());
        json_object_set_new(body, "stream_options",
                            json_pack("{s:b}", "include_usage", 1));
    }

    return body;

failed:

    json_decref(body);

    return NULL;
}


static int
ai_ain_system(json_t *msgs, json_t *system, ai_json_error_t *err)
{
    json_t  *text;

    if (system == NULL || json_is_null(system)) {
        return 0;
    }

    text = ai_text_of(system, "\n");

    if (text == NULL) {
        ai_translate_err(err, "invalid_value", "system",
                         "system: expected a string or text blocks");
        return -1;
    }

    return json_array_append_new(msgs, json_pack("{s:s,s:o}", "role",
                                                 "system", "content", text));
}


/*
 * One Anthropic turn may become several OpenAI messages: its tool results
 * go first, each as a "tool" message, then the rest.
 */

static int
ai_ain_message(json_t *msgs, json_t *m, size_t i, ai_json_error_t *err)
{
    size_t       j;
    json_t      *content, *b, *parts, *calls, *part, *msg;
    ai_buf_t     text;
    const char  *role, *type, *s;
    char         where[64], *args;

    role = ai_json_str(m, "role");
    content = json_object_get(m, "content");

    if (role == NULL
        || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
    {
        snprintf(where, sizeof(where), "messages.%zu.role", i);
        ai_translate_err(err, "invalid_value", where,
                         "%s: Input should be 'user' or 'assistant'", where);
        return -1;
    }

    if (json_is_string(content)) {
        return json_array_append_new(msgs,
                                     json_pack("{s:s,s:O}", "role", role,
                                               "content", content));
    }

    if (!json_is_array(content)) {
        snprintf(where, sizeof(where), "messages.%zu.content", i);
        ai_translate_err(err, "invalid_type", where,
                         "%s: Input should be a valid list", where);
        return -1;
    }

    parts = json_array();
    calls = json_array();
    memset(&text, 0, sizeof(ai_buf_t));

    if (parts == NULL || calls == NULL || ai_buf_append(&text, "", 0) != 0) {
        goto nomem;
    }

    json_array_foreach(content, j, b) {
        snprintf(where, sizeof(where), "messages.%zu.content.%zu", i, j);
        type = ai_json_str(b, "type");

        if (type == NULL) {
            goto bad;
        }

        if (strcmp(type, "text") == 0) {
            s = ai_json_str(b, "text");

            if (s == NULL) {
                goto bad;
            }

            if (role[0] == 'a') {
                if (ai_buf_append_str(&text, s) != 0) {
                    goto nomem;
                }

                continue;
            }

            part = json_pack("{s:s,s:s}", "type", "text", "text", s);

        } else if (strcmp(type, "image") == 0 && role[0] == 'u') {
            part = ai_ain_image(b);

            if (part == NULL) {
                goto bad;
            }

        } else if (strcmp(type, "tool_use") == 0 && role[0] == 'a') {
            args = json_dumps(json_object_get(b, "input"),
                              JSON_COMPACT | JSON_ENCODE_ANY);
            s = ai_json_str(b, "id");

            if (s == NULL || ai_json_str(b, "name") == NULL) {
                free(args);
                goto bad;
            }

            part = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", s,
                             "type", "function", "function",
                             "name", ai_json_str(b, "name"),
                             "arguments", args ? args : "{}");
            free(args);

            if (json_array_append_new(calls, part) != 0) {
                goto nomem;
            }

            continue;

        } else if (strcmp(type, "tool_result") == 0 && role[0] == 'u') {
            msg = ai_ain_tool_result(b, where, err);

            if (msg == NULL) {
                goto failed;
            }

            if (json_array_append_new(msgs, msg) != 0) {
                goto nomem;
            }

            continue;

        } else if (strcmp(type, "thinking") == 0
                   || strcmp(type, "redacted_thinking") == 0)
        {
            continue;

        } else {
            ai_translate_err(err, "invalid_value", where,
                             "%s: content blocks of type '%s' are not "
                             "supported here", where, type);
            goto failed;
        }

        if (json_array_append_new(parts, part) != 0) {
            goto nomem;
        }
    }

    if (role[0] == 'a') {
        if (text.len == 0 && json_array_size(calls) == 0) {
            goto done;
        }

        msg = json_pack("{s:s}", "role", "assistant");

        if (msg == NULL) {
            goto nomem;
        }

        json_object_set_new(msg, "content",
                            text.len ? json_stringn(text.data, text.len)
                                     : json_null());

        if (json_array_size(calls)) {
            json_object_set(msg, "tool_calls", calls);
        }

    } else {
        if (json_array_size(parts) == 0) {
            goto done;
        }

        msg = json_pack("{s:s,s:O}", "role", "user", "content", parts);
    }

    if (json_array_append_new(msgs, msg) != 0) {
        goto nomem;
    }

done:

    json_decref(parts);
    json_decref(calls);
    ai_buf_free(&text);

    return 0;

bad:

    ai_translate_err(err, "invalid_value", where,
                     "%s: invalid content block", where);
    goto failed;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");

failed:

    json_decref(parts);
    json_decref(calls);
    ai_buf_free(&text);

    return -1;
}


static json_t *
ai_ain_image(json_t *block)
{
    json_t      *src, *url;
    const char  *type, *mt, *data;

    src = json_object_get(block, "source");
    type = ai_json_str(src, "type");

    if (type && strcmp(type, "url") == 0 && ai_json_str(src, "url")) {
        return json_pack("{s:s,s:{s:s}}", "type", "image_url", "image_url",
                         "url", ai_json_str(src, "url"));
    }

    mt = ai_json_str(src, "media_type");
    data = ai_json_str(src, "data");

    if (type == NULL || strcmp(type, "base64") != 0 || mt == NULL
        || data == NULL)
    {
        return NULL;
    }

    url = json_sprintf("data:%s;base64,%s", mt, data);

    return json_pack("{s:s,s:{s:o}}", "type", "image_url", "image_url",
                     "url", url);
}


static json_t *
ai_ain_tool_result(json_t *block, const char *where, ai_json_error_t *err)
{
    size_t       i;
    json_t      *content, *text, *b;
    ai_buf_t     buf;
    const char  *id, *s;

    id = ai_json_str(block, "tool_use_id");
    content = json_object_get(block, "content");

    if (id == NULL) {
        ai_translate_err(err, "invalid_value", where,
                         "%s.tool_use_id: Field required", where);
        return NULL;
    }

    if (json_is_array(content)) {
        /* OpenAI tool messages are text: images in a result are dropped */

        memset(&buf, 0, sizeof(ai_buf_t));

        if (ai_buf_append(&buf, "", 0) != 0) {
            return NULL;
        }

        json_array_foreach(content, i, b) {
            s = ai_json_str(b, "text");

            if (s && ((buf.len && ai_buf_append_str(&buf, "\n") != 0)
                      || ai_buf_append_str(&buf, s) != 0))
            {
                ai_buf_free(&buf);
                return NULL;
            }
        }

        text = json_stringn(buf.data, buf.len);
        ai_buf_free(&buf);

    } else if (json_is_string(content)) {
        text = json_incref(content);

    } else {
        text = json_string("");
    }

    return json_pack("{s:s,s:s,s:o}", "role", "tool", "tool_call_id", id,
                     "content", text);
}


static int
ai_ain_tools(json_t *req, json_t *body, ai_json_error_t *err)
{
    size_t       i;
    json_t      *tools, *t, *out, *fn, *choice, *c;
    const char  *name, *type;
    char         where[64];

    tools = json_object_get(req, "tools");

    if (json_is_array(tools) && json_array_size(tools)) {
        out = json_array();

        if (out == NULL || json_object_set_new(body, "tools", out) != 0) {
            goto nomem;
        }

        json_array_foreach(tools, i, t) {
            name = ai_json_str(t, "name");
            type = ai_json_str(t, "type");

            if (name == NULL || (type && strcmp(type, "custom") != 0)) {
                snprintf(where, sizeof(where), "tools.%zu", i);
                ai_translate_err(err, "invalid_value", where,
                                 "%s: only custom tools with a name are "
                                 "supported here", where);
                return -1;
            }

            fn = json_pack("{s:s}", "name", name);

            if (fn == NULL) {
                goto nomem;
            }

            if (json_is_string(json_object_get(t, "description"))) {
                json_object_set(fn, "description",
                                json_object_get(t, "description"));
            }

            if (json_is_object(json_object_get(t, "input_schema"))) {
                json_object_set(fn, "parameters",
                                json_object_get(t, "input_schema"));
            }

            if (json_array_append_new(out, json_pack("{s:s,s:o}", "type",
                                                     "function", "function",
                                                     fn)) != 0)
            {
                goto nomem;
            }
        }
    }

    choice = json_object_get(req, "tool_choice");
    type = ai_json_str(choice, "type");

    if (type == NULL) {
        return 0;
    }

    if (strcmp(type, "auto") == 0) {
        c = json_string("auto");

    } else if (strcmp(type, "any") == 0) {
        c = json_string("required");

    } else if (strcmp(type, "none") == 0) {
        c = json_string("none");

    } else if (strcmp(type, "tool") == 0 && ai_json_str(choice, "name")) {
        c = json_pack("{s:s,s:{s:s}}", "type", "function", "function",
                      "name", ai_json_str(choice, "name"));

    } else {
        ai_translate_err(err, "invalid_value", "tool_choice",
                         "tool_choice: Input tag '%s' does not match the "
                         "expected tags", type);
        return -1;
    }

    if (json_object_set_new(body, "tool_choice", c) != 0) {
        goto nomem;
    }

    if (json_is_true(json_object_get(choice, "disable_parallel_tool_use"))) {
        json_object_set_new(body, "parallel_tool_calls", json_false());
    }

    return 0;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");
    return -1;
}


int
ai_anthropic_in_response(int status, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out)
{
    int          rc;
    size_t       i;
    char         id[160];
    json_t      *root, *e, *choice, *msg, *content, *tc, *input, *usage;
    json_t      *resp;
    const char  *s, *text;
    long         prompt, cached;

    root = json_loadb(body, len, 0, NULL);
    e = json_object_get(root, "error");

    if (status >= 400 || e != NULL) {
        s = ai_json_str(e, "message");

        if (s == NULL) {
            s = json_string_value(e);
        }

        rc = ai_ain_error(out, ai_ain_error_type(status,
                                                 ai_json_str(e, "type")),
                          s ? s : "The upstream request failed.");
        json_decref(root);
        return rc;
    }

    choice = json_array_get(json_object_get(root, "choices"), 0);
    msg = json_object_get(choice, "message");

    if (!json_is_object(msg)) {
        json_decref(root);
        return -1;
    }

    content = json_array();
    resp = NULL;
    rc = -1;

    text = ai_json_str(msg, "content");

    if (text == NULL) {
        text = ai_json_str(msg, "refusal");
    }

    if (text && *text
        && json_array_append_new(content,
                                 json_pack("{s:s,s:s}", "type", "text",
                                           "text", text)) != 0)
    {
        goto done;
    }

    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc) {
        s = ai_json_str(json_object_get(tc, "function"), "arguments");

        /* Anthropic's input is an object: arguments that are not one,
           which models sometimes produce, become an empty object */

        input = s ? json_loads(s, 0, NULL) : NULL;

        if (!json_is_object(input)) {
            json_decref(input);
            input = json_object();
        }

        if (json_array_append_new(content,
                json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use",
                          "id", ai_json_str(tc, "id")
                                ? ai_json_str(tc, "id") : "",
                          "name", ai_json_str(json_object_get(tc,
                                                              "function"),
                                              "name")
                                  ? ai_json_str(json_object_get(tc,
                                                                "function"),
                                                "name") : "",
                          "input", input)) != 0)
        {
            goto done;
        }
    }

    s = ai_json_str(root, "id");

    if (s && strncmp(s, "chatcmpl-", 9) == 0) {
        s += 9;
    }

    snprintf(id, sizeof(id), "msg_%s", s ? s : "gateway");

    usage = json_object_get(root, "usage");
    prompt = ai_json_long(usage, "prompt_tokens", 0);
    cached = ai_json_long(json_object_get(usage, "prompt_tokens_details"),
                          "cached_tokens", 0);

    resp = json_pack("{s:s,s:s,s:s,s:s%,s:O,s:s,s:n,s:{s:I,s:I,s:I,s:I}}",
                     "id", id,
                     "type", "message",
                     "role", "assistant",
                     "model", o->client_model ? o->client_model : "",
                       o->client_model ? o->client_model_len : 0,
                     "content", content,
                     "stop_reason",
                       ai_ain_stop_reason(ai_json_str(choice,
                                                      "finish_reason")),
                     "stop_sequence",
                     "usage",
                       "input_tokens", (json_int_t) (prompt - cached),
                       "cache_creation_input_tokens", (json_int_t) 0,
                       "cache_read_input_tokens", (json_int_t) cached,
                       "output_tokens",
                       (json_int_t) ai_json_long(usage, "completion_tokens",
                                                 0));

    if (resp) {
        rc = ai_buf_append_json(out, resp);
    }

done:

    json_decref(resp);
    json_decref(content);
    json_decref(root);

    return rc;
}


static const char *
ai_ain_stop_reason(const char *finish)
{
    if (finish == NULL || strcmp(finish, "stop") == 0) {
        return "end_turn";
    }

    if (strcmp(finish, "length") == 0) {
        return "max_tokens";
    }

    if (strcmp(finish, "tool_calls") == 0
        || strcmp(finish, "function_call") == 0)
    {
        return "tool_use";
    }

    if (strcmp(finish, "content_filter") == 0) {
        return "refusal";
    }

    return "end_turn";
}


static const char *
ai_ain_error_type(int status, const char *type)
{
    if (type && strcmp(type, "rate_limit_error") == 0) {
        return "rate_limit_error";
    }

    switch (status) {
    case 400:
    case 422:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    case 504:
        return "timeout_error";
    default:
        return status >= 400 && status < 500 ? "invalid_request_error"
                                             : "api_error";
    }
}


static int
ai_ain_error(ai_buf_t *out, const char *type, const char *msg)
{
    int      rc;
    json_t  *e;

    e = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error",
                  "type", type, "message", msg);
    rc = ai_buf_append_json(out, e);
    json_decref(e);

    return rc;
}


ai_stream_t *
ai_anthropic_in_stream_new(const ai_translate_opts_t *o)
{
    ai_stream_t  *s;

    s = ai_stream_alloc(AI_FORMAT_ANTHROPIC_IN, o);

    if (s == NULL) {
        return NULL;
    }

    s->on_event = ai_ain_stream_event;
    s->on_finish = ai_ain_stream_finish;
    snprintf(s->id, sizeof(s->id), "msg_gateway");

    return s;
}


static int
ai_ain_stream_event(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out)
{
    int          rc, index;
    size_t       i;
    json_t      *root, *e, *choice, *delta, *usage, *tc, *fn;
    const char  *str, *id;

    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        return ai_ain_end(s, out);
    }

    root = json_loadb(ev->data, ev->data_len, 0, NULL);

    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }

    rc = 0;
    e = json_object_get(root, "error");

    if (e) {
        str = ai_json_str(e, "message");
        s->done = 1;
        rc = ai_sse_emit(out, "error",
                 json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error",
                           "type", ai_ain_error_type(500,
                                                     ai_json_str(e, "type")),
                           "message", str ? str : "The upstream failed."));
        goto done;
    }

    if (!s->started) {
        str = ai_json_str(root, "id");

        if (str && strncmp(str, "chatcmpl-", 9) == 0) {
            str += 9;
        }

        if (str) {
            snprintf(s->id, sizeof(s->id), "msg_%s", str);
        }
    }

    usage = json_object_get(root, "usage");

    if (json_is_object(usage)) {
        s->usage.prompt_tokens = ai_json_long(usage, "prompt_tokens", 0);
        s->usage.completion_tokens = ai_json_long(usage, "completion_tokens",
                                                  0);
        s->usage.cached_tokens =
            ai_json_long(json_object_get(usage, "prompt_tokens_details"),
                         "cached_tokens", 0);
        s->usage.seen = 1;
    }

    choice = json_array_get(json_object_get(root, "choices"), 0);

    if (choice == NULL) {
        goto done;
    }

    if (ai_ain_open(s, out) != 0) {
        rc = -1;
        goto done;
    }

    delta = json_object_get(choice, "delta");
    str = ai_json_str(delta, "content");

    if (str == NULL) {
        str = ai_json_str(delta, "refusal");
    }

    if (str && *str) {
        if (s->block_open != 1) {
            if (ai_ain_close_block(s, out) != 0
                || ai_sse_emit(out, "content_block_start",
                       json_pack("{s:s,s:i,s:{s:s,s:s}}",
                                 "type", "content_block_start",
                                 "index", s->block_index,
                                 "content_block", "type", "text",
                                 "text", "")) != 0)
            {
                rc = -1;
                goto done;
            }

            s->block_open = 1;
        }

        if (ai_sse_emit(out, "content_block_delta",
                json_pack("{s:s,s:i,s:{s:s,s:s}}",
                          "type", "content_block_delta",
                          "index", s->block_index,
                          "delta", "type", "text_delta", "text", str)) != 0)
        {
            rc = -1;
            goto done;
        }
    }

    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc) {
        index = (int) ai_json_long(tc, "index", 0);
        id = ai_json_str(tc, "id");
        fn = json_object_get(tc, "function");

        if (s->block_open != 2 || index != s->tool_index || id) {
            char  gen[32];

            snprintf(gen, sizeof(gen), "toolu_gateway_%d", index);

            if (ai_ain_close_block(s, out) != 0
                || ai_sse_emit(out, "content_block_start",
                       json_pack("{s:s,s:i,s:{s:s,s:s,s:s,s:{}}}",
                                 "type", "content_block_start",
                                 "index", s->block_index,
                                 "content_block", "type", "tool_use",
                                 "id", id ? id : gen,
                                 "name", ai_json_str(fn, "name")
                                         ? ai_json_str(fn, "name") : "",
                                 "input")) != 0)
            {
                rc = -1;
                goto done;
            }

            s->block_open = 2;
            s->tool_index = index;
        }

        str = ai_json_str(fn, "arguments");

        if (str && *str
            && ai_sse_emit(out, "content_block_delta",
                   json_pack("{s:s,s:i,s:{s:s,s:s}}",
                             "type", "content_block_delta",
                             "index", s->block_index,
                             "delta", "type", "input_json_delta",
                             "partial_json", str)) != 0)
        {
            rc = -1;
            goto done;
        }
    }

    str = ai_json_str(choice, "finish_reason");

    if (str) {
        s->stop_reason = ai_ain_stop_reason(str);
        s->finished |= 1;
    }

done:

    json_decref(root);

    return rc;
}


static int
ai_ain_open(ai_stream_t *s, ai_buf_t *out)
{
    if (s->started) {
        return 0;
    }

    s->started = 1;

    /* input tokens are known only at the end: message_delta has them */

    return ai_sse_emit(out, "message_start",
               json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:[],s:n,s:n,"
                         "s:{s:i,s:i}}}",
                         "type", "message_start",
                         "message",
                           "id", s->id,
                           "type", "message",
                           "role", "assistant",
                           "model", s->client_model,
                           "content",
                           "stop_reason",
                           "stop_sequence",
                           "usage", "input_tokens", 0, "output_tokens", 0));
}


static int
ai_ain_close_block(ai_stream_t *s, ai_buf_t *out)
{
    if (s->block_open == 0) {
        return 0;
    }

    s->block_open = 0;

    return ai_sse_emit(out, "content_block_stop",
                       json_pack("{s:s,s:i}", "type", "content_block_stop",
                                 "index", s->block_index++));
}


static int
ai_ain_end(ai_stream_t *s, ai_buf_t *out)
{
    long  cached;

    if (s->done) {
        return 0;
    }

    s->done = 1;
    cached = s->usage.cached_tokens;

    if (ai_ain_open(s, out) != 0
        || ai_ain_close_block(s, out) != 0
        || ai_sse_emit(out, "message_delta",
               json_pack("{s:s,s:{s:s,s:n},s:{s:I,s:I,s:I}}",
                         "type", "message_delta",
                         "delta",
                           "stop_reason",
                           s->stop_reason ? s->stop_reason : "end_turn",
                           "stop_sequence",
                         "usage",
                           "input_tokens",
                           (json_int_t) (s->usage.prompt_tokens - cached),
                           "cache_read_input_tokens", (json_int_t) cached,
                           "output_tokens",
                           (json_int_t) s->usage.completion_tokens)) != 0
        || ai_sse_emit(out, "message_stop",
                       json_pack("{s:s}", "type", "message_stop")) != 0)
    {
        return -1;
    }

    return 0;
}


/*
 * Without "[DONE]" the answer is whole if a finish_reason came; if not,
 * Anthropic clients are told with an error event.
 */

static int
ai_ain_stream_finish(ai_stream_t *s, int complete, ai_buf_t *out)
{
    (void) complete;

    if (s->finished) {
        return ai_ain_end(s, out);
    }

    s->done = 1;

    return ai_sse_emit(out, "error",
               json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error",
                         "type", "api_error",
                         "message", "The upstream stream ended before it "
                                    "was complete."));
}
