
/*
 * Anthropic Messages: OpenAI chat requests to Anthropic's body, and
 * Anthropic's answers (whole, error or event stream) back to OpenAI's.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_translate.h"


static json_t *ai_anth_messages(json_t *messages, json_t *system,
    ai_json_error_t *err);
static json_t *ai_anth_content(json_t *content, const char *where,
    ai_json_error_t *err);
static json_t *ai_anth_image(json_t *part, const char *where,
    ai_json_error_t *err);
static int ai_anth_tool_calls(json_t *blocks, json_t *calls, size_t i,
    ai_json_error_t *err);
static int ai_anth_push(json_t *msgs, const char *role, json_t *blocks);
static int ai_anth_finalize(json_t *msgs);
static int ai_anth_tools(json_t *body, json_t *req, ai_json_error_t *err);
static int ai_anth_params(json_t *body, json_t *req,
    const ai_translate_opts_t *o, ai_json_error_t *err);
static const char *ai_anth_finish(const char *stop_reason);
static void ai_anth_error_type(const char *atype, int status,
    const char **type, const char **code);
static int ai_anth_stream_event(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out);
static int ai_anth_stream_finish(ai_stream_t *s, int complete,
    ai_buf_t *out);
static void ai_anth_usage(ai_usage_t *u, json_t *usage);
static int ai_anth_block_tool(ai_stream_t *s, json_t *index, int tool);
static int ai_anth_block_tool_at(ai_stream_t *s, long long index,
    int tool);
static int ai_anth_fast_response(int status, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out);
static int ai_anth_fast_event(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out);
static int ai_anth_text_delta(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out);
static int ai_anth_chunk_prefix(ai_stream_t *s);
static int ai_anth_quick_event(const ai_sse_event_t *ev);
static int ai_anth_text_response(json_t *root, ai_buf_t *text,
    const ai_translate_opts_t *o, ai_buf_t *out);


int
ai_anthropic_request(json_t *req, const ai_translate_opts_t *o,
    ai_buf_t *out, ai_buf_t *path, ai_json_error_t *err)
{
    int      rc;
    json_t  *body, *system, *msgs;

    body = json_object();
    system = json_array();

    if (body == NULL || system == NULL) {
        goto nomem;
    }

    if (o->model && o->model_len) {
        rc = json_object_set_new(body, "model",
                                 json_stringn(o->model, o->model_len));

    } else {
        rc = json_object_set(body, "model", json_object_get(req, "model"));
    }

    if (rc != 0) {
        goto nomem;
    }

    msgs = ai_anth_messages(json_object_get(req, "messages"), system, err);

    if (msgs == NULL) {
        goto failed;
    }

    if (json_array_size(msgs) == 0) {
        json_decref(msgs);
        ai_translate_err(err, "invalid_value", "messages",
                         "Invalid 'messages': this provider needs at least "
                         "one message that is not a system message.");
        goto failed;
    }

    /* one system text goes as a string, several as text blocks */

    if (json_array_size(system) == 1) {
        rc = json_object_set(body, "system",
                             json_object_get(json_array_get(system, 0),
                                             "text"));

    } else if (json_array_size(system) > 1) {
        rc = json_object_set(body, "system", system);

    } else {
        rc = 0;
    }

    if (rc != 0 || json_object_set_new(body, "messages", msgs) != 0) {
        goto nomem;
    }

    if (ai_anth_params(body, req, o, err) != 0
        || ai_anth_tools(body, req, err) != 0)
    {
        goto failed;
    }

    if (ai_buf_append_json(out, body) != 0
        || ai_buf_append_str(path, "/messages") != 0)
    {
        goto nomem;
    }

    json_decref(system);
    json_decref(body);

    return 0;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");

failed:

    json_decref(system);
    json_decref(body);

    return -1;
}


static json_t *
ai_anth_messages(json_t *messages, json_t *system, ai_json_error_t *err)
{
    size_t       i;
    json_t      *msgs, *m, *content, *blocks, *text, *block, *calls;
    const char  *role, *call_id;
    char         where[64];

    msgs = json_array();

    if (msgs == NULL || !json_is_array(messages)) {
        json_decref(msgs);
        ai_translate_err(err, "invalid_type", "messages",
                         "Invalid type for 'messages': expected an array.");
        return NULL;
    }

    json_array_foreach(messages, i, m) {
        role = ai_json_str(m, "role");
        content = json_object_get(m, "content");
        snprintf(where, sizeof(where), "messages[%zu].content", i);

        if (role == NULL) {
            snprintf(where, sizeof(where), "messages[%zu].role", i);
            ai_translate_err(err, "missing_required_parameter", where,
                             "Missing required parameter: '%s'.", where);
            goto failed;
        }

        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            text = ai_text_of(content, "\n");

            if (text == NULL) {
                ai_translate_err(err, "invalid_value", where,
                                 "Invalid '%s': a system message may hold "
                                 "only text.", where);
                goto failed;
            }

            if (json_string_length(text)
                && json_array_append_new(system,
                                         json_pack("{s:s,s:o}", "type",
                                                   "text", "text", text))
                   != 0)
            {
                goto nomem;
            }

            if (json_string_length(text) == 0) {
                json_decref(text);
            }

            continue;
        }

        if (strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0) {
            blocks = ai_anth_content(content, where, err);

            if (blocks == NULL) {
                goto failed;
            }

            calls = json_object_get(m, "tool_calls");

            if (role[0] == 'a' && calls && !json_is_null(calls)
                && ai_anth_tool_calls(blocks, calls, i, err) != 0)
            {
                json_decref(blocks);
                goto failed;
            }

            if (ai_anth_push(msgs, role, blocks) != 0) {
                goto nomem;
            }

            continue;
        }

        if (strcmp(role, "tool") == 0) {
            call_id = ai_json_str(m, "tool_call_id");

            if (call_id == NULL) {
                snprintf(where, sizeof(where), "messages[%zu].tool_call_id",
                         i);
                ai_translate_err(err, "missing_required_parameter", where,
                                 "Missing required parameter: '%s'.", where);
                goto failed;
            }

            if (json_is_string(content)) {
                text = json_incref(content);

            } else {
                text = ai_anth_content(content, where, err);

                if (text == NULL) {
                    goto failed;
                }
            }

            block = json_pack("{s:s,s:s,s:o}", "type", "tool_result",
                              "tool_use_id", call_id, "content", text);

            if (ai_anth_push(msgs, "user", json_pack("[o]", block)) != 0) {
                goto nomem;
            }

            continue;
        }

        snprintf(where, sizeof(where), "messages[%zu].role", i);
        ai_translate_err(err, "invalid_value", where,
                         "Invalid value for '%s': '%s' is not supported by "
                         "this provider.", where, role);
        goto failed;
    }

    if (ai_anth_finalize(msgs) != 0) {
        goto nomem;
    }

    return msgs;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");

failed:

    json_decref(msgs);

    return NULL;
}


/* an OpenAI content (string or parts) as Anthropic content blocks */

static json_t *
ai_anth_content(json_t *content, const char *where, ai_json_error_t *err)
{
    size_t       i;
    json_t      *blocks, *part, *block;
    const char  *type, *text;
    char         param[96];

    blocks = json_array();

    if (blocks == NULL) {
        goto nomem;
    }

    if (content == NULL || json_is_null(content)) {
        return blocks;
    }

    if (json_is_string(content)) {
        if (json_string_length(content)
            && json_array_append_new(blocks,
                                     json_pack("{s:s,s:O}", "type", "text",
                                               "text", content)) != 0)
        {
            goto nomem;
        }

        return blocks;
    }

    if (!json_is_array(content)) {
        ai_translate_err(err, "invalid_type", where,
                         "Invalid type for '%s': expected a string or an "
                         "array of content parts.", where);
        json_decref(blocks);
        return NULL;
    }

    json_array_foreach(content, i, part) {
        snprintf(param, sizeof(param), "%s[%zu]", where, i);
        type = ai_json_str(part, "type");

        if (type == NULL) {
            ai_translate_err(err, "missing_required_parameter", param,
                             "Missing required parameter: '%s.type'.",
                             param);
            goto failed;
        }

        if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
            text = ai_json_str(part, type[0] == 't' ? "text" : "refusal");

            if (text == NULL) {
                ai_translate_err(err, "invalid_value", param,
                                 "Invalid '%s': the part has no text.",
                                 param);
                goto failed;
            }

            if (*text == '\0') {
                continue;
            }

            block = json_pack("{s:s,s:s}", "type", "text", "text", text);

        } else if (strcmp(type, "image_url") == 0) {
            block = ai_anth_image(part, param, err);

            if (block == NULL) {
                goto failed;
            }

        } else {
            ai_translate_err(err, "invalid_value", param,
                             "Invalid '%s': content parts of type '%s' are "
                             "not supported by this provider.", param, type);
            goto failed;
        }

        if (json_array_append_new(blocks, block) != 0) {
            goto nomem;
        }
    }

    return blocks;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");

failed:

    json_decref(blocks);

    return NULL;
}


static json_t *
ai_anth_image(json_t *part, const char *where, ai_json_error_t *err)
{
    int          rc;
    json_t      *iu;
    size_t       mime_len;
    const char  *url, *mime, *data;

    iu = json_object_get(part, "image_url");
    url = json_is_string(iu) ? json_string_value(iu) : ai_json_str(iu, "url");

    if (url == NULL) {
        ai_translate_err(err, "invalid_value", where,
                         "Invalid '%s': image_url.url is missing.", where);
        return NULL;
    }

    rc = ai_data_url(url, &mime, &mime_len, &data);

    if (rc == 1) {
        return json_pack("{s:s,s:{s:s,s:s%,s:s}}", "type", "image",
                         "source", "type", "base64",
                         "media_type", mime, mime_len, "data", data);
    }

    if (rc == 0 && (strncmp(url, "https://", 8) == 0
                    || strncmp(url, "http://", 7) == 0))
    {
        return json_pack("{s:s,s:{s:s,s:s}}", "type", "image",
                         "source", "type", "url", "url", url);
    }

    ai_translate_err(err, "invalid_value", where,
                     "Invalid '%s': an image must be an http(s) URL or a "
                     "base64 data URL.", where);

    return NULL;
}


static int
ai_anth_tool_calls(json_t *blocks, json_t *calls, size_t i,
    ai_json_error_t *err)
{
    size_t        j;
    json_t       *tc, *fn, *input;
    const char   *id, *name, *args;
    char          param[96];
    json_error_t  jerr;

    if (!json_is_array(calls)) {
        snprintf(param, sizeof(param), "messages[%zu].tool_calls", i);
        ai_translate_err(err, "invalid_type", param,
                         "Invalid type for '%s': expected an array.", param);
        return -1;
    }

    json_array_foreach(calls, j, tc) {
        fn = json_object_get(tc, "function");
        id = ai_json_str(tc, "id");
        name = ai_json_str(fn, "name");

        if (id == NULL || name == NULL) {
            snprintf(param, sizeof(param), "messages[%zu].tool_calls[%zu]",
                     i, j);
            ai_translate_err(err, "invalid_value", param,
                             "Invalid '%s': a tool call needs an id and a "
                             "function name.", param);
            return -1;
        }

        args = ai_json_str(fn, "arguments");
        snprintf(param, sizeof(param),
                 "messages[%zu].tool_calls[%zu].function.arguments", i, j);

        if (args == NULL || args[strspn(args, " \t\r\n")] == '\0') {
            input = json_object();

        } else {
            input = json_loads(args, 0, &jerr);

            if (input == NULL) {
                ai_translate_err(err, "invalid_value", param,
                                 "Invalid '%s': not valid JSON (%s).", param,
                                 jerr.text);
                return -1;
            }
        }

        if (!json_is_object(input)) {
            json_decref(input);
            ai_translate_err(err, "invalid_value", param,
                             "Invalid '%s': expected a JSON object.", param);
            return -1;
        }

        if (json_array_append_new(blocks,
                                  json_pack("{s:s,s:s,s:s,s:o}",
                                            "type", "tool_use", "id", id,
                                            "name", name, "input", input))
            != 0)
        {
            ai_translate_err(err, "internal_error", NULL, "Out of memory.");
            return -1;
        }
    }

    return 0;
}


/*
 * Anthropic wants user and assistant turns to alternate: a message with
 * the role of the one before it joins it.  blocks is stolen.
 */

static int
ai_anth_push(json_t *msgs, const char *role, json_t *blocks)
{
    size_t       n;
    json_t      *last;
    const char  *last_role;

    if (blocks == NULL) {
        return -1;
    }

    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
        return 0;
    }

    n = json_array_size(msgs);

    if (n) {
        last = json_array_get(msgs, n - 1);
        last_role = ai_json_str(last, "role");

        if (last_role && strcmp(last_role, role) == 0) {
            n = json_array_extend(json_object_get(last, "content"), blocks);
            json_decref(blocks);
            return n == 0 ? 0 : -1;
        }
    }

    return json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", role,
                                                 "content", blocks));
}


/*
 * Tool results must open a user turn; a turn of one text block reads
 * better, and costs less, as a plain string.
 */

static int
ai_anth_finalize(json_t *msgs)
{
    size_t       i, j, k;
    json_t      *m, *content, *sorted, *b;
    const char  *type;

    json_array_foreach(msgs, i, m) {
        content = json_object_get(m, "content");

        sorted = json_array();

        if (sorted == NULL) {
            return -1;
        }

        for (k = 0; k < 2; k++) {
            json_array_foreach(content, j, b) {
                type = ai_json_str(b, "type");

                if ((strcmp(type, "tool_result") == 0) == (k == 0)
                    && json_array_append(sorted, b) != 0)
                {
                    json_decref(sorted);
                    return -1;
                }
            }
        }

        if (json_array_size(sorted) == 1
            && strcmp(ai_json_str(json_array_get(sorted, 0), "type"),
                      "text") == 0)
        {
            b = json_object_get(json_array_get(sorted, 0), "text");

            if (json_object_set(m, "content", b) != 0) {
                json_decref(sorted);
                return -1;
            }

            json_decref(sorted);
            continue;
        }

        if (json_object_set_new(m, "content", sorted) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
ai_anth_params(json_t *body, json_t *req, const ai_translate_opts_t *o,
    ai_json_error_t *err)
{
    size_t       i;
    json_t      *v, *stops, *s, *rf;
    const char  *name, *type;
    json_int_t   max;

    v = json_object_get(req, "n");

    if (json_is_integer(v) && json_integer_value(v) != 1) {
        ai_translate_err(err, "invalid_value", "n",
                         "Invalid 'n': this provider returns one choice; "
                         "only n=1 is supported.");
        return -1;
    }

    rf = json_object_get(req, "response_format");
    type = ai_json_str(rf, "type");

    if (type && strcmp(type, "text") != 0) {
        ai_translate_err(err, "invalid_value", "response_format",
                         "Invalid 'response_format': '%s' is not supported "
                         "by this provider.", type);
        return -1;
    }

    if (json_is_true(json_object_get(req, "logprobs"))) {
        ai_translate_err(err, "invalid_value", "logprobs",
                         "Invalid 'logprobs': not supported by this "
                         "provider.");
        return -1;
    }

    name = "max_completion_tokens";
    v = json_object_get(req, name);

    if (v == NULL || json_is_null(v)) {
        name = "max_tokens";
        v = json_object_get(req, name);
    }

    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            ai_translate_err(err, "invalid_value", name,
                             "Invalid '%s': expected a positive integer.",
                             name);
            return -1;
        }

        max = json_integer_value(v);

    } else {
        max = o->default_max_tokens > 0 ? o->default_max_tokens : 4096;
    }

    if (json_object_set_new(body, "max_tokens", json_integer(max)) != 0) {
        goto nomem;
    }

    v = json_object_get(req, "stop");

    if (json_is_string(v) || json_is_array(v)) {
        stops = json_is_string(v) ? json_pack("[O]", v) : json_copy(v);

        json_array_foreach(stops, i, s) {
            if (!json_is_string(s)) {
                json_decref(stops);
                ai_translate_err(err, "invalid_type", "stop",
                                 "Invalid type for 'stop': expected a string "
                                 "or an array of strings.");
                return -1;
            }
        }

        if (json_array_size(stops)
            && json_object_set(body, "stop_sequences", stops) != 0)
        {
            json_decref(stops);
            goto nomem;
        }

        json_decref(stops);

    } else if (v && !json_is_null(v)) {
        ai_translate_err(err, "invalid_type", "stop",
                         "Invalid type for 'stop': expected a string or an "
                         "array of strings.");
        return -1;
    }

    v = json_object_get(req, "temperature");

    if (json_is_number(v) && json_object_set(body, "temperature", v) != 0) {
        goto nomem;
    }

    v = json_object_get(req, "top_p");

    if (json_is_number(v) && json_object_set(body, "top_p", v) != 0) {
        goto nomem;
    }

    v = json_object_get(req, "user");

    if (json_is_string(v) && json_string_length(v)
        && json_object_set_new(body, "metadata",
                               json_pack("{s:O}", "user_id", v)) != 0)
    {
        goto nomem;
    }

    if (json_is_true(json_object_get(req, "stream"))
        && json_object_set_new(body, "stream", json_true()) != 0)
    {
        goto nomem;
    }

    return 0;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");
    return -1;
}


static int
ai_anth_tools(json_t *body, json_t *req, ai_json_error_t *err)
{
    size_t       i;
    json_t      *tools, *t, *fn, *params, *out, *tool, *choice;
    const char  *name, *type;
    char         param[64];

    tools = json_object_get(req, "tools");
    choice = json_object_get(req, "tool_choice");

    if (tools == NULL || json_is_null(tools)
        || (json_is_array(tools) && json_array_size(tools) == 0))
    {
        return 0;
    }

    if (!json_is_array(tools)) {
        ai_translate_err(err, "invalid_type", "tools",
                         "Invalid type for 'tools': expected an array.");
        return -1;
    }

    out = json_array();

    if (out == NULL || json_object_set_new(body, "tools", out) != 0) {
        goto nomem;
    }

    json_array_foreach(tools, i, t) {
        type = ai_json_str(t, "type");
        fn = json_object_get(t, "function");
        name = ai_json_str(fn, "name");

        if ((type && strcmp(type, "function") != 0) || name == NULL) {
            snprintf(param, sizeof(param), "tools[%zu]", i);
            ai_translate_err(err, "invalid_value", param,
                             "Invalid '%s': only function tools with a name "
                             "are supported by this provider.", param);
            return -1;
        }

        params = json_object_get(fn, "parameters");
        tool = json_pack("{s:s}", "name", name);

        if (tool == NULL) {
            goto nomem;
        }

        if (json_is_string(json_object_get(fn, "description"))) {
            json_object_set(tool, "description",
                            json_object_get(fn, "description"));
        }

        if (json_is_object(params)) {
            json_object_set(tool, "input_schema", params);

        } else {
            json_object_set_new(tool, "input_schema",
                                json_pack("{s:s,s:{}}", "type", "object",
                                          "properties"));
        }

        if (json_array_append_new(out, tool) != 0) {
            goto nomem;
        }
    }

    if (choice == NULL || json_is_null(choice)) {
        choice = json_pack("{s:s}", "type", "auto");

    } else if (json_is_string(choice)
               && strcmp(json_string_value(choice), "auto") == 0)
    {
        choice = json_pack("{s:s}", "type", "auto");

    } else if (json_is_string(choice)
               && strcmp(json_string_value(choice), "none") == 0)
    {
        choice = json_pack("{s:s}", "type", "none");

    } else if (json_is_string(choice)
               && strcmp(json_string_value(choice), "required") == 0)
    {
        choice = json_pack("{s:s}", "type", "any");

    } else if (json_is_object(choice)
               && (name = ai_json_str(json_object_get(choice, "function"),
                                      "name")) != NULL)
    {
        choice = json_pack("{s:s,s:s}", "type", "tool", "name", name);

    } else {
        ai_translate_err(err, "invalid_value", "tool_choice",
                         "Invalid 'tool_choice': expected 'auto', 'none', "
                         "'required' or a named function.");
        return -1;
    }

    if (choice == NULL) {
        goto nomem;
    }

    if (json_is_false(json_object_get(req, "parallel_tool_calls"))
        && strcmp(ai_json_str(choice, "type"), "none") != 0)
    {
        json_object_set_new(choice, "disable_parallel_tool_use",
                            json_true());
    }

    if (json_object_set_new(body, "tool_choice", choice) != 0) {
        goto nomem;
    }

    return 0;

nomem:

    ai_translate_err(err, "internal_error", NULL, "Out of memory.");
    return -1;
}


int
ai_anthropic_response(int status, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out)
{
    int          rc;
    size_t       i;
    json_t      *root, *e, *content, *b, *calls, *msg, *resp, *u;
    ai_buf_t     text, id;
    ai_usage_t   usage;
    const char  *btype, *type, *code, *s;

    rc = ai_anth_fast_response(status, body, len, o, out);

    if (rc != 1) {
        return rc;
    }

    root = json_loadb(body, len, 0, NULL);
    s = ai_json_str(root, "type");

    if (status >= 400 || (s && strcmp(s, "error") == 0)) {
        e = json_object_get(root, "error");

        if (!json_is_object(e)) {
            json_decref(root);
            return ai_status_error(out, status >= 400 ? status : 502);
        }

        ai_anth_error_type(ai_json_str(e, "type"), status, &type, &code);
        s = ai_json_str(e, "message");
        rc = ai_openai_error(out, s ? s : "The provider failed.", type, code);
        json_decref(root);

        return rc;
    }

    content = json_object_get(root, "content");

    if (!json_is_object(root) || !json_is_array(content)) {
        json_decref(root);
        return -1;
    }

    memset(&text, 0, sizeof(ai_buf_t));
    memset(&id, 0, sizeof(ai_buf_t));
    calls = json_array();
    resp = NULL;
    rc = -1;

    if (calls == NULL || ai_buf_append(&text, "", 0) != 0) {
        goto done;
    }

    json_array_foreach(content, i, b) {
        btype = ai_json_str(b, "type");

        if (btype == NULL) {
            continue;
        }

        if (strcmp(btype, "text") == 0) {
            s = ai_json_str(b, "text");

            if (s && ai_buf_append_str(&text, s) != 0) {
                goto done;
            }

        } else if (strcmp(btype, "tool_use") == 0) {
            char  *args;

            args = json_dumps(json_object_get(b, "input"),
                              JSON_COMPACT | JSON_ENCODE_ANY);

            rc = json_array_append_new(calls,
                     json_pack("{s:s,s:s,s:{s:s,s:s}}",
                               "id", ai_json_str(b, "id")
                                     ? ai_json_str(b, "id") : "",
                               "type", "function",
                               "function",
                                 "name", ai_json_str(b, "name")
                                         ? ai_json_str(b, "name") : "",
                                 "arguments", args ? args : "{}"));
            free(args);

            if (rc != 0) {
                rc = -1;
                goto done;
            }

            rc = -1;
        }

        /* thinking blocks are the provider's own; they are not relayed */
    }

    if (json_array_size(calls) == 0
        && ai_anth_text_response(root, &text, o, out) == 0)
    {
        rc = 0;
        goto done;
    }

    if (json_array_size(calls) && text.len == 0) {
        msg = json_pack("{s:s,s:n,s:n}", "role", "assistant", "content",
                        "refusal");

    } else {
        msg = json_pack("{s:s,s:s%,s:n}", "role", "assistant",
                        "content", text.data, text.len, "refusal");
    }

    if (msg == NULL) {
        goto done;
    }

    if (json_array_size(calls)) {
        json_object_set(msg, "tool_calls", calls);
    }

    memset(&usage, 0, sizeof(ai_usage_t));
    u = json_object_get(root, "usage");
    ai_anth_usage(&usage, u);

    s = ai_json_str(root, "id");

    if (ai_buf_append_str(&id, "chatcmpl-") != 0
        || ai_buf_append_str(&id, s ? s : "anthropic") != 0)
    {
        json_decref(msg);
        goto done;
    }

    resp = json_pack("{s:s,s:s,s:I,s:s%,s:[{s:i,s:o,s:n,s:s}],s:o}",
                     "id", id.data,
                     "object", "chat.completion",
                     "created", (json_int_t) ai_created(o),
                     "model", o->client_model ? o->client_model : "",
                       o->client_model ? o->client_model_len : 0,
                     "choices",
                       "index", 0,
                       "message", msg,
                       "logprobs",
                       "finish_reason",
                         ai_anth_finish(ai_json_str(root, "stop_reason")),
                     "usage",
                     ai_openai_usage(usage.prompt_tokens,
                                     usage.completion_tokens,
                                     usage.cached_tokens));

    if (resp != NULL) {
        rc = ai_buf_append_json(out, resp);
    }

done:

    json_decref(resp);
    json_decref(calls);
    json_decref(root);
    ai_buf_free(&text);
    ai_buf_free(&id);

    return rc;
}


/*
 * The common answer, text only, formatted as ai_anthropic_response()'s
 * json_pack() and dump would write it.  Returns -1 (out unchanged) when
 * that cannot be done exactly; then the caller takes the long way.
 */

static int
ai_anth_text_response(json_t *root, ai_buf_t *text,
    const ai_translate_opts_t *o, ai_buf_t *out)
{
    int          n;
    size_t       mark;
    ai_usage_t   usage;
    const char  *s;
    char         num[256];

    memset(&usage, 0, sizeof(ai_usage_t));
    ai_anth_usage(&usage, json_object_get(root, "usage"));

    mark = out->len;
    s = ai_json_str(root, "id");

    if (ai_buf_append_str(out, "{\"id\":\"chatcmpl-") != 0
        || ai_buf_append_jstr(out, s ? s : "anthropic",
                              strlen(s ? s : "anthropic")) != 0)
    {
        goto failed;
    }

    n = snprintf(num, sizeof(num),
                 "\",\"object\":\"chat.completion\",\"created\":%lld,"
                 "\"model\":\"", (long long) ai_created(o));

    if (n < 0 || (size_t) n >= sizeof(num)
        || ai_buf_append(out, num, n) != 0
        || ai_buf_append_jstr(out, o->client_model ? o->client_model : "",
                              o->client_model ? o->client_model_len : 0)
           != 0
        || ai_buf_append_str(out, "\",\"choices\":[{\"index\":0,"
                             "\"message\":{\"role\":\"assistant\","
                             "\"content\":\"") != 0
        || ai_buf_append_jstr(out, text->data, text->len) != 0)
    {
        goto failed;
    }

    n = snprintf(num, sizeof(num),
                 "\",\"refusal\":null},\"logprobs\":null,"
                 "\"finish_reason\":\"%s\"}],\"usage\":{"
                 "\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                 "\"total_tokens\":%lld,\"prompt_tokens_details\":{"
                 "\"cached_tokens\":%lld}}}",
                 ai_anth_finish(ai_json_str(root, "stop_reason")),
                 (long long) usage.prompt_tokens,
                 (long long) usage.completion_tokens,
                 (long long) (usage.prompt_tokens + usage.completion_tokens),
                 (long long) usage.cached_tokens);

    if (n < 0 || (size_t) n >= sizeof(num)
        || ai_buf_append(out, num, n) != 0)
    {
        goto failed;
    }

    return 0;

failed:

    if (out->data) {
        out->len = mark;
        out->data[mark] = '\0';
    }

    return -1;
}


static const char *
ai_anth_finish(const char *stop_reason)
{
    if (stop_reason == NULL) {
        return "stop";
    }

    if (strcmp(stop_reason, "max_tokens") == 0
        || strcmp(stop_reason, "model_context_window_exceeded") == 0)
    {
        return "length";
    }

    if (strcmp(stop_reason, "tool_use") == 0) {
        return "tool_calls";
    }

    if (strcmp(stop_reason, "refusal") == 0) {
        return "content_filter";
    }

    /* end_turn, stop_sequence, pause_turn */

    return "stop";
}


static void
ai_anth_error_type(const char *atype, int status, const char **type,
    const char **code)
{
    static const struct {
        const char  *anthropic;
        const char  *type;
        const char  *code;
    } map[] = {
        { "invalid_request_error", "invalid_request_error", NULL },
        { "authentication_error", "authentication_error",
          "invalid_api_key" },
        { "permission_error", "permission_error", "permission_denied" },
        { "not_found_error", "not_found_error", "not_found" },
        { "request_too_large", "invalid_request_error",
          "request_too_large" },
        { "rate_limit_error", "rate_limit_error", "rate_limit_exceeded" },
        { "api_error", "server_error", NULL },
        { "overloaded_error", "server_error", "overloaded" },
        { "timeout_error", "server_error", "timeout" },
    };

    size_t  i;

    for (i = 0; atype && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(atype, map[i].anthropic) == 0) {
            *type = map[i].type;
            *code = map[i].code;
            return;
        }
    }

    *type = (status >= 500 || status < 400) ? "server_error"
                                            : "invalid_request_error";
    *code = NULL;
}


/*
 * Anthropic counts cache writes and reads apart from input_tokens;
 * OpenAI's prompt_tokens holds all three, the reads also as cached.
 */

static void
ai_anth_usage(ai_usage_t *u, json_t *usage)
{
    long  in, cw, cr;

    if (!json_is_object(usage)) {
        return;
    }

    if (json_object_get(usage, "input_tokens")) {
        in = ai_json_long(usage, "input_tokens", 0);
        cw = ai_json_long(usage, "cache_creation_input_tokens", 0);
        cr = ai_json_long(usage, "cache_read_input_tokens", 0);

        u->prompt_tokens = in + cw + cr;
        u->cached_tokens = cr;
    }

    if (json_object_get(usage, "output_tokens")) {
        u->completion_tokens = ai_json_long(usage, "output_tokens", 0);
    }

    u->seen = 1;
}


int
ai_anthropic_stream_init(ai_stream_t *s)
{
    s->on_event = ai_anth_stream_event;
    s->on_finish = ai_anth_stream_finish;
    snprintf(s->id, sizeof(s->id), "chatcmpl-anthropic");

    return 0;
}


static int
ai_anth_stream_event(ai_stream_t *s, const ai_sse_event_t *ev,
    ai_buf_t *out)
{
    int          rc, tool;
    json_t      *root, *m, *b, *d, *e, *idx;
    const char  *type, *dtype, *str, *etype, *code;

    /*
     * The bulk of a stream, text deltas, in their exact usual shape; then
     * the other common events from the span index; jansson for the rest.
     */

    if (!s->tree_only) {
        rc = ai_anth_text_delta(s, ev, out);

        if (rc != 0) {
            return rc < 0 ? -1 : 0;
        }

        if (ai_anth_quick_event(ev)) {
            return 0;
        }

        rc = ai_anth_fast_event(s, ev, out);

        if (rc != 0) {
            return rc < 0 ? -1 : 0;
        }
    }

    root = json_loadb(ev->data, ev->data_len, 0, NULL);

    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }

    type = ai_json_str(root, "type");

    if (type == NULL) {
        type = ev->event;
    }

    rc = 0;

    if (strcmp(type, "message_start") == 0) {
        m = json_object_get(root, "message");
        str = ai_json_str(m, "id");

        if (str) {
            snprintf(s->id, sizeof(s->id), "chatcmpl-%s", str);
            s->chunk_pre_len = 0;
        }

        ai_anth_usage(&s->usage, json_object_get(m, "usage"));

        rc = ai_chunk(s, 0, json_pack("{s:s}", "content", ""), NULL, out);

    } else if (strcmp(type, "content_block_start") == 0) {
        b = json_object_get(root, "content_block");
        idx = json_object_get(root, "index");
        dtype = ai_json_str(b, "type");

        if (dtype && strcmp(dtype, "tool_use") == 0) {
            tool = s->tools++;

            if (ai_anth_block_tool(s, idx, tool) != 0) {
                rc = -1;
                goto done;
            }

            rc = ai_chunk(s, 0,
                     json_pack("{s:[{s:i,s:s,s:s,s:{s:s,s:s}}]}",
                               "tool_calls",
                                 "index", tool,
                                 "id", ai_json_str(b, "id")
                                       ? ai_json_str(b, "id") : "",
                                 "type", "function",
                                 "function",
                                   "name", ai_json_str(b, "name")
                                           ? ai_json_str(b, "name") : "",
                                   "arguments", ""),
                     NULL, out);

        } else if (dtype && strcmp(dtype, "text") == 0
                   && (str = ai_json_str(b, "text")) != NULL && *str)
        {
            rc = ai_chunk(s, 0, json_pack("{s:s}", "content", str), NULL,
                          out);
        }

    } else if (strcmp(type, "content_block_delta") == 0) {
        d = json_object_get(root, "delta");
        idx = json_object_get(root, "index");
        dtype = ai_json_str(d, "type");

        if (dtype == NULL) {
            goto done;
        }

        if (strcmp(dtype, "text_delta") == 0) {
            str = ai_json_str(d, "text");

            if (str && *str) {
                rc = ai_chunk(s, 0, json_pack("{s:s}", "content", str), NULL,
                              out);
            }

        } else if (strcmp(dtype, "input_json_delta") == 0) {
            str = ai_json_str(d, "partial_json");

            if (!json_is_integer(idx) || json_integer_value(idx) < 0
                || (size_t) json_integer_value(idx) >= s->nblocks
                || s->block_tool[json_integer_value(idx)] < 0)
            {
                rc = -1;
                goto done;
            }

            tool = s->block_tool[json_integer_value(idx)];

            if (str && *str) {
                rc = ai_chunk(s, 0,
                         json_pack("{s:[{s:i,s:{s:s}}]}",
                                   "tool_calls",
                                     "index", tool,
                                     "function", "arguments", str),
                         NULL, out);
            }
        }

        /* thinking, signature and citations deltas are not relayed */

    } else if (strcmp(type, "message_delta") == 0) {
        ai_anth_usage(&s->usage, json_object_get(root, "usage"));
        str = ai_json_str(json_object_get(root, "delta"), "stop_reason");

        if (str) {
            s->finished |= 1;
            rc = ai_chunk(s, 0, NULL, ai_anth_finish(str), out);
        }

    } else if (strcmp(type, "message_stop") == 0) {
        if (!(s->finished & 1)) {
            s->finished |= 1;
            rc = ai_chunk(s, 0, NULL, "stop", out);
        }

        if (rc == 0) {
            rc = ai_stream_close(s, out);
        }

    } else if (strcmp(type, "error") == 0) {
        e = json_object_get(root, "error");
        etype = ai_json_str(e, "type");
        ai_anth_error_type(etype, 500, &etype, &code);
        str = ai_json_str(e, "message");
        rc = ai_stream_error(s, str ? str : "The provider failed.", etype,
                             code, out);
    }

    /* ping and event types added later are skipped, as Anthropic asks */

done:

    json_decref(root);

    return rc;
}


/*
 * A strict scanner for the exact shapes Anthropic sends most: it accepts
 * only what jansson would parse to the same thing, and anything else
 * (other member orders, escaped keys, big numbers) goes to jansson.
 */

typedef struct {
    const unsigned char  *p;
    const unsigned char  *last;
} ai_anth_scan_t;


static void
ai_anth_ws(ai_anth_scan_t *sc)
{
    while (sc->p < sc->last
           && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n'
               || *sc->p == '\r'))
    {
        sc->p++;
    }
}


/* whitespace, then exactly lit */

static int
ai_anth_lit(ai_anth_scan_t *sc, const char *lit, size_t len)
{
    ai_anth_ws(sc);

    if ((size_t) (sc->last - sc->p) < len || memcmp(sc->p, lit, len) != 0) {
        return 0;
    }

    sc->p += len;

    return 1;
}

#define ai_anth_lits(sc, s)  ai_anth_lit(sc, s, sizeof(s) - 1)


/* a small non-negative integer, as jansson reads it */

static int
ai_anth_small_int(ai_anth_scan_t *sc)
{
    size_t  n;

    ai_anth_ws(sc);

    if (sc->p == sc->last || *sc->p < '0' || *sc->p > '9') {
        return 0;
    }

    if (*sc->p == '0') {
        sc->p++;

    } else {
        for (n = 0; sc->p < sc->last && *sc->p >= '0' && *sc->p <= '9'; n++) {
            if (n == 9) {
                return 0;
            }

            sc->p++;
        }
    }

    /* no fraction or exponent: those make a real */

    return sc->p < sc->last && *sc->p != '.' && *sc->p != 'e'
           && *sc->p != 'E';
}


/* only whitespace is left */

static int
ai_anth_end(ai_anth_scan_t *sc)
{
    ai_anth_ws(sc);

    return sc->p == sc->last;
}


/*
 * A JSON string at sc->p (after whitespace) re-encoded into out, from
 * out->len on, as jansson would dump the string it decodes: returns the
 * length written (out->len unchanged), or -1 if the string is not one
 * this handles exactly as jansson does (then jansson decides).  The
 * output is never longer than the input.
 */

static long
ai_anth_string(ai_anth_scan_t *sc, ai_buf_t *out)
{
    unsigned              c, v;
    size_t                n;
    char                 *d, *start;
    const unsigned char  *p, *last;
    static const char     hex[] = "0123456789ABCDEF";

    ai_anth_ws(sc);

    p = sc->p;
    last = sc->last;

    if (p == last || *p++ != '"') {
        return -1;
    }

    if (ai_buf_reserve(out, last - p) != 0) {
        return -1;
    }

    start = out->data + out->len;
    d = start;

    for ( ;; ) {
        if (p == last) {
            return -1;
        }

        c = *p;

        if (c == '"') {
            p++;
            break;
        }

        if (c >= 0x20 && c < 0x80 && c != '\\') {
            *d++ = (char) c;
            p++;
            continue;
        }

        if (c < 0x20) {
            return -1;
        }

        if (c >= 0x80) {
            n = ai_json_utf8_len(p, last);

            if (n == 0) {
                return -1;
            }

            memcpy(d, p, n);
            d += n;
            p += n;
            continue;
        }

        /* an escape */

        if (last - p < 2) {
            return -1;
        }

        c = p[1];

        switch (c) {
        case '"':
        case '\\':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            *d++ = '\\';
            *d++ = (char) c;
            p += 2;
            continue;
        case '/':
            *d++ = '/';
            p += 2;
            continue;
        case 'u':
            break;
        default:
            return -1;
        }

        n = ai_json_unicode(p, last, &v);

        if (n == 0) {
            return -1;
        }

        p += n;

        if (v < 0x20) {
            *d++ = '\\';

            switch (v) {
            case '\b':
                *d++ = 'b';
                break;
            case '\f':
                *d++ = 'f';
                break;
            case '\n':
                *d++ = 'n';
                break;
            case '\r':
                *d++ = 'r';
                break;
            case '\t':
                *d++ = 't';
                break;
            default:
                *d++ = 'u';
                *d++ = '0';
                *d++ = '0';
                *d++ = hex[v >> 4];
                *d++ = hex[v & 0xf];
            }

        } else if (v == '"' || v == '\\') {
            *d++ = '\\';
            *d++ = (char) v;

        } else if (v < 0x80) {
            *d++ = (char) v;

        } else if (v < 0x800) {
            *d++ = (char) (0xC0 | (v >> 6));
            *d++ = (char) (0x80 | (v & 0x3F));

        } else if (v < 0x10000) {
            *d++ = (char) (0xE0 | (v >> 12));
            *d++ = (char) (0x80 | ((v >> 6) & 0x3F));
            *d++ = (char) (0x80 | (v & 0x3F));

        } else {
            *d++ = (char) (0xF0 | (v >> 18));
            *d++ = (char) (0x80 | ((v >> 12) & 0x3F));
            *d++ = (char) (0x80 | ((v >> 6) & 0x3F));
            *d++ = (char) (0x80 | (v & 0x3F));
        }
    }

    sc->p = p;

    return d - start;
}


/*
 * {"type":"content_block_delta","index":N,
 *  "delta":{"type":"text_delta","text":"..."}} straight to a chunk:
 * returns 1 when done, 0 when the event is not of that exact shape (or
 * the chunk needs what ai_chunk() adds), -1 on no memory.
 */

static int
ai_anth_text_delta(ai_stream_t *s, const ai_sse_event_t *ev, ai_buf_t *out)
{
    size_t          mark;
    long            n;
    ai_anth_scan_t  sc;

    static const char  suffix[] = "\"},\"logprobs\":null,"
                                  "\"finish_reason\":null}]}\n\n";
    static const char  head[] = "{\"type\":\"content_block_delta\","
                                "\"index\":";
    static const char  delta[] = ",\"delta\":{\"type\":\"text_delta\","
                                 "\"text\":";

    if (!(s->roles & 1)) {
        return 0;
    }

    sc.p = (const unsigned char *) ev->data;
    sc.last = sc.p + ev->data_len;

    /* Anthropic's own compact form first, in two comparisons */

    if (ev->data_len > sizeof(head) - 1
        && memcmp(sc.p, head, sizeof(head) - 1) == 0)
    {
        sc.p += sizeof(head) - 1;

        if (!ai_anth_small_int(&sc)
            || (size_t) (sc.last - sc.p) < sizeof(delta) - 1
            || memcmp(sc.p, delta, sizeof(delta) - 1) != 0)
        {
            return 0;
        }

        sc.p += sizeof(delta) - 1;

    } else if (!ai_anth_lits(&sc, "{")
        || !ai_anth_lits(&sc, "\"type\"") || !ai_anth_lits(&sc, ":")
        || !ai_anth_lits(&sc, "\"content_block_delta\"")
        || !ai_anth_lits(&sc, ",")
        || !ai_anth_lits(&sc, "\"index\"") || !ai_anth_lits(&sc, ":")
        || !ai_anth_small_int(&sc)
        || !ai_anth_lits(&sc, ",")
        || !ai_anth_lits(&sc, "\"delta\"") || !ai_anth_lits(&sc, ":")
        || !ai_anth_lits(&sc, "{")
        || !ai_anth_lits(&sc, "\"type\"") || !ai_anth_lits(&sc, ":")
        || !ai_anth_lits(&sc, "\"text_delta\"")
        || !ai_anth_lits(&sc, ",")
        || !ai_anth_lits(&sc, "\"text\"") || !ai_anth_lits(&sc, ":"))
    {
        return 0;
    }

    if (s->chunk_pre_len == 0 && ai_anth_chunk_prefix(s) != 0) {
        return 0;
    }

    mark = out->len;

    if (ai_buf_append(out, s->chunk_pre, s->chunk_pre_len) != 0) {
        return -1;
    }

    n = ai_anth_string(&sc, out);

    if (n < 0 || !ai_anth_lits(&sc, "}") || !ai_anth_lits(&sc, "}")
        || !ai_anth_end(&sc))
    {
        out->len = mark;
        out->data[mark] = '\0';
        return 0;
    }

    if (n == 0) {
        /* an empty text sends nothing */
        out->len = mark;
        out->data[mark] = '\0';
        return 1;
    }

    out->len += n;

    if (ai_buf_append(out, suffix, sizeof(suffix) - 1) != 0) {
        out->len = mark;
        out->data[mark] = '\0';
        return -1;
    }

    s->started = 1;

    return 1;
}


/*
 * What ai_chunk() would send before the text of a content delta, kept
 * until the id changes; its first chunk_head_len bytes are the head of
 * every chunk (ai_chunk_head()).
 */

static int
ai_anth_chunk_prefix(ai_stream_t *s)
{
    char      *pre;
    ai_buf_t   b;

    static const char  delta[] = "{\"index\":0,\"delta\":{\"content\":\"";

    memset(&b, 0, sizeof(ai_buf_t));

    if (ai_chunk_head(s, &b) != 0) {
        ai_buf_free(&b);
        return -1;
    }

    s->chunk_head_len = b.len;

    if (ai_buf_append(&b, delta, sizeof(delta) - 1) != 0) {
        ai_buf_free(&b);
        return -1;
    }

    pre = realloc(s->chunk_pre, b.len);

    if (pre == NULL) {
        ai_buf_free(&b);
        return -1;
    }

    memcpy(pre, b.data, b.len);
    s->chunk_pre = pre;
    s->chunk_pre_len = b.len;

    ai_buf_free(&b);

    return 0;
}


/*
 * Events that send nothing, in their usual exact shapes:
 * {"type": "ping"} and {"type":"content_block_stop","index":N}.
 */

static int
ai_anth_quick_event(const ai_sse_event_t *ev)
{
    ai_anth_scan_t  sc;

    sc.p = (const unsigned char *) ev->data;
    sc.last = sc.p + ev->data_len;

    if (!ai_anth_lits(&sc, "{")
        || !ai_anth_lits(&sc, "\"type\"") || !ai_anth_lits(&sc, ":"))
    {
        return 0;
    }

    if (ai_anth_lits(&sc, "\"ping\"")) {
        return ai_anth_lits(&sc, "}") && ai_anth_end(&sc);
    }

    return ai_anth_lits(&sc, "\"content_block_stop\"")
           && ai_anth_lits(&sc, ",")
           && ai_anth_lits(&sc, "\"index\"") && ai_anth_lits(&sc, ":")
           && ai_anth_small_int(&sc)
           && ai_anth_lits(&sc, "}") && ai_anth_end(&sc);
}


static int
ai_anth_block_tool(ai_stream_t *s, json_t *index, int tool)
{
    if (!json_is_integer(index)) {
        return -1;
    }

    return ai_anth_block_tool_at(s, json_integer_value(index), tool);
}


static int
ai_anth_block_tool_at(ai_stream_t *s, long long index, int tool)
{
    int      *nb;
    size_t    i, n;

    if (index < 0 || index >= AI_MAX_BLOCKS) {
        return -1;
    }

    n = (size_t) index;

    if (n >= s->nblocks) {
        nb = realloc(s->block_tool, (n + 1) * sizeof(int));

        if (nb == NULL) {
            return -1;
        }

        for (i = s->nblocks; i <= n; i++) {
            nb[i] = -1;
        }

        s->block_tool = nb;
        s->nblocks = n + 1;
    }

    s->block_tool[n] = tool;

    return 0;
}


static int
ai_anth_stream_finish(ai_stream_t *s, int complete, ai_buf_t *out)
{
    (void) complete;

    if (s->finished) {
        return ai_stream_close(s, out);
    }

    return ai_stream_error(s, "The upstream stream ended before it was "
                           "complete.", "server_error", "upstream_incomplete",
                           out);
}


/*
 * The fast paths: the common shapes of requests, answers and events read
 * from the span index of ai_jtok.h and written straight into the output,
 * byte for byte as the jansson paths above write them.  Whatever they do
 * not handle exactly (errors included) returns "declined", and the
 * jansson path decides.
 */

#define AI_ANTH_DECLINED  1


static void
ai_anth_truncate(ai_buf_t *b, size_t mark)
{
    if (b->data) {
        b->len = mark;
        b->data[mark] = '\0';
    }
}


/* a real as jansson's dump writes it: "%.17g", ".0" or "e" kept, and the
 * exponent without '+' and leading zeros (jsonp_dtostr()) */

typedef struct {
    unsigned char  in_len;
    unsigned char  out_len;
    char           in[24];
    char           out[32];
} ai_anth_real_t;


static int
ai_anth_real(ai_buf_t *out, const unsigned char *p, size_t len)
{
    int              n;
    char            *e, *start, *end, num[64], buf[64];
    double           d;
    ai_anth_real_t  *c;

    /*
     * The same few values (temperature 0.7, top_p 0.9) come again and
     * again: their last writing is kept, per worker, and printf spared.
     */

    static ai_anth_real_t  cache[8];

    c = &cache[(len + p[len - 1]) & 7];

    if (c->in_len == len && memcmp(c->in, p, len) == 0) {
        return ai_buf_append(out, c->out, c->out_len);
    }

    if (len >= sizeof(num)) {
        return -1;
    }

    memcpy(num, p, len);
    num[len] = '\0';

    d = strtod(num, NULL);

    n = snprintf(buf, sizeof(buf), "%.17g", d);

    if (n < 0 || (size_t) n + 3 >= sizeof(buf) || strchr(buf, ',') != NULL)
    {
        return -1;
    }

    if (strchr(buf, '.') == NULL && strchr(buf, 'e') == NULL) {
        buf[n++] = '.';
        buf[n++] = '0';
        buf[n] = '\0';
    }

    e = strchr(buf, 'e');

    if (e) {
        start = e + 1;
        end = start + 1;

        if (*start == '-') {
            start++;
        }

        while (*end == '0') {
            end++;
        }

        if (end != start) {
            memmove(start, end, n - (end - buf) + 1);
            n -= end - start;
        }
    }

    if (len <= sizeof(c->in) && (size_t) n <= sizeof(c->out)) {
        memcpy(c->in, p, len);
        memcpy(c->out, buf, n);
        c->in_len = (unsigned char) len;
        c->out_len = (unsigned char) n;
    }

    return ai_buf_append(out, buf, n);
}


/* the inside of string token i, as jansson dumps what it decodes */

static int
ai_anth_str_in(const ai_jdoc_t *doc, uint32_t i, ai_buf_t *out)
{
    long             n;
    ai_anth_scan_t   sc;

    if (!doc->tok[i].escaped) {
        return ai_buf_append(out, ai_jdoc_str(doc, i),
                             ai_jdoc_str_len(doc, i));
    }

    sc.p = doc->data + doc->tok[i].start;
    sc.last = doc->data + doc->tok[i].end;

    n = ai_anth_string(&sc, out);

    if (n < 0) {
        return -1;
    }

    out->len += n;
    out->data[out->len] = '\0';

    return 0;
}


/* value i in jansson's compact dump; -1 when that cannot be done exactly */

static int
ai_anth_dump(const ai_jdoc_t *doc, uint32_t i, ai_buf_t *out)
{
    uint32_t              j, k, m, q;
    const ai_jtok_t      *t;
    const unsigned char  *raw;

    t = &doc->tok[i];
    raw = doc->data + t->start;

    switch (t->type) {

    case AI_JT_STRING:
        return ai_buf_append(out, "\"", 1) != 0
               || ai_anth_str_in(doc, i, out) != 0
               || ai_buf_append(out, "\"", 1) != 0 ? -1 : 0;

    case AI_JT_INTEGER:
        if (t->end - t->start == 2 && raw[0] == '-' && raw[1] == '0') {
            return ai_buf_append(out, "0", 1);
        }

        return ai_buf_append(out, (const char *) raw, t->end - t->start);

    case AI_JT_REAL:
        return ai_anth_real(out, raw, t->end - t->start);

    case AI_JT_TRUE:
    case AI_JT_FALSE:
    case AI_JT_NULL:
        return ai_buf_append(out, (const char *) raw, t->end - t->start);

    case AI_JT_ARRAY:
        if (ai_buf_append(out, "[", 1) != 0) {
            return -1;
        }

        for (j = i + 1, k = 0; k < t->count; k++, j = doc->tok[j].next) {
            if ((k && ai_buf_append(out, ",", 1) != 0)
                || ai_anth_dump(doc, j, out) != 0)
            {
                return -1;
            }
        }

        return ai_buf_append(out, "]", 1);

    case AI_JT_OBJECT:
        /* a repeated key keeps its first place in jansson: not here */
        if (t->count > 64 || ai_buf_append(out, "{", 1) != 0) {
            return -1;
        }

        for (j = i + 1, k = 0; k < t->count; k++, j = doc->tok[j + 1].next) {
            for (q = i + 1, m = 0; m < k; m++, q = doc->tok[q + 1].next) {
                if (doc->tok[q].end - doc->tok[q].start
                    == doc->tok[j].end - doc->tok[j].start
                    && memcmp(doc->data + doc->tok[q].start,
                              doc->data + doc->tok[j].start,
                              doc->tok[j].end - doc->tok[j].start) == 0)
                {
                    return -1;
                }
            }

            if ((k && ai_buf_append(out, ",", 1) != 0)
                || ai_anth_dump(doc, j, out) != 0
                || ai_buf_append(out, ":", 1) != 0
                || ai_anth_dump(doc, j + 1, out) != 0)
            {
                return -1;
            }
        }

        return ai_buf_append(out, "}", 1);
    }

    return -1;
}


/* ---- requests ---------------------------------------------------------- */

typedef struct {
    uint32_t      tok;          /* a text string, or a system content */
    char          role;         /* 'u', 'a'; 's' for a system text */
} ai_anth_fblock_t;


typedef struct {
    ai_anth_fblock_t  *b;
    size_t             n;
    size_t             cap;
    ai_anth_fblock_t   inline_b[16];
} ai_anth_fblocks_t;


static int
ai_anth_fblock_add(ai_anth_fblocks_t *bl, uint32_t tok, char role)
{
    ai_anth_fblock_t  *nb;

    if (bl->n == bl->cap) {
        if (bl->cap >= 1u << 20) {
            return -1;
        }

        if (bl->b == bl->inline_b) {
            nb = malloc(bl->cap * 2 * sizeof(ai_anth_fblock_t));

            if (nb != NULL) {
                memcpy(nb, bl->b, bl->n * sizeof(ai_anth_fblock_t));
            }

        } else {
            nb = realloc(bl->b, bl->cap * 2 * sizeof(ai_anth_fblock_t));
        }

        if (nb == NULL) {
            return -1;
        }

        bl->b = nb;
        bl->cap *= 2;
    }

    bl->b[bl->n].tok = tok;
    bl->b[bl->n].role = role;
    bl->n++;

    return 0;
}


/*
 * A system message's content, as ai_text_of() reads it: 1 with text, 0
 * empty, -1 declined (not text, or an error for jansson to word).
 */

static int
ai_anth_fast_system(const ai_jdoc_t *doc, uint32_t content)
{
    uint32_t  j, k, part, type, text;

    switch (ai_jdoc_type(doc, content)) {

    case AI_JT_NONE:
    case AI_JT_NULL:
        return 0;

    case AI_JT_STRING:
        return ai_jdoc_str_len(doc, content) > 0;

    case AI_JT_ARRAY:
        break;

    default:
        return -1;
    }

    for (j = content + 1, k = 0; k < doc->tok[content].count;
         k++, j = doc->tok[j].next)
    {
        part = j;
        type = ai_jdoc_gets(doc, part, "type");
        text = ai_jdoc_gets(doc, part, "text");

        if (ai_jdoc_type(doc, text) != AI_JT_STRING
            || (ai_jdoc_type(doc, type) == AI_JT_STRING
                && !ai_jdoc_iss(doc, type, "text")))
        {
            return -1;
        }
    }

    /* parts are joined with "\n": two make a text, however empty */

    if (doc->tok[content].count > 1) {
        return 1;
    }

    if (doc->tok[content].count == 1) {
        text = ai_jdoc_gets(doc, content + 1, "text");
        return ai_jdoc_str_len(doc, text) > 0;
    }

    return 0;
}


/* the inside of a system text (a string, or text parts joined by "\n") */

static int
ai_anth_fast_system_text(const ai_jdoc_t *doc, uint32_t content,
    ai_buf_t *out)
{
    uint32_t  j, k;

    if (ai_jdoc_type(doc, content) == AI_JT_STRING) {
        return ai_anth_str_in(doc, content, out);
    }

    for (j = content + 1, k = 0; k < doc->tok[content].count;
         k++, j = doc->tok[j].next)
    {
        if ((k && ai_buf_append(out, "\\n", 2) != 0)
            || ai_anth_str_in(doc, ai_jdoc_gets(doc, j, "text"), out) != 0)
        {
            return -1;
        }
    }

    return 0;
}


/* a user or assistant message's text blocks; -1: declined */

static int
ai_anth_fast_content(const ai_jdoc_t *doc, uint32_t content, char role,
    ai_anth_fblocks_t *bl)
{
    uint32_t  j, k, type, text;

    switch (ai_jdoc_type(doc, content)) {

    case AI_JT_NONE:
    case AI_JT_NULL:
        return 0;

    case AI_JT_STRING:
        if (ai_jdoc_str_len(doc, content) == 0) {
            return 0;
        }

        return ai_anth_fblock_add(bl, content, role);

    case AI_JT_ARRAY:
        break;

    default:
        return -1;
    }

    for (j = content + 1, k = 0; k < doc->tok[content].count;
         k++, j = doc->tok[j].next)
    {
        type = ai_jdoc_gets(doc, j, "type");

        if (ai_jdoc_iss(doc, type, "text")) {
            text = ai_jdoc_gets(doc, j, "text");

        } else if (ai_jdoc_iss(doc, type, "refusal")) {
            text = ai_jdoc_gets(doc, j, "refusal");

        } else {
            /* images, other parts and errors: jansson's way */
            return -1;
        }

        if (ai_jdoc_type(doc, text) != AI_JT_STRING) {
            return -1;
        }

        if (ai_jdoc_str_len(doc, text) > 0
            && ai_anth_fblock_add(bl, text, role) != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
ai_anth_fast_messages(const ai_jdoc_t *doc, uint32_t messages,
    ai_anth_fblocks_t *bl)
{
    int       rc;
    uint32_t  m, k, role, content, calls;

    if (ai_jdoc_type(doc, messages) != AI_JT_ARRAY) {
        return -1;
    }

    for (m = messages + 1, k = 0; k < doc->tok[messages].count;
         k++, m = doc->tok[m].next)
    {
        if (ai_jdoc_type(doc, m) != AI_JT_OBJECT) {
            return -1;
        }

        role = ai_jdoc_gets(doc, m, "role");
        content = ai_jdoc_gets(doc, m, "content");

        if (ai_jdoc_iss(doc, role, "system")
            || ai_jdoc_iss(doc, role, "developer"))
        {
            rc = ai_anth_fast_system(doc, content);

            if (rc < 0 || (rc == 1 && ai_anth_fblock_add(bl, content, 's')
                                      != 0))
            {
                return -1;
            }

            continue;
        }

        if (ai_jdoc_iss(doc, role, "assistant")) {
            calls = ai_jdoc_gets(doc, m, "tool_calls");

            if (ai_jdoc_type(doc, calls) != AI_JT_NONE
                && ai_jdoc_type(doc, calls) != AI_JT_NULL)
            {
                return -1;
            }

            if (ai_anth_fast_content(doc, content, 'a', bl) != 0) {
                return -1;
            }

            continue;
        }

        if (ai_jdoc_iss(doc, role, "user")) {
            if (ai_anth_fast_content(doc, content, 'u', bl) != 0) {
                return -1;
            }

            continue;
        }

        /* tool results, unknown roles, errors */
        return -1;
    }

    return 0;
}


static int
ai_anth_fast_write_messages(const ai_jdoc_t *doc, ai_anth_fblocks_t *bl,
    ai_buf_t *out)
{
    size_t  i, j, n, runs;

    if (ai_buf_append_str(out, "\"messages\":[") != 0) {
        return -1;
    }

    runs = 0;

    for (i = 0; i < bl->n; i = j) {
        if (bl->b[i].role == 's') {
            j = i + 1;
            continue;
        }

        /* a run of blocks of one role, system texts aside, is one turn */

        n = 0;

        for (j = i; j < bl->n && (bl->b[j].role == 's'
                                  || bl->b[j].role == bl->b[i].role); j++)
        {
            n += (bl->b[j].role != 's');
        }

        if ((runs && ai_buf_append(out, ",", 1) != 0)
            || ai_buf_append_str(out, bl->b[i].role == 'u'
                                      ? "{\"role\":\"user\",\"content\":"
                                      : "{\"role\":\"assistant\","
                                        "\"content\":") != 0)
        {
            return -1;
        }

        runs++;

        if (n == 1) {
            if (ai_anth_dump(doc, bl->b[i].tok, out) != 0
                || ai_buf_append(out, "}", 1) != 0)
            {
                return -1;
            }

            continue;
        }

        if (ai_buf_append(out, "[", 1) != 0) {
            return -1;
        }

        for (n = 0; i < j; i++) {
            if (bl->b[i].role == 's') {
                continue;
            }

            if ((n++ && ai_buf_append(out, ",", 1) != 0)
                || ai_buf_append_str(out, "{\"type\":\"text\",\"text\":")
                   != 0
                || ai_anth_dump(doc, bl->b[i].tok, out) != 0
                || ai_buf_append(out, "}", 1) != 0)
            {
                return -1;
            }
        }

        if (ai_buf_append_str(out, "]}") != 0) {
            return -1;
        }
    }

    if (runs == 0) {
        /* "at least one message that is not a system message" */
        return -1;
    }

    return ai_buf_append(out, "]", 1);
}


static int
ai_anth_fast_system_write(const ai_jdoc_t *doc, ai_anth_fblocks_t *bl,
    ai_buf_t *out)
{
    size_t  i, n, k;

    for (i = 0, n = 0; i < bl->n; i++) {
        n += (bl->b[i].role == 's');
    }

    if (n == 0) {
        return 0;
    }

    /* one system text goes as a string, several as text blocks */

    if (ai_buf_append_str(out, n == 1 ? "\"system\":\"" : "\"system\":[")
        != 0)
    {
        return -1;
    }

    for (i = 0, k = 0; i < bl->n; i++) {
        if (bl->b[i].role != 's') {
            continue;
        }

        if (n == 1) {
            return ai_anth_fast_system_text(doc, bl->b[i].tok, out) != 0
                   || ai_buf_append_str(out, "\",") != 0 ? -1 : 0;
        }

        if ((k++ && ai_buf_append(out, ",", 1) != 0)
            || ai_buf_append_str(out, "{\"type\":\"text\",\"text\":\"") != 0
            || ai_anth_fast_system_text(doc, bl->b[i].tok, out) != 0
            || ai_buf_append_str(out, "\"}") != 0)
        {
            return -1;
        }
    }

    return ai_buf_append_str(out, "],");
}


static int
ai_anth_fast_params(const ai_jdoc_t *doc, const ai_translate_opts_t *o,
    ai_buf_t *out)
{
    uint32_t   root, v, rf, j, k;
    long long  max;

    root = AI_JDOC_ROOT;

    /* what the tree path refuses, jansson words */

    v = ai_jdoc_gets(doc, root, "n");

    if (ai_jdoc_type(doc, v) == AI_JT_INTEGER && ai_jdoc_int(doc, v) != 1) {
        return -1;
    }

    rf = ai_jdoc_gets(doc, root, "response_format");
    v = ai_jdoc_gets(doc, rf, "type");

    if (ai_jdoc_type(doc, v) == AI_JT_STRING && !ai_jdoc_iss(doc, v, "text"))
    {
        return -1;
    }

    if (ai_jdoc_type(doc, ai_jdoc_gets(doc, root, "logprobs")) == AI_JT_TRUE)
    {
        return -1;
    }

    v = ai_jdoc_gets(doc, root, "max_completion_tokens");

    if (ai_jdoc_type(doc, v) == AI_JT_NONE
        || ai_jdoc_type(doc, v) == AI_JT_NULL)
    {
        v = ai_jdoc_gets(doc, root, "max_tokens");
    }

    if (ai_jdoc_type(doc, v) != AI_JT_NONE
        && ai_jdoc_type(doc, v) != AI_JT_NULL)
    {
        if (ai_jdoc_type(doc, v) != AI_JT_INTEGER || ai_jdoc_int(doc, v) < 1)
        {
            return -1;
        }

        max = ai_jdoc_int(doc, v);

    } else {
        max = o->default_max_tokens > 0 ? o->default_max_tokens : 4096L;
    }

    if (ai_buf_append_str(out, ",\"max_tokens\":") != 0
        || ai_buf_append_int(out, max) != 0)
    {
        return -1;
    }

    v = ai_jdoc_gets(doc, root, "stop");

    switch (ai_jdoc_type(doc, v)) {

    case AI_JT_NONE:
    case AI_JT_NULL:
        break;

    case AI_JT_STRING:
        if (ai_buf_append_str(out, ",\"stop_sequences\":[") != 0
            || ai_anth_dump(doc, v, out) != 0
            || ai_buf_append(out, "]", 1) != 0)
        {
            return -1;
        }

        break;

    case AI_JT_ARRAY:
        for (j = v + 1, k = 0; k < doc->tok[v].count;
             k++, j = doc->tok[j].next)
        {
            if (ai_jdoc_type(doc, j) != AI_JT_STRING) {
                return -1;
            }
        }

        if (doc->tok[v].count
            && (ai_buf_append_str(out, ",\"stop_sequences\":") != 0
                || ai_anth_dump(doc, v, out) != 0))
        {
            return -1;
        }

        break;

    default:
        return -1;
    }

    v = ai_jdoc_gets(doc, root, "temperature");

    if ((ai_jdoc_type(doc, v) == AI_JT_INTEGER
         || ai_jdoc_type(doc, v) == AI_JT_REAL)
        && (ai_buf_append_str(out, ",\"temperature\":") != 0
            || ai_anth_dump(doc, v, out) != 0))
    {
        return -1;
    }

    v = ai_jdoc_gets(doc, root, "top_p");

    if ((ai_jdoc_type(doc, v) == AI_JT_INTEGER
         || ai_jdoc_type(doc, v) == AI_JT_REAL)
        && (ai_buf_append_str(out, ",\"top_p\":") != 0
            || ai_anth_dump(doc, v, out) != 0))
    {
        return -1;
    }

    v = ai_jdoc_gets(doc, root, "user");

    if (ai_jdoc_type(doc, v) == AI_JT_STRING && ai_jdoc_str_len(doc, v)
        && (ai_buf_append_str(out, ",\"metadata\":{\"user_id\":") != 0
            || ai_anth_dump(doc, v, out) != 0
            || ai_buf_append(out, "}", 1) != 0))
    {
        return -1;
    }

    if (ai_jdoc_type(doc, ai_jdoc_gets(doc, root, "stream")) == AI_JT_TRUE
        && ai_buf_append_str(out, ",\"stream\":true") != 0)
    {
        return -1;
    }

    return 0;
}


static int
ai_anth_fast_tools(const ai_jdoc_t *doc, ai_buf_t *out)
{
    uint32_t  root, tools, t, k, type, fn, name, desc, params, choice;

    root = AI_JDOC_ROOT;
    tools = ai_jdoc_gets(doc, root, "tools");

    switch (ai_jdoc_type(doc, tools)) {

    case AI_JT_NONE:
    case AI_JT_NULL:
        return 0;

    case AI_JT_ARRAY:
        if (doc->tok[tools].count == 0) {
            return 0;
        }

        break;

    default:
        return -1;
    }

    if (ai_buf_append_str(out, ",\"tools\":[") != 0) {
        return -1;
    }

    for (t = tools + 1, k = 0; k < doc->tok[tools].count;
         k++, t = doc->tok[t].next)
    {
        type = ai_jdoc_gets(doc, t, "type");
        fn = ai_jdoc_gets(doc, t, "function");
        name = ai_jdoc_gets(doc, fn, "name");

        if ((ai_jdoc_type(doc, type) == AI_JT_STRING
             && !ai_jdoc_iss(doc, type, "function"))
            || ai_jdoc_type(doc, name) != AI_JT_STRING)
        {
            return -1;
        }

        desc = ai_jdoc_gets(doc, fn, "description");
        params = ai_jdoc_gets(doc, fn, "parameters");

        if ((k && ai_buf_append(out, ",", 1) != 0)
            || ai_buf_append_str(out, "{\"name\":") != 0
            || ai_anth_dump(doc, name, out) != 0)
        {
            return -1;
        }

        if (ai_jdoc_type(doc, desc) == AI_JT_STRING
            && (ai_buf_append_str(out, ",\"description\":") != 0
                || ai_anth_dump(doc, desc, out) != 0))
        {
            return -1;
        }

        if (ai_jdoc_type(doc, params) == AI_JT_OBJECT) {
            if (ai_buf_append_str(out, ",\"input_schema\":") != 0
                || ai_anth_dump(doc, params, out) != 0
                || ai_buf_append(out, "}", 1) != 0)
            {
                return -1;
            }

        } else if (ai_buf_append_str(out, ",\"input_schema\":{\"type\":"
                                     "\"object\",\"properties\":{}}}") != 0)
        {
            return -1;
        }
    }

    if (ai_buf_append_str(out, "],\"tool_choice\":{\"type\":") != 0) {
        return -1;
    }

    choice = ai_jdoc_gets(doc, root, "tool_choice");

    if (ai_jdoc_type(doc, choice) == AI_JT_NONE
        || ai_jdoc_type(doc, choice) == AI_JT_NULL
        || ai_jdoc_iss(doc, choice, "auto"))
    {
        type = 'a';

    } else if (ai_jdoc_iss(doc, choice, "none")) {
        type = 'n';

    } else if (ai_jdoc_iss(doc, choice, "required")) {
        type = 'r';

    } else if (ai_jdoc_type(doc, choice) == AI_JT_OBJECT) {
        name = ai_jdoc_gets(doc, ai_jdoc_gets(doc, choice, "function"),
                            "name");

        if (ai_jdoc_type(doc, name) != AI_JT_STRING) {
            return -1;
        }

        type = 't';

    } else {
        return -1;
    }

    if (ai_buf_append_str(out, type == 'a' ? "\"auto\""
                               : type == 'n' ? "\"none\""
                               : type == 'r' ? "\"any\""
                               : "\"tool\",\"name\":") != 0
        || (type == 't' && ai_anth_dump(doc, name, out) != 0))
    {
        return -1;
    }

    if (type != 'n'
        && ai_jdoc_type(doc, ai_jdoc_gets(doc, root, "parallel_tool_calls"))
           == AI_JT_FALSE
        && ai_buf_append_str(out, ",\"disable_parallel_tool_use\":true")
           != 0)
    {
        return -1;
    }

    return ai_buf_append(out, "}", 1);
}


int
ai_anthropic_request_raw(const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out, ai_buf_t *path)
{
    int                rc;
    size_t             mark, pmark;
    uint32_t           root, model;
    ai_jdoc_t          doc;
    ai_anth_fblocks_t  bl;

    doc.tok = NULL;
    bl.b = bl.inline_b;
    bl.n = 0;
    bl.cap = sizeof(bl.inline_b) / sizeof(bl.inline_b[0]);

    mark = out->len;
    pmark = path->len;
    root = AI_JDOC_ROOT;
    rc = -1;

    if (ai_jdoc_parse(&doc, body, len, AI_JDOC_VALID) != 0
        || doc.key_escaped
        || ai_jdoc_type(&doc, root) != AI_JT_OBJECT
        || ai_anth_fast_messages(&doc, ai_jdoc_gets(&doc, root, "messages"),
                                 &bl) != 0)
    {
        goto done;
    }

    if (ai_buf_append_str(out, "{\"model\":") != 0) {
        goto done;
    }

    if (o->model && o->model_len) {
        if (ai_buf_append(out, "\"", 1) != 0
            || ai_buf_append_jstr(out, o->model, o->model_len) != 0
            || ai_buf_append(out, "\"", 1) != 0)
        {
            goto done;
        }

    } else {
        model = ai_jdoc_gets(&doc, root, "model");

        if (model == 0 || ai_anth_dump(&doc, model, out) != 0) {
            goto done;
        }
    }

    if (ai_buf_append(out, ",", 1) != 0
        || ai_anth_fast_system_write(&doc, &bl, out) != 0
        || ai_anth_fast_write_messages(&doc, &bl, out) != 0
        || ai_anth_fast_params(&doc, o, out) != 0
        || ai_anth_fast_tools(&doc, out) != 0
        || ai_buf_append(out, "}", 1) != 0
        || ai_buf_append_str(path, "/messages") != 0)
    {
        goto done;
    }

    rc = 0;

done:

    if (rc != 0) {
        ai_anth_truncate(out, mark);
        ai_anth_truncate(path, pmark);
        rc = AI_ANTH_DECLINED;
    }

    if (bl.b != bl.inline_b) {
        free(bl.b);
    }

    ai_jdoc_free(&doc);

    return rc;
}


/* ---- answers and events ------------------------------------------------ */

/* ai_anth_usage() from the index; -1 for reals (left to jansson) */

static int
ai_anth_fast_usage(const ai_jdoc_t *doc, uint32_t usage, ai_usage_t *u,
    int apply)
{
    int          i;
    uint32_t     v[4];
    long         n[4];

    static const char  *keys[] = { "input_tokens",
                                   "cache_creation_input_tokens",
                                   "cache_read_input_tokens",
                                   "output_tokens" };

    if (ai_jdoc_type(doc, usage) != AI_JT_OBJECT) {
        return 0;
    }

    for (i = 0; i < 4; i++) {
        v[i] = ai_jdoc_get(doc, usage, keys[i], strlen(keys[i]));

        if (ai_jdoc_type(doc, v[i]) == AI_JT_REAL) {
            return -1;
        }

        n[i] = ai_jdoc_type(doc, v[i]) == AI_JT_INTEGER
               ? (long) ai_jdoc_int(doc, v[i]) : 0;
    }

    if (!apply) {
        return 0;
    }

    if (v[0]) {
        u->prompt_tokens = n[0] + n[1] + n[2];
        u->cached_tokens = n[2];
    }

    if (v[3]) {
        u->completion_tokens = n[3];
    }

    u->seen = 1;

    return 0;
}


/* ai_anth_finish() of string token i; NULL when it has escapes */

static const char *
ai_anth_fast_finish(const ai_jdoc_t *doc, uint32_t i)
{
    char  reason[32];

    if (ai_jdoc_type(doc, i) != AI_JT_STRING) {
        return ai_anth_finish(NULL);
    }

    if (doc->tok[i].escaped) {
        return NULL;
    }

    if (ai_jdoc_str_len(doc, i) >= sizeof(reason)) {
        /* none of the reasons mapped */
        return "stop";
    }

    memcpy(reason, ai_jdoc_str(doc, i), ai_jdoc_str_len(doc, i));
    reason[ai_jdoc_str_len(doc, i)] = '\0';

    return ai_anth_finish(reason);
}


static int
ai_anth_fast_response(int status, const char *body, size_t len,
    const ai_translate_opts_t *o, ai_buf_t *out)
{
    int          n, rc;
    size_t       mark;
    uint32_t     root, type, content, b, k, btype, text, id;
    ai_jdoc_t    doc;
    ai_usage_t   usage;
    const char  *finish;
    char         num[256];

    if (o->tree_only || status >= 400) {
        return AI_ANTH_DECLINED;
    }

    doc.tok = NULL;
    root = AI_JDOC_ROOT;
    mark = out->len;
    rc = AI_ANTH_DECLINED;

    if (ai_jdoc_parse(&doc, body, len, 0) != 0 || doc.key_escaped
        || ai_jdoc_type(&doc, root) != AI_JT_OBJECT)
    {
        goto done;
    }

    type = ai_jdoc_gets(&doc, root, "type");
    content = ai_jdoc_gets(&doc, root, "content");

    if ((ai_jdoc_type(&doc, type) == AI_JT_STRING
         && !ai_jdoc_iss(&doc, type, "message"))
        || ai_jdoc_type(&doc, content) != AI_JT_ARRAY)
    {
        goto done;
    }

    for (b = content + 1, k = 0; k < doc.tok[content].count;
         k++, b = doc.tok[b].next)
    {
        btype = ai_jdoc_gets(&doc, b, "type");

        if (ai_jdoc_type(&doc, btype) != AI_JT_STRING) {
            continue;
        }

        if (doc.tok[btype].escaped || ai_jdoc_iss(&doc, btype, "tool_use")) {
            goto done;
        }
    }

    memset(&usage, 0, sizeof(ai_usage_t));

    finish = ai_anth_fast_finish(&doc, ai_jdoc_gets(&doc, root,
                                                    "stop_reason"));

    if (finish == NULL
        || ai_anth_fast_usage(&doc, ai_jdoc_gets(&doc, root, "usage"),
                              &usage, 1) != 0)
    {
        goto done;
    }

    id = ai_jdoc_gets(&doc, root, "id");

    if (ai_buf_append_str(out, "{\"id\":\"chatcmpl-") != 0
        || (ai_jdoc_type(&doc, id) == AI_JT_STRING
            ? ai_anth_str_in(&doc, id, out)
            : ai_buf_append_str(out, "anthropic")) != 0)
    {
        goto done;
    }

    n = snprintf(num, sizeof(num),
                 "\",\"object\":\"chat.completion\",\"created\":%lld,"
                 "\"model\":\"", (long long) ai_created(o));

    if (n < 0 || (size_t) n >= sizeof(num)
        || ai_buf_append(out, num, n) != 0
        || ai_buf_append_jstr(out, o->client_model ? o->client_model : "",
                              o->client_model ? o->client_model_len : 0)
           != 0
        || ai_buf_append_str(out, "\",\"choices\":[{\"index\":0,"
                             "\"message\":{\"role\":\"assistant\","
                             "\"content\":\"") != 0)
    {
        goto done;
    }

    for (b = content + 1, k = 0; k < doc.tok[content].count;
         k++, b = doc.tok[b].next)
    {
        btype = ai_jdoc_gets(&doc, b, "type");
        text = ai_jdoc_gets(&doc, b, "text");

        if (ai_jdoc_iss(&doc, btype, "text")
            && ai_jdoc_type(&doc, text) == AI_JT_STRING
            && ai_anth_str_in(&doc, text, out) != 0)
        {
            goto done;
        }
    }

    n = snprintf(num, sizeof(num),
                 "\",\"refusal\":null},\"logprobs\":null,"
                 "\"finish_reason\":\"%s\"}],\"usage\":{"
                 "\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                 "\"total_tokens\":%lld,\"prompt_tokens_details\":{"
                 "\"cached_tokens\":%lld}}}",
                 finish,
                 (long long) usage.prompt_tokens,
                 (long long) usage.completion_tokens,
                 (long long) (usage.prompt_tokens + usage.completion_tokens),
                 (long long) usage.cached_tokens);

    if (n < 0 || (size_t) n >= sizeof(num)
        || ai_buf_append(out, num, n) != 0)
    {
        goto done;
    }

    rc = 0;

done:

    if (rc != 0) {
        ai_anth_truncate(out, mark);
    }

    ai_jdoc_free(&doc);

    return rc;
}


/* data: {...,"choices":[{"index":0,"delta":{ and the role, the first time */

static int
ai_anth_chunk_begin(ai_stream_t *s, int members, ai_buf_t *out)
{
    if (s->chunk_pre_len == 0 && ai_anth_chunk_prefix(s) != 0) {
        return -1;
    }

    if (ai_buf_append(out, s->chunk_pre, s->chunk_head_len) != 0
        || ai_buf_append_str(out, "{\"index\":0,\"delta\":{") != 0)
    {
        return -1;
    }

    s->started = 1;

    if (!(s->roles & 1)) {
        s->roles |= 1;

        return ai_buf_append_str(out, members ? "\"role\":\"assistant\","
                                              : "\"role\":\"assistant\"");
    }

    return 0;
}


static int
ai_anth_chunk_end(const char *finish, ai_buf_t *out)
{
    if (ai_buf_append_str(out, "},\"logprobs\":null,\"finish_reason\":")
        != 0)
    {
        return -1;
    }

    if (finish == NULL) {
        return ai_buf_append_str(out, "null}]}\n\n");
    }

    return ai_buf_append(out, "\"", 1) != 0
           || ai_buf_append_str(out, finish) != 0
           || ai_buf_append_str(out, "\"}]}\n\n") != 0 ? -1 : 0;
}


/* a chunk whose delta is {"content":<string token i>} */

static int
ai_anth_fast_content_chunk(ai_stream_t *s, const ai_jdoc_t *doc,
    uint32_t i, ai_buf_t *out)
{
    return ai_anth_chunk_begin(s, 1, out) != 0
           || ai_buf_append_str(out, "\"content\":") != 0
           || ai_anth_dump(doc, i, out) != 0
           || ai_anth_chunk_end(NULL, out) != 0 ? -1 : 0;
}


/*
 * Anthropic's events other than the exact text deltas, from the index:
 * 1 handled, 0 for jansson to read, -1 failed (where the jansson path
 * fails).  Nothing is changed before it is sure to be handled here.
 */

static int
ai_anth_fast_event(ai_stream_t *s, const ai_sse_event_t *ev, ai_buf_t *out)
{
    int          n;
    size_t       mark;
    uint32_t     root, type, m, id, b, d, idx, dtype, str, name;
    ai_jdoc_t   *doc;
    const char  *finish;
    char         num[32];

    doc = &s->doc;
    root = AI_JDOC_ROOT;

    if (ai_jdoc_parse(doc, ev->data, ev->data_len, 0) != 0
        || doc->key_escaped
        || ai_jdoc_type(doc, root) != AI_JT_OBJECT)
    {
        return 0;
    }

    type = ai_jdoc_gets(doc, root, "type");

    if (ai_jdoc_type(doc, type) != AI_JT_STRING || doc->tok[type].escaped) {
        return 0;
    }

    mark = out->len;

    if (ai_jdoc_iss(doc, type, "message_start")) {
        m = ai_jdoc_gets(doc, root, "message");
        id = ai_jdoc_gets(doc, m, "id");

        if ((ai_jdoc_type(doc, id) == AI_JT_STRING && doc->tok[id].escaped)
            || ai_anth_fast_usage(doc, ai_jdoc_gets(doc, m, "usage"),
                                  &s->usage, 0) != 0)
        {
            return 0;
        }

        if (ai_jdoc_type(doc, id) == AI_JT_STRING) {
            snprintf(s->id, sizeof(s->id), "chatcmpl-%.*s",
                     (int) ai_jdoc_str_len(doc, id), ai_jdoc_str(doc, id));
            s->chunk_pre_len = 0;
        }

        (void) ai_anth_fast_usage(doc, ai_jdoc_gets(doc, m, "usage"),
                                  &s->usage, 1);

        if (ai_anth_chunk_begin(s, 1, out) != 0
            || ai_buf_append_str(out, "\"content\":\"\"") != 0
            || ai_anth_chunk_end(NULL, out) != 0)
        {
            goto failed;
        }

        return 1;
    }

    if (ai_jdoc_iss(doc, type, "content_block_start")) {
        b = ai_jdoc_gets(doc, root, "content_block");
        idx = ai_jdoc_gets(doc, root, "index");
        dtype = ai_jdoc_gets(doc, b, "type");

        if (ai_jdoc_type(doc, dtype) != AI_JT_STRING) {
            return 1;
        }

        if (doc->tok[dtype].escaped) {
            return 0;
        }

        if (ai_jdoc_iss(doc, dtype, "tool_use")) {
            n = s->tools++;

            if (ai_jdoc_type(doc, idx) != AI_JT_INTEGER
                || ai_anth_block_tool_at(s, ai_jdoc_int(doc, idx), n) != 0)
            {
                return -1;
            }

            id = ai_jdoc_gets(doc, b, "id");
            name = ai_jdoc_gets(doc, b, "name");

            snprintf(num, sizeof(num), "%d", n);

            if (ai_anth_chunk_begin(s, 1, out) != 0
                || ai_buf_append_str(out, "\"tool_calls\":[{\"index\":") != 0
                || ai_buf_append_str(out, num) != 0
                || ai_buf_append_str(out, ",\"id\":") != 0
                || (ai_jdoc_type(doc, id) == AI_JT_STRING
                    ? ai_anth_dump(doc, id, out)
                    : ai_buf_append_str(out, "\"\"")) != 0
                || ai_buf_append_str(out, ",\"type\":\"function\","
                                     "\"function\":{\"name\":") != 0
                || (ai_jdoc_type(doc, name) == AI_JT_STRING
                    ? ai_anth_dump(doc, name, out)
                    : ai_buf_append_str(out, "\"\"")) != 0
                || ai_buf_append_str(out, ",\"arguments\":\"\"}}]") != 0
                || ai_anth_chunk_end(NULL, out) != 0)
            {
                goto failed;
            }

            return 1;
        }

        str = ai_jdoc_gets(doc, b, "text");

        if (ai_jdoc_iss(doc, dtype, "text")
            && ai_jdoc_type(doc, str) == AI_JT_STRING
            && ai_jdoc_str_len(doc, str) > 0
            && ai_anth_fast_content_chunk(s, doc, str, out) != 0)
        {
            goto failed;
        }

        return 1;
    }

    if (ai_jdoc_iss(doc, type, "content_block_delta")) {
        d = ai_jdoc_gets(doc, root, "delta");
        idx = ai_jdoc_gets(doc, root, "index");
        dtype = ai_jdoc_gets(doc, d, "type");

        if (ai_jdoc_type(doc, dtype) != AI_JT_STRING) {
            return 1;
        }

        if (doc->tok[dtype].escaped) {
            return 0;
        }

        if (ai_jdoc_iss(doc, dtype, "text_delta")) {
            str = ai_jdoc_gets(doc, d, "text");

            if (ai_jdoc_type(doc, str) == AI_JT_STRING
                && ai_jdoc_str_len(doc, str) > 0
                && ai_anth_fast_content_chunk(s, doc, str, out) != 0)
            {
                goto failed;
            }

            return 1;
        }

        if (ai_jdoc_iss(doc, dtype, "input_json_delta")) {
            if (ai_jdoc_type(doc, idx) != AI_JT_INTEGER
                || ai_jdoc_int(doc, idx) < 0
                || ai_jdoc_int(doc, idx) >= (long long) s->nblocks
                || s->block_tool[ai_jdoc_int(doc, idx)] < 0)
            {
                return -1;
            }

            str = ai_jdoc_gets(doc, d, "partial_json");

            if (ai_jdoc_type(doc, str) != AI_JT_STRING
                || ai_jdoc_str_len(doc, str) == 0)
            {
                return 1;
            }

            snprintf(num, sizeof(num), "%d",
                     s->block_tool[ai_jdoc_int(doc, idx)]);

            if (ai_anth_chunk_begin(s, 1, out) != 0
                || ai_buf_append_str(out, "\"tool_calls\":[{\"index\":") != 0
                || ai_buf_append_str(out, num) != 0
                || ai_buf_append_str(out, ",\"function\":{\"arguments\":")
                   != 0
                || ai_anth_dump(doc, str, out) != 0
                || ai_buf_append_str(out, "}}]") != 0
                || ai_anth_chunk_end(NULL, out) != 0)
            {
                goto failed;
            }
        }

        /* thinking, signature and citations deltas are not relayed */

        return 1;
    }

    if (ai_jdoc_iss(doc, type, "message_delta")) {
        str = ai_jdoc_gets(doc, ai_jdoc_gets(doc, root, "delta"),
                           "stop_reason");
        finish = ai_anth_fast_finish(doc, str);

        if (finish == NULL
            || ai_anth_fast_usage(doc, ai_jdoc_gets(doc, root, "usage"),
                                  &s->usage, 1) != 0)
        {
            return 0;
        }

        if (ai_jdoc_type(doc, str) == AI_JT_STRING) {
            s->finished |= 1;

            if (ai_anth_chunk_begin(s, 0, out) != 0
                || ai_anth_chunk_end(finish, out) != 0)
            {
                goto failed;
            }
        }

        return 1;
    }

    if (ai_jdoc_iss(doc, type, "message_stop")) {
        if (!(s->finished & 1)) {
            s->finished |= 1;

            if (ai_anth_chunk_begin(s, 0, out) != 0
                || ai_anth_chunk_end("stop", out) != 0)
            {
                goto failed;
            }
        }

        return ai_stream_close(s, out) == 0 ? 1 : -1;
    }

    if (ai_jdoc_iss(doc, type, "error")) {
        return 0;
    }

    /* ping, content_block_stop, and event types added later */

    return 1;

failed:

    ai_anth_truncate(out, mark);

    return -1;
}
